//! Test fixtures: scripted upstreams that misbehave on purpose, a raw
//! client, and a response decoder built on sluice-core's own HTTP codec.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use sluice::proxy::{self, ProxySettings, RunningProxy};
use sluice_core::http1::{self, BodyFraming, ChunkedDecoder, Parsed};

/// One request as the upstream received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub head: String,
    pub body: Vec<u8>,
    /// Index of the upstream connection it arrived on (0-based).
    pub connection: usize,
}

/// A scripted upstream on a free loopback port. For every request it reads,
/// it reports the request and runs `script` with the socket.
pub struct Upstream {
    pub addr: SocketAddr,
    pub requests: mpsc::Receiver<Received>,
    /// Reports each upstream connection's end (after the script returns and
    /// the peer closed), by connection index.
    pub closed: mpsc::Receiver<usize>,
}

pub type Script = dyn Fn(&mut TcpStream, &Received) -> bool + Send + Sync + 'static;

/// `script` returns whether to keep the connection for another request.
pub fn upstream(
    script: impl Fn(&mut TcpStream, &Received) -> bool + Send + Sync + 'static,
) -> Upstream {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    let (closed_tx, closed_rx) = mpsc::channel();
    let script = std::sync::Arc::new(script);
    thread::spawn(move || {
        for (index, conn) in listener.incoming().enumerate() {
            let Ok(mut conn) = conn else { return };
            let tx = tx.clone();
            let closed_tx = closed_tx.clone();
            let script = script.clone();
            thread::spawn(move || {
                conn.set_nodelay(true).unwrap();
                let mut buf = Vec::new();
                while let Some(req) = read_request(&mut conn, &mut buf, index) {
                    if tx.send(req.clone()).is_err() {
                        break;
                    }
                    if !script(&mut conn, &req) {
                        break;
                    }
                }
                // Wait for the proxy to close its side, then report.
                let mut sink = [0u8; 256];
                let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
                while matches!(conn.read(&mut sink), Ok(n) if n > 0) {}
                let _ = closed_tx.send(index);
            });
        }
    });
    Upstream {
        addr,
        requests: rx,
        closed: closed_rx,
    }
}

fn read_request(conn: &mut TcpStream, buf: &mut Vec<u8>, connection: usize) -> Option<Received> {
    let limits = http1::Limits::default();
    loop {
        if let Ok(Parsed::Complete { head, len }) = http1::parse_request_head(buf, &limits) {
            let n = match http1::request_framing(&head) {
                Ok(BodyFraming::ContentLength(n)) => n as usize,
                _ => 0,
            };
            while buf.len() < len + n {
                read_more(conn, buf)?;
            }
            let head_text = String::from_utf8_lossy(&buf[..len]).into_owned();
            let body = buf[len..len + n].to_vec();
            buf.drain(..len + n);
            return Some(Received {
                head: head_text,
                body,
                connection,
            });
        }
        read_more(conn, buf)?;
    }
}

fn read_more(conn: &mut TcpStream, buf: &mut Vec<u8>) -> Option<()> {
    let mut chunk = [0u8; 8192];
    match conn.read(&mut chunk) {
        Ok(0) | Err(_) => None,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            Some(())
        }
    }
}

/// Start sluice in front of `upstream` at `/mcp`.
pub fn proxy_for(upstream: SocketAddr) -> RunningProxy {
    proxy_with(upstream, |_| {})
}

pub fn proxy_with(upstream: SocketAddr, tweak: impl FnOnce(&mut ProxySettings)) -> RunningProxy {
    let mut settings = ProxySettings::single("127.0.0.1:0".parse().unwrap(), upstream, "/mcp");
    settings.access_log = false;
    tweak(&mut settings);
    proxy::start(settings).expect("proxy starts")
}

pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_nodelay(true).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s
}

pub fn post(body: &str) -> Vec<u8> {
    format!(
        "POST /mcp HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

pub const CALL: &str = r#"{"jsonrpc":"2.0","id":"abc","method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"}}}"#;

/// A response as the client saw it.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
    /// The body ended as its framing says (a last chunk, the full length).
    pub complete: bool,
}

impl Response {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The value of the first field called `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (field, value) = l.split_once(':')?;
            field
                .eq_ignore_ascii_case(name)
                .then(|| value.trim().to_owned())
        })
    }
}

/// Read one response from `conn` (until its framing ends, or EOF).
pub fn read_response(conn: &mut TcpStream, method: &str) -> Response {
    let limits = http1::Limits::default();
    let mut buf = Vec::new();
    let (head, len) = loop {
        match http1::parse_response_head(&buf, &limits) {
            Ok(Parsed::Complete { head, len }) => {
                if (100..200).contains(&head.status) {
                    buf.drain(..len);
                    continue;
                }
                break (head, len);
            }
            Ok(Parsed::Partial) => {}
            Err(e) => panic!(
                "bad response head: {e}: {:?}",
                String::from_utf8_lossy(&buf)
            ),
        }
        if read_more(conn, &mut buf).is_none() {
            panic!(
                "connection ended before a response head: {:?}",
                String::from_utf8_lossy(&buf)
            );
        }
    };
    let head_text = String::from_utf8_lossy(&buf[..len]).into_owned();
    buf.drain(..len);
    let framing = http1::response_framing(method, &head).expect("client-side framing is valid");
    let mut body = Vec::new();
    let complete = match framing {
        BodyFraming::None => true,
        BodyFraming::ContentLength(n) => {
            while buf.len() < n as usize {
                if read_more(conn, &mut buf).is_none() {
                    break;
                }
            }
            body.extend_from_slice(&buf[..buf.len().min(n as usize)]);
            body.len() == n as usize
        }
        BodyFraming::UntilClose => {
            while read_more(conn, &mut buf).is_some() {}
            body = buf.clone();
            true
        }
        BodyFraming::Chunked => {
            let mut decoder = ChunkedDecoder::new(&limits);
            let mut pos = 0;
            'outer: loop {
                while pos < buf.len() {
                    let d = decoder
                        .decode(&buf[pos..])
                        .expect("valid chunking towards the client");
                    if let Some(r) = d.data {
                        body.extend_from_slice(&buf[pos + r.start..pos + r.end]);
                    }
                    pos += d.consumed;
                    if d.done {
                        break 'outer true;
                    }
                    if d.consumed == 0 {
                        break;
                    }
                }
                if read_more(conn, &mut buf).is_none() {
                    break false;
                }
            }
        }
    };
    Response {
        status: head.status,
        head: head_text,
        body,
        complete,
    }
}

/// Write a response head for an SSE answer with chunked framing.
pub fn write_sse_head(conn: &mut TcpStream) {
    conn.write_all(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n\
          Transfer-Encoding: chunked\r\n\r\n",
    )
    .unwrap();
}

pub fn write_chunk(conn: &mut TcpStream, data: &[u8]) {
    let mut out = format!("{:x}\r\n", data.len()).into_bytes();
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    conn.write_all(&out).unwrap();
}

pub fn end_chunks(conn: &mut TcpStream) {
    conn.write_all(b"0\r\n\r\n").unwrap();
}

pub fn json_response(conn: &mut TcpStream, body: &str) {
    let resp = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(resp.as_bytes()).unwrap();
}

pub fn close(conn: &mut TcpStream) {
    let _ = conn.shutdown(Shutdown::Both);
}

/// The `sluice` binary, killed (by pid) and reaped if the test ends before
/// it exits.
pub struct Sluice(pub std::process::Child);

impl Drop for Sluice {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start the `sluice` binary from `cmd` (its program and arguments set)
/// with stdout piped, and read the address from its first line. Stdout is
/// borrowed, not taken, so what `sluice demo` prints next has a reader.
pub fn start_sluice(mut cmd: std::process::Command) -> (Sluice, SocketAddr) {
    use std::io::BufRead;
    let mut child = Sluice(
        cmd.stdout(std::process::Stdio::piped())
            .spawn()
            .expect("sluice starts"),
    );
    let mut line = String::new();
    std::io::BufReader::new(child.0.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("sluice listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        .parse()
        .unwrap();
    (child, addr)
}

/// A command running the `sluice` binary with `args`.
pub fn sluice_command(args: &[&str]) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"));
    cmd.args(args);
    cmd
}
