//! 2026-07-28 clients at a shared child: requests with no session, served
//! by the child sluice initialized in the handshake era ([`crate::modern`]).
//!
//! Each request lives in a session of its own for as long as its stream
//! (keyed so that no client can name it: [`is_stateless_key`]), so the
//! bridge's routing holds unchanged: its progress and log lines (when it
//! asked for them) come back on its stream, a request of the child made on
//! its behalf is refused (this era takes none), and closing the stream
//! cancels the call. `server/discover` is answered from the child's
//! `initialize`; `subscriptions/listen` is a stream of the list changes it
//! agreed to, each stamped with its subscription id.

use bytes::Bytes;
use serde_json::Value;

use super::{Bridge, Client, ClientKind, Session, StdioError, head};
use crate::jsonrpc::{self, Classified, Kind, Message, RawId, codes};
use crate::legacy::StreamId;
use crate::modern::{self, Envelope, REMOVED_METHODS, SUBSCRIPTION_ID_KEY};
use crate::upstream::{AnswerHead, AnswerPart, Request};

use std::time::Instant;

/// What a 2026-07-28 request's answer needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Modern {
    /// Its method: results of lists and reads say how long to cache them.
    method: String,
    /// It asked for log lines.
    pub(super) wants_logs: bool,
}

/// The list changes a `subscriptions/listen` filter may ask for: its key,
/// the notification, and the child capability that says it is sent.
const LIST_CHANGES: [(&str, &str, &str); 3] = [
    (
        "toolsListChanged",
        "notifications/tools/list_changed",
        "tools",
    ),
    (
        "promptsListChanged",
        "notifications/prompts/list_changed",
        "prompts",
    ),
    (
        "resourcesListChanged",
        "notifications/resources/list_changed",
        "resources",
    ),
];

/// The session key of a stateless request: a NUL no session id can hold.
fn stateless_key(stream: StreamId) -> String {
    format!("\0{stream}")
}

/// Whether `session` is a stateless request's own.
pub(super) fn is_stateless_key(session: &str) -> bool {
    session.starts_with('\0')
}

impl Bridge {
    /// A 2026-07-28 request on `stream` (no session: [`crate::modern`]),
    /// for a shared child. Its envelope is checked here, before it waits
    /// for anything; a notification is taken and dropped (this era has none
    /// a server acts on: closing a stream is how a call is cancelled).
    pub fn attach_stateless(&mut self, stream: StreamId, req: Request, now: Instant) {
        self.clock = now;
        let json = self.config.json;
        let refuse = |code: i64, text: &str| {
            let msg = jsonrpc::error_message(None, code, text, None);
            AnswerPart::json(AnswerHead::status(modern::status_of(code)), msg)
        };
        let message = match jsonrpc::classify(&req.body, &json) {
            Err(e) => {
                let part = refuse(e.code(), &format!("sluice: unreadable message: {e}"));
                return self.finish(stream, part);
            }
            Ok(Classified::Single(m)) if m.kind == Kind::Request => m,
            Ok(Classified::Single(m)) if m.kind == Kind::Notification => {
                return self.finish(stream, AnswerPart::empty(AnswerHead::status(202)));
            }
            Ok(_) => {
                let part = refuse(
                    codes::INVALID_REQUEST,
                    "sluice: a 2026-07-28 POST carries one request or notification",
                );
                return self.finish(stream, part);
            }
        };
        let envelope = match modern::check(&req, &message) {
            Ok(e) => e,
            Err(rejection) => return self.finish(stream, rejection.answer(message.id)),
        };
        let accepts = req.accepts();
        let method = message.method.as_deref().unwrap_or_default().to_owned();
        if method == "subscriptions/listen" && !accepts.sse {
            // Its answer is an event stream or nothing.
            return self.finish(stream, AnswerPart::empty(AnswerHead::status(406)));
        }
        let e = if self.is_closed() {
            Some(StdioError::ShuttingDown)
        } else if self.sessions.len() >= self.config.max_sessions {
            Some(StdioError::TooManySessions {
                limit: self.config.max_sessions,
            })
        } else {
            None
        };
        if let Some(e) = e {
            let msg = jsonrpc::error_message(message.id, e.code(), &format!("sluice: {e}"), None);
            return self.finish(
                stream,
                AnswerPart::json(AnswerHead::status(e.status()), msg),
            );
        }
        let session = stateless_key(stream);
        let Envelope {
            wants_logs,
            capabilities,
            ..
        } = envelope;
        self.sessions.insert(
            session.clone(),
            Session {
                streams: 1,
                capabilities: Some(capabilities),
                stateless: true,
                ..Session::new(now)
            },
        );
        self.clients.insert(
            stream,
            Client {
                session,
                kind: ClientKind::Waiting,
                accepts,
                sse_open: false,
                attached: super::Attached::Live,
                modern: Some(Modern { method, wants_logs }),
            },
        );
        self.admit(stream, req);
    }

    /// A stateless request, the child ready: answered here, or sent on.
    pub(super) fn forward_stateless(&mut self, stream: StreamId, req: Request, modern: Modern) {
        let message = match jsonrpc::classify(&req.body, &self.config.json) {
            Ok(Classified::Single(m)) => m,
            _ => return,
        };
        let id = message.id.unwrap_or(b"null");
        match modern.method.as_str() {
            "server/discover" => {
                let Some(init) = &self.initialized else {
                    return self.fail_stream(stream, &req, &no_initialize());
                };
                // The handshake versions a client may be told through this
                // child (`negotiate` tells none newer than the child's).
                let handshake: Vec<&str> = super::SESSION_VERSIONS
                    .iter()
                    .copied()
                    .filter(|v| *v <= init.version.as_str())
                    .collect();
                let result = modern::discover_result(&init.result, &handshake);
                self.deliver(stream, jsonrpc::result_message(id, &result), true);
            }
            "subscriptions/listen" => self.listen(stream, &req.body, &message),
            method if REMOVED_METHODS.contains(&method) => {
                let text = format!("sluice: {method} is not a method of MCP 2026-07-28");
                let msg = jsonrpc::error_message(Some(id), codes::METHOD_NOT_FOUND, &text, None);
                self.finish(stream, AnswerPart::json(AnswerHead::status(404), msg));
            }
            _ => {
                let req = match modern::strip_envelope(&req.body, &message) {
                    Some(body) => Request {
                        body: body.into(),
                        ..req
                    },
                    None => req,
                };
                if self.send_request(stream, &req).is_none() {
                    self.fail_stream(stream, &req, &no_initialize());
                }
            }
        }
    }

    /// The child's answer to a stateless request, completed for its era;
    /// an error sent as JSON gets the era's status for its code.
    pub(super) fn answer_stateless(&mut self, stream: StreamId, text: Vec<u8>, modern: &Modern) {
        let (text, status) = match jsonrpc::classify(&text, &self.config.json) {
            Ok(Classified::Single(m)) => {
                let status = m
                    .error
                    .clone()
                    .and_then(|e| serde_json::from_slice::<Value>(&text[e]).ok())
                    .and_then(|e| e.get("code")?.as_i64())
                    .map_or(200, modern::status_of);
                (modern::complete_result(&text, &m, &modern.method), status)
            }
            _ => (text, 200),
        };
        self.deliver_as(stream, text, true, status);
    }

    /// `subscriptions/listen`: an event stream that opens with what the
    /// listener was granted (the list changes it asked for that the child
    /// announces; resource subscriptions are not offered) and then carries
    /// those notifications until the client or the bridge ends it.
    fn listen(&mut self, stream: StreamId, body: &[u8], message: &Message<'_>) {
        let Some(subscription) = message.raw_id() else {
            return;
        };
        let asked = message
            .params
            .clone()
            .and_then(|p| serde_json::from_slice::<Value>(&body[p]).ok())
            .and_then(|p| p.get("notifications").cloned());
        let Some(Value::Object(asked)) = asked else {
            let msg = jsonrpc::error_message(
                message.id,
                codes::INVALID_PARAMS,
                "sluice: subscriptions/listen needs params.notifications",
                None,
            );
            return self.finish(stream, AnswerPart::json(AnswerHead::status(400), msg));
        };
        let capabilities = self
            .initialized
            .as_ref()
            .and_then(|i| i.result.get("capabilities"));
        let announces = |cap: &str| {
            capabilities
                .and_then(|c| c.get(cap)?.get("listChanged")?.as_bool())
                .unwrap_or(false)
        };
        let mut granted = serde_json::Map::new();
        let mut methods = Vec::new();
        for (key, method, cap) in LIST_CHANGES {
            if asked.get(key).and_then(Value::as_bool) == Some(true) && announces(cap) {
                granted.insert(key.into(), Value::Bool(true));
                methods.push(method);
            }
        }
        let Some(client) = self.clients.get_mut(&stream) else {
            return;
        };
        client.kind = ClientKind::Listen {
            subscription: subscription.clone(),
            methods,
        };
        client.sse_open = true;
        let session = client.session.clone();
        let mut ack = br#"{"jsonrpc":"2.0","method":"notifications/subscriptions/acknowledged","params":{"_meta":"#
            .to_vec();
        ack.extend_from_slice(&subscription_meta(&subscription));
        ack.extend_from_slice(br#","notifications":"#);
        ack.extend_from_slice(Value::Object(granted).to_string().as_bytes());
        ack.extend_from_slice(b"}}");
        self.emit(stream, AnswerPart::Stream(head(200, &session)));
        self.emit(stream, AnswerPart::Event(Bytes::from(ack)));
    }

    /// A notification of the child's for every listener that agreed to
    /// it, stamped with each one's subscription; whether any took it.
    pub(super) fn tell_listeners(&mut self, text: &[u8], message: &Message<'_>) -> bool {
        let Some(method) = message.method.as_deref() else {
            return false;
        };
        let listeners: Vec<(StreamId, RawId)> = self
            .clients
            .iter()
            .filter_map(|(s, c)| match &c.kind {
                ClientKind::Listen {
                    subscription,
                    methods,
                } if methods.contains(&method) => Some((*s, subscription.clone())),
                _ => None,
            })
            .collect();
        for (stream, subscription) in &listeners {
            let stamped = modern::stamp_subscription(text, message, subscription.as_bytes());
            self.emit(*stream, AnswerPart::Event(Bytes::from(stamped)));
        }
        !listeners.is_empty()
    }

    /// The child asks something of a stateless request's client (`needed`:
    /// the capability that takes it, if sluice routes it), which this era
    /// cannot carry: when the client did not declare the capability, its
    /// call fails as the era says (-32021, 400) and is cancelled on the
    /// child; either way the child's request is refused.
    pub(super) fn refuse_for_stateless(
        &mut self,
        session: &str,
        call: Option<StreamId>,
        id: &[u8],
        needed: Option<&str>,
    ) {
        let declared = |s: &Session| match (&s.capabilities, needed) {
            (Some(caps), Some(cap)) => caps.contains_key(cap),
            _ => true,
        };
        let undeclared = !self.sessions.get(session).is_some_and(declared);
        let in_flight = call.and_then(|stream| match self.clients.get(&stream)?.kind.clone() {
            ClientKind::InFlight {
                child_id,
                client_id,
            } => Some((stream, child_id, client_id)),
            _ => None,
        });
        let why = if undeclared {
            format!(
                "sluice: the server needs the client's {} capability, which the request did not declare",
                needed.unwrap_or_default()
            )
        } else {
            "sluice: the caller is a 2026-07-28 client, which takes no requests from a server"
                .into()
        };
        let msg = jsonrpc::error_message(Some(id), codes::METHOD_NOT_FOUND, &why, None);
        self.send_to_child(&msg);
        if let (true, Some((stream, child_id, client_id))) = (undeclared, in_flight) {
            if self.ids.forget(child_id).is_some() {
                self.cancel_on_child(child_id, "the client lacks a capability the call needs");
            }
            let code = codes::MISSING_CLIENT_CAPABILITY;
            let msg = jsonrpc::error_message(Some(client_id.as_bytes()), code, &why, None);
            if let Some(c) = self.clients.get_mut(&stream) {
                c.kind = ClientKind::Waiting;
            }
            self.deliver_as(stream, msg, true, modern::status_of(code));
        }
    }

    /// The bridge ends: a listener hears that its subscription is over
    /// (the listen request's result), and its stream ends.
    pub(super) fn end_listen(&mut self, stream: StreamId, subscription: &RawId) {
        let mut result = br#"{"_meta":"#.to_vec();
        result.extend_from_slice(&subscription_meta(subscription));
        result.extend_from_slice(br#","resultType":"complete"}"#);
        let msg = jsonrpc::result_message(subscription.as_bytes(), &result);
        self.emit(stream, AnswerPart::Event(Bytes::from(msg)));
        self.finish(stream, AnswerPart::End);
    }
}

/// `{"io.modelcontextprotocol/subscriptionId":<id>}`.
fn subscription_meta(subscription: &RawId) -> Vec<u8> {
    let mut meta = format!("{{\"{SUBSCRIPTION_ID_KEY}\":").into_bytes();
    meta.extend_from_slice(subscription.as_bytes());
    meta.push(b'}');
    meta
}

fn no_initialize() -> StdioError {
    StdioError::InitRefused("no initialize result".into())
}
