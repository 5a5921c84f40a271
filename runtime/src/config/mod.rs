//! Configuration and command line of the `sluice` binary.
//!
//! Two front ends produce one validated [`Config`]:
//!
//! - the command line alone: `sluice --upstream http://127.0.0.1:3001/mcp`,
//!   or `sluice --upstream-command 'uvx mcp-server-time'` for a server sluice
//!   starts (zero-config: one route, every other setting at its default);
//! - a TOML file: `sluice --config sluice.toml` (every setting; the schema is
//!   documented key by key in `docs/CONFIG.md`).
//!
//! [`Config::from_args`] is the one entry point `main` needs:
//!
//! ```no_run
//! use sluice::config::{Command, Config};
//!
//! match Config::from_args(std::env::args_os()).unwrap_or_else(|e| e.exit()) {
//!     Command::Proxy(config) => { /* serve config.routes on config.listen */ }
//!     Command::Demo(demo) => {
//!         // start the demo MCP server on a free port, then:
//!         let config = demo.proxy_config("127.0.0.1:3001".parse().unwrap());
//!     }
//!     Command::DemoStdio => { /* serve the demo MCP server on stdin and stdout */ }
//!     Command::Hook(hook) => { /* sluice hook check|test|new: a hook, offline */ }
//! }
//! ```
//!
//! Every error names where it comes from and what is wrong, e.g.
//! `sluice.toml:7:12: route[1].upstream: "ftp://x" is not an http or https URL`
//! or `--listen: "nowhere" is not a listen address (...)`. Values arrive here
//! already parsed (durations, sizes, URLs, addresses, host and origin rules),
//! so the proxy never re-validates configuration.

mod auth;
mod cli;
mod de;
mod duration;
mod file;
mod security;
mod stdio;
mod url;
mod view;

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A hook's failure policy, life cycle and grants are the hook host's own
/// types.
pub use crate::hooks::{Enforcement, Grants, InstanceMode as HookMode, OnError};
pub use auth::{Introspection, JwtAuth, RouteAuth, TokenExchange};
pub use security::{HostRule, OriginRule, Security};
pub use stdio::{EnvValue, EnvVar, RunAs, Sandbox, Secret, Stdio, StdioMode};
pub use url::{Host, Scheme, Upstream};
pub use view::{REDACTED, names_a_secret};

/// What the command line asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)] // built once at startup
pub enum Command {
    /// Run the proxy with this configuration.
    Proxy(Config),
    /// `sluice demo`: run the embedded demo MCP server behind the proxy.
    Demo(Demo),
    /// `sluice demo --stdio`: serve the demo MCP server on stdin and
    /// stdout (what `sluice demo` runs behind its `/stdio` route).
    DemoStdio,
    /// `sluice hook check|test|new`: a hook author's tools, no proxy.
    Hook(crate::hook_cli::HookCommand),
}

/// The whole validated configuration of the proxy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// The address the proxy listens on. Port 0 asks the OS for a free port;
    /// print the bound address so the operator can find it.
    /// Default `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// Where the admin listener (metrics, health, the effective config)
    /// listens; never the proxy's own address. Default `None`: off.
    pub admin: Option<SocketAddr>,
    /// At least one route; the request path picks one (see [`Config::resolve`]).
    /// Paths are unique, names are unique, at most one route serves
    /// `/.well-known/`.
    pub routes: Vec<Route>,
    /// Size limits.
    pub limits: Limits,
    /// Timeouts.
    pub timeouts: Timeouts,
    /// Host and Origin checks, forwarding headers.
    pub security: Security,
    /// How https upstreams are verified.
    pub tls: Tls,
    /// Logging.
    pub log: Log,
    /// The upstream connection pool.
    pub pool: Pool,
    /// The server's own resources.
    pub server: Server,
    /// WebAssembly hooks, in the order they run on a request (responses see
    /// them in the same order).
    pub hooks: Vec<HookConfig>,
    /// Traces over OTLP/HTTP (`[tracing]`). Default `None`: off.
    pub tracing: Option<Tracing>,
}

/// `[tracing]`: a span per exchange, exported over OTLP/HTTP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tracing {
    /// The OTLP/HTTP traces URL (`http://127.0.0.1:4318/v1/traces`);
    /// `http` only.
    pub endpoint: Upstream,
    /// The share of new traces recorded. Default 1.0.
    pub sample_ratio: SampleRatio,
    /// The resource's `service.name`. Default `sluice`.
    pub service_name: String,
    /// Most spans waiting for export. Default 2048.
    pub queue_spans: usize,
}

impl Tracing {
    /// Default `service_name`.
    pub const DEFAULT_SERVICE_NAME: &str = "sluice";
    /// Default `queue_spans`.
    pub const DEFAULT_QUEUE_SPANS: usize = 2048;
}

/// A sampling ratio: a number from 0.0 to 1.0 (never NaN).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SampleRatio(f64);

impl Eq for SampleRatio {}

impl SampleRatio {
    /// Every trace.
    pub const ALWAYS: SampleRatio = SampleRatio(1.0);

    /// `ratio`, if it is a number from 0.0 to 1.0.
    pub fn new(ratio: f64) -> Option<SampleRatio> {
        (0.0..=1.0).contains(&ratio).then_some(SampleRatio(ratio))
    }

    /// The ratio.
    pub fn get(self) -> f64 {
        self.0
    }
}

/// One path prefix on the listen address and the upstream that serves it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// A name for logs, metrics and hooks (the `upstream` of a hook's
    /// context). Default: the upstream's host, or the command's program
    /// file name, made unique with `-2`, `-3`…
    pub name: String,
    /// The path prefix served on the listen address, starting with `/`.
    /// Matching is by whole segments: `/mcp` matches `/mcp`, `/mcp/x` and
    /// `/mcp?q`, not `/mcpx`.
    pub path: String,
    /// What serves the route: an upstream URL, or a command sluice runs.
    pub backend: Backend,
    /// Who may call it (`[route.auth]`). Default `None`: anyone.
    pub auth: Option<RouteAuth>,
}

impl Route {
    /// A route named after its backend (see [`Route::name`]; made unique
    /// by the front ends).
    pub(crate) fn new(path: String, backend: Backend) -> Route {
        let name = match &backend {
            Backend::Http(http) => match &http.upstream.host {
                Host::Name(name) => name.clone(),
                ip => ip.to_string(),
            },
            Backend::Stdio(stdio) => stdio.base_name(),
            Backend::Federation(_) => "federation".to_string(),
        };
        Route {
            name,
            path,
            backend,
            auth: None,
        }
    }

    /// The upstream URL's settings, for a URL route.
    pub fn http(&self) -> Option<&Http> {
        match &self.backend {
            Backend::Http(http) => Some(http),
            Backend::Stdio(_) | Backend::Federation(_) => None,
        }
    }

    /// The command's settings, for a command route.
    pub fn stdio(&self) -> Option<&Stdio> {
        match &self.backend {
            Backend::Stdio(stdio) => Some(stdio),
            Backend::Http(_) | Backend::Federation(_) => None,
        }
    }

    /// Whether `/.well-known/*` requests go to this route's origin (only a
    /// URL route has one).
    pub fn well_known(&self) -> bool {
        self.http().is_some_and(|h| h.well_known)
    }
}

/// What serves a route.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)] // built once at startup
pub enum Backend {
    /// An MCP server reached over HTTP at a URL.
    Http(Http),
    /// An MCP server sluice starts as a child process and talks to on its
    /// stdin and stdout.
    Stdio(Stdio),
    /// Several MCP servers behind one endpoint (today: commands).
    Federation(Federation),
}

/// A federated route: its members, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Federation {
    /// The members; their order decides a name two of them show.
    pub members: Vec<Member>,
    /// The keys of its client sessions, the sealing one first (the others
    /// still open sessions sealed before a rotation). Empty: a key made at
    /// start, good for this process only.
    pub session_keys: Vec<KeySource>,
}

/// Where a federated route's session key is read when sluice starts: 32
/// bytes, written as 64 hex digits or in base64.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySource {
    /// sluice's environment variable of this name.
    Env(String),
    /// This file.
    File(PathBuf),
}

/// One member of a federation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// Its name: the prefix of its tools and prompts when there are
    /// several members (letters, digits, `_`, `-`, `.`).
    pub name: String,
    /// The server.
    pub server: MemberServer,
    /// How its tools are shown.
    pub tools: sluice_core::federation::Curation,
    /// How its prompts are shown.
    pub prompts: sluice_core::federation::Curation,
    /// How long it has to begin an answer, and what lists do without it.
    pub policy: sluice_core::federation::MemberPolicy,
    /// Fields set on every request to a Streamable HTTP member, in place of
    /// any the client sent by the same name: the operator's credentials for
    /// it, their values read when sluice starts.
    pub upstream_headers: Vec<UpstreamHeader>,
}

/// What serves a member of a federation.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)] // built once at startup
pub enum MemberServer {
    /// A command sluice runs (as a command route would).
    Stdio(Stdio),
    /// A Streamable HTTP server at a URL.
    Http(Upstream),
    /// A legacy HTTP+SSE (2024-11-05) server at its SSE URL, bridged (its
    /// sessions live in one sluice process).
    Legacy(Upstream),
}

impl MemberServer {
    /// The command's settings, for a command member.
    pub fn stdio(&self) -> Option<&Stdio> {
        match self {
            MemberServer::Stdio(s) => Some(s),
            MemberServer::Http(_) | MemberServer::Legacy(_) => None,
        }
    }
}

impl Member {
    /// A member with the default curation: its name as the prefix, when
    /// there are several members.
    pub fn new(name: String, server: MemberServer) -> Self {
        let curation = sluice_core::federation::Curation::new(name.clone());
        Member {
            name,
            server,
            tools: curation.clone(),
            prompts: curation,
            policy: crate::federation::DEFAULT_POLICY,
            upstream_headers: Vec::new(),
        }
    }
}

impl Backend {
    /// The path a route is served at when it gives none: the upstream
    /// URL's path, or [`Stdio::DEFAULT_PATH`] for a command.
    pub(crate) fn default_path(&self) -> String {
        match self {
            Backend::Http(http) => http.upstream.path.clone(),
            Backend::Stdio(_) | Backend::Federation(_) => Stdio::DEFAULT_PATH.to_string(),
        }
    }
}

/// The upstream URL (for logs) or the command, quoted.
impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Backend::Http(http) => http.upstream.fmt(f),
            Backend::Stdio(stdio) => stdio.fmt(f),
            Backend::Federation(fed) => {
                let names: Vec<&str> = fed.members.iter().map(|m| m.name.as_str()).collect();
                write!(f, "federation of {}", names.join(", "))
            }
        }
    }
}

/// A route's upstream MCP server at a URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Http {
    /// Where requests go. The part of the request path after the prefix is
    /// appended to the upstream's path (see [`Config::resolve`]).
    pub upstream: Upstream,
    /// The upstream's transport. Default [`Transport::Auto`].
    pub transport: Transport,
    /// How a legacy HTTP+SSE upstream's sessions map to client sessions
    /// (only with [`Transport::Sse`] or [`Transport::Auto`]). Default
    /// [`LegacyMode::Session`].
    pub legacy_mode: LegacyMode,
    /// The legacy bridge's session limit, idle expiry and endpoint origin
    /// rule (only with [`Transport::Sse`] or [`Transport::Auto`]).
    pub legacy: Legacy,
    /// Whether `/.well-known/*` requests go to this upstream's origin,
    /// path unchanged (OAuth protected-resource and authorization-server
    /// metadata must be reachable through the proxy). Default true for the
    /// first URL route, false for the others.
    pub well_known: bool,
    /// Fields set on every request to the upstream, in place of any the
    /// client sent by the same name (the operator's credentials for it),
    /// their values read when sluice starts.
    pub upstream_headers: Vec<UpstreamHeader>,
}

/// One field a URL route sets on its upstream requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamHeader {
    /// The field name.
    pub name: String,
    /// Its value, or where to read it.
    pub value: EnvValue,
}

impl UpstreamHeader {
    /// The value, read now (a secret it names must be readable).
    pub fn resolve(&self) -> Result<String, ConfigError> {
        let refused = |problem: String| {
            ConfigError::invalid(
                None,
                None,
                format!("upstream_headers.{}", self.name),
                problem,
            )
        };
        let value = match &self.value {
            EnvValue::Literal(secret) => secret.expose().to_string(),
            EnvValue::FromEnv(from) => std::env::var(from)
                .map_err(|_| refused(format!("sluice's environment variable {from} is not set")))?,
            EnvValue::FromFile(path) => stdio::read_secret(path).map_err(refused)?,
        };
        check_header_value(&value).map_err(refused)?;
        Ok(value)
    }
}

/// A field name as HTTP has it: one or more token characters.
pub(crate) fn check_header_name(name: &str) -> Result<(), String> {
    let tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if name.is_empty() || !name.bytes().all(tchar) {
        return Err(format!("{name:?} is not a header field name"));
    }
    // The writer's own fields, and the MCP ones the client's session holds.
    const SESSION: &[&str] = &["mcp-session-id", "mcp-protocol-version", "last-event-id"];
    if sluice_core::http1::is_writer_owned(name)
        || SESSION.iter().any(|n| n.eq_ignore_ascii_case(name))
    {
        return Err(format!("{name} is sluice's to set, or the client's"));
    }
    Ok(())
}

/// A field value sluice may send: visible ASCII, spaces and tabs inside.
fn check_header_value(value: &str) -> Result<(), String> {
    let ok = value
        .bytes()
        .all(|b| b == b' ' || b == b'\t' || b.is_ascii_graphic())
        && !value.starts_with([' ', '\t'])
        && !value.ends_with([' ', '\t']);
    if ok {
        Ok(())
    } else {
        Err("a header value is visible ASCII, with spaces or tabs only inside".into())
    }
}

impl Http {
    /// An upstream URL with every setting at its default (and
    /// `well_known`, which depends on the other routes, true).
    pub(crate) fn new(upstream: Upstream) -> Http {
        Http {
            upstream,
            transport: Transport::Auto,
            legacy_mode: LegacyMode::Session,
            legacy: Legacy::default(),
            well_known: true,
            upstream_headers: Vec::new(),
        }
    }
}

/// The default listen address.
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 8080));

/// The MCP transport an upstream speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    /// Streamable HTTP (2025-03-26 and later): passthrough.
    Streamable,
    /// The legacy HTTP+SSE transport (2024-11-05), bridged.
    Sse,
    /// Found out from the upstream's answer to a client's first POST: a
    /// 400/404/405 that is no JSON-RPC error sends sluice to GET the URL
    /// and expect `endpoint` (as the specification tells clients); an
    /// `endpoint` event switches the route to the bridge and the request
    /// goes again through it. Remembered per route.
    Auto,
}

/// Settings of a route's legacy HTTP+SSE bridge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Legacy {
    /// Most backend SSE sessions open at once on the route (session mode:
    /// client sessions; per-request mode: requests in flight). Past it a
    /// new one is refused with 503 and a JSON-RPC error. Default 1024.
    pub max_sessions: usize,
    /// Session mode: a session with no client request or GET stream
    /// attached for this long is closed (its backend stream too). `None`:
    /// never. Default 30 minutes.
    pub session_idle: Option<Duration>,
    /// Accept an `endpoint` event naming another origin than the SSE
    /// stream's (and POST there). Default false: such a backend session
    /// fails with a JSON-RPC error naming the endpoint.
    pub allow_other_origin: bool,
}

impl Default for Legacy {
    fn default() -> Self {
        Legacy {
            max_sessions: crate::legacy::DEFAULT_MAX_SESSIONS,
            session_idle: sluice_core::legacy::BridgeTimeouts::default().session_idle,
            allow_other_origin: false,
        }
    }
}

/// How the legacy bridge maps backend HTTP+SSE sessions to clients.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum LegacyMode {
    /// One backend SSE session per client session (`Mcp-Session-Id`
    /// minted by sluice), reused for every request; server-initiated
    /// messages reach the client's GET stream.
    #[default]
    Session,
    /// A fresh backend SSE session (and handshake) per request; nothing kept.
    PerRequest,
}

/// Size limits. Every limit is greater than zero.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest request head (request line and headers) read from a client;
    /// beyond it the client gets 431. Default 32 KiB.
    pub max_head_bytes: usize,
    /// Most header fields in one request or response head; beyond it 431
    /// (request) or 502 (response). Default 100.
    pub max_headers: usize,
    /// Largest request body accepted from a client; beyond it 413.
    /// Default 4 MiB.
    pub max_request_body_bytes: usize,
    /// Largest response head read from an upstream; beyond it 502.
    /// Default 64 KiB.
    pub max_response_head_bytes: usize,
    /// Largest `application/json` response body buffered because a hook
    /// looks at it; beyond it 502. Unhooked responses stream and are not
    /// limited. Default 16 MiB.
    pub max_response_body_bytes: usize,
    /// Largest SSE event the proxy parses (only events on hooked streams are
    /// parsed). Default 16 MiB.
    pub max_sse_event_bytes: usize,
    /// Deepest JSON nesting the message classifier accepts. Default 128.
    pub max_json_depth: usize,
}

impl Default for Limits {
    /// Core's defaults ([`ExchangeLimits::default`](sluice_core::exchange::ExchangeLimits)),
    /// but for the response head: 64 KiB, the config's own (core's HTTP/1.1
    /// default is 32 KiB for either head).
    fn default() -> Self {
        let core = sluice_core::exchange::ExchangeLimits::default();
        Limits {
            max_head_bytes: core.request_head.max_head_bytes,
            max_headers: core.request_head.max_headers,
            max_request_body_bytes: core.max_request_body,
            max_response_head_bytes: 64 << 10,
            max_response_body_bytes: core.max_hooked_response,
            max_sse_event_bytes: core.sse.max_event_bytes,
            max_json_depth: core.json.max_depth,
        }
    }
}

/// Timeouts. `None` means "off" (no limit); no timeout is zero.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP connect plus TLS handshake to an upstream; on expiry the client
    /// gets 502. Default 10s.
    pub connect: Duration,
    /// From the request's last byte sent upstream to the response head
    /// received; on expiry 504. Default 300s (tools can be slow).
    pub response_head: Option<Duration>,
    /// Longest silence on a response body or SSE stream before the proxy
    /// gives up on it. Default off: MCP streams are long-lived and may
    /// idle for hours.
    pub stream_idle: Option<Duration>,
    /// When set, a `: keepalive` SSE comment is written to the client at an
    /// event boundary after this much idle time (keeps middleboxes from
    /// cutting quiet streams). Default off.
    pub sse_keepalive: Option<Duration>,
    /// How long an idle pooled upstream connection is kept. Default 60s.
    pub pool_idle: Duration,
    /// On shutdown, how long in-flight exchanges get to finish before they are
    /// cut. Zero allowed. Default 10s.
    pub shutdown_grace: Duration,
    /// Time a client has to send a whole request head, counted from its
    /// first byte (slow-loris defence); on expiry 408. Default 30s.
    pub client_head: Duration,
    /// How long a keep-alive client connection may sit idle between
    /// requests before the proxy closes it. Default 60s.
    pub client_idle: Duration,
}

impl Default for Timeouts {
    /// Core's [`Timeouts::recommended`](sluice_core::exchange::Timeouts::recommended),
    /// plus the two the driver keeps (`pool_idle`, `shutdown_grace`).
    fn default() -> Self {
        let core = sluice_core::exchange::Timeouts::recommended();
        let why = "Timeouts::recommended sets connect, client_request and client_idle";
        Timeouts {
            connect: core.connect.expect(why),
            response_head: core.response_head,
            stream_idle: core.stream_idle,
            sse_keepalive: core.sse_keepalive,
            pool_idle: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(10),
            client_head: core.client_request.expect(why),
            client_idle: core.client_idle.expect(why),
        }
    }
}

/// How https upstreams are verified.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tls {
    /// Extra trusted CA certificates (PEM), added to `roots`. Relative paths
    /// in a config file are relative to the file's directory.
    pub ca_file: Option<PathBuf>,
    /// The built-in trust anchors. Default [`Roots::Webpki`].
    pub roots: Roots,
}

/// Where the trust anchors for https upstreams come from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Roots {
    /// The Mozilla root set compiled into the binary (webpki-roots):
    /// the same on every machine.
    #[default]
    Webpki,
    /// The operating system's trust store.
    System,
    /// None: only `ca_file` is trusted (requires `ca_file`).
    None,
}

/// Logging.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Log {
    /// The most verbose level written. Default [`LogLevel::Info`].
    pub level: LogLevel,
    /// Line format. Default [`LogFormat::Text`].
    pub format: LogFormat,
    /// Write one access-log line per proxied request. Default true.
    pub access: bool,
    /// Write `subject=<redacted>` in access-log lines instead of the
    /// caller's subject. Default false.
    pub redact_subject: bool,
}

impl Default for Log {
    fn default() -> Self {
        Log {
            level: LogLevel::Info,
            format: LogFormat::Text,
            access: true,
            redact_subject: false,
        }
    }
}

/// Log verbosity, least to most verbose.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum)]
pub enum LogLevel {
    /// Nothing.
    Off,
    /// Failures only.
    Error,
    /// Failures and suspicious events (rejected hosts/origins, hook errors).
    Warn,
    /// Startup, shutdown and (with `access`) one line per request.
    Info,
    /// Connection and exchange life cycles.
    Debug,
    /// Everything, including header names (never header values of
    /// `Authorization`).
    Trace,
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The upstream connection pool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pool {
    /// Most idle keep-alive connections kept per upstream; 0 disables
    /// pooling. Default 64.
    pub max_idle_per_upstream: usize,
}

impl Default for Pool {
    fn default() -> Self {
        Pool {
            max_idle_per_upstream: 64,
        }
    }
}

/// The most worker threads `workers` may ask for.
pub const MAX_WORKERS: usize = 1024;

/// The server's own resources.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Server {
    /// Worker threads serving connections, 1 to [`MAX_WORKERS`]. Default
    /// `None`: one per CPU the process may run on.
    pub workers: Option<usize>,
}

impl Server {
    /// The worker count to start: the configured one, or one per CPU.
    pub fn worker_threads(&self) -> usize {
        self.workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
    }
}

/// One WebAssembly hook.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookConfig {
    /// A name for logs. Default: the file name without `.wasm`, made unique
    /// with `-2`, `-3`…
    pub name: String,
    /// The component file. Relative paths in a config file are relative to
    /// the file's directory.
    pub path: PathBuf,
    /// The hook's configuration string, handed to it verbatim (a TOML table
    /// in the file is turned into JSON text). Empty when not given.
    pub config: String,
    /// Narrows the methods the hook sees to these (same patterns as the
    /// hook's own list: `tools/call`, `notifications/*`, `*`). `None`: the
    /// hook's own list.
    pub methods: Option<Vec<String>>,
    /// What happens to the message when the hook traps, runs out of time or
    /// memory, or returns an invalid verdict. Default [`OnError::Reject`].
    pub on_error: OnError,
    /// Time one hooked message may take, instantiation plus call, by the
    /// wall clock. Default 50ms
    /// ([`hooks::DEFAULT_DEADLINE`](crate::hooks::DEFAULT_DEADLINE)).
    pub deadline: Duration,
    /// Most linear memory an instance may grow to. Default 16 MiB
    /// ([`hooks::DEFAULT_MAX_MEMORY`](crate::hooks::DEFAULT_MAX_MEMORY)).
    pub max_memory: usize,
    /// Instance life cycle (`instances`). Default [`HookMode::Fresh`].
    pub mode: HookMode,
    /// Whether its verdicts act (`mode`). Default [`Enforcement::Enforce`].
    pub enforcement: Enforcement,
    /// Its place in the chain: lower runs first, equal orders keep the
    /// config's. Default 0.
    pub order: i32,
    /// Capabilities beyond pure computation. Default none.
    pub grants: Grants,
    /// The client request headers the hook sees in its context, as
    /// lower-case names. Default none.
    pub headers: Vec<String>,
}

impl HookConfig {
    /// A hook with every setting at its default.
    pub(crate) fn new(name: String, path: PathBuf) -> HookConfig {
        HookConfig {
            name,
            path,
            config: String::new(),
            methods: None,
            on_error: OnError::default(),
            deadline: crate::hooks::DEFAULT_DEADLINE,
            max_memory: crate::hooks::DEFAULT_MAX_MEMORY,
            mode: HookMode::default(),
            enforcement: Enforcement::default(),
            order: 0,
            grants: Grants::default(),
            headers: Vec::new(),
        }
    }

    /// Adds a request header the hook sees: a header name, not listed yet
    /// in any case. The error is the problem.
    pub(crate) fn add_header(&mut self, name: &str) -> Result<(), String> {
        crate::hooks::check_header_name(name)?;
        let lower = name.to_ascii_lowercase();
        if self.headers.contains(&lower) {
            return Err(format!("{name:?} is listed twice"));
        }
        self.headers.push(lower);
        Ok(())
    }
}

/// The default `pool` of a warm hook ([`HookMode::Warm`]).
pub const DEFAULT_WARM_POOL: usize = 4;
/// The default `recycle_after` of a warm hook ([`HookMode::Warm`]).
pub const DEFAULT_RECYCLE_AFTER: u32 = 1000;

/// `sluice demo`: the embedded demo MCP server behind the proxy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Demo {
    /// Where the proxy listens. Default `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// Logging.
    pub log: Log,
    /// Hooks given with `--hook`.
    pub hooks: Vec<HookConfig>,
    /// The sluice binary: [`Demo::STDIO_PATH`] runs it as `sluice demo
    /// --stdio`.
    pub program: PathBuf,
}

impl Demo {
    /// The path the demo MCP endpoint is served at.
    pub const PATH: &'static str = "/mcp";
    /// The path the demo server's legacy HTTP+SSE face is served at, by the
    /// default transport (`auto`), which finds out it must bridge.
    pub const LEGACY_PATH: &'static str = "/legacy";
    /// The path the demo server's stdio face is served at: sluice runs
    /// `sluice demo --stdio` as the route's child.
    pub const STDIO_PATH: &'static str = "/stdio";
    /// The path of a federation of the demo server's three faces, one
    /// member per transport: `stdio` (a child, as at [`Demo::STDIO_PATH`]),
    /// `http` (its Streamable HTTP face) and `legacy` (its HTTP+SSE face):
    /// one endpoint, their tools as `stdio__echo`, `http__echo`,
    /// `legacy__echo`…
    pub const FEDERATED_PATH: &'static str = "/federated";

    /// The proxy configuration once the demo server listens on `upstream`:
    /// [`Demo::PATH`] → `http://{upstream}/mcp` and [`Demo::LEGACY_PATH`] →
    /// `http://{upstream}/sse`, defaults elsewhere.
    pub fn proxy_config(&self, upstream: SocketAddr) -> Config {
        let host = Host::Ip(upstream.ip());
        let upstream = Upstream {
            scheme: Scheme::Http,
            authority: match upstream.port() {
                80 => host.to_string(),
                port => format!("{host}:{port}"),
            },
            host,
            port: upstream.port(),
            path: Demo::PATH.to_string(),
            query: None,
        };
        let legacy = Http {
            well_known: false,
            ..Http::new(Upstream {
                path: "/sse".to_string(),
                ..upstream.clone()
            })
        };
        let mut legacy = Route::new(Demo::LEGACY_PATH.to_string(), Backend::Http(legacy));
        legacy.name = "demo-legacy".into();
        let members = vec![
            Member::new(
                "stdio".into(),
                MemberServer::Stdio(Stdio::new(
                    &self.program,
                    vec!["demo".into(), "--stdio".into()],
                )),
            ),
            Member::new("http".into(), MemberServer::Http(upstream.clone())),
            Member::new(
                "legacy".into(),
                MemberServer::Legacy(Upstream {
                    path: "/sse".to_string(),
                    ..upstream.clone()
                }),
            ),
        ];
        let route = Route::new(Demo::PATH.to_string(), Backend::Http(Http::new(upstream)));
        let mut config = Config::with_route(self.listen, route);
        config.routes[0].name = "demo".into();
        config.routes.push(legacy);
        let stdio = Stdio::new(&self.program, vec!["demo".into(), "--stdio".into()]);
        let mut stdio = Route::new(Demo::STDIO_PATH.to_string(), Backend::Stdio(stdio));
        stdio.name = "demo-stdio".into();
        config.routes.push(stdio);
        let federation = Backend::Federation(Federation {
            members,
            session_keys: Vec::new(),
        });
        let mut federated = Route::new(Demo::FEDERATED_PATH.to_string(), federation);
        federated.name = "demo-federated".into();
        config.routes.push(federated);
        config.log = self.log.clone();
        config.hooks = self.hooks.clone();
        config
    }
}

/// Where a request goes: the answer of [`Config::resolve`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved<'a> {
    /// The route that serves the request.
    pub route: &'a Route,
    /// The request target to send upstream (path and query).
    pub target: String,
    /// True when this is a `/.well-known/*` request sent to the route's
    /// origin rather than under its path.
    pub well_known: bool,
}

impl Config {
    /// Parses the command line (`args` includes the program name, as
    /// `std::env::args_os()` does) and, with `--config`, reads the file.
    /// Checks that `--ca-file`/`tls.ca_file`, hook files and a command's
    /// `cwd` and secret files exist, and that the variables its `from_env`
    /// names are set.
    ///
    /// `--help` and `--version` come back as [`ConfigError::Cli`]; call
    /// [`ConfigError::exit`], which prints them and exits 0.
    pub fn from_args<I, T>(args: I) -> Result<Command, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        cli::from_args(args)
    }

    /// What a reload of this command line reads again (`--config`), and
    /// `--watch`'s interval; `None` for `sluice demo`. The arguments are
    /// those [`Config::from_args`] accepted.
    pub fn reload_options<I, T>(args: I) -> Option<ReloadOptions>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        cli::reload_options(args)
    }

    /// Reads and validates a TOML config file. Relative paths inside it are
    /// resolved against the file's directory; the files and directories
    /// they name must exist, and the variables a command's `from_env` names
    /// must be set.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.to_path_buf(),
            error,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let config = Config::from_toml(&text, &path.display().to_string(), base)?;
        config.check_files(&file::FILE_KEYS, Some(&path.display().to_string()))?;
        Ok(config)
    }

    /// Parses and validates TOML text without touching the filesystem
    /// (but for `/etc/passwd` and `/etc/group` when a route's sandbox names
    /// a user or group): `origin` names the text in errors (a file name),
    /// relative paths are joined to `base_dir`, and files and directories
    /// are not checked for existence.
    pub fn from_toml(text: &str, origin: &str, base_dir: &Path) -> Result<Config, ConfigError> {
        file::parse(&de::Source { text, origin }, base_dir)
    }

    /// The route for a request target (origin form: `/path?query`), and the
    /// target to send upstream. `None` when no route matches: answer 404.
    ///
    /// The longest matching route path wins. `/.well-known/...` goes, path
    /// unchanged, to the origin of the route marked `well_known` — unless a
    /// route's own path is under `/.well-known`.
    pub fn resolve(&self, target: &str) -> Option<Resolved<'_>> {
        let resolved = self.router().resolve(target)?;
        Some(Resolved {
            route: &self.routes[resolved.route],
            target: resolved.upstream_target,
            well_known: resolved.endpoint == sluice_core::route::Endpoint::WellKnown,
        })
    }

    /// The core router for these routes (what the proxy routes with), in
    /// route order. A command route has no upstream URL: its prefix maps to
    /// itself, with no query and no `Host`.
    pub(crate) fn router(&self) -> sluice_core::route::Router {
        sluice_core::route::Router::new(
            self.routes
                .iter()
                .map(|r| match &r.backend {
                    Backend::Http(http) => sluice_core::route::Route {
                        prefix: r.path.clone(),
                        upstream_path: http.upstream.path.clone(),
                        upstream_query: http.upstream.query.clone(),
                        well_known: http.well_known,
                        upstream_host: http.upstream.authority.clone(),
                    },
                    Backend::Stdio(_) | Backend::Federation(_) => sluice_core::route::Route {
                        prefix: r.path.clone(),
                        upstream_path: r.path.clone(),
                        upstream_query: None,
                        well_known: false,
                        upstream_host: String::new(),
                    },
                })
                .collect(),
        )
    }

    /// A config with one route and every other setting at its default.
    fn with_route(listen: SocketAddr, route: Route) -> Config {
        Config {
            listen,
            admin: None,
            routes: vec![route],
            limits: Limits::default(),
            timeouts: Timeouts::default(),
            security: Security::defaults_for(listen),
            tls: Tls::default(),
            log: Log::default(),
            pool: Pool::default(),
            server: Server::default(),
            hooks: Vec::new(),
            tracing: None,
        }
    }

    /// Checks what the config names outside itself: its files and
    /// directories exist, and the variables of sluice's environment that a
    /// command's `from_env` names are set. `keys` says how to name them in
    /// errors (file keys or CLI flags).
    fn check_files(&self, keys: &FileKeys, origin: Option<&str>) -> Result<(), ConfigError> {
        let missing = |key: String, path: &Path, dir: bool| -> Result<(), ConfigError> {
            let shown = format!("{:?}", path.display().to_string());
            let problem = match std::fs::metadata(path) {
                Ok(m) if (dir && m.is_dir()) || (!dir && m.is_file()) => return Ok(()),
                Ok(_) if dir => format!("{shown} is not a directory"),
                Ok(_) => format!("{shown} is not a file"),
                Err(e) => format!("{shown}: {e}"),
            };
            Err(ConfigError::invalid(origin, None, key, problem))
        };
        if let Some(ca) = &self.tls.ca_file {
            missing(keys.ca_file.to_string(), ca, false)?;
        }
        for (i, route) in self.routes.iter().enumerate() {
            let Some(stdio) = route.stdio() else { continue };
            if let Some(cwd) = &stdio.cwd {
                missing((keys.cwd)(i), cwd, true)?;
            }
            for var in &stdio.env {
                match &var.value {
                    EnvValue::Literal(_) => {}
                    EnvValue::FromEnv(from) if std::env::var_os(from).is_some() => {}
                    EnvValue::FromEnv(from) => {
                        return Err(ConfigError::invalid(
                            origin,
                            None,
                            (keys.env)(i, &var.name, "from_env"),
                            format!("sluice's environment variable {from} is not set"),
                        ));
                    }
                    EnvValue::FromFile(path) => {
                        missing((keys.env)(i, &var.name, "from_file"), path, false)?
                    }
                }
            }
        }
        for (i, hook) in self.hooks.iter().enumerate() {
            missing((keys.hook_path)(i), &hook.path, false)?;
        }
        Ok(())
    }
}

/// What a reload reads again, and how it is watched.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReloadOptions {
    /// The config file (`--config`); `None`: the command line alone (a
    /// reload reads its hook files again).
    pub config_file: Option<PathBuf>,
    /// `--watch`: poll the config and hook files at this interval.
    pub watch: Option<Duration>,
}

/// How the file checks name their keys.
struct FileKeys {
    ca_file: &'static str,
    /// A command route's `cwd`, by route index.
    cwd: fn(usize) -> String,
    /// A command route's `from_env` or `from_file` variable, by route
    /// index, variable name and which of the two.
    env: fn(usize, &str, &str) -> String,
    hook_path: fn(usize) -> String,
}

/// Checks that the admin listener cannot be the proxy's own socket: the
/// same port on the same address, or on an address either one covers
/// (`0.0.0.0`, `[::]`). Port 0 asks for a free port, so it never clashes.
/// Returns the problem.
fn check_admin(listen: SocketAddr, admin: SocketAddr) -> Result<(), String> {
    let overlaps =
        admin.ip() == listen.ip() || admin.ip().is_unspecified() || listen.ip().is_unspecified();
    if admin.port() != 0 && admin.port() == listen.port() && overlaps {
        return Err(format!(
            "{admin} is the proxy's own listen address ({listen}); the admin listener needs a port of its own"
        ));
    }
    Ok(())
}

/// Checks a route path: starts with `/`, visible ASCII, no query, fragment
/// or dot segments. Returns the problem.
fn check_route_path(path: &str) -> Result<(), String> {
    if !path.starts_with('/') {
        return Err(format!("{path:?} must start with /"));
    }
    if path.bytes().any(|b| !b.is_ascii_graphic()) {
        return Err(format!(
            "{path:?} contains a space, control or non-ASCII character"
        ));
    }
    if path.contains(['?', '#']) {
        return Err(format!(
            "{path:?} is a path prefix; it cannot have a query or fragment"
        ));
    }
    if path.split('/').any(|seg| seg == "." || seg == "..") {
        return Err(format!("{path:?} has a . or .. segment"));
    }
    Ok(())
}

/// Gives every unnamed item a default name, unique against the explicit ones
/// and each other: `base`, `base-2`, `base-3`…
fn unique_names(names: &[(Option<String>, String)]) -> Vec<String> {
    let explicit: Vec<String> = names.iter().filter_map(|(n, _)| n.clone()).collect();
    let mut taken = explicit;
    names
        .iter()
        .map(|(name, base)| match name {
            Some(n) => n.clone(),
            None => {
                let mut candidate = base.clone();
                let mut k = 2;
                while taken.contains(&candidate) {
                    candidate = format!("{base}-{k}");
                    k += 1;
                }
                taken.push(candidate.clone());
                candidate
            }
        })
        .collect()
}

/// The default hook name: the file name without `.wasm`.
fn hook_base_name(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "hook".into())
}

/// Checks one entry of a hook's `methods` list with core's grammar.
fn check_method_pattern(entry: &str) -> Result<(), String> {
    sluice_core::exchange::methods::MethodPattern::parse(entry)
        .map(drop)
        .map_err(|e| e.to_string())
}

/// Why the configuration could not be built.
#[derive(Debug)]
#[non_exhaustive]
pub enum ConfigError {
    /// The command line is malformed — or `--help`/`--version` was asked
    /// for. [`ConfigError::exit`] prints it the way clap does.
    Cli(clap::Error),
    /// The config file could not be read.
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The config file is not valid TOML.
    Syntax {
        /// The file name.
        origin: String,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column (in characters).
        column: usize,
        /// The TOML parser's description.
        message: String,
    },
    /// A value is missing, of the wrong type, or invalid.
    Invalid {
        /// The file name; `None` for the command line.
        origin: Option<String>,
        /// 1-based line and column of the offending key or value, when known.
        position: Option<(usize, usize)>,
        /// The key path (`route[1].upstream`) or flag (`--upstream`).
        key: String,
        /// What is wrong, as a sentence fragment.
        problem: String,
    },
}

impl ConfigError {
    fn invalid(
        origin: Option<&str>,
        position: Option<(usize, usize)>,
        key: impl Into<String>,
        problem: impl Into<String>,
    ) -> ConfigError {
        ConfigError::Invalid {
            origin: origin.map(str::to_string),
            position,
            key: key.into(),
            problem: problem.into(),
        }
    }

    /// The process exit code for this error: 0 for `--help`/`--version`,
    /// 2 for everything else (the usage-error convention).
    pub fn exit_code(&self) -> i32 {
        match self {
            ConfigError::Cli(e) => e.exit_code(),
            _ => 2,
        }
    }

    /// Prints the error (help and version to stdout, errors to stderr,
    /// prefixed `sluice: `) and exits with [`ConfigError::exit_code`].
    pub fn exit(&self) -> ! {
        if let ConfigError::Cli(e) = self {
            e.exit();
        }
        eprintln!("sluice: {self}");
        std::process::exit(self.exit_code());
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Cli(e) => write!(f, "{}", e.to_string().trim_end()),
            ConfigError::Read { path, error } => {
                write!(f, "cannot read config file {}: {error}", path.display())
            }
            ConfigError::Syntax {
                origin,
                line,
                column,
                message,
            } => write!(f, "{origin}:{line}:{column}: TOML syntax error: {message}"),
            ConfigError::Invalid {
                origin,
                position,
                key,
                problem,
            } => {
                match (origin, position) {
                    (Some(o), Some((l, c))) => write!(f, "{o}:{l}:{c}: ")?,
                    (Some(o), None) => write!(f, "{o}: ")?,
                    (None, _) => {}
                }
                write!(f, "{key}: {problem}")
            }
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConfigError::Cli(e) => Some(e),
            ConfigError::Read { error, .. } => Some(error),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let n = vec![
            (None, "h".to_string()),
            (Some("h-2".to_string()), "x".to_string()),
            (None, "h".to_string()),
            (None, "h".to_string()),
        ];
        assert_eq!(unique_names(&n), ["h", "h-2", "h-3", "h-4"]);
    }

    /// The defaults are core's and the hook host's, not copies of them.
    #[test]
    fn defaults_come_from_core_and_the_hook_host() {
        let core = sluice_core::exchange::Timeouts::recommended();
        let t = Timeouts::default();
        assert_eq!(
            (
                Some(t.connect),
                t.response_head,
                t.stream_idle,
                t.sse_keepalive
            ),
            (
                core.connect,
                core.response_head,
                core.stream_idle,
                core.sse_keepalive
            )
        );
        assert_eq!(
            (Some(t.client_head), Some(t.client_idle)),
            (core.client_request, core.client_idle)
        );
        let spec = crate::hooks::HookSpec::new("h", "h.wasm");
        let hook = HookConfig::new("h".into(), "h.wasm".into());
        assert_eq!(
            (hook.deadline, hook.max_memory),
            (spec.deadline, spec.max_memory_bytes)
        );
        assert_eq!(
            (hook.on_error, hook.mode, hook.grants),
            (spec.on_error, spec.mode, spec.grants)
        );
        assert_eq!(hook.max_memory, 16 << 20, "docs/CONFIG.md says 16 MiB");
    }

    #[test]
    fn method_patterns() {
        for ok in ["*", "tools/call", "notifications/*"] {
            check_method_pattern(ok).unwrap();
        }
        for bad in ["", "tools*", "*/call", "a/*/b"] {
            assert!(check_method_pattern(bad).is_err(), "{bad}");
        }
    }
}
