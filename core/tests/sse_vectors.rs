//! The SSE vector table (`tests/vectors/sse.json`), replayed under every
//! split of the chunking harness.

mod common;

use serde_json::Value;
use sluice_core::sse::{SseError, SseItem, SseLimits, SseParser};

/// Everything observable about one run of the parser.
#[derive(Debug, PartialEq)]
struct Outcome {
    items: Vec<Result<SseItem, SseError>>,
    at_boundary: bool,
    boundary_offset: u64,
    last_event_id: String,
    ended_at_boundary: bool,
}

fn run(limits: SseLimits, resume: Option<&str>, chunks: &[&[u8]]) -> Outcome {
    let mut parser = match resume {
        Some(id) => SseParser::resume(limits, id),
        None => SseParser::new(limits),
    };
    let mut items = Vec::new();
    for chunk in chunks {
        parser.feed(chunk);
        while let Some(item) = parser.poll() {
            items.push(item);
        }
    }
    let at_boundary = parser.at_event_boundary();
    let boundary_offset = parser.boundary_offset();
    parser.finish();
    while let Some(item) = parser.poll() {
        items.push(item);
    }
    Outcome {
        items,
        at_boundary,
        boundary_offset,
        last_event_id: parser.last_event_id().to_owned(),
        ended_at_boundary: parser.at_event_boundary(),
    }
}

fn decode_hex(hex: &str) -> Vec<u8> {
    assert!(hex.len().is_multiple_of(2), "odd hex {hex:?}");
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex digit"))
        .collect()
}

fn input_bytes(input: &Value) -> Vec<u8> {
    match input {
        Value::String(s) => s.as_bytes().to_vec(),
        Value::Array(parts) => parts.iter().flat_map(input_bytes).collect(),
        Value::Object(o) => decode_hex(o["hex"].as_str().expect("hex part")),
        other => panic!("bad input {other:?}"),
    }
}

fn span_of(v: &Value) -> Option<std::ops::Range<u64>> {
    let a = v.get("span")?.as_array().expect("span is [a, b]");
    Some(a[0].as_u64().unwrap()..a[1].as_u64().unwrap())
}

/// Compare one produced item with its expectation; spans only when given.
fn item_matches(actual: &SseItem, expected: &Value) -> bool {
    let span = span_of(expected);
    match actual {
        SseItem::Comment { text, span: got } => {
            expected.get("comment").and_then(Value::as_str) == Some(text.as_str())
                && span.is_none_or(|s| s == *got)
        }
        SseItem::Event(ev) => {
            expected.get("comment").is_none()
                && expected
                    .get("event")
                    .and_then(Value::as_str)
                    .unwrap_or("message")
                    == ev.event_type
                && expected["data"].as_str() == Some(ev.data.as_str())
                && expected.get("id").and_then(Value::as_str).unwrap_or("") == ev.id
                && expected.get("retry").and_then(Value::as_u64) == ev.retry
                && span.is_none_or(|s| s == ev.span)
        }
    }
}

fn check_expectations(name: &str, v: &Value, out: &Outcome) {
    let expected_items = v["items"].as_array().expect("items");
    let mut produced: Vec<&SseItem> = Vec::new();
    let mut error = None;
    for (i, item) in out.items.iter().enumerate() {
        match item {
            Ok(item) => produced.push(item),
            Err(e) => {
                assert_eq!(i, out.items.len() - 1, "{name}: error must come last");
                error = Some(*e);
            }
        }
    }
    assert_eq!(
        produced.len(),
        expected_items.len(),
        "{name}: item count\n got {produced:#?}"
    );
    for (got, want) in produced.iter().zip(expected_items) {
        assert!(
            item_matches(got, want),
            "{name}: got {got:#?}\n want {want}"
        );
    }
    match v.get("error").and_then(Value::as_str) {
        None => assert_eq!(error, None, "{name}: unexpected error"),
        Some("event_too_large") => assert!(
            matches!(error, Some(SseError::EventTooLarge { .. })),
            "{name}: want event_too_large, got {error:?}"
        ),
        Some(other) => panic!("{name}: unknown error name {other}"),
    }
    if let Some(id) = v.get("last_event_id") {
        assert_eq!(
            out.last_event_id,
            id.as_str().unwrap(),
            "{name}: last_event_id"
        );
    }
    if let Some(b) = v.get("at_boundary") {
        assert_eq!(out.at_boundary, b.as_bool().unwrap(), "{name}: at_boundary");
    }
    if let Some(b) = v.get("boundary_offset") {
        assert_eq!(
            out.boundary_offset,
            b.as_u64().unwrap(),
            "{name}: boundary_offset"
        );
    }
    if let Some(b) = v.get("ended_at_boundary") {
        assert_eq!(
            out.ended_at_boundary,
            b.as_bool().unwrap(),
            "{name}: ended_at_boundary"
        );
    }
}

/// Spans must let a proxy forward the original bytes: event spans are in
/// order, inside the input, end with a line end, and the bytes of a span
/// parsed alone give the same event back.
fn check_spans(name: &str, input: &[u8], limits: SseLimits, out: &Outcome) {
    let mut previous_end = 0;
    for item in out.items.iter().flatten() {
        let SseItem::Event(ev) = item else { continue };
        assert!(ev.span.start >= previous_end, "{name}: spans overlap");
        assert!(ev.span.end <= input.len() as u64, "{name}: span past input");
        previous_end = ev.span.end;
        let bytes = &input[ev.span.start as usize..ev.span.end as usize];
        assert!(
            matches!(bytes.last(), Some(b'\n' | b'\r')),
            "{name}: span does not end with a line end"
        );
        let mut alone = SseParser::resume(limits, &ev.id);
        alone.feed(bytes);
        let again: Vec<_> = std::iter::from_fn(|| alone.poll())
            .filter(|item| !matches!(item, Ok(SseItem::Comment { .. })))
            .collect();
        let [Ok(SseItem::Event(back))] = again.as_slice() else {
            panic!("{name}: span {:?} alone gave {again:?}", ev.span);
        };
        assert_eq!(
            (&back.event_type, &back.data, &back.id, back.retry),
            (&ev.event_type, &ev.data, &ev.id, ev.retry),
            "{name}: span alone gives another event"
        );
    }
}

#[test]
fn sse_vectors_under_every_split() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vectors/sse.json"
    ))
    .expect("read vectors");
    let table: Value = serde_json::from_str(&text).expect("vectors are JSON");
    let vectors = table["vectors"].as_array().expect("vectors");
    assert!(vectors.len() >= 60, "only {} vectors", vectors.len());
    let mut names = std::collections::HashSet::new();
    for v in vectors {
        let name = v["name"].as_str().expect("name");
        assert!(names.insert(name), "duplicate vector name {name}");
        let input = input_bytes(&v["input"]);
        let mut limits = SseLimits::default();
        if let Some(max) = v.get("max_event_bytes") {
            limits.max_event_bytes = max.as_u64().unwrap() as usize;
        }
        let resume = v.get("resume").and_then(Value::as_str);
        let whole = run(limits, resume, &[&input]);
        check_expectations(name, v, &whole);
        check_spans(name, &input, limits, &whole);
        common::for_each_split(&input, |split, chunks| {
            let out = run(limits, resume, chunks);
            assert_eq!(out, whole, "{name}: split {split:?} changed the result");
        });
    }
}
