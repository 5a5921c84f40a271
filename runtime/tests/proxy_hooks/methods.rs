//! Issue 11, item 5: request hooks read POST bodies, so a message sent by
//! any other method went past them. Only POST carries a body to an MCP
//! endpoint; GET, DELETE and OPTIONS go without one; the rest is a 405.

use std::io::Write;

use crate::common::*;
use crate::support::{DENIED, Guest, body, spec};
use crate::{answering_upstream, json, load, proxy_with_hooks};

fn send(proxy: &sluice::proxy::RunningProxy, request: &str) -> Response {
    let mut c = connect(proxy.local_addr());
    c.write_all(request.as_bytes()).unwrap();
    let method = request.split(' ').next().unwrap();
    read_response(&mut c, method)
}

#[test]
fn a_denied_tools_call_reaches_the_upstream_by_no_other_method() {
    let up = answering_upstream();
    let host = load(vec![spec(
        "deny",
        &Guest::new(&["tools/call"], body::reject(4001, DENIED)).component(),
    )]);
    let proxy = proxy_with_hooks(up.addr, host);
    let with_body = |method: &str, target: &str| {
        format!(
            "{method} {target} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{CALL}",
            CALL.len()
        )
    };
    let chunked = |method: &str| {
        format!(
            "{method} /mcp HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
             Transfer-Encoding: chunked\r\n\r\n{:x}\r\n{CALL}\r\n0\r\n\r\n",
            CALL.len()
        )
    };
    let bare = |method: &str, target: &str| {
        format!("{method} {target} HTTP/1.1\r\nHost: localhost\r\n\r\n")
    };
    let mcp = "POST, GET, DELETE, OPTIONS";
    let wk = "/.well-known/oauth-protected-resource";
    let well_known = "GET, HEAD, OPTIONS";
    for (request, allow) in [
        (with_body("PUT", "/mcp"), mcp),
        (with_body("post", "/mcp"), mcp),
        (with_body("PATCH", "/mcp"), mcp),
        (with_body("GET", "/mcp"), mcp),
        (with_body("DELETE", "/mcp"), mcp),
        (with_body("OPTIONS", "/mcp"), mcp),
        (chunked("GET"), mcp),
        (chunked("PUT"), mcp),
        (bare("HEAD", "/mcp"), mcp),
        (bare("TRACE", "/mcp"), mcp),
        (with_body("POST", wk), well_known),
        (with_body("GET", wk), well_known),
        (bare("DELETE", wk), well_known),
    ] {
        let line = request.lines().next().unwrap().to_owned();
        let r = send(&proxy, &request);
        assert_eq!(r.status, 405, "{line}: {}", r.head);
        assert!(
            r.head.contains(&format!("\r\nAllow: {allow}\r\n")),
            "{line}: {}",
            r.head
        );
    }
    assert!(
        up.requests.try_recv().is_err(),
        "nothing reached the upstream"
    );

    // The hook sees the POST and denies it.
    let r = crate::call(&proxy, CALL);
    assert_eq!(json(&r)["error"]["code"], 4001);
    assert!(up.requests.try_recv().is_err());

    // Body-less GET, DELETE and OPTIONS pass, and so do the /.well-known reads.
    for request in [
        bare("GET", "/mcp"),
        bare("DELETE", "/mcp"),
        bare("OPTIONS", "/mcp"),
        bare("GET", wk),
        bare("OPTIONS", wk),
        // Last: this upstream answers HEAD with a body, which spoils its
        // connection for a next request.
        bare("HEAD", wk),
    ] {
        let line = request.lines().next().unwrap().to_owned();
        let r = send(&proxy, &request);
        assert_eq!(r.status, 200, "{line}: {}", r.head);
        let seen = up.requests.recv().unwrap();
        assert!(
            seen.head.starts_with(&format!("{line}\r\n")),
            "{}",
            seen.head
        );
        assert!(seen.body.is_empty(), "{line}");
    }
    proxy.shutdown();
}
