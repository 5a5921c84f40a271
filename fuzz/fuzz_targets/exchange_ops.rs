//! Sequences of fuzzer-chosen operations on an `Exchange`, on a virtual
//! clock: client bytes (request fragments from a dictionary, pieces of them,
//! or raw bytes), connects, upstream bytes (response fragments: JSON, chunked
//! SSE, until-close SSE, 1xx, garbage), closes on either side and time.
//!
//! Never panic, and per exchange:
//! - no output after `Finished`, and at most one `Finished`;
//! - each `Connect` is released at most once, and all are released by the
//!   time the exchange finishes;
//! - a timer handled before its deadline does nothing;
//! - what went to the client, once finished with `KeepAlive` (or
//!   `Graceful`), is a complete, valid HTTP response per `http1` (after any
//!   `100 Continue`), with no byte after it.
//!
//! After a `KeepAlive` finish the next exchange starts with the leftover
//! bytes, as a driver's connection loop does; or, when the input says so, the
//! finished exchange keeps receiving inputs to check it stays silent.
#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sluice_core::exchange::{
    ClientInfo, Close, Exchange, ExchangeConfig, ExchangeLimits, HookFilter, Output, Timeouts,
    UpstreamEnd,
};
use sluice_core::guard::HostGuard;
use sluice_core::http1::{self, BodyFraming, ChunkedDecoder, Limits, Parsed};
use sluice_core::route::{Route, Router};
use sluice_core::sse::SseLimits;

const CALL: &str =
    r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{}}}"#;
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
        router: Router::new(vec![Route {
            prefix: "/mcp".into(),
            upstream_path: "/mcp".into(),
            upstream_query: None,
            well_known: true,
            upstream_host: "backend:3000".into(),
        }]),
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
    /// Advance the clock by this many 100 ms steps and fire a due timer.
    Advance(u16),
    /// Fire the timer early: must do nothing.
    Early,
}

#[derive(Arbitrary, Debug)]
struct Input {
    tight: bool,
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
    stay: bool,
}

impl Run {
    fn drain(&mut self) {
        while let Some(out) = self.ex.poll_output() {
            assert!(self.finished.is_none(), "output after Finished: {out:?}");
            match out {
                Output::Connect { route, .. } => {
                    assert_eq!(route, 0);
                    assert!(!self.holding, "Connect while holding a connection");
                    self.holding = true;
                }
                Output::ReleaseUpstream { .. } => {
                    assert!(self.holding, "ReleaseUpstream without a Connect");
                    self.holding = false;
                }
                Output::ToUpstream(_) => {}
                Output::ToClient(b) => self.to_client.extend_from_slice(&b),
                // No hooks are configured, so none is ever asked for.
                Output::RunHook(call) => panic!("RunHook without hooks: {call:?}"),
                Output::Finished { close } => {
                    assert!(!self.holding, "finished without releasing the upstream");
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
        if !leftover.is_empty() {
            self.ex.feed_client(&leftover, self.now);
            self.drain();
        }
    }
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
    let config = Arc::new(config(input.tight));
    let now = Instant::now();
    let mut run = Run {
        ex: Exchange::new(config.clone(), ClientInfo::default(), now),
        config,
        now,
        to_client: Vec::new(),
        finished: None,
        holding: false,
        stay: input.stay,
    };
    for op in input.ops.iter().take(64) {
        let now = run.now;
        match op {
            Op::Client(i) => {
                let entry = &dict.client[usize::from(*i) % dict.client.len()];
                run.ex.feed_client(entry, now);
            }
            Op::ClientPart { entry, at, head } => {
                let entry = &dict.client[usize::from(*entry) % dict.client.len()];
                run.ex.feed_client(part(entry, *at, *head), now);
            }
            Op::ClientRaw(bytes) => run.ex.feed_client(bytes, now),
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
            Op::Advance(steps) => {
                run.now += Duration::from_millis(100) * u32::from(*steps);
                if run.ex.poll_timeout().is_some_and(|t| t <= run.now) {
                    run.ex.handle_timeout(run.now);
                }
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
