//! `transport = "auto"`: find out which transport a backend speaks, the way
//! the specification's backwards-compatibility section tells clients to:
//! POST an `initialize`; success means Streamable HTTP; 400, 404 or 405
//! means "try the old transport": GET the same URL and expect an SSE stream
//! whose first event is `endpoint`.

use bytes::Bytes;

use super::backend::{self, BackendStream, PostAnswer};
use super::error::BridgeError;
use crate::http1::{self, Header};
use crate::sse::SseLimits;

/// What the first step (the POST) says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeStep {
    /// A 2xx: the backend speaks Streamable HTTP.
    Streamable,
    /// 400, 404 or 405: GET the URL and watch for `endpoint`
    /// ([`probe_stream_request`], [`EndpointWatch`]).
    TryLegacy,
    /// Anything else (401, 5xx…): no conclusion; do not remember one.
    Inconclusive(u16),
}

/// The probe's `initialize` (`Connection: close`: nothing of it is reused).
pub fn probe_request(authority: &str, target: &str, fwd: &[Header]) -> Bytes {
    let body = format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":\"sluice-probe\",\"method\":\"initialize\",\"params\":{{\
         \"protocolVersion\":\"2025-03-26\",\"capabilities\":{{}},\
         \"clientInfo\":{{\"name\":\"sluice-probe\",\"version\":\"{}\"}}}}}}",
        env!("CARGO_PKG_VERSION")
    );
    let mut fwd = fwd.to_vec();
    fwd.push(Header::new("Connection", "close"));
    backend::post_request(authority, target, &fwd, body.as_bytes())
}

/// Judge the answer to [`probe_request`] (read with
/// [`PostAnswerReader::head_only`](super::PostAnswerReader::head_only)).
pub fn probe_step(answer: &PostAnswer) -> ProbeStep {
    match answer.status {
        200..=299 => ProbeStep::Streamable,
        400 | 404 | 405 => ProbeStep::TryLegacy,
        s => ProbeStep::Inconclusive(s),
    }
}

/// A `DELETE` of the session a Streamable HTTP backend opened for the
/// probe, so it does not linger.
pub fn probe_cleanup(authority: &str, target: &str, session_id: &str) -> Bytes {
    Bytes::from(format!(
        "DELETE {target} HTTP/1.1\r\nHost: {authority}\r\nMcp-Session-Id: {session_id}\r\n\
         Content-Length: 0\r\nConnection: close\r\n\r\n"
    ))
}

/// The probe's GET.
pub fn probe_stream_request(authority: &str, target: &str, fwd: &[Header]) -> Bytes {
    let mut fwd = fwd.to_vec();
    fwd.push(Header::new("Connection", "close"));
    backend::stream_request(authority, target, &fwd)
}

/// Watches a backend's SSE stream until its first event, which must be
/// `endpoint`.
#[derive(Debug)]
pub struct EndpointWatch {
    stream: BackendStream,
}

impl EndpointWatch {
    /// A watch for a stream whose response head has not arrived yet.
    pub fn new(limits: &http1::Limits, sse: SseLimits) -> Self {
        EndpointWatch {
            stream: BackendStream::new(limits, sse),
        }
    }

    /// Push stream bytes: `Ok(Some(uri))` once the `endpoint` event
    /// arrived; an error when the stream is not SSE, or its first event is
    /// something else, or it ended.
    pub fn feed(&mut self, input: &[u8]) -> Result<Option<String>, BridgeError> {
        let mut events = Vec::new();
        let ended = self.stream.feed(input, &mut events)?;
        if let Some(first) = events.into_iter().next() {
            return if first.event_type == "endpoint" {
                Ok(Some(first.data))
            } else {
                Err(BridgeError::StreamMalformed {
                    detail: format!("the first event is {:?}, not endpoint", first.event_type),
                })
            };
        }
        if ended {
            return Err(BridgeError::StreamClosed {
                phase: super::SessionPhase::AwaitingEndpoint,
                error: false,
            });
        }
        Ok(None)
    }
}
