//! MCP Streamable HTTP at `/mcp`: POST for messages, GET for the
//! server-to-client stream, DELETE to end a session. The legacy HTTP+SSE
//! face of the same tools (`/sse`, `/messages`) is `super::legacy`.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_channel::{Receiver, Sender};
use serde_json::{Map, Value, json};

use crate::rt::Timer;

use super::tools::{self, Call};
use crate::httpd::{Conn, Request, Response};

/// Protocol versions this server speaks, oldest first.
pub(super) const VERSIONS: &[&str] = &["2025-03-26", "2025-06-18", "2025-11-25"];
/// What `initialize` answers when the client asks for a version not in
/// [`VERSIONS`].
const LATEST: &str = "2025-11-25";
/// Time between two countdown steps.
pub(super) const STEP: Duration = Duration::from_millis(200);

/// Logging levels (RFC 5424 order), for `logging/setLevel`.
const LEVELS: &[&str] = &[
    "debug",
    "info",
    "notice",
    "warning",
    "error",
    "critical",
    "alert",
    "emergency",
];
/// The level of the message sent when a tool is called.
const INFO: usize = 1;

/// Shared by every connection of one server (they may run on several
/// workers). Never locked across an `.await`.
pub(super) type Shared = Arc<Mutex<State>>;

pub(super) fn lock(state: &Shared) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

/// All sessions.
pub(super) struct State {
    sessions: HashMap<String, Session>,
    /// Legacy HTTP+SSE sessions, each by its stream's sender.
    legacy: HashMap<String, Sender<String>>,
    counter: u64,
    seed: RandomState,
}

struct Session {
    version: &'static str,
    /// Lowest level of `notifications/message` the client wants.
    min_level: usize,
    /// The open GET stream, if any.
    listener: Option<Sender<String>>,
}

impl State {
    pub fn new() -> Self {
        State {
            sessions: HashMap::new(),
            legacy: HashMap::new(),
            counter: 0,
            seed: RandomState::new(),
        }
    }

    /// A fresh id: a per-process random hash of a counter and the time, so
    /// ids are unique and not guessable from one another; plus the counter,
    /// for reading logs.
    fn new_session_id(&mut self) -> String {
        self.counter += 1;
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let hash = self.seed.hash_one((self.counter, nanos));
        format!("demo-{hash:016x}-{}", self.counter)
    }

    /// A new legacy session: its id and the receiving end of its stream.
    pub(super) fn open_legacy(&mut self) -> (String, Receiver<String>) {
        let id = self.new_session_id();
        let (tx, rx) = async_channel::unbounded();
        self.legacy.insert(id.clone(), tx);
        (id, rx)
    }

    /// The stream of legacy session `id`, while it is open.
    pub(super) fn legacy_session(&self, id: &str) -> Option<&Sender<String>> {
        self.legacy.get(id)
    }

    pub(super) fn close_legacy(&mut self, id: &str) {
        self.legacy.remove(id);
    }

    /// Send a logging notification on the session's GET stream, if one is
    /// open and the level is wanted.
    fn log(&mut self, session: &str, level: usize, data: Value) {
        let Some(s) = self.sessions.get_mut(session) else {
            return;
        };
        if level < s.min_level {
            return;
        }
        if let Some(tx) = &s.listener {
            let message = json!({
                "jsonrpc": "2.0",
                "method": "notifications/message",
                "params": { "level": LEVELS[level], "logger": "sluice-demo", "data": data },
            });
            if tx.try_send(message.to_string()).is_err() {
                s.listener = None;
            }
        }
    }
}

/// Whether the connection may carry another request.
pub(super) enum Next {
    KeepAlive,
    Close,
}

/// Answer one request on `conn`.
pub(super) async fn handle(
    state: &Shared,
    conn: &Conn,
    req: Request,
    close: bool,
) -> io::Result<Next> {
    let done = if close { Next::Close } else { Next::KeepAlive };
    if !matches!(req.path(), "/mcp" | "/sse" | "/messages") {
        let response = Response::text(
            404,
            "not found: the MCP endpoint is /mcp (legacy HTTP+SSE: /sse)",
        );
        conn.send(response, close).await?;
        return Ok(done);
    }
    if let Some(origin) = req.header("origin")
        && !local_origin(origin)
    {
        // DNS rebinding: a page from elsewhere must not drive a local server.
        conn.send(Response::text(403, "forbidden origin"), close)
            .await?;
        return Ok(done);
    }
    if matches!(req.path(), "/sse" | "/messages") {
        return match super::legacy::handle(state, conn, &req).await? {
            Some(response) => {
                conn.send(response, close).await?;
                Ok(done)
            }
            None => Ok(Next::Close),
        };
    }
    let response = match req.head.method.as_str() {
        "POST" => match post(state, conn, &req).await? {
            Some(response) => response,
            // Streamed (HTTP/1.0 streams end with the connection, and
            // HTTP/1.0 always has `close` set).
            None => return Ok(done),
        },
        "GET" => match get(state, conn, &req).await? {
            Some(response) => response,
            None => return Ok(Next::Close),
        },
        "DELETE" => delete(state, &req),
        _ => Response::text(405, "method not allowed").with("Allow", "GET, POST, DELETE"),
    };
    conn.send(response, close).await?;
    Ok(done)
}

/// POST: one JSON-RPC message (or, in 2025-03-26, a batch). `None` when the
/// answer was streamed.
async fn post(state: &Shared, conn: &Conn, req: &Request) -> io::Result<Option<Response>> {
    let accept = req.header("accept").unwrap_or("");
    if !(accepts(accept, "application/json") && accepts(accept, "text/event-stream")) {
        return Ok(Some(http_error(
            406,
            -32000,
            "Not Acceptable: Accept must list application/json and text/event-stream",
        )));
    }
    let json_type = req
        .header("content-type")
        .and_then(|ct| ct.split(';').next())
        .is_some_and(|ct| ct.trim().eq_ignore_ascii_case("application/json"));
    if !json_type {
        return Ok(Some(http_error(
            415,
            -32000,
            "Unsupported Media Type: Content-Type must be application/json",
        )));
    }
    if let Some(v) = req.header("mcp-protocol-version")
        && !VERSIONS.contains(&v)
    {
        return Ok(Some(http_error(
            400,
            -32000,
            &format!("Bad Request: unsupported MCP-Protocol-Version {v}"),
        )));
    }
    let body: Value = match serde_json::from_slice(&req.body) {
        Ok(v) => v,
        Err(e) => {
            return Ok(Some(http_error(400, -32700, &format!("Parse error: {e}"))));
        }
    };

    // initialize is the one request that comes without a session.
    if let Value::Object(m) = &body
        && m.get("method").and_then(Value::as_str) == Some("initialize")
    {
        return Ok(Some(initialize(state, m)));
    }
    let session = match req.header("mcp-session-id") {
        None if req.head.header("mcp-session-id").is_none() => {
            return Ok(Some(http_error(
                400,
                -32000,
                "Bad Request: missing Mcp-Session-Id (initialize first)",
            )));
        }
        Some(id) if lock(state).sessions.contains_key(id) => id.to_owned(),
        _ => return Ok(Some(http_error(404, -32001, "Session not found"))),
    };

    match body {
        Value::Array(batch) => Ok(Some(post_batch(state, &session, batch).await)),
        message => post_one(state, conn, &session, message).await,
    }
}

async fn post_one(
    state: &Shared,
    conn: &Conn,
    session: &str,
    message: Value,
) -> io::Result<Option<Response>> {
    let (id, method, params) = match classify(message) {
        Kind::Request { id, method, params } => (id, method, params),
        Kind::Notification | Kind::Response => return Ok(Some(Response::empty(202))),
        Kind::Invalid(id) => return Ok(Some(invalid_request(id))),
    };
    match dispatch(state, session, &method, &params) {
        Outcome::Result(result) => Ok(Some(Response::json(200, &response(&id, result)))),
        Outcome::Error(code, message) => Ok(Some(Response::json(200, &error(&id, code, &message)))),
        Outcome::Countdown(n) => {
            let token = params
                .get("_meta")
                .and_then(|m| m.get("progressToken"))
                .filter(|t| t.is_string() || t.is_number());
            let Some(token) = token else {
                Timer::after(STEP * n as u32).await;
                let result = response(&id, tools::countdown_result(n));
                return Ok(Some(Response::json(200, &result)));
            };
            let sse = conn.start_sse(Vec::new()).await?;
            for i in 1..=n {
                Timer::after(STEP).await;
                sse.event(&progress(token, i, n).to_string()).await?;
            }
            let result = response(&id, tools::countdown_result(n));
            sse.event(&result.to_string()).await?;
            sse.end().await?;
            Ok(None)
        }
    }
}

/// A 2025-03-26 batch, answered as one JSON array (no streaming: a
/// countdown in a batch just waits).
async fn post_batch(state: &Shared, session: &str, batch: Vec<Value>) -> Response {
    let version = lock(state).sessions.get(session).map(|s| s.version);
    if version != Some("2025-03-26") {
        return invalid_request_msg("batches exist only in protocol version 2025-03-26");
    }
    if batch.is_empty() {
        return invalid_request_msg("empty batch");
    }
    let mut answers = Vec::new();
    for message in batch {
        match classify(message) {
            Kind::Request { id, method, params } if method != "initialize" => {
                answers.push(match dispatch(state, session, &method, &params) {
                    Outcome::Result(result) => response(&id, result),
                    Outcome::Error(code, message) => error(&id, code, &message),
                    Outcome::Countdown(n) => {
                        Timer::after(STEP * n as u32).await;
                        response(&id, tools::countdown_result(n))
                    }
                });
            }
            Kind::Request { id, .. } => {
                answers.push(error(&id, -32600, "initialize cannot be batched"));
            }
            Kind::Notification | Kind::Response => {}
            Kind::Invalid(id) => answers.push(error(&id, -32600, "Invalid Request")),
        }
    }
    if answers.is_empty() {
        Response::empty(202)
    } else {
        Response::json(200, &Value::Array(answers))
    }
}

fn initialize(state: &Shared, message: &Map<String, Value>) -> Response {
    let Some(id) = message.get("id").filter(|id| valid_id(id)).cloned() else {
        return invalid_request(message.get("id").cloned().unwrap_or(Value::Null));
    };
    let asked = message
        .get("params")
        .and_then(|p| p.get("protocolVersion"))
        .and_then(Value::as_str);
    let version = negotiate(asked);
    let mut state = lock(state);
    let session = state.new_session_id();
    state.sessions.insert(
        session.clone(),
        Session {
            version,
            min_level: 0,
            listener: None,
        },
    );
    Response::json(200, &response(&id, initialize_result(version))).with("Mcp-Session-Id", session)
}

/// Opens session `id` at `version` with its server-to-client channel
/// already attached (the stdio face has one stream: stdout).
pub(super) fn open_session(state: &Shared, id: &str, version: &'static str) -> Receiver<String> {
    let (tx, rx) = async_channel::unbounded();
    lock(state).sessions.insert(
        id.to_owned(),
        Session {
            version,
            min_level: 0,
            listener: Some(tx),
        },
    );
    rx
}

/// The version a client asking for `asked` is answered with.
pub(super) fn negotiate(asked: Option<&str>) -> &'static str {
    VERSIONS
        .iter()
        .copied()
        .find(|v| Some(*v) == asked)
        .unwrap_or(LATEST)
}

/// The result of `initialize` at `version`.
pub(super) fn initialize_result(version: &str) -> Value {
    json!({
        "protocolVersion": version,
        "capabilities": { "tools": { "listChanged": false }, "logging": {} },
        "serverInfo": { "name": "sluice-demo", "version": env!("CARGO_PKG_VERSION") },
        "instructions": "A demo server for trying sluice: tools echo, add, countdown, fail and crash.",
    })
}

/// A countdown's progress notification: step `i` of `n`.
pub(super) fn progress(token: &Value, i: u64, n: u64) -> Value {
    json!({
        "jsonrpc": "2.0",
        "method": "notifications/progress",
        "params": {
            "progressToken": token,
            "progress": i,
            "total": n,
            "message": format!("step {i} of {n}"),
        },
    })
}

pub(super) enum Outcome {
    Result(Value),
    Error(i64, String),
    Countdown(u64),
}

/// Answer a request (other than initialize) in an existing session.
pub(super) fn dispatch(
    state: &Shared,
    session: &str,
    method: &str,
    params: &Map<String, Value>,
) -> Outcome {
    match method {
        "ping" => Outcome::Result(json!({})),
        "tools/list" => Outcome::Result(json!({ "tools": tools::list() })),
        "tools/call" => {
            let Some(name) = params.get("name").and_then(Value::as_str) else {
                return Outcome::Error(-32602, "tools/call needs a string `name`".to_owned());
            };
            let empty = Map::new();
            let args = match params.get("arguments") {
                None | Some(Value::Null) => &empty,
                Some(Value::Object(args)) => args,
                Some(_) => {
                    return Outcome::Error(-32602, "`arguments` must be an object".to_owned());
                }
            };
            let call = tools::call(name, args);
            if !matches!(&call, Call::Error(-32602, _)) {
                lock(state).log(session, INFO, json!(format!("tool {name} called")));
            }
            match call {
                Call::Done(result) => Outcome::Result(result),
                Call::Countdown(n) => Outcome::Countdown(n),
                Call::Error(code, message) => Outcome::Error(code, message),
            }
        }
        "logging/setLevel" => {
            let level = params.get("level").and_then(Value::as_str);
            match LEVELS.iter().position(|l| Some(*l) == level) {
                Some(level) => {
                    if let Some(s) = lock(state).sessions.get_mut(session) {
                        s.min_level = level;
                    }
                    Outcome::Result(json!({}))
                }
                None => Outcome::Error(-32602, "unknown logging level".to_owned()),
            }
        }
        _ => Outcome::Error(-32601, format!("Method not found: {method}")),
    }
}

/// GET: the session's server-to-client stream. `None` once it has been
/// streamed (the connection then closes).
async fn get(state: &Shared, conn: &Conn, req: &Request) -> io::Result<Option<Response>> {
    if !accepts(req.header("accept").unwrap_or(""), "text/event-stream") {
        return Ok(Some(http_error(
            406,
            -32000,
            "Not Acceptable: Accept must list text/event-stream",
        )));
    }
    let rx: Receiver<String> = {
        let mut state = lock(state);
        let Some(session) = session_of(&mut state, req) else {
            return Ok(Some(missing_or_unknown(req)));
        };
        if session.listener.as_ref().is_some_and(|tx| !tx.is_closed()) {
            return Ok(Some(http_error(
                409,
                -32000,
                "Conflict: this session already has a GET stream",
            )));
        }
        let (tx, rx) = async_channel::unbounded();
        session.listener = Some(tx);
        rx
    };
    let sse = conn.start_sse(Vec::new()).await?;
    // Until the session is deleted or the client leaves.
    sse.relay(&rx).await?;
    sse.end().await?;
    Ok(None)
}

/// DELETE: end the session.
fn delete(state: &Shared, req: &Request) -> Response {
    let mut state = lock(state);
    if session_of(&mut state, req).is_none() {
        return missing_or_unknown(req);
    }
    if let Some(id) = req.header("mcp-session-id") {
        // Dropping the session drops its GET stream's sender, ending it.
        state.sessions.remove(id);
    }
    Response::empty(200)
}

fn session_of<'s>(state: &'s mut State, req: &Request) -> Option<&'s mut Session> {
    state.sessions.get_mut(req.header("mcp-session-id")?)
}

fn missing_or_unknown(req: &Request) -> Response {
    if req.head.header("mcp-session-id").is_none() {
        http_error(400, -32000, "Bad Request: missing Mcp-Session-Id")
    } else {
        http_error(404, -32001, "Session not found")
    }
}

pub(super) enum Kind {
    Request {
        id: Value,
        method: String,
        params: Map<String, Value>,
    },
    Notification,
    Response,
    /// Not a JSON-RPC message; the id, when one could be read.
    Invalid(Value),
}

pub(super) fn classify(message: Value) -> Kind {
    let Value::Object(mut m) = message else {
        return Kind::Invalid(Value::Null);
    };
    let id = m.remove("id");
    if m.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Kind::Invalid(id.filter(valid_id).unwrap_or(Value::Null));
    }
    let params = match m.remove("params") {
        None => Map::new(),
        Some(Value::Object(p)) => p,
        Some(_) => return Kind::Invalid(id.filter(valid_id).unwrap_or(Value::Null)),
    };
    match (m.remove("method"), id) {
        (Some(Value::String(method)), Some(id)) if valid_id(&id) => {
            Kind::Request { id, method, params }
        }
        (Some(Value::String(_)), None) => Kind::Notification,
        (None, Some(_)) if m.contains_key("result") ^ m.contains_key("error") => Kind::Response,
        (_, id) => Kind::Invalid(id.filter(valid_id).unwrap_or(Value::Null)),
    }
}

/// MCP ids are strings or integers, never null.
fn valid_id(id: &Value) -> bool {
    id.is_string() || id.is_i64() || id.is_u64()
}

pub(super) fn response(id: &Value, result: Value) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "result": result })
}

pub(super) fn error(id: &Value, code: i64, message: &str) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "error": { "code": code, "message": message } })
}

fn invalid_request(id: Value) -> Response {
    Response::json(400, &error(&id, -32600, "Invalid Request"))
}

fn invalid_request_msg(message: &str) -> Response {
    Response::json(400, &error(&Value::Null, -32600, message))
}

/// An HTTP error with a JSON-RPC error body, as the SDK servers send.
fn http_error(status: u16, code: i64, message: &str) -> Response {
    Response::json(status, &error(&Value::Null, code, message))
}

/// Whether an Accept value admits `media` (wildcards count).
fn accepts(accept: &str, media: &str) -> bool {
    let (kind, _) = media.split_once('/').unwrap_or((media, ""));
    accept.split(',').any(|range| {
        let range = range.split(';').next().unwrap_or("").trim();
        range.eq_ignore_ascii_case(media)
            || range == "*/*"
            || range
                .strip_suffix("/*")
                .is_some_and(|k| k.eq_ignore_ascii_case(kind))
    })
}

/// Whether an Origin is this machine: `localhost`, `127.0.0.1` or `[::1]`,
/// any scheme and port.
fn local_origin(origin: &str) -> bool {
    let Some((_, rest)) = origin.split_once("://") else {
        return false;
    };
    let host = if rest.starts_with('[') {
        rest.split_once(']')
            .map_or(rest, |(h, _)| h)
            .trim_start_matches('[')
    } else {
        rest.split(':').next().unwrap_or(rest)
    };
    matches!(host, "localhost" | "127.0.0.1" | "::1")
}
