//! The stdio bridge, driven by hand: a child that is a script of lines.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{Value, json};
use sluice_core::http1::Header;
use sluice_core::stdio::{Bridge, Note, Output, StdioConfig, StdioMode};
use sluice_core::upstream::{AnswerPart, Request};

fn post(session: Option<&str>, body: &str) -> Request {
    let mut headers = vec![
        Header::new("Host", "127.0.0.1"),
        Header::new("Accept", "application/json, text/event-stream"),
    ];
    if let Some(s) = session {
        headers.push(Header::new("Mcp-Session-Id", s));
    }
    Request {
        method: "POST".into(),
        target: "/mcp".into(),
        headers,
        body: Bytes::copy_from_slice(body.as_bytes()),
    }
}

fn sse_only(mut req: Request) -> Request {
    req.headers.retain(|h| !h.is("accept"));
    req.headers.push(Header::new("Accept", "text/event-stream"));
    req
}

fn resume(session: &str, after: u64) -> Request {
    let mut req = bare("GET", session);
    req.headers
        .push(Header::new("Last-Event-ID", after.to_string()));
    req
}

/// The event ids on `stream`, in order.
fn event_ids(outputs: &[Output], stream: u64) -> Vec<u64> {
    parts(outputs, stream)
        .iter()
        .filter_map(|p| match p {
            AnswerPart::IdentifiedEvent { id, .. } => Some(*id),
            _ => None,
        })
        .collect()
}

/// `req` with an `Accept` that takes neither JSON nor SSE.
fn accepts_neither(mut req: Request) -> Request {
    req.headers.retain(|h| !h.is("accept"));
    req.headers.push(Header::new("Accept", "text/html"));
    req
}

fn bare(method: &str, session: &str) -> Request {
    Request {
        method: method.into(),
        target: "/mcp".into(),
        headers: vec![
            Header::new("Host", "127.0.0.1"),
            Header::new("Accept", "text/event-stream"),
            Header::new("Mcp-Session-Id", session),
        ],
        body: Bytes::new(),
    }
}

fn init(id: u32, version: &str, client: &str) -> String {
    json!({"jsonrpc":"2.0","id":id,"method":"initialize","params":{
        "protocolVersion":version,"capabilities":{"sampling":{}},
        "clientInfo":{"name":client,"version":"1"}}})
    .to_string()
}

fn drain(bridge: &mut Bridge) -> Vec<Output> {
    std::iter::from_fn(|| bridge.poll_output()).collect()
}

/// The lines written to the child, parsed.
fn to_child(outputs: &[Output]) -> Vec<Value> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::ToChild(line) => {
                assert_eq!(line.last(), Some(&b'\n'), "one line each");
                assert_eq!(line.iter().filter(|b| **b == b'\n').count(), 1);
                Some(serde_json::from_slice(line).unwrap())
            }
            _ => None,
        })
        .collect()
}

/// What went to client `stream`, in order.
fn parts(outputs: &[Output], stream: u64) -> Vec<AnswerPart> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::ToClient { stream: s, part } if *s == stream => Some(part.clone()),
            _ => None,
        })
        .collect()
}

fn ended(outputs: &[Output], stream: u64) -> bool {
    outputs
        .iter()
        .any(|o| matches!(o, Output::EndClient { stream: s } if *s == stream))
}

/// The whole JSON answer on `stream`: status, session header, body.
fn whole(outputs: &[Output], stream: u64) -> (u16, Option<String>, Value) {
    match parts(outputs, stream).as_slice() {
        [AnswerPart::Whole { head, body }] => {
            assert!(ended(outputs, stream));
            let body = if body.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(body).unwrap()
            };
            (head.status, head.session_id.clone(), body)
        }
        other => panic!("stream {stream}: not one whole answer: {other:?}"),
    }
}

fn events(outputs: &[Output], stream: u64) -> Vec<Value> {
    parts(outputs, stream)
        .iter()
        .filter_map(|p| match p {
            AnswerPart::Event(e) | AnswerPart::IdentifiedEvent { data: e, .. } => {
                Some(serde_json::from_slice(e).unwrap())
            }
            _ => None,
        })
        .collect()
}

fn line(v: Value) -> Vec<u8> {
    let mut l = v.to_string().into_bytes();
    l.push(b'\n');
    l
}

fn config(mode: StdioMode) -> Arc<StdioConfig> {
    Arc::new(StdioConfig {
        mode,
        ..StdioConfig::default()
    })
}

/// A shared bridge with its child initialized (version `child_version`)
/// and client session "A" open (it asked for 2025-11-25).
fn shared_ready(child_version: &str) -> (Bridge, Instant) {
    let now = Instant::now();
    let mut b = Bridge::new(config(StdioMode::Shared), now);
    b.attach(
        1,
        post(None, &init(0, "2025-11-25", "client-a")),
        Some("A".into()),
        now,
    );
    assert_eq!(drain(&mut b), vec![Output::Spawn]);
    b.spawned(now);
    let out = drain(&mut b);
    let sent = to_child(&out);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["id"], "sluice-initialize");
    assert_eq!(sent[0]["params"]["protocolVersion"], "2025-11-25");
    assert_eq!(
        sent[0]["params"]["clientInfo"]["name"], "client-a",
        "the first client's"
    );
    let answer = json!({"jsonrpc":"2.0","id":"sluice-initialize","result":{
        "protocolVersion":child_version,"capabilities":{"tools":{"listChanged":true}},
        "serverInfo":{"name":"child","version":"9"}}});
    b.child_output(&line(answer), now);
    let out = drain(&mut b);
    assert_eq!(
        to_child(&out),
        vec![json!({"jsonrpc":"2.0","method":"notifications/initialized"})]
    );
    let (status, session, body) = whole(&out, 1);
    assert_eq!((status, session.as_deref()), (200, Some("A")));
    assert_eq!(body["id"], 0);
    assert_eq!(body["result"]["serverInfo"]["name"], "child");
    assert_eq!(
        body["result"]["protocolVersion"],
        child_version.min("2025-11-25")
    );
    (b, now)
}

#[test]
fn shared_one_child_initialized_once_each_client_answered_with_its_version() {
    let (mut b, now) = shared_ready("2025-06-18");
    b.attach(
        2,
        post(None, &init(7, "2025-03-26", "client-b")),
        Some("B".into()),
        now,
    );
    let out = drain(&mut b);
    assert!(
        to_child(&out).is_empty(),
        "the child is not initialized again"
    );
    let (status, session, body) = whole(&out, 2);
    assert_eq!((status, session.as_deref()), (200, Some("B")));
    assert_eq!(body["id"], 7);
    assert_eq!(body["result"]["protocolVersion"], "2025-03-26");
    assert_eq!(body["result"]["capabilities"]["tools"]["listChanged"], true);

    // Unknown versions get the child's.
    b.attach(
        3,
        post(None, &init(1, "1999-01-01", "c")),
        Some("C".into()),
        now,
    );
    let out = drain(&mut b);
    assert_eq!(whole(&out, 3).2["result"]["protocolVersion"], "2025-06-18");

    // Each client's initialized is sluice's business, not the child's.
    let note = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
    b.attach(4, post(Some("B"), note), None, now);
    let out = drain(&mut b);
    assert!(to_child(&out).is_empty());
    assert_eq!(whole(&out, 4).0, 202);
    assert_eq!(b.sessions(), 3);
}

#[test]
fn shared_same_ids_from_two_sessions_answered_to_each_byte_for_byte() {
    let (mut b, now) = shared_ready("2025-11-25");
    b.attach(
        2,
        post(None, &init(0, "2025-11-25", "b")),
        Some("B".into()),
        now,
    );
    drain(&mut b);
    let call_a = r#"{"jsonrpc":"2.0","id":1.0,"method":"tools/call","params":{"name":"slow","_meta":{"progressToken":"p"}}}"#;
    let call_b = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"slow","_meta":{"progressToken":"p"}}}"#;
    b.attach(10, post(Some("A"), call_a), None, now);
    b.attach(11, post(Some("B"), call_b), None, now);
    let out = drain(&mut b);
    // 2025-11-25 calls that ask for progress stream at once, primed.
    assert!(
        matches!(parts(&out, 11)[..], [AnswerPart::Stream(ref h), AnswerPart::Prime(1)] if h.session_id.as_deref() == Some("B"))
    );
    let sent = to_child(&out);
    assert_eq!(sent.len(), 2);
    let (ca, cb) = (sent[0]["id"].clone(), sent[1]["id"].clone());
    assert_ne!(ca, cb);
    assert_eq!(
        sent[0]["params"]["_meta"]["progressToken"], ca,
        "tokens too"
    );
    assert_eq!(sent[1]["params"]["_meta"]["progressToken"], cb);
    assert_eq!(b.in_flight(), 2);

    // Progress for B's call reaches B's stream, token as B wrote it.
    let progress = json!({"jsonrpc":"2.0","method":"notifications/progress",
        "params":{"progressToken":cb,"progress":1,"total":2}});
    b.child_output(&line(progress), now);
    let out = drain(&mut b);
    assert_eq!(events(&out, 11)[0]["params"]["progressToken"], "p");
    assert!(parts(&out, 10).is_empty());

    // Answers in the other order; A gets JSON with `1.0` as written.
    let answer_b = format!(r#"{{"jsonrpc":"2.0","id":{cb},"result":{{"content":[]}}}}"#);
    let answer_a = format!(
        r#"{{"jsonrpc":"2.0","id":{ca},"result":{{"content":[{{"type":"text","text":"a"}}]}}}}"#
    );
    b.child_output(format!("{answer_b}\n{answer_a}\n").as_bytes(), now);
    let out = drain(&mut b);
    match parts(&out, 10).as_slice() {
        [AnswerPart::IdentifiedEvent { data, .. }, AnswerPart::End] => assert_eq!(
            &data[..],
            br#"{"jsonrpc":"2.0","id":1.0,"result":{"content":[{"type":"text","text":"a"}]}}"#
        ),
        other => panic!("{other:?}"),
    }
    let b_parts = parts(&out, 11);
    assert_eq!(events(&out, 11)[0]["id"], 1);
    assert_eq!(b_parts.last(), Some(&AnswerPart::End));
    assert!(ended(&out, 10) && ended(&out, 11));
    assert_eq!(b.in_flight(), 0);
}

#[test]
fn a_server_request_goes_to_the_caller_and_its_answer_back_to_the_child() {
    let (mut b, now) = shared_ready("2025-11-25");
    let call = r#"{"jsonrpc":"2.0","id":"c1","method":"tools/call","params":{"name":"sampleLLM"}}"#;
    b.attach(10, post(Some("A"), call), None, now);
    drain(&mut b);
    let sampling =
        json!({"jsonrpc":"2.0","id":0,"method":"sampling/createMessage","params":{"messages":[]}});
    b.child_output(&line(sampling.clone()), now);
    let out = drain(&mut b);
    assert_eq!(events(&out, 10), vec![sampling], "on the call's own stream");
    // ping from the child is answered by sluice.
    b.child_output(&line(json!({"jsonrpc":"2.0","id":1,"method":"ping"})), now);
    assert_eq!(
        to_child(&drain(&mut b)),
        vec![json!({"jsonrpc":"2.0","id":1,"result":{}})]
    );
    // The client's answer goes to the child as written; a forged one does not.
    let forged = r#"{"jsonrpc":"2.0","id":5,"result":{}}"#;
    b.attach(11, post(Some("A"), forged), None, now);
    let out = drain(&mut b);
    assert!(to_child(&out).is_empty());
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::Log(Note::Dropped(_))))
    );
    let answer = r#"{"jsonrpc":"2.0","id":0,"result":{"role":"assistant","content":{"type":"text","text":"hi"}}}"#;
    b.attach(12, post(Some("A"), answer), None, now);
    let out = drain(&mut b);
    assert_eq!(whole(&out, 12).0, 202);
    assert_eq!(
        to_child(&out),
        vec![serde_json::from_str::<Value>(answer).unwrap()]
    );
}

#[test]
fn a_client_that_accepts_neither_json_nor_sse_still_gets_its_answer_as_json() {
    // Found by the stdio_bridge fuzz target: the answer was dropped (the
    // client "takes no events") and the stream left open, its request
    // forgotten, until the client gave up. JSON is the fallback, as for
    // an HTTP upstream (`inject`) and in the legacy bridge.
    let (mut b, now) = shared_ready("2025-11-25");
    let call = r#"{"jsonrpc":"2.0","id":"q","method":"tools/call","params":{"name":"echo"}}"#;
    b.attach(10, accepts_neither(post(Some("A"), call)), None, now);
    let child_id = to_child(&drain(&mut b))[0]["id"].clone();
    // Progress has nowhere to go: it is dropped, the call stays open.
    let progress = json!({"jsonrpc":"2.0","method":"notifications/progress",
        "params":{"progressToken":child_id,"progress":1}});
    b.child_output(&line(progress), now);
    assert!(parts(&drain(&mut b), 10).is_empty());
    let answer = json!({"jsonrpc":"2.0","id":child_id,"result":{"content":[]}});
    b.child_output(&line(answer), now);
    let (status, session, body) = whole(&drain(&mut b), 10);
    assert_eq!((status, session.as_deref()), (200, Some("A")));
    assert_eq!(body["id"], "q");
    assert_eq!(b.in_flight(), 0);

    // A shared child's initialize, answered by sluice itself, too.
    let req = accepts_neither(post(None, &init(4, "2025-06-18", "b")));
    b.attach(11, req, Some("B".into()), now);
    let (status, session, body) = whole(&drain(&mut b), 11);
    assert_eq!((status, session.as_deref()), (200, Some("B")));
    assert_eq!(body["id"], 4);
    assert_eq!(body["result"]["protocolVersion"], "2025-06-18");
}

#[test]
fn shared_the_childs_initialize_carries_no_token_a_client_request_can_get() {
    // Found reading the bridge, replayed by the stdio_bridge fuzz seed
    // shared-init-progress-token: sluice's own initialize took the first
    // client's params as written, `_meta.progressToken` included.
    // Each client request goes to the child with its child id as its
    // token, so progress the child sent on initialize's token reached the
    // request, in any session, that got that number.
    let now = Instant::now();
    let mut b = Bridge::new(config(StdioMode::Shared), now);
    let init_a = json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
        "protocolVersion":"2025-11-25","capabilities":{},
        "clientInfo":{"name":"a","version":"1"},"_meta":{"progressToken":1}}});
    b.attach(1, post(None, &init_a.to_string()), Some("A".into()), now);
    drain(&mut b);
    b.spawned(now);
    let sent = to_child(&drain(&mut b));
    assert_eq!(
        sent[0]["params"]["_meta"]["progressToken"], "sluice-initialize",
        "a token no client request is given"
    );
    assert_eq!(sent[0]["params"]["clientInfo"]["name"], "a");
    let answer = json!({"jsonrpc":"2.0","id":"sluice-initialize","result":{
        "protocolVersion":"2025-11-25","capabilities":{},"serverInfo":{"name":"c","version":"1"}}});
    b.child_output(&line(answer), now);
    drain(&mut b);

    // B's call goes out as child id 1, with token 1.
    b.attach(
        2,
        post(None, &init(0, "2025-11-25", "b")),
        Some("B".into()),
        now,
    );
    drain(&mut b);
    let call = r#"{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"slow","_meta":{"progressToken":"b"}}}"#;
    b.attach(10, post(Some("B"), call), None, now);
    let sent = to_child(&drain(&mut b));
    assert_eq!(sent[0]["params"]["_meta"]["progressToken"], 1);
    // Progress on initialize goes to nobody.
    let progress = json!({"jsonrpc":"2.0","method":"notifications/progress",
        "params":{"progressToken":"sluice-initialize","progress":1}});
    b.child_output(&line(progress), now);
    assert!(parts(&drain(&mut b), 10).is_empty());
}

#[test]
fn broadcasts_reach_every_get_stream_and_a_second_get_is_refused() {
    let (mut b, now) = shared_ready("2025-11-25");
    b.attach(
        2,
        post(None, &init(0, "2025-11-25", "b")),
        Some("B".into()),
        now,
    );
    drain(&mut b);
    b.attach(20, bare("GET", "A"), None, now);
    b.attach(21, bare("GET", "B"), None, now);
    b.attach(22, bare("GET", "B"), None, now);
    let out = drain(&mut b);
    assert!(matches!(parts(&out, 20)[0], AnswerPart::Stream(_)));
    assert_eq!(whole(&out, 22).0, 409);
    let changed = json!({"jsonrpc":"2.0","method":"notifications/tools/list_changed"});
    b.child_output(&line(changed.clone()), now);
    let out = drain(&mut b);
    assert_eq!(events(&out, 20), vec![changed.clone()]);
    assert_eq!(events(&out, 21), vec![changed]);
}

#[test]
fn a_client_that_leaves_or_deletes_mid_call_cancels_it_on_the_child() {
    let (mut b, now) = shared_ready("2025-11-25");
    let call = |id: u32| {
        format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"slow"}}}}"#)
    };
    b.attach(10, post(Some("A"), &call(1)), None, now);
    let child_id = to_child(&drain(&mut b))[0]["id"].clone();
    b.client_gone(10, now);
    let sent = to_child(&drain(&mut b));
    assert_eq!(sent[0]["method"], "notifications/cancelled");
    assert_eq!(sent[0]["params"]["requestId"], child_id);
    // A late answer goes nowhere.
    b.child_output(
        &line(json!({"jsonrpc":"2.0","id":child_id,"result":{}})),
        now,
    );
    assert!(matches!(
        drain(&mut b).as_slice(),
        [Output::Log(Note::Dropped(_))]
    ));

    // The client's own notifications/cancelled names its id; the child sees its own.
    b.attach(11, post(Some("A"), &call(2)), None, now);
    let child_id = to_child(&drain(&mut b))[0]["id"].clone();
    let cancel = r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":2,"reason":"user"}}"#;
    b.attach(12, post(Some("A"), cancel), None, now);
    let out = drain(&mut b);
    assert_eq!(
        to_child(&out)[0]["params"],
        json!({"requestId":child_id,"reason":"user"})
    );
    assert_eq!(whole(&out, 12).0, 202);
    assert!(ended(&out, 11));

    // DELETE mid-call: cancelled on the child, the call answered with an error.
    b.attach(13, post(Some("A"), &call(3)), None, now);
    let child_id = to_child(&drain(&mut b))[0]["id"].clone();
    b.attach(14, bare("DELETE", "A"), None, now);
    let out = drain(&mut b);
    assert_eq!(to_child(&out)[0]["params"]["requestId"], child_id);
    let (status, _, body) = whole(&out, 13);
    assert_eq!((status, &body["id"]), (404, &json!(3)));
    assert_eq!(whole(&out, 14).0, 200);
    assert!(!b.has_session("A"));
    b.attach(15, post(Some("A"), &call(4)), None, now);
    assert_eq!(whole(&drain(&mut b), 15).0, 404, "the session is gone");
}

#[test]
fn a_child_that_dies_mid_call_fails_the_call_with_its_id_and_restarts_with_backoff() {
    let (mut b, now) = shared_ready("2025-11-25");
    let call = r#"{"jsonrpc":"2.0","id":"x","method":"tools/call","params":{"name":"crash"}}"#;
    b.attach(10, post(Some("A"), call), None, now);
    drain(&mut b);
    b.child_exited("killed by signal 11 (SIGSEGV)", now);
    let out = drain(&mut b);
    let (status, _, body) = whole(&out, 10);
    assert_eq!(status, 502);
    assert_eq!(body["id"], "x");
    assert_eq!(body["error"]["code"], -32000);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("killed by signal 11 (SIGSEGV)")
    );
    assert!(!out.contains(&Output::Spawn), "no restart without demand");

    // The session survives; the next request waits for the backoff, then a new child.
    b.attach(11, post(Some("A"), call), None, now);
    assert!(drain(&mut b).is_empty());
    let at = b.poll_timeout().expect("a restart is due");
    assert!(at > now);
    b.handle_timeout(at);
    assert_eq!(drain(&mut b), vec![Output::Spawn]);
    b.spawned(at);
    let sent = to_child(&drain(&mut b));
    assert_eq!(sent[0]["method"], "initialize", "initialized again");
    let answer = json!({"jsonrpc":"2.0","id":"sluice-initialize","result":{"protocolVersion":"2025-11-25","capabilities":{},"serverInfo":{"name":"child","version":"9"}}});
    b.child_output(&line(answer), at);
    let sent = to_child(&drain(&mut b));
    assert_eq!(sent[0]["method"], "notifications/initialized");
    assert_eq!(sent[1]["method"], "tools/call", "the waiting call goes out");

    // Failing again right away doubles the wait.
    b.child_exited("exited with status 1", at);
    drain(&mut b);
    b.attach(12, post(Some("A"), call), None, at);
    let second = b.poll_timeout().unwrap();
    assert!(
        second - at > at - now,
        "{:?} then {:?}",
        at - now,
        second - at
    );
}

#[test]
fn a_child_that_never_answers_initialize_times_out_with_504() {
    let now = Instant::now();
    let mut b = Bridge::new(config(StdioMode::Shared), now);
    b.attach(
        1,
        post(None, &init(3, "2025-06-18", "a")),
        Some("A".into()),
        now,
    );
    drain(&mut b);
    b.spawned(now);
    drain(&mut b);
    b.child_output(b"Starting server...\nstill starting\n", now);
    let out = drain(&mut b);
    assert_eq!(
        out,
        vec![Output::Log(Note::Noise("Starting server...".into()))],
        "once per burst"
    );
    let deadline = b.poll_timeout().unwrap();
    b.handle_timeout(deadline);
    let out = drain(&mut b);
    assert_eq!(out[0], Output::Shutdown);
    let (status, _, body) = whole(&out, 1);
    assert_eq!(
        (status, &body["id"], &body["error"]["code"]),
        (504, &json!(3), &json!(-32001))
    );
    assert_eq!(b.noise_lines(), 2);
}

#[test]
fn per_session_initialize_goes_straight_through_and_delete_ends_the_child() {
    let now = Instant::now();
    let mut b = Bridge::new(config(StdioMode::PerSession), now);
    let req = sse_only(post(None, &init(1, "2025-03-26", "a")));
    b.attach(1, req, Some("S".into()), now);
    assert_eq!(drain(&mut b), vec![Output::Spawn]);
    b.spawned(now);
    let sent = to_child(&drain(&mut b));
    assert_eq!(
        sent[0]["params"]["protocolVersion"], "2025-03-26",
        "as the client sent it"
    );
    let child_id = sent[0]["id"].clone();
    let answer = json!({"jsonrpc":"2.0","id":child_id,"result":{"protocolVersion":"2025-03-26","capabilities":{},"serverInfo":{"name":"c","version":"1"}}});
    b.child_output(&line(answer), now);
    let out = drain(&mut b);
    assert!(
        to_child(&out).is_empty(),
        "the client sends its own initialized"
    );
    assert_eq!(
        events(&out, 1)[0]["id"],
        1,
        "as SSE: the client takes only events"
    );
    let note = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
    b.attach(2, post(Some("S"), note), None, now);
    assert_eq!(
        to_child(&drain(&mut b))[0]["method"],
        "notifications/initialized"
    );
    b.attach(3, bare("DELETE", "S"), None, now);
    let out = drain(&mut b);
    assert_eq!(whole(&out, 3).0, 200);
    assert!(out.contains(&Output::Shutdown));
    assert_eq!(out.last(), Some(&Output::Closed { error: None }));
    assert!(b.is_closed());
}

#[test]
fn per_session_child_exit_ends_the_session_with_the_reason() {
    let now = Instant::now();
    let mut b = Bridge::new(config(StdioMode::PerSession), now);
    b.attach(
        1,
        post(None, &init(1, "2025-06-18", "a")),
        Some("S".into()),
        now,
    );
    drain(&mut b);
    b.spawned(now);
    drain(&mut b);
    b.child_exited("exited with status 3", now);
    let out = drain(&mut b);
    let (status, _, body) = whole(&out, 1);
    assert_eq!(status, 502);
    assert_eq!(body["id"], 1);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .ends_with("exited with status 3")
    );
    assert!(!out.contains(&Output::Shutdown), "it is gone already");
    assert!(matches!(
        out.last(),
        Some(Output::Closed { error: Some(_) })
    ));
}

#[test]
fn idle_sessions_are_reaped() {
    let now = Instant::now();
    let mut b = Bridge::new(
        Arc::new(StdioConfig {
            session_idle: Some(Duration::from_secs(60)),
            ..StdioConfig::default()
        }),
        now,
    );
    b.attach(
        1,
        post(None, &init(1, "2025-06-18", "a")),
        Some("A".into()),
        now,
    );
    drain(&mut b);
    b.spawned(now);
    drain(&mut b);
    let answer = json!({"jsonrpc":"2.0","id":"sluice-initialize","result":{"protocolVersion":"2025-06-18","capabilities":{},"serverInfo":{"name":"c","version":"1"}}});
    b.child_output(&line(answer), now);
    drain(&mut b);
    let due = b.poll_timeout().unwrap();
    assert_eq!(due, now + Duration::from_secs(60));
    b.handle_timeout(due);
    assert!(!b.has_session("A"));
}

#[test]
fn a_shared_bridge_refuses_sessions_past_its_limit() {
    let now = Instant::now();
    let mut b = Bridge::new(
        Arc::new(StdioConfig {
            max_sessions: 1,
            ..StdioConfig::default()
        }),
        now,
    );
    b.attach(
        1,
        post(None, &init(1, "2025-06-18", "a")),
        Some("A".into()),
        now,
    );
    drain(&mut b);
    b.attach(
        2,
        post(None, &init(2, "2025-06-18", "b")),
        Some("B".into()),
        now,
    );
    let out = drain(&mut b);
    let (status, session, body) = whole(&out, 2);
    assert_eq!((status, session), (503, None));
    assert_eq!(body["id"], 2);
    assert!(!b.has_session("B"));
}

/// Starts a streamed call (progress token "p") on stream 10 of session A
/// and lets the child send one progress; returns the call's child id.
fn streamed_call(b: &mut Bridge, now: Instant) -> Value {
    let call = r#"{"jsonrpc":"2.0","id":"c","method":"tools/call","params":{"name":"slow","_meta":{"progressToken":"p"}}}"#;
    b.attach(10, post(Some("A"), call), None, now);
    let out = drain(b);
    assert_eq!(parts(&out, 10)[1], AnswerPart::Prime(1), "primed at once");
    let child_id = to_child(&out)[0]["id"].clone();
    b.child_output(&line(progress(&child_id, 1)), now);
    let out = drain(b);
    assert_eq!(event_ids(&out, 10), vec![2], "events carry ids");
    child_id
}

fn progress(token: &Value, n: u32) -> Value {
    json!({"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":token,"progress":n}})
}

#[test]
fn a_dropped_stream_is_resumed_with_last_event_id_and_gets_the_rest_of_its_answer() {
    let (mut b, now) = shared_ready("2025-11-25");
    let child_id = streamed_call(&mut b, now);
    // The client drops the stream: the call stays with the child.
    b.client_gone(10, now);
    assert!(to_child(&drain(&mut b)).is_empty(), "not cancelled");
    b.child_output(&line(progress(&child_id, 2)), now);
    assert!(
        drain(&mut b).is_empty(),
        "kept for the resumption, sent nowhere"
    );
    // It comes back for what followed event 2.
    b.attach(11, resume("A", 2), None, now);
    let out = drain(&mut b);
    assert!(matches!(parts(&out, 11)[0], AnswerPart::Stream(_)));
    assert_eq!(event_ids(&out, 11), vec![3]);
    assert_eq!(events(&out, 11)[0]["params"]["progress"], 2);
    assert_eq!(events(&out, 11)[0]["params"]["progressToken"], "p");
    assert!(!ended(&out, 11));
    // The answer reaches the resumed stream, which then ends.
    b.child_output(
        &line(json!({"jsonrpc":"2.0","id":child_id,"result":{}})),
        now,
    );
    let out = drain(&mut b);
    assert_eq!(events(&out, 11)[0]["id"], "c");
    assert_eq!(parts(&out, 11).last(), Some(&AnswerPart::End));
    assert!(ended(&out, 11));
    assert!(parts(&out, 10).is_empty());
}

#[test]
fn a_stream_resumed_while_its_old_connection_still_looks_open_gets_the_rest_of_its_answer() {
    // Behind a proxy that keeps the upstream connection (HAProxy), sluice
    // has not seen the client leave when it comes back with Last-Event-ID.
    let (mut b, now) = shared_ready("2025-11-25");
    let child_id = streamed_call(&mut b, now);
    b.child_output(&line(progress(&child_id, 2)), now);
    drain(&mut b);
    b.attach(11, resume("A", 2), None, now);
    let out = drain(&mut b);
    assert_eq!(event_ids(&out, 11), vec![3]);
    assert!(ended(&out, 10), "the old stream gets no more");
    // Its exchange ends, and says so: the resumption must hold.
    b.client_gone(10, now);
    assert!(to_child(&drain(&mut b)).is_empty(), "not cancelled");
    b.child_output(&line(progress(&child_id, 3)), now);
    b.child_output(
        &line(json!({"jsonrpc":"2.0","id":child_id,"result":{}})),
        now,
    );
    let out = drain(&mut b);
    let got = events(&out, 11);
    assert_eq!(got[0]["params"]["progress"], 3, "{got:?}");
    assert_eq!(got[1]["id"], "c");
    assert!(ended(&out, 11));
}

#[test]
fn a_stream_resumed_after_its_answer_gets_the_answer_from_the_window() {
    let (mut b, now) = shared_ready("2025-11-25");
    let child_id = streamed_call(&mut b, now);
    b.client_gone(10, now);
    b.child_output(
        &line(json!({"jsonrpc":"2.0","id":child_id,"result":{"x":1}})),
        now,
    );
    drain(&mut b);
    b.attach(11, resume("A", 2), None, now);
    let out = drain(&mut b);
    assert_eq!(events(&out, 11)[0]["result"]["x"], 1);
    assert!(ended(&out, 11));
    // Another session cannot replay A's events.
    b.attach(
        2,
        post(None, &init(0, "2025-11-25", "b")),
        Some("B".into()),
        now,
    );
    drain(&mut b);
    b.attach(12, resume("B", 1), None, now);
    let out = drain(&mut b);
    assert!(
        events(&out, 12).is_empty(),
        "B's GET stream opens with nothing of A's"
    );
}

#[test]
fn a_dropped_stream_nobody_resumes_is_cancelled_after_the_grace_period() {
    let (mut b, now) = shared_ready("2025-11-25");
    let child_id = streamed_call(&mut b, now);
    b.client_gone(10, now);
    drain(&mut b);
    let due = b.poll_timeout().expect("the grace period's end");
    assert_eq!(due, now + sluice_core::stdio::RESUME_GRACE);
    b.handle_timeout(due);
    let sent = to_child(&drain(&mut b));
    assert_eq!(sent[0]["method"], "notifications/cancelled");
    assert_eq!(sent[0]["params"]["requestId"], child_id);
    assert_eq!(b.in_flight(), 0);
}

#[test]
fn a_get_stream_resumed_replays_what_it_missed_and_stays_the_sessions_get() {
    let (mut b, now) = shared_ready("2025-11-25");
    b.attach(20, bare("GET", "A"), None, now);
    let note = |n: u32| json!({"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":n}});
    b.child_output(&line(note(1)), now);
    b.child_output(&line(note(2)), now);
    let out = drain(&mut b);
    let ids = event_ids(&out, 20);
    assert_eq!(ids.len(), 2);
    b.client_gone(20, now);
    b.attach(21, resume("A", ids[0]), None, now);
    let out = drain(&mut b);
    assert_eq!(events(&out, 21), vec![note(2)]);
    b.child_output(&line(note(3)), now);
    assert_eq!(
        events(&drain(&mut b), 21),
        vec![note(3)],
        "the new GET stream"
    );
}

#[test]
fn a_server_request_while_two_sessions_have_calls_is_refused_not_guessed() {
    let (mut b, now) = shared_ready("2025-11-25");
    b.attach(
        2,
        post(None, &init(0, "2025-11-25", "b")),
        Some("B".into()),
        now,
    );
    drain(&mut b);
    let call = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x"}}"#;
    b.attach(10, post(Some("A"), call), None, now);
    b.attach(11, post(Some("B"), call), None, now);
    drain(&mut b);
    let sampling = json!({"jsonrpc":"2.0","id":"s1","method":"sampling/createMessage","params":{}});
    b.child_output(&line(sampling), now);
    let out = drain(&mut b);
    assert!(
        parts(&out, 10).is_empty() && parts(&out, 11).is_empty(),
        "no session gets it"
    );
    let sent = to_child(&out);
    assert_eq!(sent[0]["id"], "s1");
    assert_eq!(sent[0]["error"]["code"], -32603);
    assert!(
        sent[0]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("per-session")
    );
}

#[test]
fn a_log_line_during_one_sessions_call_is_that_sessions_alone() {
    let (mut b, now) = shared_ready("2025-11-25");
    b.attach(
        2,
        post(None, &init(0, "2025-11-25", "b")),
        Some("B".into()),
        now,
    );
    drain(&mut b);
    b.attach(20, bare("GET", "A"), None, now);
    b.attach(21, bare("GET", "B"), None, now);
    drain(&mut b);
    let call = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x"}}"#;
    b.attach(10, post(Some("A"), call), None, now);
    drain(&mut b);
    let log = json!({"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"a's secret"}});
    b.child_output(&line(log.clone()), now);
    let out = drain(&mut b);
    assert_eq!(events(&out, 10), vec![log.clone()], "on A's call stream");
    assert!(parts(&out, 21).is_empty(), "never on B's");
    // With no call in flight, a log line is news for everyone.
    let child_id = 1;
    b.child_output(
        &line(json!({"jsonrpc":"2.0","id":child_id,"result":{}})),
        now,
    );
    drain(&mut b);
    b.child_output(&line(log.clone()), now);
    let out = drain(&mut b);
    assert_eq!(events(&out, 20), vec![log.clone()]);
    assert_eq!(events(&out, 21), vec![log]);
}

#[test]
fn a_shared_child_is_told_every_routed_capability_and_each_session_gets_only_what_it_declared() {
    let now = Instant::now();
    let mut b = Bridge::new(config(StdioMode::Shared), now);
    let bare_init = json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
        "protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"plain","version":"1"}}});
    b.attach(1, post(None, &bare_init.to_string()), Some("A".into()), now);
    drain(&mut b);
    b.spawned(now);
    let sent = to_child(&drain(&mut b));
    let caps = &sent[0]["params"]["capabilities"];
    for cap in ["sampling", "elicitation", "roots"] {
        assert!(caps.get(cap).is_some(), "{cap} in {caps}");
    }
    let answer = json!({"jsonrpc":"2.0","id":"sluice-initialize","result":{"protocolVersion":"2025-11-25","capabilities":{},"serverInfo":{"name":"c","version":"1"}}});
    b.child_output(&line(answer), now);
    drain(&mut b);
    // A declared nothing: a sampling request for its call is refused.
    let call = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x"}}"#;
    b.attach(10, post(Some("A"), call), None, now);
    drain(&mut b);
    let sampling = json!({"jsonrpc":"2.0","id":"s1","method":"sampling/createMessage","params":{}});
    b.child_output(&line(sampling), now);
    let out = drain(&mut b);
    assert!(parts(&out, 10).is_empty());
    let sent = to_child(&out);
    assert_eq!(sent[0]["error"]["code"], -32601);
    assert!(
        sent[0]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("sampling")
    );
}

#[test]
fn a_request_right_after_initialize_waits_for_the_sessions_get_stream() {
    let (mut b, now) = shared_ready("2025-11-25");
    // Client A declared sampling (see `init`); nothing of it is open yet.
    let ask = json!({"jsonrpc":"2.0","id":7,"method":"sampling/createMessage","params":{}});
    b.child_output(&line(ask.clone()), now);
    let out = drain(&mut b);
    assert!(to_child(&out).is_empty(), "held, not refused");
    b.attach(20, bare("GET", "A"), None, now);
    let out = drain(&mut b);
    assert_eq!(events(&out, 20), vec![ask]);
    let answer = r#"{"jsonrpc":"2.0","id":7,"result":{"role":"assistant","content":{"type":"text","text":"ok"}}}"#;
    b.attach(21, post(Some("A"), answer), None, now);
    assert_eq!(to_child(&drain(&mut b))[0]["id"], 7);
}

// ---- 2026-07-28: stateless requests at a shared child ----------------

/// A 2026-07-28 POST: the envelope in `_meta`, its headers mirroring it.
fn modern(id: u32, method: &str, params: Value, extra_meta: Value) -> Request {
    let mut params = params;
    let mut meta = params.get("_meta").cloned().unwrap_or_else(|| json!({}));
    meta["io.modelcontextprotocol/protocolVersion"] = json!("2026-07-28");
    meta["io.modelcontextprotocol/clientCapabilities"] = json!({});
    for (k, v) in extra_meta.as_object().cloned().unwrap_or_default() {
        meta[k] = v;
    }
    params["_meta"] = meta;
    let name = params
        .get("name")
        .or_else(|| params.get("uri"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let body = json!({"jsonrpc":"2.0","id":id,"method":method,"params":params}).to_string();
    let mut req = post(None, &body);
    req.headers
        .push(Header::new("MCP-Protocol-Version", "2026-07-28"));
    req.headers.push(Header::new("Mcp-Method", method));
    if let Some(name) = name {
        req.headers.push(Header::new("Mcp-Name", name));
    }
    req
}

/// The child's id for the one request sent to it in `out`.
fn child_call(out: &[Output]) -> Value {
    let sent = to_child(out);
    assert_eq!(sent.len(), 1, "{sent:?}");
    sent[0].clone()
}

#[test]
fn a_stateless_request_shares_the_child_and_its_answer_is_completed_for_its_era() {
    let (mut b, now) = shared_ready("2025-06-18");
    let dispatch = sluice_core::stdio::dispatch(
        &modern(5, "tools/list", json!({}), json!({})),
        &Default::default(),
    );
    assert_eq!(dispatch, sluice_core::stdio::Dispatch::Stateless);
    b.attach_stateless(2, modern(5, "tools/list", json!({}), json!({})), now);
    let sent = child_call(&drain(&mut b));
    assert_eq!(sent["method"], "tools/list");
    assert_ne!(sent["id"], 5, "a child id of its own");
    b.child_output(
        &line(json!({"jsonrpc":"2.0","id":sent["id"],"result":{"tools":[{"name":"echo"}]}})),
        now,
    );
    let out = drain(&mut b);
    let (status, session, body) = whole(&out, 2);
    assert_eq!((status, session), (200, None), "no session on this era");
    assert_eq!(body["id"], 5);
    assert_eq!(body["result"]["tools"][0]["name"], "echo");
    assert_eq!(body["result"]["resultType"], "complete");
    assert_eq!(body["result"]["ttlMs"], 0);
    assert_eq!(body["result"]["cacheScope"], "private");
    assert_eq!(b.sessions(), 1, "only A's session is kept");

    // A call's result says what it is, and nothing about caching.
    b.attach_stateless(
        3,
        modern(6, "tools/call", json!({"name":"echo"}), json!({})),
        now,
    );
    let sent = child_call(&drain(&mut b));
    b.child_output(
        &line(json!({"jsonrpc":"2.0","id":sent["id"],"error":{"code":-32602,"message":"bad"}})),
        now,
    );
    let (status, _, body) = whole(&drain(&mut b), 3);
    assert_eq!(status, 400, "the era's status for -32602");
    assert_eq!(body["error"]["message"], "bad");
}

#[test]
fn discover_is_answered_from_the_childs_initialize_and_removed_methods_are_404() {
    let (mut b, now) = shared_ready("2025-06-18");
    b.attach_stateless(2, modern(1, "server/discover", json!({}), json!({})), now);
    let out = drain(&mut b);
    assert!(to_child(&out).is_empty(), "the child is not asked");
    let (status, session, body) = whole(&out, 2);
    assert_eq!((status, session), (200, None));
    assert_eq!(
        body["result"]["supportedVersions"],
        json!(["2025-03-26", "2025-06-18", "2026-07-28"]),
        "none newer than the child's handshake version"
    );
    assert_eq!(body["result"]["capabilities"]["tools"]["listChanged"], true);
    for method in [
        "initialize",
        "ping",
        "logging/setLevel",
        "resources/subscribe",
    ] {
        b.attach_stateless(3, modern(2, method, json!({}), json!({})), now);
        let out = drain(&mut b);
        assert!(to_child(&out).is_empty());
        let (status, _, body) = whole(&out, 3);
        assert_eq!(
            (status, body["error"]["code"].as_i64()),
            (404, Some(-32601)),
            "{method}"
        );
    }
}

#[test]
fn a_stateless_envelope_is_checked_before_anything_waits_for_the_child() {
    let now = Instant::now();
    let mut b = Bridge::new(config(StdioMode::Shared), now);
    let mut wrong_name = modern(1, "tools/call", json!({"name":"echo"}), json!({}));
    for h in wrong_name.headers.iter_mut().filter(|h| h.is("mcp-name")) {
        h.value = b"rm".to_vec();
    }
    b.attach_stateless(1, wrong_name, now);
    let out = drain(&mut b);
    assert!(
        !out.contains(&Output::Spawn),
        "refused before it starts a child"
    );
    let (status, _, body) = whole(&out, 1);
    assert_eq!(
        (status, body["error"]["code"].as_i64()),
        (400, Some(-32020))
    );
    assert_eq!(body["id"], 1);

    let mut future = modern(2, "tools/list", json!({}), json!({}));
    let text = String::from_utf8(future.body.to_vec())
        .unwrap()
        .replace("2026-07-28", "2099-01-01");
    future.body = text.into();
    for h in future
        .headers
        .iter_mut()
        .filter(|h| h.is("mcp-protocol-version"))
    {
        h.value = b"2099-01-01".to_vec();
    }
    b.attach_stateless(2, future, now);
    let (status, _, body) = whole(&drain(&mut b), 2);
    assert_eq!(
        (status, body["error"]["code"].as_i64()),
        (400, Some(-32022))
    );
    assert_eq!(body["error"]["data"]["supported"], json!(["2026-07-28"]));

    // A notification is taken and dropped; the child is not started.
    let mut note = post(
        None,
        r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}}"#,
    );
    note.headers
        .push(Header::new("MCP-Protocol-Version", "2026-07-28"));
    b.attach_stateless(3, note, now);
    let out = drain(&mut b);
    assert_eq!(whole(&out, 3).0, 202);
    assert!(!out.contains(&Output::Spawn));

    // A whole request starts the child and waits for it, with sluice's own
    // initialize.
    b.attach_stateless(4, modern(3, "tools/list", json!({}), json!({})), now);
    assert_eq!(drain(&mut b), vec![Output::Spawn]);
    b.spawned(now);
    let sent = child_call(&drain(&mut b));
    assert_eq!(sent["method"], "initialize");
    assert_eq!(sent["params"]["clientInfo"]["name"], "sluice");
}

#[test]
fn closing_a_stateless_stream_cancels_its_call_and_the_child_may_not_ask_it_anything() {
    let (mut b, now) = shared_ready("2025-11-25");
    let req = modern(
        7,
        "tools/call",
        json!({"name":"slow","_meta":{"progressToken":"p"}}),
        json!({"io.modelcontextprotocol/clientCapabilities": {"sampling": {}}}),
    );
    b.attach_stateless(2, req, now);
    let sent = child_call(&drain(&mut b));
    let token = sent["params"]["_meta"]["progressToken"].clone();
    b.child_output(
        &line(json!({"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":token,"progress":1}})),
        now,
    );
    // A log line it did not ask for is not its; a request of the child's
    // on its behalf is refused to the child.
    b.child_output(
        &line(json!({"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"x"}})),
        now,
    );
    b.child_output(
        &line(json!({"jsonrpc":"2.0","id":"s1","method":"sampling/createMessage","params":{}})),
        now,
    );
    let out = drain(&mut b);
    let got = events(&out, 2);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["params"]["progressToken"], "p", "restored");
    assert!(
        event_ids(&out, 2).is_empty(),
        "no event ids: nothing to resume"
    );
    let refused = to_child(&out);
    assert_eq!(refused[0]["id"], "s1");
    assert_eq!(refused[0]["error"]["code"], -32601);

    b.client_gone(2, now);
    let cancel = to_child(&drain(&mut b));
    assert_eq!(cancel[0]["method"], "notifications/cancelled");
    assert_eq!(cancel[0]["params"]["requestId"], sent["id"]);
    assert_eq!(b.sessions(), 1);

    // A call whose client did not declare what the child asks for fails
    // as the era says, and is cancelled on the child.
    b.attach_stateless(
        3,
        modern(8, "tools/call", json!({"name":"ask"}), json!({})),
        now,
    );
    let sent = child_call(&drain(&mut b));
    b.child_output(
        &line(json!({"jsonrpc":"2.0","id":"s2","method":"sampling/createMessage","params":{}})),
        now,
    );
    let out = drain(&mut b);
    let (status, _, body) = whole(&out, 3);
    assert_eq!((status, body["id"].as_i64()), (400, Some(8)));
    assert_eq!(body["error"]["code"], -32021);
    let child = to_child(&out);
    assert_eq!(
        (child[0]["id"].as_str(), child[0]["error"]["code"].as_i64()),
        (Some("s2"), Some(-32601))
    );
    assert_eq!(child[1]["method"], "notifications/cancelled");
    assert_eq!(child[1]["params"]["requestId"], sent["id"]);
    assert_eq!(b.sessions(), 1);
}

#[test]
fn listen_streams_get_what_they_were_granted_stamped_and_end_with_the_bridge() {
    let (mut b, now) = shared_ready("2025-11-25");
    let req = modern(
        9,
        "subscriptions/listen",
        json!({"notifications":{"toolsListChanged":true,"promptsListChanged":true}}),
        json!({}),
    );
    b.attach_stateless(2, req, now);
    let out = drain(&mut b);
    assert!(to_child(&out).is_empty());
    let got = events(&out, 2);
    assert_eq!(got[0]["method"], "notifications/subscriptions/acknowledged");
    assert_eq!(
        got[0]["params"]["notifications"],
        json!({"toolsListChanged":true}),
        "the child announces tools changes only"
    );
    assert_eq!(
        got[0]["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        9
    );
    b.child_output(
        &line(json!({"jsonrpc":"2.0","method":"notifications/tools/list_changed"})),
        now,
    );
    b.child_output(
        &line(json!({"jsonrpc":"2.0","method":"notifications/prompts/list_changed"})),
        now,
    );
    let got = events(&drain(&mut b), 2);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["method"], "notifications/tools/list_changed");
    assert_eq!(
        got[0]["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        9
    );
    b.close();
    let out = drain(&mut b);
    let got = events(&out, 2);
    assert_eq!(got[0]["id"], 9);
    assert_eq!(got[0]["result"]["resultType"], "complete");
    assert!(ended(&out, 2));

    // Without SSE in its Accept, a listen is 406.
    let (mut b, now) = shared_ready("2025-11-25");
    let mut req = modern(
        1,
        "subscriptions/listen",
        json!({"notifications":{}}),
        json!({}),
    );
    req.headers.retain(|h| !h.is("accept"));
    req.headers.push(Header::new("Accept", "application/json"));
    b.attach_stateless(2, req, now);
    assert_eq!(whole(&drain(&mut b), 2).0, 406);
}

#[test]
fn a_primed_stream_dropped_before_any_message_is_resumed_from_the_prime() {
    let (mut b, now) = shared_ready("2025-11-25");
    let call = r#"{"jsonrpc":"2.0","id":"c","method":"tools/call","params":{"name":"slow","_meta":{"progressToken":"p"}}}"#;
    b.attach(10, post(Some("A"), call), None, now);
    let out = drain(&mut b);
    assert_eq!(parts(&out, 10)[1], AnswerPart::Prime(1));
    let child_id = to_child(&out)[0]["id"].clone();
    b.client_gone(10, now);
    assert!(to_child(&drain(&mut b)).is_empty(), "kept, not cancelled");
    b.child_output(&line(progress(&child_id, 1)), now);
    drain(&mut b);
    b.attach(11, resume("A", 1), None, now);
    let out = drain(&mut b);
    assert_eq!(event_ids(&out, 11), vec![2], "the prime is not sent again");
    // A GET stream is primed too.
    b.attach(12, bare("GET", "A"), None, now);
    let out = drain(&mut b);
    assert!(matches!(
        parts(&out, 12)[..],
        [AnswerPart::Stream(_), AnswerPart::Prime(_)]
    ));
}

#[test]
fn sessions_before_2025_11_25_get_no_prime_and_json_first() {
    let (mut b, now) = shared_ready("2025-06-18");
    let call = r#"{"jsonrpc":"2.0","id":"c","method":"tools/call","params":{"name":"slow","_meta":{"progressToken":"p"}}}"#;
    b.attach(10, post(Some("A"), call), None, now);
    let out = drain(&mut b);
    assert!(parts(&out, 10).is_empty(), "nothing until the child speaks");
    let child_id = to_child(&out)[0]["id"].clone();
    b.child_output(
        &line(json!({"jsonrpc":"2.0","id":child_id,"result":{}})),
        now,
    );
    assert_eq!(whole(&drain(&mut b), 10).0, 200);
    b.attach(12, bare("GET", "A"), None, now);
    let out = drain(&mut b);
    assert!(matches!(parts(&out, 12)[..], [AnswerPart::Stream(_)]));
}
