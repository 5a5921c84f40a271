//! One proxied HTTP exchange — a client request and the upstream's answer —
//! as a sans-IO state machine.
//!
//! # The loop
//!
//! The caller owns the sockets and the clock. It pushes what happened in
//! (`feed_client`, `upstream_connected`, `feed_upstream`, `upstream_closed`,
//! `client_closed`, `handle_timeout`; for a message upstream
//! `message_upstream_connected` and `feed_answer`) and after **every** input drains
//! [`Exchange::poll_output`] until it returns `None`, performing each
//! [`Output`] in the order given. Then it sleeps until the next socket event
//! or [`Exchange::poll_timeout`].
//!
//! ```
//! # use std::sync::Arc;
//! # use std::time::Instant;
//! # use sluice_core::exchange::{Exchange, ExchangeConfig, Output, ClientInfo};
//! # fn run(config: Arc<ExchangeConfig>, request: &[u8]) {
//! let now = Instant::now();
//! let mut exchange = Exchange::new(config, ClientInfo::default(), now);
//! exchange.feed_client(request, now);
//! while let Some(output) = exchange.poll_output() {
//!     match output {
//!         Output::Connect { route, fresh } => { /* open or borrow a connection */ }
//!         Output::ToUpstream(bytes) => { /* write to the upstream */ }
//!         Output::Dispatch(request) => { /* hand it to the message upstream; feed_answer its parts */ }
//!         Output::ProbeTransport(evidence) => { /* only after probe_transport: see the probe module */ }
//!         Output::ToClient(bytes) => { /* write to the client */ }
//!         Output::ReleaseUpstream { reusable } => { /* pool or close it */ }
//!         Output::Finished { close } => { /* exchange over */ }
//!         Output::RunHook(call) => { /* run the hook chain, then exchange.hook_done(verdict, now) */ }
//!         Output::Authenticate(call) => { /* judge call.token, then exchange.auth_done(verdict, now) */ }
//!         Output::AnswerServer { route, request } => { /* POST it to the route's upstream, on its own */ }
//!     }
//! }
//! # }
//! ```
//!
//! # Writing to the client
//!
//! The [`Output::ToClient`] bytes of one exchange are one HTTP response
//! (after a `100 Continue`, if the request asked for one), framing
//! included. Write each whole, in the order given, and nothing of the
//! driver's own in between: a byte added, dropped or moved corrupts the
//! framing the client reads. Writes may be buffered and gathered, but flush
//! them before waiting on anything (a socket, the connect, the timer): an
//! SSE event left in a buffer reaches the client late. Write nothing after
//! [`Output::Finished`]; on a kept-alive connection the next bytes belong
//! to the next exchange. When a client write fails, call
//! [`Exchange::client_closed`], write nothing more and end the connection
//! as an abort. [`Close`] says what each end requires of the socket.
//!
//! # Threads
//!
//! An `Exchange` is `Send` and holds no socket, so a work-stealing runtime
//! may move the task that drives it between threads. Its
//! [`ExchangeConfig`] is shared read-only through an `Arc` by every
//! connection of a listener.
//!
//! # What it decides
//!
//! - The request is read whole (head and body, within limits), checked
//!   (framing, `Host`/`Origin`, route) and forwarded with normalized framing:
//!   a `Content-Length`, never a chunked body, so the upstream cannot read
//!   the message boundaries differently from us (no smuggling).
//! - The response body is forwarded as it arrives, read by read. A chunked
//!   upstream body is decoded and re-chunked; nothing is buffered.
//! - Unhooked traffic is never parsed as JSON. The one exception is bookkeeping
//!   on a `POST` answered with SSE: the stream is run through the SSE parser
//!   (without holding anything back) to know whether the response to the
//!   client's request has gone out and whether the client is at an event
//!   boundary, so that a failure mid-stream can still be answered correctly
//!   (see [`crate::inject`]).

mod answer;
mod asked;
mod error;
mod hooks;
pub mod methods;
mod probe;
mod request;
mod response;
mod timers;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::auth::{AuthCall, Identity, Verdict};
use crate::guard::HostGuard;
use crate::http1;
use crate::inject::{self, Accepts, Answer, ClientFraming, Injection, Sent};
use crate::jsonrpc::{self, Classified};

/// The codes an exchange answers with, defined in [`jsonrpc::codes`].
use crate::jsonrpc::codes;
pub use crate::jsonrpc::codes::{HOOK_FAILED, UPSTREAM_FAILED, UPSTREAM_TIMEOUT};
use crate::route::Router;
use crate::sse::SseLimits;
use crate::upstream::{self, AnswerBody, AnswerPart};

pub use asked::AskedBook;
pub use error::{ClientError, ExchangeError, TimedOut, UpstreamError};
pub use hooks::{
    BATCH_REFUSED, HookCall, HookFilter, HookPhase, HookVerdict, ReplacementError,
    check_replacement, respell_id,
};
pub use probe::{PROBE_BODY_MAX, TransportEvidence};
pub use request::RpcSummary;
use response::{EventId, HeldFailure, StreamCall, Streaming};
use timers::{Timer, TimerTable};

/// Limits applied to one exchange.
#[derive(Debug, Clone)]
pub struct ExchangeLimits {
    /// Limits for the client's request head.
    pub request_head: http1::Limits,
    /// Limits for the upstream's response head and chunked framing.
    pub response_head: http1::Limits,
    /// The largest request body accepted (413 past it).
    pub max_request_body: usize,
    /// SSE limits for streams sluice has to parse.
    pub sse: SseLimits,
    /// JSON limits for request classification.
    pub json: jsonrpc::Limits,
    /// The largest JSON answer held whole for response hooks.
    pub max_hooked_response: usize,
    /// The most client bytes kept past the end of a request while its
    /// answer runs (pipelined data): past it, [`Exchange::client_read_budget`]
    /// is 0 and the driver stops reading the client until the exchange is
    /// over, so the kernel's buffers push back on the client.
    pub max_pipelined: usize,
}

impl Default for ExchangeLimits {
    fn default() -> Self {
        ExchangeLimits {
            request_head: http1::Limits::default(),
            response_head: http1::Limits::default(),
            max_request_body: 4 << 20,
            sse: SseLimits::default(),
            json: jsonrpc::Limits::default(),
            max_hooked_response: 16 << 20,
            max_pipelined: 64 << 10,
        }
    }
}

/// Timeouts; `None` disables one.
///
/// [`Timeouts::default`] turns every one off (tests, or a driver with timers
/// of its own); a proxy wants [`Timeouts::recommended`].
#[derive(Debug, Clone, Default)]
pub struct Timeouts {
    /// How long a connection may wait for the first byte of a request (an
    /// idle keep-alive connection is closed quietly after it).
    pub client_idle: Option<Duration>,
    /// From a request's first byte until it is read whole (slow-loris
    /// defence; 408 after it).
    pub client_request: Option<Duration>,
    /// Opening the upstream connection.
    pub connect: Option<Duration>,
    /// From sending the request until the response head arrives.
    pub response_head: Option<Duration>,
    /// Longest silence on a response body before the stream counts as dead.
    pub stream_idle: Option<Duration>,
    /// After this much silence on an SSE answer at an event boundary, write a
    /// `: keepalive` comment to the client.
    pub sse_keepalive: Option<Duration>,
}

impl Timeouts {
    /// The `sluice` binary's defaults, for a proxy in front of MCP servers:
    ///
    /// | field | value | why |
    /// |---|---|---|
    /// | `client_idle` | 60 s | an idle keep-alive connection holds a socket; clients reconnect |
    /// | `client_request` | 30 s | slow-loris defence; a real request arrives in far less |
    /// | `connect` | 10 s | TCP (and TLS) to the upstream; then the client gets a 504 |
    /// | `response_head` | 300 s | a tool call may work for minutes before it answers |
    /// | `stream_idle` | off | MCP streams are long-lived and may be quiet for hours |
    /// | `sse_keepalive` | off | comments change the stream; turn on (e.g. 15 s) behind a middlebox that cuts quiet connections |
    ///
    /// [`Timeouts::default`], by contrast, turns every timeout off.
    pub fn recommended() -> Self {
        Timeouts {
            client_idle: Some(Duration::from_secs(60)),
            client_request: Some(Duration::from_secs(30)),
            connect: Some(Duration::from_secs(10)),
            response_head: Some(Duration::from_secs(300)),
            stream_idle: None,
            sse_keepalive: None,
        }
    }
}

/// Configuration shared by every exchange of a listener.
#[derive(Debug, Clone)]
pub struct ExchangeConfig {
    /// Where requests go.
    pub router: Router,
    /// The DNS-rebinding defence.
    pub guard: HostGuard,
    /// Size limits.
    pub limits: ExchangeLimits,
    /// Timeouts.
    pub timeouts: Timeouts,
    /// Add `X-Forwarded-For`, `X-Forwarded-Proto` and `X-Forwarded-Host`.
    pub forwarded_headers: bool,
    /// Which methods the operator's hooks see.
    pub hooks: HookFilter,
}

/// How an upstream hears a request's trace context (see
/// [`Exchange::propagate_trace`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceCarrier {
    /// HTTP headers reach it (a Streamable HTTP upstream, a legacy
    /// route's bridge): the `traceparent` header, and
    /// `params._meta.traceparent` where the client put one.
    Headers,
    /// The message may be all that reaches it (a stdio child, a
    /// federation's stdio members): the header as well, and
    /// `_meta.traceparent` in every request, added where the client put
    /// none.
    Message,
}

/// Facts about the client connection that the exchange cannot see in bytes.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    /// The client's address, for `X-Forwarded-For` (empty: not added).
    pub peer_ip: String,
    /// The scheme the client used (`http` or `https`).
    pub https: bool,
}

/// How the client connection ends after an exchange: what the driver does
/// to the socket once every `ToClient` before [`Output::Finished`] is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Close {
    /// Keep the connection open and start the next [`Exchange`], fed first
    /// with [`Exchange::take_leftover`] (pipelined bytes already read).
    KeepAlive,
    /// The answer is complete: flush, half-close (`shutdown(Write)`, a FIN),
    /// then close. Where it can, the driver reads and discards the client's
    /// input for a moment before closing (a lingering close, RFC 9112
    /// §9.6): closing a socket with unread input makes the kernel send a
    /// reset, which can destroy the answer before the client has read it.
    Graceful,
    /// The answer is cut: close without a clean end, by a reset where the
    /// socket API allows it (`SO_LINGER` 0, tokio's `set_zero_linger`). A
    /// FIN alone still shows a chunked or `Content-Length` body as cut, but
    /// an HTTP/1.0 client's body ends with the connection, and to it only a
    /// reset says the answer is incomplete.
    Abort,
}

/// Something the caller must do, in order.
#[must_use]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Open a connection to the upstream of route `route`, or take an idle
    /// one from the driver's pool for that route. Answer with
    /// [`Exchange::upstream_connected`] (`reused` when it came from the
    /// pool), [`Exchange::upstream_closed`]`(`[`UpstreamEnd::ConnectFailed`]`)`
    /// (the client gets a 502), or [`Exchange::handle_timeout`] once
    /// [`Exchange::poll_timeout`] passes: while connecting it is the
    /// [`Timeouts::connect`] deadline (the client gets a 504).
    ///
    /// The exchange knows routes only by index and `Host` header: the driver
    /// keeps the table from route index to address and TLS settings.
    ///
    /// A pooled connection must be checked before it is reused, e.g. with a
    /// non-blocking `peek` (EOF, an error or unasked-for bytes: drop it). The
    /// upstream may have closed it while it sat idle, and a request written
    /// into a closed connection usually *succeeds* as a write: the failure
    /// shows only as an EOF or reset on the read, when the upstream may have
    /// acted on the request. When a reused connection ends before any byte
    /// of an answer, the exchange asks once for a fresh one (`fresh: true`)
    /// only if the upstream cannot have acted on the request (the write
    /// failed: [`UpstreamEnd::WriteFailed`]) or acting twice is harmless (an
    /// idempotent method); a POST that went out whole gets a 502 instead,
    /// because sending it again could run a tool twice.
    Connect {
        /// Index into the router's routes.
        route: usize,
        /// Do not take a pooled connection: the retry after a reused one
        /// died before answering.
        fresh: bool,
    },
    /// Write these bytes to the upstream: the whole request, after
    /// `Connect`. If the write fails, report
    /// [`UpstreamEnd::WriteFailed`]; the exchange decides about a re-send.
    ToUpstream(Bytes),
    /// Hand this request to the message upstream, after `Connect` was
    /// answered with [`Exchange::message_upstream_connected`]; feed its
    /// answer back with [`Exchange::feed_answer`]. See [`crate::upstream`].
    Dispatch(Box<upstream::Request>),
    /// The driver asked for [`Exchange::probe_transport`] and the upstream
    /// answered: what the answer says about the route's transport, for
    /// `legacy::Probe::after_answer`. When [`TransportEvidence::held`],
    /// nothing moves until [`Exchange::transport_probed`] (do not feed the
    /// upstream meanwhile; its answer is held whole or in part). See the
    /// transport probe's module docs (`exchange/probe.rs`).
    ProbeTransport(Box<TransportEvidence>),
    /// Write these bytes to the client, whole, after those of the previous
    /// `ToClient` and before those of the next. See [writing to the
    /// client](self#writing-to-the-client).
    ToClient(Bytes),
    /// Run the hook chain on a message and answer with
    /// [`Exchange::hook_done`]. Nothing else happens until then.
    RunHook(Box<HookCall>),
    /// The request is for a protected route (see [`crate::auth`]): judge
    /// its bearer token and answer with [`Exchange::auth_done`]. Nothing
    /// else happens until then: no hook has run and nothing went upstream.
    /// The exchange sets no deadline meanwhile; the driver bounds the
    /// judging (a key fetch) itself.
    Authenticate(Box<AuthCall>),
    /// A server-message hook stopped a server request: send the upstream of
    /// route `route` this request (a POST carrying the hook's answer, on the
    /// client's session, with the fields this exchange's request went with)
    /// as the client would have, on a connection of its own (never this
    /// exchange's, which is streaming). Its answer (a 202) concerns nobody:
    /// read and drop it. Nothing in the exchange waits for it.
    AnswerServer {
        /// Index into the router's routes.
        route: usize,
        /// The POST, as a message upstream takes it; render it with
        /// [`upstream::Request::render`] for an HTTP upstream.
        request: Box<upstream::Request>,
    },
    /// The upstream connection is no longer needed: return it to the pool
    /// when `reusable`, else close it.
    ReleaseUpstream {
        /// The connection is at a clean message boundary.
        reusable: bool,
    },
    /// The exchange is over; how the client connection continues. Bytes the
    /// client sent past this request are in [`Exchange::take_leftover`].
    Finished {
        /// Keep-alive, graceful close or abort.
        close: Close,
    },
}

/// Why an upstream connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamEnd {
    /// Connecting failed (refused, unreachable, TLS handshake).
    ConnectFailed,
    /// A clean end of stream (FIN).
    Eof,
    /// A read error (reset, TLS alert), or a write error after the request
    /// went out whole.
    Error,
    /// Writing the request failed before all of it went out (broken pipe,
    /// reset): the upstream cannot have read a whole request, so it cannot
    /// have acted on it.
    WriteFailed,
}

/// How the exchange ended, for the access log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Still running.
    Pending,
    /// The upstream's answer went through whole.
    Complete,
    /// sluice answered (a local error or an injected JSON-RPC error).
    Answered,
    /// The client connection was aborted mid-answer.
    Aborted,
    /// The client went away first.
    ClientGone,
}

/// What the access log line reports about an exchange.
#[derive(Debug, Clone)]
pub struct Summary {
    /// HTTP method.
    pub http_method: String,
    /// The request target as the client sent it.
    pub target: String,
    /// JSON-RPC facts about a POST body, when it classified.
    pub rpc: Option<RpcSummary>,
    /// The route used.
    pub route: Option<usize>,
    /// The status the client got.
    pub status: Option<u16>,
    /// How it ended.
    pub outcome: Outcome,
    /// Why sluice answered or aborted, if it did.
    pub reason: Option<String>,
    /// The failure behind `reason`, typed: whose fault, which status and
    /// code (`None` when all went well, or a hook answered).
    pub error: Option<ExchangeError>,
    /// When the exchange started.
    pub started: Instant,
    /// When the request was read whole.
    pub request_done: Option<Instant>,
    /// When the upstream's response head arrived.
    pub response_head: Option<Instant>,
    /// When the exchange finished.
    pub finished: Option<Instant>,
    /// Response body bytes written to the client after the head, chunk
    /// framing, keep-alives and injected errors included.
    pub body_bytes: u64,
    /// The upstream connection was reused from the pool.
    pub reused: bool,
    /// The answer streams to the client as `text/event-stream`: set with
    /// the head, so a driver polling it sees the stream open.
    pub event_stream: bool,
    /// On a protected route, the caller, once its credentials passed.
    pub identity: Option<Arc<Identity>>,
    /// Keep-alive comments written to the client on a quiet SSE answer.
    pub keepalives: u64,
    /// Events of the upstream's SSE answer forwarded to the client (not
    /// keep-alives, nor the errors sluice writes in place of an answer),
    /// set when the exchange ends.
    pub sse_events: u64,
}

/// Hook runs on the request body, one per hooked message.
struct RequestHooks {
    calls: Vec<hooks::Hooked>,
    next: usize,
    /// (batch element or `None`, replacement message).
    replaced: Vec<(Option<usize>, Vec<u8>)>,
    /// (request id, the hook's answer) for messages a hook stopped. For a
    /// notification (no id) the answer is the refusal (a JSON-RPC error with
    /// a null id), or empty when a hook answered it, which consumes it.
    stopped: Vec<(Option<Vec<u8>>, Vec<u8>)>,
}

enum State {
    /// Reading the request head and body.
    Request(Box<request::Intake>),
    /// Waiting for the driver's verdict on the request's token.
    Authenticating,
    /// Waiting for request hooks.
    HookingRequest(RequestHooks),
    /// Waiting for [`Exchange::upstream_connected`].
    Connecting(Attempt),
    /// The request went upstream; reading the response head.
    AwaitingHead(AwaitingHead),
    /// A refusal held for the transport probe.
    HeldRefusal(Box<probe::HeldRefusal>),
    /// Forwarding the response body.
    Streaming(Box<Streaming>),
    /// Over.
    Done,
}

/// One try at the upstream: what the re-send rule and the transport probe
/// go by.
#[derive(Debug, Clone, Copy, Default)]
struct Attempt {
    /// The connection came from the pool.
    reused: bool,
    /// No re-send after this one: it is the re-send, or its upstream
    /// speaks in messages.
    retried: bool,
    /// The route's transport is in doubt: see [`Exchange::probe_transport`].
    probing: bool,
}

/// The request went upstream; its answer's head is read.
struct AwaitingHead {
    attempt: Attempt,
    /// Head bytes read so far, when the head spans reads.
    buf: Vec<u8>,
    scanner: http1::HeadScanner,
    /// Any byte of an answer arrived (a `1xx` included).
    spoke: bool,
}

impl AwaitingHead {
    fn new(attempt: Attempt) -> Self {
        AwaitingHead {
            attempt,
            buf: Vec::new(),
            scanner: http1::HeadScanner::new(),
            spoke: false,
        }
    }
}

/// One proxied exchange. See the [module docs](self) for the loop.
pub struct Exchange {
    config: Arc<ExchangeConfig>,
    client: ClientInfo,
    state: State,
    outputs: std::collections::VecDeque<Output>,
    /// Client bytes past the end of this request.
    leftover: Vec<u8>,
    /// The request, once read.
    req: Option<request::Forward>,
    /// Every deadline, each with one meaning.
    timers: TimerTable,
    /// The requests owed answers that some response hook judges, from the
    /// body as forwarded; moved into the stream when the answer arrives.
    ledger: Option<answer::Ledger>,
    /// Which upstream speaks now: an HTTP connection's bytes
    /// ([`Exchange::feed_upstream`]) or a message upstream's parts
    /// ([`Exchange::feed_answer`]). Input of the other kind is a driver
    /// out of step and is dropped: a part written into an HTTP answer's
    /// body (or bytes into a typed one) would break the client's framing.
    leg: Leg,
    summary: Summary,
}

/// The kind of upstream the current attempt went to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Leg {
    /// No attempt yet.
    None,
    /// An HTTP connection ([`Exchange::upstream_connected`]).
    Http,
    /// A message upstream ([`Exchange::message_upstream_connected`]).
    Message,
}

impl Exchange {
    /// A new exchange waiting for a request.
    pub fn new(config: Arc<ExchangeConfig>, client: ClientInfo, now: Instant) -> Self {
        let mut timers = TimerTable::default();
        timers.set(Timer::Idle, config.timeouts.client_idle.map(|t| now + t));
        Exchange {
            config,
            client,
            state: State::Request(Box::default()),
            // Room for a whole exchange's outputs without growing.
            outputs: std::collections::VecDeque::with_capacity(8),
            leftover: Vec::new(),
            leg: Leg::None,
            req: None,
            timers,
            ledger: None,
            summary: Summary {
                http_method: String::new(),
                target: String::new(),
                rpc: None,
                route: None,
                status: None,
                outcome: Outcome::Pending,
                reason: None,
                error: None,
                started: now,
                request_done: None,
                response_head: None,
                finished: None,
                body_bytes: 0,
                reused: false,
                event_stream: false,
                identity: None,
                keepalives: 0,
                sse_events: 0,
            },
        }
    }

    /// The next thing to do, in order. Drain after every input.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When [`Exchange::handle_timeout`] must be called, if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Done => None,
            _ => self.timers.next(),
        }
    }

    /// The exchange is over (its `Finished` output was emitted).
    pub fn is_finished(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// Whether the request has been read whole (client bytes fed after that
    /// belong to the next request and are kept in the leftover).
    pub fn request_complete(&self) -> bool {
        !matches!(self.state, State::Request(_))
    }

    /// What the access log reports.
    pub fn summary(&self) -> &Summary {
        &self.summary
    }

    /// The request's `Mcp-Session-Id` as the client sent it, once its head
    /// was read and routed. Kept out of [`Summary`]: it is a credential on
    /// some servers, and whoever logs it should hash it first.
    pub fn session_id(&self) -> Option<&str> {
        self.req.as_ref()?.session_id.as_deref()
    }

    /// The request's `MCP-Protocol-Version` as the client sent it, once
    /// its head was read and routed.
    pub fn protocol_version(&self) -> Option<&str> {
        self.req.as_ref()?.protocol_version.as_deref()
    }

    /// The client spoke HTTP/1.0 (else 1.1), once its request was read.
    pub fn client_http10(&self) -> bool {
        self.req.as_ref().is_some_and(|r| r.client_http10)
    }

    /// The client's W3C trace context, once the request was read whole:
    /// its `traceparent` and, with it, its `tracestate`. Two carriers,
    /// read strictly alike (see [`crate::tracecontext`]):
    ///
    /// 1. `params._meta.traceparent` of a single JSON-RPC message (SEP-414,
    ///    and OpenTelemetry's MCP conventions: the MCP client
    ///    instrumentation's own context), with `params._meta.tracestate`,
    ///    when it is a valid value;
    /// 2. else the HTTP `traceparent` header (exactly one valid field
    ///    line), with the `tracestate` lines.
    ///
    /// A hook's replacement of the body does not change what the client
    /// sent. Only a tracing driver calls this: with tracing off nothing of
    /// it is parsed.
    pub fn trace_context(
        &self,
    ) -> Option<(
        crate::tracecontext::TraceParent,
        Option<std::borrow::Cow<'_, str>>,
    )> {
        let req = self.req.as_ref()?;
        if let Some(from_meta) = req.meta.client(&req.body) {
            return Some(from_meta);
        }
        Some((
            req.traceparent?,
            req.tracestate.as_deref().map(std::borrow::Cow::Borrowed),
        ))
    }

    /// Send `parent` upstream as the request's trace context, in place of
    /// the client's (the driver's span is the upstream's parent):
    ///
    /// - as the `traceparent` header; the `tracestate` header is the
    ///   client's when its header's context is the one continued, the
    ///   `_meta.tracestate` when `_meta`'s is, else none (the client's
    ///   belonged to no trace that continues);
    /// - as `params._meta.traceparent` of a single JSON-RPC message whose
    ///   `_meta` holds one (whatever its value), the value replaced and
    ///   every other byte of the message kept (`tracestate` with it);
    /// - with [`TraceCarrier::Message`] (an upstream that may hear no
    ///   headers: a stdio child), also added to a request that has none,
    ///   creating `_meta` (and `params`) where missing. A message whose
    ///   `params` is an array or whose `_meta` is not an object, and a
    ///   batch, go as written.
    ///
    /// Call it before answering [`Output::Connect`] (the request is
    /// written or dispatched then), again for each attempt. The body is
    /// written once, with the request; after a hook replaced it, it is
    /// classified again here to find the place (tracing on only).
    pub fn propagate_trace(
        &mut self,
        parent: &crate::tracecontext::TraceParent,
        carrier: TraceCarrier,
    ) {
        let Some(req) = self.req.as_mut() else { return };
        // The context continued from `_meta` brings its own `tracestate`
        // to the header too: the header's belongs to another trace.
        let meta_state = req
            .meta
            .client(&req.body)
            .map(|(_, state)| state.map(std::borrow::Cow::into_owned));
        let keep_state = req.traceparent.is_some() && meta_state.is_none();
        req.headers
            .retain(|h| !h.is("traceparent") && (keep_state || !h.is("tracestate")));
        req.headers
            .push(http1::Header::new("traceparent", parent.write()));
        if let Some(Some(state)) = meta_state {
            req.headers.push(http1::Header::new("tracestate", state));
        }
        if req.method != "POST" {
            return;
        }
        let insert = carrier == TraceCarrier::Message;
        let mut spans = if req.meta.replaced {
            request::classify(&req.body, &self.config).1
        } else {
            req.meta.spans.clone()
        };
        // Where ours is written, the body's `tracestate` goes with a
        // `traceparent` that is not valid, as the header's does: ours
        // starts or continues another trace.
        let stale = spans
            .as_ref()
            .filter(|s| s.slot(&req.body, insert).is_some())
            .and_then(|s| s.stale_tracestate(&req.body));
        if let Some(body) = stale.and_then(|state| jsonrpc::meta::without_member(&req.body, state))
        {
            req.body = body;
            spans = request::classify(&req.body, &self.config).1;
            if !req.meta.replaced {
                req.meta.spans.clone_from(&spans);
            }
        }
        let slot = spans.and_then(|s| s.slot(&req.body, insert));
        req.meta.out = slot.map(|slot| (slot, parent.write()));
    }

    /// Client bytes received past this request (pipelined requests).
    pub fn take_leftover(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.leftover)
    }

    /// How many client bytes [`Exchange::feed_client`] takes now. While the
    /// request is read this is what its limits allow; once it is whole,
    /// bytes past it (pipelined data) are kept only up to
    /// [`ExchangeLimits::max_pipelined`]. At 0 the driver must stop reading
    /// the client until the exchange is over (it then carries the leftover
    /// into the next exchange): the client's bytes wait in the kernel, and
    /// its writes block. A driver that feeds more anyway has the excess
    /// kept (nothing is dropped), so respecting the budget is what bounds
    /// memory.
    pub fn client_read_budget(&self) -> usize {
        match &self.state {
            State::Request(_) => usize::MAX,
            State::Done => 0,
            _ => self
                .config
                .limits
                .max_pipelined
                .saturating_sub(self.leftover.len()),
        }
    }

    /// Bytes from the client; at most [`Exchange::client_read_budget`].
    pub fn feed_client(&mut self, input: &[u8], now: Instant) {
        match &mut self.state {
            State::Request(intake) => {
                if intake.is_idle() && !input.is_empty() {
                    self.timers.stop(Timer::Idle);
                    let at = self.config.timeouts.client_request.map(|t| now + t);
                    self.timers.set(Timer::Request, at);
                }
                let step = intake.feed(input, &self.config, &self.client, &mut self.leftover);
                self.after_intake(step, now);
            }
            // Pipelined bytes wait for the next exchange.
            _ => self.leftover.extend_from_slice(input),
        }
    }

    /// The proxy is shutting down. An exchange waiting for a request's
    /// first byte ends quietly; one whose request is still arriving is
    /// answered 503 and closed (nothing went upstream: the client may send
    /// it again elsewhere); one under way finishes, then closes the
    /// connection instead of keeping it alive. Call it once; the driver's
    /// grace period bounds how long the rest may take.
    pub fn shutdown(&mut self, now: Instant) {
        match &self.state {
            State::Done => {}
            State::Request(intake) if intake.is_idle() => {
                self.summary.outcome = Outcome::ClientGone;
                self.finish(Close::Graceful, now);
            }
            State::Request(_) => self.refuse(ExchangeError::ShuttingDown, None, now),
            _ => {
                if let Some(req) = self.req.as_mut() {
                    req.client_keep_alive = false;
                }
            }
        }
    }

    /// The client closed its side or its connection failed.
    pub fn client_closed(&mut self, now: Instant) {
        match self.state {
            State::Done => {}
            State::Request(_)
            | State::Authenticating
            | State::HookingRequest(_)
            | State::Connecting(_)
            | State::AwaitingHead(_)
            | State::HeldRefusal(_)
            | State::Streaming(_) => {
                if !matches!(
                    self.state,
                    State::Request(_) | State::Authenticating | State::HookingRequest(_)
                ) {
                    self.outputs
                        .push_back(Output::ReleaseUpstream { reusable: false });
                }
                self.summary.outcome = Outcome::ClientGone;
                self.finish(Close::Abort, now);
            }
        }
    }

    /// The upstream connection asked for by `Connect` is ready.
    pub fn upstream_connected(&mut self, reused: bool, now: Instant) {
        let State::Connecting(attempt) = self.state else {
            return;
        };
        self.summary.reused = reused;
        self.leg = Leg::Http;
        let bytes = self
            .req
            .as_ref()
            .map(request::Forward::render)
            .unwrap_or_default();
        self.outputs.push_back(Output::ToUpstream(bytes));
        self.state = State::AwaitingHead(AwaitingHead::new(Attempt { reused, ..attempt }));
        self.timers.stop(Timer::Connect);
        let at = self.config.timeouts.response_head.map(|t| now + t);
        self.timers.set(Timer::Head, at);
    }

    /// The upstream asked for by `Connect` speaks in messages (see
    /// [`crate::upstream`]): the request goes to it as an
    /// [`Output::Dispatch`], and its answer comes back through
    /// [`Exchange::feed_answer`]. It is never pooled and never retried.
    pub fn message_upstream_connected(&mut self, now: Instant) {
        if !matches!(self.state, State::Connecting(_)) {
            return;
        }
        let Some(req) = self.req.as_mut() else { return };
        // Handed over, not copied: a message upstream's request is never
        // rendered again (no re-send, no probe after this).
        // Kept when a hook may answer a server request for the client:
        // that POST goes with the same fields.
        let headers = if self.config.hooks.reads_server_streams() {
            req.headers.clone()
        } else {
            std::mem::take(&mut req.headers)
        };
        let request = upstream::Request {
            method: req.method.clone(),
            target: req.upstream_target.clone(),
            headers,
            body: Bytes::from(match &req.meta.out {
                Some(_) => {
                    let mut body = Vec::with_capacity(req.meta.rendered_len(&req.body));
                    req.meta.render(&req.body, &mut body);
                    body
                }
                None => std::mem::take(&mut req.body),
            }),
        };
        self.outputs.push_back(Output::Dispatch(Box::new(request)));
        self.leg = Leg::Message;
        // Never re-sent, never probed: its answer comes typed.
        let attempt = Attempt {
            reused: false,
            retried: true,
            probing: false,
        };
        self.state = State::AwaitingHead(AwaitingHead::new(attempt));
        self.timers.stop(Timer::Connect);
        let at = self.config.timeouts.response_head.map(|t| now + t);
        self.timers.set(Timer::Head, at);
    }

    /// The next part of a message upstream's answer, in the order the
    /// upstream gave them. A part out of order (an event before a head, a
    /// second head) fails the exchange like malformed upstream bytes; a part
    /// while the attempt is an HTTP connection's is dropped.
    pub fn feed_answer(&mut self, part: AnswerPart, now: Instant) {
        if self.leg != Leg::Message {
            return;
        }
        if let State::AwaitingHead(h) = &mut self.state {
            h.spoke = true;
        }
        match (&self.state, part) {
            (State::AwaitingHead(_), AnswerPart::Whole { head, body }) => {
                self.typed_head(&head, AnswerBody::Json(body.len()), body, now);
            }
            (State::AwaitingHead(_), AnswerPart::Stream(head)) => {
                self.typed_head(&head, AnswerBody::Sse, Bytes::new(), now);
            }
            (State::Streaming(_), AnswerPart::Event(data)) => self.stream_message(&data, None, now),
            (State::Streaming(_), AnswerPart::IdentifiedEvent { id, data }) => {
                self.stream_message(&data, Some(EventId::Seq(id)), now)
            }
            (State::Streaming(_), AnswerPart::NamedEvent { id, data }) => {
                self.stream_message(&data, Some(EventId::Text(&id)), now)
            }
            (State::Streaming(_), AnswerPart::Prime(id)) => self.stream_prime(id, now),
            (State::Streaming(_), AnswerPart::End) => self.upstream_closed(UpstreamEnd::Eof, now),
            (State::AwaitingHead(_) | State::Streaming(_), _) => {
                self.fail(UpstreamError::OutOfOrder, now);
            }
            // Late parts of an exchange that is over, or never asked.
            _ => {}
        }
    }

    /// The upstream connection ended (or never opened).
    pub fn upstream_closed(&mut self, end: UpstreamEnd, now: Instant) {
        match &mut self.state {
            State::Request(_) | State::Authenticating | State::HookingRequest(_) | State::Done => {}
            State::Connecting(_) => {
                self.fail(UpstreamError::ConnectFailed, now);
            }
            State::HeldRefusal(_) => self.held_upstream_closed(end),
            State::AwaitingHead(h) => {
                // A pooled connection the upstream had already closed: send
                // the request again on a fresh one, once — but only when the
                // upstream cannot have acted on it (it never got it whole),
                // or acting twice is harmless (an idempotent method). A
                // `tools/call` POST that went out is never sent twice.
                let resendable = end == UpstreamEnd::WriteFailed
                    || self.req.as_ref().is_some_and(|r| idempotent(&r.method));
                let a = h.attempt;
                if a.reused && !h.spoke && !a.retried && resendable {
                    self.outputs
                        .push_back(Output::ReleaseUpstream { reusable: false });
                    let route = self.summary.route.unwrap_or(0);
                    self.outputs
                        .push_back(Output::Connect { route, fresh: true });
                    self.state = State::Connecting(Attempt {
                        reused: false,
                        retried: true,
                        probing: a.probing,
                    });
                    self.timers.stop(Timer::Head);
                    let at = self.config.timeouts.connect.map(|t| now + t);
                    self.timers.set(Timer::Connect, at);
                    return;
                }
                let error = match end {
                    UpstreamEnd::Eof => UpstreamError::ClosedBeforeAnswer,
                    _ => UpstreamError::FailedBeforeAnswer,
                };
                self.fail(error, now);
            }
            State::Streaming(stream) => {
                let clean_eof =
                    end == UpstreamEnd::Eof && stream.ends_at_eof() && stream.eof_ends_answer();
                if clean_eof && stream.awaiting_hooks() {
                    // The body is whole; the held answer goes out after the verdict.
                    stream.mark_upstream_done();
                    self.outputs
                        .push_back(Output::ReleaseUpstream { reusable: false });
                } else if clean_eof {
                    let out = stream.finish_clean();
                    self.emit_client(out);
                    self.summary.outcome = Outcome::Complete;
                    self.outputs
                        .push_back(Output::ReleaseUpstream { reusable: false });
                    let close = self.client_close_after();
                    self.finish(close, now);
                } else if end == UpstreamEnd::Eof && stream.ends_at_eof() {
                    self.fail(UpstreamError::ClosedMidAnswer, now);
                } else {
                    self.fail(UpstreamError::FailedMidAnswer, now);
                }
            }
        }
    }

    /// Bytes from the upstream.
    pub fn feed_upstream(&mut self, input: Bytes, now: Instant) {
        if input.is_empty() || self.leg != Leg::Http {
            return;
        }
        match self.state {
            State::AwaitingHead(_) => self.read_response_head(input, now),
            State::HeldRefusal(_) => self.feed_held(&input, now),
            State::Streaming(_) => self.stream_body(input, now),
            // Bytes before the request went out, or after the end: the
            // upstream is out of step; drop the connection.
            State::Request(_)
            | State::Authenticating
            | State::HookingRequest(_)
            | State::Connecting(_)
            | State::Done => {}
        }
    }

    /// A timer set by [`Exchange::poll_timeout`] fired (or time passed).
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(timer) = self.timers.take_expired(now) {
            if matches!(self.state, State::Done) {
                return;
            }
            match timer {
                Timer::Idle => {
                    // An idle keep-alive connection: close quietly.
                    self.summary.outcome = Outcome::ClientGone;
                    self.finish(Close::Graceful, now);
                }
                Timer::Request => self.refuse(TimedOut::Request.into(), None, now),
                Timer::Connect => self.fail(TimedOut::Connect, now),
                Timer::Head => self.fail(TimedOut::ResponseHead, now),
                // A held refusal whose body stalls is judged on what came.
                Timer::StreamIdle if matches!(self.state, State::HeldRefusal(_)) => {
                    self.ask_driver()
                }
                Timer::StreamIdle => self.fail(TimedOut::StreamIdle, now),
                Timer::Keepalive => {
                    if let State::Streaming(stream) = &mut self.state
                        && let Some(bytes) = stream.keepalive_due(now)
                    {
                        self.summary.keepalives += 1;
                        self.emit_client(bytes);
                    }
                    self.arm_stream_timers(now);
                }
            }
        }
    }

    fn after_intake(&mut self, step: request::Step, now: Instant) {
        match step {
            request::Step::NeedMore => {}
            request::Step::Continue100 => {
                self.outputs.push_back(Output::ToClient(Bytes::from_static(
                    b"HTTP/1.1 100 Continue\r\n\r\n",
                )));
            }
            request::Step::Reject {
                status,
                code,
                message,
                allow,
                challenge,
            } => {
                let error = ClientError {
                    status,
                    code,
                    message,
                };
                match challenge {
                    Some(challenge) => self.refuse_challenged(error, &challenge, now),
                    None => self.refuse(ExchangeError::Client(error), allow, now),
                }
            }
            request::Step::Document(answer) => self.serve_document(answer, now),
            request::Step::Ready(mut forward) => {
                self.timers.stop(Timer::Request);
                self.note_request_line();
                self.summary.rpc = forward.rpc.clone();
                self.summary.route = Some(forward.route);
                self.summary.request_done = Some(now);
                let token = forward.token.take();
                let route = forward.route;
                self.req = Some(*forward);
                match token {
                    Some(token) => {
                        self.state = State::Authenticating;
                        self.outputs
                            .push_back(Output::Authenticate(Box::new(AuthCall { route, token })));
                    }
                    None => self.admit(now),
                }
            }
        }
    }

    /// The driver's verdict on the token asked for by `Authenticate`.
    pub fn auth_done(&mut self, verdict: Verdict, now: Instant) {
        if !matches!(self.state, State::Authenticating) {
            return;
        }
        let gate = self
            .req
            .as_ref()
            .and_then(|r| self.config.router.gate(r.route));
        let metadata = gate.map(|g| g.resource_metadata().to_string());
        match verdict {
            Verdict::Allow(identity) => {
                self.summary.identity = Some(Arc::new(identity));
                self.admit(now);
            }
            Verdict::AllowWith(identity, token) => {
                self.summary.identity = Some(Arc::new(identity));
                if let Some(req) = self.req.as_mut() {
                    // The upstream's own token, in place of any other.
                    req.headers.retain(|h| !h.is("authorization"));
                    let at = req.headers.len().min(1);
                    let value = format!("Bearer {}", token.0);
                    req.headers
                        .insert(at, http1::Header::new("Authorization", value));
                }
                self.admit(now);
            }
            Verdict::Deny(denial) => {
                let answer = denial.answer(metadata.as_deref());
                let error = ClientError {
                    status: answer.status,
                    code: codes::INVALID_REQUEST,
                    message: answer.message.to_string(),
                };
                self.refuse_challenged(error, &answer.challenge, now);
            }
            Verdict::Unavailable(outage) => {
                let error = ClientError {
                    status: outage.status(),
                    code: codes::INTERNAL_ERROR,
                    message: outage.message().to_string(),
                };
                self.refuse(ExchangeError::Client(error), None, now);
            }
        }
    }

    /// The caller, on a protected route whose credentials passed.
    pub fn identity(&self) -> Option<&Arc<Identity>> {
        self.summary.identity.as_ref()
    }

    /// A metadata document (or its preflight), served by sluice itself.
    fn serve_document(&mut self, answer: Bytes, now: Instant) {
        self.timers.stop(Timer::Request);
        self.note_request_line();
        let answer = if self.summary.http_method == "HEAD" {
            Bytes::from(head_only(answer.to_vec()))
        } else {
            answer
        };
        self.summary.status = Some(if answer.starts_with(b"HTTP/1.1 204") {
            204
        } else {
            200
        });
        self.summary.outcome = Outcome::Answered;
        self.outputs.push_back(Output::ToClient(answer));
        self.finish(Close::Graceful, now);
    }

    /// The request passed every check (and its credentials, on a protected
    /// route): the request hooks, then the upstream.
    fn admit(&mut self, now: Instant) {
        let Some(forward) = self.req.as_ref() else {
            return;
        };
        let calls = if forward.method == "POST" {
            hooks::hooked_messages(
                &forward.body,
                &self.config.hooks,
                &self.config.limits.json,
                (forward.route, forward.session_id.as_deref()),
                now,
            )
        } else {
            Ok(Vec::new())
        };
        let calls = match calls {
            Ok(calls) => calls,
            Err(e) => {
                // What the hooks cannot read must not reach an
                // upstream whose parser may read it differently.
                let message = format!("sluice: message refused, hooks cannot read it: {e}");
                let id = match e {
                    jsonrpc::ClassifyError::MissingName => {
                        jsonrpc::refused_request_id(&forward.body, &self.config.limits.json)
                    }
                    _ => None,
                };
                let bytes = inject::http_error_for(id.as_deref(), 400, e.code(), &message, true);
                let error = ClientError {
                    status: 400,
                    code: e.code(),
                    message,
                };
                self.answer_locally(ExchangeError::Client(error), bytes, now);
                return;
            }
        };
        // Answers to server requests never forwarded here: no hook can
        // judge them, so the server gets an error in their place.
        let (unseen, calls): (Vec<_>, Vec<_>) = calls.into_iter().partition(|c| c.unseen);
        let replaced: Vec<_> = unseen
            .iter()
            .map(|c| {
                let message = "sluice: this answers a server request this proxy did not forward; \
                               the client-answer hooks cannot judge it";
                let error = jsonrpc::error_message(
                    c.id.as_deref(),
                    jsonrpc::codes::HOOK_FAILED,
                    message,
                    None,
                );
                (c.element, error)
            })
            .collect();
        let hooks = RequestHooks {
            calls,
            next: 0,
            replaced,
            stopped: Vec::new(),
        };
        if !hooks.calls.is_empty() {
            self.state = State::HookingRequest(hooks);
            self.next_request_hook();
        } else if !hooks.replaced.is_empty() {
            self.finish_request_hooks(hooks, now);
        } else {
            self.connect(now);
        }
    }

    fn connect(&mut self, now: Instant) {
        self.ledger = self.req.as_mut().and_then(|req| {
            let filter = &self.config.hooks;
            // A POST's answer carries its responses and server messages, a
            // GET's stream server messages only.
            if !matches!(req.method.as_str(), "POST" | "GET") || !filter.is_active() {
                return None;
            }
            // One request whose answer no hook reads: nothing to hold, and
            // no second parse of the body (a hook's replacement keeps the
            // method).
            let unread = req.rpc.as_ref().is_some_and(|rpc| {
                !rpc.batch
                    && rpc
                        .method
                        .as_deref()
                        .is_some_and(|m| !filter.wants_response(m))
            });
            if unread && !filter.reads_server_streams() {
                return None;
            }
            let body: &[u8] = if req.method == "POST" { &req.body } else { &[] };
            let asked_in = (req.route, req.session_id.clone());
            let ledger =
                answer::Ledger::for_answer(body, filter, self.config.limits.json, asked_in)?;
            // The hooks must read the answer: ask for it unencoded.
            req.headers
                .retain(|h| !h.name.eq_ignore_ascii_case("accept-encoding"));
            req.headers
                .push(http1::Header::new("Accept-Encoding", "identity"));
            Some(ledger)
        });
        let route = self.req.as_ref().map_or(0, |r| r.route);
        self.state = State::Connecting(Attempt::default());
        let at = self.config.timeouts.connect.map(|t| now + t);
        self.timers.set(Timer::Connect, at);
        self.outputs.push_back(Output::Connect {
            route,
            fresh: false,
        });
    }

    fn hook_call(
        &self,
        phase: HookPhase,
        method: String,
        request: Arc<str>,
        response: Option<Arc<str>>,
    ) -> HookCall {
        let req = self.req.as_ref();
        HookCall {
            phase,
            method,
            request,
            response,
            session_id: req.and_then(|r| r.session_id.clone()),
            protocol_version: req.and_then(|r| r.protocol_version.clone()),
            route: req.map_or(0, |r| r.route),
            headers: req.map(|r| r.hook_headers.clone()).unwrap_or_default(),
        }
    }

    fn next_request_hook(&mut self) {
        let State::HookingRequest(h) = &self.state else {
            return;
        };
        let Some(call) = h.calls.get(h.next) else {
            return;
        };
        let call = match &call.answers {
            // The client's answer to a server request: the hooks see both.
            Some(asked) => self.hook_call(
                HookPhase::ClientAnswer,
                call.method.clone(),
                asked.request.clone(),
                Some(call.message.clone()),
            ),
            None => self.hook_call(
                HookPhase::Request,
                call.method.clone(),
                call.message.clone(),
                None,
            ),
        };
        self.outputs.push_back(Output::RunHook(Box::new(call)));
    }

    /// The verdict of the hook chain asked for by the last `RunHook`.
    pub fn hook_done(&mut self, verdict: HookVerdict, now: Instant) {
        match &mut self.state {
            State::HookingRequest(h) => {
                let Some(call) = h.calls.get(h.next).cloned() else {
                    return;
                };
                h.next += 1;
                let phase = if call.answers.is_some() {
                    HookPhase::ClientAnswer
                } else {
                    HookPhase::Request
                };
                let verdict = checked_verdict(
                    verdict,
                    phase,
                    call.message.as_bytes(),
                    &self.config.limits.json,
                );
                let answer_id = call.answers.as_ref().and(call.id.as_deref());
                match verdict {
                    // An answer is never stopped: the server gets the
                    // hook's instead.
                    HookVerdict::Reject {
                        code,
                        message,
                        data,
                    } if answer_id.is_some() => {
                        let error =
                            jsonrpc::error_message(answer_id, code, &message, data.as_deref());
                        h.replaced.push((call.element, error));
                    }
                    HookVerdict::Respond(result) if answer_id.is_some() => {
                        let id = answer_id.unwrap_or_default();
                        h.replaced
                            .push((call.element, jsonrpc::result_message(id, &result)));
                    }
                    HookVerdict::Continue => {}
                    HookVerdict::Replace(message) => h.replaced.push((call.element, message)),
                    HookVerdict::Reject {
                        code,
                        message,
                        data,
                    } => {
                        // A notification's refusal carries a null id.
                        let answer = jsonrpc::error_message(
                            call.id.as_deref(),
                            code,
                            &message,
                            data.as_deref(),
                        );
                        h.stopped.push((call.id.clone(), answer));
                    }
                    HookVerdict::Respond(result) => {
                        let answer = call
                            .id
                            .as_deref()
                            .map(|id| jsonrpc::result_message(id, &result));
                        h.stopped
                            .push((call.id.clone(), answer.unwrap_or_default()));
                    }
                }
                // A stopped single message ends the chain; a batch finishes its hooks.
                let single_stopped = call.element.is_none() && !h.stopped.is_empty();
                if h.next < h.calls.len() && !single_stopped {
                    self.next_request_hook();
                    return;
                }
                let State::HookingRequest(h) = std::mem::replace(&mut self.state, State::Done)
                else {
                    return;
                };
                self.finish_request_hooks(h, now);
            }
            State::Streaming(stream) if stream.awaiting_hooks() => {
                let mut out = Vec::new();
                stream.apply_verdict(verdict, &self.config.limits.json, &mut out, now);
                let answers = stream.take_server_answers();
                for bytes in out {
                    self.summary.body_bytes += bytes.len() as u64;
                    self.outputs.push_back(Output::ToClient(bytes));
                }
                self.answer_server(answers);
                if matches!(&self.state, State::Streaming(s) if s.is_complete()) {
                    self.complete(now);
                } else {
                    self.ask_response_hook();
                }
            }
            _ => {}
        }
    }

    /// Hand out the next hook call the stream holds, if any: the answer
    /// to a hooked request, or a hooked server message.
    fn ask_response_hook(&mut self) {
        let State::Streaming(stream) = &mut self.state else {
            return;
        };
        let call = match stream.take_hook_call() {
            Some(StreamCall::Response {
                method,
                request,
                response,
            }) => self.hook_call(HookPhase::Response, method, request, Some(response)),
            Some(StreamCall::Server { method, message }) => {
                self.hook_call(HookPhase::ServerMessage, method, message, None)
            }
            None => return,
        };
        self.outputs.push_back(Output::RunHook(Box::new(call)));
    }

    /// Send the upstream the hooks' answers to server requests the client
    /// never saw.
    fn answer_server(&mut self, answers: Vec<Vec<u8>>) {
        let Some(req) = self.req.as_ref() else {
            return;
        };
        for answer in answers {
            let request =
                upstream::Request::answer_to_server(&req.upstream_target, &req.headers, answer);
            self.outputs.push_back(Output::AnswerServer {
                route: req.route,
                request: Box::new(request),
            });
        }
    }

    fn finish_request_hooks(&mut self, h: RequestHooks, now: Instant) {
        let Some(req) = self.req.as_mut() else { return };
        if h.stopped.is_empty() {
            let old = std::mem::take(&mut req.body);
            let new = match h.replaced.as_slice() {
                [] => old.clone(),
                [(None, message)] => message.clone(),
                batch => match jsonrpc::classify(&old, &self.config.limits.json) {
                    Ok(Classified::Batch(ms)) => {
                        hooks::rebuild_array(ms.iter().map(|m| m.text.as_bytes()), batch)
                    }
                    // The body classified as a batch when its hooks were asked for.
                    _ => old.clone(),
                },
            };
            if new != old {
                hooks::rewrite_mirror_headers(
                    &mut req.headers,
                    &old,
                    &new,
                    &self.config.limits.json,
                );
                req.body = new;
                req.meta.replaced(old);
            } else {
                req.body = new;
            }
            self.connect(now);
            return;
        }
        // A hook answered: nothing reaches the upstream.
        let accepts = req.accepts;
        let close_after = !req.client_keep_alive;
        let batch = h.calls.iter().any(|c| c.element.is_some());
        let request_ids = if batch {
            hooks::batch_request_ids(&req.body, &self.config.limits.json)
        } else {
            h.stopped.iter().filter_map(|(id, _)| id.clone()).collect()
        };
        // Notifications have no answer. Refused ones get an HTTP error, as
        // the transport says for input the server cannot accept; consumed
        // ones (a hook answered) get the 202 of accepted input.
        let refusal = h
            .stopped
            .iter()
            .find(|(id, answer)| id.is_none() && !answer.is_empty())
            .map(|(_, answer)| answer.as_slice());
        self.summary.reason = Some("answered by a hook".into());
        self.summary.outcome = Outcome::Answered;
        let (status, bytes) = if request_ids.is_empty() {
            match refusal {
                Some(error) => (
                    400,
                    inject::full_response(
                        accepts,
                        Answer::Error {
                            message: error,
                            status: 400,
                        },
                        close_after,
                    ),
                ),
                None => {
                    let close = if close_after {
                        "Connection: close\r\n"
                    } else {
                        ""
                    };
                    let head = format!("HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n{close}\r\n");
                    (202, head.into_bytes())
                }
            }
        } else {
            // A JSON-RPC answer is a successful HTTP exchange, error or not.
            let message = if batch {
                // Every request of the batch gets an answer: the hook's, or a
                // refusal saying why it was not forwarded.
                let mut out = vec![b'['];
                for (i, id) in request_ids.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    match h
                        .stopped
                        .iter()
                        .find(|(sid, _)| sid.as_deref() == Some(id.as_slice()))
                    {
                        Some((_, answer)) => out.extend_from_slice(answer),
                        None => out.extend_from_slice(&jsonrpc::error_message(
                            Some(id),
                            hooks::BATCH_REFUSED,
                            "sluice: not forwarded, a hook stopped another message of this batch",
                            None,
                        )),
                    }
                }
                out.push(b']');
                out
            } else {
                h.stopped
                    .into_iter()
                    .next()
                    .map(|(_, m)| m)
                    .unwrap_or_default()
            };
            let answer = match jsonrpc::classify(&message, &self.config.limits.json) {
                Ok(jsonrpc::Classified::Single(m)) if m.kind == jsonrpc::Kind::Response => {
                    Answer::Result { message: &message }
                }
                _ => Answer::Error {
                    message: &message,
                    status: 200,
                },
            };
            let bytes = match inject::plan(
                Sent::Nothing,
                ClientFraming::Chunked,
                accepts,
                answer,
                close_after,
            ) {
                Injection::Response(bytes) => bytes,
                _ => Vec::new(),
            };
            (200, bytes)
        };
        self.summary.status = Some(status);
        self.outputs.push_back(Output::ToClient(Bytes::from(bytes)));
        self.finish(
            if close_after {
                Close::Graceful
            } else {
                Close::KeepAlive
            },
            now,
        );
    }

    fn note_request_line(&mut self) {
        if let State::Request(intake) = &mut self.state
            && let Some((method, target)) = intake.take_request_line()
        {
            self.summary.http_method = method;
            self.summary.target = target;
        }
    }

    fn read_response_head(&mut self, input: Bytes, now: Instant) {
        let State::AwaitingHead(h) = &mut self.state else {
            return;
        };
        h.spoke = true;
        // A head that arrives whole in one read is parsed where it lies, and
        // the body bytes after it go on as a slice of the same read.
        let buffered = !h.buf.is_empty();
        if buffered {
            h.buf.extend_from_slice(&input);
        }
        let Some(req) = self.req.as_ref() else { return };
        let hold_refusal = h.attempt.probing && req.method == "POST";
        let step = response::read_head(
            &mut h.scanner,
            if buffered { &h.buf } else { &input },
            hold_refusal,
            req,
            &self.config,
            &mut self.ledger,
            now,
        );
        // What followed a head of `len` bytes.
        let mut rest_after = |len: usize| {
            if buffered {
                Bytes::copy_from_slice(&std::mem::take(&mut h.buf)[len..])
            } else {
                input.slice(len..)
            }
        };
        match step {
            response::HeadStep::NeedMore => {
                if !buffered {
                    h.buf.extend_from_slice(&input);
                }
            }
            response::HeadStep::Informational { len } => {
                // 1xx answers are ours to absorb (we sent no Expect upstream).
                let rest = rest_after(len);
                if !rest.is_empty() {
                    self.read_response_head(rest, now);
                }
            }
            response::HeadStep::Bad(why) => self.fail(UpstreamError::Malformed(why), now),
            response::HeadStep::Refused {
                status,
                framing,
                len,
            } => {
                let attempt = h.attempt;
                let raw = if buffered {
                    Bytes::from(std::mem::take(&mut h.buf))
                } else {
                    input
                };
                self.hold_refusal(attempt, &raw, status, framing, len, now);
            }
            response::HeadStep::Ready {
                stream,
                client_head,
                status,
                len,
            } => {
                let rest = rest_after(len);
                if hold_refusal {
                    self.report_unheld_answer(status);
                }
                self.head_ready(stream, client_head, status, rest, now);
            }
        }
    }

    fn typed_head(
        &mut self,
        head: &upstream::AnswerHead,
        kind: AnswerBody,
        body: Bytes,
        now: Instant,
    ) {
        let Some(req) = self.req.as_ref() else { return };
        let step = response::typed_head(head, kind, req, &self.config, &mut self.ledger, now);
        match step {
            response::HeadStep::Ready {
                stream,
                client_head,
                status,
                ..
            } => self.head_ready(stream, client_head, status, body, now),
            response::HeadStep::Bad(why) => self.fail(UpstreamError::Malformed(why), now),
            response::HeadStep::NeedMore
            | response::HeadStep::Informational { .. }
            | response::HeadStep::Refused { .. } => {}
        }
    }

    /// The answer's head is known: send the client's, then what followed it.
    fn head_ready(
        &mut self,
        stream: Box<Streaming>,
        client_head: Bytes,
        status: u16,
        rest: Bytes,
        now: Instant,
    ) {
        self.summary.status = Some(status);
        self.summary.response_head = Some(now);
        self.summary.event_stream = stream.is_event_stream();
        if !client_head.is_empty() {
            self.outputs.push_back(Output::ToClient(client_head));
        }
        self.state = State::Streaming(stream);
        // The request is never rendered again (no retry once the
        // upstream answered): a long-lived stream need not keep its headers,
        // unless a hook may answer a server request on the client's behalf.
        if let Some(req) = self.req.as_mut()
            && !self.config.hooks.reads_server_streams()
        {
            req.headers = Vec::new();
        }
        self.arm_stream_timers(now);
        if let State::Streaming(s) = &self.state
            && s.is_complete()
        {
            self.complete(now);
            return;
        }
        if !rest.is_empty() {
            self.stream_body(rest, now);
        }
    }

    fn stream_message(&mut self, data: &[u8], id: Option<EventId<'_>>, now: Instant) {
        let State::Streaming(stream) = &mut self.state else {
            return;
        };
        let mut out = Vec::new();
        stream.last_upstream = now;
        stream.feed_message(data, id, &mut out, now);
        for bytes in out {
            self.summary.body_bytes += bytes.len() as u64;
            self.outputs.push_back(Output::ToClient(bytes));
        }
        self.arm_stream_timers(now);
        self.ask_response_hook();
    }

    fn stream_prime(&mut self, id: u64, now: Instant) {
        let State::Streaming(stream) = &mut self.state else {
            return;
        };
        let mut out = Vec::new();
        stream.last_upstream = now;
        stream.feed_prime(id, &mut out, now);
        for bytes in out {
            self.summary.body_bytes += bytes.len() as u64;
            self.outputs.push_back(Output::ToClient(bytes));
        }
        self.arm_stream_timers(now);
    }

    fn stream_body(&mut self, input: Bytes, now: Instant) {
        let State::Streaming(stream) = &mut self.state else {
            return;
        };
        let mut out = Vec::new();
        stream.last_upstream = now;
        let result = stream.feed(input, &mut out, now);
        for bytes in out {
            self.summary.body_bytes += bytes.len() as u64;
            self.outputs.push_back(Output::ToClient(bytes));
        }
        match result {
            Ok(()) if stream.is_complete() => self.complete(now),
            Ok(()) => {
                self.arm_stream_timers(now);
                self.ask_response_hook();
            }
            Err(why) => self.fail(UpstreamError::Malformed(why), now),
        }
    }

    fn complete(&mut self, now: Instant) {
        let (tail, reusable, released) = match &mut self.state {
            State::Streaming(stream) => (
                stream.finish_clean(),
                stream.upstream_reusable(),
                stream.upstream_released(),
            ),
            _ => (Vec::new(), false, false),
        };
        self.emit_client(tail);
        self.summary.outcome = Outcome::Complete;
        if !released {
            self.outputs.push_back(Output::ReleaseUpstream { reusable });
        }
        let close = self.client_close_after();
        self.finish(close, now);
    }

    /// While the answer streams: the upstream's next bytes are due within
    /// the idle timeout of the last ones, and a keep-alive comment when the
    /// client has heard nothing for a while (and may be sent one).
    fn arm_stream_timers(&mut self, now: Instant) {
        let State::Streaming(stream) = &self.state else {
            return;
        };
        let idle = self
            .config
            .timeouts
            .stream_idle
            .map(|t| stream.last_upstream + t);
        let keepalive = stream.keepalive_deadline(now);
        self.timers.stop(Timer::Head);
        self.timers.set(Timer::StreamIdle, idle);
        self.timers.set(Timer::Keepalive, keepalive);
    }

    fn client_close_after(&self) -> Close {
        let keep = self.req.as_ref().is_some_and(|r| r.client_keep_alive);
        let framing_allows = match &self.state {
            State::Streaming(s) => !s.client_until_close(),
            _ => true,
        };
        if keep && framing_allows {
            Close::KeepAlive
        } else {
            Close::Graceful
        }
    }

    fn emit_client(&mut self, bytes: Vec<u8>) {
        if !bytes.is_empty() {
            self.summary.body_bytes += bytes.len() as u64;
            self.outputs.push_back(Output::ToClient(Bytes::from(bytes)));
        }
    }

    /// A local answer before anything was forwarded (bad request, refused
    /// host, timeout waiting for the request). The connection closes.
    /// Refuses the request before anything went upstream: a JSON-RPC error
    /// with a null id (the request may not even be readable), the status
    /// and code of `error`, and `Allow` on a 405.
    fn refuse_challenged(&mut self, error: ClientError, challenge: &str, now: Instant) {
        let (status, code, message) = (error.status, error.code, error.message.clone());
        let bytes = inject::http_error_with_header(
            status,
            code,
            &message,
            "WWW-Authenticate",
            challenge,
            true,
        );
        self.answer_locally(ExchangeError::Client(error), bytes, now);
    }

    fn refuse(&mut self, error: ExchangeError, allow: Option<&'static str>, now: Instant) {
        let (status, code, message) = (error.status(), error.code(), error.to_string());
        let bytes = match allow {
            Some(allow) => inject::http_error_allow(status, code, &message, allow, true),
            None => inject::http_error(status, code, &message, true),
        };
        self.answer_locally(error, bytes, now);
    }

    /// A local answer before anything was forwarded (bad request, refused
    /// host, timeout waiting for the request): `bytes`, for `error`. The
    /// connection closes.
    fn answer_locally(&mut self, error: ExchangeError, bytes: Vec<u8>, now: Instant) {
        let status = error.status();
        self.note_request_line();
        let bytes = if self.summary.http_method == "HEAD" {
            head_only(bytes)
        } else {
            bytes
        };
        self.summary.status = Some(status);
        self.summary.outcome = Outcome::Answered;
        self.summary.reason = Some(error.to_string());
        self.summary.error = Some(error);
        self.outputs.push_back(Output::ToClient(Bytes::from(bytes)));
        self.finish(Close::Graceful, now);
    }

    /// Something failed after the request was accepted: answer the client
    /// with a JSON-RPC error carrying its own id, by the injection rules.
    fn fail(&mut self, error: impl Into<ExchangeError>, now: Instant) {
        let error = error.into();
        let (status, code) = (error.status(), error.code());
        let why = error.to_string();
        let why = why.as_str();
        let had_upstream = match &self.state {
            State::Request(_) | State::Authenticating | State::HookingRequest(_) | State::Done => {
                false
            }
            State::Streaming(s) => !s.upstream_released(),
            State::Connecting(_) | State::AwaitingHead(_) | State::HeldRefusal(_) => true,
        };
        if had_upstream {
            self.outputs
                .push_back(Output::ReleaseUpstream { reusable: false });
        }
        self.summary.reason = Some(why.to_owned());
        self.summary.error = Some(error.clone());
        let framing = match &self.state {
            State::Streaming(s) if s.client_until_close() => ClientFraming::UntilClose,
            _ => ClientFraming::Chunked,
        };
        let close_after = !self.req.as_ref().is_some_and(|r| r.client_keep_alive);
        // The stream's own view of what went out is the exact one.
        let mut sent = match &self.state {
            State::Streaming(s) => s.sent_for_injection(),
            // Before the answer's head, the client has heard nothing.
            _ => Sent::Nothing,
        };
        // A held answer owes every hooked request of the body its own error.
        let mut message = None;
        let held = match &mut self.state {
            State::Streaming(s) => s.fail_held(code, why),
            _ => None,
        };
        match held {
            Some(HeldFailure::Answered) => sent = Sent::Finished,
            Some(HeldFailure::Body(body)) => message = Some(body),
            Some(HeldFailure::Events(bytes)) => {
                self.summary.outcome = Outcome::Answered;
                for b in bytes {
                    self.summary.body_bytes += b.len() as u64;
                    self.outputs.push_back(Output::ToClient(b));
                }
                let close = match framing {
                    ClientFraming::Chunked if !close_after => Close::KeepAlive,
                    _ => Close::Graceful,
                };
                self.finish(close, now);
                return;
            }
            None => {
                if let Some(ledger) = &mut self.ledger {
                    let errors = ledger.fail_undelivered(code, why);
                    message = Some(ledger.body_of(&errors));
                }
            }
        }
        let req = self.req.as_ref();
        let id = req.and_then(|r| r.rpc.as_ref()).and_then(|r| r.id.clone());
        let accepts = req.map(|r| r.accepts).unwrap_or_default();
        let message = message.unwrap_or_else(|| {
            jsonrpc::error_message(id.as_deref(), code, &format!("sluice: {why}"), None)
        });
        match inject::plan(
            sent,
            framing,
            accepts,
            Answer::Error {
                message: &message,
                status,
            },
            close_after,
        ) {
            Injection::Response(bytes) => {
                let bytes = if req.is_some_and(|r| r.method == "HEAD") {
                    head_only(bytes)
                } else {
                    bytes
                };
                self.summary.status = Some(status);
                self.summary.outcome = Outcome::Answered;
                self.outputs.push_back(Output::ToClient(Bytes::from(bytes)));
                let close = if close_after {
                    Close::Graceful
                } else {
                    Close::KeepAlive
                };
                self.finish(close, now);
            }
            Injection::EventThenEnd(bytes) => {
                self.summary.outcome = Outcome::Answered;
                self.summary.body_bytes += bytes.len() as u64;
                self.outputs.push_back(Output::ToClient(Bytes::from(bytes)));
                let close = match framing {
                    ClientFraming::UntilClose => Close::Graceful,
                    ClientFraming::Chunked if close_after => Close::Graceful,
                    ClientFraming::Chunked => Close::KeepAlive,
                };
                self.finish(close, now);
            }
            Injection::Abort => {
                self.summary.outcome = Outcome::Aborted;
                self.finish(Close::Abort, now);
            }
            Injection::Nothing => {
                // The answer is whole; end the body cleanly.
                let tail = match &mut self.state {
                    State::Streaming(s) => s.finish_clean(),
                    _ => Vec::new(),
                };
                self.emit_client(tail);
                self.summary.outcome = Outcome::Complete;
                let close = self.client_close_after();
                self.finish(close, now);
            }
        }
    }

    fn finish(&mut self, close: Close, now: Instant) {
        if let State::Streaming(stream) = &self.state {
            self.summary.sse_events = stream.events_forwarded();
        }
        self.state = State::Done;
        self.timers.stop_all();
        self.summary.finished = Some(now);
        self.outputs.push_back(Output::Finished { close });
    }
}

/// A response to `HEAD` carries no body (RFC 9110 §9.3.2): a client on a
/// kept-alive connection would read the body as the next response. The head
/// keeps its `Content-Length`, which `HEAD` answers may carry.
fn head_only(mut response: Vec<u8>) -> Vec<u8> {
    if let Some(end) = response.windows(4).position(|w| w == b"\r\n\r\n") {
        response.truncate(end + 4);
    }
    response
}

/// Methods whose repetition has the same effect as one request (RFC 9110
/// §9.2.2), so a request that may have reached the upstream can be re-sent.
/// Only those an endpoint lets through are listed (`route::Endpoint`): PUT
/// and TRACE are refused with 405 before anything goes upstream.
fn idempotent(method: &str) -> bool {
    matches!(method, "GET" | "HEAD" | "OPTIONS" | "DELETE")
}

/// The media types a request accepts, from its headers.
pub(crate) fn accepts_of(headers: &[http1::Header]) -> Accepts {
    let values: Vec<&[u8]> = headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("accept"))
        .map(|h| h.value.as_ref())
        .collect();
    Accepts::from_headers(&values)
}

#[cfg(test)]
mod tests;

/// `verdict`, with a replacement [`check_replacement`] refuses turned into
/// the failure of the hook that made it (fail closed, as for any hook
/// failure the driver reports).
pub(super) fn checked_verdict(
    verdict: HookVerdict,
    phase: HookPhase,
    current: &[u8],
    limits: &jsonrpc::Limits,
) -> HookVerdict {
    match verdict {
        HookVerdict::Replace(new) => {
            let new = respell_id(current, &new, limits).unwrap_or(new);
            match check_replacement(phase, current, &new, limits) {
                Ok(()) => HookVerdict::Replace(new),
                Err(e) => HookVerdict::Reject {
                    code: HOOK_FAILED,
                    message: format!("sluice: a hook's replacement was refused: {e}"),
                    data: None,
                },
            }
        }
        other => other,
    }
}
