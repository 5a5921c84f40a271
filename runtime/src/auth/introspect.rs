//! RFC 7662 introspection of a route's tokens at its authorization server:
//! the endpoint found once (configured, or from the issuer's metadata), one
//! POST per token not in the cache, the answer judged by core's rules and
//! kept ([`sluice_core::auth::cache`] says for how long).

use std::fmt;
use std::sync::Mutex;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use sluice_core::auth::cache::{NEGATIVE_LIFETIME, TokenCache, active_lifetime};
use sluice_core::auth::gate::IntrospectionFor;
use sluice_core::auth::introspection::{
    AnswerError, Introspected, client_secret_basic, parse_answer, request_body,
};
use sluice_core::auth::jwt::check_claims;
use sluice_core::auth::{ClaimRules, Identity, Scheme, TokenError};

use super::fetch::{self, FetchError, Form};
use super::flight::{Flights, cached_or_asked};
use super::keys::{FETCH_TIMEOUT, KeysError, endpoint_once};
use crate::config::{Introspection, JwtAuth, Upstream};
use crate::dial::Dialer;

/// What judging a token at the authorization server came to: the caller,
/// or why the token is refused.
pub(crate) type Judged = Result<Identity, TokenError>;

/// Why a token could not be introspected: the authorization server's side
/// (503 to the client, the reason to the log).
#[derive(Debug)]
pub(crate) enum IntrospectError {
    /// No endpoint configured, and none found in the metadata.
    Discovery(KeysError),
    /// The endpoint could not be reached or did not answer in time.
    Fetch(String, FetchError),
    /// It answered with another status than 200.
    Status(String, u16),
    /// Its answer could not be read.
    Answer(String, AnswerError),
}

impl fmt::Display for IntrospectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IntrospectError::Discovery(e) => write!(f, "no introspection endpoint: {e}"),
            IntrospectError::Fetch(url, e) => write!(f, "introspection at {url}: {e}"),
            IntrospectError::Status(url, s) => {
                write!(f, "introspection at {url} answered {s}, not 200")
            }
            IntrospectError::Answer(url, e) => write!(f, "introspection at {url}: {e}"),
        }
    }
}

/// The introspection of one route.
pub(crate) struct Introspector {
    settings: Introspection,
    /// The issuer, for discovery.
    issuer: JwtAuth,
    /// `Basic …`: the client's authentication.
    authorization: String,
    rules: ClaimRules,
    endpoint: Mutex<Option<Upstream>>,
    cache: Mutex<TokenCache<Judged>>,
    flights: Flights<Judged>,
}

impl Introspector {
    /// `client_secret` is the secret read from where the config says.
    pub(crate) fn new(
        settings: Introspection,
        issuer: JwtAuth,
        client_secret: &str,
        rules: ClaimRules,
    ) -> Self {
        Introspector {
            authorization: client_secret_basic(&settings.client_id, client_secret),
            endpoint: Mutex::new(settings.endpoint.clone()),
            cache: Mutex::new(TokenCache::new(settings.cache_size)),
            flights: Flights::new(),
            settings,
            issuer,
            rules,
        }
    }

    /// Which tokens it judges.
    pub(crate) fn tokens(&self) -> IntrospectionFor {
        self.settings.tokens
    }

    /// The judgement of `token`: from the cache, else from the
    /// authorization server (and then kept). Requests with a token being
    /// introspected wait for that answer.
    pub(crate) async fn judge(
        &self,
        dialer: &Dialer,
        token: &str,
    ) -> Result<Judged, IntrospectError> {
        cached_or_asked(&self.cache, &self.flights, token, || {
            self.introspect(dialer, token)
        })
        .await
    }

    /// One introspection, its answer judged and kept.
    async fn introspect(&self, dialer: &Dialer, token: &str) -> Result<Judged, IntrospectError> {
        let endpoint = self.endpoint(dialer).await?;
        let body = request_body(token);
        let form = Form {
            authorization: &self.authorization,
            body: &body,
        };
        let url = || endpoint.to_string();
        let (status, answer) = fetch::post_form(dialer, &endpoint, form, FETCH_TIMEOUT)
            .await
            .map_err(|e| IntrospectError::Fetch(url(), e))?;
        if status != 200 {
            return Err(IntrospectError::Status(url(), status));
        }
        let introspected = parse_answer(&answer).map_err(|e| IntrospectError::Answer(url(), e))?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let judged = match introspected {
            Introspected::Inactive => Err(TokenError::Inactive),
            Introspected::Active(claims) => {
                check_claims(claims, &self.rules, now).map(|identity| Identity {
                    scheme: Scheme::Introspection,
                    ..identity
                })
            }
        };
        let lifetime = match &judged {
            Ok(identity) => {
                let exp = identity
                    .claims
                    .as_ref()
                    .and_then(|c| c.get("exp")?.as_f64());
                // check_claims let it through: exp is a finite number.
                active_lifetime(exp.map(|e| e.max(0.0) as u64), now, self.settings.cache_ttl)
            }
            Err(_) => NEGATIVE_LIFETIME,
        };
        lock(&self.cache).insert(token, judged.clone(), lifetime, Instant::now());
        Ok(judged)
    }

    /// The endpoint: configured, or found once in the issuer's metadata
    /// (tried again on the next token while it cannot be found).
    async fn endpoint(&self, dialer: &Dialer) -> Result<Upstream, IntrospectError> {
        endpoint_once(
            &self.endpoint,
            dialer,
            &self.issuer,
            "introspection_endpoint",
        )
        .await
        .map_err(IntrospectError::Discovery)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
