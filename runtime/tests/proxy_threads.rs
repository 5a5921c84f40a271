//! One runtime in the binary: the threads of a running sluice process are
//! main, the `rt` workers, the blocking DNS threads, the log writer
//! (`sluice-log`, which blocks on stderr so workers never do) and the
//! reload thread (`sluice-reload`, which reads the config and compiles hooks
//! off the workers, and otherwise waits on a channel), nothing that runs
//! a reactor or executor of its own (async-io's `async-io`, smol's
//! `blocking-*` and executor threads, a `sluice-io` reactor, a deadline
//! thread). And SIGTERM/SIGINT, which arrive on a worker's poller, still
//! shut it down gracefully.

#[path = "common/mod.rs"]
mod common;
#[path = "fixtures/legacy_backend.rs"]
mod legacy_backend;

use std::io::{BufReader, Read, Write};
use std::net::SocketAddr;
use std::process::{ChildStderr, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// Start the binary with `args`; returns it, the address it listens on and
/// its log.
fn start(args: &[&str]) -> (Sluice, SocketAddr, ChildStderr) {
    let mut cmd = sluice_command(args);
    cmd.stderr(Stdio::piped());
    let (mut child, addr) = start_sluice(cmd);
    let stderr = child.0.stderr.take().unwrap();
    (child, addr, stderr)
}

/// The names of the process's threads (`/proc/<pid>/task/*/comm`), sorted.
fn threads(pid: u32) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .map(|name| name.trim_end().to_owned())
        .collect();
    names.sort();
    names
}

/// Every thread is main (`sluice`), a worker, a DNS thread, the log
/// writer or the reload thread.
fn assert_one_runtime(names: &[String], workers: usize) {
    for name in names {
        let known = name == "sluice"
            || name == "sluice-dns"
            || name == "sluice-log"
            || name == "sluice-reload"
            || name
                .strip_prefix("sluice-w")
                .and_then(|i| i.parse::<usize>().ok())
                .is_some_and(|i| i < workers);
        assert!(known, "unexpected thread {name:?} in {names:?}");
    }
    assert_eq!(
        names.iter().filter(|n| *n == "sluice").count(),
        1,
        "{names:?}"
    );
    for i in 0..workers {
        assert!(names.contains(&format!("sluice-w{i}")), "{names:?}");
    }
}

/// Signal `child` and wait for it to exit on its own; returns its log.
fn signal_and_wait(child: &mut Sluice, signal: &str, stderr: ChildStderr) -> String {
    let status = Command::new("kill")
        .args([signal, &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let exit = loop {
        if let Some(exit) = child.0.try_wait().unwrap() {
            break exit;
        }
        assert!(
            Instant::now() < deadline,
            "sluice still runs after {signal}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut log = String::new();
    BufReader::new(stderr).read_to_string(&mut log).unwrap();
    assert!(exit.success(), "{exit:?}\n{log}");
    log
}

#[test]
fn a_proxy_runs_on_its_workers_and_dns_threads_and_stops_on_sigterm() {
    let up = upstream(|conn, _| {
        json_response(conn, r#"{"jsonrpc":"2.0","id":"abc","result":{}}"#);
        true
    });
    // A host name, not an IP literal: the connect goes through a DNS thread.
    let upstream_url = format!("http://localhost:{}/mcp", up.addr.port());
    let (mut child, addr, stderr) = start(&[
        "--upstream",
        &upstream_url,
        "--listen",
        "127.0.0.1:0",
        "--workers",
        "2",
    ]);
    let mut c = connect(addr);
    c.write_all(&post(CALL)).unwrap();
    let r = read_response(&mut c, "POST");
    assert_eq!(r.status, 200, "{}", r.text());

    let names = threads(child.0.id());
    assert_one_runtime(&names, 2);
    assert!(
        names.iter().any(|n| n == "sluice-dns"),
        "the name was resolved on a DNS thread: {names:?}"
    );

    // `c` is an idle keep-alive connection: shutdown closes it at once.
    let log = signal_and_wait(&mut child, "-TERM", stderr);
    assert!(
        log.lines()
            .any(|l| l.contains("shutting down") && l.contains("SIGTERM")),
        "{log}"
    );
    let mut rest = Vec::new();
    let _ = c.read_to_end(&mut rest);
    assert!(rest.is_empty(), "{:?}", String::from_utf8_lossy(&rest));
}

#[test]
fn sluice_demo_serves_its_demo_server_on_the_proxys_workers_and_stops_on_sigint() {
    let (mut child, addr, stderr) = start(&["demo", "--listen", "127.0.0.1:0"]);
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
    let mut c = connect(addr);
    c.write_all(&post(init)).unwrap();
    let r = read_response(&mut c, "POST");
    assert_eq!(r.status, 200, "{}", r.text());
    drop(c);

    let names = threads(child.0.id());
    // No `sluice-demo` thread, no `sluice-dns` (the demo is at 127.0.0.1).
    let workers = names.iter().filter(|n| n.starts_with("sluice-w")).count();
    assert!(workers >= 1, "{names:?}");
    assert_one_runtime(&names, workers);
    assert!(!names.iter().any(|n| n == "sluice-dns"), "{names:?}");

    let log = signal_and_wait(&mut child, "-INT", stderr);
    assert!(
        log.lines()
            .any(|l| l.contains("shutting down") && l.contains("SIGINT")),
        "{log}"
    );
}

#[test]
fn a_bridged_legacy_session_runs_on_the_same_workers() {
    let backend = legacy_backend::backend(legacy_backend::Opts::default());
    let upstream_url = format!("http://{}/sse", backend.addr);
    let (mut child, addr, stderr) = start(&[
        "--upstream",
        &upstream_url,
        "--upstream-transport",
        "sse",
        "--listen",
        "127.0.0.1:0",
        "--workers",
        "2",
    ]);
    // initialize opens a backend session: its SSE stream, its POST, its
    // timers; the answer comes back through the typed link.
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
    let mut c = connect(addr);
    // The route serves the upstream URL's own path.
    let request = String::from_utf8(post(init))
        .unwrap()
        .replacen("/mcp", "/sse", 1);
    c.write_all(request.as_bytes()).unwrap();
    let r = read_response(&mut c, "POST");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(backend.opened.load(std::sync::atomic::Ordering::SeqCst), 1);

    let names = threads(child.0.id());
    assert_one_runtime(&names, 2);
    signal_and_wait(&mut child, "-TERM", stderr);
}

#[test]
fn a_closed_stdout_does_not_take_sluice_down() {
    use std::io::BufRead;
    // The reader is gone before sluice writes its first line: that write
    // fails (EPIPE), and sluice must go on serving and stop cleanly.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut child = Sluice(
        sluice_command(&["demo", "--listen", "127.0.0.1:0"])
            .stdout(writer)
            .stderr(Stdio::piped())
            .spawn()
            .expect("sluice starts"),
    );
    let mut log = BufReader::new(child.0.stderr.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        let n = log.read_line(&mut line).unwrap();
        assert!(n > 0, "sluice ended its log early:\n{seen}");
        seen.push_str(&line);
        if line.contains("stdout is closed") {
            break;
        }
    }
    assert!(
        child.0.try_wait().unwrap().is_none(),
        "sluice exited:\n{seen}"
    );
    let status = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut rest = String::new();
    log.read_to_string(&mut rest).unwrap();
    let exit = child.0.wait().unwrap();
    assert!(exit.success(), "{exit:?}\n{seen}{rest}");
}

#[test]
fn sluice_demo_bridges_its_legacy_face_found_by_the_default_transport() {
    let (mut child, addr, stderr) = start(&["demo", "--listen", "127.0.0.1:0"]);
    let legacy = |body: &str, session: Option<&str>| {
        let session = session.map_or(String::new(), |s| format!("Mcp-Session-Id: {s}\r\n"));
        let req = format!(
            "POST /legacy HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
             Accept: application/json, text/event-stream\r\n{session}Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let mut c = connect(addr);
        c.write_all(req.as_bytes()).unwrap();
        read_response(&mut c, "POST")
    };
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
    let r = legacy(init, None);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("sluice-demo-legacy"), "{}", r.text());
    let session = r
        .header("mcp-session-id")
        .expect("a session minted by the bridge");
    let r = legacy(
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
        Some(&session),
    );
    assert_eq!(r.status, 202, "{}", r.text());
    let r = legacy(CALL, Some(&session));
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains(r#""text":"hi""#), "{}", r.text());
    let log = signal_and_wait(&mut child, "-TERM", stderr);
    assert!(
        log.lines()
            .any(|l| l.contains("upstream transport: HTTP+SSE") && l.contains("status=405")),
        "{log}"
    );
}

#[test]
fn the_demo_federates_its_three_faces_behind_one_endpoint() {
    let (mut child, addr, stderr) = start(&["demo", "--listen", "127.0.0.1:0"]);
    let rpc = |c: &mut std::net::TcpStream, sid: Option<&str>, body: &str| {
        let mut req = format!(
            "POST /federated HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
             Accept: application/json, text/event-stream\r\nContent-Length: {}\r\n",
            body.len()
        );
        if let Some(s) = sid {
            req.push_str(&format!("Mcp-Session-Id: {s}\r\n"));
        }
        req.push_str("\r\n");
        req.push_str(body);
        c.write_all(req.as_bytes()).unwrap();
        read_response(c, "POST")
    };
    let mut c = connect(addr);
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
    let r = rpc(&mut c, None, init);
    assert_eq!(r.status, 200, "{}", r.text());
    let sid = r.header("mcp-session-id").expect("a session");
    let note = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
    assert_eq!(rpc(&mut c, Some(&sid), note).status, 202);
    let list = rpc(
        &mut c,
        Some(&sid),
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#,
    );
    let text = list.text();
    for name in ["stdio__echo", "http__echo", "legacy__echo"] {
        assert!(text.contains(name), "{name} in {text}");
    }
    for (id, member) in ["stdio", "http", "legacy"].iter().enumerate() {
        let call = format!(
            r#"{{"jsonrpc":"2.0","id":{},"method":"tools/call","params":{{"name":"{member}__echo","arguments":{{"text":"via {member}"}}}}}}"#,
            id + 10
        );
        let r = rpc(&mut c, Some(&sid), &call);
        assert!(r.text().contains(&format!("via {member}")), "{}", r.text());
    }
    drop(c);
    signal_and_wait(&mut child, "-INT", stderr);
}
