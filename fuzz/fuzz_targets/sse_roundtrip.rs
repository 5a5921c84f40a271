//! Encode an arbitrary event, parse it back (whole and one byte at a time):
//! the same event, or a typed encoder error for values SSE cannot carry.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_core::sse::{
    EncodeError, OutgoingEvent, SseEvent, SseItem, SseLimits, SseParser, encode_event,
    encode_jsonrpc_message,
};

fn parse_one(wire: &[u8], chunk: usize) -> SseEvent {
    let mut parser = SseParser::new(SseLimits::default());
    let mut events = Vec::new();
    for piece in wire.chunks(chunk.max(1)) {
        parser.feed(piece);
        while let Some(item) = parser.poll() {
            match item.expect("no error") {
                SseItem::Event(ev) => events.push(ev),
                SseItem::Comment { .. } => panic!("encoder wrote a comment"),
            }
        }
    }
    parser.finish();
    assert!(parser.at_event_boundary());
    assert_eq!(events.len(), 1, "{wire:?}");
    let ev = events.pop().unwrap();
    assert_eq!(ev.span, 0..wire.len() as u64);
    ev
}

fn normalise(data: &str) -> String {
    data.replace("\r\n", "\n").replace('\r', "\n")
}

fuzz_target!(|input: (Option<&str>, &str, Option<&str>, Option<u64>)| {
    let (event_type, data, id, retry) = input;
    let event = OutgoingEvent {
        event_type,
        data,
        id,
        retry,
    };
    let mut wire = Vec::new();
    match encode_event(&event, &mut wire) {
        Err(EncodeError::LineBreakInEventType) => {
            assert!(event_type.is_some_and(|t| t.contains(['\r', '\n'])));
            assert!(wire.is_empty());
        }
        Err(EncodeError::InvalidId) => {
            assert!(id.is_some_and(|i| i.contains(['\r', '\n', '\0'])));
            assert!(wire.is_empty());
        }
        Err(other) => panic!("unexpected {other:?}"),
        Ok(()) => {
            for chunk in [wire.len(), 1, 7] {
                let back = parse_one(&wire, chunk);
                let want_type = match event_type {
                    None | Some("") => "message",
                    Some(t) => t,
                };
                assert_eq!(back.event_type, want_type);
                assert_eq!(back.data, normalise(data));
                assert_eq!(back.id, id.unwrap_or(""));
                assert_eq!(back.retry, retry);
            }
        }
    }

    let mut wire = Vec::new();
    encode_jsonrpc_message(data.as_bytes(), &mut wire);
    let back = parse_one(&wire, wire.len());
    assert_eq!(back.event_type, "message");
    assert_eq!(back.data, normalise(data));
});
