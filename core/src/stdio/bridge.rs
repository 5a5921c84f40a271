//! The stdio bridge: one child process serving Streamable HTTP client
//! streams. All transitions live in this file but those of 2026-07-28's
//! stateless requests, in [`stateless`].

mod stateless;

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::Value;

use super::error::StdioError;
use super::ids::{IdRewriter, span_of};
use super::{Item, LineReader, StdioConfig, StdioMode, encode_message};
use crate::inject::Accepts;
use crate::jsonrpc::{self, Classified, Kind, Message, RawId, codes};
use crate::legacy::StreamId;
use crate::upstream::{AnswerHead, AnswerPart, Request};

/// The versions of MCP a client may be told it speaks through a shared
/// child (the Streamable HTTP eras with sessions), oldest first.
pub const SESSION_VERSIONS: &[&str] = &["2025-03-26", "2025-06-18", "2025-11-25"];

/// The id of the bridge's own `initialize` (shared mode). Client requests
/// go to the child under numeric ids, so a string cannot collide.
const OWN_INIT_ID: &[u8] = br#""sluice-initialize""#;

/// A child that ran this long before it ended is restarted without delay:
/// its failure says nothing about the next one.
const STABLE_UPTIME: Duration = Duration::from_secs(60);

/// How long a request whose client dropped its event stream stays with the
/// child, waiting for the client to resume it (`GET` with `Last-Event-ID`)
/// before it is cancelled.
pub const RESUME_GRACE: Duration = Duration::from_secs(30);
/// The client capabilities a shared child is told of: every one whose
/// requests sluice can route to a session. A session whose client did not
/// declare one has such requests refused for it.
const ROUTED_CAPABILITIES: [(&str, &str); 3] = [
    ("sampling/createMessage", "sampling"),
    ("elicitation/create", "elicitation"),
    ("roots/list", "roots"),
];
/// Requests of the child a session holds until it opens a stream for them.
const HELD_REQUESTS: usize = 16;
/// Events a session keeps for resumption, and their bytes.
const REPLAY_EVENTS: usize = 64;
const REPLAY_BYTES: usize = 1 << 20;

/// What the driver must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Start the child (then [`Bridge::spawned`] or [`Bridge::spawn_failed`]).
    Spawn,
    /// Write this line (newline included) to the child's stdin.
    ToChild(Bytes),
    /// End the child as the stdio transport says (close stdin, then
    /// SIGTERM, then SIGKILL) and report [`Bridge::child_exited`].
    Shutdown,
    /// Hand `part` to the exchange of `stream`.
    ToClient {
        /// The client stream.
        stream: StreamId,
        /// The part.
        part: AnswerPart,
    },
    /// The answer on `stream` is complete (or abandoned): drop its link.
    EndClient {
        /// The client stream.
        stream: StreamId,
    },
    /// Something for the log: what the child wrote that went nowhere, or
    /// the first line of a burst of noise on its stdout.
    Log(Note),
    /// The bridge is over (per-session mode, or shutdown): forget it.
    Closed {
        /// Why, when it failed.
        error: Option<StdioError>,
    },
}

/// A log line the bridge asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    /// A line on stdout that is not a message (the first of a burst,
    /// excerpt cut to [`super::NOISE_EXCERPT`]).
    Noise(String),
    /// A line refused by the framing (too long, not UTF-8).
    Refused(super::LineError),
    /// A message from the child that was dropped, and why.
    Dropped(&'static str),
    /// The child is up and answered `initialize` with this version.
    Initialized(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// No child; the next request spawns one.
    Idle,
    /// `Spawn` is out; waiting for `spawned`.
    Spawning,
    /// `initialize` is with the child (under `child_id`, or the bridge's own
    /// id when `None`), until `deadline`.
    Initializing {
        child_id: Option<u64>,
        deadline: Instant,
    },
    /// Forwarding.
    Ready { since: Instant },
    /// Shared mode: the child failed; a new one starts at `at`.
    Restarting { at: Instant },
    /// Over.
    Closed,
}

/// What the child told the bridge's own `initialize` (shared mode).
struct Initialized {
    result: serde_json::Map<String, Value>,
    version: String,
}

struct Session {
    /// Its GET stream, if one is open.
    get: Option<StreamId>,
    /// Ids of the child's requests sent to this session, awaiting its answer.
    server_requests: Vec<RawId>,
    /// Client streams of this session still open.
    streams: usize,
    /// When its last stream ended (for idle reaping).
    idle_since: Instant,
    /// What its event streams carried lately, for `Last-Event-ID`.
    replay: Replay,
    /// The capabilities its client declared in `initialize` (shared mode).
    capabilities: Option<serde_json::Map<String, Value>>,
    /// The child's requests for it that no stream could carry yet: they
    /// go out on its next GET stream.
    held: VecDeque<Bytes>,
    /// One 2026-07-28 request's own: no session id, no GET stream, no
    /// resumption; it ends with its stream.
    stateless: bool,
    /// The protocol version its client speaks, once initialized.
    version: Option<String>,
}

impl Session {
    fn new(now: Instant) -> Self {
        Session {
            get: None,
            server_requests: Vec::new(),
            streams: 0,
            idle_since: now,
            replay: Replay::default(),
            capabilities: None,
            held: VecDeque::new(),
            stateless: false,
            version: None,
        }
    }

    /// Its event streams open with a priming event (MCP 2025-11-25 on).
    fn primes(&self) -> bool {
        self.version.as_deref().is_some_and(|v| v >= "2025-11-25")
    }
}

/// The events of a session's streams, each with its id and the stream it
/// went out on (its first stream: a resumed stream carries on under the
/// stream it resumes), bounded.
#[derive(Default)]
struct Replay {
    last_id: u64,
    entries: VecDeque<Replayed>,
    bytes: usize,
}

enum Replayed {
    Event {
        id: u64,
        stream: StreamId,
        data: Bytes,
    },
    /// The stream's answer is complete.
    End { stream: StreamId },
}

impl Replay {
    /// Records `data` sent on `stream`; returns its event id.
    fn record(&mut self, stream: StreamId, data: &Bytes) -> u64 {
        self.last_id += 1;
        self.bytes += data.len();
        self.entries.push_back(Replayed::Event {
            id: self.last_id,
            stream,
            data: data.clone(),
        });
        while self.entries.len() > REPLAY_EVENTS || self.bytes > REPLAY_BYTES {
            if let Some(Replayed::Event { data, .. }) = self.entries.pop_front() {
                self.bytes -= data.len();
            }
        }
        self.last_id
    }

    /// The stream event `id` went out on, if it is still kept.
    fn stream_of(&self, id: u64) -> Option<StreamId> {
        self.entries.iter().find_map(|e| match e {
            Replayed::Event { id: i, stream, .. } if *i == id => Some(*stream),
            _ => None,
        })
    }

    /// What `stream` carried after event `after`, and whether it ended.
    fn after(&self, stream: StreamId, after: u64) -> (Vec<(u64, Bytes)>, bool) {
        let mut events = Vec::new();
        let mut ended = false;
        for e in &self.entries {
            match e {
                // A priming event is no message: nothing to send again.
                Replayed::Event { data, .. } if data.is_empty() => {}
                Replayed::Event {
                    id,
                    stream: s,
                    data,
                } if *s == stream && *id > after => {
                    events.push((*id, data.clone()));
                }
                Replayed::End { stream: s } if *s == stream => ended = true,
                _ => {}
            }
        }
        (events, ended)
    }
}

struct Client {
    session: String,
    kind: ClientKind,
    accepts: Accepts,
    /// The SSE head went out.
    sse_open: bool,
    /// Where its parts go.
    attached: Attached,
    /// A 2026-07-28 request: what its answer needs.
    modern: Option<stateless::Modern>,
}

/// Where a client stream's parts go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attached {
    /// To its own exchange.
    Live,
    /// Nowhere: the client dropped the stream after events with ids went
    /// out; they are kept for a resumption until the grace period ends.
    Orphaned { since: Instant },
    /// To the stream that resumed it.
    Resumed(StreamId),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum ClientKind {
    /// A request waiting for the child to be ready.
    Waiting,
    /// A request with the child under this id.
    InFlight { child_id: u64, client_id: RawId },
    /// The GET stream.
    Get,
    /// A GET with `Last-Event-ID` carrying on the answer of this stream.
    Resuming { of: StreamId },
    /// A 2026-07-28 `subscriptions/listen` stream: the notifications it
    /// agreed to (methods), each stamped with its subscription id (the
    /// request's id).
    Listen {
        subscription: RawId,
        methods: Vec<&'static str>,
    },
}

/// Whose call a message from the child serves (see `Bridge::caller`).
enum Caller {
    /// Nobody's: no request is in flight.
    Nobody,
    /// This session's; its latest call is on this stream.
    One(String, StreamId),
    /// Unknown: several sessions have requests in flight.
    Several,
}

/// A request that arrived before the child was ready.
struct Waiting {
    stream: StreamId,
    req: Request,
}

/// One stdio child serving client streams: every client session in
/// [`StdioMode::Shared`], one in [`StdioMode::PerSession`].
///
/// Push inputs ([`attach`](Self::attach), [`spawned`](Self::spawned),
/// [`spawn_failed`](Self::spawn_failed), [`child_output`](Self::child_output),
/// [`child_exited`](Self::child_exited), [`client_gone`](Self::client_gone),
/// [`handle_timeout`](Self::handle_timeout), [`close`](Self::close)), then
/// drain [`poll_output`](Self::poll_output) and perform each [`Output`] in
/// order; sleep until the next input or [`poll_timeout`](Self::poll_timeout).
pub struct Bridge {
    config: Arc<StdioConfig>,
    phase: Phase,
    reader: LineReader,
    ids: IdRewriter<StreamId>,
    outputs: VecDeque<Output>,
    clients: BTreeMap<StreamId, Client>,
    sessions: BTreeMap<String, Session>,
    waiting: VecDeque<Waiting>,
    /// Shared mode: the `params` of the child's `initialize` (the first
    /// client's, asking for the newest version), kept for restarts.
    init_params: Option<Vec<u8>>,
    initialized: Option<Initialized>,
    /// Failures in a row (shared mode's backoff).
    failures: u32,
    /// The `now` of the latest input.
    clock: Instant,
}

impl Bridge {
    /// A bridge with no child yet; the first request spawns it.
    pub fn new(config: Arc<StdioConfig>, now: Instant) -> Self {
        Bridge {
            reader: LineReader::new(config.limits),
            config,
            phase: Phase::Idle,
            ids: IdRewriter::new(),
            outputs: VecDeque::new(),
            clients: BTreeMap::new(),
            sessions: BTreeMap::new(),
            waiting: VecDeque::new(),
            init_params: None,
            initialized: None,
            failures: 0,
            clock: now,
        }
    }

    /// The next thing to do; drain after every input.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let phase = match self.phase {
            Phase::Initializing { deadline, .. } => Some(deadline),
            Phase::Restarting { at } if !self.waiting.is_empty() => Some(at),
            _ => None,
        };
        let idle = self.config.session_idle.and_then(|idle| {
            self.sessions
                .values()
                .filter(|s| s.streams == 0)
                .map(|s| s.idle_since + idle)
                .min()
        });
        let orphans = self
            .clients
            .values()
            .filter_map(|c| match c.attached {
                Attached::Orphaned { since } => Some(since + RESUME_GRACE),
                _ => None,
            })
            .min();
        phase.into_iter().chain(idle).chain(orphans).min()
    }

    /// Client sessions this bridge serves.
    pub fn sessions(&self) -> usize {
        self.sessions.len()
    }

    /// Whether session `id` lives here.
    pub fn has_session(&self, id: &str) -> bool {
        self.sessions.contains_key(id)
    }

    /// Requests with the child.
    pub fn in_flight(&self) -> usize {
        self.ids.in_flight()
    }

    /// The bridge is over.
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// Noise lines the child printed on stdout so far.
    pub fn noise_lines(&self) -> u64 {
        self.reader.noise_lines()
    }

    /// A client request on `stream`. `new_session` is the id the caller
    /// minted for it when [`super::dispatch`] said
    /// [`Dispatch::New`](super::Dispatch::New).
    pub fn attach(
        &mut self,
        stream: StreamId,
        req: Request,
        new_session: Option<String>,
        now: Instant,
    ) {
        self.clock = now;
        if self.phase == Phase::Closed {
            let e = StdioError::ShuttingDown;
            let part = error_part(&req, &self.config.json, &e, None);
            self.finish(stream, part);
            return;
        }
        let session = match new_session {
            Some(_) if self.sessions.len() >= self.config.max_sessions => {
                let e = StdioError::TooManySessions {
                    limit: self.config.max_sessions,
                };
                let part = error_part(&req, &self.config.json, &e, None);
                return self.finish(stream, part);
            }
            Some(id) => {
                self.sessions.insert(id.clone(), Session::new(now));
                id
            }
            None => match req
                .session_id()
                .filter(|id| self.sessions.contains_key(*id))
            {
                Some(id) => id.to_owned(),
                None => {
                    let part = unknown_session(&req, &self.config.json);
                    self.finish(stream, part);
                    return;
                }
            },
        };
        if let Some(s) = self.sessions.get_mut(&session) {
            s.streams += 1;
        }
        self.clients.insert(
            stream,
            Client {
                session,
                kind: ClientKind::Waiting,
                accepts: req.accepts(),
                sse_open: false,
                attached: Attached::Live,
                modern: None,
            },
        );
        match req.method.as_str() {
            "GET" => return self.open_get(stream, last_event_id(&req)),
            "DELETE" => return self.delete(stream),
            _ => {}
        }
        if self.config.mode == StdioMode::Shared
            && self.init_params.is_none()
            && let Some(params) = initialize_params(&req.body, &self.config.json)
        {
            self.init_params = Some(ask_for_version(&params, &self.config.protocol_version));
        }
        self.admit(stream, req);
    }

    /// A client's request is in: to the child when it is ready, else in
    /// line for it (the first in line starts it).
    fn admit(&mut self, stream: StreamId, req: Request) {
        match self.phase {
            Phase::Ready { .. } => self.forward(stream, req),
            // Per-session: the client's own initialize opens the child.
            Phase::Spawning | Phase::Initializing { .. } | Phase::Restarting { .. }
                if self.waiting.len() >= self.config.max_waiting =>
            {
                let e = StdioError::TooManyWaiting {
                    limit: self.config.max_waiting,
                };
                self.fail_stream(stream, &req, &e);
            }
            Phase::Idle => {
                self.waiting.push_back(Waiting { stream, req });
                self.spawn();
            }
            Phase::Spawning | Phase::Initializing { .. } | Phase::Restarting { .. } => {
                self.waiting.push_back(Waiting { stream, req });
            }
            Phase::Closed => {}
        }
    }

    /// The child is running: initialize it.
    pub fn spawned(&mut self, now: Instant) {
        self.clock = now;
        if self.phase != Phase::Spawning {
            return;
        }
        self.reader = LineReader::new(self.config.limits);
        let deadline = now + self.config.init_timeout;
        match self.config.mode {
            StdioMode::Shared => {
                let params = self
                    .init_params
                    .clone()
                    .unwrap_or_else(|| default_init_params(&self.config));
                let mut msg = Vec::with_capacity(params.len() + 64);
                msg.extend_from_slice(br#"{"jsonrpc":"2.0","id":"#);
                msg.extend_from_slice(OWN_INIT_ID);
                msg.extend_from_slice(br#","method":"initialize","params":"#);
                msg.extend_from_slice(&params);
                msg.push(b'}');
                self.send_to_child(&msg);
                self.phase = Phase::Initializing {
                    child_id: None,
                    deadline,
                };
            }
            StdioMode::PerSession => {
                // The client's own initialize goes first, straight through.
                let Some(at) = self
                    .waiting
                    .iter()
                    .position(|w| initialize_params(&w.req.body, &self.config.json).is_some())
                else {
                    // Nothing to open the session with (its client left).
                    self.end(None);
                    return;
                };
                let Some(w) = self.waiting.remove(at) else {
                    return;
                };
                match self.send_request(w.stream, &w.req) {
                    Some(child_id) => {
                        self.phase = Phase::Initializing {
                            child_id: Some(child_id),
                            deadline,
                        }
                    }
                    None => self.end(None),
                }
            }
        }
    }

    /// The child could not be started.
    pub fn spawn_failed(&mut self, detail: &str, now: Instant) {
        self.clock = now;
        if self.phase != Phase::Spawning {
            return;
        }
        self.child_failed(StdioError::SpawnFailed(detail.to_owned()), now);
    }

    /// Bytes from the child's stdout.
    pub fn child_output(&mut self, bytes: &[u8], now: Instant) {
        self.clock = now;
        self.reader.feed(bytes);
        self.drain_lines(now);
    }

    /// The child is gone; `how` says how it ended, in words a client may
    /// read (`exited with status 1`, `killed by signal 9 (SIGKILL)`).
    pub fn child_exited(&mut self, how: &str, now: Instant) {
        self.clock = now;
        // A last line without its newline still counts.
        self.reader.finish();
        self.drain_lines(now);
        match self.phase {
            Phase::Idle | Phase::Restarting { .. } | Phase::Closed => {}
            _ => self.child_failed(StdioError::Exited(how.to_owned()), now),
        }
    }

    /// The exchange of `stream` is gone (the client left, or its answer is
    /// complete and its link dropped).
    pub fn client_gone(&mut self, stream: StreamId, now: Instant) {
        self.clock = now;
        self.waiting.retain(|w| w.stream != stream);
        let Some(client) = self.clients.get_mut(&stream) else {
            return;
        };
        match client.kind.clone() {
            // A client that got events with ids may come back for the
            // rest: the request stays with the child for a while. One that
            // came back already (before sluice saw its old connection go,
            // as behind a proxy that keeps upstream connections) stays
            // with the stream that resumed it.
            ClientKind::InFlight { .. } if client.sse_open && client.modern.is_none() => {
                if !matches!(client.attached, Attached::Resumed(_)) {
                    client.attached = Attached::Orphaned { since: now };
                }
                return;
            }
            ClientKind::InFlight { child_id, .. } => {
                if self.ids.forget(child_id).is_some() {
                    self.cancel_on_child(child_id, "the client went away");
                }
            }
            ClientKind::Resuming { of } => {
                if let Some(c) = self.clients.get_mut(&of) {
                    c.attached = Attached::Orphaned { since: now };
                }
            }
            ClientKind::Waiting | ClientKind::Get | ClientKind::Listen { .. } => {}
        }
        self.release(stream);
    }

    /// Deadlines: the child's `initialize`, a restart due, idle sessions.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.clock = now;
        match self.phase {
            Phase::Initializing { deadline, .. } if now >= deadline => {
                self.outputs.push_back(Output::Shutdown);
                self.child_failed(StdioError::InitTimeout, now);
            }
            Phase::Restarting { at } if now >= at && !self.waiting.is_empty() => {
                self.phase = Phase::Idle;
                self.spawn();
            }
            _ => {}
        }
        let abandoned: Vec<(StreamId, Option<u64>)> = self
            .clients
            .iter()
            .filter(|(_, c)| matches!(c.attached, Attached::Orphaned { since } if now >= since + RESUME_GRACE))
            .map(|(s, c)| match c.kind {
                ClientKind::InFlight { child_id, .. } => (*s, Some(child_id)),
                _ => (*s, None),
            })
            .collect();
        for (stream, child_id) in abandoned {
            if let Some(child_id) = child_id
                && self.ids.forget(child_id).is_some()
            {
                self.cancel_on_child(child_id, "the client went away");
            }
            self.release(stream);
        }
        if let Some(idle) = self.config.session_idle {
            let expired: Vec<String> = self
                .sessions
                .iter()
                .filter(|(_, s)| s.streams == 0 && now >= s.idle_since + idle)
                .map(|(id, _)| id.clone())
                .collect();
            for id in expired {
                self.sessions.remove(&id);
            }
            if self.config.mode == StdioMode::PerSession
                && self.sessions.is_empty()
                && self.phase != Phase::Closed
            {
                self.end(None);
            }
        }
    }

    /// Shutting down: every client gets its error, the child is ended.
    pub fn close(&mut self) {
        if self.phase != Phase::Closed {
            self.end(Some(StdioError::ShuttingDown));
        }
    }

    // ---- client side -------------------------------------------------

    fn open_get(&mut self, stream: StreamId, last_event_id: Option<u64>) {
        let Some(session) = self.clients.get(&stream).map(|c| c.session.clone()) else {
            return;
        };
        let resumed = last_event_id.and_then(|after| {
            let of = self.sessions.get(&session)?.replay.stream_of(after)?;
            Some((of, after))
        });
        if let Some((of, after)) = resumed {
            return self.resume(stream, &session, of, after);
        }
        if self.get_taken(&session) {
            self.finish(stream, get_conflict(&session));
            return;
        }
        let held = match self.sessions.get_mut(&session) {
            Some(s) => {
                s.get = Some(stream);
                std::mem::take(&mut s.held)
            }
            None => VecDeque::new(),
        };
        if let Some(c) = self.clients.get_mut(&stream) {
            c.kind = ClientKind::Get;
        }
        self.open_sse(stream);
        for request in held {
            self.emit(stream, AnswerPart::Event(request));
        }
    }

    /// A GET with `Last-Event-ID` naming event `after` of stream `of`: what
    /// `of` carried since goes out on `stream`, and then, if `of` is a
    /// request still with the child, the rest of its answer; if `of` was a
    /// GET stream, `stream` becomes the session's GET stream.
    fn resume(&mut self, stream: StreamId, session: &str, of: StreamId, after: u64) {
        let (events, ended) = match self.sessions.get(session) {
            Some(s) => s.replay.after(of, after),
            None => return,
        };
        let in_flight = self
            .clients
            .get(&of)
            .is_some_and(|c| matches!(c.kind, ClientKind::InFlight { .. }));
        if !in_flight && !ended {
            // A GET stream's events: the new stream takes its place.
            if self.get_taken(session) {
                return self.finish(stream, get_conflict(session));
            }
            if let Some(s) = self.sessions.get_mut(session) {
                s.get = Some(stream);
            }
        }
        if let Some(c) = self.clients.get_mut(&stream) {
            c.sse_open = true;
            c.kind = if in_flight {
                ClientKind::Resuming { of }
            } else {
                ClientKind::Get
            };
        }
        self.push(stream, AnswerPart::Stream(head(200, session)));
        for (id, data) in events {
            self.push(stream, AnswerPart::IdentifiedEvent { id, data });
        }
        if in_flight {
            if let Some(c) = self.clients.get_mut(&of) {
                if c.attached == Attached::Live {
                    // Its old stream gets no more: end it.
                    self.outputs.push_back(Output::EndClient { stream: of });
                }
                if let Some(c) = self.clients.get_mut(&of) {
                    c.attached = Attached::Resumed(stream);
                }
            }
        } else if ended {
            self.finish(stream, AnswerPart::End);
        }
    }

    /// `session` has a GET stream open (a second one is a 409).
    fn get_taken(&self, session: &str) -> bool {
        self.sessions.get(session).is_some_and(|s| s.get.is_some())
    }

    fn delete(&mut self, stream: StreamId) {
        let Some(session) = self.clients.get(&stream).map(|c| c.session.clone()) else {
            return;
        };
        self.end_session(&session, stream, "the client ended the session");
        self.finish(stream, AnswerPart::empty(AnswerHead::status(200)));
        self.sessions.remove(&session);
        if self.config.mode == StdioMode::PerSession {
            self.end(None);
        }
    }

    /// Ends every stream of `session` but `except`: requests with the child
    /// are cancelled there and answered with an error, GET streams end.
    fn end_session(&mut self, session: &str, except: StreamId, reason: &str) {
        let streams: Vec<(StreamId, ClientKind)> = self
            .clients
            .iter()
            .filter(|(s, c)| c.session == session && **s != except)
            .map(|(s, c)| (*s, c.kind.clone()))
            .collect();
        for (stream, kind) in streams {
            match kind {
                ClientKind::InFlight {
                    child_id,
                    client_id,
                } => {
                    if self.ids.forget(child_id).is_some() {
                        self.cancel_on_child(child_id, reason);
                    }
                    self.answer_error(stream, &client_id, &StdioError::SessionEnded);
                }
                ClientKind::Get | ClientKind::Listen { .. } => self.finish(stream, AnswerPart::End),
                ClientKind::Waiting => self.fail_waiting(stream, &StdioError::SessionEnded),
                // Ends with the stream it resumes.
                ClientKind::Resuming { .. } => {}
            }
        }
    }

    /// A client message, the child ready (or, per-session, the client's
    /// initialize opening it).
    fn forward(&mut self, stream: StreamId, req: Request) {
        let json = self.config.json;
        let Some(client) = self.clients.get(&stream) else {
            return;
        };
        if let Some(modern) = client.modern.clone() {
            return self.forward_stateless(stream, req, modern);
        }
        let session = client.session.clone();
        let message = match jsonrpc::classify(&req.body, &json) {
            Err(e) => {
                let msg = jsonrpc::error_message(
                    None,
                    e.code(),
                    &format!("sluice: unreadable message: {e}"),
                    None,
                );
                self.finish(stream, AnswerPart::json(head(400, &session), msg));
                return;
            }
            Ok(Classified::Batch(_)) => {
                let msg = jsonrpc::error_message(
                    None,
                    codes::BATCH_REFUSED,
                    "sluice: batches are not bridged to a stdio server",
                    None,
                );
                self.finish(stream, AnswerPart::json(head(400, &session), msg));
                return;
            }
            Ok(Classified::Single(m)) => m,
        };
        let shared = self.config.mode == StdioMode::Shared;
        match message.kind {
            Kind::Request if shared && message.method.as_deref() == Some("initialize") => {
                self.answer_initialize(stream, &req.body, &message);
            }
            Kind::Request => {
                if self.send_request(stream, &req).is_none() {
                    let e = StdioError::InitRefused("no initialize result".into());
                    return self.fail_stream(stream, &req, &e);
                }
                // A call that asks for progress streams from the start, so
                // its client can resume it before the first event (2025-11-25
                // sessions, which prime their streams).
                let primes = self.sessions.get(&session).is_some_and(Session::primes);
                let sse = self.clients.get(&stream).is_some_and(|c| c.accepts.sse);
                if message.progress_token.is_some() && primes && sse {
                    self.open_sse(stream);
                }
            }
            Kind::Notification => {
                match message.method.as_deref() {
                    // The child was initialized once, by sluice.
                    Some("notifications/initialized") if shared => {}
                    Some("notifications/cancelled") => {
                        let clients = &self.clients;
                        let owns =
                            |s: &StreamId| clients.get(s).is_some_and(|c| c.session == session);
                        if let Some((target, text)) = self.ids.cancel(owns, &req.body, &message) {
                            self.send_to_child(&text);
                            // The cancelled request's stream ends with no answer.
                            if let Some(c) = self.clients.get_mut(&target) {
                                c.kind = ClientKind::Waiting;
                            }
                            self.finish_quietly(target);
                        }
                    }
                    _ => self.send_to_child(&req.body),
                }
                self.finish(stream, AnswerPart::empty(head(202, &session)));
            }
            Kind::Response | Kind::Error => {
                let id = message.id.unwrap_or_default();
                let owed = self.sessions.get_mut(&session).and_then(|s| {
                    let at = s.server_requests.iter().position(|r| r.as_bytes() == id)?;
                    Some(s.server_requests.remove(at))
                });
                if owed.is_some() {
                    self.send_to_child(&req.body);
                } else {
                    self.note(Note::Dropped("a client answered a request it was not sent"));
                }
                self.finish(stream, AnswerPart::empty(head(202, &session)));
            }
        }
    }

    /// Sends the request on `stream` to the child under a fresh id; `None`
    /// when it is not one request.
    fn send_request(&mut self, stream: StreamId, req: &Request) -> Option<u64> {
        let message = match jsonrpc::classify(&req.body, &self.config.json) {
            Ok(Classified::Single(m)) if m.kind == Kind::Request => m,
            _ => return None,
        };
        let client_id = message.raw_id()?;
        let (text, child_id) = self.ids.outbound(stream, &req.body, &message)?;
        if let Some(c) = self.clients.get_mut(&stream) {
            c.kind = ClientKind::InFlight {
                child_id,
                client_id,
            };
        }
        self.send_to_child(&text);
        Some(child_id)
    }

    /// Shared mode: a client's `initialize`, answered from what the child
    /// told sluice's own, with the version negotiated for this client.
    fn answer_initialize(&mut self, stream: StreamId, body: &[u8], message: &Message<'_>) {
        let id = message.id.unwrap_or(b"null");
        let Some(init) = &self.initialized else {
            let e = StdioError::InitRefused("no initialize result".into());
            let msg = jsonrpc::error_message(Some(id), e.code(), &format!("sluice: {e}"), None);
            return self.finish(
                stream,
                AnswerPart::json(AnswerHead::status(e.status()), msg),
            );
        };
        let params = message
            .params
            .clone()
            .and_then(|p| serde_json::from_slice::<Value>(&body[p]).ok());
        let asked = params
            .as_ref()
            .and_then(|p| p.get("protocolVersion")?.as_str().map(str::to_owned));
        let version = negotiate(asked.as_deref(), &init.version);
        let capabilities = match params.as_ref().and_then(|p| p.get("capabilities")) {
            Some(Value::Object(c)) => c.clone(),
            _ => serde_json::Map::new(),
        };
        let session = self.clients.get(&stream).map(|c| c.session.clone());
        if let Some(s) = session.and_then(|s| self.sessions.get_mut(&s)) {
            s.capabilities = Some(capabilities);
            s.version = Some(version.clone());
        }
        let mut result = init.result.clone();
        result.insert("protocolVersion".into(), Value::String(version));
        let result = Value::Object(result).to_string();
        let msg = jsonrpc::result_message(id, result.as_bytes());
        self.deliver(stream, msg, true);
    }

    // ---- child side --------------------------------------------------

    fn drain_lines(&mut self, now: Instant) {
        while let Some(item) = self.reader.poll() {
            match item {
                Item::Message(text) => self.child_message(&text, now),
                Item::Noise(noise) => {
                    if noise.first_of_burst {
                        self.note(Note::Noise(noise.excerpt));
                    }
                }
                Item::Refused(e) => self.note(Note::Refused(e)),
            }
        }
    }

    fn child_message(&mut self, text: &[u8], now: Instant) {
        let message = match jsonrpc::classify(text, &self.config.json) {
            Ok(Classified::Single(m)) => m,
            Ok(Classified::Batch(_)) => {
                return self.note(Note::Dropped("a batch from the child"));
            }
            Err(_) => return self.note(Note::Dropped("a line that is not JSON-RPC")),
        };
        match message.kind {
            Kind::Response | Kind::Error => self.child_answer(text, &message, now),
            Kind::Notification => self.child_notification(text, &message),
            Kind::Request => self.child_request(text, &message),
        }
    }

    fn child_answer(&mut self, text: &[u8], message: &Message<'_>, now: Instant) {
        if let Phase::Initializing { child_id, .. } = self.phase {
            let ours = match child_id {
                None => message.id == Some(OWN_INIT_ID),
                Some(c) => message.id == Some(c.to_string().as_bytes()),
            };
            if ours {
                return self.initialize_answered(text, message, child_id.is_some(), now);
            }
        }
        match self.ids.inbound(text, message) {
            Ok((stream, restored)) => {
                match self.clients.get(&stream).and_then(|c| c.modern.clone()) {
                    Some(modern) => self.answer_stateless(stream, restored, &modern),
                    None => self.deliver(stream, restored, true),
                }
            }
            Err(_) => self.note(Note::Dropped("an answer to no request in flight")),
        }
    }

    fn initialize_answered(
        &mut self,
        text: &[u8],
        message: &Message<'_>,
        clients_own: bool,
        now: Instant,
    ) {
        let result = message
            .result
            .clone()
            .and_then(|r| serde_json::from_slice::<Value>(&text[r]).ok());
        let version = match &result {
            Some(Value::Object(r)) => r.get("protocolVersion").and_then(Value::as_str),
            _ => None,
        }
        .map(str::to_owned);
        if clients_own {
            // Per-session: the answer, whatever it is, is the client's.
            if let Ok((stream, restored)) = self.ids.inbound(text, message) {
                let session = self.clients.get(&stream).map(|c| c.session.clone());
                if let Some(s) = session.and_then(|s| self.sessions.get_mut(&s)) {
                    s.version.clone_from(&version);
                }
                self.deliver(stream, restored, true);
            }
        }
        let (Some(Value::Object(result)), Some(version)) = (result, version) else {
            let why = message
                .error
                .clone()
                .map(|e| String::from_utf8_lossy(&text[e]).into_owned())
                .unwrap_or_else(|| "a result without a protocolVersion".into());
            self.outputs.push_back(Output::Shutdown);
            return self.child_failed(StdioError::InitRefused(why), now);
        };
        self.note(Note::Initialized(version.clone()));
        if !clients_own {
            self.send_to_child(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
        }
        self.initialized = Some(Initialized { result, version });
        self.phase = Phase::Ready { since: now };
        for w in std::mem::take(&mut self.waiting) {
            self.forward(w.stream, w.req);
        }
    }

    fn child_notification(&mut self, text: &[u8], message: &Message<'_>) {
        if message.method.as_deref() == Some("notifications/progress") {
            match self.ids.progress(text, message) {
                Some((stream, restored)) => self.deliver(stream, restored, false),
                None => self.note(Note::Dropped("progress for no request in flight")),
            }
            return;
        }
        // A log line during one session's calls is that session's (on the
        // call's stream, as an HTTP server sends it); any other, like
        // list_changed, resources/updated or the child cancelling its own
        // request, is news for every session.
        if message.method.as_deref() == Some("notifications/message")
            && let Caller::One(session, stream) = self.caller()
        {
            // A 2026-07-28 request gets log lines only when it asked.
            let wants = |c: &Client| c.modern.as_ref().is_none_or(|m| m.wants_logs);
            if self.clients.get(&stream).is_some_and(wants)
                && let Some((stream, _)) = self.carrier(&session, Some(stream))
            {
                self.deliver(stream, text.to_vec(), false);
            }
            return;
        }
        let gets: Vec<StreamId> = self.sessions.values().filter_map(|s| s.get).collect();
        let listened = self.tell_listeners(text, message);
        if gets.is_empty() && !listened {
            self.note(Note::Dropped("a notification with no GET stream open"));
        }
        for stream in gets {
            self.emit(stream, AnswerPart::Event(Bytes::copy_from_slice(text)));
        }
    }

    /// A request from the child (sampling, elicitation, roots, ping): to
    /// the session whose request went out last, on that request's stream
    /// if it takes events, else on the session's GET stream. Its id is
    /// passed as the child wrote it: one child's ids are unique, and each
    /// session is only sent its own.
    fn child_request(&mut self, text: &[u8], message: &Message<'_>) {
        let id = message.id.unwrap_or(b"null");
        if message.method.as_deref() == Some("ping") {
            return self.send_to_child(&jsonrpc::result_message(id, b"{}"));
        }
        let (session, call) = match self.caller() {
            Caller::One(session, stream) => (Some(session), Some(stream)),
            // Nothing in flight: the one session there is, if so.
            Caller::Nobody => {
                let mut sessions = self.sessions.keys();
                match (sessions.next(), sessions.next()) {
                    (Some(s), None) => (Some(s.clone()), None),
                    _ => (None, None),
                }
            }
            Caller::Several => {
                let msg = jsonrpc::error_message(
                    Some(id),
                    codes::INTERNAL_ERROR,
                    "sluice: several client sessions have calls with this shared stdio server, and \
                     nothing tells which one this request serves (run it with stdio_mode = \
                     \"per-session\")",
                    None,
                );
                return self.send_to_child(&msg);
            }
        };
        let refuse = |code: i64, why: &str| jsonrpc::error_message(Some(id), code, why, None);
        let Some(session) = session else {
            let msg = refuse(
                codes::INTERNAL_ERROR,
                "sluice: no client session to send this request to",
            );
            return self.send_to_child(&msg);
        };
        // A shared child was told of every capability sluice routes; this
        // session's client may not have declared the one needed.
        let needed = ROUTED_CAPABILITIES
            .iter()
            .find(|(m, _)| message.method.as_deref() == Some(*m))
            .map(|(_, cap)| *cap);
        if self.sessions.get(&session).is_some_and(|s| s.stateless) {
            return self.refuse_for_stateless(&session, call, id, needed);
        }
        let declared = |s: &Session| match (&s.capabilities, needed) {
            (Some(caps), Some(cap)) => caps.contains_key(cap),
            _ => true,
        };
        if !self.sessions.get(&session).is_some_and(declared) {
            let msg = refuse(
                codes::METHOD_NOT_FOUND,
                &format!(
                    "sluice: the client of this session did not declare the {} capability",
                    needed.unwrap_or_default()
                ),
            );
            return self.send_to_child(&msg);
        }
        let Some((stream, session)) = self.carrier(&session, call) else {
            // No stream open for it yet (a request right after initialize):
            // its next GET stream gets it.
            let held = self.sessions.get_mut(&session).map(|s| {
                if s.held.len() < HELD_REQUESTS {
                    s.held.push_back(Bytes::copy_from_slice(text));
                    s.server_requests.push(RawId::new(id));
                    true
                } else {
                    false
                }
            });
            if held != Some(true) {
                let msg = refuse(
                    codes::INTERNAL_ERROR,
                    "sluice: no client stream can carry this request",
                );
                self.send_to_child(&msg);
            }
            return;
        };
        if let Some(s) = self.sessions.get_mut(&session) {
            s.server_requests.push(RawId::new(id));
        }
        self.deliver(stream, text.to_vec(), false);
    }

    /// Whose call the child's own request or log line serves. On the
    /// stdio transport nothing in the message says: only when every request
    /// in flight belongs to one session is it known (its latest call then),
    /// else a message meant for one session could reach another.
    fn caller(&self) -> Caller {
        let mut found: Option<(&str, u64, StreamId)> = None;
        for (child_id, stream) in self.ids.owners() {
            let Some(c) = self.clients.get(stream) else {
                continue;
            };
            match found {
                Some((s, _, _)) if s != c.session => return Caller::Several,
                Some((_, latest, _)) if latest > child_id => {}
                _ => found = Some((&c.session, child_id, *stream)),
            }
        }
        match found {
            Some((session, _, stream)) => Caller::One(session.to_owned(), stream),
            None => Caller::Nobody,
        }
    }

    /// The stream that carries a message for `session`: its call's stream
    /// `call` when that takes events, else its GET stream.
    fn carrier(&self, session: &str, call: Option<StreamId>) -> Option<(StreamId, String)> {
        if let Some(stream) = call
            && let Some(c) = self.clients.get(&stream)
            && (c.accepts.sse || c.sse_open)
        {
            return Some((stream, session.to_owned()));
        }
        let get = self.sessions.get(session)?.get?;
        Some((get, session.to_owned()))
    }

    /// The child died, could not start, or failed its initialize: every
    /// request with it fails with `e`; shared mode restarts it after a
    /// backoff, per-session mode ends.
    fn child_failed(&mut self, e: StdioError, now: Instant) {
        let initializing = matches!(self.phase, Phase::Spawning | Phase::Initializing { .. });
        let stable = matches!(self.phase, Phase::Ready { since } if now.duration_since(since) >= STABLE_UPTIME);
        self.failures = if stable { 1 } else { self.failures + 1 };
        self.ids.forget_all(|_| true);
        let in_flight: Vec<(StreamId, RawId)> = self
            .clients
            .iter()
            .filter_map(|(s, c)| match &c.kind {
                ClientKind::InFlight { client_id, .. } => Some((*s, client_id.clone())),
                _ => None,
            })
            .collect();
        for (stream, client_id) in in_flight {
            self.answer_error(stream, &client_id, &e);
        }
        for s in self.sessions.values_mut() {
            s.server_requests.clear();
        }
        self.initialized = None;
        if initializing {
            // The child cannot start: who waits for it hears why.
            let waiting: Vec<StreamId> = self.waiting.iter().map(|w| w.stream).collect();
            for stream in waiting {
                self.fail_waiting(stream, &e);
            }
        }
        match self.config.mode {
            StdioMode::Shared => {
                let delay = backoff(
                    self.failures,
                    self.config.restart_backoff,
                    self.config.restart_backoff_max,
                );
                self.phase = Phase::Restarting { at: now + delay };
            }
            StdioMode::PerSession => {
                self.phase = Phase::Idle;
                self.end(Some(e));
            }
        }
    }

    // ---- output helpers ----------------------------------------------

    fn spawn(&mut self) {
        self.phase = Phase::Spawning;
        self.outputs.push_back(Output::Spawn);
    }

    /// The end of the bridge: clients hear `error` (or their streams just
    /// end), the child is shut down.
    fn end(&mut self, error: Option<StdioError>) {
        let e = error.clone().unwrap_or(StdioError::SessionEnded);
        let streams: Vec<(StreamId, ClientKind)> = self
            .clients
            .iter()
            .map(|(s, c)| (*s, c.kind.clone()))
            .collect();
        for (stream, kind) in streams {
            match kind {
                ClientKind::InFlight { client_id, .. } => self.answer_error(stream, &client_id, &e),
                ClientKind::Get => self.finish(stream, AnswerPart::End),
                ClientKind::Listen { subscription, .. } => self.end_listen(stream, &subscription),
                ClientKind::Waiting => self.fail_waiting(stream, &e),
                ClientKind::Resuming { .. } => {
                    if self.clients.contains_key(&stream) {
                        self.finish(stream, AnswerPart::End);
                    }
                }
            }
        }
        self.waiting.clear();
        self.sessions.clear();
        if !matches!(self.phase, Phase::Idle | Phase::Restarting { .. }) {
            self.outputs.push_back(Output::Shutdown);
        }
        self.phase = Phase::Closed;
        self.outputs.push_back(Output::Closed { error });
    }

    /// Forgets the client of `stream`, counting its session's streams.
    fn release(&mut self, stream: StreamId) {
        let Some(client) = self.clients.remove(&stream) else {
            return;
        };
        if let Some(s) = self.sessions.get_mut(&client.session) {
            s.streams = s.streams.saturating_sub(1);
            if s.get == Some(stream) {
                s.get = None;
            }
            if s.streams == 0 {
                s.idle_since = self.clock;
                if s.stateless {
                    self.sessions.remove(&client.session);
                }
            }
        }
    }

    /// Sends the answer (`last`) or a message before it to `stream`, as
    /// JSON or SSE as the client accepts and as the stream stands: an
    /// answer goes as JSON unless the client takes only SSE (one that takes
    /// neither gets JSON, as from an HTTP upstream); a message before it
    /// only to a client that takes SSE.
    fn deliver(&mut self, stream: StreamId, text: Vec<u8>, last: bool) {
        self.deliver_as(stream, text, last, 200);
    }

    /// [`deliver`](Self::deliver), with `status` for an answer sent as JSON.
    fn deliver_as(&mut self, stream: StreamId, text: Vec<u8>, last: bool, status: u16) {
        let Some(client) = self.clients.get_mut(&stream) else {
            return;
        };
        if !client.sse_open {
            let session = client.session.clone();
            if last && (client.accepts.json || !client.accepts.sse) {
                return self.finish(stream, AnswerPart::json(head(status, &session), text));
            }
            if !client.accepts.sse {
                return self.note(Note::Dropped("a message for a client that takes no events"));
            }
            self.open_sse(stream);
        }
        self.emit(stream, AnswerPart::Event(Bytes::from(text)));
        if last {
            self.finish(stream, AnswerPart::End);
        }
    }

    /// Opens `stream`'s answer as an event stream: the head, then, for a
    /// session at MCP 2025-11-25 or later, a priming event.
    fn open_sse(&mut self, stream: StreamId) {
        let Some(client) = self.clients.get_mut(&stream) else {
            return;
        };
        client.sse_open = true;
        let session = client.session.clone();
        self.emit(stream, AnswerPart::Stream(head(200, &session)));
        if self.sessions.get(&session).is_some_and(Session::primes) {
            self.emit(stream, AnswerPart::Prime(0));
        }
    }

    /// A cancelled request's stream ends with no answer: the client
    /// cancelled it and expects none.
    fn finish_quietly(&mut self, stream: StreamId) {
        let Some(client) = self.clients.get(&stream) else {
            return;
        };
        let part = if client.sse_open {
            AnswerPart::End
        } else {
            AnswerPart::empty(head(202, &client.session))
        };
        self.finish(stream, part);
    }

    fn answer_error(&mut self, stream: StreamId, id: &RawId, e: &StdioError) {
        let msg =
            jsonrpc::error_message(Some(id.as_bytes()), e.code(), &format!("sluice: {e}"), None);
        let Some(client) = self.clients.get(&stream) else {
            return;
        };
        if client.sse_open {
            self.emit(stream, AnswerPart::Event(Bytes::from(msg)));
            self.finish(stream, AnswerPart::End);
        } else {
            let part = AnswerPart::json(head(e.status(), &client.session), msg);
            self.finish(stream, part);
        }
    }

    /// A request still waiting for the child fails with `e`.
    fn fail_waiting(&mut self, stream: StreamId, e: &StdioError) {
        match self.waiting.iter().position(|w| w.stream == stream) {
            Some(at) => {
                if let Some(w) = self.waiting.remove(at) {
                    self.fail_stream(stream, &w.req, e);
                }
            }
            None => self.finish(stream, AnswerPart::empty(AnswerHead::status(e.status()))),
        }
    }

    /// Answers a request that never reached the child with `e`.
    fn fail_stream(&mut self, stream: StreamId, req: &Request, e: &StdioError) {
        let session = self.clients.get(&stream).map(|c| c.session.as_str());
        let part = error_part(req, &self.config.json, e, session);
        self.finish(stream, part);
    }

    /// A part for `stream`'s client, wherever it is attached now; a
    /// session's events get ids and are kept for resumption.
    fn emit(&mut self, stream: StreamId, part: AnswerPart) {
        let Some(client) = self.clients.get(&stream) else {
            return self.push(stream, part);
        };
        let target = match client.attached {
            Attached::Live => Some(stream),
            Attached::Orphaned { .. } => None,
            Attached::Resumed(to) => Some(to),
        };
        let part = match (part, self.sessions.get_mut(&client.session)) {
            // Nothing to resume on 2026-07-28: no ids, nothing kept.
            (part, Some(session)) if session.stateless => part,
            (AnswerPart::Event(data), Some(session)) => {
                let id = session.replay.record(stream, &data);
                AnswerPart::IdentifiedEvent { id, data }
            }
            (AnswerPart::Prime(_), Some(session)) => {
                AnswerPart::Prime(session.replay.record(stream, &Bytes::new()))
            }
            (AnswerPart::End, Some(session)) => {
                session.replay.entries.push_back(Replayed::End { stream });
                AnswerPart::End
            }
            (part, _) => part,
        };
        if let Some(target) = target {
            self.push(target, part);
        }
    }

    fn push(&mut self, stream: StreamId, part: AnswerPart) {
        self.outputs.push_back(Output::ToClient { stream, part });
    }

    /// The last part on `stream`, which then ends (and the stream that
    /// resumed it, if one did).
    fn finish(&mut self, stream: StreamId, part: AnswerPart) {
        let attached = self.clients.get(&stream).map(|c| c.attached);
        self.emit(stream, part);
        match attached {
            None | Some(Attached::Live) => self.outputs.push_back(Output::EndClient { stream }),
            Some(Attached::Orphaned { .. }) => {}
            Some(Attached::Resumed(to)) => {
                self.outputs.push_back(Output::EndClient { stream: to });
                self.release(to);
            }
        }
        self.release(stream);
    }

    fn send_to_child(&mut self, text: &[u8]) {
        self.outputs
            .push_back(Output::ToChild(Bytes::from(encode_message(text))));
    }

    fn cancel_on_child(&mut self, child_id: u64, reason: &str) {
        let mut msg = Vec::with_capacity(96);
        msg.extend_from_slice(
            br#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"#,
        );
        msg.extend_from_slice(child_id.to_string().as_bytes());
        msg.extend_from_slice(br#","reason":"#);
        jsonrpc::write_json_string(&mut msg, reason);
        msg.extend_from_slice(b"}}");
        self.send_to_child(&msg);
    }

    fn note(&mut self, note: Note) {
        self.outputs.push_back(Output::Log(note));
    }
}

/// A head for `session`'s client; a stateless request's has no session id.
fn head(status: u16, session: &str) -> AnswerHead {
    let named = !session.is_empty() && !stateless::is_stateless_key(session);
    AnswerHead::status(status).with_session(named.then_some(session))
}

/// The answer to a second GET stream for `session`: 409, as the spec says.
fn get_conflict(session: &str) -> AnswerPart {
    let msg = jsonrpc::error_message(
        None,
        codes::INVALID_REQUEST,
        "sluice: this session's GET stream is already open",
        None,
    );
    AnswerPart::json(head(409, session), msg)
}

/// The whole error answer to a request that never reached the child: its
/// id (null for anything but one request), `e`'s status and code.
pub(super) fn error_part(
    req: &Request,
    json: &jsonrpc::Limits,
    e: &StdioError,
    session: Option<&str>,
) -> AnswerPart {
    let id = match jsonrpc::classify(&req.body, json) {
        Ok(Classified::Single(m)) if m.kind == Kind::Request => m.raw_id(),
        _ => None,
    };
    let msg = jsonrpc::error_message(
        id.as_ref().map(RawId::as_bytes),
        e.code(),
        &format!("sluice: {e}"),
        None,
    );
    AnswerPart::json(head(e.status(), session.unwrap_or_default()), msg)
}

/// 404 for a session id nobody knows (expired, deleted, or its child
/// ended): the client starts over, as the spec says.
pub(super) fn unknown_session(req: &Request, json: &jsonrpc::Limits) -> AnswerPart {
    let id = match jsonrpc::classify(&req.body, json) {
        Ok(Classified::Single(m)) if m.kind == Kind::Request => m.raw_id(),
        _ => None,
    };
    let msg = jsonrpc::error_message(
        id.as_ref().map(RawId::as_bytes),
        codes::INVALID_REQUEST,
        "sluice: unknown or expired session",
        None,
    );
    AnswerPart::json(AnswerHead::status(404), msg)
}

/// The event a client resumes after: `Last-Event-ID`, when it is one of
/// the numbers sluice hands out.
fn last_event_id(req: &Request) -> Option<u64> {
    let v = req.header("last-event-id")?;
    if v.is_empty() || v.len() > 20 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
}

/// The `params` of an `initialize` request in `body`, as written but for
/// a progress token, which becomes the bridge's own id: sluice's own
/// `initialize` must not give the child a token that a client request can
/// get (its child id), or progress on it would go to that request.
fn initialize_params(body: &[u8], json: &jsonrpc::Limits) -> Option<Vec<u8>> {
    match jsonrpc::classify(body, json) {
        Ok(Classified::Single(m))
            if m.kind == Kind::Request && m.method.as_deref() == Some("initialize") =>
        {
            let Some(p) = m.params else {
                return Some(b"{}".to_vec());
            };
            let token = m.progress_token.and_then(|t| span_of(body, t));
            Some(match token {
                Some(t) if p.start <= t.start && t.end <= p.end => {
                    let mut out = body[p.start..t.start].to_vec();
                    out.extend_from_slice(OWN_INIT_ID);
                    out.extend_from_slice(&body[t.end..p.end]);
                    out
                }
                _ => body[p].to_vec(),
            })
        }
        _ => None,
    }
}

/// The first client's `initialize` params as sluice's own: its
/// capabilities and `clientInfo`, asking for `version` (the newest sluice
/// speaks; each client is told the version negotiated for it).
fn ask_for_version(params: &[u8], version: &str) -> Vec<u8> {
    match serde_json::from_slice::<Value>(params) {
        Ok(Value::Object(mut p)) => {
            p.insert("protocolVersion".into(), Value::String(version.to_owned()));
            // Every capability sluice can route, so the child offers what
            // needs them (tools that sample, elicit, read roots) to whoever
            // declared them; the first client's own settings where it has.
            let caps = p
                .entry("capabilities")
                .or_insert_with(|| Value::Object(serde_json::Map::new()));
            if let Value::Object(caps) = caps {
                for (_, cap) in ROUTED_CAPABILITIES {
                    caps.entry(cap)
                        .or_insert_with(|| Value::Object(serde_json::Map::new()));
                }
            }
            Value::Object(p).to_string().into_bytes()
        }
        _ => params.to_vec(),
    }
}

/// sluice's own `initialize` params when no client's is known (a restart
/// before any client initialized).
fn default_init_params(config: &StdioConfig) -> Vec<u8> {
    let params = serde_json::json!({
        "capabilities": {},
        "clientInfo": { "name": "sluice", "version": env!("CARGO_PKG_VERSION") },
    });
    ask_for_version(params.to_string().as_bytes(), &config.protocol_version)
}

/// The version a client is told: the older of what it asked for and what
/// the child speaks, when sluice knows it; else the child's.
fn negotiate(asked: Option<&str>, child: &str) -> String {
    match asked {
        Some(a) if SESSION_VERSIONS.contains(&a) && (child.is_empty() || a <= child) => {
            a.to_owned()
        }
        _ => child.to_owned(),
    }
}

/// The delay before restart number `failures` (1 = the first): doubling
/// from `first`, at most `max`.
fn backoff(failures: u32, first: Duration, max: Duration) -> Duration {
    let shift = failures.saturating_sub(1).min(20);
    first.saturating_mul(1 << shift).min(max)
}
