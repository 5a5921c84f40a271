//! Heap allocations per proxied request and per proxied SSE event, counted
//! by a global allocator around the real proxy run in-process (one worker,
//! no access log).
//!
//! The client and the stub in this binary do not allocate once connected
//! (fixed buffers, prebuilt messages, parsing on the stack), so what the
//! counter sees during the measured loop is the proxy's. `--direct` runs the
//! same loop without the proxy to check that claim: it must print ~0.
//!
//! ```text
//! bench-alloc --requests 20000
//! ```

// A counting GlobalAlloc needs `unsafe impl`; it only forwards to System.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};

use sluice_bench::{Args, SSE_FINAL, jsonrpc_request, jsonrpc_result};

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; the
// counters are plain atomics.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(new_size as u64, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn snapshot() -> (u64, u64) {
    (
        ALLOCS.load(Ordering::Relaxed),
        BYTES.load(Ordering::Relaxed),
    )
}

/// Read one HTTP message (head + Content-Length body) into `buf`; returns its
/// length and the target's last path segment flag (`sse`). No allocation.
fn read_request(s: &mut TcpStream, buf: &mut [u8]) -> std::io::Result<Option<bool>> {
    let mut end = 0;
    loop {
        let n = s.read(&mut buf[end..])?;
        if n == 0 {
            return Ok(None);
        }
        end += n;
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        if let Ok(httparse::Status::Complete(len)) = req.parse(&buf[..end]) {
            let body: usize = req
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .and_then(|h| std::str::from_utf8(h.value).ok()?.parse().ok())
                .unwrap_or(0);
            let sse = req.path.is_some_and(|p| p.ends_with("/sse"));
            while end < len + body {
                let n = s.read(&mut buf[end..])?;
                if n == 0 {
                    return Ok(None);
                }
                end += n;
            }
            return Ok(Some(sse));
        }
    }
}

/// Read one response (Content-Length or chunked, ending with `0\r\n\r\n`).
fn read_response(s: &mut TcpStream, buf: &mut [u8]) -> std::io::Result<()> {
    let mut end = 0;
    let mut want: Option<usize> = None;
    let mut chunked = false;
    loop {
        let n = s.read(&mut buf[end..])?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        end += n;
        if want.is_none() && !chunked {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut resp = httparse::Response::new(&mut headers);
            if let Ok(httparse::Status::Complete(len)) = resp.parse(&buf[..end]) {
                for h in resp.headers.iter() {
                    if h.name.eq_ignore_ascii_case("content-length") {
                        want = std::str::from_utf8(h.value)
                            .ok()
                            .and_then(|v| v.parse::<usize>().ok())
                            .map(|b| b + len);
                    }
                    chunked |= h.name.eq_ignore_ascii_case("transfer-encoding");
                }
            }
        }
        if want.is_some_and(|w| end >= w) || (chunked && buf[..end].ends_with(b"0\r\n\r\n")) {
            return Ok(());
        }
        if end == buf.len() {
            // Keep only a tail big enough to see the end marker.
            buf.copy_within(end - 8..end, 0);
            end = 8;
        }
    }
}

fn stub(listener: TcpListener, sse_events: usize) {
    let body = jsonrpc_result(1024);
    let mut small = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    small.extend_from_slice(&body);
    let event = b"data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progressToken\":1,\"progress\":1}}\n\n";
    let mut event_chunk = format!("{:x}\r\n", event.len()).into_bytes();
    event_chunk.extend_from_slice(event);
    event_chunk.extend_from_slice(b"\r\n");
    let mut tail = format!("{:x}\r\n", SSE_FINAL.len()).into_bytes();
    tail.extend_from_slice(SSE_FINAL);
    tail.extend_from_slice(b"\r\n0\r\n\r\n");
    let head: &[u8] =
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n";
    let answers = std::sync::Arc::new((small, event_chunk, tail));
    for s in listener.incoming() {
        let Ok(mut s) = s else { continue };
        let answers = answers.clone();
        std::thread::spawn(move || {
            let _ = s.set_nodelay(true);
            let mut buf = vec![0u8; 64 * 1024];
            while let Ok(Some(sse)) = read_request(&mut s, &mut buf) {
                let ok = if sse {
                    s.write_all(head).is_ok()
                        && (0..sse_events).all(|_| s.write_all(&answers.1).is_ok())
                        && s.write_all(&answers.2).is_ok()
                } else {
                    s.write_all(&answers.0).is_ok()
                };
                if !ok {
                    return;
                }
            }
        });
    }
}

fn run(target: SocketAddr, req: &[u8], n: usize) -> anyhow::Result<(u64, u64)> {
    let mut s = TcpStream::connect(target)?;
    s.set_nodelay(true)?;
    let mut buf = vec![0u8; 64 * 1024];
    for _ in 0..n / 10 + 10 {
        s.write_all(req)?;
        read_response(&mut s, &mut buf)?;
    }
    let (a0, b0) = snapshot();
    for _ in 0..n {
        s.write_all(req)?;
        read_response(&mut s, &mut buf)?;
    }
    let (a1, b1) = snapshot();
    Ok((a1 - a0, b1 - b0))
}

fn main() -> anyhow::Result<()> {
    let args = Args::from_env();
    let n: usize = args.get("--requests", 20_000);
    let events: usize = args.get("--events", 100);
    let direct = std::env::args().any(|a| a == "--direct");
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let up = listener.local_addr()?;
    std::thread::spawn(move || stub(listener, events));
    let target = if direct {
        up
    } else {
        let mut settings = sluice::proxy::ProxySettings::single("127.0.0.1:0".parse()?, up, "/mcp");
        settings.access_log = false;
        settings.workers = 1;
        let proxy = sluice::proxy::start(settings)?;
        let addr = proxy.local_addr();
        // Runs until the process exits.
        std::mem::forget(proxy);
        addr
    };
    let post = |path: &str| {
        let body = jsonrpc_request(1024);
        let mut v = format!(
            "POST {path} HTTP/1.1\r\nHost: {target}\r\nContent-Type: application/json\r\n\
             Accept: application/json, text/event-stream\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        v.extend_from_slice(&body);
        v
    };
    let (a, b) = run(target, &post("/mcp"), n)?;
    let sse_n = (n / events).max(100);
    let (sa, sb) = run(target, &post("/mcp/sse"), sse_n)?;
    let per_req = a as f64 / n as f64;
    // The SSE answer's own request overhead is about one JSON exchange's.
    let per_event = (sa as f64 / sse_n as f64 - per_req) / (events + 1) as f64;
    let per_event_bytes = (sb as f64 / sse_n as f64 - b as f64 / n as f64) / (events + 1) as f64;
    println!(
        r#"{{"direct":{direct},"requests":{n},"allocs_per_request":{per_req:.2},"bytes_per_request":{:.0},"sse_answers":{sse_n},"events_per_answer":{events},"allocs_per_event":{per_event:.2},"bytes_per_event":{per_event_bytes:.0}}}"#,
        b as f64 / n as f64
    );
    Ok(())
}
