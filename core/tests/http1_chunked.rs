//! The chunked codec against `vectors/http1_chunked.json`, under every feed
//! split, with trailing bytes, and through encoder → decoder round trips.

mod common;

use common::{Rng, Split, for_each_split, vector_bytes as bytes, vector_limits as limits};
use serde_json::Value;
use sluice_core::http1::{
    ChunkedDecoder, ChunkedError, Header, LAST_CHUNK, Limits, chunk_header, encode_chunk,
    encode_last_chunk,
};

#[derive(Debug, PartialEq)]
enum Verdict {
    Done { consumed: usize },
    Partial,
    Error(ChunkedError),
}

#[derive(Debug, PartialEq)]
struct Outcome {
    data: Vec<u8>,
    verdict: Verdict,
    trailers: Vec<Header>,
}

/// Feed `chunks` as a caller would: loop on each until it is used up, the
/// body is done, or an error.
fn run(chunks: &[&[u8]], limits: &Limits) -> Outcome {
    let mut dec = ChunkedDecoder::new(limits);
    let mut data = Vec::new();
    let mut consumed = 0;
    for chunk in chunks {
        let mut rest = *chunk;
        while !rest.is_empty() {
            match dec.decode(rest) {
                Ok(step) => {
                    if let Some(r) = step.data.clone() {
                        assert!(r.end <= step.consumed, "data beyond consumed");
                        data.extend_from_slice(&rest[r]);
                    }
                    consumed += step.consumed;
                    rest = &rest[step.consumed..];
                    if step.done {
                        assert!(dec.is_done());
                        // Done is sticky and consumes nothing more.
                        let again = dec.decode(rest).unwrap();
                        assert_eq!((again.consumed, again.data, again.done), (0, None, true));
                        return Outcome {
                            data,
                            verdict: Verdict::Done { consumed },
                            trailers: dec.take_trailers(),
                        };
                    }
                    assert!(step.consumed > 0, "no progress");
                }
                Err(e) => {
                    // Errors are sticky.
                    assert_eq!(dec.decode(b"0\r\n\r\n"), Err(e));
                    return Outcome {
                        data,
                        verdict: Verdict::Error(e),
                        trailers: dec.take_trailers(),
                    };
                }
            }
        }
    }
    Outcome {
        data,
        verdict: Verdict::Partial,
        trailers: dec.take_trailers(),
    }
}

fn vectors() -> Vec<Value> {
    let text = include_str!("vectors/http1_chunked.json");
    let doc: Value = serde_json::from_str(text).unwrap();
    doc["vectors"].as_array().unwrap().clone()
}

fn check(v: &Value, input: &[u8], out: &Outcome, split: &Split) {
    let name = v["name"].as_str().unwrap();
    let ctx = format!("vector {name:?}, split {split:?}");
    assert_eq!(out.data, bytes(&v["data"]), "{ctx}: data");
    if let Some(e) = v.get("error") {
        let got = match &out.verdict {
            Verdict::Error(e) => format!("{e:?}"),
            other => panic!("{ctx}: expected error {e}, got {other:?}"),
        };
        assert_eq!(got, e.as_str().unwrap(), "{ctx}");
    } else if v.get("partial").is_some() {
        assert_eq!(out.verdict, Verdict::Partial, "{ctx}");
    } else {
        assert_eq!(
            out.verdict,
            Verdict::Done {
                consumed: input.len()
            },
            "{ctx}"
        );
        if let Some(t) = v.get("trailers") {
            let want: Vec<Header> = t
                .as_array()
                .unwrap()
                .iter()
                .map(|p| Header {
                    name: p[0].as_str().unwrap().to_owned(),
                    value: bytes(&p[1]),
                })
                .collect();
            assert_eq!(out.trailers, want, "{ctx}: trailers");
        }
    }
}

#[test]
fn vectors_under_every_split() {
    let vs = vectors();
    assert!(vs.len() >= 40);
    for v in &vs {
        let input = bytes(&v["input"]);
        let limits = limits(v);
        let mut reference = None;
        for_each_split(&input, |split, chunks| {
            let out = run(chunks, &limits);
            check(v, &input, &out, split);
            match &reference {
                None => reference = Some(out),
                Some(r) => assert_eq!(&out, r, "{split:?} differs from whole"),
            }
        });
    }
}

#[test]
fn trailing_bytes_are_not_eaten() {
    let pipelined = b"POST /next HTTP/1.1\r\nHost: a\r\n\r\n";
    for v in vectors() {
        if v.get("partial").is_some() {
            continue;
        }
        let input = bytes(&v["input"]);
        let mut with_tail = input.clone();
        with_tail.extend_from_slice(pipelined);
        let limits = limits(&v);
        for_each_split(&with_tail, |split, chunks| {
            let out = run(chunks, &limits);
            // Same verdict and data as without the tail; `check` also
            // asserts `consumed == input.len()` for good vectors.
            check(&v, &input, &out, split);
        });
    }
}

fn decode_all(input: &[u8], limits: &Limits) -> Outcome {
    run(&[input], limits)
}

#[test]
fn encoder_round_trips() {
    let limits = Limits::default();
    let mut rng = Rng::new(7);
    for round in 0..200 {
        let mut wire = Vec::new();
        let mut body = Vec::new();
        for _ in 0..rng.below(6) {
            let len = match rng.below(4) {
                0 => 0,
                1 => 1 + rng.below(16),
                2 => 1 + rng.below(4096),
                _ => 1 + rng.below(70_000),
            };
            let chunk: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
            encode_chunk(&chunk, &mut wire);
            body.extend_from_slice(&chunk);
        }
        encode_last_chunk(&mut wire);
        let out = decode_all(&wire, &limits);
        assert_eq!(
            out.verdict,
            Verdict::Done {
                consumed: wire.len()
            },
            "round {round}"
        );
        assert_eq!(out.data, body, "round {round}");
    }
}

#[test]
fn encoder_output_shape() {
    let mut out = Vec::new();
    encode_chunk(b"", &mut out);
    assert!(out.is_empty(), "an empty chunk must write nothing");
    encode_chunk(b"hello world!", &mut out);
    assert_eq!(out, b"c\r\nhello world!\r\n");
    out.clear();
    encode_last_chunk(&mut out);
    assert_eq!(out, LAST_CHUNK);
    assert_eq!(out, b"0\r\n\r\n");
    assert!(chunk_header(0).is_none());
    assert_eq!(chunk_header(4096).unwrap().as_bytes(), b"1000\r\n");
}

#[test]
fn large_body_by_pieces_is_zero_copy_and_linear() {
    // One 1 MiB chunk fed in 1000-byte pieces: each call returns one range
    // covering the whole piece, so the number of calls equals the pieces.
    let limits = Limits::default();
    let body: Vec<u8> = (0..1 << 20).map(|i| (i % 251) as u8).collect();
    let mut wire = Vec::new();
    encode_chunk(&body, &mut wire);
    encode_last_chunk(&mut wire);
    let mut dec = ChunkedDecoder::new(&limits);
    let mut got = Vec::with_capacity(body.len());
    let mut calls = 0;
    for piece in wire.chunks(1000) {
        let mut rest = piece;
        while !rest.is_empty() {
            let step = dec.decode(rest).unwrap();
            calls += 1;
            if let Some(r) = step.data.clone() {
                got.extend_from_slice(&rest[r]);
            }
            rest = &rest[step.consumed..];
            if step.done {
                break;
            }
        }
    }
    assert!(dec.is_done());
    assert_eq!(got, body);
    assert!(calls <= wire.len() / 1000 + 3, "{calls} calls");
}

#[test]
fn data_before_an_error_comes_first() {
    let limits = Limits::default();
    let mut dec = ChunkedDecoder::new(&limits);
    let input = b"5\r\nhelloX";
    let step = dec.decode(input).unwrap();
    assert_eq!(step.data, Some(3..8));
    assert_eq!(step.consumed, 8);
    assert!(!step.done);
    assert_eq!(
        dec.decode(&input[8..]),
        Err(ChunkedError::MissingCrlfAfterData)
    );
    assert_eq!(dec.decode(b""), Err(ChunkedError::MissingCrlfAfterData));
}

#[test]
fn error_statuses() {
    assert_eq!(ChunkedError::InvalidChunkSize.status(), 400);
    assert_eq!(ChunkedError::TrailerTooLarge.status(), 431);
    assert_eq!(
        ChunkedError::MissingCrlfAfterData.to_string(),
        "missing CRLF after chunk data"
    );
}
