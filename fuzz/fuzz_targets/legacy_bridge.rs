//! Fuzzer-chosen interleavings on one `legacy::Bridge` (either mode, tiny
//! limits, a virtual clock): client requests from a dictionary (requests
//! with integer, string, float and huge ids, notifications, answers to
//! server requests, GET, DELETE, batches, garbage), backend stream bytes
//! (heads good and bad, endpoints on every kind of URI, answers to the ids
//! in flight and to the bridge's own, progress, server requests, comments,
//! CRLF, raw bytes, any split), POST outcomes, clients leaving, time.
//!
//! Never panic, and:
//! - at most one POST in flight; nothing opened or POSTed after `Closed`,
//!   which comes at most once; only the POST in flight is abandoned;
//! - a message is POSTed again only right after its POST did not go out
//!   whole on a pooled connection: once, on a fresh connection, the same
//!   bytes. One that went out whole, answered or not, never is;
//! - a client stream gets a whole answer, or an SSE head, events and an end,
//!   in that order; nothing after its end, no end twice;
//! - the buffers stay within their limits (`Bridge::buffered`);
//! - once the bridge is closed, every client stream that did not leave has
//!   ended with a complete answer, and every JSON-RPC request among
//!   them got exactly one answer (a response or error, the last message of
//!   its stream) carrying its own id, byte for byte; no other message on its
//!   stream is an answer.
#![no_main]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sluice_core::http1::Header;
use sluice_core::jsonrpc::{self, Classified, Kind};
use sluice_core::legacy::{Bridge, BridgeConfig, Mode, Output, PostAnswer, PostOutcome};
use sluice_core::upstream::{AnswerPart, Request};

/// Ids clients and the backend pick from: equal values in other spellings
/// included, so the bridge's id matching is exercised.
const IDS: [&str; 9] = [
    "1",
    "\"1\"",
    "1.0",
    "\"a\"",
    "12345678901234567890",
    "-0",
    "1e0",
    "\"sluice-bridge-1\"",
    "\"sluice-bridge-2\"",
];
const METHODS: [&str; 5] = [
    "tools/call",
    "initialize",
    "ping",
    "resources/read",
    "prompts/get",
];
const TOKENS: [&str; 3] = ["\"p\"", "7", "7.0"];

#[derive(Arbitrary, Debug)]
enum Op {
    /// A client request on a new stream.
    Attach {
        shape: u8,
        id: u8,
        method: u8,
        token: Option<u8>,
        accept: u8,
    },
    /// Stream bytes, split at `split` (0: whole).
    Backend {
        piece: Piece,
        split: u8,
    },
    /// The POST in flight (or a stale one) finishes.
    PostDone {
        outcome: u8,
        stale: bool,
    },
    StreamClosed {
        error: bool,
    },
    ClientGone {
        which: u8,
    },
    Advance {
        ms: u16,
    },
    Close,
}

#[derive(Arbitrary, Debug)]
enum Piece {
    Head(u8),
    Endpoint(u8),
    Answer { id: u8, error: bool },
    Progress { token: u8 },
    ServerRequest { id: u8, ping: bool },
    Notification,
    Comment,
    Crlf(u8),
    Raw(Vec<u8>),
}

fn client_request(
    shape: u8,
    id: &str,
    method: &str,
    token: Option<&str>,
    accept: u8,
) -> Request {
    let meta = token
        .map(|t| format!(",\"_meta\":{{\"progressToken\":{t}}}"))
        .unwrap_or_default();
    let (verb, body) = match shape % 9 {
        0..=3 => (
            "POST",
            format!(
                "{{\"jsonrpc\":\"2.0\",\"id\":{id},\"method\":\"{method}\",\"params\":{{\"name\":\"x\"{meta}}}}}"
            ),
        ),
        4 => (
            "POST",
            "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}".to_owned(),
        ),
        5 => (
            "POST",
            format!("{{\"jsonrpc\":\"2.0\",\"id\":{id},\"result\":{{}}}}"),
        ),
        6 => ("GET", String::new()),
        7 => ("DELETE", String::new()),
        _ => match shape / 9 % 4 {
            0 => (
                "POST",
                format!("[{{\"jsonrpc\":\"2.0\",\"id\":{id},\"method\":\"a\"}}]"),
            ),
            1 => ("POST", "{\"jsonrpc\":".to_owned()),
            2 => ("PUT", String::new()),
            _ => (
                "POST",
                format!("{{\"jsonrpc\":\"2.0\",\"id\":null,\"method\":\"{method}\"}}"),
            ),
        },
    };
    let accept = match accept % 4 {
        0 => "application/json, text/event-stream",
        1 => "application/json",
        2 => "text/event-stream",
        _ => "*/*",
    };
    Request {
        method: verb.to_owned(),
        target: "/sse".to_owned(),
        headers: vec![
            Header::new("Host", "backend:9000"),
            Header::new("Accept", accept),
            Header::new("Authorization", "Bearer t"),
        ],
        body: Bytes::from(body),
    }
}

fn event(kind: &str, data: &str) -> Vec<u8> {
    format!("event: {kind}\ndata: {data}\n\n").into_bytes()
}

fn backend_bytes(piece: &Piece) -> Vec<u8> {
    let id = |i: &u8| IDS[*i as usize % IDS.len()];
    match piece {
        Piece::Head(h) => match h % 6 {
            0 => b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec(),
            1 => b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n\r\n".to_vec(),
            2 => b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}".to_vec(),
            3 => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec(),
            4 => b"HTTP/1.1 100 Continue\r\n\r\n".to_vec(),
            _ => b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: 40\r\n\r\n".to_vec(),
        },
        Piece::Endpoint(e) => {
            let uri = [
                "/messages?sessionId=abc",
                "messages/?session_id=f",
                "http://backend:9000/m",
                "http://elsewhere:1/m",
                "https://backend:9000/m",
                "",
                "ftp://x/y",
                "//backend:9000/../m",
                "?q=1",
                "/a b",
            ];
            event("endpoint", uri[*e as usize % uri.len()])
        }
        Piece::Answer { id: i, error } => {
            let body = if *error {
                format!("{{\"jsonrpc\":\"2.0\",\"id\":{},\"error\":{{\"code\":-32001,\"message\":\"no\"}}}}", id(i))
            } else {
                format!("{{\"jsonrpc\":\"2.0\",\"id\":{},\"result\":{{\"ok\":true}}}}", id(i))
            };
            event("message", &body)
        }
        Piece::Progress { token } => event(
            "message",
            &format!(
                "{{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{{\"progressToken\":{},\"progress\":1}}}}",
                TOKENS[*token as usize % TOKENS.len()]
            ),
        ),
        Piece::ServerRequest { id: i, ping } => event(
            "message",
            &format!(
                "{{\"jsonrpc\":\"2.0\",\"id\":{},\"method\":\"{}\"}}",
                id(i),
                if *ping { "ping" } else { "sampling/createMessage" }
            ),
        ),
        Piece::Notification => event(
            "message",
            "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{\"data\":\"x\"}}",
        ),
        Piece::Comment => b": ping\r\n\r\n".to_vec(),
        Piece::Crlf(i) => format!(
            "event: message\r\ndata: {{\"jsonrpc\":\"2.0\",\"id\":{},\"result\":{{}}}}\r\n\r\n",
            IDS[*i as usize % IDS.len()]
        )
        .into_bytes(),
        Piece::Raw(bytes) => bytes.clone(),
    }
}

#[derive(Default)]
struct ClientSeen {
    parts: Vec<AnswerPart>,
    ended: bool,
    gone: bool,
    /// The raw id of a JSON-RPC request, if it was one.
    request_id: Option<Vec<u8>>,
}

struct World {
    bridge: Bridge,
    config: Arc<BridgeConfig>,
    now: Instant,
    clients: BTreeMap<u64, ClientSeen>,
    next_stream: u64,
    /// The POST in flight: its id, bytes and whether it went on a fresh
    /// connection.
    in_flight: Option<(u64, Bytes, bool)>,
    /// The bytes of a POST reported not sent on a pooled connection: the
    /// next POST must be them, fresh.
    resend_due: Option<Bytes>,
    closed: bool,
    /// The chunked framing of the backend stream, when that head was sent
    /// (the bytes that follow must be chunks to mean anything).
    chunked: bool,
}

impl World {
    fn drain(&mut self) {
        while let Some(out) = self.bridge.poll_output() {
            match out {
                Output::OpenStream(_) => assert!(!self.closed, "opened after Closed"),
                Output::Post {
                    id, bytes, fresh, ..
                } => {
                    assert!(!self.closed, "POST after Closed");
                    assert!(self.in_flight.is_none(), "two POSTs in flight");
                    if fresh {
                        let due = self.resend_due.take();
                        assert_eq!(due.as_ref(), Some(&bytes), "a fresh POST not a re-send");
                    } else {
                        assert!(self.resend_due.is_none(), "the lost POST not sent again");
                    }
                    self.in_flight = Some((id, bytes, fresh));
                }
                Output::AbandonPost { id } => {
                    let in_flight = self.in_flight.take().map(|p| p.0);
                    assert_eq!(in_flight, Some(id), "abandoned a POST not in flight");
                }
                Output::ToClient { stream, part } => {
                    let c = self
                        .clients
                        .get_mut(&stream)
                        .expect("a part for an unknown stream");
                    assert!(!c.ended, "a part after the end of stream {stream}");
                    // Whole alone, or Stream, Events, End: in order.
                    let ok = match (c.parts.last(), &part) {
                        (None, AnswerPart::Whole { .. } | AnswerPart::Stream(_)) => true,
                        (
                            Some(AnswerPart::Stream(_) | AnswerPart::Event(_)),
                            AnswerPart::Event(_) | AnswerPart::End,
                        ) => true,
                        _ => false,
                    };
                    assert!(ok, "{part:?} after {:?} on stream {stream}", c.parts.last());
                    c.parts.push(part);
                }
                Output::EndClient { stream } => {
                    let c = self
                        .clients
                        .get_mut(&stream)
                        .expect("end of an unknown stream");
                    assert!(!c.ended, "stream {stream} ended twice");
                    assert!(
                        c.parts.last().is_some_and(AnswerPart::is_last),
                        "stream {stream} ended before its answer was whole: {:?}",
                        c.parts
                    );
                    c.ended = true;
                }
                Output::CloseStream => {}
                Output::Closed { .. } => {
                    assert!(!self.closed, "Closed twice");
                    self.closed = true;
                    self.in_flight = None;
                    self.resend_due = None;
                }
            }
        }
        let b = self.bridge.buffered();
        let l = &self.config.limits;
        assert!(b.queued_posts <= l.max_queued_posts + 1, "{b:?}");
        assert!(b.pending <= l.max_pending, "{b:?}");
        assert!(
            b.queued_server_messages <= l.max_queued_server_messages,
            "{b:?}"
        );
        assert!(b.queued_server_bytes <= l.max_queued_server_bytes, "{b:?}");
        assert_eq!(self.closed, self.bridge.is_closed());
    }

    fn op(&mut self, op: &Op) {
        match op {
            Op::Attach {
                shape,
                id,
                method,
                token,
                accept,
            } => {
                let req = client_request(
                    *shape,
                    IDS[*id as usize % 7],
                    METHODS[*method as usize % METHODS.len()],
                    token.map(|t| TOKENS[t as usize % TOKENS.len()]),
                    *accept,
                );
                let request_id = match jsonrpc::classify(&req.body, &self.config.limits.json) {
                    Ok(Classified::Single(m))
                        if m.kind == Kind::Request && req.method == "POST" =>
                    {
                        m.id.map(<[u8]>::to_vec)
                    }
                    _ => None,
                };
                let stream = self.next_stream;
                self.next_stream += 1;
                self.clients.insert(
                    stream,
                    ClientSeen {
                        request_id,
                        ..ClientSeen::default()
                    },
                );
                self.bridge.attach(stream, req, self.now);
            }
            Op::Backend { piece, split } => {
                let mut bytes = backend_bytes(piece);
                if let Piece::Head(h) = piece {
                    self.chunked = h % 6 == 0;
                } else if self.chunked && !matches!(piece, Piece::Raw(_)) {
                    let mut framed = format!("{:x}\r\n", bytes.len()).into_bytes();
                    framed.extend_from_slice(&bytes);
                    framed.extend_from_slice(b"\r\n");
                    bytes = framed;
                }
                let at = (*split as usize).min(bytes.len());
                if at == 0 {
                    self.bridge.stream_data(&bytes, self.now);
                } else {
                    self.bridge.stream_data(&bytes[..at], self.now);
                    self.drain();
                    self.bridge.stream_data(&bytes[at..], self.now);
                }
            }
            Op::PostDone { outcome, stale } => {
                let answered = |status| {
                    PostOutcome::Answered(PostAnswer {
                        status,
                        excerpt: b"x".to_vec(),
                        reusable: true,
                        session_id: None,
                        content_type: String::new(),
                    })
                };
                let outcome = match outcome % 8 {
                    0 | 1 => answered(202),
                    2 => answered(200),
                    3 => answered(404),
                    4 => answered(500),
                    5 => PostOutcome::NotSent {
                        reused: false,
                        detail: "connection refused".into(),
                    },
                    6 => PostOutcome::NotSent {
                        reused: true,
                        detail: "broken pipe".into(),
                    },
                    _ => PostOutcome::Unanswered {
                        detail: "connection reset".into(),
                    },
                };
                let id = match (self.in_flight.take(), stale) {
                    (Some((id, bytes, fresh)), false) => {
                        if !fresh && matches!(outcome, PostOutcome::NotSent { reused: true, .. }) {
                            self.resend_due = Some(bytes);
                        }
                        id
                    }
                    (Some(p), true) => {
                        let id = p.0 + 1;
                        self.in_flight = Some(p);
                        id
                    }
                    (None, _) => 0,
                };
                self.bridge.post_done(id, outcome, self.now);
            }
            Op::StreamClosed { error } => self.bridge.stream_closed(*error, self.now),
            Op::ClientGone { which } => {
                let live: Vec<u64> = self
                    .clients
                    .iter()
                    .filter(|(_, c)| !c.ended && !c.gone)
                    .map(|(s, _)| *s)
                    .collect();
                if let Some(&stream) = live.get(*which as usize % live.len().max(1)) {
                    self.clients.get_mut(&stream).map(|c| c.gone = true);
                    self.bridge.client_gone(stream, self.now);
                }
            }
            Op::Advance { ms } => {
                self.now += Duration::from_millis(u64::from(*ms) * 16);
                if self.bridge.poll_timeout().is_some_and(|t| t <= self.now) {
                    self.bridge.handle_timeout(self.now);
                }
            }
            Op::Close => self.bridge.close(),
        }
        self.drain();
    }

    /// After the bridge closed: every client that stayed has its answer.
    fn check_answers(&self) {
        for (stream, c) in &self.clients {
            if c.gone {
                continue;
            }
            assert!(c.ended, "stream {stream} never ended");
            let Some(id) = &c.request_id else { continue };
            let messages = messages(&c.parts);
            let (last, before) = messages.split_last().unwrap_or_else(|| {
                panic!("request stream {stream} got no message: {:?}", c.parts)
            });
            let json = jsonrpc::Limits::default();
            for m in before {
                if let Ok(Classified::Single(m)) = jsonrpc::classify(m, &json) {
                    assert!(
                        !matches!(m.kind, Kind::Response | Kind::Error),
                        "an answer before the last message on stream {stream}"
                    );
                }
            }
            let Ok(Classified::Single(m)) = jsonrpc::classify(last, &json) else {
                panic!(
                    "the last message of stream {stream} is not one message: {:?}",
                    String::from_utf8_lossy(last)
                );
            };
            assert!(
                matches!(m.kind, Kind::Response | Kind::Error),
                "not an answer: {:?}",
                String::from_utf8_lossy(last)
            );
            assert_eq!(
                m.id,
                Some(&id[..]),
                "stream {stream}: answer id {:?} for request id {:?}",
                m.id.map(String::from_utf8_lossy),
                String::from_utf8_lossy(id)
            );
        }
    }
}

/// The JSON-RPC messages of one complete answer (JSON body or events).
fn messages(parts: &[AnswerPart]) -> Vec<Vec<u8>> {
    parts
        .iter()
        .filter_map(|p| match p {
            AnswerPart::Whole { body, .. } if !body.is_empty() => Some(body.to_vec()),
            AnswerPart::Event(data) => Some(data.to_vec()),
            _ => None,
        })
        .collect()
}

#[derive(Arbitrary, Debug)]
struct Input {
    per_request: bool,
    ops: Vec<Op>,
}

fuzz_target!(|input: Input| {
    let mut config = BridgeConfig::default();
    config.limits.max_queued_posts = 3;
    config.limits.max_pending = 4;
    config.limits.max_queued_server_messages = 2;
    config.limits.max_queued_server_bytes = 256;
    config.limits.sse.max_event_bytes = 512;
    let config = Arc::new(config);
    let mode = if input.per_request {
        Mode::PerRequest
    } else {
        Mode::Session
    };
    let now = Instant::now();
    let mut w = World {
        bridge: Bridge::new(config.clone(), mode, Some("sid".to_owned()), now),
        config,
        now,
        clients: BTreeMap::new(),
        next_stream: 1,
        in_flight: None,
        resend_due: None,
        closed: false,
        chunked: false,
    };
    for op in input.ops.iter().take(256) {
        w.op(op);
    }
    w.bridge.close();
    w.drain();
    assert!(w.closed, "close() must end the bridge");
    w.check_answers();
});
