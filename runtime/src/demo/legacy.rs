//! The same tools on the legacy HTTP+SSE transport (MCP 2024-11-05): `GET
//! /sse` opens a session's stream, whose first event names the endpoint
//! (`/messages?sessionId=…`); each message is POSTed there, answered `202`,
//! and its answer arrives on the stream. `sluice demo` serves it at
//! `/legacy` with the default transport, `auto`, so the proxy finds out by
//! itself that it must bridge.

use std::io;

use serde_json::{Value, json};

use crate::rt::Timer;

use super::mcp::{self, Kind, Outcome, Shared, lock};
use super::tools;
use crate::httpd::{Conn, Request, Response};

/// The protocol version of this transport.
const VERSION: &str = "2024-11-05";

/// `GET /sse`, `POST /messages?sessionId=…`. `None` once a stream was the
/// answer (the connection then closes).
pub(super) async fn handle(
    state: &Shared,
    conn: &Conn,
    req: &Request,
) -> io::Result<Option<Response>> {
    Ok(Some(match (req.head.method.as_str(), req.path()) {
        ("GET", "/sse") => {
            stream(state, conn).await?;
            return Ok(None);
        }
        ("POST", "/messages") => post(state, req),
        // What a 2024-11-05 server's framework answers a POST to its SSE URL:
        // not a JSON-RPC error, so a client (or sluice's `auto`) tries the GET.
        (_, "/sse") => Response::text(405, "Method Not Allowed").with("Allow", "GET"),
        _ => Response::text(405, "Method Not Allowed").with("Allow", "POST"),
    }))
}

/// One session: its stream, open until the client leaves.
async fn stream(state: &Shared, conn: &Conn) -> io::Result<()> {
    let (id, rx) = lock(state).open_legacy();
    let sse = conn.start_sse(Vec::new()).await?;
    sse.named("endpoint", &format!("/messages?sessionId={id}"))
        .await?;
    sse.relay(&rx).await?;
    lock(state).close_legacy(&id);
    sse.end().await
}

/// A message for a session: `202` at once, its answer (if any) on the
/// session's stream.
fn post(state: &Shared, req: &Request) -> Response {
    let id = req
        .head
        .target
        .split_once("sessionId=")
        .map(|(_, id)| id.split('&').next().unwrap_or(id).to_owned());
    let Some(id) = id.filter(|id| lock(state).legacy_session(id).is_some()) else {
        return Response::text(404, "Could not find session");
    };
    let Ok(message) = serde_json::from_slice::<Value>(&req.body) else {
        return Response::text(400, "Invalid message");
    };
    let send = |answer: Value| {
        if let Some(tx) = lock(state).legacy_session(&id) {
            let _ = tx.try_send(answer.to_string());
        }
    };
    match mcp::classify(message) {
        Kind::Request {
            id: rid, method, ..
        } if method == "initialize" => {
            send(mcp::response(&rid, initialize_result()));
        }
        Kind::Request {
            id: rid,
            method,
            params,
        } => match mcp::dispatch(state, &id, &method, &params) {
            Outcome::Result(result) => send(mcp::response(&rid, result)),
            Outcome::Error(code, message) => send(mcp::error(&rid, code, &message)),
            Outcome::Countdown(n) => {
                let token = params
                    .get("_meta")
                    .and_then(|m| m.get("progressToken"))
                    .cloned();
                // The answer follows on the stream while the POST is done.
                let state = state.clone();
                let session = id.clone();
                crate::rt::spawn_here(async move {
                    for i in 1..=n {
                        Timer::after(mcp::STEP).await;
                        if let Some(token) = &token {
                            let progress = json!({
                                "jsonrpc": "2.0",
                                "method": "notifications/progress",
                                "params": { "progressToken": token, "progress": i, "total": n },
                            });
                            if let Some(tx) = lock(&state).legacy_session(&session) {
                                let _ = tx.try_send(progress.to_string());
                            }
                        }
                    }
                    let result = mcp::response(&rid, tools::countdown_result(n));
                    if let Some(tx) = lock(&state).legacy_session(&session) {
                        let _ = tx.try_send(result.to_string());
                    }
                })
                .detach();
            }
        },
        Kind::Invalid(rid) => send(mcp::error(&rid, -32600, "Invalid Request")),
        Kind::Notification | Kind::Response => {}
    }
    Response::text(202, "Accepted")
}

fn initialize_result() -> Value {
    json!({
        "protocolVersion": VERSION,
        "capabilities": { "tools": { "listChanged": false } },
        "serverInfo": { "name": "sluice-demo-legacy", "version": env!("CARGO_PKG_VERSION") },
        "instructions": "The sluice demo server on the legacy HTTP+SSE transport: tools echo, add, countdown, fail and crash.",
    })
}
