//! From a validated [`Config`] to what the proxy runs with.

use anyhow::{Context as _, bail};
use sluice_core::exchange::{ExchangeConfig, ExchangeLimits, Timeouts};
use sluice_core::{http1, jsonrpc, sse};

use crate::config::{self, Config, LegacyMode, Scheme, Transport};
use crate::legacy::{Bridging, UpstreamTransport};
use crate::proxy::ProxySettings;
use crate::proxy::upstream::UpstreamTarget;
use crate::tls::{self, Roots};

/// Resolve `config` into proxy settings (builds the TLS client config).
pub fn proxy_settings(config: &Config) -> anyhow::Result<ProxySettings> {
    if !config.hooks.is_empty() {
        bail!(
            "hooks are configured, but the proxy does not run hooks yet (the hook host is being wired in); \
             remove the [[hook]] entries or --hook flags"
        );
    }
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
        guard: config
            .security
            .guard()
            .map_err(anyhow::Error::msg)
            .context("security")?,
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
    };
    let upstreams: Vec<UpstreamTarget> = config
        .routes
        .iter()
        .map(|r| UpstreamTarget {
            host: match &r.upstream.host {
                config::Host::Name(n) => n.clone(),
                config::Host::Ip(ip) => ip.to_string(),
            },
            port: r.upstream.port,
            tls: r.upstream.scheme == Scheme::Https,
            transport: transport(r, config),
        })
        .collect();
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
    Ok(ProxySettings {
        listen: config.listen,
        exchange,
        upstreams,
        route_names: config.routes.iter().map(|r| r.name.clone()).collect(),
        tls,
        max_idle_per_upstream: config.pool.max_idle_per_upstream,
        pool_idle: t.pool_idle,
        shutdown_grace: t.shutdown_grace,
        workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
        access_log: config.log.access,
    })
}

/// How route `r`'s upstream is reached, with the bridge's limits taken from
/// the configured ones.
fn transport(r: &config::Route, config: &Config) -> UpstreamTransport {
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
    limits.max_body = l.max_request_body_bytes;
    b.connect_timeout = config.timeouts.connect;
    match r.transport {
        Transport::Sse => UpstreamTransport::Sse(b),
        _ => UpstreamTransport::Auto(b),
    }
}
