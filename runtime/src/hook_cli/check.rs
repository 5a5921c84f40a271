//! `sluice hook check`: load a component as the proxy would and say what it
//! is.

use std::time::Instant;

use serde_json::json;
use sluice_core::exchange::methods::{HookMethods, MethodSet, Phase};

use super::{CheckArgs, Logs, drain, exit, load, logs_json, micros, print_logs};
use crate::hooks::{CacheStatus, HookHost, ImportKind};

/// Every phase, in the order a message meets them.
pub(super) const PHASES: [Phase; 4] = [
    Phase::Request,
    Phase::Response,
    Phase::ServerMessage,
    Phase::ClientAnswer,
];

/// A phase as the WIT spells it.
pub(super) fn phase_name(phase: Phase) -> &'static str {
    &phase.suffix()[1..]
}

/// One entry of `methods()`: the methods it names and the phases it covers.
struct Entry {
    entry: String,
    methods: String,
    /// Each phase it covers, and whether only for the methods a server
    /// sends (an entry without a phase, in a server-to-client phase).
    phases: Vec<(Phase, bool)>,
}

/// Each entry of the hook's `methods()`, with the phases core's own rule
/// (`HookMethods::covers_phase`, the proxy's gate) says it covers in the
/// hook's world.
fn entries(host: &HookHost, world: &str) -> Vec<Entry> {
    let methods = host.methods();
    let Some(hook) = methods.first() else {
        return Vec::new();
    };
    hook.declared()
        .patterns()
        .iter()
        .map(|p| {
            let entry = p.to_string();
            let methods = match p.phase() {
                Some(phase) => entry.strip_suffix(phase.suffix()).unwrap_or(&entry),
                None => &entry,
            }
            .to_owned();
            let one = MethodSet::parse(&[entry.as_str()]).expect("an entry the host read");
            let mut alone = HookMethods::new(one, None);
            if world == "sluice:hook@0.1.0" {
                alone = alone.without_server_phases();
            }
            let phases = PHASES
                .iter()
                .filter(|phase| alone.covers_phase(**phase))
                .map(|phase| (*phase, p.phase().is_none() && phase.is_server_to_client()))
                .collect();
            Entry {
                entry,
                methods,
                phases,
            }
        })
        .collect()
}

fn phase_label((phase, server_only): (Phase, bool)) -> String {
    if server_only {
        format!("{} (methods a server sends)", phase_name(phase))
    } else {
        phase_name(phase).to_owned()
    }
}

fn import_kind(kind: ImportKind) -> &'static str {
    match kind {
        ImportKind::Host => "host",
        ImportKind::Wasi => "wasi",
        ImportKind::Stubbed => "stubbed",
    }
}

fn import_note(kind: ImportKind) -> &'static str {
    match kind {
        ImportKind::Host => "sluice's host interface",
        ImportKind::Wasi => {
            "linked, and denied unless granted: no files, network or environment; a frozen \
             clock, fixed randomness and discarded stdout/stderr without --grant clock, \
             random, stdio"
        }
        ImportKind::Stubbed => "provided by nobody: the hook loads, and traps if it calls one",
    }
}

/// What a file that did not load looks like, when its first bytes say
/// more than the loader's error: not wasm at all, or a core module.
fn hint(file: &std::path::Path) -> Option<&'static str> {
    use std::io::Read as _;
    let mut head = [0u8; 8];
    let n = std::fs::File::open(file)
        .and_then(|mut f| f.read(&mut head))
        .ok()?;
    if n < 8 || &head[..4] != b"\0asm" {
        return Some("this is not a WebAssembly binary (no \\0asm header)");
    }
    // Version 1, layer 0: a core module; components are layer 1.
    if head[4..] == [1, 0, 0, 0] {
        return Some(
            "this is a core WebAssembly module, not a component: build for wasm32-wasip2 \
             (Rust), or wrap the module with wit-component / `wasm-tools component new`",
        );
    }
    None
}

pub(super) fn run(args: &CheckArgs) -> anyhow::Result<u8> {
    let logs = Logs::default();
    let t0 = Instant::now();
    let host = match load(&args.load, &logs) {
        Ok(host) => host,
        Err(e) => {
            let file = args.load.file.display();
            if args.json {
                let out = json!({
                    "file": file.to_string(),
                    "loadable": false,
                    "error": format!("{e:#}"),
                    "hint": hint(&args.load.file),
                    "logs": logs_json(&drain(&logs)),
                });
                println!("{out:#}");
            } else {
                println!("{file}: NOT loadable");
                println!("  error: {e:#}");
                if let Some(hint) = hint(&args.load.file) {
                    println!("  hint:  {hint}");
                }
                print_logs(&drain(&logs), "  log ");
            }
            return Ok(exit::ERROR);
        }
    };
    let load_time = t0.elapsed();
    let info = host.hooks().remove(0);
    let entries = entries(&host, info.world);
    let logs = drain(&logs);
    let cache = match info.cache {
        CacheStatus::Hit => "loaded from the cache",
        CacheStatus::Miss => "compiled, now in the cache",
        CacheStatus::Disabled => "compiled in memory",
    };
    if args.json {
        let out = json!({
            "file": args.load.file.display().to_string(),
            "loadable": true,
            "world": info.world,
            "methods": info.declared,
            "narrowed_by": args.load.methods,
            "sees": entries.iter().map(|e| json!({
                "entry": e.entry,
                "methods": e.methods,
                "phases": e.phases.iter().map(|p| phase_name(p.0)).collect::<Vec<_>>(),
                "server_messages_only": e.phases.iter().filter(|p| p.1).map(|p| phase_name(p.0)).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "imports": info.imports.iter().map(|(name, kind)| json!({
                "name": name,
                "served": import_kind(*kind),
            })).collect::<Vec<_>>(),
            "load_us": load_time.as_micros() as u64,
            "cache": cache,
            "logs": logs_json(&logs),
        });
        println!("{out:#}");
        return Ok(0);
    }
    println!("{}: loadable", args.load.file.display());
    println!("  world    {}", info.world);
    println!("  methods() {:?}", info.declared);
    if entries.is_empty() {
        println!("           an empty list: the hook is never called");
    }
    let width = entries.iter().map(|e| e.methods.len()).max().unwrap_or(0);
    for e in &entries {
        let phases: Vec<_> = e.phases.iter().map(|p| phase_label(*p)).collect();
        println!("    {:width$}  {}", e.methods, phases.join(", "));
    }
    if let Some(narrowing) = &args.load.methods {
        println!(
            "  --methods {narrowing:?}: the hook sees a method in a phase only where both lists cover it"
        );
    }
    let idle: Vec<_> = PHASES
        .iter()
        .filter(|p| !super::test::HOST_RUNS.contains(p))
        .filter(|p| entries.iter().any(|e| e.phases.iter().any(|q| q.0 == **p)))
        .map(|p| phase_name(*p))
        .collect();
    if !idle.is_empty() {
        println!(
            "  (this release of the proxy calls no hook in the {} phase yet)",
            idle.join(" or ")
        );
    }
    println!("  imports");
    if info.imports.is_empty() {
        println!("    none");
    }
    for kind in [ImportKind::Host, ImportKind::Wasi, ImportKind::Stubbed] {
        let names: Vec<&str> = info
            .imports
            .iter()
            .filter(|(_, k)| *k == kind)
            .map(|(n, _)| n.as_str())
            .collect();
        if !names.is_empty() {
            println!("    {:7}  {}", import_kind(kind), names.join(", "));
            println!("             {}", import_note(kind));
        }
    }
    println!("  load     {} ({cache})", micros(load_time));
    if !logs.is_empty() {
        println!("  log lines while loading");
        print_logs(&logs, "    ");
    }
    Ok(0)
}
