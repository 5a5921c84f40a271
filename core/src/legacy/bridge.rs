//! The bridge: one backend HTTP+SSE session serving Streamable HTTP client
//! streams. All transitions live in this file.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use serde_json::Value;

use super::backend::{self, BackendStream, Endpoint};
use super::client;
use super::error::{BridgeError, SessionPhase};
use super::{BridgeConfig, Mode, Output, PostId, PostOutcome, StreamId};
use crate::inject::Accepts;
use crate::jsonrpc::{self, Classified, Kind, RawId, codes};
use crate::sse::SseEvent;
use crate::upstream::{AnswerHead, AnswerPart, Request};

/// What a [`Bridge`] holds, against its [`BridgeLimits`](super::BridgeLimits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Buffered {
    /// Messages waiting for their POST (`max_queued_posts`).
    pub queued_posts: usize,
    /// Client requests awaiting answers (`max_pending`).
    pub pending: usize,
    /// Server messages held for the GET stream
    /// (`max_queued_server_messages`).
    pub queued_server_messages: usize,
    /// Their bytes (`max_queued_server_bytes`).
    pub queued_server_bytes: usize,
}

/// A message waiting for its turn to be POSTed (one POST at a time per
/// session keeps the client's order, which the legacy transport has).
#[derive(Clone)]
struct Post {
    body: Bytes,
    fwd: Vec<crate::http1::Header>,
    purpose: Purpose,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    /// A client request; its answer comes on the SSE stream.
    Request(StreamId),
    /// A client notification or response; the client gets 202 once the
    /// backend accepted the POST.
    OneWay(StreamId),
    /// The bridge's own message (per-request handshake, answers to pings).
    Own,
}

/// The POST out now. The message is kept for the one re-send a POST that
/// did not go out whole on a pooled connection gets.
struct InFlight {
    id: PostId,
    post: Post,
    /// Sent on a fresh connection: no second try.
    fresh: bool,
    deadline: Instant,
}

struct Client {
    kind: ClientKind,
    accepts: Accepts,
    /// The SSE head went out.
    sse_open: bool,
}

enum ClientKind {
    /// A POSTed request awaiting its answer.
    Request { id: RawId, token: Option<Value> },
    /// A POSTed notification or response awaiting the backend's 202.
    OneWay,
    /// The GET stream for server-initiated messages.
    Get,
}

/// Where the SSE stream lives and which client fields go with it.
struct Base {
    authority: String,
    target: String,
    fwd: Vec<crate::http1::Header>,
}

/// One backend HTTP+SSE session, bridged to Streamable HTTP client streams.
///
/// Push inputs ([`attach`](Self::attach), [`stream_data`](Self::stream_data),
/// [`stream_closed`](Self::stream_closed), [`post_done`](Self::post_done),
/// [`client_gone`](Self::client_gone), [`handle_timeout`](Self::handle_timeout)),
/// then drain [`poll_output`](Self::poll_output) until `None` and perform
/// each [`Output`] in order; sleep until the next input or
/// [`poll_timeout`](Self::poll_timeout). See the [module docs](super).
pub struct Bridge {
    config: Arc<BridgeConfig>,
    mode: Mode,
    session_id: Option<String>,
    phase: SessionPhase,
    stream: BackendStream,
    base: Option<Base>,
    endpoint: Option<Endpoint>,
    outputs: VecDeque<Output>,
    posts: VecDeque<Post>,
    in_flight: Option<InFlight>,
    next_post: PostId,
    next_own_id: u64,
    clients: Clients,
    pending: HashMap<RawId, StreamId>,
    get_stream: Option<StreamId>,
    /// Server-initiated messages waiting for a GET stream.
    server_queue: VecDeque<Vec<u8>>,
    server_queue_bytes: usize,
    /// Messages from the backend that went nowhere.
    dropped: u64,
    /// Per-request mode: the client stream whose request needs the
    /// bridge's own handshake first, and the id of that `initialize`.
    handshake_for: Option<StreamId>,
    own_init: Option<RawId>,
    protocol_version: String,
    endpoint_deadline: Option<Instant>,
    handshake_deadline: Option<Instant>,
    last_activity: Instant,
    /// The `now` of the latest input, for deadlines set while reacting.
    clock: Instant,
    error: Option<BridgeError>,
}

impl Bridge {
    /// A bridge that opens its backend stream at the first
    /// [`attach`](Self::attach). In [`Mode::Session`], `session_id` (minted
    /// by the caller) goes on every response head as `Mcp-Session-Id`.
    pub fn new(
        config: Arc<BridgeConfig>,
        mode: Mode,
        session_id: Option<String>,
        now: Instant,
    ) -> Self {
        let stream = BackendStream::new(&config.limits.http, config.limits.sse);
        Bridge {
            mode,
            session_id: if mode == Mode::Session {
                session_id
            } else {
                None
            },
            phase: SessionPhase::Idle,
            stream,
            base: None,
            endpoint: None,
            outputs: VecDeque::new(),
            posts: VecDeque::new(),
            in_flight: None,
            next_post: 0,
            next_own_id: 0,
            clients: Clients::default(),
            pending: HashMap::new(),
            get_stream: None,
            server_queue: VecDeque::new(),
            server_queue_bytes: 0,
            dropped: 0,
            handshake_for: None,
            own_init: None,
            protocol_version: config.default_protocol_version.clone(),
            endpoint_deadline: None,
            handshake_deadline: None,
            last_activity: now,
            clock: now,
            error: None,
            config,
        }
    }

    /// The next thing to do; drain after every input. Once drained (`None`),
    /// the bridge lets go of the buffers of its queues that are empty: a
    /// session may then wait for a long time, and an idle one holds none.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output> {
        let output = self.outputs.pop_front();
        if output.is_none() {
            self.let_go();
        }
        output
    }

    /// Frees what empty queues hold in spare capacity (a `VecDeque` keeps
    /// the buffer of its first push for good), and the client table's
    /// capacity once less than half of it is used.
    fn let_go(&mut self) {
        fn release<T>(queue: &mut VecDeque<T>) {
            if queue.is_empty() && queue.capacity() > 0 {
                *queue = VecDeque::new();
            }
        }
        release(&mut self.outputs);
        release(&mut self.posts);
        release(&mut self.server_queue);
        if self.pending.is_empty() && self.pending.capacity() > 0 {
            self.pending = HashMap::new();
        }
        self.clients.trim();
        self.stream.let_go();
    }

    /// When [`handle_timeout`](Self::handle_timeout) is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.phase == SessionPhase::Closed {
            return None;
        }
        [
            self.endpoint_deadline,
            self.handshake_deadline,
            self.in_flight.as_ref().map(|p| p.deadline),
            self.idle_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Where the session stands.
    pub fn phase(&self) -> SessionPhase {
        self.phase
    }

    /// The session is over (its `Closed` output was emitted).
    pub fn is_closed(&self) -> bool {
        self.phase == SessionPhase::Closed
    }

    /// The error that ended the session, if one did.
    pub fn error(&self) -> Option<&BridgeError> {
        self.error.as_ref()
    }

    /// The endpoint the backend announced, once known.
    pub fn endpoint(&self) -> Option<&Endpoint> {
        self.endpoint.as_ref()
    }

    /// Backend messages that could be delivered nowhere (answers to
    /// requests whose client left, unreadable messages, overflow of the
    /// queue for the GET stream).
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Client streams currently attached.
    pub fn attached(&self) -> usize {
        self.clients.len()
    }

    /// What the bridge holds right now (for metrics and tests): each is
    /// bounded by its limit in [`BridgeLimits`](super::BridgeLimits).
    pub fn buffered(&self) -> Buffered {
        Buffered {
            queued_posts: self.posts.len(),
            pending: self.pending.len(),
            queued_server_messages: self.server_queue.len(),
            queued_server_bytes: self.server_queue_bytes,
        }
    }

    /// A client request for this session arrived on stream `stream`
    /// (a fresh id per request). Its answer goes out as `ToClient` outputs
    /// for `stream`, ended by `EndClient`.
    pub fn attach(&mut self, stream: StreamId, req: Request, now: Instant) {
        self.clock = now;
        self.last_activity = now;
        if self.phase == SessionPhase::Closed {
            let bytes = client::unknown_session(&req, &self.config.limits.json);
            self.reply(stream, bytes);
            return;
        }
        match (self.mode, req.method.as_str()) {
            (Mode::Session, "GET") => self.attach_get(stream, &req, now),
            (Mode::Session, "DELETE") => {
                let bytes = AnswerPart::empty(self.head(200));
                self.reply(stream, bytes);
                self.fail_session(BridgeError::SessionDeleted);
            }
            (_, "POST") => self.attach_post(stream, req, now),
            _ => {
                let bytes = client::reply_error(405, codes::INVALID_REQUEST, "method not allowed");
                self.reply(stream, bytes);
            }
        }
        self.maybe_finish();
    }

    /// The client of stream `stream` went away. Legacy semantics: its
    /// request is not cancelled; an answer that comes later is dropped.
    pub fn client_gone(&mut self, stream: StreamId, now: Instant) {
        self.clock = now;
        self.last_activity = now;
        if let Some(client) = self.clients.remove(&stream) {
            if let ClientKind::Request { id, .. } = client.kind {
                self.pending.remove(&id);
            }
            if self.get_stream == Some(stream) {
                self.get_stream = None;
            }
        }
        self.maybe_finish();
    }

    /// Bytes of the backend's SSE stream (response head included).
    pub fn stream_data(&mut self, input: &[u8], now: Instant) {
        self.clock = now;
        if self.phase == SessionPhase::Closed {
            return;
        }
        let mut events = Vec::new();
        let result = self.stream.feed(input, &mut events);
        if self.phase == SessionPhase::Opening && self.stream.is_open() {
            self.phase = SessionPhase::AwaitingEndpoint;
        }
        for event in events {
            self.on_event(event, now);
            if self.phase == SessionPhase::Closed {
                return;
            }
        }
        match result {
            Ok(false) => {}
            Ok(true) => self.fail_session(BridgeError::StreamClosed {
                phase: self.phase,
                error: false,
            }),
            Err(e) => self.fail_session(e),
        }
    }

    /// The backend's SSE connection ended (`error`: it failed, or could
    /// not be opened).
    pub fn stream_closed(&mut self, error: bool, now: Instant) {
        self.clock = now;
        if self.phase == SessionPhase::Closed {
            return;
        }
        self.fail_session(BridgeError::StreamClosed {
            phase: self.phase,
            error,
        });
    }

    /// The POST `id` ended: answered, or failed before or after it went out
    /// whole. Only a POST that did not go out whole on a pooled connection
    /// is sent again (once, fresh); a backend that took the message and gave
    /// no answer may have acted on it, so its client gets an error instead.
    pub fn post_done(&mut self, id: PostId, outcome: PostOutcome, now: Instant) {
        self.clock = now;
        if self.phase == SessionPhase::Closed || self.in_flight.as_ref().is_none_or(|p| p.id != id)
        {
            return;
        }
        let Some(in_flight) = self.in_flight.take() else {
            return;
        };
        self.last_activity = now;
        let purpose = in_flight.post.purpose;
        let error = match outcome {
            PostOutcome::NotSent { reused: true, .. } if !in_flight.fresh => {
                self.send_post(in_flight.post, true);
                return;
            }
            PostOutcome::Answered(a) if (200..300).contains(&a.status) => None,
            PostOutcome::Answered(a) if a.status == 404 => Some(BridgeError::BackendSessionGone),
            PostOutcome::Answered(a) => Some(BridgeError::PostRefused {
                status: a.status,
                body: String::from_utf8_lossy(&a.excerpt)
                    .trim()
                    .chars()
                    .take(200)
                    .collect(),
            }),
            PostOutcome::NotSent { detail, .. } => Some(BridgeError::PostFailed { detail }),
            PostOutcome::Unanswered { detail } => Some(BridgeError::PostUnanswered { detail }),
        };
        self.post_ended(purpose, error);
    }

    /// After the in-flight POST ended (`error`: how it failed): answers
    /// its client and sends the next one.
    fn post_ended(&mut self, purpose: Purpose, error: Option<BridgeError>) {
        match (purpose, error) {
            (Purpose::Own, Some(e)) => {
                self.fail_session(e);
                return;
            }
            (_, Some(e)) if e.is_fatal() => {
                self.fail_session(e);
                return;
            }
            (Purpose::Request(stream) | Purpose::OneWay(stream), Some(e)) => {
                self.fail_client(stream, &e)
            }
            (Purpose::OneWay(stream), None) => {
                if self.clients.remove(&stream).is_some() {
                    let bytes = AnswerPart::empty(self.head(202));
                    self.reply(stream, bytes);
                }
            }
            (Purpose::Request(_) | Purpose::Own, None) => {}
        }
        self.pump_posts();
        self.maybe_finish();
    }

    /// Time passed; fires whatever deadline is due.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.clock = now;
        if self.phase == SessionPhase::Closed {
            return;
        }
        let t = &self.config.timeouts;
        if let Some(late) = self.in_flight.take_if(|p| now >= p.deadline) {
            self.outputs.push_back(Output::AbandonPost { id: late.id });
            let waited_ms = t.post.as_millis() as u64;
            self.post_ended(
                late.post.purpose,
                Some(BridgeError::PostTimeout { waited_ms }),
            );
            return;
        }
        if self.endpoint_deadline.is_some_and(|d| now >= d) {
            let waited_ms = t.endpoint.as_millis() as u64;
            self.fail_session(BridgeError::EndpointTimeout { waited_ms });
        } else if self.handshake_deadline.is_some_and(|d| now >= d) {
            let waited_ms = t.handshake.as_millis() as u64;
            self.fail_session(BridgeError::InitializeTimeout { waited_ms });
        } else if self.idle_deadline().is_some_and(|d| now >= d) {
            self.fail_session(BridgeError::SessionExpired);
        }
    }

    /// Ends the session now (the proxy is shutting down): every client
    /// stream gets an error, the backend stream closes.
    pub fn close(&mut self) {
        if self.phase != SessionPhase::Closed {
            self.fail_session(BridgeError::ShuttingDown);
        }
    }

    fn idle_deadline(&self) -> Option<Instant> {
        if self.mode != Mode::Session || !self.clients.is_empty() {
            return None;
        }
        self.config
            .timeouts
            .session_idle
            .map(|t| self.last_activity + t)
    }

    /// A head with `status` and this session's id.
    fn head(&self, status: u16) -> AnswerHead {
        AnswerHead::status(status).with_session(self.session_id.as_deref())
    }

    fn emit(&mut self, stream: StreamId, part: AnswerPart) {
        self.outputs.push_back(Output::ToClient { stream, part });
    }

    /// The last part of an answer, then the end of the stream.
    fn reply(&mut self, stream: StreamId, part: AnswerPart) {
        self.emit(stream, part);
        self.outputs.push_back(Output::EndClient { stream });
    }

    fn ensure_open(&mut self, req: &Request, now: Instant) {
        if self.base.is_some() {
            return;
        }
        let authority = req
            .header("host")
            .map(|h| String::from_utf8_lossy(h).into_owned())
            .unwrap_or_default();
        let base = Base {
            authority,
            target: req.target.clone(),
            fwd: backend::forwarded(&req.headers),
        };
        let bytes = match backend::stream_request(&base.authority, &base.target, &base.fwd) {
            Ok(bytes) => bytes,
            Err(error) => {
                self.fail_session(BridgeError::Unwritable {
                    request: "the SSE GET",
                    error,
                });
                return;
            }
        };
        self.base = Some(base);
        self.outputs.push_back(Output::OpenStream(bytes));
        self.phase = SessionPhase::Opening;
        self.endpoint_deadline = Some(now + self.config.timeouts.endpoint);
    }

    fn attach_get(&mut self, stream: StreamId, req: &Request, now: Instant) {
        if self.get_stream.is_some() {
            let bytes = client::reply_error(
                409,
                codes::INVALID_REQUEST,
                "this session already has a GET stream",
            );
            self.reply(stream, bytes);
            return;
        }
        self.ensure_open(req, now);
        let head = AnswerPart::Stream(self.head(200));
        self.emit(stream, head);
        self.clients.insert(
            stream,
            Client {
                kind: ClientKind::Get,
                accepts: req.accepts(),
                sse_open: true,
            },
        );
        self.get_stream = Some(stream);
        while let Some(message) = self.server_queue.pop_front() {
            self.server_queue_bytes -= message.len();
            self.emit(stream, AnswerPart::Event(Bytes::from(message)));
        }
    }

    fn attach_post(&mut self, stream: StreamId, req: Request, now: Instant) {
        let json = self.config.limits.json;
        let (kind, method, id, token) = match jsonrpc::classify(&req.body, &json) {
            Err(e) => {
                let code = e.code();
                let bytes = client::reply_error(400, code, &format!("unreadable message: {e}"));
                self.reply(stream, bytes);
                return;
            }
            Ok(Classified::Batch(_)) => {
                let bytes = client::reply_error(
                    400,
                    codes::INVALID_REQUEST,
                    "batches are not bridged to a legacy backend",
                );
                self.reply(stream, bytes);
                return;
            }
            Ok(Classified::Single(m)) => (
                m.kind,
                m.method.as_deref().map(str::to_owned),
                m.raw_id(),
                m.progress_token
                    .and_then(|t| serde_json::from_slice::<Value>(t).ok()),
            ),
        };
        let accepts = req.accepts();
        let purpose = match (kind, id) {
            (Kind::Request, Some(id)) => {
                let limit = self.config.limits.max_pending;
                if self.pending.contains_key(&id) {
                    let msg = jsonrpc::error_message(
                        Some(id.as_bytes()),
                        codes::INVALID_REQUEST,
                        "sluice bridge: a request with this id is already in flight",
                        None,
                    );
                    let bytes = AnswerPart::json(self.head(400), msg);
                    self.reply(stream, bytes);
                    return;
                }
                if self.pending.len() >= limit {
                    let e = BridgeError::TooManyPending { limit };
                    self.answer_error(stream, &id, &e);
                    return;
                }
                if self.mode == Mode::PerRequest && method.as_deref() != Some("initialize") {
                    self.handshake_for = Some(stream);
                    if let Some(v) = req.protocol_version() {
                        self.protocol_version = v.to_owned();
                    }
                }
                self.pending.insert(id.clone(), stream);
                self.clients.insert(
                    stream,
                    Client {
                        kind: ClientKind::Request { id, token },
                        accepts,
                        sse_open: false,
                    },
                );
                Purpose::Request(stream)
            }
            _ if self.mode == Mode::PerRequest => {
                // No session outlives this exchange: nothing to deliver to.
                let bytes = AnswerPart::empty(self.head(202));
                self.reply(stream, bytes);
                return;
            }
            _ => {
                self.clients.insert(
                    stream,
                    Client {
                        kind: ClientKind::OneWay,
                        accepts,
                        sse_open: false,
                    },
                );
                Purpose::OneWay(stream)
            }
        };
        self.ensure_open(&req, now);
        let limit = self.config.limits.max_queued_posts;
        if self.posts.len() >= limit {
            self.fail_client(stream, &BridgeError::QueueFull { limit });
            return;
        }
        self.posts.push_back(Post {
            body: req.body.clone(),
            fwd: backend::forwarded(&req.headers),
            purpose,
        });
        self.pump_posts();
    }

    /// An error answer for a request that was never registered.
    fn answer_error(&mut self, stream: StreamId, id: &RawId, e: &BridgeError) {
        let text = format!("sluice bridge: {e}");
        let msg = jsonrpc::error_message(Some(id.as_bytes()), e.code(), &text, None);
        let bytes = AnswerPart::json(self.head(e.status()), msg);
        self.reply(stream, bytes);
    }

    fn pump_posts(&mut self) {
        if self.in_flight.is_some() || self.phase != SessionPhase::Ready {
            return;
        }
        if let Some(post) = self.posts.pop_front() {
            self.send_post(post, false);
        }
    }

    fn send_post(&mut self, post: Post, fresh: bool) {
        let (Some(endpoint), Some(base)) = (&self.endpoint, &self.base) else {
            return;
        };
        let authority = endpoint
            .origin
            .as_ref()
            .map_or(base.authority.as_str(), |o| o.authority.as_str());
        let bytes = match backend::post_request(authority, &endpoint.target, &post.fwd, &post.body)
        {
            Ok(bytes) => bytes,
            Err(error) => {
                let error = BridgeError::Unwritable {
                    request: "the POST of the message",
                    error,
                };
                self.post_ended(post.purpose, Some(error));
                return;
            }
        };
        let id = self.next_post;
        self.next_post += 1;
        self.outputs.push_back(Output::Post {
            id,
            bytes,
            origin: endpoint.origin.clone(),
            fresh,
        });
        self.in_flight = Some(InFlight {
            id,
            post,
            fresh,
            deadline: self.clock + self.config.timeouts.post,
        });
    }

    fn own_post(&mut self, body: Vec<u8>, front: bool) {
        if !front && self.posts.len() >= self.config.limits.max_queued_posts {
            // A backend flooding server requests: the queue stays bounded.
            self.dropped += 1;
            return;
        }
        let fwd = self
            .base
            .as_ref()
            .map(|b| b.fwd.clone())
            .unwrap_or_default();
        let post = Post {
            body: Bytes::from(body),
            fwd,
            purpose: Purpose::Own,
        };
        if front {
            self.posts.push_front(post);
        } else {
            self.posts.push_back(post);
        }
    }

    fn on_event(&mut self, event: SseEvent, now: Instant) {
        match event.event_type.as_str() {
            "endpoint" if self.endpoint.is_none() => self.on_endpoint(&event.data, now),
            "message" => self.on_message(event.data.as_bytes()),
            // A second endpoint, or an event type MCP does not define.
            _ => {}
        }
    }

    fn on_endpoint(&mut self, uri: &str, now: Instant) {
        let Some(base) = &self.base else { return };
        let resolved = backend::resolve_endpoint(
            uri,
            self.config.https,
            &base.authority,
            &base.target,
            self.config.allow_other_origin,
        );
        let endpoint = match resolved {
            Ok(e) => e,
            Err(e) => {
                self.fail_session(e);
                return;
            }
        };
        self.endpoint = Some(endpoint);
        self.endpoint_deadline = None;
        if self.handshake_for.is_some() {
            self.phase = SessionPhase::Handshake;
            self.handshake_deadline = Some(now + self.config.timeouts.handshake);
            let id = self.own_id();
            let mut body = b"{\"jsonrpc\":\"2.0\",\"id\":".to_vec();
            body.extend_from_slice(id.as_bytes());
            body.extend_from_slice(b",\"method\":\"initialize\",\"params\":{\"protocolVersion\":");
            jsonrpc::write_json_string(&mut body, &self.protocol_version);
            body.extend_from_slice(
                b",\"capabilities\":{},\"clientInfo\":{\"name\":\"sluice-bridge\",\"version\":\"",
            );
            body.extend_from_slice(env!("CARGO_PKG_VERSION").as_bytes());
            body.extend_from_slice(b"\"}}}");
            self.own_init = Some(id);
            let fwd = self
                .base
                .as_ref()
                .map(|b| b.fwd.clone())
                .unwrap_or_default();
            self.send_post(
                Post {
                    body: Bytes::from(body),
                    fwd,
                    purpose: Purpose::Own,
                },
                false,
            );
        } else {
            self.phase = SessionPhase::Ready;
            self.pump_posts();
        }
    }

    fn own_id(&mut self) -> RawId {
        self.next_own_id += 1;
        RawId::new(format!("\"sluice-bridge-{}\"", self.next_own_id).as_bytes())
    }

    fn on_message(&mut self, data: &[u8]) {
        let json = self.config.limits.json;
        let Ok(Classified::Single(m)) = jsonrpc::classify(data, &json) else {
            self.dropped += 1;
            return;
        };
        match m.kind {
            Kind::Response | Kind::Error => {
                let Some(raw) = m.id else {
                    self.dropped += 1;
                    return;
                };
                if self.own_init.as_ref().is_some_and(|own| own.matches(raw)) {
                    self.on_handshake_answer(m.kind, m.error.map(|r| &data[r]));
                    return;
                }
                let Some((stream, client_id)) = self.find_pending(raw) else {
                    self.dropped += 1;
                    return;
                };
                self.pending.remove(&client_id);
                let message = if client_id.matches(raw) {
                    data.to_vec()
                } else {
                    // The backend rewrote the id (`1.0` came back as `1`):
                    // the client gets its own id text back.
                    rebuild(
                        &client_id,
                        m.result.map(|r| &data[r]),
                        m.error.map(|r| &data[r]),
                    )
                };
                self.deliver_answer(stream, &message);
            }
            Kind::Notification => {
                let target = match self.mode {
                    Mode::PerRequest => self.first_request_stream(),
                    Mode::Session if m.method.as_deref() == Some("notifications/progress") => {
                        let token = m
                            .params
                            .and_then(|r| serde_json::from_slice::<Value>(&data[r]).ok())
                            .and_then(|p| p.get("progressToken").cloned());
                        token.and_then(|t| self.stream_with_token(&t))
                    }
                    Mode::Session => None,
                };
                match target {
                    Some(stream) => {
                        if !self.deliver_event(stream, data) {
                            self.dropped += 1;
                        }
                    }
                    None if self.mode == Mode::Session => self.for_server_stream(data),
                    None => self.dropped += 1,
                }
            }
            Kind::Request => match self.mode {
                Mode::Session => self.for_server_stream(data),
                Mode::PerRequest => {
                    // Nobody could answer through a per-request session:
                    // answer pings, refuse the rest so the backend never waits.
                    let Some(id) = m.id else { return };
                    let answer = if m.method.as_deref() == Some("ping") {
                        jsonrpc::result_message(id, b"{}")
                    } else {
                        jsonrpc::error_message(
                            Some(id),
                            codes::METHOD_NOT_FOUND,
                            "sluice bridge (per-request mode) cannot relay server requests",
                            None,
                        )
                    };
                    self.own_post(answer, false);
                    self.pump_posts();
                }
            },
        }
    }

    fn on_handshake_answer(&mut self, kind: Kind, error: Option<&[u8]>) {
        self.own_init = None;
        self.handshake_deadline = None;
        if kind == Kind::Error {
            let message = error
                .and_then(|e| serde_json::from_slice::<Value>(e).ok())
                .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_owned))
                .unwrap_or_default();
            self.fail_session(BridgeError::InitializeRefused { message });
            return;
        }
        self.phase = SessionPhase::Ready;
        self.handshake_for = None;
        self.own_post(
            b"{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}".to_vec(),
            true,
        );
        self.pump_posts();
    }

    /// The stream owed an answer with this id: exact text first, then the
    /// same JSON value (a backend that re-serialized the id).
    fn find_pending(&self, raw: &[u8]) -> Option<(StreamId, RawId)> {
        if let Some((id, stream)) = self.pending.get_key_value(raw) {
            return Some((*stream, id.clone()));
        }
        let value: Value = serde_json::from_slice(raw).ok()?;
        self.pending
            .iter()
            .find(|(id, _)| {
                serde_json::from_slice::<Value>(id.as_bytes())
                    .is_ok_and(|mine| same_value(&mine, &value))
            })
            .map(|(id, stream)| (*stream, id.clone()))
    }

    fn stream_with_token(&self, token: &Value) -> Option<StreamId> {
        self.clients.iter().find_map(|(stream, c)| match &c.kind {
            ClientKind::Request { token: Some(t), .. } if same_value(t, token) => Some(stream),
            _ => None,
        })
    }

    fn first_request_stream(&self) -> Option<StreamId> {
        self.clients
            .iter()
            .find_map(|(stream, c)| matches!(c.kind, ClientKind::Request { .. }).then_some(stream))
    }

    fn for_server_stream(&mut self, message: &[u8]) {
        if let Some(stream) = self.get_stream {
            self.deliver_event(stream, message);
            return;
        }
        let limits = &self.config.limits;
        if self.server_queue.len() >= limits.max_queued_server_messages
            || self.server_queue_bytes + message.len() > limits.max_queued_server_bytes
        {
            self.dropped += 1;
            return;
        }
        self.server_queue_bytes += message.len();
        self.server_queue.push_back(message.to_vec());
    }

    /// A notification or server request on a client's SSE stream; false
    /// when that client does not take SSE.
    fn deliver_event(&mut self, stream: StreamId, message: &[u8]) -> bool {
        let Some(client) = self.clients.get_mut(&stream) else {
            return false;
        };
        if !client.accepts.sse {
            return false;
        }
        let open = std::mem::replace(&mut client.sse_open, true);
        if !open {
            let head = AnswerPart::Stream(self.head(200));
            self.emit(stream, head);
        }
        self.emit(stream, AnswerPart::Event(Bytes::copy_from_slice(message)));
        true
    }

    /// The answer to a client's request: the end of its stream.
    fn deliver_answer(&mut self, stream: StreamId, message: &[u8]) {
        let Some(client) = self.clients.remove(&stream) else {
            return;
        };
        let event = AnswerPart::Event(Bytes::copy_from_slice(message));
        if client.sse_open {
            self.emit(stream, event);
            self.reply(stream, AnswerPart::End);
        } else if client.accepts.json || !client.accepts.sse {
            let whole = AnswerPart::json(self.head(200), Bytes::copy_from_slice(message));
            self.reply(stream, whole);
        } else {
            self.emit(stream, AnswerPart::Stream(self.head(200)));
            self.emit(stream, event);
            self.reply(stream, AnswerPart::End);
        }
        self.maybe_finish();
    }

    fn fail_client(&mut self, stream: StreamId, e: &BridgeError) {
        let Some(client) = self.clients.remove(&stream) else {
            return;
        };
        if self.get_stream == Some(stream) {
            self.get_stream = None;
        }
        let text = format!("sluice bridge: {e}");
        let bytes = match client.kind {
            ClientKind::Request { id, .. } => {
                self.pending.remove(&id);
                let msg = jsonrpc::error_message(Some(id.as_bytes()), e.code(), &text, None);
                if client.sse_open {
                    self.emit(stream, AnswerPart::Event(Bytes::from(msg)));
                    AnswerPart::End
                } else {
                    AnswerPart::json(self.head(e.status()), msg)
                }
            }
            ClientKind::OneWay => {
                let msg = jsonrpc::error_message(None, e.code(), &text, None);
                AnswerPart::json(self.head(e.status()), msg)
            }
            // A GET stream just ends; the client's next GET learns why.
            ClientKind::Get => AnswerPart::End,
        };
        self.reply(stream, bytes);
    }

    /// The session is over: every client hears why, the stream closes.
    fn fail_session(&mut self, e: BridgeError) {
        if self.phase == SessionPhase::Closed {
            return;
        }
        let streams = self.clients.streams();
        for stream in streams {
            self.fail_client(stream, &e);
        }
        self.error = Some(e);
        self.shut();
    }

    fn shut(&mut self) {
        self.pending.clear();
        self.posts.clear();
        self.server_queue.clear();
        self.server_queue_bytes = 0;
        if let Some(p) = self.in_flight.take() {
            self.outputs.push_back(Output::AbandonPost { id: p.id });
        }
        self.endpoint_deadline = None;
        self.handshake_deadline = None;
        if self.phase != SessionPhase::Idle {
            self.outputs.push_back(Output::CloseStream);
        }
        self.phase = SessionPhase::Closed;
        self.outputs.push_back(Output::Closed {
            error: self.error.clone(),
        });
    }

    /// Per-request mode ends with its last client.
    fn maybe_finish(&mut self) {
        if self.mode == Mode::PerRequest
            && self.clients.is_empty()
            && self.phase != SessionPhase::Closed
        {
            self.shut();
        }
    }
}

/// The attached client streams, in id order: a sorted `Vec`, since an idle
/// session has one (its GET stream) and a B-tree's first leaf has room
/// for eleven.
#[derive(Default)]
struct Clients(Vec<(StreamId, Client)>);

impl Clients {
    fn len(&self) -> usize {
        self.0.len()
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn find(&self, stream: StreamId) -> Result<usize, usize> {
        self.0.binary_search_by_key(&stream, |(s, _)| *s)
    }

    /// Adds (or replaces) the client of `stream`.
    fn insert(&mut self, stream: StreamId, client: Client) {
        match self.find(stream) {
            Ok(i) => self.0[i].1 = client,
            Err(i) => self.0.insert(i, (stream, client)),
        }
    }

    fn remove(&mut self, stream: &StreamId) -> Option<Client> {
        let i = self.find(*stream).ok()?;
        Some(self.0.remove(i).1)
    }

    fn get_mut(&mut self, stream: &StreamId) -> Option<&mut Client> {
        let i = self.find(*stream).ok()?;
        Some(&mut self.0[i].1)
    }

    fn iter(&self) -> impl Iterator<Item = (StreamId, &Client)> {
        self.0.iter().map(|(s, c)| (*s, c))
    }

    fn streams(&self) -> Vec<StreamId> {
        self.0.iter().map(|(s, _)| *s).collect()
    }

    /// Gives back capacity once less than half of it is used.
    fn trim(&mut self) {
        if self.0.len() < self.0.capacity() / 2 {
            self.0.shrink_to_fit();
        }
    }
}

/// `{"jsonrpc":"2.0","id":<id>,"result"|"error":…}` with the client's id.
fn rebuild(id: &RawId, result: Option<&[u8]>, error: Option<&[u8]>) -> Vec<u8> {
    match (result, error) {
        (Some(r), _) => jsonrpc::result_message(id.as_bytes(), r),
        (None, Some(e)) => {
            let mut out = b"{\"jsonrpc\":\"2.0\",\"id\":".to_vec();
            out.extend_from_slice(id.as_bytes());
            out.extend_from_slice(b",\"error\":");
            out.extend_from_slice(e);
            out.push(b'}');
            out
        }
        (None, None) => jsonrpc::result_message(id.as_bytes(), b"{}"),
    }
}

/// JSON equality where numbers compare by value (`7.0` is `7`), the way a
/// backend that re-serializes ids sees them.
fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => x == y,
            _ => x == y,
        },
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http1::Header;
    use crate::legacy::PostAnswer;

    fn request(method: &str, body: &str) -> Request {
        Request {
            method: method.into(),
            target: "/sse".into(),
            headers: vec![
                Header::new("Host", "backend:9000"),
                Header::new("Accept", "application/json, text/event-stream"),
                Header::new("Authorization", "Bearer t"),
                Header::new("Mcp-Session-Id", "sid"),
            ],
            body: Bytes::from(body.to_owned()),
        }
    }

    fn drain(bridge: &mut Bridge) -> Vec<Output> {
        std::iter::from_fn(|| bridge.poll_output()).collect()
    }

    #[test]
    fn an_idle_session_with_its_get_stream_holds_no_spare_queue_buffers() {
        let now = Instant::now();
        let config = Arc::new(BridgeConfig::default());
        let mut bridge = Bridge::new(config, Mode::Session, Some("sid".into()), now);
        let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}"#;
        bridge.attach(1, request("POST", init), now);
        drain(&mut bridge);
        bridge.stream_data(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n\
              event: endpoint\ndata: /messages?s=1\n\n",
            now,
        );
        let post = drain(&mut bridge)
            .into_iter()
            .find_map(|o| match o {
                Output::Post { id, bytes, .. } => Some((id, bytes)),
                _ => None,
            })
            .expect("the initialize is POSTed");
        assert!(
            post.1
                .windows(24)
                .any(|w| w == b"Authorization: Bearer t\r"),
            "the client's fields go on"
        );
        let answer = PostAnswer {
            status: 202,
            excerpt: Vec::new(),
            reusable: true,
            session_id: None,
            content_type: String::new(),
        };
        bridge.post_done(post.0, PostOutcome::Answered(answer), now);
        drain(&mut bridge);
        bridge.stream_data(
            b"data: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n\n",
            now,
        );
        drain(&mut bridge);
        bridge.attach(2, request("GET", ""), now);
        assert!(!drain(&mut bridge).is_empty());

        assert_eq!(bridge.attached(), 1);
        assert_eq!(bridge.outputs.capacity(), 0);
        assert_eq!(bridge.posts.capacity(), 0);
        assert_eq!(bridge.pending.capacity(), 0);
        assert_eq!(bridge.server_queue.capacity(), 0);
        assert_eq!(bridge.clients.0.capacity(), 1);
    }
}
