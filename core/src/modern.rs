//! MCP 2026-07-28's per-request era, where sluice itself is the server a
//! client talks to (a stdio route's shared child, federations next).
//!
//! 2026-07-28 has no handshake and no session: every request is one POST
//! that says who is asking in `params._meta` (the protocol version and the
//! client's capabilities), mirrors its routing fields in headers
//! (`MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name`), and is answered by a
//! result that says what it is (`resultType`) and, for lists and reads,
//! how long it may be cached (`ttlMs`, `cacheScope`). A server behind sluice
//! that speaks an earlier era never sees the difference: sluice checks the
//! envelope ([`check`]), forwards the request unchanged to a child it
//! initialized itself, and completes the answer ([`complete_result`]).
//!
//! A request is of this era when its `MCP-Protocol-Version` header names a
//! version that is not one of the handshake era's ([`is_modern`]), an
//! unknown one included, so that the envelope check can say it is not
//! supported (`-32022`): the rule the official SDKs route by.

use std::collections::BTreeMap;

use serde_json::value::RawValue;

use crate::jsonrpc::{self, Message, codes};
use crate::upstream::{AnswerHead, AnswerPart, Request};
use crate::{base64, http1};

/// The versions of the per-request era sluice serves.
pub const MODERN_VERSIONS: &[&str] = &["2026-07-28"];
/// The versions with an `initialize` handshake, oldest first.
pub const HANDSHAKE_VERSIONS: &[&str] = &["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"];

/// `params._meta` keys of the envelope.
pub const PROTOCOL_VERSION_KEY: &str = "io.modelcontextprotocol/protocolVersion";
/// The client's capabilities, per request.
pub const CLIENT_CAPABILITIES_KEY: &str = "io.modelcontextprotocol/clientCapabilities";
/// The log level a request asks for; without it a server sends no log lines.
pub const LOG_LEVEL_KEY: &str = "io.modelcontextprotocol/logLevel";
/// The id of a `subscriptions/listen` stream, on everything it carries.
pub const SUBSCRIPTION_ID_KEY: &str = "io.modelcontextprotocol/subscriptionId";

/// Methods of the handshake era that 2026-07-28 removed: a client of the new
/// era asking for one is told the method does not exist.
pub const REMOVED_METHODS: &[&str] = &[
    "initialize",
    "ping",
    "logging/setLevel",
    "resources/subscribe",
    "resources/unsubscribe",
];

/// Results a client may cache: they carry `ttlMs` and `cacheScope`.
const CACHEABLE: &[&str] = &[
    "tools/list",
    "prompts/list",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "server/discover",
];

/// Whether `req` is of the per-request era (see the [module docs](self)).
pub fn is_modern(req: &Request) -> bool {
    req.header("mcp-protocol-version")
        .is_some_and(|v| !HANDSHAKE_VERSIONS.iter().any(|h| h.as_bytes() == v))
}

/// What a request's envelope says, once checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The protocol version it speaks.
    pub version: String,
    /// It asked for log lines (`io.modelcontextprotocol/logLevel`).
    pub wants_logs: bool,
    /// The client capabilities it declared (an object, else empty).
    pub capabilities: serde_json::Map<String, serde_json::Value>,
}

/// Why a request of this era is refused before it reaches a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The JSON-RPC error code.
    pub code: i64,
    /// What is wrong, for the client.
    pub message: String,
    /// The error's `data`, as JSON text.
    pub data: Option<Vec<u8>>,
}

impl Rejection {
    fn new(code: i64, message: impl Into<String>) -> Self {
        Rejection {
            code,
            message: message.into(),
            data: None,
        }
    }

    /// The whole answer: the error, with the request's id, as JSON with the
    /// status the era gives its code.
    pub fn answer(&self, id: Option<&[u8]>) -> AnswerPart {
        let msg = jsonrpc::error_message(id, self.code, &self.message, self.data.as_deref());
        AnswerPart::json(AnswerHead::status(status_of(self.code)), msg)
    }
}

/// The HTTP status 2026-07-28 answers a JSON-RPC error with: 400 for a
/// request the server cannot read or will not take, 404 for a method it
/// does not have, 200 for the rest (an error of the call itself).
pub fn status_of(code: i64) -> u16 {
    match code {
        codes::PARSE_ERROR
        | codes::INVALID_REQUEST
        | codes::INVALID_PARAMS
        | codes::HEADER_MISMATCH
        | codes::MISSING_CLIENT_CAPABILITY
        | codes::UNSUPPORTED_PROTOCOL_VERSION => 400,
        codes::METHOD_NOT_FOUND => 404,
        _ => 200,
    }
}

/// Checks the envelope of `message` (a request, read from `req`'s body), in
/// the order the era's servers do: a routing header given twice; the
/// envelope's two required keys; the headers against the body (version,
/// method, name); the version against [`MODERN_VERSIONS`].
pub fn check(req: &Request, message: &Message<'_>) -> Result<Envelope, Rejection> {
    for name in ["mcp-protocol-version", "mcp-method", "mcp-name"] {
        if req.headers.iter().filter(|h| h.is(name)).count() > 1 {
            return Err(Rejection::new(
                codes::HEADER_MISMATCH,
                format!("{name} header appears more than once"),
            ));
        }
    }
    let body = req.body.as_ref();
    let meta = message
        .params
        .clone()
        .and_then(|p| serde_json::from_slice::<BTreeMap<String, &RawValue>>(&body[p]).ok())
        .and_then(|params| params.get("_meta").copied())
        .and_then(|m| serde_json::from_str::<BTreeMap<String, &RawValue>>(m.get()).ok());
    let Some(meta) = meta else {
        return Err(Rejection::new(
            codes::INVALID_PARAMS,
            format!(
                "params._meta must be an object carrying {PROTOCOL_VERSION_KEY:?} and {CLIENT_CAPABILITIES_KEY:?}"
            ),
        ));
    };
    let missing: Vec<&str> = [PROTOCOL_VERSION_KEY, CLIENT_CAPABILITIES_KEY]
        .into_iter()
        .filter(|k| !meta.contains_key(*k))
        .collect();
    if !missing.is_empty() {
        return Err(Rejection::new(
            codes::INVALID_PARAMS,
            format!(
                "params._meta lacks the envelope key(s) {}",
                missing.join(", ")
            ),
        ));
    }
    let version = serde_json::from_str::<String>(meta[PROTOCOL_VERSION_KEY].get()).ok();
    let header = |name: &str| {
        http1::find_header(&req.headers, name).map(|h| String::from_utf8_lossy(&h.value))
    };
    if version.is_none() || header("mcp-protocol-version").as_deref() != version.as_deref() {
        return Err(Rejection::new(
            codes::HEADER_MISMATCH,
            "MCP-Protocol-Version header does not match the request's protocol version",
        ));
    }
    if header("mcp-method").as_deref() != message.method.as_deref() {
        return Err(Rejection::new(
            codes::HEADER_MISMATCH,
            "Mcp-Method header does not match the request's method",
        ));
    }
    if let Some(name) = &message.name {
        let sent = header("mcp-name").and_then(|v| decode_header_value(&v));
        if sent.as_deref() != Some(name.as_ref()) {
            return Err(Rejection::new(
                codes::HEADER_MISMATCH,
                "Mcp-Name header does not match the request's name",
            ));
        }
    }
    let version = version.unwrap_or_default();
    if !MODERN_VERSIONS.contains(&version.as_str()) {
        let mut data = b"{\"supported\":".to_vec();
        data.extend_from_slice(
            serde_json::to_string(MODERN_VERSIONS)
                .unwrap_or_default()
                .as_bytes(),
        );
        data.extend_from_slice(b",\"requested\":");
        jsonrpc::write_json_string(&mut data, &version);
        data.push(b'}');
        return Err(Rejection {
            code: codes::UNSUPPORTED_PROTOCOL_VERSION,
            message: format!("protocol version {version:?} is not supported"),
            data: Some(data),
        });
    }
    let capabilities =
        serde_json::from_str(meta[CLIENT_CAPABILITIES_KEY].get()).unwrap_or_default();
    Ok(Envelope {
        version,
        wants_logs: meta.contains_key(LOG_LEVEL_KEY),
        capabilities,
    })
}

/// The `_meta` keys of the envelope, which a server of the handshake era
/// must not see (a server that knows both eras refuses a request that
/// carries them on a handshake connection).
const ENVELOPE_KEYS: &[&str] = &[
    PROTOCOL_VERSION_KEY,
    CLIENT_CAPABILITIES_KEY,
    "io.modelcontextprotocol/clientInfo",
    LOG_LEVEL_KEY,
];

/// `text` (one request, `message`) as a request of the handshake era: its
/// `params._meta` without the envelope's keys. Only the `_meta` object is
/// rewritten (its other members keep their text); `None` when there is
/// nothing to take out.
pub fn strip_envelope(text: &[u8], message: &Message<'_>) -> Option<Vec<u8>> {
    let params = &text[message.params.clone()?];
    let fields = serde_json::from_slice::<BTreeMap<String, &RawValue>>(params).ok()?;
    let meta = fields.get("_meta")?;
    let mut kept = serde_json::from_str::<BTreeMap<String, &RawValue>>(meta.get()).ok()?;
    let before = kept.len();
    kept.retain(|k, _| !ENVELOPE_KEYS.contains(&k.as_str()));
    if kept.len() == before {
        return None;
    }
    let span = span_in(text, meta.get().as_bytes())?;
    let mut out = text[..span.start].to_vec();
    out.extend_from_slice(serde_json::to_string(&kept).ok()?.as_bytes());
    out.extend_from_slice(&text[span.end..]);
    Some(out)
}

/// Where `part`, a slice of `whole`, lies in it.
fn span_in(whole: &[u8], part: &[u8]) -> Option<std::ops::Range<usize>> {
    let start = (part.as_ptr() as usize).checked_sub(whole.as_ptr() as usize)?;
    let end = start + part.len();
    (end <= whole.len()).then_some(start..end)
}

/// A result of the handshake era made one of this era: `resultType`, and
/// for what a client may cache (`method` names it) `ttlMs` 0 and
/// `cacheScope` `"private"` (the server made no promise, so sluice makes
/// none). Fields the result has are kept; nothing else in it changes, not a
/// byte. `text` is one response; an error, or anything that is not an
/// object result, comes back as it was.
pub fn complete_result(text: &[u8], message: &Message<'_>, method: &str) -> Vec<u8> {
    let Some(span) = message.result.clone() else {
        return text.to_vec();
    };
    let result = &text[span.clone()];
    let Ok(fields) = serde_json::from_slice::<BTreeMap<String, &RawValue>>(result) else {
        return text.to_vec();
    };
    let mut added = Vec::new();
    let mut add = |key: &str, value: &str| {
        if !fields.contains_key(key) {
            added.extend_from_slice(format!("\"{key}\":{value},").as_bytes());
        }
    };
    add("resultType", "\"complete\"");
    if CACHEABLE.contains(&method) {
        add("ttlMs", "0");
        add("cacheScope", "\"private\"");
    }
    if added.is_empty() {
        return text.to_vec();
    }
    if fields.is_empty() {
        added.pop();
    }
    // The result is an object: its first byte is `{`.
    let at = span.start + 1;
    let mut out = Vec::with_capacity(text.len() + added.len());
    out.extend_from_slice(&text[..at]);
    out.extend_from_slice(&added);
    out.extend_from_slice(&text[at..]);
    out
}

/// The `server/discover` result of a server whose `initialize` said
/// `init` (its result object): its capabilities, instructions and identity,
/// the versions a client may speak through sluice (`handshake`, those of
/// the handshake era sluice serves, and [`MODERN_VERSIONS`]).
pub fn discover_result(
    init: &serde_json::Map<String, serde_json::Value>,
    handshake: &[&str],
) -> Vec<u8> {
    use serde_json::Value;
    let mut result = serde_json::Map::new();
    let versions: Vec<Value> = handshake
        .iter()
        .chain(MODERN_VERSIONS)
        .map(|v| Value::String((*v).to_owned()))
        .collect();
    result.insert("supportedVersions".into(), Value::Array(versions));
    result.insert(
        "capabilities".into(),
        init.get("capabilities")
            .cloned()
            .unwrap_or_else(|| Value::Object(Default::default())),
    );
    if let Some(instructions) = init.get("instructions") {
        result.insert("instructions".into(), instructions.clone());
    }
    if let Some(info) = init.get("serverInfo") {
        let mut meta = serde_json::Map::new();
        meta.insert("io.modelcontextprotocol/serverInfo".into(), info.clone());
        result.insert("_meta".into(), Value::Object(meta));
    }
    result.insert("resultType".into(), Value::String("complete".into()));
    result.insert("ttlMs".into(), Value::from(0));
    result.insert("cacheScope".into(), Value::String("private".into()));
    Value::Object(result).to_string().into_bytes()
}

/// A server's notification stamped for a `subscriptions/listen` stream:
/// `params._meta` gets the subscription's id (the listen request's id,
/// raw JSON text). The rest of the message keeps its bytes when it has no
/// `_meta` yet; one that has is rebuilt around it.
pub fn stamp_subscription(text: &[u8], message: &Message<'_>, subscription: &[u8]) -> Vec<u8> {
    let mut stamp = format!("\"{SUBSCRIPTION_ID_KEY}\":").into_bytes();
    stamp.extend_from_slice(subscription);
    let Some(span) = message.params.clone() else {
        // `{"jsonrpc":…,"method":…}`: the params go before the last `}`.
        let end = text.iter().rposition(|&b| b == b'}').unwrap_or(text.len());
        let mut out = text[..end].to_vec();
        out.extend_from_slice(b",\"params\":{\"_meta\":{");
        out.extend_from_slice(&stamp);
        out.extend_from_slice(b"}}");
        out.extend_from_slice(&text[end..]);
        return out;
    };
    let params = &text[span.clone()];
    let Ok(mut fields) = serde_json::from_slice::<BTreeMap<String, &RawValue>>(params) else {
        return text.to_vec();
    };
    let mut out = text[..span.start].to_vec();
    match fields.remove("_meta") {
        None => {
            out.push(b'{');
            out.extend_from_slice(b"\"_meta\":{");
            out.extend_from_slice(&stamp);
            out.push(b'}');
            if !fields.is_empty() {
                out.push(b',');
            }
            out.extend_from_slice(&params[1..]);
        }
        Some(meta) => {
            let mut meta: BTreeMap<String, &RawValue> =
                serde_json::from_str(meta.get()).unwrap_or_default();
            let id = String::from_utf8_lossy(subscription).into_owned();
            let id = RawValue::from_string(id).ok();
            if let Some(id) = &id {
                meta.insert(SUBSCRIPTION_ID_KEY.into(), id);
            }
            let meta = serde_json::to_string(&meta).unwrap_or_default();
            let meta = RawValue::from_string(meta).ok();
            if let Some(meta) = &meta {
                fields.insert("_meta".into(), meta);
            }
            out.extend_from_slice(
                serde_json::to_string(&fields)
                    .unwrap_or_default()
                    .as_bytes(),
            );
        }
    }
    out.extend_from_slice(&text[span.end..]);
    out
}

/// A header value as 2026-07-28 writes it: plain when it is visible ASCII
/// without surrounding whitespace, else `=?base64?…?=`.
pub fn encode_header_value(text: &str) -> String {
    let plain = text
        .bytes()
        .all(|b| b == b'\t' || (0x20..=0x7e).contains(&b))
        && text.trim() == text
        && !(text.starts_with("=?base64?") && text.ends_with("?="));
    if plain {
        text.to_owned()
    } else {
        format!("=?base64?{}?=", base64::encode(text.as_bytes()))
    }
}

/// The value a header carries: its text, or what its `=?base64?…?=` wraps.
/// A wrapper that is not canonical base64 of UTF-8 is `None`: it can match
/// nothing in a body.
pub fn decode_header_value(text: &str) -> Option<String> {
    let Some(payload) = text
        .strip_prefix("=?base64?")
        .and_then(|t| t.strip_suffix("?="))
    else {
        return Some(text.to_owned());
    };
    let bytes = base64::decode(payload)?;
    // Only the encoder's own form: two texts must not mean one value.
    if base64::encode(&bytes) != payload {
        return None;
    }
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http1::Header;
    use crate::jsonrpc::Classified;

    const ENVELOPE: &str = r#""_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}"#;

    fn request(headers: &[(&str, &str)], body: &str) -> Request {
        Request {
            method: "POST".into(),
            target: "/mcp".into(),
            headers: headers.iter().map(|(n, v)| Header::new(*n, *v)).collect(),
            body: body.to_owned().into(),
        }
    }

    fn checked(headers: &[(&str, &str)], body: &str) -> Result<Envelope, Rejection> {
        let req = request(headers, body);
        let Ok(Classified::Single(m)) = jsonrpc::classify(&req.body, &Default::default()) else {
            panic!("not one message: {body}");
        };
        check(&req, &m)
    }

    fn call(name: &str) -> String {
        format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"{name}",{ENVELOPE}}}}}"#
        )
    }

    const HEADERS: [(&str, &str); 3] = [
        ("MCP-Protocol-Version", "2026-07-28"),
        ("Mcp-Method", "tools/call"),
        ("Mcp-Name", "echo"),
    ];

    #[test]
    fn the_era_is_read_from_the_version_header() {
        let with = |v: &str| is_modern(&request(&[("MCP-Protocol-Version", v)], "{}"));
        assert!(with("2026-07-28"));
        assert!(
            with("2099-01-01"),
            "unknown versions are checked, not passed"
        );
        assert!(!with("2025-11-25"));
        assert!(!with("2024-11-05"));
        assert!(!is_modern(&request(&[], "{}")));
    }

    #[test]
    fn a_whole_envelope_passes() {
        let e = checked(&HEADERS, &call("echo")).unwrap();
        assert_eq!(e.version, "2026-07-28");
        assert!(!e.wants_logs);
    }

    #[test]
    fn each_rung_refuses_with_its_code() {
        let no_meta = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}"#;
        assert_eq!(
            checked(&HEADERS, no_meta).unwrap_err().code,
            codes::INVALID_PARAMS
        );
        let half = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#;
        let e = checked(&HEADERS, half).unwrap_err();
        assert!(e.message.contains("clientCapabilities"), "{}", e.message);
        let mismatch = |headers: &[(&str, &str)]| checked(headers, &call("echo")).unwrap_err().code;
        let mut h = HEADERS.to_vec();
        h[2].1 = "other";
        assert_eq!(mismatch(&h), codes::HEADER_MISMATCH);
        h[2].1 = "=?base64?ZWNobw==?=";
        assert!(checked(&h, &call("echo")).is_ok(), "a wrapped name is read");
        h[1].1 = "tools/list";
        assert_eq!(mismatch(&h), codes::HEADER_MISMATCH);
        assert_eq!(
            mismatch(&HEADERS[1..]),
            codes::HEADER_MISMATCH,
            "no version header"
        );
        let twice = [HEADERS[0], HEADERS[1], HEADERS[2], ("mcp-name", "echo")];
        assert_eq!(mismatch(&twice), codes::HEADER_MISMATCH);
        let future = call("echo").replace("2026-07-28", "2099-01-01");
        let h = [
            ("MCP-Protocol-Version", "2099-01-01"),
            HEADERS[1],
            HEADERS[2],
        ];
        let e = checked(&h, &future).unwrap_err();
        assert_eq!(e.code, codes::UNSUPPORTED_PROTOCOL_VERSION);
        assert_eq!(
            e.data.as_deref(),
            Some(&br#"{"supported":["2026-07-28"],"requested":"2099-01-01"}"#[..])
        );
        assert_eq!(status_of(e.code), 400);
        assert_eq!(status_of(codes::METHOD_NOT_FOUND), 404);
        assert_eq!(status_of(codes::INTERNAL_ERROR), 200);
    }

    #[test]
    fn the_envelope_is_taken_out_for_a_handshake_server_and_nothing_else() {
        let text = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":{"n":1.50},"_meta":{"progressToken":7,"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{},"io.modelcontextprotocol/logLevel":"info"}}}"#;
        let Ok(Classified::Single(m)) = jsonrpc::classify(text.as_bytes(), &Default::default())
        else {
            panic!("not one message");
        };
        let out = String::from_utf8(strip_envelope(text.as_bytes(), &m).unwrap()).unwrap();
        assert_eq!(
            out,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":{"n":1.50},"_meta":{"progressToken":7}}}"#
        );
        let Ok(Classified::Single(m)) = jsonrpc::classify(out.as_bytes(), &Default::default())
        else {
            panic!("not one message");
        };
        assert_eq!(
            strip_envelope(out.as_bytes(), &m),
            None,
            "nothing left to take"
        );
    }

    fn completed(text: &str, method: &str) -> String {
        let Ok(Classified::Single(m)) = jsonrpc::classify(text.as_bytes(), &Default::default())
        else {
            panic!("not one message");
        };
        String::from_utf8(complete_result(text.as_bytes(), &m, method)).unwrap()
    }

    #[test]
    fn results_are_completed_without_touching_a_byte_of_them() {
        assert_eq!(
            completed(
                r#"{"jsonrpc":"2.0","id":1,"result":{"content":[],"n":1.0e3}}"#,
                "tools/call"
            ),
            r#"{"jsonrpc":"2.0","id":1,"result":{"resultType":"complete","content":[],"n":1.0e3}}"#
        );
        assert_eq!(
            completed(r#"{"jsonrpc":"2.0","id":1,"result": {} }"#, "tools/list"),
            r#"{"jsonrpc":"2.0","id":1,"result": {"resultType":"complete","ttlMs":0,"cacheScope":"private"} }"#
        );
        let already = r#"{"jsonrpc":"2.0","id":1,"result":{"resultType":"incomplete"}}"#;
        assert_eq!(completed(already, "tools/call"), already);
        let error = r#"{"jsonrpc":"2.0","id":1,"error":{"code":-1,"message":"x"}}"#;
        assert_eq!(completed(error, "tools/call"), error);
        let out = completed(
            r#"{"jsonrpc":"2.0","id":"a","result":{"tools":[]}}"#,
            "tools/list",
        );
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["result"]["ttlMs"], 0);
    }

    fn stamped(text: &str) -> serde_json::Value {
        let Ok(Classified::Single(m)) = jsonrpc::classify(text.as_bytes(), &Default::default())
        else {
            panic!("not one message");
        };
        let out = stamp_subscription(text.as_bytes(), &m, br#""sub-1""#);
        serde_json::from_slice(&out).unwrap()
    }

    #[test]
    fn notifications_carry_their_subscription() {
        let key = SUBSCRIPTION_ID_KEY;
        for text in [
            r#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}"#,
            r#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed","params":{}}"#,
            r#"{"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri":"a://b"}}"#,
            r#"{"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"_meta":{"x":1},"uri":"a://b"}}"#,
        ] {
            let v = stamped(text);
            assert_eq!(v["params"]["_meta"][key], "sub-1", "{text}");
            assert_eq!(
                v["method"],
                serde_json::from_str::<serde_json::Value>(text).unwrap()["method"]
            );
        }
        let v =
            stamped(r#"{"jsonrpc":"2.0","method":"n","params":{"_meta":{"x":1},"uri":"a://b"}}"#);
        assert_eq!(v["params"]["_meta"]["x"], 1);
        assert_eq!(v["params"]["uri"], "a://b");
    }

    #[test]
    fn discover_tells_what_initialize_told() {
        let init: serde_json::Value = serde_json::from_str(
            r#"{"protocolVersion":"2025-06-18","capabilities":{"tools":{"listChanged":true}},"serverInfo":{"name":"s","version":"1"},"instructions":"hi"}"#,
        )
        .unwrap();
        let out = discover_result(init.as_object().unwrap(), &["2025-06-18"]);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            v["supportedVersions"],
            serde_json::json!(["2025-06-18", "2026-07-28"])
        );
        assert_eq!(v["capabilities"]["tools"]["listChanged"], true);
        assert_eq!(v["instructions"], "hi");
        assert_eq!(
            v["_meta"]["io.modelcontextprotocol/serverInfo"]["name"],
            "s"
        );
        assert_eq!(v["resultType"], "complete");
        assert!(v.get("protocolVersion").is_none());
    }

    #[test]
    fn header_values_round_trip_and_refuse_odd_base64() {
        for s in ["", "a", "ab", "abc", "abcd", "héllo wörld", " padded "] {
            assert_eq!(
                decode_header_value(&encode_header_value(s)).as_deref(),
                Some(s)
            );
        }
        assert_eq!(encode_header_value("us-west1"), "us-west1");
        assert_eq!(encode_header_value(" x"), "=?base64?IHg=?=");
        assert_eq!(encode_header_value("日本"), "=?base64?5pel5pys?=");
        assert_eq!(
            decode_header_value("=?base64?5pel5pys?=").as_deref(),
            Some("日本")
        );
        // `aGVsbG9=` decodes to "hello" too, with stray bits: not the encoder's.
        assert_eq!(decode_header_value("=?base64?aGVsbG9=?="), None);
        assert_eq!(decode_header_value("=?base64?!!?="), None);
    }
}
