//! Cost per hooked message of the JavaScript, Python and C example hooks,
//! fresh instance per message vs a warm instance, through the whole host
//! path (instance, call, message copies, verdict checks).
//!
//! `cargo bench -p sluice --bench hooks_guests` — criterion figures, then a
//! p50/p99 table from a plain loop. The guests are built by their build
//! scripts (see runtime/tests/guests/mod.rs).

mod common;
#[path = "../tests/guests/mod.rs"]
mod guests;

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use common::{Case, print_percentiles};
use criterion::Criterion;
use guests::{Example, build, cache_dir};
use serde_json::json;
use sluice::hooks::*;
use sluice_core::exchange::HookPhase;

const WARM: InstanceMode = InstanceMode::Warm {
    pool: 4,
    recycle_after: 1_000_000,
};

/// A tools/list result of eight tools (~1.3 KiB).
fn tools_list() -> String {
    let tools: Vec<_> = (0..8)
        .map(|i| {
            json!({"name": format!("tool{i}"), "description": "Does a thing with the input",
                   "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}}})
        })
        .collect();
    json!({"jsonrpc": "2.0", "id": 1, "result": {"tools": tools, "nextCursor": "c2"}}).to_string()
}

fn add_call() -> String {
    json!({"jsonrpc": "2.0", "id": 42, "method": "tools/call",
           "params": {"name": "add", "arguments": {"a": 12, "b": 30}}})
    .to_string()
}

fn case(ex: Example, mode: InstanceMode) -> Option<Case> {
    let wasm = build(ex)?;
    let (config, phase, method, request, response) = match ex {
        Example::JsQuickJs | Example::JsStarlingMonkey => (
            r#"{"prefix":"acme_","describe":{"tool1":"Better words"}}"#,
            HookPhase::Response,
            "tools/list",
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#.to_string(),
            tools_list(),
        ),
        Example::Python => (
            r#"{"rules":{"add":{"a":{"type":"number","max":1000}},"*":{"max_string_length":10000}}}"#,
            HookPhase::Request,
            "tools/call",
            add_call(),
            String::new(),
        ),
        Example::C => (
            "",
            HookPhase::Request,
            "tools/call",
            add_call(),
            String::new(),
        ),
    };
    let mut spec = HookSpec::new(ex.name(), wasm);
    spec.config = config.into();
    spec.mode = mode;
    let host = HookHost::load_with(
        vec![spec],
        HostOptions {
            cache_dir: Some(cache_dir()),
            // Measure the guest, not a log sink.
            log: Arc::new(|_, _, _| {}),
            ..HostOptions::default()
        },
    )
    .expect("guest loads");
    let label = if mode == InstanceMode::Fresh {
        "fresh"
    } else {
        "warm"
    };
    let case = Case {
        name: format!("{} {label}", ex.name()),
        host,
        phase,
        method,
        request,
        response,
    };
    // Fail loudly if the hook does not do its job (e.g. a deadline).
    let r = case.run();
    assert!(
        r.runs
            .iter()
            .all(|run| !matches!(run.result, HookRunResult::Failed { .. })),
        "{}: {r:?}",
        case.name
    );
    Some(case)
}

fn main() {
    let cases: Vec<Case> = Example::ALL
        .into_iter()
        .flat_map(|ex| [case(ex, InstanceMode::Fresh), case(ex, WARM)])
        .flatten()
        .collect();
    let mut c = Criterion::default()
        .configure_from_args()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for case in &cases {
        c.bench_function(&case.name, |b| b.iter(|| black_box(case.run())));
    }
    c.final_summary();

    print_percentiles(&cases, "guest (loop of 2000)", 200, 2000);
}
