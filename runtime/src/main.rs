//! The `sluice` binary. The proxy lands with the runtime issue; until then
//! this says so rather than pretending.

fn main() {
    eprintln!("sluice: the proxy runtime is not built yet (see the README's status section)");
    std::process::exit(2);
}
