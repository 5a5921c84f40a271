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
//! Prints `listening on ADDR` once bound.

use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use sluice_bench::{Args, SSE_FINAL, jsonrpc_result, sse_event, tools_list};
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
    NotFound,
}

async fn serve(mut s: Async<TcpStream>, answers: Arc<Answers>) -> std::io::Result<()> {
    s.get_ref().set_nodelay(true)?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut end = 0;
    loop {
        // Read one request: head, then a Content-Length body.
        let (route, total) = loop {
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
                    break (route, len + body);
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
        buf.copy_within(total..end, 0);
        end -= total;
        match route {
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
    let ex = Arc::new(Executor::new());
    for _ in 1..threads {
        let ex = ex.clone();
        std::thread::spawn(move || smol::block_on(ex.run(futures_lite::future::pending::<()>())));
    }
    smol::block_on(ex.run(async {
        loop {
            let (s, _) = listener.accept().await?;
            let answers = answers.clone();
            ex.spawn(async move {
                let _ = serve(s, answers).await;
            })
            .detach();
        }
    }))
}
