//! Tokens already verified, so that a client reusing its access token
//! pays for one signature check rather than one per request (the check is
//! most of a JWT's cost: ~20 µs RS256, ~55 µs ES256; a hit is one SHA-256
//! of the token and a map lookup).
//!
//! The rules:
//! - only a token that passed every check (signature, `alg`, `iss`, `aud`,
//!   `exp`/`nbf`, the route's required scopes) is kept, with the caller it
//!   produced; the cache is per route, so the route's fixed rules hold for
//!   every hit;
//! - refusals are never kept: random tokens sprayed at a route cannot
//!   evict the good ones, and a failure costs what it cost before;
//! - tokens are held by their SHA-256 ([`TokenCache`]): any other byte
//!   (a tampered signature or claim) is another key, and never a hit;
//! - an entry lives until the token's `exp` and no longer than the `ttl`;
//!   on each hit `exp` is checked again against the wall clock with the
//!   leeway, as [`check_claims`](super::jwt::check_claims) does, so a clock
//!   step cannot stretch it;
//! - a `ttl` of zero (or no capacity) turns it off: nothing hashed, nothing
//!   kept.
//!
//! What it trades: a key dropped from the JWKS keeps its already-verified
//! tokens passing for at most `ttl` after sluice has dropped it.

use std::time::{Duration, Instant};

use super::Identity;
use super::cache::{TokenCache, active_lifetime};
use super::jwt::is_expired;

/// The tokens of one route that passed every check, by hash.
#[derive(Debug)]
pub struct VerifiedTokens {
    cache: TokenCache<Verified>,
    ttl: Duration,
    leeway: u64,
}

#[derive(Debug, Clone)]
struct Verified {
    identity: Identity,
    /// The token's `exp`, seconds since the Unix epoch.
    exp: f64,
}

impl VerifiedTokens {
    /// A cache of at most `capacity` tokens, each kept at most `ttl`;
    /// `leeway` (seconds) is the route's, for the `exp` check on a hit.
    pub fn new(capacity: usize, ttl: Duration, leeway: u64) -> Self {
        let capacity = if ttl.is_zero() { 0 } else { capacity };
        VerifiedTokens {
            cache: TokenCache::new(capacity),
            ttl,
            leeway,
        }
    }

    /// Whether it keeps anything at all.
    pub fn is_enabled(&self) -> bool {
        self.cache.capacity() > 0
    }

    /// The caller of `token` if it was verified and is still valid at
    /// `now` (`unix_now`: seconds since the Unix epoch).
    pub fn get(&mut self, token: &str, now: Instant, unix_now: u64) -> Option<Identity> {
        if !self.is_enabled() {
            return None;
        }
        let hit = self.cache.get(token, now)?;
        if is_expired(hit.exp, unix_now, self.leeway) {
            self.cache.remove(token);
            return None;
        }
        Some(hit.identity)
    }

    /// Keeps `identity`, what verifying `token` at `now` produced. Only
    /// an identity from a JWT (with its `exp`) is kept.
    pub fn insert(&mut self, token: &str, identity: &Identity, now: Instant, unix_now: u64) {
        if !self.is_enabled() {
            return;
        }
        let Some(exp) = identity
            .claims
            .as_ref()
            .and_then(|c| c.get("exp")?.as_f64())
        else {
            return;
        };
        // check_claims let it through: exp is a finite number. Past exp
        // (within the leeway) gives no lifetime: not kept.
        let lifetime = active_lifetime(Some(exp.max(0.0) as u64), unix_now, self.ttl);
        let verified = Verified {
            identity: identity.clone(),
            exp,
        };
        self.cache.insert(token, verified, lifetime, now);
    }

    /// How many tokens are held (expired ones included until swept).
    pub fn len(&self) -> usize {
        self.cache.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.cache.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const S: Duration = Duration::from_secs(1);
    const NOW: u64 = 1_800_000_000;
    const LEEWAY: u64 = 60;

    fn identity(subject: &str, exp: u64) -> Identity {
        let claims = json!({"sub": subject, "exp": exp});
        Identity {
            scheme: crate::auth::Scheme::Jwt,
            subject: subject.into(),
            issuer: Some("https://as.example".into()),
            client_id: None,
            scopes: vec!["read".into()],
            claims: claims.as_object().cloned(),
        }
    }

    #[test]
    fn a_verified_token_is_a_hit() {
        let t0 = Instant::now();
        let mut c = VerifiedTokens::new(10, 60 * S, LEEWAY);
        assert_eq!(c.get("h.p.s", t0, NOW), None);
        let id = identity("alice", NOW + 3600);
        c.insert("h.p.s", &id, t0, NOW);
        assert_eq!(c.get("h.p.s", t0, NOW), Some(id.clone()));
        assert_eq!(c.get("h.p.s", t0 + 59 * S, NOW + 59), Some(id));
        assert_eq!(c.get("other", t0, NOW), None);
    }

    #[test]
    fn kept_no_longer_than_the_ttl() {
        let t0 = Instant::now();
        let mut c = VerifiedTokens::new(10, 60 * S, LEEWAY);
        c.insert("t", &identity("a", NOW + 3600), t0, NOW);
        assert!(c.get("t", t0 + 59 * S, NOW + 59).is_some());
        assert_eq!(c.get("t", t0 + 60 * S, NOW + 60), None);
        assert!(c.is_empty(), "an expired entry is dropped when seen");
    }

    #[test]
    fn kept_no_longer_than_exp() {
        let t0 = Instant::now();
        let mut c = VerifiedTokens::new(10, 300 * S, LEEWAY);
        c.insert("t", &identity("a", NOW + 10), t0, NOW);
        assert!(c.get("t", t0 + 9 * S, NOW + 9).is_some());
        assert_eq!(c.get("t", t0 + 10 * S, NOW + 10), None);
        // Past exp but within the leeway: valid, but not kept (the next
        // request verifies it again).
        c.insert("late", &identity("a", NOW - 10), t0, NOW);
        assert!(c.is_empty());
    }

    #[test]
    fn exp_is_checked_again_on_a_hit() {
        // The wall clock jumped ahead of the monotonic one: exp (with the
        // leeway) still ends the entry.
        let t0 = Instant::now();
        let mut c = VerifiedTokens::new(10, 300 * S, LEEWAY);
        c.insert("t", &identity("a", NOW + 100), t0, NOW);
        assert!(c.get("t", t0, NOW + 100 + LEEWAY - 1).is_some());
        assert_eq!(c.get("t", t0, NOW + 100 + LEEWAY), None);
        assert!(c.is_empty());
    }

    #[test]
    fn a_tampered_token_never_hits() {
        let t0 = Instant::now();
        let mut c = VerifiedTokens::new(10, 60 * S, LEEWAY);
        let token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2lnbmF0dXJl";
        c.insert(token, &identity("a", NOW + 3600), t0, NOW);
        assert!(c.get(token, t0, NOW).is_some());
        let mut bytes = token.as_bytes().to_vec();
        for i in [0, token.len() / 2, token.len() - 1] {
            let was = bytes[i];
            bytes[i] = if was == b'A' { b'B' } else { b'A' };
            let tampered = std::str::from_utf8(&bytes).unwrap();
            assert_eq!(c.get(tampered, t0, NOW), None, "byte {i}");
            bytes[i] = was;
        }
        assert_eq!(c.get(&format!("{token}="), t0, NOW), None);
        assert_eq!(c.get(&token[..token.len() - 1], t0, NOW), None);
    }

    #[test]
    fn bounded_soonest_expiring_first() {
        let t0 = Instant::now();
        let mut c = VerifiedTokens::new(2, 300 * S, LEEWAY);
        c.insert("soon", &identity("a", NOW + 10), t0, NOW);
        c.insert("late", &identity("b", NOW + 3600), t0, NOW);
        c.insert("new", &identity("c", NOW + 3600), t0, NOW);
        assert_eq!(c.len(), 2);
        assert_eq!(c.get("soon", t0, NOW), None);
        assert!(c.get("late", t0, NOW).is_some());
        assert!(c.get("new", t0, NOW).is_some());
    }

    #[test]
    fn a_zero_ttl_turns_it_off() {
        let t0 = Instant::now();
        let mut c = VerifiedTokens::new(10, Duration::ZERO, LEEWAY);
        assert!(!c.is_enabled());
        c.insert("t", &identity("a", NOW + 3600), t0, NOW);
        assert!(c.is_empty());
        assert_eq!(c.get("t", t0, NOW), None);
        let mut none = VerifiedTokens::new(0, 60 * S, LEEWAY);
        none.insert("t", &identity("a", NOW + 3600), t0, NOW);
        assert_eq!(none.get("t", t0, NOW), None);
    }

    #[test]
    fn an_identity_without_exp_is_not_kept() {
        // An API key's caller: nothing says when it ends.
        let t0 = Instant::now();
        let mut c = VerifiedTokens::new(10, 60 * S, LEEWAY);
        let mut id = identity("a", NOW + 3600);
        id.claims = None;
        c.insert("k", &id, t0, NOW);
        assert!(c.is_empty());
    }
}
