//! The token and header parsing sluice does itself (`core::auth`): never
//! panic; a bearer token read from a request is a token68 that is, byte for
//! byte, the one `Authorization` field's value after `Bearer `; a parsed
//! JWT is the input split at its dots; no challenge can end a header line;
//! a spelling of a protected path routed to an open route is shadowed; an
//! introspection answer read as active says `active: true`; a token
//! endpoint's answer read as a token carries a token68 (it goes in a header
//! as it is), and a refusal or outage is the one its status says.
//!
//! Input: the first line is the request target, each further line one
//! `Authorization` field; the whole input is also read as a token, a
//! resource identifier, a hash, an introspection answer and a token
//! endpoint's answer (with a status chosen by its length).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_core::auth::introspection::{self, Introspected};
use sluice_core::auth::jwt::{DEFAULT_ALGS, check_claims, looks_like_jwt, parse_jwt};
use sluice_core::auth::token_exchange::{self, ExchangeError};
use sluice_core::auth::{
    ChallengeError, ClaimRules, CredentialError, Credentials, Gate, Resource, api_key, challenge,
    credentials, read_credentials, scope,
};
use sluice_core::http1::Header;
use sluice_core::route::{Route, Router};

fuzz_target!(|data: &[u8]| {
    let mut lines = data.split(|&b| b == b'\n');
    let target = String::from_utf8_lossy(lines.next().unwrap_or_default()).into_owned();
    let headers: Vec<Header> = lines
        .enumerate()
        .map(|(i, v)| {
            Header::new(
                if i % 2 == 0 {
                    "Authorization"
                } else {
                    "authorization"
                },
                v,
            )
        })
        .collect();

    match read_credentials(&headers, &target) {
        Ok(Credentials::Bearer(token)) => {
            assert_eq!(headers.len(), 1);
            assert!(credentials::is_token68(token.as_bytes()));
            let value = &headers[0].value;
            assert!(value[..6].eq_ignore_ascii_case(b"bearer"));
            assert_eq!(&value[7..], token.as_bytes());
        }
        Ok(Credentials::None) => assert!(headers.len() <= 1),
        Err(CredentialError::Repeated) => assert!(headers.len() >= 2),
        Err(CredentialError::InQuery) => assert!(target.contains('?')),
        Err(CredentialError::Malformed) => assert_eq!(headers.len(), 1),
    }

    let text = String::from_utf8_lossy(data);
    if let Ok(jwt) = parse_jwt(&text, &DEFAULT_ALGS) {
        assert!(looks_like_jwt(&text));
        assert_eq!(format!("{}.{}", jwt.signing_input, jwt.signature), text);
        assert!(DEFAULT_ALGS.contains(&jwt.alg));
        let rules = ClaimRules {
            issuer: "https://as.example".into(),
            audience: "https://mcp.example/mcp".into(),
            leeway: 60,
            required_scopes: vec!["read".into()],
        };
        if let Ok(id) = check_claims(jwt.claims, &rules, 1_800_000_000) {
            assert!(id.scopes.iter().any(|s| s == "read"));
        }
    }

    let scopes: Vec<String> = text
        .split(' ')
        .filter(|s| scope::is_scope_token(s))
        .map(str::to_string)
        .collect();
    let value = challenge(
        Some(&text),
        Some(ChallengeError::InsufficientScope),
        &scopes,
    );
    assert!(!value.contains(['\r', '\n', '\0']));

    if let Ok(resource) = Resource::parse(&text) {
        let url = resource.metadata_url();
        assert!(url.starts_with("http://") || url.starts_with("https://"));
        assert!(url.contains("/.well-known/oauth-protected-resource"));
    }
    let _ = api_key::parse_sha256_hex(&text);

    if let Ok(Introspected::Active(claims)) = introspection::parse_answer(data) {
        assert_eq!(claims.get("active"), Some(&serde_json::Value::Bool(true)));
    }
    let status = [200, 400, 401, 403, 500, 503][data.len() % 6];
    match token_exchange::parse_answer(status, data) {
        Ok(issued) => {
            assert_eq!(status, 200);
            assert!(credentials::is_token68(issued.access_token.as_bytes()));
        }
        Err(ExchangeError::Refused(s, error)) => {
            assert!([400, 401, 403].contains(&s));
            assert!(error.is_none_or(|e| e.bytes().all(|b| b.is_ascii_graphic())));
        }
        Err(ExchangeError::Status(s)) => assert!(s >= 500),
        Err(ExchangeError::Malformed(_)) => assert_eq!(status, 200),
    }

    // A path never reaches an open route when it reads as a protected one,
    // and a path routed to the protected route itself is never shadowed.
    let path = target.split('?').next().unwrap_or("");
    let router = router();
    if path.starts_with('/')
        && let Some(resolved) = router.resolve(path)
    {
        let shadowed = router.shadowed_gate(path, resolved.route);
        if resolved.route == 1 {
            assert_eq!(shadowed, None);
        }
        if path.eq_ignore_ascii_case("/mcp") && resolved.route == 0 {
            assert_eq!(shadowed, Some(1), "{path}");
        }
    }
});

/// An open route at `/` and a protected one at `/mcp`.
fn router() -> Router {
    let route = |prefix: &str| Route {
        prefix: prefix.into(),
        upstream_path: prefix.into(),
        upstream_query: None,
        well_known: false,
        upstream_host: "up".into(),
    };
    let mut router = Router::new(vec![route("/"), route("/mcp")]);
    let resource = Resource::parse("http://h/mcp").expect("a resource");
    router.protect(1, Gate::new(&resource, "/mcp", &[], &[], false));
    router
}
