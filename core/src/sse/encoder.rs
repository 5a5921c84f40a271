//! Writing events that [`SseParser`](super::SseParser) reads back unchanged.

use std::fmt;

use memchr::{memchr2, memchr3};

/// An event to encode. `data` may hold several lines (LF, CRLF or CR
/// separated); each becomes its own `data:` line, so it reads back with LF
/// line ends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutgoingEvent<'a> {
    /// The `event` field; `None` or `""` writes none (read back as `"message"`).
    pub event_type: Option<&'a str>,
    /// The payload. An empty string still dispatches (one empty `data:` line).
    pub data: &'a str,
    /// The `id` field; `Some("")` resets the client's last event id.
    pub id: Option<&'a str>,
    /// The `retry` field, in milliseconds.
    pub retry: Option<u64>,
}

impl<'a> OutgoingEvent<'a> {
    /// A default-typed (`message`) event carrying `data`.
    pub fn message(data: &'a str) -> Self {
        OutgoingEvent {
            data,
            ..OutgoingEvent::default()
        }
    }
}

/// Why a value cannot be written as SSE (caller error: the value would
/// change meaning on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EncodeError {
    /// The event type contains CR or LF.
    LineBreakInEventType,
    /// The id contains CR, LF (would split the line) or NUL (the parser
    /// ignores such ids).
    InvalidId,
    /// The comment contains CR or LF.
    LineBreakInComment,
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EncodeError::LineBreakInEventType => "SSE event type contains CR or LF",
            EncodeError::InvalidId => "SSE id contains CR, LF or NUL",
            EncodeError::LineBreakInComment => "SSE comment contains CR or LF",
        })
    }
}

impl std::error::Error for EncodeError {}

/// Append one complete event block (ending with its blank line) to `out`.
/// Nothing is written on error.
pub fn encode_event(event: &OutgoingEvent<'_>, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let event_type = event.event_type.unwrap_or("");
    if memchr2(b'\r', b'\n', event_type.as_bytes()).is_some() {
        return Err(EncodeError::LineBreakInEventType);
    }
    if let Some(id) = event.id
        && memchr3(b'\r', b'\n', 0, id.as_bytes()).is_some()
    {
        return Err(EncodeError::InvalidId);
    }
    out.reserve(event.data.len() + event_type.len() + 32);
    if !event_type.is_empty() {
        write_field(out, b"event", event_type.as_bytes());
    }
    if let Some(id) = event.id {
        write_field(out, b"id", id.as_bytes());
    }
    if let Some(retry) = event.retry {
        write_field(out, b"retry", retry.to_string().as_bytes());
    }
    write_data(out, event.data.as_bytes());
    out.push(b'\n');
    Ok(())
}

/// Append a comment block, `: text` plus a blank line, so the stream is at
/// an event boundary again afterwards (the usual keep-alive shape).
pub fn encode_comment(text: &str, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    if memchr2(b'\r', b'\n', text.as_bytes()).is_some() {
        return Err(EncodeError::LineBreakInComment);
    }
    // Always a space after the colon: the parser strips exactly one, so a
    // text starting with a space survives.
    out.extend_from_slice(b": ");
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(b"\n\n");
    Ok(())
}

/// Append one JSON-RPC message as `event: message` + `data: <json>` + blank
/// line. Serialized JSON is normally one line; raw line breaks (only legal
/// as whitespace between tokens) become separate `data:` lines, which read
/// back as LF, the same JSON value. `json` should be UTF-8 (the parser
/// replaces invalid bytes with U+FFFD).
pub fn encode_jsonrpc_message(json: &[u8], out: &mut Vec<u8>) {
    out.reserve(json.len() + 24);
    out.extend_from_slice(b"event: message\n");
    write_data(out, json);
    out.push(b'\n');
}

/// The priming event of MCP 2025-11-25: `id: <id>` and an empty `data:`,
/// which is no message (readers skip it) but moves the client's
/// `Last-Event-ID` to `id`.
pub fn encode_prime(id: u64, out: &mut Vec<u8>) {
    out.extend_from_slice(b"id: ");
    out.extend_from_slice(id.to_string().as_bytes());
    out.extend_from_slice(b"\ndata:\n\n");
}

/// [`encode_jsonrpc_message`] with an `id:` field: event `id` (a number,
/// which needs no check), for a client to resume after with
/// `Last-Event-ID`.
pub fn encode_jsonrpc_message_with_id(json: &[u8], id: u64, out: &mut Vec<u8>) {
    encode_jsonrpc_message_with_text_id(json, &id.to_string(), out)
        .expect("a number is a valid id");
}

/// [`encode_jsonrpc_message`] with the `id:` field `id`, any text the
/// parser reads back whole (no CR, LF or NUL); nothing is written for one
/// it would not.
pub fn encode_jsonrpc_message_with_text_id(
    json: &[u8],
    id: &str,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    if memchr3(b'\r', b'\n', 0, id.as_bytes()).is_some() {
        return Err(EncodeError::InvalidId);
    }
    out.reserve(json.len() + id.len() + 32);
    out.extend_from_slice(b"event: message\nid: ");
    out.extend_from_slice(id.as_bytes());
    out.push(b'\n');
    write_data(out, json);
    out.push(b'\n');
    Ok(())
}

fn write_field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    if value.is_empty() {
        out.extend_from_slice(b":\n");
    } else {
        // One space, always: the parser strips exactly one, so a value
        // starting with a space keeps it.
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.push(b'\n');
    }
}

/// One `data:` line per line of `data`, splitting at LF, CRLF and CR like the
/// parser does.
fn write_data(out: &mut Vec<u8>, mut data: &[u8]) {
    loop {
        match memchr2(b'\r', b'\n', data) {
            None => {
                write_field(out, b"data", data);
                return;
            }
            Some(i) => {
                write_field(out, b"data", &data[..i]);
                let skip = if data[i] == b'\r' && data.get(i + 1) == Some(&b'\n') {
                    2
                } else {
                    1
                };
                data = &data[i + skip..];
            }
        }
    }
}
