//! A route protected by JWTs: each bad token is refused with its exact
//! status and challenge, nothing reaches the upstream, and the keys come
//! from a JWKS server the test runs (counted, and taken down on purpose).

mod auth_support;
mod common;

use std::sync::atomic::Ordering;

use auth_support::*;
use serde_json::{Value, json};
use sluice::proxy::RunningProxy;

struct Setup {
    key: Key,
    jwks: JwksServer,
    up: McpUpstream,
    proxy: RunningProxy,
}

impl Setup {
    fn claims(&self) -> Value {
        good_claims(&self.jwks.issuer())
    }

    fn with(&self, name: &str, value: Value) -> String {
        let mut claims = self.claims();
        claims[name] = value;
        self.key.sign(&claims)
    }
}

/// An RSA key `k1` in the JWKS, sluice started with `extra` auth keys,
/// its first fetch of the keys done.
fn setup(extra: &str) -> Setup {
    let key = Key::rsa("k1");
    let jwks = JwksServer::start(vec![key.jwk()]);
    let up = McpUpstream::start();
    let proxy = sluice(&jwt_config(up.addr, &jwks, extra));
    jwks.wait_hits(1);
    Setup {
        key,
        jwks,
        up,
        proxy,
    }
}

fn assert_passed(r: &common::Response, up: &McpUpstream) -> common::Received {
    assert_eq!(r.status, 200, "{}{}", r.head, r.text());
    up.next()
}

#[test]
fn a_good_token_passes_and_the_upstream_never_sees_it() {
    let s = setup("");
    let token = s.key.sign(&s.claims());
    let r = call_with(&s.proxy, &token);
    let seen = assert_passed(&r, &s.up);
    assert!(
        !seen.head.to_ascii_lowercase().contains("authorization"),
        "{}",
        seen.head
    );
    assert_eq!(r.text(), r#"{"jsonrpc":"2.0","id":"abc","result":{}}"#);
}

#[test]
fn forward_token_passes_it_on() {
    let s = setup("forward_token = true");
    let token = s.key.sign(&s.claims());
    let seen = assert_passed(&call_with(&s.proxy, &token), &s.up);
    assert!(
        seen.head
            .contains(&format!("Authorization: Bearer {token}\r\n")),
        "{}",
        seen.head
    );
}

#[test]
fn no_token_is_401_with_the_metadata_url() {
    let s = setup("");
    assert_refused(&call(&s.proxy, "/mcp", ""), 401, None, &s.up);
}

#[test]
fn expired() {
    let s = setup("");
    let token = s.with("exp", json!(now() - 120));
    assert_refused(
        &call_with(&s.proxy, &token),
        401,
        Some("invalid_token"),
        &s.up,
    );
}

#[test]
fn within_the_leeway_is_still_valid() {
    let s = setup("leeway = \"60s\"");
    let token = s.with("exp", json!(now() - 10));
    assert_passed(&call_with(&s.proxy, &token), &s.up);
}

#[test]
fn not_yet_valid() {
    let s = setup("");
    let token = s.with("nbf", json!(now() + 120));
    assert_refused(
        &call_with(&s.proxy, &token),
        401,
        Some("invalid_token"),
        &s.up,
    );
}

#[test]
fn wrong_audience() {
    let s = setup("");
    for aud in [
        json!("http://other.test/mcp"),
        json!(["http://other.test/mcp"]),
    ] {
        let token = s.with("aud", aud);
        assert_refused(
            &call_with(&s.proxy, &token),
            401,
            Some("invalid_token"),
            &s.up,
        );
    }
    // An array that names the route passes.
    let token = s.with("aud", json!(["http://other.test/mcp", AUDIENCE]));
    assert_passed(&call_with(&s.proxy, &token), &s.up);
}

#[test]
fn wrong_issuer() {
    let s = setup("");
    let token = s.with("iss", json!("http://evil.test"));
    assert_refused(
        &call_with(&s.proxy, &token),
        401,
        Some("invalid_token"),
        &s.up,
    );
}

#[test]
fn alg_none() {
    let s = setup("");
    let claims = b64(s.claims().to_string().as_bytes());
    for header in [json!({"alg": "none"}), json!({"alg": "none", "kid": "k1"})] {
        let header = b64(header.to_string().as_bytes());
        for token in [
            format!("{header}.{claims}."),
            format!("{header}.{claims}.c2ln"),
        ] {
            assert_refused(
                &call_with(&s.proxy, &token),
                401,
                Some("invalid_token"),
                &s.up,
            );
        }
    }
}

#[test]
fn hs256_signed_with_the_rsa_public_key() {
    let s = setup("");
    let header = b64(json!({"alg": "HS256", "kid": "k1"}).to_string().as_bytes());
    let input = format!("{header}.{}", b64(s.claims().to_string().as_bytes()));
    let jwk = s.key.jwk();
    // Every form of the public key a confused verifier might use as the secret.
    for secret in [
        s.key.public_der(),
        jwk.to_string().into_bytes(),
        jwk["n"].as_str().unwrap().as_bytes().to_vec(),
    ] {
        let mac = ring::hmac::sign(
            &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret),
            input.as_bytes(),
        );
        let token = format!("{input}.{}", b64(mac.as_ref()));
        assert_refused(
            &call_with(&s.proxy, &token),
            401,
            Some("invalid_token"),
            &s.up,
        );
    }
}

#[test]
fn an_alg_that_does_not_fit_the_key() {
    let s = setup("");
    // Signed by an EC key, but naming the RSA key's kid.
    let ec = Key::ec("k1");
    let token = ec.sign(&s.claims());
    assert_refused(
        &call_with(&s.proxy, &token),
        401,
        Some("invalid_token"),
        &s.up,
    );
}

#[test]
fn unknown_kid_refreshes_once_then_401() {
    let s = setup("");
    assert_eq!(s.jwks.hits(), 1);
    let stranger = Key::rsa("k-unknown");
    let token = stranger.sign(&s.claims());
    assert_refused(
        &call_with(&s.proxy, &token),
        401,
        Some("invalid_token"),
        &s.up,
    );
    assert_eq!(s.jwks.hits(), 2, "one refresh for the unknown kid");
    assert_refused(
        &call_with(&s.proxy, &token),
        401,
        Some("invalid_token"),
        &s.up,
    );
    assert_eq!(s.jwks.hits(), 2, "no second refresh within the interval");
    // The known key still works.
    assert_passed(&call_with(&s.proxy, &s.key.sign(&s.claims())), &s.up);
}

#[test]
fn a_rotated_in_key_is_found_by_the_refresh() {
    let s = setup("");
    let ec = Key::ec("k2");
    let ed = Key::ed("k3");
    s.jwks.keys.lock().unwrap().extend([ec.jwk(), ed.jwk()]);
    assert_passed(&call_with(&s.proxy, &ec.sign(&s.claims())), &s.up);
    assert_eq!(s.jwks.hits(), 2);
    // EdDSA from the same refresh, no fetch.
    assert_passed(&call_with(&s.proxy, &ed.sign(&s.claims())), &s.up);
    assert_eq!(s.jwks.hits(), 2);
}

#[test]
fn tampered_payload() {
    let s = setup("");
    let token = s.key.sign(&s.claims());
    let parts: Vec<&str> = token.split('.').collect();
    let mut forged = s.claims();
    forged["sub"] = json!("mallory");
    let token = format!(
        "{}.{}.{}",
        parts[0],
        b64(forged.to_string().as_bytes()),
        parts[2]
    );
    assert_refused(
        &call_with(&s.proxy, &token),
        401,
        Some("invalid_token"),
        &s.up,
    );
}

#[test]
fn tampered_signature() {
    let s = setup("");
    let token = s.key.sign(&s.claims());
    let (input, sig) = token.rsplit_once('.').unwrap();
    let mut sig = sig.as_bytes().to_vec();
    sig[0] = if sig[0] == b'A' { b'B' } else { b'A' };
    let token = format!("{input}.{}", String::from_utf8(sig).unwrap());
    assert_refused(
        &call_with(&s.proxy, &token),
        401,
        Some("invalid_token"),
        &s.up,
    );
}

#[test]
fn token_in_the_query_string() {
    let s = setup("");
    let token = s.key.sign(&s.claims());
    let r = call(&s.proxy, &format!("/mcp?access_token={token}"), "");
    assert_refused(&r, 400, Some("invalid_request"), &s.up);
    // Even beside a good header.
    let r = call(
        &s.proxy,
        "/mcp?access_token=x",
        &format!("Authorization: Bearer {token}\r\n"),
    );
    assert_refused(&r, 400, Some("invalid_request"), &s.up);
}

#[test]
fn two_authorization_headers() {
    let s = setup("");
    let token = s.key.sign(&s.claims());
    let headers = format!("Authorization: Bearer {token}\r\nAuthorization: Bearer {token}\r\n");
    let r = call(&s.proxy, "/mcp", &headers);
    assert_refused(&r, 400, Some("invalid_request"), &s.up);
    let joined = format!("Authorization: Bearer {token}, Bearer {token}\r\n");
    assert_refused(
        &call(&s.proxy, "/mcp", &joined),
        400,
        Some("invalid_request"),
        &s.up,
    );
}

#[test]
fn missing_scope_is_403_naming_the_scopes() {
    let s = setup("required_scopes = [\"mcp:tools\", \"mcp:admin\"]");
    let r = call_with(&s.proxy, &s.key.sign(&s.claims()));
    assert_eq!(r.status, 403, "{}", r.head);
    assert_eq!(
        challenge(&r).unwrap(),
        format!(
            "Bearer resource_metadata=\"{METADATA}\", error=\"insufficient_scope\", scope=\"mcp:tools mcp:admin\""
        )
    );
    s.up.untouched();
    // scp as an array counts too.
    let mut claims = s.claims();
    claims["scp"] = json!(["mcp:admin"]);
    assert_passed(&call_with(&s.proxy, &s.key.sign(&claims)), &s.up);
}

#[test]
fn jwks_down_cached_keys_still_work() {
    let s = setup("");
    s.jwks.down.store(true, Ordering::SeqCst);
    assert_passed(&call_with(&s.proxy, &s.key.sign(&s.claims())), &s.up);
    // An unknown kid tries the endpoint (down), keeps the keys, and is 401.
    let stranger = Key::ec("k-new");
    let r = call_with(&s.proxy, &stranger.sign(&s.claims()));
    assert_refused(&r, 401, Some("invalid_token"), &s.up);
    assert_eq!(s.jwks.hits(), 2);
    assert_passed(&call_with(&s.proxy, &s.key.sign(&s.claims())), &s.up);
}

#[test]
fn jwks_down_with_no_keys_is_503_with_a_json_rpc_error() {
    let key = Key::rsa("k1");
    let jwks = JwksServer::start(vec![key.jwk()]);
    jwks.down.store(true, Ordering::SeqCst);
    let up = McpUpstream::start();
    let proxy = sluice(&jwt_config(up.addr, &jwks, ""));
    jwks.wait_hits(1);
    let r = call_with(&proxy, &key.sign(&good_claims(&jwks.issuer())));
    assert_eq!(r.status, 503, "{}{}", r.head, r.text());
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body["jsonrpc"], "2.0");
    assert_eq!(body["error"]["code"], -32603);
    up.untouched();
}

#[test]
fn keys_found_through_the_issuers_metadata() {
    let key = Key::ec("k1");
    let jwks = JwksServer::start(vec![key.jwk()]);
    let up = McpUpstream::start();
    let proxy = sluice(&config(up.addr, &format!("issuer = \"{}\"", jwks.issuer())));
    jwks.wait_hits(1);
    let r = call_with(&proxy, &key.sign(&good_claims(&jwks.issuer())));
    assert_passed(&r, &up);
}

#[test]
fn an_algorithm_outside_the_allow_list() {
    let s = setup("algorithms = [\"ES256\"]");
    let r = call_with(&s.proxy, &s.key.sign(&s.claims()));
    assert_refused(&r, 401, Some("invalid_token"), &s.up);
}

#[test]
fn the_metadata_document() {
    let s = setup("scopes_supported = [\"mcp:tools\", \"mcp:read\"]");
    let r = get(&s.proxy, "/.well-known/oauth-protected-resource/mcp");
    assert_eq!(r.status, 200, "{}", r.head);
    assert!(r.head.contains("Access-Control-Allow-Origin: *\r\n"));
    let doc: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        doc,
        json!({
            "resource": AUDIENCE,
            "authorization_servers": [s.jwks.issuer()],
            "scopes_supported": ["mcp:tools", "mcp:read"],
            "bearer_methods_supported": ["header"],
        })
    );
    s.up.untouched();
}

#[test]
fn a_multibyte_alg_is_refused_and_sluice_keeps_serving() {
    // Found by the fuzz target: an alg whose second byte is inside a
    // character once panicked the algorithm check.
    let s = setup("");
    let header = b64(json!({"alg": "Hé", "kid": "k1"}).to_string().as_bytes());
    let token = format!("{header}.{}.c2ln", b64(s.claims().to_string().as_bytes()));
    assert_refused(
        &call_with(&s.proxy, &token),
        401,
        Some("invalid_token"),
        &s.up,
    );
    assert_passed(&call_with(&s.proxy, &s.key.sign(&s.claims())), &s.up);
}

/// Rotates `k1` out of the JWKS and has sluice fetch it again (a token
/// with the new key's unknown kid), so `k1` is no longer among its keys.
fn drop_k1(s: &Setup) {
    let k2 = Key::ec("k2");
    *s.jwks.keys.lock().unwrap() = vec![k2.jwk()];
    assert_passed(&call_with(&s.proxy, &k2.sign(&s.claims())), &s.up);
    assert_eq!(s.jwks.hits(), 2, "the keys were fetched again");
}

#[test]
fn a_verified_token_is_served_from_the_cache() {
    let s = setup("");
    let token = s.key.sign(&s.claims());
    assert_passed(&call_with(&s.proxy, &token), &s.up);
    drop_k1(&s);
    // k1 cannot verify anything now: the same token passes only because
    // its first verification was kept (for at most verified_cache_ttl)…
    assert_passed(&call_with(&s.proxy, &token), &s.up);
    // …and a new token signed by k1 is judged afresh, and refused.
    let mut claims = s.claims();
    claims["jti"] = json!("another");
    let r = call_with(&s.proxy, &s.key.sign(&claims));
    assert_refused(&r, 401, Some("invalid_token"), &s.up);
    // A tampered copy of the kept token is another token: refused.
    let (rest, last) = token.split_at(token.len() - 1);
    let tampered = format!("{rest}{}", if last == "A" { "Q" } else { "A" });
    assert_refused(
        &call_with(&s.proxy, &tampered),
        401,
        Some("invalid_token"),
        &s.up,
    );
}

#[test]
fn a_zero_verified_cache_ttl_verifies_every_request() {
    let s = setup("verified_cache_ttl = \"0s\"");
    let token = s.key.sign(&s.claims());
    assert_passed(&call_with(&s.proxy, &token), &s.up);
    drop_k1(&s);
    let r = call_with(&s.proxy, &token);
    assert_refused(&r, 401, Some("invalid_token"), &s.up);
}

#[test]
fn a_reused_token_is_counted_as_judged_from_the_cache() {
    use std::io::Write;
    let s = setup("\n[admin]\nlisten = \"127.0.0.1:0\"\n");
    let token = s.key.sign(&s.claims());
    for _ in 0..3 {
        assert_passed(&call_with(&s.proxy, &token), &s.up);
    }
    let bad = s.with("aud", json!("https://elsewhere.example/mcp"));
    assert_eq!(call_with(&s.proxy, &bad).status, 401);
    let mut c = common::connect(s.proxy.admin_addr().unwrap());
    c.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let text = common::read_response(&mut c, "GET").text();
    let series = |outcome: &str, method: &str| {
        let s = format!(
            r#"sluice_auth_decisions_total{{route="127.0.0.1",outcome="{outcome}",method="{method}"}} "#
        );
        text.lines()
            .find_map(|l| l.strip_prefix(&s)?.parse::<f64>().ok())
    };
    assert_eq!(series("allowed", "jwt"), Some(1.0), "{text}");
    assert_eq!(series("allowed", "cached"), Some(2.0), "{text}");
    assert_eq!(series("unauthenticated", "jwt"), Some(1.0), "{text}");
}
