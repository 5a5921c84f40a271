//! The judge of bearer tokens on protected routes (`[route.auth]`): JWTs
//! verified against the route's JWKS with `jsonwebtoken` (ring), API keys
//! by hash. The rules are core's (`sluice_core::auth`); this module fetches
//! keys, checks signatures, reads the clock and logs why a token failed
//! (never the token). A JWT that passed is kept per route (core's
//! `VerifiedTokens`), so the same token again skips the signature check.

mod exchange;
mod fetch;
mod flight;
mod introspect;
mod keys;

use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use sluice_core::auth::gate::{IntrospectionFor, Method, Methods, method};
use sluice_core::auth::jwt::{check_claims, looks_like_jwt, parse_jwt};
use sluice_core::auth::scope::missing_scopes;
use sluice_core::auth::verified::VerifiedTokens;
use sluice_core::auth::{AuthCall, ClaimRules, Identity, Outage, TokenError, Verdict};

use crate::config::RouteAuth;
use crate::dial::Dialer;
use crate::metrics::AuthMethod;
use exchange::Exchanger;
use introspect::{IntrospectError, Introspector};
use keys::{KeyCache, Lookup, jose_alg};

/// The judge of every protected route of a proxy.
pub(crate) struct Gatekeeper {
    dialer: Dialer,
    routes: Vec<Option<Guard>>,
    names: Vec<String>,
    /// By route: its verdicts' counters (empty: none counted).
    decisions: Vec<Option<crate::metrics::AuthCounters>>,
}

/// One protected route.
struct Guard {
    auth: RouteAuth,
    /// With an issuer: the keys and the claim rules (none when every
    /// token is introspected).
    jwt: Option<JwtJudge>,
    /// With `[route.auth.introspection]`.
    introspector: Option<Introspector>,
    /// With `[route.auth.token_exchange]`: the upstream's token.
    exchanger: Option<Exchanger>,
}

/// How one route judges JWTs.
struct JwtJudge {
    keys: KeyCache,
    rules: ClaimRules,
    /// Tokens that passed every check of this route, so a reused token
    /// skips the signature check (core's `verified` says for how long).
    verified: Mutex<VerifiedTokens>,
}

impl JwtJudge {
    fn new(settings: &crate::config::JwtAuth, rules: ClaimRules) -> Self {
        let verified = VerifiedTokens::new(
            settings.verified_cache_size,
            settings.verified_cache_ttl,
            rules.leeway,
        );
        JwtJudge {
            keys: KeyCache::new(settings.clone()),
            rules,
            verified: Mutex::new(verified),
        }
    }

    fn verified(&self) -> std::sync::MutexGuard<'_, VerifiedTokens> {
        self.verified.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A client secret; one that cannot be read (settings made by hand, not
/// through `proxy_settings`) is logged and left empty, so the authorization
/// server refuses sluice and its tokens get 503.
fn secret(read: Result<String, crate::config::ConfigError>, route: &str) -> String {
    read.unwrap_or_else(|e| {
        tracing::error!(route, "{e}");
        String::new()
    })
}

/// Why a token was not allowed.
enum Refusal {
    Token(TokenError),
    /// No key at all to judge it with.
    NoKeys,
    /// The authorization server could not judge it.
    Introspection(IntrospectError),
}

impl From<TokenError> for Refusal {
    fn from(e: TokenError) -> Self {
        Refusal::Token(e)
    }
}

impl Gatekeeper {
    /// A judge for `routes` (by route index), fetching keys through a
    /// dialer of its own on `rt` (`tls` for https key endpoints). Client
    /// secrets are read already ([`RouteAuth::read_secrets`]).
    pub(crate) fn new(
        rt: crate::rt::Handle,
        tls: Option<Arc<futures_rustls::rustls::ClientConfig>>,
        routes: Vec<Option<RouteAuth>>,
        names: Vec<String>,
    ) -> Self {
        let mut guards = Vec::with_capacity(routes.len());
        for (i, auth) in routes.into_iter().enumerate() {
            let Some(auth) = auth else {
                guards.push(None);
                continue;
            };
            let name = names.get(i).map_or("?", String::as_str);
            let rules = |j: &crate::config::JwtAuth| ClaimRules {
                issuer: j.issuer.clone(),
                audience: auth.resource.as_str().to_string(),
                leeway: j.leeway.as_secs(),
                required_scopes: auth.required_scopes.clone(),
            };
            let introspector = match (&auth.introspection, &auth.jwt) {
                (Some(it), Some(j)) => {
                    let secret = secret(it.client_secret(name), name);
                    Some(Introspector::new(it.clone(), j.clone(), &secret, rules(j)))
                }
                _ => None,
            };
            let exchanger = match (&auth.token_exchange, &auth.jwt) {
                (Some(te), Some(j)) => {
                    let secret = secret(te.client_secret(name), name);
                    Some(Exchanger::new(te, j.clone(), &secret))
                }
                _ => None,
            };
            let introspect_all = introspector
                .as_ref()
                .is_some_and(|it| it.tokens() == IntrospectionFor::All);
            let jwt = match &auth.jwt {
                Some(j) if !introspect_all => Some(JwtJudge::new(j, rules(j))),
                _ => None,
            };
            guards.push(Some(Guard {
                auth,
                jwt,
                introspector,
                exchanger,
            }));
        }
        Gatekeeper {
            dialer: Dialer::new(rt, Vec::new(), tls, 0, std::time::Duration::ZERO),
            routes: guards,
            names,
            decisions: Vec::new(),
        }
    }

    /// Count every protected route's verdicts in `metrics`.
    pub(crate) fn counted_in(mut self, metrics: &crate::metrics::Metrics) -> Self {
        self.decisions = (self.routes.iter().enumerate())
            .map(|(i, guard)| guard.as_ref().map(|_| metrics.auth(self.name(i))))
            .collect();
        self
    }

    /// Whether any route is protected.
    pub(crate) fn is_active(&self) -> bool {
        self.routes.iter().any(Option::is_some)
    }

    /// Fetches every route's keys once, so the first token does not wait
    /// for them.
    pub(crate) async fn prefetch(self: Arc<Self>) {
        for (i, guard) in self.routes.iter().enumerate() {
            if let Some(Guard { jwt: Some(jwt), .. }) = guard {
                self.refresh(i, &jwt.keys).await;
            }
        }
    }

    async fn refresh(&self, route: usize, keys: &KeyCache) {
        let name = self.name(route);
        match keys.refresh(&self.dialer).await {
            Ok(n) => tracing::info!(route = name, keys = n, "signing keys fetched"),
            Err(e) => {
                let held = if keys.has_keys() {
                    "the keys fetched before keep serving"
                } else {
                    "no keys: tokens get 503"
                };
                tracing::warn!(route = name, "cannot fetch the signing keys ({held}): {e}");
            }
        }
    }

    fn name(&self, route: usize) -> &str {
        self.names.get(route).map_or("?", String::as_str)
    }

    /// The verdict on a request's token, counted.
    pub(crate) async fn judge(&self, call: &AuthCall) -> Verdict {
        let mut via = AuthMethod::None;
        let verdict = self.decide(call, &mut via).await;
        if let Some(Some(counters)) = self.decisions.get(call.route) {
            counters.judged(&verdict, via);
        }
        verdict
    }

    /// The verdict; `via` says how the token was judged.
    async fn decide(&self, call: &AuthCall, via: &mut AuthMethod) -> Verdict {
        let Some(Some(guard)) = self.routes.get(call.route) else {
            // The exchange asks only for protected routes.
            return Verdict::Unavailable(Outage::NoKeys);
        };
        match self.check(call.route, guard, &call.token, via).await {
            Ok(identity) => {
                tracing::debug!(route = self.name(call.route), subject = %identity.subject, "caller allowed");
                let Some(exchanger) = &guard.exchanger else {
                    return Verdict::Allow(identity);
                };
                match exchanger.token_for(&self.dialer, &call.token).await {
                    Ok(token) => Verdict::AllowWith(identity, token),
                    Err(e) => {
                        tracing::warn!(
                            route = self.name(call.route),
                            "no token for the upstream: {e}"
                        );
                        Verdict::Unavailable(e.outage())
                    }
                }
            }
            Err(Refusal::Token(e)) => {
                tracing::info!(route = self.name(call.route), "credentials refused: {e}");
                Verdict::Deny(e.denial())
            }
            Err(Refusal::NoKeys) => {
                tracing::warn!(
                    route = self.name(call.route),
                    "a token could not be judged: no signing keys"
                );
                Verdict::Unavailable(Outage::NoKeys)
            }
            Err(Refusal::Introspection(e)) => {
                tracing::warn!(
                    route = self.name(call.route),
                    "a token could not be judged: {e}"
                );
                Verdict::Unavailable(Outage::Introspection)
            }
        }
    }

    async fn check(
        &self,
        route: usize,
        guard: &Guard,
        token: &str,
        via: &mut AuthMethod,
    ) -> Result<Identity, Refusal> {
        let methods = Methods {
            jwt: guard.jwt.is_some(),
            introspection: guard.introspector.as_ref().map(Introspector::tokens),
            api_keys: !guard.auth.api_keys.is_empty(),
        };
        match method(token, methods) {
            Some(Method::Jwt) => {
                *via = AuthMethod::Jwt;
                self.check_jwt(route, guard, token, via).await
            }
            Some(Method::Introspect) => {
                *via = AuthMethod::Introspection;
                self.introspect(guard, token).await
            }
            Some(Method::ApiKey { else_introspect }) => match guard.auth.api_keys.find(token) {
                Some(key) => {
                    *via = AuthMethod::ApiKey;
                    let identity = key.identity();
                    let missing = missing_scopes(&identity.scopes, &guard.auth.required_scopes);
                    if !missing.is_empty() {
                        return Err(TokenError::InsufficientScope {
                            missing,
                            required: guard.auth.required_scopes.clone(),
                        }
                        .into());
                    }
                    Ok(identity)
                }
                None if else_introspect => {
                    *via = AuthMethod::Introspection;
                    self.introspect(guard, token).await
                }
                None => {
                    *via = AuthMethod::ApiKey;
                    Err(TokenError::UnknownApiKey.into())
                }
            },
            None if looks_like_jwt(token) => {
                Err(TokenError::Malformed("a JWT on a route that takes no JWTs").into())
            }
            None => Err(TokenError::UnknownApiKey.into()),
        }
    }

    async fn introspect(&self, guard: &Guard, token: &str) -> Result<Identity, Refusal> {
        let Some(introspector) = &guard.introspector else {
            return Err(TokenError::Malformed("no introspection on this route").into());
        };
        match introspector.judge(&self.dialer, token).await {
            Ok(judged) => Ok(judged?),
            Err(e) => Err(Refusal::Introspection(e)),
        }
    }

    async fn check_jwt(
        &self,
        route: usize,
        guard: &Guard,
        token: &str,
        via: &mut AuthMethod,
    ) -> Result<Identity, Refusal> {
        let (Some(settings), Some(judge)) = (&guard.auth.jwt, &guard.jwt) else {
            return Err(TokenError::Malformed("a JWT on a route that takes API keys only").into());
        };
        if let Some(identity) = judge.verified().get(token, Instant::now(), unix_now()) {
            *via = AuthMethod::CachedJwt;
            return Ok(identity);
        }
        let keys = &judge.keys;
        let jwt = parse_jwt(token, &settings.algorithms)?;
        let kid = jwt.kid.as_deref();
        keys.settle().await;
        let (set, i) = match keys.lookup(kid, jwt.alg) {
            Lookup::Found(set, i) => (set, i),
            Lookup::Missing { .. } => {
                // A key rotated in since the last fetch: look once more.
                if keys.may_refresh(Instant::now()) {
                    self.refresh(route, keys).await;
                }
                match keys.lookup(kid, jwt.alg) {
                    Lookup::Found(set, i) => (set, i),
                    Lookup::Missing { no_keys: true } => return Err(Refusal::NoKeys),
                    Lookup::Missing { no_keys: false } => {
                        return Err(TokenError::UnknownKey(jwt.kid.clone()).into());
                    }
                }
            }
        };
        let key = &set[i];
        // The key decides what it verifies: never an RSA key for an EC
        // token, never a key whose JWK names another alg.
        if key.key_type != jwt.alg.key_type()
            || key.alg.as_deref().is_some_and(|a| a != jwt.alg.name())
        {
            return Err(TokenError::KeyMismatch.into());
        }
        let verified = jsonwebtoken::crypto::verify(
            jwt.signature,
            jwt.signing_input.as_bytes(),
            &key.key,
            jose_alg(jwt.alg),
        );
        if !matches!(verified, Ok(true)) {
            return Err(TokenError::BadSignature.into());
        }
        let now = unix_now();
        let identity = check_claims(jwt.claims, &judge.rules, now)?;
        judge
            .verified()
            .insert(token, &identity, Instant::now(), now);
        Ok(identity)
    }
}
