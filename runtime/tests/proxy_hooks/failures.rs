//! Every way a hook can fail, through the proxy: the client gets a JSON-RPC
//! error with its own id naming the hook (`on_error = reject`), or the
//! message goes on as if the hook had said continue (`on_error = pass`) — on
//! a request, on a JSON answer and on an SSE answer.

use std::time::Duration;

use sluice::hooks::{HOOK_FAILED_CODE, HookSpec, OnError};

use crate::common::*;
use crate::support::{DENIED, Guest, NOT_JSON, REPLACED_REQ, body};
use crate::{answering_upstream, call, hook, json, load, proxy_with_hooks};

/// One way to fail: the hook's body, the reason the client is told, and
/// the limit that makes it fail.
struct Failure {
    hook: &'static str,
    body: String,
    reason: &'static str,
    limit: fn(&mut HookSpec),
}

fn failures() -> Vec<Failure> {
    fn none(_: &mut HookSpec) {}
    vec![
        Failure {
            hook: "trapper",
            body: body::trap(),
            reason: "trapped",
            limit: none,
        },
        Failure {
            hook: "spinner",
            body: body::spin(),
            reason: "deadline exceeded",
            limit: |s| s.deadline = Duration::from_millis(20),
        },
        Failure {
            hook: "grower",
            body: body::grow(),
            reason: "memory limit exceeded",
            limit: |s| s.max_memory_bytes = 1 << 20,
        },
        Failure {
            hook: "bad-replace",
            body: body::replace(NOT_JSON),
            reason: "invalid verdict",
            limit: none,
        },
        Failure {
            hook: "id-changer",
            body: body::replace(REPLACED_REQ),
            reason: "invalid verdict",
            limit: none,
        },
        Failure {
            hook: "bad-respond",
            body: body::respond(NOT_JSON),
            reason: "invalid verdict",
            limit: none,
        },
        Failure {
            hook: "reserved-code",
            body: body::reject(HOOK_FAILED_CODE, DENIED),
            reason: "invalid verdict",
            limit: none,
        },
    ]
}

fn failing_hook(f: &Failure, guest: Guest, on_error: OnError) -> HookSpec {
    let mut s = hook(f.hook, &guest, on_error);
    (f.limit)(&mut s);
    s
}

/// The error a client gets for a failed hook, checked whole.
fn assert_names_the_hook(v: &serde_json::Value, f: &Failure) {
    assert_eq!(v["jsonrpc"], "2.0", "{v}");
    assert_eq!(v["id"], "abc", "the client's own id: {v}");
    assert_eq!(v["error"]["code"], HOOK_FAILED_CODE, "{v}");
    assert_eq!(
        v["error"]["message"],
        format!("hook {} failed: {}", f.hook, f.reason),
        "{v}"
    );
}

#[test]
fn a_failing_request_hook_rejects_or_passes_as_configured() {
    for f in failures() {
        for on_error in [OnError::Reject, OnError::Pass] {
            let up = answering_upstream();
            let guest = Guest::new(&["tools/call"], f.body.clone());
            let proxy = proxy_with_hooks(up.addr, load(vec![failing_hook(&f, guest, on_error)]));
            let r = call(&proxy, CALL);
            assert_eq!(r.status, 200, "{}", f.hook);
            let v = json(&r);
            match on_error {
                OnError::Reject => {
                    assert_names_the_hook(&v, &f);
                    assert!(
                        up.requests.try_recv().is_err(),
                        "{}: nothing reaches the upstream",
                        f.hook
                    );
                }
                OnError::Pass => {
                    assert_eq!(v["result"]["seen"], CALL.len(), "{}: {v}", f.hook);
                    let got = up.requests.try_recv().expect("forwarded");
                    assert_eq!(got.body, CALL.as_bytes(), "{}: unchanged", f.hook);
                }
            }
            proxy.shutdown();
        }
    }
}

#[test]
fn a_failing_response_hook_on_a_json_answer() {
    let answer = format!(
        r#"{{"jsonrpc":"2.0","id":"abc","result":{{"seen":{}}}}}"#,
        CALL.len()
    );
    for f in failures() {
        for on_error in [OnError::Reject, OnError::Pass] {
            let up = answering_upstream();
            let guest = Guest::new(&["tools/call"], body::cont()).on_response(f.body.clone());
            let proxy = proxy_with_hooks(up.addr, load(vec![failing_hook(&f, guest, on_error)]));
            let r = call(&proxy, CALL);
            assert!(up.requests.try_recv().is_ok(), "the request went upstream");
            assert_eq!(r.status, 200, "{}", f.hook);
            assert!(r.complete, "{}", f.hook);
            match on_error {
                OnError::Reject => assert_names_the_hook(&json(&r), &f),
                OnError::Pass => assert_eq!(r.text(), answer, "{}: the original bytes", f.hook),
            }
            proxy.shutdown();
        }
    }
}

const PING: &str = ": ping\n\n";
const PROGRESS: &str = "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progressToken\":1,\"progress\":1}}\n\n";
const ANSWER: &str = "event: message\nid: 7\ndata: {\"jsonrpc\":\"2.0\",\"id\":\"abc\",\"result\":{\"content\":[]}}\n\n";
const AFTER: &str = "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{\"level\":\"info\",\"data\":\"done\"}}\n\n";

fn sse_upstream() -> Upstream {
    upstream(|conn, _| {
        write_sse_head(conn);
        write_chunk(conn, format!("{PING}{PROGRESS}").as_bytes());
        write_chunk(conn, format!("{ANSWER}{AFTER}").as_bytes());
        end_chunks(conn);
        true
    })
}

#[test]
fn a_failing_response_hook_on_an_sse_answer_replaces_only_the_answer_event() {
    for f in failures() {
        for on_error in [OnError::Reject, OnError::Pass] {
            let up = sse_upstream();
            let guest = Guest::new(&["tools/call"], body::cont()).on_response(f.body.clone());
            let proxy = proxy_with_hooks(up.addr, load(vec![failing_hook(&f, guest, on_error)]));
            let r = call(&proxy, CALL);
            assert_eq!(r.status, 200, "{}", f.hook);
            assert!(r.complete, "{}: the stream ends cleanly", f.hook);
            assert!(r.head.contains("text/event-stream"), "{}", f.hook);
            let text = r.text();
            match on_error {
                OnError::Reject => {
                    let before = format!("{PING}{PROGRESS}");
                    let rest = text.strip_prefix(&before).unwrap_or_else(|| {
                        panic!("{}: events before, untouched: {text:?}", f.hook)
                    });
                    let event = rest
                        .strip_suffix(AFTER)
                        .unwrap_or_else(|| panic!("{}: events after, untouched: {text:?}", f.hook));
                    let data = event
                        .strip_prefix("event: message\nid: 7\ndata: ")
                        .and_then(|e| e.strip_suffix("\n\n"))
                        .unwrap_or_else(|| {
                            panic!("{}: one whole event in place: {event:?}", f.hook)
                        });
                    let v: serde_json::Value = serde_json::from_str(data).unwrap();
                    assert_names_the_hook(&v, &f);
                }
                OnError::Pass => assert_eq!(
                    text,
                    format!("{PING}{PROGRESS}{ANSWER}{AFTER}"),
                    "{}: byte for byte",
                    f.hook
                ),
            }
            proxy.shutdown();
        }
    }
}
