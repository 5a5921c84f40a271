//! W3C Trace Context (`traceparent`, level 1 and 2) and the sampling rule
//! sluice applies to it, sans-IO.
//!
//! [`TraceParent::parse`] reads a header value strictly: anything it does
//! not accept is `None`, never a panic, and a caller then starts a trace
//! of its own (the W3C rule: an invalid `traceparent` is as if there were
//! none, and its `tracestate` is dropped with it). [`TraceParent::write`]
//! writes version `00`, whatever version was read.
//!
//! [`sampled`] is OpenTelemetry's `ParentBased(TraceIdRatioBased(ratio))`:
//! a parent's sampled flag decides when there is a parent; otherwise the
//! trace id's low 63 bits against the ratio, so every hop that uses the
//! same rule and ratio decides the same way for one trace.

use std::fmt;

/// A trace id: 16 bytes, never all zero.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TraceId(pub [u8; 16]);

/// A span id: 8 bytes, never all zero.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SpanId(pub [u8; 8]);

/// The `sampled` bit of `trace-flags`.
pub const FLAG_SAMPLED: u8 = 0x01;

/// One `traceparent` value.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct TraceParent {
    /// The trace this span belongs to.
    pub trace_id: TraceId,
    /// The span of the caller (the parent of the next span).
    pub parent_id: SpanId,
    /// `trace-flags` (bit 0: sampled).
    pub flags: u8,
}

impl TraceId {
    /// The id as 32 lowercase hex digits.
    pub fn hex(&self) -> String {
        hex(&self.0)
    }

    /// Not all zero: an all-zero id is invalid.
    pub fn is_valid(&self) -> bool {
        self.0 != [0; 16]
    }
}

impl SpanId {
    /// The id as 16 lowercase hex digits.
    pub fn hex(&self) -> String {
        hex(&self.0)
    }

    /// Not all zero: an all-zero id is invalid.
    pub fn is_valid(&self) -> bool {
        self.0 != [0; 8]
    }
}

impl fmt::Debug for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hex())
    }
}

impl fmt::Debug for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hex())
    }
}

impl TraceParent {
    /// Length of a version `00` value: `00-` 32 `-` 16 `-` 2.
    pub const LEN: usize = 55;

    /// Reads a `traceparent` value; `None` for anything invalid: a wrong
    /// length, a non-lowercase-hex digit, version `ff`, an all-zero id,
    /// version `00` with anything after the flags, a later version with
    /// anything after the flags not starting with `-`. Surrounding spaces
    /// and tabs (optional whitespace of an HTTP field) are ignored.
    pub fn parse(value: &[u8]) -> Option<TraceParent> {
        let value = trim_ows(value);
        if value.len() < Self::LEN {
            return None;
        }
        let (head, rest) = value.split_at(Self::LEN);
        let version = hex_byte(&head[0..2])?;
        if version == 0xff || head[2] != b'-' || head[35] != b'-' || head[52] != b'-' {
            return None;
        }
        match (version, rest.first()) {
            (_, None) => {}
            // A later version may add fields, each after a dash.
            (v, Some(b'-')) if v > 0 => {}
            _ => return None,
        }
        let mut trace_id = [0u8; 16];
        for (i, b) in trace_id.iter_mut().enumerate() {
            *b = hex_byte(&head[3 + 2 * i..5 + 2 * i])?;
        }
        let mut parent_id = [0u8; 8];
        for (i, b) in parent_id.iter_mut().enumerate() {
            *b = hex_byte(&head[36 + 2 * i..38 + 2 * i])?;
        }
        let flags = hex_byte(&head[53..55])?;
        let parsed = TraceParent {
            trace_id: TraceId(trace_id),
            parent_id: SpanId(parent_id),
            flags,
        };
        (parsed.trace_id.is_valid() && parsed.parent_id.is_valid()).then_some(parsed)
    }

    /// The value, version `00` (55 bytes). Made for every proxied request
    /// while tracing is on, sampled or not: one allocation.
    pub fn write(&self) -> String {
        let mut out = Vec::with_capacity(Self::LEN);
        out.extend_from_slice(b"00-");
        hex_into(&mut out, &self.trace_id.0);
        out.push(b'-');
        hex_into(&mut out, &self.parent_id.0);
        out.push(b'-');
        hex_into(&mut out, &[self.flags]);
        String::from_utf8(out).unwrap_or_default()
    }

    /// The caller sampled this trace.
    pub fn is_sampled(&self) -> bool {
        self.flags & FLAG_SAMPLED != 0
    }
}

/// Whether a span is recorded: a parent's sampled flag when there is a
/// parent; else `ratio` (0.0 to 1.0; outside it, clamped) of trace ids,
/// by the id's low 63 bits (OpenTelemetry's `TraceIdRatioBased`).
pub fn sampled(ratio: f64, parent: Option<&TraceParent>, trace_id: &TraceId) -> bool {
    if let Some(parent) = parent {
        return parent.is_sampled();
    }
    if ratio.is_nan() || ratio <= 0.0 {
        return false;
    }
    if ratio >= 1.0 {
        return true;
    }
    let mut low = [0u8; 8];
    low.copy_from_slice(&trace_id.0[8..]);
    let x = u64::from_be_bytes(low) >> 1;
    // Below 2^63 for a ratio below 1: the cast cannot saturate.
    let bound = (ratio * (1u64 << 63) as f64) as u64;
    x < bound
}

fn trim_ows(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    }
}

fn hex_byte(two: &[u8]) -> Option<u8> {
    Some(hex_digit(two[0])? << 4 | hex_digit(two[1])?)
}

fn hex(bytes: &[u8]) -> String {
    let mut out = Vec::with_capacity(bytes.len() * 2);
    hex_into(&mut out, bytes);
    String::from_utf8(out).unwrap_or_default()
}

fn hex_into(out: &mut Vec<u8>, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.extend_from_slice(&[HEX[(b >> 4) as usize], HEX[(b & 0xf) as usize]]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_value_reads_and_writes_back_the_same() {
        let tp = TraceParent::parse(GOOD.as_bytes()).expect("valid");
        assert_eq!(tp.trace_id.hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(tp.parent_id.hex(), "00f067aa0ba902b7");
        assert!(tp.is_sampled());
        assert_eq!(tp.write(), GOOD);
        let unsampled = TraceParent::parse(GOOD.replace("-01", "-00").as_bytes()).unwrap();
        assert!(!unsampled.is_sampled());
        assert_eq!(
            TraceParent::parse(format!(" \t{GOOD} ").as_bytes()),
            Some(tp),
            "optional whitespace around a field value"
        );
    }

    #[test]
    fn a_later_version_is_read_as_version_00() {
        let v1 = GOOD.replacen("00-", "01-", 1);
        let tp = TraceParent::parse(format!("{v1}-future").as_bytes()).expect("valid");
        assert_eq!(tp.write(), GOOD);
        assert!(TraceParent::parse(v1.as_bytes()).is_some());
        assert_eq!(
            TraceParent::parse(format!("{v1}x").as_bytes()),
            None,
            "a later version's extra fields start with a dash"
        );
    }

    #[test]
    fn bad_values_are_ignored() {
        let bad = [
            String::new(),
            "00".into(),
            GOOD[..54].into(),
            format!("{GOOD}-"),
            format!("{GOOD}0"),
            GOOD.replacen("00-", "ff-", 1),
            GOOD.to_uppercase(),
            GOOD.replace('-', "_"),
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01".into(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01".into(),
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01".into(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x".into(),
            "0-04bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into(),
        ];
        for value in &bad {
            assert_eq!(TraceParent::parse(value.as_bytes()), None, "{value:?}");
        }
    }

    #[test]
    fn no_input_panics() {
        // Every prefix of a valid value with every byte in each position.
        let good = GOOD.as_bytes();
        for len in 0..=good.len() + 2 {
            for pos in 0..len {
                for b in [0u8, b'-', b'0', b'f', b'g', b'F', 0xff, b' '] {
                    let mut v: Vec<u8> = good.iter().copied().cycle().take(len).collect();
                    v[pos] = b;
                    let _ = TraceParent::parse(&v);
                }
            }
        }
    }

    #[test]
    fn a_parent_decides_sampling_when_there_is_one() {
        let sampled_parent = TraceParent::parse(GOOD.as_bytes()).unwrap();
        let unsampled_parent = TraceParent {
            flags: 0,
            ..sampled_parent
        };
        let id = TraceId([0xff; 16]);
        assert!(sampled(0.0, Some(&sampled_parent), &id));
        assert!(!sampled(1.0, Some(&unsampled_parent), &id));
    }

    #[test]
    fn without_a_parent_the_ratio_decides_by_trace_id() {
        let low = |x: u64| {
            let mut id = [0xabu8; 16];
            id[8..].copy_from_slice(&x.to_be_bytes());
            TraceId(id)
        };
        assert!(!sampled(0.0, None, &low(0)));
        assert!(sampled(1.0, None, &low(u64::MAX)));
        assert!(!sampled(f64::NAN, None, &low(0)));
        assert!(sampled(2.0, None, &low(u64::MAX)), "clamped");
        // Half: ids whose low 63 bits are below 2^62.
        assert!(sampled(0.5, None, &low((1 << 63) - 2)));
        assert!(!sampled(0.5, None, &low(1 << 63)));
        // Over many ids, about the ratio.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let hits = (0..10_000)
            .filter(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                sampled(0.25, None, &low(x))
            })
            .count();
        assert!((2_000..3_000).contains(&hits), "{hits}");
    }
}
