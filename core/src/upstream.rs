//! The typed seam between an exchange and an upstream that speaks in
//! messages rather than HTTP bytes: the legacy HTTP+SSE bridge today, stdio
//! servers and federations of servers next.
//!
//! An HTTP upstream gets the exchange's request as bytes
//! ([`Output::ToUpstream`](crate::exchange::Output::ToUpstream)) and
//! answers with bytes the exchange parses; that path is zero-copy and stays
//! as it is. A message upstream gets the request as a [`Request`] (the
//! method, the headers as forwarded, the body after the request hooks) and
//! answers with [`AnswerPart`]s: a whole JSON answer, or the head of an SSE
//! answer followed by one part per JSON-RPC message and an end. The exchange
//! renders those for the client with its own framing, runs the response
//! hooks on them and applies its injection rules when the upstream fails,
//! exactly as for an HTTP upstream. Nothing between the two is rendered as
//! HTTP or parsed back: a message the upstream read from its backend is
//! parsed once, there, and reaches the client as one encoded SSE event.
//!
//! ```text
//!  client ──HTTP──▶ Exchange ──Request──▶ message upstream ──▶ backend
//!  client ◀──HTTP── Exchange ◀─AnswerPart─ message upstream ◀── backend
//! ```
//!
//! The driver joins the two: on [`Output::Connect`](crate::exchange::Output::Connect)
//! for a route it knows to be a message upstream it calls
//! [`Exchange::message_upstream_connected`](crate::exchange::Exchange::message_upstream_connected),
//! hands the [`Output::Dispatch`](crate::exchange::Output::Dispatch)ed request
//! to the upstream, and feeds each part back with
//! [`Exchange::feed_answer`](crate::exchange::Exchange::feed_answer). An
//! upstream that fails before its answer is whole is reported like a
//! connection that failed
//! ([`Exchange::upstream_closed`](crate::exchange::Exchange::upstream_closed)).

use bytes::Bytes;

use crate::http1::{self, Header};
use crate::inject::{self, Accepts};
use crate::jsonrpc::{self, Classified, Kind, codes};

/// The session header of Streamable HTTP.
pub const SESSION_HEADER: &str = "Mcp-Session-Id";

/// A client request as the exchange forwards it, read whole and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `POST`, `GET`, `DELETE`…
    pub method: String,
    /// The origin-form target after routing (the upstream's own path).
    pub target: String,
    /// The end-to-end fields as forwarded, `Host` first.
    pub headers: Vec<Header>,
    /// The body as forwarded (after the request hooks); empty for GET.
    pub body: Bytes,
}

impl Request {
    /// The POST that carries `answer` (a JSON-RPC result or error for a
    /// server request) to `target` on the client's behalf, with the
    /// `headers` a request of the client's went with (the session, the
    /// upstream's credentials) but those that describe that request's own
    /// body or ask for a kind of answer.
    pub fn answer_to_server(target: &str, headers: &[Header], answer: Vec<u8>) -> Request {
        // Fields about `like`'s own message, or about what it accepts.
        const OWN: [&str; 8] = [
            "content-type",
            "accept",
            "accept-encoding",
            "last-event-id",
            "mcp-method",
            "mcp-name",
            "expect",
            "content-encoding",
        ];
        let mut headers: Vec<Header> = headers
            .iter()
            .filter(|h| {
                (h.is("host") || !http1::is_writer_owned(&h.name))
                    && !OWN.iter().any(|own| h.is(own))
            })
            .cloned()
            .collect();
        headers.push(Header::new("Content-Type", "application/json"));
        headers.push(Header::new("Accept", "application/json, text/event-stream"));
        Request {
            method: "POST".to_owned(),
            target: target.to_owned(),
            headers,
            body: Bytes::from(answer),
        }
    }

    /// The request as HTTP/1.1 bytes, framed by `Content-Length`.
    pub fn render(&self) -> Result<Vec<u8>, http1::WriteError> {
        let mut head = http1::RequestHead {
            method: self.method.clone(),
            target: self.target.clone(),
            version: http1::Version::Http11,
            headers: self
                .headers
                .iter()
                .filter(|h| !h.is("content-length") && !h.is("transfer-encoding"))
                .cloned()
                .collect(),
        };
        head.headers
            .push(Header::new("Content-Length", self.body.len().to_string()));
        let mut out = Vec::with_capacity(256 + self.body.len());
        http1::write_request_head(&head, &mut out)?;
        out.extend_from_slice(&self.body);
        Ok(out)
    }

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

/// Which session a request belongs to, at an upstream whose client
/// sessions sluice keeps itself (the legacy bridge's session mode, stdio
/// servers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionOf {
    /// `initialize` without a session id: a new session, whose id the
    /// caller mints.
    New,
    /// The session with this id (which the caller may not know: a 404).
    Existing(String),
    /// A 2026-07-28 request ([`crate::modern`]): no session at all. Only
    /// an upstream where sluice is the server can take it; one that cannot
    /// answers as to a request without a session (400), which sends a
    /// client of both eras back to the handshake.
    Stateless,
    /// Not for any session: answer with this and stop.
    Reply(AnswerPart),
}

/// Decides which session `req` belongs to: its `Mcp-Session-Id`, or a new
/// one for an `initialize`, or none for a 2026-07-28 POST; a request
/// without any of these (or with an id that is not visible ASCII) is
/// answered 400, a method other than POST, GET and DELETE 405.
pub fn session_of(req: &Request, json: &jsonrpc::Limits) -> SessionOf {
    let refuse = |status: u16, text: &str| {
        let msg = jsonrpc::error_message(None, codes::INVALID_REQUEST, text, None);
        let head = AnswerHead {
            allow: (status == 405).then_some("GET, POST, DELETE"),
            ..AnswerHead::status(status)
        };
        SessionOf::Reply(AnswerPart::json(head, msg))
    };
    if !matches!(req.method.as_str(), "POST" | "GET" | "DELETE") {
        return refuse(405, "sluice: method not allowed");
    }
    if let Some(id) = req.session_id() {
        return SessionOf::Existing(id.to_owned());
    }
    if req.header(SESSION_HEADER).is_some() {
        return refuse(400, "sluice: Mcp-Session-Id must be visible ASCII");
    }
    let is_initialize = req.method == "POST"
        && matches!(
            jsonrpc::classify(&req.body, json),
            Ok(Classified::Single(m)) if m.kind == Kind::Request && m.method.as_deref() == Some("initialize")
        );
    // The era's header decides first: 2026-07-28 has no `initialize`.
    if req.method == "POST" && crate::modern::is_modern(req) {
        SessionOf::Stateless
    } else if is_initialize {
        SessionOf::New
    } else {
        SessionOf::Reply(no_session())
    }
}

/// The 400 for a request that names no session where one is needed.
pub fn no_session() -> AnswerPart {
    let msg = jsonrpc::error_message(
        None,
        codes::INVALID_REQUEST,
        "sluice: no Mcp-Session-Id: initialize first",
        None,
    );
    AnswerPart::json(AnswerHead::status(400), msg)
}

/// The status and the fields of an answer that matter to an MCP client.
/// The exchange adds the content type, caching and framing fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerHead {
    /// The HTTP status.
    pub status: u16,
    /// The `Mcp-Session-Id` to send, if any.
    pub session_id: Option<String>,
    /// The `Allow` field of a 405.
    pub allow: Option<&'static str>,
}

impl AnswerHead {
    /// A head with `status` and nothing else.
    pub fn status(status: u16) -> Self {
        AnswerHead {
            status,
            session_id: None,
            allow: None,
        }
    }

    /// The same head carrying session id `id`.
    pub fn with_session(mut self, id: Option<&str>) -> Self {
        self.session_id = id.map(str::to_owned);
        self
    }

    /// The head as HTTP/1.1 fields, for a body of `kind`. A whole body
    /// carries its `Content-Length`; a stream is framed by the exchange.
    pub(crate) fn to_http(&self, kind: AnswerBody) -> http1::ResponseHead {
        let mut headers = Vec::with_capacity(5);
        match kind {
            AnswerBody::Json(len) => {
                if len > 0 {
                    headers.push(Header::new("Content-Type", "application/json"));
                    headers.push(Header::new("Cache-Control", "no-store"));
                }
                headers.push(Header::new("Content-Length", len.to_string()));
            }
            AnswerBody::Sse => {
                headers.push(Header::new("Content-Type", "text/event-stream"));
                headers.push(Header::new("Cache-Control", "no-cache"));
                // Tells nginx-style buffering proxies in front not to hold events.
                headers.push(Header::new("X-Accel-Buffering", "no"));
            }
        }
        if let Some(id) = &self.session_id {
            headers.push(Header::new(SESSION_HEADER, id.as_bytes()));
        }
        if let Some(allow) = self.allow {
            headers.push(Header::new("Allow", allow));
        }
        http1::ResponseHead {
            version: http1::Version::Http11,
            status: self.status,
            reason: inject::reason_phrase(self.status).to_owned(),
            headers,
        }
    }
}

/// What kind of body follows an [`AnswerHead`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AnswerBody {
    /// `application/json` of this many bytes (0: no content type, no body).
    Json(usize),
    /// An event stream of JSON-RPC messages.
    Sse,
}

/// One piece of a message upstream's answer, in order: a [`Whole`] answer
/// alone, or a [`Stream`] head, any number of [`Event`]s (or
/// [`IdentifiedEvent`]s) and an [`End`]; a [`Prime`] may come first among
/// the events.
///
/// [`Whole`]: AnswerPart::Whole
/// [`Stream`]: AnswerPart::Stream
/// [`Event`]: AnswerPart::Event
/// [`IdentifiedEvent`]: AnswerPart::IdentifiedEvent
/// [`End`]: AnswerPart::End
/// [`Prime`]: AnswerPart::Prime
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnswerPart {
    /// A complete answer: a JSON body (one message or an array), or an
    /// empty body (a `202` to a notification, a `200` to `DELETE`).
    Whole {
        /// Status and fields.
        head: AnswerHead,
        /// The JSON body; empty for none.
        body: Bytes,
    },
    /// The head of an SSE answer; events follow.
    Stream(AnswerHead),
    /// One JSON-RPC message, sent to the client as one `message` event.
    Event(Bytes),
    /// The same with an SSE event id, which the client may name in
    /// `Last-Event-ID` to resume after it.
    IdentifiedEvent {
        /// The event id (unique within the session).
        id: u64,
        /// The message.
        data: Bytes,
    },
    /// The same with an event id in the upstream's own words (a federation
    /// member's id, marked with the member): text without CR, LF or NUL.
    NamedEvent {
        /// The event id.
        id: String,
        /// The message.
        data: Bytes,
    },
    /// MCP 2025-11-25's priming event: an event id and no message, sent
    /// first so that the client can resume a stream (`Last-Event-ID`)
    /// before any message reached it.
    Prime(u64),
    /// The SSE answer is complete.
    End,
}

impl AnswerPart {
    /// A whole JSON answer with `head`.
    pub fn json(head: AnswerHead, body: impl Into<Bytes>) -> Self {
        AnswerPart::Whole {
            head,
            body: body.into(),
        }
    }

    /// A whole answer with no body.
    pub fn empty(head: AnswerHead) -> Self {
        AnswerPart::Whole {
            head,
            body: Bytes::new(),
        }
    }

    /// This part completes the answer.
    pub fn is_last(&self) -> bool {
        matches!(self, AnswerPart::Whole { .. } | AnswerPart::End)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_carry_only_what_the_body_needs() {
        let head = AnswerHead::status(202).with_session(Some("s-1"));
        let http = head.to_http(AnswerBody::Json(0));
        let names: Vec<&str> = http.headers.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["Content-Length", SESSION_HEADER]);
        assert_eq!(http.reason, "Accepted");
        let sse = AnswerHead::status(200).to_http(AnswerBody::Sse);
        assert!(http1::find_header(&sse.headers, "content-length").is_none());
        let allowed = AnswerHead {
            allow: Some("POST"),
            ..AnswerHead::status(405)
        };
        let http = allowed.to_http(AnswerBody::Json(2));
        assert_eq!(
            http1::find_header(&http.headers, "allow").unwrap().value,
            b"POST"
        );
    }
}
