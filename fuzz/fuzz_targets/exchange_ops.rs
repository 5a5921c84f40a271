//! Sequences of fuzzer-chosen operations on an `Exchange`, on a virtual
//! clock: client bytes (request fragments from a dictionary, pieces of them,
//! or raw bytes), connects, upstream bytes (response fragments: JSON, chunked
//! SSE, until-close SSE, 1xx, garbage), a message upstream instead (the
//! typed seam: whole answers, stream heads, events and ends, in any order),
//! the `auto` transport probe riding on the request (`probe_transport`, and
//! the driver's conclusion at any time), closes on either side and time.
//!
//! Never panic, and per exchange:
//! - no output after `Finished`, and at most one `Finished`;
//! - each `Connect` is released at most once, and all are released by the
//!   time the exchange finishes;
//! - a timer handled before its deadline does nothing;
//! - while a refusal is held for the transport probe, the client is sent
//!   nothing, and the evidence carries at most `PROBE_BODY_MAX` body bytes;
//! - what went to the client, once finished with `KeepAlive` (or
//!   `Graceful`), is a complete, valid HTTP response per `http1` (after any
//!   `100 Continue`), with no byte after it;
//! - what went to the upstream is one request whose path no server could
//!   read as another (no `.`/`..` segment once percent-decoded and cut at
//!   `;`, no `%2f`/`%5c`, no `\`, still under its route's upstream prefix),
//!   whose method the endpoint takes (`POST`, `GET`, `DELETE`, `OPTIONS`; on
//!   `/.well-known` `GET`, `HEAD`, `OPTIONS`), and that carries a body only if
//!   it is a `POST` (request hooks read POST bodies only). Checked by a
//!   reading of the request independent of `route::check_path`; the same
//!   holds for a request dispatched to a message upstream.
//!
//! Client bytes go in no faster than `client_read_budget` lets them (the
//! rest waits, as in the kernel), and after a `KeepAlive` finish the next
//! exchange starts with the leftover bytes, as a driver's connection loop does; or, when the input says so, the
//! finished exchange keeps receiving inputs to check it stays silent.
#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sluice_core::exchange::{
    ClientInfo, Close, Exchange, ExchangeConfig, ExchangeLimits, HookFilter, Output,
    PROBE_BODY_MAX, Timeouts, UpstreamEnd,
};
use sluice_core::guard::HostGuard;
use sluice_core::http1::{self, BodyFraming, ChunkedDecoder, Limits, Parsed};
use sluice_core::route::{Route, Router};
use sluice_core::sse::SseLimits;
use sluice_core::upstream::{AnswerHead, AnswerPart, Request};

const CALL: &str =
    r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{}}}"#;
const REFUSAL: &str = r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32000,"message":"No session"}}"#;
const NOTE: &str = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
const ANSWER: &str = r#"{"jsonrpc":"2.0","id":1,"result":{"content":[]}}"#;
const PROGRESS: &str = "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progressToken\":1,\"progress\":1}}\n\n";

fn chunk(data: &str) -> String {
    format!("{:x}\r\n{data}\r\n", data.len())
}

fn post(extra: &str, body: &str) -> String {
    format!(
        "POST /mcp HTTP/1.1\r\nHost: localhost\r\nAccept: application/json, text/event-stream\r\n\
         Content-Type: application/json\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

fn client_dictionary() -> Vec<Vec<u8>> {
    let full = post("", CALL);
    let head_end = full.find("\r\n\r\n").unwrap() + 4;
    let half = CALL.len() / 2;
    [
        full.clone(),
        full[..head_end].to_owned(),
        CALL.to_owned(),
        post("Connection: close\r\n", CALL),
        format!(
            "POST /mcp HTTP/1.0\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n{CALL}",
            CALL.len()
        ),
        "GET /mcp HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n\r\n".to_owned(),
        format!(
            "POST /mcp HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n{}",
            chunk(&CALL[..half])
        ),
        format!("{}0\r\n\r\n", chunk(&CALL[half..])),
        format!(
            "POST /mcp HTTP/1.1\r\nHost: localhost\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n",
            CALL.len()
        ),
        post("Origin: http://evil.example\r\n", CALL),
        "POST /mcp HTTP/1.1\r\nHost: evil.example\r\nContent-Length: 0\r\n\r\n".to_owned(),
        "\r\n".to_owned(),
        "GARBAGE / HTTP/9.9\r\n\r\n".to_owned(),
        "HEAD /mcp HTTP/1.1\r\nHost: localhost\r\n\r\n".to_owned(),
        post("", NOTE),
        post("", CALL).replace("application/json, text/event-stream", "text/event-stream"),
        "DELETE /mcp HTTP/1.1\r\nHost: localhost\r\nMcp-Session-Id: s\r\n\r\n".to_owned(),
        "GET /other HTTP/1.1\r\nHost: localhost\r\n\r\n".to_owned(),
        format!("{}{}", post("", CALL), post("", NOTE)),
        "POST /mcp HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"
            .to_owned(),
        // Methods and paths an upstream must never see (issue 11, items 4 and 5).
        post("", CALL).replacen("POST", "PUT", 1),
        post("", CALL).replacen("POST", "post", 1),
        post("", CALL).replacen("POST", "GET", 1),
        format!(
            "GET /mcp HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n{}0\r\n\r\n",
            chunk(CALL)
        ),
        "OPTIONS /mcp HTTP/1.1\r\nHost: localhost\r\n\r\n".to_owned(),
        "HEAD /.well-known/oauth-protected-resource HTTP/1.1\r\nHost: localhost\r\n\r\n"
            .to_owned(),
        post("", CALL).replacen("/mcp", "/tenant/../../mcp", 1),
        post("", CALL).replacen("/mcp", "/tenant/%2e%2E/mcp", 1),
        post("", CALL).replacen("/mcp", "/tenant/..;x/mcp", 1),
        post("", CALL).replacen("/mcp", "/tenant%2f..%2fmcp", 1),
        post("", CALL).replacen("/mcp", "http://localhost/tenant/../mcp", 1),
        "GET /.well-known/../tenant HTTP/1.1\r\nHost: localhost\r\n\r\n".to_owned(),
    ]
    .into_iter()
    .map(String::into_bytes)
    .collect()
}

fn upstream_dictionary() -> Vec<Vec<u8>> {
    let json_head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        ANSWER.len()
    );
    let answer_event = format!("event: message\nid: 7\ndata: {ANSWER}\n\n");
    let (a, b) = answer_event.split_at(answer_event.len() / 2);
    [
        format!("{json_head}{ANSWER}"),
        json_head,
        ANSWER.to_owned(),
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
            .to_owned(),
        chunk(PROGRESS),
        chunk(&answer_event),
        chunk(a),
        chunk(b),
        "0\r\n\r\n".to_owned(),
        format!("{}0\r\n\r\n", chunk(&answer_event)),
        "HTTP/1.1 100 Continue\r\n\r\n".to_owned(),
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n".to_owned(),
        PROGRESS.to_owned(),
        answer_event.clone(),
        a.to_owned(),
        "HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n".to_owned(),
        "HTTP/1.1 204 No Content\r\n\r\n".to_owned(),
        "zz\r\n".to_owned(),
        format!("HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{ANSWER}"),
        "\0\u{ff}junk\r\n\r\n".to_owned(),
        "HTTP/1.1 500 Internal Server Error\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}"
            .to_owned(),
        "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n".to_owned(),
        chunk(": keepalive\n\n"),
        chunk(&answer_event.replace('\n', "\r\n")),
        "HTTP/1.1 101 Switching Protocols\r\n\r\n".to_owned(),
        "HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n".to_owned(),
        // Refusals the transport probe holds and judges.
        "HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\nTransfer-Encoding: chunked\r\n\r\n"
            .to_owned(),
        chunk("<h1>Not Found</h1>"),
        format!(
            "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{}",
            REFUSAL.len(),
            REFUSAL
        ),
        "HTTP/1.1 405 Method Not Allowed\r\n\r\nMethod Not Allowed".to_owned(),
    ]
    .into_iter()
    .map(String::into_bytes)
    .collect()
}

struct Dictionaries {
    client: Vec<Vec<u8>>,
    upstream: Vec<Vec<u8>>,
}

fn dictionaries() -> &'static Dictionaries {
    static D: OnceLock<Dictionaries> = OnceLock::new();
    D.get_or_init(|| Dictionaries {
        client: client_dictionary(),
        upstream: upstream_dictionary(),
    })
}

fn config(tight: bool) -> ExchangeConfig {
    let secs = |s| Some(Duration::from_secs(s));
    let (limits, timeouts) = if tight {
        let head = Limits {
            max_head_bytes: 160,
            max_headers: 6,
            max_chunk_size_digits: 3,
            max_chunk_ext_bytes: 8,
            max_trailer_bytes: 32,
        };
        (
            ExchangeLimits {
                request_head: head.clone(),
                response_head: head,
                max_request_body: 64,
                sse: SseLimits {
                    max_event_bytes: 96,
                },
                json: Default::default(),
                max_hooked_response: 128,
                max_pipelined: 48,
            },
            Timeouts::default(),
        )
    } else {
        (
            ExchangeLimits::default(),
            Timeouts {
                client_idle: secs(30),
                client_request: secs(10),
                connect: secs(5),
                response_head: secs(60),
                stream_idle: secs(120),
                sse_keepalive: secs(15),
            },
        )
    };
    ExchangeConfig {
        router: Router::new(vec![
            Route {
                prefix: "/mcp".into(),
                upstream_path: "/mcp".into(),
                upstream_query: None,
                well_known: true,
                upstream_host: "backend:3000".into(),
            },
            Route {
                prefix: "/tenant".into(),
                upstream_path: "/v1/tenant-a/mcp".into(),
                upstream_query: None,
                well_known: false,
                upstream_host: "backend:3000".into(),
            },
        ]),
        guard: HostGuard::local_default("127.0.0.1"),
        limits,
        timeouts,
        forwarded_headers: !tight,
        hooks: HookFilter::none(),
    }
}

#[derive(Arbitrary, Debug)]
enum Op {
    Client(u8),
    /// A prefix (`head`) or suffix of a client dictionary entry.
    ClientPart {
        entry: u8,
        at: u8,
        head: bool,
    },
    ClientRaw(Vec<u8>),
    Connected {
        reused: bool,
    },
    Upstream(u8),
    UpstreamPart {
        entry: u8,
        at: u8,
        head: bool,
    },
    UpstreamRaw(Vec<u8>),
    UpstreamClosed(u8),
    ClientClosed,
    /// The upstream is a message upstream.
    MessageConnected,
    /// A part of a message upstream's answer: `kind` picks whole, stream
    /// head, event or end, `pick` the status and the message.
    Answer {
        kind: u8,
        pick: u8,
    },
    /// Advance the clock by this many 100 ms steps and fire a due timer.
    Advance(u16),
    /// Fire the timer early: must do nothing.
    Early,
    /// A request built from a method, path pieces and a body kind, all
    /// picked from lists of the spellings that matter.
    ClientBuilt {
        method: u8,
        path: Vec<u8>,
        body: u8,
    },
    /// The driver's conclusion on a held refusal (or on none).
    TransportProbed {
        legacy: bool,
    },
}

const METHODS: &[&str] = &[
    "POST", "GET", "DELETE", "OPTIONS", "HEAD", "PUT", "PATCH", "post", "Get", "TRACE", "PROPFIND",
    "CONNECT",
];

const PATH_PIECES: &[&str] = &[
    "/",
    "mcp",
    "tenant",
    "..",
    ".",
    "%2e",
    "%2E",
    ".%2e",
    ";",
    ";x",
    "%3b",
    "x",
    "%2f",
    "%2F",
    "%5c",
    "\\",
    "//",
    ".well-known",
    "oauth-protected-resource",
    "?",
    "%",
    "%25",
    "...",
    "http://localhost",
    "*",
];

/// A request for [`Op::ClientBuilt`].
fn built_request(method: u8, path: &[u8], body: u8) -> Vec<u8> {
    let method = METHODS[usize::from(method) % METHODS.len()];
    let mut target = String::new();
    for &i in path.iter().take(12) {
        target.push_str(PATH_PIECES[usize::from(i) % PATH_PIECES.len()]);
    }
    if target.is_empty() {
        target.push('/');
    }
    let framing = match body % 4 {
        0 => String::new(),
        1 => "Content-Length: 0\r\n\r\n".to_owned(),
        2 => format!("Content-Length: {}\r\n\r\n{CALL}", CALL.len()),
        _ => format!("Transfer-Encoding: chunked\r\n\r\n{}0\r\n\r\n", chunk(CALL)),
    };
    let framing = if framing.is_empty() {
        "\r\n".to_owned()
    } else {
        framing
    };
    format!("{method} {target} HTTP/1.1\r\nHost: localhost\r\n{framing}").into_bytes()
}

#[derive(Arbitrary, Debug)]
struct Input {
    /// Bit 0: tight limits. Bit 1: the route's transport is in doubt, so
    /// the driver calls `probe_transport` at every `Connect`, as sluice's
    /// does. (One byte, so seeds written before bit 1 keep their meaning.)
    flags: u8,
    /// After a finish, keep feeding the finished exchange.
    stay: bool,
    ops: Vec<Op>,
}

fn part(entry: &[u8], at: u8, head: bool) -> &[u8] {
    let at = usize::from(at) % (entry.len() + 1);
    if head { &entry[..at] } else { &entry[at..] }
}

/// The exchange under test and what it asked for.
struct Run {
    ex: Exchange,
    config: Arc<ExchangeConfig>,
    now: Instant,
    to_client: Vec<u8>,
    finished: Option<Close>,
    /// A `Connect` not yet answered by a `ReleaseUpstream`.
    holding: bool,
    /// A refusal is held for the transport probe.
    held: bool,
    probe: bool,
    stay: bool,
    /// Client bytes past the exchange's read budget: they wait, as they
    /// would in the kernel, until the budget lets them in.
    waiting: Vec<u8>,
}

impl Run {
    /// Feeds client bytes the way a driver does: never past
    /// `client_read_budget`.
    fn feed_client(&mut self, bytes: &[u8]) {
        self.waiting.extend_from_slice(bytes);
        self.admit_waiting();
    }

    fn admit_waiting(&mut self) {
        let n = self.ex.client_read_budget().min(self.waiting.len());
        if n > 0 {
            let admitted: Vec<u8> = self.waiting.drain(..n).collect();
            self.ex.feed_client(&admitted, self.now);
        }
    }

    fn drain(&mut self) {
        while let Some(out) = self.ex.poll_output() {
            assert!(self.finished.is_none(), "output after Finished: {out:?}");
            match out {
                Output::Connect { route, .. } => {
                    assert!(route < self.config.router.routes().len());
                    assert!(!self.holding, "Connect while holding a connection");
                    self.holding = true;
                    if self.probe {
                        self.ex.probe_transport();
                    }
                }
                Output::ReleaseUpstream { .. } => {
                    assert!(self.holding, "ReleaseUpstream without a Connect");
                    self.holding = false;
                }
                Output::ToUpstream(b) => check_upstream_request(&b),
                Output::Dispatch(request) => {
                    assert!(self.holding, "Dispatch without a Connect");
                    check_dispatched(&request);
                }
                Output::ToClient(b) => {
                    assert!(!self.held, "client bytes while a refusal is held");
                    self.to_client.extend_from_slice(&b);
                }
                Output::ProbeTransport(e) => {
                    assert!(self.holding, "transport evidence without a connection");
                    assert!(e.body.len() <= PROBE_BODY_MAX);
                    assert!(e.held || e.body.is_empty());
                    assert!(matches!(e.status, 400 | 404 | 405) || !e.held);
                    self.held = e.held;
                }
                // No hooks are configured, so none is ever asked for.
                Output::RunHook(call) => panic!("RunHook without hooks: {call:?}"),
                Output::AnswerServer { request, .. } => {
                    panic!("a server answered without hooks: {request:?}")
                }
                Output::Authenticate(call) => panic!("Authenticate without a gate: {call:?}"),
                Output::Finished { close } => {
                    assert!(!self.holding, "finished without releasing the upstream");
                    self.held = false;
                    self.finished = Some(close);
                    assert!(self.ex.is_finished());
                    assert_eq!(self.ex.poll_timeout(), None);
                    if close != Close::Abort {
                        check_response(
                            &self.to_client,
                            &self.ex.summary().http_method,
                            close == Close::KeepAlive,
                        );
                    }
                }
            }
        }
        if self.finished.is_some() && !self.stay {
            self.next_exchange();
        }
    }

    fn next_exchange(&mut self) {
        let leftover = match self.finished {
            Some(Close::KeepAlive) => self.ex.take_leftover(),
            _ => Vec::new(),
        };
        self.ex = Exchange::new(self.config.clone(), ClientInfo::default(), self.now);
        self.to_client.clear();
        self.finished = None;
        self.holding = false;
        self.held = false;
        if !leftover.is_empty() {
            self.ex.feed_client(&leftover, self.now);
        }
        self.admit_waiting();
        self.drain();
    }
}

/// Messages a message upstream may send: the answer to the dictionary's
/// call, an error for it, a notification, an answer to another id, garbage.
const MESSAGES: &[&str] = &[
    ANSWER,
    r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32000,"message":"x"}}"#,
    r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":1,"progress":1}}"#,
    r#"{"jsonrpc":"2.0","id":2,"result":{}}"#,
    r#"[{"jsonrpc":"2.0","id":1,"result":{}}]"#,
    "{\"jsonrpc\":",
    "",
];
const STATUSES: &[u16] = &[200, 202, 400, 404, 405, 500, 503];

fn answer_part(kind: u8, pick: u8) -> AnswerPart {
    let status = STATUSES[usize::from(pick) % STATUSES.len()];
    let message = MESSAGES[usize::from(pick / 8) % MESSAGES.len()];
    let head = AnswerHead::status(status).with_session(pick.is_multiple_of(2).then_some("s-1"));
    match kind % 4 {
        0 => AnswerPart::json(head, message),
        1 => AnswerPart::Stream(head),
        2 => AnswerPart::Event(Bytes::from_static(message.as_bytes())),
        _ => AnswerPart::End,
    }
}

/// `bytes` is one request an upstream may see: see the crate docs. This
/// reads the request on its own terms rather than asking `route`.
fn check_upstream_request(bytes: &[u8]) {
    let limits = Limits {
        max_head_bytes: usize::MAX,
        ..Limits::default()
    };
    let Ok(Parsed::Complete { head, len }) = http1::parse_request_head(bytes, &limits) else {
        panic!("not a request: {:?}", String::from_utf8_lossy(bytes));
    };
    let body_len = bytes.len() - len;
    let framing = http1::request_framing(&head).expect("valid framing upstream");
    assert!(
        matches!(framing, BodyFraming::None | BodyFraming::ContentLength(_)),
        "{} {}: chunked upstream",
        head.method,
        head.target
    );
    let has_body =
        body_len > 0 || !matches!(framing, BodyFraming::None | BodyFraming::ContentLength(0));
    check_request(&head.method, &head.target, has_body);
}

/// A request handed to a message upstream obeys the same rules.
fn check_dispatched(request: &Request) {
    check_request(&request.method, &request.target, !request.body.is_empty());
}

/// The rules for what goes upstream, read on their own terms.
fn check_request(method: &str, target: &str, has_body: bool) {
    let line = format!("{method} {target}");
    let path = target.split('?').next().unwrap_or_default();
    assert!(path.starts_with('/'), "{line}: not origin-form");
    let well_known = path == "/.well-known" || path.starts_with("/.well-known/");
    let allowed: &[&str] = if well_known {
        &["GET", "HEAD", "OPTIONS"]
    } else {
        &["POST", "GET", "DELETE", "OPTIONS"]
    };
    assert!(allowed.contains(&method), "{line}: method");
    if has_body {
        assert_eq!(method, "POST", "{line}: a body on another method than POST");
    }
    // The path as any server could read it.
    let lower = path.to_ascii_lowercase();
    assert!(
        !lower.contains("%2f") && !lower.contains("%5c"),
        "{line}: encoded separator"
    );
    assert!(!path.contains('\\'), "{line}: backslash");
    for segment in path.split('/') {
        let decoded = percent_decode(segment.as_bytes());
        let name = decoded.split(|&b| b == b';').next().unwrap_or_default();
        assert!(
            name != b"." && name != b"..",
            "{line}: dot-segment {segment:?}"
        );
    }
    let under = |prefix: &str| {
        path.strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    };
    assert!(
        well_known || under("/mcp") || under("/v1/tenant-a/mcp"),
        "{line}: outside every upstream prefix"
    );
}

fn percent_decode(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        match (
            s[i],
            s.get(i + 1).copied().and_then(hex),
            s.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(hi), Some(lo)) => {
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// `bytes` is one complete response (after any 1xx), nothing after it.
fn check_response(bytes: &[u8], method: &str, keep_alive: bool) {
    let limits = Limits::default();
    let mut rest = bytes;
    if rest.is_empty() && !keep_alive {
        // A quiet close (idle connection) writes nothing.
        return;
    }
    loop {
        let Ok(Parsed::Complete { head, len }) = http1::parse_response_head(rest, &limits) else {
            panic!(
                "no valid response head in {:?}",
                String::from_utf8_lossy(bytes)
            );
        };
        rest = &rest[len..];
        if (100..200).contains(&head.status) {
            continue;
        }
        if keep_alive {
            assert!(
                !head.connection_close(),
                "KeepAlive after Connection: close"
            );
        }
        match http1::response_framing(method, &head).expect("unambiguous framing") {
            BodyFraming::None => assert!(rest.is_empty(), "bytes after a body-less response"),
            BodyFraming::ContentLength(n) => assert_eq!(rest.len() as u64, n, "body length"),
            BodyFraming::Chunked => {
                let mut decoder = ChunkedDecoder::new(&limits);
                loop {
                    let step = decoder.decode(rest).expect("valid chunked body");
                    rest = &rest[step.consumed..];
                    if step.done {
                        assert!(rest.is_empty(), "bytes after the last chunk");
                        break;
                    }
                    assert!(!rest.is_empty(), "chunked body without its last chunk");
                }
            }
            BodyFraming::UntilClose => assert!(!keep_alive, "until-close body kept alive"),
        }
        return;
    }
}

fuzz_target!(|input: Input| {
    let dict = dictionaries();
    let config = Arc::new(config(input.flags & 1 == 1));
    let now = Instant::now();
    let mut run = Run {
        ex: Exchange::new(config.clone(), ClientInfo::default(), now),
        config,
        now,
        to_client: Vec::new(),
        finished: None,
        holding: false,
        held: false,
        probe: input.flags & 2 == 2,
        stay: input.stay,
        waiting: Vec::new(),
    };
    for op in input.ops.iter().take(64) {
        let now = run.now;
        match op {
            Op::Client(i) => {
                run.feed_client(&dict.client[usize::from(*i) % dict.client.len()]);
            }
            Op::ClientPart { entry, at, head } => {
                let entry = &dict.client[usize::from(*entry) % dict.client.len()];
                run.feed_client(part(entry, *at, *head));
            }
            Op::ClientRaw(bytes) => run.feed_client(bytes),
            Op::ClientBuilt { method, path, body } => {
                run.feed_client(&built_request(*method, path, *body));
            }
            Op::Connected { reused } => run.ex.upstream_connected(*reused, now),
            Op::Upstream(i) => {
                let entry = &dict.upstream[usize::from(*i) % dict.upstream.len()];
                run.ex.feed_upstream(Bytes::copy_from_slice(entry), now);
            }
            Op::UpstreamPart { entry, at, head } => {
                let entry = &dict.upstream[usize::from(*entry) % dict.upstream.len()];
                run.ex
                    .feed_upstream(Bytes::copy_from_slice(part(entry, *at, *head)), now);
            }
            Op::UpstreamRaw(bytes) => run.ex.feed_upstream(Bytes::copy_from_slice(bytes), now),
            Op::UpstreamClosed(kind) => {
                let end = match kind % 4 {
                    0 => UpstreamEnd::Eof,
                    1 => UpstreamEnd::Error,
                    2 => UpstreamEnd::WriteFailed,
                    _ => UpstreamEnd::ConnectFailed,
                };
                run.ex.upstream_closed(end, now);
            }
            Op::ClientClosed => run.ex.client_closed(now),
            Op::MessageConnected => run.ex.message_upstream_connected(now),
            Op::Answer { kind, pick } => run.ex.feed_answer(answer_part(*kind, *pick), now),
            Op::Advance(steps) => {
                run.now += Duration::from_millis(100) * u32::from(*steps);
                if run.ex.poll_timeout().is_some_and(|t| t <= run.now) {
                    run.ex.handle_timeout(run.now);
                }
            }
            Op::TransportProbed { legacy } => {
                run.held = false;
                run.ex.transport_probed(*legacy, now);
            }
            Op::Early => {
                if let Some(t) = run.ex.poll_timeout()
                    && t > now
                {
                    run.ex.handle_timeout(now);
                    assert_eq!(run.ex.poll_output(), None, "a timer fired early");
                    assert_eq!(run.ex.poll_timeout(), Some(t));
                }
            }
        }
        run.drain();
    }
});
