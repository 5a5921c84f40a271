//! Each verdict through the proxy.

use std::io::Write;

use crate::common::*;
use crate::support::{DENIED, ECHO, Guest, body, spec};
use crate::{answering_upstream, load, proxy_with_hooks};

#[test]
fn a_rejecting_hook_answers_with_the_clients_id_and_the_upstream_sees_nothing() {
    let up = answering_upstream();
    let host = load(vec![spec(
        "deny",
        &Guest::new(&["tools/call"], body::reject(4001, DENIED)).component(),
    )]);
    let proxy = proxy_with_hooks(up.addr, host);
    let mut c = connect(proxy.local_addr());
    c.write_all(&post(CALL)).unwrap();
    let r = read_response(&mut c, "POST");
    assert_eq!(r.status, 200);
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["id"], "abc");
    assert_eq!(v["error"]["code"], 4001);
    assert_eq!(v["error"]["message"], DENIED.1);
    assert!(
        up.requests.try_recv().is_err(),
        "nothing reached the upstream"
    );
    // Unhooked methods still pass.
    c.write_all(&post(
        r#"{"jsonrpc":"2.0","id":"abc","method":"tools/list"}"#,
    ))
    .unwrap();
    let r = read_response(&mut c, "POST");
    assert_eq!(r.status, 200);
    assert!(r.text().contains("\"seen\""));
    proxy.shutdown();
}

#[test]
fn a_hook_can_answer_directly() {
    let up = answering_upstream();
    let host = load(vec![spec(
        "answer",
        &Guest::new(&["tools/call"], body::respond(ECHO)).component(),
    )]);
    let proxy = proxy_with_hooks(up.addr, host);
    let mut c = connect(proxy.local_addr());
    c.write_all(&post(CALL)).unwrap();
    let r = read_response(&mut c, "POST");
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["id"], "abc");
    assert_eq!(v["result"]["echo"], true);
    assert!(up.requests.try_recv().is_err());
    proxy.shutdown();
}

#[test]
fn a_response_hook_rewrites_a_streamed_answer_and_lets_progress_through() {
    let up = upstream(|conn, _| {
        write_sse_head(conn);
        write_chunk(conn, b"event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progressToken\":1,\"progress\":1}}\n\n");
        write_chunk(conn, b"event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":\"abc\",\"result\":{\"secret\":1}}\n\n");
        end_chunks(conn);
        true
    });
    let guest = Guest::new(&["tools/call"], body::cont()).on_response(body::respond(ECHO));
    let proxy = proxy_with_hooks(up.addr, load(vec![spec("rewrite", &guest.component())]));
    let mut c = connect(proxy.local_addr());
    c.write_all(&post(CALL)).unwrap();
    let r = read_response(&mut c, "POST");
    assert!(r.complete);
    let text = r.text();
    assert!(
        text.starts_with(
            "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\""
        ),
        "{text}"
    );
    assert!(!text.contains("secret"), "{text}");
    assert!(
        text.contains("{\"echo\":true}") && text.contains("\"id\":\"abc\""),
        "{text}"
    );
    proxy.shutdown();
}
