//! The TOML front end: the file's schema as serde structs, then the checks
//! that span keys (a route path served twice, a key that only applies with
//! another) on the way to a [`Config`].
//!
//! Every table refuses unknown keys (`deny_unknown_fields`), and every key
//! is a [`Key`] of a [`Leaf`](super::de::Leaf) type, read and checked with
//! its span (see `de.rs`), so every error names the key path, the line and
//! the column.

use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::de::{
    At, Count, Grace, Grant, Json, Key, List, Method, Mode, Name, OrOff, RoutePath, Size, Source,
    or, span, tables, value, values,
};
use super::{
    Config, ConfigError, DEFAULT_LISTEN, DEFAULT_RECYCLE_AFTER, DEFAULT_WARM_POOL, FileKeys,
    HookConfig, HookMode, HostRule, LegacyMode, Limits, Log, LogFormat, LogLevel, MAX_WORKERS,
    OnError, OriginRule, Pool, Roots, Route, Security, Server, Timeouts, Tls, Transport, Upstream,
    hook_base_name, unique_names,
};

type Result<T> = std::result::Result<T, ConfigError>;

/// How errors about files name their keys in the file form.
pub(super) const FILE_KEYS: FileKeys = FileKeys {
    ca_file: "tls.ca_file",
    hook_path: |i| format!("hook[{i}].path"),
};

/// The file. Keys are listed in the order an unknown-key error lists them.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    listen: Key<SocketAddr>,
    route: Key<List<RouteTable>>,
    limits: Key<LimitsTable>,
    timeouts: Key<TimeoutsTable>,
    security: Key<SecurityTable>,
    tls: Key<TlsTable>,
    log: Key<LogTable>,
    pool: Key<PoolTable>,
    server: Key<ServerTable>,
    hook: Key<List<HookTable>>,
}

tables! {
    struct RouteTable("a table", array: "an array of tables ([[route]])") {
        name: Key<Name>,
        path: Key<RoutePath>,
        upstream: Key<Upstream>,
        transport: Key<Transport>,
        legacy_mode: Key<LegacyMode>,
        legacy_max_sessions: Key<Count<1>>,
        legacy_session_idle: Key<OrOff>,
        legacy_allow_other_origin: Key<bool>,
        well_known: Key<bool>,
    }

    struct LimitsTable("a table ([limits])") {
        max_head_bytes: Key<Size>,
        max_headers: Key<Count<1>>,
        max_request_body_bytes: Key<Size>,
        max_response_head_bytes: Key<Size>,
        max_response_body_bytes: Key<Size>,
        max_sse_event_bytes: Key<Size>,
        max_json_depth: Key<Count<1>>,
    }

    struct TimeoutsTable("a table ([timeouts])") {
        connect: Key<Duration>,
        response_head: Key<OrOff>,
        stream_idle: Key<OrOff>,
        sse_keepalive: Key<OrOff>,
        pool_idle: Key<Duration>,
        shutdown_grace: Key<Grace>,
        client_head: Key<Duration>,
        client_idle: Key<Duration>,
    }

    struct SecurityTable("a table ([security])") {
        allowed_hosts: Key<List<HostRule>>,
        allowed_origins: Key<List<OriginRule>>,
        forwarded_headers: Key<bool>,
    }

    struct TlsTable("a table ([tls])") {
        ca_file: Key<PathBuf>,
        roots: Key<Roots>,
    }

    struct LogTable("a table ([log])") {
        level: Key<LogLevel>,
        format: Key<LogFormat>,
        access: Key<bool>,
    }

    struct PoolTable("a table ([pool])") {
        max_idle_per_upstream: Key<Count<0>>,
    }

    struct ServerTable("a table ([server])") {
        workers: Key<Count<1, MAX_WORKERS>>,
    }

    struct HookTable("a table", array: "an array of tables ([[hook]])") {
        name: Key<Name>,
        path: Key<PathBuf>,
        config: Key<Json>,
        methods: Key<List<Method>>,
        on_error: Key<OnError>,
        deadline: Key<Duration>,
        max_memory: Key<Size>,
        mode: Key<Mode>,
        pool: Key<Count<1>>,
        recycle_after: Key<Count<1, { u32::MAX as usize }>>,
        grants: Key<List<Grant>>,
        headers: Key<List<String>>,
    }
}

/// Parses and validates a config file's text.
pub(super) fn parse(src: &Source<'_>, base_dir: &Path) -> Result<Config> {
    let file: File = src.read()?;
    let listen = or(file.listen, DEFAULT_LISTEN);
    Ok(Config {
        listen,
        routes: routes(src, value(file.route).unwrap_or_default())?,
        limits: value(file.limits).map_or_else(Limits::default, limits),
        timeouts: value(file.timeouts).map_or_else(Timeouts::default, timeouts),
        security: security(src, value(file.security), Security::defaults_for(listen))?,
        tls: tls(src, value(file.tls), base_dir)?,
        log: value(file.log).map_or_else(Log::default, log),
        pool: Pool {
            max_idle_per_upstream: or(
                value(file.pool).and_then(|t| t.max_idle_per_upstream),
                Pool::default().max_idle_per_upstream,
            ),
        },
        server: Server {
            workers: value(file.server)
                .and_then(|t| value(t.workers))
                .map(usize::from),
        },
        hooks: hooks(src, value(file.hook).unwrap_or_default(), base_dir)?,
    })
}

/// An explicit name, refused if an earlier `table` entry has it already.
fn unique(
    src: &Source<'_>,
    name: Key<Name>,
    earlier: &[(Option<String>, String)],
    key: impl FnOnce() -> String,
    table: &str,
) -> Result<Option<String>> {
    let Some(At {
        value: Name(n),
        span,
    }) = name
    else {
        return Ok(None);
    };
    match earlier.iter().position(|(m, _)| m.as_ref() == Some(&n)) {
        Some(j) => Err(src.err(
            &span,
            key(),
            format!("{n:?} is already the name of {table}[{j}]"),
        )),
        None => Ok(Some(n)),
    }
}

/// The first key written of `keys`, with where it was written.
fn first_written<'k>(
    keys: impl IntoIterator<Item = (&'k str, Option<&'k Range<usize>>)>,
) -> Option<(&'k str, &'k Range<usize>)> {
    keys.into_iter().find_map(|(k, s)| Some((k, s?)))
}

fn routes(src: &Source<'_>, tables: List<RouteTable>) -> Result<Vec<Route>> {
    if tables.is_empty() {
        return Err(ConfigError::invalid(
            Some(src.origin),
            None,
            "route",
            "at least one [[route]] is required",
        ));
    }
    let mut routes: Vec<Route> = Vec::new();
    let mut names: Vec<(Option<String>, String)> = Vec::new();
    for (i, At { value: t, span: at }) in tables.into_iter().enumerate() {
        let key = |k: &str| format!("route[{i}].{k}");
        let Some(upstream) = t.upstream else {
            return Err(src.err(
                &at,
                key("upstream"),
                "missing (every route needs an upstream URL)",
            ));
        };
        let path = t.path.as_ref().map_or(&upstream.value.path, |p| &p.value.0);
        let trimmed = path.trim_end_matches('/');
        if let Some(j) = routes
            .iter()
            .position(|r| r.path.trim_end_matches('/') == trimmed)
        {
            return Err(src.err(
                span(&t.path).unwrap_or(&upstream.span),
                key("path"),
                format!("{path:?} is already served by route[{j}]"),
            ));
        }
        let mut route = Route::new(path.clone(), upstream.value);

        route.transport = or(t.transport, route.transport);
        let legacy_key = first_written([
            ("legacy_mode", span(&t.legacy_mode)),
            ("legacy_max_sessions", span(&t.legacy_max_sessions)),
            ("legacy_session_idle", span(&t.legacy_session_idle)),
            (
                "legacy_allow_other_origin",
                span(&t.legacy_allow_other_origin),
            ),
        ]);
        if let (Transport::Streamable, Some((k, s))) = (route.transport, legacy_key) {
            return Err(src.err(s, key(k), "only applies to transport = \"sse\" or \"auto\""));
        }
        route.legacy_mode = or(t.legacy_mode, route.legacy_mode);
        let legacy = &mut route.legacy;
        legacy.max_sessions = or(t.legacy_max_sessions, legacy.max_sessions);
        legacy.session_idle = or(t.legacy_session_idle, legacy.session_idle);
        legacy.allow_other_origin = or(t.legacy_allow_other_origin, legacy.allow_other_origin);

        route.well_known = t.well_known.as_ref().map_or(i == 0, |w| w.value);
        if route.well_known
            && let Some(j) = routes.iter().position(|r| r.well_known)
        {
            return Err(src.err(
                span(&t.well_known).unwrap_or(&at),
                key("well_known"),
                format!("only one route may serve /.well-known/, and route[{j}] already does"),
            ));
        }

        let name = unique(src, t.name, &names, || key("name"), "route")?;
        names.push((name, route.name.clone()));
        routes.push(route);
    }
    for (route, name) in routes.iter_mut().zip(unique_names(&names)) {
        route.name = name;
    }
    Ok(routes)
}

fn limits(t: LimitsTable) -> Limits {
    let d = Limits::default();
    Limits {
        max_head_bytes: or(t.max_head_bytes, d.max_head_bytes),
        max_headers: or(t.max_headers, d.max_headers),
        max_request_body_bytes: or(t.max_request_body_bytes, d.max_request_body_bytes),
        max_response_head_bytes: or(t.max_response_head_bytes, d.max_response_head_bytes),
        max_response_body_bytes: or(t.max_response_body_bytes, d.max_response_body_bytes),
        max_sse_event_bytes: or(t.max_sse_event_bytes, d.max_sse_event_bytes),
        max_json_depth: or(t.max_json_depth, d.max_json_depth),
    }
}

fn timeouts(t: TimeoutsTable) -> Timeouts {
    let d = Timeouts::default();
    Timeouts {
        connect: or(t.connect, d.connect),
        response_head: or(t.response_head, d.response_head),
        stream_idle: or(t.stream_idle, d.stream_idle),
        sse_keepalive: or(t.sse_keepalive, d.sse_keepalive),
        pool_idle: or(t.pool_idle, d.pool_idle),
        shutdown_grace: or(t.shutdown_grace, d.shutdown_grace),
        client_head: or(t.client_head, d.client_head),
        client_idle: or(t.client_idle, d.client_idle),
    }
}

fn security(src: &Source<'_>, t: Option<SecurityTable>, mut s: Security) -> Result<Security> {
    let Some(t) = t else { return Ok(s) };
    if let Some(hosts) = t.allowed_hosts {
        if hosts.value.is_empty() {
            return Err(src.err(
                &hosts.span,
                "security.allowed_hosts",
                "an empty list would refuse every request; write [\"*\"] to allow any host",
            ));
        }
        s.allowed_hosts = values(hosts.value);
    }
    if let Some(origins) = t.allowed_origins {
        s.allowed_origins = values(origins.value);
    }
    s.forwarded_headers = or(t.forwarded_headers, s.forwarded_headers);
    Ok(s)
}

fn tls(src: &Source<'_>, t: Option<TlsTable>, base_dir: &Path) -> Result<Tls> {
    let Some(t) = t else {
        return Ok(Tls::default());
    };
    let ca_file = t.ca_file.map(|p| base_dir.join(p.value));
    if let Some(roots) = &t.roots
        && roots.value == Roots::None
        && ca_file.is_none()
    {
        return Err(src.err(
            &roots.span,
            "tls.roots",
            "\"none\" trusts no certificate unless tls.ca_file is set",
        ));
    }
    Ok(Tls {
        ca_file,
        roots: or(t.roots, Roots::default()),
    })
}

fn log(t: LogTable) -> Log {
    let d = Log::default();
    Log {
        level: or(t.level, d.level),
        format: or(t.format, d.format),
        access: or(t.access, d.access),
    }
}

fn hooks(src: &Source<'_>, tables: List<HookTable>, base_dir: &Path) -> Result<Vec<HookConfig>> {
    let mut hooks: Vec<HookConfig> = Vec::new();
    let mut names: Vec<(Option<String>, String)> = Vec::new();
    for (i, At { value: t, span: at }) in tables.into_iter().enumerate() {
        let key = |k: &str| format!("hook[{i}].{k}");
        let Some(path) = t.path else {
            return Err(src.err(
                &at,
                key("path"),
                "missing (every hook needs the path of its .wasm component)",
            ));
        };
        let mut hook = HookConfig::new(String::new(), base_dir.join(path.value));

        let name = unique(src, t.name, &names, || key("name"), "hook")?;
        names.push((name, hook_base_name(&hook.path)));

        if let Some(config) = t.config {
            hook.config = config.value.0;
        }
        if let Some(methods) = t.methods {
            if methods.value.is_empty() {
                return Err(src.err(
                    &methods.span,
                    key("methods"),
                    "an empty list would hide every message from the hook; remove the hook instead",
                ));
            }
            hook.methods = Some(methods.value.into_iter().map(|m| m.value.0).collect());
        }
        hook.on_error = or(t.on_error, hook.on_error);
        hook.deadline = or(t.deadline, hook.deadline);
        hook.max_memory = or(t.max_memory, hook.max_memory);

        if or(t.mode, Mode::Fresh) == Mode::Warm {
            hook.mode = HookMode::Warm {
                pool: or(t.pool, DEFAULT_WARM_POOL),
                recycle_after: or(t.recycle_after, DEFAULT_RECYCLE_AFTER),
            };
        } else if let Some((k, s)) = first_written([
            ("pool", span(&t.pool)),
            ("recycle_after", span(&t.recycle_after)),
        ]) {
            return Err(src.err(s, key(k), "only applies with mode = \"warm\""));
        }

        for grant in values(value(t.grants).unwrap_or_default()) {
            let g = &mut hook.grants;
            match grant {
                Grant::Clock => g.clock = true,
                Grant::Random => g.random = true,
                Grant::Stdio => g.stdio = true,
            }
        }

        let headers = value(t.headers).unwrap_or_default();
        for (j, At { value: name, span }) in headers.into_iter().enumerate() {
            hook.add_header(&name)
                .map_err(|p| src.err(&span, key(&format!("headers[{j}]")), p))?;
        }
        hooks.push(hook);
    }
    for (hook, name) in hooks.iter_mut().zip(unique_names(&names)) {
        hook.name = name;
    }
    Ok(hooks)
}
