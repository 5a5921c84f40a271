//! Notifications and 2025-03-26 batches through hooks.

use sluice::hooks::{HOOK_FAILED_CODE, OnError};
use sluice_core::exchange::BATCH_REFUSED;

use crate::common::*;
use crate::support::{DENIED, ECHO, Guest, body};
use crate::{answering_upstream, call, hook, json, load, proxy_with_hooks};

const NOTIFICATION: &str = r#"{"jsonrpc":"2.0","method":"notifications/roots/list_changed"}"#;

/// An upstream that accepts notifications (202) and answers requests.
fn accepting_upstream() -> Upstream {
    upstream(|conn, req| {
        if req.body.windows(5).any(|w| w == b"\"id\":") {
            json_response(conn, r#"{"jsonrpc":"2.0","id":"abc","result":{}}"#);
        } else {
            use std::io::Write;
            conn.write_all(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n")
                .unwrap();
        }
        true
    })
}

/// The transport: input the server cannot accept gets an HTTP error status,
/// whose body may be a JSON-RPC error without an id.
#[test]
fn a_refused_notification_is_a_400_and_never_forwarded() {
    let up = accepting_upstream();
    let guest = Guest::new(&["notifications/*"], body::reject(4001, DENIED));
    let proxy = proxy_with_hooks(up.addr, load(vec![hook("gate", &guest, OnError::Reject)]));
    let r = call(&proxy, NOTIFICATION);
    assert_eq!(r.status, 400);
    let v = json(&r);
    assert_eq!(v["id"], serde_json::Value::Null, "{v}");
    assert_eq!(v["error"]["code"], 4001);
    assert_eq!(v["error"]["message"], DENIED.1);
    assert!(up.requests.try_recv().is_err(), "nothing forwarded");
    proxy.shutdown();
}

#[test]
fn a_failing_notification_hook_is_a_400_naming_it_or_passes() {
    for on_error in [OnError::Reject, OnError::Pass] {
        let up = accepting_upstream();
        let guest = Guest::new(&["notifications/*"], body::trap());
        let proxy = proxy_with_hooks(up.addr, load(vec![hook("trapper", &guest, on_error)]));
        let r = call(&proxy, NOTIFICATION);
        match on_error {
            OnError::Reject => {
                assert_eq!(r.status, 400);
                let v = json(&r);
                assert_eq!(v["error"]["code"], HOOK_FAILED_CODE);
                assert_eq!(v["error"]["message"], "hook trapper failed: trapped");
                assert!(up.requests.try_recv().is_err());
            }
            OnError::Pass => {
                assert_eq!(r.status, 202, "the upstream's own answer");
                assert_eq!(
                    up.requests.try_recv().unwrap().body,
                    NOTIFICATION.as_bytes()
                );
            }
        }
        proxy.shutdown();
    }
}

#[test]
fn a_notification_a_hook_answers_is_consumed_with_a_202() {
    let up = accepting_upstream();
    let guest = Guest::new(&["notifications/*"], body::respond(ECHO));
    let proxy = proxy_with_hooks(up.addr, load(vec![hook("sink", &guest, OnError::Reject)]));
    let r = call(&proxy, NOTIFICATION);
    assert_eq!(r.status, 202);
    assert!(r.body.is_empty());
    assert!(up.requests.try_recv().is_err());
    proxy.shutdown();
}

/// A hook that refuses tools whose name ends in "b" (the byte before `"}}`).
fn refuse_b() -> Guest {
    Guest::new(
        &["tools/call"],
        body::reject_when_byte_from_end(4, b'b', 4001),
    )
}

const CALL_A: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a"}}"#;
const CALL_B: &str = r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"b"}}"#;
const LIST: &str = r#"{"jsonrpc":"2.0","id":3,"method":"tools/list"}"#;

#[test]
fn a_batch_with_one_refused_tools_call_is_answered_whole_and_not_forwarded() {
    let up = answering_upstream();
    let proxy = proxy_with_hooks(
        up.addr,
        load(vec![hook("policy", &refuse_b(), OnError::Reject)]),
    );
    let batch = format!("[{CALL_A},{NOTIFICATION},{CALL_B},{LIST}]");
    let r = call(&proxy, &batch);
    assert_eq!(r.status, 200);
    let v = json(&r);
    let answers = v.as_array().expect("an array of answers");
    let ids: Vec<_> = answers.iter().map(|a| a["id"].clone()).collect();
    assert_eq!(ids, [1, 2, 3], "one answer per request, in order");
    assert_eq!(answers[0]["error"]["code"], BATCH_REFUSED);
    assert_eq!(answers[1]["error"]["code"], 4001);
    assert_eq!(answers[1]["error"]["message"], DENIED.1);
    assert_eq!(answers[2]["error"]["code"], BATCH_REFUSED);
    assert!(
        up.requests.try_recv().is_err(),
        "no part of it went upstream"
    );

    // Without the refused call the batch goes through unchanged.
    let batch = format!("[{CALL_A},{NOTIFICATION},{LIST}]");
    let r = call(&proxy, &batch);
    assert_eq!(r.status, 200);
    assert_eq!(up.requests.try_recv().unwrap().body, batch.as_bytes());
    proxy.shutdown();
}

#[test]
fn a_failing_hook_in_a_batch() {
    for on_error in [OnError::Reject, OnError::Pass] {
        let up = answering_upstream();
        let guest = Guest::new(&["tools/call"], body::trap());
        let proxy = proxy_with_hooks(up.addr, load(vec![hook("trapper", &guest, on_error)]));
        let batch = format!("[{CALL_A},{LIST}]");
        let r = call(&proxy, &batch);
        match on_error {
            OnError::Reject => {
                let v = json(&r);
                let answers = v.as_array().expect("an array of answers");
                assert_eq!(answers.len(), 2);
                assert_eq!(answers[0]["id"], 1);
                assert_eq!(answers[0]["error"]["code"], HOOK_FAILED_CODE);
                assert_eq!(
                    answers[0]["error"]["message"],
                    "hook trapper failed: trapped"
                );
                assert_eq!(answers[1]["error"]["code"], BATCH_REFUSED);
                assert!(up.requests.try_recv().is_err());
            }
            OnError::Pass => {
                assert_eq!(up.requests.try_recv().unwrap().body, batch.as_bytes());
            }
        }
        proxy.shutdown();
    }
}

/// A body the hooks cannot read (here: `name` twice, which parsers resolve
/// differently) is refused whole: the policy hook would judge one tool and
/// the backend call another.
#[test]
fn a_tools_call_the_hooks_cannot_read_is_refused_and_never_forwarded() {
    let up = accepting_upstream();
    let guest = Guest::new(&["tools/call"], body::cont());
    let proxy = proxy_with_hooks(up.addr, load(vec![hook("policy", &guest, OnError::Reject)]));
    let r = call(
        &proxy,
        r#"{"jsonrpc":"2.0","id":"abc","method":"tools/call","params":{"name":"echo","name":"rm_rf"}}"#,
    );
    assert_eq!(r.status, 400);
    let v = json(&r);
    assert_eq!(v["error"]["code"], -32700, "{v}");
    assert!(up.requests.try_recv().is_err(), "nothing forwarded");
    proxy.shutdown();
}
