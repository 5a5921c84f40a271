//! Reading the client's credentials from a request head, the way a backend
//! would, and refusing every form two readers could disagree about.
//!
//! The rules (RFC 6750 §2.1 and §3.1, RFC 9110 §11.6.2, the MCP
//! authorization spec's "Token Requirements"):
//!
//! | the request | result |
//! |---|---|
//! | no `Authorization` | [`Credentials::None`] (401 with a bare challenge) |
//! | `Authorization` more than once | [`CredentialError::Repeated`] (400 `invalid_request`): one reader takes the first, another the last |
//! | a scheme other than `Bearer` (any case) | [`Credentials::None`]: not ours to judge, and not forwarded as proof |
//! | `Bearer` not followed by exactly one space and a token68 | [`CredentialError::Malformed`] (400): a comma-joined pair, a second space, a tab, an empty token |
//! | `access_token` in the query (its name percent-decoded, any case) | [`CredentialError::InQuery`] (400): the spec forbids it, and a backend might read it |

use std::fmt;

use crate::http1::Header;

/// What a request presents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials<'h> {
    /// No bearer token (no `Authorization`, or another scheme).
    None,
    /// `Authorization: Bearer <token68>`: the token as sent.
    Bearer(&'h str),
}

/// Why a request's credentials are refused before any token is judged.
/// Each is a 400 `invalid_request` (RFC 6750 §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialError {
    /// More than one `Authorization` field.
    Repeated,
    /// `Bearer` with something other than one space and a token68.
    Malformed,
    /// A token in the query string (`access_token=`).
    InQuery,
}

impl CredentialError {
    /// The HTTP status: always 400.
    pub fn status(self) -> u16 {
        400
    }
}

impl fmt::Display for CredentialError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CredentialError::Repeated => "more than one Authorization header",
            CredentialError::Malformed => "an Authorization header that is not Bearer <token68>",
            CredentialError::InQuery => "an access token in the query string",
        })
    }
}

impl std::error::Error for CredentialError {}

/// The credentials of a request with these header fields and this target
/// (origin form: path and query).
pub fn read_credentials<'h>(
    headers: &'h [Header],
    target: &str,
) -> Result<Credentials<'h>, CredentialError> {
    if query_has_token(target) {
        return Err(CredentialError::InQuery);
    }
    let mut fields = headers.iter().filter(|h| h.is("authorization"));
    let Some(field) = fields.next() else {
        return Ok(Credentials::None);
    };
    if fields.next().is_some() {
        return Err(CredentialError::Repeated);
    }
    parse_authorization(&field.value)
}

/// One `Authorization` field value.
pub fn parse_authorization(value: &[u8]) -> Result<Credentials<'_>, CredentialError> {
    let scheme_end = value
        .iter()
        .position(|&b| !is_tchar(b))
        .unwrap_or(value.len());
    let (scheme, rest) = value.split_at(scheme_end);
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        // Another scheme (Basic, DPoP…): no bearer token. A field that does
        // not even start with a scheme is malformed.
        return match scheme.is_empty() {
            true => Err(CredentialError::Malformed),
            false => Ok(Credentials::None),
        };
    }
    let token = rest.strip_prefix(b" ").ok_or(CredentialError::Malformed)?;
    if !is_token68(token) {
        return Err(CredentialError::Malformed);
    }
    // token68 is ASCII.
    std::str::from_utf8(token)
        .map(Credentials::Bearer)
        .map_err(|_| CredentialError::Malformed)
}

/// RFC 9110 §11.2: `token68 = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" /
/// "+" / "/" ) *"="`.
pub fn is_token68(token: &[u8]) -> bool {
    let body_len = token.len() - token.iter().rev().take_while(|&&b| b == b'=').count();
    body_len > 0
        && token[..body_len].iter().all(|&b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        })
}

/// RFC 9110 §5.6.2 tchar.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
}

/// Whether the target's query names `access_token`, however its name is
/// spelled: percent-encoded (`access%5Ftoken`), `+` for a space aside, in
/// any case, separated by `&` or `;`.
fn query_has_token(target: &str) -> bool {
    let Some((_, query)) = target.split_once('?') else {
        return false;
    };
    let query = query.split('#').next().unwrap_or("");
    query.split(['&', ';']).any(|pair| {
        let name = pair.split('=').next().unwrap_or("");
        percent_decoded(name.as_bytes()).eq_ignore_ascii_case(b"access_token")
    })
}

/// `%XX` decoded; a `%` without two hex digits kept as it is.
fn percent_decoded(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            s[i],
            s.get(i + 1).copied().and_then(hex),
            s.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(hi), Some(lo)) => {
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(name: &str, value: &str) -> Header {
        Header::new(name, value.as_bytes())
    }

    #[test]
    fn bearer_in_any_case() {
        for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
            let headers = [h("Authorization", &format!("{scheme} abc.def-_~+/=="))];
            assert_eq!(
                read_credentials(&headers, "/mcp"),
                Ok(Credentials::Bearer("abc.def-_~+/=="))
            );
        }
    }

    #[test]
    fn no_header_or_another_scheme_is_no_token() {
        assert_eq!(read_credentials(&[], "/mcp"), Ok(Credentials::None));
        let basic = [h("authorization", "Basic dXNlcjpwYXNz")];
        assert_eq!(read_credentials(&basic, "/mcp"), Ok(Credentials::None));
        // "Bearerx" is another scheme, not Bearer.
        let other = [h("Authorization", "Bearerx abc")];
        assert_eq!(read_credentials(&other, "/mcp"), Ok(Credentials::None));
    }

    #[test]
    fn two_fields_in_any_case_are_refused() {
        let two = [
            h("Authorization", "Bearer a"),
            h("authorization", "Bearer b"),
        ];
        assert_eq!(
            read_credentials(&two, "/mcp"),
            Err(CredentialError::Repeated)
        );
        // Even when the second is of another scheme: a backend may take it.
        let mixed = [
            h("Authorization", "Bearer a"),
            h("AUTHORIZATION", "Basic x"),
        ];
        assert_eq!(
            read_credentials(&mixed, "/mcp"),
            Err(CredentialError::Repeated)
        );
        assert_eq!(CredentialError::Repeated.status(), 400);
    }

    #[test]
    fn malformed_bearer_values() {
        for value in [
            "Bearer",
            "Bearer ",
            "Bearer  abc",
            "Bearer\tabc",
            "Bearer abc def",
            "Bearer a, Bearer b",
            "Bearer abc,def",
            "Bearer ===",
            "Bearer a=b",
            "Bearer \"abc\"",
            "Bearer abc\u{e9}",
            " Bearer abc",
            "=abc",
        ] {
            let headers = [h("Authorization", value)];
            assert_eq!(
                read_credentials(&headers, "/mcp"),
                Err(CredentialError::Malformed),
                "{value:?}"
            );
        }
    }

    #[test]
    fn token68_syntax() {
        assert!(is_token68(b"a"));
        assert!(is_token68(b"aZ09-._~+/"));
        assert!(is_token68(b"ab=="));
        assert!(!is_token68(b""));
        assert!(!is_token68(b"=="));
        assert!(!is_token68(b"a=b"));
        assert!(!is_token68(b"a b"));
        assert!(!is_token68(b"a,b"));
    }

    #[test]
    fn token_in_the_query_is_refused_however_spelled() {
        for target in [
            "/mcp?access_token=x",
            "/mcp?a=1&access_token=x",
            "/mcp?a=1;access_token",
            "/mcp?ACCESS_TOKEN=x",
            "/mcp?access%5Ftoken=x",
            "/mcp?%61ccess_token=x",
            "/mcp?access_token",
        ] {
            let headers = [h("Authorization", "Bearer ok")];
            assert_eq!(
                read_credentials(&headers, target),
                Err(CredentialError::InQuery),
                "{target}"
            );
        }
        for target in [
            "/mcp",
            "/mcp?token=x",
            "/mcp?x=access_token",
            "/mcp?access_tokens=1",
        ] {
            assert_eq!(
                read_credentials(&[], target),
                Ok(Credentials::None),
                "{target}"
            );
        }
    }

    #[test]
    fn percent_decoding_keeps_broken_escapes() {
        assert_eq!(percent_decoded(b"a%5F%zz%4"), b"a_%zz%4");
    }
}
