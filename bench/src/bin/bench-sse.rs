//! The SSE client: per-event latency, time to first event and bursts.
//!
//! ```text
//! bench-sse --target 127.0.0.1:8080 --mode events --events 200 --gap-us 10000
//! bench-sse --target 127.0.0.1:8080 --mode ttfe --samples 300
//! bench-sse --target 127.0.0.1:8080 --mode burst --events 2000
//! ```
//!
//! `events`/`burst`: one `POST /mcp/sse` answered by the stub with stamped
//! progress notifications; each event's latency is the time its read
//! returned minus its stamp (one host clock). `ttfe`: a fresh connection per
//! sample, from before `connect` to the first whole event. Prints one JSON
//! line (µs).

use std::io::Write;
use std::net::{SocketAddr, TcpStream};

use sluice_bench::{Args, ResponseReader, Summary, field_u64, jsonrpc_request, now_ns};

fn request(target: SocketAddr, path: &str) -> Vec<u8> {
    let body = jsonrpc_request(256);
    let mut v = format!(
        "POST {path} HTTP/1.1\r\nHost: {target}\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    v.extend_from_slice(&body);
    v
}

/// Events seen on one stream: (seq, latency µs), plus the final response.
struct Stream {
    lat: Vec<f64>,
    seqs: Vec<u64>,
    got_final: bool,
    /// Time from the first event's stamp to the last event's arrival.
    span_ns: u64,
    /// Time the first whole event arrived.
    first_at: Option<u64>,
}

/// Read one SSE answer; stop after the first event when `first_only`.
fn read_stream(
    s: &mut TcpStream,
    buf: Vec<u8>,
    first_only: bool,
) -> anyhow::Result<(Stream, Vec<u8>)> {
    let mut rr = ResponseReader::start(s, buf)?;
    anyhow::ensure!(rr.status == 200, "status {}", rr.status);
    let mut body = Vec::with_capacity(64 * 1024);
    let mut out = Stream {
        lat: Vec::new(),
        seqs: Vec::new(),
        got_final: false,
        span_ns: 0,
        first_at: None,
    };
    let mut first_stamp = None;
    let mut scanned = 0;
    while let Some(at) = rr.next(s, &mut body)? {
        // Whole events end with a blank line.
        while let Some(end) = body[scanned..].windows(2).position(|w| w == b"\n\n") {
            let event = &body[scanned..scanned + end];
            scanned += end + 2;
            out.first_at.get_or_insert(at);
            if let (Some(seq), Some(t)) = (field_u64(event, b"progress"), field_u64(event, b"t")) {
                first_stamp.get_or_insert(t);
                out.seqs.push(seq);
                out.lat.push(at.saturating_sub(t) as f64 / 1000.0);
                out.span_ns = at.saturating_sub(first_stamp.unwrap_or(at));
            } else if event.windows(6).any(|w| w == b"\"id\":1") {
                out.got_final = true;
            }
            if first_only {
                break;
            }
        }
        if first_only && out.first_at.is_some() {
            break;
        }
        if scanned > 32 * 1024 {
            body.drain(..scanned);
            scanned = 0;
        }
    }
    if !first_only {
        anyhow::ensure!(rr.is_done(), "stream ended early");
    } else {
        rr.drain(s)?;
    }
    Ok((out, rr.into_buf()))
}

fn main() -> anyhow::Result<()> {
    let args = Args::from_env();
    let target: SocketAddr = args.text("--target", "127.0.0.1:8080").parse()?;
    let mode = args.text("--mode", "events");
    let base = args.text("--path", "/mcp/sse");
    match mode.as_str() {
        "events" | "burst" => {
            let events: u64 = args.get("--events", 200);
            let gap: u64 = if mode == "burst" {
                0
            } else {
                args.get("--gap-us", 10_000)
            };
            let pad: u64 = args.get("--pad", 64);
            let mut s = TcpStream::connect(target)?;
            s.set_nodelay(true)?;
            s.write_all(&request(
                target,
                &format!("{base}?n={events}&gap_us={gap}&pad={pad}"),
            ))?;
            let (st, _) = read_stream(&mut s, Vec::new(), false)?;
            // Lost: missing sequence numbers; late: events that took more than
            // 5 ms (a coalescing or buffering proxy shows as 40 ms and more).
            let lost = events.saturating_sub(st.seqs.len() as u64);
            let in_order = st.seqs.windows(2).all(|w| w[1] == w[0] + 1);
            let late = st.lat.iter().filter(|&&l| l > 5000.0).count();
            let mut lat = st.lat;
            let sum = Summary::of(&mut lat);
            let rate = if st.span_ns > 0 {
                st.seqs.len() as f64 * 1e9 / st.span_ns as f64
            } else {
                0.0
            };
            println!(
                r#"{{"mode":"{mode}",{},"lost":{lost},"late":{late},"in_order":{in_order},"final":{},"events_per_s":{rate:.0}}}"#,
                sum.json("lat_us"),
                st.got_final
            );
        }
        "ttfe" => {
            let samples: usize = args.get("--samples", 300);
            let req = request(target, &format!("{base}?n=1&gap_us=0&pad=64"));
            let mut ttfe = Vec::with_capacity(samples);
            let mut buf = Vec::new();
            for _ in 0..samples {
                let t0 = now_ns();
                let mut s = TcpStream::connect(target)?;
                s.set_nodelay(true)?;
                s.write_all(&req)?;
                let (st, b) = read_stream(&mut s, buf, true)?;
                buf = b;
                let first = st.first_at.ok_or_else(|| anyhow::anyhow!("no event"))?;
                ttfe.push(first.saturating_sub(t0) as f64 / 1000.0);
            }
            println!(
                r#"{{"mode":"ttfe",{}}}"#,
                Summary::of(&mut ttfe).json("ttfe_us")
            );
        }
        other => anyhow::bail!("unknown --mode {other}"),
    }
    Ok(())
}
