//! Hooks on bridged traffic: a WAT hook in the real host, the real proxy,
//! the scripted 2024-11-05 backend behind the legacy bridge. Requests and
//! responses, JSON and SSE client accepts, exactly as for direct upstreams.

mod common;
#[path = "fixtures/legacy_backend.rs"]
mod legacy_backend;
#[path = "fixtures/hooks/support.rs"]
mod support;

use std::sync::Arc;

use legacy_backend::*;
use serde_json::Value;
use sluice::hooks::HookHost;
use sluice::proxy::RunningProxy;
use sluice_core::legacy::Mode;
use support::{DENIED, ECHO, Guest, REPLACED_REQ, body, spec};

const SSE_ONLY: &str = "text/event-stream";
const JSON_ONLY: &str = "application/json";

fn hooked_proxy(b: &Backend, mode: Mode, guest: Guest) -> RunningProxy {
    let host = HookHost::load(vec![spec("bridge-hook", &guest.component())], None).unwrap();
    proxy_tuned(b, mode, move |_, s| {
        let plain = std::mem::replace(s, s.clone());
        *s = plain.with_hooks(Arc::new(host));
    })
}

fn posted_methods(b: &Backend) -> Vec<String> {
    b.posted
        .lock()
        .unwrap()
        .iter()
        .filter_map(|m| m["method"].as_str().map(str::to_owned))
        .collect()
}

fn call(id: &str, tool: &str, args: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"{tool}","arguments":{args}}}}}"#
    )
}

#[test]
fn a_request_hook_rejects_a_bridged_tools_call_before_the_backend_sees_it() {
    let b = backend(Opts::default());
    let p = hooked_proxy(
        &b,
        Mode::Session,
        Guest::new(&["tools/call"], body::reject(4001, DENIED)),
    );
    let sid = initialize(&p);
    for (accept, id) in [(BOTH, r#""r-1""#), (JSON_ONLY, "2"), (SSE_ONLY, r#""r-3""#)] {
        let body = call(id, "echo", r#"{"text":"x"}"#);
        let got = exchange(&p, &request("POST", &body, Some(&sid), accept));
        assert_eq!(got.status, 200, "{accept}");
        let v = got.last();
        assert_eq!(v["id"], serde_json::from_str::<Value>(id).unwrap());
        assert_eq!(v["error"]["code"], 4001);
        assert_eq!(v["error"]["message"], DENIED.1);
    }
    // Unhooked methods still reach the backend.
    let list = exchange(
        &p,
        &request(
            "POST",
            r#"{"jsonrpc":"2.0","id":5,"method":"tools/list"}"#,
            Some(&sid),
            BOTH,
        ),
    );
    assert_eq!(list.last()["result"]["tools"][0]["name"], "echo");
    assert!(
        !posted_methods(&b).iter().any(|m| m == "tools/call"),
        "no tools/call reached the backend: {:?}",
        posted_methods(&b)
    );
    p.shutdown();
}

#[test]
fn a_request_hook_rewrites_a_bridged_tools_call() {
    for mode in [Mode::Session, Mode::PerRequest] {
        let b = backend(Opts::default());
        let p = hooked_proxy(
            &b,
            mode,
            Guest::new(&["tools/call"], body::replace(REPLACED_REQ)),
        );
        let sid = (mode == Mode::Session).then(|| initialize(&p));
        for accept in [JSON_ONLY, SSE_ONLY] {
            let body = call("1", "echo", r#"{"text":"original"}"#);
            let got = exchange(&p, &request("POST", &body, sid.as_deref(), accept));
            let v = got.last();
            assert_eq!(v["id"], 1);
            // The backend got the hook's message: it knows no tool "replaced".
            assert_eq!(v["error"]["message"], "unknown tool replaced", "{mode:?}");
        }
        let posted = b.posted.lock().unwrap();
        let calls: Vec<&Value> = posted
            .iter()
            .filter(|m| m["method"] == "tools/call")
            .collect();
        assert_eq!(calls.len(), 2);
        assert!(calls.iter().all(|m| m["params"]["name"] == "replaced"));
        drop(posted);
        p.shutdown();
    }
}

#[test]
fn a_response_hook_rewrites_a_bridged_tools_list_answer() {
    let b = backend(Opts::default());
    let p = hooked_proxy(
        &b,
        Mode::Session,
        Guest::new(&["tools/list"], body::cont()).on_response(body::respond(ECHO)),
    );
    let sid = initialize(&p);
    for (accept, content_type) in [
        (JSON_ONLY, "application/json"),
        (SSE_ONLY, "text/event-stream"),
        (BOTH, "application/json"),
    ] {
        let got = exchange(
            &p,
            &request(
                "POST",
                r#"{"jsonrpc":"2.0","id":"L-7","method":"tools/list"}"#,
                Some(&sid),
                accept,
            ),
        );
        assert_eq!(got.status, 200);
        assert_eq!(got.header("content-type").as_deref(), Some(content_type));
        let v = got.last();
        assert_eq!(v["id"], "L-7");
        assert_eq!(v["result"], serde_json::json!({"echo": true}), "{accept}");
    }
    assert_eq!(
        posted_methods(&b)
            .iter()
            .filter(|m| *m == "tools/list")
            .count(),
        3,
        "the requests themselves went through"
    );
    p.shutdown();
}

#[test]
fn a_response_hook_on_a_streamed_call_lets_progress_through_and_rewrites_the_answer() {
    let b = backend(Opts::default());
    let p = hooked_proxy(
        &b,
        Mode::Session,
        Guest::new(&["tools/call"], body::cont()).on_response(body::respond(ECHO)),
    );
    let sid = initialize(&p);
    let body = r#"{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"progress","arguments":{"steps":3,"interval_ms":50},"_meta":{"progressToken":"t"}}}"#;
    let got = exchange(&p, &request("POST", body, Some(&sid), BOTH));
    assert_eq!(
        got.header("content-type").as_deref(),
        Some("text/event-stream")
    );
    assert!(got.complete);
    assert_eq!(got.events.len(), 4, "{:?}", got.events);
    for (_, e) in &got.events[..3] {
        let v: Value = serde_json::from_str(e).unwrap();
        assert_eq!(v["method"], "notifications/progress");
    }
    let last = got.last();
    assert_eq!(last["id"], 9);
    assert_eq!(last["result"], serde_json::json!({"echo": true}));
    p.shutdown();
}
