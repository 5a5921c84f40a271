//! The hook bypasses a hostile upstream or client tried (issue 11), through
//! the real proxy: a hook on every method that rejects every answer it
//! sees, and a marker in the content the upstream wants to slip past it.
//! Whatever the trick, the marker never reaches the client.

use std::io::Write;

use sluice::hooks::{HOOK_FAILED_CODE, OnError};

use crate::common::*;
use crate::support::{DENIED, Guest, body};
use crate::{hook, json, load};

const MARKER: &str = "sk-marker-7";
const CALL_1: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}"#;

/// A hook on every method that passes requests and rejects every answer;
/// SSE events are limited to 64 KiB.
fn rejecting_proxy(up: &Upstream) -> sluice::proxy::RunningProxy {
    let guest = Guest::new(&["*"], body::cont()).on_response(body::reject(4001, DENIED));
    let host = load(vec![hook("gate", &guest, OnError::Reject)]);
    let mut settings =
        sluice::proxy::ProxySettings::single("127.0.0.1:0".parse().unwrap(), up.addr, "/mcp");
    settings.access_log = false;
    settings.exchange.limits.sse.max_event_bytes = 64 << 10;
    sluice::proxy::start(settings.with_hooks(std::sync::Arc::new(host))).expect("proxy starts")
}

fn send(proxy: &sluice::proxy::RunningProxy, body: &str) -> Response {
    let mut c = connect(proxy.local_addr());
    c.write_all(&post(body)).unwrap();
    read_response(&mut c, "POST")
}

/// An upstream answering every request with `answer` as JSON.
fn json_upstream(answer: String) -> Upstream {
    upstream(move |conn, _| {
        json_response(conn, &answer);
        true
    })
}

/// An upstream answering every request with these SSE events.
fn sse_upstream(events: Vec<String>) -> Upstream {
    upstream(move |conn, _| {
        write_sse_head(conn);
        for e in &events {
            write_chunk(conn, e.as_bytes());
        }
        end_chunks(conn);
        true
    })
}

fn event(data: &str) -> String {
    format!("event: message\ndata: {data}\n\n")
}

fn sse_messages(r: &Response) -> Vec<serde_json::Value> {
    r.text()
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| !d.is_empty())
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

fn no_marker(r: &Response) {
    assert!(
        !r.text().contains(MARKER),
        "hooked content leaked: {}",
        r.text()
    );
}

#[test]
fn answers_with_respelled_ids_never_skip_the_hook() {
    for id in [r#""1""#, "1.0", "1e0"] {
        let answer = format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{{"t":"{MARKER}"}}}}"#);
        // As JSON.
        let up = json_upstream(answer.clone());
        let proxy = rejecting_proxy(&up);
        let r = send(&proxy, CALL_1);
        no_marker(&r);
        let v = json(&r);
        assert_eq!(v["id"], 1, "{id}: the client's own id");
        assert_eq!(v["error"]["code"], HOOK_FAILED_CODE, "{id}");
        proxy.shutdown();
        // As an SSE event.
        let up = sse_upstream(vec![event(&answer)]);
        let proxy = rejecting_proxy(&up);
        let r = send(&proxy, CALL_1);
        no_marker(&r);
        assert!(r.complete, "the error completes the answer");
        let messages = sse_messages(&r);
        assert_eq!(messages.len(), 1, "{}", r.text());
        assert_eq!(messages[0]["id"], 1);
        assert_eq!(messages[0]["error"]["code"], HOOK_FAILED_CODE);
        proxy.shutdown();
    }
}

#[test]
fn an_escaped_string_id_never_skips_the_hook() {
    let answer = format!(r#"{{"jsonrpc":"2.0","id":"\u0061bc","result":{{"t":"{MARKER}"}}}}"#);
    let up = json_upstream(answer);
    let proxy = rejecting_proxy(&up);
    let r = send(&proxy, CALL);
    no_marker(&r);
    let v = json(&r);
    assert_eq!(v["id"], "abc");
    assert_eq!(v["error"]["code"], HOOK_FAILED_CODE);
    proxy.shutdown();
}

#[test]
fn an_answer_wrapped_in_an_array_never_skips_the_hook() {
    let wrapped = format!(r#"[{{"jsonrpc":"2.0","id":1,"result":{{"t":"{MARKER}"}}}}]"#);
    for sse in [false, true] {
        let up = if sse {
            sse_upstream(vec![event(&wrapped)])
        } else {
            json_upstream(wrapped.clone())
        };
        let proxy = rejecting_proxy(&up);
        let r = send(&proxy, CALL_1);
        no_marker(&r);
        let v = if sse {
            sse_messages(&r).remove(0)
        } else {
            json(&r)
        };
        assert_eq!(v["id"], 1);
        assert_eq!(v["error"]["code"], HOOK_FAILED_CODE);
        proxy.shutdown();
    }
}

#[test]
fn an_oversized_event_does_not_turn_the_hooks_off() {
    let big = event(&format!(
        r#"{{"jsonrpc":"2.0","method":"notifications/message","params":{{"data":"{}"}}}}"#,
        "x".repeat(100 << 10)
    ));
    let answer = event(&format!(
        r#"{{"jsonrpc":"2.0","id":1,"result":{{"t":"{MARKER}"}}}}"#
    ));
    let up = sse_upstream(vec![big, answer]);
    let proxy = rejecting_proxy(&up);
    let r = send(&proxy, CALL_1);
    no_marker(&r);
    assert!(!r.text().contains("xxxx"), "nothing of the oversized event");
    let messages = sse_messages(&r);
    assert_eq!(messages.len(), 1, "{}", r.text());
    assert_eq!(messages[0]["id"], 1);
    assert_eq!(messages[0]["error"]["code"], HOOK_FAILED_CODE);
    proxy.shutdown();
}

const BATCH: &str = r#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}]"#;

#[test]
fn a_one_element_batch_gets_its_answer_judged() {
    let answer = format!(r#"{{"jsonrpc":"2.0","id":1,"result":{{"t":"{MARKER}"}}}}"#);
    // JSON: the array answer, its element rejected by the hook.
    let up = json_upstream(format!("[{answer}]"));
    let proxy = rejecting_proxy(&up);
    let r = send(&proxy, BATCH);
    no_marker(&r);
    let v = json(&r);
    assert_eq!(v[0]["id"], 1, "{v}");
    assert_eq!(v[0]["error"]["code"], 4001);
    assert_eq!(v[0]["error"]["message"], DENIED.1);
    proxy.shutdown();
    // SSE: the answer as its own event.
    let up = sse_upstream(vec![event(&answer)]);
    let proxy = rejecting_proxy(&up);
    let r = send(&proxy, BATCH);
    no_marker(&r);
    let messages = sse_messages(&r);
    assert_eq!(messages[0]["id"], 1);
    assert_eq!(messages[0]["error"]["code"], 4001);
    proxy.shutdown();
}

#[test]
fn a_close_delimited_sse_answer_cut_short_is_answered_not_ended_cleanly() {
    let up = upstream(|conn, _| {
        conn.write_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n",
        )
        .unwrap();
        conn.write_all(event(r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":1,"progress":1}}"#).as_bytes())
            .unwrap();
        close(conn);
        false
    });
    let proxy = proxy_for(up.addr);
    let r = send(&proxy, CALL_1);
    assert!(r.complete);
    let messages = sse_messages(&r);
    assert_eq!(messages.len(), 2, "{}", r.text());
    assert_eq!(messages[1]["id"], 1);
    assert_eq!(
        messages[1]["error"]["code"],
        sluice_core::exchange::UPSTREAM_FAILED
    );
    proxy.shutdown();
}

#[test]
fn a_hooked_request_asks_for_identity_and_refuses_a_gzip_answer() {
    let up = upstream(|conn, _| {
        conn.write_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Encoding: gzip\r\n\
              Transfer-Encoding: chunked\r\n\r\n5\r\n\x1f\x8b\x08\x00\x00\r\n",
        )
        .unwrap();
        // Never ends: sluice must not wait for it.
        std::thread::sleep(std::time::Duration::from_secs(5));
        false
    });
    let proxy = rejecting_proxy(&up);
    let mut c = connect(proxy.local_addr());
    let request = format!(
        "POST /mcp HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nAccept-Encoding: gzip, deflate\r\n\
         Content-Length: {}\r\n\r\n{CALL_1}",
        CALL_1.len()
    );
    c.write_all(request.as_bytes()).unwrap();
    let started = std::time::Instant::now();
    let r = read_response(&mut c, "POST");
    let seen = up.requests.recv().unwrap();
    assert!(
        seen.head.contains("Accept-Encoding: identity\r\n") && !seen.head.contains("gzip"),
        "{}",
        seen.head
    );
    assert_eq!(r.status, 502);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(4),
        "not held"
    );
    let v = json(&r);
    assert_eq!(v["id"], 1);
    assert!(v["error"]["message"].as_str().unwrap().contains("gzip"));
    proxy.shutdown();
}
