//! Traces over OTLP/HTTP: a tools/call through sluice with tracing on
//! reaches a receiver in this test (a plain HTTP server that decodes the
//! OTLP/JSON export) as a SERVER span named and attributed per the MCP
//! semantic conventions, the child of the client's `traceparent`, with a
//! CLIENT span for the upstream attempt that the upstream sees as its
//! parent.

mod common;

use std::io::Write;
use std::time::Duration;

use serde_json::Value;
use sluice::otel::TraceSettings;
use sluice_core::tracecontext::TraceParent;

use common::*;

const CLIENT_PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn post_with(extra: &str, body: &str) -> Vec<u8> {
    format!(
        "POST /mcp HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The value of attribute `key` of an OTLP/JSON span.
fn attr<'a>(span: &'a Value, key: &str) -> Option<&'a Value> {
    span["attributes"]
        .as_array()?
        .iter()
        .find(|a| a["key"] == key)
        .map(|a| &a["value"])
}

fn traceparent_of(head: &str) -> Option<TraceParent> {
    let lines: Vec<&str> = head
        .lines()
        .filter_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("traceparent").then_some(value)
        })
        .collect();
    assert!(lines.len() <= 1, "one traceparent upstream: {head}");
    TraceParent::parse(lines.first()?.as_bytes())
}

#[test]
fn a_tools_call_span_continues_the_clients_trace_and_its_attempt_is_the_upstreams_parent() {
    let receiver = upstream(|conn, _| {
        json_response(conn, "{}");
        false
    });
    let mcp = upstream(|conn, _| {
        json_response(
            conn,
            r#"{"jsonrpc":"2.0","id":"abc","result":{"content":[]}}"#,
        );
        true
    });
    let proxy = proxy_with(mcp.addr, |s| {
        s.tracing = Some(TraceSettings {
            host: "127.0.0.1".into(),
            port: receiver.addr.port(),
            target: "/v1/traces".into(),
            authority: receiver.addr.to_string(),
            // Only the client's sampled flag records a span.
            sample_ratio: 0.0,
            service_name: "sluice-test".into(),
            queue_spans: 64,
        });
    });
    let mut client = connect(proxy.local_addr());

    // No traceparent, ratio 0: not recorded, but a trace still goes upstream.
    client.write_all(&post(CALL)).unwrap();
    assert_eq!(read_response(&mut client, "POST").status, 200);
    let unsampled = mcp.requests.recv_timeout(Duration::from_secs(20)).unwrap();
    let up = traceparent_of(&unsampled.head).expect("a traceparent upstream");
    assert!(!up.is_sampled(), "{}", unsampled.head);

    // The client's sampled trace.
    let extra = format!(
        "traceparent: {CLIENT_PARENT}\r\ntracestate: vendor=1\r\nMcp-Session-Id: s-42\r\nMCP-Protocol-Version: 2025-06-18\r\n"
    );
    client.write_all(&post_with(&extra, CALL)).unwrap();
    assert_eq!(read_response(&mut client, "POST").status, 200);
    let sampled = mcp.requests.recv_timeout(Duration::from_secs(20)).unwrap();
    let client_parent = TraceParent::parse(CLIENT_PARENT.as_bytes()).unwrap();
    let up = traceparent_of(&sampled.head).expect("a traceparent upstream");
    assert_eq!(up.trace_id, client_parent.trace_id, "the client's trace");
    assert_ne!(
        up.parent_id, client_parent.parent_id,
        "sluice's attempt span"
    );
    assert!(up.is_sampled());
    assert!(sampled.head.contains("tracestate: vendor=1\r\n"));

    // The export: only the sampled exchange's span, whenever it comes.
    let export = receiver
        .requests
        .recv_timeout(Duration::from_secs(30))
        .expect("an export");
    assert!(export.head.starts_with("POST /v1/traces HTTP/1.1\r\n"));
    assert!(
        export
            .head
            .to_ascii_lowercase()
            .contains("content-type: application/json\r\n")
    );
    let body: Value = serde_json::from_slice(&export.body).expect("OTLP/JSON");
    let rs = &body["resourceSpans"][0];
    assert_eq!(
        rs["resource"]["attributes"][0]["value"]["stringValue"],
        "sluice-test"
    );
    let spans = rs["scopeSpans"][0]["spans"].as_array().unwrap();
    assert_eq!(
        spans.len(),
        2,
        "the exchange and its upstream attempt: {spans:#?}"
    );
    let span = spans
        .iter()
        .find(|s| s["kind"] == 2)
        .expect("a SERVER span");
    assert_eq!(span["name"], "tools/call echo");
    assert_eq!(span["traceId"], client_parent.trace_id.hex());
    assert_eq!(span["parentSpanId"], client_parent.parent_id.hex());
    assert_eq!(span["traceState"], "vendor=1");

    // The attempt: the upstream's parent, the exchange's child.
    let attempt = spans
        .iter()
        .find(|s| s["kind"] == 3)
        .expect("a CLIENT span");
    assert_eq!(attempt["name"], "tools/call echo");
    assert_eq!(attempt["traceId"], client_parent.trace_id.hex());
    assert_eq!(attempt["parentSpanId"], span["spanId"]);
    assert_eq!(attempt["spanId"], up.parent_id.hex());
    assert_eq!(
        attr(attempt, "server.address").map(|v| v["stringValue"].clone()),
        Some("127.0.0.1".into())
    );
    assert_eq!(
        attr(attempt, "server.port").map(|v| v["intValue"].clone()),
        Some(mcp.addr.port().to_string().into())
    );
    assert_eq!(
        attr(attempt, "sluice.upstream.reused").map(|v| v["boolValue"].clone()),
        Some(true.into()),
        "the second request on the client's connection reuses the pooled one"
    );
    assert_eq!(attr(attempt, "error.type"), None);
    let s = |key: &str| attr(span, key).map(|v| v["stringValue"].clone());
    let i = |key: &str| attr(span, key).map(|v| v["intValue"].clone());
    assert_eq!(s("mcp.method.name"), Some("tools/call".into()));
    assert_eq!(s("gen_ai.tool.name"), Some("echo".into()));
    assert_eq!(s("jsonrpc.request.id"), Some("abc".into()));
    assert_eq!(s("mcp.protocol.version"), Some("2025-06-18".into()));
    assert_eq!(s("network.protocol.version"), Some("1.1".into()));
    assert_eq!(s("server.address"), Some("127.0.0.1".into()));
    assert_eq!(
        i("server.port"),
        Some(proxy.local_addr().port().to_string().into())
    );
    assert_eq!(i("http.response.status_code"), Some("200".into()));
    assert_eq!(attr(span, "error.type"), None, "it succeeded");
    let session = s("mcp.session.id").expect("a session");
    let session = session.as_str().unwrap();
    assert_eq!(session.len(), 16, "hashed as in the access log: {session}");
    assert_ne!(session, "s-42");
    let (start, end) = (
        span["startTimeUnixNano"].as_str().unwrap().parse::<u128>(),
        span["endTimeUnixNano"].as_str().unwrap().parse::<u128>(),
    );
    assert!(start.unwrap() <= end.unwrap());
    proxy.shutdown();
}

#[test]
fn a_refused_upstream_marks_both_spans_failed() {
    let receiver = upstream(|conn, _| {
        json_response(conn, "{}");
        false
    });
    // A port nothing listens on: bound, then closed.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let proxy = proxy_with(closed, |s| {
        s.tracing = Some(TraceSettings {
            host: "127.0.0.1".into(),
            port: receiver.addr.port(),
            target: "/v1/traces".into(),
            authority: receiver.addr.to_string(),
            sample_ratio: 1.0,
            service_name: "sluice".into(),
            queue_spans: 64,
        });
    });
    let mut client = connect(proxy.local_addr());
    client.write_all(&post(CALL)).unwrap();
    assert_eq!(read_response(&mut client, "POST").status, 502);
    let export = receiver
        .requests
        .recv_timeout(Duration::from_secs(30))
        .expect("an export");
    let body: Value = serde_json::from_slice(&export.body).expect("OTLP/JSON");
    let spans = body["resourceSpans"][0]["scopeSpans"][0]["spans"]
        .as_array()
        .unwrap();
    assert_eq!(spans.len(), 2, "{spans:#?}");
    let exchange = spans.iter().find(|s| s["kind"] == 2).expect("SERVER");
    let attempt = spans.iter().find(|s| s["kind"] == 3).expect("CLIENT");
    assert!(exchange.get("parentSpanId").is_none(), "sluice started it");
    assert_eq!(attempt["parentSpanId"], exchange["spanId"]);
    let error = |s: &Value| attr(s, "error.type").map(|v| v["stringValue"].clone());
    // -32000: the JSON-RPC code of "the upstream failed".
    assert_eq!(error(exchange), Some("-32000".into()));
    assert_eq!(exchange["status"]["code"], 2, "ERROR");
    assert_eq!(error(attempt), Some("connect-failed".into()));
    assert_eq!(attempt["status"]["code"], 2, "ERROR");
    proxy.shutdown();
}
