//! The `sluice` binary's JSON log lines (`--log-format json`) against the
//! field reference in docs/OPERATIONS.md: the access line's fields are the
//! documented ones (those documented as always there in every line), a
//! session id is written only as its hash; a refused upstream and a failed
//! TLS handshake log at `WARN` with the upstream's address and the OS
//! error, with exactly the fields the doc lists.

#[path = "common/mod.rs"]
mod common;

use std::io::{BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::process::{ChildStderr, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Map, Value};

const DOC: &str = include_str!("../../docs/OPERATIONS.md");

/// The rows of the table under `heading` in docs/OPERATIONS.md, as cells
/// with their backticks stripped.
fn table(heading: &str) -> Vec<Vec<String>> {
    let (_, after) = DOC
        .split_once(&format!("\n{heading}\n"))
        .unwrap_or_else(|| panic!("{heading:?} is not in docs/OPERATIONS.md"));
    after
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2)
        .map(|l| {
            l.trim_matches('|')
                .split('|')
                .map(|c| c.trim().trim_matches('`').to_owned())
                .collect()
        })
        .collect()
}

/// Start sluice with JSON logs; its address and its stderr.
fn start(upstream: &str) -> (Sluice, SocketAddr, ChildStderr) {
    start_with(upstream, &[])
}

fn start_with(upstream: &str, more: &[&str]) -> (Sluice, SocketAddr, ChildStderr) {
    let mut args = vec![
        "--upstream",
        upstream,
        "--listen",
        "127.0.0.1:0",
        "--log-format",
        "json",
        "--workers",
        "1",
    ];
    args.extend_from_slice(more);
    let mut cmd = sluice_command(&args);
    cmd.stderr(Stdio::piped());
    let (mut child, addr) = start_sluice(cmd);
    let stderr = child.0.stderr.take().unwrap();
    (child, addr, stderr)
}

/// SIGTERM, wait for the exit, and every line of its log as JSON.
fn stop(mut child: Sluice, stderr: ChildStderr) -> Vec<Map<String, Value>> {
    let pid = child.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.0.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "sluice still runs after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut log = String::new();
    BufReader::new(stderr).read_to_string(&mut log).unwrap();
    log.lines()
        .map(|l| match serde_json::from_str(l) {
            Ok(Value::Object(map)) => map,
            _ => panic!("not a JSON object: {l:?}\n{log}"),
        })
        .collect()
}

fn post_with(addr: SocketAddr, session: Option<&str>, body: &str) -> Response {
    let mut conn = connect(addr);
    let mut req = format!(
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/json, text/event-stream\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(id) = session {
        req.push_str(&format!("Mcp-Session-Id: {id}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    conn.write_all(req.as_bytes()).unwrap();
    read_response(&mut conn, "POST")
}

const SESSION: &str = "9f1c7e0a-secret-session-id-4242";

#[test]
fn json_access_lines_carry_exactly_the_documented_fields() {
    let up = upstream(|conn, _req| {
        let body = r#"{"jsonrpc":"2.0","id":1,"result":{}}"#;
        let resp = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nMcp-Session-Id: {SESSION}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        conn.write_all(resp.as_bytes()).unwrap();
        true
    });
    let (child, addr, stderr) = start(&format!("http://{}/mcp?key=k", up.addr));
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
    assert_eq!(post_with(addr, None, init).status, 200);
    let call =
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{}}}"#;
    assert_eq!(post_with(addr, Some(SESSION), call).status, 200);
    assert_eq!(post_with(addr, Some(SESSION), call).status, 200);
    // No route: a line without route or upstream.
    let mut conn = connect(addr);
    conn.write_all(b"GET /elsewhere HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut conn, "GET").status, 404);
    drop(conn);
    let lines = stop(child, stderr);

    let rows = table("#### The access line");
    let documented: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    let always: Vec<&str> = rows
        .iter()
        .filter(|r| r[2] == "always")
        .map(|r| r[0].as_str())
        .collect();
    assert!(always.contains(&"outcome"), "{rows:?}");
    let access: Vec<&Map<String, Value>> = lines
        .iter()
        .filter(|l| l.get("target").and_then(Value::as_str) == Some("sluice::access"))
        .collect();
    assert_eq!(access.len(), 4, "{lines:#?}");
    for line in &access {
        for key in line.keys() {
            assert!(
                documented.contains(&key.as_str()),
                "{key:?} is not in docs/OPERATIONS.md's access line table: {line:?}"
            );
        }
        for key in &always {
            assert!(line.contains_key(*key), "{key:?} missing: {line:?}");
        }
    }
    let (init, calls, unrouted) = (access[0], &access[1..3], access[3]);
    assert_eq!(init["rpc"], "initialize");
    assert!(!init.contains_key("session"), "{init:?}");
    let upstream = up.addr.to_string();
    for call in calls {
        assert_eq!(call["rpc"], "tools/call");
        assert_eq!(call["name"], "echo");
        assert_eq!(call["route"], "127.0.0.1");
        // The address only: the URL's query (a key) is not written.
        assert_eq!(call["upstream"], upstream.as_str());
        assert_eq!(call["status"], 200);
        let session = call["session"].as_str().unwrap();
        assert_eq!(session.len(), 16, "{call:?}");
        assert!(session.bytes().all(|b| b.is_ascii_hexdigit()), "{call:?}");
    }
    // One session, one hash; the id itself is nowhere in the log.
    assert_eq!(calls[0]["session"], calls[1]["session"]);
    for line in &lines {
        let text = serde_json::to_string(line).unwrap();
        assert!(!text.contains("secret-session"), "{text}");
        assert!(!text.contains("key=k"), "{text}");
    }
    assert_eq!(unrouted["status"], 404);
    assert!(!unrouted.contains_key("route") && !unrouted.contains_key("upstream"));
}

/// The `WARN` line with `message`, checked against the doc's row for it;
/// returns it.
fn alert_line<'a>(lines: &'a [Map<String, Value>], message: &str) -> &'a Map<String, Value> {
    let line = lines
        .iter()
        .find(|l| l.get("message").and_then(Value::as_str) == Some(message))
        .unwrap_or_else(|| panic!("no {message:?} line: {lines:#?}"));
    assert_eq!(line["level"], "WARN", "{line:?}");
    let rows = table("#### Lines to alert on");
    let row = rows
        .iter()
        .find(|r| r[0] == message)
        .unwrap_or_else(|| panic!("{message:?} is not in the doc's table"));
    assert_eq!(line["target"], row[1].as_str(), "{line:?}");
    let mut documented: Vec<String> = row[2]
        .split(',')
        .map(|f| f.trim().trim_matches('`').to_owned())
        .chain(["timestamp", "level", "message", "target"].map(String::from))
        .collect();
    documented.sort();
    let mut keys: Vec<String> = line.keys().cloned().collect();
    keys.sort();
    assert_eq!(keys, documented, "{line:?}");
    line
}

/// A loopback port nothing listens on (bound, then closed).
fn refused_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

#[test]
fn a_refused_upstream_warns_with_its_address_and_the_os_error() {
    let dead = refused_port();
    let (child, addr, stderr) = start(&format!("http://{dead}/mcp"));
    let call =
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{}}}"#;
    assert_eq!(post_with(addr, None, call).status, 502);
    let lines = stop(child, stderr);
    let line = alert_line(&lines, "upstream connect failed");
    assert_eq!(line["upstream"], dead.to_string().as_str());
    assert_eq!(line["route"], "127.0.0.1");
    let error = line["error"].as_str().unwrap();
    assert!(
        error.contains("refused") && error.contains("os error 111"),
        "{error}"
    );
    let access = lines
        .iter()
        .find(|l| l.get("target").and_then(Value::as_str) == Some("sluice::access"))
        .unwrap();
    assert_eq!(access["fault"], "upstream", "{access:?}");
}

#[test]
fn a_refused_legacy_backend_warns_the_same_way() {
    let dead = refused_port();
    let (child, addr, stderr) = start_with(
        &format!("http://{dead}/sse"),
        &["--upstream-transport", "sse", "--path", "/mcp"],
    );
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
    let status = post_with(addr, None, init).status;
    assert!(status >= 500, "{status}");
    let lines = stop(child, stderr);
    let line = alert_line(&lines, "upstream connect failed");
    assert_eq!(line["upstream"], dead.to_string().as_str());
    assert_eq!(line["route"], "127.0.0.1");
    assert!(
        line["error"].as_str().unwrap().contains("os error 111"),
        "{line:?}"
    );
}

#[test]
fn a_failed_tls_handshake_warns_with_the_upstreams_address() {
    // Speaks plain HTTP where sluice expects TLS.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let at = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let _ = conn.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
        }
    });
    let (child, addr, stderr) = start(&format!("https://{at}/mcp"));
    let call =
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{}}}"#;
    assert_eq!(post_with(addr, None, call).status, 502);
    let lines = stop(child, stderr);
    let line = alert_line(&lines, "upstream TLS handshake failed");
    assert_eq!(line["upstream"], at.to_string().as_str());
    assert!(!line["error"].as_str().unwrap().is_empty(), "{line:?}");
    assert!(
        !lines
            .iter()
            .any(|l| l.get("message").and_then(Value::as_str) == Some("upstream connect failed")),
        "the TCP connect worked: {lines:#?}"
    );
}
