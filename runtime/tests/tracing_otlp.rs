//! Traces over OTLP/HTTP: a tools/call through sluice with tracing on
//! reaches a receiver in this test (a plain HTTP server that decodes the
//! OTLP/JSON export) as a SERVER span named and attributed per the MCP
//! semantic conventions, the child of the client's `traceparent`, with a
//! CLIENT span for the upstream attempt that the upstream sees as its
//! parent. The same through `params._meta.traceparent` (SEP-414): read,
//! preferred to the header when valid, rewritten for the upstream, added
//! for a stdio child and a federation's stdio member; untouched with
//! tracing off.

mod common;
#[path = "fixtures/legacy_backend.rs"]
mod legacy_backend;

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
            tls: None,
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
            tls: None,
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

/// `[tracing]` sending to `receiver` at `ratio`.
fn tracing_to(receiver: &Upstream, ratio: f64) -> TraceSettings {
    TraceSettings {
        host: "127.0.0.1".into(),
        port: receiver.addr.port(),
        target: "/v1/traces".into(),
        authority: receiver.addr.to_string(),
        sample_ratio: ratio,
        service_name: "sluice-test".into(),
        queue_spans: 64,
        tls: None,
    }
}

/// Every span exported until `n` came (in one export or several).
fn spans_exported(receiver: &Upstream, n: usize) -> Vec<Value> {
    let mut spans = Vec::new();
    while spans.len() < n {
        let export = receiver
            .requests
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("{n} spans exported, got {spans:#?}"));
        let body: Value = serde_json::from_slice(&export.body).expect("OTLP/JSON");
        for rs in body["resourceSpans"].as_array().unwrap() {
            for ss in rs["scopeSpans"].as_array().unwrap() {
                spans.extend(ss["spans"].as_array().unwrap().iter().cloned());
            }
        }
    }
    spans
}

const META_PARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

/// A tools/call whose `_meta` holds `traceparent` (a JSON value as
/// written), a `tracestate` and a key of the client's own, spaced oddly.
fn call_with_meta(traceparent: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":"abc","method":"tools/call","params":{{"name":"echo","_meta":{{ "x-client": [1, 2], "traceparent" : {traceparent},"tracestate":"meta=1"}},"arguments":{{"text":"hi"}}}}}}"#
    )
}

/// The `_meta.traceparent` of a request body the upstream received.
fn meta_traceparent(body: &[u8]) -> Option<TraceParent> {
    let v: Value = serde_json::from_slice(body).expect("JSON upstream");
    TraceParent::parse(v["params"]["_meta"]["traceparent"].as_str()?.as_bytes())
}

#[test]
fn a_meta_traceparent_is_continued_before_the_header_and_names_the_attempt_upstream() {
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
    let proxy = proxy_with(mcp.addr, |s| s.tracing = Some(tracing_to(&receiver, 0.0)));
    let mut client = connect(proxy.local_addr());
    let meta_parent = TraceParent::parse(META_PARENT.as_bytes()).unwrap();
    let header_parent = TraceParent::parse(CLIENT_PARENT.as_bytes()).unwrap();
    let header = format!("traceparent: {CLIENT_PARENT}\r\ntracestate: header=1\r\n");

    // A valid `_meta.traceparent` wins over the header.
    let sent = call_with_meta(&format!("\"{META_PARENT}\""));
    client.write_all(&post_with(&header, &sent)).unwrap();
    assert_eq!(read_response(&mut client, "POST").status, 200);
    let got = mcp.requests.recv_timeout(Duration::from_secs(20)).unwrap();
    let in_head = traceparent_of(&got.head).expect("the header upstream");
    let in_meta = meta_traceparent(&got.body).expect("_meta upstream");
    assert_eq!(in_meta, in_head, "one attempt, one parent, both carriers");
    assert!(got.head.contains("tracestate: meta=1\r\n"), "{}", got.head);
    assert!(!got.head.contains("header=1"), "{}", got.head);
    assert_eq!(in_meta.trace_id, meta_parent.trace_id, "_meta's trace");
    assert!(in_meta.is_sampled(), "_meta's flag decides");
    let ours = format!("\"{}\"", in_meta.write());
    assert_eq!(
        String::from_utf8(got.body.clone()).unwrap(),
        sent.replace(&format!("\"{META_PARENT}\""), &ours),
        "only the value changed"
    );

    // An invalid one: the header's context; the value still replaced, and
    // the `tracestate` beside it, which belonged to no trace, gone.
    let sent = call_with_meta("\"00-not-a-traceparent\"");
    client.write_all(&post_with(&header, &sent)).unwrap();
    assert_eq!(read_response(&mut client, "POST").status, 200);
    let got = mcp.requests.recv_timeout(Duration::from_secs(20)).unwrap();
    let in_meta = meta_traceparent(&got.body).expect("_meta upstream");
    assert_eq!(
        in_meta.trace_id, header_parent.trace_id,
        "the header's trace"
    );
    assert_eq!(Some(in_meta), traceparent_of(&got.head));
    assert!(
        got.head.contains("tracestate: header=1\r\n"),
        "{}",
        got.head
    );
    assert_eq!(
        String::from_utf8(got.body.clone()).unwrap(),
        sent.replace(
            "\"00-not-a-traceparent\"",
            &format!("\"{}\"", in_meta.write())
        )
        .replace(r#","tracestate":"meta=1""#, "")
    );

    // Both sampled: two exchanges, two attempts.
    let spans = spans_exported(&receiver, 4);
    let server = |trace: &str| {
        spans
            .iter()
            .find(|s| s["kind"] == 2 && s["traceId"] == trace)
            .unwrap_or_else(|| panic!("a SERVER span in {trace}: {spans:#?}"))
    };
    let from_meta = server(&meta_parent.trace_id.hex());
    assert_eq!(from_meta["parentSpanId"], meta_parent.parent_id.hex());
    assert_eq!(from_meta["traceState"], "meta=1", "_meta's tracestate");
    let from_header = server(&header_parent.trace_id.hex());
    assert_eq!(from_header["parentSpanId"], header_parent.parent_id.hex());
    assert_eq!(from_header["traceState"], "header=1");
    let attempt = spans
        .iter()
        .find(|s| s["kind"] == 3 && s["parentSpanId"] == from_meta["spanId"])
        .expect("the attempt of the first");
    assert_eq!(attempt["traceId"], meta_parent.trace_id.hex());
    assert_eq!(attempt["spanId"], in_head.parent_id.hex());
    proxy.shutdown();
}

#[test]
fn with_tracing_off_the_body_goes_upstream_byte_for_byte() {
    let mcp = upstream(|conn, _| {
        json_response(
            conn,
            r#"{"jsonrpc":"2.0","id":"abc","result":{"content":[]}}"#,
        );
        true
    });
    let proxy = proxy_for(mcp.addr);
    let mut client = connect(proxy.local_addr());
    let header = format!("traceparent: {CLIENT_PARENT}\r\n");
    for sent in [
        call_with_meta(&format!("\"{META_PARENT}\"")),
        call_with_meta("\"00-not-a-traceparent\""),
        CALL.to_string(),
    ] {
        client.write_all(&post_with(&header, &sent)).unwrap();
        assert_eq!(read_response(&mut client, "POST").status, 200);
        let got = mcp.requests.recv_timeout(Duration::from_secs(20)).unwrap();
        assert_eq!(got.body, sent.as_bytes());
        assert!(
            got.head
                .contains(&format!("traceparent: {CLIENT_PARENT}\r\n"))
        );
    }
    proxy.shutdown();
}

/// The Python interpreter itself (`python3` on PATH may be a pyenv shim).
fn python() -> String {
    let out = std::process::Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .expect("python3 runs");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn a_stdio_child_gets_the_attempt_in_meta_whether_or_not_the_client_sent_one() {
    use legacy_backend::{BOTH, exchange, request};
    use sluice::legacy::UpstreamTransport;
    use sluice::stdio::StdioUpstream;

    let receiver = upstream(|conn, _| {
        json_response(conn, "{}");
        false
    });
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/stdio_server.py"
    );
    let path = std::env::var("PATH").unwrap_or_default();
    let mut child = StdioUpstream::new(vec![python(), fixture.into()], vec![("PATH".into(), path)]);
    child.shutdown_grace = Duration::from_millis(300);
    let proxy = proxy_with("127.0.0.1:9".parse().unwrap(), |s| {
        s.upstreams[0].transport = UpstreamTransport::Stdio(Box::new(child));
        // Nothing recorded but what a client samples: propagated all the same.
        s.tracing = Some(tracing_to(&receiver, 0.0));
    });
    let init = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
    let got = exchange(&proxy, &request("POST", init, None, BOTH));
    assert_eq!(got.status, 200, "{}", String::from_utf8_lossy(&got.body));
    let sid = got.header("mcp-session-id").expect("a session");
    let note = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
    assert_eq!(
        exchange(&proxy, &request("POST", note, Some(&sid), BOTH)).status,
        202
    );
    let meta_of = |body: &str| -> Value {
        let got = exchange(&proxy, &request("POST", body, Some(&sid), BOTH));
        assert_eq!(got.status, 200, "{}", String::from_utf8_lossy(&got.body));
        let text = got.last()["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .to_owned();
        serde_json::from_str(&text).unwrap()
    };

    // No `_meta` at all, unsampled: one is made, the flag clear.
    let meta =
        meta_of(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"meta"}}"#);
    let added = TraceParent::parse(meta["traceparent"].as_str().unwrap().as_bytes()).unwrap();
    assert!(!added.is_sampled());
    assert_eq!(meta.as_object().unwrap().len(), 1, "{meta}");

    // The client's, sampled: continued, replaced by the attempt's, the rest kept.
    let body = format!(
        r#"{{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{{"name":"meta","_meta":{{"x":1,"traceparent":"{META_PARENT}","tracestate":"meta=1"}}}}}}"#
    );
    let meta = meta_of(&body);
    let replaced = TraceParent::parse(meta["traceparent"].as_str().unwrap().as_bytes()).unwrap();
    let client = TraceParent::parse(META_PARENT.as_bytes()).unwrap();
    assert_eq!(replaced.trace_id, client.trace_id);
    assert!(replaced.is_sampled());
    assert_eq!(
        (&meta["x"], &meta["tracestate"]),
        (&Value::from(1), &Value::from("meta=1"))
    );
    let spans = spans_exported(&receiver, 2);
    let attempt = spans
        .iter()
        .find(|s| s["kind"] == 3)
        .expect("a CLIENT span");
    assert_eq!(
        attempt["spanId"],
        replaced.parent_id.hex(),
        "the child's parent"
    );
    assert_eq!(
        attr(attempt, "sluice.upstream").map(|v| v["stringValue"].clone()),
        Some("stdio".into())
    );
    let server = spans
        .iter()
        .find(|s| s["kind"] == 2)
        .expect("a SERVER span");
    assert_eq!(server["parentSpanId"], client.parent_id.hex());
    proxy.shutdown();
}

#[test]
fn a_federations_member_call_is_a_span_of_its_own_named_in_the_members_meta() {
    use legacy_backend::{BOTH, exchange, request};
    use sluice::federation::{DEFAULT_POLICY, FederationUpstream, MemberServer, MemberUpstream};
    use sluice::legacy::UpstreamTransport;
    use sluice::stdio::StdioUpstream;
    use sluice_core::federation::Curation;
    use sluice_core::federation::http::AnswerLimits;

    let receiver = upstream(|conn, _| {
        json_response(conn, "{}");
        false
    });
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/stdio_server.py"
    );
    let path = std::env::var("PATH").unwrap_or_default();
    let mut child = StdioUpstream::new(vec![python(), fixture.into()], vec![("PATH".into(), path)]);
    child.shutdown_grace = Duration::from_millis(300);
    let fed = FederationUpstream {
        members: vec![MemberUpstream {
            name: "a".into(),
            tools: Curation::new("a"),
            prompts: Curation::new("a"),
            server: MemberServer::Stdio(child),
            policy: DEFAULT_POLICY,
        }],
        answer_limits: AnswerLimits::default(),
        session_keys: Vec::new(),
    };
    let proxy = proxy_with("127.0.0.1:9".parse().unwrap(), |s| {
        s.upstreams[0].transport = UpstreamTransport::Federation(Box::new(fed));
        s.tracing = Some(tracing_to(&receiver, 0.0));
    });
    let init = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
    let got = exchange(&proxy, &request("POST", init, None, BOTH));
    assert_eq!(got.status, 200, "{}", String::from_utf8_lossy(&got.body));
    let sid = got.header("mcp-session-id").expect("a session");
    let note = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
    assert_eq!(
        exchange(&proxy, &request("POST", note, Some(&sid), BOTH)).status,
        202
    );
    let list = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
    // One member: its names go unprefixed.
    let got = exchange(&proxy, &request("POST", list, Some(&sid), BOTH));
    assert_eq!(got.status, 200);
    // Without `_meta`, unsampled: one added all the same, its flag clear.
    let plain = r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"meta"}}"#;
    let got = exchange(&proxy, &request("POST", plain, Some(&sid), BOTH));
    let text = got.last()["result"]["content"][0]["text"].clone();
    let meta: Value = serde_json::from_str(text.as_str().unwrap()).unwrap();
    let added = TraceParent::parse(meta["traceparent"].as_str().unwrap().as_bytes()).unwrap();
    assert!(!added.is_sampled(), "{meta}");
    let body = format!(
        r#"{{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{{"name":"meta","_meta":{{"traceparent":"{META_PARENT}"}}}}}}"#
    );
    let got = exchange(&proxy, &request("POST", &body, Some(&sid), BOTH));
    assert_eq!(got.status, 200, "{}", String::from_utf8_lossy(&got.body));
    let answer = got.last();
    let text = answer["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("{answer}"))
        .to_owned();
    let meta: Value = serde_json::from_str(&text).unwrap();
    let seen = TraceParent::parse(meta["traceparent"].as_str().unwrap().as_bytes()).unwrap();
    let client = TraceParent::parse(META_PARENT.as_bytes()).unwrap();
    assert_eq!(seen.trace_id, client.trace_id);
    // The exchange, its attempt at the federation, and the member's call.
    let spans = spans_exported(&receiver, 3);
    let server = spans.iter().find(|s| s["kind"] == 2).expect("SERVER");
    let clients: Vec<&Value> = spans.iter().filter(|s| s["kind"] == 3).collect();
    let attempt = clients
        .iter()
        .find(|s| attr(s, "sluice.member").is_none())
        .expect("the attempt");
    let member = clients
        .iter()
        .find(|s| attr(s, "sluice.member").is_some())
        .expect("the member's span");
    assert_eq!(server["parentSpanId"], client.parent_id.hex());
    assert_eq!(attempt["parentSpanId"], server["spanId"]);
    assert_eq!(
        attr(attempt, "sluice.upstream").map(|v| v["stringValue"].clone()),
        Some("federation".into())
    );
    assert_eq!(
        member["parentSpanId"], attempt["spanId"],
        "under the attempt"
    );
    assert_eq!(member["traceId"], client.trace_id.hex());
    assert_eq!(
        member["spanId"],
        seen.parent_id.hex(),
        "the member's parent"
    );
    assert_eq!(member["name"], "tools/call meta");
    let s = |key: &str| attr(member, key).map(|v| v["stringValue"].clone());
    assert_eq!(s("sluice.member"), Some("a".into()));
    assert_eq!(s("sluice.upstream"), Some("stdio".into()));
    assert_eq!(s("gen_ai.tool.name"), Some("meta".into()));
    assert_eq!(attr(member, "error.type"), None);
    proxy.shutdown();
}

#[test]
fn a_member_that_cannot_be_reached_has_a_failed_span_with_its_address() {
    use legacy_backend::{BOTH, exchange, request};
    use sluice::federation::{
        DEFAULT_POLICY, FederationUpstream, HttpMember, MemberServer, MemberUpstream,
    };
    use sluice::legacy::UpstreamTransport;
    use sluice::stdio::StdioUpstream;
    use sluice_core::federation::Curation;
    use sluice_core::federation::http::{AnswerLimits, MemberUrl};

    let receiver = upstream(|conn, _| {
        json_response(conn, "{}");
        false
    });
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/stdio_server.py"
    );
    let path = std::env::var("PATH").unwrap_or_default();
    let mut child = StdioUpstream::new(vec![python(), fixture.into()], vec![("PATH".into(), path)]);
    child.shutdown_grace = Duration::from_millis(300);
    let member = |name: &str, server| MemberUpstream {
        name: name.into(),
        tools: Curation::new(name),
        prompts: Curation::new(name),
        server,
        policy: DEFAULT_POLICY,
    };
    let gone = HttpMember {
        host: "127.0.0.1".into(),
        port: closed.port(),
        tls: false,
        url: MemberUrl {
            authority: closed.to_string(),
            target: "/mcp".into(),
        },
        headers: Vec::new(),
    };
    let fed = FederationUpstream {
        members: vec![
            member("a", MemberServer::Stdio(child)),
            member("b", MemberServer::Http(gone)),
        ],
        answer_limits: AnswerLimits::default(),
        session_keys: Vec::new(),
    };
    let proxy = proxy_with("127.0.0.1:9".parse().unwrap(), |s| {
        s.upstreams[0].transport = UpstreamTransport::Federation(Box::new(fed));
        s.tracing = Some(tracing_to(&receiver, 1.0));
    });
    let init = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
    let got = exchange(&proxy, &request("POST", init, None, BOTH));
    assert_eq!(got.status, 200, "{}", String::from_utf8_lossy(&got.body));

    // The initialize's exchange, its attempt, and one span per member.
    let spans = spans_exported(&receiver, 4);
    let server = spans.iter().find(|s| s["kind"] == 2).expect("SERVER");
    let attempt = spans
        .iter()
        .find(|s| s["kind"] == 3 && s["parentSpanId"] == server["spanId"])
        .expect("the attempt");
    let of = |name: &str| {
        spans
            .iter()
            .find(|s| {
                attr(s, "sluice.member").map(|v| v["stringValue"].clone()) == Some(name.into())
            })
            .unwrap_or_else(|| panic!("member {name}'s span: {spans:#?}"))
    };
    let (a, b) = (of("a"), of("b"));
    for m in [a, b] {
        assert_eq!(m["name"], "initialize");
        assert_eq!(m["kind"], 3);
        assert_eq!(m["parentSpanId"], attempt["spanId"]);
        assert_eq!(m["traceId"], server["traceId"]);
    }
    let error = |s: &Value| attr(s, "error.type").map(|v| v["stringValue"].clone());
    assert_eq!(error(a), None);
    assert_eq!(a["status"]["code"], Value::Null, "{a:#}");
    assert_eq!(error(b), Some("upstream-error".into()));
    assert_eq!(b["status"]["code"], 2, "ERROR");
    assert_eq!(
        attr(b, "server.address").map(|v| v["stringValue"].clone()),
        Some("127.0.0.1".into())
    );
    assert_eq!(
        attr(b, "server.port").map(|v| v["intValue"].clone()),
        Some(closed.port().to_string().into())
    );
    proxy.shutdown();
}
