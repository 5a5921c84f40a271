//! A member reached over Streamable HTTP: the member request written as
//! HTTP/1.1 to the member's URL, and the member's HTTP answer read back as
//! the [`AnswerPart`]s every member gives the fan-out.
//!
//! The member's SSE events are parsed once, here, into one part per
//! JSON-RPC message (the fan-out rewrites ids and names in them; the client
//! gets them re-encoded by its exchange). A whole answer is read whole,
//! bounded. Nothing of the client's connection reaches the member: framing,
//! hop-by-hop and compression fields are the writer's own.

use bytes::Bytes;

use crate::http1::{
    self, BodyFraming, BodyReader, ChunkedError, FramingError, HeadError, HeadScanner, Header,
    Parsed, WriteError,
};
use crate::sse::{SseError, SseItem, SseLimits, SseParser};
use crate::upstream::{AnswerHead, AnswerPart, Request, SESSION_HEADER};

/// A client field that is never the member's: the writer's own
/// ([`http1::is_writer_owned`]), and `Accept-Encoding` (the answer must be
/// read, so it comes uncompressed).
fn not_forwarded(h: &Header) -> bool {
    http1::is_writer_owned(&h.name) || h.is("accept-encoding")
}

/// Where a member listens: the `Host` to send and the origin-form target
/// of its MCP endpoint (path and query).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberUrl {
    /// The `Host` field: the host, with `:port` when not the default.
    pub authority: String,
    /// The endpoint's path and query, e.g. `/mcp` or `/mcp?tenant=a`.
    pub target: String,
}

/// `req` as the HTTP/1.1 request the member at `url` gets: its method,
/// the member's endpoint (the client's path and query are the
/// federation's, not the member's), the operator's fields for this member
/// (`own`: its credentials), the client's end-to-end fields but for those
/// the writer or the operator owns, and the body.
pub fn member_request(req: &Request, url: &MemberUrl, own: &[Header]) -> Result<Bytes, WriteError> {
    let mut headers = Vec::with_capacity(req.headers.len() + own.len() + 3);
    headers.push(Header::new("Host", url.authority.as_bytes()));
    headers.extend(own.iter().cloned());
    let connection_tokens = |h: &Header| http1::is_hop_by_hop(&req.headers, h);
    let operators = |h: &Header| own.iter().any(|o| h.is(&o.name));
    headers.extend(
        req.headers
            .iter()
            .filter(|h| !not_forwarded(h) && !connection_tokens(h) && !operators(h))
            .cloned(),
    );
    if !req.headers.iter().any(|h| h.is("accept")) {
        let accept = match req.method.as_str() {
            "GET" => "text/event-stream",
            _ => "application/json, text/event-stream",
        };
        headers.push(Header::new("Accept", accept));
    }
    if req.method == "POST" || !req.body.is_empty() {
        headers.push(Header::new("Content-Length", req.body.len().to_string()));
    }
    let head = http1::RequestHead {
        method: req.method.clone(),
        target: url.target.clone(),
        version: http1::Version::Http11,
        headers,
    };
    let mut out = Vec::with_capacity(256 + req.body.len());
    http1::write_request_head(&head, &mut out)?;
    out.extend_from_slice(&req.body);
    Ok(Bytes::from(out))
}

/// Why a member's answer could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnswerError {
    /// The response head is malformed.
    Head(HeadError),
    /// Its framing fields contradict each other.
    Framing(FramingError),
    /// Its chunked body is malformed.
    Chunked(ChunkedError),
    /// A whole answer longer than the limit.
    TooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// One SSE event longer than the limit.
    EventTooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The connection ended before the answer did.
    Truncated,
}

impl std::fmt::Display for AnswerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AnswerError::Head(e) => write!(f, "malformed response head: {e}"),
            AnswerError::Framing(e) => write!(f, "response framing: {e}"),
            AnswerError::Chunked(e) => write!(f, "chunked body: {e}"),
            AnswerError::TooLarge { limit } => write!(f, "answer larger than {limit} bytes"),
            AnswerError::EventTooLarge { limit } => {
                write!(f, "SSE event larger than {limit} bytes")
            }
            AnswerError::Truncated => f.write_str("the connection closed before the answer ended"),
        }
    }
}

impl std::error::Error for AnswerError {}

/// What a member's answer may hold.
#[derive(Debug, Clone)]
pub struct AnswerLimits {
    /// Its head.
    pub http: http1::Limits,
    /// A whole (JSON) answer.
    pub max_body_bytes: usize,
    /// One SSE event.
    pub sse: SseLimits,
}

impl Default for AnswerLimits {
    fn default() -> Self {
        AnswerLimits {
            http: http1::Limits::default(),
            max_body_bytes: 16 << 20,
            sse: SseLimits::default(),
        }
    }
}

/// Event ids a member gives that the fan-out marks as numbers (see
/// `fanout`): smaller ones pass as [`AnswerPart::IdentifiedEvent`], any
/// other (a UUID, a large number) as [`AnswerPart::NamedEvent`].
const MAX_EVENT_ID: u64 = (1 << 48) - 1;

#[derive(Debug)]
enum State {
    Head {
        buf: Vec<u8>,
        scanner: HeadScanner,
    },
    Whole {
        head: AnswerHead,
        /// A JSON body is kept; any other is read and dropped.
        keep: bool,
        body: Vec<u8>,
        reader: BodyReader,
    },
    Stream {
        reader: BodyReader,
        sse: Box<SseParser>,
    },
    Done,
}

/// Reads one member answer, fed as it arrives, into [`AnswerPart`]s.
#[derive(Debug)]
pub struct AnswerReader {
    method: String,
    limits: AnswerLimits,
    state: State,
    /// The connection can carry another request once this answer is done.
    reusable: bool,
}

impl AnswerReader {
    /// A reader for the answer to a `method` request.
    pub fn new(method: &str, limits: AnswerLimits) -> Self {
        AnswerReader {
            method: method.to_owned(),
            limits,
            state: State::Head {
                buf: Vec::new(),
                scanner: HeadScanner::new(),
            },
            reusable: false,
        }
    }

    /// The answer is complete.
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// The answer is complete and its connection may carry another request.
    pub fn reusable(&self) -> bool {
        self.is_done() && self.reusable
    }

    /// Push bytes; the parts they complete go to `out`, in order (the
    /// last one [`AnswerPart::End`] or a [`AnswerPart::Whole`]). Bytes past
    /// the answer's end are ignored (the connection is then not reused).
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<AnswerPart>) -> Result<(), AnswerError> {
        let mut input = input;
        let owned;
        if let State::Head { buf, scanner } = &mut self.state {
            buf.extend_from_slice(input);
            let (head, len) = loop {
                match scanner.parse_response(buf, &self.limits.http) {
                    Ok(Parsed::Partial) => return Ok(()),
                    Ok(Parsed::Complete { head, len }) if (100..200).contains(&head.status) => {
                        buf.drain(..len);
                        scanner.reset();
                    }
                    Ok(Parsed::Complete { head, len }) => break (head, len),
                    Err(e) => return Err(AnswerError::Head(e)),
                }
            };
            owned = buf.split_off(len);
            input = &owned;
            let framing =
                http1::response_framing(&self.method, &head).map_err(AnswerError::Framing)?;
            self.reusable = !head.connection_close() && framing != BodyFraming::UntilClose;
            let answer_head = AnswerHead {
                status: head.status,
                session_id: head
                    .header(SESSION_HEADER)
                    .map(|h| h.value.as_slice())
                    .filter(|v| !v.is_empty() && v.iter().all(|b| (0x21..=0x7e).contains(b)))
                    .and_then(|v| std::str::from_utf8(v).ok())
                    .map(str::to_owned),
                allow: None,
            };
            let media = head
                .header("content-type")
                .map(|h| {
                    let v = h.value.split(|&b| b == b';').next().unwrap_or_default();
                    v.trim_ascii().to_ascii_lowercase()
                })
                .unwrap_or_default();
            let reader = BodyReader::new(framing, &self.limits.http);
            self.state = if head.status == 200 && media == b"text/event-stream" {
                out.push(AnswerPart::Stream(answer_head));
                State::Stream {
                    reader,
                    sse: Box::new(SseParser::new(self.limits.sse)),
                }
            } else {
                State::Whole {
                    head: answer_head,
                    keep: media == b"application/json",
                    body: Vec::new(),
                    reader,
                }
            };
        }
        self.body(input, out)
    }

    fn body(&mut self, input: &[u8], out: &mut Vec<AnswerPart>) -> Result<(), AnswerError> {
        match &mut self.state {
            State::Head { .. } | State::Done => Ok(()),
            State::Whole {
                head,
                keep,
                body,
                reader,
            } => {
                let limit = self.limits.max_body_bytes;
                let mut over = false;
                let read = reader
                    .read(input, |r| {
                        if *keep {
                            over |= body.len() + r.len() > limit;
                            if !over {
                                body.extend_from_slice(&input[r]);
                            }
                        }
                    })
                    .map_err(AnswerError::Chunked)?;
                if over {
                    return Err(AnswerError::TooLarge { limit });
                }
                if read.done {
                    self.reusable &= read.consumed == input.len();
                    let head = head.clone();
                    let body = Bytes::from(std::mem::take(body));
                    out.push(AnswerPart::Whole { head, body });
                    self.state = State::Done;
                }
                Ok(())
            }
            State::Stream { reader, sse } => {
                let read = reader
                    .read(input, |r| sse.feed(&input[r]))
                    .map_err(AnswerError::Chunked)?;
                drain(sse, out)?;
                if read.done {
                    self.reusable &= read.consumed == input.len();
                    sse.finish();
                    drain(sse, out)?;
                    out.push(AnswerPart::End);
                    self.state = State::Done;
                }
                Ok(())
            }
        }
    }

    /// The connection ended: an answer delimited by the close is complete
    /// (its last parts go to `out`); any other is cut short.
    pub fn eof(&mut self, out: &mut Vec<AnswerPart>) -> Result<(), AnswerError> {
        let ends_here = match &self.state {
            State::Done => return Ok(()),
            State::Whole { reader, .. } | State::Stream { reader, .. } => reader.ends_at_eof(),
            State::Head { .. } => false,
        };
        if !ends_here {
            self.state = State::Done;
            return Err(AnswerError::Truncated);
        }
        self.reusable = false;
        match std::mem::replace(&mut self.state, State::Done) {
            State::Whole { head, body, .. } => out.push(AnswerPart::Whole {
                head,
                body: Bytes::from(body),
            }),
            State::Stream { mut sse, .. } => {
                sse.finish();
                drain(&mut sse, out)?;
                out.push(AnswerPart::End);
            }
            State::Head { .. } | State::Done => {}
        }
        Ok(())
    }
}

/// The parser's events as message parts; comments (keep-alives) and
/// events with no data are the member's business.
fn drain(sse: &mut SseParser, out: &mut Vec<AnswerPart>) -> Result<(), AnswerError> {
    while let Some(item) = sse.poll() {
        match item {
            Ok(SseItem::Event(event)) => {
                if event.event_type != "message" {
                    continue;
                }
                let data = Bytes::from(event.data);
                let number = event
                    .id
                    .parse::<u64>()
                    .ok()
                    .filter(|&id| id <= MAX_EVENT_ID);
                out.push(match number {
                    // Canonical numbers only: `007` must come back as written.
                    Some(id) if id.to_string() == event.id => {
                        AnswerPart::IdentifiedEvent { id, data }
                    }
                    _ if event.id.is_empty() => AnswerPart::Event(data),
                    _ => AnswerPart::NamedEvent { id: event.id, data },
                });
            }
            Ok(SseItem::Comment { .. }) => {}
            Err(SseError::EventTooLarge { limit }) => {
                return Err(AnswerError::EventTooLarge { limit });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url() -> MemberUrl {
        MemberUrl {
            authority: "member.test:8081".into(),
            target: "/mcp?tenant=a".into(),
        }
    }

    fn request(method: &str, headers: &[(&str, &str)], body: &str) -> Request {
        Request {
            method: method.into(),
            target: "/federated/x".into(),
            headers: headers.iter().map(|(n, v)| Header::new(*n, *v)).collect(),
            body: Bytes::copy_from_slice(body.as_bytes()),
        }
    }

    fn read_all(
        method: &str,
        chunks: &[&[u8]],
    ) -> (Result<(), AnswerError>, Vec<AnswerPart>, bool) {
        let mut r = AnswerReader::new(method, AnswerLimits::default());
        let mut out = Vec::new();
        for c in chunks {
            if let Err(e) = r.feed(c, &mut out) {
                return (Err(e), out, false);
            }
        }
        let res = if r.is_done() { Ok(()) } else { r.eof(&mut out) };
        (res, out, r.reusable())
    }

    #[test]
    fn the_request_goes_to_the_members_endpoint_with_its_own_host_and_framing() {
        let req = request(
            "POST",
            &[
                ("Host", "sluice.test"),
                ("Content-Type", "application/json"),
                ("Accept", "application/json, text/event-stream"),
                ("Accept-Encoding", "gzip"),
                ("Connection", "keep-alive, X-Secret"),
                ("X-Secret", "hop"),
                ("Content-Length", "999"),
                ("Mcp-Session-Id", "m-1"),
                ("Authorization", "Bearer t"),
            ],
            r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#,
        );
        let bytes = member_request(&req, &url(), &[]).unwrap();
        let text = std::str::from_utf8(&bytes).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let lines: Vec<&str> = head.split("\r\n").collect();
        assert_eq!(lines[0], "POST /mcp?tenant=a HTTP/1.1");
        assert_eq!(lines[1], "Host: member.test:8081");
        assert!(lines.contains(&"Mcp-Session-Id: m-1"));
        assert!(lines.contains(&"Authorization: Bearer t"));
        assert!(lines.contains(&"Content-Length: 40"));
        for gone in ["sluice.test", "gzip", "X-Secret", "999", "Connection"] {
            assert!(!head.contains(gone), "{gone} must not reach the member");
        }
        assert_eq!(body, r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#);
    }

    #[test]
    fn the_operators_fields_for_the_member_replace_the_clients_by_name() {
        let req = request(
            "POST",
            &[
                ("authorization", "Bearer client"),
                ("X-Tenant", "theirs"),
                ("X-Keep", "k"),
            ],
            "{}",
        );
        let own = [
            Header::new("Authorization", "Bearer member-secret"),
            Header::new("X-Tenant", "ours"),
        ];
        let bytes = member_request(&req, &url(), &own).unwrap();
        let head = std::str::from_utf8(&bytes)
            .unwrap()
            .split_once("\r\n\r\n")
            .unwrap()
            .0
            .to_owned();
        let lines: Vec<&str> = head.split("\r\n").collect();
        assert_eq!(
            &lines[1..4],
            [
                "Host: member.test:8081",
                "Authorization: Bearer member-secret",
                "X-Tenant: ours"
            ]
        );
        assert!(lines.contains(&"X-Keep: k"));
        for gone in ["Bearer client", "theirs"] {
            assert!(!head.contains(gone), "{gone} must not reach the member");
        }
    }

    #[test]
    fn a_get_without_accept_asks_for_an_event_stream_and_has_no_length() {
        let bytes = member_request(&request("GET", &[], ""), &url(), &[]).unwrap();
        let text = std::str::from_utf8(&bytes).unwrap();
        assert!(text.starts_with("GET /mcp?tenant=a HTTP/1.1\r\n"));
        assert!(text.contains("Accept: text/event-stream\r\n"));
        assert!(!text.contains("Content-Length"));
    }

    #[test]
    fn a_value_the_encoder_refuses_is_an_error_not_a_request() {
        let mut req = request("POST", &[], "{}");
        req.headers
            .push(Header::new("X-Bad", b"a\r\nInjected: 1".to_vec()));
        assert!(member_request(&req, &url(), &[]).is_err());
    }

    #[test]
    fn a_json_answer_is_whole_with_its_session_and_the_connection_reusable() {
        let answer = b"HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8\r\n\
Mcp-Session-Id: s-9\r\nContent-Length: 2\r\n\r\n{}";
        for split in 1..answer.len() {
            let (res, parts, reusable) = read_all("POST", &[&answer[..split], &answer[split..]]);
            res.unwrap();
            assert_eq!(
                parts,
                [AnswerPart::Whole {
                    head: AnswerHead::status(200).with_session(Some("s-9")),
                    body: Bytes::from_static(b"{}"),
                }]
            );
            assert!(reusable);
        }
    }

    #[test]
    fn a_non_json_body_is_dropped_and_the_status_kept() {
        let answer = b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 17\r\n\r\nSession not found";
        let (res, parts, _) = read_all("POST", &[answer]);
        res.unwrap();
        assert_eq!(parts, [AnswerPart::empty(AnswerHead::status(404))]);
    }

    #[test]
    fn an_sse_answer_gives_one_part_per_message_then_the_end() {
        let mut answer =
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
                .to_vec();
        for chunk in [
            "id: 7\r\ndata: {\"a\":1}\r\n\r\n: ping\r\n\r\n",
            "event: message\r\nid: abc-uuid\r\ndata: {\"b\":2}\r\n\r\n",
            "event: other\r\ndata: x\r\n\r\n",
            "",
        ] {
            answer.extend(format!("{:x}\r\n{chunk}\r\n", chunk.len()).bytes());
        }
        for split in 1..answer.len() {
            let (res, parts, reusable) = read_all("POST", &[&answer[..split], &answer[split..]]);
            res.unwrap();
            assert_eq!(
                parts,
                [
                    AnswerPart::Stream(AnswerHead::status(200)),
                    AnswerPart::IdentifiedEvent {
                        id: 7,
                        data: Bytes::from_static(b"{\"a\":1}")
                    },
                    AnswerPart::NamedEvent {
                        id: "abc-uuid".into(),
                        data: Bytes::from_static(b"{\"b\":2}")
                    },
                    AnswerPart::End,
                ],
                "split at {split}"
            );
            assert!(reusable);
        }
    }

    #[test]
    fn a_stream_cut_short_is_an_error_after_the_parts_it_gave() {
        let answer = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\
Transfer-Encoding: chunked\r\n\r\nf\r\ndata: {\"a\":1}\n\n\r\n";
        let (res, parts, _) = read_all("POST", &[answer]);
        assert_eq!(res, Err(AnswerError::Truncated));
        assert_eq!(parts.len(), 2);
    }

    #[test]
    fn a_stream_until_close_ends_at_eof_and_is_not_reused() {
        let answer = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata: {}\n\n";
        let (res, parts, reusable) = read_all("GET", &[answer]);
        res.unwrap();
        assert_eq!(parts.last(), Some(&AnswerPart::End));
        assert_eq!(parts.len(), 3);
        assert!(!reusable);
    }

    #[test]
    fn interim_answers_are_skipped() {
        let answer =
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n";
        let (res, parts, reusable) = read_all("POST", &[answer]);
        res.unwrap();
        assert_eq!(parts, [AnswerPart::empty(AnswerHead::status(202))]);
        assert!(reusable);
    }

    #[test]
    fn hostile_answers_are_errors() {
        let big = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            (16 << 20) + 1
        );
        let mut body = big.into_bytes();
        body.extend(std::iter::repeat_n(b' ', (16 << 20) + 1));
        assert_eq!(
            read_all("POST", &[&body]).0,
            Err(AnswerError::TooLarge { limit: 16 << 20 })
        );
        let smuggled =
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n{}";
        assert!(matches!(
            read_all("POST", &[smuggled]).0,
            Err(AnswerError::Framing(_))
        ));
        assert!(matches!(
            read_all("POST", &[b"HTTP/1.1 2OO OK\r\n\r\n"]).0,
            Err(AnswerError::Head(_))
        ));
        let mut limits = AnswerLimits::default();
        limits.sse.max_event_bytes = 8;
        let mut r = AnswerReader::new("POST", limits);
        let e = r.feed(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata: 0123456789\n\n",
            &mut Vec::new(),
        );
        assert_eq!(e, Err(AnswerError::EventTooLarge { limit: 8 }));
    }

    #[test]
    fn bytes_past_the_answer_keep_the_connection_from_reuse() {
        let answer =
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}junk";
        let (res, parts, reusable) = read_all("POST", &[answer]);
        res.unwrap();
        assert_eq!(parts.len(), 1);
        assert!(!reusable);
    }
}
