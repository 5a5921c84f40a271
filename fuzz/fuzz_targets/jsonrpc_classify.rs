//! classify() on arbitrary bytes: never panic; every error carries one of the
//! three codes, and a request refused for a missing name still gives its id; whatever we accept, serde_json accepts too and reads the same
//! kind, method, id, name and progress token; each message's `text` is
//! that message alone (serde_json reads the same value, and it classifies
//! again as one message of the same kind and id); a result built with the
//! accepted id classifies back to that id.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use sluice_core::jsonrpc::{
    Classified, ClassifyError, Kind, Limits, classify, codes, refused_request_id, result_message,
};

fuzz_target!(|data: &[u8]| {
    // serde_json stops at depth 127; stay inside it so a report is a real
    // differential, not a limit mismatch.
    let limits = Limits {
        max_depth: 127,
        ..Limits::default()
    };
    let classified = match classify(data, &limits) {
        Ok(c) => c,
        Err(e) => {
            assert!(
                [
                    codes::PARSE_ERROR,
                    codes::INVALID_REQUEST,
                    codes::INVALID_PARAMS
                ]
                .contains(&e.code()),
                "{e:?}"
            );
            assert!(!e.to_string().is_empty());
            // Only a request refused for an MCP rule has an id to echo, and
            // then it is the id serde_json reads there.
            let id = refused_request_id(data, &limits);
            if e != ClassifyError::MissingName {
                return;
            }
            let value: Value = serde_json::from_slice(data).expect("MissingName on invalid JSON");
            if value.is_array() {
                // A batch is refused whole: no one id to echo.
                assert_eq!(id, None);
                return;
            }
            let raw = id.expect("a request refused for its name has an id");
            let id: Value = serde_json::from_slice(&raw).expect("the id is JSON");
            assert_eq!(value.get("id"), Some(&id));
            return;
        }
    };
    let value: Value = serde_json::from_slice(data).expect("we accept, serde_json rejects");
    let (messages, values) = match (&classified, &value) {
        (Classified::Single(m), Value::Object(_)) => (vec![m], vec![&value]),
        (Classified::Batch(ms), Value::Array(vs)) => (ms.iter().collect(), vs.iter().collect()),
        _ => panic!("single/batch disagree"),
    };
    assert_eq!(messages.len(), values.len());
    let parse = |raw: &[u8]| serde_json::from_slice::<Value>(raw).expect("raw slice is not JSON");
    for (m, v) in messages.into_iter().zip(values) {
        assert_eq!(v["jsonrpc"], "2.0");
        // Its own text is that message, alone, read the same way again.
        assert_eq!(&parse(m.text.as_bytes()), v);
        match classify(m.text.as_bytes(), &limits) {
            Ok(Classified::Single(again)) => assert_eq!(
                (again.kind, again.id, again.method.as_deref()),
                (m.kind, m.id, m.method.as_deref())
            ),
            other => panic!("a message's own text classifies as {other:?}"),
        }
        let has = |k: &str| v.get(k).is_some();
        match m.kind {
            Kind::Request => assert!(has("method") && has("id")),
            Kind::Notification => assert!(has("method") && !has("id")),
            Kind::Response => assert!(has("result") && !has("error") && !has("method")),
            Kind::Error => assert!(has("error") && !has("result") && !has("method")),
        }
        if let Some(method) = &m.method {
            assert_eq!(v["method"].as_str(), Some(method.as_ref()));
        }
        match m.id {
            Some(raw) => {
                assert_eq!(Some(&parse(raw)), v.get("id"));
                let echoed = result_message(raw, b"null");
                match classify(&echoed, &limits) {
                    Ok(Classified::Single(r)) if m.kind == Kind::Request => {
                        assert_eq!(r.id, Some(raw))
                    }
                    Ok(_) => {}
                    // A null id (error responses) cannot carry a result.
                    Err(e) => assert!(raw == b"null", "{e:?}"),
                }
            }
            None => assert!(!has("id")),
        }
        let params = &v["params"];
        if let Some(name) = &m.name {
            let key = if m.method.as_deref() == Some("resources/read") {
                "uri"
            } else {
                "name"
            };
            assert_eq!(params[key].as_str(), Some(name.as_ref()));
        }
        if let Some(token) = m.progress_token {
            assert_eq!(parse(token), params["_meta"]["progressToken"]);
        }
        for (span, key) in [
            (&m.params, "params"),
            (&m.result, "result"),
            (&m.error, "error"),
        ] {
            if let Some(r) = span {
                assert_eq!(&parse(&data[r.clone()]), &v[key]);
            }
        }
    }
});
