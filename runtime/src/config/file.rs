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

use super::auth::{AuthKey, route_auth};
use super::de::{
    At, CommandWords, Count, EnvName, Grace, Grant, HookModeKey, IdOrName, Json, Key, Leaf, List,
    Method, Mode, Name, OrOff, Refused, RoutePath, Scalar, Size, Source, StdioModeName, or, span,
    tables, value, values,
};
use super::stdio::{
    EMPTY_COMMAND, GROUP, PASSWD, check_arg, check_env_name, check_program, find_group, find_user,
    program_in,
};
use super::{
    Backend, Config, ConfigError, DEFAULT_LISTEN, DEFAULT_RECYCLE_AFTER, DEFAULT_WARM_POOL,
    Enforcement, EnvValue, EnvVar, Federation, FileKeys, HookConfig, HookMode, HostRule, Http,
    KeySource, LegacyMode, Limits, Log, LogFormat, LogLevel, MAX_WORKERS, Member, MemberServer,
    OnError, OriginRule, Pool, Roots, Route, RunAs, SampleRatio, Sandbox, Secret, Security, Server,
    Stdio, StdioMode, Timeouts, Tls, Tracing, Transport, Upstream, UpstreamHeader, check_admin,
    check_header_name, hook_base_name, unique_names,
};
use sluice_core::federation::{OnUnavailable, PrefixMode};

type Result<T> = std::result::Result<T, ConfigError>;

/// How errors about files name their keys in the file form.
pub(super) const FILE_KEYS: FileKeys = FileKeys {
    ca_file: "tls.ca_file",
    cwd: |i| format!("route[{i}].cwd"),
    env: |i, name, from| format!("route[{i}].env.{name}.{from}"),
    hook_path: |i| format!("hook[{i}].path"),
};

/// The file. Keys are listed in the order an unknown-key error lists them.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    listen: Key<SocketAddr>,
    admin: Key<AdminTable>,
    route: Key<List<RouteTable>>,
    limits: Key<LimitsTable>,
    timeouts: Key<TimeoutsTable>,
    security: Key<SecurityTable>,
    tls: Key<TlsTable>,
    log: Key<LogTable>,
    pool: Key<PoolTable>,
    server: Key<ServerTable>,
    hook: Key<List<HookTable>>,
    tracing: Key<TracingTable>,
}

tables! {
    struct RouteTable("a table", array: "an array of tables ([[route]])") {
        name: Key<Name>,
        path: Key<RoutePath>,
        upstream: Key<Upstream>,
        command: Key<CommandWords>,
        transport: Key<Transport>,
        legacy_mode: Key<LegacyMode>,
        legacy_max_sessions: Key<Count<1>>,
        legacy_session_idle: Key<OrOff>,
        legacy_allow_other_origin: Key<bool>,
        well_known: Key<bool>,
        upstream_headers: Key<UpstreamHeaders>,
        auth: Key<AuthKey>,
        env: Key<Env>,
        inherit_env: Key<List<EnvName>>,
        cwd: Key<PathBuf>,
        stdio_mode: Key<StdioModeName>,
        max_processes: Key<Count<1>>,
        session_idle: Key<OrOff>,
        shutdown_grace: Key<Grace>,
        init_timeout: Key<Duration>,
        restart_backoff_max: Key<Duration>,
        sandbox: Key<SandboxTable>,
        server: Key<List<MemberTable>>,
        session_keys: Key<List<EnvFrom>>,
    }

    struct MemberTable("a table", array: "an array of tables ([[route.server]])") {
        name: Key<Name>,
        upstream: Key<Upstream>,
        command: Key<CommandWords>,
        transport: Key<Transport>,
        env: Key<Env>,
        inherit_env: Key<List<EnvName>>,
        cwd: Key<PathBuf>,
        stdio_mode: Key<StdioModeName>,
        max_processes: Key<Count<1>>,
        session_idle: Key<OrOff>,
        shutdown_grace: Key<Grace>,
        init_timeout: Key<Duration>,
        restart_backoff_max: Key<Duration>,
        sandbox: Key<SandboxTable>,
        timeout: Key<Duration>,
        on_unavailable: Key<OnUnavailable>,
        prefix: Key<String>,
        prefix_mode: Key<PrefixMode>,
        separator: Key<String>,
        tools: Key<CurationTable>,
        prompts: Key<CurationTable>,
        upstream_headers: Key<UpstreamHeaders>,
    }

    struct CurationTable("a table ([route.server.tools] or [route.server.prompts])") {
        include: Key<List<String>>,
        exclude: Key<List<String>>,
        aliases: Key<Renames>,
        descriptions: Key<Renames>,
    }

    struct EnvFrom("a table") {
        from_env: Key<EnvName>,
        from_file: Key<PathBuf>,
    }

    struct SandboxTable("a table ([route.sandbox])") {
        max_memory: Key<Size>,
        max_cpu: Key<Duration>,
        max_open_files: Key<Count<1>>,
        user: Key<IdOrName>,
        group: Key<IdOrName>,
    }

    struct AdminTable("a table ([admin])") {
        listen: Key<SocketAddr>,
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
        redact_subject: Key<bool>,
    }

    struct PoolTable("a table ([pool])") {
        max_idle_per_upstream: Key<Count<0>>,
    }

    struct TracingTable("a table ([tracing])") {
        endpoint: Key<Upstream>,
        sample_ratio: Key<SampleRatio>,
        service_name: Key<Name>,
        queue_spans: Key<Count<1, { 1 << 20 }>>,
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
        mode: Key<HookModeKey>,
        instances: Key<Mode>,
        order: Key<i32>,
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
    let admin = value(file.admin).and_then(|t| t.listen);
    if let Some(At { value: admin, span }) = &admin {
        check_admin(listen, *admin).map_err(|p| src.err(span, "admin.listen", p))?;
    }
    Ok(Config {
        listen,
        admin: admin.map(|a| a.value),
        routes: routes(src, value(file.route).unwrap_or_default(), base_dir)?,
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
        tracing: file.tracing.map(|t| tracing(src, t)).transpose()?,
    })
}

/// `[tracing]`: `endpoint` is required (`http`, or `https` with the `[tls]`
/// trust anchors).
fn tracing(src: &Source<'_>, t: At<TracingTable>) -> Result<Tracing> {
    let At { value: t, span } = t;
    let Some(At {
        value: endpoint, ..
    }) = t.endpoint
    else {
        return Err(src.err(&span, "tracing.endpoint", "is required in [tracing]"));
    };
    Ok(Tracing {
        endpoint,
        sample_ratio: or(t.sample_ratio, SampleRatio::ALWAYS),
        service_name: value(t.service_name)
            .map_or_else(|| Tracing::DEFAULT_SERVICE_NAME.to_string(), |n| n.0),
        queue_spans: or(t.queue_spans, Tracing::DEFAULT_QUEUE_SPANS),
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

/// The first key of a command route's own written in table `$t` (a
/// route's or a server's: the same names), with where.
macro_rules! command_key {
    ($t:expr) => {
        first_written([
            ("env", span(&$t.env)),
            ("inherit_env", span(&$t.inherit_env)),
            ("cwd", span(&$t.cwd)),
            ("stdio_mode", span(&$t.stdio_mode)),
            ("max_processes", span(&$t.max_processes)),
            ("session_idle", span(&$t.session_idle)),
            ("shutdown_grace", span(&$t.shutdown_grace)),
            ("init_timeout", span(&$t.init_timeout)),
            ("restart_backoff_max", span(&$t.restart_backoff_max)),
            ("sandbox", span(&$t.sandbox)),
        ])
    };
}

/// The first key of a URL route's own written in route table `$t`.
macro_rules! url_key {
    ($t:expr) => {
        first_written([
            ("transport", span(&$t.transport)),
            ("legacy_mode", span(&$t.legacy_mode)),
            ("legacy_max_sessions", span(&$t.legacy_max_sessions)),
            ("legacy_session_idle", span(&$t.legacy_session_idle)),
            (
                "legacy_allow_other_origin",
                span(&$t.legacy_allow_other_origin),
            ),
            ("well_known", span(&$t.well_known)),
            ("upstream_headers", span(&$t.upstream_headers)),
        ])
    };
}

fn routes(src: &Source<'_>, tables: List<RouteTable>, base_dir: &Path) -> Result<Vec<Route>> {
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
    for (
        i,
        At {
            value: mut t,
            span: at,
        },
    ) in tables.into_iter().enumerate()
    {
        let key = |k: &str| format!("route[{i}].{k}");
        let servers = t.server.take();
        if servers.is_some() {
            let written = first_written([
                ("upstream", span(&t.upstream)),
                ("command", span(&t.command)),
            ]);
            if let Some((k, s)) = written {
                return Err(src.err(
                    s,
                    key(k),
                    "a route has an upstream URL, a command or servers ([[route.server]]), one of them",
                ));
            }
        } else if let Some(keys) = &t.session_keys {
            return Err(src.err(
                &keys.span,
                key("session_keys"),
                "only applies to a route with servers ([[route.server]])",
            ));
        }
        let (backend, written_at) = match (servers, t.upstream.take(), t.command.take()) {
            (Some(servers), _, _) => {
                let span = servers.span.clone();
                (
                    Backend::Federation(federation(src, &key, &mut t, servers, base_dir)?),
                    span,
                )
            }
            (None, Some(upstream), Some(command)) => {
                let (k, s) = match upstream.span.start < command.span.start {
                    true => ("command", command.span),
                    false => ("upstream", upstream.span),
                };
                return Err(src.err(
                    &s,
                    key(k),
                    "a route has an upstream URL or a command, not both",
                ));
            }
            (None, None, None) => {
                return Err(src.err(
                    &at,
                    key("upstream"),
                    "missing (every route needs an upstream URL, a command to run, or [[route.server]] members)",
                ));
            }
            (None, Some(At { value, span }), None) => {
                let first = routes.iter().all(|r| r.http().is_none());
                (
                    Backend::Http(http(src, &key, &mut t, value, first, base_dir)?),
                    span,
                )
            }
            (None, None, Some(command)) => {
                let span = command.span.clone();
                (
                    Backend::Stdio(stdio(src, &key, &mut t, command, base_dir)?),
                    span,
                )
            }
        };
        let path = match &t.path {
            Some(p) => p.value.0.clone(),
            None => backend.default_path(),
        };
        let trimmed = path.trim_end_matches('/');
        if let Some(j) = routes
            .iter()
            .position(|r| r.path.trim_end_matches('/') == trimmed)
        {
            return Err(src.err(
                span(&t.path).unwrap_or(&written_at),
                key("path"),
                format!("{path:?} is already served by route[{j}]"),
            ));
        }
        let mut route = Route::new(path, backend);
        if let Some(auth) = t.auth.take() {
            route.auth = Some(route_auth(src, &key, auth, base_dir, route.http())?);
        }
        if route.well_known()
            && let Some(j) = routes.iter().position(Route::well_known)
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

/// A URL route's settings (`first`: no URL route comes before it). Keys of
/// a command route are refused.
fn http(
    src: &Source<'_>,
    key: &dyn Fn(&str) -> String,
    t: &mut RouteTable,
    upstream: Upstream,
    first: bool,
    base_dir: &Path,
) -> Result<Http> {
    let command_key = command_key!(t);
    if let Some((k, s)) = command_key {
        return Err(src.err(s, key(k), "only applies to a route with a command"));
    }
    let mut http = Http::new(upstream);
    http.transport = or(t.transport.take(), http.transport);
    let legacy_key = first_written([
        ("legacy_mode", span(&t.legacy_mode)),
        ("legacy_max_sessions", span(&t.legacy_max_sessions)),
        ("legacy_session_idle", span(&t.legacy_session_idle)),
        (
            "legacy_allow_other_origin",
            span(&t.legacy_allow_other_origin),
        ),
    ]);
    if let (Transport::Streamable, Some((k, s))) = (http.transport, legacy_key) {
        return Err(src.err(s, key(k), "only applies to transport = \"sse\" or \"auto\""));
    }
    http.legacy_mode = or(t.legacy_mode.take(), http.legacy_mode);
    let legacy = &mut http.legacy;
    legacy.max_sessions = or(t.legacy_max_sessions.take(), legacy.max_sessions);
    legacy.session_idle = or(t.legacy_session_idle.take(), legacy.session_idle);
    legacy.allow_other_origin = or(
        t.legacy_allow_other_origin.take(),
        legacy.allow_other_origin,
    );
    http.well_known = t.well_known.as_ref().map_or(first, |w| w.value);
    http.upstream_headers = upstream_headers(src, key, t.upstream_headers.take(), base_dir)?;
    Ok(http)
}

/// `upstream_headers` of a URL route or a federation's server: each
/// field's name checked, once, and where its value comes from.
fn upstream_headers(
    src: &Source<'_>,
    key: &dyn Fn(&str) -> String,
    table: Option<At<UpstreamHeaders>>,
    base_dir: &Path,
) -> Result<Vec<UpstreamHeader>> {
    let mut out: Vec<UpstreamHeader> = Vec::new();
    for (name, At { value, span: at }) in value(table).map_or_else(Vec::new, |h| h.0) {
        let field = |k: &str| key(&format!("upstream_headers.{name}{k}"));
        check_header_name(&name).map_err(|p| src.err(&at, field(""), p))?;
        if out.iter().any(|h| h.name.eq_ignore_ascii_case(&name)) {
            return Err(src.err(&at, field(""), format!("{name} is given twice")));
        }
        let value = secret_value(src, &field, &at, value, base_dir)?;
        out.push(UpstreamHeader { name, value });
    }
    Ok(out)
}

/// A command route's settings. Keys of a URL route are refused.
fn stdio(
    src: &Source<'_>,
    key: &dyn Fn(&str) -> String,
    t: &mut RouteTable,
    command: At<CommandWords>,
    base_dir: &Path,
) -> Result<Stdio> {
    let url_key = url_key!(t);
    if let Some((k, s)) = url_key {
        return Err(src.err(s, key(k), "only applies to a route with an upstream URL"));
    }
    let Some((program, args)) = command.value.0.split_first() else {
        return Err(src.err(&command.span, key("command"), EMPTY_COMMAND));
    };
    check_program(&program.value).map_err(|p| src.err(&program.span, key("command[0]"), p))?;
    for (j, arg) in args.iter().enumerate() {
        check_arg(&arg.value)
            .map_err(|p| src.err(&arg.span, key(&format!("command[{}]", j + 1)), p))?;
    }
    let cwd = t.cwd.take().map(|c| base_dir.join(c.value));
    let program = program_in(cwd.as_deref(), &program.value);
    let mut s = Stdio::new(program, args.iter().map(|a| a.value.clone()).collect());
    s.cwd = cwd;

    for (name, At { value, span: at }) in value(t.env.take()).map_or_else(Vec::new, |e| e.0) {
        let var = |k: &str| key(&format!("env.{name}{k}"));
        check_env_name(&name).map_err(|p| src.err(&at, var(""), p))?;
        let value = match value {
            EnvSource::Literal(v) if v.contains('\0') => {
                return Err(src.err(&at, var(""), "contains a NUL character"));
            }
            value => secret_value(src, &var, &at, value, base_dir)?,
        };
        s.env.push(EnvVar { name, value });
    }

    if let Some(inherit) = t.inherit_env.take() {
        s.inherit_env.clear();
        for (j, At { value: name, span }) in inherit.value.into_iter().enumerate() {
            if s.inherit_env.contains(&name.0) {
                let k = key(&format!("inherit_env[{j}]"));
                return Err(src.err(&span, k, format!("{:?} is listed twice", name.0)));
            }
            s.inherit_env.push(name.0);
        }
    }

    // Each mode's own key, and the other mode's key if it was written.
    let (other_mode_key, mode) = match or(t.stdio_mode.take(), StdioModeName::Shared) {
        StdioModeName::Shared => {
            s.mode = StdioMode::Shared {
                restart_backoff_max: or(
                    t.restart_backoff_max.take(),
                    StdioMode::DEFAULT_RESTART_BACKOFF_MAX,
                ),
            };
            let max_processes = span(&t.max_processes).map(|s| ("max_processes", s));
            (max_processes, "per-session")
        }
        StdioModeName::PerSession => {
            s.mode = StdioMode::PerSession {
                max_processes: or(t.max_processes.take(), StdioMode::DEFAULT_MAX_PROCESSES),
            };
            let backoff = span(&t.restart_backoff_max).map(|s| ("restart_backoff_max", s));
            (backoff, "shared")
        }
    };
    if let Some((k, s)) = other_mode_key {
        let problem = format!("only applies with stdio_mode = {mode:?}");
        return Err(src.err(s, key(k), problem));
    }
    s.session_idle = or(t.session_idle.take(), s.session_idle);
    s.shutdown_grace = or(t.shutdown_grace.take(), s.shutdown_grace);
    s.init_timeout = or(t.init_timeout.take(), s.init_timeout);
    if let Some(sandbox) = t.sandbox.take() {
        s.sandbox = self::sandbox(src, key, sandbox.value)?;
    }
    Ok(s)
}

/// A federated route's members (`[[route.server]]`) and session keys.
/// Keys of a URL or a command route are refused on the route itself.
fn federation(
    src: &Source<'_>,
    key: &dyn Fn(&str) -> String,
    t: &mut RouteTable,
    servers: At<List<MemberTable>>,
    base_dir: &Path,
) -> Result<Federation> {
    let route_key = url_key!(t).or_else(|| command_key!(t));
    if let Some((k, s)) = route_key {
        return Err(src.err(
            s,
            key(k),
            "a route with servers takes this key per server, in [[route.server]]",
        ));
    }
    if servers.value.is_empty() {
        return Err(src.err(
            &servers.span,
            key("server"),
            "at least one server is required",
        ));
    }
    let count = servers.value.len();
    let mut members: Vec<Member> = Vec::with_capacity(count);
    for (
        j,
        At {
            value: mut m,
            span: at,
        },
    ) in servers.value.into_iter().enumerate()
    {
        let key = |k: &str| key(&format!("server[{j}].{k}"));
        let Some(At {
            value: Name(name),
            span: name_at,
        }) = m.name.take()
        else {
            return Err(src.err(&at, key("name"), "missing (every server needs a name)"));
        };
        sluice_core::federation::check_name(&name)
            .map_err(|e| src.err(&name_at, key("name"), e.to_string()))?;
        if let Some(k) = members.iter().position(|o| o.name == name) {
            return Err(src.err(
                &name_at,
                key("name"),
                format!("{name:?} is already the name of server[{k}]"),
            ));
        }
        let server = match (m.upstream.take(), m.command.take()) {
            (Some(u), Some(c)) => {
                let (k, s) = match u.span.start < c.span.start {
                    true => ("command", c.span),
                    false => ("upstream", u.span),
                };
                return Err(src.err(
                    &s,
                    key(k),
                    "a server has an upstream URL or a command, not both",
                ));
            }
            (None, None) => {
                return Err(src.err(
                    &at,
                    key("upstream"),
                    "missing (every server needs an upstream URL, or a command to run)",
                ));
            }
            (
                Some(At {
                    value: upstream, ..
                }),
                None,
            ) => {
                let command_key = command_key!(m);
                if let Some((k, s)) = command_key {
                    return Err(src.err(s, key(k), "only applies to a server with a command"));
                }
                match m.transport.take() {
                    None
                    | Some(At {
                        value: Transport::Streamable,
                        ..
                    }) => MemberServer::Http(upstream),
                    Some(At {
                        value: Transport::Sse,
                        ..
                    }) => MemberServer::Legacy(upstream),
                    Some(At { span, .. }) => {
                        return Err(src.err(
                            &span,
                            key("transport"),
                            "a server's transport is \"streamable\" (the default) or \"sse\" (legacy HTTP+SSE); it is not found out",
                        ));
                    }
                }
            }
            (None, Some(command)) => {
                if let Some(t) = &m.transport {
                    return Err(src.err(
                        &t.span,
                        key("transport"),
                        "only applies to a server with an upstream URL",
                    ));
                }
                // The command keys, read as a command route's are.
                let mut as_route = RouteTable {
                    name: None,
                    path: None,
                    upstream: None,
                    command: None,
                    transport: None,
                    legacy_mode: None,
                    legacy_max_sessions: None,
                    legacy_session_idle: None,
                    legacy_allow_other_origin: None,
                    well_known: None,
                    upstream_headers: None,
                    auth: None,
                    env: m.env.take(),
                    inherit_env: m.inherit_env.take(),
                    cwd: m.cwd.take(),
                    stdio_mode: m.stdio_mode.take(),
                    max_processes: m.max_processes.take(),
                    session_idle: m.session_idle.take(),
                    shutdown_grace: m.shutdown_grace.take(),
                    init_timeout: m.init_timeout.take(),
                    restart_backoff_max: m.restart_backoff_max.take(),
                    sandbox: m.sandbox.take(),
                    server: None,
                    session_keys: None,
                };
                MemberServer::Stdio(stdio(src, &key, &mut as_route, command, base_dir)?)
            }
        };
        let headers = m.upstream_headers.take();
        if let Some(At { span, .. }) = &headers
            && !matches!(server, MemberServer::Http(_))
        {
            let problem = match server {
                MemberServer::Legacy(_) => {
                    "a legacy (transport = \"sse\") server cannot take upstream_headers yet"
                }
                _ => {
                    "only applies to a server with an upstream URL (a command's credentials go in its env)"
                }
            };
            return Err(src.err(span, key("upstream_headers"), problem));
        }
        let mut member = Member::new(name.clone(), server);
        member.upstream_headers = upstream_headers(src, &key, headers, base_dir)?;
        if let Some(h) = member
            .upstream_headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("accept-encoding"))
        {
            let problem = "sluice reads a member's answer, so it asks for it uncompressed";
            return Err(src.err(&at, key(&format!("upstream_headers.{}", h.name)), problem));
        }
        let policy = &mut member.policy;
        policy.timeout = or(m.timeout.take(), policy.timeout);
        policy.on_unavailable = or(m.on_unavailable.take(), policy.on_unavailable);
        if let Some(At {
            value: prefix,
            span,
        }) = m.prefix.take()
        {
            sluice_core::federation::check_name(&prefix)
                .map_err(|e| src.err(&span, key("prefix"), format!("prefix {e}")))?;
            member.tools.prefix = prefix;
        }
        member.tools.prefix_mode = or(m.prefix_mode.take(), member.tools.prefix_mode);
        if let Some(At { value: sep, span }) = m.separator.take() {
            let ok = sep.len() <= 8
                && sep
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
            if !ok {
                return Err(src.err(
                    &span,
                    key("separator"),
                    "up to 8 of the characters a name may hold (A-Z a-z 0-9 _ - .)",
                ));
            }
            member.tools.separator = sep;
        }
        member.prompts.prefix = member.tools.prefix.clone();
        member.prompts.prefix_mode = member.tools.prefix_mode;
        member.prompts.separator = member.tools.separator.clone();
        if let Some(c) = m.tools.take() {
            curation(
                src,
                &|k| key(&format!("tools.{k}")),
                c.value,
                &mut member.tools,
            )?;
        }
        if let Some(c) = m.prompts.take() {
            curation(
                src,
                &|k| key(&format!("prompts.{k}")),
                c.value,
                &mut member.prompts,
            )?;
        }
        for (what, c) in [("tools", &member.tools), ("prompts", &member.prompts)] {
            if let Some(e) = c.check(count).into_iter().next() {
                return Err(src.err(&at, key(what), e.to_string()));
            }
        }
        members.push(member);
    }
    for catalog in [
        sluice_core::federation::Catalog::new(members.iter().map(|m| m.tools.clone()).collect()),
        sluice_core::federation::Catalog::new(members.iter().map(|m| m.prompts.clone()).collect()),
    ] {
        if let Some(problem) = catalog.check().into_iter().next() {
            return Err(src.err(&servers.span, key("server"), problem));
        }
    }
    let mut session_keys = Vec::new();
    for (j, At { value: from, span }) in value(t.session_keys.take())
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        let k = key(&format!("session_keys[{j}]"));
        session_keys.push(match (from.from_env, from.from_file) {
            (Some(e), None) => KeySource::Env(e.value.0),
            (None, Some(f)) => KeySource::File(base_dir.join(f.value)),
            (Some(_), Some(_)) => {
                return Err(src.err(&span, k, "give from_env or from_file, not both"));
            }
            (None, None) => {
                return Err(src.err(
                    &span,
                    k,
                    "an empty table: give { from_env = \"NAME\" } or { from_file = \"PATH\" }",
                ));
            }
        });
    }
    Ok(Federation {
        members,
        session_keys,
    })
}

/// A server's `[route.server.tools]` or `[route.server.prompts]` onto
/// `into`.
fn curation(
    src: &Source<'_>,
    key: &dyn Fn(&str) -> String,
    t: CurationTable,
    into: &mut sluice_core::federation::Curation,
) -> Result<()> {
    use sluice_core::federation::Glob;
    let globs = |list: Key<List<String>>| -> Vec<Glob> {
        value(list)
            .unwrap_or_default()
            .into_iter()
            .map(|g| Glob::new(&g.value))
            .collect()
    };
    into.include = globs(t.include);
    into.exclude = globs(t.exclude);
    for (name, At { value: new, span }) in value(t.aliases).map_or_else(Vec::new, |r| r.0) {
        if new.is_empty() {
            return Err(src.err(&span, key(&format!("aliases.{name}")), "cannot be empty"));
        }
        if into.aliases.iter().any(|(_, n)| *n == new) {
            return Err(src.err(
                &span,
                key(&format!("aliases.{name}")),
                format!("{new:?} is the new name of another alias too"),
            ));
        }
        into.aliases.push((name, new));
    }
    into.descriptions = value(t.descriptions)
        .map_or_else(Vec::new, |r| r.0)
        .into_iter()
        .map(|(name, d)| (name, d.value))
        .collect();
    Ok(())
}

/// A table of names to strings (`aliases`, `descriptions`), in the order
/// written.
struct Renames(Vec<(String, At<String>)>);

impl<'de> Leaf<'de> for Renames {
    const EXPECTED: &'static str = "a table of names to strings ({ old_name = \"new_name\" })";

    fn table<A: serde::de::MapAccess<'de>>(mut map: A) -> std::result::Result<Self, A::Error> {
        let mut pairs = Vec::new();
        while let Some(name) = map.next_key::<String>()? {
            pairs.push((name, map.next_value()?));
        }
        Ok(Renames(pairs))
    }
}

/// A command route's `[route.sandbox]`. User and group names are looked up
/// in `/etc/passwd` and `/etc/group`, read only when a name is given (or a
/// numeric user without a group, whose primary group is looked up).
fn sandbox(src: &Source<'_>, key: &dyn Fn(&str) -> String, t: SandboxTable) -> Result<Sandbox> {
    let key = |k: &str| key(&format!("sandbox.{k}"));
    if let Some(cpu) = &t.max_cpu
        && cpu.value.subsec_nanos() != 0
    {
        return Err(src.err(
            &cpu.span,
            key("max_cpu"),
            "RLIMIT_CPU counts whole seconds; give a duration such as 10s or 5m",
        ));
    }
    let run_as = match &t.user {
        Some(user) => Some(run_as(src, &key, user, t.group.as_ref())?),
        None => match &t.group {
            Some(group) => {
                return Err(src.err(
                    &group.span,
                    key("group"),
                    "only applies with user (without it the child keeps sluice's user and group)",
                ));
            }
            None => None,
        },
    };
    Ok(Sandbox {
        max_memory: t.max_memory.map(|m| m.value.0 as u64),
        max_cpu: value(t.max_cpu),
        max_open_files: t.max_open_files.map(|n| n.value.0 as u64),
        run_as,
    })
}

/// The ids of a sandbox's `user`, with its `group` or else the user's
/// primary group. `/etc/passwd` is read unless both are numeric;
/// `/etc/group` when the group is a name.
fn run_as(
    src: &Source<'_>,
    key: &dyn Fn(&str) -> String,
    user: &At<IdOrName>,
    group: Option<&At<IdOrName>>,
) -> Result<RunAs> {
    let read = |path: &str, k: &str, at: &Range<usize>| {
        std::fs::read_to_string(path)
            .map_err(|e| src.err(at, key(k), format!("cannot read {path}: {e}")))
    };
    let gid = match group {
        None => None,
        Some(At {
            value: IdOrName::Id(gid),
            ..
        }) => Some(*gid),
        Some(At {
            value: IdOrName::Name(name),
            span,
        }) => Some(
            find_group(&read(GROUP, "group", span)?, name).ok_or_else(|| {
                src.err(span, key("group"), format!("no group {name:?} in {GROUP}"))
            })?,
        ),
    };
    if let (IdOrName::Id(uid), Some(gid)) = (&user.value, gid) {
        return Ok(RunAs { uid: *uid, gid });
    }
    let found = find_user(&read(PASSWD, "user", &user.span)?, user.value.account());
    let Some((uid, primary)) = found else {
        let problem = match &user.value {
            IdOrName::Name(name) => format!("no user {name:?} in {PASSWD}"),
            IdOrName::Id(uid) => format!(
                "uid {uid} has no entry in {PASSWD} to take its primary group from; set group too"
            ),
        };
        return Err(src.err(&user.span, key("user"), problem));
    };
    Ok(RunAs {
        uid,
        gid: gid.unwrap_or(primary),
    })
}

/// A command route's `env` table: each variable's name and where its value
/// comes from, in the order written.
struct Env(Vec<(String, At<EnvSource>)>);

impl<'de> Leaf<'de> for Env {
    const EXPECTED: &'static str = "a table of environment variables ({ NAME = \"value\", TOKEN = { from_env = \"MY_TOKEN\" } })";

    fn table<A: serde::de::MapAccess<'de>>(mut map: A) -> std::result::Result<Self, A::Error> {
        let mut vars = Vec::new();
        while let Some(name) = map.next_key::<String>()? {
            vars.push((name, map.next_value()?));
        }
        Ok(Env(vars))
    }
}

/// A URL route's `upstream_headers`: each field's name and where its value
/// comes from, in the order written.
struct UpstreamHeaders(Vec<(String, At<EnvSource>)>);

impl<'de> Leaf<'de> for UpstreamHeaders {
    const EXPECTED: &'static str = "a table of header fields ({ Authorization = { from_env = \"UPSTREAM_TOKEN\" }, X-Tenant = \"a\" })";

    fn table<A: serde::de::MapAccess<'de>>(mut map: A) -> std::result::Result<Self, A::Error> {
        let mut fields = Vec::new();
        while let Some(name) = map.next_key::<String>()? {
            fields.push((name, map.next_value()?));
        }
        Ok(UpstreamHeaders(fields))
    }
}

/// Where a value that may be a secret is read: as written, from sluice's
/// environment or from a file (`key("")` names it in errors).
fn secret_value(
    src: &Source<'_>,
    key: &dyn Fn(&str) -> String,
    at: &Range<usize>,
    source: EnvSource,
    base_dir: &Path,
) -> Result<EnvValue> {
    Ok(match source {
        EnvSource::Literal(v) => EnvValue::Literal(Secret::new(v)),
        EnvSource::From(from) => match (from.from_env, from.from_file) {
            (Some(e), None) => EnvValue::FromEnv(e.value.0),
            (None, Some(f)) => EnvValue::FromFile(base_dir.join(f.value)),
            (Some(_), Some(f)) => {
                return Err(src.err(
                    &f.span,
                    key(".from_file"),
                    "give from_env or from_file, not both",
                ));
            }
            (None, None) => {
                return Err(src.err(
                    at,
                    key(""),
                    "an empty table: give { from_env = \"NAME\" } or { from_file = \"PATH\" }",
                ));
            }
        },
    })
}

/// A value that may be a secret, as another module's table holds it.
pub(super) struct SecretSource(EnvSource);

impl<'de> Leaf<'de> for SecretSource {
    const EXPECTED: &'static str = EnvSource::EXPECTED;

    fn scalar(value: Scalar<'_>) -> std::result::Result<Self, Refused> {
        EnvSource::scalar(value).map(SecretSource)
    }

    fn table<A: serde::de::MapAccess<'de>>(map: A) -> std::result::Result<Self, A::Error> {
        EnvSource::table(map).map(SecretSource)
    }
}

impl SecretSource {
    /// Where the value is read (`key("")` names it in errors).
    pub(super) fn value(
        self,
        src: &Source<'_>,
        key: &dyn Fn(&str) -> String,
        at: &Range<usize>,
        base_dir: &Path,
    ) -> Result<EnvValue> {
        secret_value(src, key, at, self.0, base_dir)
    }
}

/// Where one variable of `env` takes its value.
enum EnvSource {
    /// `NAME = "value"`.
    Literal(String),
    /// `NAME = { from_env = "VAR" }` or `NAME = { from_file = "PATH" }`.
    From(EnvFrom),
}

impl<'de> Leaf<'de> for EnvSource {
    const EXPECTED: &'static str =
        "a string, or a table { from_env = \"NAME\" } or { from_file = \"PATH\" }";

    fn scalar(value: Scalar<'_>) -> std::result::Result<Self, Refused> {
        match value {
            Scalar::Str(s) => Ok(EnvSource::Literal(s.to_string())),
            _ => Err(Refused::Kind),
        }
    }

    fn table<A: serde::de::MapAccess<'de>>(map: A) -> std::result::Result<Self, A::Error> {
        EnvFrom::table(map).map(EnvSource::From)
    }
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
        redact_subject: or(t.redact_subject, d.redact_subject),
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

        hook.order = or(t.order, 0);
        // `mode` names the enforcement; "fresh"/"warm" there is the older
        // spelling of `instances`, kept so configs written for it still load.
        let mut life = value(t.instances);
        match t.mode {
            Some(At {
                value: HookModeKey::Instances(m),
                span,
            }) => {
                if life.is_some() {
                    return Err(src.err(
                        &span,
                        key("mode"),
                        "the instance life cycle is given by `instances`; `mode` is \"enforce\" or \"audit\" here",
                    ));
                }
                life = Some(m);
            }
            Some(At {
                value: HookModeKey::Audit,
                ..
            }) => hook.enforcement = Enforcement::Audit,
            Some(At {
                value: HookModeKey::Enforce,
                ..
            })
            | None => {}
        }
        if life.unwrap_or(Mode::Fresh) == Mode::Warm {
            hook.mode = HookMode::Warm {
                pool: or(t.pool, DEFAULT_WARM_POOL),
                recycle_after: or(t.recycle_after, DEFAULT_RECYCLE_AFTER),
            };
        } else if let Some((k, s)) = first_written([
            ("pool", span(&t.pool)),
            ("recycle_after", span(&t.recycle_after)),
        ]) {
            return Err(src.err(s, key(k), "only applies with instances = \"warm\""));
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
