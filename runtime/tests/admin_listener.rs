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
    // One SSE answer, over; its bytes as written to the client, which
    // are its events plus the chunk framing around them (a few bytes per
    // upstream read: two events here).
    let route = r#"{route="127.0.0.1"}"#;
    let sse_series = |name: &str| value(&m, &format!("{name}{route}"));
    assert_eq!(sse_series("sluice_sse_streams_total"), Some(1.0), "{m}");
    assert_eq!(sse_series("sluice_sse_streams_open"), Some(0.0), "{m}");
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
