//! The `auto` transport probe (`legacy::Probe`) against scripted upstreams on
//! a fake clock: every path, each upstream answer fed whole, byte by byte,
//! at two-way splits and at seeded random splits, with the same result and
//! the same requests every time.

mod common;

use std::time::{Duration, Instant};

use common::Split;
use sluice_core::http1::Header;
use sluice_core::jsonrpc;
use sluice_core::legacy::*;

// -- the scripted world -------------------------------------------------------------

const TIMEOUT: Duration = Duration::from_secs(10);

const SSE_HEAD: &str = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n";
const ENDPOINT: &str = "event: endpoint\ndata: /messages?sessionId=abc\n\n";
const JSONRPC_ERROR: &str = r#"{"jsonrpc":"2.0","error":{"code":-32000,"message":"Bad Request: No valid session ID"},"id":null}"#;

/// What the upstream does with one connection the probe asks for.
#[derive(Debug, Clone)]
enum Dial {
    /// The connect fails.
    Refuse,
    /// The connect never completes.
    Hang,
    /// Connected; after the request, these bytes come, then `end`.
    Answer(String, End),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum End {
    /// The connection ends cleanly.
    Eof,
    /// A read fails.
    Fail,
    /// Nothing more: the connection stays open and silent.
    Open,
}

fn answer(bytes: impl Into<String>, end: End) -> Dial {
    Dial::Answer(bytes.into(), end)
}

/// How a probe starts.
#[derive(Clone)]
enum Start {
    New,
    After {
        status: u16,
        body: String,
        headers: Vec<Header>,
    },
}

fn config() -> ProbeConfig {
    ProbeConfig::new("backend:9000", "/sse", TIMEOUT)
}

/// One run, on a fake clock.
#[derive(Debug, PartialEq)]
struct Run {
    result: ProbeResult,
    /// Each request written, in order.
    sent: Vec<String>,
    /// How long the probe took on the fake clock.
    took: Duration,
    /// Every output but `Send`'s bytes, in order (`Send` as "send").
    trace: Vec<&'static str>,
}

fn run_once(start: &Start, limits: &ProbeConfig, script: &[Dial], split: &Split) -> Run {
    let t0 = Instant::now();
    let mut now = t0;
    let mut probe = match start {
        Start::New => Probe::new(limits.clone(), now),
        Start::After {
            status,
            body,
            headers,
        } => Probe::after_answer(
            limits.clone(),
            FirstAnswer {
                request_headers: headers,
                status: *status,
                body: body.as_bytes(),
            },
            now,
        ),
    };
    let mut script = script.iter();
    let mut sent = Vec::new();
    let mut trace = Vec::new();
    // The connection: pending connect, or open with what is left to read.
    let mut connecting = false;
    let mut open: Option<(Vec<Vec<u8>>, End, bool)> = None; // (chunks left, end, request written)
    let mut current: Option<(String, End)> = None;
    let mut result = None;
    loop {
        while let Some(out) = probe.poll_output() {
            assert!(result.is_none(), "{out:?} after Done");
            match out {
                ProbeOutput::Connect => {
                    assert!(!connecting && open.is_none(), "Connect while holding one");
                    connecting = true;
                    trace.push("connect");
                }
                ProbeOutput::Send(bytes) => {
                    let (chunks, _, written) = open.as_mut().expect("Send without a connection");
                    assert!(!*written, "two requests on one connection");
                    *written = true;
                    let (wire, _) = current.as_ref().unwrap();
                    *chunks = common::cut(wire.as_bytes(), &clamp(split, wire.len()))
                        .into_iter()
                        .map(<[u8]>::to_vec)
                        .collect();
                    chunks.reverse();
                    sent.push(String::from_utf8(bytes.to_vec()).unwrap());
                    trace.push("send");
                }
                ProbeOutput::Close => {
                    assert!(connecting || open.is_some(), "Close without a connection");
                    connecting = false;
                    open = None;
                    trace.push("close");
                }
                ProbeOutput::Done(r) => {
                    assert!(
                        !connecting && open.is_none(),
                        "Done while holding a connection"
                    );
                    trace.push("done");
                    result = Some(r);
                }
            }
        }
        if let Some(result) = result {
            assert!(probe.is_done() && probe.poll_timeout().is_none());
            assert!(
                script.next().is_none(),
                "the probe stopped before the script's end"
            );
            return Run {
                result,
                sent,
                took: now - t0,
                trace,
            };
        }
        let deadline = probe.poll_timeout().expect("a deadline until Done");
        assert_eq!(deadline, t0 + limits.timeout);
        if connecting {
            match script.next().expect("a connect the script does not expect") {
                Dial::Refuse => {
                    connecting = false;
                    probe.connect_failed("connection refused", now);
                }
                Dial::Hang => {
                    now = deadline;
                    probe.handle_timeout(now);
                }
                Dial::Answer(wire, end) => {
                    connecting = false;
                    open = Some((Vec::new(), *end, false));
                    current = Some((wire.clone(), *end));
                    now += Duration::from_millis(1);
                    probe.connected(now);
                }
            }
            continue;
        }
        let Some((chunks, end, written)) = open.as_mut() else {
            panic!("waiting with no connection and no deadline passed");
        };
        assert!(*written, "connected and no request written");
        now += Duration::from_millis(1);
        if let Some(chunk) = chunks.pop() {
            probe.feed(&chunk, now);
            continue;
        }
        match *end {
            End::Eof => probe.eof(now),
            End::Fail => probe.failed("connection reset", now),
            End::Open => {
                now = deadline;
                probe.handle_timeout(now);
            }
        }
        // The end is delivered once.
        *end = End::Open;
    }
}

fn clamp(split: &Split, len: usize) -> Split {
    match *split {
        Split::TwoWay(at) => Split::TwoWay(at.min(len)),
        ref s => s.clone(),
    }
}

/// Runs the scenario under every split; all runs must agree. Returns it.
fn probe_with(start: Start, limits: &ProbeConfig, script: &[Dial]) -> Run {
    let longest = script
        .iter()
        .map(|d| match d {
            Dial::Answer(w, _) => w.len(),
            _ => 0,
        })
        .max()
        .unwrap_or(0);
    let mut splits = vec![Split::Whole, Split::ByteByByte];
    if longest <= 512 {
        splits.extend((0..=longest).map(Split::TwoWay));
    }
    splits.extend((1..=16).map(|seed| Split::Random { seed }));
    let whole = run_once(&start, limits, script, &Split::Whole);
    for split in &splits[1..] {
        let other = run_once(&start, limits, script, split);
        assert_eq!(other.result, whole.result, "{split:?}");
        assert_eq!(other.sent, whole.sent, "{split:?}");
        assert_eq!(other.trace, whole.trace, "{split:?}");
    }
    whole
}

fn probe(script: &[Dial]) -> Run {
    probe_with(Start::New, &config(), script)
}

fn after(status: u16, body: &str, script: &[Dial]) -> Run {
    let headers = vec![
        Header::new("Host", "backend:9000"),
        Header::new("Authorization", "Bearer t"),
        Header::new("Mcp-Session-Id", "client-session"),
        Header::new("Content-Type", "application/json"),
        Header::new("X-Custom", "1"),
    ];
    probe_with(
        Start::After {
            status,
            body: body.to_owned(),
            headers,
        },
        &config(),
        script,
    )
}

fn status_answer(status: u16, headers: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status} X\r\n{headers}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

fn legacy_stream() -> Dial {
    answer(format!("{SSE_HEAD}: hello\n\n{ENDPOINT}"), End::Open)
}

fn inconclusive(run: &Run) -> &ProbeFailure {
    match &run.result {
        ProbeResult::Inconclusive(f) => f,
        other => panic!("not inconclusive: {other:?}"),
    }
}

fn legacy() -> ProbeResult {
    ProbeResult::Legacy {
        endpoint: "/messages?sessionId=abc".into(),
    }
}

// -- the rule ----------------------------------------------------------------------------

#[test]
fn the_rule_table() {
    let json = jsonrpc::Limits::default();
    let cases: &[(u16, &str, ProbeStep)] = &[
        (200, "", ProbeStep::Streamable),
        (202, "", ProbeStep::Streamable),
        (204, "anything", ProbeStep::Streamable),
        (400, "", ProbeStep::TryLegacy),
        (404, "Cannot POST /sse", ProbeStep::TryLegacy),
        (405, "Method Not Allowed", ProbeStep::TryLegacy),
        (
            405,
            r#"{"detail":"Method Not Allowed"}"#,
            ProbeStep::TryLegacy,
        ),
        (400, JSONRPC_ERROR, ProbeStep::Streamable),
        (
            404,
            r#"{"jsonrpc":"2.0","id":"1","error":{"code":-32001,"message":"Session not found"}}"#,
            ProbeStep::Streamable,
        ),
        // A truncated error body proves nothing.
        (400, &JSONRPC_ERROR[..40], ProbeStep::TryLegacy),
        // A response or request is not an error.
        (
            400,
            r#"{"jsonrpc":"2.0","id":1,"result":{}}"#,
            ProbeStep::TryLegacy,
        ),
        (401, "", ProbeStep::Inconclusive(401)),
        (403, JSONRPC_ERROR, ProbeStep::Inconclusive(403)),
        (406, "", ProbeStep::Inconclusive(406)),
        (415, "", ProbeStep::Inconclusive(415)),
        (429, "", ProbeStep::Inconclusive(429)),
        (500, "", ProbeStep::Inconclusive(500)),
        (502, "", ProbeStep::Inconclusive(502)),
        (301, "", ProbeStep::Inconclusive(301)),
    ];
    for (status, body, verdict) in cases {
        assert_eq!(
            judge_answer(*status, body.as_bytes(), &json),
            *verdict,
            "{status} {body:?}"
        );
        assert_eq!(may_try_legacy(*status), matches!(status, 400 | 404 | 405));
    }
}

// -- Streamable HTTP ---------------------------------------------------------------------

#[test]
fn streamable_without_a_session_needs_no_cleanup() {
    let run = probe(&[answer(
        status_answer(
            200,
            "Content-Type: application/json\r\n",
            r#"{"jsonrpc":"2.0","id":"sluice-probe","result":{}}"#,
        ),
        End::Eof,
    )]);
    assert_eq!(
        run.result,
        ProbeResult::Streamable {
            status: 200,
            cleanup: Cleanup::NotNeeded
        }
    );
    assert_eq!(run.trace, ["connect", "send", "close", "done"]);
    let post = &run.sent[0];
    assert!(post.starts_with("POST /sse HTTP/1.1\r\nHost: backend:9000\r\n"));
    assert!(post.contains("Accept: application/json, text/event-stream\r\n"));
    assert!(post.contains("Content-Type: application/json\r\n"));
    assert!(post.contains("Connection: close\r\n"));
    let body = &post[post.find("\r\n\r\n").unwrap() + 4..];
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(v["method"], "initialize");
    assert_eq!(v["id"], "sluice-probe");
}

#[test]
fn a_streamable_answer_is_judged_at_its_head() {
    // An SSE answer that never ends: the head is enough.
    let run = probe(&[answer(
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\nevent: message\ndata: {",
        End::Open,
    )]);
    assert_eq!(
        run.result,
        ProbeResult::Streamable {
            status: 200,
            cleanup: Cleanup::NotNeeded
        }
    );
    assert!(run.took < Duration::from_secs(1));
}

#[test]
fn the_probes_session_is_deleted_on_a_new_connection() {
    for (delete_status, cleanup) in [(200, Cleanup::Answered(200)), (405, Cleanup::Answered(405))] {
        let run = probe(&[
            answer(
                "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nMcp-Session-Id: s-1\r\n\r\n",
                End::Open,
            ),
            answer(status_answer(delete_status, "", ""), End::Open),
        ]);
        assert_eq!(
            run.result,
            ProbeResult::Streamable {
                status: 200,
                cleanup
            }
        );
        assert_eq!(
            run.trace,
            [
                "connect", "send", "close", "connect", "send", "close", "done"
            ]
        );
        assert_eq!(
            run.sent[1],
            "DELETE /sse HTTP/1.1\r\nHost: backend:9000\r\nMcp-Session-Id: s-1\r\n\
             Content-Length: 0\r\nConnection: close\r\n\r\n"
        );
    }
}

#[test]
fn a_failed_cleanup_keeps_the_verdict() {
    let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nMcp-Session-Id: s-1\r\nContent-Length: 2\r\n\r\n{}";
    let cases: Vec<(Dial, ProbeFailure)> = vec![
        (
            Dial::Refuse,
            ProbeFailure::ConnectFailed {
                stage: ProbeStage::Cleanup,
                detail: "connection refused".into(),
            },
        ),
        (
            Dial::Hang,
            ProbeFailure::Timeout {
                stage: ProbeStage::Cleanup,
                waited_ms: 10_000,
            },
        ),
        (
            answer("", End::Eof),
            ProbeFailure::Closed {
                stage: ProbeStage::Cleanup,
                error: None,
            },
        ),
        (
            answer("HTTP/1.1 200", End::Fail),
            ProbeFailure::Closed {
                stage: ProbeStage::Cleanup,
                error: Some("connection reset".into()),
            },
        ),
        (
            answer("", End::Open),
            ProbeFailure::Timeout {
                stage: ProbeStage::Cleanup,
                waited_ms: 10_000,
            },
        ),
    ];
    for (dial, failure) in cases {
        let run = probe(&[answer(head, End::Eof), dial.clone()]);
        assert_eq!(
            run.result,
            ProbeResult::Streamable {
                status: 200,
                cleanup: Cleanup::Failed(failure)
            },
            "{dial:?}"
        );
    }
    // A malformed answer to the DELETE.
    let run = probe(&[
        answer(head, End::Eof),
        answer("HTTP/1.1 200 OK\r\nBad Header\r\n\r\n", End::Eof),
    ]);
    assert!(matches!(
        run.result,
        ProbeResult::Streamable {
            cleanup: Cleanup::Failed(ProbeFailure::BadAnswer {
                stage: ProbeStage::Cleanup,
                ..
            }),
            ..
        }
    ));
}

#[test]
fn a_session_id_that_is_not_visible_ascii_is_not_sent_back() {
    let run = probe(&[answer(
        "HTTP/1.1 200 OK\r\nMcp-Session-Id: a b\r\nContent-Length: 0\r\n\r\n",
        End::Eof,
    )]);
    assert_eq!(
        run.result,
        ProbeResult::Streamable {
            status: 200,
            cleanup: Cleanup::NotNeeded
        }
    );
    assert_eq!(run.sent.len(), 1);
}

#[test]
fn a_jsonrpc_error_on_400_404_405_is_a_streamable_server() {
    for status in [400, 404, 405] {
        // Content-Length, chunked and until-close bodies.
        let chunked = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{JSONRPC_ERROR}\r\n0\r\n\r\n",
            JSONRPC_ERROR.len()
        );
        let until_close = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n{JSONRPC_ERROR}"
        );
        for wire in [
            status_answer(status, "Content-Type: application/json\r\n", JSONRPC_ERROR),
            chunked,
            until_close,
        ] {
            let run = probe(&[answer(wire.clone(), End::Eof)]);
            assert_eq!(
                run.result,
                ProbeResult::Streamable {
                    status,
                    cleanup: Cleanup::NotNeeded
                },
                "{wire:?}"
            );
            assert_eq!(run.sent.len(), 1, "no GET");
        }
    }
}

// -- the legacy transport ----------------------------------------------------------------

#[test]
fn a_400_404_or_405_leads_to_the_get_and_its_endpoint() {
    for status in [400, 404, 405] {
        for body in ["", "Method Not Allowed", "<html>Cannot POST /sse</html>"] {
            let run = probe(&[
                answer(status_answer(status, "", body), End::Eof),
                legacy_stream(),
            ]);
            assert_eq!(run.result, legacy(), "{status} {body:?}");
            assert_eq!(
                run.trace,
                [
                    "connect", "send", "close", "connect", "send", "close", "done"
                ]
            );
            let get = &run.sent[1];
            assert!(
                get.starts_with(
                    "GET /sse HTTP/1.1\r\nHost: backend:9000\r\nAccept: text/event-stream\r\n"
                ),
                "{get}"
            );
            assert!(get.contains("Connection: close\r\n") && get.ends_with("\r\n\r\n"));
        }
    }
}

#[test]
fn the_endpoint_is_found_in_every_stream_framing() {
    let chunk = |s: &str| format!("{:x}\r\n{s}\r\n", s.len());
    let streams = [
        // CRLF lines, a comment and a priming event first.
        format!(
            "{SSE_HEAD}: ping\r\n\r\nid: 0\r\ndata:\r\n\r\nevent: endpoint\r\ndata: /messages?sessionId=abc\r\n\r\n"
        ),
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\nTransfer-Encoding: chunked\r\n\r\n{}{}",
            chunk(": hi\n\n"),
            chunk(ENDPOINT)
        ),
        format!("HTTP/1.1 100 Continue\r\n\r\n{SSE_HEAD}{ENDPOINT}"),
    ];
    for stream in streams {
        let run = probe(&[
            answer(status_answer(405, "", ""), End::Eof),
            answer(stream.clone(), End::Open),
        ]);
        assert_eq!(run.result, legacy(), "{stream:?}");
    }
}

#[test]
fn a_get_that_is_not_a_legacy_stream_is_inconclusive() {
    let post = || answer(status_answer(404, "", ""), End::Eof);
    let cases: Vec<(Dial, ProbeFailure)> = vec![
        (
            answer(
                status_answer(200, "Content-Type: application/json\r\n", "{}"),
                End::Eof,
            ),
            ProbeFailure::NotLegacy(BridgeError::NotEventStream {
                content_type: "application/json".into(),
            }),
        ),
        (
            answer(status_answer(405, "", ""), End::Eof),
            ProbeFailure::NotLegacy(BridgeError::StreamStatus { status: 405 }),
        ),
        (
            answer(
                format!("{SSE_HEAD}event: message\ndata: {{}}\n\n{ENDPOINT}"),
                End::Open,
            ),
            ProbeFailure::NotLegacy(BridgeError::StreamMalformed {
                detail: "the first event is \"message\", not endpoint".into(),
            }),
        ),
        // The stream ends before the endpoint: by the close, by its length.
        (
            answer(format!("{SSE_HEAD}: waiting\n\n"), End::Eof),
            ProbeFailure::NotLegacy(BridgeError::StreamClosed {
                phase: SessionPhase::AwaitingEndpoint,
                error: false,
            }),
        ),
        (
            answer(format!("{SSE_HEAD}: waiting\n\n"), End::Fail),
            ProbeFailure::NotLegacy(BridgeError::StreamClosed {
                phase: SessionPhase::AwaitingEndpoint,
                error: true,
            }),
        ),
        (
            answer(
                "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: 5\r\n\r\n: x\n\n",
                End::Open,
            ),
            ProbeFailure::NotLegacy(BridgeError::StreamClosed {
                phase: SessionPhase::AwaitingEndpoint,
                error: false,
            }),
        ),
        // The connection ends before the head.
        (
            answer("HTTP/1.1 200 OK\r\n", End::Eof),
            ProbeFailure::Closed {
                stage: ProbeStage::Stream,
                error: None,
            },
        ),
        (
            Dial::Refuse,
            ProbeFailure::ConnectFailed {
                stage: ProbeStage::Stream,
                detail: "connection refused".into(),
            },
        ),
    ];
    for (dial, failure) in cases {
        let run = probe(&[post(), dial.clone()]);
        assert_eq!(inconclusive(&run), &failure, "{dial:?}");
    }
}

#[test]
fn an_endpoint_event_larger_than_the_limit_is_refused() {
    let mut limits = config();
    limits.sse.max_event_bytes = 64;
    let huge = format!(
        "{SSE_HEAD}event: endpoint\ndata: /m?s={}\n\n",
        "a".repeat(100)
    );
    let run = probe_with(
        Start::New,
        &limits,
        &[
            answer(status_answer(405, "", ""), End::Eof),
            answer(huge, End::Open),
        ],
    );
    assert_eq!(
        inconclusive(&run),
        &ProbeFailure::NotLegacy(BridgeError::EventTooLarge { limit: 64 })
    );
}

// -- no conclusion -----------------------------------------------------------------------

#[test]
fn statuses_that_say_nothing_are_inconclusive_without_a_get() {
    for status in [401, 403, 406, 415, 429, 500, 502, 503, 301] {
        let run = probe(&[answer(
            status_answer(status, "WWW-Authenticate: Bearer\r\n", "no"),
            End::Eof,
        )]);
        assert_eq!(inconclusive(&run), &ProbeFailure::Status { status });
        assert_eq!(run.sent.len(), 1);
    }
}

#[test]
fn post_failures_are_inconclusive() {
    let cases: Vec<(Dial, ProbeFailure)> = vec![
        (
            Dial::Refuse,
            ProbeFailure::ConnectFailed {
                stage: ProbeStage::Post,
                detail: "connection refused".into(),
            },
        ),
        (
            answer("HTTP/1.1 20", End::Eof),
            ProbeFailure::Closed {
                stage: ProbeStage::Post,
                error: None,
            },
        ),
        (
            answer("", End::Fail),
            ProbeFailure::Closed {
                stage: ProbeStage::Post,
                error: Some("connection reset".into()),
            },
        ),
        // A 405 whose body the close cuts short: not a complete answer.
        (
            answer("HTTP/1.1 405 X\r\nContent-Length: 10\r\n\r\nMeth", End::Eof),
            ProbeFailure::Closed {
                stage: ProbeStage::Post,
                error: None,
            },
        ),
    ];
    for (dial, failure) in cases {
        let run = probe(std::slice::from_ref(&dial));
        assert_eq!(inconclusive(&run), &failure, "{dial:?}");
    }
    let run = probe(&[answer("HTTP/1.1 200 OK\r\nBad Header\r\n\r\n", End::Eof)]);
    assert!(matches!(
        inconclusive(&run),
        ProbeFailure::BadAnswer {
            stage: ProbeStage::Post,
            ..
        }
    ));
}

#[test]
fn oversize_heads_are_refused_at_both_steps() {
    let mut limits = config();
    limits.http.max_head_bytes = 256;
    let filler = "f".repeat(300);
    let big = format!("HTTP/1.1 405 X\r\nX-Filler: {filler}\r\nContent-Length: 0\r\n\r\n");
    let run = probe_with(Start::New, &limits, &[answer(big.clone(), End::Eof)]);
    assert!(matches!(
        inconclusive(&run),
        ProbeFailure::BadAnswer {
            stage: ProbeStage::Post,
            ..
        }
    ));
    let big_stream = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nX-Filler: {filler}\r\n\r\n{ENDPOINT}"
    );
    let run = probe_with(
        Start::New,
        &limits,
        &[
            answer(status_answer(405, "", ""), End::Eof),
            answer(big_stream, End::Open),
        ],
    );
    assert!(matches!(
        inconclusive(&run),
        ProbeFailure::NotLegacy(BridgeError::StreamMalformed { .. })
    ));
}

#[test]
fn a_long_error_body_is_judged_from_its_start() {
    // A 404 page of 1 MiB that never finishes arriving: the first 4 KiB
    // decide (not a JSON-RPC error), and the GET follows.
    let wire = format!(
        "HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\nContent-Length: 1048576\r\n\r\n{}",
        "<p>".repeat(2000)
    );
    let run = probe(&[answer(wire, End::Open), legacy_stream()]);
    assert_eq!(run.result, legacy());
}

// -- time --------------------------------------------------------------------------------

#[test]
fn the_deadline_ends_every_step() {
    let post405 = || answer(status_answer(405, "", ""), End::Eof);
    let timeout = |stage| ProbeFailure::Timeout {
        stage,
        waited_ms: 10_000,
    };
    let cases: Vec<(Vec<Dial>, ProbeFailure)> = vec![
        (vec![Dial::Hang], timeout(ProbeStage::Post)),
        (vec![answer("", End::Open)], timeout(ProbeStage::Post)),
        (
            vec![answer("HTTP/1.1 405 X\r\n", End::Open)],
            timeout(ProbeStage::Post),
        ),
        (vec![post405(), Dial::Hang], timeout(ProbeStage::Stream)),
        (
            vec![post405(), answer("", End::Open)],
            timeout(ProbeStage::Stream),
        ),
        (
            vec![post405(), answer(format!("{SSE_HEAD}: hi\n\n"), End::Open)],
            timeout(ProbeStage::Stream),
        ),
    ];
    for (script, failure) in cases {
        let run = probe(&script);
        assert_eq!(inconclusive(&run), &failure, "{script:?}");
        assert_eq!(run.took, TIMEOUT);
        // A connect in progress is abandoned with Close.
        assert_eq!(run.trace[run.trace.len() - 2..], ["close", "done"]);
    }
}

#[test]
fn an_input_past_the_deadline_is_the_deadline() {
    let t0 = Instant::now();
    let mut p = Probe::new(config(), t0);
    assert_eq!(p.poll_output(), Some(ProbeOutput::Connect));
    p.connected(t0);
    assert!(matches!(p.poll_output(), Some(ProbeOutput::Send(_))));
    // The 2xx arrives, but only after the deadline: too late to count.
    p.feed(
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        t0 + TIMEOUT,
    );
    assert_eq!(p.poll_output(), Some(ProbeOutput::Close));
    assert_eq!(
        p.poll_output(),
        Some(ProbeOutput::Done(ProbeResult::Inconclusive(
            ProbeFailure::Timeout {
                stage: ProbeStage::Post,
                waited_ms: 10_000
            }
        )))
    );
    assert_eq!(p.poll_output(), None);
    // Everything after Done is ignored.
    p.feed(b"HTTP/1.1 200 OK\r\n\r\n", t0);
    p.eof(t0);
    p.connected(t0);
    p.handle_timeout(t0 + TIMEOUT * 2);
    assert_eq!(p.poll_output(), None);
    assert_eq!(p.poll_timeout(), None);
}

#[test]
fn an_early_handle_timeout_does_nothing() {
    let t0 = Instant::now();
    let mut p = Probe::new(config(), t0);
    assert_eq!(p.poll_output(), Some(ProbeOutput::Connect));
    p.handle_timeout(t0 + TIMEOUT - Duration::from_millis(1));
    assert_eq!(p.poll_output(), None);
    assert_eq!(p.poll_timeout(), Some(t0 + TIMEOUT));
    // Inputs that do not fit the state are ignored.
    p.feed(b"HTTP/1.1 200 OK\r\n\r\n", t0);
    p.eof(t0);
    assert_eq!(p.poll_output(), None);
    assert!(!p.is_done());
}

#[test]
fn a_connect_report_with_no_connect_in_progress_is_ignored() {
    // Found by the fuzzer: a second `connected` used to lose the state.
    let t0 = Instant::now();
    let mut p = Probe::new(config(), t0);
    assert_eq!(p.poll_output(), Some(ProbeOutput::Connect));
    p.connected(t0);
    assert!(matches!(p.poll_output(), Some(ProbeOutput::Send(_))));
    p.connected(t0);
    p.connect_failed("late", t0);
    assert_eq!(p.poll_output(), None);
    assert!(!p.is_done());
    p.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", t0);
    assert_eq!(p.poll_output(), Some(ProbeOutput::Close));
    assert_eq!(
        p.poll_output(),
        Some(ProbeOutput::Done(ProbeResult::Streamable {
            status: 200,
            cleanup: Cleanup::NotNeeded
        }))
    );
}

#[test]
fn a_connect_failure_past_the_deadline_is_the_deadline_with_no_close() {
    // Found by the fuzzer: no `Close` follows a `connect_failed`, ever.
    let t0 = Instant::now();
    let mut p = Probe::new(config(), t0);
    assert_eq!(p.poll_output(), Some(ProbeOutput::Connect));
    p.connect_failed("refused", t0 + TIMEOUT);
    assert_eq!(
        p.poll_output(),
        Some(ProbeOutput::Done(ProbeResult::Inconclusive(
            ProbeFailure::Timeout {
                stage: ProbeStage::Post,
                waited_ms: 10_000
            }
        )))
    );
    assert_eq!(p.poll_output(), None);
}

// -- starting from the client's own answer -----------------------------------------------

#[test]
fn after_a_2xx_the_probe_concludes_with_no_io() {
    for status in [200, 202, 204] {
        let run = after(status, "", &[]);
        assert_eq!(
            run.result,
            ProbeResult::Streamable {
                status,
                cleanup: Cleanup::NotNeeded
            }
        );
        assert_eq!(
            run.trace,
            ["done"],
            "no connect, and no DELETE of the client's session"
        );
    }
}

#[test]
fn after_a_jsonrpc_error_on_400_404_405_the_probe_concludes_with_no_io() {
    for status in [400, 404, 405] {
        let run = after(status, JSONRPC_ERROR, &[]);
        assert_eq!(
            run.result,
            ProbeResult::Streamable {
                status,
                cleanup: Cleanup::NotNeeded
            }
        );
        assert_eq!(run.trace, ["done"]);
    }
}

#[test]
fn after_other_statuses_the_probe_concludes_nothing_with_no_io() {
    for status in [100, 301, 401, 403, 406, 429, 500, 503] {
        let run = after(status, "", &[]);
        assert_eq!(inconclusive(&run), &ProbeFailure::Status { status });
        assert_eq!(run.trace, ["done"]);
    }
}

#[test]
fn after_a_400_404_405_the_probe_goes_straight_to_the_get() {
    for status in [400, 404, 405] {
        let run = after(status, "Cannot POST /sse", &[legacy_stream()]);
        assert_eq!(run.result, legacy());
        assert_eq!(run.trace, ["connect", "send", "close", "done"]);
        let get = &run.sent[0];
        assert!(get.starts_with("GET /sse HTTP/1.1\r\nHost: backend:9000\r\n"));
        // The client's own fields go on; the transport's do not.
        assert!(get.contains("Authorization: Bearer t\r\n"), "{get}");
        assert!(get.contains("X-Custom: 1\r\n"));
        assert!(!get.contains("client-session"));
        assert!(!get.contains("Content-Type"));
        assert_eq!(get.matches("Host:").count(), 1);
    }
    // …and concludes nothing when the GET finds no legacy stream.
    let run = after(404, "", &[answer(status_answer(405, "", ""), End::Eof)]);
    assert_eq!(
        inconclusive(&run),
        &ProbeFailure::NotLegacy(BridgeError::StreamStatus { status: 405 })
    );
    // The deadline counts from after_answer.
    let run = after(405, "", &[Dial::Hang]);
    assert_eq!(
        inconclusive(&run),
        &ProbeFailure::Timeout {
            stage: ProbeStage::Stream,
            waited_ms: 10_000
        }
    );
}

// -- messages ----------------------------------------------------------------------------

#[test]
fn failures_name_their_step() {
    let f = ProbeFailure::Timeout {
        stage: ProbeStage::Stream,
        waited_ms: 10_000,
    };
    assert_eq!(
        f.to_string(),
        "the probe ran out of its 10000 ms during the GET for a legacy SSE stream"
    );
    let f = ProbeFailure::NotLegacy(BridgeError::StreamStatus { status: 405 });
    assert!(f.to_string().contains("status 405 instead of 200"), "{f}");
    let f = ProbeFailure::Closed {
        stage: ProbeStage::Post,
        error: Some("reset".into()),
    };
    assert_eq!(
        f.to_string(),
        "the connection of the probe's POST of initialize failed before the answer: reset"
    );
}
