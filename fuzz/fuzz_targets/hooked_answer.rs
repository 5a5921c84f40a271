//! The hooked-answer property: no byte of a hooked answer reaches the
//! client unless a hook saw the message it came in.
//!
//! One hooked request (a single `tools/call`, or a 2025-03-26 batch) is
//! answered by a fuzzer-built upstream: JSON or SSE, with any framing, maybe
//! content-coded, carrying answers with exact and re-spelled ids, arrays,
//! server requests, notifications, unreadable data and oversized events,
//! split at any points, cut short or not — or by a message upstream (the
//! typed seam: a whole answer, or a stream head and events, cut short or
//! not). Every answer-like message carries
//! a marker; the hook rejects any message with the marker, and notes what it
//! saw. Whatever the upstream does, the marker never reaches the client
//! (notifications and server requests, which clients never take as answers,
//! carry no marker, except the marked server requests: the hooks want every
//! message in every phase, so those too must be judged before the client gets
//! them), and the exchange never panics.
#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sluice_core::exchange::methods::{HookMethods, MethodSet};
use sluice_core::exchange::{
    ClientInfo, Exchange, ExchangeConfig, ExchangeLimits, HookFilter, HookPhase, HookVerdict,
    Output, Timeouts, UpstreamEnd,
};
use sluice_core::guard::HostGuard;
use sluice_core::http1::{self, ChunkedDecoder, Limits, Parsed};
use sluice_core::route::{Route, Router};
use sluice_core::sse::SseLimits;
use sluice_core::upstream::{AnswerHead, AnswerPart};

const MARKER: &str = "MRKR";

#[derive(Arbitrary, Debug)]
enum Request {
    /// `tools/call` with id 1.
    Number,
    /// `tools/call` with id "r-1".
    Text,
    /// A batch: a `tools/call` (id 1) and a `tools/list` (id "b").
    Batch,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Id {
    One,
    OneText,
    OnePointZero,
    OneExp,
    OneEscaped,
    R1,
    R1Escaped,
    B,
    Null,
    Absent,
}

impl Id {
    fn member(self) -> &'static str {
        match self {
            Id::One => r#""id":1,"#,
            Id::OneText => r#""id":"1","#,
            Id::OnePointZero => r#""id":1.0,"#,
            Id::OneExp => r#""id":1e0,"#,
            Id::OneEscaped => r#""id":"\u0031","#,
            Id::R1 => r#""id":"r-1","#,
            Id::R1Escaped => r#""id":"\u0072-1","#,
            Id::B => r#""id":"b","#,
            Id::Null => r#""id":null,"#,
            Id::Absent => "",
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Message {
    /// A result carrying the marker.
    Result(Id),
    /// An error carrying the marker.
    Error(Id),
    /// Results wrapped in an array.
    Array(Vec<(Id, bool)>),
    /// A progress notification (no marker: not an answer).
    Progress,
    /// A server request reusing an id (no marker: not an answer).
    ServerRequest(Id),
    /// A server request carrying the marker, which the hooks (they want
    /// every method in every phase) must see before the client does.
    MarkedServerRequest(Id),
    /// The same, inside an array.
    MarkedServerArray(Id),
    /// Text that is not JSON, with the marker.
    Garbage,
    /// A result with the marker and a padding of this many KiB (oversized
    /// events in SSE).
    Padded(Id, u8),
    /// A priming event (empty data).
    Priming,
}

impl Message {
    fn text(&self) -> String {
        let result = |id: Id| {
            format!(
                r#"{{"jsonrpc":"2.0",{}"result":{{"t":"{MARKER}"}}}}"#,
                id.member()
            )
        };
        match self {
            Message::Result(id) => result(*id),
            Message::Error(id) => format!(
                r#"{{"jsonrpc":"2.0",{}"error":{{"code":1,"message":"{MARKER}"}}}}"#,
                id.member()
            ),
            Message::Array(items) => {
                let items: Vec<String> = items
                    .iter()
                    .take(4)
                    .map(|(id, error)| {
                        if *error {
                            Message::Error(*id).text()
                        } else {
                            result(*id)
                        }
                    })
                    .collect();
                format!("[{}]", items.join(","))
            }
            Message::Progress => r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":1,"progress":1}}"#.into(),
            Message::ServerRequest(id) => format!(
                r#"{{"jsonrpc":"2.0",{}"method":"sampling/createMessage","params":{{}}}}"#,
                match id {
                    Id::Null | Id::Absent => r#""id":7,"#,
                    other => other.member(),
                }
            ),
            Message::MarkedServerRequest(id) => format!(
                r#"{{"jsonrpc":"2.0",{}"method":"elicitation/create","params":{{"t":"{MARKER}"}}}}"#,
                id.member()
            ),
            Message::MarkedServerArray(id) => {
                format!("[{}]", Message::MarkedServerRequest(*id).text())
            }
            Message::Garbage => format!("{{\"result\":{MARKER}"),
            Message::Padded(id, kib) => format!(
                r#"{{"jsonrpc":"2.0",{}"result":{{"pad":"{}","t":"{MARKER}"}}}}"#,
                id.member(),
                "p".repeat(*kib as usize * 1024 % (64 << 10))
            ),
            Message::Priming => String::new(),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Framing {
    Length,
    Chunked,
    UntilClose,
    /// No HTTP: a message upstream's answer parts (`gzip` and `splits`
    /// do not apply; `cut` keeps a fraction of the messages).
    Messages,
}

#[derive(Arbitrary, Debug)]
struct Input {
    request: Request,
    sse: bool,
    framing: Framing,
    gzip: bool,
    messages: Vec<Message>,
    /// Cut the upstream's bytes to this fraction (255: whole).
    cut: u8,
    /// Read sizes the upstream's bytes arrive in.
    splits: Vec<u16>,
    /// How the upstream ends: EOF or an error.
    eof: bool,
}

fn config() -> Arc<ExchangeConfig> {
    static CONFIG: OnceLock<Arc<ExchangeConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            Arc::new(ExchangeConfig {
                router: Router::new(vec![Route {
                    prefix: "/mcp".into(),
                    upstream_path: "/mcp".into(),
                    well_known: false,
                    upstream_host: "backend".into(),
                    upstream_query: None,
                }]),
                guard: HostGuard::local_default("127.0.0.1"),
                limits: ExchangeLimits {
                    sse: SseLimits {
                        max_event_bytes: 16 << 10,
                    },
                    max_hooked_response: 256 << 10,
                    ..ExchangeLimits::default()
                },
                timeouts: Timeouts::default(),
                forwarded_headers: false,
                hooks: HookFilter::new(vec![HookMethods::new(
                    MethodSet::parse(&["*"]).unwrap(),
                    None,
                )]),
            })
        })
        .clone()
}

fn post(body: &str) -> Vec<u8> {
    format!(
        "POST /mcp HTTP/1.1\r\nHost: localhost\r\nAccept: application/json, text/event-stream\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn upstream_bytes(input: &Input) -> Vec<u8> {
    let body: String = if input.sse {
        input
            .messages
            .iter()
            .map(|m| format!("event: message\ndata: {}\n\n", m.text()))
            .collect()
    } else {
        input
            .messages
            .first()
            .map(Message::text)
            .unwrap_or_default()
    };
    let content_type = if input.sse {
        "text/event-stream"
    } else {
        "application/json"
    };
    let coding = if input.gzip {
        "Content-Encoding: gzip\r\n"
    } else {
        ""
    };
    let (framing, body) = match input.framing {
        Framing::Length => (format!("Content-Length: {}\r\n", body.len()), body),
        Framing::Chunked => {
            let mut chunked = String::new();
            for piece in body.as_bytes().chunks(700) {
                let piece = std::str::from_utf8(piece).unwrap_or("");
                chunked.push_str(&format!("{:x}\r\n{piece}\r\n", piece.len()));
            }
            chunked.push_str("0\r\n\r\n");
            ("Transfer-Encoding: chunked\r\n".to_owned(), chunked)
        }
        // Never rendered: the message path returns before.
        Framing::UntilClose | Framing::Messages => ("Connection: close\r\n".to_owned(), body),
    };
    let mut out =
        format!("HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\n{coding}{framing}\r\n{body}")
            .into_bytes();
    if input.cut != 255 {
        let keep = out.len() * input.cut as usize / 255;
        out.truncate(keep);
    }
    out
}

/// The body the client got, decoded from its framing as far as it goes.
fn client_body(bytes: &[u8]) -> Vec<u8> {
    let limits = Limits::default();
    let mut rest = bytes;
    loop {
        let Ok(Parsed::Complete { head, len }) = http1::parse_response_head(rest, &limits) else {
            // Not a head: the raw bytes are all there is to check.
            return rest.to_vec();
        };
        rest = &rest[len..];
        if (100..200).contains(&head.status) {
            continue;
        }
        let chunked = head
            .headers
            .iter()
            .any(|h| h.name.eq_ignore_ascii_case("transfer-encoding"));
        if !chunked {
            return rest.to_vec();
        }
        let mut decoder = ChunkedDecoder::new(&limits);
        let mut out = Vec::new();
        let mut pos = 0;
        while pos < rest.len() {
            let Ok(d) = decoder.decode(&rest[pos..]) else {
                // Framing towards the client must be valid.
                panic!("invalid chunking towards the client");
            };
            if let Some(r) = d.data {
                out.extend_from_slice(&rest[pos + r.start..pos + r.end]);
            }
            pos += d.consumed;
            if d.done || d.consumed == 0 {
                break;
            }
        }
        return out;
    }
}

/// The property: no byte of a hooked answer reached the client unjudged.
fn assert_no_marker(to_client: &[u8]) {
    let body = client_body(to_client);
    assert!(
        !contains(&body, MARKER.as_bytes()),
        "hooked content reached the client: {:?}",
        String::from_utf8_lossy(to_client)
    );
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fuzz_target!(|input: Input| {
    if input.messages.len() > 12 {
        return;
    }
    let body = match input.request {
        Request::Number => {
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"e"}}"#
        }
        Request::Text => {
            r#"{"jsonrpc":"2.0","id":"r-1","method":"tools/call","params":{"name":"e"}}"#
        }
        Request::Batch => {
            r#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"e"}},{"jsonrpc":"2.0","id":"b","method":"tools/list"}]"#
        }
    };
    let now = Instant::now() + Duration::from_secs(1);
    let mut ex = Exchange::new(config(), ClientInfo::default(), now);
    let mut to_client = Vec::new();
    let mut finished = false;
    let drain = |ex: &mut Exchange, to_client: &mut Vec<u8>, finished: &mut bool| {
        while let Some(out) = ex.poll_output() {
            match out {
                Output::ToClient(b) => to_client.extend_from_slice(&b),
                Output::RunHook(call) => {
                    let verdict = match call.phase {
                        HookPhase::Request => HookVerdict::Continue,
                        // The hook sees the message: with the marker, it rejects.
                        HookPhase::Response | HookPhase::ServerMessage => {
                            let seen = match call.phase {
                                HookPhase::Response => call.response.as_deref().unwrap_or_default(),
                                _ => &call.request,
                            };
                            if contains(seen.as_bytes(), MARKER.as_bytes()) {
                                HookVerdict::Reject {
                                    code: -32003,
                                    message: "denied".into(),
                                    data: None,
                                }
                            } else {
                                HookVerdict::Continue
                            }
                        }
                        HookPhase::ClientAnswer => panic!("a client-answer hook run: {call:?}"),
                    };
                    ex.hook_done(verdict, now);
                }
                Output::Finished { .. } => *finished = true,
                Output::Connect { .. }
                | Output::ToUpstream(_)
                | Output::Dispatch(_)
                | Output::ReleaseUpstream { .. }
                | Output::AnswerServer { .. } => {}
                // probe_transport is never called here.
                Output::ProbeTransport(e) => panic!("transport evidence unasked for: {e:?}"),
                // No route here has a gate.
                Output::Authenticate(call) => panic!("Authenticate without a gate: {call:?}"),
            }
        }
    };
    ex.feed_client(&post(body), now);
    drain(&mut ex, &mut to_client, &mut finished);
    if matches!(input.framing, Framing::Messages) {
        ex.message_upstream_connected(now);
        drain(&mut ex, &mut to_client, &mut finished);
        let texts: Vec<String> = input.messages.iter().map(Message::text).collect();
        let whole = input.cut == 255;
        let keep = if whole {
            texts.len()
        } else {
            texts.len() * input.cut as usize / 255
        };
        let head = AnswerHead::status(200);
        if input.sse {
            ex.feed_answer(AnswerPart::Stream(head), now);
            drain(&mut ex, &mut to_client, &mut finished);
            for text in texts.into_iter().take(keep) {
                if finished {
                    break;
                }
                ex.feed_answer(AnswerPart::Event(Bytes::from(text)), now);
                drain(&mut ex, &mut to_client, &mut finished);
            }
            if !finished && whole && input.eof {
                ex.feed_answer(AnswerPart::End, now);
            }
        } else if let Some(text) = texts.into_iter().next().filter(|_| whole) {
            ex.feed_answer(AnswerPart::json(head, text), now);
        }
        drain(&mut ex, &mut to_client, &mut finished);
        if !finished {
            // The bridge gave up on the stream before the answer was whole.
            ex.upstream_closed(UpstreamEnd::Error, now);
            drain(&mut ex, &mut to_client, &mut finished);
        }
        assert_no_marker(&to_client);
        return;
    }
    ex.upstream_connected(false, now);
    drain(&mut ex, &mut to_client, &mut finished);
    let bytes = Bytes::from(upstream_bytes(&input));
    let mut at = 0;
    let mut splits = input.splits.iter().copied().cycle();
    while at < bytes.len() && !finished {
        let n = (splits.next().unwrap_or(u16::MAX) as usize).clamp(1, bytes.len() - at);
        ex.feed_upstream(bytes.slice(at..at + n), now);
        at += n;
        drain(&mut ex, &mut to_client, &mut finished);
    }
    if !finished {
        let end = if input.eof {
            UpstreamEnd::Eof
        } else {
            UpstreamEnd::Error
        };
        ex.upstream_closed(end, now);
        drain(&mut ex, &mut to_client, &mut finished);
    }
    assert_no_marker(&to_client);
});
