//! `[route.auth]`: defaults, every key, and each error with its key path
//! and position.

use std::path::Path;
use std::time::Duration;

use sluice::config::{Config, ConfigError, EnvValue, Introspection, JwtAuth, TokenExchange};
use sluice_core::auth::Alg;
use sluice_core::auth::api_key::sha256;
use sluice_core::auth::gate::IntrospectionFor;

const ROUTE: &str = "[[route]]\nupstream = \"http://127.0.0.1:3001/mcp\"\n";

fn parse_in(text: &str, dir: &Path) -> Result<Config, ConfigError> {
    Config::from_toml(text, "t.toml", dir)
}

fn parse(text: &str) -> Result<Config, ConfigError> {
    parse_in(text, Path::new("/etc/sluice"))
}

fn err(text: &str) -> String {
    match parse(text) {
        Ok(c) => panic!("accepted:\n{text}\n{c:#?}"),
        Err(e) => e.to_string(),
    }
}

const ALICE_KEY_SHA256: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

#[test]
fn no_auth_by_default() {
    let c = parse(ROUTE).unwrap();
    assert!(c.routes[0].auth.is_none());
    assert!(!c.log.redact_subject);
}

#[test]
fn jwt_defaults() {
    let c = parse(&format!(
        "{ROUTE}[route.auth]\nissuer = \"https://as.example.com\"\naudience = \"https://mcp.example.com/mcp\"\n"
    ))
    .unwrap();
    let auth = c.routes[0].auth.as_ref().unwrap();
    assert_eq!(auth.resource.as_str(), "https://mcp.example.com/mcp");
    let jwt = auth.jwt.as_ref().unwrap();
    assert_eq!(jwt.issuer, "https://as.example.com");
    assert_eq!(jwt.jwks_uri, None);
    assert_eq!(
        jwt.algorithms,
        [Alg::Rs256, Alg::Ps256, Alg::Es256, Alg::EdDsa]
    );
    assert_eq!(jwt.leeway, JwtAuth::DEFAULT_LEEWAY);
    assert_eq!(jwt.verified_cache_ttl, Duration::from_secs(60));
    assert_eq!(jwt.verified_cache_size, 10_000);
    assert!(auth.api_keys.is_empty());
    assert!(auth.required_scopes.is_empty() && auth.scopes_supported.is_empty());
    assert!(!auth.forward_token);
}

#[test]
fn every_key() {
    let c = parse(&format!(
        "{ROUTE}[route.auth]
issuer = \"https://as.example.com/tenant\"
audience = \"https://mcp.example.com/mcp\"
jwks_uri = \"https://as.example.com/keys?v=1\"
algorithms = [\"ES256\", \"RS384\"]
leeway = \"5s\"
verified_cache_ttl = \"0s\"
verified_cache_size = 5
required_scopes = [\"mcp:tools\"]
scopes_supported = [\"mcp:tools\", \"mcp:admin\"]
forward_token = true

[[route.auth.api_key]]
sha256 = \"{ALICE_KEY_SHA256}\"
subject = \"ci-bot\"
scopes = [\"mcp:tools\"]

[log]
redact_subject = true
"
    ))
    .unwrap();
    let auth = c.routes[0].auth.as_ref().unwrap();
    let jwt = auth.jwt.as_ref().unwrap();
    assert_eq!(jwt.issuer, "https://as.example.com/tenant");
    assert_eq!(jwt.jwks_uri.as_ref().unwrap().path, "/keys");
    assert_eq!(jwt.algorithms, [Alg::Es256, Alg::Rs384]);
    assert_eq!(jwt.leeway, Duration::from_secs(5));
    assert_eq!(jwt.verified_cache_ttl, Duration::ZERO, "0s turns it off");
    assert_eq!(jwt.verified_cache_size, 5);
    assert_eq!(auth.required_scopes, ["mcp:tools"]);
    assert_eq!(auth.scopes_supported, ["mcp:tools", "mcp:admin"]);
    assert!(auth.forward_token);
    let key = auth
        .api_keys
        .find("abc")
        .expect("sha256(abc) is configured");
    assert_eq!(
        (key.subject.as_str(), key.scopes.as_slice()),
        ("ci-bot", &["mcp:tools".to_string()][..])
    );
    assert!(c.log.redact_subject);

    // /config shows it, without the hash.
    let view = c.redacted_json();
    let shown = &view["routes"][0]["auth"];
    assert_eq!(
        shown["resource_metadata"],
        "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
    );
    assert_eq!(
        shown["jwt"]["jwks_uri"],
        "https://as.example.com/keys?v=<redacted>"
    );
    assert_eq!(shown["api_keys"][0]["subject"], "ci-bot");
    assert_eq!(shown["api_keys"][0]["sha256"], "<redacted>");
    assert!(!view.to_string().contains(ALICE_KEY_SHA256));
    assert_eq!(view["log"]["redact_subject"], true);
}

#[test]
fn api_keys_only_and_from_a_file() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("config_auth_keys");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let hash: String = sha256(b"sk-file")
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    std::fs::write(
        dir.join("keys.toml"),
        format!("[[api_key]]\nsha256 = \"{hash}\"\nsubject = \"file-bot\"\n"),
    )
    .unwrap();
    let c = parse_in(
        &format!("{ROUTE}[route.auth]\naudience = \"http://localhost:8080/mcp\"\napi_keys_file = \"keys.toml\"\n"),
        &dir,
    )
    .unwrap();
    let auth = c.routes[0].auth.as_ref().unwrap();
    assert!(auth.jwt.is_none());
    assert_eq!(auth.api_keys.find("sk-file").unwrap().subject, "file-bot");
    assert!(auth.api_keys.find("sk-other").is_none());

    // An error in the keys file names that file.
    std::fs::write(
        dir.join("bad.toml"),
        "[[api_key]]\nsha256 = \"xyz\"\nsubject = \"b\"\n",
    )
    .unwrap();
    let e = parse_in(
        &format!("{ROUTE}[route.auth]\naudience = \"http://localhost:8080/mcp\"\napi_keys_file = \"bad.toml\"\n"),
        &dir,
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        e,
        format!(
            "{}:2:10: api_key[0].sha256: is not a SHA-256 hash: 64 hexadecimal digits (sha256sum of the key)",
            dir.join("bad.toml").display()
        )
    );
}

#[test]
fn errors_name_key_and_position() {
    let a = "[route.auth]\n";
    let aud = "audience = \"https://m/mcp\"\n";
    let iss = "issuer = \"https://as\"\n";
    for (text, want) in [
        (
            format!("{ROUTE}{a}{iss}"),
            "t.toml:3:1: route[0].auth.audience: missing (the URL clients use for this route, e.g. \"https://mcp.example.com/mcp\": tokens must name it as their audience)",
        ),
        (
            format!("{ROUTE}{a}{aud}"),
            "t.toml:3:1: route[0].auth.issuer: missing: give issuer (JWTs from an authorization server), api_key entries or api_keys_file",
        ),
        (
            format!("{ROUTE}{a}{aud}{iss}algorithms = [\"none\"]\n"),
            "t.toml:6:15: route[0].auth.algorithms[0]: \"none\" (an unsigned token) is never accepted",
        ),
        (
            format!("{ROUTE}{a}{aud}{iss}algorithms = [\"HS256\"]\n"),
            "t.toml:6:15: route[0].auth.algorithms[0]: \"HS256\" is an HMAC algorithm, never accepted: a resource server holds no shared secret",
        ),
        (
            format!("{ROUTE}{a}{aud}{iss}algorithms = [\"RS1\"]\n"),
            "t.toml:6:15: route[0].auth.algorithms[0]: \"RS1\" is not one of: RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA",
        ),
        (
            format!("{ROUTE}{a}{aud}{iss}algorithms = []\n"),
            "t.toml:6:14: route[0].auth.algorithms: an empty list would refuse every token",
        ),
        (
            format!("{ROUTE}{a}{aud}{iss}algorithms = [\"ES256\", \"ES256\"]\n"),
            "t.toml:6:24: route[0].auth.algorithms[1]: ES256 is listed twice",
        ),
        (
            format!("{ROUTE}{a}{aud}jwks_uri = \"https://as/jwks\"\napi_keys_file = \"k\"\n"),
            "t.toml:5:12: route[0].auth.jwks_uri: only applies with issuer (JWT validation)",
        ),
        (
            format!("{ROUTE}{a}audience = \"https://m/mcp#x\"\n"),
            "t.toml:4:12: route[0].auth.audience: \"https://m/mcp#x\" must not have a query or a fragment",
        ),
        (
            format!("{ROUTE}{a}audience = \"mcp\"\n"),
            "t.toml:4:12: route[0].auth.audience: \"mcp\" is not an absolute http or https URL",
        ),
        (
            format!("{ROUTE}{a}{aud}issuer = \"https://as/?x=1\"\n"),
            "t.toml:5:10: route[0].auth.issuer: \"https://as/?x=1\" has a query, which an issuer never has (RFC 8414 §2)",
        ),
        (
            format!("{ROUTE}{a}{aud}{iss}required_scopes = [\"a b\"]\n"),
            "t.toml:6:20: route[0].auth.required_scopes[0]: \"a b\" is not a scope (printable ASCII without spaces, quotes or backslashes)",
        ),
        (
            format!("{ROUTE}{a}{aud}{iss}leeway = \"off\"\n"),
            "t.toml:6:10: route[0].auth.leeway: cannot be \"off\"; give a duration such as 10s",
        ),
        (
            format!("{ROUTE}{a}{aud}{iss}verified_cache_size = 0\n"),
            "t.toml:6:23: route[0].auth.verified_cache_size: 0 is out of range (at least 1)",
        ),
        (
            format!("{ROUTE}{a}{aud}verified_cache_ttl = \"1m\"\n"),
            "t.toml:5:22: route[0].auth.verified_cache_ttl: only applies with issuer (JWT validation)",
        ),
        (
            format!("{ROUTE}{a}{aud}{iss}forward_token = \"yes\"\n"),
            "t.toml:6:17: route[0].auth.forward_token: expected true or false, found a string \"yes\"",
        ),
        (
            format!("{ROUTE}{a}{aud}{iss}mode = \"jwt\"\n"),
            "t.toml:6:1: route[0].auth.mode: unknown key (expected one of: issuer, audience, jwks_uri, algorithms, leeway, verified_cache_ttl, verified_cache_size, required_scopes, scopes_supported, forward_token, api_key, api_keys_file, introspection, token_exchange)",
        ),
        (
            format!("{ROUTE}{a}{aud}[[route.auth.api_key]]\nsubject = \"x\"\n"),
            "t.toml:5:1: route[0].auth.api_key[0].sha256: missing (the key's SHA-256 in hex: printf %s \"$KEY\" | sha256sum)",
        ),
        (
            format!("{ROUTE}{a}{aud}[[route.auth.api_key]]\nsha256 = \"{ALICE_KEY_SHA256}\"\n"),
            "t.toml:5:1: route[0].auth.api_key[0].subject: missing (who holds this key)",
        ),
        (
            format!(
                "{ROUTE}{a}{aud}[[route.auth.api_key]]\nsha256 = \"{ALICE_KEY_SHA256}\"\nsubject = \"a\"\n[[route.auth.api_key]]\nsha256 = \"{ALICE_KEY_SHA256}\"\nsubject = \"b\"\n"
            ),
            "t.toml:9:10: route[0].auth.api_key[1].sha256: the same key is listed twice",
        ),
        (
            format!("{ROUTE}{a}{aud}api_keys_file = \"missing.toml\"\n"),
            "t.toml:5:17: route[0].auth.api_keys_file: cannot read /etc/sluice/missing.toml: No such file or directory (os error 2)",
        ),
    ] {
        assert_eq!(err(&text), want, "\n{text}");
    }
}

#[test]
fn introspection_defaults_and_every_key() {
    let base = format!(
        "{ROUTE}[route.auth]\nissuer = \"https://as.example.com\"\naudience = \"https://mcp.example.com/mcp\"\n"
    );
    let c = parse(&format!(
        "{base}[route.auth.introspection]\nclient_id = \"sluice\"\nclient_secret = {{ from_env = \"AS_SECRET\" }}\n"
    ))
    .unwrap();
    let it = c.routes[0]
        .auth
        .as_ref()
        .unwrap()
        .introspection
        .as_ref()
        .unwrap();
    assert_eq!(it.endpoint, None);
    assert_eq!(it.client_id, "sluice");
    assert_eq!(it.client_secret, EnvValue::FromEnv("AS_SECRET".into()));
    assert_eq!(it.tokens, IntrospectionFor::Opaque);
    assert_eq!(it.cache_ttl, Introspection::DEFAULT_CACHE_TTL);
    assert_eq!(it.cache_size, Introspection::DEFAULT_CACHE_SIZE);

    let c = parse(&format!(
        "{base}[route.auth.introspection]\nendpoint = \"https://as.example.com/introspect?k=v\"\n\
         client_id = \"sluice\"\nclient_secret = {{ from_file = \"secret\" }}\ntokens = \"all\"\n\
         cache_ttl = \"30s\"\ncache_size = 5\n"
    ))
    .unwrap();
    let it = c.routes[0]
        .auth
        .as_ref()
        .unwrap()
        .introspection
        .as_ref()
        .unwrap();
    assert_eq!(it.endpoint.as_ref().unwrap().path, "/introspect");
    assert_eq!(
        it.client_secret,
        EnvValue::FromFile("/etc/sluice/secret".into())
    );
    assert_eq!(it.tokens, IntrospectionFor::All);
    assert_eq!(it.cache_ttl, Duration::from_secs(30));
    assert_eq!(it.cache_size, 5);

    // /config shows where the secret is, never a literal one.
    let c = parse(&format!(
        "{base}[route.auth.introspection]\nclient_id = \"sluice\"\nclient_secret = \"hunter2\"\n"
    ))
    .unwrap();
    let view = c.redacted_json();
    let shown = &view["routes"][0]["auth"]["introspection"];
    assert_eq!(shown["client_id"], "sluice");
    assert_eq!(shown["client_secret"], "<redacted>");
    assert!(!view.to_string().contains("hunter2"));
}

#[test]
fn introspection_errors() {
    let a = "[route.auth]\naudience = \"https://m/mcp\"\n";
    let iss = "issuer = \"https://as\"\n";
    let t = "[route.auth.introspection]\n";
    let id = "client_id = \"c\"\n";
    let secret = "client_secret = { from_env = \"S\" }\n";
    for (text, want) in [
        (
            format!("{ROUTE}{a}{t}{id}{secret}"),
            "t.toml:5:1: route[0].auth.introspection: needs issuer: the authorization server whose tokens are introspected",
        ),
        (
            format!("{ROUTE}{a}{iss}{t}{secret}"),
            "t.toml:6:1: route[0].auth.introspection.client_id: missing (sluice's client id at the authorization server)",
        ),
        (
            format!("{ROUTE}{a}{iss}{t}{id}"),
            "t.toml:6:1: route[0].auth.introspection.client_secret: missing (a string, { from_env = \"NAME\" } or { from_file = \"PATH\" })",
        ),
        (
            format!(
                "{ROUTE}{a}{iss}{t}{id}client_secret = {{ from_env = \"S\", from_file = \"f\" }}\n"
            ),
            "t.toml:8:47: route[0].auth.introspection.client_secret.from_file: give from_env or from_file, not both",
        ),
        (
            format!("{ROUTE}{a}{iss}{t}{id}{secret}tokens = \"jwt\"\n"),
            "t.toml:9:10: route[0].auth.introspection.tokens: \"jwt\" is not \"opaque\" or \"all\"",
        ),
        (
            format!("{ROUTE}{a}{iss}{t}{id}{secret}cache_size = 0\n"),
            "t.toml:9:14: route[0].auth.introspection.cache_size: 0 is out of range (at least 1)",
        ),
        (
            format!("{ROUTE}{a}{iss}{t}{id}{secret}ttl = \"1s\"\n"),
            "t.toml:9:1: route[0].auth.introspection.ttl: unknown key (expected one of: endpoint, client_id, client_secret, tokens, cache_ttl, cache_size)",
        ),
    ] {
        assert_eq!(err(&text), want, "\n{text}");
    }
}

#[test]
fn token_exchange_defaults_and_every_key() {
    let route = "[[route]]\nupstream = \"https://up.example/mcp?key=secret\"\n";
    let base = format!(
        "{route}[route.auth]\nissuer = \"https://as.example.com\"\naudience = \"https://mcp.example.com/mcp\"\n"
    );
    let c = parse(&format!(
        "{base}[route.auth.token_exchange]\nclient_id = \"sluice\"\nclient_secret = {{ from_env = \"TE_SECRET\" }}\n"
    ))
    .unwrap();
    let te = c.routes[0]
        .auth
        .as_ref()
        .unwrap()
        .token_exchange
        .as_ref()
        .unwrap();
    assert_eq!(te.endpoint, None);
    assert_eq!(te.client_id, "sluice");
    assert_eq!(te.client_secret, EnvValue::FromEnv("TE_SECRET".into()));
    // The upstream's URL, never its query (which may hold a secret).
    assert_eq!(te.resource.as_deref(), Some("https://up.example/mcp"));
    assert_eq!(te.audience, None);
    assert!(te.scopes.is_empty());
    assert_eq!(te.cache_ttl, TokenExchange::DEFAULT_CACHE_TTL);
    assert_eq!(te.cache_size, TokenExchange::DEFAULT_CACHE_SIZE);

    // An audience alone asks for no resource.
    let c = parse(&format!(
        "{base}[route.auth.token_exchange]\nclient_id = \"sluice\"\nclient_secret = \"x\"\naudience = \"up\"\n"
    ))
    .unwrap();
    let te = c.routes[0]
        .auth
        .as_ref()
        .unwrap()
        .token_exchange
        .as_ref()
        .unwrap();
    assert_eq!(
        (te.resource.as_deref(), te.audience.as_deref()),
        (None, Some("up"))
    );

    let c = parse(&format!(
        "{base}[route.auth.token_exchange]\nendpoint = \"https://as.example.com/token\"\n\
         client_id = \"sluice\"\nclient_secret = {{ from_file = \"s\" }}\nresource = \"https://r.example/\"\n\
         audience = \"up\"\nscopes = [\"a\", \"b\"]\ncache_ttl = \"1m\"\ncache_size = 7\n"
    ))
    .unwrap();
    let te = c.routes[0]
        .auth
        .as_ref()
        .unwrap()
        .token_exchange
        .as_ref()
        .unwrap();
    assert_eq!(te.endpoint.as_ref().unwrap().path, "/token");
    assert_eq!(te.client_secret, EnvValue::FromFile("/etc/sluice/s".into()));
    assert_eq!(te.resource.as_deref(), Some("https://r.example/"));
    assert_eq!(te.scopes, ["a", "b"]);
    assert_eq!((te.cache_ttl, te.cache_size), (Duration::from_secs(60), 7));
    let view = c.redacted_json();
    let shown = &view["routes"][0]["auth"]["token_exchange"];
    assert_eq!(shown["client_secret"]["from_file"], "/etc/sluice/s");
    assert_eq!(shown["audience"], "up");
}

#[test]
fn token_exchange_errors() {
    let a = "[route.auth]\naudience = \"https://m/mcp\"\n";
    let iss = "issuer = \"https://as\"\n";
    let t = "[route.auth.token_exchange]\nclient_id = \"c\"\nclient_secret = \"s\"\n";
    let key = format!("[[route.auth.api_key]]\nsha256 = \"{ALICE_KEY_SHA256}\"\nsubject = \"a\"\n");
    let command = "[[route]]\ncommand = [\"mcp-server\"]\n";
    for (text, want) in [
        (
            format!("{ROUTE}{a}{key}{t}"),
            "t.toml:8:1: route[0].auth.token_exchange: needs issuer: the authorization server that exchanges the tokens",
        ),
        (
            format!("{command}{a}{iss}{t}"),
            "t.toml:6:1: route[0].auth.token_exchange: only on a route with an upstream URL (the exchanged token is for that upstream)",
        ),
        (
            format!("{ROUTE}{a}{iss}{key}{t}"),
            "t.toml:9:1: route[0].auth.token_exchange: cannot go with API keys: an API key is no token to exchange",
        ),
        (
            format!("{ROUTE}{a}{iss}forward_token = true\n{t}"),
            "t.toml:7:1: route[0].auth.token_exchange: cannot go with forward_token = true: the upstream gets the exchanged token",
        ),
        (
            format!("{ROUTE}upstream_headers = {{ authorization = \"Bearer x\" }}\n{a}{iss}{t}"),
            "t.toml:7:1: route[0].auth.token_exchange: the route's upstream_headers set Authorization, which the exchanged token replaces: remove one",
        ),
        (
            format!("{ROUTE}{a}{iss}[route.auth.token_exchange]\nclient_secret = \"s\"\n"),
            "t.toml:6:1: route[0].auth.token_exchange.client_id: missing (sluice's client id at the authorization server)",
        ),
        (
            format!("{ROUTE}{a}{iss}{t}resource = \"https://r/#f\"\n"),
            "t.toml:9:12: route[0].auth.token_exchange.resource: \"https://r/#f\" must not have a query or a fragment",
        ),
    ] {
        assert_eq!(err(&text), want, "\n{text}");
    }
}
