//! The strict rule for hooked answers (see `exchange::answer`): every
//! message an upstream sends in an answer that a response hook subscribed
//! to is either the one the hook judged, or something no client takes as
//! the answer. Each case here is one an attacker-minded upstream tried.

use super::*;

/// A hooked `tools/call` with the integer id 1, past its request hook.
fn call_1(config: ExchangeConfig) -> Harness {
    let mut h = Harness::new(config);
    h.client(&post(CALL_1))
        .verdict(HookVerdict::Continue)
        .connected(false);
    h
}

const CALL_1: &str =
    r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{}}}"#;
const MARKER: &str = "sk-secret-marker";

fn json_answer(body: &str) -> String {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

fn sse_event(data: &str) -> String {
    format!("event: message\ndata: {data}\n\n")
}

/// The decoded body the client got, checked to carry no marker.
fn body_without_marker(h: &Harness) -> String {
    let (_, body) = decode_response(&h.log.to_client);
    let body = String::from_utf8(body).unwrap();
    assert!(!body.contains(MARKER), "hooked content leaked: {body}");
    body
}

/// The JSON-RPC messages in an SSE body.
fn sse_messages(body: &str) -> Vec<serde_json::Value> {
    body.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| !d.is_empty())
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

/// The summary counts every body byte the client got, the error events
/// a failure put in included (what `sluice_sse_bytes_total` adds up).
fn assert_body_counted(h: &Harness) {
    let head = h.log.to_client.windows(4).position(|w| w == b"\r\n\r\n");
    let body = h.log.to_client.len() - head.expect("a head") - 4;
    assert_eq!(h.ex.summary().body_bytes, body as u64);
}

fn assert_hook_failure(v: &serde_json::Value, id: serde_json::Value) {
    assert_eq!(v["id"], id, "{v}");
    assert_eq!(v["error"]["code"], HOOK_FAILED, "{v}");
}

/// Ids a client takes as its own though they are not its text: the TS SDK
/// matches `"1"`, `1.0` and `1e0` to `1`, the Python SDKs `"1"`.
const RESPELLED: &[&str] = &[r#""1""#, "1.0", "1e0", r#""\u0031""#, "01e0", "-0"];

#[test]
fn a_json_answer_with_a_respelled_id_is_cut_not_forwarded() {
    for id in RESPELLED {
        let body = format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{{"text":"{MARKER}"}}}}"#);
        if serde_json::from_str::<serde_json::Value>(&body).is_err() {
            continue; // "01e0" is not JSON; the unreadable path covers it
        }
        let mut h = call_1(hooked_config(&["tools/call"]));
        h.upstream(json_answer(&body).as_bytes());
        assert_eq!(h.log.hooks.len(), 1, "{id}: no response hook on it");
        let v: serde_json::Value = serde_json::from_str(&body_without_marker(&h)).unwrap();
        assert_hook_failure(&v, 1.into());
        assert_eq!(h.log.finished, Some(Close::KeepAlive));
    }
}

#[test]
fn an_sse_answer_with_a_respelled_id_is_cut_not_forwarded() {
    for id in RESPELLED {
        let answer = sse_event(&format!(
            r#"{{"jsonrpc":"2.0","id":{id},"result":{{"text":"{MARKER}"}}}}"#
        ));
        let after = sse_event(&format!(
            r#"{{"jsonrpc":"2.0","method":"notifications/message","params":{{"data":"{MARKER}"}}}}"#
        ));
        let mut h = call_1(hooked_config(&["tools/call"]));
        h.upstream(SSE_HEAD.as_bytes())
            .upstream(chunk(PROGRESS).as_bytes())
            .upstream(chunk(&answer).as_bytes())
            .upstream(chunk(&after).as_bytes());
        assert_eq!(h.log.hooks.len(), 1, "{id}: no response hook on it");
        // Cut: the error stands for the answer, the stream ends, the rest
        // (even a notification) never goes out.
        assert_eq!(h.log.finished, Some(Close::KeepAlive), "{id}");
        assert_eq!(h.log.releases, vec![false], "{id}: out of step, not reused");
        let body = body_without_marker(&h);
        assert!(body.starts_with(PROGRESS), "{body}");
        let messages = sse_messages(&body);
        assert_eq!(messages.len(), 2, "{body}");
        assert_hook_failure(&messages[1], 1.into());
        let forwarded = h.ex.summary().sse_events;
        assert_eq!(forwarded, 1, "{id}: the progress, not sluice's error");
    }
}

#[test]
fn a_string_id_spelled_with_escapes_is_another_id() {
    let request = r#"{"jsonrpc":"2.0","id":"r-1","method":"tools/call","params":{"name":"echo"}}"#;
    let body = format!(r#"{{"jsonrpc":"2.0","id":"\u0072-1","result":{{"t":"{MARKER}"}}}}"#);
    let mut h = Harness::new(hooked_config(&["tools/call"]));
    h.client(&post(request))
        .verdict(HookVerdict::Continue)
        .connected(false)
        .upstream(json_answer(&body).as_bytes());
    let v: serde_json::Value = serde_json::from_str(&body_without_marker(&h)).unwrap();
    assert_hook_failure(&v, "r-1".into());
}

#[test]
fn an_answer_wrapped_in_an_array_is_cut() {
    let wrapped = format!(r#"[{{"jsonrpc":"2.0","id":1,"result":{{"t":"{MARKER}"}}}}]"#);
    let mut h = call_1(hooked_config(&["tools/call"]));
    h.upstream(json_answer(&wrapped).as_bytes());
    let v: serde_json::Value = serde_json::from_str(&body_without_marker(&h)).unwrap();
    assert_hook_failure(&v, 1.into());

    let mut h = call_1(hooked_config(&["tools/call"]));
    h.upstream(format!("{SSE_HEAD}{}0\r\n\r\n", chunk(&sse_event(&wrapped))).as_bytes());
    let messages = sse_messages(&body_without_marker(&h));
    assert_eq!(messages.len(), 1);
    assert_hook_failure(&messages[0], 1.into());
}

#[test]
fn a_second_answer_after_the_judged_one_ends_the_stream() {
    let mut h = call_1(hooked_config(&["tools/call"]));
    let first = sse_event(r#"{"jsonrpc":"2.0","id":1,"result":{}}"#);
    let second = sse_event(&format!(
        r#"{{"jsonrpc":"2.0","id":1,"result":{{"t":"{MARKER}"}}}}"#
    ));
    h.upstream(SSE_HEAD.as_bytes())
        .upstream(chunk(&first).as_bytes());
    assert_eq!(h.log.hooks.len(), 2);
    h.verdict(HookVerdict::Continue)
        .upstream(chunk(&second).as_bytes());
    let body = body_without_marker(&h);
    assert_eq!(body, first, "the judged answer, then a clean end");
    assert_eq!(h.log.finished, Some(Close::KeepAlive));
    assert_eq!(h.ex.summary().sse_events, 1);
}

#[test]
fn server_requests_and_notifications_are_not_answers() {
    let mut h = call_1(hooked_config(&["tools/call"]));
    // A server request may reuse the number: clients never take a request
    // as an answer.
    let sampling =
        sse_event(r#"{"jsonrpc":"2.0","id":1,"method":"sampling/createMessage","params":{}}"#);
    let priming = "id: 0\ndata:\n\n";
    let answer = sse_event(r#"{"jsonrpc":"2.0","id":1,"result":{}}"#);
    h.upstream(SSE_HEAD.as_bytes())
        .upstream(chunk(priming).as_bytes())
        .upstream(chunk(&sampling).as_bytes())
        .upstream(chunk(&answer).as_bytes())
        .verdict(HookVerdict::Continue)
        .upstream(b"0\r\n\r\n");
    let (_, body) = decode_response(&h.log.to_client);
    assert_eq!(body, format!("{priming}{sampling}{answer}").as_bytes());
    assert_eq!(h.log.finished, Some(Close::KeepAlive));
}

#[test]
fn an_oversized_event_fails_the_hooked_answer_closed() {
    let mut c = hooked_config(&["tools/call"]);
    c.limits.sse.max_event_bytes = 256;
    let mut h = call_1(c);
    let big = sse_event(&format!(
        r#"{{"jsonrpc":"2.0","method":"notifications/message","params":{{"data":"{}"}}}}"#,
        "x".repeat(400)
    ));
    let answer = sse_event(&format!(
        r#"{{"jsonrpc":"2.0","id":1,"result":{{"t":"{MARKER}"}}}}"#
    ));
    h.upstream(SSE_HEAD.as_bytes())
        .upstream(chunk(PROGRESS).as_bytes())
        .upstream(chunk(&big).as_bytes())
        .upstream(chunk(&answer).as_bytes());
    let body = body_without_marker(&h);
    assert!(!body.contains("xxxx"), "nothing past the last whole event");
    let messages = sse_messages(&body);
    assert_eq!(messages.len(), 2, "{body}");
    assert_hook_failure(&messages[1], 1.into());
    assert_eq!(h.log.hooks.len(), 1, "the answer never reached a hook");
    assert_eq!(h.log.finished, Some(Close::KeepAlive));
    assert_body_counted(&h);
}

#[test]
fn an_oversized_event_after_the_answer_ends_the_stream_cleanly() {
    let mut c = hooked_config(&["tools/call"]);
    c.limits.sse.max_event_bytes = 256;
    let mut h = call_1(c);
    let answer = sse_event(r#"{"jsonrpc":"2.0","id":1,"result":{}}"#);
    h.upstream(SSE_HEAD.as_bytes())
        .upstream(chunk(&answer).as_bytes())
        .verdict(HookVerdict::Continue)
        .upstream(chunk(&format!("data: {}{MARKER}", "y".repeat(400))).as_bytes());
    assert_eq!(body_without_marker(&h), answer);
    assert_eq!(h.log.finished, Some(Close::KeepAlive));
}

const BATCH: &str = r#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}},{"jsonrpc":"2.0","id":"b","method":"tools/list"}]"#;

#[test]
fn every_hooked_answer_of_a_batch_is_judged_json() {
    let mut h = Harness::new(hooked_config(&["tools/call"]));
    h.client(&post(BATCH))
        .verdict(HookVerdict::Continue)
        .connected(false);
    let answer = format!(
        r#"[{{"jsonrpc":"2.0","id":"b","result":{{"tools":[]}}}},{{"jsonrpc":"2.0","id":1,"result":{{"t":"{MARKER}"}}}}]"#
    );
    h.upstream(json_answer(&answer).as_bytes());
    assert_eq!(h.log.hooks.len(), 2, "one request hook, one response hook");
    let call = &h.log.hooks[1];
    assert_eq!(call.phase, HookPhase::Response);
    assert_eq!(call.method, "tools/call");
    assert_eq!(
        &*call.request,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}"#
    );
    assert!(call.response.as_deref().unwrap().contains(MARKER));
    assert!(h.log.to_client.is_empty(), "held for the verdict");
    h.verdict(HookVerdict::Reject {
        code: -32003,
        message: "denied".into(),
        data: None,
    });
    let v: serde_json::Value = serde_json::from_str(&body_without_marker(&h)).unwrap();
    assert_eq!(v[0]["id"], "b");
    assert_eq!(v[0]["result"]["tools"], serde_json::json!([]));
    assert_eq!(v[1]["id"], 1);
    assert_eq!(v[1]["error"]["code"], -32003);
}

#[test]
fn every_hooked_answer_of_a_batch_is_judged_sse() {
    let mut h = Harness::new(hooked_config(&["tools/call"]));
    h.client(&post(BATCH))
        .verdict(HookVerdict::Continue)
        .connected(false);
    let unhooked = sse_event(r#"{"jsonrpc":"2.0","id":"b","result":{"tools":[]}}"#);
    let hooked = sse_event(&format!(
        r#"{{"jsonrpc":"2.0","id":1,"result":{{"t":"{MARKER}"}}}}"#
    ));
    h.upstream(SSE_HEAD.as_bytes())
        .upstream(chunk(&unhooked).as_bytes())
        .upstream(chunk(&hooked).as_bytes());
    assert_eq!(h.log.hooks.len(), 2);
    h.verdict(HookVerdict::Replace(
        br#"{"jsonrpc":"2.0","id":1,"result":{"t":"redacted"}}"#.to_vec(),
    ))
    .upstream(b"0\r\n\r\n");
    let body = body_without_marker(&h);
    let messages = sse_messages(&body);
    assert_eq!(messages[0]["id"], "b");
    assert_eq!(messages[1]["result"]["t"], "redacted");
    assert_eq!(h.log.finished, Some(Close::KeepAlive));
}

#[test]
fn a_batch_answer_with_a_stranger_fails_every_owed_request() {
    let mut h = Harness::new(hooked_config(&["tools/call"]));
    h.client(&post(BATCH))
        .verdict(HookVerdict::Continue)
        .connected(false);
    let answer = format!(r#"[{{"jsonrpc":"2.0","id":"1","result":{{"t":"{MARKER}"}}}}]"#);
    h.upstream(json_answer(&answer).as_bytes());
    let v: serde_json::Value = serde_json::from_str(&body_without_marker(&h)).unwrap();
    let ids: Vec<_> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].clone())
        .collect();
    assert_eq!(ids, vec![serde_json::json!(1), serde_json::json!("b")]);
    assert!(
        v.as_array()
            .unwrap()
            .iter()
            .all(|m| m["error"]["code"] == HOOK_FAILED)
    );
}

#[test]
fn a_hooked_request_asks_for_an_unencoded_answer_and_refuses_a_coded_one() {
    let mut h = Harness::new(hooked_config(&["tools/call"]));
    let request = format!(
        "{POST_HEAD}Accept-Encoding: gzip, br\r\nContent-Length: {}\r\n\r\n{CALL_1}",
        CALL_1.len()
    );
    h.client(request.as_bytes())
        .verdict(HookVerdict::Continue)
        .connected(false);
    let up = String::from_utf8_lossy(&h.log.to_upstream).into_owned();
    assert!(up.contains("Accept-Encoding: identity\r\n"), "{up}");
    assert!(!up.contains("gzip"), "{up}");
    // An upstream that encodes anyway: refused under the client's id.
    h.upstream(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n\x1f\x8b\x08\x00\x00\r\n",
    );
    let text = h.client_text();
    assert!(text.starts_with("HTTP/1.1 502 "), "{text}");
    let (_, body) = decode_response(&h.log.to_client);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["id"], 1);
    assert!(v["error"]["message"].as_str().unwrap().contains("gzip"));
    assert_eq!(h.log.hooks.len(), 1);
}

#[test]
fn an_unhooked_request_keeps_its_accept_encoding() {
    let mut h = Harness::new(hooked_config(&["tools/list"]));
    let request = format!(
        "{POST_HEAD}Accept-Encoding: gzip\r\nContent-Length: {}\r\n\r\n{CALL_1}",
        CALL_1.len()
    );
    h.client(request.as_bytes()).connected(false);
    let up = String::from_utf8_lossy(&h.log.to_upstream).into_owned();
    assert!(up.contains("Accept-Encoding: gzip\r\n"), "{up}");
}

#[test]
fn a_coded_sse_answer_is_never_read_for_bookkeeping() {
    // Unhooked: the bytes pass, but sluice does not pretend to know event
    // boundaries in a gzip stream: a failure aborts instead of injecting.
    let mut h = Harness::new(config());
    h.client(&post(CALL)).connected(false);
    h.upstream(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n\n\n\n\n\r\n",
    )
    .upstream_end(UpstreamEnd::Error);
    assert_eq!(h.log.finished, Some(Close::Abort));
}

const UNTIL_CLOSE_SSE: &str =
    "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n";

#[test]
fn a_close_delimited_sse_answer_cut_before_the_answer_gets_an_injected_error() {
    for hooked in [false, true] {
        let mut h = if hooked {
            call_1(hooked_config(&["tools/call"]))
        } else {
            let mut h = Harness::new(config());
            h.client(&post(CALL_1)).connected(false);
            h
        };
        h.upstream(UNTIL_CLOSE_SSE.as_bytes())
            .upstream(PROGRESS.as_bytes())
            .upstream_end(UpstreamEnd::Eof);
        let (_, body) = decode_response(&h.log.to_client);
        let body = String::from_utf8(body).unwrap();
        let messages = sse_messages(&body);
        assert_eq!(messages.len(), 2, "hooked {hooked}: {body}");
        assert_eq!(messages[1]["id"], 1);
        assert_eq!(messages[1]["error"]["code"], UPSTREAM_FAILED);
        assert_body_counted(&h);
    }
}

#[test]
fn a_close_delimited_sse_answer_cut_mid_event_aborts() {
    let mut h = Harness::new(config());
    h.client(&post(CALL_1)).connected(false);
    h.upstream(UNTIL_CLOSE_SSE.as_bytes())
        .upstream(&PROGRESS.as_bytes()[..20])
        .upstream_end(UpstreamEnd::Eof);
    assert_eq!(h.log.finished, Some(Close::Abort));
    assert!(!h.log.to_client.ends_with(b"0\r\n\r\n"), "no clean end");
}

#[test]
fn a_close_delimited_sse_answer_that_is_whole_ends_cleanly() {
    let answer = sse_event(r#"{"jsonrpc":"2.0","id":1,"result":{}}"#);
    let mut h = Harness::new(config());
    h.client(&post(CALL_1)).connected(false);
    h.upstream(UNTIL_CLOSE_SSE.as_bytes())
        .upstream(answer.as_bytes())
        .upstream_end(UpstreamEnd::Eof);
    let (_, body) = decode_response(&h.log.to_client);
    assert_eq!(body, answer.as_bytes());
    assert_eq!(
        h.log.finished,
        Some(Close::KeepAlive),
        "the client's side is chunked"
    );
}
