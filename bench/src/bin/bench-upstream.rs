//! The upstream stub: an MCP-shaped HTTP/1.1 server built to stay out of the
//! way (prebuilt answers, one write per answer, no allocation per request).
//!
//! - `POST` anything else → a JSON-RPC result of `--json-bytes` (Content-Length).
//! - `POST /mcp/big` → a `tools/list` result of `--big-bytes`.
//! - `POST /mcp/sse?n=N&gap_us=G&pad=P` → an SSE answer (chunked): N progress
//!   notifications stamped with their send time (`now_ns`), G µs apart
//!   (G = 0: a burst, one write per event), then the JSON-RPC response.
//! - `GET /mcp/idle` → an SSE stream that sends `: ready` and then nothing,
//!   until the client goes away.
//!
//! The same server also speaks the legacy HTTP+SSE transport (MCP
//! 2024-11-05), for measuring sluice's bridge (`transport = "sse"`):
//!
//! - `GET …/sse` → a chunked SSE stream whose first event is `event: endpoint`
//!   with `data: /messages?sessionId=N`; it stays open until the client goes
//!   away, and every message of session N is written on it as
//!   `event: message`.
//! - `POST …/messages?sessionId=N` → `202 Accepted` (404 for an unknown
//!   session), then the answer on N's stream:
//!   - `tools/call` of the tool `sse` with `arguments: {n, gap_us, pad}` →
//!     exactly what `POST /mcp/sse?n=N&gap_us=G&pad=P` sends above: N
//!     progress notifications (progress token 1) stamped right before their
//!     own write, G µs apart on a fixed schedule, then the response. One
//!     URL serves every request of the legacy transport, so the scenario
//!     rides in the JSON-RPC params instead of the query.
//!   - `initialize` → a 2024-11-05 result. A client whose `clientInfo` name
//!     is `bench-idle` also gets a `notifications/message` "ready" right
//!     after it: bench-idle waits for that event on its GET stream (through
//!     the bridge, it is queued until the stream attaches) to know the stream
//!     works end to end, as `: ready` tells it on `/mcp/idle`.
//!   - any other request → a 1 KiB result with the request's id;
//!     notifications and responses → nothing more.
//!
//!   Each answer is written by a task of its own, event by event under the
//!   stream's write lock, so the POST's connection is free at once and the
//!   stamp is taken just before the event's write, as on the Streamable face.
//!
//! Prints `listening on ADDR` once bound.

use std::collections::HashMap;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use sluice_bench::{Args, SSE_FINAL, field_u64, jsonrpc_result, sse_event, tools_list};
use smol::{Async, Executor, Timer};

struct Answers {
    small: Vec<u8>,
    big: Vec<u8>,
}

const SSE_HEAD: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n";

fn whole(body: &[u8]) -> Vec<u8> {
    let mut v = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    v.extend_from_slice(body);
    v
}

fn chunk(data: &[u8]) -> Vec<u8> {
    let mut v = format!("{:x}\r\n", data.len()).into_bytes();
    v.extend_from_slice(data);
    v.extend_from_slice(b"\r\n");
    v
}

fn query(target: &str, key: &str, default: u64) -> u64 {
    let Some((_, q)) = target.split_once('?') else {
        return default;
    };
    q.split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(default)
}

enum Route {
    Small,
    Big,
    Sse { n: u64, gap_us: u64, pad: u64 },
    Idle,
    LegacyStream,
    LegacyPost { session: u64 },
    NotFound,
}

/// The legacy face: the open GET streams by session id.
struct Legacy {
    next: AtomicU64,
    sessions: Mutex<HashMap<u64, Arc<LegacyStream>>>,
    ex: Arc<Executor<'static>>,
}

/// One session's GET stream. Writers take `write` for one event at a time;
/// the stream's own task only reads (to see the client go).
struct LegacyStream {
    sock: Async<TcpStream>,
    write: smol::lock::Mutex<()>,
}

impl Legacy {
    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<LegacyStream>>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl LegacyStream {
    /// Writes one SSE event (`data` holds its `data:` lines and the blank
    /// line) as `event: message`, in one chunk.
    async fn message(&self, data: impl FnOnce() -> Vec<u8>) -> std::io::Result<()> {
        let _turn = self.write.lock().await;
        let mut event = b"event: message\n".to_vec();
        // Built (and so stamped) only once it is this event's turn.
        event.extend_from_slice(&data());
        (&self.sock).write_all(&chunk(&event)).await
    }
}

/// `"key":` followed by a JSON value; the value's raw text (numbers and
/// strings without escapes, which is what the harness sends).
fn raw_value<'a>(body: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    let mut pat = Vec::with_capacity(key.len() + 3);
    pat.push(b'"');
    pat.extend_from_slice(key);
    pat.extend_from_slice(b"\":");
    let at = body.windows(pat.len()).position(|w| w == pat.as_slice())? + pat.len();
    let rest = &body[at..];
    let start = rest.iter().position(|b| !b.is_ascii_whitespace())?;
    let rest = &rest[start..];
    let len = if rest.first() == Some(&b'"') {
        rest[1..].iter().position(|&b| b == b'"')? + 2
    } else {
        rest.iter()
            .position(|&b| matches!(b, b',' | b'}' | b']') || b.is_ascii_whitespace())
            .unwrap_or(rest.len())
    };
    Some(&rest[..len])
}

fn data_line(json: &[u8]) -> Vec<u8> {
    let mut v = b"data: ".to_vec();
    v.extend_from_slice(json);
    v.extend_from_slice(b"\n\n");
    v
}

/// A legacy POST: the answer goes out on the session's stream, written by
/// a task of its own.
fn legacy_post(stream: Arc<LegacyStream>, body: &[u8], legacy: &Legacy) {
    let Some(id) = raw_value(body, b"id").map(<[u8]>::to_vec) else {
        return; // A notification or a response: nothing to answer.
    };
    if raw_value(body, b"result").is_some() || raw_value(body, b"error").is_some() {
        return;
    }
    let method = raw_value(body, b"method").unwrap_or_default().to_vec();
    let answer = |result: &[u8]| {
        let mut v = b"{\"jsonrpc\":\"2.0\",\"id\":".to_vec();
        v.extend_from_slice(&id);
        v.extend_from_slice(b",\"result\":");
        v.extend_from_slice(result);
        v.push(b'}');
        data_line(&v)
    };
    // Whole events, built now: everything but the stamped stream.
    let job: Vec<Vec<u8>> = match method.as_slice() {
        b"\"initialize\"" => {
            let mut events = vec![answer(
                br#"{"protocolVersion":"2024-11-05","capabilities":{"tools":{}},"serverInfo":{"name":"bench-upstream","version":"0"}}"#,
            )];
            if raw_value(body, b"name") == Some(b"\"bench-idle\"") {
                events.push(data_line(
                    br#"{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"ready"}}"#,
                ));
            }
            events
        }
        b"\"tools/call\"" if raw_value(body, b"name") == Some(b"\"sse\"") => {
            let n = field_u64(body, b"n").unwrap_or(100);
            let gap_us = field_u64(body, b"gap_us").unwrap_or(10_000);
            let pad = field_u64(body, b"pad").unwrap_or(0) as usize;
            let fin = answer(br#"{"content":[],"done":true}"#);
            legacy
                .ex
                .spawn(async move {
                    let start = Instant::now();
                    for seq in 0..n {
                        if gap_us > 0 && seq > 0 {
                            Timer::at(start + Duration::from_micros(gap_us * seq)).await;
                        }
                        if stream.message(|| sse_event(seq, pad)).await.is_err() {
                            return;
                        }
                    }
                    let _ = stream.message(|| fin).await;
                })
                .detach();
            return;
        }
        _ => {
            // The same 1 KiB result as `POST /mcp`, with this request's id.
            let small = jsonrpc_result(1024);
            let result_at = small
                .windows(9)
                .position(|w| w == b"\"result\":")
                .unwrap_or(0)
                + 9;
            vec![answer(&small[result_at..small.len() - 1])]
        }
    };
    legacy
        .ex
        .spawn(async move {
            for event in job {
                if stream.message(|| event).await.is_err() {
                    return;
                }
            }
        })
        .detach();
}

/// A legacy GET stream: the endpoint event, then held open (and written to
/// by the session's POSTs) until the client goes away.
async fn legacy_stream(s: Async<TcpStream>, legacy: Arc<Legacy>) -> std::io::Result<()> {
    let id = legacy.next.fetch_add(1, Ordering::Relaxed);
    let stream = Arc::new(LegacyStream {
        sock: s,
        write: smol::lock::Mutex::new(()),
    });
    {
        let _turn = stream.write.lock().await;
        let mut head = SSE_HEAD.to_vec();
        head.extend_from_slice(&chunk(
            format!("event: endpoint\ndata: /messages?sessionId={id}\n\n").as_bytes(),
        ));
        // Registered before the endpoint goes out: a POST can follow at once.
        legacy.sessions().insert(id, stream.clone());
        (&stream.sock).write_all(&head).await?;
    }
    let mut buf = [0u8; 512];
    let held = async {
        while (&stream.sock).read(&mut buf).await? > 0 {}
        Ok::<_, std::io::Error>(())
    };
    let result = held.await;
    legacy.sessions().remove(&id);
    result
}

async fn serve(
    mut s: Async<TcpStream>,
    answers: Arc<Answers>,
    legacy: Arc<Legacy>,
) -> std::io::Result<()> {
    s.get_ref().set_nodelay(true)?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut end = 0;
    loop {
        // Read one request: head, then a Content-Length body.
        let (route, head, total) = loop {
            if end > 0 {
                let mut headers = [httparse::EMPTY_HEADER; 32];
                let mut req = httparse::Request::new(&mut headers);
                if let httparse::Status::Complete(len) =
                    req.parse(&buf[..end]).map_err(std::io::Error::other)?
                {
                    let body = req
                        .headers
                        .iter()
                        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                        .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse().ok())
                        .unwrap_or(0usize);
                    let target = req.path.unwrap_or("/");
                    let path = target.split('?').next().unwrap_or(target);
                    let route = match (req.method, path) {
                        (Some("GET"), p) if p.ends_with("/idle") => Route::Idle,
                        (Some("GET"), p) if p.ends_with("/sse") => Route::LegacyStream,
                        (Some("POST"), p) if p.ends_with("/messages") => Route::LegacyPost {
                            session: query(target, "sessionId", u64::MAX),
                        },
                        (Some("POST"), p) if p.ends_with("/big") => Route::Big,
                        (Some("POST"), p) if p.ends_with("/sse") => Route::Sse {
                            n: query(target, "n", 100),
                            gap_us: query(target, "gap_us", 10_000),
                            pad: query(target, "pad", 0),
                        },
                        (Some("POST"), _) => Route::Small,
                        _ => Route::NotFound,
                    };
                    if len + body > buf.len() {
                        buf.resize(len + body, 0);
                    }
                    break (route, len, len + body);
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
        if let Route::LegacyPost { session } = route {
            let stream = legacy.sessions().get(&session).cloned();
            match stream {
                Some(stream) => {
                    s.write_all(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n")
                        .await?;
                    legacy_post(stream, &buf[head..total], &legacy);
                }
                None => {
                    s.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                        .await?
                }
            }
        }
        buf.copy_within(total..end, 0);
        end -= total;
        match route {
            Route::LegacyPost { .. } => {}
            Route::LegacyStream => return legacy_stream(s, legacy).await,
            Route::Small => s.write_all(&answers.small).await?,
            Route::Big => s.write_all(&answers.big).await?,
            Route::NotFound => {
                s.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                    .await?
            }
            Route::Sse { n, gap_us, pad } => {
                s.write_all(SSE_HEAD).await?;
                let start = Instant::now();
                for seq in 0..n {
                    if gap_us > 0 && seq > 0 {
                        // On a schedule, not after a sleep each: no drift.
                        Timer::at(start + Duration::from_micros(gap_us * seq)).await;
                    }
                    // Stamped as late as possible: right before its write.
                    s.write_all(&chunk(&sse_event(seq, pad as usize))).await?;
                }
                let mut tail = chunk(SSE_FINAL);
                tail.extend_from_slice(b"0\r\n\r\n");
                s.write_all(&tail).await?;
            }
            Route::Idle => {
                s.write_all(SSE_HEAD).await?;
                s.write_all(&chunk(b": ready\n\n")).await?;
                // Hold until the client goes away.
                while s.read(&mut buf).await? > 0 {}
                return Ok(());
            }
        }
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::from_env();
    let listen = args.text("--listen", "127.0.0.1:0");
    let threads: usize = args.get("--threads", 1);
    let answers = Arc::new(Answers {
        small: whole(&jsonrpc_result(args.get("--json-bytes", 1024))),
        big: whole(&tools_list(args.get("--big-bytes", 1 << 20))),
    });
    let listener = Async::<TcpListener>::bind(listen.parse::<std::net::SocketAddr>()?)?;
    println!("listening on {}", listener.get_ref().local_addr()?);
    let ex: Arc<Executor<'static>> = Arc::new(Executor::new());
    let legacy = Arc::new(Legacy {
        next: AtomicU64::new(1),
        sessions: Mutex::new(HashMap::new()),
        ex: ex.clone(),
    });
    for _ in 1..threads {
        let ex = ex.clone();
        std::thread::spawn(move || smol::block_on(ex.run(futures_lite::future::pending::<()>())));
    }
    smol::block_on(ex.run(async {
        loop {
            let (s, _) = listener.accept().await?;
            let answers = answers.clone();
            let legacy = legacy.clone();
            ex.spawn(async move {
                let _ = serve(s, answers, legacy).await;
            })
            .detach();
        }
    }))
}
