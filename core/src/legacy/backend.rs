//! The backend side of the bridge: the HTTP requests sent to a legacy
//! HTTP+SSE server, the reading of its SSE stream and of its answers to
//! POSTs, and the resolution of its `endpoint` URI.

use bytes::Bytes;

use super::error::BridgeError;
use crate::http1::{self, BodyFraming, BodyReader, HeadScanner, Header, Parsed, WriteError};
use crate::inject;
use crate::sse::{SseError, SseEvent, SseItem, SseLimits, SseParser};

/// Request fields that are the bridge's to set, never the client's to pass.
const NOT_FORWARDED: &[&str] = &[
    "host",
    "content-length",
    "content-type",
    "accept",
    // The bridge must read the bodies: no compression.
    "accept-encoding",
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "expect",
    "proxy-connection",
    "mcp-session-id",
    "mcp-protocol-version",
    "last-event-id",
    "mcp-method",
    "mcp-name",
];

/// The client fields that go on to the backend (Authorization, cookies,
/// forwarding headers, anything custom), in order.
pub(super) fn forwarded(headers: &[Header]) -> Vec<Header> {
    headers
        .iter()
        .filter(|h| {
            let n = h.name.to_ascii_lowercase();
            !NOT_FORWARDED.contains(&n.as_str()) && !n.starts_with("mcp-param-")
        })
        .cloned()
        .collect()
}

/// An origin other than the SSE stream's, for an endpoint on another
/// origin (only when configured).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin {
    /// `https`.
    pub https: bool,
    /// Host name or IP literal, without brackets.
    pub host: String,
    /// TCP port (the scheme's default when the URI had none).
    pub port: u16,
    /// The `Host` header value (`host[:port]` as written).
    pub authority: String,
}

/// Where the bridge POSTs messages: a target on the stream's origin, or a
/// full origin of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Origin-form target (`/messages?sessionId=…`).
    pub target: String,
    /// `None`: the stream's own origin.
    pub origin: Option<Origin>,
}

/// Resolves the `endpoint` event's URI against the SSE URL (RFC 3986 §5.2).
///
/// `https` and `authority` (the `Host` value) and `base_target` describe the
/// SSE URL. An absolute URI on another origin is refused unless
/// `allow_other_origin`.
pub fn resolve_endpoint(
    uri: &str,
    https: bool,
    authority: &str,
    base_target: &str,
    allow_other_origin: bool,
) -> Result<Endpoint, BridgeError> {
    let bad = |reason| BridgeError::BadEndpoint {
        uri: uri.chars().take(200).collect(),
        reason,
    };
    let uri_trimmed = uri.trim_matches([' ', '\t']);
    if uri_trimmed.is_empty() {
        return Err(bad("empty"));
    }
    if uri_trimmed
        .bytes()
        .any(|b| b <= 0x20 || b == 0x7f || b >= 0x80)
    {
        return Err(bad("contains spaces, controls or non-ASCII"));
    }
    let uri_nf = uri_trimmed.split('#').next().unwrap_or_default();
    let (scheme_https, rest) = match scheme_of(uri_nf) {
        Some(s) if s.eq_ignore_ascii_case("http") => (false, &uri_nf[5..]),
        Some(s) if s.eq_ignore_ascii_case("https") => (true, &uri_nf[6..]),
        Some(_) => return Err(bad("not an http or https URI")),
        None => (https, uri_nf),
    };
    if let Some(after) = rest.strip_prefix("//") {
        // Network-path or absolute: a new authority.
        let end = after.find(['/', '?']).unwrap_or(after.len());
        let new_authority = &after[..end];
        if new_authority.is_empty() || new_authority.contains('@') {
            return Err(bad("no usable authority"));
        }
        let target = normalize_target(&after[end..]);
        let theirs = origin_of(scheme_https, new_authority).ok_or_else(|| bad("bad authority"))?;
        let ours = origin_of(https, authority);
        if ours.as_ref().is_some_and(|o| same_origin(o, &theirs)) {
            return Ok(Endpoint {
                target,
                origin: None,
            });
        }
        if !allow_other_origin {
            return Err(bad("on another origin than the SSE stream"));
        }
        return Ok(Endpoint {
            target,
            origin: Some(theirs),
        });
    }
    if scheme_https != https {
        return Err(bad("on another origin than the SSE stream"));
    }
    let (base_path, _) = split_query(base_target);
    let target = if rest.starts_with('/') {
        normalize_target(rest)
    } else if rest.is_empty() {
        base_target.to_owned()
    } else if let Some(q) = rest.strip_prefix('?') {
        format!("{base_path}?{q}")
    } else {
        let dir = match base_path.rfind('/') {
            Some(i) => &base_path[..=i],
            None => "/",
        };
        normalize_target(&format!("{dir}{rest}"))
    };
    Ok(Endpoint {
        target,
        origin: None,
    })
}

fn scheme_of(uri: &str) -> Option<&str> {
    let colon = uri.find(':')?;
    let s = &uri[..colon];
    let mut bytes = s.bytes();
    let first = bytes.next()?;
    (first.is_ascii_alphabetic()
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.')))
    .then_some(s)
}

fn split_query(target: &str) -> (&str, Option<&str>) {
    match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    }
}

/// Removes dot segments from the path and makes it start with `/`.
fn normalize_target(target: &str) -> String {
    let (path, query) = split_query(target);
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').collect();
    let last = segments.len().saturating_sub(1);
    for (i, seg) in segments.iter().enumerate() {
        match *seg {
            "." => {
                if i == last {
                    out.push("");
                }
            }
            ".." => {
                if out.len() > 1 {
                    out.pop();
                }
                if i == last {
                    out.push("");
                }
            }
            s => out.push(s),
        }
    }
    let mut p = out.join("/");
    if !p.starts_with('/') {
        p.insert(0, '/');
    }
    match query {
        Some(q) => format!("{p}?{q}"),
        None => p,
    }
}

fn origin_of(https: bool, authority: &str) -> Option<Origin> {
    let default = if https { 443 } else { 80 };
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let close = rest.find(']')?;
        let host = &rest[..close];
        let after = &rest[close + 1..];
        let port = match after.strip_prefix(':') {
            Some(p) if !p.is_empty() => p.parse().ok()?,
            Some(_) => default,
            None if after.is_empty() => default,
            None => return None,
        };
        (host, port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) if !p.is_empty() => (h, p.parse().ok()?),
            Some((h, _)) => (h, default),
            None => (authority, default),
        }
    };
    if host.is_empty() {
        return None;
    }
    Some(Origin {
        https,
        host: host.to_ascii_lowercase(),
        port,
        authority: authority.to_owned(),
    })
}

fn same_origin(a: &Origin, b: &Origin) -> bool {
    a.https == b.https && a.host == b.host && a.port == b.port
}

/// The GET that opens the backend's SSE stream.
pub(super) fn stream_request(
    authority: &str,
    target: &str,
    fwd: &[Header],
) -> Result<Bytes, WriteError> {
    let fields = [
        Header::new("Host", authority),
        Header::new("Accept", "text/event-stream"),
        Header::new("Cache-Control", "no-cache"),
    ];
    request("GET", target, &fields, fwd, b"")
}

/// The POST of one message to the endpoint.
pub(super) fn post_request(
    authority: &str,
    target: &str,
    fwd: &[Header],
    body: &[u8],
) -> Result<Bytes, WriteError> {
    let fields = [
        Header::new("Host", authority),
        Header::new("Content-Type", "application/json"),
        Header::new("Accept", "application/json, text/event-stream"),
        Header::new("Content-Length", body.len().to_string()),
    ];
    request("POST", target, &fields, fwd, body)
}

/// A request to the backend, written by `http1`'s encoder: the bridge's own
/// `fields`, then the client's forwarded ones, then `body`. Every input was
/// parsed and checked where it came from, but the encoder has the last
/// word: a value it refuses is an error, never a malformed request.
pub(super) fn request(
    method: &str,
    target: &str,
    fields: &[Header],
    fwd: &[Header],
    body: &[u8],
) -> Result<Bytes, WriteError> {
    let head = http1::RequestHead {
        method: method.to_owned(),
        target: target.to_owned(),
        version: http1::Version::Http11,
        headers: fields.iter().chain(fwd).cloned().collect(),
    };
    let mut out = Vec::with_capacity(256 + body.len());
    http1::write_request_head(&head, &mut out)?;
    out.extend_from_slice(body);
    Ok(Bytes::from(out))
}

/// How much of a POST answer's body is kept for error messages.
const EXCERPT: usize = 512;

/// A backend's answer to a POST (or to the probe's `initialize`), read
/// far enough to judge it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostAnswer {
    /// The status.
    pub status: u16,
    /// The first bytes of the body, for error messages.
    pub excerpt: Vec<u8>,
    /// The connection can carry another request.
    pub reusable: bool,
    /// The `Mcp-Session-Id` it sent (the probe cleans such a session up).
    pub session_id: Option<String>,
    /// Its media type, lowercased, without parameters.
    pub content_type: String,
}

/// Reads one HTTP response to a request the bridge sent: the whole body
/// (POST answers are tiny), or only the head.
#[derive(Debug)]
pub struct PostAnswerReader {
    method: &'static str,
    extent: Extent,
    /// How much of the body is kept in [`PostAnswer::excerpt`].
    keep: usize,
    limits: http1::Limits,
    buf: Vec<u8>,
    scanner: HeadScanner,
    body: Option<(PostAnswer, BodyReader)>,
    done: bool,
}

/// How far a [`PostAnswerReader`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Extent {
    /// The whole answer.
    Whole,
    /// The head only.
    Head,
    /// The head of a 2xx; of any other status, the body up to `keep`
    /// bytes (what the probe's verdict reads).
    Judge,
}

impl PostAnswerReader {
    /// A reader for the answer to a POST.
    pub fn post(limits: &http1::Limits) -> Self {
        PostAnswerReader::new("POST", Extent::Whole, EXCERPT, limits)
    }

    /// A reader that stops at the head (a Streamable HTTP answer may be a
    /// long stream).
    pub fn head_only(limits: &http1::Limits) -> Self {
        PostAnswerReader::new("POST", Extent::Head, EXCERPT, limits)
    }

    /// The probe's reader: the head of a 2xx (which may be a long stream);
    /// of any other status, the body as far as `keep` bytes, all of it in
    /// the excerpt (an error body is what tells a Streamable HTTP server
    /// from a legacy one).
    pub(super) fn judging(limits: &http1::Limits, keep: usize) -> Self {
        PostAnswerReader::new("POST", Extent::Judge, keep, limits)
    }

    fn new(method: &'static str, extent: Extent, keep: usize, limits: &http1::Limits) -> Self {
        PostAnswerReader {
            method,
            extent,
            keep,
            limits: limits.clone(),
            buf: Vec::new(),
            scanner: HeadScanner::new(),
            body: None,
            done: false,
        }
    }

    /// Push bytes; `Ok(Some(answer))` when judged.
    pub fn feed(&mut self, input: &[u8]) -> Result<Option<PostAnswer>, String> {
        if self.done {
            return Ok(None);
        }
        if self.body.is_none() {
            self.buf.extend_from_slice(input);
            loop {
                let (head, len) = match self.scanner.parse_response(&self.buf, &self.limits) {
                    Ok(Parsed::Partial) => return Ok(None),
                    Ok(Parsed::Complete { head, len }) => (head, len),
                    Err(e) => return Err(format!("malformed response head: {e}")),
                };
                if (100..200).contains(&head.status) {
                    self.buf.drain(..len);
                    continue;
                }
                let framing =
                    http1::response_framing(self.method, &head).map_err(|e| e.to_string())?;
                let answer = PostAnswer {
                    status: head.status,
                    excerpt: Vec::new(),
                    reusable: !head.connection_close(),
                    session_id: head
                        .header("mcp-session-id")
                        .and_then(|h| std::str::from_utf8(&h.value).ok())
                        .map(str::to_owned),
                    content_type: head
                        .header("content-type")
                        .map(|h| {
                            let v = h.value.split(|&b| b == b';').next().unwrap_or_default();
                            String::from_utf8_lossy(v.trim_ascii()).to_ascii_lowercase()
                        })
                        .unwrap_or_default(),
                };
                let rest = self.buf.split_off(len);
                self.buf = Vec::new();
                let state = BodyReader::new(framing, &self.limits);
                if state.is_done() {
                    self.done = true;
                    return Ok(Some(answer));
                }
                let head_only = match self.extent {
                    Extent::Whole => false,
                    Extent::Head => true,
                    Extent::Judge => (200..300).contains(&answer.status),
                };
                if head_only {
                    self.done = true;
                    return Ok(Some(PostAnswer {
                        reusable: false,
                        ..answer
                    }));
                }
                self.body = Some((answer, state));
                return self.body_bytes(&rest);
            }
        }
        self.body_bytes(input)
    }

    fn body_bytes(&mut self, input: &[u8]) -> Result<Option<PostAnswer>, String> {
        let limit = self.keep;
        let Some((answer, reader)) = self.body.as_mut() else {
            return Ok(None);
        };
        if reader.ends_at_eof() {
            answer.reusable = false;
        }
        let excerpt = &mut answer.excerpt;
        let read = reader
            .read(input, |r| {
                let data = &input[r];
                let room = limit.saturating_sub(excerpt.len());
                excerpt.extend_from_slice(&data[..room.min(data.len())]);
            })
            .map_err(|e| e.to_string())?;
        // Judging needs no more than the excerpt holds.
        let complete = read.done || (self.extent == Extent::Judge && answer.excerpt.len() >= limit);
        if complete {
            if self.extent == Extent::Judge {
                // Maybe stopped short of the body's end.
                answer.reusable = false;
            }
            self.done = true;
            return Ok(self.body.take().map(|(a, _)| a));
        }
        Ok(None)
    }

    /// The connection ended: the answer if a body delimited by the close
    /// was being read, else an error.
    pub fn eof(&mut self) -> Result<PostAnswer, String> {
        match self.body.take() {
            Some((answer, reader)) if reader.ends_at_eof() && !self.done => {
                self.done = true;
                Ok(answer)
            }
            _ => Err("the backend closed the connection before its answer was complete".into()),
        }
    }
}

/// Reads the backend's SSE stream: the GET's response head (which must be
/// `200 text/event-stream`), the body framing, then events.
#[derive(Debug)]
pub(super) struct BackendStream {
    limits: http1::Limits,
    head_buf: Vec<u8>,
    scanner: HeadScanner,
    body: Option<BodyReader>,
    sse: SseParser,
}

impl BackendStream {
    pub fn new(limits: &http1::Limits, sse: SseLimits) -> Self {
        BackendStream {
            limits: limits.clone(),
            head_buf: Vec::new(),
            scanner: HeadScanner::new(),
            body: None,
            sse: SseParser::new(sse),
        }
    }

    /// Whether the response head arrived and was accepted.
    pub fn is_open(&self) -> bool {
        self.body.is_some()
    }

    /// Lets go of what the parser holds in spare capacity (see
    /// [`SseParser::let_go`]), between reads of a stream that may stay
    /// quiet for long.
    pub fn let_go(&mut self) {
        self.sse.let_go();
    }

    /// Push stream bytes; events found go to `events`. `Ok(true)` when the
    /// body ended (a chunked stream's last chunk, a length reached).
    pub fn feed(&mut self, input: &[u8], events: &mut Vec<SseEvent>) -> Result<bool, BridgeError> {
        if self.body.is_none() {
            self.head_buf.extend_from_slice(input);
            loop {
                let (head, len) = match self.scanner.parse_response(&self.head_buf, &self.limits) {
                    Ok(Parsed::Partial) => return Ok(false),
                    Ok(Parsed::Complete { head, len }) => (head, len),
                    Err(e) => {
                        return Err(BridgeError::StreamMalformed {
                            detail: format!("response head: {e}"),
                        });
                    }
                };
                if (100..200).contains(&head.status) {
                    self.head_buf.drain(..len);
                    continue;
                }
                let ct = head.header("content-type").map(|h| h.value.as_slice());
                if inject::expect_event_stream(head.status, ct).is_err() {
                    return Err(if head.status != 200 {
                        BridgeError::StreamStatus {
                            status: head.status,
                        }
                    } else {
                        let media = ct
                            .map(|v| v.split(|&b| b == b';').next().unwrap_or_default())
                            .unwrap_or_default();
                        BridgeError::NotEventStream {
                            content_type: String::from_utf8_lossy(media.trim_ascii()).into_owned(),
                        }
                    });
                }
                let framing = http1::response_framing("GET", &head).map_err(|e| {
                    BridgeError::StreamMalformed {
                        detail: format!("framing: {e}"),
                    }
                })?;
                if framing == BodyFraming::None {
                    return Ok(true);
                }
                self.body = Some(BodyReader::new(framing, &self.limits));
                let rest = self.head_buf.split_off(len);
                self.head_buf = Vec::new();
                return self.body_bytes(&rest, events);
            }
        }
        self.body_bytes(input, events)
    }

    fn body_bytes(
        &mut self,
        input: &[u8],
        events: &mut Vec<SseEvent>,
    ) -> Result<bool, BridgeError> {
        let Some(reader) = self.body.as_mut() else {
            return Ok(false);
        };
        let sse = &mut self.sse;
        let ended = reader
            .read(input, |r| sse.feed(&input[r]))
            .map_err(|e| BridgeError::StreamMalformed {
                detail: format!("chunked body: {e}"),
            })?
            .done;
        while let Some(item) = self.sse.poll() {
            match item {
                Ok(SseItem::Event(event)) => events.push(event),
                Ok(SseItem::Comment { .. }) => {}
                Err(SseError::EventTooLarge { limit }) => {
                    return Err(BridgeError::EventTooLarge { limit });
                }
            }
        }
        Ok(ended)
    }
}
