//! classify() against the obvious alternative: serde_json into a `Value`,
//! then pick out the same fields.
//!
//! cargo bench -p sluice-core --bench jsonrpc -- --warm-up-time 1 --measurement-time 3

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::Value;
use sluice_core::jsonrpc::{Classified, Limits, classify};

const TOOLS_CALL: &[u8] = br#"{"jsonrpc":"2.0","id":17,"method":"tools/call","params":{"name":"get_weather","arguments":{"city":"Paris","units":"metric"},"_meta":{"progressToken":"p-17"}}}"#;

/// A tools/list result of about 26 KB: 36 tools with descriptions and input
/// schemas, the shape real servers send.
fn tools_list_result() -> Vec<u8> {
    let mut tools = Vec::new();
    for i in 0..36 {
        tools.push(format!(
            r#"{{"name":"tool_{i}","title":"Tool number {i}","description":"Does the thing number {i} with care. It reads the input, validates it against the schema, calls the upstream service and returns a structured result; errors are reported in the content with isError set.","inputSchema":{{"type":"object","properties":{{"query":{{"type":"string","description":"What to look for, in plain words"}},"limit":{{"type":"integer","minimum":1,"maximum":100,"default":10}},"filters":{{"type":"array","items":{{"type":"object","properties":{{"field":{{"type":"string"}},"op":{{"type":"string","enum":["eq","ne","lt","gt"]}},"value":{{}}}},"required":["field","op"]}}}},"verbose":{{"type":"boolean"}}}},"required":["query"],"additionalProperties":false}},"annotations":{{"readOnlyHint":true,"openWorldHint":false}}}}"#
        ));
    }
    format!(
        r#"{{"jsonrpc":"2.0","id":"list-1","result":{{"tools":[{}],"nextCursor":"eyJwYWdlIjoyfQ=="}}}}"#,
        tools.join(",")
    )
    .into_bytes()
}

/// The Value route: parse everything, then read the same fields.
fn via_value(json: &[u8]) -> usize {
    let v: Value = serde_json::from_slice(json).unwrap();
    let mut n = 0;
    if v.get("jsonrpc").and_then(Value::as_str) == Some("2.0") {
        n += 1;
    }
    n += v.get("id").map_or(0, |id| id.to_string().len());
    n += v.get("method").and_then(Value::as_str).map_or(0, str::len);
    if let Some(p) = v.get("params") {
        n += p.get("name").and_then(Value::as_str).map_or(0, str::len);
        n += p
            .get("_meta")
            .and_then(|m| m.get("progressToken"))
            .map_or(0, |t| t.to_string().len());
    }
    n += v.get("result").map_or(0, |r| r.is_object() as usize);
    n
}

fn via_classify(json: &[u8]) -> usize {
    match classify(json, &Limits::default()).unwrap() {
        Classified::Single(m) => {
            m.id.map_or(0, <[u8]>::len)
                + m.method.as_deref().map_or(0, str::len)
                + m.name.as_deref().map_or(0, str::len)
                + m.progress_token.map_or(0, <[u8]>::len)
                + m.result.map_or(0, |r| r.len())
        }
        Classified::Batch(ms) => ms.len(),
    }
}

fn bench(c: &mut Criterion) {
    let big = tools_list_result();
    for (name, input) in [
        ("tools_call_request", TOOLS_CALL),
        ("tools_list_result_26k", &big[..]),
    ] {
        let mut g = c.benchmark_group(format!("jsonrpc/{name}"));
        g.throughput(Throughput::Bytes(input.len() as u64));
        g.bench_function("classify", |b| b.iter(|| via_classify(black_box(input))));
        g.bench_function("serde_value", |b| b.iter(|| via_value(black_box(input))));
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
