//! The legacy bridge against scripted HTTP+SSE backends, on a fake clock.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sluice_core::http1::{self, Header};
use sluice_core::legacy::*;
use sluice_core::sse::{self, SseItem, SseLimits, SseParser};
use sluice_core::upstream::{AnswerPart, Request, SESSION_HEADER};

// -- the scripted world -------------------------------------------------------------

const STREAM_HEAD: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n\r\n";

/// What the bridge did, collected across drains.
#[derive(Default, Debug)]
struct Seen {
    opened: Vec<Vec<u8>>,
    posts: Vec<(PostId, Vec<u8>)>,
    /// Of each POST in `posts` order: sent on a fresh connection.
    fresh: Vec<bool>,
    abandoned: Vec<PostId>,
    clients: BTreeMap<StreamId, Vec<AnswerPart>>,
    ended: BTreeSet<StreamId>,
    stream_closed: bool,
    closed: Option<Option<BridgeError>>,
}

struct Sim {
    bridge: Bridge,
    now: Instant,
    seen: Seen,
}

impl Sim {
    fn new(mode: Mode) -> Sim {
        Sim::with(BridgeConfig::default(), mode)
    }

    fn with(config: BridgeConfig, mode: Mode) -> Sim {
        let now = Instant::now();
        let sid = (mode == Mode::Session).then(|| "sid-1".to_owned());
        Sim {
            bridge: Bridge::new(Arc::new(config), mode, sid, now),
            now,
            seen: Seen::default(),
        }
    }

    fn drain(&mut self) {
        while let Some(out) = self.bridge.poll_output() {
            match out {
                Output::OpenStream(b) => self.seen.opened.push(b.to_vec()),
                Output::Post {
                    id,
                    bytes,
                    origin,
                    fresh,
                } => {
                    assert!(origin.is_none());
                    self.seen.posts.push((id, bytes.to_vec()));
                    self.seen.fresh.push(fresh);
                }
                Output::AbandonPost { id } => self.seen.abandoned.push(id),
                Output::ToClient { stream, part } => {
                    assert!(!self.seen.ended.contains(&stream), "parts after the end");
                    self.seen.clients.entry(stream).or_default().push(part)
                }
                Output::EndClient { stream } => {
                    assert!(self.seen.ended.insert(stream), "ended twice");
                }
                Output::CloseStream => self.seen.stream_closed = true,
                Output::Closed { error } => {
                    assert!(self.seen.closed.is_none(), "closed twice");
                    self.seen.closed = Some(error)
                }
            }
        }
    }

    fn attach(&mut self, stream: StreamId, req: Request) {
        self.bridge.attach(stream, req, self.now);
        self.drain();
    }

    fn feed(&mut self, bytes: &[u8]) {
        self.bridge.stream_data(bytes, self.now);
        self.drain();
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
        if self.bridge.poll_timeout().is_some_and(|t| t <= self.now) {
            self.bridge.handle_timeout(self.now);
        }
        self.drain();
    }

    /// Answers the oldest unanswered POST with `status`; returns its body.
    fn answer_post(&mut self, status: u16) -> Vec<u8> {
        let (id, bytes) = self.seen.posts.remove(0);
        self.seen.fresh.remove(0);
        let answer = PostAnswer {
            status,
            excerpt: b"Accepted".to_vec(),
            reusable: true,
            session_id: None,
            content_type: String::new(),
        };
        self.bridge
            .post_done(id, PostOutcome::Answered(answer), self.now);
        self.drain();
        split_body(&bytes).1
    }

    /// Ends the oldest unanswered POST with `outcome`; returns its body.
    fn end_post(&mut self, outcome: PostOutcome) -> Vec<u8> {
        let (id, bytes) = self.seen.posts.remove(0);
        self.seen.fresh.remove(0);
        self.bridge.post_done(id, outcome, self.now);
        self.drain();
        split_body(&bytes).1
    }

    /// Opens the stream with an endpoint event.
    fn open(&mut self, endpoint: &str) {
        self.feed(STREAM_HEAD);
        self.feed(format!("event: endpoint\ndata: {endpoint}\n\n").as_bytes());
    }

    fn message(&mut self, json: &str) {
        self.feed(format!("event: message\ndata: {json}\n\n").as_bytes());
    }

    fn response(&self, stream: StreamId) -> Resp {
        decode(self.seen.clients.get(&stream).map_or(&[][..], |v| v))
    }
}

fn split_body(request: &[u8]) -> (String, Vec<u8>) {
    let at = request.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    (
        String::from_utf8(request[..at].to_vec()).unwrap(),
        request[at..].to_vec(),
    )
}

fn req(method: &str, body: &str, extra: &[(&str, &str)]) -> Request {
    let mut headers = vec![
        Header::new("Host", "backend:9000"),
        Header::new("Accept", "application/json, text/event-stream"),
        Header::new("Content-Type", "application/json"),
    ];
    for (k, v) in extra {
        headers.push(Header::new(*k, *v));
    }
    Request {
        method: method.into(),
        target: "/sse".into(),
        headers,
        body: Bytes::from(body.to_owned()),
    }
}

fn post(body: &str) -> Request {
    req("POST", body, &[])
}

/// A client response, decoded.
#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<Header>,
    body: Vec<u8>,
    /// The body ended properly (length reached or last chunk).
    complete: bool,
}

impl Resp {
    fn header(&self, name: &str) -> Option<String> {
        http1::find_header(&self.headers, name).map(|h| String::from_utf8(h.value.clone()).unwrap())
    }

    fn is_sse(&self) -> bool {
        self.header("content-type").as_deref() == Some("text/event-stream")
    }

    /// The data of every event (SSE) or the body (JSON).
    fn messages(&self) -> Vec<String> {
        if !self.is_sse() {
            return vec![String::from_utf8(self.body.clone()).unwrap()];
        }
        let mut p = SseParser::new(SseLimits::default());
        p.feed(&self.body);
        let mut out = Vec::new();
        while let Some(item) = p.poll() {
            if let Ok(SseItem::Event(e)) = item {
                out.push(e.data);
            }
        }
        out
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.messages().last().unwrap()).unwrap()
    }
}

/// A client's answer parts, checked for order and read as a response.
fn decode(parts: &[AnswerPart]) -> Resp {
    let (head, sse, rest) = match parts {
        [AnswerPart::Whole { head, body }] => {
            let resp = Resp {
                status: head.status,
                headers: fields(head, !body.is_empty(), false),
                body: body.to_vec(),
                complete: true,
            };
            return resp;
        }
        [AnswerPart::Stream(head), rest @ ..] => (head, true, rest),
        other => panic!("not an answer: {other:?}"),
    };
    let mut body = Vec::new();
    let mut complete = false;
    for part in rest {
        assert!(!complete, "parts after the end: {parts:?}");
        match part {
            AnswerPart::Event(data) => sse::encode_jsonrpc_message(data, &mut body),
            AnswerPart::End => complete = true,
            other => panic!("{other:?} inside a stream"),
        }
    }
    Resp {
        status: head.status,
        headers: fields(head, false, sse),
        body,
        complete,
    }
}

/// The fields that matter of an answer head.
fn fields(head: &sluice_core::upstream::AnswerHead, json: bool, sse: bool) -> Vec<Header> {
    let mut out = Vec::new();
    if json {
        out.push(Header::new("Content-Type", "application/json"));
    }
    if sse {
        out.push(Header::new("Content-Type", "text/event-stream"));
    }
    if let Some(id) = &head.session_id {
        out.push(Header::new(SESSION_HEADER, id.as_bytes()));
    }
    if let Some(allow) = head.allow {
        out.push(Header::new("Allow", allow));
    }
    out
}

const INIT: &str = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
const INIT_OK: &str = r#"{"jsonrpc":"2.0","id":0,"result":{"protocolVersion":"2024-11-05","capabilities":{"tools":{}},"serverInfo":{"name":"legacy","version":"1"}}}"#;

/// A session with `initialize` done (stream 1 answered).
fn ready_session() -> Sim {
    let mut sim = Sim::new(Mode::Session);
    sim.attach(1, post(INIT));
    sim.open("/messages?sessionId=abc");
    assert_eq!(sim.answer_post(202), INIT.as_bytes());
    sim.message(INIT_OK);
    let r = sim.response(1);
    assert_eq!(r.status, 200);
    assert!(sim.seen.ended.contains(&1));
    sim
}

// -- session mode -------------------------------------------------------------------

#[test]
fn session_initialize_opens_the_stream_and_answers_with_the_session_id() {
    let mut sim = Sim::new(Mode::Session);
    let mut r = post(INIT);
    r.headers
        .push(Header::new("Authorization", "Bearer tok.~+/="));
    r.headers
        .push(Header::new("Mcp-Protocol-Version", "2025-06-18"));
    r.headers.push(Header::new("Accept-Encoding", "gzip"));
    sim.attach(1, r);
    let (get, _) = split_body(&sim.seen.opened[0]);
    assert!(
        get.starts_with("GET /sse HTTP/1.1\r\nHost: backend:9000\r\n"),
        "{get}"
    );
    assert!(get.contains("Accept: text/event-stream\r\n"));
    assert!(get.contains("Authorization: Bearer tok.~+/=\r\n"));
    assert!(!get.to_ascii_lowercase().contains("mcp-protocol-version"));
    assert!(!get.to_ascii_lowercase().contains("gzip"));
    assert_eq!(sim.bridge.phase(), SessionPhase::Opening);
    assert!(sim.seen.posts.is_empty(), "no POST before the endpoint");

    sim.open("messages?sessionId=abc");
    assert_eq!(sim.bridge.phase(), SessionPhase::Ready);
    let (head, body) = split_body(&sim.seen.posts[0].1);
    assert!(head.starts_with("POST /messages?sessionId=abc HTTP/1.1\r\nHost: backend:9000\r\n"));
    assert!(head.contains("Authorization: Bearer tok.~+/=\r\n"));
    assert_eq!(
        body,
        INIT.as_bytes(),
        "the client's message goes byte for byte"
    );
    sim.answer_post(202);
    assert!(sim.seen.clients.is_empty(), "nothing before the answer");
    sim.message(INIT_OK);
    let resp = sim.response(1);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("mcp-session-id").as_deref(), Some("sid-1"));
    assert_eq!(resp.messages(), [INIT_OK]);
    assert!(resp.complete);
    assert!(sim.seen.ended.contains(&1));
    assert!(sim.seen.closed.is_none(), "the session lives on");
}

#[test]
fn a_field_the_encoder_refuses_sends_nothing_and_fails_with_the_clients_id() {
    let mut sim = Sim::new(Mode::Session);
    let mut r = post(INIT);
    // Not what sluice's parser lets through, but a driver may build anything.
    r.headers.push(Header::new("X-Trace", "a\r\nInjected: 1"));
    sim.attach(1, r);
    assert!(sim.seen.opened.is_empty(), "no GET was written");
    let resp = sim.response(1);
    assert_eq!(resp.status, 502);
    let text = &resp.messages()[0];
    assert!(text.contains(r#""id":0"#), "{text}");
    assert!(text.contains("could not write the SSE GET"), "{text}");
    assert!(matches!(
        sim.seen.closed,
        Some(Some(BridgeError::Unwritable { .. }))
    ));
}

#[test]
fn later_requests_reuse_the_stream_and_notifications_get_202() {
    let mut sim = ready_session();
    sim.attach(
        2,
        post(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#),
    );
    assert_eq!(sim.seen.opened.len(), 1, "one stream per session");
    sim.answer_post(202);
    let r = sim.response(2);
    assert_eq!(r.status, 202);
    assert_eq!(r.header("mcp-session-id").as_deref(), Some("sid-1"));
    sim.attach(
        3,
        post(r#"{"jsonrpc":"2.0","id":"x","method":"tools/list"}"#),
    );
    sim.answer_post(202);
    sim.message(r#"{"jsonrpc":"2.0","id":"x","result":{"tools":[]}}"#);
    assert_eq!(
        sim.response(3).json()["result"]["tools"],
        serde_json::json!([])
    );
}

#[test]
fn posts_go_one_at_a_time_in_client_order() {
    let mut sim = ready_session();
    sim.attach(2, post(r#"{"jsonrpc":"2.0","id":1,"method":"a"}"#));
    sim.attach(3, post(r#"{"jsonrpc":"2.0","id":2,"method":"b"}"#));
    assert_eq!(sim.seen.posts.len(), 1);
    assert!(sim.answer_post(202).ends_with(br#""method":"a"}"#));
    assert!(sim.answer_post(202).ends_with(br#""method":"b"}"#));
    // Answers in the other order are matched by id.
    sim.message(r#"{"jsonrpc":"2.0","id":2,"result":{"b":true}}"#);
    sim.message(r#"{"jsonrpc":"2.0","id":1,"result":{"a":true}}"#);
    assert_eq!(sim.response(2).json()["result"]["a"], true);
    assert_eq!(sim.response(3).json()["result"]["b"], true);
}

#[test]
fn string_and_integer_ids_are_different_requests() {
    let mut sim = ready_session();
    sim.attach(2, post(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#));
    sim.attach(
        3,
        post(r#"{"jsonrpc":"2.0","id":"1","method":"tools/list"}"#),
    );
    sim.answer_post(202);
    sim.answer_post(202);
    sim.message(r#"{"jsonrpc":"2.0","id":"1","result":{"which":"string"}}"#);
    assert!(!sim.seen.ended.contains(&2));
    assert_eq!(
        sim.response(3).messages(),
        [r#"{"jsonrpc":"2.0","id":"1","result":{"which":"string"}}"#]
    );
    sim.message(r#"{"jsonrpc":"2.0","id":1,"result":{"which":"int"}}"#);
    assert_eq!(sim.response(2).json()["result"]["which"], "int");
}

#[test]
fn a_reserialized_id_comes_back_as_the_clients_text() {
    let mut sim = ready_session();
    sim.attach(
        2,
        post(r#"{"jsonrpc":"2.0","id":7.0,"method":"tools/list"}"#),
    );
    sim.attach(
        3,
        post(r#"{"jsonrpc":"2.0","id":"\u0031","method":"ping"}"#),
    );
    sim.answer_post(202);
    sim.answer_post(202);
    // A JavaScript backend answers 7.0 as 7 and "\u0031" as "1".
    sim.message(r#"{"jsonrpc":"2.0","id":7,"result":{"ok":1}}"#);
    sim.message(r#"{"jsonrpc":"2.0","id":"1","error":{"code":-1,"message":"no"}}"#);
    assert_eq!(
        sim.response(2).messages(),
        [r#"{"jsonrpc":"2.0","id":7.0,"result":{"ok":1}}"#]
    );
    assert_eq!(
        sim.response(3).messages(),
        [r#"{"jsonrpc":"2.0","id":"\u0031","error":{"code":-1,"message":"no"}}"#]
    );
}

#[test]
fn a_duplicate_id_in_flight_is_refused_without_reaching_the_backend() {
    let mut sim = ready_session();
    sim.attach(2, post(r#"{"jsonrpc":"2.0","id":5,"method":"a"}"#));
    sim.attach(3, post(r#"{"jsonrpc":"2.0","id":5,"method":"b"}"#));
    let r = sim.response(3);
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["id"], 5);
    assert_eq!(sim.seen.posts.len(), 1);
}

#[test]
fn progress_streams_to_the_request_that_owns_the_token_and_meta_passes_untouched() {
    let mut sim = ready_session();
    let call = r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"slow","arguments":{},"_meta":{"progressToken":"tok-3","x-custom":[1,2]}}}"#;
    sim.attach(2, post(call));
    // A second request with another token must not see the first's progress.
    sim.attach(
        3,
        post(r#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"slow","_meta":{"progressToken":4}}}"#),
    );
    assert_eq!(sim.answer_post(202), call.as_bytes());
    sim.answer_post(202);
    for i in 1..=3 {
        sim.message(&format!(
            r#"{{"jsonrpc":"2.0","method":"notifications/progress","params":{{"progressToken":"tok-3","progress":{i},"total":3}}}}"#
        ));
        // Each event reaches the client as it arrives, before the answer.
        let r = sim.response(2);
        assert!(r.is_sse());
        assert_eq!(r.messages().len(), i);
        assert!(!r.complete);
    }
    sim.message(r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":4,"progress":1}}"#);
    sim.message(r#"{"jsonrpc":"2.0","id":3,"result":{"content":[]}}"#);
    let r = sim.response(2);
    assert_eq!(r.messages().len(), 4);
    assert!(r.complete, "the answer closes the stream");
    assert_eq!(r.json()["id"], 3);
    assert_eq!(sim.response(3).messages().len(), 1);
}

#[test]
fn a_json_only_client_gets_one_json_body() {
    let mut sim = ready_session();
    let mut r = post(
        r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"s","_meta":{"progressToken":1}}}"#,
    );
    r.headers[1] = Header::new("Accept", "application/json");
    sim.attach(2, r);
    sim.answer_post(202);
    sim.message(r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":1,"progress":1}}"#);
    assert!(!sim.seen.clients.contains_key(&2));
    sim.message(r#"{"jsonrpc":"2.0","id":3,"result":{}}"#);
    let resp = sim.response(2);
    assert_eq!(
        resp.header("content-type").as_deref(),
        Some("application/json")
    );
    assert_eq!(resp.messages(), [r#"{"jsonrpc":"2.0","id":3,"result":{}}"#]);
    assert_eq!(sim.bridge.dropped(), 1);
}

#[test]
fn an_sse_only_client_gets_its_answer_as_an_event() {
    let mut sim = ready_session();
    let mut r = post(r#"{"jsonrpc":"2.0","id":3,"method":"ping"}"#);
    r.headers[1] = Header::new("Accept", "text/event-stream");
    sim.attach(2, r);
    sim.answer_post(202);
    sim.message(r#"{"jsonrpc":"2.0","id":3,"result":{}}"#);
    let resp = sim.response(2);
    assert!(resp.is_sse() && resp.complete);
    assert_eq!(resp.messages(), [r#"{"jsonrpc":"2.0","id":3,"result":{}}"#]);
}

#[test]
fn server_messages_wait_for_the_get_stream_and_client_answers_are_posted() {
    let mut sim = ready_session();
    sim.message(r#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}"#);
    sim.message(r#"{"jsonrpc":"2.0","id":"s1","method":"sampling/createMessage","params":{}}"#);
    sim.attach(2, req("GET", "", &[("Mcp-Session-Id", "sid-1")]));
    let g = sim.response(2);
    assert!(g.is_sse() && !g.complete);
    assert_eq!(g.messages().len(), 2);
    sim.message(r#"{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"x"}}"#);
    assert_eq!(sim.response(2).messages().len(), 3);
    // A second GET is refused.
    sim.attach(3, req("GET", "", &[("Mcp-Session-Id", "sid-1")]));
    assert_eq!(sim.response(3).status, 409);
    // The client's answer to the server request is POSTed, then 202.
    let answer = r#"{"jsonrpc":"2.0","id":"s1","result":{"role":"assistant","content":{"type":"text","text":"hi"}}}"#;
    sim.attach(4, post(answer));
    assert_eq!(sim.answer_post(202), answer.as_bytes());
    assert_eq!(sim.response(4).status, 202);
}

#[test]
fn delete_closes_the_backend_stream_and_the_id_is_gone() {
    let mut sim = ready_session();
    sim.attach(2, req("GET", "", &[]));
    sim.attach(
        3,
        post(r#"{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"slow"}}"#),
    );
    sim.answer_post(202);
    sim.attach(4, req("DELETE", "", &[]));
    assert_eq!(sim.response(4).status, 200);
    assert!(sim.seen.stream_closed);
    assert_eq!(sim.seen.closed, Some(Some(BridgeError::SessionDeleted)));
    assert!(sim.response(2).complete, "the GET stream ends cleanly");
    let r = sim.response(3);
    assert_eq!(r.json()["id"], 9);
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("deleted")
    );
    sim.attach(5, post(r#"{"jsonrpc":"2.0","id":10,"method":"ping"}"#));
    assert_eq!(sim.response(5).status, 404);
}

#[test]
fn the_backend_closing_mid_call_fails_the_call_with_its_id_and_ends_the_session() {
    let mut sim = ready_session();
    sim.attach(2, post(r#"{"jsonrpc":"2.0","id":"c-1","method":"tools/call","params":{"name":"s","_meta":{"progressToken":"p"}}}"#));
    sim.answer_post(202);
    sim.message(r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"p","progress":1}}"#);
    sim.bridge.stream_closed(false, sim.now);
    sim.drain();
    let r = sim.response(2);
    assert!(
        r.is_sse() && r.complete,
        "the error is the last event, then a clean end"
    );
    let last = r.json();
    assert_eq!(last["id"], "c-1");
    assert_eq!(
        last["error"]["code"],
        sluice_core::jsonrpc::codes::UPSTREAM_FAILED
    );
    let msg = last["error"]["message"].as_str().unwrap();
    assert!(msg.contains("SSE stream ended while forwarding"), "{msg}");
    assert!(matches!(
        sim.seen.closed,
        Some(Some(BridgeError::StreamClosed { .. }))
    ));
    sim.attach(3, post(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#));
    assert_eq!(sim.response(3).status, 404, "next request: start over");
}

#[test]
fn a_post_refused_fails_that_request_only_and_404_ends_the_session() {
    let mut sim = ready_session();
    sim.attach(2, post(r#"{"jsonrpc":"2.0","id":1,"method":"a"}"#));
    sim.answer_post(400);
    let r = sim.response(2);
    assert_eq!(r.status, 502);
    assert_eq!(r.json()["id"], 1);
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("status 400: Accepted")
    );
    assert!(sim.seen.closed.is_none());
    sim.attach(3, post(r#"{"jsonrpc":"2.0","id":2,"method":"b"}"#));
    sim.answer_post(404);
    assert_eq!(sim.response(3).status, 404);
    assert_eq!(sim.seen.closed, Some(Some(BridgeError::BackendSessionGone)));
}

#[test]
fn a_post_that_fails_in_transport_names_the_cause() {
    let mut sim = ready_session();
    sim.attach(2, post(r#"{"jsonrpc":"2.0","id":1,"method":"a"}"#));
    sim.end_post(PostOutcome::NotSent {
        reused: false,
        detail: "connection refused".into(),
    });
    let msg = sim.response(2).json()["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(msg.contains("connection refused"), "{msg}");
}

#[test]
fn a_post_lost_on_a_pooled_connection_before_it_went_out_is_sent_once_more_fresh() {
    let mut sim = ready_session();
    let call = r#"{"jsonrpc":"2.0","id":"c-1","method":"tools/call","params":{"name":"t"}}"#;
    sim.attach(2, post(call));
    assert_eq!(sim.seen.fresh, [false]);
    let first = sim.end_post(PostOutcome::NotSent {
        reused: true,
        detail: "broken pipe".into(),
    });
    // The same message again, on a fresh connection; nothing to the client.
    assert_eq!(sim.seen.fresh, [true]);
    assert_eq!(split_body(&sim.seen.posts[0].1).1, first);
    assert!(!sim.seen.clients.contains_key(&2));
    // A fresh connection that fails too is the end: no third try.
    sim.end_post(PostOutcome::NotSent {
        reused: false,
        detail: "connection refused".into(),
    });
    assert!(sim.seen.posts.is_empty());
    let r = sim.response(2);
    assert_eq!(r.status, 502);
    assert_eq!(r.json()["id"], "c-1");
    assert_eq!(
        r.json()["error"]["code"],
        sluice_core::jsonrpc::codes::UPSTREAM_FAILED
    );
    assert!(
        sim.seen.closed.is_none(),
        "one failed POST keeps the session"
    );
}

#[test]
fn a_post_that_went_out_whole_is_never_sent_again() {
    let mut sim = ready_session();
    sim.attach(
        2,
        post(r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"t"}}"#),
    );
    sim.attach(3, post(r#"{"jsonrpc":"2.0","id":8,"method":"tools/list"}"#));
    sim.end_post(PostOutcome::Unanswered {
        detail: "connection closed before the answer".into(),
    });
    // The call is not re-sent (the backend may have run the tool): its
    // client gets an error with its own id, and the next message goes on.
    let r = sim.response(2);
    assert_eq!(r.status, 502, "{:?}", r.json());
    assert_eq!(r.json()["id"], 7);
    let msg = r.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(msg.contains("did not send it again"), "{msg}");
    assert_eq!(sim.seen.posts.len(), 1);
    assert!(
        split_body(&sim.seen.posts[0].1)
            .1
            .ends_with(br#""tools/list"}"#),
    );
    assert_eq!(sim.seen.fresh, [false]);
}

#[test]
fn a_post_past_its_timeout_is_abandoned_and_its_client_answered() {
    let mut config = BridgeConfig::default();
    config.timeouts.post = Duration::from_secs(5);
    config.timeouts.session_idle = None;
    let mut sim = Sim::with(config, Mode::Session);
    sim.attach(1, post(INIT));
    sim.open("/messages?sessionId=abc");
    sim.answer_post(202);
    sim.message(INIT_OK);
    sim.attach(
        2,
        post(r#"{"jsonrpc":"2.0","id":"slow","method":"tools/call","params":{"name":"t"}}"#),
    );
    let (id, _) = sim.seen.posts[0];
    sim.advance(Duration::from_secs(4));
    assert!(sim.seen.abandoned.is_empty());
    sim.advance(Duration::from_secs(1));
    assert_eq!(sim.seen.abandoned, [id]);
    let r = sim.response(2);
    assert_eq!(r.status, 504);
    assert_eq!(r.json()["id"], "slow");
    assert_eq!(
        r.json()["error"]["code"],
        sluice_core::jsonrpc::codes::UPSTREAM_TIMEOUT
    );
    // A late report of the abandoned POST changes nothing.
    sim.end_post(PostOutcome::Unanswered {
        detail: "late".into(),
    });
    assert!(sim.seen.closed.is_none());
    assert_eq!(sim.bridge.poll_timeout(), None);
}

#[test]
fn batches_and_garbage_are_refused_with_400() {
    let mut sim = ready_session();
    sim.attach(2, post(r#"[{"jsonrpc":"2.0","id":1,"method":"a"}]"#));
    assert_eq!(sim.response(2).status, 400);
    sim.attach(3, post(r#"{"jsonrpc":"2.0","id":1,"#));
    let r = sim.response(3);
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["code"], -32700);
    assert!(sim.seen.posts.is_empty());
}

#[test]
fn an_idle_session_expires_but_an_attached_stream_keeps_it() {
    let mut config = BridgeConfig::default();
    config.timeouts.session_idle = Some(Duration::from_secs(60));
    let mut sim = Sim::with(config, Mode::Session);
    sim.attach(1, post(INIT));
    sim.open("/m");
    sim.answer_post(202);
    sim.message(INIT_OK);
    sim.attach(2, req("GET", "", &[]));
    sim.advance(Duration::from_secs(120));
    assert!(sim.seen.closed.is_none(), "a GET stream is attached");
    sim.bridge.client_gone(2, sim.now);
    sim.drain();
    sim.advance(Duration::from_secs(59));
    assert!(sim.seen.closed.is_none());
    sim.advance(Duration::from_secs(1));
    assert_eq!(sim.seen.closed, Some(Some(BridgeError::SessionExpired)));
    assert!(sim.seen.stream_closed);
}

#[test]
fn queues_are_bounded() {
    let mut config = BridgeConfig::default();
    config.limits.max_queued_posts = 1;
    config.limits.max_pending = 2;
    config.limits.max_queued_server_messages = 1;
    let mut sim = Sim::with(config, Mode::Session);
    sim.attach(1, post(INIT));
    sim.attach(2, post(r#"{"jsonrpc":"2.0","id":2,"method":"a"}"#));
    let r = sim.response(2);
    assert_eq!(r.status, 503);
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("more than 1 messages")
    );
    sim.open("/m");
    sim.answer_post(202);
    sim.message(INIT_OK);
    sim.attach(3, post(r#"{"jsonrpc":"2.0","id":3,"method":"a"}"#));
    sim.attach(4, post(r#"{"jsonrpc":"2.0","id":4,"method":"a"}"#));
    sim.attach(5, post(r#"{"jsonrpc":"2.0","id":5,"method":"a"}"#));
    assert_eq!(sim.response(5).status, 503, "pending limit");
    sim.message(r#"{"jsonrpc":"2.0","method":"n1"}"#);
    sim.message(r#"{"jsonrpc":"2.0","method":"n2"}"#);
    assert_eq!(sim.bridge.dropped(), 1);
}

// -- the stream and its endpoint ------------------------------------------------------

#[test]
fn a_slow_endpoint_is_waited_for() {
    let mut sim = Sim::new(Mode::Session);
    sim.attach(1, post(INIT));
    sim.feed(STREAM_HEAD);
    sim.advance(Duration::from_secs(9));
    assert_eq!(sim.bridge.phase(), SessionPhase::AwaitingEndpoint);
    sim.feed(b"event: endpoint\ndata: /m\n\n");
    assert_eq!(sim.seen.posts.len(), 1);
    sim.advance(Duration::from_secs(60));
    assert!(sim.seen.closed.is_none(), "no endpoint timer once ready");
}

#[test]
fn an_endpoint_never_sent_is_a_504_with_the_clients_id() {
    let mut sim = Sim::new(Mode::Session);
    sim.attach(1, post(INIT));
    sim.feed(STREAM_HEAD);
    sim.feed(b": ping\n\n");
    sim.advance(Duration::from_millis(9_999));
    assert!(sim.seen.clients.is_empty());
    sim.advance(Duration::from_millis(1));
    let r = sim.response(1);
    assert_eq!(r.status, 504);
    let j = r.json();
    assert_eq!(j["id"], 0);
    assert_eq!(
        j["error"]["code"],
        sluice_core::jsonrpc::codes::UPSTREAM_TIMEOUT
    );
    assert!(
        j["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no endpoint event within 10000 ms")
    );
    assert!(sim.seen.stream_closed);
}

#[test]
fn the_stream_must_be_200_event_stream() {
    let cases: [(&[u8], &str); 4] = [
        (
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
            "Content-Type \"application/json\" instead of text/event-stream",
        ),
        (
            b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n",
            "status 405 instead of 200",
        ),
        (b"HTTP/1.1 200 OK\r\n\r\n", "Content-Type \"\""),
        (b"HTTP/1.1 2000 OK\r\n\r\n", "malformed"),
    ];
    for (answer, want) in cases {
        let mut sim = Sim::new(Mode::Session);
        sim.attach(1, post(INIT));
        sim.feed(answer);
        let r = sim.response(1);
        assert_eq!(r.status, 502);
        let msg = r.json()["error"]["message"].as_str().unwrap().to_owned();
        assert!(msg.contains(want), "{msg}");
        assert_eq!(r.json()["id"], 0);
        assert!(sim.bridge.is_closed());
    }
}

#[test]
fn crlf_comments_and_chunked_framing_in_any_split_give_the_same_answer() {
    let mut wire = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    let events = [
        &b": ping - 2025-01-01\r\n\r\n"[..],
        b"event: endpoint\r\ndata: /messages/?session_id=f00\r\n\r\n",
        b": ping\r\n\r\n",
        b"event: message\r\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progressToken\":1,\"progress\":1}}\r\n\r\n",
        b"event: message\r\ndata: {\"jsonrpc\":\"2.0\",\"id\":0,\"result\":{\"x\":\"a\\r\\nb\"}}\r\n\r\n",
    ];
    for e in events {
        http1::encode_chunk(e, &mut wire);
    }
    let mut want = None;
    common::for_each_split(&wire, |split, chunks| {
        let mut sim = Sim::new(Mode::Session);
        let mut r = post(
            r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"_meta":{"progressToken":1}}}"#,
        );
        r.headers.push(Header::new("Mcp-Protocol-Version", "x"));
        sim.attach(1, r);
        for (i, c) in chunks.iter().enumerate() {
            sim.feed(c);
            if !sim.seen.posts.is_empty() {
                sim.answer_post(202);
            }
            let _ = i;
        }
        let got = sim.response(1).messages();
        match &want {
            None => want = Some(got),
            Some(w) => assert_eq!(&got, w, "{split:?}"),
        }
        assert!(sim.seen.ended.contains(&1), "{split:?}");
    });
    let want = want.unwrap();
    assert_eq!(want.len(), 2);
    assert!(want[1].contains(r#""x":"a\r\nb""#));
}

#[test]
fn a_one_mebibyte_answer_arrives_intact() {
    let mut sim = ready_session();
    sim.attach(
        2,
        post(r#"{"jsonrpc":"2.0","id":2,"method":"resources/read","params":{"uri":"big"}}"#),
    );
    sim.answer_post(202);
    let text = "x".repeat(1 << 20);
    let answer =
        format!(r#"{{"jsonrpc":"2.0","id":2,"result":{{"contents":[{{"text":"{text}"}}]}}}}"#);
    let event = format!("event: message\ndata: {answer}\n\n");
    for piece in event.as_bytes().chunks(16 * 1024) {
        sim.feed(piece);
    }
    let r = sim.response(2);
    assert_eq!(r.messages(), [answer]);
}

#[test]
fn an_event_over_the_limit_ends_the_session_with_a_typed_error() {
    let mut config = BridgeConfig::default();
    config.limits.sse = SseLimits {
        max_event_bytes: 1024,
    };
    let mut sim = Sim::with(config, Mode::Session);
    sim.attach(1, post(INIT));
    sim.open("/m");
    sim.answer_post(202);
    sim.feed(format!("data: {}\n\n", "y".repeat(2000)).as_bytes());
    assert_eq!(
        sim.seen.closed,
        Some(Some(BridgeError::EventTooLarge { limit: 1024 }))
    );
    assert_eq!(sim.response(1).status, 502);
}

#[test]
fn an_endpoint_on_another_origin_is_refused_unless_allowed() {
    let mut sim = Sim::new(Mode::Session);
    sim.attach(1, post(INIT));
    sim.open("http://evil.example/messages?s=1");
    let msg = sim.response(1).json()["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(msg.contains("another origin"), "{msg}");

    let config = BridgeConfig {
        allow_other_origin: true,
        ..BridgeConfig::default()
    };
    let mut b = Bridge::new(Arc::new(config), Mode::Session, None, Instant::now());
    let now = Instant::now();
    b.attach(1, post(INIT), now);
    b.stream_data(STREAM_HEAD, now);
    b.stream_data(b"event: endpoint\ndata: https://other:8443/m?s=1\n\n", now);
    let post_out = std::iter::from_fn(|| b.poll_output())
        .find_map(|o| match o {
            Output::Post { bytes, origin, .. } => Some((bytes, origin)),
            _ => None,
        })
        .unwrap();
    let origin = post_out.1.unwrap();
    assert_eq!(
        (origin.https, origin.host.as_str(), origin.port),
        (true, "other", 8443)
    );
    assert!(
        post_out
            .0
            .starts_with(b"POST /m?s=1 HTTP/1.1\r\nHost: other:8443\r\n")
    );
}

#[test]
fn endpoint_resolution() {
    let ok = [
        ("/messages?sessionId=1", "/messages?sessionId=1"),
        ("/messages/?session_id=ab", "/messages/?session_id=ab"),
        ("message?sessionId=1", "/mcp/message?sessionId=1"),
        ("./m", "/mcp/m"),
        ("../up/m", "/up/m"),
        ("?s=1", "/mcp/sse?s=1"),
        ("http://backend:9000/x?y", "/x?y"),
        ("http://BACKEND:9000/x", "/x"),
        ("//backend:9000/x", "/x"),
        ("/m#frag", "/m"),
        ("  /m  ", "/m"),
    ];
    for (uri, want) in ok {
        let e = resolve_endpoint(uri, false, "backend:9000", "/mcp/sse?k=v", false)
            .unwrap_or_else(|e| panic!("{uri}: {e}"));
        assert_eq!(e.target, want, "{uri}");
        assert!(e.origin.is_none(), "{uri}");
    }
    let e = resolve_endpoint("http://h/m", false, "h:80", "/", false).unwrap();
    assert!(e.origin.is_none(), "default port is the same origin");
    let bad = [
        "",
        "ftp://backend:9000/x",
        "https://backend:9000/x",
        "http://backend:9001/x",
        "http://user@backend:9000/x",
        "/a b",
        "/\u{e9}",
    ];
    for uri in bad {
        assert!(
            matches!(
                resolve_endpoint(uri, false, "backend:9000", "/sse", false),
                Err(BridgeError::BadEndpoint { .. })
            ),
            "{uri:?}"
        );
    }
}

// -- per-request mode ---------------------------------------------------------------

#[test]
fn per_request_handshakes_then_forwards_then_closes() {
    let mut sim = Sim::new(Mode::PerRequest);
    let call = r#"{"jsonrpc":"2.0","id":"r1","method":"tools/call","params":{"name":"p","_meta":{"progressToken":"t"}}}"#;
    sim.attach(
        1,
        req("POST", call, &[("MCP-Protocol-Version", "2025-06-18")]),
    );
    sim.open("/messages?sessionId=z");
    let init = String::from_utf8(sim.answer_post(202)).unwrap();
    let v: serde_json::Value = serde_json::from_str(&init).unwrap();
    assert_eq!(v["method"], "initialize");
    assert_eq!(v["params"]["protocolVersion"], "2025-06-18");
    let own_id = v["id"].clone();
    assert!(own_id.as_str().unwrap().starts_with("sluice-bridge-"));
    assert!(
        sim.seen.posts.is_empty(),
        "initialized waits for the answer"
    );
    assert_eq!(sim.bridge.phase(), SessionPhase::Handshake);
    sim.message(&format!(
        r#"{{"jsonrpc":"2.0","id":{own_id},"result":{{"protocolVersion":"2024-11-05","capabilities":{{}},"serverInfo":{{"name":"l","version":"1"}}}}}}"#
    ));
    assert!(
        sim.seen.clients.is_empty(),
        "the bridge's own answer stays inside"
    );
    assert_eq!(
        sim.answer_post(202),
        br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#
    );
    assert_eq!(sim.answer_post(202), call.as_bytes());
    // Everything the backend says meanwhile belongs to this request.
    sim.message(r#"{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"hi"}}"#);
    sim.message(r#"{"jsonrpc":"2.0","id":99,"method":"ping"}"#);
    assert_eq!(
        sim.answer_post(202),
        br#"{"jsonrpc":"2.0","id":99,"result":{}}"#
    );
    sim.message(r#"{"jsonrpc":"2.0","id":"r1","result":{"content":[]}}"#);
    let r = sim.response(1);
    assert!(r.is_sse() && r.complete);
    assert_eq!(r.messages().len(), 2);
    assert!(r.header("mcp-session-id").is_none());
    assert!(sim.seen.stream_closed);
    assert_eq!(sim.seen.closed, Some(None));
}

#[test]
fn per_request_passes_the_clients_own_initialize_and_202s_notifications() {
    let mut sim = Sim::new(Mode::PerRequest);
    sim.attach(1, post(INIT));
    sim.open("/m");
    assert_eq!(sim.answer_post(202), INIT.as_bytes());
    sim.message(INIT_OK);
    assert_eq!(sim.response(1).messages(), [INIT_OK]);
    assert_eq!(sim.seen.closed, Some(None));

    let mut sim = Sim::new(Mode::PerRequest);
    sim.attach(
        1,
        post(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#),
    );
    assert_eq!(sim.response(1).status, 202);
    assert!(sim.seen.opened.is_empty(), "nothing to deliver to");
    assert_eq!(sim.seen.closed, Some(None));
}

#[test]
fn per_request_initialize_refused_or_silent() {
    let mut sim = Sim::new(Mode::PerRequest);
    sim.attach(1, post(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#));
    sim.open("/m");
    let v: serde_json::Value = serde_json::from_slice(&sim.answer_post(202)).unwrap();
    sim.message(&format!(
        r#"{{"jsonrpc":"2.0","id":{},"error":{{"code":-32602,"message":"Unsupported protocol version"}}}}"#,
        v["id"]
    ));
    let j = sim.response(1).json();
    assert_eq!(j["id"], 1);
    assert!(
        j["error"]["message"]
            .as_str()
            .unwrap()
            .contains("refused initialize: Unsupported protocol version")
    );

    let mut sim = Sim::new(Mode::PerRequest);
    sim.attach(1, post(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#));
    sim.open("/m");
    sim.answer_post(202);
    sim.advance(Duration::from_secs(30));
    let r = sim.response(1);
    assert_eq!(r.status, 504);
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("did not answer initialize")
    );
}

#[test]
fn a_client_leaving_does_not_cancel_and_its_late_answer_is_dropped() {
    let mut sim = ready_session();
    sim.attach(2, post(r#"{"jsonrpc":"2.0","id":2,"method":"slow"}"#));
    sim.answer_post(202);
    sim.bridge.client_gone(2, sim.now);
    sim.drain();
    assert!(sim.seen.posts.is_empty(), "no cancellation sent");
    sim.message(r#"{"jsonrpc":"2.0","id":2,"result":{}}"#);
    assert_eq!(sim.bridge.dropped(), 1);
    assert!(sim.seen.closed.is_none());
}

// -- client side: reading and dispatch -------------------------------------------------

#[test]
fn dispatch_rules() {
    let json = sluice_core::jsonrpc::Limits::default();
    let with_sid = req("POST", "{}", &[("Mcp-Session-Id", "abc")]);
    assert_eq!(
        dispatch(&with_sid, Mode::Session, &json),
        Dispatch::Session("abc".into())
    );
    assert_eq!(
        dispatch(&post(INIT), Mode::Session, &json),
        Dispatch::NewSession
    );
    let status = |d: Dispatch| match d {
        Dispatch::Reply(part) => decode(&[part]).status,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        status(dispatch(
            &post(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#),
            Mode::Session,
            &json
        )),
        400
    );
    assert_eq!(
        status(dispatch(&req("GET", "", &[]), Mode::Session, &json)),
        400
    );
    assert_eq!(
        status(dispatch(&req("PUT", "", &[]), Mode::Session, &json)),
        405
    );
    assert_eq!(
        status(dispatch(&req("GET", "", &[]), Mode::PerRequest, &json)),
        405
    );
    for (mode, allow) in [
        (Mode::Session, "GET, POST, DELETE"),
        (Mode::PerRequest, "POST"),
    ] {
        let Dispatch::Reply(part) = dispatch(&req("PUT", "", &[]), mode, &json) else {
            panic!("a reply");
        };
        assert_eq!(decode(&[part]).header("allow").as_deref(), Some(allow));
    }
    assert_eq!(
        dispatch(&post("{}"), Mode::PerRequest, &json),
        Dispatch::PerRequest
    );
    let bad_sid = req("POST", INIT, &[("Mcp-Session-Id", "a b")]);
    assert_eq!(status(dispatch(&bad_sid, Mode::Session, &json)), 400);
    let gone = unknown_session(
        &post(r#"{"jsonrpc":"2.0","id":"q","method":"ping"}"#),
        &json,
    );
    let gone = decode(&[gone]);
    assert_eq!(gone.status, 404);
    assert!(gone.json()["id"] == "q", "the request's own id");
}

#[test]
fn post_answers_are_read_whole_for_reuse() {
    let wire = b"HTTP/1.1 202 Accepted\r\nContent-Length: 8\r\n\r\nAccepted";
    common::for_each_split(wire, |split, chunks| {
        let mut r = PostAnswerReader::post(&http1::Limits::default());
        let mut got = None;
        for c in chunks {
            if let Some(a) = r.feed(c).unwrap() {
                got = Some(a);
            }
        }
        let a = got.unwrap_or_else(|| panic!("{split:?}"));
        assert_eq!(
            (a.status, a.excerpt.as_slice(), a.reusable),
            (202, &b"Accepted"[..], true)
        );
    });
    let mut r = PostAnswerReader::post(&http1::Limits::default());
    assert!(
        r.feed(b"HTTP/1.1 400 Bad\r\n\r\nCould not parse")
            .unwrap()
            .is_none()
    );
    let a = r.eof().unwrap();
    assert_eq!((a.status, a.reusable), (400, false));
    assert_eq!(a.excerpt, b"Could not parse");
    let mut r = PostAnswerReader::post(&http1::Limits::default());
    assert!(
        r.feed(b"HTTP/1.1 202 Accepted\r\nContent-Length: 8\r\n\r\nAcc")
            .unwrap()
            .is_none()
    );
    assert!(r.eof().is_err());
}

#[test]
fn closing_for_shutdown_answers_in_flight_requests_with_their_ids() {
    let mut sim = ready_session();
    sim.attach(2, req("GET", "", &[]));
    sim.attach(
        3,
        post(r#"{"jsonrpc":"2.0","id":"slow","method":"resources/read","params":{"uri":"x"}}"#),
    );
    sim.answer_post(202);
    sim.bridge.close();
    sim.drain();
    let r = sim.response(3);
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["id"], "slow");
    assert_eq!(
        r.json()["error"]["code"],
        sluice_core::jsonrpc::codes::UPSTREAM_FAILED
    );
    let msg = r.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(msg.contains("shutting down"), "{msg}");
    assert!(sim.response(2).complete, "the GET stream ends cleanly");
    assert!(sim.seen.stream_closed);
    assert_eq!(sim.seen.closed, Some(Some(BridgeError::ShuttingDown)));
}

#[test]
fn a_refused_new_session_gets_503_with_the_requests_id() {
    let json = sluice_core::jsonrpc::Limits::default();
    let e = BridgeError::TooManySessions { limit: 8 };
    let r = decode(&[refuse_new_session(&post(INIT), &e, &json)]);
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["id"], 0);
    assert_eq!(r.json()["error"]["code"], -32603);
    let msg = r.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(msg.contains("8 legacy backend sessions"), "{msg}");
    // Not a request: a null id.
    let note = post(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
    let r = decode(&[refuse_new_session(&note, &BridgeError::ShuttingDown, &json)]);
    assert_eq!(r.status, 503);
    assert!(r.json()["id"].is_null());
}

#[test]
fn per_request_server_requests_cannot_flood_the_post_queue() {
    let mut config = BridgeConfig::default();
    config.limits.max_queued_posts = 2;
    let mut sim = Sim::with(config, Mode::PerRequest);
    sim.attach(
        1,
        post(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t"}}"#),
    );
    sim.open("/m");
    // The bridge's initialize is in flight (unanswered): answers to pings queue.
    for i in 0..10 {
        sim.message(&format!(r#"{{"jsonrpc":"2.0","id":{i},"method":"ping"}}"#));
    }
    assert_eq!(sim.bridge.buffered().queued_posts, 2);
    assert_eq!(
        sim.bridge.dropped(),
        9,
        "the client's call and one answer fit"
    );
}
