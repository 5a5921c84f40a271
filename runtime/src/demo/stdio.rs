//! The same tools over the MCP stdio transport: newline-delimited JSON-RPC
//! on stdin and stdout, nothing else on stdout. `sluice demo --stdio` runs
//! it; `sluice demo` starts that as the child of its `/stdio` route, so a
//! fresh machine shows a stdio server behind sluice with nothing installed.
//!
//! It is a separate process, not the proxy: plain blocking I/O, a thread
//! per countdown so a slow call does not hold the others.

use std::io::{self, BufRead, Write};
use std::sync::{Arc, Mutex};
use std::thread;

use serde_json::Value;

use super::mcp::{self, Kind, Outcome};
use super::tools;

/// The one session of a stdio server (for the demo's logging state).
const SESSION: &str = "stdio";

/// Serves stdin until it closes.
pub fn serve() -> io::Result<()> {
    let state: mcp::Shared = Arc::new(Mutex::new(mcp::State::new()));
    let out = Arc::new(Mutex::new(io::stdout()));
    let stdin = io::stdin();
    for line in stdin.lock().lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let message = match serde_json::from_str::<Value>(&line) {
            Ok(m) => m,
            Err(e) => {
                let err = mcp::error(&Value::Null, -32700, &format!("Parse error: {e}"));
                send(&out, &err)?;
                continue;
            }
        };
        let (id, method, params) = match mcp::classify(message) {
            Kind::Request { id, method, params } => (id, method, params),
            Kind::Notification | Kind::Response => continue,
            Kind::Invalid(id) => {
                send(&out, &mcp::error(&id, -32600, "Invalid Request"))?;
                continue;
            }
        };
        if method == "initialize" {
            let asked = params.get("protocolVersion").and_then(Value::as_str);
            let version = mcp::negotiate(asked);
            send(&out, &mcp::response(&id, mcp::initialize_result(version)))?;
            // The session's log messages go out on stdout too.
            let logs = mcp::open_session(&state, SESSION, version);
            let out = out.clone();
            thread::spawn(move || {
                while let Ok(message) = logs.recv_blocking() {
                    let mut line = message;
                    line.push('\n');
                    let mut out = out.lock().unwrap_or_else(|e| e.into_inner());
                    if out
                        .write_all(line.as_bytes())
                        .and_then(|()| out.flush())
                        .is_err()
                    {
                        return;
                    }
                }
            });
            continue;
        }
        match mcp::dispatch(&state, SESSION, &method, &params) {
            Outcome::Result(result) => send(&out, &mcp::response(&id, result))?,
            Outcome::Error(code, message) => send(&out, &mcp::error(&id, code, &message))?,
            Outcome::Countdown(n) => {
                let token = params
                    .get("_meta")
                    .and_then(|m| m.get("progressToken"))
                    .filter(|t| t.is_string() || t.is_number())
                    .cloned();
                let out = out.clone();
                thread::spawn(move || {
                    for i in 1..=n {
                        thread::sleep(mcp::STEP);
                        if let Some(token) = &token {
                            let _ = send(&out, &mcp::progress(token, i, n));
                        }
                    }
                    let _ = send(&out, &mcp::response(&id, tools::countdown_result(n)));
                });
            }
        }
    }
    Ok(())
}

/// One message, one line.
fn send(out: &Mutex<io::Stdout>, message: &Value) -> io::Result<()> {
    let mut line = message.to_string();
    line.push('\n');
    let mut out = out.lock().unwrap_or_else(|e| e.into_inner());
    out.write_all(line.as_bytes())?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_result_of_initialize_is_the_http_faces() {
        let r = mcp::initialize_result(mcp::negotiate(Some("2025-03-26")));
        assert_eq!(r["protocolVersion"], "2025-03-26");
        assert_eq!(r["serverInfo"]["name"], json!("sluice-demo"));
    }
}
