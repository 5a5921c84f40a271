//! From a validated [`Config`] to what the proxy runs with.

use std::sync::Arc;

use anyhow::Context as _;
use sluice_core::exchange::{ExchangeConfig, ExchangeLimits, Timeouts};
use sluice_core::{http1, jsonrpc, sse};

use crate::config::{self, Backend, Config, LegacyMode, Scheme, Transport};
use crate::hooks::{HookHost, HookSpec, default_cache_dir};
use crate::legacy::{Bridging, UpstreamTransport};
use crate::proxy::{AdminSettings, ProxySettings, UpstreamTarget};
use crate::stdio::{Sandbox, StdioUpstream};
use crate::tls::{self, Roots};

/// `[tracing]` as the exporter takes it.
fn trace_settings(
    t: &config::Tracing,
    tls: Option<Arc<futures_rustls::rustls::ClientConfig>>,
) -> crate::otel::TraceSettings {
    let e = &t.endpoint;
    let target = match &e.query {
        Some(q) => format!("{}?{q}", e.path),
        None => e.path.clone(),
    };
    crate::otel::TraceSettings {
        host: match &e.host {
            config::Host::Name(n) => n.clone(),
            config::Host::Ip(ip) => ip.to_string(),
        },
        port: e.port,
        target,
        authority: e.authority.clone(),
        sample_ratio: t.sample_ratio.get(),
        service_name: t.service_name.clone(),
        queue_spans: t.queue_spans,
        tls: (t.endpoint.scheme == Scheme::Https)
            .then_some(tls)
            .flatten(),
    }
}

/// Resolve `config` into proxy settings (builds the TLS client config).
pub fn proxy_settings(config: &Config) -> anyhow::Result<ProxySettings> {
    let l = &config.limits;
    let t = &config.timeouts;
    let request_head = http1::Limits {
        max_head_bytes: l.max_head_bytes,
        max_headers: l.max_headers,
        ..http1::Limits::default()
    };
    let response_head = http1::Limits {
        max_head_bytes: l.max_response_head_bytes,
        max_headers: l.max_headers.max(http1::Limits::default().max_headers),
        ..http1::Limits::default()
    };
    let exchange = ExchangeConfig {
        router: protected_router(config)?,
        guard: config.security.guard(),
        limits: ExchangeLimits {
            request_head,
            response_head,
            max_request_body: l.max_request_body_bytes,
            sse: sse::SseLimits {
                max_event_bytes: l.max_sse_event_bytes,
            },
            json: jsonrpc::Limits {
                max_depth: l.max_json_depth,
                max_bytes: l.max_request_body_bytes.max(l.max_sse_event_bytes),
            },
            max_hooked_response: l.max_response_body_bytes,
            // Not a config key: pipelined bytes wait in the kernel past it.
            max_pipelined: ExchangeLimits::default().max_pipelined,
        },
        timeouts: Timeouts {
            client_idle: Some(t.client_idle),
            client_request: Some(t.client_head),
            connect: Some(t.connect),
            response_head: t.response_head,
            stream_idle: t.stream_idle,
            sse_keepalive: t.sse_keepalive,
        },
        forwarded_headers: config.security.forwarded_headers,
        hooks: sluice_core::exchange::HookFilter::none(),
    };
    let upstreams: Vec<UpstreamTarget> = config
        .routes
        .iter()
        .map(|r| match &r.backend {
            Backend::Http(http) => Ok(UpstreamTarget {
                host: match &http.upstream.host {
                    config::Host::Name(n) => n.clone(),
                    config::Host::Ip(ip) => ip.to_string(),
                },
                port: http.upstream.port,
                tls: http.upstream.scheme == Scheme::Https,
                transport: transport(http, config),
            }),
            Backend::Federation(fed) => Ok(UpstreamTarget {
                // Never dialed: each member is reached on its own.
                host: String::new(),
                port: 0,
                tls: false,
                transport: UpstreamTransport::Federation(Box::new(
                    federation_upstream(fed, config)
                        .with_context(|| format!("route {}", r.name))?,
                )),
            }),
            Backend::Stdio(stdio) => Ok(UpstreamTarget {
                // Never dialed: the route's upstream is a child process.
                host: String::new(),
                port: 0,
                tls: false,
                transport: UpstreamTransport::Stdio(Box::new(
                    stdio_upstream(stdio, config).with_context(|| format!("route {}", r.name))?,
                )),
            }),
        })
        .collect::<anyhow::Result<_>>()?;
    let needs_tls = upstreams.iter().any(|u| {
        u.tls
            || matches!(&u.transport, UpstreamTransport::Federation(f)
                if f.http_targets().iter().any(|t| t.tls))
    }) || config
        .tracing
        .as_ref()
        .is_some_and(|t| t.endpoint.scheme == Scheme::Https);
    let tls = if needs_tls {
        let roots = match config.tls.roots {
            config::Roots::Webpki => Some(Roots::Webpki),
            config::Roots::System => Some(Roots::System),
            config::Roots::None => None,
        };
        Some(tls::client_config(roots, config.tls.ca_file.as_deref())?)
    } else {
        None
    };
    let mut settings = ProxySettings {
        listen: config.listen,
        exchange,
        upstreams,
        route_names: config.routes.iter().map(|r| r.name.clone()).collect(),
        tls,
        max_idle_per_upstream: config.pool.max_idle_per_upstream,
        pool_idle: t.pool_idle,
        shutdown_grace: t.shutdown_grace,
        workers: config.server.worker_threads(),
        // Access lines are written at info.
        access_log: config.log.access && config.log.level >= config::LogLevel::Info,
        hooks: None,
        admin: config.admin.map(|listen| AdminSettings {
            listen,
            config_json: config.redacted_json().to_string(),
        }),
        log_dropped: None,
        access_output: None,
        auth: config
            .routes
            .iter()
            .map(|r| r.auth.clone().map(|a| a.read_secrets(&r.name)).transpose())
            .collect::<Result<_, _>>()?,
        redact_subject: config.log.redact_subject,
        tracing: None,
    };
    if settings.tls.is_none() && auth_needs_tls(config) {
        settings.tls = Some(auth_tls(config)?);
    }
    // An https receiver is trusted as upstreams are (`[tls]`).
    settings.tracing = config
        .tracing
        .as_ref()
        .map(|t| trace_settings(t, settings.tls.clone()));
    if config.hooks.is_empty() {
        return Ok(settings);
    }
    let host =
        HookHost::load(hook_specs(&config.hooks), default_cache_dir()).context("loading hooks")?;
    for info in host.hooks() {
        tracing::info!(hook = %info.name, world = info.world, methods = ?info.declared, cache = ?info.cache, "hook loaded");
    }
    Ok(settings.with_hooks(Arc::new(host)))
}

/// The host's view of the configured hooks.
fn hook_specs(hooks: &[config::HookConfig]) -> Vec<HookSpec> {
    hooks
        .iter()
        .map(|h| HookSpec {
            name: h.name.clone(),
            path: h.path.clone(),
            methods: h.methods.clone(),
            config: h.config.clone(),
            on_error: h.on_error,
            deadline: h.deadline,
            max_memory_bytes: h.max_memory,
            mode: h.mode,
            enforcement: h.enforcement,
            order: h.order,
            grants: h.grants,
            headers: h.headers.clone(),
        })
        .collect()
}

/// A bridge's limits and connect timeout from the config's.
fn bridge_limits(b: &mut Bridging, config: &Config) {
    let l = &config.limits;
    let limits = &mut b.config.limits;
    limits.http.max_head_bytes = l.max_response_head_bytes;
    limits.sse.max_event_bytes = l.max_sse_event_bytes;
    limits.json.max_depth = l.max_json_depth;
    limits.json.max_bytes = l.max_request_body_bytes.max(l.max_sse_event_bytes);
    b.connect_timeout = config.timeouts.connect;
}

/// Where a member at URL `u` is.
fn http_member(u: &config::Upstream) -> crate::federation::HttpMember {
    crate::federation::HttpMember {
        host: match &u.host {
            config::Host::Name(n) => n.clone(),
            config::Host::Ip(ip) => ip.to_string(),
        },
        port: u.port,
        tls: u.scheme == Scheme::Https,
        url: sluice_core::federation::http::MemberUrl {
            authority: u.authority.clone(),
            target: match &u.query {
                Some(q) => format!("{}?{q}", u.path),
                None => u.path.clone(),
            },
        },
        headers: Vec::new(),
    }
}

/// A federated route's members, each a route of its own.
fn federation_upstream(
    fed: &config::Federation,
    config: &Config,
) -> anyhow::Result<crate::federation::FederationUpstream> {
    let members = fed
        .members
        .iter()
        .map(|m| {
            let server = match &m.server {
                config::MemberServer::Stdio(s) => crate::federation::MemberServer::Stdio(
                    stdio_upstream(s, config).with_context(|| format!("member {}", m.name))?,
                ),
                config::MemberServer::Http(u) => {
                    let mut at = http_member(u);
                    at.headers = m
                        .upstream_headers
                        .iter()
                        .map(|h| Ok(http1::Header::new(h.name.clone(), h.resolve()?)))
                        .collect::<Result<_, config::ConfigError>>()
                        .with_context(|| format!("member {}", m.name))?;
                    crate::federation::MemberServer::Http(at)
                }
                config::MemberServer::Legacy(u) => {
                    let at = http_member(u);
                    let mut bridging = Bridging::new(
                        sluice_core::legacy::Mode::Session,
                        at.tls,
                        &at.url.authority,
                        &at.url.target,
                    );
                    bridge_limits(&mut bridging, config);
                    crate::federation::MemberServer::Legacy(crate::federation::LegacyMember {
                        at,
                        bridging,
                    })
                }
            };
            Ok(crate::federation::MemberUpstream {
                name: m.name.clone(),
                tools: m.tools.clone(),
                prompts: m.prompts.clone(),
                server,
                policy: m.policy,
            })
        })
        .collect::<anyhow::Result<_>>()?;
    let session_keys = fed
        .session_keys
        .iter()
        .enumerate()
        .map(|(j, from)| {
            let (text, whence) = match from {
                config::KeySource::Env(name) => (
                    std::env::var(name).with_context(|| {
                        format!("session_keys[{j}]: environment variable {name}")
                    })?,
                    format!("environment variable {name}"),
                ),
                config::KeySource::File(path) => (
                    std::fs::read_to_string(path)
                        .with_context(|| format!("session_keys[{j}]: {}", path.display()))?,
                    path.display().to_string(),
                ),
            };
            crate::federation::SessionKey::parse(&text)
                .map_err(|e| anyhow::anyhow!("session_keys[{j}] ({whence}): {e}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let l = &config.limits;
    Ok(crate::federation::FederationUpstream {
        members,
        session_keys,
        answer_limits: sluice_core::federation::http::AnswerLimits {
            http: http1::Limits {
                max_head_bytes: l.max_response_head_bytes,
                max_headers: l.max_headers,
                ..Default::default()
            },
            max_body_bytes: l.max_response_body_bytes,
            sse: sluice_core::sse::SseLimits {
                max_event_bytes: l.max_sse_event_bytes,
            },
        },
    })
}

/// What a command route runs, with its child's environment resolved now
/// (a secret it names must be readable when sluice starts).
fn stdio_upstream(s: &config::Stdio, config: &Config) -> anyhow::Result<StdioUpstream> {
    let env = s.child_env(|name| std::env::var(name).ok())?;
    let mut command = vec![s.program.to_string_lossy().into_owned()];
    command.extend(s.args.iter().cloned());
    let mut up = StdioUpstream::new(command, env);
    up.cwd = s.cwd.clone();
    up.shutdown_grace = s.shutdown_grace;
    let c = &mut up.config;
    c.init_timeout = s.init_timeout;
    c.session_idle = s.session_idle;
    c.json.max_depth = config.limits.max_json_depth;
    match s.mode {
        config::StdioMode::Shared {
            restart_backoff_max,
        } => {
            c.mode = sluice_core::stdio::StdioMode::Shared;
            c.restart_backoff_max = restart_backoff_max;
        }
        config::StdioMode::PerSession { max_processes } => {
            c.mode = sluice_core::stdio::StdioMode::PerSession;
            up.max_processes = max_processes;
        }
    }
    let b = &s.sandbox;
    up.sandbox = Sandbox {
        max_memory: b.max_memory,
        // RLIMIT_CPU counts whole seconds; a part of one rounds up.
        max_cpu_seconds: b
            .max_cpu
            .map(|d| d.as_secs() + u64::from(d.subsec_nanos() > 0)),
        max_open_files: b.max_open_files,
        uid: b.run_as.map(|r| r.uid),
        gid: b.run_as.map(|r| r.gid),
    };
    Ok(up)
}

/// How a route's upstream URL is reached, with the bridge's limits taken
/// from the configured ones.
fn transport(r: &config::Http, config: &Config) -> UpstreamTransport {
    if r.transport == Transport::Streamable {
        return UpstreamTransport::Streamable;
    }
    let mode = match r.legacy_mode {
        LegacyMode::Session => sluice_core::legacy::Mode::Session,
        LegacyMode::PerRequest => sluice_core::legacy::Mode::PerRequest,
    };
    let u = &r.upstream;
    let target = match &u.query {
        Some(q) => format!("{}?{q}", u.path),
        None => u.path.clone(),
    };
    let mut b = Bridging::new(mode, u.scheme == Scheme::Https, &u.authority, &target);
    bridge_limits(&mut b, config);
    b.max_sessions = r.legacy.max_sessions;
    b.config.timeouts.session_idle = r.legacy.session_idle;
    b.config.allow_other_origin = r.legacy.allow_other_origin;
    match r.transport {
        Transport::Sse => UpstreamTransport::Sse(b),
        _ => UpstreamTransport::Auto(b),
    }
}

/// The router, each route with `[route.auth]` behind its gate and its
/// `upstream_headers` read (a secret they name must be readable now).
fn protected_router(config: &Config) -> anyhow::Result<sluice_core::route::Router> {
    let mut router = config.router();
    for (i, route) in config.routes.iter().enumerate() {
        if let Some(http) = route.http()
            && !http.upstream_headers.is_empty()
        {
            let headers = http
                .upstream_headers
                .iter()
                .map(|h| Ok(http1::Header::new(h.name.clone(), h.resolve()?)))
                .collect::<Result<Vec<_>, config::ConfigError>>()
                .with_context(|| format!("route {}", route.name))?;
            router.set_upstream_headers(i, headers);
        }
        if let Some(auth) = &route.auth {
            let servers: Vec<String> = auth.jwt.iter().map(|j| j.issuer.clone()).collect();
            router.protect(
                i,
                sluice_core::auth::Gate::new(
                    &auth.resource,
                    &route.path,
                    &servers,
                    &auth.scopes_supported,
                    auth.forward_token,
                ),
            );
        }
    }
    Ok(router)
}

/// Whether key discovery, a JWKS, an introspection or a token endpoint is
/// reached over https.
fn auth_needs_tls(config: &Config) -> bool {
    config
        .routes
        .iter()
        .filter_map(|r| r.auth.as_ref())
        .any(|a| {
            let https = |u: Option<&config::Upstream>| u.is_some_and(|u| u.scheme == Scheme::Https);
            a.jwt
                .as_ref()
                .is_some_and(|j| j.issuer_url.scheme == Scheme::Https || https(j.jwks_uri.as_ref()))
                || https(a.introspection.as_ref().and_then(|i| i.endpoint.as_ref()))
                || https(a.token_exchange.as_ref().and_then(|t| t.endpoint.as_ref()))
        })
}

/// The TLS client configuration for key fetches, when no upstream needed
/// one: the same roots and CA file as upstreams.
fn auth_tls(config: &Config) -> anyhow::Result<Arc<futures_rustls::rustls::ClientConfig>> {
    let roots = match config.tls.roots {
        config::Roots::Webpki => Some(Roots::Webpki),
        config::Roots::System => Some(Roots::System),
        config::Roots::None => None,
    };
    tls::client_config(roots, config.tls.ca_file.as_deref())
}
