//! The idle-stream holder: opens N SSE streams (`GET /mcp/idle`) through a
//! target, waits for each stream's first event so every one is established
//! end to end, and reports how much the given processes' resident memory
//! grew per stream.
//!
//! ```text
//! bench-idle --target 127.0.0.1:8080 --streams 9000 --pids 1234,1235
//! ```
//!
//! Memory is VmRSS from /proc/PID/status (summed over `--pids`, e.g. an
//! nginx worker), read before the first stream and after the last.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use sluice_bench::Args;

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

fn open(target: SocketAddr, req: &[u8], buf: &mut [u8]) -> std::io::Result<TcpStream> {
    let mut s = TcpStream::connect(target)?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(req)?;
    let mut got = 0;
    // The head, then the `: ready` comment.
    while !buf[..got].windows(7).any(|w| w == b"ready\n\n") {
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
    let path = args.text("--path", "/mcp/idle");
    let settle = Duration::from_millis(args.get("--settle-ms", 1000));
    let pids: Vec<u32> = args
        .text("--pids", "")
        .split(',')
        .filter_map(|p| p.trim().parse().ok())
        .collect();
    let req = format!("GET {path} HTTP/1.1\r\nHost: {target}\r\nAccept: text/event-stream\r\n\r\n")
        .into_bytes();
    let mut buf = vec![0u8; 4096];
    // Warm up: the first stream pays for lazily built state (pools, tables).
    drop(open(target, &req, &mut buf)?);
    std::thread::sleep(settle);
    let before = rss_kib(&pids);
    let started = Instant::now();
    let mut held = Vec::with_capacity(streams);
    let mut failed = 0usize;
    let mut first_error = String::new();
    for _ in 0..streams {
        match open(target, &req, &mut buf) {
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
