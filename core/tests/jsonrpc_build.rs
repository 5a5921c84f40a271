//! Builders echo the id byte for byte and produce JSON that both serde_json
//! and our own classifier read back as intended.

use std::collections::HashMap;

use serde_json::Value;
use sluice_core::jsonrpc::{
    Classified, Kind, Limits, RawId, classify, codes, error_message, result_message, same_id,
    write_json_string,
};

const IDS: &[&str] = &[
    "1",
    "\"1\"",
    "1.0",
    "18446744073709551616",
    "-0",
    "1e5",
    "\"a\\\"b\"",
    "\"\\u0031\"",
    "\"\"",
    "\"☃\"",
];

fn single(bytes: &[u8]) -> sluice_core::jsonrpc::Message<'_> {
    match classify(bytes, &Limits::default()) {
        Ok(Classified::Single(m)) => m,
        other => panic!("{other:?} for {}", String::from_utf8_lossy(bytes)),
    }
}

#[test]
fn result_message_echoes_id() {
    for id in IDS {
        let out = result_message(id.as_bytes(), br#"{"content":[],"isError":false}"#);
        let needle = format!(",\"id\":{id},");
        assert!(
            String::from_utf8(out.clone()).unwrap().contains(&needle),
            "{id}"
        );
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["jsonrpc"], "2.0");
        assert_eq!(v["id"], serde_json::from_str::<Value>(id).unwrap());
        assert_eq!(v["result"]["isError"], false);
        let m = single(&out);
        assert_eq!(m.kind, Kind::Response);
        assert_eq!(m.id, Some(id.as_bytes()));
        assert_eq!(
            &out[m.result.unwrap()],
            br#"{"content":[],"isError":false}"#
        );
    }
}

#[test]
fn error_message_echoes_id_and_escapes_message() {
    let nasty = "quote \" backslash \\ newline \n tab \t nul \u{0} bell \u{7} del \u{7f} snow ☃ emoji 😀 \u{2028}";
    for id in IDS {
        let out = error_message(Some(id.as_bytes()), codes::INVALID_PARAMS, nasty, None);
        assert!(
            String::from_utf8(out.clone())
                .unwrap()
                .contains(&format!("\"id\":{id},"))
        );
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["id"], serde_json::from_str::<Value>(id).unwrap());
        assert_eq!(v["error"]["code"], -32602);
        assert_eq!(v["error"]["message"], nasty);
        assert!(v["error"].get("data").is_none());
        let m = single(&out);
        assert_eq!(m.kind, Kind::Error);
        assert_eq!(m.id, Some(id.as_bytes()));
    }
}

#[test]
fn error_message_unknown_id_and_data() {
    let out = error_message(
        None,
        codes::PARSE_ERROR,
        "Parse error",
        Some(br#"{"offset":12}"#),
    );
    assert_eq!(
        out,
        br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error","data":{"offset":12}}}"#
    );
    let m = single(&out);
    assert_eq!(m.kind, Kind::Error);
    assert_eq!(m.id, Some(&b"null"[..]));

    for code in [
        i64::MIN,
        i64::MAX,
        0,
        -1,
        codes::HEADER_MISMATCH,
        codes::INTERNAL_ERROR,
    ] {
        let out = error_message(None, code, "", None);
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["error"]["code"].as_i64(), Some(code));
    }
}

#[test]
fn json_string_escaping_round_trips_every_control_char() {
    let all: String = (0u32..0x80)
        .chain([0xe9, 0x2028, 0x1f600])
        .filter_map(char::from_u32)
        .collect();
    let mut out = Vec::new();
    write_json_string(&mut out, &all);
    let back: String = serde_json::from_slice(&out).unwrap();
    assert_eq!(back, all);
    assert!(out[1..out.len() - 1].iter().all(|&b| b >= 0x20));
}

#[test]
fn raw_id_is_exact_text() {
    let req = single(br#"{"jsonrpc":"2.0","id":1.0,"method":"ping"}"#);
    let stored = req.raw_id().unwrap();
    assert_eq!(stored.as_bytes(), b"1.0");
    assert!(stored.matches(b"1.0"));
    assert!(!stored.matches(b"1"));
    assert!(!same_id(b"1", b"\"1\""));
    assert!(!same_id(b"\"1\"", b"\"\\u0031\""));

    // A map of pending requests, probed with an incoming raw id.
    let mut pending: HashMap<RawId, &str> = HashMap::new();
    pending.insert(stored.clone(), "ping");
    pending.insert(RawId::new(b"\"1\""), "string one");
    let resp = single(br#"{"jsonrpc":"2.0","id":1.0,"result":{}}"#);
    assert_eq!(pending.get(resp.id.unwrap()), Some(&"ping"));
    assert_eq!(pending.get(&b"1"[..]), None);
    assert_eq!(pending.get(&b"\"1\""[..]), Some(&"string one"));
}
