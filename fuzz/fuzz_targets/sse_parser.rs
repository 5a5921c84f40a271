//! Any bytes into the SSE parser: never panic, and feeding the input whole,
//! split at a fuzzer-chosen point, or one byte at a time gives the same
//! items and the same final state.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_core::sse::{SseError, SseItem, SseLimits, SseParser};

#[derive(Debug, PartialEq)]
struct Run {
    items: Vec<Result<SseItem, SseError>>,
    at_boundary: bool,
    boundary_offset: u64,
    last_event_id: String,
    ended_at_boundary: bool,
}

fn run(limits: SseLimits, chunks: &[&[u8]]) -> Run {
    let mut parser = SseParser::new(limits);
    let mut items = Vec::new();
    for chunk in chunks {
        parser.feed(chunk);
        items.extend(std::iter::from_fn(|| parser.poll()));
    }
    let at_boundary = parser.at_event_boundary();
    let boundary_offset = parser.boundary_offset();
    parser.finish();
    items.extend(std::iter::from_fn(|| parser.poll()));
    Run {
        items,
        at_boundary,
        boundary_offset,
        last_event_id: parser.last_event_id().to_owned(),
        ended_at_boundary: parser.at_event_boundary(),
    }
}

fuzz_target!(|data: &[u8]| {
    // Header: two bytes choose the split point, one byte a limit (small
    // limits exercise the error path).
    let [a, b, l, input @ ..] = data else { return };
    let at = usize::from(u16::from_le_bytes([*a, *b])) % (input.len() + 1);
    let limits = match *l {
        l @ 0..64 => SseLimits {
            max_event_bytes: usize::from(l) * 3,
        },
        _ => SseLimits::default(),
    };

    let whole = run(limits, &[input]);
    let (head, tail) = input.split_at(at);
    assert_eq!(run(limits, &[head, tail]), whole, "split at {at}");
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    assert_eq!(run(limits, &bytes), whole, "byte by byte");

    // Spans stay inside the input, in order, and end with a line end.
    let mut previous_end = 0;
    for item in whole.items.iter().flatten() {
        let span = match item {
            SseItem::Event(ev) => &ev.span,
            SseItem::Comment { span, .. } => span,
        };
        assert!(span.start < span.end && span.end <= input.len() as u64);
        assert!(matches!(input[span.end as usize - 1], b'\r' | b'\n'));
        if let SseItem::Event(ev) = item {
            assert!(ev.span.start >= previous_end);
            previous_end = ev.span.end;
        }
    }
    assert!(whole.boundary_offset <= input.len() as u64);
});
