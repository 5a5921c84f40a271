//! The SSE client: per-event latency, time to first event and bursts.
//!
//! ```text
//! bench-sse --target 127.0.0.1:8080 --mode events --events 200 --gap-us 10000
//! bench-sse --target 127.0.0.1:8080 --mode ttfe --samples 300
//! bench-sse --target 127.0.0.1:8080 --mode burst --events 2000
//! bench-sse --target 127.0.0.1:8080 --via params --path /mcp --mode events   # through sluice's bridge
//! bench-sse --target 127.0.0.1:8080 --via legacy --path /sse --mode events   # the stub's legacy face
//! ```
//!
//! `events`/`burst`: one request answered by the stub with stamped progress
//! notifications; each event's latency is the time its read returned minus
//! its stamp (one host clock). `ttfe`: a fresh connection per sample, from
//! before `connect` to the first whole event. Prints one JSON line (µs).
//!
//! How the request reaches the stub (`--via`):
//!
//! - `query` (default): `POST {path}?n=N&gap_us=G&pad=P` (`--path`
//!   default `/mcp/sse`), the stub's Streamable face; the answer is the
//!   POST's own SSE stream.
//! - `params`: a Streamable HTTP client of sluice's legacy bridge. It first
//!   does the MCP handshake on its connection (`initialize`, keeping the
//!   `Mcp-Session-Id` sluice mints — none in the bridge's per-request mode —
//!   then `notifications/initialized`), then POSTs to `{path}` (default
//!   `/mcp`) a `tools/call` of the tool `sse` whose `arguments` carry N, G
//!   and P — a legacy backend has one URL for every message, so the
//!   scenario rides in the params — with `_meta.progressToken` 1, which is
//!   how the bridge knows the progress notifications belong to this
//!   request's stream. The answer is the POST's SSE stream, as for `query`;
//!   the session is DELETEd at the end. `ttfe` does the handshake once, on a
//!   connection of its own, and then each sample is a fresh connection
//!   POSTing the call into that session: the same work per sample as
//!   `query`, the session's backend stream already open (as for any
//!   client after its `initialize`).
//! - `legacy`: the 2024-11-05 transport spoken to the stub itself (`--path`
//!   default `/sse`): a GET stream, its `endpoint`, the handshake, and the
//!   same `tools/call` POSTed to the endpoint (202) with the events read
//!   from the GET stream. The baseline of the stub's legacy face, to tell
//!   the stub's share of the bridge's figures from sluice's. `ttfe`: a
//!   fresh connection per sample for the POST, the GET stream held.
//!
//! The stub stamps every event the same way on both faces (right before its
//! own write, on a fixed schedule), so per-event latency means the same
//! thing for all three.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::ops::Range;

use sluice_bench::{
    Args, INITIALIZED, ResponseReader, Summary, field_u64, http_request, initialize_request,
    jsonrpc_request, now_ns, read_response, sse_get,
};

/// Reads whole SSE events off one response body.
struct Events {
    rr: ResponseReader,
    body: Vec<u8>,
    scanned: usize,
    /// When the read that brought the latest bytes returned.
    at: u64,
}

impl Events {
    fn start(s: &mut TcpStream, buf: Vec<u8>) -> anyhow::Result<Events> {
        let rr = ResponseReader::start(s, buf)?;
        anyhow::ensure!(rr.status == 200, "status {}", rr.status);
        Ok(Events {
            rr,
            body: Vec::with_capacity(64 * 1024),
            scanned: 0,
            at: 0,
        })
    }

    /// The next whole event (its lines, without the blank line) as a range
    /// of [`text`](Self::text), and when the read that completed it
    /// returned; `None` at the end of the body.
    fn next(&mut self, s: &mut TcpStream) -> std::io::Result<Option<(u64, Range<usize>)>> {
        loop {
            if let Some(end) = self.body[self.scanned..]
                .windows(2)
                .position(|w| w == b"\n\n")
            {
                let event = self.scanned..self.scanned + end;
                self.scanned += end + 2;
                return Ok(Some((self.at, event)));
            }
            if self.scanned > 32 * 1024 {
                self.body.drain(..self.scanned);
                self.scanned = 0;
            }
            match self.rr.next(s, &mut self.body)? {
                Some(at) => self.at = at,
                None => return Ok(None),
            }
        }
    }

    fn text(&self, event: Range<usize>) -> &[u8] {
        &self.body[event]
    }

    /// The body must end with no more events; the buffer back.
    fn finish(mut self, s: &mut TcpStream) -> anyhow::Result<Vec<u8>> {
        while self.next(s)?.is_some() {}
        anyhow::ensure!(self.rr.is_done(), "stream ended early");
        Ok(self.rr.into_buf())
    }
}

/// Events seen on one answer: (seq, latency µs), plus the final response.
struct Stream {
    lat: Vec<f64>,
    seqs: Vec<u64>,
    got_final: bool,
    /// Time from the first event's stamp to the last event's arrival.
    span_ns: u64,
    /// Time the first whole event arrived.
    first_at: Option<u64>,
}

/// Read the events of one answer, up to the response with id `final_id`
/// (or the end of the body); only the first one's arrival when
/// `first_only`.
fn collect(
    ev: &mut Events,
    s: &mut TcpStream,
    first_only: bool,
    final_id: &[u8],
) -> anyhow::Result<Stream> {
    let mut out = Stream {
        lat: Vec::new(),
        seqs: Vec::new(),
        got_final: false,
        span_ns: 0,
        first_at: None,
    };
    let mut first_stamp = None;
    while let Some((at, range)) = ev.next(s)? {
        let event = ev.text(range);
        let first = out.first_at.is_none();
        out.first_at.get_or_insert(at);
        if let (Some(seq), Some(t)) = (field_u64(event, b"progress"), field_u64(event, b"t")) {
            if !first_only || first {
                first_stamp.get_or_insert(t);
                out.seqs.push(seq);
                out.lat.push(at.saturating_sub(t) as f64 / 1000.0);
                out.span_ns = at.saturating_sub(first_stamp.unwrap_or(at));
            }
        } else if event.windows(final_id.len()).any(|w| w == final_id) {
            out.got_final = true;
            break;
        }
    }
    Ok(out)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Via {
    Query,
    Params,
    Legacy,
}

/// The scenario as a `tools/call` of the stub's `sse` tool.
fn call_body(n: u64, gap_us: u64, pad: u64) -> Vec<u8> {
    format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"sse","arguments":{{"n":{n},"gap_us":{gap_us},"pad":{pad}}},"_meta":{{"progressToken":1}}}}}}"#
    )
    .into_bytes()
}

/// The MCP handshake with sluice on `s`: the session id it minted, if any.
fn handshake(s: &mut TcpStream, target: SocketAddr, path: &str) -> anyhow::Result<Option<String>> {
    s.write_all(&http_request(
        "POST",
        path,
        target,
        None,
        &initialize_request("bench-sse"),
    ))?;
    let init = read_response(s, Vec::new())?;
    anyhow::ensure!(
        init.status == 200,
        "initialize: status {}: {}",
        init.status,
        String::from_utf8_lossy(&init.body)
    );
    let session = init.session_id;
    s.write_all(&http_request(
        "POST",
        path,
        target,
        session.as_deref(),
        INITIALIZED,
    ))?;
    let done = read_response(s, init.buf)?;
    anyhow::ensure!(
        done.status == 202 || done.status == 200,
        "notifications/initialized: status {}: {}",
        done.status,
        String::from_utf8_lossy(&done.body)
    );
    Ok(session)
}

fn delete(s: &mut TcpStream, target: SocketAddr, path: &str, session: Option<&str>) {
    if session.is_some() {
        // Best effort: a session left behind would only expire later.
        if s.write_all(&http_request("DELETE", path, target, session, b""))
            .is_ok()
        {
            let _ = read_response(s, Vec::new());
        }
    }
}

/// The stub's legacy face, held open: the GET stream and its endpoint.
struct Legacy {
    get: TcpStream,
    events: Events,
    endpoint: String,
}

impl Legacy {
    fn open(target: SocketAddr, path: &str) -> anyhow::Result<Legacy> {
        let mut get = TcpStream::connect(target)?;
        get.set_nodelay(true)?;
        get.write_all(&sse_get(path, target, None))?;
        let mut events = Events::start(&mut get, Vec::new())?;
        let (_, range) = events
            .next(&mut get)?
            .ok_or_else(|| anyhow::anyhow!("no endpoint event"))?;
        let text = String::from_utf8_lossy(events.text(range)).into_owned();
        anyhow::ensure!(
            text.lines().any(|l| l == "event: endpoint"),
            "first event is not the endpoint: {text}"
        );
        let endpoint = text
            .lines()
            .find_map(|l| l.strip_prefix("data:"))
            .map(|d| d.trim().to_owned())
            .ok_or_else(|| anyhow::anyhow!("endpoint without data"))?;
        let mut me = Legacy {
            get,
            events,
            endpoint,
        };
        let mut post = me.connect(target)?;
        me.post(&mut post, target, &initialize_request("bench-sse"))?;
        let init = collect(&mut me.events, &mut me.get, false, b"\"id\":0")?;
        anyhow::ensure!(init.got_final, "no initialize answer");
        me.post(&mut post, target, INITIALIZED)?;
        Ok(me)
    }

    fn connect(&self, target: SocketAddr) -> anyhow::Result<TcpStream> {
        let s = TcpStream::connect(target)?;
        s.set_nodelay(true)?;
        Ok(s)
    }

    /// POST `body` to the endpoint on `post`; the 202 is read at once (the
    /// stub writes it before anything on the stream).
    fn post(&self, post: &mut TcpStream, target: SocketAddr, body: &[u8]) -> anyhow::Result<()> {
        post.write_all(&http_request("POST", &self.endpoint, target, None, body))?;
        let status = read_response(post, Vec::new())?.status;
        anyhow::ensure!(status == 202, "POST to the endpoint: status {status}");
        Ok(())
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::from_env();
    let target: SocketAddr = args.text("--target", "127.0.0.1:8080").parse()?;
    let mode = args.text("--mode", "events");
    let via = match args.text("--via", "query").as_str() {
        "query" => Via::Query,
        "params" => Via::Params,
        "legacy" => Via::Legacy,
        other => anyhow::bail!("unknown --via {other} (query, params or legacy)"),
    };
    let base = args.text(
        "--path",
        match via {
            Via::Query => "/mcp/sse",
            Via::Params => "/mcp",
            Via::Legacy => "/sse",
        },
    );
    let final_id = b"\"id\":1";
    match mode.as_str() {
        "events" | "burst" => {
            let events: u64 = args.get("--events", 200);
            let gap: u64 = if mode == "burst" {
                0
            } else {
                args.get("--gap-us", 10_000)
            };
            let pad: u64 = args.get("--pad", 64);
            let st = match via {
                Via::Query => {
                    let mut s = TcpStream::connect(target)?;
                    s.set_nodelay(true)?;
                    let path = format!("{base}?n={events}&gap_us={gap}&pad={pad}");
                    s.write_all(&http_request(
                        "POST",
                        &path,
                        target,
                        None,
                        &jsonrpc_request(256),
                    ))?;
                    let mut ev = Events::start(&mut s, Vec::new())?;
                    let st = collect(&mut ev, &mut s, false, final_id)?;
                    ev.finish(&mut s)?;
                    st
                }
                Via::Params => {
                    let mut s = TcpStream::connect(target)?;
                    s.set_nodelay(true)?;
                    let session = handshake(&mut s, target, &base)?;
                    let body = call_body(events, gap, pad);
                    s.write_all(&http_request(
                        "POST",
                        &base,
                        target,
                        session.as_deref(),
                        &body,
                    ))?;
                    let mut ev = Events::start(&mut s, Vec::new())?;
                    let st = collect(&mut ev, &mut s, false, final_id)?;
                    ev.finish(&mut s)?;
                    delete(&mut s, target, &base, session.as_deref());
                    st
                }
                Via::Legacy => {
                    let mut l = Legacy::open(target, &base)?;
                    let mut post = l.connect(target)?;
                    l.post(&mut post, target, &call_body(events, gap, pad))?;
                    collect(&mut l.events, &mut l.get, false, final_id)?
                }
            };
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
            let mut ttfe = Vec::with_capacity(samples);
            let mut buf = Vec::new();
            match via {
                Via::Query | Via::Params => {
                    // Params: the session is opened once, on a connection of its own.
                    let mut control = None;
                    let mut session = None;
                    let (path, body) = if via == Via::Query {
                        (format!("{base}?n=1&gap_us=0&pad=64"), jsonrpc_request(256))
                    } else {
                        let mut c = TcpStream::connect(target)?;
                        c.set_nodelay(true)?;
                        session = handshake(&mut c, target, &base)?;
                        control = Some(c);
                        (base.clone(), call_body(1, 0, 64))
                    };
                    let req = http_request("POST", &path, target, session.as_deref(), &body);
                    for _ in 0..samples {
                        let t0 = now_ns();
                        let mut s = TcpStream::connect(target)?;
                        s.set_nodelay(true)?;
                        s.write_all(&req)?;
                        let mut ev = Events::start(&mut s, buf)?;
                        let st = collect(&mut ev, &mut s, true, final_id)?;
                        buf = ev.finish(&mut s)?;
                        let first = st.first_at.ok_or_else(|| anyhow::anyhow!("no event"))?;
                        ttfe.push(first.saturating_sub(t0) as f64 / 1000.0);
                    }
                    if let Some(mut c) = control {
                        delete(&mut c, target, &base, session.as_deref());
                    }
                }
                Via::Legacy => {
                    let mut l = Legacy::open(target, &base)?;
                    let body = call_body(1, 0, 64);
                    for _ in 0..samples {
                        let t0 = now_ns();
                        let mut post = l.connect(target)?;
                        post.write_all(&http_request("POST", &l.endpoint, target, None, &body))?;
                        let st = collect(&mut l.events, &mut l.get, true, final_id)?;
                        anyhow::ensure!(st.got_final, "the GET stream ended");
                        let answer = read_response(&mut post, buf)?;
                        buf = answer.buf;
                        let status = answer.status;
                        anyhow::ensure!(status == 202, "POST to the endpoint: status {status}");
                        let first = st.first_at.ok_or_else(|| anyhow::anyhow!("no event"))?;
                        ttfe.push(first.saturating_sub(t0) as f64 / 1000.0);
                    }
                }
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
