//! The injection rules as a table: every kind of "already sent" crossed with
//! every answer kind, client framing and Accept combination.

use sluice_core::inject::{Accepts, Answer, ClientFraming, Injection, Sent, plan};
use sluice_core::jsonrpc::{error_message, result_message};
use sluice_core::sse::{SseItem, SseLimits, SseParser};

const BOTH: Accepts = Accepts {
    json: true,
    sse: true,
};
const JSON: Accepts = Accepts {
    json: true,
    sse: false,
};
const SSE: Accepts = Accepts {
    json: false,
    sse: true,
};

fn error(id: &[u8]) -> Vec<u8> {
    error_message(Some(id), -32603, "upstream closed the connection", None)
}

/// What one case must produce, in a form readable in a table.
#[derive(Debug, PartialEq)]
enum Want {
    Response {
        status: u16,
        content_type: &'static str,
    },
    EventThenEnd {
        chunked: bool,
    },
    Abort,
    Nothing,
}

fn describe(injection: &Injection) -> Want {
    match injection {
        Injection::Response(bytes) => {
            let text = String::from_utf8_lossy(bytes);
            let status: u16 = text[9..12].parse().unwrap();
            let content_type = if text.contains("Content-Type: text/event-stream") {
                "text/event-stream"
            } else {
                assert!(text.contains("Content-Type: application/json"), "{text}");
                "application/json"
            };
            Want::Response {
                status,
                content_type,
            }
        }
        Injection::EventThenEnd(bytes) => Want::EventThenEnd {
            chunked: bytes.ends_with(b"0\r\n\r\n"),
        },
        Injection::Abort => Want::Abort,
        Injection::Nothing => Want::Nothing,
    }
}

#[test]
fn injection_table() {
    let err = error(b"\"req-1\"");
    let res = result_message(b"7", b"{\"content\":[]}");
    let e = Answer::Error {
        message: &err,
        status: 502,
    };
    let r = Answer::Result { message: &res };
    use ClientFraming::*;
    let table: Vec<(Sent, ClientFraming, Accepts, Answer<'_>, Want)> = vec![
        (
            Sent::Nothing,
            Chunked,
            BOTH,
            e,
            Want::Response {
                status: 502,
                content_type: "application/json",
            },
        ),
        (
            Sent::Nothing,
            Chunked,
            SSE,
            e,
            Want::Response {
                status: 502,
                content_type: "application/json",
            },
        ),
        (
            Sent::Nothing,
            Chunked,
            JSON,
            r,
            Want::Response {
                status: 200,
                content_type: "application/json",
            },
        ),
        (
            Sent::Nothing,
            Chunked,
            BOTH,
            r,
            Want::Response {
                status: 200,
                content_type: "application/json",
            },
        ),
        (
            Sent::Nothing,
            Chunked,
            SSE,
            r,
            Want::Response {
                status: 200,
                content_type: "text/event-stream",
            },
        ),
        (
            Sent::SseHead { at_boundary: true },
            Chunked,
            BOTH,
            e,
            Want::EventThenEnd { chunked: true },
        ),
        (
            Sent::SseHead { at_boundary: true },
            UntilClose,
            BOTH,
            e,
            Want::EventThenEnd { chunked: false },
        ),
        (
            Sent::SseHead { at_boundary: true },
            Chunked,
            SSE,
            r,
            Want::EventThenEnd { chunked: true },
        ),
        (
            Sent::SseHead { at_boundary: false },
            Chunked,
            BOTH,
            e,
            Want::Abort,
        ),
        (
            Sent::SseHead { at_boundary: false },
            UntilClose,
            BOTH,
            r,
            Want::Abort,
        ),
        (Sent::OtherHead, Chunked, BOTH, e, Want::Abort),
        (Sent::OtherHead, UntilClose, JSON, r, Want::Abort),
        (Sent::Finished, Chunked, BOTH, e, Want::Nothing),
        (Sent::Finished, UntilClose, SSE, r, Want::Nothing),
    ];
    for (i, (sent, framing, accepts, answer, want)) in table.into_iter().enumerate() {
        let got = describe(&plan(sent, framing, accepts, answer, false));
        assert_eq!(got, want, "case {i}: {sent:?} {framing:?} {accepts:?}");
    }
}

#[test]
fn injected_event_parses_back_with_the_clients_id() {
    for id in [
        &b"1"[..],
        b"\"1\"",
        b"1.0",
        b"18446744073709551616",
        b"-0",
        b"\"a\\\"b\"",
    ] {
        let message = error(id);
        let Injection::EventThenEnd(bytes) = plan(
            Sent::SseHead { at_boundary: true },
            ClientFraming::UntilClose,
            BOTH,
            Answer::Error {
                message: &message,
                status: 502,
            },
            false,
        ) else {
            panic!("expected an event");
        };
        let mut parser = SseParser::new(SseLimits::default());
        parser.feed(&bytes);
        let Some(Ok(SseItem::Event(event))) = parser.poll() else {
            panic!("no event in {:?}", String::from_utf8_lossy(&bytes));
        };
        assert_eq!(event.event_type, "message");
        assert_eq!(event.data.as_bytes(), &message[..]);
        let needle = [&b"\"id\":"[..], id].concat();
        assert!(
            event
                .data
                .as_bytes()
                .windows(needle.len())
                .any(|w| w == needle),
            "id {id:?} kept"
        );
        assert!(parser.at_event_boundary());
    }
}

#[test]
fn accept_header_parsing() {
    let cases: [(&[&str], Accepts); 7] = [
        (&[], BOTH),
        (&["application/json, text/event-stream"], BOTH),
        (&["application/json"], JSON),
        (&["text/event-stream"], SSE),
        (&["*/*"], BOTH),
        (&["application/json;q=0.9", "TEXT/EVENT-STREAM"], BOTH),
        (&["text/event-stream;q=0, application/json"], JSON),
    ];
    for (values, want) in cases {
        let v: Vec<&[u8]> = values.iter().map(|s| s.as_bytes()).collect();
        assert_eq!(Accepts::from_headers(&v), want, "{values:?}");
    }
}

#[test]
fn event_stream_expectation() {
    use sluice_core::inject::expect_event_stream;
    assert!(expect_event_stream(200, Some(b"text/event-stream")).is_ok());
    assert!(expect_event_stream(200, Some(b"Text/Event-Stream; charset=utf-8")).is_ok());
    assert!(expect_event_stream(200, Some(b"application/json")).is_err());
    assert!(expect_event_stream(200, None).is_err());
    assert!(expect_event_stream(404, Some(b"text/event-stream")).is_err());
}
