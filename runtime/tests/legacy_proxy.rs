//! The legacy HTTP+SSE bridge through the real proxy, against a scripted
//! 2024-11-05 backend: sessions, progress streaming (checked by timing),
//! the GET stream, server requests, DELETE, per-request mode, failures.

mod common;
#[path = "fixtures/legacy_backend.rs"]
mod legacy_backend;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant};

use legacy_backend::*;
use serde_json::{Value, json};
use sluice::legacy::{Bridging, UpstreamTransport};
use sluice::proxy::RunningProxy;
use sluice_core::legacy::Mode;

// -- tests --------------------------------------------------------------------------------------

#[test]
fn a_session_reuses_one_backend_stream_and_delete_closes_it() {
    let b = backend(Opts::default());
    let p = proxy(&b, Mode::Session);
    let sid = initialize(&p);
    for i in 1..=3 {
        let body = format!(r#"{{"jsonrpc":"2.0","id":"{i}","method":"tools/list"}}"#);
        let got = exchange(&p, &request("POST", &body, Some(&sid), BOTH));
        assert_eq!(got.status, 200);
        assert_eq!(got.last()["id"], format!("{i}"));
        assert_eq!(got.last()["result"]["tools"][0]["name"], "echo");
    }
    assert_eq!(
        b.opened.load(Ordering::SeqCst),
        1,
        "one backend stream for the session"
    );
    let del = exchange(&p, &request("DELETE", "", Some(&sid), BOTH));
    assert_eq!(del.status, 200);
    wait_for("the backend stream to close", || {
        b.ended.load(Ordering::SeqCst) == 1
    });
    let after = exchange(
        &p,
        &request(
            "POST",
            r#"{"jsonrpc":"2.0","id":9,"method":"ping"}"#,
            Some(&sid),
            BOTH,
        ),
    );
    assert_eq!(after.status, 404);
    p.shutdown();
}

#[test]
fn progress_streams_as_it_happens_and_the_answer_ends_the_stream() {
    let b = backend(Opts {
        crlf: true,
        ..Opts::default()
    });
    let p = proxy(&b, Mode::Session);
    let sid = initialize(&p);
    let call = r#"{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"progress","arguments":{"steps":4,"interval_ms":150},"_meta":{"progressToken":"tok-1"}}}"#;
    let t0 = Instant::now();
    let got = exchange(&p, &request("POST", call, Some(&sid), BOTH));
    assert_eq!(got.status, 200);
    assert_eq!(
        got.header("content-type").as_deref(),
        Some("text/event-stream")
    );
    assert!(got.complete, "the stream ends after the answer");
    assert_eq!(got.events.len(), 5);
    let times: Vec<Duration> = got
        .events
        .iter()
        .map(|(t, _)| t.duration_since(t0))
        .collect();
    for (i, pair) in times.windows(2).take(3).enumerate() {
        assert!(
            pair[1] - pair[0] >= Duration::from_millis(80),
            "progress {i} and {} arrived together: {times:?}",
            i + 1
        );
    }
    let first: Value = serde_json::from_str(&got.events[0].1).unwrap();
    assert_eq!(first["params"]["progressToken"], "tok-1");
    assert_eq!(got.last()["id"], 42);
    // `_meta` reached the backend untouched.
    let posted = b.posted.lock().unwrap();
    let sent = posted.iter().find(|m| m["id"] == 42).unwrap();
    assert_eq!(sent["params"]["_meta"]["progressToken"], "tok-1");
    drop(posted);
    // A JSON-only client gets one JSON body.
    let got = exchange(
        &p,
        &request(
            "POST",
            &call.replace("42", "43"),
            Some(&sid),
            "application/json",
        ),
    );
    assert_eq!(
        got.header("content-type").as_deref(),
        Some("application/json")
    );
    assert_eq!(got.last()["id"], 43);
    p.shutdown();
}

#[test]
fn the_get_stream_carries_server_messages_and_sampling_round_trips() {
    let b = backend(Opts::default());
    let p = proxy(&b, Mode::Session);
    let sid = initialize(&p);
    let mut get = common::connect(p.local_addr());
    get.write_all(&request("GET", "", Some(&sid), "text/event-stream"))
        .unwrap();
    // Unrelated notifications go to the GET stream.
    let call = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"notify","arguments":{}}}"#;
    let got = exchange(&p, &request("POST", call, Some(&sid), BOTH));
    assert_eq!(got.last()["id"], 1);
    let g = read_got(&mut get, Some(1));
    assert_eq!(g.status, 200);
    let note: Value = serde_json::from_str(&g.events[0].1).unwrap();
    assert_eq!(note["method"], "notifications/message");

    // A server request reaches the GET stream; the client's answer is
    // POSTed back and the tool call completes with it.
    let sid2 = sid.clone();
    let addr = p.local_addr();
    let caller = thread::spawn(move || {
        let mut c = common::connect(addr);
        let call = r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"sample","arguments":{}}}"#;
        c.write_all(&request("POST", call, Some(&sid2), BOTH))
            .unwrap();
        read_got(&mut c, None)
    });
    let mut g = read_got_more(&mut get);
    let req: Value = serde_json::from_str(&g.pop().unwrap()).unwrap();
    assert_eq!(req["method"], "sampling/createMessage");
    let answer = json!({"jsonrpc":"2.0","id":req["id"],"result":{"role":"assistant","content":{"type":"text","text":"sampled!"},"model":"m"}});
    let posted = exchange(&p, &request("POST", &answer.to_string(), Some(&sid), BOTH));
    assert_eq!(posted.status, 202);
    let done = caller.join().unwrap();
    assert_eq!(done.last()["result"]["content"][0]["text"], "sampled!");
    p.shutdown();
}

/// The next event(s) on an open SSE connection (head already read).
fn read_got_more(conn: &mut TcpStream) -> Vec<String> {
    let mut tmp = [0u8; 16384];
    let n = conn.read(&mut tmp).unwrap();
    // Chunk framing around whole events: take the data lines.
    String::from_utf8_lossy(&tmp[..n])
        .lines()
        .filter_map(|l| l.strip_prefix("data: ").map(str::to_owned))
        .collect()
}

#[test]
fn per_request_mode_handshakes_for_each_request() {
    let b = backend(Opts::default());
    let p = proxy(&b, Mode::PerRequest);
    let body = r#"{"jsonrpc":"2.0","id":"a","method":"tools/call","params":{"name":"echo","arguments":{"text":"hé"}}}"#;
    for _ in 0..2 {
        let got = exchange(&p, &request("POST", body, None, BOTH));
        assert_eq!(got.status, 200);
        assert!(got.header("mcp-session-id").is_none());
        assert_eq!(got.last()["result"]["content"][0]["text"], "hé");
    }
    wait_for("both backend streams to close", || {
        b.ended.load(Ordering::SeqCst) == 2
    });
    let posted = b.posted.lock().unwrap();
    let methods: Vec<&str> = posted
        .iter()
        .map(|m| m["method"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        methods,
        [
            "initialize",
            "notifications/initialized",
            "tools/call",
            "initialize",
            "notifications/initialized",
            "tools/call"
        ]
    );
    assert_eq!(
        posted[0]["params"]["protocolVersion"], "2024-11-05",
        "the client's version"
    );
    drop(posted);
    let get = exchange(&p, &request("GET", "", None, "text/event-stream"));
    assert_eq!(get.status, 405);
    p.shutdown();
}

#[test]
fn a_backend_that_is_not_sse_gets_an_error_with_the_clients_id() {
    let b = backend(Opts {
        wrong_content_type: true,
        ..Opts::default()
    });
    let p = proxy(&b, Mode::Session);
    let got = exchange(&p, &request("POST", INIT, None, BOTH));
    assert_eq!(got.status, 502);
    let v = got.last();
    assert_eq!(v["id"], 0);
    assert_eq!(v["error"]["code"], -32000);
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("application/json") && msg.contains("text/event-stream"),
        "{msg}"
    );
    p.shutdown();
}

#[test]
fn a_call_the_backend_took_and_never_answered_is_not_sent_again() {
    // The POST of the call goes out whole on the session's pooled
    // keep-alive connection; the backend reads it (the tool runs) and
    // closes without answering. Sending it again would run the tool twice.
    let b = backend(Opts {
        vanish_after: Some("tools/call"),
        ..Opts::default()
    });
    let p = proxy(&b, Mode::Session);
    let sid = initialize(&p);
    let call = r#"{"jsonrpc":"2.0","id":"call-1","method":"tools/call","params":{"name":"echo","arguments":{"text":"once"}}}"#;
    let got = exchange(&p, &request("POST", call, Some(&sid), BOTH));
    let calls = || {
        b.posted
            .lock()
            .unwrap()
            .iter()
            .filter(|m| m["method"] == "tools/call")
            .count()
    };
    assert_eq!(calls(), 1, "the tool ran once");
    assert_eq!(got.status, 502);
    let v = got.last();
    assert_eq!(v["id"], "call-1");
    assert_eq!(v["error"]["code"], -32000);
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(msg.contains("did not send it again"), "{msg}");
    // The session goes on: the next request is answered.
    let list = r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#;
    let next = exchange(&p, &request("POST", list, Some(&sid), BOTH));
    assert_eq!(next.last()["result"]["tools"][0]["name"], "echo");
    assert_eq!(calls(), 1);
    p.shutdown();
}

#[test]
fn the_backend_ending_its_stream_ends_the_session() {
    let b = backend(Opts::default());
    let p = proxy(&b, Mode::Session);
    let sid = initialize(&p);
    let call =
        r#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"die","arguments":{}}}"#;
    let got = exchange(&p, &request("POST", call, Some(&sid), BOTH));
    assert_eq!(got.last()["id"], 5);
    let msg = got.last()["error"]["message"].as_str().unwrap().to_owned();
    assert!(msg.contains("stream ended while forwarding"), "{msg}");
    let after = exchange(
        &p,
        &request(
            "POST",
            r#"{"jsonrpc":"2.0","id":6,"method":"ping"}"#,
            Some(&sid),
            BOTH,
        ),
    );
    assert_eq!(after.status, 404, "the client must start over");
    // It can: a new initialize opens a new backend session.
    initialize(&p);
    assert_eq!(b.opened.load(Ordering::SeqCst), 2);
    p.shutdown();
}

#[test]
fn requests_without_a_session_are_refused_and_unknown_sessions_are_404() {
    let b = backend(Opts::default());
    let p = proxy(&b, Mode::Session);
    let got = exchange(
        &p,
        &request(
            "POST",
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
            None,
            BOTH,
        ),
    );
    assert_eq!(got.status, 400);
    let got = exchange(
        &p,
        &request(
            "POST",
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
            Some("nope"),
            BOTH,
        ),
    );
    assert_eq!(got.status, 404);
    assert_eq!(b.opened.load(Ordering::SeqCst), 0);
    p.shutdown();
}

#[test]
fn auto_probes_once_and_bridges_a_legacy_backend() {
    let b = backend(Opts::default());
    let authority = b.addr.to_string();
    let p = common::proxy_with(b.addr, |s| {
        s.upstreams[0].transport =
            UpstreamTransport::Auto(Bridging::new(Mode::Session, false, &authority, "/mcp"));
    });
    let sid = initialize(&p);
    let got = exchange(
        &p,
        &request(
            "POST",
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
            Some(&sid),
            BOTH,
        ),
    );
    assert_eq!(got.last()["result"]["tools"][0]["name"], "echo");
    // The probe's GET plus the session's own stream; no probe after the first.
    assert_eq!(b.opened.load(Ordering::SeqCst), 2);
    // The refused initialize went again through the bridge, once.
    let posted = b.posted.lock().unwrap().clone();
    let inits = posted
        .iter()
        .filter(|m| m["method"] == "initialize")
        .count();
    assert_eq!(inits, 1, "{posted:?}");
    p.shutdown();
}

#[test]
fn auto_runs_one_probe_for_refusals_that_arrive_together() {
    let b = backend(Opts::default());
    let p = auto_proxy(b.addr);
    let sessions: Vec<String> = thread::scope(|s| {
        let clients: Vec<_> = (0..8).map(|_| s.spawn(|| initialize(&p))).collect();
        clients.into_iter().map(|c| c.join().unwrap()).collect()
    });
    let mut distinct = sessions.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 8);
    // Eight sessions' streams and one probe's GET, however the eight
    // refusals interleaved with it.
    assert_eq!(b.opened.load(Ordering::SeqCst), 9);
    let posted = b.posted.lock().unwrap().clone();
    let inits = posted
        .iter()
        .filter(|m| m["method"] == "initialize")
        .count();
    assert_eq!(
        inits, 8,
        "each client's initialize reached the backend once"
    );
    p.shutdown();
}

/// A proxy whose one route is `auto` in front of `up`.
fn auto_proxy(up: SocketAddr) -> RunningProxy {
    let authority = up.to_string();
    common::proxy_with(up, |s| {
        s.upstreams[0].transport =
            UpstreamTransport::Auto(Bridging::new(Mode::Session, false, &authority, "/mcp"));
    })
}

/// The request lines `up` received, waiting for `n` of them, then making
/// sure no other follows.
fn request_lines(up: &common::Upstream, n: usize) -> Vec<String> {
    let mut lines: Vec<String> = (0..n)
        .map(|_| {
            let r = up.requests.recv_timeout(Duration::from_secs(5)).unwrap();
            r.head.lines().next().unwrap_or_default().to_owned()
        })
        .collect();
    if let Ok(extra) = up.requests.recv_timeout(Duration::from_millis(200)) {
        lines.push(extra.head.lines().next().unwrap_or_default().to_owned());
    }
    lines
}

#[test]
fn auto_passes_a_streamable_backend_through_and_it_sees_only_the_clients_requests() {
    let up = common::upstream(|conn, req| {
        assert!(req.head.starts_with("POST /mcp "), "{}", req.head);
        let id = if req.body.windows(6).any(|w| w == br#""id":7"#) {
            7
        } else {
            8
        };
        common::json_response(
            conn,
            &format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{{}}}}"#),
        );
        true
    });
    let p = auto_proxy(up.addr);
    for id in [7, 8] {
        let body = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"ping"}}"#);
        let got = exchange(&p, &request("POST", &body, None, BOTH));
        assert_eq!(got.status, 200);
        assert_eq!(got.last()["id"], id);
    }
    assert_eq!(request_lines(&up, 2), ["POST /mcp HTTP/1.1"; 2]);
    p.shutdown();
}

#[test]
fn auto_gives_a_json_rpc_refusal_to_the_client_with_no_extra_request() {
    let refusal = r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32000,"message":"Bad Request: No valid session ID provided"}}"#;
    let up = common::upstream(move |conn, _| {
        let head = format!(
            "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            refusal.len()
        );
        conn.write_all(head.as_bytes()).unwrap();
        conn.write_all(refusal.as_bytes()).unwrap();
        true
    });
    let p = auto_proxy(up.addr);
    let call = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
    let got = exchange(&p, &request("POST", call, Some("gone"), BOTH));
    assert_eq!(got.status, 400);
    assert_eq!(got.last()["error"]["code"], -32000);
    assert_eq!(request_lines(&up, 1), ["POST /mcp HTTP/1.1"]);
    p.shutdown();
}

#[test]
fn auto_gives_a_refusal_that_is_not_legacy_to_the_client_as_it_came() {
    // Refuses every POST and GET in plain text: no transport to be found.
    let up = common::upstream(|conn, _| {
        conn.write_all(
            b"HTTP/1.1 405 Method Not Allowed\r\nAllow: PUT\r\nContent-Length: 4\r\n\r\nnope",
        )
        .unwrap();
        true
    });
    let p = auto_proxy(up.addr);
    let got = exchange(&p, &request("POST", INIT, None, BOTH));
    assert_eq!(got.status, 405);
    assert_eq!(got.body, b"nope");
    assert_eq!(got.header("allow").as_deref(), Some("PUT"));
    // The client's POST, then the probe's GET; nothing replayed.
    assert_eq!(
        request_lines(&up, 2),
        ["POST /mcp HTTP/1.1", "GET /mcp HTTP/1.1"]
    );
    p.shutdown();
}

#[test]
fn shutdown_closes_bridge_sessions_and_their_backend_streams() {
    let b = backend(Opts::default());
    let p = proxy_tuned(&b, Mode::Session, |_, s| {
        s.shutdown_grace = Duration::from_millis(200);
    });
    let sid = initialize(&p);
    let idle_sid = initialize(&p);
    assert_ne!(sid, idle_sid);
    let mut get = common::connect(p.local_addr());
    get.write_all(&request("GET", "", Some(&sid), "text/event-stream"))
        .unwrap();
    // The GET stream is attached once the notify's message arrives on it.
    let call = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"notify","arguments":{}}}"#;
    exchange(&p, &request("POST", call, Some(&sid), BOTH));
    let g = read_got(&mut get, Some(1));
    assert_eq!(g.status, 200);
    assert_eq!(b.ended.load(Ordering::SeqCst), 0);
    p.shutdown();
    wait_for("both backend streams to close", || {
        b.ended.load(Ordering::SeqCst) == 2
    });
    // The GET stream ended cleanly (last chunk), not cut.
    let mut rest = Vec::new();
    let _ = get.read_to_end(&mut rest);
    assert!(
        rest.ends_with(b"0\r\n\r\n"),
        "{:?}",
        String::from_utf8_lossy(&rest)
    );
}

#[test]
fn past_the_session_cap_initialize_gets_503_with_its_id() {
    let b = backend(Opts::default());
    let p = proxy_tuned(&b, Mode::Session, |bridging, _| bridging.max_sessions = 2);
    let first = initialize(&p);
    initialize(&p);
    let init = INIT.replace(r#""id":0"#, r#""id":"third""#);
    let got = exchange(&p, &request("POST", &init, None, BOTH));
    assert_eq!(got.status, 503);
    assert_eq!(
        got.header("content-type").as_deref(),
        Some("application/json")
    );
    let v = got.last();
    assert_eq!(v["id"], "third");
    assert_eq!(v["error"]["code"], -32603);
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(msg.contains("2 legacy backend sessions"), "{msg}");
    assert_eq!(
        b.opened.load(Ordering::SeqCst),
        2,
        "no third backend stream"
    );
    // Ending a session frees its slot.
    let del = exchange(&p, &request("DELETE", "", Some(&first), BOTH));
    assert_eq!(del.status, 200);
    wait_for("a free slot", || {
        exchange(&p, &request("POST", INIT, None, BOTH)).status == 200
    });
    p.shutdown();
}

#[test]
fn per_request_mode_counts_requests_in_flight_against_the_cap() {
    let b = backend(Opts::default());
    let p = proxy_tuned(&b, Mode::PerRequest, |bridging, _| {
        bridging.max_sessions = 1
    });
    let addr = p.local_addr();
    let slow = thread::spawn(move || {
        let call = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"progress","arguments":{"steps":3,"interval_ms":200}}}"#;
        let mut c = common::connect(addr);
        c.write_all(&request("POST", call, None, BOTH)).unwrap();
        read_got(&mut c, None)
    });
    wait_for("the first backend stream", || {
        b.opened.load(Ordering::SeqCst) == 1
    });
    let got = exchange(
        &p,
        &request(
            "POST",
            r#"{"jsonrpc":"2.0","id":2,"method":"ping"}"#,
            None,
            BOTH,
        ),
    );
    assert_eq!(got.status, 503);
    assert_eq!(got.last()["id"], 2);
    assert_eq!(slow.join().unwrap().last()["id"], 1);
    p.shutdown();
}

#[test]
fn an_idle_session_expires_and_closes_its_backend_stream() {
    let b = backend(Opts::default());
    let p = proxy_tuned(&b, Mode::Session, |bridging, _| {
        bridging.config.timeouts.session_idle = Some(Duration::from_millis(300));
    });
    let sid = initialize(&p);
    wait_for("the idle session's backend stream to close", || {
        b.ended.load(Ordering::SeqCst) == 1
    });
    let after = exchange(
        &p,
        &request(
            "POST",
            r#"{"jsonrpc":"2.0","id":3,"method":"ping"}"#,
            Some(&sid),
            BOTH,
        ),
    );
    assert_eq!(after.status, 404, "an expired session is unknown");
    p.shutdown();
}

#[test]
fn an_endpoint_on_another_origin_is_refused_unless_configured() {
    let b = backend_with(Opts::default(), true);
    let p = proxy(&b, Mode::Session);
    let got = exchange(&p, &request("POST", INIT, None, BOTH));
    assert_eq!(got.status, 502);
    let v = got.last();
    assert_eq!(v["id"], 0);
    assert_eq!(v["error"]["code"], -32000);
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("on another origin") && msg.contains("/messages?sessionId="),
        "{msg}"
    );
    assert!(b.posted.lock().unwrap().is_empty(), "nothing was POSTed");
    p.shutdown();

    let p = proxy_tuned(&b, Mode::Session, |bridging, _| {
        bridging.config.allow_other_origin = true
    });
    let sid = initialize(&p);
    let got = exchange(
        &p,
        &request(
            "POST",
            r#"{"jsonrpc":"2.0","id":"x","method":"tools/list"}"#,
            Some(&sid),
            BOTH,
        ),
    );
    assert_eq!(got.last()["result"]["tools"][0]["name"], "echo");
    p.shutdown();
}

#[test]
fn every_failure_names_what_happened_with_the_clients_exact_id() {
    // A backend that is not there: the stream cannot be opened. Nothing
    // listens on 127.0.0.2 at the port held on 127.0.0.1 (Linux routes all
    // of 127/8 to loopback), and while it is held no other test takes it.
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = std::net::SocketAddr::from(([127, 0, 0, 2], held.local_addr().unwrap().port()));
    let authority = addr.to_string();
    let p = common::proxy_with(addr, |s| {
        s.upstreams[0].transport =
            UpstreamTransport::Sse(Bridging::new(Mode::Session, false, &authority, "/mcp"));
    });
    let init = INIT.replace(r#""id":0"#, r#""id":12345678901234567890"#);
    let got = exchange(&p, &request("POST", &init, None, BOTH));
    assert_eq!(got.status, 502);
    assert!(
        String::from_utf8_lossy(&got.body).contains(r#""id":12345678901234567890"#),
        "the id keeps its text: {}",
        String::from_utf8_lossy(&got.body)
    );
    let msg = got.last()["error"]["message"].as_str().unwrap().to_owned();
    assert!(
        msg.contains("SSE stream failed while opening the SSE stream"),
        "{msg}"
    );
    p.shutdown();
}
