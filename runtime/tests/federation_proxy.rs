//! Federated routes through the real proxy: two scripted stdio servers
//! (tests/fixtures/stdio_server.py) behind one endpoint — the handshake,
//! merged and prefixed lists, routed calls with progress, a member's
//! request to the client and its answer back, forged sessions, a member
//! that cannot start.

mod common;
#[path = "fixtures/legacy_backend.rs"]
mod legacy_backend;

use std::io::Write;

use legacy_backend::{BOTH, Got, exchange, read_got, read_got_more, request};
use serde_json::{Value, json};
use sluice::federation::{DEFAULT_MEMBER_TIMEOUT, FederationUpstream, MemberUpstream};
use sluice::legacy::UpstreamTransport;
use sluice::proxy::RunningProxy;
use sluice::stdio::StdioUpstream;
use sluice_core::federation::Curation;

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

/// A federation of the fixture, once per `(name, flags)`.
fn proxy(members: &[(&str, &[&str])]) -> RunningProxy {
    let python = python();
    let path = std::env::var("PATH").unwrap_or_default();
    let members = members
        .iter()
        .map(|(name, flags)| {
            let mut command = vec![python.clone(), FIXTURE.to_owned()];
            command.extend(flags.iter().map(|f| f.to_string()));
            let mut stdio = StdioUpstream::new(command, vec![("PATH".into(), path.clone())]);
            stdio.shutdown_grace = std::time::Duration::from_millis(300);
            MemberUpstream {
                name: name.to_string(),
                tools: Curation::new(*name),
                prompts: Curation::new(*name),
                stdio,
            }
        })
        .collect();
    let fed = FederationUpstream {
        members,
        member_timeout: DEFAULT_MEMBER_TIMEOUT,
    };
    common::proxy_with("127.0.0.1:9".parse().unwrap(), |s| {
        s.upstreams[0].transport = UpstreamTransport::Federation(Box::new(fed));
    })
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
    let (sid, init) = initialize(&p);
    assert!(
        sid.len() > 40 && sid.bytes().all(|b| b.is_ascii_graphic()),
        "{sid}"
    );
    assert_eq!(init["result"]["protocolVersion"], "2025-06-18");
    assert_eq!(init["result"]["serverInfo"]["name"], "sluice");

    let list = post(
        &p,
        json!({"jsonrpc":"2.0","id":"l","method":"tools/list"}),
        Some(&sid),
    );
    let names: Vec<String> = list.last()["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        names.contains(&"a__echo".to_owned()) && names.contains(&"b__echo".to_owned()),
        "{names:?}"
    );
    assert_eq!(names.len() % 2, 0, "each member's tools once: {names:?}");

    // Each call reaches its own member: two children, two pids.
    let pid_a = text(&call(&p, &sid, 1, "a__pid"));
    let pid_b = text(&call(&p, &sid, 2, "b__pid"));
    assert_ne!(pid_a, pid_b);
    assert_eq!(
        text(&call(&p, &sid, 3, "b__echo")),
        "b__echo",
        "arguments unchanged"
    );

    // Progress streams with the client's token.
    let slow = json!({"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"a__slow","_meta":{"progressToken":"t"}}});
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
    assert_eq!(events[3]["id"], 4);

    // Unknown tool: an error with the request's id.
    let nope = call(&p, &sid, 5, "c__echo");
    assert_eq!(nope.last()["id"], 5);
    assert_eq!(nope.last()["error"]["code"], -32602);
    p.shutdown();
}

#[test]
fn a_members_request_reaches_the_client_tagged_and_the_answer_goes_back() {
    let p = proxy(&[("a", &[]), ("b", &[])]);
    let (sid, _) = initialize(&p);
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
    assert_eq!(post(&p, answer, Some(&sid)).status, 202);
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
fn forged_and_foreign_sessions_are_404_and_a_member_that_cannot_start_is_left_out() {
    let p = proxy(&[("a", &[]), ("down", &["--exit-at-start", "3"])]);
    let (sid, init) = initialize(&p);
    assert_eq!(
        init["result"]["capabilities"]["tools"]["listChanged"], true,
        "a's"
    );
    let list = post(
        &p,
        json!({"jsonrpc":"2.0","id":1,"method":"tools/list"}),
        Some(&sid),
    )
    .last();
    let names: Vec<&str> = list["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
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
    // Another process's key opens nothing here.
    let other = proxy(&[("a", &[]), ("down", &[])]);
    let got = post(
        &other,
        json!({"jsonrpc":"2.0","id":4,"method":"ping"}),
        Some(&sid),
    );
    assert_eq!(got.status, 404);
    other.shutdown();
    p.shutdown();
}
