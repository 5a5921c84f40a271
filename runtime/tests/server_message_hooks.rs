//! Hooks on server-to-client messages (`@server-message`, issue 17): the
//! rust-server-guard example refuses a server's `sampling/createMessage`
//! (the client never sees it, the server gets the refusal as the client's
//! answer, on the client's session) and redacts a log notification, on a
//! POST's answer stream and on the GET stream; and what a hook that fails on
//! a server message costs.

mod common;
#[path = "fixtures/hooks/support.rs"]
mod support;

use std::io::Write;
use std::net::TcpStream;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

const SESSION: &str = "sess-42";
const SECRET: &str = "sk-live-0123456789";

/// The answers the upstream got to its server requests, in order.
struct Answers {
    got: Mutex<Vec<(String, Value)>>,
    arrived: Condvar,
    /// How long the upstream waits for an answer before it goes on.
    patience: Duration,
}

impl Answers {
    fn new(patience: Duration) -> Arc<Answers> {
        Arc::new(Answers {
            got: Mutex::default(),
            arrived: Condvar::new(),
            patience,
        })
    }

    /// The client's answer to a server request arrived: noted, and 202.
    fn took(&self, conn: &mut TcpStream, req: &common::Received, answer: Value) {
        self.got.lock().unwrap().push((req.head.clone(), answer));
        self.arrived.notify_all();
        conn.write_all(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n")
            .unwrap();
    }

    /// The next answer (its request head and body), waiting up to
    /// `patience`.
    fn wait(&self, seen: usize) -> Option<(String, Value)> {
        let got = self.got.lock().unwrap();
        let (got, _) = self
            .arrived
            .wait_timeout_while(got, self.patience, |g| g.len() <= seen)
            .unwrap();
        got.get(seen).cloned()
    }
}

fn event(id: u32, message: &Value) -> Vec<u8> {
    format!("event: message\nid: {id}\ndata: {message}\n\n").into_bytes()
}

const SAMPLING_ID: u32 = 0;

fn sampling() -> Value {
    json!({"jsonrpc": "2.0", "id": SAMPLING_ID, "method": "sampling/createMessage",
           "params": {"messages": [{"role": "user", "content": {"type": "text", "text": "hi"}}],
                      "maxTokens": 9}})
}

fn log_note() -> Value {
    json!({"jsonrpc": "2.0", "method": "notifications/message",
           "params": {"level": "info", "data": format!("token {SECRET}")}})
}

/// An MCP server whose tool asks the client for sampling, logs a secret,
/// and reports what the client answered; its GET stream does the same.
fn sampling_upstream(answers: Arc<Answers>) -> common::Upstream {
    common::upstream(move |conn: &mut TcpStream, req| {
        let msg: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
        if req.head.starts_with("GET ") {
            common::write_sse_head(conn);
            common::write_chunk(conn, &event(1, &sampling()));
            let seen = answers.got.lock().unwrap().len();
            let answer = answers.wait(seen);
            let note = json!({"jsonrpc": "2.0", "method": "notifications/message",
                              "params": {"level": "info", "data": format!("answered: {}", answer.is_some())}});
            common::write_chunk(conn, &event(2, &note));
            common::end_chunks(conn);
            return false;
        }
        if msg.get("method").is_none() {
            answers.took(conn, req, msg);
            return true;
        }
        let seen = answers.got.lock().unwrap().len();
        common::write_sse_head(conn);
        common::write_chunk(conn, &event(1, &sampling()));
        common::write_chunk(conn, &event(2, &log_note()));
        let text = match answers.wait(seen) {
            Some((_, answer)) => answer["error"]["message"]
                .as_str()
                .unwrap_or("an answer without an error")
                .to_owned(),
            None => "no answer".to_owned(),
        };
        let result = json!({"jsonrpc": "2.0", "id": msg["id"], "result":
                            {"content": [{"type": "text", "text": text}]}});
        common::write_chunk(conn, &event(3, &result));
        common::end_chunks(conn);
        true
    })
}

fn guarded(up: &common::Upstream, hook_config: &str) -> Option<sluice::proxy::RunningProxy> {
    guarded_with(up, hook_config, "")
}

/// sluice with the server guard, `more` added to its `[[hook]]` table.
fn guarded_with(
    up: &common::Upstream,
    hook_config: &str,
    more: &str,
) -> Option<sluice::proxy::RunningProxy> {
    let dir = support::rust_examples()?;
    let wasm = dir.join("rust-server-guard.wasm");
    Some(with_hook(
        up,
        &wasm,
        &format!("config = '{hook_config}'\n{more}"),
    ))
}

/// sluice in front of `up` with the hook `wasm`, `hook_toml` in its table.
fn with_hook(
    up: &common::Upstream,
    wasm: &std::path::Path,
    hook_toml: &str,
) -> sluice::proxy::RunningProxy {
    let cfg = format!(
        "listen = \"127.0.0.1:0\"\n\n[[route]]\npath = \"/mcp\"\nupstream = \"http://{}/mcp\"\n\
         transport = \"streamable\"\n\n[[hook]]\npath = {:?}\n{hook_toml}",
        up.addr,
        wasm.display().to_string()
    );
    let config = sluice::config::Config::from_toml(&cfg, "test.toml", std::path::Path::new("/tmp"))
        .expect("config parses");
    let mut settings = sluice::settings::proxy_settings(&config).expect("settings");
    settings.access_log = false;
    sluice::proxy::start(settings).expect("sluice starts")
}

/// The JSON-RPC messages of an SSE body.
fn messages(body: &str) -> Vec<Value> {
    body.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

/// `body` POSTed on the session, on a connection of its own (returned,
/// the answer unread).
fn post_on_session(proxy: &sluice::proxy::RunningProxy, body: &Value) -> TcpStream {
    let body = body.to_string();
    let mut c = common::connect(proxy.local_addr());
    write!(
        c,
        "POST /mcp HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nMcp-Session-Id: {SESSION}\r\n\
         MCP-Protocol-Version: 2025-06-18\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    c
}

fn call_tool(proxy: &sluice::proxy::RunningProxy) -> common::Response {
    let call = json!({"jsonrpc": "2.0", "id": "c-1", "method": "tools/call",
                      "params": {"name": "sample", "arguments": {}}});
    common::read_response(&mut post_on_session(proxy, &call), "POST")
}

#[test]
fn a_refused_sampling_request_never_reaches_the_client_and_the_server_hears_why() {
    let answers = Answers::new(Duration::from_secs(10));
    let up = sampling_upstream(answers.clone());
    let Some(proxy) = guarded(&up, &format!(r#"{{"redact": ["{SECRET}"]}}"#)) else {
        return;
    };
    let r = call_tool(&proxy);
    assert_eq!(r.status, 200, "{}", r.head);
    let body = r.text();
    assert!(r.complete, "{body}");
    assert!(!body.contains(SECRET), "{body}");
    let got = messages(&body);
    assert!(
        got.iter().all(|m| m["method"] != "sampling/createMessage"),
        "{body}"
    );
    assert_eq!(got.len(), 2, "{body}");
    assert_eq!(got[0]["method"], "notifications/message");
    assert_eq!(got[0]["params"]["data"], "[redacted by sluice]");
    assert_eq!(got[1]["id"], "c-1");
    assert_eq!(
        got[1]["result"]["content"][0]["text"],
        "the client does not take sampling/createMessage through this gateway"
    );

    let (head, answer) = answers.wait(0).expect("the server got an answer");
    assert_eq!(answer["id"], SAMPLING_ID);
    assert_eq!(answer["error"]["code"], -31002);
    let head = head.to_ascii_lowercase();
    assert!(head.starts_with("post /mcp http/1.1\r\n"), "{head}");
    assert!(
        head.contains(&format!("mcp-session-id: {SESSION}\r\n").to_ascii_lowercase()),
        "{head}"
    );
    assert!(
        head.contains("mcp-protocol-version: 2025-06-18\r\n"),
        "{head}"
    );
    assert!(
        head.contains("content-type: application/json\r\n"),
        "{head}"
    );
}

#[test]
fn the_get_stream_is_guarded_too() {
    let answers = Answers::new(Duration::from_secs(10));
    let up = sampling_upstream(answers.clone());
    let Some(proxy) = guarded(&up, "").into_iter().next() else {
        return;
    };
    let mut c = common::connect(proxy.local_addr());
    write!(
        c,
        "GET /mcp HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n\
         Mcp-Session-Id: {SESSION}\r\n\r\n"
    )
    .unwrap();
    let r = common::read_response(&mut c, "GET");
    assert_eq!(r.status, 200, "{}", r.head);
    let body = r.text();
    assert!(!body.contains("sampling/createMessage"), "{body}");
    let got = messages(&body);
    assert_eq!(got.len(), 1, "{body}");
    assert_eq!(got[0]["params"]["data"], "answered: true");
    let (_, answer) = answers.wait(0).expect("the server got an answer");
    assert_eq!(answer["error"]["code"], -31002);
}

#[test]
fn without_a_subscription_server_messages_pass_untouched() {
    // An answer, were one sent, comes within milliseconds.
    let answers = Answers::new(Duration::from_secs(1));
    let up = sampling_upstream(answers.clone());
    // Refuses elicitation only: sampling goes to the client, which here
    // never answers it.
    let Some(proxy) = guarded(&up, r#"{"refuse": ["elicitation/create"]}"#) else {
        return;
    };
    let r = call_tool(&proxy);
    let got = messages(&r.text());
    assert_eq!(got[0], sampling());
    assert_eq!(got[1], log_note());
    assert_eq!(got[2]["result"]["content"][0]["text"], "no answer");
}

#[test]
fn an_audited_guard_refuses_nothing() {
    let answers = Answers::new(Duration::from_secs(1));
    let up = sampling_upstream(answers.clone());
    let Some(proxy) = guarded_with(
        &up,
        &format!(r#"{{"redact": ["{SECRET}"]}}"#),
        "mode = \"audit\"\n",
    ) else {
        return;
    };
    let r = call_tool(&proxy);
    let got = messages(&r.text());
    // What it would have refused and redacted goes to the client as sent.
    assert_eq!(got[0], sampling());
    assert_eq!(got[1], log_note());
    assert_eq!(got[2]["result"]["content"][0]["text"], "no answer");
    assert!(answers.got.lock().unwrap().is_empty());
}

// ---- Every failure mode on a server message: hand-written 0.2.0 guests ----

/// A 0.2.0 guest that wants `methods` and runs `body` on each server
/// message, written to a file.
fn faulty(methods: &[&str], body: String) -> std::path::PathBuf {
    let wasm = support::Guest::new(methods, support::body::cont()).component_0_2(body);
    let path = support::temp_dir("server-faults").join("faulty.wasm");
    std::fs::write(&path, wasm).unwrap();
    path
}

const SAMPLING_ONLY: &[&str] = &["sampling/createMessage@server-message"];

/// What the client and the server saw of the sampling request when the
/// guest's `body` ran on it under `hook_toml`.
fn sampling_through(body: String, hook_toml: &str) -> (Vec<Value>, Option<Value>) {
    let answers = Answers::new(Duration::from_secs(2));
    let up = sampling_upstream(answers.clone());
    let proxy = with_hook(&up, &faulty(SAMPLING_ONLY, body), hook_toml);
    let got = messages(&call_tool(&proxy).text());
    let answer = answers.got.lock().unwrap().first().map(|(_, a)| a.clone());
    (got, answer)
}

/// The client was never asked for sampling.
fn never_asked(client: &[Value]) {
    assert!(
        client
            .iter()
            .all(|m| m["method"] != "sampling/createMessage"),
        "{client:?}"
    );
}

fn hook_failed(answer: &Option<Value>, reason: &str) {
    let answer = answer.as_ref().expect("the server was answered");
    assert_eq!(answer["id"], SAMPLING_ID);
    assert_eq!(answer["error"]["code"], -32010, "{answer}");
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(message.contains(reason), "{message}");
}

#[test]
fn a_hook_that_traps_on_a_server_request_fails_it_closed_or_open() {
    use support::body;
    let (client, server) = sampling_through(body::trap(), "name = \"faulty\"\n");
    never_asked(&client);
    hook_failed(&server, "hook faulty failed: trapped");

    let (client, server) = sampling_through(body::trap(), "on_error = \"pass\"\n");
    assert_eq!(client[0], sampling(), "fail open: the client gets it");
    assert!(server.is_none());
}

#[test]
fn a_hook_past_its_deadline_on_a_server_request_fails_it() {
    let (client, server) = sampling_through(support::body::spin(), "deadline = \"20ms\"\n");
    never_asked(&client);
    hook_failed(&server, "deadline");
}

#[test]
fn a_bad_verdict_on_a_server_request_fails_it() {
    use support::{NOT_JSON, body};
    let (client, server) = sampling_through(body::respond(NOT_JSON), "");
    never_asked(&client);
    hook_failed(&server, "invalid verdict");
}

#[test]
fn an_audited_hook_that_fails_stops_nothing() {
    let (client, server) = sampling_through(support::body::trap(), "mode = \"audit\"\n");
    assert_eq!(client[0], sampling());
    assert!(server.is_none());
}

#[test]
fn a_failing_hook_on_a_get_stream_notification_drops_it_and_the_stream_goes_on() {
    use support::{ECHO, body};
    // Trapping, and respond (invalid on a notification): both drop it.
    for body in [body::trap(), body::respond(ECHO)] {
        let answers = Answers::new(Duration::from_millis(200));
        let up = sampling_upstream(answers.clone());
        let proxy = with_hook(
            &up,
            &faulty(&["notifications/message@server-message"], body),
            "",
        );
        let mut c = common::connect(proxy.local_addr());
        write!(
            c,
            "GET /mcp HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n\
             Mcp-Session-Id: {SESSION}\r\n\r\n"
        )
        .unwrap();
        let r = common::read_response(&mut c, "GET");
        assert!(r.complete, "the stream ends as the server ends it");
        // The sampling request (unhooked) went through; the note did not.
        let got = messages(&r.text());
        assert_eq!(got, vec![sampling()]);
    }
}

// ---- The client's answers (`@client-answer`) ----

/// An MCP server whose tool asks the client to elicit a form and reports
/// what it got back: the action, or the error the client's answer became.
fn eliciting_upstream(answers: Arc<Answers>) -> common::Upstream {
    common::upstream(move |conn: &mut TcpStream, req| {
        let msg: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
        if msg.get("method").is_none() {
            answers.took(conn, req, msg);
            return true;
        }
        let seen = answers.got.lock().unwrap().len();
        common::write_sse_head(conn);
        let ask = json!({"jsonrpc": "2.0", "id": "e-1", "method": "elicitation/create",
                         "params": {"message": "Your password?", "requestedSchema": {"type": "object"}}});
        common::write_chunk(conn, &event(1, &ask));
        let text = match answers.wait(seen) {
            Some((_, a)) if a.get("error").is_some() => format!("error {}", a["error"]["code"]),
            Some((_, a)) => format!("action {}", a["result"]["action"].as_str().unwrap_or("?")),
            None => "no answer".to_owned(),
        };
        let result = json!({"jsonrpc": "2.0", "id": msg["id"], "result":
                            {"content": [{"type": "text", "text": text}]}});
        common::write_chunk(conn, &event(2, &result));
        common::end_chunks(conn);
        true
    })
}

/// Calls the tool, answers the elicitation with `content` on a second
/// connection once it arrives, and returns what the tool reported.
fn elicit_through(proxy: &sluice::proxy::RunningProxy, content: &str) -> String {
    use std::io::Read;
    let call = json!({"jsonrpc": "2.0", "id": "c-1", "method": "tools/call",
                      "params": {"name": "ask", "arguments": {}}});
    let mut c = post_on_session(proxy, &call);
    let mut seen = Vec::new();
    // The stream, read on until it holds `needle`.
    let mut read_until = |seen: &mut Vec<u8>, needle: &str| {
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(seen).contains(needle) {
            let n = c.read(&mut buf).expect("the stream goes on");
            assert!(n > 0, "the stream ended before {needle}");
            seen.extend_from_slice(&buf[..n]);
        }
    };
    read_until(&mut seen, "elicitation/create");
    let answer = json!({"jsonrpc": "2.0", "id": "e-1",
                        "result": {"action": "accept", "content": {"password": content}}});
    let mut a = post_on_session(proxy, &answer);
    assert_eq!(common::read_response(&mut a, "POST").status, 202);
    read_until(&mut seen, "\"c-1\"");
    let text = String::from_utf8_lossy(&seen).into_owned();
    let start = text.find("\"text\":\"").expect("a text result") + 8;
    text[start..start + text[start..].find('"').unwrap()].to_owned()
}

#[test]
fn a_client_answer_that_holds_a_secret_goes_to_the_server_as_an_error() {
    let answers = Answers::new(Duration::from_secs(10));
    let up = eliciting_upstream(answers.clone());
    let Some(proxy) = guarded(&up, r#"{"withhold": ["hunter2"]}"#) else {
        return;
    };
    assert_eq!(elicit_through(&proxy, "hunter2"), "error -31004");
    let (_, got) = answers.got.lock().unwrap()[0].clone();
    assert!(!got.to_string().contains("hunter2"), "{got}");
    assert_eq!(got["id"], "e-1");
    // An answer without the secret goes as the client gave it.
    assert_eq!(elicit_through(&proxy, "correct horse"), "action accept");
}

#[test]
fn a_hook_that_fails_on_a_client_answer_sends_the_server_an_error_or_the_answer() {
    use support::body;
    for (hook_toml, want) in [
        ("", "error -32010"),
        ("on_error = \"pass\"\n", "action accept"),
    ] {
        let answers = Answers::new(Duration::from_secs(10));
        let up = eliciting_upstream(answers.clone());
        let wasm = support::Guest::new(&["elicitation/create@client-answer"], body::cont())
            .component_0_2_with(body::cont(), body::trap());
        let path = support::temp_dir("client-answer-faults").join("faulty.wasm");
        std::fs::write(&path, wasm).unwrap();
        let proxy = with_hook(&up, &path, hook_toml);
        assert_eq!(elicit_through(&proxy, "anything"), want, "{hook_toml}");
    }
}

/// A client's answer to a server request that never went through this
/// proxy (another replica's, a made-up id) cannot be judged: it must not
/// carry past a client-answer hook what the hook would have withheld.
#[test]
fn an_answer_to_a_request_this_proxy_never_forwarded_is_refused_unless_the_hooks_fail_open() {
    use support::body;
    for (hook_toml, refused) in [
        ("", true),
        ("on_error = \"pass\"\n", false),
        ("mode = \"audit\"\n", false),
    ] {
        let answers = Answers::new(Duration::from_secs(10));
        let up = eliciting_upstream(answers.clone());
        let wasm = support::Guest::new(&["elicitation/create@client-answer"], body::cont())
            .component_0_2_with(body::cont(), body::cont());
        let path = support::temp_dir("unseen-answers").join("answers.wasm");
        std::fs::write(&path, wasm).unwrap();
        let proxy = with_hook(&up, &path, hook_toml);
        let answer = json!({"jsonrpc": "2.0", "id": "nobody-asked",
                            "result": {"action": "accept", "content": {"password": "hunter2"}}});
        let mut a = post_on_session(&proxy, &answer);
        assert_eq!(common::read_response(&mut a, "POST").status, 202);
        let (_, got) = answers.wait(0).expect("the server gets an answer");
        assert_eq!(got["id"], "nobody-asked", "{hook_toml}: {got}");
        if refused {
            assert_eq!(got["error"]["code"], -32010, "{got}");
            assert!(!got.to_string().contains("hunter2"), "{got}");
        } else {
            assert_eq!(got, answer, "{hook_toml}");
        }
    }
}
