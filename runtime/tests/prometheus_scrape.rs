//! A real Prometheus server (Debian's `prometheus` package) scrapes the
//! admin listener of a running `sluice`, and its HTTP API returns the
//! series with the values the traffic made.
//!
//! Ignored by `cargo test` (it needs the `prometheus` binary); run by
//! `scripts/test-all`, which installs it:
//!
//! ```text
//! cargo test -p sluice --test prometheus_scrape -- --ignored
//! ```
//!
//! `SLUICE_PROMETHEUS` names another binary.

#[path = "common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;
use sluice::demo::DemoServer;

/// How long Prometheus gets to start, scrape and answer: a bound on a
/// failure, never a measurement.
const PATIENCE: Duration = Duration::from_secs(90);

/// A child process killed (by its pid) and reaped when dropped, with a
/// directory removed after it.
struct Owned {
    child: Child,
    dir: Option<PathBuf>,
}

impl Drop for Owned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(dir) = self.dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A GET, or `None` while nothing listens at `addr` yet.
fn try_get(addr: SocketAddr, target: &str) -> Option<Response> {
    let mut c = std::net::TcpStream::connect(addr).ok()?;
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        c,
        "GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    Some(read_response(&mut c, "GET"))
}

fn post(addr: SocketAddr, session: Option<&str>, body: &str) -> Response {
    let mut c = connect(addr);
    let session = session.map_or(String::new(), |s| format!("Mcp-Session-Id: {s}\r\n"));
    write!(
        c,
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\n{session}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    read_response(&mut c, "POST")
}

/// Ask Prometheus's query API until `accept` takes its `data.result`
/// (scrapes come every second: a value is there after the next one).
fn query_until(prom: SocketAddr, query: &str, accept: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let target = format!("/api/v1/query?query={}", encode(query));
    let deadline = Instant::now() + PATIENCE;
    let mut last = String::new();
    while Instant::now() < deadline {
        if let Some(r) = try_get(prom, &target) {
            last = r.text();
            if let Ok(v) = serde_json::from_slice::<Value>(&r.body)
                && let Some(result) = v["data"]["result"].as_array()
                && accept(result)
            {
                return result.clone();
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!("Prometheus never answered {query:?} as expected; last answer: {last}");
}

/// Percent-encoding for a query parameter.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn sample(series: &Value) -> f64 {
    series["value"][1].as_str().unwrap().parse().unwrap()
}

#[test]
#[ignore = "needs Debian's prometheus binary; scripts/test-all installs it and runs this"]
fn prometheus_scrapes_the_admin_listener_and_sees_the_traffic() {
    let binary = std::env::var("SLUICE_PROMETHEUS").unwrap_or_else(|_| "prometheus".into());
    let version = Command::new(&binary).arg("--version").output();
    let version = match version {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).into_owned(),
        _ => panic!("no {binary:?}: apt-get install prometheus (scripts/test-all does)"),
    };
    eprintln!("{}", version.lines().next().unwrap_or_default());

    let demo = DemoServer::start().unwrap();
    let mut cmd = sluice_command(&[
        "--upstream",
        &format!("http://{}/mcp", demo.addr()),
        "--listen",
        "127.0.0.1:0",
        "--admin",
        "127.0.0.1:0",
    ]);
    cmd.stdout(Stdio::piped()).stderr(Stdio::null());
    let mut sluice = Sluice(cmd.spawn().expect("sluice starts"));
    let mut stdout = BufReader::new(sluice.0.stdout.take().unwrap());
    let mut address = |prefix: &str| -> SocketAddr {
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        line.trim().strip_prefix(prefix).unwrap().parse().unwrap()
    };
    let proxy = address("sluice listening on http://");
    let admin = address("admin listening on http://");

    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
    let r = post(proxy, None, init);
    assert_eq!(r.status, 200, "{}", r.text());
    let session = r
        .head
        .lines()
        .find_map(|l| {
            l.strip_prefix("Mcp-Session-Id: ")
                .or_else(|| l.strip_prefix("mcp-session-id: "))
        })
        .expect("a session id")
        .trim()
        .to_owned();
    for id in 2..6 {
        let call = format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"echo","arguments":{{"text":"hi"}}}}}}"#
        );
        assert_eq!(post(proxy, Some(&session), &call).status, 200);
    }

    let dir = std::env::temp_dir().join(format!("sluice-prometheus-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
             scrape_configs:\n  - job_name: sluice\n    static_configs:\n      - targets: ['{admin}']\n"
        ),
    )
    .unwrap();
    let prom_addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
    let child = Command::new(&binary)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address={prom_addr}"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("prometheus starts");
    let _prometheus = Owned {
        child,
        dir: Some(dir),
    };

    // The target is up: Prometheus scraped the admin listener and parsed it.
    let up = query_until(prom_addr, r#"up{job="sluice"}"#, |r| {
        r.first().is_some_and(|s| sample(s) == 1.0)
    });
    assert_eq!(up.len(), 1, "{up:?}");

    // The series the traffic made, with its exact count.
    let calls = query_until(
        prom_addr,
        r#"sluice_requests_total{job="sluice",method="tools/call"}"#,
        |r| r.first().is_some_and(|s| sample(s) == 4.0),
    );
    assert_eq!(calls.len(), 1, "{calls:?}");
    let labels = &calls[0]["metric"];
    assert_eq!(labels["route"], "127.0.0.1", "{labels}");
    assert_eq!(labels["status"], "200", "{labels}");
    assert_eq!(labels["outcome"], "complete", "{labels}");

    // Sane process values: some memory, some descriptors.
    let rss = query_until(
        prom_addr,
        r#"process_resident_memory_bytes{job="sluice"}"#,
        |r| !r.is_empty(),
    );
    assert!(sample(&rss[0]) > 1e6, "{rss:?}");
    let histogram = query_until(
        prom_addr,
        r#"sluice_request_duration_seconds_count{job="sluice",route="127.0.0.1"}"#,
        |r| r.first().is_some_and(|s| sample(s) == 5.0),
    );
    assert_eq!(histogram.len(), 1, "{histogram:?}");

    // Every query of the Grafana dashboard is PromQL this Prometheus
    // takes, and those of the traffic above find it.
    let dashboard: Value =
        serde_json::from_str(include_str!("../../deploy/grafana/sluice.json")).unwrap();
    let mut exprs = Vec::new();
    collect_exprs(&dashboard, &mut exprs);
    assert!(exprs.len() > 20, "{exprs:?}");
    for expr in &exprs {
        // As Grafana sends it: every variable at "All", a rate window.
        let query = expr
            .replace("$__rate_interval", "1m")
            .replace("$job", ".*")
            .replace("$instance", ".*")
            .replace("$route", ".*");
        let target = format!("/api/v1/query?query={}", encode(&query));
        let answer = try_get(prom_addr, &target).expect("prometheus answers");
        let v: Value = serde_json::from_slice(&answer.body).unwrap();
        assert_eq!(v["status"], "success", "{query}: {}", answer.text());
    }
    for expr in exprs.iter().filter(|e| {
        e.starts_with("sum by (route, status) (rate(sluice_requests_total")
            || e.starts_with("sum by (route, tool) (rate(sluice_tool_calls_total")
            || e.starts_with("process_resident_memory_bytes")
    }) {
        let query = expr
            .replace("$__rate_interval", "1m")
            .replace("$job", ".*")
            .replace("$instance", ".*")
            .replace("$route", ".*");
        query_until(prom_addr, &query, |r| !r.is_empty());
    }
}

/// Every `expr` in a Grafana dashboard.
fn collect_exprs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("expr", Value::String(e)) => out.push(e.clone()),
                    _ => collect_exprs(value, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| collect_exprs(i, out)),
        _ => {}
    }
}
