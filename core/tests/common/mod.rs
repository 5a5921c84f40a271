//! Shared test helpers: the chunking harness that replays one input under
//! every feed split we care about, and (in [`proxy`]) the scripted upstream
//! and the scenarios every example proxy must pass.
#![allow(dead_code)]

pub mod proxy;

/// A tiny deterministic PRNG (xorshift64*), so random splits are reproducible
/// from a seed printed on failure.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A value in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// How an input was cut into feeds; printed when a vector fails.
#[derive(Debug, Clone)]
pub enum Split {
    Whole,
    ByteByByte,
    TwoWay(usize),
    Random { seed: u64 },
}

/// Cut `input` according to `split`.
pub fn cut<'a>(input: &'a [u8], split: &Split) -> Vec<&'a [u8]> {
    match *split {
        Split::Whole => vec![input],
        Split::ByteByByte => input.chunks(1).collect(),
        Split::TwoWay(at) => vec![&input[..at], &input[at..]],
        Split::Random { seed } => {
            let mut rng = Rng::new(seed);
            let mut out = Vec::new();
            let mut rest = input;
            while !rest.is_empty() {
                let n = 1 + rng.below(rest.len().min(17));
                let (head, tail) = rest.split_at(n);
                out.push(head);
                rest = tail;
            }
            out
        }
    }
}

/// Every split the harness replays: whole, byte by byte, every 2-way split
/// (for inputs up to `max_two_way` bytes) and `random` seeded random splits.
pub fn splits(len: usize, max_two_way: usize, random: u64) -> Vec<Split> {
    let mut out = vec![Split::Whole, Split::ByteByByte];
    if len <= max_two_way {
        out.extend((0..=len).map(Split::TwoWay));
    }
    out.extend((1..=random).map(|seed| Split::Random { seed }));
    out
}

/// Run `check` over every split of `input`; panics name the split.
pub fn for_each_split(input: &[u8], mut check: impl FnMut(&Split, &[&[u8]])) {
    for split in splits(input.len(), 4096, 32) {
        let chunks = cut(input, &split);
        check(&split, &chunks);
    }
}

/// Vector strings are bytes: each char U+0000..U+00FF is one byte.
pub fn vector_bytes(v: &serde_json::Value) -> Vec<u8> {
    v.as_str()
        .expect("string")
        .chars()
        .map(|c| u8::try_from(u32::from(c)).expect("char above U+00FF in a vector"))
        .collect()
}

/// The vector's `limits` object applied over the default limits.
pub fn vector_limits(v: &serde_json::Value) -> sluice_core::http1::Limits {
    let mut l = sluice_core::http1::Limits::default();
    if let Some(o) = v.get("limits").and_then(serde_json::Value::as_object) {
        for (k, n) in o {
            let n = n.as_u64().expect("number") as usize;
            match k.as_str() {
                "max_head_bytes" => l.max_head_bytes = n,
                "max_headers" => l.max_headers = n,
                "max_chunk_size_digits" => l.max_chunk_size_digits = n,
                "max_chunk_ext_bytes" => l.max_chunk_ext_bytes = n,
                "max_trailer_bytes" => l.max_trailer_bytes = n,
                other => panic!("unknown limit {other}"),
            }
        }
    }
    l
}
