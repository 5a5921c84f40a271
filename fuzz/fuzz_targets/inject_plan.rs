//! The injection rules over every combination of what was sent, client
//! framing, accepted media types, answer and close flag, with arbitrary
//! message bytes: never panic, and whatever `plan` writes is a message the
//! client reads back whole.
//!
//! - `Response`: a valid HTTP/1.1 response (parsed by `http1`) whose body is
//!   completely framed and carries the message (as JSON, or as one SSE event).
//! - `EventThenEnd`: de-chunked when chunked (ending exactly at the last
//!   chunk), exactly one SSE event whose data is the message.
//! - `Abort` only after a partial event or a non-SSE head; `Nothing` only
//!   once the answer is finished.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use sluice_core::http1::{self, BodyFraming, ChunkedDecoder, Limits, Parsed};
use sluice_core::inject::{Accepts, Answer, ClientFraming, Injection, Sent, plan};
use sluice_core::sse::{SseItem, SseLimits, SseParser};

#[derive(Arbitrary, Debug)]
enum SentIn {
    Nothing,
    SseHead { at_boundary: bool },
    OtherHead,
    Finished,
}

#[derive(Arbitrary, Debug)]
struct Input {
    sent: SentIn,
    until_close: bool,
    json: bool,
    sse: bool,
    result: bool,
    status: u16,
    close: bool,
    message: Vec<u8>,
}

/// What the SSE parser must read back from the encoded message: line ends
/// become LF, invalid UTF-8 becomes U+FFFD.
fn expected_data(message: &[u8]) -> String {
    let mut out = Vec::with_capacity(message.len());
    let mut i = 0;
    while i < message.len() {
        match message[i] {
            b'\r' => {
                out.push(b'\n');
                if message.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The body of a chunked stream, which must end exactly with its last chunk.
fn dechunk(body: &[u8]) -> Vec<u8> {
    let mut decoder = ChunkedDecoder::new(&Limits::default());
    let mut out = Vec::new();
    let mut rest = body;
    loop {
        let step = decoder.decode(rest).expect("valid chunked framing");
        if let Some(r) = step.data.clone() {
            out.extend_from_slice(&rest[r]);
        }
        rest = &rest[step.consumed..];
        if step.done {
            assert!(rest.is_empty(), "bytes after the last chunk");
            return out;
        }
        assert!(
            step.consumed > 0 && !rest.is_empty(),
            "chunked body ends before its last chunk"
        );
    }
}

/// The stream holds exactly one event, `message`, and ends at a boundary.
fn assert_one_event(stream: &[u8], message: &[u8]) {
    let mut parser = SseParser::new(SseLimits::default());
    parser.feed(stream);
    assert!(parser.at_event_boundary(), "injected event left open");
    parser.finish();
    let items: Vec<_> = std::iter::from_fn(|| parser.poll()).collect();
    let [Ok(SseItem::Event(event))] = items.as_slice() else {
        panic!("expected one event, got {items:?}");
    };
    assert_eq!(event.event_type, "message");
    assert_eq!(event.data, expected_data(message));
}

fuzz_target!(|input: Input| {
    // Messages are JSON text in sluice, never empty (an empty `data:` is no
    // event at all, by the SSE spec).
    if input.message.is_empty() {
        return;
    }
    let sent = match input.sent {
        SentIn::Nothing => Sent::Nothing,
        SentIn::SseHead { at_boundary } => Sent::SseHead { at_boundary },
        SentIn::OtherHead => Sent::OtherHead,
        SentIn::Finished => Sent::Finished,
    };
    let framing = if input.until_close {
        ClientFraming::UntilClose
    } else {
        ClientFraming::Chunked
    };
    let accepts = Accepts {
        json: input.json,
        sse: input.sse,
    };
    // Error statuses are the ones sluice answers with: 4xx and 5xx.
    let status = 400 + input.status % 200;
    let message = input.message.as_slice();
    let answer = if input.result {
        Answer::Result { message }
    } else {
        Answer::Error { message, status }
    };

    match plan(sent, framing, accepts, answer, input.close) {
        Injection::Response(bytes) => {
            assert_eq!(sent, Sent::Nothing);
            let Ok(Parsed::Complete { head, len }) =
                http1::parse_response_head(&bytes, &Limits::default())
            else {
                panic!("not a response head: {:?}", String::from_utf8_lossy(&bytes));
            };
            let want_status = if input.result { 200 } else { status };
            assert_eq!(head.status, want_status);
            assert_eq!(head.version, http1::Version::Http11);
            assert_eq!(head.connection_close(), input.close);
            let body = &bytes[len..];
            let is_sse = head
                .header("content-type")
                .is_some_and(|h| h.value.starts_with(b"text/event-stream"));
            match http1::response_framing("POST", &head).expect("unambiguous framing") {
                BodyFraming::ContentLength(n) => {
                    assert!(!is_sse, "SSE never gets a Content-Length");
                    assert_eq!(n, body.len() as u64);
                    assert_eq!(body, message);
                }
                BodyFraming::Chunked => {
                    assert!(is_sse, "only SSE answers are chunked");
                    assert!(input.result && !input.json && input.sse);
                    assert_one_event(&dechunk(body), message);
                }
                other => panic!("unexpected framing {other:?}"),
            }
        }
        Injection::EventThenEnd(bytes) => {
            assert_eq!(sent, Sent::SseHead { at_boundary: true });
            let stream = match framing {
                ClientFraming::Chunked => dechunk(&bytes),
                ClientFraming::UntilClose => bytes,
            };
            assert_one_event(&stream, message);
        }
        Injection::Abort => assert!(matches!(
            sent,
            Sent::SseHead { at_boundary: false } | Sent::OtherHead
        )),
        Injection::Nothing => assert_eq!(sent, Sent::Finished),
    }
});
