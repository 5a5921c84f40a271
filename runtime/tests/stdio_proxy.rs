//! stdio servers through the real proxy, against a scripted server
//! (tests/fixtures/stdio_server.py, plain Python 3): shared and per-session
//! mode, progress, server requests, cancellation, crashes, restarts,
//! shutdown of a child that ignores SIGTERM, noise and big lines.

mod common;
#[path = "fixtures/legacy_backend.rs"]
mod legacy_backend;
#[path = "fixtures/hooks/support.rs"]
mod support;

use std::io::Write;
use std::time::Duration;

use legacy_backend::{BOTH, Got, exchange, read_got, read_got_more, request, wait_for};
use serde_json::{Value, json};
use sluice::legacy::UpstreamTransport;
use sluice::proxy::RunningProxy;
use sluice::stdio::StdioUpstream;
use sluice_core::stdio::StdioMode;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/stdio_server.py"
);

fn init_body(version: &str) -> String {
    json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
        "protocolVersion":version,"capabilities":{"sampling":{}},
        "clientInfo":{"name":"t","version":"1"}}})
    .to_string()
}

/// The Python interpreter itself: `python3` on PATH may be a shim (pyenv)
/// that is a shell script with an environment of its own.
fn python() -> String {
    static PYTHON: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PYTHON
        .get_or_init(|| {
            let out = std::process::Command::new("python3")
                .args(["-c", "import sys; print(sys.executable)"])
                .output()
                .expect("python3 runs");
            String::from_utf8(out.stdout).unwrap().trim().to_owned()
        })
        .clone()
}

fn proxy(mode: StdioMode, flags: &[&str], tweak: impl FnOnce(&mut StdioUpstream)) -> RunningProxy {
    proxy_hooked(mode, flags, tweak, None)
}

fn proxy_hooked(
    mode: StdioMode,
    flags: &[&str],
    tweak: impl FnOnce(&mut StdioUpstream),
    guest: Option<support::Guest>,
) -> RunningProxy {
    let mut command = vec![python(), FIXTURE.to_owned()];
    command.extend(flags.iter().map(|f| f.to_string()));
    let path = std::env::var("PATH").unwrap_or_default();
    let mut up = StdioUpstream::new(command, vec![("PATH".into(), path)]);
    up.config.mode = mode;
    up.shutdown_grace = Duration::from_millis(300);
    tweak(&mut up);
    common::proxy_with("127.0.0.1:9".parse().unwrap(), |s| {
        s.upstreams[0].transport = UpstreamTransport::Stdio(Box::new(up));
        // Every proxy here can be scraped.
        s.admin = Some(sluice::proxy::AdminSettings {
            listen: "127.0.0.1:0".parse().unwrap(),
            config_json: "{}".into(),
        });
        if let Some(guest) = guest {
            let spec = support::spec("stdio-hook", &guest.component());
            let host = sluice::hooks::HookHost::load(vec![spec], None).unwrap();
            let plain = std::mem::replace(s, s.clone());
            *s = plain.with_hooks(std::sync::Arc::new(host));
        }
    })
}

/// Opens a session; returns its id.
fn initialize(p: &RunningProxy) -> String {
    let got = exchange(p, &request("POST", &init_body("2025-06-18"), None, BOTH));
    assert_eq!(got.status, 200, "{}", String::from_utf8_lossy(&got.body));
    assert_eq!(got.last()["result"]["serverInfo"]["name"], "stdio-fixture");
    let sid = got.header("mcp-session-id").expect("a session id");
    assert_eq!(sid.len(), 32);
    let note = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
    assert_eq!(
        exchange(p, &request("POST", note, Some(&sid), BOTH)).status,
        202
    );
    sid
}

fn call(p: &RunningProxy, sid: &str, id: u32, tool: &str, args: Value) -> Got {
    let body = json!({"jsonrpc":"2.0","id":id,"method":"tools/call",
        "params":{"name":tool,"arguments":args}});
    exchange(p, &request("POST", &body.to_string(), Some(sid), BOTH))
}

/// The text of a tools/call result.
fn text(got: &Got) -> String {
    let v = got.last();
    v["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no text in {v}"))
        .to_owned()
}

/// Scrapes `/metrics` until `series` (name and labels, as written) reads
/// `want`: an exchange is counted just after its client has its answer.
fn scraped_until(p: &RunningProxy, series: &str, want: f64) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut c = common::connect(p.admin_addr().expect("an admin listener"));
        c.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .unwrap();
        let m = common::read_response(&mut c, "GET").text();
        if value(&m, series) == Some(want) {
            return m;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{series} not {want}:\n{m}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn value(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

fn alive(pid: u32) -> bool {
    // A zombie still has a /proc entry; its state says Z.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat.split(") ").nth(1).is_some_and(|s| s.starts_with('Z')),
        Err(_) => false,
    }
}

#[test]
fn shared_mode_serves_every_session_from_one_child() {
    let p = proxy(StdioMode::Shared, &["--banner"], |_| {});
    let a = initialize(&p);
    let b = initialize(&p);
    assert_ne!(a, b);
    let pid_a = text(&call(&p, &a, 1, "pid", json!({})));
    let pid_b = text(&call(&p, &b, 1, "pid", json!({})));
    assert_eq!(pid_a, pid_b, "one child");
    let list = exchange(
        &p,
        &request(
            "POST",
            r#"{"jsonrpc":"2.0","id":"l","method":"tools/list"}"#,
            Some(&a),
            BOTH,
        ),
    );
    assert_eq!(list.last()["id"], "l");
    assert!(list.last()["result"]["tools"].as_array().unwrap().len() > 5);
    assert_eq!(
        text(&call(&p, &b, 2, "echo", json!({"text":"héllo"}))),
        "héllo"
    );
    p.shutdown();
    let pid: u32 = pid_a.parse().unwrap();
    wait_for("the child to go at shutdown", || !alive(pid));
}

#[test]
fn a_shared_childs_client_sessions_and_its_streamed_events_are_in_the_metrics() {
    let p = proxy(StdioMode::Shared, &[], |_| {});
    // The in-process settings name their one route "upstream".
    let shared = r#"sluice_stdio_shared_sessions{route="upstream"}"#;
    let sessions: Vec<String> = (0..3).map(|_| initialize(&p)).collect();
    let m = scraped_until(&p, shared, 3.0);
    let per_session = r#"sluice_sessions_open{route="upstream",kind="stdio"}"#;
    assert_eq!(value(&m, per_session), Some(0.0), "{m}");
    let processes = r#"sluice_stdio_processes{route="upstream"}"#;
    assert_eq!(value(&m, processes), Some(1.0), "{m}");
    // An answer streamed from the child's messages: three progress
    // notifications, then the result.
    let body = r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"slow","_meta":{"progressToken":"t"}}}"#;
    let got = exchange(&p, &request("POST", body, Some(&sessions[0]), BOTH));
    assert!(got.complete);
    assert_eq!(got.events.len(), 4);
    scraped_until(&p, r#"sluice_sse_events_total{route="upstream"}"#, 4.0);
    let del = exchange(&p, &request("DELETE", "", Some(&sessions[1]), BOTH));
    assert_eq!(del.status, 200);
    scraped_until(&p, shared, 2.0);
    p.shutdown();
}

#[test]
fn progress_streams_with_the_clients_token_then_the_answer_ends_the_stream() {
    let p = proxy(StdioMode::Shared, &[], |_| {});
    let sid = initialize(&p);
    let body = r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"slow","_meta":{"progressToken":"tok-1"}}}"#;
    let got = exchange(&p, &request("POST", body, Some(&sid), BOTH));
    assert!(got.complete);
    assert_eq!(
        got.header("content-type").as_deref(),
        Some("text/event-stream")
    );
    let events: Vec<Value> = got
        .events
        .iter()
        .map(|(_, d)| serde_json::from_str(d).unwrap())
        .collect();
    assert_eq!(events.len(), 4, "{events:?}");
    for (i, e) in events[..3].iter().enumerate() {
        assert_eq!(e["params"]["progressToken"], "tok-1");
        assert_eq!(e["params"]["progress"], i + 1);
    }
    assert_eq!(events[3]["id"], 7);
    p.shutdown();
}

#[test]
fn a_sampling_request_reaches_the_caller_and_its_answer_goes_back() {
    let p = proxy(StdioMode::Shared, &[], |_| {});
    let sid = initialize(&p);
    let mut conn = common::connect(p.local_addr());
    let body = r#"{"jsonrpc":"2.0","id":"c","method":"tools/call","params":{"name":"sample"}}"#;
    conn.write_all(&request("POST", body, Some(&sid), BOTH))
        .unwrap();
    let first = read_got(&mut conn, Some(1));
    let ask: Value = serde_json::from_str(&first.events[0].1).unwrap();
    assert_eq!(ask["method"], "sampling/createMessage");
    let answer = json!({"jsonrpc":"2.0","id":ask["id"],"result":{"role":"assistant",
        "content":{"type":"text","text":"pong"},"model":"m"}});
    let ack = exchange(&p, &request("POST", &answer.to_string(), Some(&sid), BOTH));
    assert_eq!(ack.status, 202);
    let rest = read_got_more(&mut conn);
    let last: Value = serde_json::from_str(rest.last().unwrap()).unwrap();
    assert_eq!(last["id"], "c");
    assert!(
        last["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("pong")
    );
    p.shutdown();
}

#[test]
fn a_crash_mid_call_answers_with_the_exit_status_and_a_new_child_serves_the_next() {
    let p = proxy(StdioMode::Shared, &[], |_| {});
    let sid = initialize(&p);
    let before: u32 = text(&call(&p, &sid, 1, "pid", json!({}))).parse().unwrap();
    let crashed = call(&p, &sid, 2, "crash", json!({}));
    assert_eq!(crashed.status, 502);
    let v = crashed.last();
    assert_eq!(v["id"], 2);
    assert_eq!(v["error"]["code"], -32000);
    let message = v["error"]["message"].as_str().unwrap();
    assert!(message.contains("exited with status 3"), "{message}");
    // The session survives; a new child (after a short backoff) serves it.
    let after: u32 = text(&call(&p, &sid, 3, "pid", json!({}))).parse().unwrap();
    assert_ne!(before, after);
    p.shutdown();
}

#[test]
fn per_session_mode_gives_each_session_its_own_child_and_delete_ends_it() {
    let p = proxy(StdioMode::PerSession, &[], |_| {});
    let a = initialize(&p);
    let b = initialize(&p);
    let pid_a: u32 = text(&call(&p, &a, 1, "pid", json!({}))).parse().unwrap();
    let pid_b: u32 = text(&call(&p, &b, 1, "pid", json!({}))).parse().unwrap();
    assert_ne!(pid_a, pid_b);
    let del = exchange(&p, &request("DELETE", "", Some(&a), BOTH));
    assert_eq!(del.status, 200);
    wait_for("session A's child to go", || !alive(pid_a));
    assert!(alive(pid_b));
    assert_eq!(call(&p, &a, 2, "pid", json!({})).status, 404);
    assert_eq!(
        text(&call(&p, &b, 2, "echo", json!({"text":"still"}))),
        "still"
    );
    p.shutdown();
    wait_for("session B's child to go at shutdown", || !alive(pid_b));
}

#[test]
fn per_session_mode_stops_at_max_processes_with_503() {
    let p = proxy(StdioMode::PerSession, &[], |u| u.max_processes = 1);
    let _a = initialize(&p);
    let got = exchange(&p, &request("POST", &init_body("2025-06-18"), None, BOTH));
    assert_eq!(got.status, 503);
    assert_eq!(got.last()["id"], 0);
    assert!(
        got.last()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("limit of 1")
    );
    p.shutdown();
}

#[test]
fn a_child_that_exits_at_start_fails_initialize_with_its_status() {
    for mode in [StdioMode::Shared, StdioMode::PerSession] {
        let p = proxy(mode, &["--exit-at-start", "7"], |_| {});
        let got = exchange(&p, &request("POST", &init_body("2025-06-18"), None, BOTH));
        assert_eq!(got.status, 502, "{mode:?}");
        let message = got.last()["error"]["message"].as_str().unwrap().to_owned();
        assert!(
            message.contains("exited with status 7"),
            "{mode:?}: {message}"
        );
        p.shutdown();
    }
}

#[test]
fn a_child_that_never_answers_initialize_times_out() {
    let p = proxy(StdioMode::Shared, &["--no-init"], |u| {
        u.config.init_timeout = Duration::from_millis(300);
    });
    let got = exchange(&p, &request("POST", &init_body("2025-06-18"), None, BOTH));
    assert_eq!(got.status, 504);
    assert_eq!(got.last()["error"]["code"], -32001);
    p.shutdown();
}

#[test]
fn a_child_that_ignores_sigterm_is_killed() {
    let p = proxy(StdioMode::PerSession, &["--ignore-term"], |_| {});
    let sid = initialize(&p);
    let pid: u32 = text(&call(&p, &sid, 1, "pid", json!({}))).parse().unwrap();
    assert_eq!(
        exchange(&p, &request("DELETE", "", Some(&sid), BOTH)).status,
        200
    );
    wait_for("SIGKILL after the grace periods", || !alive(pid));
    p.shutdown();
}

#[test]
fn a_child_that_stops_reading_its_stdin_is_ended_and_its_calls_hear_why() {
    let p = proxy(StdioMode::Shared, &["--stall"], |u| {
        u.max_stdin_queue = 64 << 10
    });
    let sid = initialize(&p);
    // Each call's line is bigger than the pipe and the bound: the first
    // waits in line whole, the second finds the line full.
    let pad = "x".repeat(200 << 10);
    let answers: Vec<Got> = std::thread::scope(|s| {
        let calls: Vec<_> = (1..=2)
            .map(|id| {
                let (p, sid, pad) = (&p, &sid, &pad);
                s.spawn(move || call(p, sid, id, "echo", json!({ "text": pad })))
            })
            .collect();
        calls.into_iter().map(|c| c.join().unwrap()).collect()
    });
    for got in &answers {
        assert_eq!(got.status, 502, "{}", String::from_utf8_lossy(&got.body));
        let message = got.last()["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(message.contains("stopped reading its stdin"), "{message}");
    }
    p.shutdown();
}

#[test]
fn noise_on_stdout_is_skipped_and_a_10_mib_line_arrives_whole() {
    let p = proxy(StdioMode::Shared, &["--banner"], |_| {});
    let sid = initialize(&p);
    assert_eq!(
        text(&call(&p, &sid, 1, "garbage", json!({}))),
        "after garbage"
    );
    let big = call(&p, &sid, 2, "big", json!({}));
    assert!(big.complete);
    assert_eq!(text(&big).len(), 10 << 20);
    p.shutdown();
}

#[test]
fn the_child_sees_only_the_environment_it_is_given() {
    let p = proxy(StdioMode::Shared, &[], |u| {
        u.env.push(("SLUICE_TEST_SECRET".into(), "s3".into()));
    });
    let sid = initialize(&p);
    let env: Value = serde_json::from_str(&text(&call(&p, &sid, 1, "env", json!({})))).unwrap();
    let keys: Vec<&str> = env
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    // Python sets LC_CTYPE itself when the locale is C (PEP 538).
    let allowed = ["PATH", "SLUICE_TEST_SECRET", "LC_CTYPE"];
    for k in &keys {
        assert!(allowed.contains(k), "{k} leaked into the child: {keys:?}");
    }
    assert_eq!(env["SLUICE_TEST_SECRET"], "s3");
    p.shutdown();
}

#[test]
fn a_client_that_leaves_mid_call_cancels_it_on_the_child() {
    let p = proxy(StdioMode::Shared, &[], |_| {});
    let sid = initialize(&p);
    let mut conn = common::connect(p.local_addr());
    let body = r#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"slow","arguments":{"pause":0.5}}}"#;
    conn.write_all(&request("POST", body, Some(&sid), BOTH))
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    drop(conn);
    wait_for("the cancellation to reach the child", || {
        let got = call(&p, &sid, 6, "cancelled", json!({}));
        let ids: Vec<Value> = serde_json::from_str(&text(&got)).unwrap();
        !ids.is_empty()
    });
    p.shutdown();
}

#[test]
fn list_changed_reaches_every_sessions_get_stream() {
    let p = proxy(StdioMode::Shared, &[], |_| {});
    let a = initialize(&p);
    let b = initialize(&p);
    let mut gets = Vec::new();
    for sid in [&a, &b] {
        let mut conn = common::connect(p.local_addr());
        conn.write_all(&request("GET", "", Some(sid), "text/event-stream"))
            .unwrap();
        gets.push(conn);
    }
    // Both GET streams are open once their heads arrived.
    let mut heads = Vec::new();
    for conn in &mut gets {
        heads.push(read_got(conn, Some(0)));
    }
    assert!(heads.iter().all(|h| h.status == 200));
    assert_eq!(text(&call(&p, &a, 1, "announce", json!({}))), "announced");
    for conn in &mut gets {
        let got = read_got_more_events(conn, 1);
        let note: Value = serde_json::from_str(&got[0]).unwrap();
        assert_eq!(note["method"], "notifications/tools/list_changed");
    }
    p.shutdown();
}

/// Reads `n` data lines from an open SSE stream.
fn read_got_more_events(conn: &mut std::net::TcpStream, n: usize) -> Vec<String> {
    use std::io::Read;
    let mut all = String::new();
    let mut buf = [0u8; 4096];
    loop {
        let data: Vec<String> = all
            .lines()
            .filter_map(|l| l.strip_prefix("data: ").or_else(|| l.strip_prefix("data:")))
            .filter(|d| !d.is_empty())
            .map(str::to_owned)
            .collect();
        if data.len() >= n {
            return data;
        }
        let got = conn.read(&mut buf).unwrap();
        assert!(got > 0, "the stream ended early");
        all.push_str(&String::from_utf8_lossy(&buf[..got]));
    }
}

#[test]
fn a_request_hook_rejects_a_tools_call_before_the_child_sees_it() {
    use support::{DENIED, Guest, body};
    for mode in [StdioMode::Shared, StdioMode::PerSession] {
        let guest = Guest::new(&["tools/call"], body::reject(4001, DENIED));
        let p = proxy_hooked(mode, &[], |_| {}, Some(guest));
        let sid = initialize(&p);
        for accept in [BOTH, "application/json", "text/event-stream"] {
            let body = r#"{"jsonrpc":"2.0","id":"r-1","method":"tools/call","params":{"name":"echo","arguments":{"text":"x"}}}"#;
            let got = exchange(&p, &request("POST", body, Some(&sid), accept));
            let v = got.last();
            assert_eq!(v["id"], "r-1", "{mode:?} {accept}");
            assert_eq!(v["error"]["code"], 4001);
            assert_eq!(v["error"]["message"], DENIED.1);
        }
        // Unhooked methods reach the child.
        let list = exchange(
            &p,
            &request(
                "POST",
                r#"{"jsonrpc":"2.0","id":5,"method":"tools/list"}"#,
                Some(&sid),
                BOTH,
            ),
        );
        assert!(list.last()["result"]["tools"].is_array());
        p.shutdown();
    }
}

#[test]
fn a_response_hook_rewrites_a_streamed_answer_and_lets_progress_through() {
    use support::{ECHO, Guest, body};
    let guest = Guest::new(&["tools/call"], body::cont()).on_response(body::respond(ECHO));
    let p = proxy_hooked(StdioMode::Shared, &[], |_| {}, Some(guest));
    let sid = initialize(&p);
    let body = r#"{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"slow","_meta":{"progressToken":"t"}}}"#;
    let got = exchange(&p, &request("POST", body, Some(&sid), BOTH));
    assert!(got.complete);
    assert_eq!(got.events.len(), 4, "{:?}", got.events);
    for (_, e) in &got.events[..3] {
        let v: Value = serde_json::from_str(e).unwrap();
        assert_eq!(v["params"]["progressToken"], "t");
    }
    let last = got.last();
    assert_eq!(last["id"], 9);
    assert_eq!(last["result"], json!({"echo": true}));
    // A JSON answer too.
    let got = call(&p, &sid, 10, "echo", json!({"text":"x"}));
    assert_eq!(got.last()["result"], json!({"echo": true}));
    p.shutdown();
}

/// Fifty sessions at once, each its own calls: in shared mode one child
/// answers every one to the right session; in per-session mode fifty
/// children, all gone after each session's DELETE.
#[test]
fn fifty_parallel_sessions_per_mode() {
    const N: usize = 50;
    for mode in [StdioMode::Shared, StdioMode::PerSession] {
        let p = proxy(mode, &[], |_| {});
        let results: Vec<(String, u32)> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..N)
                .map(|i| {
                    let p = &p;
                    scope.spawn(move || {
                        let sid = initialize(p);
                        for j in 0..3u32 {
                            let word = format!("s{i}-{j}");
                            let got = call(p, &sid, j, "echo", json!({ "text": word }));
                            assert_eq!(got.last()["id"], j);
                            assert_eq!(
                                text(&got),
                                word,
                                "{mode:?}: an answer went to the wrong session"
                            );
                        }
                        let pid = text(&call(p, &sid, 9, "pid", json!({}))).parse().unwrap();
                        (sid, pid)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut pids: Vec<u32> = results.iter().map(|(_, pid)| *pid).collect();
        pids.sort_unstable();
        pids.dedup();
        match mode {
            StdioMode::Shared => assert_eq!(pids.len(), 1, "one child"),
            StdioMode::PerSession => {
                assert_eq!(pids.len(), N, "a child per session");
                for (sid, _) in &results {
                    assert_eq!(
                        exchange(&p, &request("DELETE", "", Some(sid), BOTH)).status,
                        200
                    );
                }
                for pid in &pids {
                    wait_for("every child to be reaped", || !alive(*pid));
                }
            }
        }
        p.shutdown();
        for pid in &pids {
            wait_for("no child left after shutdown", || !alive(*pid));
        }
    }
}
