//! The legacy HTTP+SSE bridge through the real proxy, against a scripted
//! 2024-11-05 backend: sessions, progress streaming (checked by timing),
//! the GET stream, server requests, DELETE, per-request mode, failures.

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sluice::legacy::{Bridging, UpstreamTransport};
use sluice::proxy::RunningProxy;
use sluice_core::http1::{self, BodyFraming, ChunkedDecoder, Parsed};
use sluice_core::legacy::Mode;
use sluice_core::sse::{SseItem, SseLimits, SseParser};

// -- a scripted legacy backend -----------------------------------------------------------

#[derive(Clone, Copy, Default)]
struct Opts {
    /// CRLF line ends and `: ping` comments, like the Python SDK.
    crlf: bool,
    /// Answer the GET with this instead of an event stream.
    wrong_content_type: bool,
}

enum Push {
    Event(Vec<u8>),
    Close,
}

#[derive(Default)]
struct State {
    streams: HashMap<String, mpsc::Sender<Push>>,
    /// Answers to server requests, by session.
    answers: HashMap<String, mpsc::Sender<Value>>,
    next: usize,
}

struct Backend {
    addr: SocketAddr,
    /// SSE streams opened / ended.
    opened: Arc<AtomicUsize>,
    ended: Arc<AtomicUsize>,
    /// Every message POSTed, in arrival order.
    posted: Arc<Mutex<Vec<Value>>>,
}

fn backend(opts: Opts) -> Backend {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let state = Arc::new(Mutex::new(State::default()));
    let opened = Arc::new(AtomicUsize::new(0));
    let ended = Arc::new(AtomicUsize::new(0));
    let posted = Arc::new(Mutex::new(Vec::new()));
    let b = Backend {
        addr,
        opened: opened.clone(),
        ended: ended.clone(),
        posted: posted.clone(),
    };
    thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { return };
            let (state, opened, ended, posted) =
                (state.clone(), opened.clone(), ended.clone(), posted.clone());
            thread::spawn(move || serve(conn, opts, state, opened, ended, posted));
        }
    });
    b
}

fn read_req(conn: &mut TcpStream, buf: &mut Vec<u8>) -> Option<(http1::RequestHead, Vec<u8>)> {
    loop {
        if let Ok(Parsed::Complete { head, len }) =
            http1::parse_request_head(buf, &http1::Limits::default())
        {
            let n = match http1::request_framing(&head).unwrap() {
                BodyFraming::ContentLength(n) => n as usize,
                _ => 0,
            };
            if buf.len() >= len + n {
                let body = buf[len..len + n].to_vec();
                buf.drain(..len + n);
                return Some((head, body));
            }
        }
        let mut tmp = [0u8; 8192];
        match conn.read(&mut tmp) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&tmp[..n]),
        }
    }
}

fn serve(
    mut conn: TcpStream,
    opts: Opts,
    state: Arc<Mutex<State>>,
    opened: Arc<AtomicUsize>,
    ended: Arc<AtomicUsize>,
    posted: Arc<Mutex<Vec<Value>>>,
) {
    let mut buf = Vec::new();
    while let Some((head, body)) = read_req(&mut conn, &mut buf) {
        if head.method == "GET" {
            sse_stream(conn, opts, &state, &opened, &ended);
            return;
        }
        let sid = head
            .target
            .split("sessionId=")
            .nth(1)
            .unwrap_or("")
            .to_owned();
        let known = state.lock().unwrap().streams.contains_key(&sid);
        if !known {
            conn.write_all(
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 17\r\n\r\nCould not find it",
            )
            .unwrap();
            continue;
        }
        let Ok(msg) = serde_json::from_slice::<Value>(&body) else {
            conn.write_all(
                b"HTTP/1.1 400 Bad Request\r\nContent-Length: 15\r\n\r\nCould not parse",
            )
            .unwrap();
            continue;
        };
        posted.lock().unwrap().push(msg.clone());
        conn.write_all(b"HTTP/1.1 202 Accepted\r\nContent-Length: 8\r\n\r\nAccepted")
            .unwrap();
        let state = state.clone();
        thread::spawn(move || handle(&sid, msg, &state));
    }
}

fn sse_stream(
    mut conn: TcpStream,
    opts: Opts,
    state: &Mutex<State>,
    opened: &AtomicUsize,
    ended: &AtomicUsize,
) {
    if opts.wrong_content_type {
        let _ = conn.write_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
        );
        return;
    }
    let (tx, rx) = mpsc::channel();
    let sid = {
        let mut s = state.lock().unwrap();
        s.next += 1;
        let sid = format!("s{}", s.next);
        s.streams.insert(sid.clone(), tx);
        sid
    };
    opened.fetch_add(1, Ordering::SeqCst);
    let eol = if opts.crlf { "\r\n" } else { "\n" };
    let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n";
    let chunk = |data: &[u8]| {
        let mut out = format!("{:x}\r\n", data.len()).into_bytes();
        out.extend_from_slice(data);
        out.extend_from_slice(b"\r\n");
        out
    };
    let mut ok = conn.write_all(head.as_bytes()).is_ok();
    let endpoint = format!("event: endpoint{eol}data: /messages?sessionId={sid}{eol}{eol}");
    ok &= conn.write_all(&chunk(endpoint.as_bytes())).is_ok();
    while ok {
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(Push::Event(json)) => {
                let mut ev = format!("event: message{eol}data: ").into_bytes();
                ev.extend_from_slice(&json);
                ev.extend_from_slice(format!("{eol}{eol}").as_bytes());
                ok = conn.write_all(&chunk(&ev)).is_ok();
            }
            Ok(Push::Close) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                let _ = conn.write_all(b"0\r\n\r\n");
                break;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if opts.crlf {
                    ok = conn.write_all(&chunk(b": ping\r\n\r\n")).is_ok();
                }
                // Notice the proxy closing the stream.
                conn.set_nonblocking(true).unwrap();
                let mut probe = [0u8; 1];
                if matches!(conn.peek(&mut probe), Ok(0)) {
                    ok = false;
                }
                conn.set_nonblocking(false).unwrap();
            }
        }
    }
    state.lock().unwrap().streams.remove(&sid);
    ended.fetch_add(1, Ordering::SeqCst);
}

fn push(state: &Mutex<State>, sid: &str, msg: Value) {
    if let Some(tx) = state.lock().unwrap().streams.get(sid) {
        let _ = tx.send(Push::Event(serde_json::to_vec(&msg).unwrap()));
    }
}

/// A small 2024-11-05 server: initialize, ping, tools/list, and tools that
/// stream progress, notify, sample the client, or kill the stream.
fn handle(sid: &str, msg: Value, state: &Mutex<State>) {
    let Some(method) = msg.get("method").and_then(Value::as_str) else {
        // The client's answer to a server request.
        if let Some(tx) = state.lock().unwrap().answers.remove(sid) {
            let _ = tx.send(msg);
        }
        return;
    };
    let Some(id) = msg.get("id").cloned() else {
        return;
    };
    let reply = |result: Value| push(state, sid, json!({"jsonrpc":"2.0","id":id,"result":result}));
    match method {
        "initialize" => reply(
            json!({"protocolVersion":"2024-11-05","capabilities":{"tools":{}},"serverInfo":{"name":"scripted-legacy","version":"1"}}),
        ),
        "ping" => reply(json!({})),
        "tools/list" => reply(json!({"tools":[{"name":"echo","inputSchema":{"type":"object"}}]})),
        "tools/call" => {
            let p = &msg["params"];
            let args = &p["arguments"];
            match p["name"].as_str().unwrap_or("") {
                "echo" => reply(json!({"content":[{"type":"text","text":args["text"]}]})),
                "progress" => {
                    let token = p["_meta"]["progressToken"].clone();
                    let steps = args["steps"].as_u64().unwrap_or(3);
                    for i in 1..=steps {
                        thread::sleep(Duration::from_millis(
                            args["interval_ms"].as_u64().unwrap_or(100),
                        ));
                        push(
                            state,
                            sid,
                            json!({"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":token,"progress":i,"total":steps}}),
                        );
                    }
                    reply(json!({"content":[{"type":"text","text":"done"}]}));
                }
                "notify" => {
                    push(
                        state,
                        sid,
                        json!({"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"hello from the backend"}}),
                    );
                    reply(json!({"content":[]}));
                }
                "sample" => {
                    let (tx, rx) = mpsc::channel();
                    state.lock().unwrap().answers.insert(sid.to_owned(), tx);
                    push(
                        state,
                        sid,
                        json!({"jsonrpc":"2.0","id":"srv-1","method":"sampling/createMessage","params":{"messages":[],"maxTokens":5}}),
                    );
                    let answer = rx
                        .recv_timeout(Duration::from_secs(10))
                        .unwrap_or(Value::Null);
                    reply(
                        json!({"content":[{"type":"text","text":answer["result"]["content"]["text"]}]}),
                    );
                }
                "die" => {
                    if let Some(tx) = state.lock().unwrap().streams.get(sid) {
                        let _ = tx.send(Push::Close);
                    }
                }
                other => push(
                    state,
                    sid,
                    json!({"jsonrpc":"2.0","id":id,"error":{"code":-32602,"message":format!("unknown tool {other}")}}),
                ),
            }
        }
        _ => push(
            state,
            sid,
            json!({"jsonrpc":"2.0","id":id,"error":{"code":-32601,"message":"Method not found"}}),
        ),
    }
}

// -- the client side ------------------------------------------------------------------------

fn proxy(b: &Backend, mode: Mode) -> RunningProxy {
    let authority = b.addr.to_string();
    common::proxy_with(b.addr, |s| {
        s.upstreams[0].transport =
            UpstreamTransport::Sse(Bridging::new(mode, false, &authority, "/mcp"));
    })
}

fn request(method: &str, body: &str, sid: Option<&str>, accept: &str) -> Vec<u8> {
    let sid = sid
        .map(|s| format!("Mcp-Session-Id: {s}\r\n"))
        .unwrap_or_default();
    format!(
        "{method} /mcp HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Accept: {accept}\r\nMcp-Protocol-Version: 2024-11-05\r\n{sid}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

const BOTH: &str = "application/json, text/event-stream";

/// One exchange on a fresh connection; SSE events with their arrival times.
struct Got {
    status: u16,
    head: String,
    body: Vec<u8>,
    events: Vec<(Instant, String)>,
    complete: bool,
}

impl Got {
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }

    fn last(&self) -> Value {
        match self.events.last() {
            Some((_, data)) => serde_json::from_str(data).unwrap(),
            None => serde_json::from_slice(&self.body).unwrap(),
        }
    }
}

fn exchange(p: &RunningProxy, bytes: &[u8]) -> Got {
    let mut conn = common::connect(p.local_addr());
    conn.write_all(bytes).unwrap();
    read_got(&mut conn, None)
}

/// Reads one response; with `stop_after`, returns once that many events came.
fn read_got(conn: &mut TcpStream, stop_after: Option<usize>) -> Got {
    let limits = http1::Limits::default();
    let mut buf = Vec::new();
    let mut tmp = [0u8; 16384];
    let (head, len) = loop {
        if let Ok(Parsed::Complete { head, len }) = http1::parse_response_head(&buf, &limits) {
            break (head, len);
        }
        let n = conn.read(&mut tmp).unwrap();
        assert!(
            n > 0,
            "no response head: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&tmp[..n]);
    };
    let head_text = String::from_utf8_lossy(&buf[..len]).into_owned();
    let mut rest = buf.split_off(len);
    let framing = http1::response_framing("POST", &head).unwrap();
    let mut got = Got {
        status: head.status,
        head: head_text,
        body: Vec::new(),
        events: Vec::new(),
        complete: false,
    };
    let mut sse = SseParser::new(SseLimits::default());
    let mut decoder = ChunkedDecoder::new(&limits);
    loop {
        let now = Instant::now();
        match framing {
            BodyFraming::ContentLength(n) => {
                got.body.extend_from_slice(&rest);
                if got.body.len() as u64 >= n {
                    got.complete = true;
                    return got;
                }
            }
            BodyFraming::None => {
                got.complete = true;
                return got;
            }
            _ => {
                let mut input = &rest[..];
                while !input.is_empty() {
                    let d = decoder.decode(input).unwrap();
                    if let Some(r) = d.data.clone() {
                        got.body.extend_from_slice(&input[r.clone()]);
                        sse.feed(&input[r]);
                    }
                    input = &input[d.consumed..];
                    if d.done {
                        got.complete = true;
                    }
                    if d.consumed == 0 {
                        break;
                    }
                }
                while let Some(item) = sse.poll() {
                    if let Ok(SseItem::Event(e)) = item {
                        got.events.push((now, e.data));
                    }
                }
                if got.complete || stop_after.is_some_and(|n| got.events.len() >= n) {
                    return got;
                }
            }
        }
        let n = conn.read(&mut tmp).unwrap_or(0);
        if n == 0 {
            return got;
        }
        rest = tmp[..n].to_vec();
    }
}

const INIT: &str = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{"sampling":{}},"clientInfo":{"name":"t","version":"1"}}}"#;

fn initialize(p: &RunningProxy) -> String {
    let got = exchange(p, &request("POST", INIT, None, BOTH));
    assert_eq!(got.status, 200, "{}", String::from_utf8_lossy(&got.body));
    assert_eq!(
        got.last()["result"]["serverInfo"]["name"],
        "scripted-legacy"
    );
    let sid = got.header("mcp-session-id").expect("a session id");
    assert_eq!(sid.len(), 32);
    let note = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
    assert_eq!(
        exchange(p, &request("POST", note, Some(&sid), BOTH)).status,
        202
    );
    sid
}

fn wait_for(what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(10));
    }
}

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
    p.shutdown();
}

#[test]
fn auto_passes_a_streamable_backend_through() {
    let up = common::upstream(|conn, req| {
        assert!(req.head.starts_with("POST /mcp "));
        common::json_response(conn, r#"{"jsonrpc":"2.0","id":"sluice-probe","result":{}}"#);
        true
    });
    let authority = up.addr.to_string();
    let p = common::proxy_with(up.addr, |s| {
        s.upstreams[0].transport =
            UpstreamTransport::Auto(Bridging::new(Mode::Session, false, &authority, "/mcp"));
    });
    let got = exchange(
        &p,
        &request(
            "POST",
            r#"{"jsonrpc":"2.0","id":7,"method":"ping"}"#,
            None,
            BOTH,
        ),
    );
    assert_eq!(got.status, 200);
    let probe = up.requests.recv_timeout(Duration::from_secs(5)).unwrap();
    assert!(String::from_utf8_lossy(&probe.body).contains("sluice-probe"));
    let forwarded = up.requests.recv_timeout(Duration::from_secs(5)).unwrap();
    assert!(String::from_utf8_lossy(&forwarded.body).contains(r#""id":7"#));
    p.shutdown();
}
