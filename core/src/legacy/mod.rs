//! The bridge to a legacy HTTP+SSE backend (MCP 2024-11-05), as sans-IO
//! state machines.
//!
//! A Streamable HTTP client talks to sluice; the backend only speaks the old
//! transport: a long-lived `GET` whose first event, `endpoint`, names a URI
//! to which every client message is POSTed (answered `202`), while every
//! server message — answers included — arrives as an `event: message` on
//! that one stream. The bridge turns one into the other:
//!
//! | client (Streamable HTTP) | bridge | backend (HTTP+SSE) |
//! |---|---|---|
//! | `POST` request | queue, POST to the endpoint | `202`, later the answer on the stream |
//! | | match the answer by id (exact text, then same JSON value) | `event: message` |
//! | answer: JSON, or SSE when related notifications came first | | |
//! | `POST` notification or response | POST, then `202` to the client | `202` |
//! | `GET` (session mode) | server-initiated messages | `event: message` |
//! | `DELETE` (session mode) | close the stream | connection closed |
//!
//! # The machines
//!
//! | machine | what it is | inputs | outputs |
//! |---|---|---|---|
//! | [`Bridge`] | one backend HTTP+SSE session serving Streamable HTTP client streams | `attach`, `stream_data`, `stream_closed`, `post_done`, `client_gone`, `handle_timeout`, `close` | [`Output`] |
//! | [`Probe`] | `transport = "auto"`: which transport a backend speaks, from the probe's own POST ([`Probe::new`]) or from the answer a client's POST already got ([`Probe::after_answer`]); POST → DELETE of its session, or 400/404/405 → GET → `endpoint`; one deadline | `connected`, `connect_failed`, `feed`, `eof`, `failed`, `handle_timeout` | [`ProbeOutput`]: `Connect`, `Send`, `Close`, `Done(`[`ProbeResult`]`)` |
//!
//! Both are driven the same way (feed, then drain until `None`, then wait
//! for I/O or `poll_timeout()`), and so is the reader they share with a
//! driver: [`PostAnswerReader`] (a POST's answer). Client requests arrive
//! typed, over [`crate::upstream`]. The probe's rule for which answers send it on to
//! the GET is [`judge_answer`], a pure function whose doc is the table.
//!
//! # Two modes
//!
//! - [`Mode::Session`]: a client's `initialize` opens one backend stream;
//!   the caller mints an `Mcp-Session-Id`, and every later request with
//!   that id goes to the same [`Bridge`]. `notifications/progress` goes to
//!   the request stream that owns its `progressToken`; every other
//!   notification and every server request goes to the client's GET stream
//!   (queued, bounded, until one is open). The session ends on `DELETE`,
//!   after [`BridgeTimeouts::session_idle`] without clients, or when the
//!   backend closes its stream (the next request then gets 404, so the
//!   client starts over).
//! - [`Mode::PerRequest`]: a fresh backend stream per request, with the
//!   bridge's own handshake (`initialize` with the client's
//!   `MCP-Protocol-Version`, then `notifications/initialized`) unless the
//!   request is itself `initialize`; everything the backend sends meanwhile
//!   goes to that request's stream. Nothing is kept. Server requests cannot
//!   be relayed (the bridge answers `ping` itself and refuses the others).
//!
//! Client bodies go to the backend byte for byte (`_meta` and its
//! `progressToken` included); the client's id comes back as the exact text
//! it sent. POSTs of one session go one at a time, in the order the client
//! sent them, as the old transport's single channel implies.
//!
//! # The loop
//!
//! ```
//! # use std::sync::Arc;
//! # use std::time::Instant;
//! # use sluice_core::legacy::*;
//! # use sluice_core::upstream::Request;
//! # fn run(config: Arc<BridgeConfig>, request: Request) {
//! let now = Instant::now();
//! let mut bridge = Bridge::new(config, Mode::PerRequest, None, now);
//! bridge.attach(1, request, now);
//! while let Some(output) = bridge.poll_output() {
//!     match output {
//!         Output::OpenStream(bytes) => { /* connect, write, feed the answer to stream_data */ }
//!         Output::Post { id, bytes, origin, fresh } => { /* send, read with PostAnswerReader::post, then post_done(id, ..) */ }
//!         Output::AbandonPost { id } => { /* drop that POST's connection; no post_done */ }
//!         Output::ToClient { stream, part } => { /* hand the part to that client's exchange */ }
//!         Output::EndClient { stream } => { /* that client's answer is complete: close it */ }
//!         Output::CloseStream => { /* drop the SSE connection */ }
//!         Output::Closed { error } => { /* forget this bridge */ }
//!     }
//! }
//! // Then wait for stream bytes, POST answers, new clients or poll_timeout().
//! # }
//! ```
//!
//! Client requests arrive and answers leave over the typed seam of
//! [`crate::upstream`]: a [`Request`](crate::upstream::Request) in, answer
//! parts out, one client stream per exchange; nothing is rendered as HTTP.
//! Failures become JSON-RPC errors carrying the client's id, a code from
//! [`BridgeError::code`] and a message naming the state and what the
//! backend did; a client whose SSE answer has begun gets the error as the
//! last event.

mod backend;
mod bridge;
mod client;
mod error;
mod probe;

use std::time::Duration;

use bytes::Bytes;

use crate::http1;
use crate::jsonrpc;
use crate::sse::SseLimits;
use crate::upstream::AnswerPart;

pub use backend::{Endpoint, Origin, PostAnswer, PostAnswerReader, resolve_endpoint};
pub use bridge::{Bridge, Buffered};
pub use client::{Dispatch, dispatch, refuse_new_session, unknown_session};
pub use error::{BridgeError, SessionPhase};

/// How a POST asked for by [`Output::Post`] ended. What matters for a
/// failure is whether the backend can have acted on the message: only one
/// that did not go out whole is ever sent again (at most once, on a fresh
/// connection), because a `tools/call` must not run twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PostOutcome {
    /// The backend answered, with any status.
    Answered(PostAnswer),
    /// The request did not go out whole: the connect or a write failed.
    NotSent {
        /// It was tried on a pooled keep-alive connection, which the
        /// backend may have closed just before (then it is sent again, once,
        /// on a fresh one).
        reused: bool,
        /// What the transport said.
        detail: String,
    },
    /// The request went out whole and no complete answer came back: the
    /// backend may have acted on it, so it is not sent again.
    Unanswered {
        /// What the transport said.
        detail: String,
    },
}
pub use probe::{
    Cleanup, FirstAnswer, Probe, ProbeConfig, ProbeFailure, ProbeOutput, ProbeResult, ProbeStage,
    ProbeStep, judge_answer, may_try_legacy,
};

/// Identifies one client stream (one client request) to the caller.
pub type StreamId = u64;
/// Identifies one POST to the backend.
pub type PostId = u64;

/// How backend sessions map to client sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Mode {
    /// One backend stream per client session (default).
    #[default]
    Session,
    /// One backend stream per request; no state kept.
    PerRequest,
}

/// Something the caller must do, in order.
#[must_use]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Open a connection to the backend, write these bytes (the GET of the
    /// SSE stream) and feed everything it answers to
    /// [`Bridge::stream_data`]; report its end with [`Bridge::stream_closed`].
    OpenStream(Bytes),
    /// Send one POST and report how it ended with [`Bridge::post_done`]
    /// (a [`PostOutcome`] that says whether it went out whole). At most one
    /// is in flight; its deadline is part of [`Bridge::poll_timeout`].
    Post {
        /// Echo this in `post_done`.
        id: PostId,
        /// The whole request.
        bytes: Bytes,
        /// `None`: the stream's origin; else the endpoint's own origin.
        origin: Option<Origin>,
        /// Connect anew: `false` lets a pooled keep-alive connection carry
        /// it. `true` comes only for the one re-send of a POST that did not
        /// go out whole on a pooled connection.
        fresh: bool,
    },
    /// The POST `id` ran out of time: drop its connection (mid-answer, it
    /// cannot be reused) and report nothing more for it.
    AbandonPost {
        /// The POST given up on.
        id: PostId,
    },
    /// Send this part of its answer to client stream `stream` (unknown or
    /// gone streams: ignore).
    ToClient {
        /// The client stream.
        stream: StreamId,
        /// The next part of the answer.
        part: AnswerPart,
    },
    /// The response on `stream` is complete: close that client stream.
    EndClient {
        /// The client stream.
        stream: StreamId,
    },
    /// Close the backend's SSE connection.
    CloseStream,
    /// The bridge is over; drop it (a session's id now answers 404).
    Closed {
        /// Why, when it failed.
        error: Option<BridgeError>,
    },
}

/// Named limits of a bridge.
#[derive(Debug, Clone)]
pub struct BridgeLimits {
    /// Heads read from the backend, and chunked framing.
    pub http: http1::Limits,
    /// Events on the backend's SSE stream.
    pub sse: SseLimits,
    /// Messages classified (client bodies, backend events).
    pub json: jsonrpc::Limits,
    /// Messages waiting for their POST, per session.
    pub max_queued_posts: usize,
    /// Client requests awaiting answers, per session.
    pub max_pending: usize,
    /// Server-initiated messages held until a GET stream opens.
    pub max_queued_server_messages: usize,
    /// Their total size in bytes.
    pub max_queued_server_bytes: usize,
}

impl Default for BridgeLimits {
    /// 256 queued POSTs, 1024 pending requests, 256 messages / 4 MiB held
    /// for the GET stream; the other layers' defaults.
    fn default() -> Self {
        BridgeLimits {
            http: http1::Limits::default(),
            sse: SseLimits::default(),
            json: jsonrpc::Limits::default(),
            max_queued_posts: 256,
            max_pending: 1024,
            max_queued_server_messages: 256,
            max_queued_server_bytes: 4 << 20,
        }
    }
}

/// Timeouts of a bridge.
#[derive(Debug, Clone)]
pub struct BridgeTimeouts {
    /// From sending the GET to the `endpoint` event.
    pub endpoint: Duration,
    /// Per-request mode: the answer to the bridge's own `initialize`.
    pub handshake: Duration,
    /// Session mode: a session with no client stream attached for this
    /// long is closed. `None`: never.
    pub session_idle: Option<Duration>,
    /// One POST to the backend, connect included, until its answer is
    /// read whole.
    pub post: Duration,
}

impl Default for BridgeTimeouts {
    /// 10 s for the endpoint, 30 s for the handshake and for a POST, 30 min
    /// idle.
    fn default() -> Self {
        BridgeTimeouts {
            endpoint: Duration::from_secs(10),
            handshake: Duration::from_secs(30),
            session_idle: Some(Duration::from_secs(30 * 60)),
            post: Duration::from_secs(30),
        }
    }
}

/// Configuration of the bridges of one route.
#[derive(Debug, Clone)]
pub struct BridgeConfig {
    /// The backend is reached over https (for resolving the endpoint).
    pub https: bool,
    /// Accept an `endpoint` on another origin than the SSE stream.
    pub allow_other_origin: bool,
    /// Per-request mode: the `protocolVersion` of the bridge's own
    /// `initialize` when the client sent no `MCP-Protocol-Version`.
    pub default_protocol_version: String,
    /// Limits.
    pub limits: BridgeLimits,
    /// Timeouts.
    pub timeouts: BridgeTimeouts,
}

impl Default for BridgeConfig {
    fn default() -> Self {
        BridgeConfig {
            https: false,
            allow_other_origin: false,
            default_protocol_version: "2025-03-26".to_owned(),
            limits: BridgeLimits::default(),
            timeouts: BridgeTimeouts::default(),
        }
    }
}
