//! The response side of an exchange: read the upstream's head, decide how
//! the body is framed on both legs, and forward the body read by read.

use std::ops::Range;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::ExchangeConfig;
use super::request::Forward;
use crate::http1::{self, BodyFraming, ChunkedDecoder, Parsed};
use crate::inject::Sent;
use crate::jsonrpc::{self, Classified, Kind};
use crate::sse::{self, OutgoingEvent, SseEvent, SseItem, SseParser};

pub(super) enum HeadStep {
    NeedMore,
    /// A 1xx head of `len` bytes to skip.
    Informational {
        len: usize,
    },
    Bad(String),
    Ready {
        stream: Box<Streaming>,
        client_head: Bytes,
        status: u16,
        len: usize,
    },
}

/// How the upstream delimits its body.
enum UpstreamBody {
    Length { remaining: u64 },
    Chunked(ChunkedDecoder),
    UntilClose,
    Empty,
}

/// How we delimit the body towards the client.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ClientBody {
    Length,
    Chunked,
    UntilClose,
    Empty,
}

/// Watches an SSE answer without holding anything back: is the client at an
/// event boundary, and has the response to its request gone out yet?
struct SseWatch {
    parser: SseParser,
    /// The raw id of the request still owed a response.
    owed: Option<Vec<u8>>,
    /// This stream carries the answer to a request (not a GET stream).
    answers_request: bool,
    json: jsonrpc::Limits,
    /// The parser hit a limit: boundaries are no longer known.
    lost: bool,
    /// Hold the response event for the response hooks instead of letting it
    /// through (see [`Streaming`]).
    hold: bool,
    /// The response event, once seen in hold mode: its span and the event.
    held: Option<(Range<u64>, SseEvent)>,
    /// In hold mode, the held event could be the response but could not be
    /// read: why. It is replaced by an error, never shown to the hooks.
    unreadable: Option<String>,
}

impl SseWatch {
    fn observe(&mut self, data: &[u8]) {
        if self.lost {
            return;
        }
        self.parser.feed(data);
        while let Some(item) = self.parser.poll() {
            match item {
                Ok(SseItem::Event(event)) => {
                    let Some(owed) = &self.owed else { continue };
                    if !may_answer(event.data.as_bytes(), owed) {
                        continue;
                    }
                    match jsonrpc::classify(event.data.as_bytes(), &self.json) {
                        Ok(Classified::Single(m)) => {
                            let answers = matches!(m.kind, Kind::Response | Kind::Error);
                            if answers && m.id == Some(owed.as_slice()) {
                                self.owed = None;
                                if self.hold {
                                    self.held = Some((event.span.clone(), event));
                                }
                            }
                        }
                        Ok(Classified::Batch(_)) => {}
                        // It may be the response, and the client's parser
                        // may read it differently: held, it is replaced by
                        // an error rather than passed on unseen by the hooks.
                        Err(e) if self.hold => {
                            self.owed = None;
                            self.unreadable = Some(e.to_string());
                            self.held = Some((event.span.clone(), event));
                        }
                        Err(_) => {}
                    }
                }
                Ok(_) => {}
                Err(_) => {
                    self.lost = true;
                    return;
                }
            }
        }
    }

    fn at_boundary(&self) -> bool {
        !self.lost && self.parser.at_event_boundary()
    }
}

/// Whether an event's data can be the response to request `id` (its raw
/// JSON text): a cheap scan that lets the many notifications of a stream
/// (progress, logging) skip classification. A response has a `result` or
/// `error` member and carries the id's exact text (the match is on raw
/// bytes); a key spelled with escapes has a backslash, so any data with one
/// is classified to be sure.
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

/// An SSE answer whose response event is held for the response hooks; every
/// other event goes through at once.
struct SseHold {
    /// Decoded body bytes not yet forwarded, from stream offset `base`.
    pending: Vec<u8>,
    base: u64,
    /// The hook verdict on the held event was applied.
    resolved: bool,
}

pub(super) struct Streaming {
    upstream: UpstreamBody,
    client: ClientBody,
    sse: bool,
    watch: Option<SseWatch>,
    upstream_reusable: bool,
    /// The upstream body ended.
    complete: bool,
    keepalive: Option<Duration>,
    last_client_write: Instant,
    json_hold: Option<JsonHold>,
    sse_hold: Option<SseHold>,
    /// The response message handed to the hooks, waiting for a verdict.
    hook_pending: bool,
    /// A response message for the hooks, not yet taken by the exchange.
    hook_call: Option<Bytes>,
    /// The id of the request whose response is hooked.
    hooked_id: Option<Vec<u8>>,
    json_limits: jsonrpc::Limits,
}

/// What goes to the client in place of the held response.
pub(super) enum HeldAnswer {
    /// The upstream's own response, unchanged.
    Original,
    /// This JSON-RPC message instead.
    Message(Vec<u8>),
}

/// Parse the response head in `buf`.
pub(super) fn read_head(
    scanner: &mut http1::HeadScanner,
    buf: &[u8],
    req: &Forward,
    config: &ExchangeConfig,
    hooked: bool,
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
    let (upstream, client) = match framing {
        BodyFraming::None => (UpstreamBody::Empty, ClientBody::Empty),
        BodyFraming::ContentLength(0) => (UpstreamBody::Empty, ClientBody::Length),
        BodyFraming::ContentLength(n) => {
            (UpstreamBody::Length { remaining: n }, ClientBody::Length)
        }
        BodyFraming::Chunked => (
            UpstreamBody::Chunked(ChunkedDecoder::new(&config.limits.response_head)),
            if req.client_http10 {
                ClientBody::UntilClose
            } else {
                ClientBody::Chunked
            },
        ),
        BodyFraming::UntilClose => (
            UpstreamBody::UntilClose,
            if req.client_http10 {
                ClientBody::UntilClose
            } else {
                ClientBody::Chunked
            },
        ),
    };
    let upstream_reusable =
        !matches!(framing, BodyFraming::UntilClose) && upstream_keeps_alive(&head);

    let owed = req.rpc.as_ref().and_then(|r| r.id.clone());
    let keepalive = if sse {
        config.timeouts.sse_keepalive
    } else {
        None
    };
    // Only an answer that can carry the response to a hooked request is held.
    let hooked = hooked && owed.is_some() && !matches!(upstream, UpstreamBody::Empty);
    let hooked_id = if hooked { owed.clone() } else { None };
    let watch = (sse && (owed.is_some() || keepalive.is_some())).then(|| SseWatch {
        parser: SseParser::new(config.limits.sse),
        answers_request: owed.is_some(),
        owed,
        json: config.limits.json,
        lost: false,
        hold: hooked,
        held: None,
        unreadable: None,
    });

    let close_client = !req.client_keep_alive || client == ClientBody::UntilClose;
    let json_hold = (hooked && !sse).then(|| {
        let mut head = head.clone();
        http1::remove_hop_by_hop(&mut head.headers);
        head.headers
            .retain(|h| !h.name.eq_ignore_ascii_case("content-length"));
        JsonHold {
            head,
            close: !req.client_keep_alive,
            body: Vec::new(),
            limit: config.limits.max_hooked_response,
            flushed: false,
        }
    });
    let sse_hold = (hooked && sse).then(|| SseHold {
        pending: Vec::new(),
        base: 0,
        resolved: false,
    });
    // A held JSON answer gets its head once the hooks have spoken.
    let client_head = if json_hold.is_some() {
        Bytes::new()
    } else {
        client_head(&head, client, close_client)
    };
    let stream = Streaming {
        complete: matches!(upstream, UpstreamBody::Empty),
        upstream,
        client: if json_hold.is_some() {
            ClientBody::Length
        } else {
            client
        },
        sse,
        watch,
        upstream_reusable,
        keepalive,
        last_client_write: now,
        json_hold,
        sse_hold,
        hook_pending: false,
        hook_call: None,
        hooked_id,
        json_limits: config.limits.json,
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

/// `{len:x}\r\n`, the line that opens a chunk, in one small allocation.
fn chunk_size_line(len: usize) -> Bytes {
    let mut line = [0u8; 2 * std::mem::size_of::<usize>() + 2];
    let mut at = line.len() - 2;
    line[at..].copy_from_slice(b"\r\n");
    let mut rest = len;
    loop {
        at -= 1;
        line[at] = b"0123456789abcdef"[rest & 0xf];
        rest >>= 4;
        if rest == 0 {
            break;
        }
    }
    Bytes::copy_from_slice(&line[at..])
}

impl Streaming {
    pub fn is_sse(&self) -> bool {
        self.sse
    }

    /// The upstream body ended and nothing is held back any more.
    pub fn is_complete(&self) -> bool {
        self.complete
            && !self.hook_pending
            && self.hook_call.is_none()
            && self.json_hold.as_ref().is_none_or(|h| h.flushed)
            && self.sse_hold.as_ref().is_none_or(|h| h.pending.is_empty())
    }

    /// The upstream body ended (at EOF) while an answer is held.
    pub fn mark_upstream_done(&mut self) {
        self.complete = true;
        self.upstream_reusable = false;
    }

    /// A held answer waits for the hooks.
    pub fn awaiting_hooks(&self) -> bool {
        self.hook_pending
    }

    pub fn upstream_reusable(&self) -> bool {
        self.upstream_reusable
    }

    pub fn client_until_close(&self) -> bool {
        self.client == ClientBody::UntilClose
    }

    /// The upstream body ends with the connection.
    pub fn ends_at_eof(&self) -> bool {
        matches!(self.upstream, UpstreamBody::UntilClose)
    }

    /// Forward one upstream read: the bytes for the client go to `out`.
    pub fn feed(&mut self, input: Bytes, out: &mut Vec<Bytes>, now: Instant) -> Result<(), String> {
        let mut pieces: Vec<Range<usize>> = Vec::new();
        let mut failure = None;
        match &mut self.upstream {
            UpstreamBody::Empty => {
                self.upstream_reusable = false;
            }
            UpstreamBody::UntilClose => pieces.push(0..input.len()),
            UpstreamBody::Length { remaining } => {
                let take = (*remaining).min(input.len() as u64) as usize;
                *remaining -= take as u64;
                pieces.push(0..take);
                if take < input.len() {
                    // Bytes past the declared length: the upstream is out of step.
                    self.upstream_reusable = false;
                }
                if *remaining == 0 {
                    self.complete = true;
                }
            }
            UpstreamBody::Chunked(decoder) => {
                let mut pos = 0;
                while pos < input.len() {
                    let d = match decoder.decode(&input[pos..]) {
                        Ok(d) => d,
                        Err(e) => {
                            // What decoded before the fault still goes out.
                            failure =
                                Some(format!("the upstream sent invalid chunked framing: {e}"));
                            break;
                        }
                    };
                    if let Some(r) = d.data {
                        pieces.push(pos + r.start..pos + r.end);
                    }
                    pos += d.consumed;
                    if d.done {
                        self.complete = true;
                        if pos < input.len() {
                            self.upstream_reusable = false;
                        }
                        break;
                    }
                    if d.consumed == 0 {
                        break;
                    }
                }
            }
        }
        for r in pieces {
            if r.is_empty() {
                continue;
            }
            let data = input.slice(r);
            if let Some(hold) = &mut self.json_hold {
                if hold.body.len() + data.len() > hold.limit {
                    return Err(format!(
                        "the upstream's answer is larger than the {} bytes the response hooks may hold",
                        hold.limit
                    ));
                }
                hold.body.extend_from_slice(&data);
                continue;
            }
            if let Some(watch) = &mut self.watch {
                watch.observe(&data);
            }
            if let Some(hold) = &mut self.sse_hold {
                hold.pending.extend_from_slice(&data);
                continue;
            }
            self.write_client(data, out);
            self.last_client_write = now;
        }
        if self.sse_hold.is_some() {
            self.flush_sse(out, now);
        }
        if self.complete
            && self.json_hold.as_ref().is_some_and(|h| !h.flushed)
            && !self.hook_pending
        {
            self.offer_json(out);
        }
        failure.map_or(Ok(()), Err)
    }

    /// A held JSON answer is whole: hand it to the hooks if it answers the
    /// hooked request, else let it through.
    fn offer_json(&mut self, out: &mut Vec<Bytes>) {
        let Some(hold) = &self.json_hold else { return };
        let answers = match jsonrpc::classify(&hold.body, &self.json_limits) {
            Ok(Classified::Single(m)) => {
                matches!(m.kind, Kind::Response | Kind::Error) && m.id == self.hooked_id.as_deref()
            }
            Ok(Classified::Batch(_)) => false,
            Err(e) => {
                // It may be the answer, and the client's parser may read it
                // differently: the hooks must see it or the client must not.
                let error = self.unreadable_answer(&e.to_string());
                self.flush_json(Some(error), out);
                return;
            }
        };
        if answers {
            self.hook_call = Some(Bytes::copy_from_slice(&hold.body));
            self.hook_pending = true;
        } else {
            self.flush_json(None, out);
        }
    }

    fn flush_json(&mut self, replacement: Option<Vec<u8>>, out: &mut Vec<Bytes>) {
        let Some(hold) = &mut self.json_hold else {
            return;
        };
        let body = replacement.unwrap_or_else(|| std::mem::take(&mut hold.body));
        let mut head = hold.head.clone();
        head.headers
            .push(http1::Header::new("Content-Length", body.len().to_string()));
        out.push(client_head(&head, ClientBody::Length, hold.close));
        out.push(Bytes::from(body));
        hold.flushed = true;
    }

    /// Forward held-mode SSE bytes up to the last whole event, stopping
    /// before the response event until the hooks have spoken.
    fn flush_sse(&mut self, out: &mut Vec<Bytes>, now: Instant) {
        let (Some(hold), Some(watch)) = (&mut self.sse_hold, &mut self.watch) else {
            return;
        };
        if watch.lost {
            // Past the parser's limit nothing can be held; let it all through.
            let data = Bytes::from(std::mem::take(&mut hold.pending));
            hold.base += data.len() as u64;
            hold.resolved = true;
            self.write_client_now(data, out, now);
            return;
        }
        let mut limit = watch.parser.boundary_offset();
        if !hold.resolved
            && let Some((span, event)) = &watch.held
        {
            limit = limit.min(span.start);
            if let Some(why) = watch.unreadable.take() {
                // Everything before the event goes first, then the error.
                let n = (span.start.saturating_sub(hold.base) as usize).min(hold.pending.len());
                let data: Vec<u8> = hold.pending.drain(..n).collect();
                hold.base += data.len() as u64;
                self.write_client_now(Bytes::from(data), out, now);
                let error = self.unreadable_answer(&why);
                self.apply_hooks(HeldAnswer::Message(error), out, now);
                return;
            }
            if !self.hook_pending && self.hook_call.is_none() {
                self.hook_call = Some(Bytes::copy_from_slice(event.data.as_bytes()));
                self.hook_pending = true;
            }
        }
        let n = limit.saturating_sub(hold.base) as usize;
        if n == 0 {
            return;
        }
        let data: Vec<u8> = hold.pending.drain(..n.min(hold.pending.len())).collect();
        hold.base += data.len() as u64;
        self.write_client_now(Bytes::from(data), out, now);
    }

    fn write_client_now(&mut self, data: Bytes, out: &mut Vec<Bytes>, now: Instant) {
        if !data.is_empty() {
            self.write_client(data, out);
            self.last_client_write = now;
        }
    }

    /// What the client gets instead of an answer to the hooked request
    /// that could not be read (`why`).
    fn unreadable_answer(&self, why: &str) -> Vec<u8> {
        let message = format!(
            "sluice: the upstream's answer could not be read, so the response hooks did not run: {why}"
        );
        jsonrpc::error_message(
            self.hooked_id.as_deref(),
            jsonrpc::codes::INTERNAL_ERROR,
            &message,
            None,
        )
    }

    /// The response message waiting for the hooks, once.
    pub fn take_hook_call(&mut self) -> Option<Bytes> {
        self.hook_call.take()
    }

    /// Put the hooks' answer where the held response was.
    pub fn apply_hooks(&mut self, answer: HeldAnswer, out: &mut Vec<Bytes>, now: Instant) {
        self.hook_pending = false;
        if self.json_hold.is_some() {
            let replacement = match answer {
                HeldAnswer::Original => None,
                HeldAnswer::Message(m) => Some(m),
            };
            self.flush_json(replacement, out);
            return;
        }
        let (Some(hold), Some(watch)) = (&mut self.sse_hold, &mut self.watch) else {
            return;
        };
        let Some((span, event)) = watch.held.take() else {
            return;
        };
        let start = span.start.saturating_sub(hold.base) as usize;
        let end = (span.end.saturating_sub(hold.base) as usize).min(hold.pending.len());
        let original: Vec<u8> = hold.pending.drain(..end).skip(start).collect();
        hold.base = span.end.max(hold.base);
        hold.resolved = true;
        let bytes = match answer {
            HeldAnswer::Original => original,
            HeldAnswer::Message(m) => {
                let mut v = Vec::with_capacity(m.len() + 32);
                let data = String::from_utf8_lossy(&m);
                let event = OutgoingEvent {
                    event_type: Some(event.event_type.as_str()),
                    data: &data,
                    id: Some(event.id.as_str()).filter(|id| !id.is_empty()),
                    retry: None,
                };
                if sse::encode_event(&event, &mut v).is_err() {
                    sse::encode_jsonrpc_message(&m, &mut v);
                }
                v
            }
        };
        self.write_client_now(Bytes::from(bytes), out, now);
        self.flush_sse(out, now);
    }

    fn write_client(&self, data: Bytes, out: &mut Vec<Bytes>) {
        match self.client {
            ClientBody::Chunked => {
                out.push(chunk_size_line(data.len()));
                out.push(data);
                out.push(Bytes::from_static(b"\r\n"));
            }
            ClientBody::Length | ClientBody::UntilClose => out.push(data),
            ClientBody::Empty => {}
        }
    }

    /// The bytes that end the client's body cleanly.
    pub fn finish_clean(&mut self) -> Vec<u8> {
        self.complete = true;
        match self.client {
            ClientBody::Chunked => b"0\r\n\r\n".to_vec(),
            _ => Vec::new(),
        }
    }

    /// What the client has been sent, as the injection rules need it.
    pub fn sent(&self) -> Sent {
        self.sent_for_injection()
    }

    pub fn sent_for_injection(&self) -> Sent {
        if let Some(hold) = &self.json_hold {
            return if hold.flushed {
                Sent::Finished
            } else {
                Sent::Nothing
            };
        }
        if self.complete && self.is_complete() {
            return Sent::Finished;
        }
        if let (Some(_), Some(w)) = (&self.sse_hold, &self.watch)
            && !w.lost
        {
            // Held mode only ever forwards whole events.
            return if w.answers_request && w.owed.is_none() && w.held.is_none() {
                Sent::Finished
            } else {
                Sent::SseHead { at_boundary: true }
            };
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
        let at_boundary = self.watch.as_ref().is_some_and(SseWatch::at_boundary);
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
                let mut v = format!("{:x}\r\n", comment.len()).into_bytes();
                v.extend_from_slice(comment);
                v.extend_from_slice(b"\r\n");
                v
            }
            _ => comment.to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_size_lines_are_lower_case_hex() {
        for (len, line) in [
            (0, "0\r\n"),
            (9, "9\r\n"),
            (0x1a, "1a\r\n"),
            (16 * 1024, "4000\r\n"),
            (usize::MAX, "ffffffffffffffff\r\n"),
        ] {
            assert_eq!(chunk_size_line(len), line.as_bytes(), "{len}");
        }
    }

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
