//! An MCP client for load: sessions, `tools/call` in a loop, time to the
//! first progress notification, and memory per idle session — over
//! Streamable HTTP through a proxy, or over stdio to the server itself.
//!
//! ```text
//! bench-mcp --target 127.0.0.1:8080 --mode load --conns 8 --duration 5
//! bench-mcp --stdio 'bench-stdio-server' --mode load --conns 8 --duration 5
//! bench-mcp --target 127.0.0.1:8080 --mode progress --samples 200 --steps 20 --tool progress
//! bench-mcp --target 127.0.0.1:8080 --mode idle --sessions 50 --pid 1234
//! bench-mcp --target 127.0.0.1:8080 --mode list --samples 500 --expect-tools 40
//! ```
//!
//! Each client is an MCP session of its own, as a real client opens one:
//! `initialize` (protocol 2025-06-18, no capabilities), keeping the
//! `Mcp-Session-Id` when the server gives one, `notifications/initialized`,
//! then its requests on one keep-alive connection with the session id and
//! `MCP-Protocol-Version: <the negotiated version>`; `DELETE` at the end.
//! POSTs accept `application/json, text/event-stream`: the server picks,
//! and an SSE answer is read event by event until the JSON-RPC response
//! with the request's id (progress and other notifications before it are
//! seen as they arrive). Each answer is checked: the response must carry
//! the id that was sent and a `result`; anything else (an HTTP error, a
//! JSON-RPC error, another id, an SSE stream that ends without the answer,
//! no answer within `--timeout`) counts as an error, the first one is
//! reported as text. A connection the server closed is reopened once and
//! the request sent again; a session the server lost (404) is opened anew.
//!
//! `--stdio 'CMD ARGS'` (split on spaces) speaks newline-delimited
//! JSON-RPC to a child of its own instead — one child per client — the
//! baseline without a proxy.
//!
//! Modes (one JSON line on stdout; times in µs):
//! - `load`: `--conns` clients, each its own session, opened before the
//!   clock starts; then each calls `--tool` (default `echo`) with
//!   `--args` (default `{"message": <--message-bytes of x>}`) in a closed
//!   loop for `--duration` seconds. Calls per second over all clients,
//!   latency percentiles, errors, how many answers came as SSE.
//! - `progress`: one session; `--samples` calls of `--tool` with
//!   `--args` and `_meta.progressToken` = the sample's number (stopping
//!   early after `--max-seconds`): time from writing the request to the
//!   first `notifications/progress` carrying that token, and to the
//!   answer; progress notifications seen against `--steps` per call.
//! - `list`: one session; `--samples` `tools/list` requests (stopping
//!   early after `--max-seconds`), one after another: latency
//!   percentiles, and the number of tools in the answers (each answer
//!   must hold `--expect-tools` tools when given, else it is an error;
//!   a `nextCursor` is an error too: one request must bring the list).
//! - `idle`: against `--pid`: one warm session (and one call of `--tool`), the
//!   resident memory of `--pid` and all its descendants (VmRSS and PSS
//!   summed over the process tree found through /proc) as the baseline,
//!   then `--sessions` more sessions, each on a connection of its own left
//!   open, idle after `notifications/initialized`; once the tree's memory
//!   has settled, (after − baseline) / sessions.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sluice_bench::{Args, ResponseReader, Summary};

const PROTOCOL: &str = "2025-06-18";

/// What went wrong with a request.
#[derive(Debug)]
enum Failure {
    /// The link is unusable (connection lost, timeout, session gone):
    /// open a new one.
    Broken(String),
    /// A wrong answer on a link that still works.
    Answer(String),
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Self {
        Failure::Broken(format!("io: {e}"))
    }
}

impl Failure {
    fn text(&self) -> &str {
        match self {
            Failure::Broken(s) | Failure::Answer(s) => s,
        }
    }
}

struct Config {
    target: Option<SocketAddr>,
    path: String,
    stdio: Vec<String>,
    timeout: Duration,
}

enum Wire {
    Http {
        stream: TcpStream,
        buf: Vec<u8>,
    },
    Stdio {
        child: Child,
        stdin: ChildStdin,
        stdout: BufReader<ChildStdout>,
        line: Vec<u8>,
    },
}

/// One MCP session.
struct Link {
    cfg: Arc<Config>,
    wire: Wire,
    session: Option<String>,
    version: Option<String>,
    next_id: u64,
    sse_answers: u64,
    reconnects: u64,
}

/// A response found in an answer, and when.
struct Answer {
    msg: Value,
    at: Instant,
}

fn connect(cfg: &Config) -> io::Result<TcpStream> {
    let target = cfg.target.ok_or_else(|| io::Error::other("no --target"))?;
    let s = TcpStream::connect(target)?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(cfg.timeout))?;
    Ok(s)
}

impl Link {
    /// A new session: `initialize`, `notifications/initialized`.
    fn open(cfg: &Arc<Config>) -> Result<Link, Failure> {
        let wire = if cfg.stdio.is_empty() {
            Wire::Http {
                stream: connect(cfg)?,
                buf: Vec::new(),
            }
        } else {
            let mut child = Command::new(&cfg.stdio[0])
                .args(&cfg.stdio[1..])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()?;
            let stdin = child
                .stdin
                .take()
                .ok_or_else(|| io::Error::other("no stdin"))?;
            let stdout = child
                .stdout
                .take()
                .ok_or_else(|| io::Error::other("no stdout"))?;
            Wire::Stdio {
                child,
                stdin,
                stdout: BufReader::with_capacity(64 * 1024, stdout),
                line: Vec::new(),
            }
        };
        let mut link = Link {
            cfg: cfg.clone(),
            wire,
            session: None,
            version: None,
            next_id: 0,
            sse_answers: 0,
            reconnects: 0,
        };
        let init = link.request(
            "initialize",
            json!({"protocolVersion": PROTOCOL, "capabilities": {},
                   "clientInfo": {"name": "bench-mcp", "version": "0"}}),
            &mut |_| {},
        )?;
        link.version = init.msg["result"]["protocolVersion"]
            .as_str()
            .map(str::to_owned);
        link.notify("notifications/initialized")?;
        Ok(link)
    }

    fn notify(&mut self, method: &str) -> Result<(), Failure> {
        let body = serde_json::to_vec(&json!({"jsonrpc": "2.0", "method": method}))
            .map_err(|e| Failure::Answer(e.to_string()))?;
        if let Wire::Stdio { stdin, .. } = &mut self.wire {
            stdin.write_all(&body)?;
            stdin.write_all(b"\n")?;
            stdin.flush()?;
            return Ok(());
        }
        self.post(&body, None, &mut |_| {}).map(|_| ())
    }

    /// Sends a request and returns its response; `on_note` sees every
    /// other message that comes before it.
    fn request(
        &mut self,
        method: &str,
        params: Value,
        on_note: &mut dyn FnMut(&Value),
    ) -> Result<Answer, Failure> {
        let id = self.next_id;
        self.next_id += 1;
        let body = serde_json::to_vec(
            &json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}),
        )
        .map_err(|e| Failure::Answer(e.to_string()))?;
        let answer = if matches!(self.wire, Wire::Stdio { .. }) {
            self.stdio_call(&body, id, on_note)?
        } else {
            self.post(&body, Some(id), on_note)?
                .ok_or_else(|| Failure::Answer("no answer".into()))?
        };
        if answer.msg.get("result").is_none() {
            return Err(Failure::Answer(format!(
                "not a result: {}",
                cut(&answer.msg.to_string())
            )));
        }
        Ok(answer)
    }

    fn stdio_call(
        &mut self,
        body: &[u8],
        id: u64,
        on_note: &mut dyn FnMut(&Value),
    ) -> Result<Answer, Failure> {
        let Wire::Stdio {
            stdin,
            stdout,
            line,
            ..
        } = &mut self.wire
        else {
            unreachable!("stdio_call on an HTTP link")
        };
        stdin.write_all(body)?;
        stdin.write_all(b"\n")?;
        stdin.flush()?;
        loop {
            line.clear();
            if stdout.read_until(b'\n', line)? == 0 {
                return Err(Failure::Broken("the server closed stdout".into()));
            }
            let Ok(msg) = serde_json::from_slice::<Value>(line) else {
                continue; // noise
            };
            if msg.get("method").is_some() {
                if let Some(rid) = msg.get("id") {
                    // A request from the server: none is expected here.
                    let reply = json!({"jsonrpc": "2.0", "id": rid, "error": {"code": -32601, "message": "bench-mcp answers nothing"}});
                    stdin.write_all(reply.to_string().as_bytes())?;
                    stdin.write_all(b"\n")?;
                    stdin.flush()?;
                } else {
                    on_note(&msg);
                }
                continue;
            }
            return check_id(msg, id, Instant::now());
        }
    }

    /// POSTs `body`; for a request (`id`), returns its response.
    fn post(
        &mut self,
        body: &[u8],
        id: Option<u64>,
        on_note: &mut dyn FnMut(&Value),
    ) -> Result<Option<Answer>, Failure> {
        let req = self.http_head("POST", body.len());
        let mut retried = false;
        loop {
            match self.exchange(&req, body, id, on_note) {
                // The server closed a keep-alive connection: once more on a new one.
                Err(Failure::Broken(e)) if !retried && e.starts_with("io:") => {
                    retried = true;
                    self.reconnects += 1;
                    let Wire::Http { stream, .. } = &mut self.wire else {
                        unreachable!()
                    };
                    *stream = connect(&self.cfg)?;
                }
                other => return other,
            }
        }
    }

    fn http_head(&self, method: &str, len: usize) -> Vec<u8> {
        let target = self.cfg.target.map(|t| t.to_string()).unwrap_or_default();
        let mut h = format!(
            "{method} {} HTTP/1.1\r\nHost: {target}\r\nContent-Type: application/json\r\n\
             Accept: application/json, text/event-stream\r\nContent-Length: {len}\r\n",
            self.cfg.path
        );
        if let Some(s) = &self.session {
            h.push_str(&format!("Mcp-Session-Id: {s}\r\n"));
        }
        if let Some(v) = &self.version {
            h.push_str(&format!("MCP-Protocol-Version: {v}\r\n"));
        }
        h.push_str("\r\n");
        h.into_bytes()
    }

    fn exchange(
        &mut self,
        head: &[u8],
        body: &[u8],
        id: Option<u64>,
        on_note: &mut dyn FnMut(&Value),
    ) -> Result<Option<Answer>, Failure> {
        let Wire::Http { stream, buf } = &mut self.wire else {
            unreachable!("exchange on a stdio link")
        };
        let mut msg = Vec::with_capacity(head.len() + body.len());
        msg.extend_from_slice(head);
        msg.extend_from_slice(body);
        stream.write_all(&msg)?;
        let mut rr = ResponseReader::start(stream, std::mem::take(buf))?;
        if let Some(s) = rr.session_id.take() {
            self.session.get_or_insert(s);
        }
        let status = rr.status;
        let mut got = Vec::new();
        let result = if status == 404 && self.session.is_some() {
            rr.drain(stream)?;
            Err(Failure::Broken("404: the session is gone".into()))
        } else if !(200..300).contains(&status) {
            while rr.next(stream, &mut got)?.is_some() {}
            Err(Failure::Answer(format!(
                "HTTP {status}: {}",
                cut(&String::from_utf8_lossy(&got))
            )))
        } else if id.is_none() {
            rr.drain(stream)?;
            Ok(None)
        } else if rr.is_sse {
            self.sse_answers += 1;
            let id = id.unwrap_or_default();
            let mut events = SseEvents::default();
            let mut found = None;
            while rr.next(stream, &mut got)?.is_some() {
                let now = Instant::now();
                while let Some(data) = events.next(&mut got) {
                    let Ok(m) = serde_json::from_slice::<Value>(&data) else {
                        continue;
                    };
                    if m.get("method").is_some() {
                        on_note(&m);
                    } else if found.is_none() {
                        found = Some(check_id(m, id, now));
                    }
                }
            }
            found
                .unwrap_or_else(|| {
                    Err(Failure::Answer(
                        "the SSE answer ended without the response".into(),
                    ))
                })
                .map(Some)
        } else {
            while rr.next(stream, &mut got)?.is_some() {}
            let now = Instant::now();
            match serde_json::from_slice::<Value>(&got) {
                Ok(m) => check_id(m, id.unwrap_or_default(), now).map(Some),
                Err(e) => Err(Failure::Answer(format!(
                    "not JSON ({e}): {}",
                    cut(&String::from_utf8_lossy(&got))
                ))),
            }
        };
        *buf = rr.into_buf();
        result
    }

    /// Ends the session: DELETE (HTTP; the child of a stdio link is killed
    /// when the link drops).
    fn close(mut self) {
        if self.session.is_none() {
            return;
        }
        let head = self.http_head("DELETE", 0);
        if let Wire::Http { stream, buf } = &mut self.wire {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            if stream.write_all(&head).is_ok()
                && let Ok(mut rr) = ResponseReader::start(stream, std::mem::take(buf))
            {
                let _ = rr.drain(stream);
            }
        }
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        if let Wire::Stdio { child, .. } = &mut self.wire {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn check_id(msg: Value, id: u64, at: Instant) -> Result<Answer, Failure> {
    if msg.get("id").and_then(Value::as_u64) == Some(id) {
        Ok(Answer { msg, at })
    } else {
        Err(Failure::Answer(format!(
            "wrong id: sent {id}, got {}",
            cut(&msg.to_string())
        )))
    }
}

fn cut(s: &str) -> String {
    s.chars().take(300).collect()
}

/// An incremental SSE reader: the `data` of each whole event.
#[derive(Default)]
struct SseEvents {
    data: Vec<u8>,
    has_data: bool,
}

impl SseEvents {
    /// Takes whole lines off the front of `pending`; returns an event's
    /// data when a blank line ends one.
    fn next(&mut self, pending: &mut Vec<u8>) -> Option<Vec<u8>> {
        while let Some(nl) = pending.iter().position(|&b| b == b'\n') {
            let mut line: Vec<u8> = pending.drain(..=nl).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            if line.is_empty() {
                if self.has_data {
                    self.has_data = false;
                    return Some(std::mem::take(&mut self.data));
                }
            } else if let Some(rest) = line.strip_prefix(b"data:") {
                let rest = rest.strip_prefix(b" ").unwrap_or(rest);
                if self.has_data {
                    self.data.push(b'\n');
                }
                self.data.extend_from_slice(rest);
                self.has_data = true;
            }
        }
        None
    }
}

/// The processes under `pid` (itself included), through /proc.
fn tree(pid: u32) -> Vec<u32> {
    let mut parent: HashMap<u32, Vec<u32>> = HashMap::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(p) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
                continue;
            };
            // pid (comm) state ppid …: comm may hold spaces and parentheses.
            let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
                continue;
            };
            if let Some(ppid) = after.split_whitespace().nth(1).and_then(|s| s.parse().ok()) {
                parent.entry(ppid).or_default().push(p);
            }
        }
    }
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        if let Some(kids) = parent.get(&out[i]) {
            out.extend_from_slice(kids);
        }
        i += 1;
    }
    out
}

/// (VmRSS, PSS) in KiB summed over `pid`'s process tree, and the number of
/// processes.
fn tree_memory(pid: u32) -> (u64, u64, usize) {
    let pids = tree(pid);
    let field = |path: String, key: &str| -> u64 {
        std::fs::read_to_string(path)
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with(key))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            })
            .unwrap_or(0)
    };
    let rss = pids
        .iter()
        .map(|p| field(format!("/proc/{p}/status"), "VmRSS:"))
        .sum();
    let pss = pids
        .iter()
        .map(|p| field(format!("/proc/{p}/smaps_rollup"), "Pss:"))
        .sum();
    (rss, pss, pids.len())
}

fn json_str(s: &str) -> String {
    Value::String(s.to_owned()).to_string()
}

fn main() -> anyhow::Result<()> {
    let args = Args::from_env();
    let target = args.text("--target", "");
    let stdio = args.text("--stdio", "");
    let cfg = Arc::new(Config {
        target: if target.is_empty() {
            None
        } else {
            Some(target.parse()?)
        },
        path: args.text("--path", "/mcp"),
        stdio: stdio.split_whitespace().map(str::to_owned).collect(),
        timeout: Duration::from_secs_f64(args.get("--timeout", 30.0)),
    });
    anyhow::ensure!(
        cfg.target.is_some() == cfg.stdio.is_empty(),
        "give --target or --stdio"
    );
    let tool = args.text("--tool", "echo");
    let message = "x".repeat(args.get("--message-bytes", 64));
    let tool_args: Value = match args.text("--args", "").as_str() {
        "" => json!({"message": message}),
        s => serde_json::from_str(s)?,
    };
    match args.text("--mode", "load").as_str() {
        "load" => load(
            &cfg,
            &tool,
            &tool_args,
            args.get("--conns", 1),
            args.get("--duration", 5.0),
        ),
        "progress" => progress(
            &cfg,
            &tool,
            &tool_args,
            args.get("--samples", 200),
            args.get("--steps", 20),
            args.get("--max-seconds", 10.0),
        ),
        "list" => list(
            &cfg,
            args.get("--samples", 500),
            args.get("--max-seconds", 10.0),
            args.get("--expect-tools", 0),
        ),
        "idle" => idle(
            &cfg,
            &tool,
            &tool_args,
            args.get("--sessions", 50),
            args.get("--pid", 0),
        ),
        m => anyhow::bail!("unknown --mode {m}"),
    }
}

#[derive(Default)]
struct Tally {
    lat: Vec<f64>,
    errors: u64,
    reopened: u64,
    sse: u64,
    reconnects: u64,
    init_failed: u64,
    first_error: Option<String>,
}

impl Tally {
    fn error(&mut self, f: &Failure) {
        self.errors += 1;
        self.first_error.get_or_insert_with(|| f.text().to_owned());
    }
    fn merge(&mut self, o: Tally) {
        self.lat.extend(o.lat);
        self.errors += o.errors;
        self.reopened += o.reopened;
        self.sse += o.sse;
        self.reconnects += o.reconnects;
        self.init_failed += o.init_failed;
        if self.first_error.is_none() {
            self.first_error = o.first_error;
        }
    }
    fn link_done(&mut self, link: Link) {
        self.sse += link.sse_answers;
        self.reconnects += link.reconnects;
        link.close();
    }
    fn json(&self) -> String {
        format!(
            r#""errors":{},"reopened":{},"init_failed":{},"sse_answers":{},"reconnects":{},"first_error":{}"#,
            self.errors,
            self.reopened,
            self.init_failed,
            self.sse,
            self.reconnects,
            self.first_error.as_deref().map_or("null".into(), json_str)
        )
    }
}

fn load(
    cfg: &Arc<Config>,
    tool: &str,
    tool_args: &Value,
    conns: usize,
    secs: f64,
) -> anyhow::Result<()> {
    let barrier = Arc::new(Barrier::new(conns + 1));
    let duration = Duration::from_secs_f64(secs);
    let threads: Vec<_> = (0..conns)
        .map(|_| {
            let (cfg, barrier) = (cfg.clone(), barrier.clone());
            let params = json!({"name": tool, "arguments": tool_args});
            std::thread::spawn(move || {
                let mut t = Tally::default();
                let mut link = match Link::open(&cfg) {
                    Ok(l) => Some(l),
                    Err(f) => {
                        t.init_failed += 1;
                        t.error(&f);
                        None
                    }
                };
                barrier.wait();
                let end = Instant::now() + duration;
                while Instant::now() < end {
                    let Some(l) = link.as_mut() else {
                        // No session: try to open one, not in a tight loop.
                        std::thread::sleep(Duration::from_millis(100));
                        match Link::open(&cfg) {
                            Ok(l) => link = Some(l),
                            Err(f) => t.error(&f),
                        }
                        continue;
                    };
                    let t0 = Instant::now();
                    match l.request("tools/call", params.clone(), &mut |_| {}) {
                        Ok(a) => t.lat.push(a.at.duration_since(t0).as_secs_f64() * 1e6),
                        Err(f) => {
                            t.error(&f);
                            if let Failure::Broken(_) = f {
                                if let Some(old) = link.take() {
                                    t.link_done(old);
                                }
                                t.reopened += 1;
                            }
                        }
                    }
                }
                if let Some(l) = link {
                    t.link_done(l);
                }
                t
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    let mut all = Tally::default();
    for th in threads {
        all.merge(
            th.join()
                .map_err(|_| anyhow::anyhow!("a client thread panicked"))?,
        );
    }
    // The calls of the window, over the window (the last call may end a little after it).
    let secs = start.elapsed().as_secs_f64().max(secs);
    let n = all.lat.len();
    println!(
        r#"{{"conns":{conns},"calls":{n},"rps":{:.1},{},{}}}"#,
        n as f64 / secs,
        Summary::of(&mut all.lat).json("lat_us"),
        all.json()
    );
    Ok(())
}

fn progress(
    cfg: &Arc<Config>,
    tool: &str,
    tool_args: &Value,
    samples: usize,
    steps: u64,
    max_secs: f64,
) -> anyhow::Result<()> {
    let mut t = Tally::default();
    let mut link = Link::open(cfg).map_err(|f| anyhow::anyhow!("open: {}", f.text()))?;
    let mut ttfp = Vec::new();
    let (mut seen, mut with_progress, mut calls) = (0u64, 0u64, 0u64);
    let end = Instant::now() + Duration::from_secs_f64(max_secs);
    for i in 0..samples {
        if Instant::now() > end {
            break;
        }
        let token = i as u64 + 1;
        let params =
            json!({"name": tool, "arguments": tool_args, "_meta": {"progressToken": token}});
        let mut first: Option<Instant> = None;
        let mut count = 0u64;
        let t0 = Instant::now();
        let r = link.request("tools/call", params, &mut |m| {
            if m["method"] == "notifications/progress"
                && m["params"]["progressToken"].as_u64() == Some(token)
            {
                first.get_or_insert_with(Instant::now);
                count += 1;
            }
        });
        calls += 1;
        match r {
            Ok(a) => {
                t.lat.push(a.at.duration_since(t0).as_secs_f64() * 1e6);
                if let Some(f) = first {
                    ttfp.push(f.duration_since(t0).as_secs_f64() * 1e6);
                    with_progress += 1;
                }
                seen += count;
            }
            Err(f) => {
                t.error(&f);
                if let Failure::Broken(_) = f {
                    t.link_done(link);
                    t.reopened += 1;
                    link = Link::open(cfg).map_err(|f| anyhow::anyhow!("reopen: {}", f.text()))?;
                }
            }
        }
    }
    let call = Summary::of(&mut t.lat).json("call_us");
    t.lat.clear();
    t.link_done(link);
    println!(
        r#"{{"calls":{calls},"steps":{steps},"progress_seen":{seen},"progress_expected":{},"calls_with_progress":{with_progress},{},{},{}}}"#,
        calls * steps,
        Summary::of(&mut ttfp).json("ttfp_us"),
        call,
        t.json()
    );
    Ok(())
}

fn list(cfg: &Arc<Config>, samples: usize, max_secs: f64, expect: usize) -> anyhow::Result<()> {
    let mut t = Tally::default();
    let mut link = Link::open(cfg).map_err(|f| anyhow::anyhow!("open: {}", f.text()))?;
    let (mut calls, mut min_tools, mut max_tools, mut bytes) = (0u64, usize::MAX, 0usize, 0usize);
    let end = Instant::now() + Duration::from_secs_f64(max_secs);
    for _ in 0..samples {
        if Instant::now() > end {
            break;
        }
        calls += 1;
        let t0 = Instant::now();
        match link.request("tools/list", json!({}), &mut |_| {}) {
            Ok(a) => {
                t.lat.push(a.at.duration_since(t0).as_secs_f64() * 1e6);
                let result = &a.msg["result"];
                let n = result["tools"].as_array().map_or(0, Vec::len);
                (min_tools, max_tools) = (min_tools.min(n), max_tools.max(n));
                bytes = result.to_string().len();
                if expect != 0 && n != expect {
                    t.error(&Failure::Answer(format!("{n} tools, expected {expect}")));
                } else if !result["nextCursor"].is_null() {
                    t.error(&Failure::Answer("a nextCursor: the list is paged".into()));
                }
            }
            Err(f) => {
                t.error(&f);
                if let Failure::Broken(_) = f {
                    t.link_done(link);
                    t.reopened += 1;
                    link = Link::open(cfg).map_err(|f| anyhow::anyhow!("reopen: {}", f.text()))?;
                }
            }
        }
    }
    let lat = Summary::of(&mut t.lat).json("lat_us");
    t.lat.clear();
    t.link_done(link);
    println!(
        r#"{{"calls":{calls},"tools_min":{},"tools_max":{max_tools},"result_bytes":{bytes},{lat},{}}}"#,
        if min_tools == usize::MAX {
            0
        } else {
            min_tools
        },
        t.json()
    );
    Ok(())
}

/// Waits until the tree's RSS stops growing (two readings 250 ms apart
/// within 0.5 %, after at least `min`), at most 20 s.
fn settled(pid: u32, min: Duration) -> (u64, u64, usize) {
    let start = Instant::now();
    std::thread::sleep(min);
    let mut last = tree_memory(pid);
    while start.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(250));
        let now = tree_memory(pid);
        if now.0.abs_diff(last.0) * 200 <= last.0 && now.2 == last.2 {
            return now;
        }
        last = now;
    }
    last
}

fn idle(
    cfg: &Arc<Config>,
    tool: &str,
    tool_args: &Value,
    sessions: usize,
    pid: u32,
) -> anyhow::Result<()> {
    anyhow::ensure!(pid != 0, "--mode idle needs --pid");
    let mut t = Tally::default();
    // One warm session: the child of a shared server started, the proxy's
    // first-use allocations made.
    let mut warm = Link::open(cfg).map_err(|f| anyhow::anyhow!("open: {}", f.text()))?;
    warm.request(
        "tools/call",
        json!({"name": tool, "arguments": tool_args}),
        &mut |_| {},
    )
    .map_err(|f| anyhow::anyhow!("warm call: {}", f.text()))?;
    let (base_rss, base_pss, base_procs) = settled(pid, Duration::from_millis(1000));
    let mut links = Vec::with_capacity(sessions);
    for _ in 0..sessions {
        match Link::open(cfg) {
            Ok(l) => links.push(l),
            Err(f) => {
                t.init_failed += 1;
                t.error(&f);
            }
        }
    }
    let (rss, pss, procs) = settled(pid, Duration::from_millis(1500));
    let n = links.len().max(1) as f64;
    println!(
        r#"{{"sessions":{sessions},"opened":{},"base_rss_kib":{base_rss},"rss_kib":{rss},"base_pss_kib":{base_pss},"pss_kib":{pss},"procs_before":{base_procs},"procs_after":{procs},"bytes_per_session":{:.0},"pss_bytes_per_session":{:.0},{}}}"#,
        links.len(),
        (rss as f64 - base_rss as f64) * 1024.0 / n,
        (pss as f64 - base_pss as f64) * 1024.0 / n,
        t.json()
    );
    for l in links {
        l.close();
    }
    warm.close();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every event's data, fed in pieces of `split` bytes.
    fn events(wire: &[u8], split: usize) -> Vec<Vec<u8>> {
        let (mut sse, mut pending, mut out) = (SseEvents::default(), Vec::new(), Vec::new());
        for piece in wire.chunks(split) {
            pending.extend_from_slice(piece);
            while let Some(data) = sse.next(&mut pending) {
                out.push(data);
            }
        }
        out
    }

    #[test]
    fn sse_events_come_whole_at_any_split() {
        let wire = b": ready\n\nid: 1\nevent: message\ndata: {\"a\":1}\n\ndata:{\"b\":\r\ndata: 2}\r\n\r\nretry: 5\n\n";
        let want = vec![b"{\"a\":1}".to_vec(), b"{\"b\":\n2}".to_vec()];
        for split in 1..=wire.len() {
            assert_eq!(events(wire, split), want, "split {split}");
        }
    }

    #[test]
    fn answers_are_checked_by_id() {
        let at = Instant::now();
        assert!(check_id(json!({"jsonrpc": "2.0", "id": 7, "result": {}}), 7, at).is_ok());
        assert!(matches!(
            check_id(json!({"jsonrpc": "2.0", "id": 8, "result": {}}), 7, at),
            Err(Failure::Answer(_))
        ));
        assert!(check_id(json!({"jsonrpc": "2.0", "id": "7", "result": {}}), 7, at).is_err());
    }

    #[test]
    fn the_tree_holds_this_process() {
        let me = std::process::id();
        assert_eq!(tree(me)[0], me);
        let (rss, _, procs) = tree_memory(me);
        assert!(rss > 0 && procs >= 1);
    }
}
