//! The response side of an exchange: read the upstream's head, decide how
//! the body is framed on both legs, and forward the body read by read.

use std::ops::Range;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::ExchangeConfig;
use super::request::{Forward, values};
use crate::http1::{self, BodyFraming, ChunkedDecoder, Parsed};
use crate::inject::Sent;
use crate::jsonrpc::{self, Classified, Kind};
use crate::sse::{SseItem, SseParser};

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
                    if let Ok(Classified::Single(m)) =
                        jsonrpc::classify(event.data.as_bytes(), &self.json)
                    {
                        let answers = matches!(m.kind, Kind::Response | Kind::Error);
                        if answers && m.id == Some(owed.as_slice()) {
                            self.owed = None;
                        }
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

pub(super) struct Streaming {
    upstream: UpstreamBody,
    client: ClientBody,
    sse: bool,
    watch: Option<SseWatch>,
    upstream_reusable: bool,
    complete: bool,
    keepalive: Option<Duration>,
    last_client_write: Instant,
}

/// Parse the response head in `buf`.
pub(super) fn read_head(
    scanner: &mut http1::HeadScanner,
    buf: &[u8],
    req: &Forward,
    config: &ExchangeConfig,
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
    let sse = values(&head.headers, "content-type")
        .first()
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
    let watch = (sse && (owed.is_some() || keepalive.is_some())).then(|| SseWatch {
        parser: SseParser::new(config.limits.sse),
        answers_request: owed.is_some(),
        owed,
        json: config.limits.json,
        lost: false,
    });

    let close_client = !req.client_keep_alive || client == ClientBody::UntilClose;
    let client_head = client_head(&head, client, close_client);
    let stream = Streaming {
        complete: matches!(upstream, UpstreamBody::Empty),
        upstream,
        client,
        sse,
        watch,
        upstream_reusable,
        keepalive,
        last_client_write: now,
    };
    HeadStep::Ready {
        stream: Box::new(stream),
        client_head,
        status: head.status,
        len,
    }
}

fn upstream_keeps_alive(head: &http1::ResponseHead) -> bool {
    let tokens: Vec<&[u8]> = values(&head.headers, "connection")
        .into_iter()
        .flat_map(|v| v.split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .collect();
    let has = |t: &[u8]| tokens.iter().any(|x| x.eq_ignore_ascii_case(t));
    match head.version {
        http1::Version::Http10 => has(b"keep-alive") && !has(b"close"),
        _ => !has(b"close"),
    }
}

/// The head the client sees: the upstream's status and end-to-end headers,
/// with our own framing.
fn client_head(head: &http1::ResponseHead, client: ClientBody, close: bool) -> Bytes {
    let mut headers = head.headers.clone();
    http1::remove_hop_by_hop(&mut headers);
    if client != ClientBody::Length && client != ClientBody::Empty {
        headers.retain(|h| !h.name.eq_ignore_ascii_case("content-length"));
    }
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(format!("HTTP/1.1 {} ", head.status).as_bytes());
    out.extend_from_slice(head.reason.as_bytes());
    out.extend_from_slice(b"\r\n");
    for h in &headers {
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
    pub fn is_sse(&self) -> bool {
        self.sse
    }

    pub fn is_complete(&self) -> bool {
        self.complete
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
            if let Some(watch) = &mut self.watch {
                watch.observe(&data);
            }
            self.write_client(data, out);
            self.last_client_write = now;
        }
        failure.map_or(Ok(()), Err)
    }

    fn write_client(&self, data: Bytes, out: &mut Vec<Bytes>) {
        match self.client {
            ClientBody::Chunked => {
                out.push(Bytes::from(format!("{:x}\r\n", data.len())));
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
        if self.complete {
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
