//! The chunked decoder: never panic; whole and split feeds give the same
//! data, verdict and consumed count; encode → decode gives back the chunks.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_core::http1::{ChunkedDecoder, ChunkedError, Limits, encode_chunk, encode_last_chunk};

#[derive(Debug, PartialEq)]
struct Outcome {
    data: Vec<u8>,
    consumed: usize,
    done: bool,
    error: Option<ChunkedError>,
}

fn run(pieces: &[&[u8]], limits: &Limits) -> Outcome {
    let mut dec = ChunkedDecoder::new(limits);
    let mut out = Outcome {
        data: Vec::new(),
        consumed: 0,
        done: false,
        error: None,
    };
    for piece in pieces {
        let mut rest = *piece;
        while !rest.is_empty() {
            match dec.decode(rest) {
                Ok(step) => {
                    if let Some(r) = step.data.clone() {
                        assert!(r.start <= r.end && r.end <= step.consumed);
                        out.data.extend_from_slice(&rest[r]);
                    }
                    out.consumed += step.consumed;
                    rest = &rest[step.consumed..];
                    if step.done {
                        out.done = true;
                        return out;
                    }
                    assert!(step.consumed > 0, "no progress");
                }
                Err(e) => {
                    // After an error the stream is dead: how much of it was
                    // consumed before is not part of the verdict.
                    out.consumed = 0;
                    out.error = Some(e);
                    return out;
                }
            }
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, input)) = data.split_first() else {
        return;
    };
    let mut limits = Limits::default();
    if mode & 1 == 1 {
        limits.max_chunk_size_digits = usize::from(mode >> 4) + 1;
        limits.max_chunk_ext_bytes = usize::from(mode >> 1 & 7) * 4;
        limits.max_trailer_bytes = usize::from(mode >> 2) * 2;
        limits.max_headers = usize::from(mode >> 6);
    }

    // Chunking invariance: whole, byte by byte, and pieces sized by `mode`.
    let whole = run(&[input], &limits);
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    assert_eq!(run(&bytes, &limits), whole);
    let size = usize::from(mode % 7) + 2;
    let pieces: Vec<&[u8]> = input.chunks(size).collect();
    assert_eq!(run(&pieces, &limits), whole);
    if whole.done {
        assert!(whole.consumed <= input.len());
    }

    // Round trip: cut the input into chunks at bytes below 8, encode, decode.
    let chunks: Vec<&[u8]> = input.split(|&b| b < 8).collect();
    let mut wire = Vec::new();
    for c in &chunks {
        encode_chunk(c, &mut wire);
    }
    encode_last_chunk(&mut wire);
    let back = run(&[&wire], &Limits::default());
    assert_eq!(back.error, None);
    assert!(back.done);
    assert_eq!(back.consumed, wire.len());
    assert_eq!(back.data, chunks.concat());
});
