//! Fuzzer-chosen interleavings on one `stdio::Bridge` (shared or
//! per-session, picked by the first byte; tiny limits; a virtual clock):
//! client requests as `stdio::dispatch` routes them (`initialize`,
//! `tools/call` with and without a progress token, notifications, the
//! client's `notifications/cancelled` naming an id it sent, its answers to
//! the server's requests, garbage; GET; DELETE; each with a known, unknown or
//! absent session and an `Accept` taking JSON, SSE, both or neither),
//! 2026-07-28 stateless POSTs (`tools/call` with and without a progress
//! token, declaring sampling or not, asking for log lines or not;
//! `tools/list`; `server/discover`; `subscriptions/listen`; a removed method;
//! a notification — each with a valid envelope or one broken in one of the
//! ways the era refuses: no `_meta`, a key missing, a version, method or
//! name header that does not match the body, a header twice, an unsupported
//! version; routed to `attach_stateless` as `Dispatch::Stateless` says, in
//! shared mode), the child starting or failing to, its stdout (lines it
//! would write — answers to the ids the bridge sent it, progress on the
//! tokens it was sent, its own requests, broadcasts, noise, overlong lines
//! — split anywhere, and raw bytes), its exit, clients leaving (also in the
//! middle of a drain, as the driver reports a link that failed),
//! deadlines, `close`.
//!
//! Never panic, and:
//! 1. every `ToChild` is one line: it ends with its only `\n`, and the text
//!    before it is one message `jsonrpc::classify` accepts;
//! 2. a client stream gets a whole answer, or an SSE head, events and an
//!    end, in that order, then one `EndClient`; nothing after it, nothing
//!    for a stream the client left; a head names the stream's own session,
//!    if any. A prime comes right after a head and nowhere else; the head
//!    of a session told 2025-11-25 or later is followed by one, any other
//!    not (an `initialize`'s own stream is judged by the version its answer
//!    tells); a call with a progress token from a primed session, from a
//!    client taking SSE, has its head out when it reaches the child. Prime
//!    and event ids on a session's streams are unique and increase
//!    together;
//! 3. a request stream's answer (the body of its whole answer, or its last
//!    event) carries the id the client wrote, byte for byte, and comes last;
//!    its progress carries the client's token byte for byte; it ends with
//!    its answer unless the client cancelled it. The child's answer to a
//!    request (and its progress) reaches the stream that sent it, at once,
//!    and progress on sluice's own `initialize` reaches no client (the
//!    fuzzed child marks what it writes with the child id). A GET
//!    stream's events are no answers and no progress; other POSTs and
//!    DELETEs get one whole answer;
//! 4. no two requests in flight on one child share an id (in flight: from
//!    its `ToChild` until the child answers it, the bridge cancels it, the
//!    child exits or the next one is spawned); a request reaches the child
//!    only for a stream still open; its progress token there is its child
//!    id; a cancel names a request in flight;
//! 5. `Closed` comes at most once, when every stream that did not leave
//!    has ended; after it no `Spawn`, `Shutdown`, request or notification
//!    to the child, and nothing for the streams attached before it: one
//!    attached later gets one whole refusal. (What the bridge still does
//!    after `Closed`, if fed the child's output, is answer the child's own
//!    requests — `ToChild` responses, which the driver, gone by then, never
//!    writes — and log.) A per-session bridge spawns at most once;
//! 6. after `handle_timeout(now)`, `poll_timeout()` is later than `now`;
//! 7. stateless (2026-07-28) streams: a head never carries a session id and
//!    events never carry ids (nor come as primes); the answer carries the
//!    client's id byte for byte (3 holds for them too); a broken envelope
//!    is refused at once, 400 with its code (-32602, -32020, -32022); an
//!    object result has `resultType`; the child never asks them anything;
//!    `server/discover`, `subscriptions/listen` and removed methods never
//!    reach the child; a listen stream's first event is the
//!    acknowledgement and every event but its result is a notification
//!    stamped with its subscription id (the request's id, byte for byte);
//!    a stateless client that leaves while its call is with the child has
//!    it cancelled there at once; and they never become sessions: the
//!    bridge's sessions are the handshake sessions it still knows plus one
//!    per open stateless stream. No `params._meta` sent to the child holds
//!    an `io.modelcontextprotocol/` key;
//!
//! and `close()` at the end closes the bridge with every stream ended.
//!
//! The seeds in `fuzz/seeds/stdio_bridge` are written by hand in the
//! encoding `arbitrary` 1.5 reads: the flags byte, then per op a byte with
//! its low bit set (one more op) and the op; an enum is a `u32` tag, little
//! endian, whose `(tag * variants) >> 32` is the variant's index, then its
//! fields in order; a `u8` is one byte, a `bool` one byte's low bit, a
//! `u16` two bytes little endian, an `Option` a `bool` and then the value
//! (the generator is `fuzz/seeds/stdio_bridge.py`).
//! Adding a variant re-maps every tag: the seeds stay valid but mean
//! something else, so write them again.
#![no_main]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sluice_core::http1::Header;
use sluice_core::jsonrpc::{self, Classified, Kind, Message};
use sluice_core::legacy::StreamId;
use sluice_core::stdio::{
    self, Bridge, Dispatch, Item, LineReader, Output, SESSION_VERSIONS, StdioConfig, StdioLimits,
    StdioMode,
};
use sluice_core::upstream::{AnswerPart, Request};

/// Ids clients pick from: equal values in other spellings, a huge number,
/// the bridge's own initialize id.
const IDS: [&str; 10] = [
    "1",
    "\"1\"",
    "1.0",
    "\"a\"",
    "12345678901234567890",
    "-0",
    "1e0",
    "\"\\u0031\"",
    "0",
    "\"sluice-initialize\"",
];
const TOKENS: [&str; 5] = ["\"p\"", "7", "7.0", "\"\\u0070\"", "1"];
/// Ids of the child's own requests.
const SERVER_IDS: [&str; 5] = ["0", "1", "\"s1\"", "\"sluice-initialize\"", "7.0"];
const SERVER_METHODS: [&str; 4] = [
    "ping",
    "sampling/createMessage",
    "roots/list",
    "elicitation/create",
];
const OWN_INIT_ID: &[u8] = br#""sluice-initialize""#;
/// No client stream: what the child says about the bridge's own requests
/// goes to no client.
const NOBODY: StreamId = 0;
/// The line limit: a few of the child's lines are longer.
const MAX_LINE: usize = 256;

#[derive(Arbitrary, Debug)]
enum Op {
    Post {
        body: Body,
        session: Sess,
        accept: u8,
    },
    Get {
        session: Sess,
        accept: u8,
    },
    Delete {
        session: Sess,
    },
    Spawned,
    SpawnFailed,
    /// A line the child writes, fed in two pieces split at `split`.
    Line {
        line: Line,
        crlf: bool,
        split: u8,
    },
    /// Raw stdout bytes, fed in two pieces split at `split`.
    Raw {
        bytes: Vec<u8>,
        split: u8,
    },
    ChildExited,
    ClientGone {
        which: u8,
        live: bool,
    },
    Advance {
        ms: u16,
    },
    /// `handle_timeout` at `poll_timeout()` (or now, if later or none),
    /// plus `late_ms`.
    Timeout {
        late_ms: u8,
    },
    Close,
    /// The link of a stream fails on its next part: the driver reports the
    /// client gone in the middle of a drain.
    ClientFails {
        which: u8,
    },
    /// A 2026-07-28 POST (no session), its envelope broken as `flaw` says.
    Stateless {
        body: Modern,
        flaw: u8,
        accept: u8,
    },
}

/// What a 2026-07-28 client POSTs.
#[derive(Arbitrary, Debug)]
enum Modern {
    /// `tools/call`; `caps` bit 0: it declares sampling, bit 1: it asks
    /// for log lines.
    Call {
        id: u8,
        token: Option<u8>,
        caps: u8,
    },
    List {
        id: u8,
    },
    Discover {
        id: u8,
    },
    Listen {
        id: u8,
        which: u8,
    },
    /// A method 2026-07-28 removed.
    Removed {
        id: u8,
        which: u8,
    },
    Notification {
        which: u8,
    },
}

#[derive(Arbitrary, Debug)]
enum Body {
    Initialize {
        id: u8,
        version: u8,
        token: Option<u8>,
    },
    Call {
        id: u8,
        method: u8,
        token: Option<u8>,
    },
    Notification {
        which: u8,
    },
    /// `notifications/cancelled` naming an id a client sent.
    Cancel {
        which: u8,
    },
    /// An answer to a request of the child a client was sent.
    Answer {
        which: u8,
        error: bool,
    },
    Garbage {
        which: u8,
    },
}

#[derive(Arbitrary, Debug)]
enum Sess {
    Absent,
    /// A session minted earlier (maybe ended since).
    Known(u8),
    Unknown,
}

#[derive(Arbitrary, Debug)]
enum Line {
    /// An answer to a request the bridge sent (one in flight, mostly).
    Answer {
        which: u8,
        how: u8,
    },
    /// Progress on a token the bridge sent.
    Progress {
        which: u8,
    },
    ServerRequest {
        id: u8,
        method: u8,
    },
    Broadcast {
        which: u8,
    },
    Noise {
        which: u8,
    },
    Long,
}

#[derive(Arbitrary, Debug)]
struct Input {
    /// Bit 0: per-session mode; bit 1: sessions never idle out.
    flags: u8,
    ops: Vec<Op>,
}

/// What a client stream got.
#[derive(Default)]
struct Seen {
    method: &'static str,
    /// The session it named or opened.
    session: Option<String>,
    /// The raw id and progress token of the JSON-RPC request it POSTed.
    request: Option<(Vec<u8>, Option<Vec<u8>>)>,
    parts: Vec<AnswerPart>,
    /// Its answer went out (request streams).
    answered: bool,
    ended: bool,
    gone: bool,
    /// A `notifications/cancelled` of its session named its id.
    cancelled: bool,
    /// Attached after `Closed`.
    late: bool,
    /// Its `Accept` takes SSE.
    sse: bool,
    /// It POSTed `initialize`.
    initialize: bool,
    /// Whether the part after its SSE head was a prime (checked when the
    /// session's version is known).
    primed: Option<bool>,
    /// Whether its session primed when its SSE head went out, if the
    /// harness knew (not for an `initialize`'s own stream).
    primes_at_head: Option<bool>,
    /// A 2026-07-28 request (no session).
    stateless: bool,
    /// The code its broken envelope must be refused with (400), at once.
    flaw: Option<i64>,
    /// A `subscriptions/listen`.
    listen: bool,
    /// Answered by sluice alone: never sent to the child.
    local: bool,
}

impl Seen {
    fn is_open(&self) -> bool {
        !self.ended && !self.gone
    }
}

/// A request the bridge sent the child.
struct Sent {
    id: Vec<u8>,
    token: Option<Vec<u8>>,
    initialize: bool,
}

struct World {
    bridge: Bridge,
    mode: StdioMode,
    json: jsonrpc::Limits,
    now: Instant,
    streams: BTreeMap<StreamId, Seen>,
    next_stream: StreamId,
    /// Sessions minted, in order.
    sessions: Vec<String>,
    /// Ids clients sent in requests.
    client_ids: Vec<Vec<u8>>,
    /// Ids of the child's requests that reached clients.
    server_ids: Vec<Vec<u8>>,
    /// Every request the bridge sent a child.
    sent: Vec<Sent>,
    /// The client stream each child id (its `child_key`) was minted for;
    /// `NOBODY` for the bridge's own `initialize`.
    origin: BTreeMap<Vec<u8>, StreamId>,
    /// Ids of requests in flight on the current child.
    in_flight: Vec<Vec<u8>>,
    /// The child's stdout as the bridge frames it, to see what it answered.
    reader: LineReader,
    /// A `Spawn` awaits `spawned` (which gives the bridge a fresh stdout
    /// reader).
    spawning: bool,
    spawns: usize,
    closed: bool,
    /// The stream whose link fails on its next part.
    failing: Option<StreamId>,
    /// The protocol version each session's client was told in its
    /// `initialize` answer.
    versions: BTreeMap<String, String>,
    /// Sessions whose version the harness cannot know (an `initialize`
    /// answer that reached no client).
    unsure: Vec<String>,
    /// The last event (or prime) id each session's streams carried.
    last_event: BTreeMap<String, u64>,
    /// Streams that must have opened their SSE answer when their request
    /// went to the child (a progress token, a primed session).
    must_open: Vec<StreamId>,
    /// Child ids that must be cancelled on the child, and where in
    /// `cancels` to look.
    must_cancel: Vec<(Vec<u8>, usize)>,
    /// Every request id a `notifications/cancelled` to the child named.
    cancels: Vec<Vec<u8>>,
}

/// Sessions at MCP 2025-11-25 or later prime their streams.
fn primes(version: &str) -> bool {
    version >= "2025-11-25"
}

const SUBSCRIPTION_KEY: &str = "io.modelcontextprotocol/subscriptionId";

fn single<'a>(text: &'a [u8], json: &jsonrpc::Limits) -> Option<Message<'a>> {
    match jsonrpc::classify(text, json) {
        Ok(Classified::Single(m)) => Some(m),
        _ => None,
    }
}

fn show(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// What the child writes in its answer to (or progress on) the request it
/// got as `id`, for the client side to check where it went.
fn marker(id: &str) -> String {
    format!("child-{}", child_key(id.as_bytes()).escape_ascii())
}

/// A child id without its quotes (the bridge's own is a string).
fn child_key(id: &[u8]) -> &[u8] {
    id.strip_prefix(b"\"")
        .and_then(|i| i.strip_suffix(b"\""))
        .unwrap_or(id)
}

/// The child id a message from the fuzzed child names in its marker.
fn marked(text: &[u8]) -> Option<Vec<u8>> {
    let v: serde_json::Value = serde_json::from_slice(text).ok()?;
    let tag = [
        "/result/content/0/text",
        "/error/message",
        "/params/message",
    ]
    .iter()
    .find_map(|p| v.pointer(p)?.as_str())?;
    Some(tag.strip_prefix("child-")?.as_bytes().to_vec())
}

fn pick<T: Clone>(list: &[T], which: u8) -> Option<T> {
    (!list.is_empty()).then(|| list[usize::from(which) % list.len()].clone())
}

impl World {
    fn new(flags: u8) -> World {
        let mode = if flags & 1 == 1 {
            StdioMode::PerSession
        } else {
            StdioMode::Shared
        };
        let config = StdioConfig {
            mode,
            limits: StdioLimits { max_line: MAX_LINE },
            init_timeout: Duration::from_secs(2),
            session_idle: (flags & 2 == 0).then_some(Duration::from_secs(20)),
            restart_backoff: Duration::from_millis(50),
            restart_backoff_max: Duration::from_secs(1),
            max_waiting: 3,
            ..StdioConfig::default()
        };
        let json = config.json;
        let now = Instant::now();
        World {
            bridge: Bridge::new(Arc::new(config), now),
            mode,
            json,
            now,
            streams: BTreeMap::new(),
            next_stream: 1,
            sessions: Vec::new(),
            client_ids: Vec::new(),
            server_ids: Vec::new(),
            sent: Vec::new(),
            origin: BTreeMap::new(),
            in_flight: Vec::new(),
            reader: LineReader::new(StdioLimits { max_line: MAX_LINE }),
            spawning: false,
            spawns: 0,
            closed: false,
            failing: None,
            versions: BTreeMap::new(),
            unsure: Vec::new(),
            last_event: BTreeMap::new(),
            must_open: Vec::new(),
            must_cancel: Vec::new(),
            cancels: Vec::new(),
        }
    }

    /// Performs the outputs as the driver does: a batch at a time, a client
    /// whose link fails reported gone at once (what is queued for it
    /// already is dropped; nothing may follow).
    fn drain(&mut self) {
        loop {
            let batch: Vec<Output> = std::iter::from_fn(|| self.bridge.poll_output()).collect();
            if batch.is_empty() {
                break;
            }
            let mut failed = Vec::new();
            for (at, out) in batch.iter().enumerate() {
                match out {
                    Output::ToClient { stream, .. } | Output::EndClient { stream }
                        if failed.contains(stream) => {}
                    Output::ToClient { stream, .. } if self.failing == Some(*stream) => {
                        self.failing = None;
                        failed.push(*stream);
                        // The bridge ended it already (this was its answer).
                        let over = batch[at..].contains(&Output::EndClient { stream: *stream });
                        self.leave(*stream, over);
                    }
                    _ => self.perform(out.clone()),
                }
            }
        }
        assert_eq!(self.closed, self.bridge.is_closed(), "is_closed disagrees");
        for stream in std::mem::take(&mut self.must_open) {
            let s = &self.streams[&stream];
            assert!(
                s.gone || matches!(s.parts.first(), Some(AnswerPart::Stream(_))),
                "stream {stream}'s call with a progress token in a primed session did not \
                 open its event stream when it went to the child: {:?}",
                s.parts
            );
        }
        for (id, from) in std::mem::take(&mut self.must_cancel) {
            assert!(
                self.cancels[from..].contains(&id),
                "a stateless stream left while {} was in flight, not cancelled on the child",
                show(&id)
            );
        }
        if self.mode == StdioMode::Shared {
            let sessions = self
                .sessions
                .iter()
                .filter(|id| self.bridge.has_session(id))
                .count();
            let stateless = self
                .streams
                .values()
                .filter(|s| s.stateless && s.is_open())
                .count();
            assert_eq!(
                self.bridge.sessions(),
                sessions + stateless,
                "sessions other than the handshake's and the open stateless streams'"
            );
        }
    }

    /// The client of `stream` leaves (the driver reports it gone; `over`:
    /// the bridge ended the stream already). A stateless request in flight
    /// is cancelled on the child at once.
    fn leave(&mut self, stream: StreamId, over: bool) {
        let Some(s) = self.streams.get_mut(&stream) else {
            return;
        };
        let over = over || s.ended;
        s.gone = true;
        if s.initialize
            && !s.answered
            && let Some(session) = &s.session
        {
            // Its answer may set a version the harness never sees.
            self.unsure.push(session.clone());
        }
        if s.stateless
            && !over
            && let Some(id) = self
                .in_flight
                .iter()
                .find(|id| self.origin.get(child_key(id)) == Some(&stream))
        {
            self.must_cancel.push((id.clone(), self.cancels.len()));
        }
        self.bridge.client_gone(stream, self.now);
    }

    fn perform(&mut self, out: Output) {
        match out {
            Output::Spawn => {
                assert!(!self.closed, "Spawn after Closed");
                assert!(
                    self.mode == StdioMode::Shared || self.spawns == 0,
                    "a per-session bridge spawned a second child"
                );
                self.spawns += 1;
                self.spawning = true;
                // A new child: nothing in flight on it.
                self.in_flight.clear();
            }
            Output::ToChild(line) => self.to_child(&line),
            Output::Shutdown => assert!(!self.closed, "Shutdown after Closed"),
            Output::ToClient { stream, part } => self.to_client(stream, part),
            Output::EndClient { stream } => self.end_client(stream),
            Output::Log(_) => {}
            Output::Closed { .. } => {
                assert!(!self.closed, "Closed twice");
                self.closed = true;
                self.spawning = false;
                for (stream, s) in &self.streams {
                    assert!(
                        s.ended || s.gone,
                        "Closed while stream {stream} is open: {:?}",
                        s.parts
                    );
                }
            }
        }
    }

    fn to_child(&mut self, line: &[u8]) {
        assert_eq!(line.last(), Some(&b'\n'), "a ToChild without its newline");
        let text = &line[..line.len() - 1];
        assert!(
            !text.contains(&b'\n'),
            "a ToChild of more than one line: {:?}",
            show(line)
        );
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(text)
            && let Some(meta) = v.pointer("/params/_meta").and_then(|m| m.as_object())
        {
            assert!(
                !meta
                    .keys()
                    .any(|k| k.starts_with("io.modelcontextprotocol/")),
                "the child was sent a 2026-07-28 envelope: {:?}",
                show(line)
            );
        }
        let Some(m) = single(text, &self.json) else {
            panic!("a ToChild that is not one message: {:?}", show(line));
        };
        match m.kind {
            Kind::Request => {
                assert!(!self.closed, "a request to the child after Closed");
                let id = m.id.expect("a request has an id").to_vec();
                assert!(
                    !self.in_flight.contains(&id),
                    "two requests in flight on the child as {}",
                    show(&id)
                );
                if id != OWN_INIT_ID
                    && let Some(token) = m.progress_token
                {
                    assert_eq!(
                        show(token),
                        show(&id),
                        "a progress token on the child is not its request's id"
                    );
                }
                let n = serde_json::from_slice::<serde_json::Value>(text)
                    .ok()
                    .and_then(|v| v.pointer("/params/n")?.as_u64());
                let progress = m.progress_token.is_some();
                if id == OWN_INIT_ID {
                    // Its params are the first client's, `n` included.
                    self.origin.insert(child_key(&id).to_vec(), NOBODY);
                } else if let Some(n) = n {
                    let s = &self.streams[&n];
                    assert!(
                        s.request.is_some() && !s.gone && !s.ended,
                        "a request to the child for stream {n}, which is over"
                    );
                    assert!(!s.local, "stream {n}'s request reached the child");
                    if progress && s.sse && !s.stateless && !s.initialize && self.primed(s) {
                        self.must_open.push(n);
                    }
                    self.origin.insert(child_key(&id).to_vec(), n);
                }
                self.in_flight.push(id.clone());
                self.sent.push(Sent {
                    id,
                    token: m.progress_token.map(<[u8]>::to_vec),
                    initialize: m.method.as_deref() == Some("initialize"),
                });
            }
            Kind::Notification if m.method.as_deref() == Some("notifications/cancelled") => {
                assert!(!self.closed, "a cancel to the child after Closed");
                let id = m.request_id.expect("a cancel names its request");
                let at = self.in_flight.iter().position(|i| i == id);
                let Some(at) = at else {
                    panic!("a cancel of {:?}, not in flight on the child", show(id));
                };
                self.in_flight.remove(at);
                self.cancels.push(id.to_vec());
            }
            Kind::Notification => assert!(!self.closed, "a notification to the child after Closed"),
            Kind::Response | Kind::Error => {}
        }
    }

    /// Whether `s`'s session primes its streams; `false` when unknown.
    fn primed(&self, s: &Seen) -> bool {
        s.session.as_ref().is_some_and(|id| {
            !self.unsure.contains(id) && self.versions.get(id).is_some_and(|v| primes(v))
        })
    }

    /// Whether the harness knows `s`'s session's version for sure.
    fn sure(&self, s: &Seen) -> bool {
        s.session
            .as_ref()
            .is_some_and(|id| !self.unsure.contains(id))
    }

    fn to_client(&mut self, stream: StreamId, part: AnswerPart) {
        let json = self.json;
        let closed = self.closed;
        let mut s = self
            .streams
            .remove(&stream)
            .unwrap_or_else(|| panic!("a part for unknown stream {stream}"));
        assert!(!s.gone, "a part for stream {stream}, which left");
        assert!(!s.ended, "{part:?} after the end of stream {stream}");
        assert!(
            !closed || s.late,
            "{part:?} for stream {stream} after Closed"
        );
        let ok = match (s.parts.last(), &part) {
            (None, AnswerPart::Whole { .. } | AnswerPart::Stream(_)) => true,
            // A prime comes right after the head, if at all.
            (Some(AnswerPart::Stream(_)), AnswerPart::Prime(_)) => true,
            (
                Some(
                    AnswerPart::Stream(_)
                    | AnswerPart::Prime(_)
                    | AnswerPart::Event(_)
                    | AnswerPart::IdentifiedEvent { .. },
                ),
                AnswerPart::Event(_) | AnswerPart::IdentifiedEvent { .. } | AnswerPart::End,
            ) => true,
            _ => false,
        };
        assert!(ok, "{part:?} after {:?} on stream {stream}", s.parts.last());
        if s.late || (s.method != "GET" && s.request.is_none()) {
            assert!(
                matches!(part, AnswerPart::Whole { .. }),
                "stream {stream} ({} {}) not answered whole: {part:?}",
                s.method,
                if s.late {
                    "after Closed"
                } else {
                    "of no request"
                }
            );
        }
        if let Some(code) = s.flaw {
            let refused = match &part {
                AnswerPart::Whole { head, body } if head.status == 400 => {
                    serde_json::from_slice::<serde_json::Value>(body)
                        .ok()
                        .and_then(|v| v.pointer("/error/code")?.as_i64())
                        == Some(code)
                }
                _ => false,
            };
            assert!(
                refused,
                "stream {stream}'s envelope is broken ({code}), answered {part:?}"
            );
        }
        if let AnswerPart::Whole { head, .. } | AnswerPart::Stream(head) = &part
            && let Some(session) = &head.session_id
        {
            assert!(
                !s.stateless,
                "stateless stream {stream} answered under session {session}"
            );
            assert_eq!(
                Some(session),
                s.session.as_ref(),
                "stream {stream} answered with another session's id"
            );
        }
        if let AnswerPart::Prime(id) | AnswerPart::IdentifiedEvent { id, .. } = &part {
            assert!(!s.stateless, "stateless stream {stream} got {part:?}");
            let session = s
                .session
                .clone()
                .unwrap_or_else(|| panic!("stream {stream} of no session got {part:?}"));
            let last = self.last_event.entry(session).or_default();
            assert!(
                *id > *last,
                "stream {stream} got {part:?}, after event {} of its session",
                *last
            );
            *last = *id;
        }
        // A head is primed as its session stood when it went out (an
        // `initialize`'s own stream: as its answer tells).
        if matches!(part, AnswerPart::Stream(_)) && !s.initialize && self.sure(&s) {
            s.primes_at_head = Some(self.primed(&s));
        }
        if matches!(s.parts.last(), Some(AnswerPart::Stream(_))) && !s.stateless {
            let primed = matches!(part, AnswerPart::Prime(_));
            s.primed = Some(primed);
            if let Some(primes) = s.primes_at_head {
                assert_eq!(
                    primed, primes,
                    "stream {stream} of session {:?}: {part:?} after the head",
                    s.session,
                );
            }
        }
        let message = match &part {
            AnswerPart::Whole { body, .. } if !body.is_empty() => Some(body.clone()),
            AnswerPart::Event(data) | AnswerPart::IdentifiedEvent { data, .. } => {
                Some(data.clone())
            }
            _ => None,
        };
        if s.listen && s.request.is_some() && matches!(part, AnswerPart::Whole { .. }) {
            // Refused: 406 (empty) without SSE in its `Accept`, or an error.
            s.answered = true;
        }
        if let Some(text) = message {
            let Some(m) = single(&text, &json) else {
                panic!(
                    "stream {stream} was sent {:?}, not one message",
                    show(&text)
                );
            };
            assert!(
                !s.answered || (s.listen && matches!(part, AnswerPart::Whole { .. })),
                "stream {stream}: {:?} after its answer",
                show(&text)
            );
            let answer = matches!(m.kind, Kind::Response | Kind::Error);
            let progress = m.method.as_deref() == Some("notifications/progress");
            if (answer || progress)
                && let Some(child_id) = marked(&text)
                && let Some(origin) = self.origin.get(&child_id)
            {
                assert_eq!(
                    *origin,
                    stream,
                    "the child's message on child id {} reached stream {stream}: {:?}",
                    show(&child_id),
                    show(&text)
                );
            }
            if m.kind == Kind::Request {
                assert!(
                    !s.stateless,
                    "stateless stream {stream} was asked {:?}",
                    show(&text)
                );
                self.server_ids.push(m.id.unwrap_or_default().to_vec());
            }
            let value = serde_json::from_slice::<serde_json::Value>(&text).ok();
            if s.stateless
                && m.kind == Kind::Response
                && let Some(result) = value.as_ref().and_then(|v| v.get("result")?.as_object())
            {
                assert!(
                    result.contains_key("resultType"),
                    "stateless stream {stream}'s result lacks resultType: {:?}",
                    show(&text)
                );
            }
            if s.listen
                && !answer
                && let Some((id, _)) = &s.request
            {
                let first = s.parts.iter().all(|p| !matches!(p, AnswerPart::Event(_)));
                let acked = m.method.as_deref() == Some("notifications/subscriptions/acknowledged");
                assert!(
                    m.kind == Kind::Notification && first == acked,
                    "listen stream {stream} got {:?} (first event: {first})",
                    show(&text)
                );
                let stamp = format!("\"{SUBSCRIPTION_KEY}\":{}", show(id));
                let stamped = text.windows(stamp.len()).enumerate().any(|(at, w)| {
                    w == stamp.as_bytes() && matches!(text.get(at + stamp.len()), Some(b',' | b'}'))
                }) && value
                    .as_ref()
                    .and_then(|v| v.pointer("/params/_meta")?.get(SUBSCRIPTION_KEY))
                    .is_some();
                assert!(
                    stamped,
                    "listen stream {stream}'s event lacks its subscription id {}: {:?}",
                    show(id),
                    show(&text)
                );
            }
            if s.initialize && answer {
                self.initialize_answered(&s, value.as_ref(), stream);
            }
            match &s.request {
                Some((id, token)) => {
                    if answer {
                        assert_eq!(
                            m.id.map(show),
                            Some(show(id)),
                            "stream {stream}: an answer under another id: {:?}",
                            show(&text)
                        );
                        s.answered = true;
                    }
                    if progress {
                        assert_eq!(
                            m.progress_token.map(show),
                            token.as_deref().map(show),
                            "stream {stream}: progress under another token: {:?}",
                            show(&text)
                        );
                    }
                }
                None if s.method == "GET"
                    && matches!(
                        part,
                        AnswerPart::Event(_) | AnswerPart::IdentifiedEvent { .. }
                    ) =>
                {
                    assert!(
                        !answer && !progress,
                        "GET stream {stream} got {:?}",
                        show(&text)
                    )
                }
                None => {}
            }
        }
        s.parts.push(part);
        self.streams.insert(stream, s);
    }

    /// `s`, an `initialize` on `stream`, is answered (`value`): its session
    /// is at the version it was told, if it was told one; whether its own
    /// stream was primed follows from that.
    fn initialize_answered(
        &mut self,
        s: &Seen,
        value: Option<&serde_json::Value>,
        stream: StreamId,
    ) {
        let Some(session) = &s.session else {
            return;
        };
        if let Some(version) = value.and_then(|v| v.pointer("/result/protocolVersion")?.as_str()) {
            // Shared, sluice answers every `initialize` and the session
            // takes what it was told; per-session, the child's answer to
            // the first (which opened it) sets it.
            let version = version.to_owned();
            match self.mode {
                StdioMode::Shared => {
                    self.versions.insert(session.clone(), version);
                }
                StdioMode::PerSession => {
                    self.versions.entry(session.clone()).or_insert(version);
                }
            }
        }
        // Its stream opened for this answer (no message before it): primed
        // as the session now is.
        let opened_for_it = s
            .parts
            .iter()
            .all(|p| matches!(p, AnswerPart::Stream(_) | AnswerPart::Prime(_)));
        if let Some(primed) = s.primed
            && opened_for_it
            && self.sure(s)
        {
            assert_eq!(
                primed,
                self.primed(s),
                "initialize stream {stream} of session {session} at {:?}: primed {primed}",
                self.versions.get(session)
            );
        }
    }

    fn end_client(&mut self, stream: StreamId) {
        let s = self
            .streams
            .get_mut(&stream)
            .unwrap_or_else(|| panic!("the end of unknown stream {stream}"));
        assert!(!s.gone, "the end of stream {stream}, which left");
        assert!(!s.ended, "stream {stream} ended twice");
        assert!(
            s.parts.last().is_some_and(AnswerPart::is_last),
            "stream {stream} ended before its answer was whole: {:?}",
            s.parts
        );
        if s.request.is_some() && !s.cancelled {
            assert!(
                s.answered,
                "request stream {stream} ended unanswered: {:?}",
                s.parts
            );
        }
        s.ended = true;
    }

    /// A client request, routed as `stdio::dispatch` says (a refusal it
    /// answers itself never reaches a bridge; per-session, a new session
    /// opens a bridge of its own).
    fn attach(&mut self, method: &'static str, body: String, session: &Sess, accept: u8) {
        let header = match session {
            Sess::Absent => None,
            Sess::Known(i) => Some(pick(&self.sessions, *i).unwrap_or_else(|| "s0".into())),
            Sess::Unknown => Some("zz-unknown".to_owned()),
        };
        let mut headers = vec![Header::new("Host", "127.0.0.1")];
        match accept % 5 {
            0 => headers.push(Header::new("Accept", "application/json, text/event-stream")),
            1 => headers.push(Header::new("Accept", "application/json")),
            2 => headers.push(Header::new("Accept", "text/event-stream")),
            3 => {}
            _ => headers.push(Header::new("Accept", "text/html")),
        }
        if let Some(h) = &header {
            headers.push(Header::new("Mcp-Session-Id", h.as_str()));
        }
        let req = Request {
            method: method.to_owned(),
            target: "/mcp".to_owned(),
            headers,
            body: Bytes::from(body),
        };
        let new_session = match stdio::dispatch(&req, &self.json) {
            Dispatch::Reply(_) => return,
            Dispatch::New => {
                if self.mode == StdioMode::PerSession && !self.sessions.is_empty() {
                    return;
                }
                let id = format!("s{}", self.sessions.len());
                self.sessions.push(id.clone());
                Some(id)
            }
            Dispatch::Existing(_) => None,
            // Handshake-era requests carry no MCP-Protocol-Version: never.
            Dispatch::Stateless => panic!("a handshake-era request taken as stateless"),
        };
        let message = single(&req.body, &self.json);
        let request = match &message {
            Some(m) if method == "POST" && m.kind == Kind::Request => Some((
                m.id.unwrap_or_default().to_vec(),
                m.progress_token.map(<[u8]>::to_vec),
            )),
            _ => None,
        };
        let session = new_session.clone().or(header);
        if let Some(m) = &message
            && m.method.as_deref() == Some("notifications/cancelled")
            && let Some(named) = m.request_id
        {
            for s in self.streams.values_mut() {
                if !s.stateless
                    && s.session == session
                    && s.request.as_ref().is_some_and(|r| r.0 == named)
                {
                    s.cancelled = true;
                }
            }
        }
        if let Some((id, _)) = &request {
            self.client_ids.push(id.clone());
        }
        let stream = self.next_stream;
        self.next_stream += 1;
        self.streams.insert(
            stream,
            Seen {
                method,
                session,
                initialize: message
                    .as_ref()
                    .is_some_and(|m| m.method.as_deref() == Some("initialize")),
                request,
                late: self.closed,
                sse: req.accepts().sse,
                ..Seen::default()
            },
        );
        self.bridge.attach(stream, req, new_session, self.now);
    }

    fn body(&self, body: &Body) -> String {
        match body {
            Body::Initialize { id, version, token } => {
                let versions = [SESSION_VERSIONS, &["2024-11-05", "1999-01-01"]].concat();
                let n = self.next_stream;
                let meta = token_meta(*token);
                format!(
                    r#"{{"jsonrpc":"2.0","id":{},"method":"initialize","params":{{"protocolVersion":"{}","capabilities":{{"sampling":{{}}}},"clientInfo":{{"name":"c","version":"1"}},"n":{n}{meta}}}}}"#,
                    IDS[usize::from(*id) % IDS.len()],
                    versions[usize::from(*version) % versions.len()]
                )
            }
            Body::Call { id, method, token } => {
                let meta = token_meta(*token);
                let id = IDS[usize::from(*id) % IDS.len()];
                // `n`: the stream it is sent on, to tell where the child's
                // answer must go.
                let n = self.next_stream;
                match method % 3 {
                    0 => format!(
                        r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"echo","arguments":{{}},"n":{n}{meta}}}}}"#
                    ),
                    1 => format!(
                        r#"{{"jsonrpc":"2.0","method":"ping","params":{{"n":{n}{meta}}},"id":{id}}}"#
                    ),
                    _ => format!(
                        r#"{{"id":{id},"jsonrpc":"2.0","method":"tools/list","params":{{"n":{n}}}}}"#
                    ),
                }
            }
            Body::Notification { which } => match which % 3 {
                0 => r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#.to_owned(),
                1 => r#"{"jsonrpc":"2.0","method":"notifications/roots/list_changed"}"#.to_owned(),
                // Pretty-printed: its raw newlines must not reach the child.
                _ => "{\r\n  \"jsonrpc\": \"2.0\",\n  \"method\": \"notifications/message\",\n  \"params\": {\"data\": \"a\\nb\"}\n}".to_owned(),
            },
            Body::Cancel { which } => {
                let id = pick(&self.client_ids, *which)
                    .map(|i| show(&i))
                    .unwrap_or_else(|| IDS[usize::from(*which) % IDS.len()].to_owned());
                format!(
                    r#"{{"jsonrpc":"2.0","method":"notifications/cancelled","params":{{"requestId":{id},"reason":"user"}}}}"#
                )
            }
            Body::Answer { which, error } => {
                let id = pick(&self.server_ids, *which)
                    .map(|i| show(&i))
                    .unwrap_or_else(|| SERVER_IDS[usize::from(*which) % SERVER_IDS.len()].to_owned());
                if *error {
                    format!(
                        r#"{{"jsonrpc":"2.0","id":{id},"error":{{"code":-1,"message":"declined"}}}}"#
                    )
                } else {
                    format!(
                        r#"{{"jsonrpc":"2.0","id":{id},"result":{{"role":"assistant","content":{{"type":"text","text":"hi"}}}}}}"#
                    )
                }
            }
            Body::Garbage { which } => [
                "{\"jsonrpc\":",
                "",
                "[]",
                r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#,
                r#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#,
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{}}"#,
                "not json",
                r#"{"jsonrpc":"2.0","id":1}"#,
                r#"{"jsonrpc":"2.0","id":5,"method":"initialize"}"#,
                r#"{"jsonrpc":"2.0","id":"i","method":"initialize","params":[1e400]}"#,
            ][usize::from(*which) % 10]
                .to_owned(),
        }
    }

    fn line(&self, line: &Line) -> Vec<u8> {
        match line {
            Line::Answer { which, how } => {
                let in_flight: Vec<&Sent> = self
                    .sent
                    .iter()
                    .filter(|s| self.in_flight.contains(&s.id))
                    .collect();
                let sent = if !in_flight.is_empty() && *which < 224 {
                    Some(in_flight[usize::from(*which) % in_flight.len()])
                } else {
                    pick(&self.sent.iter().collect::<Vec<_>>(), *which)
                };
                let (id, initialize) = match sent {
                    Some(s) => (show(&s.id), s.initialize),
                    None => ("1".to_owned(), false),
                };
                let tag = marker(&id);
                let versions = [SESSION_VERSIONS, &["2024-11-05", "2099-01-01"]].concat();
                let version = versions[usize::from(how / 6) % versions.len()];
                let result = if initialize {
                    format!(
                        r#"{{"protocolVersion":"{version}","capabilities":{{"tools":{{"listChanged":true}}}},"serverInfo":{{"name":"child","version":"1"}}}}"#
                    )
                } else {
                    format!(r#"{{"content":[{{"type":"text","text":"{tag}"}}]}}"#)
                };
                match how % 6 {
                    0..=2 => format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{result}}}"#),
                    3 => format!(
                        r#"{{"jsonrpc":"2.0","error":{{"code":-32603,"message":"{tag}"}},"id":{id}}}"#
                    ),
                    4 => format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{{}}}}"#),
                    // The id spelled otherwise: not the id sent.
                    _ => format!(r#"{{"jsonrpc":"2.0","id":"{}","result":{result}}}"#, id.trim_matches('"')),
                }
                .into_bytes()
            }
            Line::Progress { which } => {
                let tokens: Vec<(&[u8], &[u8])> = self
                    .sent
                    .iter()
                    .filter_map(|s| Some((s.token.as_deref()?, &s.id[..])))
                    .collect();
                // The token the child was given, marked with the request it
                // was given on.
                let (token, tag) = match pick(&tokens, *which) {
                    Some((token, id)) => (show(token), marker(&show(id))),
                    None => (
                        TOKENS[usize::from(*which) % TOKENS.len()].to_owned(),
                        "x".to_owned(),
                    ),
                };
                format!(
                    r#"{{"jsonrpc":"2.0","method":"notifications/progress","params":{{"progressToken":{token},"progress":{which},"total":255,"message":"{tag}"}}}}"#
                )
                .into_bytes()
            }
            Line::ServerRequest { id, method } => format!(
                r#"{{"jsonrpc":"2.0","id":{},"method":"{}","params":{{}}}}"#,
                SERVER_IDS[usize::from(*id) % SERVER_IDS.len()],
                SERVER_METHODS[usize::from(*method) % SERVER_METHODS.len()]
            )
            .into_bytes(),
            Line::Broadcast { which } => [
                r#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}"#,
                r#"{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"x"}}"#,
                r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"s1"}}"#,
                r#"[{"jsonrpc":"2.0","method":"notifications/message","params":{}}]"#,
                r#"{"hello":1}"#,
            ][usize::from(*which) % 5]
                .as_bytes()
                .to_vec(),
            Line::Noise { which } => [
                &b"Server started on stdio"[..],
                b"",
                b"  \t",
                b"{\"a\":\"\xff\"}",
                b"{not json",
            ][usize::from(*which) % 5]
                .to_vec(),
            Line::Long => format!(
                r#"{{"jsonrpc":"2.0","method":"notifications/message","params":{{"data":"{}"}}}}"#,
                "x".repeat(MAX_LINE)
            )
            .into_bytes(),
        }
    }

    /// Child stdout, in two reads.
    fn child_output(&mut self, bytes: &[u8], split: u8) {
        let at = usize::from(split).min(bytes.len());
        for piece in [&bytes[..at], &bytes[at..]] {
            let answered = self.saw_from_child(piece);
            self.bridge.child_output(piece, self.now);
            self.drain();
            self.check_answered(&answered);
        }
    }

    /// What the child answered: off the requests in flight. Returns the
    /// client streams waiting for those answers.
    fn saw_from_child(&mut self, bytes: &[u8]) -> Vec<StreamId> {
        self.reader.feed(bytes);
        let mut answered = Vec::new();
        while let Some(item) = self.reader.poll() {
            if let Item::Message(text) = item
                && let Some(m) = single(&text, &self.json)
                && matches!(m.kind, Kind::Response | Kind::Error)
                && let Some(id) = m.id
                && let Some(at) = self.in_flight.iter().position(|i| i == id)
            {
                self.in_flight.remove(at);
                if let Some(stream) = self.origin.get(child_key(id))
                    && let Some(s) = self.streams.get(stream)
                    && s.is_open()
                {
                    answered.push(*stream);
                }
            }
        }
        answered
    }

    /// The child answered the requests of `streams`, open until then: each
    /// has its answer.
    fn check_answered(&self, streams: &[StreamId]) {
        for stream in streams {
            let s = &self.streams[stream];
            assert!(
                s.gone || (s.answered && s.ended),
                "the child answered stream {stream}'s request; it got {:?}",
                s.parts
            );
        }
    }

    fn op(&mut self, op: &Op) {
        match op {
            Op::Post {
                body,
                session,
                accept,
            } => {
                let body = self.body(body);
                self.attach("POST", body, session, *accept);
            }
            Op::Get { session, accept } => self.attach("GET", String::new(), session, *accept),
            Op::Delete { session } => self.attach("DELETE", String::new(), session, 0),
            Op::Spawned => {
                if std::mem::take(&mut self.spawning) {
                    self.reader = LineReader::new(StdioLimits { max_line: MAX_LINE });
                }
                self.bridge.spawned(self.now);
            }
            Op::SpawnFailed => {
                self.spawning = false;
                self.bridge.spawn_failed("no such file", self.now);
            }
            Op::Line { line, crlf, split } => {
                let mut bytes = self.line(line);
                bytes.extend_from_slice(if *crlf { b"\r\n" } else { b"\n" });
                self.child_output(&bytes, *split);
            }
            Op::Raw { bytes, split } => self.child_output(bytes, *split),
            Op::ChildExited => {
                // The bridge reads a last line without its newline.
                let answered = self.saw_from_child(b"\n");
                self.in_flight.clear();
                self.spawning = false;
                self.bridge.child_exited("exited with status 1", self.now);
                self.drain();
                self.check_answered(&answered);
            }
            Op::ClientGone { which, live } => {
                let candidates: Vec<StreamId> = self
                    .streams
                    .iter()
                    .filter(|(_, s)| !s.gone && (!*live || !s.ended))
                    .map(|(id, _)| *id)
                    .collect();
                if let Some(stream) = pick(&candidates, *which) {
                    self.leave(stream, false);
                }
            }
            Op::Advance { ms } => self.now += Duration::from_millis(u64::from(*ms)),
            Op::Timeout { late_ms } => {
                if let Some(at) = self.bridge.poll_timeout() {
                    self.now = self.now.max(at);
                }
                self.now += Duration::from_millis(u64::from(*late_ms));
                self.bridge.handle_timeout(self.now);
                self.drain();
                let next = self.bridge.poll_timeout();
                assert!(
                    next.is_none_or(|t| t > self.now),
                    "a deadline handled is due again at once"
                );
            }
            Op::Close => self.bridge.close(),
            Op::ClientFails { which } => {
                let open: Vec<StreamId> = self
                    .streams
                    .iter()
                    .filter(|(_, s)| s.is_open())
                    .map(|(id, _)| *id)
                    .collect();
                self.failing = pick(&open, *which);
            }
            Op::Stateless { body, flaw, accept } => {
                if let Some(stream) = self.stateless(body, *flaw, *accept) {
                    self.drain();
                    let s = &self.streams[&stream];
                    assert!(
                        s.flaw.is_none() || s.ended || s.gone,
                        "a broken envelope not refused at once: {:?}",
                        s.parts
                    );
                }
            }
        }
        self.drain();
    }

    /// A 2026-07-28 POST, routed as `stdio::dispatch` says (a shared
    /// bridge takes it; a per-session route answers it 400 itself).
    fn stateless(&mut self, body: &Modern, flaw: u8, accept: u8) -> Option<StreamId> {
        let n = self.next_stream;
        let id = |i: &u8| IDS[usize::from(*i) % IDS.len()];
        // Its method, id (none: a notification), whether it has a name
        // (`Mcp-Name`), its params and what `_meta` adds to the envelope
        // (a progress token), and whether sluice answers it alone.
        let (method, id, name, params, local) = match body {
            Modern::Call { id: i, token, .. } => {
                let token = token
                    .map(|t| {
                        format!(
                            r#","progressToken":{}"#,
                            TOKENS[usize::from(t) % TOKENS.len()]
                        )
                    })
                    .unwrap_or_default();
                let params = format!(r#""name":"echo","arguments":{{}},"n":{n}"#);
                ("tools/call", Some(id(i)), true, (params, token), false)
            }
            Modern::List { id: i } => (
                "tools/list",
                Some(id(i)),
                false,
                (format!(r#""n":{n}"#), String::new()),
                false,
            ),
            Modern::Discover { id: i } => (
                "server/discover",
                Some(id(i)),
                false,
                (format!(r#""n":{n}"#), String::new()),
                true,
            ),
            Modern::Listen { id: i, which } => {
                // The last: no `notifications` (400).
                let asked = [
                    r#","notifications":{"toolsListChanged":true}"#,
                    r#","notifications":{"toolsListChanged":true,"promptsListChanged":true}"#,
                    r#","notifications":{}"#,
                    "",
                ][usize::from(*which) % 4];
                let params = format!(r#""n":{n}{asked}"#);
                (
                    "subscriptions/listen",
                    Some(id(i)),
                    false,
                    (params, String::new()),
                    true,
                )
            }
            Modern::Removed { id: i, which } => {
                let method = sluice_core::modern::REMOVED_METHODS
                    [usize::from(*which) % sluice_core::modern::REMOVED_METHODS.len()];
                (
                    method,
                    Some(id(i)),
                    false,
                    (format!(r#""n":{n}"#), String::new()),
                    true,
                )
            }
            Modern::Notification { which } => {
                let method = ["notifications/cancelled", "notifications/initialized"]
                    [usize::from(*which) % 2];
                (method, None, false, (String::new(), String::new()), true)
            }
        };
        let caps = match body {
            Modern::Call { caps, .. } => *caps,
            _ => 0,
        };
        let (params, token) = params;
        let flaw = flaw % 8;
        let version = match flaw {
            3 => "2025-06-18",
            7 => "2099-01-01",
            _ => "2026-07-28",
        };
        let header_version = if flaw == 7 {
            "2099-01-01"
        } else {
            "2026-07-28"
        };
        let mut meta = format!(r#""io.modelcontextprotocol/protocolVersion":"{version}""#);
        if flaw != 2 {
            let declared = if caps & 1 == 1 {
                r#"{"sampling":{}}"#
            } else {
                "{}"
            };
            meta.push_str(&format!(
                r#","io.modelcontextprotocol/clientCapabilities":{declared}"#
            ));
        }
        if caps & 2 == 2 {
            meta.push_str(r#","io.modelcontextprotocol/logLevel":"info""#);
        }
        meta.push_str(&token);
        let mut fields = vec![];
        if !params.is_empty() {
            fields.push(params);
        }
        if flaw != 1 {
            fields.push(format!(r#""_meta":{{{meta}}}"#));
        }
        let params = fields.join(",");
        let body = match id {
            Some(id) => format!(
                r#"{{"jsonrpc":"2.0","id":{id},"method":"{method}","params":{{{params}}}}}"#
            ),
            None => format!(r#"{{"jsonrpc":"2.0","method":"{method}","params":{{{params}}}}}"#),
        };
        let mut headers = vec![Header::new("Host", "127.0.0.1")];
        match accept % 4 {
            0 => headers.push(Header::new("Accept", "application/json, text/event-stream")),
            1 => headers.push(Header::new("Accept", "application/json")),
            2 => headers.push(Header::new("Accept", "text/event-stream")),
            _ => {}
        }
        headers.push(Header::new("MCP-Protocol-Version", header_version));
        if flaw == 6 {
            headers.push(Header::new("MCP-Protocol-Version", header_version));
        }
        headers.push(Header::new(
            "Mcp-Method",
            if flaw == 4 { "tools/lisst" } else { method },
        ));
        if name || flaw == 5 {
            headers.push(Header::new(
                "Mcp-Name",
                if flaw == 5 { "rm" } else { "echo" },
            ));
        }
        let req = Request {
            method: "POST".to_owned(),
            target: "/mcp".to_owned(),
            headers,
            body: Bytes::from(body),
        };
        assert_eq!(
            stdio::dispatch(&req, &self.json),
            Dispatch::Stateless,
            "a 2026-07-28 request not taken as one"
        );
        if self.mode == StdioMode::PerSession {
            return None;
        }
        let message = single(&req.body, &self.json).expect("one message");
        let request = id.map(|id| {
            (
                id.as_bytes().to_vec(),
                message.progress_token.map(<[u8]>::to_vec),
            )
        });
        let code = match flaw {
            1 | 2 => Some(-32602),
            3 | 4 | 6 => Some(-32020),
            5 if name => Some(-32020),
            7 => Some(-32022),
            _ => None,
        };
        self.next_stream += 1;
        self.streams.insert(
            n,
            Seen {
                method: "POST",
                listen: method == "subscriptions/listen",
                flaw: code.filter(|_| request.is_some()),
                request,
                late: self.closed,
                sse: req.accepts().sse,
                stateless: true,
                local,
                ..Seen::default()
            },
        );
        self.bridge.attach_stateless(n, req, self.now);
        Some(n)
    }
}

fuzz_target!(|input: Input| {
    let mut w = World::new(input.flags);
    for op in input.ops.iter().take(256) {
        w.op(op);
    }
    w.bridge.close();
    w.drain();
    assert!(w.closed, "close() must end the bridge");
    for (stream, s) in &w.streams {
        assert!(
            s.ended || s.gone,
            "stream {stream} never ended: {:?}",
            s.parts
        );
    }
});

/// The `_meta` member carrying progress token number `token`, if any.
fn token_meta(token: Option<u8>) -> String {
    token
        .map(|t| {
            format!(
                r#","_meta":{{"progressToken":{}}}"#,
                TOKENS[usize::from(t) % TOKENS.len()]
            )
        })
        .unwrap_or_default()
}
