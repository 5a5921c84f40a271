//! The admin listener of the `sluice` binary: MCP requests through the
//! proxy to the demo server (JSON and SSE answers) move `/metrics` by
//! exactly what was sent;
//! `/healthz`, `/readyz` and `/config` (a secret redacted) answer; the
//! proxy's own port serves none of it.

#[path = "common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{ChildStdout, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;
use sluice::demo::DemoServer;

const SECRET: &str = "sk-admin-test-4242";

/// A running `sluice` with `--admin`, and the stdout it printed its
/// addresses on (kept open: sluice writes nothing more, but a closed pipe
/// is not what is tested here).
struct Running {
    sluice: Sluice,
    proxy: SocketAddr,
    admin: SocketAddr,
    _stdout: BufReader<ChildStdout>,
}

/// Start sluice on free ports (port 0, addresses read from its banner).
fn start(args: &[&str]) -> Running {
    let mut cmd = sluice_command(args);
    cmd.stdout(Stdio::piped()).stderr(Stdio::null());
    let mut sluice = Sluice(cmd.spawn().expect("sluice starts"));
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
    Running {
        sluice,
        proxy,
        admin,
        _stdout: stdout,
    }
}

/// One request on `conn`; `session` becomes its `Mcp-Session-Id`.
fn send(
    conn: &mut std::net::TcpStream,
    method: &str,
    path: &str,
    session: Option<&str>,
    body: &str,
) -> Response {
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/json, text/event-stream\r\n"
    );
    if let Some(id) = session {
        req.push_str(&format!("Mcp-Session-Id: {id}\r\n"));
    }
    if method == "POST" {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    req.push_str("\r\n");
    req.push_str(body);
    conn.write_all(req.as_bytes()).unwrap();
    read_response(conn, method)
}

/// A GET on a fresh connection.
fn get(addr: SocketAddr, path: &str) -> Response {
    send(&mut connect(addr), "GET", path, None, "")
}

fn header<'a>(r: &'a Response, name: &str) -> Option<&'a str> {
    r.head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// The value of the series `series` (name and labels, as written).
fn value(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn metrics_count_what_went_through_and_the_admin_paths_answer() {
    let demo = DemoServer::start().unwrap();
    let upstream = format!("http://{}/mcp?api_key={SECRET}", demo.addr());
    let mut running = start(&[
        "--upstream",
        &upstream,
        "--listen",
        "127.0.0.1:0",
        "--admin",
        "127.0.0.1:0",
        "--workers",
        "1",
    ]);
    assert_ne!(running.proxy, running.admin);

    // Before any traffic: healthy, ready, nothing counted.
    let health = get(running.admin, "/healthz");
    assert_eq!((health.status, health.text().trim()), (200, "ok"));
    assert_eq!(get(running.admin, "/readyz").status, 200);
    let before = get(running.admin, "/metrics").text();
    assert!(!before.contains("sluice_requests_total{"), "{before}");

    let mut c = connect(running.proxy);
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
    let r = send(&mut c, "POST", "/mcp", None, init);
    assert_eq!(r.status, 200, "{}", r.text());
    let session = header(&r, "mcp-session-id")
        .expect("the demo mints a session")
        .to_owned();
    let initialized = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
    let r = send(&mut c, "POST", "/mcp", Some(&session), initialized);
    assert_eq!(r.status, 202, "{}", r.text());
    for id in 2..5 {
        let call = format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"echo","arguments":{{"text":"hi"}}}}}}"#
        );
        let r = send(&mut c, "POST", "/mcp", Some(&session), &call);
        assert_eq!(r.status, 200, "{}", r.text());
    }
    // With a progress token, the demo's countdown answers with SSE.
    let countdown = r#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"countdown","arguments":{"n":1},"_meta":{"progressToken":"p"}}}"#;
    let sse = send(&mut c, "POST", "/mcp", Some(&session), countdown);
    assert_eq!(sse.status, 200, "{}", sse.text());
    assert_eq!(header(&sse, "content-type"), Some("text/event-stream"));
    assert!(sse.complete);
    // The admin paths are not the proxy's: no route serves them. This is
    // also the last exchange on `c`: a connection's exchange is counted
    // before its next one is read, so every one above is counted now.
    let r = send(&mut c, "GET", "/metrics", None, "");
    assert_eq!(r.status, 404);
    assert!(!r.text().contains("sluice_requests_total"), "{}", r.text());

    let scrape = get(running.admin, "/metrics");
    assert_eq!(scrape.status, 200);
    assert_eq!(
        header(&scrape, "content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let m = scrape.text();
    let series = |method: &str, status: u16| {
        format!(
            r#"sluice_requests_total{{route="127.0.0.1",method="{method}",status="{status}",outcome="complete"}}"#
        )
    };
    assert_eq!(value(&m, &series("initialize", 200)), Some(1.0), "{m}");
    assert_eq!(
        value(&m, &series("notifications/initialized", 202)),
        Some(1.0),
        "{m}"
    );
    assert_eq!(value(&m, &series("tools/call", 200)), Some(4.0), "{m}");
    let tool = |name: &str| {
        format!(r#"sluice_tool_calls_total{{route="127.0.0.1",tool="{name}",outcome="complete"}}"#)
    };
    assert_eq!(value(&m, &tool("echo")), Some(3.0), "{m}");
    assert_eq!(value(&m, &tool("countdown")), Some(1.0), "{m}");
    // Every family a real scrape shows is in the metrics reference.
    let reference = include_str!("../../docs/OPERATIONS.md");
    for family in m.lines().filter_map(|l| l.strip_prefix("# TYPE ")) {
        let name = family.split(' ').next().unwrap();
        assert!(
            reference.contains(&format!("| `{name}` |")),
            "{name} is not in docs/OPERATIONS.md"
        );
    }
    assert_eq!(
        value(
            &m,
            r#"sluice_request_duration_seconds_count{route="127.0.0.1"}"#
        ),
        Some(6.0),
        "{m}"
    );
    assert_eq!(
        value(
            &m,
            r#"sluice_request_head_seconds_count{route="127.0.0.1"}"#
        ),
        Some(6.0),
        "{m}"
    );
    let route = r#"{route="127.0.0.1"}"#;
    // Six exchanges went upstream, one after another on one client
    // connection: the first dialed, the rest took the pooled connection.
    let up = |name: &str| {
        value(
            &m,
            &format!("sluice_upstream_connections_{name}_total{route}"),
        )
    };
    let (opened, reused) = (up("opened"), up("reused"));
    assert_eq!((opened, reused), (Some(1.0), Some(5.0)), "{m}");
    // And it is back in the pool.
    let idle = format!("sluice_upstream_connections_idle{route}");
    assert_eq!(value(&m, &idle), Some(1.0), "{m}");
    // One SSE answer, over; its bytes as written to the client, which
    // are its events plus the chunk framing around them (a few bytes per
    // upstream read: two events here).
    let sse_series = |name: &str| value(&m, &format!("{name}{route}"));
    assert_eq!(sse_series("sluice_sse_streams_total"), Some(1.0), "{m}");
    assert_eq!(sse_series("sluice_sse_streams_open"), Some(0.0), "{m}");
    // Its events: the progress notification and the result.
    assert_eq!(events_in(&sse.body), 2, "{}", sse.text());
    assert_eq!(sse_series("sluice_sse_events_total"), Some(2.0), "{m}");
    let bytes = sse_series("sluice_sse_bytes_total").unwrap() as usize;
    let events = sse.body.len();
    assert!(
        (events..events + 64).contains(&bytes),
        "{bytes} bytes counted for {events} bytes of events\n{m}"
    );
    assert_eq!(
        value(&m, "sluice_log_lines_dropped_total"),
        Some(0.0),
        "{m}"
    );
    assert!(
        value(&m, "process_open_fds").is_some_and(|n| n > 0.0),
        "{m}"
    );
    assert!(
        value(&m, "process_resident_memory_bytes").is_some_and(|n| n > 0.0),
        "{m}"
    );

    // The effective config, its secret redacted.
    let config = get(running.admin, "/config");
    assert_eq!(config.status, 200);
    assert_eq!(header(&config, "content-type"), Some("application/json"));
    assert!(!config.text().contains(SECRET), "{}", config.text());
    let config: Value = serde_json::from_slice(&config.body).unwrap();
    assert_eq!(
        config["routes"][0]["upstream"],
        format!("http://{}/mcp?api_key=<redacted>", demo.addr())
    );
    assert_eq!(config["admin"], "127.0.0.1:0");

    // Anything else: 404; another method: 405.
    assert_eq!(get(running.admin, "/").status, 404);
    assert_eq!(get(running.admin, "/metrics/x").status, 404);
    let post = send(&mut connect(running.admin), "POST", "/metrics", None, "{}");
    assert_eq!(post.status, 405);
    assert_eq!(header(&post, "allow"), Some("GET"));

    // SIGTERM, by pid: a graceful stop.
    let pid = running.sluice.0.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let exit = loop {
        if let Some(exit) = running.sluice.0.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "sluice still runs after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(exit.success(), "{exit:?}");
}

#[test]
fn the_admin_listener_cannot_take_the_proxy_address() {
    let out = sluice_command(&[
        "--upstream",
        "http://127.0.0.1:9/mcp",
        "--listen",
        "127.0.0.1:18081",
        "--admin",
        "0.0.0.0:18081",
    ])
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--admin") && err.contains("the proxy's own listen address"),
        "{err}"
    );
}

/// `/readyz`'s answer: its status and its JSON body.
fn readyz(admin: SocketAddr) -> (u16, Value) {
    let r = get(admin, "/readyz");
    assert_eq!(header(&r, "content-type"), Some("application/json"));
    (r.status, serde_json::from_slice(&r.body).unwrap())
}

#[test]
fn readyz_is_503_naming_the_route_while_its_upstream_is_down_and_200_once_it_is_up() {
    // A free port, then nothing listening on it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let upstream = format!("http://127.0.0.1:{port}/mcp");
    let running = start(&[
        "--upstream",
        &upstream,
        "--listen",
        "127.0.0.1:0",
        "--admin",
        "127.0.0.1:0",
    ]);
    let (status, body) = readyz(running.admin);
    let first_check = Instant::now();
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["ready"], false, "{body}");
    let route = &body["routes"][0];
    assert_eq!(route["route"], "127.0.0.1", "{body}");
    assert_eq!(route["ready"], false, "{body}");
    let error = route["error"].as_str().unwrap();
    assert!(
        error.contains(&format!("127.0.0.1:{port}")) && error.contains("refused"),
        "{error}"
    );
    // /healthz says alive all the same.
    assert_eq!(get(running.admin, "/healthz").status, 200);
    // A request finds the upstream refused: a dial failure at connect
    // (the probe above is not one).
    let failures = |m: &str, stage: &str| {
        let series =
            format!(r#"sluice_upstream_dial_failures_total{{route="127.0.0.1",stage="{stage}"}}"#);
        value(m, &series)
    };
    let m = get(running.admin, "/metrics").text();
    assert_eq!(failures(&m, "connect"), Some(0.0), "{m}");
    let ping = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
    let r = send(&mut connect(running.proxy), "POST", "/mcp", None, ping);
    assert_eq!(r.status, 502, "{}", r.text());
    let m = get(running.admin, "/metrics").text();
    assert_eq!(failures(&m, "connect"), Some(1.0), "{m}");
    assert_eq!(failures(&m, "resolve"), Some(0.0), "{m}");
    let opened = r#"sluice_upstream_connections_opened_total{route="127.0.0.1"}"#;
    assert_eq!(value(&m, opened), Some(0.0), "{m}");

    // The upstream comes up.
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let (status, body) = readyz(running.admin);
    if first_check.elapsed() < Duration::from_millis(1500) {
        assert_eq!(status, 503, "a check answers for 2 s: {body}");
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    let body = loop {
        let (status, body) = readyz(running.admin);
        if status == 200 {
            break body;
        }
        assert!(Instant::now() < deadline, "still not ready: {body}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        first_check.elapsed() >= Duration::from_secs(2),
        "not cached"
    );
    assert_eq!(
        body,
        serde_json::json!({"ready": true, "routes": [{"route": "127.0.0.1", "ready": true}]})
    );
    // The probe connected and went away without a request.
    listener.set_nonblocking(false).unwrap();
    let (mut probe, _) = listener.accept().unwrap();
    probe
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(std::io::Read::read(&mut probe, &mut buf).unwrap(), 0);
}

#[test]
fn readyz_names_a_command_route_whose_program_is_missing() {
    let running = start(&[
        "--upstream-command",
        "/no/such/mcp-server --stdio",
        "--listen",
        "127.0.0.1:0",
        "--admin",
        "127.0.0.1:0",
    ]);
    let (status, body) = readyz(running.admin);
    assert_eq!(status, 503, "{body}");
    let error = body["routes"][0]["error"].as_str().unwrap();
    assert!(error.contains("/no/such/mcp-server"), "{body}");
    drop(running);
    // A program that is there: ready before any child has started.
    let running = start(&[
        "--upstream-command",
        "sh -c 'sleep 60'",
        "--listen",
        "127.0.0.1:0",
        "--admin",
        "127.0.0.1:0",
    ]);
    let (status, body) = readyz(running.admin);
    assert_eq!(status, 200, "{body}");
    drop(running);

    // There, executable, but it cannot start (its interpreter is missing):
    // not ready once a start has failed.
    let script = std::env::temp_dir().join(format!("sluice-readyz-{}", std::process::id()));
    std::fs::write(&script, "#!/no/such/interpreter\n").unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let running = start(&[
        "--upstream-command",
        script.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--admin",
        "127.0.0.1:0",
    ]);
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
    let r = send(&mut connect(running.proxy), "POST", "/mcp", None, init);
    std::fs::remove_file(&script).unwrap();
    assert!(
        r.status >= 500 || r.text().contains("error"),
        "{}",
        r.text()
    );
    let (status, body) = readyz(running.admin);
    assert_eq!(status, 503, "{body}");
    let error = body["routes"][0]["error"].as_str().unwrap();
    assert!(error.contains("failed to start"), "{body}");
}

#[test]
fn keepalive_comments_on_a_quiet_sse_stream_are_counted_when_it_ends() {
    use std::io::Read;
    let demo = DemoServer::start().unwrap();
    let proxy = proxy_with(demo.addr(), |s| {
        s.exchange.timeouts.sse_keepalive = Some(Duration::from_millis(100));
        s.admin = Some(sluice::proxy::AdminSettings {
            listen: "127.0.0.1:0".parse().unwrap(),
            config_json: "{}".into(),
        });
    });
    let admin = proxy.admin_addr().unwrap();
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
    let r = send(&mut connect(proxy.local_addr()), "POST", "/mcp", None, init);
    let session = header(&r, "mcp-session-id").unwrap().to_owned();
    // The session's GET stream: the demo sends nothing on it.
    let mut stream = connect(proxy.local_addr());
    let get = format!(
        "GET /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\nMcp-Session-Id: {session}\r\n\r\n"
    );
    stream.write_all(get.as_bytes()).unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 512];
    while seen.windows(11).filter(|w| w == b": keepalive").count() < 2 {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "{}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buf[..n]);
    }
    drop(stream);
    // The in-process settings name their one route "upstream".
    let series = r#"sluice_sse_keepalives_total{route="upstream"}"#;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let m = get_metrics(admin);
        match value(&m, series) {
            Some(n) if n >= 2.0 => break,
            _ => assert!(Instant::now() < deadline, "{m}"),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    proxy.shutdown();
}

/// The events a client reads in an SSE body: blocks with a `data` line.
fn events_in(body: &[u8]) -> usize {
    String::from_utf8_lossy(body)
        .replace("\r\n", "\n")
        .split("\n\n")
        .filter(|block| block.lines().any(|l| l.starts_with("data")))
        .count()
}

#[test]
fn events_of_a_get_stream_passed_through_unread_are_counted_when_it_ends() {
    use std::io::Read;
    let demo = DemoServer::start().unwrap();
    // No keep-alives: the GET stream owes nothing and nothing reads it.
    let proxy = proxy_with(demo.addr(), |s| {
        s.admin = Some(sluice::proxy::AdminSettings {
            listen: "127.0.0.1:0".parse().unwrap(),
            config_json: "{}".into(),
        });
    });
    let admin = proxy.admin_addr().unwrap();
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
    let mut c = connect(proxy.local_addr());
    let r = send(&mut c, "POST", "/mcp", None, init);
    let session = header(&r, "mcp-session-id").unwrap().to_owned();
    let mut stream = connect(proxy.local_addr());
    let get = format!(
        "GET /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\nMcp-Session-Id: {session}\r\n\r\n"
    );
    stream.write_all(get.as_bytes()).unwrap();
    // The head came through: the demo holds the stream open now.
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "{}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buf[..n]);
    }
    // Each call logs a notification on the session's GET stream.
    for id in 2..4 {
        let call = format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"echo","arguments":{{"text":"hi"}}}}}}"#
        );
        let r = send(&mut c, "POST", "/mcp", Some(&session), &call);
        assert_eq!(r.status, 200, "{}", r.text());
    }
    while seen.windows(5).filter(|w| w == b"data:").count() < 2 {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "{}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buf[..n]);
    }
    // Ending the session ends its stream cleanly, and its exchange.
    let r = send(&mut c, "DELETE", "/mcp", Some(&session), "");
    assert_eq!(r.status, 200, "{}", r.text());
    let route = r#"{route="upstream"}"#;
    let deadline = Instant::now() + Duration::from_secs(10);
    let m = loop {
        let m = get_metrics(admin);
        if value(&m, &format!("sluice_sse_streams_total{route}")) == Some(1.0) {
            break m;
        }
        assert!(Instant::now() < deadline, "{m}");
        std::thread::sleep(Duration::from_millis(20));
    };
    let events = value(&m, &format!("sluice_sse_events_total{route}"));
    assert_eq!(events, Some(2.0), "{m}");
    proxy.shutdown();
}

fn get_metrics(admin: SocketAddr) -> String {
    get(admin, "/metrics").text()
}
