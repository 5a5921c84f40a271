//! Checking a guest's verdict before the proxy acts on it.
//!
//! A hook is untrusted code: whatever it returns is checked here, and anything
//! the proxy could not forward faithfully becomes a [`HookErrorKind`].

use sluice_core::exchange::{self, HookPhase};
use sluice_core::jsonrpc::{self, codes};

use super::error::HookErrorKind;
use super::world::Verdict;

/// Largest integer every JSON reader keeps exact (2^53 − 1).
const MAX_SAFE_INTEGER: i64 = (1 << 53) - 1;

/// The predefined JSON-RPC codes a hook may use.
const PREDEFINED: [i64; 5] = [
    codes::PARSE_ERROR,
    codes::INVALID_REQUEST,
    codes::METHOD_NOT_FOUND,
    codes::INVALID_PARAMS,
    codes::INTERNAL_ERROR,
];

/// A verdict that passed the checks.
#[derive(Debug)]
pub(crate) enum Checked {
    Continue,
    Replace(String),
    Reject {
        code: i64,
        message: String,
        data: Option<String>,
    },
    Respond(String),
}

/// Whether a hook may put `code` in a reject: the reserved range
/// -32768..=-32000 is the protocol's and the proxy's, except the predefined
/// codes; and the code must survive a trip through a JavaScript number.
pub(crate) fn code_allowed(code: i64) -> bool {
    let reserved = (-32768..=-32000).contains(&code);
    (-MAX_SAFE_INTEGER..=MAX_SAFE_INTEGER).contains(&code)
        && (!reserved || PREDEFINED.contains(&code))
}

/// Check `verdict` returned for `current` (the message as the hook saw it).
pub(crate) fn check(
    verdict: Verdict,
    phase: HookPhase,
    current: &str,
    max_bytes: usize,
) -> Result<Checked, HookErrorKind> {
    match verdict {
        Verdict::Continue => Ok(Checked::Continue),
        Verdict::Replace(json) => {
            cap(json.len(), max_bytes)?;
            let json = respelled(json, current, max_bytes);
            check_replacement(&json, phase, current, max_bytes)?;
            Ok(Checked::Replace(json))
        }
        Verdict::Reject(e) => {
            let len = e.message.len() + e.data.as_ref().map_or(0, String::len);
            cap(len, max_bytes)?;
            if !code_allowed(e.code) {
                return Err(invalid(format!("reject code {} is reserved", e.code)));
            }
            if let Some(data) = &e.data {
                serde_json::from_str::<serde::de::IgnoredAny>(data)
                    .map_err(|err| invalid(format!("reject data is not JSON: {err}")))?;
            }
            Ok(Checked::Reject {
                code: e.code,
                message: e.message,
                data: e.data,
            })
        }
        Verdict::Respond(_) if phase == HookPhase::ServerMessage && !is_request(current) => Err(
            invalid("respond answers a server request; this is a notification".to_owned()),
        ),
        Verdict::Respond(result) => {
            cap(result.len(), max_bytes)?;
            serde_json::from_str::<serde::de::IgnoredAny>(&result)
                .map_err(|err| invalid(format!("respond result is not JSON: {err}")))?;
            Ok(Checked::Respond(result))
        }
    }
}

/// Whether `message` (text core classified) is a request: it has an `id`.
fn is_request(message: &str) -> bool {
    matches!(
        jsonrpc::classify(message.as_bytes(), &jsonrpc::Limits::default()),
        Ok(jsonrpc::Classified::Single(m)) if m.kind == jsonrpc::Kind::Request
    )
}

fn cap(len: usize, limit: usize) -> Result<(), HookErrorKind> {
    if len > limit {
        return Err(HookErrorKind::OutputTooLarge { len, limit });
    }
    Ok(())
}

fn invalid(m: String) -> HookErrorKind {
    HookErrorKind::InvalidVerdict(m)
}

/// `json` with its id spelled as in `current` where only the spelling
/// differs (core's `exchange::respell_id`: a hook that parsed the message
/// and wrote it again may have unescaped a string id).
fn respelled(json: String, current: &str, max_bytes: usize) -> String {
    let limits = jsonrpc::Limits {
        max_bytes,
        ..jsonrpc::Limits::default()
    };
    exchange::respell_id(current.as_bytes(), json.as_bytes(), &limits)
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .unwrap_or(json)
}

/// A replacement must pass core's rule (`exchange::check_replacement`: one
/// message core reads, same kind, method and id text), so that the proxy's
/// bookkeeping (id matching, method subscriptions, the Mcp-Method header)
/// stays true and no parser downstream reads it differently.
fn check_replacement(
    json: &str,
    phase: HookPhase,
    current: &str,
    max_bytes: usize,
) -> Result<(), HookErrorKind> {
    let limits = jsonrpc::Limits {
        max_bytes,
        ..jsonrpc::Limits::default()
    };
    exchange::check_replacement(phase, current.as_bytes(), json.as_bytes(), &limits)
        .map_err(|e| invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes() {
        assert!(code_allowed(-32602));
        assert!(code_allowed(1));
        assert!(code_allowed(-31999));
        assert!(code_allowed(-32769));
        assert!(!code_allowed(-32000));
        assert!(!code_allowed(-32010));
        assert!(!code_allowed(-32020));
        assert!(!code_allowed(-32768));
        assert!(!code_allowed(i64::MAX));
        assert!(!code_allowed(-(1 << 53)));
    }

    #[test]
    fn replacement_rules() {
        let req = r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"a"}}"#;
        let ok = r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"b"}}"#;
        let check = |json, phase, current| check_replacement(json, phase, current, 1 << 20);
        assert!(check(ok, HookPhase::Request, req).is_ok());
        for bad in [
            "nope",
            "[]",
            r#"{"id":7,"method":"tools/call","params":{"name":"b"}}"#,
            r#"{"jsonrpc":"2.0","id":"7","method":"tools/call","params":{"name":"b"}}"#,
            r#"{"jsonrpc":"2.0","id":7,"method":"tools/list"}"#,
            r#"{"jsonrpc":"2.0","id":7,"result":{}}"#,
            r#"{"jsonrpc":"2.0","id":7,"id":7,"method":"tools/call","params":{"name":"b"}}"#,
        ] {
            assert!(check(bad, HookPhase::Request, req).is_err(), "{bad}");
        }
        // Only the spelling of a string id changed: the original's goes on.
        let escaped =
            r#"{"jsonrpc":"2.0","id":"\u0037","method":"tools/call","params":{"name":"a"}}"#;
        let unescaped = r#"{"jsonrpc":"2.0","id":"7","method":"tools/call","params":{"name":"b"}}"#;
        let verdict = Verdict::Replace(unescaped.into());
        match super::check(verdict, HookPhase::Request, escaped, 1 << 20) {
            Ok(Checked::Replace(json)) => {
                assert_eq!(json, unescaped.replace(r#""7""#, r#""\u0037""#))
            }
            other => panic!("{other:?}"),
        }
        let resp = r#"{"jsonrpc":"2.0","id":7,"result":{}}"#;
        let ok = r#"{"jsonrpc":"2.0","id":7,"error":{"code":1,"message":"m"}}"#;
        assert!(check(ok, HookPhase::Response, resp).is_ok());
        let both = r#"{"jsonrpc":"2.0","id":7,"result":{},"error":{}}"#;
        assert!(check(both, HookPhase::Response, resp).is_err());
    }
}
