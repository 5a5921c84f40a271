//! The effective configuration as JSON, for the admin listener's
//! `/config`: every setting as the proxy runs it, defaults filled in, and
//! nothing a reader of the admin port could use to act as sluice.
//!
//! What is redacted (shown as [`REDACTED`]):
//! - a command route's literal `env` values (`from_env` shows the variable's
//!   name, `from_file` the path: the value itself is never read here);
//! - every value in an upstream URL's query (it goes upstream with every
//!   request, and API keys travel there);
//! - a command argument that is, or follows, a flag that names a credential
//!   (`--token X`, `--api-key=X`);
//! - in a hook's configuration, the value of every key that names a
//!   credential, at any depth; a configuration that is not JSON is
//!   redacted whole.

use serde_json::{Map, Value, json};

use super::{Backend, Config, EnvValue, HookMode, KeySource, MemberServer, StdioMode, Upstream};

/// What stands where a secret was.
pub const REDACTED: &str = "<redacted>";

/// Words that mark a name (a key, a flag, a query parameter) as holding a
/// credential.
const SECRET_WORDS: &[&str] = &[
    "auth",
    "token",
    "secret",
    "password",
    "passwd",
    "key",
    "cookie",
    "credential",
    "bearer",
    "private",
    "session",
    "signature",
];

/// Whether `name` looks like it holds a credential.
pub fn names_a_secret(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    SECRET_WORDS.iter().any(|w| lower.contains(w))
}

/// Where a secret value comes from; a literal one redacted.
fn source_json(value: &EnvValue) -> Value {
    match value {
        EnvValue::Literal(_) => json!(REDACTED),
        EnvValue::FromEnv(name) => json!({ "from_env": name }),
        EnvValue::FromFile(path) => json!({ "from_file": path.display().to_string() }),
    }
}

/// A command's settings, its literal environment values redacted.
fn stdio_json(s: &super::Stdio) -> Value {
    let secs = |d: std::time::Duration| d.as_secs_f64();
    let opt_secs = |d: Option<std::time::Duration>| d.map(secs);
    json!({
        "command": std::iter::once(s.program.display().to_string())
            .chain(redacted_args(&s.args))
            .collect::<Vec<_>>(),
        "env": s.env.iter().map(|v| (v.name.clone(), source_json(&v.value))).collect::<Map<_, _>>(),
        "inherit_env": s.inherit_env,
        "cwd": s.cwd.as_ref().map(|c| c.display().to_string()),
        "stdio_mode": match s.mode {
            StdioMode::Shared { restart_backoff_max } => json!({
                "shared": { "restart_backoff_max_seconds": secs(restart_backoff_max) }
            }),
            StdioMode::PerSession { max_processes } => json!({
                "per-session": { "max_processes": max_processes }
            }),
        },
        "session_idle_seconds": opt_secs(s.session_idle),
        "shutdown_grace_seconds": secs(s.shutdown_grace),
        "init_timeout_seconds": secs(s.init_timeout),
        "sandbox": {
            "max_memory": s.sandbox.max_memory,
            "max_cpu_seconds": opt_secs(s.sandbox.max_cpu),
            "max_open_files": s.sandbox.max_open_files,
            "run_as": s.sandbox.run_as.as_ref().map(|r| json!({ "uid": r.uid, "gid": r.gid })),
        },
    })
}

impl Config {
    /// The configuration as JSON with secrets redacted (see the module
    /// docs).
    pub fn redacted_json(&self) -> Value {
        let secs = |d: std::time::Duration| d.as_secs_f64();
        let opt_secs = |d: Option<std::time::Duration>| d.map(secs);
        let t = &self.timeouts;
        let l = &self.limits;
        json!({
            "listen": self.listen.to_string(),
            "admin": self.admin.map(|a| a.to_string()),
            "routes": self.routes.iter().map(|r| {
                let mut route = json!({ "name": r.name, "path": r.path });
                let fields = match &r.backend {
                    Backend::Http(http) => json!({
                        "upstream": redacted_url(&http.upstream),
                        "transport": format!("{:?}", http.transport).to_ascii_lowercase(),
                        "legacy_mode": format!("{:?}", http.legacy_mode),
                        "legacy_max_sessions": http.legacy.max_sessions,
                        "legacy_session_idle_seconds": opt_secs(http.legacy.session_idle),
                        "legacy_allow_other_origin": http.legacy.allow_other_origin,
                        "well_known": http.well_known,
                        "upstream_headers": http.upstream_headers.iter()
                            .map(|h| (h.name.clone(), source_json(&h.value)))
                            .collect::<Map<_, _>>(),
                    }),
                    Backend::Stdio(s) => stdio_json(s),
                    Backend::Federation(f) => json!({
                        "members": f.members.iter().map(|m| {
                            let mut member = match &m.server {
                                MemberServer::Stdio(s) => stdio_json(s),
                                MemberServer::Http(u) => json!({
                                    "upstream": redacted_url(u),
                                    "transport": "streamable",
                                    "upstream_headers": m.upstream_headers.iter()
                                        .map(|h| (h.name.clone(), source_json(&h.value)))
                                        .collect::<Map<_, _>>(),
                                }),
                                MemberServer::Legacy(u) => json!({ "upstream": redacted_url(u), "transport": "sse" }),
                            };
                            if let Value::Object(o) = &mut member {
                                o.insert("name".into(), json!(m.name));
                                o.insert("timeout_seconds".into(), json!(m.policy.timeout.as_secs_f64()));
                                o.insert("on_unavailable".into(), json!(format!("{:?}", m.policy.on_unavailable).to_ascii_lowercase()));
                                o.insert("prefix".into(), json!(m.tools.prefix));
                                o.insert("prefix_mode".into(), json!(format!("{:?}", m.tools.prefix_mode).to_ascii_lowercase()));
                                o.insert("separator".into(), json!(m.tools.separator));
                                o.insert("tools".into(), curation_json(&m.tools));
                                o.insert("prompts".into(), curation_json(&m.prompts));
                            }
                            member
                        }).collect::<Vec<_>>(),
                        // Where the keys come from; never the keys.
                        "session_keys": f.session_keys.iter().map(|k| match k {
                            KeySource::Env(name) => json!({ "from_env": name }),
                            KeySource::File(path) => json!({ "from_file": path }),
                        }).collect::<Vec<_>>(),
                    }),
                };
                if let (Value::Object(route), Value::Object(fields)) = (&mut route, fields) {
                    route.extend(fields);
                    route.insert("auth".into(), r.auth.as_ref().map_or(Value::Null, auth_json));
                }
                route
            }).collect::<Vec<_>>(),
            "limits": {
                "max_head_bytes": l.max_head_bytes,
                "max_headers": l.max_headers,
                "max_request_body_bytes": l.max_request_body_bytes,
                "max_response_head_bytes": l.max_response_head_bytes,
                "max_response_body_bytes": l.max_response_body_bytes,
                "max_sse_event_bytes": l.max_sse_event_bytes,
                "max_json_depth": l.max_json_depth,
            },
            "timeouts_seconds": {
                "connect": secs(t.connect),
                "response_head": opt_secs(t.response_head),
                "stream_idle": opt_secs(t.stream_idle),
                "sse_keepalive": opt_secs(t.sse_keepalive),
                "pool_idle": secs(t.pool_idle),
                "shutdown_grace": secs(t.shutdown_grace),
                "client_head": secs(t.client_head),
                "client_idle": secs(t.client_idle),
            },
            "security": {
                "allowed_hosts": self.security.allowed_hosts.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "allowed_origins": self.security.allowed_origins.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "forwarded_headers": self.security.forwarded_headers,
            },
            "tls": {
                "ca_file": self.tls.ca_file.as_ref().map(|p| p.display().to_string()),
                "roots": format!("{:?}", self.tls.roots).to_ascii_lowercase(),
            },
            "log": {
                "level": format!("{:?}", self.log.level).to_ascii_lowercase(),
                "format": format!("{:?}", self.log.format).to_ascii_lowercase(),
                "access": self.log.access,
                "redact_subject": self.log.redact_subject,
            },
            "pool": { "max_idle_per_upstream": self.pool.max_idle_per_upstream },
            "server": { "workers": self.server.worker_threads() },
            "tracing": self.tracing.as_ref().map(|t| json!({
                "endpoint": redacted_url(&t.endpoint),
                "sample_ratio": t.sample_ratio.get(),
                "service_name": t.service_name,
                "queue_spans": t.queue_spans,
            })),
            "hooks": self.hooks.iter().map(|h| json!({
                "name": h.name,
                "path": h.path.display().to_string(),
                "config": redacted_hook_config(&h.config),
                "methods": h.methods,
                "on_error": format!("{:?}", h.on_error).to_ascii_lowercase(),
                "deadline_seconds": secs(h.deadline),
                "max_memory": h.max_memory,
                "mode": h.enforcement.label(),
                "order": h.order,
                "instances": match h.mode {
                    HookMode::Fresh => json!("fresh"),
                    HookMode::Warm { pool, recycle_after } => {
                        json!({ "warm": { "pool": pool, "recycle_after": recycle_after } })
                    }
                },
                "grants": {
                    "clock": h.grants.clock,
                    "random": h.grants.random,
                    "stdio": h.grants.stdio,
                },
                "headers": h.headers,
            })).collect::<Vec<_>>(),
        })
    }
}

/// A route's `[route.auth]`: API keys by subject and scopes only (a hash
/// of a short key can be searched for).
fn auth_json(auth: &super::RouteAuth) -> Value {
    json!({
        "resource": auth.resource.as_str(),
        "resource_metadata": auth.resource.metadata_url(),
        "jwt": auth.jwt.as_ref().map(|j| json!({
            "issuer": j.issuer,
            "jwks_uri": j.jwks_uri.as_ref().map(redacted_url),
            "algorithms": j.algorithms.iter().map(|a| a.name()).collect::<Vec<_>>(),
            "leeway_seconds": j.leeway.as_secs_f64(),
            "verified_cache_ttl_seconds": j.verified_cache_ttl.as_secs_f64(),
            "verified_cache_size": j.verified_cache_size,
        })),
        "api_keys": auth.api_keys.iter().map(|k| json!({
            "subject": k.subject,
            "scopes": k.scopes,
            "sha256": REDACTED,
        })).collect::<Vec<_>>(),
        "required_scopes": auth.required_scopes,
        "scopes_supported": auth.scopes_supported,
        "forward_token": auth.forward_token,
        "introspection": auth.introspection.as_ref().map(|i| json!({
            "endpoint": i.endpoint.as_ref().map(redacted_url),
            "client_id": i.client_id,
            "client_secret": source_json(&i.client_secret),
            "tokens": match i.tokens {
                sluice_core::auth::gate::IntrospectionFor::Opaque => "opaque",
                sluice_core::auth::gate::IntrospectionFor::All => "all",
            },
            "cache_ttl_seconds": i.cache_ttl.as_secs_f64(),
            "cache_size": i.cache_size,
        })),
        "token_exchange": auth.token_exchange.as_ref().map(|t| json!({
            "endpoint": t.endpoint.as_ref().map(redacted_url),
            "client_id": t.client_id,
            "client_secret": source_json(&t.client_secret),
            "resource": t.resource,
            "audience": t.audience,
            "scopes": t.scopes,
            "cache_ttl_seconds": t.cache_ttl.as_secs_f64(),
            "cache_size": t.cache_size,
        })),
    })
}

impl Backend {
    /// The backend as a log line may name it: a URL's query values and a
    /// command's credential flags redacted (as in `/config`).
    pub fn redacted(&self) -> String {
        match self {
            Backend::Http(http) => redacted_url(&http.upstream),
            Backend::Stdio(stdio) => {
                let mut words = vec![stdio.program.to_string_lossy().into_owned()];
                words.extend(redacted_args(&stdio.args));
                words.join(" ")
            }
            Backend::Federation(_) => self.to_string(),
        }
    }
}

/// The URL with every query value replaced.
fn redacted_url(upstream: &Upstream) -> String {
    let mut url = format!(
        "{}://{}{}",
        upstream.scheme, upstream.authority, upstream.path
    );
    if let Some(query) = &upstream.query {
        url.push('?');
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, _)) => format!("{name}={REDACTED}"),
                None => pair.to_string(),
            })
            .collect();
        url.push_str(&pairs.join("&"));
    }
    url
}

/// The arguments with a credential flag's value replaced: `--token=X`, and
/// the word after `--token`.
fn redacted_args(args: &[String]) -> Vec<String> {
    let mut out = Vec::with_capacity(args.len());
    let mut after_flag = false;
    for arg in args {
        if std::mem::take(&mut after_flag) && !arg.starts_with('-') {
            out.push(REDACTED.to_string());
            continue;
        }
        match arg.split_once('=') {
            Some((flag, _)) if arg.starts_with('-') && names_a_secret(flag) => {
                out.push(format!("{flag}={REDACTED}"))
            }
            _ => {
                after_flag = arg.starts_with('-') && names_a_secret(arg);
                out.push(arg.clone());
            }
        }
    }
    out
}

/// A hook's configuration: JSON with credential-named keys redacted, or
/// redacted whole when it is not JSON (it could be a bare token).
fn redacted_hook_config(config: &str) -> Value {
    if config.is_empty() {
        return Value::Null;
    }
    match serde_json::from_str::<Value>(config) {
        Ok(mut value) => {
            redact_keys(&mut value);
            value
        }
        Err(_) => json!(REDACTED),
    }
}

fn redact_keys(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                if names_a_secret(key) {
                    *v = json!(REDACTED);
                } else {
                    redact_keys(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_keys),
        _ => {}
    }
}

/// A member's curation of its tools or prompts.
fn curation_json(c: &sluice_core::federation::Curation) -> Value {
    let globs =
        |g: &[sluice_core::federation::Glob]| g.iter().map(|g| g.to_string()).collect::<Vec<_>>();
    let pairs = |p: &[(String, String)]| {
        p.iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect::<Map<String, Value>>()
    };
    json!({
        "include": globs(&c.include),
        "exclude": globs(&c.exclude),
        "aliases": pairs(&c.aliases),
        "descriptions": pairs(&c.descriptions),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const FILE: &str = r#"
listen = "127.0.0.1:8080"
[admin]
listen = "127.0.0.1:9091"
[[route]]
path = "/a"
upstream = "https://api.example.com/mcp?api_key=k-123&region=eu"
[[route]]
path = "/b"
command = ["server", "--token", "t-456", "--api-key=a-789", "--verbose", "plain"]
env = { LITERAL = "l-000", FROM_ENV = { from_env = "HOME" }, FROM_FILE = { from_file = "/run/secret" } }
[[hook]]
path = "h.wasm"
config = { allow = ["echo"], nested = { bearer_token = "b-111" } }
"#;

    #[test]
    fn secrets_are_redacted_and_the_rest_shown() {
        let config = Config::from_toml(FILE, "t.toml", Path::new("/etc/sluice")).unwrap();
        let view = config.redacted_json();
        let text = view.to_string();
        for secret in ["k-123", "t-456", "a-789", "l-000", "b-111"] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
        assert_eq!(view["admin"], "127.0.0.1:9091");
        assert_eq!(
            view["routes"][0]["upstream"],
            "https://api.example.com/mcp?api_key=<redacted>&region=<redacted>"
        );
        assert_eq!(
            view["routes"][1]["command"],
            json!([
                "server",
                "--token",
                REDACTED,
                "--api-key=<redacted>",
                "--verbose",
                "plain"
            ])
        );
        // The startup log's `route` lines name backends the same way.
        for (route, secret) in config.routes.iter().zip(["k-123", "t-456"]) {
            let line = route.backend.redacted();
            assert!(!line.contains(secret), "{secret} leaked: {line}");
        }
        assert_eq!(
            config.routes[1].backend.redacted(),
            "server --token <redacted> --api-key=<redacted> --verbose plain"
        );
        let env = &view["routes"][1]["env"];
        assert_eq!(env["LITERAL"], REDACTED);
        assert_eq!(env["FROM_ENV"], json!({ "from_env": "HOME" }));
        assert_eq!(env["FROM_FILE"], json!({ "from_file": "/run/secret" }));
        assert_eq!(
            view["hooks"][0]["config"],
            json!({ "allow": ["echo"], "nested": { "bearer_token": REDACTED } })
        );
        assert_eq!(view["hooks"][0]["path"], "/etc/sluice/h.wasm");
        assert_eq!(view["log"]["access"], true);
    }

    #[test]
    fn a_hook_configuration_that_is_not_json_is_redacted_whole() {
        assert_eq!(redacted_hook_config("sk-live-abc"), json!(REDACTED));
        assert_eq!(redacted_hook_config(""), Value::Null);
    }
}
