//! RFC 7662 token introspection, the rules without the HTTP: the request
//! a resource server sends, the client authentication it carries, and how
//! the authorization server's answer is read.
//!
//! An answer is read as strictly as a JWT's claims (one JSON object, no key
//! twice). `active: false` is the only thing an inactive answer says (RFC
//! 7662 §2.2); an active one is a claims set that goes through the same
//! [`check_claims`](super::jwt::check_claims) as a JWT's — `iss`, `aud`
//! (the route's resource), `exp`, `nbf` and the scopes — so an opaque
//! token is held to the rules a JWT is.

use std::fmt;

use serde_json::{Map, Value};

use super::json::parse_object;
use crate::base64;

/// What the authorization server said of a token.
#[derive(Debug, Clone, PartialEq)]
pub enum Introspected {
    /// `active: true`: its claims (the whole answer, `active` included).
    Active(Map<String, Value>),
    /// `active: false`: expired, revoked, unknown, or not for this client.
    Inactive,
}

/// Why an introspection answer cannot be read: the authorization server's
/// fault, so the token cannot be judged (503), never the client's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerError {
    /// Not one JSON object (or a key given twice).
    NotAnObject,
    /// No `active`, or not a boolean.
    NoActive,
}

impl fmt::Display for AnswerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AnswerError::NotAnObject => "the introspection answer is not one JSON object",
            AnswerError::NoActive => "the introspection answer has no boolean \"active\"",
        })
    }
}

impl std::error::Error for AnswerError {}

/// Reads the body of an introspection endpoint's 200 answer.
pub fn parse_answer(body: &[u8]) -> Result<Introspected, AnswerError> {
    let claims = parse_object(body).ok_or(AnswerError::NotAnObject)?;
    match claims.get("active") {
        Some(Value::Bool(true)) => Ok(Introspected::Active(claims)),
        Some(Value::Bool(false)) => Ok(Introspected::Inactive),
        _ => Err(AnswerError::NoActive),
    }
}

/// The form body of an introspection request for `token` (RFC 7662 §2.1),
/// hinting that it is an access token.
pub fn request_body(token: &str) -> String {
    form(&[("token", token), ("token_type_hint", "access_token")])
}

/// `application/x-www-form-urlencoded` pairs (the WHATWG serializer:
/// alphanumerics and `*-._` as they are, space as `+`, the rest
/// percent-encoded).
pub fn form(pairs: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (i, (name, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        form_encode_into(name, &mut out);
        out.push('=');
        form_encode_into(value, &mut out);
    }
    out
}

fn form_encode_into(text: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in text.as_bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => {
                out.push('%');
                out.push(HEX[(b >> 4) as usize] as char);
                out.push(HEX[(b & 15) as usize] as char);
            }
        }
    }
}

/// The `Authorization` value of `client_secret_basic` (RFC 6749 §2.3.1):
/// the id and the secret are each form-encoded before they are joined and
/// base64-encoded, so a `:` in the id cannot move the split.
pub fn client_secret_basic(client_id: &str, client_secret: &str) -> String {
    let mut pair = String::new();
    form_encode_into(client_id, &mut pair);
    pair.push(':');
    form_encode_into(client_secret, &mut pair);
    format!("Basic {}", base64::encode(pair.as_bytes()))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn answers() {
        let active = parse_answer(br#"{"active":true,"sub":"alice","aud":"x"}"#).unwrap();
        let Introspected::Active(claims) = active else {
            panic!("active");
        };
        assert_eq!(claims["sub"], json!("alice"));
        // Inactive says nothing more, whatever else it carries.
        assert_eq!(
            parse_answer(br#"{"active":false,"sub":"x"}"#),
            Ok(Introspected::Inactive)
        );
        for (body, e) in [
            (&br#"{"sub":"alice"}"#[..], AnswerError::NoActive),
            (br#"{"active":"true"}"#, AnswerError::NoActive),
            (br#"{"active":1}"#, AnswerError::NoActive),
            (br#"{"active":null}"#, AnswerError::NoActive),
            (
                br#"{"active":true,"active":false}"#,
                AnswerError::NotAnObject,
            ),
            (br#"[{"active":true}]"#, AnswerError::NotAnObject),
            (b"", AnswerError::NotAnObject),
            (b"<html>", AnswerError::NotAnObject),
            (br#"{"active":true} {}"#, AnswerError::NotAnObject),
        ] {
            assert_eq!(
                parse_answer(body),
                Err(e),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn an_active_answer_goes_through_the_jwt_claim_rules() {
        use crate::auth::jwt::{ClaimRules, check_claims};
        use crate::auth::{Denial, TokenError};
        let rules = ClaimRules {
            issuer: "https://as".into(),
            audience: "https://mcp/mcp".into(),
            leeway: 0,
            required_scopes: vec!["read".into()],
        };
        let now = 1_800_000_000u64;
        let answer = |extra: Value| {
            let mut v = json!({
                "active": true, "iss": "https://as", "aud": "https://mcp/mcp",
                "exp": now + 60, "sub": "alice", "client_id": "c", "scope": "read",
            });
            for (k, x) in extra.as_object().unwrap() {
                match x {
                    Value::Null => v.as_object_mut().unwrap().remove(k),
                    x => v.as_object_mut().unwrap().insert(k.clone(), x.clone()),
                };
            }
            match parse_answer(v.to_string().as_bytes()).unwrap() {
                Introspected::Active(c) => check_claims(c, &rules, now),
                Introspected::Inactive => unreachable!(),
            }
        };
        let id = answer(json!({})).unwrap();
        assert_eq!(
            (id.subject.as_str(), id.client_id.as_deref()),
            ("alice", Some("c"))
        );
        assert_eq!(
            answer(json!({"aud": "https://other"})),
            Err(TokenError::WrongAudience)
        );
        // The audience must be named: an answer without one is not ours.
        assert_eq!(answer(json!({"aud": null})), Err(TokenError::WrongAudience));
        assert_eq!(
            answer(json!({"iss": "https://evil"})),
            Err(TokenError::WrongIssuer)
        );
        assert_eq!(answer(json!({"exp": now - 1})), Err(TokenError::Expired));
        let e = answer(json!({"scope": "write"})).unwrap_err();
        assert_eq!(e.denial(), Denial::InsufficientScope(vec!["read".into()]));
    }

    #[test]
    fn forms() {
        assert_eq!(
            request_body("a b+c/d=é"),
            "token=a+b%2Bc%2Fd%3D%C3%A9&token_type_hint=access_token"
        );
        assert_eq!(form(&[("a", "*-._~")]), "a=*-._%7E");
        assert_eq!(form(&[]), "");
    }

    #[test]
    fn basic_client_authentication() {
        // RFC 6749 §2.3.1: encoded, then joined: a ':' in the id stays in it.
        assert_eq!(
            client_secret_basic("sluice", "s3cret"),
            format!("Basic {}", base64::encode(b"sluice:s3cret"))
        );
        assert_eq!(
            client_secret_basic("a:b", "p w%"),
            format!("Basic {}", base64::encode(b"a%3Ab:p+w%25"))
        );
    }
}
