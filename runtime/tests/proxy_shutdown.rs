//! Graceful shutdown: in-flight exchanges finish within the grace period,
//! idle connections close at once, the listener goes away, and whatever
//! outlives the grace period is cut and counted.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use sluice::proxy::RunningProxy;
use sluice_core::http1::{ChunkedDecoder, Limits};

/// Generous: nothing here should take more than a fraction of it.
const PROMPT: Duration = Duration::from_secs(10);

const PROGRESS: &[u8] =
    b"event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{}}\n\n";
const ANSWER: &[u8] =
    b"event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":\"abc\",\"result\":{}}\n\n";

/// Read from `conn` until `buf` contains `needle` (panics on EOF/timeout).
fn read_until(conn: &mut TcpStream, buf: &mut Vec<u8>, needle: &[u8]) {
    let mut chunk = [0u8; 4096];
    while !buf.windows(needle.len()).any(|w| w == needle) {
        let n = conn.read(&mut chunk).expect("read before timeout");
        assert!(n > 0, "EOF; got {:?}", String::from_utf8_lossy(buf));
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Read until the proxy closes `conn`; returns what arrived. Panics if it
/// is still open after [`PROMPT`].
fn read_to_close(conn: &mut TcpStream) -> Vec<u8> {
    conn.set_read_timeout(Some(PROMPT)).unwrap();
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match conn.read(&mut chunk) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return got,
            Err(e) => panic!(
                "connection still open ({e}); got {:?}",
                String::from_utf8_lossy(&got)
            ),
        }
    }
}

/// The body of a chunked response read raw (head included), and whether
/// its last chunk arrived.
fn dechunk(raw: &[u8]) -> (Vec<u8>, bool) {
    let start = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head")
        + 4;
    let raw = &raw[start..];
    let mut decoder = ChunkedDecoder::new(&Limits::default());
    let (mut body, mut pos) = (Vec::new(), 0);
    while pos < raw.len() {
        let d = decoder.decode(&raw[pos..]).expect("valid chunking");
        if let Some(r) = d.data {
            body.extend_from_slice(&raw[pos + r.start..pos + r.end]);
        }
        pos += d.consumed;
        if d.done {
            assert_eq!(pos, raw.len(), "nothing after the last chunk");
            return (body, true);
        }
        if d.consumed == 0 {
            break;
        }
    }
    (body, false)
}

/// Shut `proxy` down on another thread, calling `before` there first.
/// Yields what `shutdown` returned and how long it took.
fn shutdown_in_background(
    proxy: RunningProxy,
    before: impl FnOnce() + Send + 'static,
) -> thread::JoinHandle<(usize, Duration)> {
    thread::spawn(move || {
        before();
        let start = Instant::now();
        let cut = proxy.shutdown();
        (cut, start.elapsed())
    })
}

fn assert_refused(addr: SocketAddr) {
    match TcpStream::connect_timeout(&addr, PROMPT) {
        Err(e) => assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "{e}"),
        Ok(mut s) => {
            // Accepted by a listener nobody serves any more?
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let _ = s.write_all(&post(CALL));
            let mut b = [0u8; 64];
            panic!(
                "{addr} still accepts connections after shutdown (read: {:?})",
                s.read(&mut b)
            );
        }
    }
}

#[test]
fn an_in_flight_stream_finishes_within_the_grace_period() {
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let go_rx = Mutex::new(go_rx);
    let up = upstream(move |conn, _| {
        write_sse_head(conn);
        write_chunk(conn, PROGRESS);
        // The rest of the stream comes 200 ms after shutdown starts.
        go_rx.lock().unwrap().recv().unwrap();
        thread::sleep(Duration::from_millis(200));
        write_chunk(conn, ANSWER);
        end_chunks(conn);
        true
    });
    let proxy = proxy_with(up.addr, |s| s.shutdown_grace = Duration::from_secs(30));
    let addr = proxy.local_addr();
    let mut c = connect(addr);
    c.write_all(&post(CALL)).unwrap();
    let mut buf = Vec::new();
    read_until(&mut c, &mut buf, b"notifications/progress");

    let done = shutdown_in_background(proxy, move || go_tx.send(()).unwrap());
    buf.extend(read_to_close(&mut c));
    let (body, complete) = dechunk(&buf);
    assert!(
        complete,
        "the stream ended cleanly before the close: {:?}",
        String::from_utf8_lossy(&buf)
    );
    assert_eq!(body, [PROGRESS, ANSWER].concat());
    let (cut, took) = done.join().unwrap();
    assert_eq!(cut, 0, "nothing was left to cut");
    assert!(
        took < PROMPT,
        "shutdown returned once the stream ended ({took:?})"
    );
    assert_refused(addr);
}

#[test]
fn an_idle_keep_alive_client_is_closed_promptly() {
    let up = upstream(|conn, _| {
        json_response(conn, r#"{"jsonrpc":"2.0","id":"abc","result":{}}"#);
        true
    });
    // A long grace: only closing the idle connection early lets shutdown
    // return within the bound below.
    let proxy = proxy_with(up.addr, |s| s.shutdown_grace = Duration::from_secs(60));
    let addr = proxy.local_addr();
    let mut c = connect(addr);
    c.write_all(&post(CALL)).unwrap();
    let r = read_response(&mut c, "POST");
    assert_eq!(r.status, 200);
    assert!(r.complete);

    let done = shutdown_in_background(proxy, || {});
    let after = read_to_close(&mut c);
    assert!(after.is_empty(), "{:?}", String::from_utf8_lossy(&after));
    let (cut, took) = done.join().unwrap();
    assert_eq!(cut, 0);
    assert!(took < PROMPT, "{took:?}");
    assert_refused(addr);
}

#[test]
fn a_request_still_arriving_at_shutdown_gets_a_503_and_never_goes_upstream() {
    let up = upstream(|conn, _| {
        json_response(conn, r#"{"jsonrpc":"2.0","id":"abc","result":{}}"#);
        true
    });
    let proxy = proxy_with(up.addr, |s| s.shutdown_grace = Duration::from_secs(60));
    let addr = proxy.local_addr();
    let mut c = connect(addr);
    // The 100 Continue proves the proxy read the head; the body never comes.
    let head = format!(
        "POST /mcp HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nExpect: 100-continue\r\n\
         Content-Length: {}\r\n\r\n",
        CALL.len()
    );
    c.write_all(head.as_bytes()).unwrap();
    let mut got = Vec::new();
    read_until(&mut c, &mut got, b"HTTP/1.1 100 Continue\r\n\r\n");

    let done = shutdown_in_background(proxy, || {});
    let after = String::from_utf8(read_to_close(&mut c)).unwrap();
    assert!(after.starts_with("HTTP/1.1 503 "), "{after}");
    assert!(after.contains("shutting down"), "{after}");
    let (cut, took) = done.join().unwrap();
    assert_eq!(cut, 0);
    assert!(took < PROMPT, "{took:?}");
    assert!(up.requests.try_recv().is_err(), "nothing went upstream");
}

#[test]
fn after_shutdown_the_listener_refuses_connections() {
    let up = upstream(|conn, _| {
        json_response(conn, "{}");
        true
    });
    for _ in 0..10 {
        let proxy = proxy_for(up.addr);
        let addr = proxy.local_addr();
        let mut c = connect(addr);
        c.write_all(&post(CALL)).unwrap();
        assert_eq!(read_response(&mut c, "POST").status, 200);
        assert_eq!(proxy.shutdown(), 0);
        assert_refused(addr);
    }
}

#[test]
fn a_proxy_shut_down_right_after_start_refuses_connections() {
    // Shutdown before the workers have necessarily run anything.
    let up = upstream(|conn, _| {
        json_response(conn, "{}");
        true
    });
    for _ in 0..10 {
        let proxy = proxy_for(up.addr);
        let addr = proxy.local_addr();
        assert_eq!(proxy.shutdown(), 0);
        assert_refused(addr);
    }
}

#[test]
fn a_short_grace_cuts_an_endless_stream_and_counts_it() {
    let up = upstream(|conn, _| {
        write_sse_head(conn);
        // Ticks until the proxy goes away.
        loop {
            let tick = b"8\r\n: tick\n\n\r\n";
            if conn.write_all(tick).is_err() {
                return false;
            }
            thread::sleep(Duration::from_millis(20));
        }
    });
    let proxy = proxy_with(up.addr, |s| {
        s.shutdown_grace = Duration::from_millis(300);
    });
    let addr = proxy.local_addr();
    let mut c = connect(addr);
    c.write_all(&post(CALL)).unwrap();
    let mut buf = Vec::new();
    read_until(&mut c, &mut buf, b": tick\n");

    let done = shutdown_in_background(proxy, || {});
    buf.extend(read_to_close(&mut c));
    let (cut, took) = done.join().unwrap();
    assert!(cut >= 1, "the endless stream was cut and counted ({cut})");
    assert!(took < PROMPT, "{took:?}");
    let (body, complete) = dechunk(&buf);
    assert!(
        !complete,
        "a cut stream must not look complete: {:?}",
        String::from_utf8_lossy(&buf)
    );
    assert!(body.starts_with(b": tick\n\n"));
    assert_refused(addr);
}
