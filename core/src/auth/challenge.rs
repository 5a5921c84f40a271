//! The `WWW-Authenticate: Bearer` challenge (RFC 6750 §3, RFC 9728 §5.1)
//! and the answers sluice gives a request it refuses for its credentials.
//!
//! | why | status | challenge |
//! |---|---|---|
//! | no token | 401 | `Bearer resource_metadata="…"` |
//! | a malformed request ([`CredentialError`]) | 400 | `…, error="invalid_request"` |
//! | a token that fails validation, whatever the reason | 401 | `…, error="invalid_token"` |
//! | a valid token without the scopes the route requires | 403 | `…, error="insufficient_scope", scope="a b"` |
//!
//! The body is a JSON-RPC error with a fixed message per row: why a token
//! failed goes to the log, never to the client.

use std::fmt::Write as _;

use super::CredentialError;

/// The `error` attribute of a challenge (RFC 6750 §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengeError {
    /// 400: the request is malformed.
    InvalidRequest,
    /// 401: the token is expired, revoked, malformed or otherwise invalid.
    InvalidToken,
    /// 403: the token lacks the scopes the resource requires.
    InsufficientScope,
}

impl ChallengeError {
    /// Its name in the challenge.
    pub fn as_str(self) -> &'static str {
        match self {
            ChallengeError::InvalidRequest => "invalid_request",
            ChallengeError::InvalidToken => "invalid_token",
            ChallengeError::InsufficientScope => "insufficient_scope",
        }
    }

    /// The HTTP status that goes with it.
    pub fn status(self) -> u16 {
        match self {
            ChallengeError::InvalidRequest => 400,
            ChallengeError::InvalidToken => 401,
            ChallengeError::InsufficientScope => 403,
        }
    }
}

/// A `WWW-Authenticate` value for the `Bearer` scheme.
///
/// ```
/// use sluice_core::auth::{ChallengeError, challenge};
/// let value = challenge(
///     Some("https://mcp.example.com/.well-known/oauth-protected-resource/mcp"),
///     Some(ChallengeError::InsufficientScope),
///     &["files:read".to_string(), "files:write".to_string()],
/// );
/// assert_eq!(
///     value,
///     "Bearer resource_metadata=\"https://mcp.example.com/.well-known/oauth-protected-resource/mcp\", \
///      error=\"insufficient_scope\", scope=\"files:read files:write\""
/// );
/// ```
pub fn challenge(
    resource_metadata: Option<&str>,
    error: Option<ChallengeError>,
    scope: &[String],
) -> String {
    let mut params: Vec<(&str, String)> = Vec::new();
    if let Some(url) = resource_metadata {
        params.push(("resource_metadata", url.to_string()));
    }
    if let Some(error) = error {
        params.push(("error", error.as_str().to_string()));
    }
    if error == Some(ChallengeError::InsufficientScope) && !scope.is_empty() {
        params.push(("scope", scope.join(" ")));
    }
    let mut out = String::from("Bearer");
    for (i, (name, value)) in params.iter().enumerate() {
        out.push_str(if i == 0 { " " } else { ", " });
        let _ = write!(out, "{name}={}", quoted(value));
    }
    out
}

/// An RFC 9110 §5.6.4 quoted-string: `"` and `\` escaped; a control
/// character (which no quoted-string may carry) becomes a space, so a
/// value can never end the header line or start another field.
pub fn quoted(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Why sluice answers a request on an authenticated route itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    /// No bearer token: 401.
    Missing,
    /// The credentials were malformed: 400.
    BadRequest(CredentialError),
    /// The token failed validation: 401. The reason is for the log.
    InvalidToken,
    /// The token lacks scopes: 403 naming every scope the route requires.
    InsufficientScope(Vec<String>),
}

/// What goes back to the client for a [`Denial`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DenialAnswer {
    /// The HTTP status.
    pub status: u16,
    /// The `WWW-Authenticate` value.
    pub challenge: String,
    /// The JSON-RPC error message: fixed per kind, no detail.
    pub message: &'static str,
}

impl Denial {
    /// The status, challenge and message for this denial on a route whose
    /// metadata document is at `resource_metadata`.
    pub fn answer(&self, resource_metadata: Option<&str>) -> DenialAnswer {
        let (error, scope, message) = match self {
            Denial::Missing => (None, &[][..], "authorization required"),
            Denial::BadRequest(_) => (
                Some(ChallengeError::InvalidRequest),
                &[][..],
                "malformed authorization",
            ),
            Denial::InvalidToken => (
                Some(ChallengeError::InvalidToken),
                &[][..],
                "invalid access token",
            ),
            Denial::InsufficientScope(scopes) => (
                Some(ChallengeError::InsufficientScope),
                &scopes[..],
                "insufficient scope",
            ),
        };
        DenialAnswer {
            status: error.map_or(401, ChallengeError::status),
            challenge: challenge(resource_metadata, error, scope),
            message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const META: &str = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp";

    #[test]
    fn each_denial() {
        let missing = Denial::Missing.answer(Some(META));
        assert_eq!(missing.status, 401);
        assert_eq!(
            missing.challenge,
            format!("Bearer resource_metadata=\"{META}\"")
        );

        let bad = Denial::BadRequest(CredentialError::Repeated).answer(Some(META));
        assert_eq!(bad.status, 400);
        assert_eq!(
            bad.challenge,
            format!("Bearer resource_metadata=\"{META}\", error=\"invalid_request\"")
        );

        let invalid = Denial::InvalidToken.answer(Some(META));
        assert_eq!(invalid.status, 401);
        assert_eq!(
            invalid.challenge,
            format!("Bearer resource_metadata=\"{META}\", error=\"invalid_token\"")
        );
        assert_eq!(invalid.message, "invalid access token");

        let scope = Denial::InsufficientScope(vec!["a".into(), "b:c".into()]).answer(Some(META));
        assert_eq!(scope.status, 403);
        assert_eq!(
            scope.challenge,
            format!(
                "Bearer resource_metadata=\"{META}\", error=\"insufficient_scope\", scope=\"a b:c\""
            )
        );
    }

    #[test]
    fn without_metadata() {
        assert_eq!(challenge(None, None, &[]), "Bearer");
        assert_eq!(
            challenge(None, Some(ChallengeError::InvalidToken), &[]),
            "Bearer error=\"invalid_token\""
        );
        // A scope list goes only with insufficient_scope.
        assert_eq!(
            challenge(None, Some(ChallengeError::InvalidToken), &["x".into()]),
            "Bearer error=\"invalid_token\""
        );
    }

    #[test]
    fn quoting() {
        assert_eq!(quoted(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(quoted("a\r\nSet-Cookie: x"), "\"a  Set-Cookie: x\"");
        assert_eq!(quoted(""), "\"\"");
    }
}
