//! The Rust guest SDK (hook-examples/sluice-hook) and the examples written
//! on it, tested natively: the SDK's harness runs a hook in `cargo test`
//! with the config and caller a test gives it, no proxy and no wasm. The
//! same examples run as components in server_message_hooks.rs and the
//! interop hooks stage.

use std::path::Path;
use std::process::Command;

#[test]
fn the_sdk_and_the_examples_on_it_pass_their_own_tests() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../hook-examples");
    let out = Command::new(env!("CARGO"))
        .args([
            "test",
            "--locked",
            "-p",
            "sluice-hook",
            "-p",
            "rust-server-guard",
            "-p",
            "rust-caller-policy",
        ])
        .arg("--manifest-path")
        .arg(examples.join("Cargo.toml"))
        // The examples' own target dir; flags meant for this build stay here.
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .output()
        .expect("cargo runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    // Both crates' tests ran, not zero of them.
    let passed: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("test result: ok.") && !l.contains(" 0 passed"))
        .collect();
    assert!(passed.len() >= 3, "{text}");
}
