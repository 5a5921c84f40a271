//! Hooks in the proxy, end to end: WAT hooks loaded into the real host, the
//! real proxy, a scripted upstream, a raw client.
//!
//! - `verdicts`: each verdict on requests and on JSON and SSE answers;
//! - `failures`: every way a hook can fail, with `on_error` reject and pass,
//!   on a request, a JSON answer and an SSE answer;
//! - `messages`: notifications and 2025-03-26 batches;
//! - `headers`: the operator's header allow-list;
//! - `bypass`: the ways an upstream tried to get an answer past the hooks;
//! - `methods`: a message reaches the upstream in a POST only;
//! - `traces`: a span per hook run, a child of the exchange's.

#[path = "../common/mod.rs"]
mod common;
#[path = "../fixtures/hooks/support.rs"]
mod support;

mod bypass;
mod failures;
mod headers;
mod messages;
mod methods;
mod traces;
mod verdicts;

use std::sync::Arc;

use common::*;
use sluice::hooks::{HookHost, HookSpec, OnError};
use support::{Guest, spec};

pub fn proxy_with_hooks(
    upstream: std::net::SocketAddr,
    host: HookHost,
) -> sluice::proxy::RunningProxy {
    let mut settings =
        sluice::proxy::ProxySettings::single("127.0.0.1:0".parse().unwrap(), upstream, "/mcp");
    settings.access_log = false;
    sluice::proxy::start(settings.with_hooks(Arc::new(host))).expect("proxy starts")
}

/// An upstream answering every request with a JSON result under id "abc"
/// that reports the size of the body it got.
pub fn answering_upstream() -> Upstream {
    upstream(|conn, req| {
        let body = String::from_utf8_lossy(&req.body).into_owned();
        json_response(
            conn,
            &format!(
                r#"{{"jsonrpc":"2.0","id":"abc","result":{{"seen":{}}}}}"#,
                body.len()
            ),
        );
        true
    })
}

/// A spec for `guest` named `name`, failing as `on_error` says.
pub fn hook(name: &str, guest: &Guest, on_error: OnError) -> HookSpec {
    let mut s = spec(name, &guest.component());
    s.on_error = on_error;
    s
}

pub fn load(specs: Vec<HookSpec>) -> HookHost {
    HookHost::load(specs, None).expect("hooks load")
}

/// Send `body` as a POST and read the answer.
pub fn call(proxy: &sluice::proxy::RunningProxy, body: &str) -> Response {
    use std::io::Write;
    let mut c = connect(proxy.local_addr());
    c.write_all(&post(body)).unwrap();
    read_response(&mut c, "POST")
}

pub fn json(r: &Response) -> serde_json::Value {
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", r.text()))
}
