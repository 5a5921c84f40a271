//! A protected route: nothing reaches a hook or the upstream before the
//! driver's verdict, refusals carry the challenge, the token stays home.

use super::*;
use crate::auth::{Denial, Gate, Identity, Outage, Resource, Scheme, Verdict};

const META: &str = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp";

fn protected(forward_token: bool) -> ExchangeConfig {
    let mut c = config();
    let resource = Resource::parse("https://mcp.example.com/mcp").unwrap();
    c.router.protect(
        0,
        Gate::new(
            &resource,
            "/mcp",
            &["https://as.example.com".into()],
            &["tools".into()],
            forward_token,
        ),
    );
    c
}

fn post_with(headers: &str, target: &str) -> Vec<u8> {
    let body = CALL;
    format!(
        "POST {target} HTTP/1.1\r\nHost: localhost:8080\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\n{headers}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn alice() -> Identity {
    Identity {
        scheme: Scheme::Jwt,
        subject: "alice".into(),
        issuer: Some("https://as.example.com".into()),
        client_id: Some("cli".into()),
        scopes: vec!["tools".into()],
        claims: None,
    }
}

/// The client got `status` with this challenge, and nothing else happened.
fn refused(h: &Harness, status: u16, challenge: &str) {
    let (head, body) = decode_response(&h.log.to_client);
    assert!(head.starts_with(&format!("HTTP/1.1 {status} ")), "{head}");
    assert!(
        head.contains(&format!("WWW-Authenticate: {challenge}\r\n")),
        "{head}"
    );
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["jsonrpc"], "2.0");
    assert!(h.log.connects.is_empty() && h.log.to_upstream.is_empty());
    assert!(h.log.hooks.is_empty());
    assert_eq!(h.log.finished, Some(Close::Graceful));
}

#[test]
fn no_token_is_a_401_with_the_metadata_url() {
    let mut h = Harness::new(protected(false));
    h.client(&post(CALL));
    assert!(h.log.auths.is_empty());
    refused(&h, 401, &format!("Bearer resource_metadata=\"{META}\""));
    let body = decode_response(&h.log.to_client).1;
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["error"]["message"], "authorization required");
}

#[test]
fn another_scheme_is_no_token() {
    let mut h = Harness::new(protected(false));
    h.client(&post_with("Authorization: Basic dXNlcjpwYXNz\r\n", "/mcp"));
    refused(&h, 401, &format!("Bearer resource_metadata=\"{META}\""));
}

#[test]
fn malformed_credentials_are_400_invalid_request() {
    let bad = format!("Bearer resource_metadata=\"{META}\", error=\"invalid_request\"");
    for (headers, target) in [
        (
            "Authorization: Bearer a\r\nAuthorization: Bearer b\r\n",
            "/mcp",
        ),
        ("Authorization: Bearer a, Bearer b\r\n", "/mcp"),
        ("Authorization: Bearer  a\r\n", "/mcp"),
        ("Authorization: Bearer ok\r\n", "/mcp?access_token=x"),
        ("", "/mcp?access%5Ftoken=x"),
    ] {
        let mut h = Harness::new(protected(false));
        h.client(&post_with(headers, target));
        assert!(h.log.auths.is_empty(), "{headers}{target}");
        refused(&h, 400, &bad);
    }
}

#[test]
fn a_good_token_goes_through_without_its_authorization_header() {
    let mut h = Harness::new(protected(false));
    h.client(&post_with("Authorization: Bearer tok.en.x\r\n", "/mcp"));
    assert_eq!(
        h.log.auths,
        [AuthCall {
            route: 0,
            token: "tok.en.x".into()
        }]
    );
    assert!(
        h.log.connects.is_empty(),
        "nothing moves before the verdict"
    );
    assert!(h.ex.poll_timeout().is_none() || h.log.to_client.is_empty());
    h.ex.auth_done(Verdict::Allow(alice()), h.now);
    h.drain();
    assert_eq!(h.log.connects, [(0, false)]);
    h.connected(false);
    let up = String::from_utf8(h.log.to_upstream.clone()).unwrap();
    assert!(!up.to_ascii_lowercase().contains("authorization"), "{up}");
    assert!(up.ends_with(CALL));
    assert_eq!(h.ex.identity().unwrap().subject, "alice");
    assert_eq!(h.ex.summary().identity.as_ref().unwrap().scopes, ["tools"]);
}

#[test]
fn forward_token_passes_it_on() {
    let mut h = Harness::new(protected(true));
    h.client(&post_with("Authorization: Bearer tok\r\n", "/mcp"));
    h.ex.auth_done(Verdict::Allow(alice()), h.now);
    h.drain();
    h.connected(false);
    let up = String::from_utf8(h.log.to_upstream.clone()).unwrap();
    assert!(up.contains("Authorization: Bearer tok\r\n"), "{up}");
}

#[test]
fn an_open_route_forwards_authorization_as_before() {
    let mut h = Harness::new(config());
    h.client(&post_with("Authorization: Bearer tok\r\n", "/mcp"));
    assert!(h.log.auths.is_empty());
    h.connected(false);
    let up = String::from_utf8(h.log.to_upstream.clone()).unwrap();
    assert!(up.contains("Authorization: Bearer tok\r\n"), "{up}");
}

#[test]
fn denials() {
    let mut h = Harness::new(protected(false));
    h.client(&post_with("Authorization: Bearer tok\r\n", "/mcp"));
    h.ex.auth_done(Verdict::Deny(Denial::InvalidToken), h.now);
    h.drain();
    refused(
        &h,
        401,
        &format!("Bearer resource_metadata=\"{META}\", error=\"invalid_token\""),
    );
    assert_eq!(h.ex.summary().status, Some(401));
    assert!(h.ex.identity().is_none());

    let mut h = Harness::new(protected(false));
    h.client(&post_with("Authorization: Bearer tok\r\n", "/mcp"));
    let scopes = vec!["tools".to_string(), "admin".to_string()];
    h.ex.auth_done(Verdict::Deny(Denial::InsufficientScope(scopes)), h.now);
    h.drain();
    refused(
        &h,
        403,
        &format!(
            "Bearer resource_metadata=\"{META}\", error=\"insufficient_scope\", scope=\"tools admin\""
        ),
    );
}

#[test]
fn no_keys_is_a_503_with_a_json_rpc_error() {
    let mut h = Harness::new(protected(false));
    h.client(&post_with("Authorization: Bearer tok\r\n", "/mcp"));
    h.ex.auth_done(Verdict::Unavailable(Outage::NoKeys), h.now);
    h.drain();
    let (head, body) = decode_response(&h.log.to_client);
    assert!(head.starts_with("HTTP/1.1 503 "), "{head}");
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["error"]["code"], codes::INTERNAL_ERROR);
    assert_eq!(
        body["error"]["message"],
        "authorization is unavailable: no signing keys"
    );
    assert!(h.log.connects.is_empty());
}

#[test]
fn an_introspection_outage_is_a_503_saying_so() {
    let mut h = Harness::new(protected(false));
    h.client(&post_with("Authorization: Bearer tok\r\n", "/mcp"));
    h.ex.auth_done(Verdict::Unavailable(Outage::Introspection), h.now);
    h.drain();
    let (head, body) = decode_response(&h.log.to_client);
    assert!(head.starts_with("HTTP/1.1 503 "), "{head}");
    assert!(
        !head.to_ascii_lowercase().contains("www-authenticate"),
        "{head}"
    );
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        body["error"]["message"],
        "authorization is unavailable: the token cannot be introspected"
    );
    assert!(h.log.connects.is_empty());
}

#[test]
fn a_verdict_out_of_turn_is_ignored() {
    let mut h = Harness::new(protected(false));
    h.ex.auth_done(Verdict::Allow(alice()), h.now);
    h.drain();
    assert!(h.log.connects.is_empty() && h.log.to_client.is_empty());
}

#[test]
fn the_request_hooks_run_only_after_the_verdict() {
    let mut c = hooked_config(&["tools/call"]);
    let resource = Resource::parse("https://mcp.example.com/mcp").unwrap();
    c.router
        .protect(0, Gate::new(&resource, "/mcp", &[], &[], false));
    let mut h = Harness::new(c);
    h.client(&post_with("Authorization: Bearer tok\r\n", "/mcp"));
    assert!(h.log.hooks.is_empty(), "no hook before the token is judged");
    h.ex.auth_done(Verdict::Allow(alice()), h.now);
    h.drain();
    assert_eq!(h.log.hooks.len(), 1);
}

#[test]
fn the_metadata_document_is_served_by_sluice() {
    let path = "/.well-known/oauth-protected-resource/mcp";
    let mut h = Harness::new(protected(false));
    h.client(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes());
    let (head, body) = decode_response(&h.log.to_client);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.contains("Access-Control-Allow-Origin: *\r\n"));
    let doc: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        doc,
        serde_json::json!({
            "resource": "https://mcp.example.com/mcp",
            "authorization_servers": ["https://as.example.com"],
            "scopes_supported": ["tools"],
            "bearer_methods_supported": ["header"],
        })
    );
    assert!(h.log.connects.is_empty(), "not the upstream's well-known");
    assert_eq!(h.ex.summary().status, Some(200));

    // HEAD: the head alone; OPTIONS: a preflight; POST: 405.
    let mut h = Harness::new(protected(false));
    h.client(format!("HEAD {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes());
    let text = h.client_text();
    assert!(
        text.starts_with("HTTP/1.1 200 OK\r\n") && text.ends_with("\r\n\r\n"),
        "{text}"
    );
    let mut h = Harness::new(protected(false));
    h.client(format!("OPTIONS {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes());
    assert!(h.client_text().starts_with("HTTP/1.1 204 No Content\r\n"));
    let mut h = Harness::new(protected(false));
    h.client(
        format!("POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n").as_bytes(),
    );
    assert!(h.client_text().starts_with("HTTP/1.1 405 "));

    // Other well-known documents still go to the upstream's origin.
    let mut h = Harness::new(protected(false));
    h.client(b"GET /.well-known/oauth-authorization-server HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(h.log.connects, [(0, false)]);
}

#[test]
fn a_preflight_needs_no_token() {
    let mut h = Harness::new(protected(false));
    h.client(b"OPTIONS /mcp HTTP/1.1\r\nHost: localhost\r\nOrigin: http://localhost:3000\r\n\r\n");
    assert!(h.log.auths.is_empty());
    assert_eq!(h.log.connects, [(0, false)]);
}

#[test]
fn no_spelling_of_a_protected_path_reaches_an_open_route() {
    let mut c = protected(false);
    let mut routes = c.router.routes().to_vec();
    routes.push(crate::route::Route {
        prefix: "/".into(),
        upstream_path: "/".into(),
        well_known: false,
        upstream_host: "open:3000".into(),
        upstream_query: None,
    });
    let resource = Resource::parse("https://mcp.example.com/mcp").unwrap();
    c.router = Router::new(routes);
    c.router
        .protect(0, Gate::new(&resource, "/mcp", &[], &[], false));
    for target in ["/MCP", "//mcp", "/%6Dcp", "/mcp;a=b", "/Mcp/"] {
        let mut h = Harness::new(c.clone());
        h.client(&post_with("", target));
        let text = h.client_text();
        assert!(text.starts_with("HTTP/1.1 400 "), "{target}: {text}");
        assert!(h.log.connects.is_empty(), "{target}");
    }
    for target in ["/mcp/../mcp", "/mcp/%2e%2e/mcp", "/x/..%2fmcp"] {
        let mut h = Harness::new(c.clone());
        h.client(&post_with("", target));
        assert!(h.client_text().starts_with("HTTP/1.1 400 "), "{target}");
    }
    // The open route itself is open.
    let mut h = Harness::new(c);
    h.client(&post_with("", "/other"));
    assert_eq!(h.log.connects, [(1, false)]);
}

#[test]
fn the_operators_upstream_headers_replace_the_clients() {
    let mut c = protected(false);
    c.router.set_upstream_headers(
        0,
        vec![
            crate::http1::Header::new("Authorization", "Bearer upstream-secret"),
            crate::http1::Header::new("X-Api-Key", "k1"),
        ],
    );
    let mut h = Harness::new(c);
    h.client(&post_with(
        "Authorization: Bearer tok\r\nx-api-key: forged\r\nX-Other: kept\r\n",
        "/mcp",
    ));
    h.ex.auth_done(Verdict::Allow(alice()), h.now);
    h.drain();
    h.connected(false);
    let up = String::from_utf8(h.log.to_upstream.clone()).unwrap();
    assert!(
        up.contains("Authorization: Bearer upstream-secret\r\n"),
        "{up}"
    );
    assert!(up.contains("X-Api-Key: k1\r\n"), "{up}");
    assert!(!up.contains("tok\r\n") && !up.contains("forged"), "{up}");
    assert!(up.contains("X-Other: kept\r\n"), "{up}");
    assert_eq!(up.matches("Authorization").count(), 1, "{up}");
}

#[test]
fn an_exchanged_token_goes_upstream_in_place_of_any_other() {
    // Even a forwarded client token gives way to the exchanged one.
    let mut h = Harness::new(protected(true));
    h.client(&post_with(
        "Authorization: Bearer client-tok\r\nX-Other: kept\r\n",
        "/mcp",
    ));
    let token = crate::auth::UpstreamToken("exchanged-tok".into());
    h.ex.auth_done(Verdict::AllowWith(alice(), token), h.now);
    h.drain();
    h.connected(false);
    let up = String::from_utf8(h.log.to_upstream.clone()).unwrap();
    assert!(
        up.contains("Authorization: Bearer exchanged-tok\r\n"),
        "{up}"
    );
    assert!(!up.contains("client-tok"), "{up}");
    assert!(up.contains("X-Other: kept\r\n"), "{up}");
    assert_eq!(up.matches("Authorization").count(), 1, "{up}");
    assert_eq!(h.ex.identity().unwrap().subject, "alice");
}

#[test]
fn a_refused_token_exchange_is_a_502() {
    let mut h = Harness::new(protected(false));
    h.client(&post_with("Authorization: Bearer tok\r\n", "/mcp"));
    h.ex.auth_done(Verdict::Unavailable(Outage::TokenExchangeRefused), h.now);
    h.drain();
    let (head, body) = decode_response(&h.log.to_client);
    assert!(head.starts_with("HTTP/1.1 502 "), "{head}");
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        body["error"]["message"],
        "upstream credentials are unavailable: the token exchange was refused"
    );
    assert!(h.log.connects.is_empty());
}
