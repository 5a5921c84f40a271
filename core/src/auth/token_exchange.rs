//! RFC 8693 token exchange for a route's upstream credentials, the rules
//! without the HTTP: the request that trades the caller's validated access
//! token for one meant for the upstream, and how the token endpoint's
//! answer is read.
//!
//! | the answer | what it means | [`ExchangeError::outage`] |
//! |---|---|---|
//! | 200, a JSON object with a token68 `access_token`, `token_type` Bearer | the upstream's token, for `expires_in` seconds | — |
//! | 200 that is not that | the server misbehaved | 502 |
//! | 400, 401, 403 (an OAuth error such as `invalid_grant`, `invalid_target`) | the server refused this exchange | 502 |
//! | any other status | the server is not able to answer now | 503 |
//!
//! Unreachable or too slow is the driver's to see: 503 too.

use std::fmt;

use serde_json::Value;

use super::credentials::is_token68;
use super::gate::Outage;
use super::introspection::form;
use super::json::parse_object;

/// RFC 8693 §2.1 `grant_type`.
pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// RFC 8693 §3: an OAuth 2.0 access token.
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

/// What the token for the upstream is asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Target {
    /// `resource` (RFC 8707): the upstream's URL.
    pub resource: Option<String>,
    /// `audience`: the upstream's name at the authorization server.
    pub audience: Option<String>,
    /// `scope`, space-separated.
    pub scope: Option<String>,
}

/// The form body of an exchange of `subject_token` (RFC 8693 §2.1).
pub fn request_body(subject_token: &str, target: &Target) -> String {
    let mut pairs = vec![
        ("grant_type", GRANT_TYPE),
        ("subject_token", subject_token),
        ("subject_token_type", ACCESS_TOKEN_TYPE),
        ("requested_token_type", ACCESS_TOKEN_TYPE),
    ];
    for (name, value) in [
        ("resource", &target.resource),
        ("audience", &target.audience),
        ("scope", &target.scope),
    ] {
        if let Some(v) = value {
            pairs.push((name, v));
        }
    }
    form(&pairs)
}

/// The token the upstream gets.
#[derive(Clone, PartialEq, Eq)]
pub struct Issued {
    /// The access token (a token68, so it can go in a header as it is).
    pub access_token: String,
    /// Seconds it is valid for, when the server says.
    pub expires_in: Option<u64>,
}

impl fmt::Debug for Issued {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Issued")
            .field("access_token", &"<redacted>")
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

/// Why no token came of an exchange. The reason is for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExchangeError {
    /// The token endpoint refused (400, 401, 403), with its OAuth `error`
    /// when it gave one.
    Refused(u16, Option<String>),
    /// It answered another status than 200 and those.
    Status(u16),
    /// Its 200 answer is not usable: what is wrong.
    Malformed(&'static str),
}

impl ExchangeError {
    /// What the client is told: 502 when the server answered and would
    /// not give a token, 503 when it could not answer.
    pub fn outage(&self) -> Outage {
        match self {
            ExchangeError::Status(_) => Outage::TokenExchangeUnavailable,
            ExchangeError::Refused(..) | ExchangeError::Malformed(_) => {
                Outage::TokenExchangeRefused
            }
        }
    }
}

impl fmt::Display for ExchangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExchangeError::Refused(s, Some(e)) => write!(f, "refused with {s} {e:?}"),
            ExchangeError::Refused(s, None) => write!(f, "refused with {s}"),
            ExchangeError::Status(s) => write!(f, "answered {s}"),
            ExchangeError::Malformed(why) => write!(f, "a 200 answer {why}"),
        }
    }
}

impl std::error::Error for ExchangeError {}

/// Reads the token endpoint's answer: its status and body.
pub fn parse_answer(status: u16, body: &[u8]) -> Result<Issued, ExchangeError> {
    match status {
        200 => {}
        400 | 401 | 403 => {
            // The OAuth error code, if the body has one that is printable.
            let error = parse_object(body)
                .and_then(|m| m.get("error")?.as_str().map(str::to_string))
                .filter(|e| e.len() <= 64 && e.bytes().all(|b| b.is_ascii_graphic()));
            return Err(ExchangeError::Refused(status, error));
        }
        s => return Err(ExchangeError::Status(s)),
    }
    let answer = parse_object(body).ok_or(ExchangeError::Malformed("is not one JSON object"))?;
    let access_token = match answer.get("access_token") {
        Some(Value::String(t)) if is_token68(t.as_bytes()) => t.clone(),
        Some(Value::String(_)) => {
            return Err(ExchangeError::Malformed(
                "has an access_token that is no token68",
            ));
        }
        _ => return Err(ExchangeError::Malformed("has no access_token")),
    };
    match answer.get("token_type") {
        Some(Value::String(t)) if t.eq_ignore_ascii_case("bearer") => {}
        _ => return Err(ExchangeError::Malformed("has no token_type Bearer")),
    }
    if let Some(t) = answer.get("issued_token_type")
        && t.as_str() != Some(ACCESS_TOKEN_TYPE)
    {
        return Err(ExchangeError::Malformed(
            "issued another type than an access token",
        ));
    }
    let expires_in = match answer.get("expires_in") {
        None => None,
        Some(Value::Number(n)) => match n.as_u64() {
            Some(s) => Some(s),
            None => {
                return Err(ExchangeError::Malformed(
                    "has an expires_in that is no count",
                ));
            }
        },
        Some(_) => {
            return Err(ExchangeError::Malformed(
                "has an expires_in that is no number",
            ));
        }
    };
    Ok(Issued {
        access_token,
        expires_in,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests() {
        let target = Target {
            resource: Some("https://up.example/mcp".into()),
            audience: None,
            scope: Some("read write".into()),
        };
        assert_eq!(
            request_body("tok.en", &target),
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange\
             &subject_token=tok.en\
             &subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Aaccess_token\
             &requested_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Aaccess_token\
             &resource=https%3A%2F%2Fup.example%2Fmcp&scope=read+write"
        );
        let audience = Target {
            audience: Some("upstream".into()),
            ..Target::default()
        };
        assert!(request_body("t", &audience).ends_with("access_token&audience=upstream"));
    }

    #[test]
    fn answers() {
        let ok = parse_answer(
            200,
            br#"{"access_token":"up-tok_1=","token_type":"Bearer","expires_in":300,
                "issued_token_type":"urn:ietf:params:oauth:token-type:access_token"}"#,
        )
        .unwrap();
        assert_eq!(ok.access_token, "up-tok_1=");
        assert_eq!(ok.expires_in, Some(300));
        assert!(!format!("{ok:?}").contains("up-tok"));
        let lower = parse_answer(200, br#"{"access_token":"t","token_type":"bearer"}"#);
        assert_eq!(lower.unwrap().expires_in, None);

        for (body, why) in [
            (&br#"{"token_type":"Bearer"}"#[..], "has no access_token"),
            (
                br#"{"access_token":"a\r\nX-Evil: 1","token_type":"Bearer"}"#,
                "has an access_token that is no token68",
            ),
            (
                br#"{"access_token":"a b","token_type":"Bearer"}"#,
                "has an access_token that is no token68",
            ),
            (br#"{"access_token":"t"}"#, "has no token_type Bearer"),
            (
                br#"{"access_token":"t","token_type":"N_A"}"#,
                "has no token_type Bearer",
            ),
            (
                br#"{"access_token":"t","token_type":"Bearer","issued_token_type":"urn:ietf:params:oauth:token-type:id_token"}"#,
                "issued another type than an access token",
            ),
            (
                br#"{"access_token":"t","token_type":"Bearer","expires_in":-1}"#,
                "has an expires_in that is no count",
            ),
            (
                br#"{"access_token":"t","token_type":"Bearer","expires_in":"300"}"#,
                "has an expires_in that is no number",
            ),
            (
                br#"{"access_token":"t","access_token":"u","token_type":"Bearer"}"#,
                "is not one JSON object",
            ),
            (b"<html>", "is not one JSON object"),
        ] {
            let e = parse_answer(200, body).unwrap_err();
            assert_eq!(e, ExchangeError::Malformed(why));
            assert_eq!(e.outage(), Outage::TokenExchangeRefused);
        }
    }

    #[test]
    fn refusals_and_outages() {
        let e = parse_answer(400, br#"{"error":"invalid_target"}"#).unwrap_err();
        assert_eq!(
            e,
            ExchangeError::Refused(400, Some("invalid_target".into()))
        );
        assert_eq!(e.outage().status(), 502);
        // An error code that could not be logged as it is, is dropped.
        let e = parse_answer(401, b"{\"error\":\"a\\nb\"}").unwrap_err();
        assert_eq!(e, ExchangeError::Refused(401, None));
        assert_eq!(
            parse_answer(403, b"").unwrap_err(),
            ExchangeError::Refused(403, None)
        );
        for s in [500, 503, 404, 302] {
            let e = parse_answer(s, b"{}").unwrap_err();
            assert_eq!(e, ExchangeError::Status(s));
            assert_eq!(e.outage().status(), 503);
        }
    }
}
