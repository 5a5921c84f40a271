//! Fuzzer-chosen inputs on one `legacy::Probe` (the `auto` transport probe),
//! on a virtual clock: either entry (`Probe::new`, or `Probe::after_answer`
//! with a status and body from a dictionary), connects that succeed or fail,
//! upstream bytes (POST answers, DELETE answers, SSE heads, events, chunk
//! frames from a dictionary, split anywhere, or raw bytes), clean ends,
//! failed reads, time, timers fired early, inputs past the deadline — in any
//! order, fitting the state or not.
//!
//! The input is read as a little program (see `Ops`), so the seeds under
//! `fuzz/seeds/probe/` are readable scripts: byte 0 picks the entry, bytes
//! 1–3 the limits and the timeout, then one opcode byte per operation.
//!
//! Never panic, and:
//! - nothing after `Done`, which comes at most once, last; `poll_timeout`
//!   is the deadline (start + timeout) until then and `None` after;
//! - one connection at a time: `Connect` only when none is held or being
//!   opened, `Send` once per connection right after it opened, `Close` only
//!   for a connection held or being opened, and `Done` with none held;
//! - the probe concludes by the deadline: any input at or past it ends it,
//!   with a timeout unless it had concluded before;
//! - a conclusion only with the evidence for it: `Streamable { status }`
//!   only from a 2xx, or a 400/404/405 with a JSON-RPC error, that was
//!   given to `after_answer` (then with no connection at all) or read on
//!   the POST's connection; `Legacy { endpoint }` only from a GET sent
//!   after a 400/404/405, whose connection read an SSE head, an `endpoint`
//!   event and the endpoint's text; a DELETE only with the session id the
//!   POST's answer carried, never after `after_answer`;
//! - splitting the upstream's bytes differently does not change the result
//!   (its kind, stage, statuses and endpoint; error texts may differ) nor the
//!   requests sent.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use sluice_core::http1::Header;
use sluice_core::jsonrpc;
use sluice_core::legacy::{
    Cleanup, FirstAnswer, Probe, ProbeConfig, ProbeFailure, ProbeOutput, ProbeResult, ProbeStep,
    judge_answer,
};

const JSONRPC_ERROR: &str =
    r#"{"jsonrpc":"2.0","error":{"code":-32000,"message":"Bad Request"},"id":null}"#;

/// Upstream byte pieces: answers to each of the probe's requests, and
/// stream pieces.
fn piece(i: u8) -> Vec<u8> {
    let endpoint = "event: endpoint\ndata: /messages?sessionId=abc\n\n";
    let s: String = match i % 26 {
        0 => "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}".into(),
        1 => "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nMcp-Session-Id: s-1\r\n\r\n".into(),
        2 => "HTTP/1.1 202 Accepted\r\nMcp-Session-Id: s 2\r\nContent-Length: 0\r\n\r\n".into(),
        3 => "HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 18\r\n\r\nMethod Not Allowed".into(),
        4 => "HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nCanno\r\n0\r\n\r\n".into(),
        5 => format!(
            "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{JSONRPC_ERROR}",
            JSONRPC_ERROR.len()
        ),
        6 => "HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\nbad".into(),
        7 => "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer\r\nContent-Length: 0\r\n\r\n".into(),
        8 => "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n".into(),
        9 => "HTTP/1.1 100 Continue\r\n\r\n".into(),
        10 => "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".into(),
        11 => "HTTP/1.1 405 X\r\nContent-Length: 0\r\n\r\n".into(),
        12 => "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n".into(),
        13 => "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n".into(),
        14 => endpoint.into(),
        15 => "event: endpoint\r\ndata: /m\r\ndata: two\r\n\r\n".into(),
        16 => ": ping\n\n".into(),
        17 => "id: 0\ndata:\n\n".into(),
        18 => "event: message\ndata: {}\n\n".into(),
        19 => format!("{:x}\r\n{endpoint}\r\n", endpoint.len()),
        20 => "0\r\n\r\n".into(),
        21 => format!("HTTP/1.1 200 OK\r\nX-Filler: {}\r\n", "f".repeat(700)),
        22 => "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: 10\r\n\r\n".into(),
        23 => format!("event: endpoint\ndata: /{}\n\n", "e".repeat(100)),
        24 => "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nMcp-Session-Id: s-3\r\nContent-Length: 2\r\n\r\n{}".into(),
        _ => "\0\u{ff} HTTP/1.1 20".into(),
    };
    s.into_bytes()
}

/// The statuses and bodies `after_answer` may start from.
const STATUSES: [u16; 10] = [200, 202, 400, 404, 405, 401, 403, 500, 301, 100];

fn first_body(i: u8) -> &'static str {
    match i % 4 {
        0 => "",
        1 => JSONRPC_ERROR,
        2 => "Cannot POST /sse",
        _ => &JSONRPC_ERROR[..20],
    }
}

/// A cursor over the input.
struct Ops<'a>(&'a [u8]);

impl Ops<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    fn byte_or(&mut self, default: u8) -> u8 {
        self.byte().unwrap_or(default)
    }
}

#[derive(Default, PartialEq, Debug)]
enum Conn {
    #[default]
    None,
    Connecting,
    Open {
        /// The request written on it.
        sent: Option<Vec<u8>>,
        /// Everything fed while it was open.
        fed: Vec<u8>,
    },
}

/// One finished connection: its request and what it read.
struct Past {
    sent: Vec<u8>,
    fed: Vec<u8>,
}

struct World {
    probe: Probe,
    now: Instant,
    deadline: Instant,
    /// `after_answer`: its status and body.
    first: Option<(u16, &'static str)>,
    json: jsonrpc::Limits,
    conn: Conn,
    past: Vec<Past>,
    result: Option<ProbeResult>,
    connects: usize,
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

impl World {
    fn drain(&mut self) {
        while let Some(out) = self.probe.poll_output() {
            assert!(self.result.is_none(), "{out:?} after Done");
            match out {
                ProbeOutput::Connect => {
                    assert_eq!(self.conn, Conn::None, "Connect while holding one");
                    self.connects += 1;
                    let most = if self.first.is_some() { 1 } else { 2 };
                    assert!(self.connects <= most, "more connections than steps");
                    self.conn = Conn::Connecting;
                }
                ProbeOutput::Send(bytes) => {
                    self.check_request(&bytes);
                    match &mut self.conn {
                        Conn::Open { sent, fed } => {
                            assert!(sent.is_none(), "two requests on one connection");
                            assert!(fed.is_empty(), "a request after reading");
                            *sent = Some(bytes.to_vec());
                        }
                        other => panic!("Send on {other:?}"),
                    }
                }
                ProbeOutput::Close => match std::mem::take(&mut self.conn) {
                    Conn::None => panic!("Close with no connection"),
                    Conn::Connecting => {}
                    // Opened past the deadline: closed before any request.
                    Conn::Open { sent: None, fed } => assert!(fed.is_empty()),
                    Conn::Open {
                        sent: Some(sent),
                        fed,
                    } => self.past.push(Past { sent, fed }),
                },
                ProbeOutput::Done(result) => {
                    assert_eq!(self.conn, Conn::None, "Done with a connection held");
                    self.check_evidence(&result);
                    self.result = Some(result);
                }
            }
        }
        assert_eq!(self.probe.is_done(), self.result.is_some());
        let expect = self.result.is_none().then_some(self.deadline);
        assert_eq!(self.probe.poll_timeout(), expect);
    }

    /// A request goes out only when the evidence so far calls for it.
    fn check_request(&self, bytes: &[u8]) {
        let post_answer = self.past.first().map(|p| &p.fed[..]);
        if bytes.starts_with(b"POST ") {
            assert!(self.first.is_none() && self.past.is_empty(), "a late POST");
        } else if bytes.starts_with(b"DELETE ") {
            assert!(self.first.is_none(), "a DELETE after after_answer");
            let answer = post_answer.expect("a DELETE with no POST before it");
            let head = String::from_utf8_lossy(bytes);
            let sid = head
                .lines()
                .find_map(|l| l.strip_prefix("Mcp-Session-Id: "))
                .expect("a DELETE without a session");
            assert!(
                contains(answer, format!("Mcp-Session-Id: {sid}").as_bytes()),
                "a DELETE of a session the POST's answer did not name: {sid}"
            );
        } else if bytes.starts_with(b"GET ") {
            let allowed = match (self.first, post_answer) {
                (Some((status, _)), None) => matches!(status, 400 | 404 | 405),
                (None, Some(answer)) => [&b" 400"[..], b" 404", b" 405"]
                    .iter()
                    .any(|s| contains(answer, s)),
                _ => false,
            };
            assert!(allowed, "a GET without a 400/404/405 before it");
        } else {
            panic!("an unknown request: {:?}", String::from_utf8_lossy(bytes));
        }
    }

    fn check_evidence(&self, result: &ProbeResult) {
        match result {
            ProbeResult::Streamable { status, cleanup } => {
                let verdict = |body: &[u8]| judge_answer(*status, body, &self.json);
                match self.first {
                    Some((s, body)) => {
                        assert_eq!(s, *status);
                        assert_eq!(verdict(body.as_bytes()), ProbeStep::Streamable);
                        assert_eq!(
                            self.connects, 0,
                            "after_answer concluded Streamable with I/O"
                        );
                    }
                    None => {
                        let post = self.past.first().expect("Streamable with no POST");
                        assert!(post.sent.starts_with(b"POST "));
                        assert!(
                            contains(&post.fed, format!(" {status}").as_bytes()),
                            "Streamable {status} that was never read"
                        );
                        assert!(
                            (200..300).contains(status)
                                || (matches!(status, 400 | 404 | 405)
                                    && contains(&post.fed, b"\"error\"")),
                            "Streamable from {status}"
                        );
                    }
                }
                let deleted = self.past.get(1).filter(|p| p.sent.starts_with(b"DELETE "));
                match cleanup {
                    Cleanup::NotNeeded => {
                        assert!(self.connects <= 1, "a cleanup connection, yet NotNeeded")
                    }
                    Cleanup::Answered(s) => {
                        let d = deleted.expect("a cleanup answered with no DELETE sent");
                        assert!(contains(&d.fed, format!(" {s}").as_bytes()));
                    }
                    Cleanup::Failed(_) => assert_eq!(self.connects, 2, "no cleanup to fail"),
                }
            }
            ProbeResult::Legacy { endpoint } => {
                let get = self
                    .past
                    .last()
                    .filter(|p| p.sent.starts_with(b"GET "))
                    .expect("Legacy with no GET");
                let fed = &get.fed;
                assert!(contains(fed, b"text/event-stream"), "Legacy without SSE");
                assert!(
                    contains(fed, b"endpoint"),
                    "Legacy without an endpoint event"
                );
                for line in endpoint.split('\n') {
                    assert!(
                        contains(fed, line.as_bytes()),
                        "an endpoint never read: {endpoint:?}"
                    );
                }
            }
            ProbeResult::Inconclusive(_) => {}
        }
    }

    /// Every input goes through here: past the deadline, it ends the probe
    /// with a timeout unless it had concluded.
    fn input(&mut self, f: impl FnOnce(&mut Probe, Instant)) {
        let was_done = self.probe.is_done();
        f(&mut self.probe, self.now);
        self.drain();
        if self.now >= self.deadline {
            assert!(self.result.is_some(), "no conclusion at the deadline");
            if !was_done {
                let timed_out = match self.result.as_ref().unwrap() {
                    ProbeResult::Inconclusive(f)
                    | ProbeResult::Streamable {
                        cleanup: Cleanup::Failed(f),
                        ..
                    } => matches!(f, ProbeFailure::Timeout { .. }),
                    _ => false,
                };
                assert!(timed_out, "concluded past the deadline without a timeout");
            }
        }
    }

    fn fed(&mut self, bytes: &[u8]) {
        if let Conn::Open { fed, .. } = &mut self.conn {
            fed.extend_from_slice(bytes);
        }
    }
}

/// Runs the program; `split` says whether feeds honour their split point.
/// Returns the result's shape and the requests sent.
fn run(data: &[u8], split: bool) -> (String, Vec<Vec<u8>>) {
    let mut ops = Ops(data);
    let entry = ops.byte_or(0);
    let limits = ops.byte_or(0);
    let timeout = Duration::from_millis(100 * (1 + u64::from(ops.byte_or(99))));
    let mut config = ProbeConfig::new("backend:9000", "/sse", timeout);
    if limits & 1 == 1 {
        config.http.max_head_bytes = 512;
    }
    if limits & 2 == 2 {
        config.sse.max_event_bytes = 64;
    }
    let json = config.json;
    let start = Instant::now();
    let (probe, first) = if entry % 2 == 0 {
        (Probe::new(config, start), None)
    } else {
        let status = STATUSES[usize::from(entry / 2) % STATUSES.len()];
        let body = first_body(entry / 32);
        let headers = [
            Header::new("Host", "proxy"),
            Header::new("Authorization", "Bearer t"),
            Header::new("Mcp-Session-Id", "client"),
        ];
        let answer = FirstAnswer {
            request_headers: &headers,
            status,
            body: body.as_bytes(),
        };
        (
            Probe::after_answer(config, answer, start),
            Some((status, body)),
        )
    };
    let mut w = World {
        probe,
        now: start,
        deadline: start + timeout,
        first,
        json,
        conn: Conn::None,
        past: Vec::new(),
        result: None,
        connects: 0,
    };
    w.drain();
    while let Some(op) = ops.byte() {
        match op % 10 {
            0 => {
                if w.conn == Conn::Connecting {
                    w.conn = Conn::Open {
                        sent: None,
                        fed: Vec::new(),
                    };
                }
                w.input(|p, now| p.connected(now));
            }
            1 => {
                if w.conn == Conn::Connecting {
                    w.conn = Conn::None;
                }
                w.input(|p, now| p.connect_failed("refused", now));
            }
            2 | 3 => {
                let bytes = piece(ops.byte_or(0));
                let at = usize::from(ops.byte_or(0)) % (bytes.len() + 1);
                if split && at > 0 {
                    w.fed(&bytes[..at]);
                    w.input(|p, now| p.feed(&bytes[..at], now));
                    w.fed(&bytes[at..]);
                    w.input(|p, now| p.feed(&bytes[at..], now));
                } else {
                    w.fed(&bytes);
                    w.input(|p, now| p.feed(&bytes, now));
                }
            }
            4 => {
                let n = usize::from(ops.byte_or(0) % 32);
                let raw: Vec<u8> = (0..n).filter_map(|_| ops.byte()).collect();
                w.fed(&raw);
                w.input(|p, now| p.feed(&raw, now));
            }
            5 => w.input(|p, now| p.eof(now)),
            6 => w.input(|p, now| p.failed("reset", now)),
            7 => {
                w.now += Duration::from_millis(50 * u64::from(ops.byte_or(1)));
                if w.probe.poll_timeout().is_some_and(|t| t <= w.now) {
                    w.input(|p, now| p.handle_timeout(now));
                }
            }
            8 => {
                // A timer fired early (or late): only the deadline counts.
                let before = w.probe.is_done();
                w.input(|p, now| p.handle_timeout(now));
                if w.now < w.deadline {
                    assert_eq!(w.probe.is_done(), before, "an early timer concluded");
                }
            }
            _ => w.now = w.deadline + Duration::from_millis(u64::from(ops.byte_or(0))),
        }
    }
    // The deadline always comes.
    w.now = w.now.max(w.deadline);
    w.input(|p, now| p.handle_timeout(now));
    let result = w.result.take().expect("no conclusion after the deadline");
    let mut sent: Vec<Vec<u8>> = w.past.into_iter().map(|p| p.sent).collect();
    if let Conn::Open { sent: Some(s), .. } = w.conn {
        sent.push(s);
    }
    (shape(&result), sent)
}

/// The result without its error texts.
fn shape(result: &ProbeResult) -> String {
    fn failure(f: &ProbeFailure) -> String {
        match f {
            ProbeFailure::ConnectFailed { stage, .. } => format!("connect {stage:?}"),
            ProbeFailure::Closed { stage, error } => {
                format!("closed {stage:?} {}", error.is_some())
            }
            ProbeFailure::BadAnswer { stage, .. } => format!("bad {stage:?}"),
            ProbeFailure::Timeout { stage, waited_ms } => format!("timeout {stage:?} {waited_ms}"),
            ProbeFailure::Status { status } => format!("status {status}"),
            ProbeFailure::NotLegacy(e) => {
                let d = format!("{e:?}");
                let name = d
                    .split([' ', '{', '('])
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                format!("not legacy {name} {}", e.status())
            }
            other => format!("{other:?}"),
        }
    }
    match result {
        ProbeResult::Streamable { status, cleanup } => format!(
            "streamable {status} {}",
            match cleanup {
                Cleanup::NotNeeded => "none".to_owned(),
                Cleanup::Answered(s) => format!("answered {s}"),
                Cleanup::Failed(f) => failure(f),
            }
        ),
        ProbeResult::Legacy { endpoint } => format!("legacy {endpoint}"),
        ProbeResult::Inconclusive(f) => failure(f),
    }
}

fuzz_target!(|data: &[u8]| {
    let split = run(data, true);
    let whole = run(data, false);
    assert_eq!(split, whole, "the split changed the outcome");
});
