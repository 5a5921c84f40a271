//! Runs the `tokio_proxy` example (included as a module) on ephemeral ports
//! in front of a scripted upstream: the same scenarios as the blocking
//! example's test (`common/proxy.rs`).

mod common;
#[allow(dead_code)]
#[path = "../examples/tokio_proxy.rs"]
mod tokio_proxy;

use std::net::SocketAddr;

use common::proxy::{self, args};

fn start_proxy(upstream: SocketAddr) -> SocketAddr {
    tokio_proxy::spawn(&tokio_proxy::Options {
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
fn arguments() {
    let o = tokio_proxy::parse_args(args(
        "--listen 127.0.0.1:9000 --upstream 127.0.0.1:3000 --path /x",
    ))
    .unwrap();
    assert_eq!(
        (o.listen.as_str(), o.upstream.as_str(), o.path.as_str()),
        ("127.0.0.1:9000", "127.0.0.1:3000", "/x")
    );
    assert!(tokio_proxy::parse_args(args("--listen 127.0.0.1:9000")).is_err());
    assert!(tokio_proxy::parse_args(args("--listen a --upstream b --path x")).is_err());
}
