//! The client side of the bridge: the decision of which backend session
//! serves a request that arrives over the typed seam ([`crate::upstream`]),
//! and the answer parts sent back.

use super::Mode;
use super::error::BridgeError;
use crate::jsonrpc::{self, Classified, Kind, codes};
use crate::upstream::{AnswerHead, AnswerPart, Request, SessionOf};

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
    /// Answer with this (a whole answer) and stop.
    Reply(AnswerPart),
}

/// Decide where `req` goes; a pure function of the request and the mode.
pub fn dispatch(req: &Request, mode: Mode, json: &jsonrpc::Limits) -> Dispatch {
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
    match crate::upstream::session_of(req, json) {
        SessionOf::New => Dispatch::NewSession,
        SessionOf::Existing(id) => Dispatch::Session(id),
        SessionOf::Reply(part) => Dispatch::Reply(part),
        SessionOf::Stateless => Dispatch::Reply(crate::upstream::no_session()),
    }
}

/// The answer for a session id nobody knows (expired, deleted, or its
/// backend went away): 404, so the client starts a new session. A request
/// gets a JSON-RPC error with its own id.
pub fn unknown_session(req: &Request, json: &jsonrpc::Limits) -> AnswerPart {
    let msg = jsonrpc::error_message(
        request_id(req, json).as_ref().map(|i| i.as_bytes()),
        codes::INVALID_REQUEST,
        "sluice bridge: unknown or expired session",
        None,
    );
    AnswerPart::json(AnswerHead::status(404), msg)
}

/// The answer for a request that would need a new backend session the
/// caller cannot open (`e`: [`BridgeError::TooManySessions`],
/// [`BridgeError::ShuttingDown`] or [`BridgeError::NoSessionId`]):
/// `e.status()` (503) with a JSON-RPC error carrying the request's own id
/// (`null` for anything but a request), so SDK clients fail that call with
/// a readable message.
pub fn refuse_new_session(req: &Request, e: &BridgeError, json: &jsonrpc::Limits) -> AnswerPart {
    let msg = jsonrpc::error_message(
        request_id(req, json).as_ref().map(|i| i.as_bytes()),
        e.code(),
        &format!("sluice bridge: {e}"),
        None,
    );
    AnswerPart::json(AnswerHead::status(e.status()), msg)
}

/// The id of `req` when it is one JSON-RPC request.
fn request_id(req: &Request, json: &jsonrpc::Limits) -> Option<jsonrpc::RawId> {
    match jsonrpc::classify(&req.body, json) {
        Ok(Classified::Single(m)) if m.kind == Kind::Request => m.raw_id(),
        _ => None,
    }
}

fn method_not_allowed(mode: Mode) -> AnswerPart {
    let allow = match mode {
        Mode::Session => "GET, POST, DELETE",
        Mode::PerRequest => "POST",
    };
    let msg = jsonrpc::error_message(
        None,
        codes::INVALID_REQUEST,
        "sluice bridge: method not allowed",
        None,
    );
    let head = AnswerHead {
        allow: Some(allow),
        ..AnswerHead::status(405)
    };
    AnswerPart::json(head, msg)
}

/// A whole JSON error answer with a null id.
pub(super) fn reply_error(status: u16, code: i64, text: &str) -> AnswerPart {
    let msg = jsonrpc::error_message(None, code, &format!("sluice bridge: {text}"), None);
    AnswerPart::json(AnswerHead::status(status), msg)
}
