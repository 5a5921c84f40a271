//! The response side of an exchange: read the upstream's head, decide how
//! the body is framed on both legs, and forward the body read by read.

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::answer::{Judged, Ledger, Part, ServerMessage};

/// The SSE event id a message upstream gave a message.
#[derive(Debug, Clone, Copy)]
pub(crate) enum EventId<'a> {
    /// A number (a session's sequence).
    Seq(u64),
    /// Text (a federation member's own id, marked).
    Text(&'a str),
}

impl std::fmt::Display for EventId<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EventId::Seq(n) => write!(f, "{n}"),
            EventId::Text(t) => f.write_str(t),
        }
    }
}
use super::request::Forward;
use super::{ExchangeConfig, HOOK_FAILED, HookPhase, HookVerdict, UPSTREAM_FAILED, hooks};
use crate::http1::{self, BodyFraming, BodyReader, Parsed};
use crate::inject::Sent;
use crate::jsonrpc::{self, Classified, Kind};
use crate::legacy::may_try_legacy;
use crate::sse::{self, OutgoingEvent, SseItem, SseParser};
use crate::upstream::{AnswerBody, AnswerHead};

pub(super) enum HeadStep {
    NeedMore,
    /// A 1xx head of `len` bytes to skip.
    Informational {
        len: usize,
    },
    Bad(String),
    /// A refusal ([`may_try_legacy`]) held for the transport probe: the
    /// head is `len` bytes, its body framed as `framing`. Nothing was
    /// prepared: the same bytes are read again if the route stays
    /// Streamable HTTP.
    Refused {
        status: u16,
        framing: BodyFraming,
        len: usize,
    },
    Ready {
        stream: Box<Streaming>,
        client_head: Bytes,
        status: u16,
        len: usize,
    },
}

/// How the upstream delimits its body.
enum UpstreamBody {
    /// An HTTP body, read by its framing (done at once when there is none).
    Http(BodyReader),
    /// A message upstream's SSE answer: whole messages, ended by
    /// [`AnswerPart::End`](crate::upstream::AnswerPart::End).
    Messages,
}

impl UpstreamBody {
    fn is_empty(&self) -> bool {
        matches!(self, UpstreamBody::Http(r) if r.is_done())
    }
}

/// How we delimit the body towards the client.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ClientBody {
    Length,
    Chunked,
    UntilClose,
    Empty,
}

/// Watches an unheld SSE answer without holding anything back: is the
/// client at an event boundary, and has the response to its request gone
/// out yet?
struct SseWatch {
    /// `None` for a message upstream, whose events arrive whole.
    parser: Option<SseParser>,
    /// The raw id of the request still owed a response.
    owed: Option<Vec<u8>>,
    /// This stream carries the answer to a request (not a GET stream).
    answers_request: bool,
    json: jsonrpc::Limits,
    /// The parser hit a limit: boundaries are no longer known.
    lost: bool,
}

/// What the watch read of one piece of the stream.
#[derive(Default)]
struct Observed {
    /// Events it completed.
    events: u64,
    /// The parser passed its limit in this piece: where its last whole
    /// event ended in it (0 if before it). Nothing past is read any more.
    lost_at: Option<usize>,
}

impl SseWatch {
    /// Reads the next bytes of the stream.
    fn observe(&mut self, data: &[u8]) -> Observed {
        let Some(parser) = self.parser.as_mut().filter(|_| !self.lost) else {
            return Observed::default();
        };
        let base = parser.consumed_bytes();
        parser.feed(data);
        let mut seen = Observed::default();
        while let Some(item) = parser.poll() {
            match item {
                Ok(SseItem::Event(event)) => {
                    seen.events += 1;
                    if let Some(owed) = &self.owed
                        && answers(event.data.as_bytes(), owed, &self.json)
                    {
                        self.owed = None;
                    }
                }
                Ok(_) => {}
                Err(_) => {
                    self.lost = true;
                    let at = parser.boundary_offset().saturating_sub(base);
                    seen.lost_at = Some(usize::try_from(at).unwrap_or(usize::MAX).min(data.len()));
                    break;
                }
            }
        }
        seen
    }

    /// One whole message from a message upstream.
    fn observe_message(&mut self, data: &[u8]) {
        if let Some(owed) = &self.owed
            && answers(data, owed, &self.json)
        {
            self.owed = None;
        }
    }

    fn at_boundary(&self) -> bool {
        !self.lost
            && self
                .parser
                .as_ref()
                .is_none_or(SseParser::at_event_boundary)
    }
}

/// Whether `data` is the response to request `id` (its raw JSON text).
fn answers(data: &[u8], id: &[u8], json: &jsonrpc::Limits) -> bool {
    may_answer(data, id)
        && matches!(
            jsonrpc::classify(data, json),
            Ok(Classified::Single(m))
                if matches!(m.kind, Kind::Response | Kind::Error) && m.id == Some(id)
        )
}

/// Whether an event's data can be the response to request `id` (its raw
/// JSON text): a cheap scan that lets the many notifications of a stream
/// (progress, logging) skip classification. A response has a `result` or
/// `error` member and carries the id's exact text (the match is on raw
/// bytes); a key spelled with escapes has a backslash, so any data with one
/// is classified to be sure. (Only for bookkeeping: a held answer judges
/// every event, see [`super::answer`].)
fn may_answer(data: &[u8], id: &[u8]) -> bool {
    use memchr::memmem;
    let member = memmem::find(data, b"\"result\"").is_some()
        || memmem::find(data, b"\"error\"").is_some()
        || memchr::memchr(b'\\', data).is_some();
    member && memmem::find(data, id).is_some()
}

/// A JSON answer held whole for the response hooks.
struct JsonHold {
    head: http1::ResponseHead,
    close: bool,
    body: Vec<u8>,
    limit: usize,
    /// The head and body went out.
    flushed: bool,
}

/// Something in a held SSE answer that the forwarding must stop at.
enum Mark {
    /// An event of unhooked answers (in a batch): once forwarded, they are
    /// delivered.
    Through(Vec<usize>),
    /// An event carrying hooked answers, waiting for the hooks.
    Held {
        event_type: String,
        id: String,
        data: String,
        parts: Vec<Part>,
    },
    /// A server request or notification some hook wants, waiting for the
    /// server-message hooks.
    Server {
        event_type: String,
        id: String,
        message: ServerMessage,
    },
    /// The answer breaks the rule here (why): nothing from here on goes out.
    Cut(String),
}

/// An SSE answer whose answer events are held for the response hooks; every
/// other event goes through as soon as it is whole. Only whole events are
/// ever forwarded, so the client is always at an event boundary.
struct SseHold {
    /// `None` for a message upstream, whose events arrive whole.
    parser: Option<SseParser>,
    /// Decoded body bytes not yet forwarded, from stream offset `base`.
    pending: Vec<u8>,
    base: u64,
    /// Judged events to stop at, in stream order, with their spans (a cut
    /// has an empty span where it applies).
    marks: VecDeque<(Range<u64>, Mark)>,
    /// A cut is queued: later upstream bytes are dropped unread.
    cut: bool,
}

/// The event carrying `message` in place of a held one: its `event:` type
/// and `id:` kept.
fn replacement_event(event_type: &str, id: &str, message: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(message.len() + 32);
    let data = String::from_utf8_lossy(message);
    let event = OutgoingEvent {
        event_type: Some(event_type),
        data: &data,
        id: Some(id).filter(|id| !id.is_empty()),
        retry: None,
    };
    if sse::encode_event(&event, &mut v).is_err() {
        sse::encode_jsonrpc_message(message, &mut v);
    }
    v
}

impl SseHold {
    /// The held event's own bytes (at `span`), taken out of what waits:
    /// everything before it went out already.
    fn take_event(&mut self, span: Range<u64>) -> Vec<u8> {
        let start = span.start.saturating_sub(self.base) as usize;
        let end = (span.end.saturating_sub(self.base) as usize).min(self.pending.len());
        let original: Vec<u8> = self.pending.drain(..end).skip(start).collect();
        self.base = span.end.max(self.base);
        original
    }

    /// The stream offset of the end of the last whole event.
    fn boundary(&self) -> u64 {
        match &self.parser {
            Some(parser) => parser.boundary_offset(),
            None => self.base + self.pending.len() as u64,
        }
    }
}

/// The hooks' run over one held message (a JSON body or an SSE event's
/// data): one hook call per hooked part, in order.
struct Round {
    data: Vec<u8>,
    /// Every answer in the message, in order (for an array, its elements:
    /// an array holding anything else is cut, never held).
    parts: Vec<Part>,
    /// The next part to ask about (an index into `parts`).
    next: usize,
    /// A call for `parts[next]` was handed out and awaits its verdict.
    asked: bool,
    /// (element, replacement) for parts whose hooks changed the answer.
    replaced: Vec<(Option<usize>, Vec<u8>)>,
}

/// How a held answer is held.
enum HoldForm {
    Json(JsonHold),
    Sse(Box<SseHold>),
}

/// An answer held for response hooks: the strict rule's ledger, the form,
/// and the hook run in progress.
struct Held {
    ledger: Ledger,
    form: HoldForm,
    round: Option<Round>,
    /// The server message at the front, handed to the hooks (`true`) or
    /// about to be.
    server: Option<(ServerMessage, bool)>,
}

impl Held {
    /// The hooks have a message of this answer to judge.
    fn judging(&self) -> bool {
        self.round.is_some() || self.server.is_some()
    }
}

/// A hook run the exchange must ask for while an answer streams.
pub(super) enum StreamCall {
    /// The answer to a hooked request.
    Response {
        method: String,
        request: Arc<str>,
        response: Arc<str>,
    },
    /// A server request or notification.
    Server { method: String, message: Arc<str> },
}

/// What an upstream failure leaves to say about a held answer.
pub(super) enum HeldFailure {
    /// Every owed answer went out already.
    Answered,
    /// Nothing went out yet: this JSON body (one error, or an array of them
    /// for a batch) is the answer.
    Body(Vec<u8>),
    /// The client is at an event boundary of an SSE answer: these framed
    /// bytes (one error event per owed request, then the end of the body)
    /// complete it.
    Events(Vec<Bytes>),
}

pub(super) struct Streaming {
    upstream: UpstreamBody,
    client: ClientBody,
    sse: bool,
    /// Bookkeeping on an unheld SSE answer.
    watch: Option<SseWatch>,
    /// The answer held for response hooks.
    held: Option<Held>,
    upstream_reusable: bool,
    /// The upstream body ended.
    complete: bool,
    keepalive: Option<Duration>,
    last_client_write: Instant,
    /// The last time the upstream sent body bytes (the stream-idle timer).
    pub(super) last_upstream: Instant,
    /// The upstream connection was let go before the answer went out (the
    /// body was whole; the hooks had not spoken yet).
    upstream_released: bool,
    /// How the events going to the client are counted.
    counting: Counting,
    /// Events forwarded, as [`Counting::Messages`] and
    /// [`Counting::Watched`] count them.
    events: u64,
    /// Answers the server-message hooks gave to server requests, for the
    /// upstream (the client never saw those requests).
    to_server: Vec<Vec<u8>>,
}

/// How an SSE answer's forwarded events are counted: by whatever already
/// reads them, and only where nothing does by a scan of their bytes.
enum Counting {
    /// Not an event stream.
    Off,
    /// A message upstream's unheld answer: one event per message.
    Messages,
    /// The watch's parser reads the stream anyway (for the owed response):
    /// its events are the count.
    Watched,
    /// Nothing reads the bytes going out (an unheld stream that owes
    /// nothing: a GET stream; a coded one), or they go out as whole held
    /// events: a line scan of them ([`sse::EventCounter`]).
    Scanned(sse::EventCounter),
}

/// The JSON-RPC message for a hook's verdict on the answer to request `id`;
/// `None` keeps the upstream's own.
fn verdict_message(verdict: HookVerdict, id: &[u8]) -> Option<Vec<u8>> {
    match verdict {
        HookVerdict::Continue => None,
        HookVerdict::Replace(message) => Some(message),
        HookVerdict::Reject {
            code,
            message,
            data,
        } => Some(jsonrpc::error_message(
            Some(id),
            code,
            &message,
            data.as_deref(),
        )),
        HookVerdict::Respond(result) => Some(jsonrpc::result_message(id, &result)),
    }
}

/// The error a client gets for a held answer cut under the strict rule.
fn cut_reason(why: &str) -> String {
    format!(
        "the upstream's answer breaks the rule the response hooks rely on, so they did not run: {why}"
    )
}

/// Parse the response head in `buf`. With `hold_refusal`, a 400, 404 or
/// 405 is not prepared but returned as [`HeadStep::Refused`].
pub(super) fn read_head(
    scanner: &mut http1::HeadScanner,
    buf: &[u8],
    hold_refusal: bool,
    req: &Forward,
    config: &ExchangeConfig,
    ledger: &mut Option<Ledger>,
    now: Instant,
) -> HeadStep {
    let (head, len) = match scanner.parse_response(buf, &config.limits.response_head) {
        Ok(Parsed::Partial) => return HeadStep::NeedMore,
        Ok(Parsed::Complete { head, len }) => (head, len),
        Err(e) => {
            return HeadStep::Bad(format!("the upstream sent a malformed response head: {e}"));
        }
    };
    if head.status == 101 {
        return HeadStep::Bad(
            "the upstream switched protocols, which sluice does not proxy".into(),
        );
    }
    if (100..200).contains(&head.status) {
        return HeadStep::Informational { len };
    }
    let framing = match http1::response_framing(&req.method, &head) {
        Ok(f) => f,
        Err(e) => {
            return HeadStep::Bad(format!("the upstream's response framing is ambiguous: {e}"));
        }
    };
    if hold_refusal && may_try_legacy(head.status) {
        return HeadStep::Refused {
            status: head.status,
            framing,
            len,
        };
    }
    let sse = http1::header_values(&head.headers, "content-type")
        .next()
        .is_some_and(|ct| {
            let media = ct
                .split(|&b| b == b';')
                .next()
                .unwrap_or_default()
                .trim_ascii();
            media.eq_ignore_ascii_case(b"text/event-stream")
        });
    let client = match framing {
        BodyFraming::None => ClientBody::Empty,
        BodyFraming::ContentLength(_) => ClientBody::Length,
        BodyFraming::Chunked | BodyFraming::UntilClose if req.client_http10 => {
            ClientBody::UntilClose
        }
        BodyFraming::Chunked | BodyFraming::UntilClose => ClientBody::Chunked,
    };
    let upstream = UpstreamBody::Http(BodyReader::new(framing, &config.limits.response_head));
    let upstream_reusable =
        !matches!(framing, BodyFraming::UntilClose) && upstream_keeps_alive(&head);
    let body = Framed {
        upstream,
        client,
        sse,
        reusable: upstream_reusable,
    };
    prepare(head, body, req, config, ledger, now, len)
}

/// What a message upstream's answer head becomes: the same streaming state
/// an HTTP head gets, with framing chosen for the body that follows.
pub(super) fn typed_head(
    head: &AnswerHead,
    kind: AnswerBody,
    req: &Forward,
    config: &ExchangeConfig,
    ledger: &mut Option<Ledger>,
    now: Instant,
) -> HeadStep {
    let whole =
        |framing| UpstreamBody::Http(BodyReader::new(framing, &config.limits.response_head));
    let (upstream, client) = match kind {
        // The head alone, as an HTTP upstream's answer to HEAD has no body.
        _ if req.method == "HEAD" => (whole(BodyFraming::None), ClientBody::Empty),
        AnswerBody::Json(n) => (
            whole(BodyFraming::ContentLength(n as u64)),
            ClientBody::Length,
        ),
        AnswerBody::Sse if req.client_http10 => (UpstreamBody::Messages, ClientBody::UntilClose),
        AnswerBody::Sse => (UpstreamBody::Messages, ClientBody::Chunked),
    };
    let body = Framed {
        upstream,
        client,
        sse: kind == AnswerBody::Sse,
        reusable: false,
    };
    prepare(head.to_http(kind), body, req, config, ledger, now, 0)
}

/// How an answer's body is framed on both legs.
struct Framed {
    upstream: UpstreamBody,
    client: ClientBody,
    sse: bool,
    /// The upstream connection can carry another request afterwards.
    reusable: bool,
}

/// The streaming state for an answer with `head`, and the head the client
/// gets (`len`: the head's size in the upstream's bytes).
fn prepare(
    head: http1::ResponseHead,
    body: Framed,
    req: &Forward,
    config: &ExchangeConfig,
    ledger: &mut Option<Ledger>,
    now: Instant,
    len: usize,
) -> HeadStep {
    let Framed {
        upstream,
        client,
        sse,
        reusable: upstream_reusable,
    } = body;
    let typed = matches!(upstream, UpstreamBody::Messages);

    // A coded body cannot be parsed: a held answer refuses it (sluice asked
    // for `identity`), and bookkeeping does not guess at its events.
    let coding = http1::header_values(&head.headers, "content-encoding")
        .flat_map(|v| v.split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .find(|c| !c.is_empty() && !c.eq_ignore_ascii_case(b"identity"));
    // Only an answer that can carry the response to a hooked request is held.
    let held_ledger = if upstream.is_empty() {
        None
    } else {
        ledger.take()
    };
    if let Some(coding) = coding
        && held_ledger.is_some()
    {
        *ledger = held_ledger;
        return HeadStep::Bad(format!(
            "the upstream's answer is content-encoded ({}), which the response hooks cannot read",
            String::from_utf8_lossy(coding)
        ));
    }
    let owed = req.rpc.as_ref().and_then(|r| r.id.clone());
    let keepalive = if sse {
        config.timeouts.sse_keepalive
    } else {
        None
    };
    let watch = (held_ledger.is_none()
        && coding.is_none()
        && sse
        && (owed.is_some() || keepalive.is_some()))
    .then(|| SseWatch {
        parser: (!typed).then(|| SseParser::new(config.limits.sse)),
        answers_request: owed.is_some(),
        owed,
        json: config.limits.json,
        lost: false,
    });

    let counting = if !sse {
        Counting::Off
    } else if held_ledger.is_some() {
        Counting::Scanned(sse::EventCounter::default())
    } else if typed {
        Counting::Messages
    } else if watch.as_ref().is_some_and(|w| w.parser.is_some()) {
        Counting::Watched
    } else {
        Counting::Scanned(sse::EventCounter::default())
    };

    let close_client = !req.client_keep_alive || client == ClientBody::UntilClose;
    let held = held_ledger.map(|ledger| {
        let form = if sse {
            HoldForm::Sse(Box::new(SseHold {
                parser: (!typed).then(|| SseParser::new(config.limits.sse)),
                pending: Vec::new(),
                base: 0,
                marks: VecDeque::new(),
                cut: false,
            }))
        } else {
            let mut head = head.clone();
            http1::remove_hop_by_hop(&mut head.headers);
            head.headers
                .retain(|h| !h.name.eq_ignore_ascii_case("content-length"));
            HoldForm::Json(JsonHold {
                head,
                close: !req.client_keep_alive,
                body: Vec::new(),
                limit: config.limits.max_hooked_response,
                flushed: false,
            })
        };
        Held {
            ledger,
            form,
            round: None,
            server: None,
        }
    });
    let json_held = matches!(
        held,
        Some(Held {
            form: HoldForm::Json(_),
            ..
        })
    );
    // A held JSON answer gets its head once the hooks have spoken.
    let client_head = if json_held {
        Bytes::new()
    } else {
        client_head(&head, client, close_client)
    };
    let stream = Streaming {
        complete: upstream.is_empty(),
        upstream,
        client: if json_held {
            ClientBody::Length
        } else {
            client
        },
        sse,
        watch,
        held,
        upstream_reusable,
        keepalive,
        last_client_write: now,
        last_upstream: now,
        upstream_released: false,
        counting,
        events: 0,
        to_server: Vec::new(),
    };
    HeadStep::Ready {
        stream: Box::new(stream),
        client_head,
        status: head.status,
        len,
    }
}

fn upstream_keeps_alive(head: &http1::ResponseHead) -> bool {
    !http1::connection_close(head.version, &head.headers)
}

/// The head the client sees: the upstream's status and end-to-end headers,
/// with our own framing.
fn client_head(head: &http1::ResponseHead, client: ClientBody, close: bool) -> Bytes {
    use std::io::Write as _;
    let drop_length = client != ClientBody::Length && client != ClientBody::Empty;
    let fields: usize = head
        .headers
        .iter()
        .map(|h| h.name.len() + h.value.len() + 4)
        .sum();
    let mut out = Vec::with_capacity(fields + head.reason.len() + 96);
    // Writing to a Vec cannot fail.
    let _ = write!(out, "HTTP/1.1 {} ", head.status);
    out.extend_from_slice(head.reason.as_bytes());
    out.extend_from_slice(b"\r\n");
    for h in &head.headers {
        if http1::is_hop_by_hop(&head.headers, h) || (drop_length && h.is("content-length")) {
            continue;
        }
        out.extend_from_slice(h.name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(&h.value);
        out.extend_from_slice(b"\r\n");
    }
    if client == ClientBody::Chunked {
        out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
    }
    if close {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    Bytes::from(out)
}

impl Streaming {
    /// The answer goes to the client as `text/event-stream`.
    pub(super) fn is_event_stream(&self) -> bool {
        self.sse
    }

    /// The upstream body ended and nothing is held back any more.
    pub fn is_complete(&self) -> bool {
        self.complete
            && self.held.as_ref().is_none_or(|h| {
                !h.judging()
                    && match &h.form {
                        HoldForm::Json(j) => j.flushed,
                        HoldForm::Sse(s) => s.pending.is_empty() && s.marks.is_empty(),
                    }
            })
    }

    /// The upstream body ended (at EOF) while an answer is held.
    pub fn mark_upstream_done(&mut self) {
        self.complete = true;
        self.upstream_reusable = false;
        self.upstream_released = true;
    }

    /// The upstream connection was let go already ([`Self::mark_upstream_done`]).
    pub fn upstream_released(&self) -> bool {
        self.upstream_released
    }

    /// A held answer waits for the hooks.
    pub fn awaiting_hooks(&self) -> bool {
        self.held.as_ref().is_some_and(Held::judging)
    }

    pub fn upstream_reusable(&self) -> bool {
        self.upstream_reusable
    }

    pub fn client_until_close(&self) -> bool {
        self.client == ClientBody::UntilClose
    }

    /// The upstream body ends with the connection (or, from a message
    /// upstream, with its end part).
    pub fn ends_at_eof(&self) -> bool {
        match &self.upstream {
            UpstreamBody::Http(reader) => reader.ends_at_eof(),
            UpstreamBody::Messages => true,
        }
    }

    /// Whether the upstream closing its connection now ends this
    /// close-delimited answer cleanly. An SSE answer to a request that is
    /// still owed its response, or that stops inside an event, was cut
    /// short: like a chunked answer cut short, it fails (an injected error
    /// at a boundary, else an abort), never a clean end.
    pub fn eof_ends_answer(&self) -> bool {
        if let Some(held) = &self.held {
            return match &held.form {
                HoldForm::Json(_) => true,
                HoldForm::Sse(s) => s.cut || held.ledger.all_seen(),
            };
        }
        match &self.watch {
            Some(w) if w.answers_request => w.owed.is_none() && w.at_boundary(),
            _ => true,
        }
    }

    /// Forward one upstream read: the bytes for the client go to `out`.
    pub fn feed(&mut self, input: Bytes, out: &mut Vec<Bytes>, now: Instant) -> Result<(), String> {
        if let Some(held) = &mut self.held {
            held.ledger.tick(now);
        }
        let mut pieces: Vec<Range<usize>> = Vec::new();
        let mut failure = None;
        match &mut self.upstream {
            UpstreamBody::Messages => {
                failure = Some("the upstream sent bytes where messages were due".to_owned());
            }
            // Bytes past the end of the body: the upstream is out of step.
            UpstreamBody::Http(reader) if reader.is_done() => self.upstream_reusable = false,
            UpstreamBody::Http(reader) => match reader.read(&input, |r| pieces.push(r)) {
                Ok(read) => {
                    if read.done {
                        self.complete = true;
                    }
                    if read.consumed < input.len() {
                        self.upstream_reusable = false;
                    }
                }
                // What decoded before the fault still goes out.
                Err(e) => {
                    failure = Some(format!("the upstream sent invalid chunked framing: {e}"));
                }
            },
        }
        for r in pieces {
            if r.is_empty() {
                continue;
            }
            let data = input.slice(r);
            match self.held.as_mut().map(|h| &mut h.form) {
                Some(HoldForm::Json(hold)) => {
                    if hold.body.len() + data.len() > hold.limit {
                        return Err(format!(
                            "the upstream's answer is larger than the {} bytes the response hooks may hold",
                            hold.limit
                        ));
                    }
                    hold.body.extend_from_slice(&data);
                }
                Some(HoldForm::Sse(_)) => self.hold_sse(&data),
                None => {
                    let mut scan_from = 0;
                    if let Some(watch) = &mut self.watch {
                        let seen = watch.observe(&data);
                        if let Counting::Watched = self.counting {
                            self.events += seen.events;
                            // Past the parser's limit a scan counts on,
                            // from the end of the last event it counted.
                            if let Some(at) = seen.lost_at {
                                self.counting = Counting::Scanned(Default::default());
                                scan_from = at;
                            }
                        }
                    }
                    self.forward_from(data, scan_from, out, now);
                }
            }
        }
        match self.held.as_ref().map(|h| &h.form) {
            Some(HoldForm::Sse(_)) => self.flush_sse(out, now),
            Some(HoldForm::Json(hold))
                if self.complete
                    && !hold.flushed
                    && self.held.as_ref().is_some_and(|h| !h.judging()) =>
            {
                self.offer_json(out);
            }
            _ => {}
        }
        failure.map_or(Ok(()), Err)
    }

    /// One whole message of a message upstream's SSE answer: encoded once as
    /// an event for the client, and judged or watched as it is, never parsed
    /// back from the encoding.
    pub fn feed_message(
        &mut self,
        data: &[u8],
        id: Option<EventId<'_>>,
        out: &mut Vec<Bytes>,
        now: Instant,
    ) {
        if let Some(held) = &mut self.held {
            held.ledger.tick(now);
        }
        let mut event = Vec::with_capacity(data.len() + 24);
        match id {
            Some(EventId::Seq(id)) => sse::encode_jsonrpc_message_with_id(data, id, &mut event),
            Some(EventId::Text(id)) => {
                // An id the client could not read back goes without one.
                if sse::encode_jsonrpc_message_with_text_id(data, id, &mut event).is_err() {
                    sse::encode_jsonrpc_message(data, &mut event);
                }
            }
            None => sse::encode_jsonrpc_message(data, &mut event),
        }
        match &mut self.held {
            Some(Held {
                ledger,
                form: HoldForm::Sse(hold),
                ..
            }) => {
                if hold.cut {
                    return;
                }
                let start = hold.base + hold.pending.len() as u64;
                let span = start..start + event.len() as u64;
                let mark = match ledger.judge(data) {
                    Judged::Pass => None,
                    Judged::Through(owed) => Some(Mark::Through(owed)),
                    Judged::Hold(parts) => match std::str::from_utf8(data) {
                        Ok(text) => Some(Mark::Held {
                            event_type: "message".to_owned(),
                            id: id.map(|id| id.to_string()).unwrap_or_default(),
                            data: text.to_owned(),
                            parts,
                        }),
                        Err(_) => Some(Mark::Cut("an event is not UTF-8".to_owned())),
                    },
                    Judged::Server(message) => Some(Mark::Server {
                        event_type: "message".to_owned(),
                        id: id.map(|id| id.to_string()).unwrap_or_default(),
                        message,
                    }),
                    Judged::Refuse(why) => Some(Mark::Cut(why)),
                };
                match mark {
                    Some(Mark::Cut(why)) => {
                        hold.cut = true;
                        hold.marks.push_back((start..start, Mark::Cut(why)));
                    }
                    Some(mark) => {
                        hold.pending.extend_from_slice(&event);
                        hold.marks.push_back((span, mark));
                    }
                    None => hold.pending.extend_from_slice(&event),
                }
                self.flush_sse(out, now);
            }
            // A JSON answer is never a stream of messages.
            Some(_) => {}
            None => {
                if let Some(watch) = &mut self.watch {
                    watch.observe_message(data);
                }
                self.forward_event(Bytes::from(event), out, now);
            }
        }
    }

    /// A priming event: no message, nothing to judge or watch; behind
    /// held events when the hooks hold some, so the order holds.
    pub fn feed_prime(&mut self, id: u64, out: &mut Vec<Bytes>, now: Instant) {
        let mut event = Vec::with_capacity(24);
        sse::encode_prime(id, &mut event);
        match &mut self.held {
            Some(Held {
                form: HoldForm::Sse(hold),
                ..
            }) => {
                if !hold.cut {
                    hold.pending.extend_from_slice(&event);
                    self.flush_sse(out, now);
                }
            }
            Some(_) => {}
            None => self.forward_event(Bytes::from(event), out, now),
        }
    }

    /// Judge the events of held SSE bytes as they complete.
    fn hold_sse(&mut self, data: &[u8]) {
        let Some(Held {
            ledger,
            form: HoldForm::Sse(hold),
            ..
        }) = &mut self.held
        else {
            return;
        };
        if hold.cut {
            return;
        }
        hold.pending.extend_from_slice(data);
        let Some(parser) = hold.parser.as_mut() else {
            return;
        };
        parser.feed(data);
        while let Some(item) = parser.poll() {
            let (span, mark) = match item {
                Ok(SseItem::Event(event)) => match ledger.judge(event.data.as_bytes()) {
                    Judged::Pass => continue,
                    Judged::Through(owed) => (event.span, Mark::Through(owed)),
                    Judged::Hold(parts) => (
                        event.span,
                        Mark::Held {
                            event_type: event.event_type,
                            id: event.id,
                            data: event.data,
                            parts,
                        },
                    ),
                    Judged::Server(message) => (
                        event.span,
                        Mark::Server {
                            event_type: event.event_type,
                            id: event.id,
                            message,
                        },
                    ),
                    Judged::Refuse(why) => (event.span.start..event.span.start, Mark::Cut(why)),
                },
                Ok(_) => continue,
                Err(e) => {
                    // Past a parser limit nothing more can be judged: the
                    // answer is cut at the last whole event.
                    let at = parser.boundary_offset();
                    (
                        at..at,
                        Mark::Cut(format!("its event stream could not be read: {e}")),
                    )
                }
            };
            if let Mark::Cut(_) = mark {
                hold.cut = true;
                // Nothing past the cut is ever sent: do not keep it.
                let keep = (span.start.saturating_sub(hold.base) as usize).min(hold.pending.len());
                hold.pending.truncate(keep);
                hold.marks.push_back((span, mark));
                return;
            }
            hold.marks.push_back((span, mark));
        }
    }

    /// A held JSON answer is whole: judge it, and hand its hooked answers
    /// to the hooks or let it through.
    fn offer_json(&mut self, out: &mut Vec<Bytes>) {
        let Some(Held {
            ledger,
            form: HoldForm::Json(hold),
            round,
            ..
        }) = &mut self.held
        else {
            return;
        };
        match ledger.judge(&hold.body) {
            Judged::Pass => self.flush_json(None, out),
            Judged::Through(owed) => {
                ledger.delivered(owed);
                self.flush_json(None, out);
            }
            Judged::Hold(parts) => *round = Round::start(hold.body.clone(), parts, ledger),
            // Server messages travel in event streams; one in a JSON body
            // would reach a client that reads it unjudged.
            Judged::Server(_) => {
                let why = "a server message came as a JSON answer";
                let errors = ledger.fail_undelivered(HOOK_FAILED, &cut_reason(why));
                let body = ledger.body_of(&errors);
                self.flush_json(Some(body), out);
            }
            Judged::Refuse(why) => {
                let errors = ledger.fail_undelivered(HOOK_FAILED, &cut_reason(&why));
                let body = ledger.body_of(&errors);
                self.flush_json(Some(body), out);
            }
        }
    }

    fn flush_json(&mut self, replacement: Option<Vec<u8>>, out: &mut Vec<Bytes>) {
        let Some(Held {
            form: HoldForm::Json(hold),
            ..
        }) = &mut self.held
        else {
            return;
        };
        if hold.flushed {
            return;
        }
        let body = replacement.unwrap_or_else(|| std::mem::take(&mut hold.body));
        hold.body = Vec::new();
        let mut head = hold.head.clone();
        head.headers
            .push(http1::Header::new("Content-Length", body.len().to_string()));
        out.push(client_head(&head, ClientBody::Length, hold.close));
        out.push(Bytes::from(body));
        hold.flushed = true;
    }

    /// Forward held SSE bytes up to the last whole event, stopping at each
    /// held answer until the hooks have spoken, and at a cut for good.
    fn flush_sse(&mut self, out: &mut Vec<Bytes>, now: Instant) {
        loop {
            let Some(Held {
                ledger,
                form: HoldForm::Sse(hold),
                round,
                server,
            }) = &mut self.held
            else {
                return;
            };
            if round.is_some() || server.is_some() {
                return;
            }
            let limit = match hold.marks.front() {
                Some((span, Mark::Through(_))) => span.end,
                Some((span, _)) => span.start,
                None => hold.boundary(),
            };
            let n = (limit.saturating_sub(hold.base) as usize).min(hold.pending.len());
            let data: Vec<u8> = hold.pending.drain(..n).collect();
            hold.base += n as u64;
            let mut cut = None;
            match hold.marks.front() {
                // The body ended: a partial event never completes, and an
                // answer never seen will not come.
                None if self.complete => {
                    hold.pending = Vec::new();
                    cut = Some(ledger.fail_undelivered(
                        UPSTREAM_FAILED,
                        "the upstream's answer ended before it was whole",
                    ));
                }
                None => {}
                Some((_, Mark::Through(_))) => {
                    if let Some((_, Mark::Through(owed))) = hold.marks.pop_front() {
                        ledger.delivered(owed);
                    }
                }
                Some((_, Mark::Held { data, parts, .. })) => {
                    *round = Round::start(data.clone().into_bytes(), parts.clone(), ledger);
                }
                Some((_, Mark::Server { message, .. })) => *server = Some((message.clone(), false)),
                Some((_, Mark::Cut(why))) => {
                    cut = Some(ledger.fail_undelivered(HOOK_FAILED, &cut_reason(why)));
                    hold.marks.clear();
                    hold.pending = Vec::new();
                }
            }
            let more = hold.marks.front().is_some()
                && round.is_none()
                && server.is_none()
                && cut.is_none();
            if !data.is_empty() {
                self.forward(Bytes::from(data), out, now);
            }
            if let Some(errors) = cut {
                // sluice's own errors, in place of answers: not forwarded.
                for error in errors {
                    let mut event = Vec::with_capacity(error.len() + 32);
                    sse::encode_jsonrpc_message(&error, &mut event);
                    self.write_client(Bytes::from(event), out);
                    self.last_client_write = now;
                }
                // The answer is complete (errors stand for what was owed);
                // the upstream's stream is out of step and not reused.
                self.complete = true;
                self.upstream_reusable = false;
                return;
            }
            if !more {
                return;
            }
        }
    }

    /// Body bytes of the upstream's answer (its own, or as the hooks left
    /// it) for the client; a scan counts their events where nothing else
    /// reads them.
    fn forward(&mut self, data: Bytes, out: &mut Vec<Bytes>, now: Instant) {
        self.forward_from(data, 0, out, now);
    }

    /// One whole event from a message upstream, unheld: counted as one.
    fn forward_event(&mut self, event: Bytes, out: &mut Vec<Bytes>, now: Instant) {
        if let Counting::Messages = self.counting {
            self.events += 1;
        }
        self.forward(event, out, now);
    }

    /// [`Self::forward`], scanning only from `scan_from` (what comes
    /// before was counted already).
    fn forward_from(&mut self, data: Bytes, scan_from: usize, out: &mut Vec<Bytes>, now: Instant) {
        if let Counting::Scanned(counter) = &mut self.counting {
            counter.feed(data.get(scan_from..).unwrap_or_default());
        }
        self.write_client(data, out);
        self.last_client_write = now;
    }

    /// The SSE events of the upstream's answer forwarded to the client so
    /// far (0 for an answer that is not an event stream).
    pub fn events_forwarded(&self) -> u64 {
        match &self.counting {
            Counting::Scanned(counter) => self.events + counter.events(),
            Counting::Off | Counting::Messages | Counting::Watched => self.events,
        }
    }

    /// The next hook call: once per hooked part of an answer, once per
    /// hooked server message.
    pub fn take_hook_call(&mut self) -> Option<StreamCall> {
        let held = self.held.as_mut()?;
        if let Some((message, asked)) = &mut held.server {
            if *asked {
                return None;
            }
            *asked = true;
            return Some(StreamCall::Server {
                method: message.method.clone(),
                message: message.text.clone(),
            });
        }
        let round = held.round.as_mut()?;
        if round.asked {
            return None;
        }
        let part = round.parts.get(round.next)?;
        round.asked = true;
        let owed = held.ledger.owed(part.owed);
        Some(StreamCall::Response {
            method: owed.method.clone(),
            request: owed.request.clone(),
            response: part.text.clone(),
        })
    }

    /// The hooks' verdict on the part last handed out; once every part is
    /// judged, the answer (as the hooks left it) goes out.
    pub fn apply_verdict(
        &mut self,
        verdict: HookVerdict,
        limits: &jsonrpc::Limits,
        out: &mut Vec<Bytes>,
        now: Instant,
    ) {
        let Some(held) = self.held.as_mut() else {
            return;
        };
        if held.server.is_some() {
            self.apply_server_verdict(verdict, limits, out, now);
            return;
        }
        let Some(round) = held.round.as_mut() else {
            return;
        };
        let Some(part) = round.parts.get(round.next) else {
            return;
        };
        round.asked = false;
        let (element, owed) = (part.element, part.owed);
        let verdict =
            super::checked_verdict(verdict, HookPhase::Response, part.text.as_bytes(), limits);
        if let Some(message) = verdict_message(verdict, &held.ledger.owed(owed).id) {
            round.replaced.push((element, message));
        }
        round.advance(&held.ledger);
        if round.next < round.parts.len() {
            return;
        }
        let Some(round) = held.round.take() else {
            return;
        };
        held.ledger.delivered(round.parts.iter().map(|p| p.owed));
        let changed = !round.replaced.is_empty();
        let message = round.finish();
        if matches!(held.form, HoldForm::Json(_)) {
            self.flush_json(changed.then_some(message), out);
            return;
        }
        let Some(Held {
            form: HoldForm::Sse(hold),
            ..
        }) = &mut self.held
        else {
            return;
        };
        let Some((span, Mark::Held { event_type, id, .. })) = hold.marks.pop_front() else {
            return;
        };
        let original = hold.take_event(span);
        let bytes = if changed {
            replacement_event(&event_type, &id, &message)
        } else {
            original
        };
        if !bytes.is_empty() {
            self.forward(Bytes::from(bytes), out, now);
        }
        self.flush_sse(out, now);
    }

    /// The upstream failed with `code` and `why` while an answer is held:
    /// what is left to tell the client. `None` when nothing is held.
    pub fn fail_held(&mut self, code: i64, why: &str) -> Option<HeldFailure> {
        let held = self.held.as_mut()?;
        held.round = None;
        held.server = None;
        let flushed = match &held.form {
            HoldForm::Json(j) => j.flushed,
            HoldForm::Sse(_) => false,
        };
        let errors = held.ledger.fail_undelivered(code, why);
        if errors.is_empty() || flushed {
            return Some(HeldFailure::Answered);
        }
        let client = self.client;
        match &mut held.form {
            HoldForm::Json(_) => Some(HeldFailure::Body(held.ledger.body_of(&errors))),
            HoldForm::Sse(hold) => {
                hold.marks.clear();
                hold.pending = Vec::new();
                let mut out = Vec::new();
                for error in errors {
                    let mut event = Vec::with_capacity(error.len() + 32);
                    sse::encode_jsonrpc_message(&error, &mut event);
                    frame(client, Bytes::from(event), &mut out);
                }
                let end = self.finish_clean();
                if !end.is_empty() {
                    out.push(Bytes::from(end));
                }
                Some(HeldFailure::Events(out))
            }
        }
    }

    /// The hooks' verdict on the server message at the front: it goes to
    /// the client (as it was or replaced), or a server request is answered
    /// to the server instead and a notification dropped.
    fn apply_server_verdict(
        &mut self,
        verdict: HookVerdict,
        limits: &jsonrpc::Limits,
        out: &mut Vec<Bytes>,
        now: Instant,
    ) {
        let Some(Held {
            form: HoldForm::Sse(hold),
            server,
            ledger,
            ..
        }) = &mut self.held
        else {
            return;
        };
        let Some((message, true)) = server.take() else {
            return;
        };
        ledger.tick(now);
        let Some((span, Mark::Server { event_type, id, .. })) = hold.marks.pop_front() else {
            return;
        };
        let original = hold.take_event(span);
        let verdict = super::checked_verdict(
            verdict,
            HookPhase::ServerMessage,
            message.text.as_bytes(),
            limits,
        );
        let bytes = match verdict {
            HookVerdict::Continue => {
                ledger.remember_asked(&message.method, message.id.as_deref(), &message.text);
                original
            }
            HookVerdict::Replace(replacement) => {
                let text = String::from_utf8_lossy(&replacement);
                ledger.remember_asked(&message.method, message.id.as_deref(), &text);
                replacement_event(&event_type, &id, &replacement)
            }
            // Stopped: the client never sees it; a request gets its
            // answer from the hooks (a notification has no one to tell).
            HookVerdict::Reject {
                code,
                message: text,
                data,
            } => {
                if let Some(id) = &message.id {
                    self.to_server.push(jsonrpc::error_message(
                        Some(id),
                        code,
                        &text,
                        data.as_deref(),
                    ));
                }
                Vec::new()
            }
            HookVerdict::Respond(result) => {
                if let Some(id) = &message.id {
                    self.to_server.push(jsonrpc::result_message(id, &result));
                }
                Vec::new()
            }
        };
        if !bytes.is_empty() {
            self.forward(Bytes::from(bytes), out, now);
        }
        self.flush_sse(out, now);
    }

    /// The answers to server requests the hooks stopped, for the upstream.
    pub fn take_server_answers(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.to_server)
    }

    fn write_client(&self, data: Bytes, out: &mut Vec<Bytes>) {
        frame(self.client, data, out);
    }

    /// The bytes that end the client's body cleanly.
    pub fn finish_clean(&mut self) -> Vec<u8> {
        self.complete = true;
        match self.client {
            ClientBody::Chunked => http1::LAST_CHUNK.to_vec(),
            _ => Vec::new(),
        }
    }

    /// What the client has been sent, as the injection rules need it.
    pub fn sent_for_injection(&self) -> Sent {
        if let Some(held) = &self.held {
            return match &held.form {
                HoldForm::Json(j) if j.flushed => Sent::Finished,
                HoldForm::Json(_) => Sent::Nothing,
                // Held mode only ever forwards whole events.
                HoldForm::Sse(_) if held.ledger.all_delivered() => Sent::Finished,
                HoldForm::Sse(_) => Sent::SseHead { at_boundary: true },
            };
        }
        if self.complete && self.is_complete() {
            return Sent::Finished;
        }
        if !self.sse {
            return Sent::OtherHead;
        }
        match &self.watch {
            // The response went out already: nothing is owed, end cleanly.
            Some(w) if w.answers_request && w.owed.is_none() && w.at_boundary() => Sent::Finished,
            Some(w) => Sent::SseHead {
                at_boundary: w.owed.is_some() && w.at_boundary(),
            },
            None => Sent::SseHead { at_boundary: false },
        }
    }

    /// When a keep-alive comment would be due, if one may be written.
    pub fn keepalive_deadline(&self, _now: Instant) -> Option<Instant> {
        let every = self.keepalive?;
        let at_boundary = match &self.held {
            Some(Held {
                form: HoldForm::Sse(hold),
                ..
            }) => !hold.cut,
            Some(_) => false,
            None => self.watch.as_ref().is_some_and(SseWatch::at_boundary),
        };
        at_boundary.then_some(self.last_client_write + every)
    }

    /// A keep-alive comment, framed for the client, if one is due now.
    pub fn keepalive_due(&mut self, now: Instant) -> Option<Vec<u8>> {
        let due = self.keepalive_deadline(now)?;
        if now < due {
            return None;
        }
        self.last_client_write = now;
        let comment = b": keepalive\n\n";
        Some(match self.client {
            ClientBody::Chunked => {
                let mut v = Vec::with_capacity(comment.len() + 8);
                http1::encode_chunk(comment, &mut v);
                v
            }
            _ => comment.to_vec(),
        })
    }
}

/// Body bytes framed for the client.
fn frame(client: ClientBody, data: Bytes, out: &mut Vec<Bytes>) {
    match client {
        ClientBody::Chunked => {
            // The data goes out as it is: only the size line is written.
            if let Some(size) = http1::chunk_header(data.len()) {
                out.push(Bytes::copy_from_slice(size.as_bytes()));
                out.push(data);
                out.push(Bytes::from_static(http1::CHUNK_END));
            }
        }
        ClientBody::Length | ClientBody::UntilClose => out.push(data),
        ClientBody::Empty => {}
    }
}

impl Round {
    /// A run over `data`, or `None` when no part is hooked.
    fn start(data: Vec<u8>, parts: Vec<Part>, ledger: &Ledger) -> Option<Round> {
        let mut round = Round {
            data,
            parts,
            next: 0,
            asked: false,
            replaced: Vec::new(),
        };
        round.next = round
            .parts
            .iter()
            .position(|p| ledger.owed(p.owed).hooked)
            .unwrap_or(round.parts.len());
        Some(round)
    }

    /// Move to the next hooked part.
    fn advance(&mut self, ledger: &Ledger) {
        self.next += 1;
        while self
            .parts
            .get(self.next)
            .is_some_and(|p| !ledger.owed(p.owed).hooked)
        {
            self.next += 1;
        }
    }

    /// The message as the hooks left it.
    fn finish(self) -> Vec<u8> {
        match self.replaced.as_slice() {
            [] => self.data,
            [(None, message)] => message.clone(),
            replaced => {
                let elements = self.parts.iter().map(|p| p.text.as_bytes());
                hooks::rebuild_array(elements, replaced)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_possible_answers_are_classified() {
        let id = br#""req-7""#;
        assert!(may_answer(
            br#"{"jsonrpc":"2.0","id":"req-7","result":{}}"#,
            id
        ));
        assert!(may_answer(br#"{"id":"req-7","error":{"code":1}}"#, id));
        assert!(may_answer(br#"{"id":"req-7","\u0072esult":{}}"#, id));
        // No result or error member: a notification.
        assert!(!may_answer(
            br#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"req-7"}}"#,
            id
        ));
        // Another id.
        assert!(!may_answer(
            br#"{"jsonrpc":"2.0","id":"req-8","result":{}}"#,
            id
        ));
    }
}
