//! The hook host against hand-written WAT guests: verdicts, method
//! selection, sandbox limits, failure policy, instance modes and the cache.

#[path = "fixtures/hooks/support.rs"]
mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sluice::hooks::*;
use support::{DENIED, ECHO, Guest, NOT_JSON, REPLACED_REQ, body, request_1k, spec, temp_dir};

const CALL: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}"#;
const LIST: &str = r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#;
const RESULT: &str = r#"{"jsonrpc":"2.0","id":1,"result":{"content":[]}}"#;

fn ctx() -> HookContext {
    HookContext {
        upstream: "backend".into(),
        ..HookContext::default()
    }
}

fn host(specs: Vec<HookSpec>) -> HookHost {
    HookHost::load(specs, None).expect("hooks load")
}

fn one(methods: &[&str], on_request: String) -> HookHost {
    host(vec![spec(
        "h",
        &Guest::new(methods, on_request).component(),
    )])
}

fn failure(report: &ChainReport) -> &HookErrorKind {
    match &report.runs.last().expect("a hook ran").result {
        HookRunResult::Failed { error, .. } => &error.kind,
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[test]
fn continue_passes_unchanged() {
    let h = one(&["tools/call"], body::cont());
    let r = h.run_request(&ctx(), "tools/call", CALL);
    assert_eq!(r.outcome, ChainOutcome::Continue);
    assert_eq!(r.runs.len(), 1);
    assert_eq!(r.runs[0].result, HookRunResult::Continue);
    assert!(r.total >= r.runs[0].elapsed);
}

#[test]
fn replace_forwards_new_message() {
    let h = one(&["tools/call"], body::replace(REPLACED_REQ));
    let r = h.run_request(&ctx(), "tools/call", CALL);
    assert_eq!(r.outcome, ChainOutcome::Replaced(REPLACED_REQ.1.into()));
}

#[test]
fn reject_answers_with_error() {
    let h = one(&["tools/call"], body::reject(403, DENIED));
    let r = h.run_request(&ctx(), "tools/call", CALL);
    assert_eq!(
        r.outcome,
        ChainOutcome::Reject {
            code: 403,
            message: DENIED.1.into(),
            data: None
        }
    );
}

#[test]
fn respond_answers_with_result() {
    let h = one(&["tools/call"], body::respond(ECHO));
    let r = h.run_request(&ctx(), "tools/call", CALL);
    assert_eq!(r.outcome, ChainOutcome::Respond(ECHO.1.into()));
}

#[test]
fn declared_methods_select_messages() {
    let h = one(&["tools/call"], body::reject(403, DENIED));
    assert!(h.wants("tools/call"));
    assert!(!h.wants("tools/list"));
    let r = h.run_request(&ctx(), "tools/list", LIST);
    assert_eq!(r.outcome, ChainOutcome::Continue);
    assert!(r.runs.is_empty());
    assert_eq!(h.hooks()[0].declared, vec!["tools/call".to_string()]);
    assert_eq!(h.hooks()[0].world, "sluice:hook@0.1.0");

    let all = one(&["*"], body::cont());
    assert!(all.wants("tools/list") && all.wants("initialize"));
    let prefix = one(&["notifications/*"], body::cont());
    assert!(prefix.wants("notifications/progress"));
    assert!(!prefix.wants("tools/call"));
}

#[test]
fn operator_narrows_methods() {
    let mut s = spec(
        "h",
        &Guest::new(&["*"], body::reject(403, DENIED)).component(),
    );
    s.methods = Some(vec!["tools/call".into()]);
    let h = host(vec![s]);
    assert!(h.wants("tools/call"));
    assert!(!h.wants("tools/list"));
    assert_eq!(
        h.run_request(&ctx(), "tools/list", LIST).outcome,
        ChainOutcome::Continue
    );
    // Narrowing never widens what the hook asked for.
    let mut s = spec("h", &Guest::new(&["tools/list"], body::cont()).component());
    s.methods = Some(vec!["*".into()]);
    assert!(!host(vec![s]).wants("tools/call"));
}

#[test]
fn a_phase_suffix_limits_a_hook_to_one_phase() {
    use sluice_core::exchange::HookPhase;
    let h = host(vec![spec(
        "in",
        &Guest::new(
            &["tools/call@request", "tools/list@response"],
            body::reject(403, DENIED),
        )
        .on_response(body::reject(403, DENIED))
        .component(),
    )]);
    assert!(h.wants("tools/call") && h.wants("tools/list"));
    assert!(h.wants_in("tools/call", HookPhase::Request));
    assert!(!h.wants_in("tools/call", HookPhase::Response));
    assert!(!h.wants_in("tools/list", HookPhase::Request));
    assert!(h.wants_in("tools/list", HookPhase::Response));
    // The phase it did not ask for runs nothing, not even an instance.
    let r = h.run_response(&ctx(), "tools/call", CALL, RESULT);
    assert_eq!(r.outcome, ChainOutcome::Continue);
    assert!(r.runs.is_empty());
    assert!(matches!(
        h.run_request(&ctx(), "tools/call", CALL).outcome,
        ChainOutcome::Reject { code: 403, .. }
    ));
    assert!(h.run_request(&ctx(), "tools/list", LIST).runs.is_empty());

    // The operator narrows by phase in the same syntax, and never widens.
    let mut s = spec(
        "op",
        &Guest::new(&["*"], body::reject(403, DENIED)).component(),
    );
    s.methods = Some(vec!["tools/call@request".into()]);
    let h = host(vec![s]);
    assert!(h.wants_in("tools/call", HookPhase::Request));
    assert!(!h.wants_in("tools/call", HookPhase::Response));
    let mut s = spec(
        "op",
        &Guest::new(&["tools/call@response"], body::cont()).component(),
    );
    s.methods = Some(vec!["tools/call@request".into()]);
    let h = host(vec![s]);
    assert!(!h.wants("tools/call"), "no phase is wanted by both lists");

    let bad = spec(
        "bad",
        &Guest::new(&["tools/call@later"], body::cont()).component(),
    );
    assert!(HookHost::load(vec![bad], None).is_err());
    let bad = spec("bad", &Guest::new(&["@request"], body::cont()).component());
    assert!(HookHost::load(vec![bad], None).is_err());
}

#[test]
fn bad_method_patterns_fail_the_load() {
    let err = HookHost::load(
        vec![spec(
            "bad",
            &Guest::new(&["to*ls"], body::cont()).component(),
        )],
        None,
    )
    .err()
    .expect("load fails");
    assert!(format!("{err:#}").contains("hook bad"), "{err:#}");
    let mut s = spec("op", &Guest::new(&["*"], body::cont()).component());
    s.methods = Some(vec!["".into()]);
    assert!(HookHost::load(vec![s], None).is_err());
}

#[test]
fn a_0_1_0_hook_asking_for_a_server_to_client_phase_fails_the_load() {
    for entry in ["sampling/createMessage@server-message", "*@client-answer"] {
        let err = HookHost::load(
            vec![spec("old", &Guest::new(&[entry], body::cont()).component())],
            None,
        )
        .err()
        .expect("load fails");
        let text = format!("{err:#}");
        assert!(
            text.contains(&format!("methods(): {entry} asks for a server-to-client phase, which sluice:hook@0.1.0 hooks do not have")),
            "{text}"
        );
    }
    // Without a suffix it asks for every phase its world has.
    assert!(
        HookHost::load(
            vec![spec(
                "old",
                &Guest::new(&["ping"], body::cont()).component()
            )],
            None
        )
        .is_ok()
    );
}

#[test]
fn a_non_hook_component_fails_the_load_naming_it() {
    let empty = wit_component::ComponentEncoder::default()
        .module(&wat::parse_str("(module)").unwrap())
        .unwrap()
        .encode()
        .unwrap();
    let err = HookHost::load(vec![spec("empty", &empty)], None)
        .err()
        .expect("load fails");
    let text = format!("{err:#}");
    assert!(text.contains("hook empty"), "{text}");
    assert!(
        text.contains("implements neither sluice:hook/hook@0.2.0 nor sluice:hook/hook@0.1.0"),
        "{text}"
    );
    let err = HookHost::load(vec![spec("junk", b"\0asm junk")], None)
        .err()
        .expect("load fails");
    assert!(format!("{err:#}").contains("hook junk"));
}

#[test]
fn unknown_imports_load_and_trap_only_when_called() {
    let quiet = spec("quiet", &support::component_with_unknown_import(false));
    let h = host(vec![quiet]);
    assert_eq!(
        h.run_request(&ctx(), "tools/call", CALL).outcome,
        ChainOutcome::Continue
    );
    let loud = spec("loud", &support::component_with_unknown_import(true));
    let r = host(vec![loud]).run_request(&ctx(), "tools/call", CALL);
    assert!(matches!(failure(&r), HookErrorKind::Trap(_)), "{r:?}");
}

/// A guest built against WASI 0.2.6 (older than wasmtime-wasi's) reaches
/// the host's WASI through semver matching; only the import nobody provides
/// is stubbed. Denied randomness is the fixed 0x5a sequence and the denied
/// clock reads 0, so the guest's code is 0x5a; granted, both are real.
#[test]
fn older_wasi_imports_reach_the_host() {
    let wasm = support::component_with_old_wasi();
    let r = host(vec![spec("old-wasi", &wasm)]).run_request(&ctx(), "tools/call", CALL);
    match &r.outcome {
        ChainOutcome::Reject { code, .. } => assert_eq!(*code, 0x5a, "{r:?}"),
        other => panic!("expected the guest's rejection, got {other:?}"),
    }
    let mut granted = spec("old-wasi-granted", &wasm);
    granted.grants = Grants::parse(&["clock", "random"]).unwrap();
    let r = host(vec![granted]).run_request(&ctx(), "tools/call", CALL);
    match &r.outcome {
        // A real monotonic clock is far past 255 ns.
        ChainOutcome::Reject { code, .. } => assert!(*code > 255, "{r:?}"),
        other => panic!("expected the guest's rejection, got {other:?}"),
    }
}

#[test]
fn infinite_loop_is_stopped_by_the_deadline() {
    let mut s = spec("spin", &Guest::new(&["*"], body::spin()).component());
    s.deadline = Duration::from_millis(20);
    let h = host(vec![s]);
    let t = Instant::now();
    let r = h.run_request(&ctx(), "tools/call", CALL);
    let took = t.elapsed();
    eprintln!("a spinning hook with a 20 ms deadline stopped after {took:?}");
    assert_eq!(
        failure(&r),
        &HookErrorKind::Deadline(Duration::from_millis(20))
    );
    // Not before its deadline; how late after it depends on the machine's
    // load, so no upper bound here (a deadline that never fires hangs).
    assert!(took >= Duration::from_millis(19), "{took:?}");
    assert_eq!(
        r.outcome,
        ChainOutcome::Reject {
            code: HOOK_FAILED_CODE,
            message: "hook spin failed: deadline exceeded".into(),
            data: None
        }
    );
}

#[test]
fn memory_grow_loop_is_stopped_by_the_cap() {
    let mut s = spec("grow", &Guest::new(&["*"], body::grow()).component());
    s.max_memory_bytes = 1 << 20;
    let h = host(vec![s]);
    let r = h.run_request(&ctx(), "tools/call", CALL);
    assert_eq!(failure(&r), &HookErrorKind::MemoryLimit(1 << 20));
    assert!(matches!(
        r.outcome,
        ChainOutcome::Reject {
            code: HOOK_FAILED_CODE,
            ..
        }
    ));
}

#[test]
fn trap_is_a_hook_error() {
    let h = one(&["*"], body::trap());
    let r = h.run_request(&ctx(), "tools/call", CALL);
    assert!(matches!(failure(&r), HookErrorKind::Trap(_)), "{r:?}");
    match &r.runs[0].result {
        HookRunResult::Failed { error, passed } => {
            assert_eq!(&*error.hook, "h");
            assert!(!passed);
            assert!(error.to_string().starts_with("hook h trapped"), "{error}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn garbage_verdicts_are_hook_errors() {
    let cases = [
        body::replace(NOT_JSON),
        // A valid JSON value, but not the same message kind.
        body::replace(ECHO),
        body::respond(NOT_JSON),
        // Reserved: the proxy's own range.
        body::reject(-32010, DENIED),
        body::reject(-32050, DENIED),
        body::reject(i64::MAX, DENIED),
    ];
    for b in cases {
        let h = one(&["*"], b.clone());
        let r = h.run_request(&ctx(), "tools/call", CALL);
        assert!(
            matches!(failure(&r), HookErrorKind::InvalidVerdict(_)),
            "{b}: {r:?}"
        );
    }
    // A replacement that changes the id (REPLACED_REQ has id 1).
    let h = one(&["*"], body::replace(REPLACED_REQ));
    let r = h.run_request(
        &ctx(),
        "tools/call",
        LIST.replace("tools/list", "tools/call").as_str(),
    );
    assert!(
        matches!(failure(&r), HookErrorKind::InvalidVerdict(_)),
        "{r:?}"
    );
    // Predefined codes are fine.
    let h = one(&["*"], body::reject(-32602, DENIED));
    assert!(matches!(
        h.run_request(&ctx(), "tools/call", CALL).outcome,
        ChainOutcome::Reject { code: -32602, .. }
    ));
}

#[test]
fn on_error_pass_skips_the_hook_and_reject_stops_the_chain() {
    let mut broken = spec("broken", &Guest::new(&["*"], body::trap()).component());
    broken.on_error = OnError::Pass;
    let deny = spec(
        "deny",
        &Guest::new(&["*"], body::reject(403, DENIED)).component(),
    );
    let h = host(vec![broken, deny]);
    let r = h.run_request(&ctx(), "tools/call", CALL);
    assert!(matches!(r.outcome, ChainOutcome::Reject { code: 403, .. }));
    assert_eq!(r.runs.len(), 2);
    assert!(matches!(
        r.runs[0].result,
        HookRunResult::Failed { passed: true, .. }
    ));

    let broken = spec("broken", &Guest::new(&["*"], body::trap()).component());
    let after = spec(
        "after",
        &Guest::new(&["*"], body::respond(ECHO)).component(),
    );
    let h = host(vec![broken, after]);
    let r = h.run_request(&ctx(), "tools/call", CALL);
    assert_eq!(
        r.runs.len(),
        1,
        "the chain stops at a failing fail-closed hook"
    );
    assert_eq!(
        r.outcome,
        ChainOutcome::Reject {
            code: HOOK_FAILED_CODE,
            message: "hook broken failed: trapped".into(),
            data: None
        }
    );
}

#[test]
fn chain_feeds_replacements_forward_and_stops_on_respond() {
    let a = spec(
        "a",
        &Guest::new(&["*"], body::replace(REPLACED_REQ)).component(),
    );
    let b = spec(
        "b",
        &Guest::new(&["*"], body::respond_message()).component(),
    );
    let c = spec("c", &Guest::new(&["*"], body::trap()).component());
    let h = host(vec![a, b, c]);
    let r = h.run_request(&ctx(), "tools/call", CALL);
    assert_eq!(r.outcome, ChainOutcome::Respond(REPLACED_REQ.1.into()));
    assert_eq!(r.runs.len(), 2);
    assert_eq!(r.runs[0].result, HookRunResult::Replaced);
    assert_eq!(r.runs[1].result, HookRunResult::Responded);
}

#[test]
fn response_phase_sees_request_and_response() {
    let echo = one(&["*"], body::cont());
    let r = echo.run_response(&ctx(), "tools/call", CALL, RESULT);
    assert_eq!(r.outcome, ChainOutcome::Continue);

    let h = host(vec![spec(
        "r",
        &Guest::new(&["*"], body::cont())
            .on_response(body::echo_response())
            .component(),
    )]);
    let r = h.run_response(&ctx(), "tools/call", CALL, RESULT);
    assert_eq!(r.outcome, ChainOutcome::Replaced(RESULT.into()));

    let h = host(vec![spec(
        "r",
        &Guest::new(&["*"], body::cont())
            .on_response(body::respond_request())
            .component(),
    )]);
    let r = h.run_response(&ctx(), "tools/call", CALL, RESULT);
    assert_eq!(r.outcome, ChainOutcome::Respond(CALL.into()));

    // A request-shaped replacement is refused on a response.
    let h = host(vec![spec(
        "r",
        &Guest::new(&["*"], body::cont())
            .on_response(body::replace(REPLACED_REQ))
            .component(),
    )]);
    let r = h.run_response(&ctx(), "tools/call", CALL, RESULT);
    assert!(matches!(failure(&r), HookErrorKind::InvalidVerdict(_)));
}

#[test]
fn context_reaches_the_guest() {
    let mut s = spec(
        "h",
        &Guest::new(&["*"], body::reject_with_context()).component(),
    );
    s.headers = vec!["X-User".into(), "x-team".into()];
    let h = host(vec![s]);
    let c = HookContext {
        session_id: Some("\"s-1\"".into()),
        protocol_version: Some("2025-06-18".into()),
        upstream: "github".into(),
        headers: vec![
            ("x-user".into(), "ann".into()),
            ("x-team".into(), "blue".into()),
        ],
        identity: None,
    };
    let r = h.run_request(&c, "tools/call", CALL);
    assert_eq!(
        r.outcome,
        ChainOutcome::Reject {
            code: 1210, // request phase (0), session id, two headers, version
            message: "github".into(),
            data: None
        }
    );
    let r = h.run_request(&ctx(), "tools/call", CALL);
    assert!(matches!(r.outcome, ChainOutcome::Reject { code: 0, .. }));

    let h = one(&["*"], body::respond_session_id());
    let r = h.run_request(&c, "tools/call", CALL);
    assert_eq!(r.outcome, ChainOutcome::Respond("\"s-1\"".into()));
}

#[test]
fn each_hook_sees_only_the_headers_listed_for_it() {
    let reflect = |name: &str, headers: &[&str]| {
        let guest = Guest::new(&["*"], body::reject_with_headers(false))
            .on_response(body::reject_with_headers(true));
        let mut s = spec(name, &guest.component());
        s.headers = headers.iter().map(|h| h.to_string()).collect();
        s
    };
    let c = HookContext {
        headers: vec![
            ("authorization".into(), "Bearer t0k".into()),
            ("cookie".into(), "c=1".into()),
            ("x-tenant".into(), "acme".into()),
            ("x-tenant".into(), "beta".into()),
        ],
        ..ctx()
    };
    let seen = |h: &HookHost| match h.run_request(&c, "tools/call", CALL).outcome {
        ChainOutcome::Reject { code, message, .. } => (code, message),
        other => panic!("{other:?}"),
    };
    let h = host(vec![reflect("tenant", &["X-TENANT"])]);
    assert_eq!(seen(&h), (4002, "x-tenant=acme;x-tenant=beta;".into()));
    assert_eq!(h.header_names(), ["x-tenant"]);

    let h = host(vec![reflect("auth", &["authorization", "x-absent"])]);
    assert_eq!(seen(&h), (4001, "authorization=Bearer t0k;".into()));
    let r = h.run_response(&c, "tools/call", CALL, RESULT);
    assert!(
        matches!(&r.outcome, ChainOutcome::Reject { code: 4001, message, .. } if message == "authorization=Bearer t0k;"),
        "the response phase sees the same: {r:?}"
    );

    let h = host(vec![reflect("none", &[])]);
    assert_eq!(seen(&h), (4000, String::new()));
    assert!(h.header_names().is_empty());

    // A chain: the first hook sees its headers and passes, the second its own.
    let mut first = spec("first", &Guest::new(&["*"], body::cont()).component());
    first.headers = vec!["cookie".into()];
    let h = host(vec![first, reflect("second", &["x-tenant"])]);
    assert_eq!(seen(&h), (4002, "x-tenant=acme;x-tenant=beta;".into()));
    assert_eq!(h.header_names(), ["cookie", "x-tenant"]);
}

#[test]
fn bad_header_names_fail_the_load() {
    for (name, want) in [
        ("", "cannot be empty"),
        ("*", "no wildcard"),
        ("x tenant", "is not a header name"),
    ] {
        let mut s = spec("h", &Guest::new(&["*"], body::cont()).component());
        s.headers = vec![name.into()];
        let e = format!(
            "{:#}",
            HookHost::load(vec![s], None).err().expect("refused")
        );
        assert!(e.contains("hook h") && e.contains(want), "{name:?}: {e}");
    }
}

#[test]
fn config_and_log_imports() {
    let mut s = spec(
        "cfg",
        &Guest::new(&["*"], body::respond_config()).component(),
    );
    s.config = r#"{"allow":["echo"]}"#.into();
    let r = host(vec![s]).run_request(&ctx(), "tools/call", CALL);
    assert_eq!(
        r.outcome,
        ChainOutcome::Respond(r#"{"allow":["echo"]}"#.into())
    );

    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    let opts = HostOptions {
        log: Arc::new(move |hook, level, line| {
            sink.lock()
                .unwrap()
                .push(format!("{hook} {level:?} {line}"))
        }),
        ..HostOptions::default()
    };
    let s = spec(
        "logger",
        &Guest::new(&["*"], body::log_then_continue()).component(),
    );
    let h = HookHost::load_with(vec![s], opts).unwrap();
    assert_eq!(
        h.run_request(&ctx(), "tools/call", CALL).outcome,
        ChainOutcome::Continue
    );
    assert_eq!(
        *lines.lock().unwrap(),
        vec!["logger Info hello from wat".to_string()]
    );
}

#[test]
fn oversized_messages_are_not_given_to_hooks() {
    let opts = HostOptions {
        max_message_bytes: 64,
        ..HostOptions::default()
    };
    let s = spec(
        "small",
        &Guest::new(&["*"], body::echo_request()).component(),
    );
    let h = HookHost::load_with(vec![s], opts).unwrap();
    let big = request_1k();
    let r = h.run_request(&ctx(), "tools/call", &big);
    assert_eq!(
        failure(&r),
        &HookErrorKind::InputTooLarge {
            len: big.len(),
            limit: 64
        }
    );
}

#[test]
fn fresh_instances_share_no_state() {
    let h = one(&["*"], body::counter());
    for _ in 0..3 {
        let r = h.run_request(&ctx(), "tools/call", CALL);
        assert!(
            matches!(r.outcome, ChainOutcome::Reject { code: 1, .. }),
            "{r:?}"
        );
    }
}

fn codes(h: &HookHost, n: usize) -> Vec<i64> {
    (0..n)
        .map(
            |_| match h.run_request(&ctx(), "tools/call", CALL).outcome {
                ChainOutcome::Reject { code, .. } => code,
                other => panic!("{other:?}"),
            },
        )
        .collect()
}

#[test]
fn warm_instances_are_reused_then_recycled() {
    let mut s = spec("warm", &Guest::new(&["*"], body::counter()).component());
    s.mode = InstanceMode::Warm {
        pool: 1,
        recycle_after: 3,
    };
    let h = host(vec![s]);
    assert_eq!(codes(&h, 7), vec![1, 2, 3, 1, 2, 3, 1]);
}

#[test]
fn warm_instance_is_dropped_after_a_trap() {
    let mut s = spec(
        "warm",
        &Guest::new(&["*"], body::counter_trap_on_2()).component(),
    );
    s.mode = InstanceMode::Warm {
        pool: 2,
        recycle_after: 100,
    };
    let h = host(vec![s]);
    // 1, then the trap (fail closed), then a new instance starts over at 1.
    assert_eq!(codes(&h, 4), vec![1, HOOK_FAILED_CODE, 1, HOOK_FAILED_CODE]);
}

#[test]
fn warm_instance_is_dropped_after_a_deadline() {
    let mut s = spec("warm", &Guest::new(&["*"], body::spin()).component());
    s.mode = InstanceMode::Warm {
        pool: 1,
        recycle_after: 100,
    };
    s.deadline = Duration::from_millis(5);
    let h = host(vec![s]);
    for _ in 0..2 {
        let r = h.run_request(&ctx(), "tools/call", CALL);
        assert!(matches!(failure(&r), HookErrorKind::Deadline(_)));
    }
}

#[test]
fn invalid_warm_settings_fail_the_load() {
    let mut s = spec("w", &Guest::new(&["*"], body::cont()).component());
    s.mode = InstanceMode::Warm {
        pool: 0,
        recycle_after: 1,
    };
    assert!(HookHost::load(vec![s], None).is_err());
}

#[test]
fn second_load_hits_the_cache() {
    let cache = temp_dir("cache");
    let wasm = Guest::new(&["*"], body::reject(403, DENIED)).component();
    let s = spec("cached", &wasm);
    let first = HookHost::load(vec![s.clone()], Some(cache.clone())).unwrap();
    assert_eq!(first.hooks()[0].cache, CacheStatus::Miss);
    let second = HookHost::load(vec![s.clone()], Some(cache.clone())).unwrap();
    assert_eq!(second.hooks()[0].cache, CacheStatus::Hit);
    assert!(matches!(
        second.run_request(&ctx(), "tools/call", CALL).outcome,
        ChainOutcome::Reject { code: 403, .. }
    ));

    // A tampered artifact is never deserialized: recompiled instead.
    let file = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .unwrap();
    let mut bytes = std::fs::read(&file).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&file, bytes).unwrap();
    let third = HookHost::load(vec![s], Some(cache.clone())).unwrap();
    assert_eq!(third.hooks()[0].cache, CacheStatus::Miss);
    assert!(matches!(
        third.run_request(&ctx(), "tools/call", CALL).outcome,
        ChainOutcome::Reject { code: 403, .. }
    ));
}

#[cfg(unix)]
#[test]
fn a_cache_dir_others_can_write_is_refused() {
    use std::os::unix::fs::PermissionsExt as _;
    let cache = temp_dir("opencache");
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o777)).unwrap();
    let s = spec("c", &Guest::new(&["*"], body::cont()).component());
    let err = HookHost::load(vec![s], Some(cache)).err().expect("refused");
    assert!(format!("{err:#}").contains("writable by others"), "{err:#}");
}

#[test]
fn host_runs_from_many_threads() {
    // Wall-clock deadline: on 2 busy cores a thread may wait its turn for
    // longer than the default, so this test (about sharing, not deadlines)
    // gives it room.
    let mut s = spec("h", &Guest::new(&["*"], body::echo_request()).component());
    s.deadline = Duration::from_secs(2);
    let h = Arc::new(host(vec![s]));
    let req = request_1k();
    std::thread::scope(|s| {
        for _ in 0..4 {
            let h = h.clone();
            let req = req.clone();
            s.spawn(move || {
                for _ in 0..50 {
                    let r = h.run_request(&ctx(), "tools/call", &req);
                    assert_eq!(r.outcome, ChainOutcome::Replaced(req.clone()));
                }
            });
        }
    });
}

#[test]
fn an_audited_hook_is_heard_and_never_obeyed() {
    let audited = |name: &str, body: String| {
        let mut s = spec(name, &Guest::new(&["*"], body).component());
        s.enforcement = Enforcement::Audit;
        s
    };
    // The next hook sees the message the audited one got, not its replacement.
    let echo = spec(
        "echo",
        &Guest::new(&["*"], body::respond_message()).component(),
    );
    let h = host(vec![audited("shadow", body::replace(REPLACED_REQ)), echo]);
    let r = h.run_request(&ctx(), "tools/call", CALL);
    assert_eq!(r.outcome, ChainOutcome::Respond(CALL.into()));
    assert_eq!(r.runs[0].result, HookRunResult::Replaced);
    assert!(r.runs[0].audit && !r.runs[1].audit);

    // A refusal and a failure stop nothing, whatever `on_error` says.
    for body in [body::reject(403, DENIED), body::trap()] {
        let h = host(vec![audited("shadow", body)]);
        let r = h.run_request(&ctx(), "tools/call", CALL);
        assert_eq!(r.outcome, ChainOutcome::Continue);
        assert!(matches!(
            r.runs[0].result,
            HookRunResult::Rejected | HookRunResult::Failed { passed: true, .. }
        ));
    }
    assert_eq!(h.hooks()[0].enforcement, Enforcement::Audit);
}

#[test]
fn order_decides_the_chain_and_ties_keep_the_config_order() {
    let hook = |name: &str, order: i32, body: String| {
        let mut s = spec(name, &Guest::new(&["*"], body).component());
        s.order = order;
        s
    };
    let h = host(vec![
        hook("late", 10, body::respond(ECHO)),
        hook("first", -5, body::replace(REPLACED_REQ)),
        hook("second", 0, body::respond_message()),
        hook("third", 0, body::trap()),
    ]);
    let names: Vec<String> = h.hooks().iter().map(|i| i.name.to_string()).collect();
    assert_eq!(names, ["first", "second", "third", "late"]);
    let r = h.run_request(&ctx(), "tools/call", CALL);
    assert_eq!(r.outcome, ChainOutcome::Respond(REPLACED_REQ.1.into()));
}
