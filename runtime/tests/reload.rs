//! Live reload of the `sluice` binary: SIGHUP with a good config moves a
//! route to a new upstream; a bad one (a syntax error, an unknown key, a
//! hook that does not compile) keeps the running config, logs where the
//! file is wrong and counts `invalid`; an SSE stream open across a reload
//! ends on the config it started with; `--watch` sees a file change;
//! reloads alternating good and bad under a request loop fail no request;
//! a stdio route that a reload leaves as it was keeps its sessions.

#[path = "common/mod.rs"]
mod common;
#[path = "fixtures/hooks/support.rs"]
mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, mpsc};
use std::time::{Duration, Instant};

use common::*;

/// How long a reload may take to show in the log before the test gives
/// up (hooks compile in it; a loaded machine is slow).
const PATIENCE: Duration = Duration::from_secs(60);

/// A scratch directory of its own per test, removed at the end.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let dir = std::env::temp_dir().join(format!("sluice-reload-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Dir(dir)
    }

    /// Replace a file of the directory whole (renamed into place).
    fn write(&self, name: &str, bytes: &[u8]) {
        let tmp = self.0.join(format!("{name}.new"));
        std::fs::write(&tmp, bytes).unwrap();
        std::fs::rename(&tmp, self.0.join(name)).unwrap();
    }

    fn config(&self) -> PathBuf {
        self.0.join("sluice.toml")
    }

    /// Replace the config file whole (written aside, then renamed: a
    /// reader never sees half of it).
    fn write_config(&self, text: &str) {
        let tmp = self.0.join("sluice.toml.new");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, self.config()).unwrap();
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The log lines sluice wrote so far, collected by a thread.
#[derive(Clone, Default)]
struct Log(Arc<(Mutex<Vec<String>>, Condvar)>);

impl Log {
    fn count(&self, needle: &str) -> usize {
        let lines = self.0.0.lock().unwrap();
        lines.iter().filter(|l| l.contains(needle)).count()
    }

    /// Wait until `n` lines contain `needle`; returns the last of them.
    fn wait_for(&self, needle: &str, n: usize) -> String {
        let deadline = Instant::now() + PATIENCE;
        let (lock, cvar) = &*self.0;
        let mut lines = lock.lock().unwrap();
        loop {
            let found: Vec<&String> = lines.iter().filter(|l| l.contains(needle)).collect();
            if found.len() >= n {
                return found[n - 1].clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no {n} lines with {needle:?} in the log:\n{}",
                lines.join("\n")
            );
            lines = cvar.wait_timeout(lines, left).unwrap().0;
        }
    }
}

/// A running `sluice --config`, its addresses and its log.
struct Running {
    sluice: Sluice,
    proxy: SocketAddr,
    admin: SocketAddr,
    log: Log,
    /// Reload outcomes seen so far: (reloaded, refused).
    seen: (usize, usize),
}

impl Running {
    fn start(dir: &Dir, extra: &[&str]) -> Running {
        let config = dir.config();
        let mut args = vec!["--config", config.to_str().unwrap()];
        args.extend_from_slice(extra);
        let mut cmd = sluice_command(&args);
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut sluice = Sluice(cmd.spawn().expect("sluice starts"));
        let log = Log::default();
        let stderr = BufReader::new(sluice.0.stderr.take().unwrap());
        let collector = log.clone();
        std::thread::spawn(move || {
            for line in stderr.lines() {
                let Ok(line) = line else { return };
                let (lock, cvar) = &*collector.0;
                lock.lock().unwrap().push(line);
                cvar.notify_all();
            }
        });
        let mut stdout = BufReader::new(sluice.0.stdout.take().unwrap());
        let mut address = |prefix: &str| -> SocketAddr {
            let mut line = String::new();
            stdout.read_line(&mut line).unwrap();
            line.trim()
                .strip_prefix(prefix)
                .unwrap_or_else(|| panic!("expected {prefix:?}, got {line:?}"))
                .parse()
                .unwrap()
        };
        let proxy = address("sluice listening on http://");
        let admin = address("admin listening on http://");
        // Kept open: a closed pipe is not what is tested here.
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        Running {
            sluice,
            proxy,
            admin,
            log,
            seen: (0, 0),
        }
    }

    fn hangup(&self) {
        let pid = self.sluice.0.id().to_string();
        let status = std::process::Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Wait for the next reload to be applied.
    fn reloaded(&mut self) -> String {
        self.seen.0 += 1;
        self.log.wait_for("configuration reloaded", self.seen.0)
    }

    /// Wait for the next reload to be refused; returns its log line.
    fn refused(&mut self) -> String {
        self.seen.1 += 1;
        self.log.wait_for("reload refused", self.seen.1)
    }

    /// SIGHUP after writing `config`, and the reload's log line.
    fn reload_good(&mut self, dir: &Dir, config: &str) -> String {
        dir.write_config(config);
        self.hangup();
        self.reloaded()
    }

    fn reload_bad(&mut self, dir: &Dir, config: &str) -> String {
        dir.write_config(config);
        self.hangup();
        self.refused()
    }

    fn get(&self, path: &str) -> Response {
        let mut conn = connect(self.admin);
        write!(
            conn,
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        read_response(&mut conn, "GET")
    }

    /// The value of the series `series` in a scrape.
    fn metric(&self, series: &str) -> Option<f64> {
        let text = self.get("/metrics").text();
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }
}

/// A config routing `/mcp` to `upstream`, with `more` after it.
fn config(upstream: SocketAddr, more: &str) -> String {
    format!(
        r#"listen = "127.0.0.1:0"

[admin]
listen = "127.0.0.1:0"

[[route]]
name = "main"
path = "/mcp"
upstream = "http://{upstream}/mcp"
transport = "streamable"
{more}"#
    )
}

/// An upstream answering every POST with `{"from": name}`.
fn named_upstream(name: &'static str) -> Upstream {
    upstream(move |conn, _| {
        json_response(
            conn,
            &format!(r#"{{"jsonrpc":"2.0","id":"abc","result":{{"from":"{name}"}}}}"#),
        );
        true
    })
}

/// One `tools/call` on a connection of its own.
fn call(proxy: SocketAddr, path: &str) -> Response {
    call_on(&mut connect(proxy), path)
}

/// One `tools/call` on `conn`, kept alive.
fn call_on(conn: &mut std::net::TcpStream, path: &str) -> Response {
    let body = CALL;
    write!(
        conn,
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    read_response(conn, "POST")
}

fn from(response: &Response) -> String {
    let v: serde_json::Value = serde_json::from_slice(&response.body)
        .unwrap_or_else(|e| panic!("{e}: {}", response.text()));
    v["result"]["from"].as_str().unwrap_or_default().to_owned()
}

#[test]
fn sighup_applies_a_good_config_and_keeps_the_running_one_for_a_bad_one() {
    let dir = Dir::new("sighup");
    let (a, b) = (named_upstream("a"), named_upstream("b"));
    dir.write_config(&config(a.addr, ""));
    let mut sluice = Running::start(&dir, &[]);
    assert_eq!(from(&call(sluice.proxy, "/mcp")), "a");
    // Kept alive across the reload, idle when it comes.
    let mut kept = connect(sluice.proxy);
    assert_eq!(from(&call_on(&mut kept, "/mcp")), "a");
    let ok = r#"sluice_config_reloads_total{outcome="ok"}"#;
    let invalid = r#"sluice_config_reloads_total{outcome="invalid"}"#;
    let successful = "sluice_config_last_reload_successful";
    assert_eq!(sluice.metric(successful), Some(1.0));
    let started_at = sluice
        .metric("sluice_config_last_reload_success_timestamp_seconds")
        .unwrap();

    // A good config: new requests go to the new upstream; /config shows it.
    sluice.reload_good(&dir, &config(b.addr, ""));
    assert_eq!(from(&call(sluice.proxy, "/mcp")), "b");
    assert_eq!(from(&call_on(&mut kept, "/mcp")), "b");
    let shown: serde_json::Value = serde_json::from_slice(&sluice.get("/config").body).unwrap();
    assert_eq!(
        shown["routes"][0]["upstream"],
        format!("http://{}/mcp", b.addr)
    );
    assert_eq!(sluice.metric(ok), Some(1.0));
    assert!(
        sluice
            .metric("sluice_config_last_reload_success_timestamp_seconds")
            .unwrap()
            >= started_at
    );

    // A syntax error on line 12: refused, with the file's line; b still serves.
    let line = sluice.reload_bad(&dir, &config(a.addr, "\n[log\n"));
    assert!(line.contains("sluice.toml:12:"), "{line}");
    assert_eq!(from(&call(sluice.proxy, "/mcp")), "b");
    assert_eq!(sluice.metric(invalid), Some(1.0));
    assert_eq!(sluice.metric(successful), Some(0.0));

    // An unknown key on line 11.
    let line = sluice.reload_bad(&dir, &config(a.addr, "colour = \"blue\"\n"));
    assert!(
        line.contains("sluice.toml:11:") && line.contains("colour"),
        "{line}"
    );
    assert_eq!(from(&call(sluice.proxy, "/mcp")), "b");
    assert_eq!(sluice.metric(invalid), Some(2.0));

    // A hook that does not compile: refused, naming the hook.
    std::fs::write(dir.0.join("broken.wasm"), b"\0asm but not really").unwrap();
    let line = sluice.reload_bad(
        &dir,
        &config(
            a.addr,
            "\n[[hook]]\nname = \"broken\"\npath = \"broken.wasm\"\n",
        ),
    );
    assert!(line.contains("broken"), "{line}");
    assert_eq!(from(&call(sluice.proxy, "/mcp")), "b");
    assert_eq!(sluice.metric(invalid), Some(3.0));
    assert_eq!(sluice.metric(ok), Some(1.0));

    // And a good one again.
    sluice.reload_good(&dir, &config(a.addr, ""));
    assert_eq!(from(&call(sluice.proxy, "/mcp")), "a");
    assert_eq!(sluice.metric(ok), Some(2.0));
    assert_eq!(sluice.metric(successful), Some(1.0));
}

#[test]
fn a_setting_that_needs_a_restart_keeps_its_running_value_and_the_rest_applies() {
    let dir = Dir::new("restart");
    let (a, b) = (named_upstream("a"), named_upstream("b"));
    dir.write_config(&config(a.addr, ""));
    let mut sluice = Running::start(&dir, &[]);
    let moved = config(b.addr, "").replace(
        "listen = \"127.0.0.1:0\"\n\n[admin]",
        "listen = \"127.0.0.1:1\"\n\n[admin]",
    );
    sluice.reload_good(&dir, &moved);
    let warning = sluice.log.wait_for("changes only with a restart", 1);
    assert!(warning.contains("listen"), "{warning}");
    // Still on the port it bound, now routing to b.
    assert_eq!(from(&call(sluice.proxy, "/mcp")), "b");
    let shown: serde_json::Value = serde_json::from_slice(&sluice.get("/config").body).unwrap();
    assert_eq!(shown["listen"], "127.0.0.1:0");
}

#[test]
fn an_sse_stream_open_across_a_reload_ends_on_the_config_it_started_with() {
    let dir = Dir::new("sse");
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let release_rx = Mutex::new(release_rx);
    let a = upstream(move |conn, _| {
        write_sse_head(conn);
        write_chunk(conn, b"data: {\"n\":1}\n\n");
        conn.flush().unwrap();
        release_rx.lock().unwrap().recv().unwrap();
        write_chunk(conn, b"data: {\"n\":2,\"from\":\"a\"}\n\n");
        end_chunks(conn);
        true
    });
    let b = named_upstream("b");
    dir.write_config(&config(a.addr, ""));
    let mut sluice = Running::start(&dir, &[]);
    let proxy = sluice.proxy;
    let stream = std::thread::spawn(move || call(proxy, "/mcp"));
    // The stream is under way: a has its request.
    a.requests.recv_timeout(PATIENCE).unwrap();

    sluice.reload_good(&dir, &config(b.addr, ""));
    assert_eq!(from(&call(sluice.proxy, "/mcp")), "b");

    release_tx.send(()).unwrap();
    let streamed = stream.join().unwrap();
    assert_eq!(streamed.status, 200);
    assert!(streamed.complete, "{streamed:?}");
    let text = streamed.text();
    assert!(
        text.contains("\"n\":1") && text.contains("\"from\":\"a\""),
        "{text}"
    );
}

#[test]
fn watch_reloads_when_the_file_changes() {
    let dir = Dir::new("watch");
    let (a, b) = (named_upstream("a"), named_upstream("b"));
    dir.write_config(&config(a.addr, ""));
    let mut sluice = Running::start(&dir, &["--watch=50ms"]);
    assert_eq!(from(&call(sluice.proxy, "/mcp")), "a");
    dir.write_config(&config(b.addr, ""));
    let line = sluice.reloaded();
    assert!(line.contains("configuration reloaded"), "{line}");
    assert!(sluice.log.count("a watched file changed") >= 1);
    assert_eq!(from(&call(sluice.proxy, "/mcp")), "b");
    // A bad write is refused once, not at every poll.
    dir.write_config("listen = \n");
    sluice.refused();
    dir.write_config(&config(a.addr, ""));
    sluice.reloaded();
    assert_eq!(from(&call(sluice.proxy, "/mcp")), "a");
    assert_eq!(sluice.log.count("reload refused"), 1);
}

/// An upstream whose every answer is an SSE stream: one event at once,
/// a second when released, then its end.
fn held_stream() -> (Upstream, mpsc::Sender<()>) {
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let release_rx = Mutex::new(release_rx);
    let up = upstream(move |conn, _| {
        write_sse_head(conn);
        write_chunk(conn, b"data: {\"n\":1}\n\n");
        conn.flush().unwrap();
        release_rx.lock().unwrap().recv().unwrap();
        write_chunk(conn, b"data: {\"n\":2,\"from\":\"held\"}\n\n");
        end_chunks(conn);
        true
    });
    (up, release_tx)
}

#[test]
fn reloads_alternating_good_and_bad_under_a_request_loop_fail_no_request() {
    let dir = Dir::new("loop");
    let (a, b) = (named_upstream("a"), named_upstream("b"));
    let (held, release) = held_stream();
    // An SSE route in every good config, its stream open across them all.
    let sse_route = format!(
        "\n[[route]]\nname = \"sse\"\npath = \"/sse\"\nupstream = \"http://{}/mcp\"\ntransport = \"streamable\"\n",
        held.addr
    );
    dir.write_config(&config(a.addr, &sse_route));
    let mut sluice = Running::start(&dir, &[]);
    let proxy = sluice.proxy;
    let stream = std::thread::spawn(move || call(proxy, "/sse"));
    held.requests.recv_timeout(PATIENCE).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let loops: Vec<_> = (0..2)
        .map(|_| {
            let (stop, done, proxy) = (stop.clone(), done.clone(), sluice.proxy);
            std::thread::spawn(move || {
                let mut failures = Vec::new();
                // Keep-alive and fresh connections both.
                let mut conn = connect(proxy);
                while !stop.load(Ordering::Relaxed) {
                    let body = CALL;
                    let sent = write!(
                        conn,
                        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
                         Accept: application/json, text/event-stream\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    let response = sent.map(|()| read_response(&mut conn, "POST"));
                    match response {
                        Ok(r) if r.status == 200 && r.complete => {}
                        Ok(r) => failures.push(format!("{} {}", r.status, r.text())),
                        Err(e) => failures.push(e.to_string()),
                    }
                    let n = done.fetch_add(1, Ordering::Relaxed);
                    if n % 7 == 0 {
                        conn = connect(proxy);
                    }
                }
                failures
            })
        })
        .collect();
    let bad = [
        "listen = [\n",
        "[[route]]\npath = \"/mcp\"\n",
        "nonsense = 1\n",
    ];
    for i in 0..12 {
        let before = done.load(Ordering::Relaxed);
        if i % 2 == 0 {
            let to = if i % 4 == 0 { b.addr } else { a.addr };
            sluice.reload_good(&dir, &config(to, &sse_route));
        } else {
            sluice.reload_bad(&dir, bad[(i / 2) % bad.len()]);
        }
        // Requests flow between reloads (no sleeping: wait for some).
        while done.load(Ordering::Relaxed) < before + 5 && !loops.iter().any(|l| l.is_finished()) {
            std::thread::yield_now();
        }
    }
    stop.store(true, Ordering::Relaxed);
    let failures: Vec<String> = loops.into_iter().flat_map(|l| l.join().unwrap()).collect();
    assert!(
        failures.is_empty(),
        "{} failed: {failures:?}",
        failures.len()
    );
    assert!(done.load(Ordering::Relaxed) > 60);
    // The stream opened before the first reload ends whole.
    release.send(()).unwrap();
    let streamed = stream.join().unwrap();
    assert!(streamed.complete, "{streamed:?}");
    assert!(
        streamed.text().contains("\"from\":\"held\""),
        "{}",
        streamed.text()
    );
    assert_eq!(
        sluice.metric(r#"sluice_config_reloads_total{outcome="invalid"}"#),
        Some(6.0)
    );
}

/// A config with a stdio route (the demo server, one shared child) at
/// `/stdio` beside `/mcp`.
fn with_stdio(upstream: SocketAddr) -> String {
    let program = env!("CARGO_BIN_EXE_sluice");
    config(
        upstream,
        &format!(
            "\n[[route]]\nname = \"demo\"\npath = \"/stdio\"\ncommand = [{program:?}, \"demo\", \"--stdio\"]\n"
        ),
    )
}

fn initialize(proxy: SocketAddr, path: &str) -> Response {
    let mut conn = connect(proxy);
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
    write!(
        conn,
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    read_response(&mut conn, "POST")
}

fn ping(proxy: SocketAddr, path: &str, session: &str) -> Response {
    let mut conn = connect(proxy);
    let body = r#"{"jsonrpc":"2.0","id":2,"method":"ping"}"#;
    write!(
        conn,
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nMcp-Session-Id: {session}\r\n\
         MCP-Protocol-Version: 2025-06-18\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    read_response(&mut conn, "POST")
}

#[test]
fn a_stdio_route_a_reload_leaves_unchanged_keeps_its_sessions() {
    let dir = Dir::new("stdio");
    let (a, b) = (named_upstream("a"), named_upstream("b"));
    dir.write_config(&with_stdio(a.addr));
    let mut sluice = Running::start(&dir, &[]);
    let init = initialize(sluice.proxy, "/stdio");
    assert_eq!(init.status, 200, "{}", init.text());
    let session = init.header("mcp-session-id").expect("a session id");
    assert_eq!(ping(sluice.proxy, "/stdio", &session).status, 200);

    // /mcp changes, /stdio does not: its child and sessions carry on.
    let line = sluice.reload_good(&dir, &with_stdio(b.addr));
    assert_eq!(from(&call(sluice.proxy, "/mcp")), "b");
    let pong = ping(sluice.proxy, "/stdio", &session);
    assert_eq!(pong.status, 200, "{}", pong.text());
    assert!(line.contains("kept=demo"), "{line}");

    // Removed: its requests are 404 and its child is stopped once no
    // exchange holds the old configuration.
    sluice.reload_good(&dir, &config(b.addr, ""));
    assert_eq!(ping(sluice.proxy, "/stdio", &session).status, 404);
    sluice.log.wait_for(
        "closed the sessions and children of routes a reload removed",
        1,
    );
}

#[test]
fn hooks_reload_with_the_config_and_watch_sees_a_hook_file_change() {
    use support::{DENIED, Guest, body};
    let dir = Dir::new("hooks");
    let a = named_upstream("a");
    dir.write_config(&config(a.addr, ""));
    let mut sluice = Running::start(&dir, &["--watch=50ms"]);
    assert_eq!(from(&call(sluice.proxy, "/mcp")), "a");

    // A hook that refuses every tools/call, added by the config.
    let deny = Guest::new(&["tools/call"], body::reject(403, DENIED)).component();
    dir.write("policy.wasm", &deny);
    dir.write_config(&config(a.addr, "\n[[hook]]\npath = \"policy.wasm\"\n"));
    sluice.reloaded();
    let refused = call(sluice.proxy, "/mcp");
    assert!(
        refused.text().contains("denied by policy"),
        "{}",
        refused.text()
    );

    // Only the hook file changes: watched too.
    let allow = Guest::new(&["tools/call"], body::cont()).component();
    dir.write("policy.wasm", &allow);
    sluice.reloaded();
    assert_eq!(from(&call(sluice.proxy, "/mcp")), "a");
}

/// The way a policy goes live (docs/HOOKS.md, "Modes and order"): deployed
/// with `mode = "audit"` it is run and counted, and every call goes on;
/// one word of config and a SIGHUP later it is enforced.
#[test]
fn a_hook_deployed_in_audit_mode_is_enforced_after_a_reload() {
    use support::{DENIED, Guest, body};
    let dir = Dir::new("audit");
    let a = named_upstream("a");
    let deny = Guest::new(&["tools/call"], body::reject(403, DENIED)).component();
    dir.write("policy.wasm", &deny);
    let hook = |mode: &str| {
        config(
            a.addr,
            &format!("\n[[hook]]\nname = \"policy\"\npath = \"policy.wasm\"\nmode = \"{mode}\"\n"),
        )
    };
    dir.write_config(&hook("audit"));
    let mut sluice = Running::start(&dir, &[]);
    let counted = |sluice: &Running, mode: &str| {
        sluice
            .metric(&format!(
                "sluice_hook_calls_total{{hook=\"policy\",phase=\"request\",verdict=\"reject\",mode=\"{mode}\"}}"
            ))
            .unwrap_or(0.0)
    };

    for _ in 0..2 {
        assert_eq!(
            from(&call(sluice.proxy, "/mcp")),
            "a",
            "audited, not applied"
        );
    }
    sluice
        .log
        .wait_for("audit: a hook's verdict, not applied", 2);
    assert_eq!(counted(&sluice, "audit"), 2.0);
    assert_eq!(counted(&sluice, "enforce"), 0.0);

    sluice.reload_good(&dir, &hook("enforce"));
    let refused = call(sluice.proxy, "/mcp");
    assert!(
        refused.text().contains("denied by policy"),
        "{}",
        refused.text()
    );
    assert_eq!(counted(&sluice, "enforce"), 1.0);
    assert_eq!(counted(&sluice, "audit"), 2.0);
}

/// A config with the demo server's legacy HTTP+SSE face at `/legacy`
/// (bridged, a backend session per client session) and a federation of
/// its Streamable HTTP face at `/fed` (sessions sealed with a key made at
/// start), beside `/mcp`.
fn with_sessions(upstream: SocketAddr, demo: SocketAddr) -> String {
    config(
        upstream,
        &format!(
            "\n[[route]]\nname = \"legacy\"\npath = \"/legacy\"\nupstream = \"http://{demo}/sse\"\ntransport = \"sse\"\n\
             \n[[route]]\nname = \"fed\"\npath = \"/fed\"\n\n[[route.server]]\nname = \"demo\"\nupstream = \"http://{demo}/mcp\"\n"
        ),
    )
}

#[test]
fn legacy_and_federated_sessions_survive_a_reload_that_leaves_their_route_unchanged() {
    let demo = sluice::demo::DemoServer::start().unwrap();
    let dir = Dir::new("sessions");
    let (a, b) = (named_upstream("a"), named_upstream("b"));
    dir.write_config(&with_sessions(a.addr, demo.addr()));
    let mut sluice = Running::start(&dir, &[]);
    let mut sessions = Vec::new();
    for path in ["/legacy", "/fed"] {
        let init = initialize(sluice.proxy, path);
        assert_eq!(init.status, 200, "{path}: {}", init.text());
        let session = init.header("mcp-session-id").expect("a session id");
        assert_eq!(ping(sluice.proxy, path, &session).status, 200, "{path}");
        sessions.push((path, session));
    }

    let line = sluice.reload_good(&dir, &with_sessions(b.addr, demo.addr()));
    assert_eq!(from(&call(sluice.proxy, "/mcp")), "b");
    for (path, session) in &sessions {
        let pong = ping(sluice.proxy, path, session);
        assert_eq!(pong.status, 200, "{path}: {}", pong.text());
    }
    assert!(line.contains("kept=legacy, fed"), "{line}");
    demo.shutdown();
}
