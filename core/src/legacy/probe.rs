//! `transport = "auto"`: which transport a backend speaks, as one sans-IO
//! machine, [`Probe`]. All transitions live in this file.
//!
//! # The rule
//!
//! MCP 2025-03-26, *Transports*, "Backwards Compatibility"
//! (`docs/specification/2025-03-26/basic/transports.mdx` in
//! `modelcontextprotocol/modelcontextprotocol`) tells a client that wants to
//! support older servers to POST an `InitializeRequest` to the URL it was
//! given: if that succeeds, the server speaks Streamable HTTP; if it fails
//! with a 4xx ("e.g., 405 Method Not Allowed or 404 Not Found"), GET the
//! same URL, "expecting that this will open an SSE stream and return an
//! `endpoint` event as the first event"; when that event arrives, the server
//! speaks the deprecated HTTP+SSE transport of 2024-11-05.
//!
//! sluice reads "a 4xx" narrowly, so that a Streamable HTTP server never
//! sees a request it did not ask for ([`judge_answer`]):
//!
//! | answer to a POST | verdict | why |
//! |---|---|---|
//! | 2xx | Streamable | the specification's "if it succeeds" |
//! | 400, 404 or 405 whose body is one JSON-RPC error | Streamable | a Streamable HTTP server refusing *this* request (no or unknown `Mcp-Session-Id`, a bad `MCP-Protocol-Version`, a mirror header that does not match) answers with a JSON-RPC error; a 2024-11-05 server has no POST route on its SSE URL, and its framework's default 404 or 405 is HTML or plain text |
//! | 400, 404 or 405, any other body | try the GET | what a 2024-11-05 server answers a POST to its SSE URL: 405 where that route takes only GET, 404 where no POST route exists, 400 where a catch-all handler refuses the body |
//! | anything else: 401, 403, 406, 415, 429, 5xx… | no conclusion | authentication, content negotiation and overload say nothing about the transport (a GET would meet the same gate), and the client must see them as they are, e.g. to start its OAuth flow |
//!
//! A conclusion needs evidence: `Streamable` only from one of the first two
//! rows, `Legacy` only from an `endpoint` event that is the first event of a
//! `200 text/event-stream` answer to the GET (events with empty data, such
//! as a priming event, are skipped; comments are not events). Anything else (a connect that
//! fails, a malformed or oversize head, a stream that ends first, the
//! deadline) is [`ProbeResult::Inconclusive`] with a typed
//! [`ProbeFailure`], which a route should not remember.
//!
//! # Two entries
//!
//! - [`Probe::new`]: the probe's own POST of an `initialize`, for a driver
//!   that probes before any client asks (sluice's runtime does not: its
//!   probe rides on the client's first request, below). When a
//!   Streamable HTTP server opened a session for it, the probe DELETEs that
//!   session on a new connection, best effort, before it concludes.
//! - [`Probe::after_answer`]: the client's own first POST already went to
//!   the upstream and was answered (see `Exchange::probe_transport`, which
//!   holds such an answer for it); its status (and body) stand in for the
//!   probe's POST. A 400/404/405 that is not a JSON-RPC error goes straight
//!   to the GET (with the client's forwarded header fields, its
//!   `Authorization` among them); every other answer concludes at once,
//!   with no I/O at all — so a Streamable HTTP server sees no extra request.
//!   Nothing is ever DELETEd here: a session in that answer is the
//!   client's.
//!
//! # The loop
//!
//! One connection at a time. Feed an input, then drain
//! [`Probe::poll_output`] until `None`, performing each [`ProbeOutput`] in
//! order; then wait for the connect, the next read, or
//! [`Probe::poll_timeout`]. [`ProbeOutput::Close`] always comes before the
//! next [`ProbeOutput::Connect`] and before [`ProbeOutput::Done`], which is
//! the last output.
//!
//! ```
//! # use std::time::{Duration, Instant};
//! # use sluice_core::legacy::{Probe, ProbeConfig, ProbeOutput, ProbeResult};
//! let mut now = Instant::now();
//! let config = ProbeConfig::new("backend:9000", "/sse", Duration::from_secs(10));
//! let mut probe = Probe::new(config, now);
//! // A scripted 2024-11-05 backend: 405 to the POST, then the SSE stream.
//! let mut answers = vec![
//!     &b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n"[..],
//!     b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n\
//!       event: endpoint\ndata: /messages?sessionId=1\n\n",
//! ]
//! .into_iter();
//! let result = loop {
//!     match probe.poll_output() {
//!         Some(ProbeOutput::Connect) => probe.connected(now), // dial a new connection
//!         Some(ProbeOutput::Send(_request)) => {
//!             // write it, then feed what the connection reads
//!             probe.feed(answers.next().unwrap(), now);
//!         }
//!         Some(ProbeOutput::Close) => {} // drop the connection
//!         Some(ProbeOutput::Done(result)) => break result,
//!         None => {
//!             // wait for I/O or the deadline
//!             now = probe.poll_timeout().unwrap();
//!             probe.handle_timeout(now);
//!         }
//!     }
//! };
//! assert_eq!(
//!     result,
//!     ProbeResult::Legacy {
//!         endpoint: "/messages?sessionId=1".into()
//!     }
//! );
//! ```

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::BridgeLimits;
use super::backend::{self, BackendStream, PostAnswer, PostAnswerReader};
use super::error::{BridgeError, SessionPhase};
use crate::http1::{self, Header};
use crate::jsonrpc::{self, Classified, Kind};
use crate::sse::SseLimits;

/// What one answer to a POST says about the transport ([`judge_answer`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeStep {
    /// The backend speaks Streamable HTTP.
    Streamable,
    /// GET the URL and watch for `endpoint`.
    TryLegacy,
    /// The status says nothing about the transport.
    Inconclusive(u16),
}

/// Whether an answer with this status may send the probe on to the GET:
/// 400, 404 or 405. Such an answer must be held whole (it is small) until
/// [`judge_answer`] has read its body.
pub fn may_try_legacy(status: u16) -> bool {
    matches!(status, 400 | 404 | 405)
}

/// The rule table of the module docs of `core/src/legacy/probe.rs`: what the answer to a POST
/// (`status`, and the `body` or as much of it as was read) says about the
/// transport.
pub fn judge_answer(status: u16, body: &[u8], json: &jsonrpc::Limits) -> ProbeStep {
    match status {
        200..=299 => ProbeStep::Streamable,
        s if may_try_legacy(s) => {
            if is_jsonrpc_error(body, json) {
                ProbeStep::Streamable
            } else {
                ProbeStep::TryLegacy
            }
        }
        s => ProbeStep::Inconclusive(s),
    }
}

fn is_jsonrpc_error(body: &[u8], json: &jsonrpc::Limits) -> bool {
    matches!(
        jsonrpc::classify(body, json),
        Ok(Classified::Single(m)) if m.kind == Kind::Error
    )
}

/// How a [`Probe`] is set up.
#[derive(Debug, Clone)]
pub struct ProbeConfig {
    /// The `Host` value of the upstream.
    pub authority: String,
    /// The upstream URL's path and query (the SSE URL of a legacy backend).
    pub target: String,
    /// Response heads and chunked framing.
    pub http: http1::Limits,
    /// Events on the GET's stream (the `endpoint` event included).
    pub sse: SseLimits,
    /// The answer bodies classified by [`judge_answer`].
    pub json: jsonrpc::Limits,
    /// The whole probe, from its construction to its conclusion. 10 s by
    /// [`new`](Self::new).
    pub timeout: Duration,
}

impl ProbeConfig {
    /// A probe of `authority` + `target` with the default limits.
    pub fn new(authority: impl Into<String>, target: impl Into<String>, timeout: Duration) -> Self {
        ProbeConfig::with_limits(authority, target, &BridgeLimits::default(), timeout)
    }

    /// A probe of `authority` + `target` with a route's bridge limits.
    pub fn with_limits(
        authority: impl Into<String>,
        target: impl Into<String>,
        limits: &BridgeLimits,
        timeout: Duration,
    ) -> Self {
        ProbeConfig {
            authority: authority.into(),
            target: target.into(),
            http: limits.http.clone(),
            sse: limits.sse,
            json: limits.json,
            timeout,
        }
    }
}

/// The answer the route already got to a client's POST, for
/// [`Probe::after_answer`].
#[derive(Debug, Clone, Copy)]
pub struct FirstAnswer<'a> {
    /// The header fields of the client's request as they went upstream;
    /// those a backend may need (`Authorization`, cookies, custom fields)
    /// go on to the GET, the transport's own never.
    pub request_headers: &'a [Header],
    /// The upstream's status.
    pub status: u16,
    /// The upstream's body, or as much of it as was read (only a
    /// 400/404/405's is looked at: [`may_try_legacy`]).
    pub body: &'a [u8],
}

/// One step of the probe, named in its failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeStage {
    /// The POST of the probe's own `initialize`.
    Post,
    /// The GET that should open a legacy SSE stream.
    Stream,
    /// The DELETE of the session a Streamable HTTP backend opened for the
    /// probe.
    Cleanup,
}

impl ProbeStage {
    /// A short name for messages and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            ProbeStage::Post => "the probe's POST of initialize",
            ProbeStage::Stream => "the GET for a legacy SSE stream",
            ProbeStage::Cleanup => "the DELETE of the probe's session",
        }
    }
}

/// Why a probe (or its cleanup) reached no conclusion.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProbeFailure {
    /// The connection for `stage` could not be opened.
    ConnectFailed {
        /// The step.
        stage: ProbeStage,
        /// What the transport said.
        detail: String,
    },
    /// The connection ended (or failed) before a complete answer head.
    Closed {
        /// The step.
        stage: ProbeStage,
        /// What the transport said, when it failed rather than ended.
        error: Option<String>,
    },
    /// The answer was malformed (a bad or oversize head, bad framing).
    BadAnswer {
        /// The step.
        stage: ProbeStage,
        /// What the HTTP layer said.
        detail: String,
    },
    /// The probe's deadline passed during `stage`.
    Timeout {
        /// The step.
        stage: ProbeStage,
        /// The whole probe's budget, in milliseconds.
        waited_ms: u64,
    },
    /// The POST was answered with a status that says nothing about the
    /// transport (401, 403, 406, 5xx…; see the module docs of `core/src/legacy/probe.rs`).
    Status {
        /// The status.
        status: u16,
    },
    /// The request for `stage` could not be written: a value it would carry
    /// (the target, a forwarded header field) is one `http1`'s encoder
    /// refuses. Nothing was sent.
    Unwritable {
        /// The step.
        stage: ProbeStage,
        /// What the encoder refused.
        error: http1::WriteError,
    },
    /// The GET did not open a legacy stream: its answer was not
    /// `200 text/event-stream`, its first event was not `endpoint`, the
    /// event was too large, or the stream ended first.
    NotLegacy(BridgeError),
}

impl ProbeFailure {
    /// The upstream could not be reached (a connect failed) or did not do
    /// its part in time: a driver that would have sent the client's request
    /// there treats it as a failed connect, not as "no conclusion".
    pub fn upstream_unreachable(&self) -> bool {
        matches!(
            self,
            ProbeFailure::ConnectFailed { .. } | ProbeFailure::Timeout { .. }
        )
    }
}

impl fmt::Display for ProbeFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProbeFailure::ConnectFailed { stage, detail } => {
                write!(f, "connecting for {} failed: {detail}", stage.as_str())
            }
            ProbeFailure::Closed { stage, error } => {
                write!(
                    f,
                    "the connection of {} {} before the answer",
                    stage.as_str(),
                    if error.is_some() { "failed" } else { "ended" }
                )?;
                match error {
                    Some(e) => write!(f, ": {e}"),
                    None => Ok(()),
                }
            }
            ProbeFailure::BadAnswer { stage, detail } => {
                write!(f, "the answer to {} is malformed: {detail}", stage.as_str())
            }
            ProbeFailure::Timeout { stage, waited_ms } => write!(
                f,
                "the probe ran out of its {waited_ms} ms during {}",
                stage.as_str()
            ),
            ProbeFailure::Status { status } => write!(
                f,
                "the upstream answered the POST with status {status}, \
                 which says nothing about its transport"
            ),
            ProbeFailure::Unwritable { stage, error } => write!(
                f,
                "sluice could not write the request of {} ({error}); nothing was sent",
                stage.as_str()
            ),
            ProbeFailure::NotLegacy(e) => {
                write!(f, "400/404/405 to the POST, but no legacy stream: {e}")
            }
        }
    }
}

impl std::error::Error for ProbeFailure {}

/// What became of the DELETE of the probe's own session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cleanup {
    /// No session to delete: the answer had none (or one that is not
    /// visible ASCII), or the session was the client's
    /// ([`Probe::after_answer`]).
    NotNeeded,
    /// The DELETE was answered with this status (a server that does not let
    /// clients end sessions says 405).
    Answered(u16),
    /// The DELETE failed; the session lingers until the server expires it.
    Failed(ProbeFailure),
}

/// How a probe ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeResult {
    /// The backend speaks Streamable HTTP.
    Streamable {
        /// The evidence: the POST's status (2xx, or 400/404/405 with a
        /// JSON-RPC error).
        status: u16,
        /// The DELETE of the probe's session.
        cleanup: Cleanup,
    },
    /// The backend speaks the 2024-11-05 HTTP+SSE transport.
    Legacy {
        /// The evidence: the `endpoint` event's URI, as sent. It names the
        /// probe's own backend session, which ended with the GET; a bridge
        /// opens its own stream.
        endpoint: String,
    },
    /// No conclusion: do not remember one.
    Inconclusive(ProbeFailure),
}

/// Something the caller must do, in order.
#[must_use]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeOutput {
    /// Open a new connection to the upstream (never a pooled one) and
    /// report [`Probe::connected`] or [`Probe::connect_failed`].
    Connect,
    /// Write these bytes on the open connection, then feed what it reads
    /// to [`Probe::feed`] and its end to [`Probe::eof`] (a failed write or
    /// read: [`Probe::failed`]).
    Send(Bytes),
    /// Drop the connection, or abandon the connect in progress. Comes once
    /// for every `Connect` that was not answered with `connect_failed`.
    Close,
    /// The probe is over; nothing follows.
    Done(ProbeResult),
}

/// What the connection being opened is for.
#[derive(Debug)]
enum Next {
    Post,
    Cleanup { status: u16, session: String },
    Stream,
}

#[derive(Debug)]
enum State {
    /// `Connect` is out.
    Connecting(Next),
    /// The POST is out; its answer is read up to what the verdict needs.
    Posting(PostAnswerReader),
    /// The DELETE is out; `status` is the POST's (the evidence in hand).
    CleaningUp {
        status: u16,
        reader: PostAnswerReader,
    },
    /// The GET is out; waiting for its first event.
    Watching(BackendStream),
    Done,
}

/// The `auto` transport probe of one upstream, as a sans-IO machine.
///
/// Push inputs ([`connected`](Self::connected),
/// [`connect_failed`](Self::connect_failed), [`feed`](Self::feed),
/// [`eof`](Self::eof), [`failed`](Self::failed),
/// [`handle_timeout`](Self::handle_timeout)), then drain
/// [`poll_output`](Self::poll_output) until `None`; see the
/// module docs of `core/src/legacy/probe.rs`. Inputs that do not fit the state (bytes while
/// connecting, anything after `Done`) are ignored. Every input past the
/// deadline counts as the deadline: the probe always concludes by
/// `poll_timeout()`.
#[derive(Debug)]
pub struct Probe {
    config: ProbeConfig,
    /// Client header fields for the GET ([`Probe::after_answer`]).
    fwd: Vec<Header>,
    state: State,
    outputs: VecDeque<ProbeOutput>,
    deadline: Instant,
}

/// How much of a 400/404/405 answer's body the probe reads to judge it.
const JUDGED_BODY: usize = 4096;

impl Probe {
    /// A probe that starts with its own POST of an `initialize`.
    pub fn new(config: ProbeConfig, now: Instant) -> Self {
        let mut probe = Probe::idle(config, Vec::new(), now);
        probe.connect(Next::Post);
        probe
    }

    /// A probe that starts from the answer a client's own POST already got
    /// from the upstream (see the module docs of `core/src/legacy/probe.rs`): straight to the GET
    /// for a 400/404/405 that is not a JSON-RPC error, else concluded at
    /// once (drain `Done`).
    pub fn after_answer(config: ProbeConfig, answer: FirstAnswer<'_>, now: Instant) -> Self {
        let fwd = backend::forwarded(answer.request_headers);
        let mut probe = Probe::idle(config, fwd, now);
        match judge_answer(answer.status, answer.body, &probe.config.json) {
            ProbeStep::Streamable => probe.finish(ProbeResult::Streamable {
                status: answer.status,
                cleanup: Cleanup::NotNeeded,
            }),
            ProbeStep::TryLegacy => probe.connect(Next::Stream),
            ProbeStep::Inconclusive(status) => {
                probe.finish(ProbeResult::Inconclusive(ProbeFailure::Status { status }))
            }
        }
        probe
    }

    fn idle(config: ProbeConfig, fwd: Vec<Header>, now: Instant) -> Self {
        Probe {
            deadline: now + config.timeout,
            config,
            fwd,
            state: State::Done,
            outputs: VecDeque::new(),
        }
    }

    /// The next thing to do; drain after every input.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<ProbeOutput> {
        self.outputs.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) is due: the probe's
    /// deadline, until it is over.
    pub fn poll_timeout(&self) -> Option<Instant> {
        (!self.is_done()).then_some(self.deadline)
    }

    /// The probe has concluded (its `Done` is queued or drained).
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// The connection asked for by [`ProbeOutput::Connect`] is open.
    pub fn connected(&mut self, now: Instant) {
        if self.expired(now) {
            return;
        }
        let Some(next) = self.take_connecting() else {
            return;
        };
        let c = &self.config;
        let step = next.step();
        let (bytes, state) = match next {
            Next::Post => (
                post_request(&c.authority, &c.target),
                State::Posting(PostAnswerReader::judging(&c.http, JUDGED_BODY)),
            ),
            Next::Cleanup { status, session } => (
                delete_request(&c.authority, &c.target, &session),
                State::CleaningUp {
                    status,
                    reader: PostAnswerReader::head_only(&c.http),
                },
            ),
            Next::Stream => (
                stream_request(&c.authority, &c.target, &self.fwd),
                State::Watching(BackendStream::new(&c.http, c.sse)),
            ),
        };
        let bytes = match bytes {
            Ok(bytes) => bytes,
            Err(error) => {
                let failure = ProbeFailure::Unwritable {
                    stage: step.stage(),
                    error,
                };
                self.close_and_finish(step.failed(failure));
                return;
            }
        };
        self.state = state;
        self.outputs.push_back(ProbeOutput::Send(bytes));
    }

    /// The connection asked for by [`ProbeOutput::Connect`] could not be
    /// opened (no `Close` follows for it).
    pub fn connect_failed(&mut self, detail: &str, now: Instant) {
        let Some(next) = self.take_connecting() else {
            self.expired(now);
            return;
        };
        // No connection is held from here on: no `Close`, whatever the end.
        let step = next.step();
        let failure = if now >= self.deadline {
            self.timeout(step)
        } else {
            ProbeFailure::ConnectFailed {
                stage: step.stage(),
                detail: detail.to_owned(),
            }
        };
        self.finish(step.failed(failure));
    }

    /// Bytes read from the connection, in any split.
    pub fn feed(&mut self, input: &[u8], now: Instant) {
        if self.expired(now) {
            return;
        }
        match &mut self.state {
            State::Posting(reader) => match reader.feed(input) {
                Ok(None) => {}
                Ok(Some(answer)) => self.judged(answer),
                Err(detail) => {
                    self.close_and_finish(ProbeResult::Inconclusive(ProbeFailure::BadAnswer {
                        stage: ProbeStage::Post,
                        detail,
                    }))
                }
            },
            State::CleaningUp { status, reader } => {
                let status = *status;
                let cleanup = match reader.feed(input) {
                    Ok(None) => return,
                    Ok(Some(answer)) => Cleanup::Answered(answer.status),
                    Err(detail) => Cleanup::Failed(ProbeFailure::BadAnswer {
                        stage: ProbeStage::Cleanup,
                        detail,
                    }),
                };
                self.close_and_finish(ProbeResult::Streamable { status, cleanup });
            }
            State::Watching(stream) => {
                let mut events = Vec::new();
                let result = match stream.feed(input, &mut events) {
                    Err(e) => ProbeResult::Inconclusive(ProbeFailure::NotLegacy(e)),
                    // An empty event (a 2025-11-25 priming event) is no
                    // message: the first event that counts is the next.
                    Ok(ended) => match events.into_iter().find(|e| !e.data.is_empty()) {
                        Some(first) if first.event_type == "endpoint" => ProbeResult::Legacy {
                            endpoint: first.data,
                        },
                        Some(first) => ProbeResult::Inconclusive(ProbeFailure::NotLegacy(
                            BridgeError::StreamMalformed {
                                detail: format!(
                                    "the first event is {:?}, not endpoint",
                                    first.event_type
                                ),
                            },
                        )),
                        None if ended => ProbeResult::Inconclusive(ProbeFailure::NotLegacy(
                            BridgeError::StreamClosed {
                                phase: phase_of(stream),
                                error: false,
                            },
                        )),
                        None => return,
                    },
                };
                self.close_and_finish(result);
            }
            State::Connecting(_) | State::Done => {}
        }
    }

    /// The connection ended cleanly.
    pub fn eof(&mut self, now: Instant) {
        self.lost(None, now);
    }

    /// A write or read on the connection failed.
    pub fn failed(&mut self, detail: &str, now: Instant) {
        self.lost(Some(detail.to_owned()), now);
    }

    /// Call when [`poll_timeout`](Self::poll_timeout) has passed: past the
    /// deadline the probe concludes (a cleanup in progress is given up; the
    /// evidence for `Streamable` stands).
    pub fn handle_timeout(&mut self, now: Instant) {
        self.expired(now);
    }

    // -- transitions --------------------------------------------------------------

    /// What the connection being opened is for, leaving the state to the
    /// caller; `None` (state untouched) when no connect is in progress.
    fn take_connecting(&mut self) -> Option<Next> {
        match std::mem::replace(&mut self.state, State::Done) {
            State::Connecting(next) => Some(next),
            other => {
                self.state = other;
                None
            }
        }
    }

    fn connect(&mut self, next: Next) {
        self.state = State::Connecting(next);
        self.outputs.push_back(ProbeOutput::Connect);
    }

    fn finish(&mut self, result: ProbeResult) {
        self.state = State::Done;
        self.outputs.push_back(ProbeOutput::Done(result));
    }

    fn close_and_finish(&mut self, result: ProbeResult) {
        self.outputs.push_back(ProbeOutput::Close);
        self.finish(result);
    }

    /// The POST's answer is in: the verdict decides the next step.
    fn judged(&mut self, answer: PostAnswer) {
        self.outputs.push_back(ProbeOutput::Close);
        match judge_answer(answer.status, &answer.excerpt, &self.config.json) {
            ProbeStep::Streamable => match answer.session_id.filter(|s| visible_ascii(s)) {
                Some(session) => self.connect(Next::Cleanup {
                    status: answer.status,
                    session,
                }),
                None => self.finish(ProbeResult::Streamable {
                    status: answer.status,
                    cleanup: Cleanup::NotNeeded,
                }),
            },
            ProbeStep::TryLegacy => self.connect(Next::Stream),
            ProbeStep::Inconclusive(status) => {
                self.finish(ProbeResult::Inconclusive(ProbeFailure::Status { status }))
            }
        }
    }

    fn lost(&mut self, error: Option<String>, now: Instant) {
        if self.expired(now) {
            return;
        }
        match std::mem::replace(&mut self.state, State::Done) {
            State::Posting(mut reader) => {
                // An answer delimited by the close is complete now.
                let answer = match error {
                    None => reader.eof().ok(),
                    Some(_) => None,
                };
                match answer {
                    Some(answer) => self.judged(answer),
                    None => {
                        self.close_and_finish(ProbeResult::Inconclusive(ProbeFailure::Closed {
                            stage: ProbeStage::Post,
                            error,
                        }))
                    }
                }
            }
            State::CleaningUp { status, .. } => self.close_and_finish(ProbeResult::Streamable {
                status,
                cleanup: Cleanup::Failed(ProbeFailure::Closed {
                    stage: ProbeStage::Cleanup,
                    error,
                }),
            }),
            State::Watching(stream) => {
                let failure = if stream.is_open() {
                    ProbeFailure::NotLegacy(BridgeError::StreamClosed {
                        phase: SessionPhase::AwaitingEndpoint,
                        error: error.is_some(),
                    })
                } else {
                    ProbeFailure::Closed {
                        stage: ProbeStage::Stream,
                        error,
                    }
                };
                self.close_and_finish(ProbeResult::Inconclusive(failure));
            }
            // Not connected: nothing to lose.
            other @ (State::Connecting(_) | State::Done) => self.state = other,
        }
    }

    /// Concludes if `now` is past the deadline; returns whether the probe is
    /// over.
    fn expired(&mut self, now: Instant) -> bool {
        if now < self.deadline {
            return self.is_done();
        }
        let step = match std::mem::replace(&mut self.state, State::Done) {
            State::Done => return true,
            State::Connecting(next) => next.step(),
            State::Posting(_) => Step::Post,
            State::Watching(_) => Step::Stream,
            State::CleaningUp { status, .. } => Step::Cleanup { status },
        };
        let failure = self.timeout(step);
        self.close_and_finish(step.failed(failure));
        true
    }

    fn timeout(&self, step: Step) -> ProbeFailure {
        ProbeFailure::Timeout {
            stage: step.stage(),
            waited_ms: self.config.timeout.as_millis().min(u128::from(u64::MAX)) as u64,
        }
    }
}

/// Where a probe stands, for its failures.
#[derive(Debug, Clone, Copy)]
enum Step {
    Post,
    Stream,
    /// `status`: the POST's, the evidence for `Streamable` in hand.
    Cleanup {
        status: u16,
    },
}

impl Step {
    fn stage(self) -> ProbeStage {
        match self {
            Step::Post => ProbeStage::Post,
            Step::Stream => ProbeStage::Stream,
            Step::Cleanup { .. } => ProbeStage::Cleanup,
        }
    }

    /// The result of `failure` at this step: a failed cleanup keeps the
    /// verdict.
    fn failed(self, failure: ProbeFailure) -> ProbeResult {
        match self {
            Step::Post | Step::Stream => ProbeResult::Inconclusive(failure),
            Step::Cleanup { status } => ProbeResult::Streamable {
                status,
                cleanup: Cleanup::Failed(failure),
            },
        }
    }
}

impl Next {
    fn step(&self) -> Step {
        match self {
            Next::Post => Step::Post,
            Next::Stream => Step::Stream,
            Next::Cleanup { status, .. } => Step::Cleanup { status: *status },
        }
    }
}

fn phase_of(stream: &BackendStream) -> SessionPhase {
    if stream.is_open() {
        SessionPhase::AwaitingEndpoint
    } else {
        SessionPhase::Opening
    }
}

fn visible_ascii(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

/// The probe's `initialize` (`Connection: close`: nothing of it is reused).
fn post_request(authority: &str, target: &str) -> Result<Bytes, http1::WriteError> {
    let body = format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":\"sluice-probe\",\"method\":\"initialize\",\"params\":{{\
         \"protocolVersion\":\"2025-03-26\",\"capabilities\":{{}},\
         \"clientInfo\":{{\"name\":\"sluice-probe\",\"version\":\"{}\"}}}}}}",
        env!("CARGO_PKG_VERSION")
    );
    let fwd = [Header::new("Connection", "close")];
    backend::post_request(authority, target, &fwd, body.as_bytes())
}

/// The DELETE of the session a Streamable HTTP backend opened for the
/// probe, so it does not linger.
fn delete_request(
    authority: &str,
    target: &str,
    session_id: &str,
) -> Result<Bytes, http1::WriteError> {
    let fields = [
        Header::new("Host", authority),
        Header::new("Mcp-Session-Id", session_id),
        Header::new("Content-Length", "0"),
        Header::new("Connection", "close"),
    ];
    backend::request("DELETE", target, &fields, &[], b"")
}

/// The probe's GET.
fn stream_request(
    authority: &str,
    target: &str,
    fwd: &[Header],
) -> Result<Bytes, http1::WriteError> {
    let mut fwd = fwd.to_vec();
    fwd.push(Header::new("Connection", "close"));
    backend::stream_request(authority, target, &fwd)
}
