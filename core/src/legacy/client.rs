//! The client side of the bridge: the Streamable HTTP request that arrives
//! (from the exchange, through the virtual upstream), the decision of which
//! backend session serves it, and the responses written back.

use bytes::Bytes;

use super::Mode;
use super::error::BridgeError;
use crate::http1::{self, BodyFraming, HeadScanner, Header, Parsed};
use crate::inject::{self, Accepts};
use crate::jsonrpc::{self, Classified, Kind, codes};

/// The session header of Streamable HTTP.
pub const SESSION_HEADER: &str = "Mcp-Session-Id";

/// One Streamable HTTP request, read whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRequest {
    /// `POST`, `GET`, `DELETE`…
    pub method: String,
    /// The origin-form target (the backend's SSE path after routing).
    pub target: String,
    /// The fields, in order.
    pub headers: Vec<Header>,
    /// The body (empty for GET and DELETE).
    pub body: Bytes,
}

impl ClientRequest {
    /// The value of the first field called `name`.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        http1::find_header(&self.headers, name).map(|h| h.value.as_slice())
    }

    /// The `Mcp-Session-Id` the client sent, if it is visible ASCII.
    pub fn session_id(&self) -> Option<&str> {
        let v = self.header(SESSION_HEADER)?;
        let ok = !v.is_empty() && v.iter().all(|b| (0x21..=0x7e).contains(b));
        ok.then(|| std::str::from_utf8(v).ok()).flatten()
    }

    /// The `MCP-Protocol-Version` the client sent, if any.
    pub fn protocol_version(&self) -> Option<&str> {
        let v = self.header("mcp-protocol-version")?;
        std::str::from_utf8(v).ok().filter(|s| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        })
    }

    /// What the client's `Accept` admits.
    pub fn accepts(&self) -> Accepts {
        let values: Vec<&[u8]> = self
            .headers
            .iter()
            .filter(|h| h.is("accept"))
            .map(|h| h.value.as_slice())
            .collect();
        Accepts::from_headers(&values)
    }
}

/// Reads one request from the bytes the exchange writes into the virtual
/// upstream. The exchange always normalizes framing to `Content-Length` (or
/// no body), so chunked bodies are refused.
#[derive(Debug, Default)]
pub struct RequestReader {
    buf: Vec<u8>,
    scanner: HeadScanner,
    head: Option<(http1::RequestHead, usize)>,
    done: bool,
}

/// A request that cannot be served; the bytes are a complete HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal(pub Vec<u8>);

impl RequestReader {
    /// A reader at the start of a request.
    pub fn new() -> Self {
        RequestReader::default()
    }

    /// Push bytes; `Ok(Some(request))` once whole. Bytes after the request
    /// are ignored (the virtual upstream carries one request).
    pub fn feed(
        &mut self,
        input: &[u8],
        limits: &http1::Limits,
        max_body: usize,
    ) -> Result<Option<ClientRequest>, Refusal> {
        if self.done {
            return Ok(None);
        }
        self.buf.extend_from_slice(input);
        if self.head.is_none() {
            match self.scanner.parse_request(&self.buf, limits) {
                Ok(Parsed::Partial) => return Ok(None),
                Ok(Parsed::Complete { head, len }) => {
                    let n = match http1::request_framing(&head) {
                        Ok(BodyFraming::None) => 0,
                        Ok(BodyFraming::ContentLength(n)) if n <= max_body as u64 => n as usize,
                        Ok(BodyFraming::ContentLength(_)) => {
                            return Err(self.refuse(413, "request body too large"));
                        }
                        _ => return Err(self.refuse(400, "unsupported request framing")),
                    };
                    self.buf.drain(..len);
                    self.head = Some((head, n));
                }
                Err(e) => return Err(self.refuse(e.status(), "malformed request")),
            }
        }
        let Some((_, n)) = &self.head else {
            return Ok(None);
        };
        if self.buf.len() < *n {
            return Ok(None);
        }
        let n = *n;
        self.done = true;
        let Some((head, _)) = self.head.take() else {
            return Ok(None);
        };
        let mut body = std::mem::take(&mut self.buf);
        body.truncate(n);
        Ok(Some(ClientRequest {
            method: head.method,
            target: head.target,
            headers: head.headers,
            body: Bytes::from(body),
        }))
    }

    fn refuse(&mut self, status: u16, text: &str) -> Refusal {
        self.done = true;
        Refusal(inject::http_error(
            status,
            codes::INVALID_REQUEST,
            &format!("sluice bridge: {text}"),
            true,
        ))
    }
}

/// Which backend session serves a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dispatch {
    /// Session mode, `initialize` without a session id: open a new backend
    /// session (the caller mints its id) and attach the request to it.
    NewSession,
    /// Session mode: attach to the session with this id (404 when the
    /// caller knows no such session: use [`unknown_session`]).
    Session(String),
    /// Per-request mode: a fresh backend session for this request alone.
    PerRequest,
    /// Answer with these bytes (a complete response) and stop.
    Reply(Vec<u8>),
}

/// Decide where `req` goes; a pure function of the request and the mode.
pub fn dispatch(req: &ClientRequest, mode: Mode, json: &jsonrpc::Limits) -> Dispatch {
    match (mode, req.method.as_str()) {
        (_, "POST" | "GET" | "DELETE") => {}
        _ => return Dispatch::Reply(method_not_allowed(mode)),
    }
    if mode == Mode::PerRequest {
        return match req.method.as_str() {
            "POST" => Dispatch::PerRequest,
            _ => Dispatch::Reply(method_not_allowed(mode)),
        };
    }
    if let Some(id) = req.session_id() {
        return Dispatch::Session(id.to_owned());
    }
    if req.header(SESSION_HEADER).is_some() {
        return Dispatch::Reply(reply_error(
            400,
            codes::INVALID_REQUEST,
            "Mcp-Session-Id must be visible ASCII",
        ));
    }
    let is_initialize = req.method == "POST"
        && matches!(
            jsonrpc::classify(&req.body, json),
            Ok(Classified::Single(m)) if m.kind == Kind::Request && m.method.as_deref() == Some("initialize")
        );
    if is_initialize {
        Dispatch::NewSession
    } else {
        Dispatch::Reply(reply_error(
            400,
            codes::INVALID_REQUEST,
            "no Mcp-Session-Id: initialize first",
        ))
    }
}

/// The answer for a session id nobody knows (expired, deleted, or its
/// backend went away): 404, so the client starts a new session. A request
/// gets a JSON-RPC error with its own id.
pub fn unknown_session(req: &ClientRequest, json: &jsonrpc::Limits) -> Vec<u8> {
    let msg = jsonrpc::error_message(
        request_id(req, json).as_ref().map(|i| i.as_bytes()),
        codes::INVALID_REQUEST,
        "sluice bridge: unknown or expired session",
        None,
    );
    Writer { session: None }.json(404, &msg)
}

/// The answer for a request that would need a new backend session the
/// caller cannot open (`e`: [`BridgeError::TooManySessions`] or
/// [`BridgeError::ShuttingDown`]): `e.status()` (503) with a JSON-RPC error
/// carrying the request's own id (`null` for anything but a request), so
/// SDK clients fail that call with a readable message.
pub fn refuse_new_session(req: &ClientRequest, e: &BridgeError, json: &jsonrpc::Limits) -> Vec<u8> {
    let msg = jsonrpc::error_message(
        request_id(req, json).as_ref().map(|i| i.as_bytes()),
        e.code(),
        &format!("sluice bridge: {e}"),
        None,
    );
    Writer { session: None }.json(e.status(), &msg)
}

/// The id of `req` when it is one JSON-RPC request.
fn request_id(req: &ClientRequest, json: &jsonrpc::Limits) -> Option<jsonrpc::RawId> {
    match jsonrpc::classify(&req.body, json) {
        Ok(Classified::Single(m)) if m.kind == Kind::Request => m.raw_id(),
        _ => None,
    }
}

fn method_not_allowed(mode: Mode) -> Vec<u8> {
    let allow = match mode {
        Mode::Session => "GET, POST, DELETE",
        Mode::PerRequest => "POST",
    };
    let text = "sluice bridge: method not allowed";
    inject::http_error_allow(405, codes::INVALID_REQUEST, text, allow, true)
}

/// A complete JSON error response with a null id; the connection closes.
pub(super) fn reply_error(status: u16, code: i64, text: &str) -> Vec<u8> {
    inject::http_error(status, code, &format!("sluice bridge: {text}"), true)
}

/// Response heads and bodies the bridge writes to a client stream. Every
/// response ends with `Connection: close`: the virtual upstream is never
/// reused.
pub(super) struct Writer<'a> {
    pub session: Option<&'a str>,
}

impl Writer<'_> {
    fn session_line(&self) -> String {
        match self.session {
            Some(id) => format!("{SESSION_HEADER}: {id}\r\n"),
            None => String::new(),
        }
    }

    /// The head of an SSE answer (chunked body follows).
    pub fn sse_head(&self) -> Vec<u8> {
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n\
             X-Accel-Buffering: no\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n{}\r\n",
            self.session_line()
        )
        .into_bytes()
    }

    /// A whole `application/json` answer.
    pub fn json(&self, status: u16, body: &[u8]) -> Vec<u8> {
        let mut out = format!(
            "HTTP/1.1 {status} {}\r\nContent-Type: application/json\r\nCache-Control: no-store\r\n\
             Content-Length: {}\r\nConnection: close\r\n{}\r\n",
            inject::reason_phrase(status),
            body.len(),
            self.session_line()
        )
        .into_bytes();
        out.extend_from_slice(body);
        out
    }

    /// A body-less answer (202 to notifications, 200 to DELETE, 409…).
    pub fn empty(&self, status: u16) -> Vec<u8> {
        format!(
            "HTTP/1.1 {status} {}\r\nContent-Length: 0\r\nConnection: close\r\n{}\r\n",
            inject::reason_phrase(status),
            self.session_line()
        )
        .into_bytes()
    }
}

/// One JSON-RPC message as one chunk of an SSE body.
pub(super) fn sse_chunk(message: &[u8]) -> Vec<u8> {
    let mut event = Vec::with_capacity(message.len() + 24);
    crate::sse::encode_jsonrpc_message(message, &mut event);
    let mut out = Vec::with_capacity(event.len() + 12);
    http1::encode_chunk(&event, &mut out);
    out
}

/// The end of a chunked body.
pub(super) fn last_chunk() -> Vec<u8> {
    let mut out = Vec::with_capacity(5);
    http1::encode_last_chunk(&mut out);
    out
}
