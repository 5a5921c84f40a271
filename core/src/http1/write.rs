//! Serializing heads. Everything is checked before a byte is written, so a
//! value a hook set cannot split a header or a message.

use super::syntax::{is_field_value_byte, is_token};
use super::{Header, RequestHead, ResponseHead};

/// Why a head could not be written. These are the caller's mistakes (or a
/// hook's), not the peer's: nothing was appended to the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WriteError {
    /// The method is not a token.
    InvalidMethod,
    /// The target is empty or holds a space, a control or a non-ASCII byte.
    InvalidTarget,
    /// The status is outside 100–599.
    InvalidStatus,
    /// The reason phrase holds CR, LF, NUL or another control.
    InvalidReason,
    /// The field at `index` has a name that is not a token.
    InvalidHeaderName {
        /// Position in the head's field list.
        index: usize,
    },
    /// The field at `index` has CR, LF, NUL or another control in its value.
    InvalidHeaderValue {
        /// Position in the head's field list.
        index: usize,
    },
}

impl core::fmt::Display for WriteError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            WriteError::InvalidMethod => f.write_str("method is not a token"),
            WriteError::InvalidTarget => f.write_str("invalid request-target"),
            WriteError::InvalidStatus => f.write_str("status outside 100-599"),
            WriteError::InvalidReason => f.write_str("control byte in reason phrase"),
            WriteError::InvalidHeaderName { index } => {
                write!(f, "header field {index}: name is not a token")
            }
            WriteError::InvalidHeaderValue { index } => {
                write!(f, "header field {index}: control byte in value")
            }
        }
    }
}

impl std::error::Error for WriteError {}

/// Append `method SP target SP HTTP/1.1 CRLF`, the fields and the empty
/// line to `out`.
///
/// The version is always HTTP/1.1: a proxy sends its own version, not the
/// one it received (RFC 9110 §6.2). On error `out` is unchanged.
pub fn write_request_head(head: &RequestHead, out: &mut Vec<u8>) -> Result<(), WriteError> {
    if !is_token(head.method.as_bytes()) {
        return Err(WriteError::InvalidMethod);
    }
    let target = head.target.as_bytes();
    if target.is_empty() || !target.iter().all(|&b| (0x21..=0x7E).contains(&b)) {
        return Err(WriteError::InvalidTarget);
    }
    check_headers(&head.headers)?;
    out.reserve(head_size(
        target.len() + head.method.len() + 12,
        &head.headers,
    ));
    out.extend_from_slice(head.method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(target);
    out.extend_from_slice(b" HTTP/1.1\r\n");
    write_headers(&head.headers, out);
    Ok(())
}

/// Append `HTTP/1.1 SP status SP reason CRLF`, the fields and the empty
/// line to `out`. The version is always HTTP/1.1 (see
/// [`write_request_head`]); an empty reason still gets its leading space, as
/// the grammar wants. On error `out` is unchanged.
pub fn write_response_head(head: &ResponseHead, out: &mut Vec<u8>) -> Result<(), WriteError> {
    if !(100..=599).contains(&head.status) {
        return Err(WriteError::InvalidStatus);
    }
    if !head.reason.bytes().all(is_field_value_byte) {
        return Err(WriteError::InvalidReason);
    }
    check_headers(&head.headers)?;
    out.reserve(head_size(head.reason.len() + 15, &head.headers));
    out.extend_from_slice(b"HTTP/1.1 ");
    // 100..=599: always three digits.
    let status = head.status;
    out.extend_from_slice(&[
        b'0' + (status / 100) as u8,
        b'0' + (status / 10 % 10) as u8,
        b'0' + (status % 10) as u8,
        b' ',
    ]);
    out.extend_from_slice(head.reason.as_bytes());
    out.extend_from_slice(b"\r\n");
    write_headers(&head.headers, out);
    Ok(())
}

fn check_headers(headers: &[Header]) -> Result<(), WriteError> {
    for (index, h) in headers.iter().enumerate() {
        if !is_token(h.name.as_bytes()) {
            return Err(WriteError::InvalidHeaderName { index });
        }
        if !h.value.iter().all(|&b| is_field_value_byte(b)) {
            return Err(WriteError::InvalidHeaderValue { index });
        }
    }
    Ok(())
}

fn head_size(start_line: usize, headers: &[Header]) -> usize {
    start_line
        + headers
            .iter()
            .map(|h| h.name.len() + h.value.len() + 4)
            .sum::<usize>()
        + 2
}

fn write_headers(headers: &[Header], out: &mut Vec<u8>) {
    for h in headers {
        out.extend_from_slice(h.name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(&h.value);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}
