//! The idle-stream holder: opens N SSE streams (`GET /mcp/idle`) through a
//! target, waits for each stream's first event so every one is established
//! end to end, and reports how much the given processes' resident memory
//! grew per stream.
//!
//! ```text
//! bench-idle --target 127.0.0.1:8080 --streams 9000 --pids 1234,1235
//! bench-idle --target 127.0.0.1:8080 --session 1 --path /mcp --streams 9000 --pids 1234
//! ```
//!
//! `--session 1`: each stream is an MCP session's GET stream, the idle
//! stream a client of sluice's legacy bridge (session mode) holds: on one
//! connection, `initialize` (as `bench-idle`, which the stub answers with a
//! "ready" notification), `notifications/initialized`, then `GET --path`
//! with the `Mcp-Session-Id` sluice minted. Each stream then has its own
//! bridged session and so its own backend SSE connection: the memory per
//! stream counts both legs, the bridge's session and the client's
//! exchange.
//!
//! Memory is VmRSS from /proc/PID/status (summed over `--pids`, e.g. an
//! nginx worker), read before the first stream and after the last.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use sluice_bench::{Args, INITIALIZED, http_request, initialize_request, read_response, sse_get};

fn rss_kib(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).ok())
        .filter_map(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .sum()
}

/// The head is whole and a whole event (or comment) follows it.
fn has_event(got: &[u8]) -> bool {
    got.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .is_some_and(|head| got[head + 4..].windows(2).any(|w| w == b"\n\n"))
}

fn connect(target: SocketAddr) -> std::io::Result<TcpStream> {
    let s = TcpStream::connect(target)?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    Ok(s)
}

/// A session's GET stream: the MCP handshake on a fresh connection, then
/// the GET on the same connection.
fn open_session(target: SocketAddr, path: &str, buf: &mut [u8]) -> std::io::Result<TcpStream> {
    let mut s = connect(target)?;
    s.write_all(&http_request(
        "POST",
        path,
        target,
        None,
        &initialize_request("bench-idle"),
    ))?;
    let init = read_response(&mut s, Vec::new())?;
    let session = match (init.status, init.session_id) {
        (200, Some(session)) => session,
        (status, _) => {
            return Err(std::io::Error::other(format!(
                "initialize: status {status}, or no Mcp-Session-Id"
            )));
        }
    };
    s.write_all(&http_request(
        "POST",
        path,
        target,
        Some(&session),
        INITIALIZED,
    ))?;
    let status = read_response(&mut s, init.buf)?.status;
    if status != 202 {
        return Err(std::io::Error::other(format!(
            "notifications/initialized: status {status}"
        )));
    }
    hold(s, &sse_get(path, target, Some(&session)), buf)
}

fn open(target: SocketAddr, req: &[u8], buf: &mut [u8]) -> std::io::Result<TcpStream> {
    hold(connect(target)?, req, buf)
}

/// Sends the GET and waits for its head and first event.
fn hold(mut s: TcpStream, req: &[u8], buf: &mut [u8]) -> std::io::Result<TcpStream> {
    s.write_all(req)?;
    let mut got = 0;
    // The head, then the first event (the stub's `: ready` comment).
    while !has_event(&buf[..got]) {
        if got == buf.len() {
            return Err(std::io::Error::other("no ready event"));
        }
        let n = s.read(&mut buf[got..])?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        got += n;
    }
    if !buf.starts_with(b"HTTP/1.1 200") {
        return Err(std::io::Error::other("not 200"));
    }
    Ok(s)
}

fn main() -> anyhow::Result<()> {
    let args = Args::from_env();
    let target: SocketAddr = args.text("--target", "127.0.0.1:8080").parse()?;
    let streams: usize = args.get("--streams", 1000);
    let session = args.get("--session", 0u8) == 1;
    let path = args.text("--path", if session { "/mcp" } else { "/mcp/idle" });
    let settle = Duration::from_millis(args.get("--settle-ms", 1000));
    let pids: Vec<u32> = args
        .text("--pids", "")
        .split(',')
        .filter_map(|p| p.trim().parse().ok())
        .collect();
    let req = format!("GET {path} HTTP/1.1\r\nHost: {target}\r\nAccept: text/event-stream\r\n\r\n")
        .into_bytes();
    let mut buf = vec![0u8; 4096];
    let open_one = |buf: &mut [u8]| {
        if session {
            open_session(target, &path, buf)
        } else {
            open(target, &req, buf)
        }
    };
    // Warm up: the first stream pays for lazily built state (pools, tables).
    drop(open_one(&mut buf)?);
    std::thread::sleep(settle);
    let before = rss_kib(&pids);
    let started = Instant::now();
    let mut held = Vec::with_capacity(streams);
    let mut failed = 0usize;
    let mut first_error = String::new();
    for _ in 0..streams {
        match open_one(&mut buf) {
            Ok(s) => held.push(s),
            Err(e) => {
                failed += 1;
                if first_error.is_empty() {
                    first_error = e.to_string();
                }
                if failed > 50 {
                    break;
                }
            }
        }
    }
    let open_s = started.elapsed().as_secs_f64();
    std::thread::sleep(settle);
    let after = rss_kib(&pids);
    let per_stream = if held.is_empty() {
        0.0
    } else {
        (after.saturating_sub(before)) as f64 * 1024.0 / held.len() as f64
    };
    println!(
        r#"{{"streams":{},"failed":{failed},"first_error":{first_error:?},"rss_before_kib":{before},"rss_after_kib":{after},"bytes_per_stream":{per_stream:.0},"open_s":{open_s:.2}}}"#,
        held.len()
    );
    Ok(())
}
