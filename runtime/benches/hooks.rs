//! Cost of a hooked message: a fresh pooled instance, the call, a ~1 KiB
//! message in (and out, for replacing hooks), and the verdict checks.
//!
//! `cargo bench -p sluice --bench hooks` — criterion figures, then a p50/p99
//! table from a plain loop (criterion reports means; the target is a p50).

mod common;
#[path = "../tests/fixtures/hooks/support.rs"]
mod support;

use std::hint::black_box;

use common::{Case, print_percentiles};
use criterion::Criterion;
use sluice::hooks::*;
use sluice_core::exchange::HookPhase;
use support::{Guest, body, example_spec, request_1k, rust_examples, spec};

/// A ~1 KiB tools/call result carrying one secret.
fn response_1k() -> String {
    let pad = "lorem ipsum ".repeat(75);
    format!(
        r#"{{"jsonrpc":"2.0","id":42,"result":{{"content":[{{"type":"text","text":"{pad} key=sk-proj-abcdefghijklmnopqrstuvwxyz012345"}}]}}}}"#
    )
}

fn wat(name: &'static str, on_request: String, mode: InstanceMode) -> Case {
    let mut s = spec(name, &Guest::new(&["*"], on_request).component());
    s.mode = mode;
    Case {
        name: name.into(),
        host: HookHost::load(vec![s], None).unwrap(),
        phase: HookPhase::Request,
        method: "tools/call",
        request: request_1k(),
        response: String::new(),
    }
}

fn cases() -> Vec<Case> {
    let mut cases = vec![
        wat("wat continue (1 KiB in)", body::cont(), InstanceMode::Fresh),
        wat(
            "wat echo replace (1 KiB in+out)",
            body::echo_request(),
            InstanceMode::Fresh,
        ),
        wat(
            "wat echo replace, warm",
            body::echo_request(),
            InstanceMode::Warm {
                pool: 4,
                recycle_after: 1_000_000,
            },
        ),
    ];
    if let Some(dir) = rust_examples() {
        let mut policy = example_spec(&dir, "rust_tool_policy");
        policy.config = r#"{"allow":["echo","add*"],"deny":["*delete*"]}"#.into();
        cases.push(Case {
            name: "rust tool-policy allow (1 KiB in)".into(),
            host: HookHost::load(vec![policy], None).unwrap(),
            phase: HookPhase::Request,
            method: "tools/call",
            request: request_1k(),
            response: String::new(),
        });
        let redact = example_spec(&dir, "rust_redact");
        cases.push(Case {
            name: "rust redact (1 KiB in+out)".into(),
            host: HookHost::load(vec![redact], None).unwrap(),
            phase: HookPhase::Response,
            method: "tools/call",
            request: request_1k(),
            response: response_1k(),
        });
    }
    for c in &cases {
        // Every case must do what it claims, not fail fast.
        let r = c.run();
        assert!(
            matches!(
                r.outcome,
                ChainOutcome::Continue | ChainOutcome::Replaced(_)
            ),
            "{}: {r:?}",
            c.name
        );
    }
    cases
}

fn main() {
    let cases = cases();
    let mut crit = Criterion::default().configure_from_args();
    let mut g = crit.benchmark_group("hooks");
    for c in &cases {
        g.bench_function(&c.name, |b| b.iter(|| black_box(c.run())));
    }
    g.finish();
    crit.final_summary();
    print_percentiles(&cases, "case (per message)", 1_000, 20_000);
}
