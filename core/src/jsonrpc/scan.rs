//! The JSON lexer: validating scans of single RFC 8259 tokens.
//!
//! Each scanner takes the whole buffer and the offset where a token starts,
//! and returns the offset just past it or a typed error. The structure
//! (objects, arrays, nesting) lives in `classify.rs`; this file knows only
//! strings, numbers, literals and whitespace. The buffer has already been
//! checked to be UTF-8 as a whole, so strings only need their JSON rules.

use std::borrow::Cow;

use super::ClassifyError;

/// Skips JSON whitespace (space, tab, LF, CR — nothing else).
#[inline]
pub(super) fn skip_ws(buf: &[u8], mut pos: usize) -> usize {
    while let Some(&b) = buf.get(pos) {
        match b {
            b' ' | b'\t' | b'\n' | b'\r' => pos += 1,
            _ => break,
        }
    }
    pos
}

/// Scans the string whose opening quote is at `pos`.
///
/// Returns the offset after the closing quote and whether the string holds
/// any escape (so callers know when a borrowed slice is already the decoded
/// text). Rejects raw control characters, unknown escapes, bad `\u` hex and
/// lone surrogates.
#[inline]
pub(super) fn scan_string(buf: &[u8], pos: usize) -> Result<(usize, bool), ClassifyError> {
    let mut i = pos + 1;
    let mut escaped = false;
    loop {
        i = find_stop(buf, i);
        match buf.get(i) {
            Some(b'"') => return Ok((i + 1, escaped)),
            Some(b'\\') => {
                escaped = true;
                i = scan_escape(buf, i)?;
            }
            Some(_) => return Err(ClassifyError::Syntax { offset: i }),
            None => return Err(ClassifyError::UnexpectedEnd),
        }
    }
}

/// Strings longer than this are searched with memchr, shorter ones (keys,
/// enum values: most of them) eight bytes at a time, which has no setup cost.
const SHORT: usize = 32;

/// The offset of the first byte at or after `i` that ends plain string
/// content: `"`, `\` or a control character (JSON forbids them raw); the
/// buffer's length if there is none.
#[inline]
fn find_stop(buf: &[u8], mut i: usize) -> usize {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let short_end = i + SHORT;
    while let Some(chunk) = buf.get(i..).and_then(|r| r.first_chunk::<8>()) {
        // Classic SWAR: a byte of `x - k*LO & !x & HI` is set where the byte
        // of `x` is below `k` (exact for the lowest set byte, which is all
        // we look at).
        let x = u64::from_le_bytes(*chunk);
        let quote = x ^ (LO * b'"' as u64);
        let backslash = x ^ (LO * b'\\' as u64);
        let hits = (quote.wrapping_sub(LO) & !quote)
            | (backslash.wrapping_sub(LO) & !backslash)
            | (x.wrapping_sub(LO * 0x20) & !x);
        let hits = hits & HI;
        if hits != 0 {
            return i + (hits.trailing_zeros() / 8) as usize;
        }
        i += 8;
        if i >= short_end {
            return find_stop_long(buf, i);
        }
    }
    while let Some(&b) = buf.get(i) {
        if b == b'"' || b == b'\\' || b < 0x20 {
            break;
        }
        i += 1;
    }
    i
}

/// [`find_stop`] for the rest of a long string: memchr for the quote or
/// backslash, then one vectorisable pass for control characters before it.
#[cold]
fn find_stop_long(buf: &[u8], i: usize) -> usize {
    let rest = buf.get(i..).unwrap_or_default();
    let end = memchr::memchr2(b'"', b'\\', rest).unwrap_or(rest.len());
    let plain = &rest[..end];
    if plain.iter().fold(false, |bad, &b| bad | (b < 0x20)) {
        return i + plain.iter().position(|&b| b < 0x20).unwrap_or(end);
    }
    i + end
}

/// Validates the escape whose backslash is at `i`; returns the offset after it.
fn scan_escape(buf: &[u8], i: usize) -> Result<usize, ClassifyError> {
    let Some(&c) = buf.get(i + 1) else {
        return Err(ClassifyError::UnexpectedEnd);
    };
    match c {
        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => Ok(i + 2),
        b'u' => {
            let unit = hex4(buf, i + 2)?;
            match unit {
                0xD800..=0xDBFF => {
                    // A high surrogate must be followed at once by `\u` + low.
                    match (buf.get(i + 6), buf.get(i + 7)) {
                        (Some(b'\\'), Some(b'u')) => {}
                        (None, _) | (Some(b'\\'), None) => {
                            return Err(ClassifyError::UnexpectedEnd);
                        }
                        _ => return Err(ClassifyError::LoneSurrogate { offset: i }),
                    }
                    match hex4(buf, i + 8)? {
                        0xDC00..=0xDFFF => Ok(i + 12),
                        _ => Err(ClassifyError::LoneSurrogate { offset: i }),
                    }
                }
                0xDC00..=0xDFFF => Err(ClassifyError::LoneSurrogate { offset: i }),
                _ => Ok(i + 6),
            }
        }
        _ => Err(ClassifyError::InvalidEscape { offset: i }),
    }
}

/// Reads four hex digits at `i` as one UTF-16 code unit.
fn hex4(buf: &[u8], i: usize) -> Result<u16, ClassifyError> {
    let mut unit = 0u16;
    for k in 0..4 {
        let Some(&b) = buf.get(i + k) else {
            return Err(ClassifyError::UnexpectedEnd);
        };
        let Some(d) = (b as char).to_digit(16) else {
            return Err(ClassifyError::InvalidEscape { offset: i + k });
        };
        unit = (unit << 4) | d as u16;
    }
    Ok(unit)
}

/// Scans the number starting at `pos` (a `-` or a digit).
///
/// Grammar: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
/// A number whose magnitude reaches 1e308 is refused: backends disagree on
/// it (serde_json errors, JavaScript reads Infinity, Python reads inf).
#[inline]
pub(super) fn scan_number(buf: &[u8], pos: usize) -> Result<usize, ClassifyError> {
    let mut i = pos;
    if buf.get(i) == Some(&b'-') {
        i += 1;
    }
    let int_start = i;
    match buf.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => i = digits(buf, i + 1),
        Some(_) => return Err(ClassifyError::Syntax { offset: i }),
        None => return Err(ClassifyError::UnexpectedEnd),
    }
    let int_digits = i - int_start;
    if buf.get(i) == Some(&b'.') {
        i = at_least_one_digit(buf, i + 1)?;
    }
    let mut exponent = false;
    if let Some(b'e' | b'E') = buf.get(i) {
        exponent = true;
        i += 1;
        if let Some(b'+' | b'-') = buf.get(i) {
            i += 1;
        }
        i = at_least_one_digit(buf, i)?;
    }
    // Without an exponent, 308 integer digits or fewer stay below 1e308.
    if exponent || int_digits > 308 {
        let text =
            std::str::from_utf8(&buf[pos..i]).map_err(|_| ClassifyError::Syntax { offset: pos })?;
        match text.parse::<f64>() {
            Ok(v) if v.abs() < 1e308 => {}
            _ => return Err(ClassifyError::NumberOutOfRange { offset: pos }),
        }
    }
    Ok(i)
}

#[inline]
fn digits(buf: &[u8], mut i: usize) -> usize {
    while let Some(b'0'..=b'9') = buf.get(i) {
        i += 1;
    }
    i
}

fn at_least_one_digit(buf: &[u8], i: usize) -> Result<usize, ClassifyError> {
    match buf.get(i) {
        Some(b'0'..=b'9') => Ok(digits(buf, i + 1)),
        Some(_) => Err(ClassifyError::Syntax { offset: i }),
        None => Err(ClassifyError::UnexpectedEnd),
    }
}

/// Scans the literal `word` (`true`, `false`, `null`) at `pos`.
#[inline]
pub(super) fn scan_literal(buf: &[u8], pos: usize, word: &[u8]) -> Result<usize, ClassifyError> {
    let rest = buf.get(pos..).unwrap_or_default();
    if rest.starts_with(word) {
        return Ok(pos + word.len());
    }
    // A cut-off literal is a truncation, anything else a syntax error.
    let mismatch = rest.iter().zip(word).position(|(a, b)| a != b);
    match mismatch {
        None => Err(ClassifyError::UnexpectedEnd),
        Some(k) => Err(ClassifyError::Syntax { offset: pos + k }),
    }
}

/// Decodes the inside of a scanned string (`raw` excludes the quotes).
///
/// `text` is the whole buffer as `str`, `start..end` the inner span. Without
/// escapes the result borrows; with them it is built once.
pub(super) fn decode<'a>(
    text: &'a str,
    start: usize,
    end: usize,
    escaped: bool,
) -> Result<Cow<'a, str>, ClassifyError> {
    let raw = text
        .get(start..end)
        .ok_or(ClassifyError::InvalidUtf8 { offset: start })?;
    if !escaped {
        return Ok(Cow::Borrowed(raw));
    }
    let bytes = raw.as_bytes();
    let mut out = String::with_capacity(raw.len());
    let mut i = 0;
    while let Some(k) = bytes.get(i..).and_then(|r| memchr::memchr(b'\\', r)) {
        out.push_str(raw.get(i..i + k).unwrap_or_default());
        i += k;
        let esc = bytes.get(i + 1).copied().unwrap_or_default();
        let simple = match esc {
            b'"' => Some('"'),
            b'\\' => Some('\\'),
            b'/' => Some('/'),
            b'b' => Some('\u{8}'),
            b'f' => Some('\u{c}'),
            b'n' => Some('\n'),
            b'r' => Some('\r'),
            b't' => Some('\t'),
            _ => None,
        };
        if let Some(c) = simple {
            out.push(c);
            i += 2;
            continue;
        }
        // `\uXXXX`, possibly a surrogate pair; `scan_string` validated it,
        // but decode defensively rather than trust an index.
        let bad = ClassifyError::InvalidEscape { offset: start + i };
        let hi = hex4(bytes, i + 2).map_err(|_| bad)? as u32;
        let (cp, len) = if (0xD800..0xDC00).contains(&hi) {
            let lo = hex4(bytes, i + 8).map_err(|_| bad)? as u32;
            (
                0x10000 + ((hi - 0xD800) << 10) + (lo.wrapping_sub(0xDC00) & 0x3FF),
                12,
            )
        } else {
            (hi, 6)
        };
        out.push(char::from_u32(cp).ok_or(ClassifyError::LoneSurrogate { offset: start + i })?);
        i += len;
    }
    out.push_str(raw.get(i..).unwrap_or_default());
    Ok(Cow::Owned(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(buf: &[u8], i: usize) -> usize {
        buf.iter()
            .skip(i)
            .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
            .map_or(buf.len(), |k| i + k)
    }

    /// The SWAR search must agree with the obvious loop for every stop byte
    /// at every position, next to the bytes that trip borrow bugs.
    #[test]
    fn find_stop_matches_naive() {
        let fillers = [b'a', 0x80, 0xff, 0x21, 0x20, 0x7f, b'#', b']'];
        let stops = [b'"', b'\\', 0x00, 0x01, 0x1f];
        for len in 0..80 {
            for &fill in &fillers {
                let mut buf = vec![fill; len];
                for start in 0..=len.min(9) {
                    assert_eq!(find_stop(&buf, start), naive(&buf, start));
                }
                for at in 0..len {
                    for &stop in &stops {
                        buf[at] = stop;
                        for start in [0, at.saturating_sub(1), at] {
                            assert_eq!(
                                find_stop(&buf, start),
                                naive(&buf, start),
                                "{buf:?} from {start}"
                            );
                        }
                        // A second stop later must not hide the first.
                        if at + 3 < len {
                            buf[at + 3] = 0x00;
                            assert_eq!(find_stop(&buf, 0), naive(&buf, 0));
                            buf[at + 3] = fill;
                        }
                        buf[at] = fill;
                    }
                }
            }
        }
    }
}
