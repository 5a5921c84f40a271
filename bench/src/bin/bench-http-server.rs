//! A minimal, fast MCP server over Streamable HTTP, so that a gateway's
//! own cost dominates what `bench/federation` measures through it — the
//! HTTP twin of `bench-stdio-server`.
//!
//! ```text
//! bench-http-server --listen 127.0.0.1:0 [--tools 20] [--threads 1]
//! ```
//!
//! HTTP/1.1 keep-alive on any path, smol, `--threads` executor threads.
//! Every answer is `application/json` (no SSE, no GET stream):
//!
//! | request | answer |
//! |---|---|
//! | `POST` `initialize` | the client's `protocolVersion` when it knows it (2024-11-05 … 2025-11-25), else 2025-06-18; capabilities `tools`; a new `Mcp-Session-Id` |
//! | `POST` a notification or a response | `202 Accepted` |
//! | `POST` `ping` | `{}` |
//! | `POST` `tools/list` | `echo` and `--tools` − 1 more (`tool_01` …), each with a description and a schema: a list of about 250 bytes a tool |
//! | `POST` `tools/call` `echo` `{message}` | `{"content":[{"type":"text","text":"Echo: <message>"}]}` |
//! | `POST` `tools/call` anything else | `{"content":[{"type":"text","text":"<name>"}]}` |
//! | `POST` any other request | JSON-RPC error -32601 |
//! | `DELETE` | `200`, the session forgotten |
//! | `GET` `…/stats` | `{"requests": {METHOD: count, …}, "sessions": live sessions}`: what a gateway in front really asked (does it fan out every `tools/list`, or answer from a cache? a member session per client session, or one for all?) |
//! | `GET` anything else | `405` (no server-initiated stream) |
//!
//! A request after `initialize` must carry a session id this server gave
//! and has not forgotten (else `404`, as the spec says, so a client opens
//! a new session); a request without one is `400`. Prints
//! `listening on ADDR` once bound.

use std::collections::{BTreeMap, HashSet};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use serde_json::{Value, json};
use sluice_bench::Args;
use smol::{Async, Executor};

const VERSIONS: &[&str] = &["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"];

struct Server {
    /// The `tools/list` result, built once.
    tools: Value,
    next: AtomicU64,
    sessions: Mutex<HashSet<String>>,
    /// Requests seen, by JSON-RPC method (`GET`, `DELETE` by HTTP method).
    counts: Mutex<BTreeMap<String, u64>>,
}

impl Server {
    fn sessions(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn count(&self, what: &str) {
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        *c.entry(what.to_owned()).or_default() += 1;
    }

    fn stats(&self) -> Vec<u8> {
        let counts = self
            .counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let live = self.sessions().len();
        json!({"requests": counts, "sessions": live})
            .to_string()
            .into_bytes()
    }
}

fn tools(n: usize) -> Value {
    let mut list = vec![json!({
        "name": "echo", "description": "Echoes back the input string",
        "inputSchema": {"type": "object", "properties": {"message": {"type": "string"}}, "required": ["message"]}
    })];
    for i in 1..n {
        list.push(json!({
            "name": format!("tool_{i:02}"),
            "description": format!("Tool number {i}: reads a file, searches a repository or calls an API."),
            "inputSchema": {"type": "object", "properties": {"path": {"type": "string"}, "limit": {"type": "integer", "minimum": 1}}, "required": ["path"]}
        }));
    }
    json!({ "tools": list })
}

/// One HTTP response: status line, optional session header, JSON body.
fn response(status: &str, session: Option<&str>, body: &[u8]) -> Vec<u8> {
    let mut v = format!("HTTP/1.1 {status}\r\n").into_bytes();
    if let Some(s) = session {
        v.extend_from_slice(format!("Mcp-Session-Id: {s}\r\n").as_bytes());
    }
    if body.is_empty() {
        v.extend_from_slice(b"Content-Length: 0\r\n\r\n");
    } else {
        v.extend_from_slice(
            format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        );
        v.extend_from_slice(body);
    }
    v
}

/// The answer to one request: method, path, the client's session id, body.
fn answer(
    server: &Server,
    method: &str,
    path: &str,
    session: Option<&str>,
    body: &[u8],
) -> Vec<u8> {
    if method != "POST" {
        server.count(method);
    }
    match method {
        "POST" => {}
        "GET" if path.ends_with("/stats") => return response("200 OK", None, &server.stats()),
        "DELETE" => {
            return match session {
                Some(s) if server.sessions().remove(s) => response("200 OK", None, b""),
                Some(_) => response("404 Not Found", None, b""),
                None => response("400 Bad Request", None, b""),
            };
        }
        _ => return response("405 Method Not Allowed", None, b""),
    }
    let Ok(msg) = serde_json::from_slice::<Value>(body) else {
        let e = br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"parse error"}}"#;
        return response("400 Bad Request", None, e);
    };
    let (Some(id), Some(method)) = (msg.get("id"), msg.get("method").and_then(Value::as_str))
    else {
        return response("202 Accepted", None, b""); // a notification or a response
    };
    server.count(method);
    let params = msg.get("params").unwrap_or(&Value::Null);
    let mut new_session = None;
    if method == "initialize" {
        let s = format!("s{:x}", server.next.fetch_add(1, Ordering::Relaxed));
        server.sessions().insert(s.clone());
        new_session = Some(s);
    } else {
        match session {
            None => return response("400 Bad Request", None, b""),
            Some(s) if !server.sessions().contains(s) => {
                return response("404 Not Found", None, b"");
            }
            Some(_) => {}
        }
    }
    let result = match method {
        "initialize" => {
            let asked = params.get("protocolVersion").and_then(Value::as_str);
            let version = asked
                .filter(|v| VERSIONS.contains(v))
                .unwrap_or("2025-06-18");
            json!({
                "protocolVersion": version,
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "bench-http-server", "version": "0"}
            })
        }
        "ping" => json!({}),
        "tools/list" => server.tools.clone(),
        "tools/call" => {
            let args = params.get("arguments").unwrap_or(&Value::Null);
            let text = match params.get("name").and_then(Value::as_str) {
                Some("echo") => format!(
                    "Echo: {}",
                    args.get("message").and_then(Value::as_str).unwrap_or("")
                ),
                Some(name) => name.to_owned(),
                None => String::new(),
            };
            json!({"content": [{"type": "text", "text": text}]})
        }
        _ => {
            let e = json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32601, "message": "method not found"}});
            return response("200 OK", None, e.to_string().as_bytes());
        }
    };
    let body = json!({"jsonrpc": "2.0", "id": id, "result": result}).to_string();
    response("200 OK", new_session.as_deref(), body.as_bytes())
}

async fn serve(mut s: Async<TcpStream>, server: Arc<Server>) -> std::io::Result<()> {
    s.get_ref().set_nodelay(true)?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut end = 0;
    loop {
        // One request: head, then a Content-Length body.
        let (method, path, session, head, total) = loop {
            if end > 0 {
                let mut headers = [httparse::EMPTY_HEADER; 32];
                let mut req = httparse::Request::new(&mut headers);
                if let httparse::Status::Complete(len) =
                    req.parse(&buf[..end]).map_err(std::io::Error::other)?
                {
                    let header = |name: &str| {
                        req.headers
                            .iter()
                            .find(|h| h.name.eq_ignore_ascii_case(name))
                            .and_then(|h| std::str::from_utf8(h.value).ok())
                            .map(|v| v.trim().to_owned())
                    };
                    let body: usize = header("content-length")
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0);
                    let session = header("mcp-session-id");
                    let method = req.method.unwrap_or("").to_owned();
                    let path = req.path.unwrap_or("/").to_owned();
                    if len + body > buf.len() {
                        buf.resize(len + body, 0);
                    }
                    break (method, path, session, len, len + body);
                }
            }
            if end == buf.len() {
                return Err(std::io::Error::other("request head too large"));
            }
            let n = s.read(&mut buf[end..]).await?;
            if n == 0 {
                return Ok(());
            }
            end += n;
        };
        while end < total {
            let n = s.read(&mut buf[end..total]).await?;
            if n == 0 {
                return Ok(());
            }
            end += n;
        }
        let out = answer(
            &server,
            &method,
            &path,
            session.as_deref(),
            &buf[head..total],
        );
        buf.copy_within(total..end, 0);
        end -= total;
        s.write_all(&out).await?;
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::from_env();
    let listen = args.text("--listen", "127.0.0.1:0");
    let threads: usize = args.get("--threads", 1);
    let server = Arc::new(Server {
        tools: tools(args.get("--tools", 20usize).max(1)),
        next: AtomicU64::new(1),
        sessions: Mutex::new(HashSet::new()),
        counts: Mutex::new(BTreeMap::new()),
    });
    let listener = Async::<TcpListener>::bind(listen.parse::<std::net::SocketAddr>()?)?;
    println!("listening on {}", listener.get_ref().local_addr()?);
    let ex: Arc<Executor<'static>> = Arc::new(Executor::new());
    for _ in 1..threads {
        let ex = ex.clone();
        std::thread::spawn(move || smol::block_on(ex.run(futures_lite::future::pending::<()>())));
    }
    smol::block_on(ex.run(async {
        loop {
            let (s, _) = listener.accept().await?;
            let server = server.clone();
            ex.spawn(async move {
                let _ = serve(s, server).await;
            })
            .detach();
        }
    }))
}
