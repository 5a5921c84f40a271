//! RFC 8693 token exchange for a route's upstream: the caller's validated
//! token traded at the authorization server's token endpoint for one meant
//! for the upstream, kept per caller token until shortly before it expires
//! ([`sluice_core::auth::cache::exchanged_lifetime`]).

use std::fmt;
use std::sync::Mutex;
use std::time::Instant;

use sluice_core::auth::cache::{TokenCache, exchanged_lifetime};
use sluice_core::auth::introspection::client_secret_basic;
use sluice_core::auth::token_exchange::{ExchangeError, Target, parse_answer, request_body};
use sluice_core::auth::{Outage, UpstreamToken};

use super::fetch::{self, FetchError, Form};
use super::flight::{Flights, cached_or_asked};
use super::keys::{FETCH_TIMEOUT, KeysError, endpoint_once};
use crate::config::{JwtAuth, TokenExchange, Upstream};
use crate::dial::Dialer;

/// Why no token for the upstream was had (the reason for the log).
#[derive(Debug)]
pub(crate) enum ExchangeFailure {
    /// No endpoint configured, and none found in the metadata.
    Discovery(KeysError),
    /// The endpoint could not be reached or did not answer in time.
    Fetch(String, FetchError),
    /// It answered, without a usable token.
    Answer(String, ExchangeError),
}

impl ExchangeFailure {
    /// What the client is told.
    pub(crate) fn outage(&self) -> Outage {
        match self {
            ExchangeFailure::Discovery(_) | ExchangeFailure::Fetch(..) => {
                Outage::TokenExchangeUnavailable
            }
            ExchangeFailure::Answer(_, e) => e.outage(),
        }
    }
}

impl fmt::Display for ExchangeFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExchangeFailure::Discovery(e) => write!(f, "no token endpoint: {e}"),
            ExchangeFailure::Fetch(url, e) => write!(f, "token exchange at {url}: {e}"),
            ExchangeFailure::Answer(url, e) => write!(f, "token exchange at {url}: {e}"),
        }
    }
}

/// The token exchange of one route.
pub(crate) struct Exchanger {
    /// The issuer, for discovery.
    issuer: JwtAuth,
    /// `Basic …`: the client's authentication.
    authorization: String,
    target: Target,
    cache_ttl: std::time::Duration,
    endpoint: Mutex<Option<Upstream>>,
    cache: Mutex<TokenCache<UpstreamToken>>,
    flights: Flights<UpstreamToken>,
}

impl Exchanger {
    /// `client_secret` is the secret read from where the config says.
    pub(crate) fn new(settings: &TokenExchange, issuer: JwtAuth, client_secret: &str) -> Self {
        let scope = (!settings.scopes.is_empty()).then(|| settings.scopes.join(" "));
        Exchanger {
            issuer,
            authorization: client_secret_basic(&settings.client_id, client_secret),
            target: Target {
                resource: settings.resource.clone(),
                audience: settings.audience.clone(),
                scope,
            },
            cache_ttl: settings.cache_ttl,
            endpoint: Mutex::new(settings.endpoint.clone()),
            cache: Mutex::new(TokenCache::new(settings.cache_size)),
            flights: Flights::new(),
        }
    }

    /// The upstream's token for a caller with `subject_token`: kept from
    /// an earlier exchange, else exchanged now (and kept). Requests with a
    /// token being exchanged wait for that exchange.
    pub(crate) async fn token_for(
        &self,
        dialer: &Dialer,
        subject_token: &str,
    ) -> Result<UpstreamToken, ExchangeFailure> {
        cached_or_asked(&self.cache, &self.flights, subject_token, || {
            self.exchange(dialer, subject_token)
        })
        .await
    }

    /// One exchange, its token kept.
    async fn exchange(
        &self,
        dialer: &Dialer,
        subject_token: &str,
    ) -> Result<UpstreamToken, ExchangeFailure> {
        let endpoint = self.endpoint(dialer).await?;
        let body = request_body(subject_token, &self.target);
        let form = Form {
            authorization: &self.authorization,
            body: &body,
        };
        let url = || endpoint.to_string();
        let (status, answer) = fetch::post_form(dialer, &endpoint, form, FETCH_TIMEOUT)
            .await
            .map_err(|e| ExchangeFailure::Fetch(url(), e))?;
        let issued =
            parse_answer(status, &answer).map_err(|e| ExchangeFailure::Answer(url(), e))?;
        let token = UpstreamToken(issued.access_token);
        if let Some(lifetime) = exchanged_lifetime(issued.expires_in, self.cache_ttl) {
            lock(&self.cache).insert(subject_token, token.clone(), lifetime, Instant::now());
        }
        Ok(token)
    }

    /// The endpoint: configured, or found once in the issuer's metadata.
    async fn endpoint(&self, dialer: &Dialer) -> Result<Upstream, ExchangeFailure> {
        endpoint_once(&self.endpoint, dialer, &self.issuer, "token_endpoint")
            .await
            .map_err(ExchangeFailure::Discovery)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
