//! Request and response heads: httparse does the tokenizing, this file adds
//! the limits and the checks a proxy needs on top.
//!
//! Strict choices (each one a place where RFC 9112 lets a recipient refuse):
//! - Bare LF line endings are rejected (§2.2 lets a recipient accept them;
//!   parsers that disagree on line ends are a classic desync).
//! - obs-fold (a field line starting with SP/HTAB) is rejected (§5.2).
//! - Whitespace between a field name and its colon is rejected (§5.1 says a
//!   server MUST reject it in requests; we reject it in responses too).
//! - NUL, CR, LF and other controls in field values are rejected.
//! - Only HTTP/1.0 and HTTP/1.1. A well-formed `HTTP/x.y` that is neither gets
//!   505, even HTTP/1.2 (§2.3 says SHOULD treat as 1.1; we prefer to refuse).
//!   A request line that is not `method SP target SP version` with single
//!   spaces (two spaces, a tab, a trailing space) is a 400 whatever its
//!   version says.
//! - Requests: exactly one `Host` in HTTP/1.1, at most one in 1.0, holding only
//!   URI authority bytes (§3.2).
//! - The request-target must be one of the four forms, each with its own
//!   method rules (§3.2): origin (`/…`) and absolute (`scheme:…`, as proxies
//!   see) for any method except CONNECT, authority (`host:port`) only with
//!   CONNECT, asterisk (`*`) only with OPTIONS. ASCII only, no fragment.
//! - Status codes outside 100–599 are rejected.
//! - Empty lines before the start line are skipped, as §2.2 allows.

use super::syntax::is_tchar;
use super::{Header, Limits, RequestHead, ResponseHead, Version};

/// The result of a parse attempt over a buffer that may hold only part of a
/// head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed<T> {
    /// A whole head was found; the body (or the next message) starts at
    /// `len`.
    Complete {
        /// The parsed head.
        head: T,
        /// Bytes of the buffer the head took, its final empty line included.
        len: usize,
    },
    /// No error so far, but the head is not complete: read more and call
    /// again with the grown buffer.
    Partial,
}

/// Why a head was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HeadError {
    /// The head is longer than [`Limits::max_head_bytes`], or an unfinished
    /// head already is. 431.
    TooLarge,
    /// More than [`Limits::max_headers`] fields. 431.
    TooManyHeaders,
    /// The request line is malformed (method bytes, spacing, target bytes
    /// that are not even URI bytes). 400.
    InvalidRequestLine,
    /// The request-target is not one of the four forms allowed for this
    /// method. 400.
    InvalidTarget,
    /// The status line is malformed or the code is outside 100–599. Only
    /// from responses; 502.
    InvalidStatusLine,
    /// Something other than an `HTTP/x.y` version. 400.
    InvalidVersion,
    /// A well-formed version other than HTTP/1.0 and HTTP/1.1. 505.
    UnsupportedVersion,
    /// A field name with bytes outside `tchar`, or empty. 400.
    InvalidHeaderName,
    /// Whitespace between a field name and the colon. 400.
    WhitespaceBeforeColon,
    /// A field line continued with obs-fold. 400.
    ObsoleteLineFolding,
    /// A control byte (NUL, DEL, …) in a field value. 400.
    InvalidHeaderValue,
    /// A bare LF, or a CR not followed by LF. 400.
    InvalidLineEnding,
    /// An HTTP/1.1 request without `Host`. 400.
    MissingHost,
    /// More than one `Host` field. 400.
    DuplicateHost,
    /// A `Host` value with bytes no URI authority holds. 400.
    InvalidHost,
}

impl HeadError {
    /// The status a proxy answers when a client's request head fails this
    /// way. (For an upstream response head, answer 502.)
    pub fn status(&self) -> u16 {
        match self {
            HeadError::TooLarge | HeadError::TooManyHeaders => 431,
            HeadError::UnsupportedVersion => 505,
            HeadError::InvalidStatusLine => 502,
            _ => 400,
        }
    }

    fn message(&self) -> &'static str {
        match self {
            HeadError::TooLarge => "head too large",
            HeadError::TooManyHeaders => "too many header fields",
            HeadError::InvalidRequestLine => "invalid request line",
            HeadError::InvalidTarget => "invalid request-target",
            HeadError::InvalidStatusLine => "invalid status line",
            HeadError::InvalidVersion => "invalid HTTP version",
            HeadError::UnsupportedVersion => "unsupported HTTP version",
            HeadError::InvalidHeaderName => "invalid header field name",
            HeadError::WhitespaceBeforeColon => "whitespace between field name and colon",
            HeadError::ObsoleteLineFolding => "obsolete line folding",
            HeadError::InvalidHeaderValue => "invalid header field value",
            HeadError::InvalidLineEnding => "bare CR or LF",
            HeadError::MissingHost => "missing Host",
            HeadError::DuplicateHost => "more than one Host",
            HeadError::InvalidHost => "invalid Host",
        }
    }
}

impl core::fmt::Display for HeadError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for HeadError {}

/// The four request-target forms of RFC 9112 §3.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TargetForm {
    /// `/path?query`: the usual form.
    Origin,
    /// `http://host/path`: sent to proxies. The authority in it overrides
    /// `Host` (RFC 9112 §3.2.2).
    Absolute,
    /// `host:port`, CONNECT only.
    Authority,
    /// `*`, OPTIONS only.
    Asterisk,
}

/// Parse a request head from the start of `buf`.
///
/// `buf` holds everything received so far; call again with the grown buffer
/// on [`Parsed::Partial`]. Once `buf` is longer than
/// [`Limits::max_head_bytes`] without a whole head, this fails with
/// [`HeadError::TooLarge`] at once, so a slow sender cannot make the caller
/// buffer more. Bytes after the head never change the result.
///
/// Each call rescans `buf`; [`HeadScanner`] avoids that for slow senders.
pub fn parse_request_head(buf: &[u8], limits: &Limits) -> Result<Parsed<RequestHead>, HeadError> {
    let window = &buf[..buf.len().min(limits.max_head_bytes)];
    let mut stack = [httparse::EMPTY_HEADER; STACK_SLOTS];
    let mut heap = Vec::new();
    let slots = header_slot_buf(limits, &mut stack, &mut heap);
    let mut req = httparse::Request::new(slots);
    match req.parse(window) {
        Ok(httparse::Status::Complete(len)) => {
            check_line_endings(&window[..len])?;
            let version = version_of(req.version)?;
            let method = req.method.unwrap_or_default();
            let target = req.path.unwrap_or_default();
            if classify_target(method, target.as_bytes()).is_none() {
                return Err(HeadError::InvalidTarget);
            }
            let headers = own_headers(req.headers);
            check_host(version, &headers)?;
            Ok(Parsed::Complete {
                head: RequestHead {
                    method: method.to_owned(),
                    target: target.to_owned(),
                    version,
                    headers,
                },
                len,
            })
        }
        Ok(httparse::Status::Partial) => partial(buf, window, limits),
        Err(e) => Err(classify_error(e, window, true)),
    }
}

/// Parse a response head from the start of `buf`. Same contract as
/// [`parse_request_head`].
///
/// The caller handles 1xx interim responses: parse again after `len` for the
/// final one (a 101 switches protocols instead).
pub fn parse_response_head(buf: &[u8], limits: &Limits) -> Result<Parsed<ResponseHead>, HeadError> {
    let window = &buf[..buf.len().min(limits.max_head_bytes)];
    let mut stack = [httparse::EMPTY_HEADER; STACK_SLOTS];
    let mut heap = Vec::new();
    let slots = header_slot_buf(limits, &mut stack, &mut heap);
    let mut res = httparse::Response::new(slots);
    match res.parse(window) {
        Ok(httparse::Status::Complete(len)) => {
            check_line_endings(&window[..len])?;
            let version = version_of(res.version)?;
            let status = res.code.unwrap_or(0);
            if !(100..=599).contains(&status) {
                return Err(HeadError::InvalidStatusLine);
            }
            Ok(Parsed::Complete {
                head: ResponseHead {
                    version,
                    status,
                    reason: res.reason.unwrap_or_default().to_owned(),
                    headers: own_headers(res.headers),
                },
                len,
            })
        }
        Ok(httparse::Status::Partial) => partial(buf, window, limits),
        Err(e) => Err(classify_error(e, window, false)),
    }
}

/// A head parser with a memo of how far it has looked, so a head arriving
/// one byte at a time costs O(n) in total instead of O(n²).
///
/// Feed it the whole buffer received so far on each call (as with
/// [`parse_request_head`]); it runs the full parse only on the first call and
/// once an empty line (or a bare LF) has arrived. On `Complete` or an error it starts over,
/// ready for the next head in the same connection (after the caller drops
/// `len` bytes). Results on a complete head equal the stateless functions';
/// a malformed head may be reported later (at its empty line or at the
/// size limit) than the stateless function would.
#[derive(Debug, Clone, Default)]
pub struct HeadScanner {
    /// Bytes already searched for the end of the head. `None` before the
    /// first call.
    searched: Option<usize>,
}

impl HeadScanner {
    /// A scanner at the start of a head.
    pub fn new() -> Self {
        HeadScanner::default()
    }

    /// Forget progress; the next call treats `buf` as a new head.
    pub fn reset(&mut self) {
        self.searched = None;
    }

    /// [`parse_request_head`] with the memo.
    pub fn parse_request(
        &mut self,
        buf: &[u8],
        limits: &Limits,
    ) -> Result<Parsed<RequestHead>, HeadError> {
        self.run(buf, limits, parse_request_head)
    }

    /// [`parse_response_head`] with the memo.
    pub fn parse_response(
        &mut self,
        buf: &[u8],
        limits: &Limits,
    ) -> Result<Parsed<ResponseHead>, HeadError> {
        self.run(buf, limits, parse_response_head)
    }

    fn run<T>(
        &mut self,
        buf: &[u8],
        limits: &Limits,
        parse: fn(&[u8], &Limits) -> Result<Parsed<T>, HeadError>,
    ) -> Result<Parsed<T>, HeadError> {
        let window = &buf[..buf.len().min(limits.max_head_bytes)];
        let must_parse = match self.searched {
            None => true,
            Some(from) => {
                has_empty_line(window, from.min(window.len())) || buf.len() > limits.max_head_bytes
            }
        };
        if !must_parse {
            self.searched = Some(window.len().saturating_sub(2));
            return Ok(Parsed::Partial);
        }
        let result = parse(buf, limits);
        match result {
            Ok(Parsed::Partial) => self.searched = Some(window.len().saturating_sub(2)),
            _ => self.searched = None,
        }
        result
    }
}

/// Whether the bytes from `from` on make a full parse worthwhile: an LF
/// followed by an empty line (`LF LF` or `LF CR LF`), so the head may be
/// complete, or a bare LF, which the full parse will refuse.
fn has_empty_line(window: &[u8], from: usize) -> bool {
    memchr::memchr_iter(b'\n', &window[from..]).any(|i| {
        let at = from + i;
        let rest = &window[at + 1..];
        at == 0 || window[at - 1] != b'\r' || rest.starts_with(b"\n") || rest.starts_with(b"\r\n")
    })
}

/// Slots for httparse: `max_headers`, but never more than a head of
/// `max_head_bytes` can hold (a field line takes at least 4 bytes), so a
/// huge configured count cannot make us allocate.
fn header_slots(limits: &Limits) -> usize {
    limits.max_headers.min(limits.max_head_bytes / 4 + 1)
}

/// Header slots on the stack up to this many (the default limit is 100);
/// beyond, on the heap.
const STACK_SLOTS: usize = 128;

/// Exactly [`header_slots`] slots (httparse refuses a head with more
/// fields than slots): on the stack when they fit, else in `heap`.
fn header_slot_buf<'a, 'h>(
    limits: &Limits,
    stack: &'a mut [httparse::Header<'h>; STACK_SLOTS],
    heap: &'a mut Vec<httparse::Header<'h>>,
) -> &'a mut [httparse::Header<'h>] {
    let n = header_slots(limits);
    if n <= STACK_SLOTS {
        &mut stack[..n]
    } else {
        heap.resize(n, httparse::EMPTY_HEADER);
        heap
    }
}

fn partial<T>(buf: &[u8], window: &[u8], limits: &Limits) -> Result<Parsed<T>, HeadError> {
    // A bare LF is certain to be refused once the head completes: say so now.
    check_line_endings(window)?;
    if buf.len() > limits.max_head_bytes {
        return Err(HeadError::TooLarge);
    }
    Ok(Parsed::Partial)
}

/// httparse accepts bare LF everywhere; we do not.
fn check_line_endings(head: &[u8]) -> Result<(), HeadError> {
    for i in memchr::memchr_iter(b'\n', head) {
        if i == 0 || head[i - 1] != b'\r' {
            return Err(HeadError::InvalidLineEnding);
        }
    }
    Ok(())
}

fn version_of(minor: Option<u8>) -> Result<Version, HeadError> {
    match minor {
        Some(0) => Ok(Version::Http10),
        Some(1) => Ok(Version::Http11),
        _ => Err(HeadError::UnsupportedVersion),
    }
}

fn own_headers(headers: &[httparse::Header<'_>]) -> Vec<Header> {
    headers
        .iter()
        .map(|h| Header {
            name: h.name.to_owned(),
            value: h.value.to_vec(),
        })
        .collect()
}

/// One `Host`, required in 1.1, holding only authority bytes
/// (`unreserved / pct-encoded / sub-delims / ":" / "[" / "]"`), so the
/// DNS-rebinding check a proxy does on it sees what the upstream will see.
fn check_host(version: Version, headers: &[Header]) -> Result<(), HeadError> {
    let mut hosts = headers.iter().filter(|h| h.is("host"));
    match (hosts.next(), hosts.next()) {
        (Some(_), Some(_)) => Err(HeadError::DuplicateHost),
        (None, _) if version == Version::Http11 => Err(HeadError::MissingHost),
        (None, _) => Ok(()),
        (Some(host), None) => {
            let ok = host.value.iter().all(|&b| {
                b.is_ascii_alphanumeric()
                    || matches!(
                        b,
                        b'-' | b'.'
                            | b'_'
                            | b'~'
                            | b'%'
                            | b'!'
                            | b'$'
                            | b'&'
                            | b'\''
                            | b'('
                            | b')'
                            | b'*'
                            | b'+'
                            | b','
                            | b';'
                            | b'='
                            | b':'
                            | b'['
                            | b']'
                    )
            });
            if ok {
                Ok(())
            } else {
                Err(HeadError::InvalidHost)
            }
        }
    }
}

/// Which form `target` has, if it is one this method may use.
pub(crate) fn classify_target(method: &str, target: &[u8]) -> Option<TargetForm> {
    if target.is_empty()
        || !target
            .iter()
            .all(|&b| (0x21..=0x7E).contains(&b) && b != b'#')
    {
        return None;
    }
    let connect = method == "CONNECT";
    if connect {
        // host ":" port, nothing else.
        let colon = target.iter().rposition(|&b| b == b':')?;
        let (host, port) = (&target[..colon], &target[colon + 1..]);
        let host_ok = !host.is_empty() && !host.iter().any(|&b| matches!(b, b'/' | b'?' | b'@'));
        let port_ok = !port.is_empty() && port.iter().all(u8::is_ascii_digit);
        return (host_ok && port_ok).then_some(TargetForm::Authority);
    }
    if target[0] == b'/' {
        return Some(TargetForm::Origin);
    }
    if target == b"*" {
        return (method == "OPTIONS").then_some(TargetForm::Asterisk);
    }
    // absolute-URI: scheme ":" …, scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )
    let colon = target.iter().position(|&b| b == b':')?;
    let scheme = &target[..colon];
    let scheme_ok = scheme.first().is_some_and(u8::is_ascii_alphabetic)
        && scheme
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    scheme_ok.then_some(TargetForm::Absolute)
}

/// Turn httparse's coarse error into ours by looking at the bytes again.
fn classify_error(e: httparse::Error, window: &[u8], request: bool) -> HeadError {
    let start_line_error = if request {
        HeadError::InvalidRequestLine
    } else {
        HeadError::InvalidStatusLine
    };
    match e {
        httparse::Error::TooManyHeaders => HeadError::TooManyHeaders,
        httparse::Error::Version => classify_version(window, request),
        httparse::Error::Status => HeadError::InvalidStatusLine,
        httparse::Error::Token => HeadError::InvalidRequestLine,
        httparse::Error::NewLine | httparse::Error::HeaderName | httparse::Error::HeaderValue => {
            classify_lines(window).unwrap_or(match e {
                httparse::Error::HeaderName => HeadError::InvalidHeaderName,
                httparse::Error::HeaderValue => HeadError::InvalidHeaderValue,
                _ => start_line_error,
            })
        }
    }
}

/// httparse stopped at the version: say whether the start line is malformed
/// (400), the version is garbage (400) or a well-formed version we do not
/// speak (505).
///
/// A request line is `method SP request-target SP HTTP-version` with single
/// spaces (RFC 9112 §3): two spaces, a tab or a trailing space make it
/// malformed whatever follows, so `POST /mcp  HTTP/1.1` is a 400, not a
/// version we do not speak. Only `HTTP/` DIGIT `.` DIGIT (§2.3) that is
/// neither 1.0 nor 1.1 is a 505.
fn classify_version(window: &[u8], request: bool) -> HeadError {
    let body = skip_leading_empty_lines(window);
    let line_end = memchr::memchr2(b'\r', b'\n', body).unwrap_or(body.len());
    let line = &body[..line_end];
    let finished = line_end < body.len();
    let malformed = if request {
        HeadError::InvalidRequestLine
    } else {
        HeadError::InvalidStatusLine
    };
    let mut fields = line.split(|&b| b == b' ');
    let version = if request {
        match (fields.next(), fields.next(), fields.next(), fields.next()) {
            (Some(method), Some(target), Some(version), None)
                if !method.is_empty() && !target.is_empty() =>
            {
                version
            }
            _ => return malformed,
        }
    } else {
        fields.next().unwrap_or(line)
    };
    match version {
        // A version httparse reads: the fault is what follows it.
        b"HTTP/1.0" | b"HTTP/1.1" => {
            if body[line_end..].starts_with(b"\r") && !body[line_end..].starts_with(b"\r\n") {
                HeadError::InvalidLineEnding
            } else {
                malformed
            }
        }
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            HeadError::UnsupportedVersion
        }
        // An unfinished line may still grow into a well-formed version: the
        // answer must not depend on where the bytes were split.
        [b'H', b'T', b'T', b'P', b'/', major, rest @ ..]
            if !finished && major.is_ascii_digit() && matches!(rest, [] | [b'.']) =>
        {
            HeadError::UnsupportedVersion
        }
        _ => HeadError::InvalidVersion,
    }
}

fn skip_leading_empty_lines(mut buf: &[u8]) -> &[u8] {
    loop {
        if let Some(rest) = buf.strip_prefix(b"\r\n") {
            buf = rest;
        } else if let Some(rest) = buf.strip_prefix(b"\n") {
            buf = rest;
        } else {
            return buf;
        }
    }
}

/// Find the first offending field line after the start line and name what
/// is wrong with it.
fn classify_lines(window: &[u8]) -> Option<HeadError> {
    let body = skip_leading_empty_lines(window);
    let mut lines = body.split(|&b| b == b'\n');
    let start = lines.next()?;
    if has_bare_cr(start) {
        return Some(HeadError::InvalidLineEnding);
    }
    for line in lines {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            return None;
        }
        if has_bare_cr(line) {
            return Some(HeadError::InvalidLineEnding);
        }
        if line[0] == b' ' || line[0] == b'\t' {
            return Some(HeadError::ObsoleteLineFolding);
        }
        let name_len = line.iter().take_while(|&&b| is_tchar(b)).count();
        match line.get(name_len) {
            Some(b':') if name_len > 0 => {
                let value = &line[name_len + 1..];
                if !value.iter().all(|&b| super::syntax::is_field_value_byte(b)) {
                    return Some(HeadError::InvalidHeaderValue);
                }
            }
            Some(b' ' | b'\t') if name_len > 0 => {
                let rest = &line[name_len..];
                let ws = rest
                    .iter()
                    .take_while(|&&b| b == b' ' || b == b'\t')
                    .count();
                return Some(if rest.get(ws) == Some(&b':') {
                    HeadError::WhitespaceBeforeColon
                } else {
                    HeadError::InvalidHeaderName
                });
            }
            // Unfinished line: nothing to blame yet.
            None => return None,
            _ => return Some(HeadError::InvalidHeaderName),
        }
    }
    None
}

/// A CR that is not the last byte of a line (the split already removed LF).
fn has_bare_cr(line: &[u8]) -> bool {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    line.contains(&b'\r')
}
