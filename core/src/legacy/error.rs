//! What can go wrong in the bridge, and how each failure reads to a client.

use std::fmt;

use crate::jsonrpc::codes;

/// Where a backend session stood when something happened; named in every
/// error message so an operator can tell "never sent `endpoint`" from "died
/// mid-call".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionPhase {
    /// No client request yet; the stream is not open.
    Idle,
    /// The GET for the SSE stream is sent; waiting for its response head.
    Opening,
    /// The stream is open; waiting for the `endpoint` event.
    AwaitingEndpoint,
    /// Per-request mode: the bridge's own `initialize` is in flight.
    Handshake,
    /// Forwarding.
    Ready,
    /// Over.
    Closed,
}

impl SessionPhase {
    /// A short name for messages and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionPhase::Idle => "idle",
            SessionPhase::Opening => "opening the SSE stream",
            SessionPhase::AwaitingEndpoint => "waiting for the endpoint event",
            SessionPhase::Handshake => "initializing",
            SessionPhase::Ready => "forwarding",
            SessionPhase::Closed => "closed",
        }
    }
}

/// A failure of the bridge or of the legacy backend behind it.
///
/// Failures of the backend's SSE stream end the whole backend session
/// (sticky: every request of the session then fails with the same error);
/// the others affect one message. [`BridgeError::code`] and
/// [`BridgeError::status`] say how the client hears about it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BridgeError {
    /// The backend's answer to the GET was not `200`.
    StreamStatus {
        /// The status it sent.
        status: u16,
    },
    /// The backend's answer to the GET was `200` but not `text/event-stream`.
    NotEventStream {
        /// The media type it sent (empty when none).
        content_type: String,
    },
    /// The GET's response head or body framing was malformed.
    StreamMalformed {
        /// What the HTTP layer said.
        detail: String,
    },
    /// An SSE event on the backend stream exceeded the size limit.
    EventTooLarge {
        /// The configured limit, in bytes.
        limit: usize,
    },
    /// The backend ended its SSE stream (or the connection failed).
    StreamClosed {
        /// What the session was doing.
        phase: SessionPhase,
        /// The connection failed rather than ending cleanly.
        error: bool,
    },
    /// No `endpoint` event arrived in time.
    EndpointTimeout {
        /// The configured wait, in milliseconds.
        waited_ms: u64,
    },
    /// The `endpoint` event's URI is unusable (unparsable, not http(s), or
    /// on another origin when that is not allowed).
    BadEndpoint {
        /// The URI as sent (truncated).
        uri: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// Per-request mode: the backend answered the bridge's `initialize`
    /// with an error.
    InitializeRefused {
        /// The backend's error message.
        message: String,
    },
    /// Per-request mode: no answer to the bridge's `initialize` in time.
    InitializeTimeout {
        /// The configured wait, in milliseconds.
        waited_ms: u64,
    },
    /// The backend answered the POST of a message with a non-2xx status.
    PostRefused {
        /// Its status.
        status: u16,
        /// The start of its body, lossily decoded.
        body: String,
    },
    /// The POST of a message could not be sent (connect or write failed).
    PostFailed {
        /// What the transport said.
        detail: String,
    },
    /// A request for the backend could not be written: a value it would
    /// carry (the target, a forwarded header field) is one `http1`'s
    /// encoder refuses. Nothing was sent.
    Unwritable {
        /// Which request: `"the SSE GET"` or `"the POST of the message"`.
        request: &'static str,
        /// What the encoder refused.
        error: crate::http1::WriteError,
    },
    /// The POST of a message went out whole and the backend gave no
    /// answer: it may have acted on it, so it was not sent again.
    PostUnanswered {
        /// What the transport said.
        detail: String,
    },
    /// The POST of a message got no answer in time.
    PostTimeout {
        /// The configured wait, in milliseconds.
        waited_ms: u64,
    },
    /// The backend no longer knows the session (404 on a POST).
    BackendSessionGone,
    /// Too many messages waiting to be sent to the backend.
    QueueFull {
        /// The configured limit.
        limit: usize,
    },
    /// Too many client requests awaiting answers in one session.
    TooManyPending {
        /// The configured limit.
        limit: usize,
    },
    /// The client deleted the session while this request was in flight.
    SessionDeleted,
    /// The session was closed after being idle.
    SessionExpired,
    /// The proxy is shutting down and closed the session.
    ShuttingDown,
    /// The route already serves as many backend sessions as it may; no new
    /// one was opened.
    TooManySessions {
        /// The configured limit.
        limit: usize,
    },
    /// The operating system gave no randomness for a session id, so no
    /// session was opened (a guessable id is never handed out).
    NoSessionId,
}

impl BridgeError {
    /// The JSON-RPC error code a client's request gets.
    pub fn code(&self) -> i64 {
        match self {
            BridgeError::EndpointTimeout { .. }
            | BridgeError::InitializeTimeout { .. }
            | BridgeError::PostTimeout { .. } => codes::UPSTREAM_TIMEOUT,
            BridgeError::QueueFull { .. }
            | BridgeError::TooManyPending { .. }
            | BridgeError::TooManySessions { .. }
            | BridgeError::NoSessionId => codes::INTERNAL_ERROR,
            _ => codes::UPSTREAM_FAILED,
        }
    }

    /// The HTTP status a client gets when no part of its answer has gone
    /// out yet.
    pub fn status(&self) -> u16 {
        match self {
            BridgeError::EndpointTimeout { .. }
            | BridgeError::InitializeTimeout { .. }
            | BridgeError::PostTimeout { .. } => 504,
            BridgeError::QueueFull { .. }
            | BridgeError::TooManyPending { .. }
            | BridgeError::TooManySessions { .. }
            | BridgeError::NoSessionId
            | BridgeError::ShuttingDown => 503,
            BridgeError::BackendSessionGone
            | BridgeError::SessionDeleted
            | BridgeError::SessionExpired => 404,
            _ => 502,
        }
    }

    /// Whether this failure ends the whole backend session.
    pub fn is_fatal(&self) -> bool {
        !matches!(
            self,
            BridgeError::PostRefused { .. }
                | BridgeError::PostFailed { .. }
                | BridgeError::PostUnanswered { .. }
                | BridgeError::PostTimeout { .. }
                | BridgeError::Unwritable { .. }
                | BridgeError::QueueFull { .. }
                | BridgeError::TooManyPending { .. }
                | BridgeError::TooManySessions { .. }
                | BridgeError::InitializeRefused { .. }
                | BridgeError::InitializeTimeout { .. }
        )
    }
}

impl fmt::Display for BridgeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BridgeError::StreamStatus { status } => write!(
                f,
                "the legacy backend answered the SSE GET with status {status} instead of 200"
            ),
            BridgeError::NotEventStream { content_type } => write!(
                f,
                "the legacy backend answered the SSE GET with Content-Type {content_type:?} instead of text/event-stream"
            ),
            BridgeError::StreamMalformed { detail } => {
                write!(f, "the legacy backend's SSE stream is malformed: {detail}")
            }
            BridgeError::EventTooLarge { limit } => write!(
                f,
                "the legacy backend sent an SSE event larger than the limit of {limit} bytes"
            ),
            BridgeError::StreamClosed { phase, error } => write!(
                f,
                "the legacy backend's SSE stream {} while {}",
                if *error { "failed" } else { "ended" },
                phase.as_str()
            ),
            BridgeError::EndpointTimeout { waited_ms } => write!(
                f,
                "the legacy backend sent no endpoint event within {waited_ms} ms of opening its SSE stream"
            ),
            BridgeError::BadEndpoint { uri, reason } => {
                write!(
                    f,
                    "the legacy backend's endpoint {uri:?} is unusable: {reason}"
                )
            }
            BridgeError::InitializeRefused { message } => {
                write!(f, "the legacy backend refused initialize: {message}")
            }
            BridgeError::InitializeTimeout { waited_ms } => write!(
                f,
                "the legacy backend did not answer initialize within {waited_ms} ms"
            ),
            BridgeError::PostRefused { status, body } => {
                write!(
                    f,
                    "the legacy backend refused the message with status {status}"
                )?;
                if !body.is_empty() {
                    write!(f, ": {body}")?;
                }
                Ok(())
            }
            BridgeError::PostFailed { detail } => {
                write!(
                    f,
                    "posting the message to the legacy backend failed: {detail}"
                )
            }
            BridgeError::Unwritable { request, error } => write!(
                f,
                "sluice could not write {request} for the legacy backend ({error}); nothing was sent"
            ),
            BridgeError::PostUnanswered { detail } => write!(
                f,
                "the legacy backend took the message and gave no answer ({detail}); \
                 it may have acted on it, so sluice did not send it again"
            ),
            BridgeError::PostTimeout { waited_ms } => write!(
                f,
                "the legacy backend did not answer the POST of the message within {waited_ms} ms"
            ),
            BridgeError::BackendSessionGone => {
                f.write_str("the legacy backend no longer knows this session (404 on POST)")
            }
            BridgeError::QueueFull { limit } => write!(
                f,
                "more than {limit} messages are waiting to be sent to the legacy backend"
            ),
            BridgeError::TooManyPending { limit } => write!(
                f,
                "more than {limit} requests of this session are awaiting answers"
            ),
            BridgeError::SessionDeleted => f.write_str("the session was deleted by the client"),
            BridgeError::SessionExpired => f.write_str("the session expired after being idle"),
            BridgeError::ShuttingDown => {
                f.write_str("sluice is shutting down and closed the legacy backend session")
            }
            BridgeError::TooManySessions { limit } => write!(
                f,
                "this route already has {limit} legacy backend sessions open (its limit); \
                 try again once one ends"
            ),
            BridgeError::NoSessionId => {
                f.write_str("no randomness for a session id; no session was opened")
            }
        }
    }
}

impl std::error::Error for BridgeError {}
