//! The cost of judging a JWT with a cached key, per request: what
//! `runtime/src/auth` does for each token once the key is in its cache —
//! core's `parse_jwt`, the signature checked with `jsonwebtoken` (ring)
//! exactly as the runtime calls it, then `check_claims` — for RS256
//! (RSA-2048) and ES256 (P-256), side by side with the bare signature check
//! (`signature only`) and core's share alone (`claims only`: parse and
//! claim rules).
//! (The runtime adds an uncontended mutex lock for the key lookup.)
//!
//! `cached`: the same token again, served from the route's
//! `VerifiedTokens` as the runtime does it — both clocks read, a mutex
//! locked, the token's SHA-256, a map lookup, the caller cloned out.
//! `sha256 only`: the hash alone (core's, `sha2`).
//!
//! `open route`: what a request to a route without `[route.auth]` pays for
//! auth in the exchange (routing it, the shadowed-spelling check, the
//! gate lookup), with no route protected and with another route protected.
//!
//! Here rather than in runtime/benches: a bench of the runtime crate
//! builds wasmtime in release, this one builds core, ring and
//! jsonwebtoken.
//!
//! cargo bench -p sluice-core --bench auth -- --warm-up-time 1 --measurement-time 3

use std::hint::black_box;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use criterion::{Criterion, criterion_group, criterion_main};
use jsonwebtoken::{Algorithm, DecodingKey};
use ring::rand::SystemRandom;
use ring::signature::{self, KeyPair};
use serde_json::json;
use sluice_core::auth::api_key::sha256;
use sluice_core::auth::jwt::{DEFAULT_ALGS, check_claims, parse_jwt};
use sluice_core::auth::verified::VerifiedTokens;
use sluice_core::auth::{ClaimRules, Gate, Resource};
use sluice_core::base64;
use sluice_core::route::{Route, Router};

const ISSUER: &str = "https://as.example.com";
const AUDIENCE: &str = "https://mcp.example.com/mcp";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `header.claims`, base64url, as an authorization server writes them.
fn signing_input(alg: &str) -> String {
    let header = json!({"alg": alg, "kid": "k1", "typ": "at+jwt"});
    let claims = json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "client_id": "cli",
        "exp": now() + 3600, "iat": now(), "scope": "mcp:tools mcp:read",
        "jti": "2f9c1a7e-6b1d-4f3e-9c1a-7e6b1d4f3e9c",
    });
    format!(
        "{}.{}",
        base64::encode_url(header.to_string().as_bytes()),
        base64::encode_url(claims.to_string().as_bytes())
    )
}

/// An RS256 token and its key, from the runtime tests' RSA-2048 key.
fn rs256() -> (String, DecodingKey) {
    let pem = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../runtime/tests/fixtures/auth/rsa-2048.pem"),
    )
    .expect("the test key");
    let der: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let pair = signature::RsaKeyPair::from_pkcs8(&base64::decode(&der).unwrap()).unwrap();
    let input = signing_input("RS256");
    let mut sig = vec![0; pair.public().modulus_len()];
    pair.sign(
        &signature::RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        input.as_bytes(),
        &mut sig,
    )
    .unwrap();
    let public = ring::rsa::PublicKeyComponents::<Vec<u8>>::from(pair.public());
    let key = DecodingKey::from_rsa_components(
        &base64::encode_url(&public.n),
        &base64::encode_url(&public.e),
    )
    .unwrap();
    (format!("{input}.{}", base64::encode_url(&sig)), key)
}

/// An ES256 token and its key, from a fresh P-256 key.
fn es256() -> (String, DecodingKey) {
    let rng = SystemRandom::new();
    let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
    let pkcs8 = signature::EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
    let pair = signature::EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap();
    let input = signing_input("ES256");
    let sig = pair.sign(&rng, input.as_bytes()).unwrap();
    let point = pair.public_key().as_ref();
    let key = DecodingKey::from_ec_components(
        &base64::encode_url(&point[1..33]),
        &base64::encode_url(&point[33..65]),
    )
    .unwrap();
    (format!("{input}.{}", base64::encode_url(sig.as_ref())), key)
}

fn rules() -> ClaimRules {
    ClaimRules {
        issuer: ISSUER.into(),
        audience: AUDIENCE.into(),
        leeway: 60,
        required_scopes: vec!["mcp:tools".into()],
    }
}

/// What the runtime does per token with the key in hand.
fn judge(token: &str, key: &DecodingKey, alg: Algorithm, rules: &ClaimRules, now: u64) -> bool {
    let Ok(jwt) = parse_jwt(token, &DEFAULT_ALGS) else {
        return false;
    };
    let verified =
        jsonwebtoken::crypto::verify(jwt.signature, jwt.signing_input.as_bytes(), key, alg);
    matches!(verified, Ok(true)) && check_claims(jwt.claims, rules, now).is_ok()
}

fn bench(c: &mut Criterion) {
    let rules = rules();
    let now = now();
    let mut group = c.benchmark_group("jwt with a cached key");
    for (name, (token, key), alg) in [
        ("RS256", rs256(), Algorithm::RS256),
        ("ES256", es256(), Algorithm::ES256),
    ] {
        assert!(judge(&token, &key, alg, &rules, now), "{name} passes");
        group.bench_function(name, |b| {
            b.iter(|| judge(black_box(&token), &key, alg, &rules, now))
        });
        let (input, sig) = token.rsplit_once('.').unwrap();
        group.bench_function(format!("{name} signature only"), |b| {
            b.iter(|| jsonwebtoken::crypto::verify(sig, black_box(input).as_bytes(), &key, alg))
        });
        group.bench_function(format!("{name} claims only"), |b| {
            b.iter(|| {
                let jwt = parse_jwt(black_box(&token), &DEFAULT_ALGS).unwrap();
                check_claims(jwt.claims, &rules, now).is_ok()
            })
        });
        let jwt = parse_jwt(&token, &DEFAULT_ALGS).unwrap();
        let identity = check_claims(jwt.claims, &rules, now).unwrap();
        let verified = Mutex::new(VerifiedTokens::new(10_000, Duration::from_secs(60), 60));
        verified
            .lock()
            .unwrap()
            .insert(&token, &identity, Instant::now(), now);
        group.bench_function(format!("{name} cached"), |b| {
            b.iter(|| {
                let unix = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                let hit = verified
                    .lock()
                    .unwrap()
                    .get(black_box(&token), Instant::now(), unix);
                hit.expect("a hit")
            })
        });
        // A new token into a full cache of live ones: the soonest to
        // expire makes room (what a client minting a token per request
        // costs each time).
        let full = Mutex::new(VerifiedTokens::new(10_000, Duration::from_secs(60), 60));
        let t0 = Instant::now();
        for i in 0..10_000 {
            let mut id = identity.clone();
            let exp = serde_json::Value::from(now + 600 + i);
            id.claims.as_mut().unwrap().insert("exp".into(), exp);
            full.lock()
                .unwrap()
                .insert(&format!("{token}{i}"), &id, t0, now);
        }
        let mut i = 0u64;
        group.bench_function(format!("{name} insert into a full cache"), |b| {
            b.iter(|| {
                i += 1;
                let fresh = format!("{token}-{i}");
                full.lock().unwrap().insert(&fresh, &identity, t0, now);
            })
        });
        group.bench_function(format!("{name} sha256 only"), |b| {
            b.iter(|| sha256(black_box(&token).as_bytes()))
        });
    }
    group.finish();

    let mut group = c.benchmark_group("open route");
    let route = |prefix: &str| Route {
        prefix: prefix.into(),
        upstream_path: prefix.into(),
        upstream_query: None,
        well_known: false,
        upstream_host: "127.0.0.1:9000".into(),
    };
    let open = Router::new(vec![route("/open"), route("/mcp")]);
    let mut mixed = open.clone();
    let resource = Resource::parse(AUDIENCE).unwrap();
    mixed.protect(
        1,
        Gate::new(&resource, "/mcp", &[ISSUER.into()], &[], false),
    );
    for (name, router) in [("no route protected", &open), ("another protected", &mixed)] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let target = black_box("/open");
                let resolved = router.resolve(target).unwrap();
                let shadowed = router.shadowed_gate(target, resolved.route);
                (shadowed, router.gate(resolved.route).is_some())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
