//! W3C `traceparent` as a client sends it, on arbitrary bytes, and the
//! sampling rule on arbitrary ratios. Never panic, and for every value
//! `TraceParent::parse` accepts:
//! - what sluice writes back is the value itself (spaces and tabs around
//!   it trimmed) when it is version `00`, else the same ids and flags as
//!   version `00`, and it parses to the same trace parent;
//! - neither id is all zeros and every digit read was lowercase hex.
//!
//! `sampled` follows the parent's flag when there is one, and otherwise
//! never samples a ratio at or below 0 (or NaN) and always one at or
//! above 1.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use sluice_core::tracecontext::{TraceId, TraceParent, sampled};

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    value: &'a [u8],
    ratio: f64,
    trace_id: [u8; 16],
}

fuzz_target!(|input: Input<'_>| {
    let parent = TraceParent::parse(input.value);
    if let Some(parent) = &parent {
        let trimmed = input.value.trim_ascii();
        let written = parent.write();
        assert_eq!(written.len(), TraceParent::LEN);
        assert!(trimmed.len() >= TraceParent::LEN);
        let head = &trimmed[..TraceParent::LEN];
        if head.starts_with(b"00") {
            assert_eq!(trimmed, written.as_bytes());
        } else {
            assert_eq!(&head[2..], &written.as_bytes()[2..]);
        }
        assert_eq!(TraceParent::parse(written.as_bytes()).as_ref(), Some(parent));
        assert!(
            written
                .bytes()
                .all(|b| b == b'-' || b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        );
        assert!(!written[3..35].bytes().all(|b| b == b'0'));
        assert!(!written[36..52].bytes().all(|b| b == b'0'));
    }
    let id = TraceId(input.trace_id);
    let with_parent = sampled(input.ratio, parent.as_ref(), &id);
    match &parent {
        Some(p) => assert_eq!(with_parent, p.is_sampled()),
        None if input.ratio.is_nan() || input.ratio <= 0.0 => assert!(!with_parent),
        None if input.ratio >= 1.0 => assert!(with_parent),
        None => {}
    }
});
