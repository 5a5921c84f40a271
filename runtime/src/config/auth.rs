//! A route's `[route.auth]`: who may call it (JWTs from an authorization
//! server, API keys), read and checked at load like every other table.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sluice_core::auth::api_key::parse_sha256_hex;
use sluice_core::auth::gate::IntrospectionFor;
use sluice_core::auth::jwt::DEFAULT_ALGS;
use sluice_core::auth::scope::is_scope_token;
use sluice_core::auth::{Alg, ApiKey, ApiKeys, Resource};

use super::de::{
    At, Count, Grace, Key, Leaf, List, Name, Refused, Scalar, Source, or, span, tables,
};
use super::file::SecretSource;
use super::{ConfigError, EnvValue, Secret, Upstream};

type Result<T> = std::result::Result<T, ConfigError>;

/// Who may call a route, and what sluice does with their token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteAuth {
    /// The resource identifier (RFC 8707) clients use for the route: what
    /// a token's `aud` must name, the metadata's `resource`.
    pub resource: Resource,
    /// JWT validation, when an `issuer` is set.
    pub jwt: Option<JwtAuth>,
    /// API keys (bearer tokens that are not JWTs), by hash.
    pub api_keys: ApiKeys,
    /// Scopes every caller must have; a token without them gets 403.
    pub required_scopes: Vec<String>,
    /// The metadata's `scopes_supported`. Default: `required_scopes`.
    pub scopes_supported: Vec<String>,
    /// Pass the client's `Authorization` upstream. Default false: the
    /// token was meant for sluice (the MCP spec forbids passing it on).
    pub forward_token: bool,
    /// RFC 7662 introspection at the issuer, for opaque tokens (or all).
    pub introspection: Option<Introspection>,
    /// RFC 8693 token exchange at the issuer for the upstream's token.
    pub token_exchange: Option<TokenExchange>,
}

/// How a route gets its upstream's token: the caller's validated token
/// exchanged at the authorization server's token endpoint (RFC 8693).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenExchange {
    /// The token endpoint. `None`: the issuer's metadata's
    /// `token_endpoint`.
    pub endpoint: Option<Upstream>,
    /// sluice's client id at the authorization server.
    pub client_id: String,
    /// Its secret (sent as `client_secret_basic`), read when sluice starts.
    pub client_secret: EnvValue,
    /// The `resource` asked for. Default: the upstream's URL without its
    /// query; `None` only when `audience` is given instead.
    pub resource: Option<String>,
    /// The `audience` asked for, if any.
    pub audience: Option<String>,
    /// The scopes asked for, if any.
    pub scopes: Vec<String>,
    /// The longest an exchanged token is used (never closer than 30 s to
    /// its `expires_in`). Default 5 minutes.
    pub cache_ttl: Duration,
    /// The most callers' tokens whose exchanged tokens are kept. Default
    /// 10000.
    pub cache_size: usize,
}

impl TokenExchange {
    /// The client secret, read now. `route` names the route in the error.
    pub fn client_secret(&self, route: &str) -> Result<String> {
        read_secret(&self.client_secret, route, "token_exchange")
    }
}

/// A client secret, read now.
fn read_secret(value: &EnvValue, route: &str, table: &str) -> Result<String> {
    let refused = |problem: String| {
        ConfigError::invalid(
            None,
            None,
            format!("route {route}: auth.{table}.client_secret"),
            problem,
        )
    };
    match value {
        EnvValue::Literal(secret) => Ok(secret.expose().to_string()),
        EnvValue::FromEnv(from) => std::env::var(from)
            .map_err(|_| refused(format!("sluice's environment variable {from} is not set"))),
        EnvValue::FromFile(path) => super::stdio::read_secret(path).map_err(refused),
    }
}

impl RouteAuth {
    /// The same, with its client secrets read now (from the environment or
    /// their files) and held as values: what the proxy runs with, so a
    /// secret that cannot be read fails the start or the reload, not a
    /// request. `route` names the route in the error.
    pub fn read_secrets(mut self, route: &str) -> Result<RouteAuth> {
        if let Some(it) = &mut self.introspection {
            it.client_secret = EnvValue::Literal(Secret::new(it.client_secret(route)?));
        }
        if let Some(te) = &mut self.token_exchange {
            te.client_secret = EnvValue::Literal(Secret::new(te.client_secret(route)?));
        }
        Ok(self)
    }
}

/// How a route's tokens are introspected (RFC 7662).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Introspection {
    /// The introspection endpoint. `None`: the issuer's metadata's
    /// `introspection_endpoint` (RFC 8414, then OpenID discovery).
    pub endpoint: Option<Upstream>,
    /// sluice's client id at the authorization server.
    pub client_id: String,
    /// Its secret (sent as `client_secret_basic`), read when sluice starts.
    pub client_secret: EnvValue,
    /// Which tokens: those that are not JWTs (default), or all.
    pub tokens: IntrospectionFor,
    /// The longest an active answer is kept (it is never kept past the
    /// token's `exp`). Default 5 minutes.
    pub cache_ttl: Duration,
    /// The most tokens whose answers are kept. Default 10000.
    pub cache_size: usize,
}

impl TokenExchange {
    /// The default [`TokenExchange::cache_ttl`].
    pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(300);
    /// The default [`TokenExchange::cache_size`].
    pub const DEFAULT_CACHE_SIZE: usize = 10_000;
}

impl Introspection {
    /// The client secret, read now (a variable or file it names must be
    /// readable). `route` names the route in the error.
    pub fn client_secret(&self, route: &str) -> Result<String> {
        read_secret(&self.client_secret, route, "introspection")
    }

    /// The default [`Introspection::cache_ttl`].
    pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(300);
    /// The default [`Introspection::cache_size`].
    pub const DEFAULT_CACHE_SIZE: usize = 10_000;
}

/// How a route's JWTs are validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JwtAuth {
    /// `iss`, compared exactly; also the authorization server the
    /// metadata names.
    pub issuer: String,
    /// The issuer as a URL sluice can dial, for discovery.
    pub issuer_url: Upstream,
    /// Where the keys are. `None`: found through the issuer's metadata
    /// (RFC 8414, then OpenID Connect discovery).
    pub jwks_uri: Option<Upstream>,
    /// The algorithms accepted. Default RS256, PS256, ES256, EdDSA.
    pub algorithms: Vec<Alg>,
    /// Clock skew allowed on `exp` and `nbf`. Default 60 s.
    pub leeway: Duration,
    /// The longest a verified token is honoured without checking its
    /// signature again (never past its `exp`); zero: every request is
    /// verified. Default 60 s.
    pub verified_cache_ttl: Duration,
    /// The most verified tokens kept (by SHA-256). Default 10000.
    pub verified_cache_size: usize,
}

impl JwtAuth {
    /// The default [`JwtAuth::leeway`].
    pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(60);
    /// The default [`JwtAuth::verified_cache_ttl`].
    pub const DEFAULT_VERIFIED_CACHE_TTL: Duration = Duration::from_secs(60);
    /// The default [`JwtAuth::verified_cache_size`].
    pub const DEFAULT_VERIFIED_CACHE_SIZE: usize = 10_000;
}

tables! {
    struct AuthTable("a table ([route.auth])") {
        issuer: Key<IssuerUrl>,
        audience: Key<ResourceUri>,
        jwks_uri: Key<Upstream>,
        algorithms: Key<List<AlgName>>,
        leeway: Key<Grace>,
        verified_cache_ttl: Key<Grace>,
        verified_cache_size: Key<Count<1>>,
        required_scopes: Key<List<ScopeName>>,
        scopes_supported: Key<List<ScopeName>>,
        forward_token: Key<bool>,
        api_key: Key<List<ApiKeyTable>>,
        api_keys_file: Key<PathBuf>,
        introspection: Key<IntrospectionTable>,
        token_exchange: Key<TokenExchangeTable>,
    }

    struct TokenExchangeTable("a table ([route.auth.token_exchange])") {
        endpoint: Key<Upstream>,
        client_id: Key<Name>,
        client_secret: Key<SecretSource>,
        resource: Key<ResourceUri>,
        audience: Key<Name>,
        scopes: Key<List<ScopeName>>,
        cache_ttl: Key<std::time::Duration>,
        cache_size: Key<Count<1>>,
    }

    struct IntrospectionTable("a table ([route.auth.introspection])") {
        endpoint: Key<Upstream>,
        client_id: Key<Name>,
        client_secret: Key<SecretSource>,
        tokens: Key<TokensName>,
        cache_ttl: Key<std::time::Duration>,
        cache_size: Key<Count<1>>,
    }

    struct ApiKeyTable("a table", array: "an array of tables ([[route.auth.api_key]])") {
        sha256: Key<Sha256Hex>,
        subject: Key<Name>,
        scopes: Key<List<ScopeName>>,
    }

    struct KeysFile("a table") {
        api_key: Key<List<ApiKeyTable>>,
    }
}

/// `[route.auth]` as the route table holds it.
pub(super) struct AuthKey(AuthTable);

impl<'de> Leaf<'de> for AuthKey {
    const EXPECTED: &'static str = AuthTable::EXPECTED;

    fn table<A: serde::de::MapAccess<'de>>(map: A) -> std::result::Result<Self, A::Error> {
        AuthTable::table(map).map(AuthKey)
    }
}

/// An issuer: an http(s) URL without query or fragment, kept as written.
struct IssuerUrl(String, Upstream);
/// A resource identifier.
struct ResourceUri(Resource);
/// An algorithm of the allow-list.
struct AlgName(Alg);
/// A scope token.
struct ScopeName(String);
/// A SHA-256 hash in hex.
struct Sha256Hex([u8; 32]);
/// Which tokens are introspected.
struct TokensName(IntrospectionFor);

impl<'de> Leaf<'de> for TokensName {
    const EXPECTED: &'static str = "\"opaque\" or \"all\"";

    fn scalar(value: Scalar<'_>) -> std::result::Result<Self, Refused> {
        match string(value)? {
            "opaque" => Ok(TokensName(IntrospectionFor::Opaque)),
            "all" => Ok(TokensName(IntrospectionFor::All)),
            other => Err(format!("{other:?} is not \"opaque\" or \"all\"").into()),
        }
    }
}

fn string(value: Scalar<'_>) -> std::result::Result<&str, Refused> {
    match value {
        Scalar::Str(s) => Ok(s),
        _ => Err(Refused::Kind),
    }
}

impl<'de> Leaf<'de> for IssuerUrl {
    const EXPECTED: &'static str = "a string (the authorization server's issuer URL)";

    fn scalar(value: Scalar<'_>) -> std::result::Result<Self, Refused> {
        let s = string(value)?;
        let url = Upstream::parse(s)?;
        if url.query.is_some() {
            return Err(
                format!("{s:?} has a query, which an issuer never has (RFC 8414 §2)").into(),
            );
        }
        Ok(IssuerUrl(s.to_string(), url))
    }
}

impl<'de> Leaf<'de> for ResourceUri {
    const EXPECTED: &'static str = "a string (the URL clients use for this route)";

    fn scalar(value: Scalar<'_>) -> std::result::Result<Self, Refused> {
        let s = string(value)?;
        Resource::parse(s)
            .map(ResourceUri)
            .map_err(|e| format!("{s:?} {e}").into())
    }
}

impl<'de> Leaf<'de> for AlgName {
    const EXPECTED: &'static str = "a string";
    const EXPECTED_ARRAY: &'static str = "an array of algorithm names ([\"RS256\", \"ES256\"])";

    fn scalar(value: Scalar<'_>) -> std::result::Result<Self, Refused> {
        Alg::parse(string(value)?)
            .map(AlgName)
            .map_err(|e| e.to_string().into())
    }
}

impl<'de> Leaf<'de> for ScopeName {
    const EXPECTED: &'static str = "a string";

    fn scalar(value: Scalar<'_>) -> std::result::Result<Self, Refused> {
        let s = string(value)?;
        match is_scope_token(s) {
            true => Ok(ScopeName(s.to_string())),
            false => Err(format!(
                "{s:?} is not a scope (printable ASCII without spaces, quotes or backslashes)"
            )
            .into()),
        }
    }
}

impl<'de> Leaf<'de> for Sha256Hex {
    const EXPECTED: &'static str = "a string";

    fn scalar(value: Scalar<'_>) -> std::result::Result<Self, Refused> {
        parse_sha256_hex(string(value)?)
            .map(Sha256Hex)
            .map_err(|e| e.to_string().into())
    }
}

/// Checks a route's `[route.auth]` (`key` names the route's keys).
pub(super) fn route_auth(
    src: &Source<'_>,
    key: &dyn Fn(&str) -> String,
    auth: At<AuthKey>,
    base_dir: &Path,
    http: Option<&super::Http>,
) -> Result<RouteAuth> {
    let (t, at) = (auth.value.0, auth.span);
    let key = |k: &str| key(&format!("auth.{k}"));
    let Some(resource) = t.audience else {
        return Err(src.err(
            &at,
            key("audience"),
            "missing (the URL clients use for this route, e.g. \"https://mcp.example.com/mcp\": tokens must name it as their audience)",
        ));
    };
    let jwt = match t.issuer {
        Some(At {
            value: IssuerUrl(issuer, issuer_url),
            ..
        }) => {
            let algorithms = match t.algorithms {
                Some(list) if list.value.is_empty() => {
                    return Err(src.err(
                        &list.span,
                        key("algorithms"),
                        "an empty list would refuse every token",
                    ));
                }
                Some(list) => {
                    let mut algs: Vec<Alg> = Vec::new();
                    for (j, At { value, span }) in list.value.into_iter().enumerate() {
                        if algs.contains(&value.0) {
                            let problem = format!("{} is listed twice", value.0);
                            return Err(src.err(&span, key(&format!("algorithms[{j}]")), problem));
                        }
                        algs.push(value.0);
                    }
                    algs
                }
                None => DEFAULT_ALGS.to_vec(),
            };
            Some(JwtAuth {
                issuer,
                issuer_url,
                jwks_uri: t.jwks_uri.map(|u| u.value),
                algorithms,
                leeway: or(t.leeway, JwtAuth::DEFAULT_LEEWAY),
                verified_cache_ttl: or(t.verified_cache_ttl, JwtAuth::DEFAULT_VERIFIED_CACHE_TTL),
                verified_cache_size: or(
                    t.verified_cache_size,
                    JwtAuth::DEFAULT_VERIFIED_CACHE_SIZE,
                ),
            })
        }
        None => {
            let jwt_key = [
                ("jwks_uri", span(&t.jwks_uri)),
                ("algorithms", span(&t.algorithms)),
                ("leeway", span(&t.leeway)),
                ("verified_cache_ttl", span(&t.verified_cache_ttl)),
                ("verified_cache_size", span(&t.verified_cache_size)),
            ]
            .into_iter()
            .find_map(|(k, s)| Some((k, s?)));
            if let Some((k, s)) = jwt_key {
                return Err(src.err(s, key(k), "only applies with issuer (JWT validation)"));
            }
            None
        }
    };

    let mut keys: Vec<ApiKey> = Vec::new();
    if let Some(list) = t.api_key {
        api_keys(
            src,
            &|j, k| key(&format!("api_key[{j}].{k}")),
            list.value,
            &mut keys,
        )?;
    }
    if let Some(file) = t.api_keys_file {
        let path = base_dir.join(&file.value);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            src.err(
                &file.span,
                key("api_keys_file"),
                format!("cannot read {}: {e}", path.display()),
            )
        })?;
        let origin = path.display().to_string();
        let file_src = Source {
            text: &text,
            origin: &origin,
        };
        let keys_file: KeysFile = file_src.read()?;
        let list = keys_file.api_key.map(|l| l.value).unwrap_or_default();
        api_keys(
            &file_src,
            &|j, k| format!("api_key[{j}].{k}"),
            list,
            &mut keys,
        )?;
    }
    let introspection = match t.introspection {
        None => None,
        Some(At { value: it, span }) => {
            let table_key = key("introspection");
            let key = |k: &str| format!("{table_key}.{k}");
            if jwt.is_none() {
                return Err(src.err(
                    &span,
                    table_key.clone(),
                    "needs issuer: the authorization server whose tokens are introspected",
                ));
            }
            let (client_id, client_secret) =
                client(src, &key, &span, it.client_id, it.client_secret, base_dir)?;
            Some(Introspection {
                endpoint: it.endpoint.map(|e| e.value),
                client_id,
                client_secret,
                tokens: it.tokens.map_or(IntrospectionFor::Opaque, |t| t.value.0),
                cache_ttl: or(it.cache_ttl, Introspection::DEFAULT_CACHE_TTL),
                cache_size: or(it.cache_size, Introspection::DEFAULT_CACHE_SIZE),
            })
        }
    };
    let token_exchange = match t.token_exchange {
        None => None,
        Some(At { value: te, span }) => {
            let table_key = key("token_exchange");
            let key = |k: &str| format!("{table_key}.{k}");
            let refuse = |problem: &str| Err(src.err(&span, table_key.clone(), problem));
            if jwt.is_none() {
                return refuse("needs issuer: the authorization server that exchanges the tokens");
            }
            let Some(http) = http else {
                return refuse(
                    "only on a route with an upstream URL (the exchanged token is for that upstream)",
                );
            };
            if !keys.is_empty() {
                return refuse("cannot go with API keys: an API key is no token to exchange");
            }
            if t.forward_token.as_ref().is_some_and(|f| f.value) {
                return refuse(
                    "cannot go with forward_token = true: the upstream gets the exchanged token",
                );
            }
            if http
                .upstream_headers
                .iter()
                .any(|h| h.name.eq_ignore_ascii_case("authorization"))
            {
                return refuse(
                    "the route's upstream_headers set Authorization, which the exchanged token replaces: remove one",
                );
            }
            let (client_id, client_secret) =
                client(src, &key, &span, te.client_id, te.client_secret, base_dir)?;
            let audience = te.audience.map(|a| a.value.0);
            let u = &http.upstream;
            let resource = match te.resource {
                Some(r) => Some(r.value.0.as_str().to_string()),
                None if audience.is_some() => None,
                None => Some(format!("{}://{}{}", u.scheme, u.authority, u.path)),
            };
            Some(TokenExchange {
                endpoint: te.endpoint.map(|e| e.value),
                client_id,
                client_secret,
                resource,
                audience,
                scopes: te
                    .scopes
                    .map(|l| l.value.into_iter().map(|s| s.value.0).collect())
                    .unwrap_or_default(),
                cache_ttl: or(te.cache_ttl, TokenExchange::DEFAULT_CACHE_TTL),
                cache_size: or(te.cache_size, TokenExchange::DEFAULT_CACHE_SIZE),
            })
        }
    };
    if jwt.is_none() && keys.is_empty() {
        return Err(src.err(
            &at,
            key("issuer"),
            "missing: give issuer (JWTs from an authorization server), api_key entries or api_keys_file",
        ));
    }
    let required_scopes: Vec<String> = t
        .required_scopes
        .map(|l| l.value.into_iter().map(|s| s.value.0).collect())
        .unwrap_or_default();
    let scopes_supported = match t.scopes_supported {
        Some(l) => l.value.into_iter().map(|s| s.value.0).collect(),
        None => required_scopes.clone(),
    };
    Ok(RouteAuth {
        resource: resource.value.0,
        jwt,
        api_keys: ApiKeys::new(keys),
        required_scopes,
        scopes_supported,
        forward_token: or(t.forward_token, false),
        introspection,
        token_exchange,
    })
}

/// A table's `client_id` and `client_secret` (`key` names its keys).
fn client(
    src: &Source<'_>,
    key: &dyn Fn(&str) -> String,
    table: &std::ops::Range<usize>,
    client_id: Key<Name>,
    client_secret: Key<SecretSource>,
    base_dir: &Path,
) -> Result<(String, EnvValue)> {
    let Some(client_id) = client_id else {
        return Err(src.err(
            table,
            key("client_id"),
            "missing (sluice's client id at the authorization server)",
        ));
    };
    let Some(secret) = client_secret else {
        return Err(src.err(
            table,
            key("client_secret"),
            "missing (a string, { from_env = \"NAME\" } or { from_file = \"PATH\" })",
        ));
    };
    let secret_key = |k: &str| key(&format!("client_secret{k}"));
    let value = secret
        .value
        .value(src, &secret_key, &secret.span, base_dir)?;
    Ok((client_id.value.0, value))
}

/// The `[[api_key]]` entries of a table, checked, appended to `keys`.
fn api_keys(
    src: &Source<'_>,
    key: &dyn Fn(usize, &str) -> String,
    list: List<ApiKeyTable>,
    keys: &mut Vec<ApiKey>,
) -> Result<()> {
    for (j, At { value: t, span: at }) in list.into_iter().enumerate() {
        let Some(hash) = t.sha256 else {
            return Err(src.err(
                &at,
                key(j, "sha256"),
                "missing (the key's SHA-256 in hex: printf %s \"$KEY\" | sha256sum)",
            ));
        };
        let Some(subject) = t.subject else {
            return Err(src.err(&at, key(j, "subject"), "missing (who holds this key)"));
        };
        if keys.iter().any(|k| k.sha256 == hash.value.0) {
            return Err(src.err(&hash.span, key(j, "sha256"), "the same key is listed twice"));
        }
        keys.push(ApiKey {
            sha256: hash.value.0,
            subject: subject.value.0,
            scopes: t
                .scopes
                .map(|l| l.value.into_iter().map(|s| s.value.0).collect())
                .unwrap_or_default(),
        });
    }
    Ok(())
}
