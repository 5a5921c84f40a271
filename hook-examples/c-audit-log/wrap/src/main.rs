//! `sluice-hook-wrap CORE.wasm OUT.wasm`: wrap a core module that carries
//! its component-type metadata (wit-bindgen's C generator links it in as
//! `<world>_component_type.o`) into a component.
//!
//! The WASI preview1 adapter is added only when the module imports
//! `wasi_snapshot_preview1`; a hook that uses no libc I/O needs none and ends
//! up with no WASI imports at all.

use std::process::ExitCode;

use wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER;
use wit_component::ComponentEncoder;

const PREVIEW1: &str = "wasi_snapshot_preview1";

fn imports_preview1(module: &[u8]) -> Result<bool, String> {
    for payload in wasmparser::Parser::new(0).parse_all(module) {
        if let wasmparser::Payload::ImportSection(imports) =
            payload.map_err(|e| format!("not a wasm module: {e}"))?
        {
            for import in imports.into_imports() {
                let import = import.map_err(|e| format!("bad import section: {e}"))?;
                if import.module == PREVIEW1 {
                    return Ok(true);
                }
            }
        }
    }
    Ok(false)
}

fn wrap(core: &str, out: &str) -> Result<(), String> {
    let module = std::fs::read(core).map_err(|e| format!("reading {core}: {e}"))?;
    let mut encoder = ComponentEncoder::default();
    encoder
        .module(&module)
        .map_err(|e| format!("{core}: {e:#}"))?
        .validate(true);
    if imports_preview1(&module)? {
        encoder
            .adapter(PREVIEW1, WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER)
            .map_err(|e| format!("adapter: {e:#}"))?;
    }
    let component = encoder.encode().map_err(|e| format!("{core}: {e:#}"))?;
    std::fs::write(out, component).map_err(|e| format!("writing {out}: {e}"))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let [_, core, out] = args.as_slice() else {
        eprintln!("usage: sluice-hook-wrap CORE.wasm OUT.wasm");
        return ExitCode::from(2);
    };
    match wrap(core, out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sluice-hook-wrap: {e}");
            ExitCode::FAILURE
        }
    }
}
