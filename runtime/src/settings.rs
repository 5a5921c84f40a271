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
        router: config.router(),
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
    let needs_tls = upstreams.iter().any(|u| u.tls);
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
    let settings = ProxySettings {
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
    };
    if config.hooks.is_empty() {
        return Ok(settings);
    }
    let host =
        HookHost::load(hook_specs(&config.hooks), default_cache_dir()).context("loading hooks")?;
    for info in host.hooks() {
        tracing::info!(hook = %info.name, methods = ?info.declared, cache = ?info.cache, "hook loaded");
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
            grants: h.grants,
            headers: h.headers.clone(),
        })
        .collect()
}

/// A federated route's members, each a command route of its own.
fn federation_upstream(
    fed: &config::Federation,
    config: &Config,
) -> anyhow::Result<crate::federation::FederationUpstream> {
    let members = fed
        .members
        .iter()
        .map(|m| {
            Ok(crate::federation::MemberUpstream {
                name: m.name.clone(),
                tools: m.tools.clone(),
                prompts: m.prompts.clone(),
                stdio: stdio_upstream(&m.stdio, config)
                    .with_context(|| format!("member {}", m.name))?,
            })
        })
        .collect::<anyhow::Result<_>>()?;
    Ok(crate::federation::FederationUpstream {
        members,
        member_timeout: crate::federation::DEFAULT_MEMBER_TIMEOUT,
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
    let l = &config.limits;
    let limits = &mut b.config.limits;
    limits.http.max_head_bytes = l.max_response_head_bytes;
    limits.sse.max_event_bytes = l.max_sse_event_bytes;
    limits.json.max_depth = l.max_json_depth;
    limits.json.max_bytes = l.max_request_body_bytes.max(l.max_sse_event_bytes);
    b.connect_timeout = config.timeouts.connect;
    b.max_sessions = r.legacy.max_sessions;
    b.config.timeouts.session_idle = r.legacy.session_idle;
    b.config.allow_other_origin = r.legacy.allow_other_origin;
    match r.transport {
        Transport::Sse => UpstreamTransport::Sse(b),
        _ => UpstreamTransport::Auto(b),
    }
}
