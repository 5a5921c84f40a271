//! SSE behaviour beyond the vector table: encoder round trips, linearity,
//! emission without waiting, boundaries and injection, resume, real SDK
//! stream shapes, and random streams under every split.

mod common;

use common::Rng;
use sluice_core::sse::{
    EncodeError, OutgoingEvent, SseError, SseEvent, SseItem, SseLimits, SseParser, encode_comment,
    encode_event, encode_jsonrpc_message,
};

fn drain(parser: &mut SseParser) -> Vec<Result<SseItem, SseError>> {
    std::iter::from_fn(|| parser.poll()).collect()
}

fn parse_chunks(chunks: &[&[u8]]) -> Vec<Result<SseItem, SseError>> {
    let mut parser = SseParser::new(SseLimits::default());
    let mut items = Vec::new();
    for chunk in chunks {
        parser.feed(chunk);
        items.extend(drain(&mut parser));
    }
    parser.finish();
    items.extend(drain(&mut parser));
    items
}

fn events(items: &[Result<SseItem, SseError>]) -> Vec<&SseEvent> {
    items
        .iter()
        .filter_map(|item| match item {
            Ok(SseItem::Event(ev)) => Some(ev),
            _ => None,
        })
        .collect()
}

fn roundtrip(event: &OutgoingEvent<'_>) -> SseEvent {
    let mut wire = Vec::new();
    encode_event(event, &mut wire).expect("encodable");
    let items = parse_chunks(&[&wire]);
    let evs = events(&items);
    assert_eq!(evs.len(), 1, "{wire:?} gave {items:?}");
    assert_eq!(evs[0].span, 0..wire.len() as u64, "one block, all of it");
    evs[0].clone()
}

/// What the parser gives back for `data`: line ends normalised to LF.
fn normalise(data: &str) -> String {
    data.replace("\r\n", "\n").replace('\r', "\n")
}

#[test]
fn encoder_roundtrips() {
    let cases = [
        OutgoingEvent::message("hello"),
        OutgoingEvent::message(""),
        OutgoingEvent::message("line 1\nline 2\n\nline 4\n"),
        OutgoingEvent::message("cr\ronly\r\nand crlf\r"),
        OutgoingEvent::message("  leading spaces and trailing  "),
        OutgoingEvent::message(": looks like a comment"),
        OutgoingEvent::message("\u{feff}bom, h\u{e9}llo, \u{20ac}, \u{1d11e}, \u{0}nul"),
        OutgoingEvent {
            event_type: Some("progress update"),
            data: "{\"progress\":1}",
            id: Some(" spaced id "),
            retry: Some(3000),
        },
        OutgoingEvent {
            event_type: Some(""),
            data: "x",
            id: Some(""),
            retry: Some(0),
        },
        OutgoingEvent {
            event_type: Some("\u{e9}v\u{e9}nement"),
            data: "d",
            id: Some("\u{1f600}"),
            retry: Some(u64::MAX),
        },
    ];
    for case in &cases {
        let back = roundtrip(case);
        let want_type = match case.event_type {
            None | Some("") => "message",
            Some(t) => t,
        };
        assert_eq!(back.event_type, want_type);
        assert_eq!(back.data, normalise(case.data));
        assert_eq!(back.id, case.id.unwrap_or(""));
        assert_eq!(back.retry, case.retry);
    }
}

#[test]
fn encoder_rejects_values_that_would_change_meaning() {
    let mut out = Vec::new();
    for id in ["a\nb", "a\rb", "a\0b"] {
        let ev = OutgoingEvent {
            id: Some(id),
            ..OutgoingEvent::message("x")
        };
        assert_eq!(encode_event(&ev, &mut out), Err(EncodeError::InvalidId));
    }
    for t in ["a\nb", "a\r"] {
        let ev = OutgoingEvent {
            event_type: Some(t),
            ..OutgoingEvent::message("x")
        };
        assert_eq!(
            encode_event(&ev, &mut out),
            Err(EncodeError::LineBreakInEventType)
        );
    }
    assert_eq!(
        encode_comment("a\nb", &mut out),
        Err(EncodeError::LineBreakInComment)
    );
    assert!(out.is_empty(), "nothing written on error");
    assert!(!EncodeError::InvalidId.to_string().is_empty());
}

#[test]
fn encoded_comments_read_back_and_keep_the_boundary() {
    for text in ["ping", "", " two spaces", "\u{e9}"] {
        let mut wire = Vec::new();
        encode_comment(text, &mut wire).unwrap();
        let mut parser = SseParser::new(SseLimits::default());
        parser.feed(&wire);
        let items = drain(&mut parser);
        assert!(
            matches!(items.as_slice(), [Ok(SseItem::Comment { text: t, .. })] if t == text),
            "{text:?}: {items:?}"
        );
        assert!(parser.at_event_boundary());
        assert_eq!(parser.boundary_offset(), wire.len() as u64);
    }
}

#[test]
fn jsonrpc_message_encoding() {
    let json = br#"{"jsonrpc":"2.0","id":1,"result":{"content":[]}}"#;
    let mut out = Vec::new();
    encode_jsonrpc_message(json, &mut out);
    let mut want = b"event: message\ndata: ".to_vec();
    want.extend_from_slice(json);
    want.extend_from_slice(b"\n\n");
    assert_eq!(out, want);

    // Pretty-printed JSON, with every kind of line end: one data line each,
    // and the same JSON value after parsing.
    let pretty = b"{\r\n  \"jsonrpc\": \"2.0\",\r  \"id\": \"a\"\n}";
    let mut out = Vec::new();
    encode_jsonrpc_message(pretty, &mut out);
    let items = parse_chunks(&[&out]);
    let evs = events(&items);
    assert_eq!(evs.len(), 1);
    assert_eq!(evs[0].event_type, "message");
    let a: serde_json::Value = serde_json::from_slice(pretty).unwrap();
    let b: serde_json::Value = serde_json::from_str(&evs[0].data).unwrap();
    assert_eq!(a, b);
}

#[test]
fn linear_time_one_mib_event_one_byte_at_a_time() {
    let payload = "x".repeat(1 << 20);
    let input = format!("data: {payload}\n\n");
    let mut parser = SseParser::new(SseLimits::default());
    let mut got = None;
    for byte in input.as_bytes().chunks(1) {
        parser.feed(byte);
        while let Some(item) = parser.poll() {
            got = Some(item.unwrap());
        }
    }
    let Some(SseItem::Event(ev)) = got else {
        panic!("no event")
    };
    assert_eq!(ev.data.len(), 1 << 20);
    let scanned = parser.scanned_bytes();
    assert!(
        scanned <= 3 * input.len() as u64,
        "scanned {scanned} bytes for {} bytes of input",
        input.len()
    );
}

#[test]
fn linear_time_many_lines_one_byte_at_a_time() {
    // 1 MiB in 16-byte data lines, CRLF ends: the per-line work stays flat.
    let mut input = Vec::new();
    while input.len() < 1 << 20 {
        input.extend_from_slice(b"data: 0123456\r\n");
    }
    input.extend_from_slice(b"\r\n");
    let mut parser = SseParser::new(SseLimits::default());
    for byte in input.chunks(1) {
        parser.feed(byte);
    }
    assert_eq!(events(&drain(&mut parser)).len(), 1);
    let scanned = parser.scanned_bytes();
    assert!(scanned <= 3 * input.len() as u64, "scanned {scanned}");
}

#[test]
fn event_emitted_on_lone_cr_without_waiting_for_lf() {
    let mut parser = SseParser::new(SseLimits::default());
    parser.feed(b"data: a\r\n\r");
    let items = drain(&mut parser);
    let evs = events(&items);
    assert_eq!(evs.len(), 1, "the CR blank line dispatches at once");
    assert_eq!(evs[0].span, 0..10);
    assert!(parser.at_event_boundary());
    assert_eq!(parser.boundary_offset(), 10);
    // The LF completing the CRLF is not another blank line.
    parser.feed(b"\n");
    assert!(drain(&mut parser).is_empty());
    assert!(parser.at_event_boundary());
    assert_eq!(parser.boundary_offset(), 10, "the LF starts the next block");
    parser.feed(b"data: b\r\n\r\n");
    let evs: Vec<_> = events(&drain(&mut parser)).into_iter().cloned().collect();
    assert_eq!(evs[0].data, "b");
    assert_eq!(evs[0].span, 10..21);
}

#[test]
fn crlf_split_across_feeds_is_one_line_end() {
    for input in [&b"data: a\r\ndata: b\r\n\r\n"[..], b"data: a\rdata: b\r\r"] {
        common::for_each_split(input, |split, chunks| {
            let items = parse_chunks(chunks);
            let evs = events(&items);
            assert_eq!(evs.len(), 1, "{split:?}");
            assert_eq!(evs[0].data, "a\nb", "{split:?}");
        });
    }
}

#[test]
fn resume_with_last_event_id() {
    let mut parser = SseParser::resume(SseLimits::default(), "stream-1/41");
    assert_eq!(parser.last_event_id(), "stream-1/41");
    parser.feed(b"data: replayed\n\nid: stream-1/42\ndata: next\n\ndata: after\n\n");
    let items = drain(&mut parser);
    let ids: Vec<_> = events(&items).iter().map(|e| e.id.clone()).collect();
    assert_eq!(ids, ["stream-1/41", "stream-1/42", "stream-1/42"]);
    assert_eq!(parser.last_event_id(), "stream-1/42");
}

#[test]
fn python_sdk_stream_with_crlf_and_pings() {
    // The shape sse-starlette gives the Python SDK: CRLF everywhere, a
    // priming event, `: ping` keep-alives between events.
    let mut stream = Vec::new();
    stream.extend_from_slice(b"id: 0\r\nretry: 3000\r\ndata: \r\n\r\n");
    for i in 0..5 {
        stream.extend_from_slice(b": ping - 2025-01-01 00:00:15.000000+00:00\r\n\r\n");
        stream.extend_from_slice(
            format!(
                "event: message\r\nid: {}\r\ndata: {{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{{\"progressToken\":7,\"progress\":{i}}}}}\r\n\r\n",
                i + 1
            )
            .as_bytes(),
        );
    }
    common::for_each_split(&stream, |split, chunks| {
        let mut parser = SseParser::new(SseLimits::default());
        let (mut evs, mut pings, mut forwarded) = (Vec::new(), 0, 0u64);
        for chunk in chunks {
            parser.feed(chunk);
            while let Some(item) = parser.poll() {
                match item.unwrap() {
                    SseItem::Event(ev) => {
                        assert!(ev.span.start >= forwarded, "{split:?}");
                        evs.push(ev);
                    }
                    SseItem::Comment { text, .. } => {
                        assert!(text.starts_with("ping - "), "{text:?}");
                        pings += 1;
                    }
                }
            }
            assert!(parser.boundary_offset() >= forwarded);
            forwarded = parser.boundary_offset();
        }
        parser.finish();
        assert!(parser.at_event_boundary(), "{split:?}");
        assert_eq!(pings, 5);
        assert_eq!(evs.len(), 6, "{split:?}");
        assert_eq!((evs[0].data.as_str(), evs[0].retry), ("", Some(3000)));
        for (i, ev) in evs[1..].iter().enumerate() {
            assert_eq!(ev.event_type, "message");
            assert_eq!(ev.id, (i + 1).to_string());
            let msg: serde_json::Value = serde_json::from_str(&ev.data).unwrap();
            assert_eq!(msg["params"]["progress"], i);
        }
        // Everything but the final LF of the last CRLF blank line lies in
        // finished blocks.
        assert_eq!(forwarded, stream.len() as u64 - 1);
        assert_eq!(parser.reconnection_time(), Some(3000));
    });
}

#[test]
fn errors_are_sticky_and_reported_once() {
    let mut parser = SseParser::new(SseLimits {
        max_event_bytes: 16,
    });
    parser.feed(b"data: ok\n\ndata: far too long for the limit\n\n");
    let items = drain(&mut parser);
    assert_eq!(items.len(), 2);
    assert!(matches!(items[0], Ok(SseItem::Event(_))));
    assert_eq!(items[1], Err(SseError::EventTooLarge { limit: 16 }));
    parser.feed(b"data: x\n\n");
    assert!(parser.poll().is_none());
    assert_eq!(parser.error(), Some(SseError::EventTooLarge { limit: 16 }));
    assert!(!parser.at_event_boundary());
    assert!(
        SseError::EventTooLarge { limit: 16 }
            .to_string()
            .contains("16")
    );
}

/// A random stream of SSE-ish lines with every line end, BOMs, invalid
/// UTF-8, comments and unknown fields.
fn random_stream(rng: &mut Rng) -> Vec<u8> {
    const PIECES: &[&[u8]] = &[
        b"data: x",
        b"data:",
        b"data",
        b"event: e",
        b"event:",
        b"id: 1",
        b"id:",
        b"id: \0",
        b"retry: 10",
        b"retry: +1",
        b": c",
        b":",
        b"foo: bar",
        b"\xef\xbb\xbf",
        b"\xff",
        b"\xe2\x82",
        b" ",
        b"data:  sp",
        b"\xf0\x9f\x98\x80",
    ];
    const ENDS: &[&[u8]] = &[b"\n", b"\r", b"\r\n", b"\n\n", b"\r\r", b"\r\n\r\n", b""];
    let mut out = Vec::new();
    for _ in 0..rng.below(40) {
        out.extend_from_slice(PIECES[rng.below(PIECES.len())]);
        out.extend_from_slice(ENDS[rng.below(ENDS.len())]);
    }
    out
}

#[test]
fn random_streams_same_under_every_split() {
    let mut rng = Rng::new(0x5e5e);
    for _ in 0..300 {
        let input = random_stream(&mut rng);
        let whole = parse_chunks(&[&input]);
        common::for_each_split(&input, |split, chunks| {
            assert_eq!(parse_chunks(chunks), whole, "{split:?} of {input:?}");
        });
    }
}

#[test]
fn random_bytes_never_panic_and_split_invariant() {
    let mut rng = Rng::new(7);
    for _ in 0..300 {
        let len = rng.below(200);
        let input: Vec<u8> = (0..len)
            .map(|_| match rng.below(4) {
                0 => b"\r\n:"[rng.below(3)],
                _ => rng.next_u64() as u8,
            })
            .collect();
        let whole = parse_chunks(&[&input]);
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(parse_chunks(&bytes), whole);
    }
}

#[test]
fn injecting_at_every_reported_boundary_is_safe() {
    // Wherever at_event_boundary() says yes, splicing an encoded event into
    // the stream there must yield the original events with the injected one
    // in between (the CR|LF case included).
    let mut injected = Vec::new();
    encode_event(
        &OutgoingEvent {
            event_type: Some("injected"),
            ..OutgoingEvent::message("{}")
        },
        &mut injected,
    )
    .unwrap();
    let summary = |items: &[Result<SseItem, SseError>]| -> Vec<(String, String)> {
        events(items)
            .iter()
            .map(|e| (e.event_type.clone(), e.data.clone()))
            .collect()
    };
    let mut rng = Rng::new(99);
    let mut checked = 0;
    for _ in 0..200 {
        let input = random_stream(&mut rng);
        let original = summary(&parse_chunks(&[&input]));
        let mut parser = SseParser::new(SseLimits::default());
        let mut seen = 0;
        for k in 0..=input.len() {
            if k > 0 {
                parser.feed(&input[k - 1..k]);
            }
            seen += events(&drain(&mut parser)).len();
            if !parser.at_event_boundary() {
                continue;
            }
            if k == 0 && input.starts_with(b"\xef\xbb\xbf") {
                // Documented caveat: a BOM is only a BOM at the very start.
                continue;
            }
            let spliced = [&input[..k], &injected[..], &input[k..]].concat();
            let mut want = original.clone();
            want.insert(seen, ("injected".into(), "{}".into()));
            assert_eq!(
                summary(&parse_chunks(&[&spliced])),
                want,
                "at {k} of {input:?}"
            );
            checked += 1;
        }
    }
    assert!(checked > 1000);
}

#[test]
fn retry_only_block_sets_reconnection_time_and_finish_is_final() {
    let mut parser = SseParser::new(SseLimits::default());
    parser.feed(b"retry: 2500\n\n");
    assert!(drain(&mut parser).is_empty(), "no data, no event");
    assert_eq!(parser.reconnection_time(), Some(2500));
    parser.feed(b"data: a\n");
    parser.finish();
    assert!(!parser.at_event_boundary(), "ended inside a block");
    parser.feed(b"\n");
    assert!(
        drain(&mut parser).is_empty(),
        "input after finish is ignored"
    );
    assert_eq!(parser.consumed_bytes(), 21);
}
