//! Federated routes through the real proxy: two scripted stdio servers
//! (tests/fixtures/stdio_server.py) behind one endpoint — the handshake,
//! merged and prefixed lists, routed calls with progress, a member's
//! request to the client and its answer back, forged sessions, a member
//! that cannot start; the same over Streamable HTTP members (the fixture
//! served by a sluice of its own), and a member at a closed port.

mod common;
#[path = "fixtures/legacy_backend.rs"]
mod legacy_backend;

use std::io::Write;

use legacy_backend::{BOTH, Got, exchange, read_got, read_got_more, request};
use serde_json::{Value, json};
use sluice::federation::{
    DEFAULT_POLICY, FederationUpstream, HttpMember, LegacyMember, MemberServer, MemberUpstream,
    SessionKey,
};
use sluice::legacy::UpstreamTransport;
use sluice::proxy::RunningProxy;
use sluice::stdio::StdioUpstream;
use sluice_core::federation::Curation;
use sluice_core::federation::http::{AnswerLimits, MemberUrl};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/stdio_server.py"
);

fn python() -> String {
    let out = std::process::Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .expect("python3 runs");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// The fixture as a command member.
fn stdio_member(name: &str, flags: &[&str]) -> MemberUpstream {
    MemberUpstream {
        name: name.to_string(),
        tools: Curation::new(name),
        prompts: Curation::new(name),
        server: MemberServer::Stdio(fixture(flags)),
        policy: DEFAULT_POLICY,
    }
}

fn fixture(flags: &[&str]) -> StdioUpstream {
    let mut command = vec![python(), FIXTURE.to_owned()];
    command.extend(flags.iter().map(|f| f.to_string()));
    let path = std::env::var("PATH").unwrap_or_default();
    let mut stdio = StdioUpstream::new(command, vec![("PATH".into(), path)]);
    stdio.shutdown_grace = std::time::Duration::from_millis(300);
    stdio
}

/// A Streamable HTTP member at `addr`, path `/mcp`.
fn http_member(name: &str, addr: std::net::SocketAddr) -> MemberUpstream {
    MemberUpstream {
        name: name.to_string(),
        tools: Curation::new(name),
        prompts: Curation::new(name),
        server: MemberServer::Http(HttpMember {
            host: addr.ip().to_string(),
            port: addr.port(),
            tls: false,
            url: MemberUrl {
                authority: addr.to_string(),
                target: "/mcp".into(),
            },
            headers: Vec::new(),
        }),
        policy: DEFAULT_POLICY,
    }
}

/// The fixture served over Streamable HTTP by a sluice of its own: an
/// HTTP member that streams, asks the client and keeps sessions.
fn http_server(flags: &[&str]) -> RunningProxy {
    let up = fixture(flags);
    common::proxy_with("127.0.0.1:9".parse().unwrap(), |s| {
        s.upstreams[0].transport = UpstreamTransport::Stdio(Box::new(up));
    })
}

/// A federation of these members.
fn federation(members: Vec<MemberUpstream>) -> RunningProxy {
    keyed_federation(members, Vec::new())
}

/// A federation of these members whose sessions are sealed with `keys`.
fn keyed_federation(members: Vec<MemberUpstream>, keys: Vec<[u8; 32]>) -> RunningProxy {
    let fed = FederationUpstream {
        members,
        answer_limits: AnswerLimits::default(),
        session_keys: keys.into_iter().map(SessionKey).collect(),
    };
    common::proxy_with("127.0.0.1:9".parse().unwrap(), |s| {
        s.upstreams[0].transport = UpstreamTransport::Federation(Box::new(fed));
        s.admin = Some(sluice::proxy::AdminSettings {
            listen: "127.0.0.1:0".parse().unwrap(),
            config_json: "{}".into(),
        });
    })
}

/// The value of the federated route's series of the counter `name` in
/// a scrape of `p`'s admin listener (one route: its labels need no
/// spelling out).
fn counted(p: &RunningProxy, name: &str) -> Option<f64> {
    use std::io::Write;
    let mut c = common::connect(p.admin_addr().expect("an admin listener"));
    c.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let text = common::read_response(&mut c, "GET").text();
    text.lines()
        .find(|l| l.starts_with(&format!("{name}{{")))
        .and_then(|l| l.rsplit_once(' ')?.1.parse().ok())
}

/// A scrape of `p`'s admin listener.
fn scrape(p: &RunningProxy) -> String {
    use std::io::Write;
    let mut c = common::connect(p.admin_addr().expect("an admin listener"));
    c.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    common::read_response(&mut c, "GET").text()
}

/// A federation of the fixture, once per `(name, flags)`.
fn proxy(members: &[(&str, &[&str])]) -> RunningProxy {
    federation(
        members
            .iter()
            .map(|(name, flags)| stdio_member(name, flags))
            .collect(),
    )
}

/// The names in the route's merged `tools/list`.
fn tool_names(p: &RunningProxy, sid: &str) -> Vec<String> {
    let list = post(
        p,
        json!({"jsonrpc":"2.0","id":"names","method":"tools/list"}),
        Some(sid),
    );
    assert_eq!(list.status, 200, "{}", String::from_utf8_lossy(&list.body));
    list.last()["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

fn post(p: &RunningProxy, body: Value, sid: Option<&str>) -> Got {
    exchange(p, &request("POST", &body.to_string(), sid, BOTH))
}

fn initialize(p: &RunningProxy) -> (String, Value) {
    let body = json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
        "protocolVersion":"2025-06-18","capabilities":{"sampling":{}},
        "clientInfo":{"name":"t","version":"1"}}});
    let got = post(p, body, None);
    assert_eq!(got.status, 200, "{}", String::from_utf8_lossy(&got.body));
    let sid = got.header("mcp-session-id").expect("a session id");
    let note = json!({"jsonrpc":"2.0","method":"notifications/initialized"});
    assert_eq!(post(p, note, Some(&sid)).status, 202);
    (sid, got.last())
}

fn text(got: &Got) -> String {
    let v = got.last();
    v["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no text in {v}"))
        .to_owned()
}

fn call(p: &RunningProxy, sid: &str, id: u32, tool: &str) -> Got {
    let body = json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":tool,"arguments":{"text":tool}}});
    post(p, body, Some(sid))
}

#[test]
fn two_servers_behind_one_endpoint() {
    let p = proxy(&[("a", &[]), ("b", &[])]);
    two_members_serve(&p);
    p.shutdown();
}

#[test]
fn two_http_servers_behind_one_endpoint() {
    let (a, b) = (http_server(&[]), http_server(&[]));
    let p = federation(vec![
        http_member("a", a.local_addr()),
        http_member("b", b.local_addr()),
    ]);
    two_members_serve(&p);
    // A member's request to the client, over the member's SSE answer.
    a_members_request_comes_back(&p);
    p.shutdown();
    a.shutdown();
    b.shutdown();
}

#[test]
fn command_and_http_members_mix_and_a_closed_port_is_left_out() {
    let b = http_server(&[]);
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let p = federation(vec![
        stdio_member("a", &[]),
        http_member("b", b.local_addr()),
        http_member("gone", closed),
    ]);
    let (sid, _) = initialize(&p);
    let names = tool_names(&p, &sid);
    assert!(
        names.contains(&"a__pid".to_owned()) && names.contains(&"b__pid".to_owned()),
        "{names:?}"
    );
    assert!(!names.iter().any(|n| n.starts_with("gone__")), "{names:?}");
    assert_ne!(
        text(&call(&p, &sid, 2, "a__pid")),
        text(&call(&p, &sid, 3, "b__pid"))
    );
    let gone = call(&p, &sid, 4, "gone__echo");
    assert_eq!(gone.status, 502);
    assert_eq!(gone.last()["id"], 4);
    assert!(
        gone.last()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("member gone"),
        "{}",
        gone.last()
    );
    p.shutdown();
    b.shutdown();
}

#[test]
fn each_members_requests_are_counted_by_how_they_ended() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let mut a = stdio_member("a", &[]);
    // Time for the child to start; not for a slow call paused a second a step.
    a.policy.timeout = std::time::Duration::from_secs(2);
    let p = federation(vec![a, http_member("gone", closed)]);
    // Three sessions: a takes each initialize and its notification; gone's
    // port is closed, three failures in a row, and its circuit opens.
    for _ in 0..3 {
        initialize(&p);
    }
    // The fourth session does not try it.
    let (sid, _) = initialize(&p);
    tool_names(&p, &sid);
    assert_eq!(call(&p, &sid, 2, "a__echo").status, 200);
    let slow = json!({"jsonrpc":"2.0","id":3,"method":"tools/call",
        "params":{"name":"a__slow","arguments":{"pause":1.0}}});
    assert_eq!(post(&p, slow, Some(&sid)).status, 502);
    // A call to a member outside the session goes nowhere.
    assert_eq!(call(&p, &sid, 4, "gone__echo").status, 502);
    let series = |member: &str, outcome: &str| {
        format!(
            r#"sluice_federation_member_requests_total{{route="upstream",member="{member}",outcome="{outcome}"}}"#
        )
    };
    // Counted as each client request ends, just after its answer went.
    let want = [
        ("a", "ok", 10.0),
        ("a", "timeout", 1.0),
        ("gone", "error", 3.0),
        ("gone", "circuit_open", 1.0),
    ];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let text = loop {
        let text = scrape(&p);
        let read = |member, outcome| value(&text, &series(member, outcome));
        if want.iter().all(|&(m, o, n)| read(m, o) == Some(n)) {
            break text;
        }
        assert!(std::time::Instant::now() < deadline, "{text}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    for (member, outcome) in [("a", "error"), ("a", "dropped"), ("gone", "ok")] {
        assert_eq!(value(&text, &series(member, outcome)), Some(0.0), "{text}");
    }
    p.shutdown();
}

/// The value of `series` (name and labels, as written) in `text`.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Two members `a` and `b`, each the fixture: merged lists, routed calls,
/// progress with the client's token.
fn two_members_serve(p: &RunningProxy) {
    let (sid, init) = initialize(p);
    assert!(
        sid.len() > 40 && sid.bytes().all(|b| b.is_ascii_graphic()),
        "{sid}"
    );
    assert_eq!(init["result"]["protocolVersion"], "2025-06-18");
    assert_eq!(init["result"]["serverInfo"]["name"], "sluice");

    let names = tool_names(p, &sid);
    assert!(
        names.contains(&"a__echo".to_owned()) && names.contains(&"b__echo".to_owned()),
        "{names:?}"
    );
    assert_eq!(names.len() % 2, 0, "each member's tools once: {names:?}");

    // Each call reaches its own member: two children, two pids.
    let pid_a = text(&call(p, &sid, 1, "a__pid"));
    let pid_b = text(&call(p, &sid, 2, "b__pid"));
    assert_ne!(pid_a, pid_b);
    assert_eq!(
        text(&call(p, &sid, 3, "b__echo")),
        "b__echo",
        "arguments unchanged"
    );

    // Progress streams with the client's token.
    let slow = json!({"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"a__slow","_meta":{"progressToken":"t"}}});
    let got = post(p, slow, Some(&sid));
    let events: Vec<Value> = got
        .events
        .iter()
        .map(|(_, d)| serde_json::from_str(d).unwrap())
        .collect();
    assert_eq!(events.len(), 4, "{events:?}");
    assert!(
        events[..3]
            .iter()
            .all(|e| e["params"]["progressToken"] == "t")
    );
    assert_eq!(events[3]["id"], 4);

    // Unknown tool: an error with the request's id.
    let nope = call(p, &sid, 5, "c__echo");
    assert_eq!(nope.last()["id"], 5);
    assert_eq!(nope.last()["error"]["code"], -32602);
}

#[test]
fn a_members_request_reaches_the_client_tagged_and_the_answer_goes_back() {
    let p = proxy(&[("a", &[]), ("b", &[])]);
    a_members_request_comes_back(&p);
    p.shutdown();
}

/// Member `b`'s sampling request reaches the client tagged, and the
/// client's answer reaches `b`.
fn a_members_request_comes_back(p: &RunningProxy) {
    let (sid, _) = initialize(p);
    let mut conn = common::connect(p.local_addr());
    let body =
        json!({"jsonrpc":"2.0","id":"c","method":"tools/call","params":{"name":"b__sample"}});
    conn.write_all(&request("POST", &body.to_string(), Some(&sid), BOTH))
        .unwrap();
    let first = read_got(&mut conn, Some(1));
    let ask: Value = serde_json::from_str(&first.events[0].1).unwrap();
    assert_eq!(ask["method"], "sampling/createMessage");
    let tag = ask["id"].as_str().expect("a tagged id").to_owned();
    assert!(tag.starts_with("sluice/1/"), "{tag}");
    let answer = json!({"jsonrpc":"2.0","id":tag,"result":{"role":"assistant",
        "content":{"type":"text","text":"pong"},"model":"m"}});
    assert_eq!(post(p, answer, Some(&sid)).status, 202);
    let rest = read_got_more(&mut conn);
    let last: Value = serde_json::from_str(rest.last().unwrap()).unwrap();
    assert_eq!(last["id"], "c");
    assert!(
        last["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("pong")
    );
}

#[test]
fn forged_and_foreign_sessions_are_404_and_a_member_that_cannot_start_is_left_out() {
    let p = proxy(&[("a", &[]), ("down", &["--exit-at-start", "3"])]);
    let (sid, init) = initialize(&p);
    assert_eq!(
        init["result"]["capabilities"]["tools"]["listChanged"], true,
        "a's"
    );
    let names = tool_names(&p, &sid);
    assert!(
        !names.is_empty() && names.iter().all(|n| n.starts_with("a__")),
        "{names:?}"
    );
    let down = call(&p, &sid, 2, "down__echo");
    assert_eq!(down.status, 502);
    assert!(
        down.last()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("member down")
    );

    let mut forged = sid.clone().into_bytes();
    let at = forged.len() / 2;
    forged[at] = if forged[at] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    let got = post(
        &p,
        json!({"jsonrpc":"2.0","id":3,"method":"tools/list"}),
        Some(&forged),
    );
    assert_eq!(got.status, 404);
    assert_eq!(got.last()["id"], 3);
    let opened = "sluice_federation_sessions_opened_total";
    let refused = "sluice_federation_session_refused_total";
    assert_eq!(counted(&p, opened), Some(1.0));
    assert_eq!(counted(&p, refused), Some(1.0));
    // Another process's key opens nothing here.
    let other = proxy(&[("a", &[]), ("down", &[])]);
    let got = post(
        &other,
        json!({"jsonrpc":"2.0","id":4,"method":"ping"}),
        Some(&sid),
    );
    assert_eq!(got.status, 404);
    assert_eq!(counted(&other, refused), Some(1.0));
    assert_eq!(counted(&other, opened), Some(0.0));
    other.shutdown();
    p.shutdown();
}

#[test]
fn replicas_with_one_key_serve_each_others_sessions_and_a_rotation_keeps_them() {
    let (a, b) = (http_server(&[]), http_server(&[]));
    let members = || {
        vec![
            http_member("a", a.local_addr()),
            http_member("b", b.local_addr()),
        ]
    };
    let (old, new) = ([1u8; 32], [2u8; 32]);
    let one = keyed_federation(members(), vec![old]);
    let two = keyed_federation(members(), vec![old]);
    let (sid, _) = initialize(&one);
    // The other replica never saw the session: it opens the token.
    let pid_a = text(&call(&two, &sid, 1, "a__pid"));
    assert_eq!(
        pid_a,
        text(&call(&one, &sid, 2, "a__pid")),
        "one member session"
    );
    // Rotated: the new key seals, the old one still opens.
    let rotated = keyed_federation(members(), vec![new, old]);
    assert_eq!(text(&call(&rotated, &sid, 3, "b__echo")), "b__echo");
    let (new_sid, _) = initialize(&rotated);
    let got = call(&one, &new_sid, 4, "a__pid");
    assert_eq!(got.status, 404, "a replica without the new key");
    // The old key dropped: the old sessions are over (404, the client
    // initializes again).
    let retired = keyed_federation(members(), vec![new]);
    assert_eq!(call(&retired, &sid, 5, "a__pid").status, 404);
    assert_eq!(text(&call(&retired, &new_sid, 6, "b__echo")), "b__echo");
    for p in [one, two, rotated, retired, a, b] {
        p.shutdown();
    }
}

/// A legacy HTTP+SSE member at `addr`, its SSE stream at `/sse`.
fn legacy_member(name: &str, addr: std::net::SocketAddr) -> MemberUpstream {
    let at = HttpMember {
        host: addr.ip().to_string(),
        port: addr.port(),
        tls: false,
        url: MemberUrl {
            authority: addr.to_string(),
            target: "/sse".into(),
        },
        headers: Vec::new(),
    };
    let bridging = sluice::legacy::Bridging::new(
        sluice_core::legacy::Mode::Session,
        false,
        &at.url.authority,
        &at.url.target,
    );
    MemberUpstream {
        name: name.to_string(),
        tools: Curation::new(name),
        prompts: Curation::new(name),
        server: MemberServer::Legacy(LegacyMember { at, bridging }),
        policy: DEFAULT_POLICY,
    }
}

#[test]
fn three_transports_behind_one_endpoint() {
    let http = http_server(&[]);
    let legacy = legacy_backend::backend(legacy_backend::Opts::default());
    let p = federation(vec![
        stdio_member("a", &[]),
        http_member("b", http.local_addr()),
        legacy_member("c", legacy.addr),
    ]);
    let (sid, _) = initialize(&p);
    let names = tool_names(&p, &sid);
    for want in ["a__pid", "b__pid", "c__echo"] {
        assert!(names.iter().any(|n| n == want), "{want} in {names:?}");
    }
    let echo = json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"c__echo","arguments":{"text":"via the bridge"}}});
    assert_eq!(text(&post(&p, echo, Some(&sid))), "via the bridge");
    // Progress streams back from the legacy member's SSE session.
    let slow = json!({"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"c__progress","arguments":{"steps":3,"interval_ms":20},"_meta":{"progressToken":"t"}}});
    let got = post(&p, slow, Some(&sid));
    let events: Vec<Value> = got
        .events
        .iter()
        .map(|(_, d)| serde_json::from_str(d).unwrap())
        .collect();
    assert_eq!(events.len(), 4, "{events:?}");
    assert!(
        events[..3]
            .iter()
            .all(|e| e["params"]["progressToken"] == "t")
    );
    assert_eq!(events[3]["id"], 3);
    // The legacy member's request to the client: a legacy server has no
    // request streams, so it comes on the client's GET stream, tagged, and
    // the answer goes back to the member.
    let mut get = common::connect(p.local_addr());
    get.write_all(&request("GET", "", Some(&sid), "text/event-stream"))
        .unwrap();
    let addr = p.local_addr();
    let sid2 = sid.clone();
    let caller = std::thread::spawn(move || {
        let mut c = common::connect(addr);
        let body =
            json!({"jsonrpc":"2.0","id":"s","method":"tools/call","params":{"name":"c__sample"}});
        c.write_all(&request("POST", &body.to_string(), Some(&sid2), BOTH))
            .unwrap();
        read_got(&mut c, None)
    });
    let first = read_got(&mut get, Some(1));
    assert_eq!(first.status, 200);
    let ask: Value = serde_json::from_str(&first.events[0].1).unwrap();
    assert_eq!(ask["method"], "sampling/createMessage");
    let tag = ask["id"].as_str().expect("a tagged id").to_owned();
    assert!(tag.starts_with("sluice/2/"), "{tag}");
    let answer = json!({"jsonrpc":"2.0","id":tag,"result":{"role":"assistant",
        "content":{"type":"text","text":"pong"},"model":"m"}});
    assert_eq!(post(&p, answer, Some(&sid)).status, 202);
    let done = caller.join().unwrap();
    assert_eq!(done.last()["id"], "s");
    assert_eq!(done.last()["result"]["content"][0]["text"], "pong");
    drop(get);
    // The client's DELETE ends the member's backend session too.
    let del = exchange(&p, &request("DELETE", "", Some(&sid), BOTH));
    assert_eq!(del.status, 200);
    legacy_backend::wait_for("the backend stream to end", || {
        legacy.ended.load(std::sync::atomic::Ordering::SeqCst) >= 1
    });
    p.shutdown();
    http.shutdown();
}

/// What a scripted HTTP member does with a `tools/call`.
#[derive(Clone, Copy)]
enum Misbehaviour {
    /// Opens an SSE answer, sends one progress notification, and drops
    /// the connection.
    DiesMidStream,
    /// Answers every request with bytes that are no HTTP response.
    Garbage,
}

/// A Streamable HTTP member that answers `initialize` and `tools/list`
/// properly (one tool, `t`) and misbehaves as told on `tools/call`
/// (`Garbage`: on everything after `initialize`).
/// One request from a member's connection: its head (request line and
/// fields, each with its CRLF) and its `Content-Length` body; `None` at the
/// connection's end.
fn read_member_request(reader: &mut impl std::io::BufRead) -> Option<(String, Vec<u8>)> {
    let (mut head, mut len) = (String::new(), 0usize);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return None;
        }
        if line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap();
        }
        head.push_str(&line);
    }
    let mut body = vec![0; len];
    reader.read_exact(&mut body).unwrap();
    Some((head, body))
}

fn scripted_member(how: Misbehaviour) -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            std::thread::spawn(move || {
                let mut reader = std::io::BufReader::new(conn.try_clone().unwrap());
                while let Some((_, body)) = read_member_request(&mut reader) {
                    let msg: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    let id = msg["id"].clone();
                    let json = |v: Value| {
                        let b = v.to_string();
                        format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nMcp-Session-Id: m1\r\nContent-Length: {}\r\n\r\n{b}",
                            b.len()
                        )
                    };
                    let reply = match msg["method"].as_str() {
                        Some("initialize") => json(json!({"jsonrpc":"2.0","id":id,"result":{
                            "protocolVersion":"2025-06-18","capabilities":{"tools":{}},
                            "serverInfo":{"name":"scripted","version":"1"}}})),
                        _ if matches!(how, Misbehaviour::Garbage) => {
                            "\u{0}\u{1}garbage, not HTTP\r\n\r\n".to_string()
                        }
                        Some("tools/list") => {
                            json(json!({"jsonrpc":"2.0","id":id,"result":{"tools":[
                            {"name":"t","inputSchema":{"type":"object"}}]}}))
                        }
                        Some("tools/call") => {
                            let token = msg["params"]["_meta"]["progressToken"].clone();
                            let note = json!({"jsonrpc":"2.0","method":"notifications/progress",
                                "params":{"progressToken":token,"progress":1,"total":2}});
                            let event = format!("data: {note}\n\n");
                            let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n";
                            let _ = conn.write_all(
                                format!("{head}{:x}\r\n{event}\r\n", event.len()).as_bytes(),
                            );
                            std::thread::sleep(std::time::Duration::from_millis(50));
                            // Gone, mid-stream.
                            let _ = conn.shutdown(std::net::Shutdown::Both);
                            return;
                        }
                        _ => "HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n".to_string(),
                    };
                    if conn.write_all(reply.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

#[test]
fn a_member_dying_mid_stream_fails_its_call_cleanly_and_the_others_go_on() {
    let p = federation(vec![
        stdio_member("a", &[]),
        http_member("dying", scripted_member(Misbehaviour::DiesMidStream)),
    ]);
    let (sid, _) = initialize(&p);
    let body = json!({"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"dying__t","_meta":{"progressToken":"p"}}});
    let got = post(&p, body, Some(&sid));
    assert_eq!(got.status, 200);
    let events: Vec<Value> = got
        .events
        .iter()
        .map(|(_, d)| serde_json::from_str(d).unwrap())
        .collect();
    assert_eq!(events[0]["params"]["progressToken"], "p", "{events:?}");
    // The client is owed an answer to its call: a JSON-RPC error with its id.
    let last = events.last().unwrap();
    assert_eq!(last["id"], 7, "{events:?}");
    assert!(last["error"]["code"].is_i64(), "{last}");
    // The session and the other member carry on.
    assert_eq!(text(&call(&p, &sid, 8, "a__echo")), "a__echo");
    p.shutdown();
}

#[test]
fn a_member_answering_garbage_is_left_out_of_lists_and_its_calls_name_it() {
    let p = federation(vec![
        stdio_member("a", &[]),
        http_member("junk", scripted_member(Misbehaviour::Garbage)),
    ]);
    let (sid, _) = initialize(&p);
    let names = tool_names(&p, &sid);
    assert!(names.contains(&"a__echo".to_owned()), "{names:?}");
    assert!(!names.iter().any(|n| n.starts_with("junk__")), "{names:?}");
    let got = call(&p, &sid, 2, "junk__t");
    assert_eq!(got.status, 502);
    assert_eq!(got.last()["id"], 2);
    let message = got.last()["error"]["message"].as_str().unwrap().to_owned();
    assert!(message.contains("member junk"), "{message}");
    assert_eq!(text(&call(&p, &sid, 3, "a__echo")), "a__echo");
    p.shutdown();
}

#[test]
fn list_changed_from_any_member_reaches_the_clients_get_stream() {
    use std::io::Read;
    let http = http_server(&[]);
    let p = federation(vec![
        stdio_member("a", &[]),
        http_member("b", http.local_addr()),
    ]);
    let (sid, _) = initialize(&p);
    let mut get = common::connect(p.local_addr());
    get.write_all(&request("GET", "", Some(&sid), "text/event-stream"))
        .unwrap();
    assert_eq!(read_got(&mut get, Some(0)).status, 200);
    get.set_read_timeout(Some(std::time::Duration::from_millis(100)))
        .unwrap();
    // A member announces only once its part of the GET stream is open: each
    // member in turn announces until one list_changed arrives, so each one
    // seen is that member's.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    for (id, tool) in [(1, "a__announce"), (2, "b__announce")] {
        loop {
            assert!(std::time::Instant::now() < deadline, "{tool}: nothing came");
            assert_eq!(text(&call(&p, &sid, id, tool)), "announced");
            let mut buf = [0u8; 4096];
            match get.read(&mut buf) {
                Ok(n) if n > 0 => {
                    let chunk = String::from_utf8_lossy(&buf[..n]);
                    assert!(
                        chunk.contains("notifications/tools/list_changed"),
                        "{chunk}"
                    );
                    break;
                }
                Ok(_) => panic!("the GET stream ended"),
                Err(_) => continue,
            }
        }
    }
    drop(get);
    p.shutdown();
    http.shutdown();
}

/// A Streamable HTTP member that answers `initialize`, `tools/list` (one
/// tool, `t`) and `tools/call`, and reports the head of every request.
fn recording_member() -> (std::net::SocketAddr, std::sync::mpsc::Receiver<String>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut reader = std::io::BufReader::new(conn.try_clone().unwrap());
                while let Some((head, body)) = read_member_request(&mut reader) {
                    let _ = tx.send(head);
                    let msg: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    let result = match msg["method"].as_str() {
                        Some("initialize") => json!({"protocolVersion":"2025-06-18",
                            "capabilities":{"tools":{}},"serverInfo":{"name":"rec","version":"1"}}),
                        Some("tools/list") => {
                            json!({"tools":[{"name":"t","inputSchema":{"type":"object"}}]})
                        }
                        Some(_) => json!({"content":[{"type":"text","text":"ok"}]}),
                        None => {
                            let _ = conn
                                .write_all(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n");
                            continue;
                        }
                    };
                    let b = json!({"jsonrpc":"2.0","id":msg["id"],"result":result}).to_string();
                    let reply = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nMcp-Session-Id: m1\r\nContent-Length: {}\r\n\r\n{b}",
                        b.len()
                    );
                    if conn.write_all(reply.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, rx)
}

/// The header lines of `head` named `name`, as `Name: value`.
fn fields<'a>(head: &'a str, name: &str) -> Vec<&'a str> {
    head.lines()
        .filter(|l| {
            l.split_once(':')
                .is_some_and(|(n, _)| n.eq_ignore_ascii_case(name))
        })
        .collect()
}

/// `upstream_headers` of a `[[route.server]]`: that member gets the
/// operator's credentials in place of the client's fields by those names;
/// a member without them gets what the client sent.
#[test]
fn a_members_upstream_headers_replace_the_clients_for_that_member_only() {
    let (a, seen_a) = recording_member();
    let (b, seen_b) = recording_member();
    let dir = std::env::temp_dir().join(format!("sluice-member-headers-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let secret = dir.join("a-token");
    std::fs::write(&secret, "Bearer member-a-secret\n").unwrap();
    let toml = format!(
        "listen = \"127.0.0.1:0\"\n\n[[route]]\npath = \"/mcp\"\n\n\
         [[route.server]]\nname = \"a\"\nupstream = \"http://{a}/mcp\"\n\
         upstream_headers = {{ Authorization = {{ from_file = {secret:?} }}, X-Tenant = \"blue\" }}\n\n\
         [[route.server]]\nname = \"b\"\nupstream = \"http://{b}/mcp\"\n"
    );
    let config = sluice::config::Config::from_toml(&toml, "t.toml", &dir).expect("config parses");
    let mut settings = sluice::settings::proxy_settings(&config).expect("settings");
    settings.access_log = false;
    let p = sluice::proxy::start(settings).expect("sluice starts");
    let client = "Authorization: Bearer client-token\r\nX-Tenant: red\r\n";
    let init = json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
        "protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}})
    .to_string();
    let with_client_fields = |bytes: Vec<u8>| {
        let text = String::from_utf8(bytes).unwrap();
        text.replacen("\r\n", &format!("\r\n{client}"), 1)
            .into_bytes()
    };
    let got = exchange(&p, &with_client_fields(request("POST", &init, None, BOTH)));
    assert_eq!(got.status, 200, "{}", String::from_utf8_lossy(&got.body));
    let sid = got.header("mcp-session-id").unwrap();
    let body = json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a__t","arguments":{}}});
    let got = exchange(
        &p,
        &with_client_fields(request("POST", &body.to_string(), Some(&sid), BOTH)),
    );
    assert_eq!(text(&got), "ok");
    let timeout = std::time::Duration::from_secs(10);
    for head in [
        seen_a.recv_timeout(timeout).unwrap(),
        seen_a.recv_timeout(timeout).unwrap(),
    ] {
        assert_eq!(
            fields(&head, "authorization"),
            ["Authorization: Bearer member-a-secret"],
            "{head}"
        );
        assert_eq!(fields(&head, "x-tenant"), ["X-Tenant: blue"], "{head}");
    }
    let head = seen_b.recv_timeout(timeout).unwrap();
    assert_eq!(
        fields(&head, "authorization"),
        ["Authorization: Bearer client-token"],
        "{head}"
    );
    assert_eq!(fields(&head, "x-tenant"), ["X-Tenant: red"], "{head}");
    p.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
}

/// On a federated route with `[route.auth]`, the caller's token stays with
/// sluice: no member gets it.
#[test]
fn a_protected_federated_routes_members_never_see_the_callers_token() {
    let (a, seen_a) = recording_member();
    let key = "sk-test-federation-0123456789";
    let hash: String = sluice_core::auth::api_key::sha256(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let toml = format!(
        "listen = \"127.0.0.1:0\"\n\n[[route]]\npath = \"/mcp\"\n\n\
         [[route.server]]\nname = \"a\"\nupstream = \"http://{a}/mcp\"\n\n\
         [route.auth]\naudience = \"http://mcp.test/mcp\"\n\n\
         [[route.auth.api_key]]\nsha256 = \"{hash}\"\nsubject = \"fed\"\n"
    );
    let config = sluice::config::Config::from_toml(&toml, "t.toml", std::path::Path::new("/tmp"))
        .expect("config parses");
    let mut settings = sluice::settings::proxy_settings(&config).expect("settings");
    settings.access_log = false;
    let p = sluice::proxy::start(settings).expect("sluice starts");
    let init = json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
        "protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}})
    .to_string();
    let bytes = String::from_utf8(request("POST", &init, None, BOTH))
        .unwrap()
        .replacen("\r\n", &format!("\r\nAuthorization: Bearer {key}\r\n"), 1);
    let got = exchange(&p, bytes.as_bytes());
    assert_eq!(got.status, 200, "{}", String::from_utf8_lossy(&got.body));
    let head = seen_a
        .recv_timeout(std::time::Duration::from_secs(10))
        .unwrap();
    assert!(fields(&head, "authorization").is_empty(), "{head}");
    // Without the key, nothing reaches the member.
    assert_eq!(
        exchange(&p, &request("POST", &init, None, BOTH)).status,
        401
    );
    assert!(
        seen_a
            .recv_timeout(std::time::Duration::from_millis(200))
            .is_err()
    );
    p.shutdown();
}
