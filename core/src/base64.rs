//! Base64 (RFC 4648), the two alphabets MCP traffic and sluice's own
//! tokens use: the standard one with padding (2026-07-28's header values)
//! and the URL-safe one without (cursors and session tokens, which travel
//! in JSON strings and headers untouched).

const STANDARD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const URL_SAFE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// `input` in the standard alphabet, padded with `=`.
pub fn encode(input: &[u8]) -> String {
    encode_with(input, STANDARD, true)
}

/// The bytes of standard base64 `text` (padding optional); `None` for a
/// character outside the alphabet. Stray bits in the last character are
/// ignored: callers that must refuse two spellings of one value compare
/// `encode(decoded)` with the text.
pub fn decode(text: &str) -> Option<Vec<u8>> {
    decode_with(text.trim_end_matches('='), STANDARD)
}

/// `input` in the URL-safe alphabet, unpadded.
pub fn encode_url(input: &[u8]) -> String {
    encode_with(input, URL_SAFE, false)
}

/// The bytes of unpadded URL-safe base64 `text`; `None` for a character
/// outside the alphabet or a length no encoding has.
pub fn decode_url(text: &str) -> Option<Vec<u8>> {
    if text.len() % 4 == 1 {
        return None;
    }
    decode_with(text, URL_SAFE)
}

fn encode_with(input: &[u8], alphabet: &[u8; 64], pad: bool) -> String {
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | (b as u32) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(alphabet[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else if pad {
                out.push('=');
            }
        }
    }
    out
}

fn decode_with(text: &str, alphabet: &[u8; 64]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for c in text.bytes() {
        let v = alphabet.iter().position(|&b| b == c)? as u32;
        acc = acc << 6 | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_alphabets_round_trip() {
        for s in [
            "",
            "a",
            "ab",
            "abc",
            "abcd",
            "héllo wörld",
            " padded ",
            "\u{0}\u{ff}ü",
        ] {
            assert_eq!(decode(&encode(s.as_bytes())).unwrap(), s.as_bytes());
            assert_eq!(decode_url(&encode_url(s.as_bytes())).unwrap(), s.as_bytes());
        }
        assert_eq!(encode(b"hello"), "aGVsbG8=");
        assert_eq!(encode_url(b"\xfb\xff"), "-_8");
        assert_eq!(decode("!!"), None);
        assert_eq!(decode_url("a"), None, "no encoding is one character long");
        assert_eq!(decode_url("aGVsbG8="), None, "unpadded");
    }
}
