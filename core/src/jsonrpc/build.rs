//! Builders for the messages a proxy answers with, and the owned id type.
//!
//! The id always goes back as the exact bytes it arrived as: no parsing, no
//! re-serialising, so `1.0`, `-0`, `18446744073709551616` and `"\u0031"`
//! survive untouched.

use std::borrow::Borrow;
use std::hash::{Hash, Hasher};

use bytes::Bytes;

/// A message id kept as its exact raw JSON text, owned, cheap to clone.
///
/// Two ids are the same id exactly when their texts are byte-for-byte equal
/// (see [`same_id`]). Equality and hashing follow the bytes, and `RawId`
/// borrows as `[u8]`, so a map keyed by `RawId` can be probed with the raw
/// `&[u8]` of an incoming response.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RawId(Bytes);

impl RawId {
    /// Copies a raw id (as found in [`Message::id`](super::Message::id)).
    pub fn new(raw: &[u8]) -> Self {
        RawId(Bytes::copy_from_slice(raw))
    }

    /// Wraps raw id text that is already in a [`Bytes`] (no copy).
    pub fn from_bytes(raw: Bytes) -> Self {
        RawId(raw)
    }

    /// The raw JSON text.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The raw JSON text as [`Bytes`].
    pub fn to_bytes(&self) -> Bytes {
        self.0.clone()
    }

    /// Whether `raw` (an incoming message's raw id) is this id.
    pub fn matches(&self, raw: &[u8]) -> bool {
        same_id(&self.0, raw)
    }
}

// By hand so that `Hash` agrees with `[u8]`, which `Borrow<[u8]>` requires.
impl Hash for RawId {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl Borrow<[u8]> for RawId {
    fn borrow(&self) -> &[u8] {
        &self.0
    }
}

impl AsRef<[u8]> for RawId {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl From<&[u8]> for RawId {
    fn from(raw: &[u8]) -> Self {
        RawId::new(raw)
    }
}

/// Whether two raw ids are the same id: exact text equality.
///
/// `1` and `1.0` are different ids, and so are `1` and `"1"`, and `"1"` and
/// `"\u0031"`. JSON-RPC asks a server to echo the id it received; a server
/// that re-serialises it instead (a JavaScript backend turns `1.0` into `1`)
/// will not match, which is why a proxy that needs to match responses should
/// send ids of its own upstream.
pub fn same_id(a: &[u8], b: &[u8]) -> bool {
    a == b
}

/// `{"jsonrpc":"2.0","id":<id>,"result":<result>}`.
///
/// `id` and `result` are copied verbatim; they must be valid JSON texts
/// (as taken from a classified message or built by the caller).
pub fn result_message(id: &[u8], result: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(32 + id.len() + result.len());
    write_result_message(&mut out, id, result);
    out
}

/// [`result_message`], appended to `out`.
pub fn write_result_message(out: &mut Vec<u8>, id: &[u8], result: &[u8]) {
    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
    out.extend_from_slice(id);
    out.extend_from_slice(b",\"result\":");
    out.extend_from_slice(result);
    out.push(b'}');
}

/// `{"jsonrpc":"2.0","id":<id or null>,"error":{"code":<code>,"message":"<message>"[,"data":<data>]}}`.
///
/// `message` is JSON-escaped here; `id` (`None` writes `null`, for when the
/// id could not be read) and `data` are copied verbatim and must be valid
/// JSON texts.
pub fn error_message(id: Option<&[u8]>, code: i64, message: &str, data: Option<&[u8]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + message.len() + data.map_or(0, <[u8]>::len));
    write_error_message(&mut out, id, code, message, data);
    out
}

/// [`error_message`], appended to `out`.
pub fn write_error_message(
    out: &mut Vec<u8>,
    id: Option<&[u8]>,
    code: i64,
    message: &str,
    data: Option<&[u8]>,
) {
    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
    out.extend_from_slice(id.unwrap_or(b"null"));
    out.extend_from_slice(b",\"error\":{\"code\":");
    write_i64(out, code);
    out.extend_from_slice(b",\"message\":");
    write_json_string(out, message);
    if let Some(data) = data {
        out.extend_from_slice(b",\"data\":");
        out.extend_from_slice(data);
    }
    out.extend_from_slice(b"}}");
}

/// Appends `s` as a JSON string literal (quotes included), escaping `"`,
/// `\` and the control characters; everything else is copied as UTF-8.
pub fn write_json_string(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut run = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let short = match b {
            b'"' => b'"',
            b'\\' => b'\\',
            b'\n' => b'n',
            b'\r' => b'r',
            b'\t' => b't',
            0x08 => b'b',
            0x0c => b'f',
            0x00..=0x1f => 0,
            _ => continue,
        };
        out.extend_from_slice(&bytes[run..i]);
        run = i + 1;
        if short != 0 {
            out.extend_from_slice(&[b'\\', short]);
        } else {
            out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 0xf) as usize],
            ]);
        }
    }
    out.extend_from_slice(&bytes[run..]);
    out.push(b'"');
}

fn write_i64(out: &mut Vec<u8>, n: i64) {
    if n < 0 {
        out.push(b'-');
    }
    let mut v = n.unsigned_abs();
    let mut digits = [0u8; 20];
    let mut k = digits.len();
    loop {
        k -= 1;
        digits[k] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[k..]);
}
