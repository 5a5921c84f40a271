//! Runs the `blocking_proxy` example (included as a module) on ephemeral
//! ports in front of a scripted upstream, and checks the bytes both sides
//! see. The scenarios are shared with the tokio example's test
//! (`common/proxy.rs`).

#[allow(dead_code)]
#[path = "../examples/blocking_proxy.rs"]
mod blocking_proxy;
mod common;

use std::io::Write;
use std::net::SocketAddr;

use common::proxy::{self, args, connect, dechunk, post, read_response};

fn start_proxy(upstream: SocketAddr) -> SocketAddr {
    blocking_proxy::spawn(&blocking_proxy::Options {
        listen: "127.0.0.1:0".into(),
        upstream: upstream.to_string(),
        path: "/mcp".into(),
    })
    .unwrap()
}

#[test]
fn json_then_sse_on_one_keep_alive_connection() {
    proxy::json_then_sse_on_one_keep_alive_connection(start_proxy);
}

#[test]
fn a_pooled_connection_the_upstream_closed_is_not_reused() {
    proxy::a_pooled_connection_the_upstream_closed_is_not_reused(start_proxy);
}

#[test]
fn upstream_dying_between_events_gets_an_injected_error_event() {
    proxy::upstream_dying_between_events_gets_an_injected_error_event(start_proxy);
}

#[test]
fn unreachable_upstream_is_a_502_carrying_the_id() {
    proxy::unreachable_upstream_is_a_502_carrying_the_id(start_proxy);
}

#[test]
fn foreign_host_is_refused_without_reaching_the_upstream() {
    proxy::foreign_host_is_refused_without_reaching_the_upstream(start_proxy);
}

#[test]
fn the_builtin_message_upstream_answers_through_the_typed_seam() {
    let addr = blocking_proxy::spawn(&blocking_proxy::Options {
        listen: "127.0.0.1:0".into(),
        upstream: blocking_proxy::BUILTIN.into(),
        path: "/mcp".into(),
    })
    .unwrap();
    let mut client = connect(addr);
    // A request taking SSE: a log event, then the answer with its id.
    let init = r#"{"jsonrpc":"2.0","id":"i-1","method":"initialize","params":{}}"#;
    client
        .write_all(post(addr, init, false).as_bytes())
        .unwrap();
    let (head, body) = read_response(&mut client);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        head.contains("Content-Type: text/event-stream\r\n"),
        "{head}"
    );
    assert!(
        head.contains("Mcp-Session-Id: builtin-session\r\n"),
        "{head}"
    );
    let body = String::from_utf8(dechunk(&body).unwrap()).unwrap();
    let data: Vec<&str> = body
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .collect();
    assert_eq!(data.len(), 2, "{body}");
    assert!(data[0].contains("notifications/message"), "{body}");
    assert!(
        data[1].starts_with(r#"{"jsonrpc":"2.0","id":"i-1","result""#),
        "{body}"
    );
    // On the same connection: a notification is accepted with no body.
    let note = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
    client
        .write_all(post(addr, note, false).as_bytes())
        .unwrap();
    let (head, body) = read_response(&mut client);
    assert!(head.starts_with("HTTP/1.1 202 Accepted\r\n"), "{head}");
    assert!(body.is_empty());
    // A GET is refused by the upstream, with its Allow.
    let get = format!("GET /mcp HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    client.write_all(get.as_bytes()).unwrap();
    let (head, _) = read_response(&mut client);
    assert!(head.starts_with("HTTP/1.1 405"), "{head}");
    assert!(head.contains("Allow: POST\r\n"), "{head}");
}

#[test]
fn arguments() {
    let o = blocking_proxy::parse_args(args(
        "--listen 127.0.0.1:9000 --upstream 127.0.0.1:3000 --path /x",
    ))
    .unwrap();
    assert_eq!(
        (o.listen.as_str(), o.upstream.as_str(), o.path.as_str()),
        ("127.0.0.1:9000", "127.0.0.1:3000", "/x")
    );
    assert!(blocking_proxy::parse_args(args("--listen 127.0.0.1:9000")).is_err());
    assert!(blocking_proxy::parse_args(args("--listen a --upstream b --path x")).is_err());
}
