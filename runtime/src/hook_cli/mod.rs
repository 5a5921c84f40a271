//! `sluice hook …`: the hook author's tools in the binary.
//!
//! - `sluice hook check FILE.wasm`: load the component exactly as the proxy
//!   does ([`HookHost::load_with`]) and say what it is: its world, its
//!   imports and how each is served, what `methods()` asked for.
//! - `sluice hook test FILE.wasm --request JSON …`: run it offline through
//!   the host's own chain runner ([`HookHost::run_request`],
//!   [`HookHost::run_response`]) and show the verdict, what the proxy would
//!   then forward or answer, the hook's log lines and the time per call.
//! - `sluice hook new NAME --lang rust|js|python|c [--sdk]`: write a project that builds a hook
//!   for the current WIT (`wit/hook.wit`, embedded in the binary).
//!
//! Nothing here validates or runs a hook in a way of its own: the host's
//! load and call paths are the only ones, so what these commands say is what
//! the proxy would do.

mod check;
mod new;
mod test;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use crate::hooks::{
    Enforcement, Grants, HookHost, HookSpec, HostOptions, InstanceMode, LogLevel, OnError,
};

pub use new::{Lang, NewArgs, check_name};
pub use test::{Messages, TestArgs, parse_identity};

/// What `sluice hook` was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookCommand {
    /// `sluice hook check`.
    Check(CheckArgs),
    /// `sluice hook test`.
    Test(Box<TestArgs>),
    /// `sluice hook new`.
    New(NewArgs),
}

/// How the hook under check or test is loaded: what an operator's `[[hook]]`
/// table would say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadArgs {
    /// The component.
    pub file: PathBuf,
    /// The string its `config()` returns.
    pub config: String,
    /// The operator's narrowing (`methods` in the config), if any.
    pub methods: Option<Vec<String>>,
    /// Capabilities granted.
    pub grants: Grants,
    /// What a failure of the hook does.
    pub on_error: OnError,
    /// Headers the hook may see (the config's `headers`).
    pub headers: Vec<String>,
    /// Fresh or warm instances (the config's `instances`).
    pub instances: InstanceMode,
    /// Enforced or audited (the config's `mode`).
    pub enforcement: Enforcement,
    /// Load through the proxy's cache of compiled artifacts (the default),
    /// or compile in memory.
    pub cache: bool,
}

/// `sluice hook check FILE.wasm`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckArgs {
    /// How to load it.
    pub load: LoadArgs,
    /// One JSON object on stdout instead of text.
    pub json: bool,
}

/// Exit statuses of `sluice hook check` and `sluice hook test` beyond
/// success (0) and clap's usage error (2).
pub mod exit {
    /// The hook could not be loaded, or the input was not usable.
    pub const ERROR: u8 = 1;
    /// `test`: a hook replaced a message (the proxy forwards another one).
    pub const REPLACED: u8 = 3;
    /// `test`: a hook rejected (the proxy answers with its error).
    pub const REJECTED: u8 = 4;
    /// `test`: a hook responded (the proxy answers with its result).
    pub const RESPONDED: u8 = 5;
    /// `test`: a hook failed (trap, deadline, memory cap, invalid verdict),
    /// whatever its `on_error` then did.
    pub const FAILED: u8 = 6;
    /// `test`: the hook was called in no phase (its `methods()`, or the
    /// operator's `--methods`, do not cover the method).
    pub const NOT_CALLED: u8 = 7;
}

/// Run a `sluice hook` command; what it prints goes to stdout, errors to
/// stderr.
pub fn run(command: HookCommand) -> ExitCode {
    let result = match command {
        HookCommand::Check(args) => check::run(&args),
        HookCommand::Test(args) => test::run(&args),
        HookCommand::New(args) => new::run(&args).map(|()| 0),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("sluice hook: {e:#}");
            ExitCode::from(exit::ERROR)
        }
    }
}

/// The guest's log lines, as the host hands them over.
type Logs = Arc<Mutex<Vec<(LogLevel, String)>>>;

/// A host holding the one hook, loaded as the proxy loads its hooks, with
/// its log lines kept in `logs` (every level) instead of printed.
fn load(args: &LoadArgs, logs: &Logs) -> anyhow::Result<HookHost> {
    let mut spec = HookSpec::new(hook_name(&args.file), &args.file);
    spec.config = args.config.clone();
    spec.methods = args.methods.clone();
    spec.grants = args.grants;
    spec.on_error = args.on_error;
    spec.headers = args.headers.clone();
    spec.mode = args.instances;
    spec.enforcement = args.enforcement;
    let sink = logs.clone();
    let opts = HostOptions {
        cache_dir: args.cache.then(crate::hooks::default_cache_dir).flatten(),
        log: Arc::new(move |_hook, level, line| {
            sink.lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((level, line.to_owned()));
        }),
        ..HostOptions::default()
    };
    HookHost::load_with(vec![spec], opts)
}

/// The name the hook goes by in messages: its file name without `.wasm`.
fn hook_name(file: &std::path::Path) -> String {
    file.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "hook".into())
}

/// Take the lines logged so far.
fn drain(logs: &Logs) -> Vec<(LogLevel, String)> {
    std::mem::take(&mut *logs.lock().unwrap_or_else(|p| p.into_inner()))
}

fn level_name(level: LogLevel) -> &'static str {
    match level {
        LogLevel::Trace => "trace",
        LogLevel::Debug => "debug",
        LogLevel::Info => "info",
        LogLevel::Warn => "warn",
        LogLevel::Error => "error",
    }
}

fn logs_json(lines: &[(LogLevel, String)]) -> serde_json::Value {
    lines
        .iter()
        .map(|(level, line)| serde_json::json!({ "level": level_name(*level), "line": line }))
        .collect()
}

fn print_logs(lines: &[(LogLevel, String)], indent: &str) {
    for (level, line) in lines {
        println!("{indent}[{}] {line}", level_name(*level));
    }
}

/// A duration for people: µs below a millisecond, ms below a second.
fn micros(d: std::time::Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1e3 {
        format!("{us:.1} µs")
    } else if us < 1e6 {
        format!("{:.1} ms", us / 1e3)
    } else {
        format!("{:.2} s", us / 1e6)
    }
}
