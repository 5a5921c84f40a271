//! A route's signing keys: the JWKS, found and fetched through the dialer,
//! cached, refreshed when a token names a key not seen yet (at most once
//! per [`MISS_REFRESH`]), and kept while the JWKS endpoint is down.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use sluice_core::auth::Alg;
use sluice_core::auth::jwt::KeyType;

use super::fetch::{self, FetchError};
use crate::config::{JwtAuth, Upstream};
use crate::dial::Dialer;

/// How often a token with an unknown `kid` may make sluice fetch the keys.
pub(crate) const MISS_REFRESH: Duration = Duration::from_secs(30);
/// How often sluice tries again while it has no keys at all.
pub(crate) const EMPTY_RETRY: Duration = Duration::from_secs(5);
/// The deadline of one document fetch.
pub(crate) const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// One verification key.
pub(crate) struct Key {
    pub(crate) kid: Option<String>,
    pub(crate) key_type: KeyType,
    /// The JWK's own `alg`, when it names one.
    pub(crate) alg: Option<String>,
    pub(crate) key: DecodingKey,
}

/// Why the keys could not be (re)fetched.
#[derive(Debug)]
pub(crate) enum KeysError {
    Fetch(&'static str, String, FetchError),
    Document(&'static str, String),
}

impl std::fmt::Display for KeysError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeysError::Fetch(what, url, e) => write!(f, "{what} {url}: {e}"),
            KeysError::Document(what, why) => write!(f, "{what}: {why}"),
        }
    }
}

#[derive(Default)]
struct State {
    keys: std::sync::Arc<Vec<Key>>,
    /// Found by discovery (or configured).
    jwks_uri: Option<Upstream>,
    fetched_once: bool,
    last_attempt: Option<Instant>,
    last_miss_refresh: Option<Instant>,
    refreshing: bool,
}

/// The keys of one route.
pub(crate) struct KeyCache {
    settings: JwtAuth,
    state: Mutex<State>,
}

/// What a lookup found.
pub(crate) enum Lookup {
    Found(std::sync::Arc<Vec<Key>>, usize),
    /// Not in the keys (which may be empty).
    Missing {
        no_keys: bool,
    },
}

impl KeyCache {
    pub(crate) fn new(settings: JwtAuth) -> Self {
        let state = State {
            jwks_uri: settings.jwks_uri.clone(),
            ..State::default()
        };
        KeyCache {
            settings,
            state: Mutex::new(state),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The key a token with `kid` and `alg` is verified with, from the
    /// cache as it is.
    pub(crate) fn lookup(&self, kid: Option<&str>, alg: Alg) -> Lookup {
        let keys = self.lock().keys.clone();
        let found = match kid {
            Some(kid) => keys.iter().position(|k| k.kid.as_deref() == Some(kid)),
            // No kid: only when exactly one key could verify this alg.
            None => {
                let mut fitting = keys
                    .iter()
                    .enumerate()
                    .filter(|(_, k)| k.key_type == alg.key_type());
                match (fitting.next(), fitting.next()) {
                    (Some((i, _)), None) => Some(i),
                    _ => None,
                }
            }
        };
        match found {
            Some(i) => Lookup::Found(keys, i),
            None => Lookup::Missing {
                no_keys: keys.is_empty(),
            },
        }
    }

    /// Whether a token's unknown key may trigger a fetch now (and, if so,
    /// claims the slot): at most once per [`MISS_REFRESH`], or per
    /// [`EMPTY_RETRY`] while there are no keys, never two at once.
    pub(crate) fn may_refresh(&self, now: Instant) -> bool {
        let mut s = self.lock();
        if s.refreshing {
            return false;
        }
        let (last, every) = match s.keys.is_empty() {
            true => (s.last_attempt, EMPTY_RETRY),
            false => (s.last_miss_refresh, MISS_REFRESH),
        };
        if last.is_some_and(|t| now.duration_since(t) < every) {
            return false;
        }
        s.last_miss_refresh = Some(now);
        true
    }

    /// Whether keys were ever fetched.
    pub(crate) fn has_keys(&self) -> bool {
        !self.lock().keys.is_empty()
    }

    /// With no keys yet and a fetch under way (the one at start), waits
    /// for it to end, so the first tokens are judged rather than refused.
    pub(crate) async fn settle(&self) {
        let deadline = Instant::now() + FETCH_TIMEOUT * 2;
        loop {
            {
                let s = self.lock();
                if !s.keys.is_empty() || !s.refreshing {
                    return;
                }
            }
            if Instant::now() >= deadline {
                return;
            }
            crate::rt::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Fetches the keys (discovering the JWKS first if needed). On failure
    /// the keys held so far stay.
    pub(crate) async fn refresh(&self, dialer: &Dialer) -> Result<usize, KeysError> {
        let jwks_uri = {
            let mut s = self.lock();
            if s.refreshing {
                return Ok(s.keys.len());
            }
            s.refreshing = true;
            s.last_attempt = Some(Instant::now());
            s.jwks_uri.clone()
        };
        let result = self.fetch(dialer, jwks_uri).await;
        let mut s = self.lock();
        s.refreshing = false;
        let (uri, keys) = result?;
        s.jwks_uri = Some(uri);
        s.fetched_once = true;
        let n = keys.len();
        s.keys = std::sync::Arc::new(keys);
        Ok(n)
    }

    async fn fetch(
        &self,
        dialer: &Dialer,
        jwks_uri: Option<Upstream>,
    ) -> Result<(Upstream, Vec<Key>), KeysError> {
        let uri = match jwks_uri {
            Some(uri) => uri,
            None => discover(dialer, &self.settings, "jwks_uri").await?,
        };
        let body = fetch::get(dialer, &uri, FETCH_TIMEOUT)
            .await
            .map_err(|e| KeysError::Fetch("JWKS", uri.to_string(), e))?;
        let keys = parse_jwks(&body).map_err(|why| KeysError::Document("JWKS", why))?;
        Ok((uri, keys))
    }
}

/// An endpoint of the issuer's kept in `known`: the one configured, else
/// `field` of its metadata, found once (and tried again on the next call
/// while it cannot be found).
pub(crate) async fn endpoint_once(
    known: &Mutex<Option<Upstream>>,
    dialer: &Dialer,
    issuer: &JwtAuth,
    field: &'static str,
) -> Result<Upstream, KeysError> {
    let lock = || known.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(url) = lock().clone() {
        return Ok(url);
    }
    let url = discover(dialer, issuer, field).await?;
    *lock() = Some(url.clone());
    Ok(url)
}

/// The URL `field` names (`jwks_uri`, `introspection_endpoint`…) in the
/// issuer's RFC 8414 metadata, else in its OpenID Connect discovery
/// document. Either must name the configured issuer exactly (RFC 8414
/// §3.3).
pub(crate) async fn discover(
    dialer: &Dialer,
    settings: &JwtAuth,
    field: &'static str,
) -> Result<Upstream, KeysError> {
    let issuer = &settings.issuer_url;
    let path = issuer.path.trim_end_matches('/');
    let rfc8414 = format!(
        "{}/.well-known/oauth-authorization-server{path}",
        issuer.origin()
    );
    let oidc = format!("{}{path}/.well-known/openid-configuration", issuer.origin());
    let mut last = None;
    for (what, url) in [("RFC 8414 metadata", rfc8414), ("OpenID discovery", oidc)] {
        let Ok(url) = Upstream::parse(&url) else {
            continue;
        };
        match fetch::get(dialer, &url, FETCH_TIMEOUT).await {
            Ok(body) => match url_of(settings, what, &body, field) {
                Ok(found) => return Ok(found),
                // The other document may name it.
                Err(e) => last = Some(e),
            },
            Err(e) => last = Some(KeysError::Fetch(what, url.to_string(), e)),
        }
    }
    Err(last.unwrap_or(KeysError::Document("discovery", "no URL".into())))
}

fn url_of(
    settings: &JwtAuth,
    what: &'static str,
    body: &[u8],
    field: &'static str,
) -> Result<Upstream, KeysError> {
    let doc: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| KeysError::Document(what, format!("not JSON: {e}")))?;
    if doc["issuer"].as_str() != Some(settings.issuer.as_str()) {
        return Err(KeysError::Document(
            what,
            format!("names issuer {}, not {:?}", doc["issuer"], settings.issuer),
        ));
    }
    let uri = doc[field]
        .as_str()
        .ok_or_else(|| KeysError::Document(what, format!("no {field}")))?;
    Upstream::parse(uri).map_err(|e| KeysError::Document(what, e))
}

/// The usable signature keys of a JWKS. Keys sluice cannot or must not
/// use are skipped: symmetric (`oct`) keys, encryption keys, curves it does
/// not verify, and anything it cannot read.
pub(crate) fn parse_jwks(body: &[u8]) -> Result<Vec<Key>, String> {
    let doc: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let entries = doc["keys"]
        .as_array()
        .ok_or_else(|| "no \"keys\" array".to_string())?;
    let mut keys = Vec::new();
    for entry in entries {
        let Ok(jwk) = serde_json::from_value::<Jwk>(entry.clone()) else {
            continue;
        };
        if matches!(
            jwk.common.public_key_use,
            Some(PublicKeyUse::Encryption | PublicKeyUse::Other(_))
        ) {
            continue;
        }
        let key_type = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => KeyType::Rsa,
            AlgorithmParameters::EllipticCurve(p) => match p.curve {
                EllipticCurve::P256 => KeyType::EcP256,
                EllipticCurve::P384 => KeyType::EcP384,
                _ => continue,
            },
            AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
                KeyType::Ed25519
            }
            AlgorithmParameters::OctetKeyPair(_) | AlgorithmParameters::OctetKey(_) => continue,
        };
        let Ok(key) = DecodingKey::from_jwk(&jwk) else {
            continue;
        };
        keys.push(Key {
            kid: jwk.common.key_id.clone(),
            key_type,
            alg: entry["alg"].as_str().map(str::to_string),
            key,
        });
    }
    Ok(keys)
}

/// jsonwebtoken's name for an algorithm sluice verifies.
pub(crate) fn jose_alg(alg: Alg) -> jsonwebtoken::Algorithm {
    use jsonwebtoken::Algorithm as J;
    match alg {
        Alg::Rs256 => J::RS256,
        Alg::Rs384 => J::RS384,
        Alg::Rs512 => J::RS512,
        Alg::Ps256 => J::PS256,
        Alg::Ps384 => J::PS384,
        Alg::Ps512 => J::PS512,
        Alg::Es256 => J::ES256,
        Alg::Es384 => J::ES384,
        Alg::EdDsa => J::EdDSA,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_usable_signature_keys_are_kept() {
        let jwks = serde_json::json!({"keys": [
            // Kept: RSA, P-256, Ed25519.
            {"kty": "RSA", "kid": "r", "alg": "RS256", "use": "sig",
             "n": "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw",
             "e": "AQAB"},
            {"kty": "EC", "kid": "e", "crv": "P-256",
             "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
             "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
            {"kty": "OKP", "kid": "d", "crv": "Ed25519",
             "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            // Left out: a symmetric key, an encryption key, P-521, X25519, junk.
            {"kty": "oct", "kid": "s", "k": "c2VjcmV0"},
            {"kty": "EC", "kid": "enc", "use": "enc", "crv": "P-256",
             "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
             "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
            {"kty": "EC", "kid": "big", "crv": "P-521", "x": "AA", "y": "AA"},
            {"kty": "OKP", "kid": "x", "crv": "X25519", "x": "AA"},
            {"kty": "RSA", "kid": "broken"},
            "not a key",
        ]});
        let keys = parse_jwks(jwks.to_string().as_bytes()).unwrap();
        let kept: Vec<(Option<&str>, KeyType)> = keys
            .iter()
            .map(|k| (k.kid.as_deref(), k.key_type))
            .collect();
        assert_eq!(
            kept,
            [
                (Some("r"), KeyType::Rsa),
                (Some("e"), KeyType::EcP256),
                (Some("d"), KeyType::Ed25519)
            ]
        );
        assert_eq!(keys[0].alg.as_deref(), Some("RS256"));
        assert!(parse_jwks(b"{}").is_err());
        assert!(parse_jwks(b"[]").is_err());
        assert!(parse_jwks(b"not json").is_err());
    }
}
