//! The demo MCP server over raw TCP: a hand-written blocking HTTP/1.1 client,
//! independent of `sluice_core::http1`, so the server's framing is checked
//! by something other than itself.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sluice::demo::DemoServer;

const ACCEPT_BOTH: &str = "application/json, text/event-stream";

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }
}

/// One keep-alive connection.
struct Client {
    reader: BufReader<TcpStream>,
}

impl Client {
    fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        Client {
            reader: BufReader::new(stream),
        }
    }

    fn send(&mut self, method: &str, headers: &[(&str, &str)], body: &str) {
        let mut req = format!("{method} /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n");
        for (n, v) in headers {
            req.push_str(&format!("{n}: {v}\r\n"));
        }
        if !body.is_empty() || method == "POST" {
            req.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        req.push_str("\r\n");
        req.push_str(body);
        self.reader.get_mut().write_all(req.as_bytes()).unwrap();
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        assert!(line.ends_with("\r\n"), "bad line {line:?}");
        line.truncate(line.len() - 2);
        line
    }

    fn read_head(&mut self) -> (u16, Vec<(String, String)>) {
        let status_line = self.line();
        let status = status_line
            .strip_prefix("HTTP/1.1 ")
            .and_then(|s| s.get(..3))
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
        let mut headers = Vec::new();
        loop {
            let line = self.line();
            if line.is_empty() {
                return (status, headers);
            }
            let (n, v) = line.split_once(':').unwrap();
            headers.push((n.to_owned(), v.trim().to_owned()));
        }
    }

    /// The next chunk's data, `None` after the last chunk.
    fn chunk(&mut self) -> Option<Vec<u8>> {
        let size = usize::from_str_radix(&self.line(), 16).unwrap();
        if size == 0 {
            assert_eq!(self.line(), "");
            return None;
        }
        let mut data = vec![0; size];
        self.reader.read_exact(&mut data).unwrap();
        assert_eq!(self.line(), "");
        Some(data)
    }

    fn read_response(&mut self) -> Response {
        let (status, headers) = self.read_head();
        let mut response = Response {
            status,
            headers,
            body: Vec::new(),
        };
        if response.header("transfer-encoding") == Some("chunked") {
            while let Some(data) = self.chunk() {
                response.body.extend_from_slice(&data);
            }
        } else {
            let len: usize = response.header("content-length").unwrap().parse().unwrap();
            response.body = vec![0; len];
            self.reader.read_exact(&mut response.body).unwrap();
        }
        response
    }

    fn request(&mut self, method: &str, headers: &[(&str, &str)], body: &str) -> Response {
        self.send(method, headers, body);
        self.read_response()
    }

    /// POST with the right Accept and Content-Type, in `session` if given.
    fn post(&mut self, session: Option<&str>, body: &Value) -> Response {
        let mut headers = vec![
            ("Accept", ACCEPT_BOTH),
            ("Content-Type", "application/json"),
        ];
        if let Some(s) = session {
            headers.push(("Mcp-Session-Id", s));
        }
        self.request("POST", &headers, &body.to_string())
    }

    fn initialize(&mut self, version: &str) -> (String, Value) {
        let r = self.post(
            None,
            &json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                "protocolVersion": version, "capabilities": {},
                "clientInfo": {"name": "demo-test", "version": "0"}}}),
        );
        assert_eq!(r.status, 200);
        let session = r.header("mcp-session-id").expect("a session id").to_owned();
        assert!(!session.is_empty());
        assert!(
            session.bytes().all(|b| (0x21..=0x7e).contains(&b)),
            "{session:?}"
        );
        (session, r.json())
    }

    fn call(&mut self, session: &str, id: Value, name: &str, args: Value) -> Value {
        let r = self.post(
            Some(session),
            &json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                    "params": {"name": name, "arguments": args}}),
        );
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some("application/json"));
        let v = r.json();
        assert_eq!(v["id"], id);
        v
    }
}

fn started() -> (DemoServer, Client, String) {
    let server = DemoServer::start().unwrap();
    let mut client = Client::connect(server.addr());
    let (session, _) = client.initialize("2025-11-25");
    (server, client, session)
}

#[test]
fn url_and_addr() {
    let server = DemoServer::start().unwrap();
    assert!(server.addr().ip().is_loopback());
    assert_eq!(
        server.url(),
        format!("http://127.0.0.1:{}/mcp", server.addr().port())
    );
    server.shutdown();
}

#[test]
fn initialize_negotiates_version_and_returns_session() {
    let server = DemoServer::start().unwrap();
    let mut client = Client::connect(server.addr());
    for (asked, answered) in [
        ("2025-03-26", "2025-03-26"),
        ("2025-06-18", "2025-06-18"),
        ("2025-11-25", "2025-11-25"),
        ("2024-11-05", "2025-11-25"),
        ("1999-01-01", "2025-11-25"),
    ] {
        let (_, v) = client.initialize(asked);
        assert_eq!(v["jsonrpc"], "2.0");
        assert_eq!(v["id"], 0);
        assert_eq!(v["result"]["protocolVersion"], answered, "asked {asked}");
        assert_eq!(v["result"]["serverInfo"]["name"], "sluice-demo");
        assert!(v["result"]["capabilities"]["tools"].is_object());
    }
    let (a, _) = client.initialize("2025-11-25");
    let (b, _) = client.initialize("2025-11-25");
    assert_ne!(a, b);
}

#[test]
fn tools_list_has_the_five_tools() {
    let (_server, mut client, session) = started();
    let r = client.post(
        Some(&session),
        &json!({"jsonrpc": "2.0", "id": "list", "method": "tools/list"}),
    );
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["id"], "list");
    let tools = v["result"]["tools"].as_array().unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["echo", "add", "countdown", "fail", "crash"]);
    for t in tools {
        assert_eq!(t["inputSchema"]["type"], "object", "{t}");
    }
    for name in ["echo", "add", "countdown"] {
        let t = tools.iter().find(|t| t["name"] == name).unwrap();
        assert_eq!(t["outputSchema"]["type"], "object", "{t}");
    }
}

#[test]
fn tool_answers() {
    let (_server, mut client, session) = started();

    let v = client.call(&session, json!(1), "echo", json!({"text": "hi there"}));
    assert_eq!(
        v["result"]["structuredContent"],
        json!({"text": "hi there"})
    );
    assert_eq!(v["result"]["content"][0]["text"], "hi there");

    let v = client.call(&session, json!("two"), "add", json!({"a": 2, "b": 3}));
    assert_eq!(v["result"]["structuredContent"], json!({"sum": 5}));
    let v = client.call(&session, json!(3), "add", json!({"a": 0.5, "b": 0.25}));
    assert_eq!(v["result"]["structuredContent"], json!({"sum": 0.75}));
    let v = client.call(&session, json!(4), "add", json!({"a": "x"}));
    assert_eq!(v["result"]["isError"], true);

    let v = client.call(&session, json!(5), "fail", json!({}));
    assert_eq!(v["result"]["isError"], true);
    assert!(
        v["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("fail")
    );
    assert!(v.get("error").is_none());

    let v = client.call(&session, json!(6), "crash", json!({}));
    assert_eq!(v["error"]["code"], -32603);
    assert_eq!(v["error"]["message"], "the demo tool crashed on purpose");
    assert!(v.get("result").is_none());

    let v = client.call(&session, json!(7), "nope", json!({}));
    assert_eq!(v["error"]["code"], -32602);

    // Without a progress token the countdown answers plain JSON.
    let v = client.call(&session, json!(8), "countdown", json!({"n": 1}));
    assert_eq!(v["result"]["structuredContent"], json!({"steps": 1}));

    let r = client.post(
        Some(&session),
        &json!({"jsonrpc": "2.0", "id": 9, "method": "ping"}),
    );
    assert_eq!(r.json()["result"], json!({}));

    let r = client.post(
        Some(&session),
        &json!({"jsonrpc": "2.0", "id": 10, "method": "resources/list"}),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["error"]["code"], -32601);
}

#[test]
fn countdown_streams_progress_then_result() {
    let (_server, mut client, session) = started();
    let body = json!({"jsonrpc": "2.0", "id": 42, "method": "tools/call", "params": {
        "name": "countdown", "arguments": {"n": 3}, "_meta": {"progressToken": "tok-1"}}});
    client.send(
        "POST",
        &[
            ("Accept", ACCEPT_BOTH),
            ("Content-Type", "application/json"),
            ("Mcp-Session-Id", &session),
        ],
        &body.to_string(),
    );
    let (status, headers) = client.read_head();
    assert_eq!(status, 200);
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(header("content-type"), Some("text/event-stream"));
    assert_eq!(header("transfer-encoding"), Some("chunked"));
    assert_eq!(header("content-length"), None);

    // Each event with the moment its last byte arrived.
    let mut events: Vec<(Instant, Value)> = Vec::new();
    let mut pending = String::new();
    while let Some(data) = client.chunk() {
        let now = Instant::now();
        pending.push_str(std::str::from_utf8(&data).unwrap());
        while let Some(end) = pending.find("\n\n") {
            let event: String = pending.drain(..end + 2).collect();
            let data = event
                .lines()
                .find_map(|l| l.strip_prefix("data: "))
                .expect("a data line");
            events.push((now, serde_json::from_str(data).unwrap()));
        }
    }
    assert!(pending.is_empty());
    assert_eq!(events.len(), 4, "{events:?}");
    for (i, (_, e)) in events[..3].iter().enumerate() {
        assert_eq!(e["method"], "notifications/progress");
        assert_eq!(e["params"]["progressToken"], "tok-1");
        assert_eq!(e["params"]["progress"], i + 1);
        assert_eq!(e["params"]["total"], 3);
    }
    let (done, result) = &events[3];
    assert_eq!(result["id"], 42);
    assert_eq!(result["result"]["structuredContent"], json!({"steps": 3}));
    // Streamed, not buffered: the first progress event came well before
    // the result (the server spaces them 400 ms apart).
    assert!(events.windows(2).all(|w| w[0].0 <= w[1].0));
    assert!(
        done.duration_since(events[0].0) >= Duration::from_millis(100),
        "progress and result arrived together"
    );

    // The connection is still good for the next request.
    let v = client.call(&session, json!(43), "echo", json!({"text": "after"}));
    assert_eq!(v["result"]["structuredContent"]["text"], "after");
}

#[test]
fn notifications_and_responses_get_202() {
    let (_server, mut client, session) = started();
    let r = client.post(
        Some(&session),
        &json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    );
    assert_eq!(r.status, 202);
    assert!(r.body.is_empty());
    let r = client.post(
        Some(&session),
        &json!({"jsonrpc": "2.0", "id": 5, "result": {}}),
    );
    assert_eq!(r.status, 202);
    assert!(r.body.is_empty());
}

#[test]
fn post_validation() {
    let (_server, mut client, session) = started();
    let ping = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}).to_string();
    let ct = ("Content-Type", "application/json");
    let sid = ("Mcp-Session-Id", session.as_str());

    for accept in ["application/json", "text/event-stream", "text/html"] {
        let r = client.request("POST", &[("Accept", accept), ct, sid], &ping);
        assert_eq!(r.status, 406, "Accept: {accept}");
    }
    let r = client.request("POST", &[ct, sid], &ping);
    assert_eq!(r.status, 406);

    let r = client.request(
        "POST",
        &[("Accept", ACCEPT_BOTH), ("Content-Type", "text/plain"), sid],
        &ping,
    );
    assert_eq!(r.status, 415);

    let r = client.request("POST", &[("Accept", ACCEPT_BOTH), ct, sid], "{not json");
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["code"], -32700);

    let r = client.request("POST", &[("Accept", ACCEPT_BOTH), ct, sid], r#"{"id": 1}"#);
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["code"], -32600);

    // Parameters on the media types are fine.
    let r = client.request(
        "POST",
        &[
            ("Accept", "application/json;q=0.9, text/event-stream"),
            ("Content-Type", "application/json; charset=utf-8"),
            sid,
        ],
        &ping,
    );
    assert_eq!(r.status, 200);
}

#[test]
fn sessions_are_checked() {
    let (_server, mut client, session) = started();
    let ping = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"});

    let r = client.post(Some("no-such-session"), &ping);
    assert_eq!(r.status, 404);
    let r = client.post(None, &ping);
    assert_eq!(r.status, 400);

    let r = client.post(Some(&session), &ping);
    assert_eq!(r.status, 200);
    let r = client.request("DELETE", &[("Mcp-Session-Id", &session)], "");
    assert_eq!(r.status, 200);
    let r = client.post(Some(&session), &ping);
    assert_eq!(r.status, 404);
    let r = client.request("DELETE", &[("Mcp-Session-Id", &session)], "");
    assert_eq!(r.status, 404);
}

#[test]
fn get_stream_carries_log_messages_and_ends_with_the_session() {
    let (server, mut client, session) = started();
    let mut listener = Client::connect(server.addr());
    listener.send(
        "GET",
        &[
            ("Accept", "text/event-stream"),
            ("Mcp-Session-Id", &session),
        ],
        "",
    );
    let (status, headers) = listener.read_head();
    assert_eq!(status, 200);
    assert!(headers.contains(&("Content-Type".into(), "text/event-stream".into())));

    // A second GET stream for the same session is refused.
    let r = Client::connect(server.addr()).request(
        "GET",
        &[
            ("Accept", "text/event-stream"),
            ("Mcp-Session-Id", &session),
        ],
        "",
    );
    assert_eq!(r.status, 409);

    client.call(&session, json!(1), "echo", json!({"text": "x"}));
    let data = listener.chunk().unwrap();
    let text = String::from_utf8(data).unwrap();
    let data = text.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
    let v: Value = serde_json::from_str(data).unwrap();
    assert_eq!(v["method"], "notifications/message");
    assert_eq!(v["params"]["level"], "info");

    let r = client.request("DELETE", &[("Mcp-Session-Id", &session)], "");
    assert_eq!(r.status, 200);
    assert_eq!(listener.chunk(), None);

    let r = Client::connect(server.addr()).request(
        "GET",
        &[
            ("Accept", "text/event-stream"),
            ("Mcp-Session-Id", &session),
        ],
        "",
    );
    assert_eq!(r.status, 404);
}

#[test]
fn chunked_request_body_and_other_paths() {
    let (_server, mut client, session) = started();
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": "ping"}).to_string();
    let (a, b) = body.split_at(10);
    let req = format!(
        "POST /mcp HTTP/1.1\r\nHost: x\r\nAccept: {ACCEPT_BOTH}\r\nContent-Type: application/json\r\n\
         Mcp-Session-Id: {session}\r\nTransfer-Encoding: chunked\r\n\r\n\
         {:x}\r\n{a}\r\n{:x}\r\n{b}\r\n0\r\n\r\n",
        a.len(),
        b.len()
    );
    client.reader.get_mut().write_all(req.as_bytes()).unwrap();
    let r = client.read_response();
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["id"], 7);

    client
        .reader
        .get_mut()
        .write_all(b"GET /other HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert_eq!(client.read_response().status, 404);

    let r = client.request("PUT", &[("Mcp-Session-Id", &session)], "");
    assert_eq!(r.status, 405);

    let r = client.request(
        "POST",
        &[
            ("Accept", ACCEPT_BOTH),
            ("Content-Type", "application/json"),
            ("Origin", "http://evil.example"),
        ],
        "{}",
    );
    assert_eq!(r.status, 403);
}

#[test]
fn shutdown_closes_listener_and_connections() {
    let server = DemoServer::start().unwrap();
    let addr = server.addr();
    let mut client = Client::connect(addr);
    client.initialize("2025-11-25");
    server.shutdown();
    let mut buf = [0u8; 1];
    assert_eq!(client.reader.read(&mut buf).unwrap_or(0), 0);
    assert!(TcpStream::connect(addr).is_err());
}

#[test]
fn batches_only_in_2025_03_26() {
    let server = DemoServer::start().unwrap();
    let mut client = Client::connect(server.addr());
    let batch = json!([
        {"jsonrpc": "2.0", "id": 1, "method": "ping"},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": "b", "method": "tools/call",
         "params": {"name": "add", "arguments": {"a": 1, "b": 1}}},
    ]);
    let (old, _) = client.initialize("2025-03-26");
    let r = client.post(Some(&old), &batch);
    assert_eq!(r.status, 200);
    let v = r.json();
    let answers = v.as_array().unwrap();
    assert_eq!(answers.len(), 2);
    assert_eq!(answers[0]["id"], 1);
    assert_eq!(answers[1]["result"]["structuredContent"]["sum"], 2);

    let (new, _) = client.initialize("2025-06-18");
    let r = client.post(Some(&new), &batch);
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["code"], -32600);
}
