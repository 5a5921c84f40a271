//! The jsonrpc classifier against the vector table in
//! `vectors/jsonrpc.json`, cross-checked with serde_json, plus a seeded
//! mutation fuzzer whose rule is "if we accept, serde_json accepts and reads
//! the same method, id, name and progress token".

mod common;

use serde_json::Value;
use sluice_core::jsonrpc::{Classified, ClassifyError, Kind, Limits, Message, classify, codes};

struct Vector {
    name: String,
    input: Vec<u8>,
    limits: Limits,
    spec: Value,
}

fn vectors() -> Vec<Vector> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/jsonrpc.json");
    let table: Vec<Value> = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    table
        .into_iter()
        .map(|v| {
            let input = match (v.get("input"), v.get("input_hex")) {
                (Some(s), None) => s.as_str().unwrap().as_bytes().to_vec(),
                (None, Some(h)) => hex(h.as_str().unwrap()),
                _ => panic!("vector needs exactly one of input, input_hex: {v}"),
            };
            let mut limits = Limits::default();
            if let Some(d) = v.get("max_depth") {
                limits.max_depth = d.as_u64().unwrap() as usize;
            }
            if let Some(b) = v.get("max_bytes") {
                limits.max_bytes = b.as_u64().unwrap() as usize;
            }
            Vector {
                name: v["name"].as_str().unwrap().to_owned(),
                input,
                limits,
                spec: v,
            }
        })
        .collect()
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::Request => "request",
        Kind::Notification => "notification",
        Kind::Response => "response",
        Kind::Error => "error",
    }
}

fn variant(e: &ClassifyError) -> String {
    let dbg = format!("{e:?}");
    dbg.split([' ', '{']).next().unwrap().to_owned()
}

/// Compares one message with its expected fields; absent fields must be `None`.
fn check_message(name: &str, input: &[u8], m: &Message<'_>, exp: &Value) {
    let text = |k: &str| exp.get(k).map(|v| v.as_str().unwrap().to_owned());
    let span = |r: &Option<std::ops::Range<usize>>| {
        r.clone()
            .map(|r| String::from_utf8(input[r].to_vec()).unwrap())
    };
    let utf8 = |b: Option<&[u8]>| b.map(|b| String::from_utf8(b.to_vec()).unwrap());
    assert_eq!(
        Some(kind_name(m.kind).to_owned()),
        text("kind"),
        "{name}: kind"
    );
    assert_eq!(
        m.method.as_deref().map(str::to_owned),
        text("method"),
        "{name}: method"
    );
    assert_eq!(utf8(m.id), text("id"), "{name}: id");
    assert_eq!(
        utf8(m.progress_token),
        text("progress_token"),
        "{name}: progress token"
    );
    assert_eq!(utf8(m.request_id), text("request_id"), "{name}: request id");
    assert_eq!(
        m.name.as_deref().map(str::to_owned),
        text("name"),
        "{name}: name"
    );
    assert_eq!(span(&m.params), text("params"), "{name}: params span");
    assert_eq!(span(&m.result), text("result"), "{name}: result span");
    assert_eq!(span(&m.error), text("error"), "{name}: error span");
}

fn messages<'a>(c: &'a Classified<'a>) -> Vec<&'a Message<'a>> {
    match c {
        Classified::Single(m) => vec![m],
        Classified::Batch(ms) => ms.iter().collect(),
    }
}

/// serde_json's reading of an accepted input must match ours, message by
/// message: same kind, method, id, name, progress token and spans.
fn agrees_with_serde(input: &[u8], c: &Classified<'_>) -> Result<(), String> {
    let v: Value = serde_json::from_slice(input).map_err(|e| format!("serde_json rejects: {e}"))?;
    let values: Vec<&Value> = match (&v, c) {
        (Value::Array(a), Classified::Batch(_)) => a.iter().collect(),
        (Value::Object(_), Classified::Single(_)) => vec![&v],
        _ => return Err("single/batch disagree".into()),
    };
    let ms = messages(c);
    if ms.len() != values.len() {
        return Err("batch length differs".into());
    }
    let parse = |b: &[u8]| serde_json::from_slice::<Value>(b).map_err(|e| e.to_string());
    for (m, v) in ms.into_iter().zip(values) {
        let obj = v.as_object().ok_or("element not an object")?;
        if obj.get("jsonrpc") != Some(&Value::from("2.0")) {
            return Err("jsonrpc".into());
        }
        let shape_ok = match m.kind {
            Kind::Request => obj.contains_key("method") && obj.contains_key("id"),
            Kind::Notification => obj.contains_key("method") && !obj.contains_key("id"),
            Kind::Response => obj.contains_key("result") && !obj.contains_key("error"),
            Kind::Error => obj.contains_key("error") && !obj.contains_key("result"),
        };
        if !shape_ok {
            return Err(format!("kind {:?}", m.kind));
        }
        if m.method.as_deref() != obj.get("method").and_then(Value::as_str) && m.method.is_some() {
            return Err("method".into());
        }
        match m.id {
            Some(raw) if Some(&parse(raw)?) != obj.get("id") => return Err("id".into()),
            None if obj.contains_key("id") => return Err("id missing".into()),
            _ => {}
        }
        let params = obj.get("params");
        if let Some(name) = &m.name {
            let key = if m.method.as_deref() == Some("resources/read") {
                "uri"
            } else {
                "name"
            };
            if params.and_then(|p| p.get(key)).and_then(Value::as_str) != Some(name.as_ref()) {
                return Err("name".into());
            }
        }
        if let Some(tok) = m.progress_token {
            let theirs = if m.method.as_deref() == Some("notifications/progress") {
                params.and_then(|p| p.get("progressToken"))
            } else {
                params
                    .and_then(|p| p.get("_meta"))
                    .and_then(|m| m.get("progressToken"))
            };
            if Some(&parse(tok)?) != theirs {
                return Err("progress token".into());
            }
        }
        if let Some(id) = m.request_id
            && Some(&parse(id)?) != params.and_then(|p| p.get("requestId"))
        {
            return Err("request id".into());
        }
        for (span, key) in [
            (&m.params, "params"),
            (&m.result, "result"),
            (&m.error, "error"),
        ] {
            if let Some(r) = span
                && Some(&parse(&input[r.clone()])?) != obj.get(key)
            {
                return Err(format!("{key} span"));
            }
        }
    }
    Ok(())
}

#[test]
fn vector_table() {
    let vs = vectors();
    assert!(vs.len() >= 60, "only {} vectors", vs.len());
    for v in &vs {
        let name = &v.name;
        let got = classify(&v.input, &v.limits);
        if let Some(rej) = v.spec.get("reject") {
            let e = match got {
                Err(e) => e,
                Ok(c) => panic!("{name}: accepted, expected rejection: {c:?}"),
            };
            assert_eq!(variant(&e), rej["error"].as_str().unwrap(), "{name}: {e:?}");
            assert_eq!(e.code(), rej["code"].as_i64().unwrap(), "{name}: code");
            assert!(!e.to_string().is_empty());
            // Our text-level verdicts must match serde_json's except where we
            // are deliberately stricter (duplicates, limits).
            let serde_ok = serde_json::from_slice::<Value>(&v.input).is_ok();
            match e {
                ClassifyError::DuplicateKey { .. }
                | ClassifyError::TooDeep { .. }
                | ClassifyError::TooLarge { .. } => {}
                _ if e.code() == codes::PARSE_ERROR => {
                    assert!(!serde_ok, "{name}: serde_json accepts")
                }
                _ => assert!(serde_ok, "{name}: serde_json rejects valid JSON"),
            }
            continue;
        }
        let c = got.unwrap_or_else(|e| panic!("{name}: rejected with {e:?}"));
        let exp = &v.spec["expect"];
        match (&c, exp.get("batch")) {
            (Classified::Single(m), None) => check_message(name, &v.input, m, exp),
            (Classified::Batch(ms), Some(b)) => {
                let b = b.as_array().unwrap();
                assert_eq!(ms.len(), b.len(), "{name}: batch length");
                for (m, e) in ms.iter().zip(b) {
                    check_message(name, &v.input, m, e);
                }
            }
            _ => panic!("{name}: single/batch mismatch: {c:?}"),
        }
        agrees_with_serde(&v.input, &c)
            .unwrap_or_else(|e| panic!("{name}: serde_json disagrees: {e}"));
    }
}

/// Every accepted vector stays accepted (spans shifted) under extra
/// whitespace, and turns into a parse error when cut short or followed by
/// garbage.
#[test]
fn accepted_vectors_under_framing_changes() {
    for v in vectors().iter().filter(|v| v.spec.get("expect").is_some()) {
        let name = &v.name;
        let base = classify(&v.input, &v.limits).unwrap();

        let mut padded = b" \r\n\t".to_vec();
        padded.extend_from_slice(&v.input);
        padded.extend_from_slice(b"\n\n");
        let shifted =
            classify(&padded, &v.limits).unwrap_or_else(|e| panic!("{name}: padded: {e:?}"));
        for (a, b) in messages(&base).into_iter().zip(messages(&shifted)) {
            assert_eq!(a.method, b.method, "{name}");
            assert_eq!(a.id, b.id, "{name}");
            assert_eq!(
                a.params.clone().map(|r| r.start + 4..r.end + 4),
                b.params,
                "{name}"
            );
        }

        for garbage in [&b"x"[..], b"{}", b"]", b"\x00", b",", b"1"] {
            let mut g = v.input.clone();
            g.extend_from_slice(garbage);
            let e = classify(&g, &v.limits).unwrap_err();
            assert_eq!(e.code(), codes::PARSE_ERROR, "{name} + {garbage:?}: {e:?}");
        }

        let last = v
            .input
            .iter()
            .rposition(|b| !b" \t\r\n".contains(b))
            .unwrap();
        for cut in 0..=last {
            let e = classify(&v.input[..cut], &v.limits).unwrap_err();
            assert_eq!(e.code(), codes::PARSE_ERROR, "{name} cut at {cut}: {e:?}");
        }
    }
}

fn nested(depth: usize) -> Vec<u8> {
    let mut s = br#"{"jsonrpc":"2.0","id":1,"method":"m","params":"#.to_vec();
    s.extend(std::iter::repeat_n(b'[', depth - 1));
    s.extend(std::iter::repeat_n(b']', depth - 1));
    s.push(b'}');
    s
}

#[test]
fn default_depth_limit() {
    let limits = Limits::default();
    assert_eq!(limits.max_depth, 128);
    assert!(classify(&nested(128), &limits).is_ok());
    let e = classify(&nested(129), &limits).unwrap_err();
    assert!(matches!(e, ClassifyError::TooDeep { .. }), "{e:?}");
    assert_eq!(e.code(), codes::PARSE_ERROR);
}

#[test]
fn very_deep_input_does_not_overflow_the_stack() {
    let deep = vec![b'['; 1 << 20];
    let e = classify(&deep, &Limits::default()).unwrap_err();
    assert!(matches!(e, ClassifyError::TooDeep { offset: 128 }), "{e:?}");
    let unlimited = Limits {
        max_depth: usize::MAX,
        ..Limits::default()
    };
    let mut closed = deep.clone();
    closed.extend(std::iter::repeat_n(b']', 1 << 20));
    assert_eq!(
        classify(&closed, &unlimited).unwrap_err(),
        ClassifyError::NotAnObject
    );
    assert_eq!(
        classify(&deep, &unlimited).unwrap_err(),
        ClassifyError::UnexpectedEnd
    );
}

#[test]
fn large_objects_check_duplicates_in_n_log_n() {
    let n = 200_000;
    let mut s = br#"{"jsonrpc":"2.0","id":1,"method":"m","params":{"#.to_vec();
    for i in 0..n {
        s.extend_from_slice(format!("\"k{i}\":{i},").as_bytes());
    }
    let mut dup = s.clone();
    s.extend_from_slice(b"\"end\":0}}");
    dup.extend_from_slice(b"\"k0\":0}}");
    let limits = Limits::default();
    let t = std::time::Instant::now();
    assert!(classify(&s, &limits).is_ok());
    assert!(matches!(
        classify(&dup, &limits).unwrap_err(),
        ClassifyError::DuplicateKey { .. }
    ));
    // Quadratic would be ~2e10 comparisons; this is well under a second
    // even unoptimised.
    assert!(t.elapsed().as_secs() < 20, "{:?}", t.elapsed());
}

#[test]
fn max_bytes_is_inclusive() {
    let msg = br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
    let exact = Limits {
        max_bytes: msg.len(),
        ..Limits::default()
    };
    assert!(classify(msg, &exact).is_ok());
    let short = Limits {
        max_bytes: msg.len() - 1,
        ..Limits::default()
    };
    assert_eq!(
        classify(msg, &short).unwrap_err(),
        ClassifyError::TooLarge {
            max_bytes: msg.len() - 1
        }
    );
}

/// A seeded mini-fuzzer: mutate accepted vectors with JSON-ish edits; every
/// input we accept must be accepted by serde_json and read the same way.
#[test]
fn mutations_accepted_only_if_serde_agrees() {
    const ALPHABET: &[&[u8]] = &[
        b"{",
        b"}",
        b"[",
        b"]",
        b",",
        b":",
        b"\"",
        b"\\",
        b" ",
        b"0",
        b"1",
        b"-",
        b".",
        b"e",
        b"null",
        b"true",
        b"\"id\":",
        b"\"method\":",
        b"\"params\":",
        b"\"name\":",
        b"\"_meta\":",
        b"\"progressToken\":",
        b"\"tools/call\"",
        b"\\u0000",
        b"\\ud800",
        b"\\udc00",
        b"\\u0061",
        b"\\/",
        b"\xff",
        b"\xc3\xa9",
        b"\xef\xbb\xbf",
        b"\"result\":",
        b"\"error\":{}",
        b"\"2.0\"",
    ];
    let seeds: Vec<Vec<u8>> = vectors()
        .into_iter()
        .filter(|v| v.spec.get("expect").is_some())
        .map(|v| v.input)
        .collect();
    // serde_json stops at depth 127; stay inside it so only real
    // differentials fail.
    let limits = Limits {
        max_depth: 127,
        ..Limits::default()
    };
    let mut rng = common::Rng::new(0x5eed_1e55);
    let mut accepted = 0;
    for round in 0..40_000 {
        let mut buf = seeds[rng.below(seeds.len())].clone();
        for _ in 0..1 + rng.below(2) {
            let at = rng.below(buf.len() + 1);
            match rng.below(6) {
                0 if at < buf.len() => {
                    buf.remove(at);
                }
                1 if at < buf.len() => buf[at] = rng.next_u64() as u8,
                2 if !buf.is_empty() => {
                    // Duplicate a slice (makes duplicate keys and nesting).
                    let a = rng.below(buf.len());
                    let b = (a + 1 + rng.below(24)).min(buf.len());
                    let piece = buf[a..b].to_vec();
                    buf.splice(at..at, piece);
                }
                3 => buf.truncate(at),
                _ => {
                    let tok = ALPHABET[rng.below(ALPHABET.len())];
                    buf.splice(at..at, tok.iter().copied());
                }
            }
        }
        if let Ok(c) = classify(&buf, &limits) {
            accepted += 1;
            if let Err(e) = agrees_with_serde(&buf, &c) {
                panic!(
                    "round {round}: {e}\ninput: {:?}\nours: {c:?}",
                    String::from_utf8_lossy(&buf)
                );
            }
        }
    }
    assert!(
        accepted > 1000,
        "mutator too destructive: {accepted} accepted"
    );
}

#[test]
fn a_request_refused_for_an_mcp_rule_still_gives_its_id() {
    use sluice_core::jsonrpc::refused_request_id;
    let l = Limits::default();
    let nameless = br#"{"jsonrpc":"2.0","id":17,"method":"tools/call","params":{}}"#;
    assert_eq!(
        classify(nameless, &l).err(),
        Some(ClassifyError::MissingName)
    );
    assert_eq!(
        refused_request_id(nameless, &l).as_deref(),
        Some(&b"17"[..])
    );
    // Parse errors and invalid requests keep the null id JSON-RPC asks for.
    let dup = br#"{"jsonrpc":"2.0","id":17,"id":18,"method":"ping"}"#;
    assert_eq!(refused_request_id(dup, &l), None);
    let bad_version = br#"{"jsonrpc":"1.0","id":17,"method":"ping"}"#;
    assert_eq!(refused_request_id(bad_version, &l), None);
}

#[test]
fn each_message_carries_its_exact_text() {
    let body = " [ {\"jsonrpc\":\"2.0\",\"id\":1.0,\"method\":\"a\"} ,\n{\"jsonrpc\":\"2.0\",\"method\":\"b\",\"params\":{\"x\":\"\\u00e9\"}} ] ";
    let Ok(Classified::Batch(ms)) = classify(body.as_bytes(), &Limits::default()) else {
        panic!("a batch");
    };
    let texts: Vec<&str> = ms.iter().map(|m| m.text).collect();
    assert_eq!(
        texts,
        [
            r#"{"jsonrpc":"2.0","id":1.0,"method":"a"}"#,
            r#"{"jsonrpc":"2.0","method":"b","params":{"x":"\u00e9"}}"#
        ]
    );
    let single = "\t{\"jsonrpc\":\"2.0\",\"id\":\"é\",\"result\":{}}\r\n";
    let Ok(Classified::Single(m)) = classify(single.as_bytes(), &Limits::default()) else {
        panic!("one message");
    };
    assert_eq!(m.text, single.trim());
}
