//! The proxy against upstreams that misbehave on purpose, asserting the
//! exact bytes the client receives.

mod common;

use std::io::{Read, Write};
use std::sync::{Mutex, mpsc};
use std::time::Duration;

use common::*;

/// Read from `conn` until `buf` contains `needle` (panics on EOF/timeout).
fn read_until(conn: &mut std::net::TcpStream, buf: &mut Vec<u8>, needle: &[u8]) {
    let mut chunk = [0u8; 4096];
    while !buf.windows(needle.len()).any(|w| w == needle) {
        let n = conn.read(&mut chunk).expect("read before timeout");
        assert!(
            n > 0,
            "EOF before {:?}; got {:?}",
            String::from_utf8_lossy(needle),
            String::from_utf8_lossy(buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    }
}

const ANSWER: &str = "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":\"abc\",\"result\":{}}\n\n";

#[test]
fn json_round_trip_keeps_headers_and_bytes() {
    let up = upstream(|conn, _| {
        let body = r#"{"jsonrpc":"2.0","id":"abc","result":{"content":[]}}"#;
        let resp = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nMcp-Session-Id: sess-9\r\n\
             WWW-Authenticate: Bearer realm=\"x\"\r\nConnection: keep-alive\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        conn.write_all(resp.as_bytes()).unwrap();
        true
    });
    let proxy = proxy_for(up.addr);
    let mut c = connect(proxy.local_addr());
    let request = format!(
        "POST /mcp HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer tok-123\r\nMcp-Session-Id: sess-9\r\n\
         MCP-Protocol-Version: 2025-11-25\r\nMcp-Method: tools/call\r\nMcp-Name: echo\r\nMcp-Param-Region: eu\r\n\
         Last-Event-ID: 41\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{CALL}",
        CALL.len()
    );
    c.write_all(request.as_bytes()).unwrap();
    let r = read_response(&mut c, "POST");
    assert_eq!(r.status, 200);
    assert!(r.head.contains("Mcp-Session-Id: sess-9\r\n"));
    assert!(r.head.contains("WWW-Authenticate: Bearer realm=\"x\"\r\n"));
    assert!(!r.head.contains("Connection: keep-alive"));
    assert_eq!(
        r.text(),
        r#"{"jsonrpc":"2.0","id":"abc","result":{"content":[]}}"#
    );
    let seen = up.requests.recv().unwrap();
    for h in [
        "Authorization: Bearer tok-123\r\n",
        "Mcp-Session-Id: sess-9\r\n",
        "MCP-Protocol-Version: 2025-11-25\r\n",
        "Mcp-Method: tools/call\r\n",
        "Mcp-Name: echo\r\n",
        "Mcp-Param-Region: eu\r\n",
        "Last-Event-ID: 41\r\n",
        "X-Forwarded-For: 127.0.0.1\r\n",
        "X-Forwarded-Proto: http\r\n",
    ] {
        assert!(
            seen.head.contains(h),
            "{h:?} forwarded verbatim in {}",
            seen.head
        );
    }
    assert!(seen.head.contains(&format!("Host: {}\r\n", up.addr)));
    assert_eq!(seen.body, CALL.as_bytes());
    proxy.shutdown();
}

#[test]
fn each_upstream_read_reaches_the_client_at_once() {
    // The upstream writes half an event and waits until the client has seen
    // it; a proxy that buffers would deadlock here until the read timeout.
    let (seen_tx, seen_rx) = mpsc::channel::<()>();
    let seen_rx = Mutex::new(seen_rx);
    let up = upstream(move |conn, _| {
        write_sse_head(conn);
        write_chunk(conn, b"event: message\ndata: {\"jsonrpc\":");
        seen_rx.lock().unwrap().recv().unwrap();
        write_chunk(conn, b"\"2.0\",\"method\":\"notifications/progress\"}\n\n");
        seen_rx.lock().unwrap().recv().unwrap();
        write_chunk(conn, ANSWER.as_bytes());
        end_chunks(conn);
        true
    });
    let proxy = proxy_for(up.addr);
    let mut c = connect(proxy.local_addr());
    c.write_all(&post(CALL)).unwrap();
    let mut buf = Vec::new();
    read_until(&mut c, &mut buf, b"data: {\"jsonrpc\":");
    seen_tx.send(()).unwrap();
    read_until(&mut c, &mut buf, b"notifications/progress\"}\n\n");
    seen_tx.send(()).unwrap();
    read_until(&mut c, &mut buf, b"0\r\n\r\n");
    proxy.shutdown();
}

fn sse_case(events: &'static [&'static [u8]], finish: fn(&mut std::net::TcpStream)) -> Response {
    let up = upstream(move |conn, _| {
        write_sse_head(conn);
        for e in events {
            common::write_chunk(conn, e);
        }
        finish(conn);
        false
    });
    let proxy = proxy_for(up.addr);
    let mut c = connect(proxy.local_addr());
    c.write_all(&post(CALL)).unwrap();
    let r = read_response(&mut c, "POST");
    proxy.shutdown();
    r
}

#[test]
fn line_ends_bom_comments_and_ids_pass_byte_for_byte() {
    static EVENTS: &[&[u8]] = &[
        b"\xEF\xBB\xBF: ping - 2025-01-01\r\n\r\n",
        b"id: 1\r\nretry: 500\r\nevent: message\r\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\"}\r\n\r\n",
        b"id: 2\rdata: {\"jsonrpc\":\"2.0\",\"id\":\"abc\",\r",
        b"data: \"result\":{}}\r\r",
    ];
    let r = sse_case(EVENTS, end_chunks);
    assert!(r.complete);
    assert_eq!(r.body, EVENTS.concat());
}

#[test]
fn single_byte_drip_is_forwarded_whole() {
    let up = upstream(|conn, _| {
        write_sse_head(conn);
        for b in ANSWER.as_bytes() {
            common::write_chunk(conn, std::slice::from_ref(b));
        }
        end_chunks(conn);
        true
    });
    let proxy = proxy_for(up.addr);
    let mut c = connect(proxy.local_addr());
    c.write_all(&post(CALL)).unwrap();
    let r = read_response(&mut c, "POST");
    assert!(r.complete);
    assert_eq!(r.text(), ANSWER);
    proxy.shutdown();
}

#[test]
fn a_one_mebibyte_event_passes_intact() {
    static BIG: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    let big = BIG.get_or_init(|| {
        let text = "x".repeat(1 << 20);
        format!("event: message\ndata: {{\"jsonrpc\":\"2.0\",\"id\":\"abc\",\"result\":{{\"t\":\"{text}\"}}}}\n\n").into_bytes()
    });
    let up = upstream(move |conn, _| {
        write_sse_head(conn);
        for part in big.chunks(10_000) {
            common::write_chunk(conn, part);
        }
        end_chunks(conn);
        true
    });
    let proxy = proxy_for(up.addr);
    let mut c = connect(proxy.local_addr());
    c.write_all(&post(CALL)).unwrap();
    let r = read_response(&mut c, "POST");
    assert!(r.complete);
    assert_eq!(&r.body, big);
    proxy.shutdown();
}

#[test]
fn death_mid_event_truncates_the_client_without_a_clean_end() {
    static EVENTS: &[&[u8]] = &[b"event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":\"ab"];
    let r = sse_case(EVENTS, close);
    assert!(
        !r.complete,
        "a truncated answer must not end cleanly: {:?}",
        r.text()
    );
    assert_eq!(r.body, EVENTS[0]);
}

#[test]
fn death_at_a_boundary_gets_an_error_event_with_the_clients_id() {
    static EVENTS: &[&[u8]] =
        &[b"event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{}}\n\n"];
    let r = sse_case(EVENTS, close);
    assert!(r.complete, "the injected answer completes the stream");
    let text = r.text();
    let injected = text
        .strip_prefix(std::str::from_utf8(EVENTS[0]).unwrap())
        .unwrap();
    assert!(injected.starts_with("event: message\ndata: "), "{injected}");
    let json: serde_json::Value =
        serde_json::from_str(injected.trim_start_matches("event: message\ndata: ").trim()).unwrap();
    assert_eq!(json["id"], "abc");
    assert_eq!(json["error"]["code"], -32000);
}

#[test]
fn invalid_chunking_from_the_upstream_is_not_forwarded_as_valid() {
    static EVENTS: &[&[u8]] = &[b"data: x\n\n"];
    let r = sse_case(EVENTS, |conn| {
        conn.write_all(b"zz\r\nnot a chunk\r\n").unwrap();
    });
    // The complete event before the garbage went out; the rest is an
    // injected error since the answer was still owed.
    assert!(r.text().starts_with("data: x\n\n"));
    assert!(r.text().contains("\"id\":\"abc\""), "{}", r.text());
}

#[test]
fn upstream_closing_before_answering_is_a_502_with_the_id() {
    let up = upstream(|conn, _| {
        close(conn);
        false
    });
    let proxy = proxy_for(up.addr);
    let mut c = connect(proxy.local_addr());
    c.write_all(&post(CALL)).unwrap();
    let r = read_response(&mut c, "POST");
    assert_eq!(r.status, 502);
    let json: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(json["id"], "abc");
    proxy.shutdown();
}

#[test]
fn unreachable_upstream_is_a_502() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let proxy = proxy_for(dead);
    let mut c = connect(proxy.local_addr());
    c.write_all(&post(CALL)).unwrap();
    let r = read_response(&mut c, "POST");
    assert_eq!(r.status, 502);
    proxy.shutdown();
}

#[test]
fn keep_alive_reuses_both_connections() {
    let up = upstream(|conn, req| {
        let body = format!("{{\"n\":{}}}", req.body.len());
        json_response(conn, &body);
        true
    });
    let proxy = proxy_for(up.addr);
    let mut c = connect(proxy.local_addr());
    for _ in 0..3 {
        c.write_all(&post(CALL)).unwrap();
        let r = read_response(&mut c, "POST");
        assert_eq!(r.status, 200);
    }
    let conns: Vec<usize> = (0..3)
        .map(|_| up.requests.recv().unwrap().connection)
        .collect();
    assert_eq!(conns, vec![0, 0, 0], "one pooled upstream connection");
    proxy.shutdown();
}

#[test]
fn a_pooled_connection_the_upstream_closed_is_not_reused() {
    let (closed_tx, closed_rx) = mpsc::channel::<()>();
    let closed_tx = Mutex::new(closed_tx);
    let up = upstream(move |conn, _| {
        json_response(conn, "{}");
        // Keep-alive by the headers, then gone while idle in the pool.
        close(conn);
        closed_tx.lock().unwrap().send(()).unwrap();
        false
    });
    let proxy = proxy_for(up.addr);
    let mut c = connect(proxy.local_addr());
    for _ in 0..2 {
        c.write_all(&post(CALL)).unwrap();
        let r = read_response(&mut c, "POST");
        assert_eq!(r.status, 200, "{}", r.head);
        closed_rx.recv().unwrap();
    }
    let conns: Vec<usize> = (0..2)
        .map(|_| up.requests.recv().unwrap().connection)
        .collect();
    assert_eq!(conns, vec![0, 1], "the closed connection was dropped");
    proxy.shutdown();
}

#[test]
fn a_post_is_not_sent_twice_when_a_pooled_connection_dies_after_it() {
    let seen = std::sync::atomic::AtomicUsize::new(0);
    let up = upstream(move |conn, _| {
        if seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 1 {
            // The second request arrived whole; the upstream dies before answering.
            close(conn);
            return false;
        }
        json_response(conn, "{}");
        true
    });
    let proxy = proxy_for(up.addr);
    let mut c = connect(proxy.local_addr());
    let bodies = [
        CALL.to_string(),
        CALL.replace("\"abc\"", "\"second\""),
        CALL.replace("\"abc\"", "\"third\""),
    ];
    let mut statuses = Vec::new();
    for body in &bodies {
        c.write_all(&post(body)).unwrap();
        let r = read_response(&mut c, "POST");
        if r.status == 502 {
            let json: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
            assert_eq!(json["id"], "second");
        }
        statuses.push(r.status);
    }
    assert_eq!(statuses, vec![200, 502, 200]);
    let received: Vec<(usize, Vec<u8>)> = (0..3)
        .map(|_| {
            let r = up.requests.recv().unwrap();
            (r.connection, r.body)
        })
        .collect();
    assert_eq!(
        received,
        vec![
            (0, bodies[0].clone().into_bytes()),
            (0, bodies[1].clone().into_bytes()),
            (1, bodies[2].clone().into_bytes()),
        ],
        "the second request reached the upstream once"
    );
    proxy.shutdown();
}

#[test]
fn a_client_that_goes_away_releases_its_upstream_at_once() {
    let (gone_tx, gone_rx) = mpsc::channel::<()>();
    let gone_tx = Mutex::new(gone_tx);
    let up = upstream(move |conn, _| {
        write_sse_head(conn);
        write_chunk(conn, b": open\n\n");
        // The stream stays open from our side; only the proxy can end it.
        let mut sink = [0u8; 64];
        while matches!(conn.read(&mut sink), Ok(n) if n > 0) {}
        gone_tx.lock().unwrap().send(()).unwrap();
        false
    });
    let proxy = proxy_for(up.addr);
    let mut c = connect(proxy.local_addr());
    c.write_all(b"GET /mcp HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n\r\n")
        .unwrap();
    let mut buf = Vec::new();
    read_until(&mut c, &mut buf, b": open\n\n");
    drop(c);
    assert_eq!(gone_rx.recv_timeout(Duration::from_secs(10)), Ok(()));
    proxy.shutdown();
}

#[test]
fn dns_rebinding_is_refused_before_the_upstream() {
    let up = upstream(|conn, _| {
        json_response(conn, "{}");
        true
    });
    let proxy = proxy_for(up.addr);
    for (host, origin) in [
        ("evil.example", None),
        ("localhost", Some("http://evil.example")),
    ] {
        let mut c = connect(proxy.local_addr());
        let origin = origin
            .map(|o| format!("Origin: {o}\r\n"))
            .unwrap_or_default();
        c.write_all(
            format!("POST /mcp HTTP/1.1\r\nHost: {host}\r\n{origin}Content-Length: 0\r\n\r\n")
                .as_bytes(),
        )
        .unwrap();
        let r = read_response(&mut c, "POST");
        assert_eq!(r.status, 403);
    }
    assert!(
        up.requests.try_recv().is_err(),
        "nothing reached the upstream"
    );
    proxy.shutdown();
}

#[test]
fn malformed_and_oversized_requests() {
    let up = upstream(|conn, _| {
        json_response(conn, "{}");
        true
    });
    let proxy = proxy_with(up.addr, |s| s.exchange.limits.max_request_body = 100);
    let big_head = format!(
        "GET /mcp HTTP/1.1\r\nHost: localhost\r\nX-Big: {}\r\n\r\n",
        "a".repeat(100_000)
    );
    let cases: Vec<(Vec<u8>, u16)> = vec![
        (b"NOT HTTP AT ALL\r\n\r\n".to_vec(), 400),
        // A malformed request line, not a version sluice does not speak.
        (b"POST /mcp  HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n".to_vec(), 400),
        (b"POST /mcp HTTP/1.1 \r\nHost: localhost\r\nContent-Length: 0\r\n\r\n".to_vec(), 400),
        (b"POST /mcp HTTP/2.0\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n".to_vec(), 505),
        (b"POST /mcp HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n".to_vec(), 400),
        (b"POST /mcp HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n".to_vec(), 400),
        (b"POST /mcp HTTP/1.1\r\nHost: localhost\r\nContent-Length: 101\r\n\r\n".to_vec(), 413),
        (big_head.into_bytes(), 431),
    ];
    for (request, status) in cases {
        let mut c = connect(proxy.local_addr());
        let _ = c.write_all(&request);
        let r = read_response(&mut c, "POST");
        assert_eq!(
            r.status,
            status,
            "{:?}",
            String::from_utf8_lossy(&request[..request.len().min(80)])
        );
        assert!(r.head.contains("Connection: close"));
    }
    assert!(
        up.requests.try_recv().is_err(),
        "nothing reached the upstream"
    );
    proxy.shutdown();
}

/// A proxy with one route, `/tenant` → the upstream's `/v1/tenant-a/mcp`.
fn tenant_proxy(up: &Upstream) -> sluice::proxy::RunningProxy {
    proxy_with(up.addr, |s| {
        use sluice_core::route::{Route, Router};
        let route = &s.exchange.router.routes()[0];
        s.exchange.router = Router::new(vec![Route {
            prefix: "/tenant".into(),
            upstream_path: "/v1/tenant-a/mcp".into(),
            ..route.clone()
        }]);
    })
}

/// Issue 11, item 4: dot-segments (plain, encoded, with `;` parameters) and
/// encoded separators were routed on the bytes as sent and forwarded
/// verbatim, so an upstream that normalises served another tenant's prefix.
#[test]
fn paths_an_upstream_could_normalise_are_refused_before_routing() {
    let up = upstream(|conn, _| {
        json_response(conn, "{}");
        true
    });
    let proxy = tenant_proxy(&up);
    for target in [
        "/tenant/../../tenant-b/mcp",
        "/tenant/%2e%2e/%2E%2E/tenant-b/mcp",
        "/tenant/.%2e/.%2E/tenant-b/mcp",
        "/tenant/..;/..;/tenant-b/mcp",
        "/tenant/..;x/y",
        "/tenant/.;/x",
        "/tenant/./x",
        "/.well-known/../tenant",
        "/.well-known/oauth-protected-resource/%2e%2e/%2e%2e/tenant",
        "/tenant%2f..%2f..%2ftenant-b%2fmcp",
        "/tenant/a%2Fb",
        "/tenant/..%5c..%5ctenant-b",
        "/tenant\\..\\..\\tenant-b",
        "http://localhost/tenant/../../tenant-b/mcp",
    ] {
        for (method, body) in [("POST", CALL), ("GET", "")] {
            let mut c = connect(proxy.local_addr());
            let length = if body.is_empty() {
                String::new()
            } else {
                format!("Content-Length: {}\r\n", body.len())
            };
            c.write_all(
                format!("{method} {target} HTTP/1.1\r\nHost: localhost\r\n{length}\r\n{body}")
                    .as_bytes(),
            )
            .unwrap();
            let r = read_response(&mut c, method);
            assert_eq!(r.status, 400, "{method} {target}: {}", r.head);
        }
    }
    assert!(
        up.requests.try_recv().is_err(),
        "nothing reached the upstream"
    );
    // The same proxy forwards a plain path under the prefix (so the test
    // above could have seen a request arrive).
    let mut c = connect(proxy.local_addr());
    c.write_all(b"GET /tenant/x?next=/../ HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut c, "GET").status, 200);
    let seen = up.requests.recv().unwrap();
    assert!(
        seen.head
            .starts_with("GET /v1/tenant-a/mcp/x?next=/../ HTTP/1.1\r\n"),
        "{}",
        seen.head
    );
    proxy.shutdown();
}
