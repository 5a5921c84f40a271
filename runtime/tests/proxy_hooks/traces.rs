//! With tracing on, each hook run is a span of its own: a child of the
//! exchange's span, named after the hook, with its phase and verdict.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use sluice::hooks::OnError;
use sluice::otel::TraceSettings;

use crate::common::*;
use crate::support::{DENIED, Guest, body};
use crate::{answering_upstream, hook, load};

fn attr(span: &Value, key: &str) -> Value {
    span["attributes"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["key"] == key))
        .map_or(Value::Null, |a| a["value"]["stringValue"].clone())
}

#[test]
fn each_hook_run_is_a_child_span_of_the_exchange() {
    let receiver = upstream(|conn, _| {
        json_response(conn, "{}");
        false
    });
    let up = answering_upstream();
    let audit = Guest::new(&["tools/call"], body::cont());
    let gate = Guest::new(&["tools/call"], body::reject(4001, DENIED));
    let host = load(vec![
        hook("audit", &audit, OnError::Reject),
        hook("gate", &gate, OnError::Reject),
    ]);
    let mut settings =
        sluice::proxy::ProxySettings::single("127.0.0.1:0".parse().unwrap(), up.addr, "/mcp");
    settings.access_log = false;
    settings.tracing = Some(TraceSettings {
        host: "127.0.0.1".into(),
        port: receiver.addr.port(),
        target: "/v1/traces".into(),
        authority: receiver.addr.to_string(),
        sample_ratio: 1.0,
        service_name: "sluice".into(),
        queue_spans: 64,
        tls: None,
    });
    let proxy = sluice::proxy::start(settings.with_hooks(Arc::new(host))).expect("proxy starts");
    let answer = crate::call(&proxy, CALL);
    assert_eq!(answer.status, 200);
    assert!(answer.text().contains("4001"), "{}", answer.text());

    // The three spans of one exchange are submitted together.
    let export = receiver
        .requests
        .recv_timeout(Duration::from_secs(30))
        .expect("an export");
    let body: Value = serde_json::from_slice(&export.body).expect("OTLP/JSON");
    let spans = body["resourceSpans"][0]["scopeSpans"][0]["spans"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(spans.len(), 3, "{spans:#?}");
    let exchange = spans
        .iter()
        .find(|s| s["kind"] == 2)
        .expect("a SERVER span");
    assert_eq!(exchange["name"], "tools/call echo");
    assert!(exchange.get("parentSpanId").is_none(), "a trace of its own");
    let hooks: Vec<&Value> = spans.iter().filter(|s| s["kind"] == 1).collect();
    let names: Vec<&Value> = hooks.iter().map(|s| &s["name"]).collect();
    assert_eq!(names, ["hook audit", "hook gate"]);
    for (span, verdict) in hooks.iter().zip(["continue", "reject"]) {
        assert_eq!(span["parentSpanId"], exchange["spanId"]);
        assert_eq!(span["traceId"], exchange["traceId"]);
        assert_eq!(attr(span, "sluice.hook.phase"), "request");
        assert_eq!(attr(span, "sluice.hook.verdict"), verdict);
        assert_eq!(attr(span, "mcp.method.name"), "tools/call");
    }
    assert!(
        up.requests.try_recv().is_err(),
        "the gate refused it: nothing went upstream"
    );
    proxy.shutdown();
}
