//! Response injection: how a JSON-RPC answer that sluice makes itself (an
//! upstream failure, a hook's rejection or direct answer) reaches a client,
//! given what has already gone to that client.
//!
//! The rules, as one pure function ([`plan`]):
//!
//! | already sent to the client | what the client gets |
//! |---|---|
//! | nothing | a complete HTTP response: errors as `application/json` with the given status; results with 200, as JSON when the client accepts it, else as a one-event SSE stream |
//! | an SSE head and whole events (at an event boundary) | one `event: message` carrying the answer, then a clean end of the stream: the answer is now complete |
//! | an SSE head and part of an event | abort: anything written now would corrupt that event |
//! | a JSON (or any non-SSE) head, body begun | abort: a JSON body has room for one message only |
//! | the whole answer | nothing: it is too late, and the answer stands |
//!
//! "Abort" means closing the connection without a terminating chunk, so the
//! client sees a truncated answer as an error, never as a clean end.

use crate::sse;

/// What has gone to the client so far on this exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// No byte of a response.
    Nothing,
    /// An SSE response head and body bytes; `at_boundary` when the body so far
    /// ends exactly at an event boundary.
    SseHead {
        /// The body sent so far ends at an event boundary.
        at_boundary: bool,
    },
    /// A non-SSE response head (and maybe part of its body).
    OtherHead,
    /// The complete answer.
    Finished,
}

/// How the client's response body is framed on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientFraming {
    /// `Transfer-Encoding: chunked` (HTTP/1.1 clients).
    Chunked,
    /// Delimited by closing the connection (HTTP/1.0 clients).
    UntilClose,
}

/// The media types a client's `Accept` header admits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Accepts {
    /// `application/json` (or a wildcard covering it).
    pub json: bool,
    /// `text/event-stream` (or a wildcard covering it).
    pub sse: bool,
}

impl Accepts {
    /// Read every `Accept` header value. No header at all accepts anything.
    pub fn from_headers(values: &[&[u8]]) -> Accepts {
        if values.is_empty() {
            return Accepts {
                json: true,
                sse: true,
            };
        }
        let mut out = Accepts::default();
        for value in values {
            for item in value.split(|&b| b == b',') {
                let media = item.split(|&b| b == b';').next().unwrap_or_default();
                let media = media.trim_ascii();
                let q_zero = item
                    .split(|&b| b == b';')
                    .skip(1)
                    .any(|p| matches!(p.trim_ascii(), b"q=0" | b"q=0.0" | b"q=0.00" | b"q=0.000"));
                if q_zero {
                    continue;
                }
                if media == b"*/*" {
                    out.json = true;
                    out.sse = true;
                } else if media.eq_ignore_ascii_case(b"application/json")
                    || media.eq_ignore_ascii_case(b"application/*")
                {
                    out.json = true;
                } else if media.eq_ignore_ascii_case(b"text/event-stream")
                    || media.eq_ignore_ascii_case(b"text/*")
                {
                    out.sse = true;
                }
            }
        }
        out
    }
}

/// The answer to deliver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer<'a> {
    /// A JSON-RPC error message (complete JSON text), with the HTTP status it
    /// should carry when a whole response is still possible.
    Error {
        /// The JSON-RPC message.
        message: &'a [u8],
        /// The HTTP status for a complete response (e.g. 502, 504, 400).
        status: u16,
    },
    /// A JSON-RPC result message (complete JSON text), sent with 200.
    Result {
        /// The JSON-RPC message.
        message: &'a [u8],
    },
}

impl Answer<'_> {
    fn message(&self) -> &[u8] {
        match self {
            Answer::Error { message, .. } | Answer::Result { message } => message,
        }
    }
}

/// How the answer reaches the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Injection {
    /// Write these bytes: a complete HTTP response (head and body).
    Response(Vec<u8>),
    /// Write these bytes (an SSE event, framed for the client, followed by the
    /// end of the stream); for [`ClientFraming::UntilClose`] then close.
    EventThenEnd(Vec<u8>),
    /// Close the connection without a clean end.
    Abort,
    /// The answer already went out; write nothing.
    Nothing,
}

/// Decide how `answer` reaches a client that has been sent `sent`, framed
/// with `framing` once a head has gone out. `close` asks for
/// `Connection: close` on a complete response.
pub fn plan(
    sent: Sent,
    framing: ClientFraming,
    accepts: Accepts,
    answer: Answer<'_>,
    close: bool,
) -> Injection {
    match sent {
        Sent::Nothing => Injection::Response(full_response(accepts, answer, close)),
        Sent::SseHead { at_boundary: true } => {
            let mut event = Vec::new();
            sse::encode_jsonrpc_message(answer.message(), &mut event);
            Injection::EventThenEnd(match framing {
                ClientFraming::Chunked => {
                    let mut out = Vec::with_capacity(event.len() + 16);
                    push_chunk(&event, &mut out);
                    out.extend_from_slice(b"0\r\n\r\n");
                    out
                }
                ClientFraming::UntilClose => event,
            })
        }
        Sent::SseHead { at_boundary: false } | Sent::OtherHead => Injection::Abort,
        Sent::Finished => Injection::Nothing,
    }
}

/// A complete HTTP/1.1 response carrying `answer`.
pub fn full_response(accepts: Accepts, answer: Answer<'_>, close: bool) -> Vec<u8> {
    let connection = if close { "Connection: close\r\n" } else { "" };
    match answer {
        Answer::Result { message } if !accepts.json && accepts.sse => {
            let mut event = Vec::new();
            sse::encode_jsonrpc_message(message, &mut event);
            let mut out = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n\
                 Transfer-Encoding: chunked\r\n{connection}\r\n"
            )
            .into_bytes();
            push_chunk(&event, &mut out);
            out.extend_from_slice(b"0\r\n\r\n");
            out
        }
        _ => {
            let (status, message) = match answer {
                Answer::Error { message, status } => (status, message),
                Answer::Result { message } => (200, message),
            };
            json_response(status, message, "", close)
        }
    }
}

/// A complete `application/json` response; `extra` is more header lines,
/// each ending in CRLF.
fn json_response(status: u16, message: &[u8], extra: &str, close: bool) -> Vec<u8> {
    let connection = if close { "Connection: close\r\n" } else { "" };
    let mut out = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: application/json\r\nCache-Control: no-store\r\n\
         {extra}Content-Length: {}\r\n{connection}\r\n",
        reason_phrase(status),
        message.len()
    )
    .into_bytes();
    out.extend_from_slice(message);
    out
}

/// A body-less or plain-text HTTP response for errors that happen before any
/// JSON-RPC message is known (bad heads, refused hosts). The body is a
/// JSON-RPC error with a null id so MCP clients can still read it.
pub fn http_error(status: u16, code: i64, text: &str, close: bool) -> Vec<u8> {
    http_error_for(None, status, code, text, close)
}

/// [`http_error`] with an `Allow` header naming the methods the target
/// takes, as a 405 must carry (RFC 9110 §15.5.6).
pub fn http_error_allow(status: u16, code: i64, text: &str, allow: &str, close: bool) -> Vec<u8> {
    let message = crate::jsonrpc::error_message(None, code, text, None);
    json_response(status, &message, &format!("Allow: {allow}\r\n"), close)
}

/// [`http_error`] with one more header field, `name: value` (a
/// `WWW-Authenticate` challenge). `value` must hold no CR or LF.
pub fn http_error_with_header(
    status: u16,
    code: i64,
    text: &str,
    name: &str,
    value: &str,
    close: bool,
) -> Vec<u8> {
    let message = crate::jsonrpc::error_message(None, code, text, None);
    let value: String = value.chars().filter(|c| !c.is_control()).collect();
    json_response(status, &message, &format!("{name}: {value}\r\n"), close)
}

/// [`http_error`] answering the request whose raw id is `id`.
pub fn http_error_for(
    id: Option<&[u8]>,
    status: u16,
    code: i64,
    text: &str,
    close: bool,
) -> Vec<u8> {
    let message = crate::jsonrpc::error_message(id, code, text, None);
    full_response(
        Accepts {
            json: true,
            sse: false,
        },
        Answer::Error {
            message: &message,
            status,
        },
        close,
    )
}

fn push_chunk(data: &[u8], out: &mut Vec<u8>) {
    if data.is_empty() {
        return;
    }
    out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// The standard reason phrase for the statuses sluice writes itself.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// The seeds' rule for streams that must be SSE (a GET stream, the legacy
/// bridge's backend stream): the first response must be `200` with
/// `text/event-stream`, else the caller injects an error instead of
/// forwarding garbage as events.
pub fn expect_event_stream(status: u16, content_type: Option<&[u8]>) -> Result<(), String> {
    if status != 200 {
        return Err(format!(
            "upstream answered {status} where an event stream was expected"
        ));
    }
    let media = content_type
        .map(|ct| {
            ct.split(|&b| b == b';')
                .next()
                .unwrap_or_default()
                .trim_ascii()
        })
        .unwrap_or_default();
    if media.eq_ignore_ascii_case(b"text/event-stream") {
        Ok(())
    } else {
        Err(format!(
            "upstream answered Content-Type {:?} where text/event-stream was expected",
            String::from_utf8_lossy(media)
        ))
    }
}
