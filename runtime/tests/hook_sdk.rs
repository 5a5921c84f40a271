//! The Rust guest SDK (hook-examples/sluice-hook) and the examples written
//! on it, tested natively: the SDK's harness runs a hook in `cargo test`
//! with the config and caller a test gives it, no proxy and no wasm. The
//! same examples run as components in server_message_hooks.rs and the
//! interop hooks stage. The Python SDK (hook-examples/sluice-hook-py) and
//! python-arg-validator likewise, under plain CPython (the component runs
//! in hooks_guests.rs).

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

/// `hook-examples/sluice-hook-py/test.sh [DIR]`: the Python SDK's tests, or
/// those of the hook in DIR, under CPython; `None` (skipped, loudly) when
/// the script says python3 3.10+ is missing (exit status 3, as the build
/// scripts say it).
fn python_tests(dir: Option<&str>) -> Option<String> {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../hook-examples");
    let out = Command::new(examples.join("sluice-hook-py/test.sh"))
        .args(dir.map(|d| examples.join(d)))
        .output()
        .expect("test.sh runs");
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    if out.status.code() == Some(3) {
        eprintln!("SKIPPED: {}", text.trim());
        return None;
    }
    assert!(out.status.success(), "{text}");
    Some(text)
}

/// How many tests unittest ran, from its "Ran N tests" line.
fn ran(text: &str) -> usize {
    text.lines()
        .find_map(|l| l.strip_prefix("Ran ")?.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no \"Ran N tests\" line: {text}"))
}

#[test]
fn the_python_sdk_and_the_example_on_it_pass_their_own_tests() {
    let Some(sdk) = python_tests(None) else {
        return;
    };
    assert!(ran(&sdk) >= 10, "{sdk}");
    let example = python_tests(Some("python-arg-validator")).expect("python3 is here");
    assert!(ran(&example) >= 5, "{example}");
}
