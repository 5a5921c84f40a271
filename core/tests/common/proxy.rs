//! The scenarios every example proxy (`core/examples/*_proxy.rs`) passes,
//! run in front of a scripted upstream on ephemeral ports. Each scenario
//! takes the example's `start`: upstream address in, proxy address out.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// What the scripted upstream received: (connection number, request bytes).
pub type Seen = Arc<Mutex<Vec<(usize, String)>>>;

pub const JSON_ANSWER: &str = r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"echo","inputSchema":{"type":"object"}}]}}"#;
pub const PROGRESS: &str = "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progressToken\":\"t\",\"progress\":1}}\n\n";
pub const SSE_ANSWER: &str = "event: message\nid: e-2\ndata: {\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{\"content\":[{\"type\":\"text\",\"text\":\"hi\"}]}}\n\n";

/// A scripted upstream: its address, what it received, and the number of
/// each connection it has closed, sent once the socket is closed.
pub struct Upstream {
    pub addr: SocketAddr,
    pub seen: Seen,
    pub closed: Receiver<usize>,
}

/// An upstream that answers `tools/list` with JSON (and then closes the
/// connection when the request has `"bye"` in it), `tools/call` with a
/// chunked SSE stream written in pieces, and a call to the tool `die` with
/// one event and then a closed connection.
pub fn scripted_upstream() -> Upstream {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Seen = Arc::default();
    let log = seen.clone();
    let (closed_tx, closed) = mpsc::channel();
    thread::spawn(move || {
        for (n, conn) in listener.incoming().enumerate() {
            let (log, closed_tx) = (log.clone(), closed_tx.clone());
            thread::spawn(move || {
                upstream_connection(n, conn.unwrap(), log);
                let _ = closed_tx.send(n);
            });
        }
    });
    Upstream { addr, seen, closed }
}

fn upstream_connection(n: usize, mut conn: TcpStream, log: Seen) {
    let mut buf = Vec::new();
    loop {
        let Some(request) = read_request(&mut conn, &mut buf) else {
            return;
        };
        log.lock().unwrap().push((n, request.clone()));
        if request.contains("tools/list") {
            let answer = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{JSON_ANSWER}",
                JSON_ANSWER.len()
            );
            conn.write_all(answer.as_bytes()).unwrap();
            if request.contains("\"bye\"") {
                // Closed while the proxy holds it idle, as servers do.
                return;
            }
            continue;
        }
        conn.write_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n\
              Transfer-Encoding: chunked\r\n\r\n",
        )
        .unwrap();
        conn.write_all(chunk(PROGRESS).as_bytes()).unwrap();
        if request.contains("\"die\"") {
            // Gone at an event boundary, before the answer.
            thread::sleep(Duration::from_millis(20));
            return;
        }
        // The answer event split across reads, as a slow server sends it.
        let (a, b) = SSE_ANSWER.split_at(20);
        thread::sleep(Duration::from_millis(20));
        conn.write_all(chunk(a).as_bytes()).unwrap();
        thread::sleep(Duration::from_millis(20));
        conn.write_all(format!("{}0\r\n\r\n", chunk(b)).as_bytes())
            .unwrap();
    }
}

fn chunk(data: &str) -> String {
    format!("{:x}\r\n{data}\r\n", data.len())
}

/// One request with a `Content-Length` body, or `None` at end of stream.
fn read_request(conn: &mut TcpStream, buf: &mut Vec<u8>) -> Option<String> {
    loop {
        if let Some(end) = find(buf, b"\r\n\r\n") {
            let head = String::from_utf8(buf[..end + 4].to_vec()).unwrap();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .map_or(0, |v| v.trim().parse().unwrap());
            if buf.len() >= end + 4 + len {
                let request: Vec<u8> = buf.drain(..end + 4 + len).collect();
                return Some(String::from_utf8(request).unwrap());
            }
        }
        let mut tmp = [0u8; 4096];
        match conn.read(&mut tmp) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&tmp[..n]),
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Read one whole response: head, then a `Content-Length` body or chunks up
/// to the last one. Returns the head text and the raw body bytes.
pub fn read_response(conn: &mut TcpStream) -> (String, Vec<u8>) {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    loop {
        if let Some(end) = find(&buf, b"\r\n\r\n") {
            let head = String::from_utf8(buf[..end + 4].to_vec()).unwrap();
            let body = &buf[end + 4..];
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .map(|v| v.trim().parse::<usize>().unwrap());
            let done = match len {
                Some(len) => body.len() >= len,
                None => body.ends_with(b"0\r\n\r\n") && dechunk(body).is_some(),
            };
            if done {
                return (head, body.to_vec());
            }
        }
        let n = conn.read(&mut tmp).unwrap();
        assert!(
            n > 0,
            "connection closed mid-response: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&tmp[..n]);
    }
}

/// A minimal de-chunker of its own (no chunk extensions or trailers), so
/// the check does not lean on the code under test. `None` when incomplete.
pub fn dechunk(mut body: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = find(body, b"\r\n")?;
        let size = usize::from_str_radix(std::str::from_utf8(&body[..line_end]).ok()?, 16).ok()?;
        body = &body[line_end + 2..];
        if size == 0 {
            return (body == b"\r\n").then_some(out);
        }
        if body.len() < size + 2 || &body[size..size + 2] != b"\r\n" {
            return None;
        }
        out.extend_from_slice(&body[..size]);
        body = &body[size + 2..];
    }
}

pub fn post(proxy: SocketAddr, body: &str, close: bool) -> String {
    let connection = if close { "Connection: close\r\n" } else { "" };
    format!(
        "POST /mcp HTTP/1.1\r\nHost: {proxy}\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\n{connection}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// A client connection whose reads give up after 10 s instead of hanging.
pub fn connect(proxy: SocketAddr) -> TcpStream {
    let client = TcpStream::connect(proxy).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    client
}

/// Split `s` at spaces, as a command line.
pub fn args(s: &str) -> impl Iterator<Item = String> + use<> {
    s.split(' ')
        .map(String::from)
        .collect::<Vec<_>>()
        .into_iter()
}

pub fn json_then_sse_on_one_keep_alive_connection(start: fn(SocketAddr) -> SocketAddr) {
    let upstream = scripted_upstream();
    let proxy = start(upstream.addr);
    let mut client = connect(proxy);

    let list = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
    client
        .write_all(post(proxy, list, false).as_bytes())
        .unwrap();
    let (head, body) = read_response(&mut client);
    assert_eq!(
        head,
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            JSON_ANSWER.len()
        )
    );
    assert_eq!(body, JSON_ANSWER.as_bytes());

    let call =
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{}}}"#;
    client
        .write_all(post(proxy, call, true).as_bytes())
        .unwrap();
    let (head, body) = read_response(&mut client);
    assert_eq!(
        head,
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    assert_eq!(
        String::from_utf8(dechunk(&body).unwrap()).unwrap(),
        format!("{PROGRESS}{SSE_ANSWER}")
    );
    // Connection: close was honoured after the answer.
    let mut rest = Vec::new();
    client.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "{rest:?}");

    // Upstream side: normalized heads, both requests on one pooled connection.
    let seen = upstream.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].0, seen[1].0, "the upstream connection was reused");
    let port = proxy.port();
    let expected = |body: &str| {
        format!(
            "POST /mcp HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Accept: application/json, text/event-stream\r\n\
             X-Forwarded-For: 127.0.0.1\r\nX-Forwarded-Proto: http\r\n\
             X-Forwarded-Host: 127.0.0.1:{port}\r\nContent-Length: {}\r\n\r\n{body}",
            upstream.addr,
            body.len()
        )
    };
    assert_eq!(seen[0].1, expected(list));
    assert_eq!(seen[1].1, expected(call));
}

/// The upstream closes the kept-alive connection while the proxy holds it
/// idle: the next POST must go out on a fresh connection. Written into the
/// closed one it would seem sent, fail on the read, and (a POST is never
/// sent twice) come back as a 502.
pub fn a_pooled_connection_the_upstream_closed_is_not_reused(start: fn(SocketAddr) -> SocketAddr) {
    let upstream = scripted_upstream();
    let proxy = start(upstream.addr);
    let mut client = connect(proxy);
    let list = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"bye":true}}"#;
    client
        .write_all(post(proxy, list, false).as_bytes())
        .unwrap();
    let (head, _) = read_response(&mut client);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    // Wait until the upstream has closed its end (a wait, not a timing).
    assert_eq!(upstream.closed.recv().unwrap(), 0);

    let call =
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{}}}"#;
    client
        .write_all(post(proxy, call, false).as_bytes())
        .unwrap();
    let (head, body) = read_response(&mut client);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert_eq!(
        String::from_utf8(dechunk(&body).unwrap()).unwrap(),
        format!("{PROGRESS}{SSE_ANSWER}")
    );
    let seen = upstream.seen.lock().unwrap().clone();
    let conns: Vec<usize> = seen.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        conns,
        [0, 1],
        "each request once, the second on a new connection"
    );
}

pub fn upstream_dying_between_events_gets_an_injected_error_event(
    start: fn(SocketAddr) -> SocketAddr,
) {
    let upstream = scripted_upstream();
    let proxy = start(upstream.addr);
    let mut client = connect(proxy);
    let call = r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"die"}}"#;
    client
        .write_all(post(proxy, call, false).as_bytes())
        .unwrap();
    let (head, body) = read_response(&mut client);
    assert!(
        head.contains("Content-Type: text/event-stream\r\n"),
        "{head}"
    );
    let events = String::from_utf8(dechunk(&body).unwrap()).unwrap();
    let injected = events.strip_prefix(PROGRESS).expect("progress forwarded");
    assert!(
        injected.starts_with(
            "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":3,\"error\":{\"code\":-32000,"
        ),
        "{injected}"
    );
    assert!(injected.ends_with("}}\n\n"), "{injected}");
}

pub fn unreachable_upstream_is_a_502_carrying_the_id(start: fn(SocketAddr) -> SocketAddr) {
    // Nothing listens on 127.0.0.2 at the port held here on 127.0.0.1 (Linux
    // routes all of 127/8 to loopback): a connect there is refused, and
    // while `held` lives no other test can take the port, which a port
    // merely released could not promise.
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let upstream = SocketAddr::from(([127, 0, 0, 2], held.local_addr().unwrap().port()));
    let proxy = start(upstream);
    let mut client = connect(proxy);
    let call = r#"{"jsonrpc":"2.0","id":"x-4","method":"tools/list"}"#;
    client
        .write_all(post(proxy, call, false).as_bytes())
        .unwrap();
    let (head, body) = read_response(&mut client);
    assert!(head.starts_with("HTTP/1.1 502 Bad Gateway\r\n"), "{head}");
    let body = String::from_utf8(body).unwrap();
    assert!(
        body.starts_with(r#"{"jsonrpc":"2.0","id":"x-4","error":{"code":-32000,"#),
        "{body}"
    );
}

pub fn foreign_host_is_refused_without_reaching_the_upstream(start: fn(SocketAddr) -> SocketAddr) {
    let upstream = scripted_upstream();
    let proxy = start(upstream.addr);
    let mut client = connect(proxy);
    let request = "POST /mcp HTTP/1.1\r\nHost: evil.example\r\nContent-Length: 2\r\n\r\n{}";
    client.write_all(request.as_bytes()).unwrap();
    let mut all = Vec::new();
    client.read_to_end(&mut all).unwrap();
    let text = String::from_utf8(all).unwrap();
    assert!(text.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{text}");
    assert!(upstream.seen.lock().unwrap().is_empty());
}
