//! Building the JavaScript, Python and C example hooks (hook-examples/) with
//! their own build scripts, for the guest tests and benches.
//!
//! Each build script takes a component built before from the same inputs
//! from the build cache (hook-examples/build-cache.sh); otherwise it
//! installs its pinned toolchain on first use (in a cache outside the
//! repository) and builds. A failed build fails the test, unless
//! `SLUICE_SKIP_GUEST_TOOLCHAINS` is set (to `1`/`all`, or to a comma list of
//! `js`, `python`, `c`): then the example is skipped with a loud message. CI
//! leaves it unset. One failure is never skipped: a pinned toolchain that the
//! package manager refuses (build script exit status 4: a lock out of sync
//! with its manifest or with this npm, a pinned version that does not exist)
//! is a bug in the repository, not a machine without the toolchain (exit
//! status 3: no node/npm or python3, the registry unreachable).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use sluice::hooks::{HookHost, HookSpec, HostOptions, InstanceMode, LogLevel};

/// One buildable guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Example {
    /// hook-examples/js-tools-rewriter, QuickJS backend (the default).
    JsQuickJs,
    /// hook-examples/js-tools-rewriter, StarlingMonkey (componentize-js).
    JsStarlingMonkey,
    /// hook-examples/python-arg-validator.
    Python,
    /// hook-examples/c-audit-log.
    C,
}

impl Example {
    pub const ALL: [Example; 4] = [
        Example::JsQuickJs,
        Example::JsStarlingMonkey,
        Example::Python,
        Example::C,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Example::JsQuickJs => "js_tools_rewriter",
            Example::JsStarlingMonkey => "js_tools_rewriter_sm",
            Example::Python => "python_arg_validator",
            Example::C => "c_audit_log",
        }
    }

    fn language(self) -> &'static str {
        match self {
            Example::JsQuickJs | Example::JsStarlingMonkey => "js",
            Example::Python => "python",
            Example::C => "c",
        }
    }

    fn script(self) -> (&'static str, &'static [&'static str]) {
        match self {
            Example::JsQuickJs => ("js-tools-rewriter", &["quickjs"]),
            Example::JsStarlingMonkey => ("js-tools-rewriter", &["starlingmonkey"]),
            Example::Python => ("python-arg-validator", &[]),
            Example::C => ("c-audit-log", &[]),
        }
    }

    fn slot(self) -> &'static OnceLock<Option<PathBuf>> {
        static SLOTS: [OnceLock<Option<PathBuf>>; 4] = [const { OnceLock::new() }; 4];
        &SLOTS[Example::ALL.iter().position(|e| *e == self).unwrap()]
    }
}

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Where the build scripts put the components: `<target>/hook-examples`.
pub fn out_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target dir")
        .join("hook-examples")
}

/// The precompiled-artifact cache: the one the sluice binary uses
/// (`~/.cache/sluice/hooks`), so the 1.6–18 MB interpreted guests are
/// compiled by wasmtime once per machine — not once per clone, and not again
/// by the sluice of the interop hooks stage (the file names bind the wasm's
/// hash to the engine's). Without a home directory, one under `target/`.
pub fn cache_dir() -> PathBuf {
    sluice::hooks::default_cache_dir()
        .unwrap_or_else(|| Path::new(env!("CARGO_TARGET_TMPDIR")).join("hook-cache"))
}

pub fn skip_allowed(lang: &str) -> bool {
    match std::env::var("SLUICE_SKIP_GUEST_TOOLCHAINS") {
        Ok(v) => {
            let v = v.trim();
            v == "1" || v == "all" || v.split(',').any(|l| l.trim() == lang)
        }
        Err(_) => false,
    }
}

/// Build `ex` (once per process) and return its component's path, or `None`
/// when it could not be built and skipping was asked for.
pub fn build(ex: Example) -> Option<PathBuf> {
    ex.slot()
        .get_or_init(|| {
            let (dir, args) = ex.script();
            let script = repo().join("hook-examples").join(dir).join("build.sh");
            let output = Command::new("bash")
                .arg(&script)
                .args(args)
                .env("SLUICE_HOOK_OUT", out_dir())
                // Flags meant for the host build must not leak into guest tools.
                .env_remove("RUSTFLAGS")
                .env_remove("CARGO_ENCODED_RUSTFLAGS")
                .env_remove("CARGO_TARGET_DIR")
                .env_remove("CARGO_BUILD_TARGET")
                .output()
                .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
            let log = String::from_utf8_lossy(&output.stderr);
            if output.status.success() {
                let wasm = out_dir().join(format!("{}.wasm", ex.name()));
                assert!(
                    wasm.is_file(),
                    "{} did not produce {}",
                    script.display(),
                    wasm.display()
                );
                return Some(wasm);
            }
            let code = output.status.code();
            if code == Some(4) {
                panic!(
                    "{} ({}): the package manager refused the pinned toolchain: its lock \
                     file is broken, not this machine (SLUICE_SKIP_GUEST_TOOLCHAINS does \
                     not skip this; scripts/check-locks shows every lock's state).\n{log}",
                    script.display(),
                    output.status,
                );
            }
            let why = match code {
                Some(3) => "its toolchain could not be installed",
                _ => "the build failed",
            };
            if skip_allowed(ex.language()) {
                eprintln!(
                    "\n==== SKIPPED: {} guest example {}: {why} \
                     (SLUICE_SKIP_GUEST_TOOLCHAINS is set) ====\n{log}",
                    ex.language(),
                    ex.name()
                );
                return None;
            }
            panic!(
                "{} ({}): {why}; set SLUICE_SKIP_GUEST_TOOLCHAINS={} to skip it \
                 on a machine without the toolchain.\n{log}",
                script.display(),
                output.status,
                ex.language()
            );
        })
        .clone()
}

/// A spec for a built example, with a deadline generous enough for a loaded
/// CI machine (the tests are about behaviour; the benches measure cost).
pub fn spec(ex: Example, path: &Path, config: &str, mode: InstanceMode) -> HookSpec {
    let mut spec = HookSpec::new(ex.name(), path);
    spec.config = config.into();
    spec.mode = mode;
    spec.deadline = Duration::from_secs(2);
    spec
}

/// The guests' log lines: `(hook, level, line)`.
pub type Logs = Arc<Mutex<Vec<(String, LogLevel, String)>>>;

/// Load one hook through the shared artifact cache, capturing its log lines.
pub fn load(spec: HookSpec) -> anyhow::Result<(HookHost, Logs)> {
    let logs: Logs = Arc::default();
    let sink = logs.clone();
    let host = HookHost::load_with(
        vec![spec],
        HostOptions {
            cache_dir: Some(cache_dir()),
            log: Arc::new(move |hook, level, line| {
                sink.lock()
                    .unwrap()
                    .push((hook.to_string(), level, line.to_string()))
            }),
            ..HostOptions::default()
        },
    )?;
    Ok((host, logs))
}

/// The two instance modes every example is checked in.
pub const MODES: [InstanceMode; 2] = [
    InstanceMode::Fresh,
    InstanceMode::Warm {
        pool: 2,
        recycle_after: 50,
    },
];
