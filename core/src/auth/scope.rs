//! Scopes: what a token grants, and whether it covers what a route needs.

use serde_json::{Map, Value};

use super::TokenError;

/// The scopes a claims set grants: `scope`, a space-separated string (RFC
/// 8693 §4.2, RFC 9068), and `scp`, an array of strings or a
/// space-separated string (as some authorization servers issue), joined
/// in order without repeats.
pub fn scopes_of(claims: &Map<String, Value>) -> Result<Vec<String>, TokenError> {
    let mut scopes: Vec<String> = Vec::new();
    let mut add = |s: &str| {
        for scope in s.split(' ').filter(|s| !s.is_empty()) {
            if !scopes.iter().any(|have| have == scope) {
                scopes.push(scope.to_string());
            }
        }
    };
    match claims.get("scope") {
        None => {}
        Some(Value::String(s)) => add(s),
        Some(_) => return Err(TokenError::BadClaim("scope")),
    }
    match claims.get("scp") {
        None => {}
        Some(Value::String(s)) => add(s),
        Some(Value::Array(items)) => {
            for item in items {
                match item {
                    Value::String(s) if !s.contains(' ') => add(s),
                    _ => return Err(TokenError::BadClaim("scp")),
                }
            }
        }
        Some(_) => return Err(TokenError::BadClaim("scp")),
    }
    Ok(scopes)
}

/// The scopes of `required` that `granted` lacks, in `required`'s order.
pub fn missing_scopes(granted: &[String], required: &[String]) -> Vec<String> {
    required
        .iter()
        .filter(|r| !granted.contains(r))
        .cloned()
        .collect()
}

/// RFC 6749 §3.3 `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`: printable
/// ASCII without space, `"` or `\` (so it needs no escape in a challenge).
pub fn is_scope_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| matches!(b, 0x21 | 0x23..=0x5b | 0x5d..=0x7e))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn scope_and_scp() {
        let s = |v| scopes_of(&map(v)).unwrap();
        assert_eq!(s(json!({"scope": "a  b a"})), ["a", "b"]);
        assert_eq!(s(json!({"scp": ["a", "c"]})), ["a", "c"]);
        assert_eq!(s(json!({"scp": "x y"})), ["x", "y"]);
        assert_eq!(
            s(json!({"scope": "a b", "scp": ["b", "c"]})),
            ["a", "b", "c"]
        );
        assert!(s(json!({})).is_empty());
        for bad in [
            json!({"scope": 1}),
            json!({"scp": [1]}),
            json!({"scp": ["a b"]}),
            json!({"scp": {}}),
        ] {
            assert!(scopes_of(&map(bad)).is_err());
        }
    }

    #[test]
    fn missing() {
        let have = vec!["a".to_string(), "b".to_string()];
        assert!(missing_scopes(&have, &["a".into()]).is_empty());
        assert_eq!(
            missing_scopes(&have, &["c".into(), "a".into(), "d".into()]),
            ["c", "d"]
        );
        assert!(missing_scopes(&[], &[]).is_empty());
    }

    #[test]
    fn scope_tokens() {
        assert!(is_scope_token("files:read"));
        assert!(is_scope_token("https://x/y!#$"));
        for bad in ["", "a b", "a\"b", "a\\b", "é", "a\tb"] {
            assert!(!is_scope_token(bad), "{bad:?}");
        }
    }
}
