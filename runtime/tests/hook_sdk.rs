//! The guest SDKs and the examples written on them, tested natively: the
//! Rust SDK's harness (hook-examples/sluice-hook) runs a hook in `cargo
//! test`, the JavaScript SDK's (hook-examples/sluice-hook-js) under plain
//! node, the Python SDK's (hook-examples/sluice-hook-py) under plain
//! CPython, with the config and caller a test gives it, no proxy and no
//! wasm. The same examples run as components in server_message_hooks.rs,
//! hooks_guests.rs and the interop hooks stage.

mod guests;

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

/// The JavaScript SDK's tests and the rewriter's, under node with the SDK's
/// harness (`test.sh` of each). Exit status 3 (node missing or older than
/// 20.6) is skipped only as the guest builds are, when
/// `SLUICE_SKIP_GUEST_TOOLCHAINS` names js.
#[test]
fn the_js_sdk_and_the_example_on_it_pass_their_own_tests() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../hook-examples");
    for script in ["sluice-hook-js/test.sh", "js-tools-rewriter/test.sh"] {
        let out = Command::new("bash")
            .arg(examples.join(script))
            .output()
            .expect("bash runs");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if out.status.code() == Some(3) {
            assert!(
                guests::skip_allowed("js"),
                "{script}: node is missing or too old; set SLUICE_SKIP_GUEST_TOOLCHAINS=js \
                 to skip it on such a machine.\n{text}"
            );
            eprintln!(
                "\n==== SKIPPED: {script} (SLUICE_SKIP_GUEST_TOOLCHAINS is set) ====\n{text}"
            );
            continue;
        }
        assert!(out.status.success(), "{script}: {}\n{text}", out.status);
        // node's summary ("# pass 9" in TAP, "ℹ pass 9" in its spec
        // reporter): some tests ran, none failed.
        let count = |what: &str| -> u32 {
            text.lines()
                .find_map(|l| match l.split_whitespace().collect::<Vec<_>>()[..] {
                    [_, w, n] if w == what => n.parse().ok(),
                    _ => None,
                })
                .unwrap_or_else(|| panic!("{script}: no `{what}` count\n{text}"))
        };
        assert!(count("pass") >= 5, "{script}\n{text}");
        assert_eq!(count("fail"), 0, "{script}\n{text}");
    }
}

/// `hook-examples/sluice-hook-py/test.sh [DIR]`: the Python SDK's tests, or
/// those of the hook in DIR, under CPython; `None` (skipped, loudly) when
/// the script says python3 3.10+ is missing (exit status 3, as the build
/// scripts say it) and `SLUICE_SKIP_GUEST_TOOLCHAINS` names python.
fn python_tests(dir: Option<&str>) -> Option<String> {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../hook-examples");
    let out = Command::new(examples.join("sluice-hook-py/test.sh"))
        .args(dir.map(|d| examples.join(d)))
        .output()
        .expect("test.sh runs");
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    if out.status.code() == Some(3) {
        assert!(
            guests::skip_allowed("python"),
            "python3 3.10+ is missing; set SLUICE_SKIP_GUEST_TOOLCHAINS=python to skip it on \
             such a machine.\n{text}"
        );
        eprintln!(
            "\n==== SKIPPED: {} (SLUICE_SKIP_GUEST_TOOLCHAINS is set) ====",
            text.trim()
        );
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
