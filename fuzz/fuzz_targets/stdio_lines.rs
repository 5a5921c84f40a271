//! The stdio framing (`core::stdio`): a child's stdout in any pieces, with
//! a small line limit.
//!
//! - never panics; never holds more than the limit of an unfinished line;
//! - the items do not depend on where the pipe split the bytes;
//! - every message is one trimmed line of UTF-8 starting with `{` or `[`,
//!   within the limit;
//! - noise is counted once per line, and only the first of a burst carries
//!   an excerpt;
//! - `encode_message` makes exactly one line, and a JSON text keeps its
//!   meaning;
//! - a request through `IdRewriter` reaches the child under a minted id,
//!   with the rest of its text unchanged, and the answer comes back to its
//!   session under the client's id byte for byte.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use sluice_core::jsonrpc::{self, Classified, Kind};
use sluice_core::stdio::{self, IdRewriter, Item, LineReader, StdioLimits};

#[derive(Arbitrary, Debug)]
struct Input {
    /// The line limit, 1..=256.
    max_line: u8,
    /// Where the pipe split the bytes.
    splits: Vec<u16>,
    stdout: Vec<u8>,
}

fn read(limits: StdioLimits, pieces: &[&[u8]]) -> (Vec<Item>, u64) {
    let mut reader = LineReader::new(limits);
    let mut items = Vec::new();
    for piece in pieces {
        reader.feed(piece);
        assert!(reader.buffered() <= limits.max_line);
        items.extend(std::iter::from_fn(|| reader.poll()));
    }
    reader.finish();
    items.extend(std::iter::from_fn(|| reader.poll()));
    (items, reader.noise_lines())
}

fuzz_target!(|input: Input| {
    let limits = StdioLimits {
        max_line: usize::from(input.max_line).max(1),
    };
    let bytes = &input.stdout[..];
    let (whole, noise) = read(limits, &[bytes]);
    let mut pieces = Vec::new();
    let mut at = 0;
    for s in &input.splits {
        let end = (at + usize::from(*s) % 64).min(bytes.len());
        pieces.push(&bytes[at..end]);
        at = end;
    }
    pieces.push(&bytes[at..]);
    let (split, split_noise) = read(limits, &pieces);
    assert_eq!(whole, split, "the split changed the items");
    assert_eq!(noise, split_noise);

    let mut in_burst = false;
    let mut counted = 0;
    for item in &whole {
        match item {
            Item::Message(m) => {
                assert!(m.len() <= limits.max_line);
                assert!(matches!(m[0], b'{' | b'['));
                assert!(!m.contains(&b'\n'));
                assert!(std::str::from_utf8(m).is_ok());
                assert!(!matches!(m[m.len() - 1], b' ' | b'\t' | b'\r'));
                in_burst = false;
            }
            Item::Noise(n) => {
                counted += 1;
                assert_eq!(n.first_of_burst, !in_burst);
                assert!(n.first_of_burst || n.excerpt.is_empty());
                assert!(n.excerpt.len() <= stdio::NOISE_EXCERPT * 3);
                in_burst = true;
            }
            Item::Refused(_) => in_burst = false,
        }
    }
    assert_eq!(counted, noise);

    let line = stdio::encode_message(bytes);
    assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
    assert_eq!(line.last(), Some(&b'\n'));
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(bytes) {
        let again: serde_json::Value = serde_json::from_slice(&line).expect("still JSON");
        assert_eq!(value, again);
    }

    let json = jsonrpc::Limits::default();
    if let Ok(Classified::Single(m)) = jsonrpc::classify(bytes, &json)
        && m.kind == Kind::Request
    {
        let mut ids = IdRewriter::new();
        let (to_child, child) = ids.outbound(9u8, bytes, &m).expect("a request is rewritten");
        let Ok(Classified::Single(c)) = jsonrpc::classify(&to_child, &json) else {
            panic!("the rewritten request no longer classifies");
        };
        assert_eq!(c.id, Some(child.to_string().as_bytes()));
        assert_eq!(c.method, m.method);
        let answer = format!(r#"{{"jsonrpc":"2.0","id":{child},"result":{{}}}}"#);
        let Ok(Classified::Single(a)) = jsonrpc::classify(answer.as_bytes(), &json) else {
            unreachable!("a fixed answer")
        };
        let (session, back) = ids.inbound(answer.as_bytes(), &a).expect("routed");
        assert_eq!(session, 9);
        let Ok(Classified::Single(b)) = jsonrpc::classify(&back, &json) else {
            panic!("the restored answer no longer classifies");
        };
        assert_eq!(b.id, m.id, "the client's id, byte for byte");
    }
});
