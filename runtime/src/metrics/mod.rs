//! The proxy's metrics, in the Prometheus text format (0.0.4) through
//! `prometheus-client`, the Prometheus project's own Rust client.
//!
//! Every label has a bound that does not depend on what clients send:
//! `route` is a configured route name (or `(none)` for a request no route
//! took), `method` one of the MCP methods the specification defines
//! ([`sluice_core::jsonrpc::MCP_METHODS`]) or `batch`, `other` (a method it
//! does not define) or `none` (no JSON-RPC message: a GET stream, a DELETE,
//! a refused request), `status` one of [`STATUSES`] or its class (`4xx`),
//! `outcome` one of five words, `hook` a configured hook name, `member` a
//! federated route's configured member name.
//! docs/OPERATIONS.md lists every series.
//!
//! What is counted as it happens (a request ending, a hook run) is a
//! counter or histogram updated by the worker that saw it: a read lock and
//! an atomic add. What exists as state elsewhere (sessions, children,
//! dropped log lines, the process's memory) is read when scraped.

#[cfg(test)]
mod dashboard_tests;
mod process;
mod requests;
mod tools;

pub use tools::{MAX_TOOL_NAME, TOOLS_PER_ROUTE};

use std::fmt::Write as _;
use std::sync::Arc;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use sluice_core::exchange::{Outcome, Summary};
use sluice_core::federation::LegOutcome;

use crate::hooks::{HookErrorKind, HookRun, HookRunResult};
use crate::logq::DroppedLines;

/// The `Content-Type` of [`Metrics::encode`]'s text.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The statuses that get a series of their own; any other is counted by
/// its class.
pub const STATUSES: &[u16] = &[
    200, 202, 204, 400, 401, 403, 404, 405, 406, 408, 409, 413, 415, 429, 431, 500, 501, 502, 503,
    504, 505,
];

/// Request durations: 100 µs (a proxied answer on loopback) to an hour (an
/// SSE stream).
const DURATION_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
];

/// Hook durations: 5 µs (a warm call) to the 50 ms default deadline and past.
const HOOK_BUCKETS: &[f64] = &[
    0.000005, 0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
    0.025, 0.05, 0.1, 0.25,
];

/// A configured name (route or hook) as a label value: shared, never
/// copied per request.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Name(Arc<str>);

impl EncodeLabelValue for Name {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(&self.0)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RouteLabels {
    route: Name,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct SessionLabels {
    route: Name,
    kind: &'static str,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct MemberLabels {
    route: Name,
    member: Name,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct MemberRequestLabels {
    route: Name,
    member: Name,
    outcome: &'static str,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct DialFailureLabels {
    route: Name,
    stage: &'static str,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct AuthLabels {
    route: Name,
    outcome: &'static str,
    method: &'static str,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct HookLabels {
    hook: Name,
    phase: &'static str,
    verdict: &'static str,
    /// `enforce`, or `audit`: the verdict was counted, not applied.
    mode: &'static str,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct HookTimeLabels {
    hook: Name,
    phase: &'static str,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct HookFailureLabels {
    hook: Name,
    kind: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Which phase a hook ran in, as a label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// On the client's request.
    Request,
    /// On the upstream's answer.
    Response,
    /// On a server request or notification, before the client gets it.
    ServerMessage,
    /// On the client's answer to a server request, before the server gets it.
    ClientAnswer,
}

impl Phase {
    /// The phase as metrics and logs name it.
    pub fn label(self) -> &'static str {
        match self {
            Phase::Request => "request",
            Phase::Response => "response",
            Phase::ServerMessage => "server-message",
            Phase::ClientAnswer => "client-answer",
        }
    }
}

/// What is open on one route when scraped.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RouteLive {
    /// Legacy HTTP+SSE bridge sessions (one backend SSE stream each).
    pub legacy_sessions: usize,
    /// stdio client sessions of per-session mode, each with its child.
    pub stdio_sessions: usize,
    /// The client sessions of shared-mode stdio children (the route's
    /// one, or a federation's stdio members'), as their bridge tasks last
    /// said.
    pub stdio_shared_sessions: usize,
    /// stdio children alive, those shutting down included.
    pub stdio_processes: usize,
    /// A federated route's members, in member order.
    pub members: Vec<MemberLive>,
}

/// One member of a federated route, at scrape time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemberLive {
    /// Its configured name.
    pub name: String,
    /// Times it was left out of a fanned-in answer (a list, a session, a
    /// notification it did not take) since start.
    pub left_out: u64,
    /// Its circuit is open: requests fail at once without reaching it.
    pub circuit_open: bool,
    /// Requests sluice sent it (or meant to) since start, by how they
    /// ended, in [`LegOutcome::ALL`]'s order.
    pub requests: [u64; LegOutcome::ALL.len()],
}

/// The `outcome` label of a federated route's member request.
fn member_outcome_label(o: LegOutcome) -> &'static str {
    match o {
        LegOutcome::Answered => "ok",
        LegOutcome::Failed => "error",
        LegOutcome::TimedOut => "timeout",
        LegOutcome::CircuitOpen => "circuit_open",
        LegOutcome::Dropped => "dropped",
    }
}

/// A route's own series, shared by every configuration (reload) that has
/// a route of its name.
#[derive(Clone)]
struct RouteSeries {
    /// Its slot in `sluice_requests_total`.
    slot: usize,
    tools: Arc<tools::RouteTools>,
    head_seconds: Histogram,
    total_seconds: Histogram,
    sse_open: Gauge,
    sse_streams: Counter,
    sse_bytes: Counter,
    sse_keepalives: Counter,
    sse_events: Counter,
    dial: DialCounters,
}

/// A route's upstream connections, as its dialer counts them: each is a
/// clone of its series (one atomic), so a dial pays one add.
#[derive(Clone, Debug, Default)]
pub(crate) struct DialCounters {
    opened: Counter,
    reused: Counter,
    /// Idle connections pooled, moved by the pool under its lock.
    idle: Gauge,
    /// By stage: resolve, connect, TLS.
    failed: [Counter; 3],
}

impl DialCounters {
    /// A new connection was made.
    pub(crate) fn opened(&self) {
        self.opened.inc();
    }

    /// An idle pooled connection was taken.
    pub(crate) fn reused(&self) {
        self.reused.inc();
    }

    /// The pool of this route's target now holds `delta` more (or
    /// fewer) idle connections.
    pub(crate) fn idle_moved(&self, delta: i64) {
        if delta != 0 {
            self.idle.inc_by(delta);
        }
    }

    /// A dial failed at `stage`.
    pub(crate) fn failed(&self, stage: crate::dial::DialStage) {
        use crate::dial::DialStage;
        let i = match stage {
            DialStage::Resolve => 0,
            DialStage::Connect => 1,
            DialStage::Tls => 2,
        };
        self.failed[i].inc();
    }
}

/// A protected route's verdicts on tokens, by outcome (in
/// [`AUTH_OUTCOMES`]' order) and method: one atomic add per judged token.
#[derive(Clone, Debug, Default)]
pub(crate) struct AuthCounters([[Counter; AUTH_METHODS.len()]; 4]);

/// How a token was judged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AuthMethod {
    /// A JWT's signature and claims checked.
    Jwt,
    /// A JWT found in the route's verified-token cache.
    CachedJwt,
    /// An API key looked up by hash.
    ApiKey,
    /// Asked of the authorization server (its answer cached or not).
    Introspection,
    /// No method takes a token of this shape on the route.
    None,
}

/// The `method` labels, by [`AuthMethod`] in its order.
const AUTH_METHODS: [&str; 5] = ["jwt", "cached", "api_key", "introspection", "none"];

/// The `outcome` labels of [`AuthCounters`]: the verdict, a denial split
/// by its status (401 or 403).
const AUTH_OUTCOMES: [&str; 4] = ["allowed", "unauthenticated", "forbidden", "unavailable"];

impl AuthCounters {
    /// Count one verdict.
    pub(crate) fn judged(&self, verdict: &sluice_core::auth::Verdict, via: AuthMethod) {
        use sluice_core::auth::{Denial, Verdict};
        let i = match verdict {
            Verdict::Allow(_) | Verdict::AllowWith(..) => 0,
            Verdict::Deny(Denial::InsufficientScope(_)) => 2,
            Verdict::Deny(_) => 1,
            Verdict::Unavailable(_) => 3,
        };
        let m = match via {
            AuthMethod::Jwt => 0,
            AuthMethod::CachedJwt => 1,
            AuthMethod::ApiKey => 2,
            AuthMethod::Introspection => 3,
            AuthMethod::None => 4,
        };
        self.0[i][m].inc();
    }
}

/// A federated route's sessions: a token sealed at `initialize`, a token
/// that did not open (404).
#[derive(Clone, Debug, Default)]
pub(crate) struct FederationCounters {
    sealed: Counter,
    refused: Counter,
}

impl FederationCounters {
    /// A session's token was sealed for the client.
    pub(crate) fn sealed(&self) {
        self.sealed.inc();
    }

    /// A client's session token did not open.
    pub(crate) fn refused(&self) {
        self.refused.inc();
    }
}

/// The `stage` labels of [`DialCounters::failed`], by its index.
const DIAL_STAGES: [&str; 3] = ["resolve", "connect", "tls"];

/// One configuration's routes, by its route index, then `(none)`: what a
/// request finds its series by. Made per configuration by
/// [`Metrics::routes`]; a route keeps its series across reloads by name.
#[derive(Clone)]
pub struct RouteMetrics {
    names: Arc<[Name]>,
    series: Arc<[RouteSeries]>,
    /// Federated sessions sealed and refused: series only for the
    /// routes that ask (federated ones).
    sessions_sealed: Family<RouteLabels, Counter>,
    sessions_refused: Family<RouteLabels, Counter>,
}

impl RouteMetrics {
    /// A route's index, or `(none)`'s.
    fn index(&self, route: Option<usize>) -> usize {
        let none = self.series.len() - 1;
        route.filter(|&r| r < none).unwrap_or(none)
    }
}

impl RouteMetrics {
    /// Federated route `route`'s session counters.
    pub(crate) fn federation(&self, route: usize) -> FederationCounters {
        let labels = RouteLabels {
            route: self.names[self.index(Some(route))].clone(),
        };
        FederationCounters {
            sealed: self.sessions_sealed.get_or_create_owned(&labels),
            refused: self.sessions_refused.get_or_create_owned(&labels),
        }
    }

    /// Route `route`'s upstream connection counters.
    pub(crate) fn dial(&self, route: usize) -> DialCounters {
        self.series[self.index(Some(route))].dial.clone()
    }
}

impl std::fmt::Debug for RouteMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.names.iter().map(|n| &n.0))
            .finish()
    }
}

/// The outcome of a reload, as a label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReloadOutcome {
    /// The new configuration runs.
    Ok,
    /// It was refused (a syntax error, an invalid value, a hook that did
    /// not compile): the running one stays.
    Invalid,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ReloadLabels {
    outcome: &'static str,
}

/// Every metric the proxy exports, and the registry that encodes them.
pub struct Metrics {
    registry: Registry,
    requests: Arc<requests::RequestCounts>,
    tool_calls: Arc<tools::ToolCalls>,
    head_seconds: HistogramFamily<RouteLabels>,
    total_seconds: HistogramFamily<RouteLabels>,
    sse_open: Family<RouteLabels, Gauge>,
    sse_streams: Family<RouteLabels, Counter>,
    sse_bytes: Family<RouteLabels, Counter>,
    sse_keepalives: Family<RouteLabels, Counter>,
    sse_events: Family<RouteLabels, Counter>,
    upstream_opened: Family<RouteLabels, Counter>,
    upstream_reused: Family<RouteLabels, Counter>,
    upstream_idle: Family<RouteLabels, Gauge>,
    dial_failures: Family<DialFailureLabels, Counter>,
    auth_decisions: Family<AuthLabels, Counter>,
    sessions_sealed: Family<RouteLabels, Counter>,
    sessions_refused: Family<RouteLabels, Counter>,
    hook_calls: Family<HookLabels, Counter>,
    hook_seconds: HistogramFamily<HookTimeLabels>,
    hook_failures: Family<HookFailureLabels, Counter>,
    sessions_open: Family<SessionLabels, Gauge>,
    stdio_processes: Family<RouteLabels, Gauge>,
    stdio_shared_sessions: Family<RouteLabels, Gauge>,
    member_left_out: Family<MemberLabels, Counter>,
    member_circuit_open: Family<MemberLabels, Gauge>,
    member_requests: Family<MemberRequestLabels, Counter>,
    reloads: Family<ReloadLabels, Counter>,
    reload_ok: Gauge,
    reload_success_time: Gauge<f64, std::sync::atomic::AtomicU64>,
    trace_spans: crate::otel::SpanCounters,
}

/// One SSE answer streaming to a client: counted in
/// `sluice_sse_streams_open` until dropped (the exchange ended, or its
/// task was cancelled).
#[must_use = "the stream counts as open only while this lives"]
pub struct SseStreamOpen(Gauge);

impl Drop for SseStreamOpen {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// The metrics of a proxy, counting `dropped` log lines. Routes come
    /// with each configuration ([`Metrics::routes`]).
    pub fn new(dropped: Option<DroppedLines>) -> Metrics {
        let mut root = Registry::default();
        // The process's own series keep their standard names (no prefix).
        root.register_collector(Box::new(process::ProcessCollector));
        let registry = root.sub_registry_with_prefix("sluice");
        let requests = Arc::new(requests::RequestCounts::new());
        registry.register_collector(Box::new(requests.clone()));
        let tool_calls = Arc::new(tools::ToolCalls::default());
        registry.register_collector(Box::new(tool_calls.clone()));
        let histogram: fn() -> Histogram = || Histogram::new(DURATION_BUCKETS.iter().copied());
        let head_seconds = Family::new_with_constructor(histogram);
        registry.register(
            "request_head_seconds",
            "Time from the request's first byte to the upstream's response head",
            head_seconds.clone(),
        );
        let total_seconds = Family::new_with_constructor(histogram);
        registry.register(
            "request_duration_seconds",
            "Time from the request's first byte to the exchange's end (an SSE stream's whole life)",
            total_seconds.clone(),
        );
        let hook_calls = Family::default();
        registry.register(
            "hook_calls",
            "Hook runs, by hook, phase and verdict",
            hook_calls.clone(),
        );
        let hook_seconds =
            Family::new_with_constructor((|| Histogram::new(HOOK_BUCKETS.iter().copied())) as _);
        registry.register(
            "hook_duration_seconds",
            "Wall time of one hook run (instantiation, call and checks), by hook and phase",
            hook_seconds.clone(),
        );
        let hook_failures = Family::default();
        registry.register(
            "hook_failures",
            "Hook runs that failed, by hook and kind of failure",
            hook_failures.clone(),
        );
        let sessions_open = Family::default();
        registry.register(
            "sessions_open",
            "Sessions sluice holds for clients, by route and kind (legacy, stdio)",
            sessions_open.clone(),
        );
        let stdio_processes = Family::default();
        registry.register(
            "stdio_processes",
            "stdio server child processes alive, by route",
            stdio_processes.clone(),
        );
        let stdio_shared_sessions = Family::default();
        registry.register(
            "stdio_shared_sessions",
            "Client sessions served by shared-mode stdio server children, by route (per-session mode's are sessions_open{kind=\"stdio\"})",
            stdio_shared_sessions.clone(),
        );
        let member_left_out = Family::default();
        registry.register(
            "federation_member_left_out",
            "Fanned-in answers of a federated route that went on without a member (down, late, failing), by route and member",
            member_left_out.clone(),
        );
        let member_circuit_open = Family::default();
        registry.register(
            "federation_member_circuit_open",
            "1 while a federated route's member is failing and not tried (its circuit is open), by route and member",
            member_circuit_open.clone(),
        );
        let member_requests = Family::default();
        registry.register(
            "federation_member_requests",
            "Requests a federated route sent its members, by route, member and outcome (ok, error, timeout, circuit_open: not sent, dropped: no longer wanted)",
            member_requests.clone(),
        );
        let sse_open = Family::default();
        registry.register(
            "sse_streams_open",
            "SSE answers streaming to clients now, by route",
            sse_open.clone(),
        );
        let sse_streams = Family::default();
        registry.register(
            "sse_streams",
            "SSE answers that ended, by route",
            sse_streams.clone(),
        );
        let sse_bytes = Family::default();
        registry.register(
            "sse_bytes",
            "Bytes of SSE answers written to clients after the head (chunk framing included), by route, counted when each stream ends",
            sse_bytes.clone(),
        );
        let sse_keepalives = Family::default();
        registry.register(
            "sse_keepalives",
            "Keep-alive comments written on quiet SSE answers (sse_keepalive), by route, counted when each stream ends",
            sse_keepalives.clone(),
        );
        let sse_events = Family::default();
        registry.register(
            "sse_events",
            "Events of the upstreams' SSE answers forwarded to clients (POST answers and GET streams), by route, counted when each stream ends",
            sse_events.clone(),
        );
        let upstream_opened = Family::default();
        registry.register(
            "upstream_connections_opened",
            "Connections dialed to upstreams (a federated route's HTTP members included), by route",
            upstream_opened.clone(),
        );
        let upstream_reused = Family::default();
        registry.register(
            "upstream_connections_reused",
            "Idle pooled upstream connections taken for an exchange instead of dialing, by route",
            upstream_reused.clone(),
        );
        let upstream_idle = Family::default();
        registry.register(
            "upstream_connections_idle",
            "Idle keep-alive connections in the upstream pool now, by route",
            upstream_idle.clone(),
        );
        let dial_failures = Family::default();
        registry.register(
            "upstream_dial_failures",
            "Upstream dials that failed, by route and stage (resolve, connect, tls)",
            dial_failures.clone(),
        );
        let auth_decisions = Family::default();
        registry.register(
            "auth_decisions",
            "Bearer tokens judged on protected routes, by route, outcome (allowed, unauthenticated, forbidden, unavailable) and method (jwt, cached, api_key, introspection, none)",
            auth_decisions.clone(),
        );
        let sessions_sealed = Family::default();
        registry.register(
            "federation_sessions_opened",
            "Sessions of a federated route opened: a token sealed for the client at initialize, by route",
            sessions_sealed.clone(),
        );
        let sessions_refused = Family::default();
        registry.register(
            "federation_session_refused",
            "Requests on a federated route whose session token did not open (another key's, forged, or a key retired): answered 404, by route",
            sessions_refused.clone(),
        );
        let reloads = Family::default();
        registry.register(
            "config_reloads",
            "Configuration reloads (SIGHUP, --watch), by outcome: ok, or invalid (the running configuration stayed)",
            reloads.clone(),
        );
        let reload_ok = Gauge::default();
        // 1 until a reload is refused: the configuration that runs is the one on disk.
        reload_ok.set(1);
        registry.register(
            "config_last_reload_successful",
            "1 when the last reload (or the start) loaded the configuration on disk, 0 when it was refused",
            reload_ok.clone(),
        );
        let reload_success_time = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        reload_success_time.set(unix_now());
        registry.register(
            "config_last_reload_success_timestamp_seconds",
            "When the running configuration was loaded (the start, or the last good reload), in seconds since the Unix epoch",
            reload_success_time.clone(),
        );
        let trace_spans = crate::otel::SpanCounters::default();
        registry.register(
            "trace_spans_dropped",
            "Spans dropped: the trace export queue was full, or the OTLP receiver did not take them",
            trace_spans.dropped.clone(),
        );
        registry.register(
            "trace_spans_exported",
            "Spans the OTLP receiver took (answered 2xx)",
            trace_spans.exported.clone(),
        );
        if let Some(dropped) = dropped {
            registry.register_collector(Box::new(process::DroppedCollector(dropped)));
        }
        Metrics {
            registry: root,
            requests,
            tool_calls,
            head_seconds,
            total_seconds,
            sse_open,
            sse_streams,
            sse_bytes,
            sse_keepalives,
            sse_events,
            upstream_opened,
            upstream_reused,
            upstream_idle,
            dial_failures,
            auth_decisions,
            sessions_sealed,
            sessions_refused,
            hook_calls,
            hook_seconds,
            hook_failures,
            sessions_open,
            stdio_processes,
            stdio_shared_sessions,
            member_left_out,
            member_circuit_open,
            member_requests,
            reloads,
            reload_ok,
            reload_success_time,
            trace_spans,
        }
    }

    /// The counters of the trace exporter, for [`crate::otel::Tracer::start`].
    pub fn span_counters(&self) -> crate::otel::SpanCounters {
        self.trace_spans.clone()
    }

    /// The series of a configuration's routes (by route index), each
    /// found by name: a route that a reload keeps keeps its counters.
    pub fn routes(&self, route_names: &[String]) -> RouteMetrics {
        let names: Vec<Name> = route_names
            .iter()
            .map(|n| Name(n.as_str().into()))
            .chain(std::iter::once(Name("(none)".into())))
            .collect();
        let series = names
            .iter()
            .map(|route| {
                let labels = RouteLabels {
                    route: route.clone(),
                };
                RouteSeries {
                    slot: self.requests.slot(route),
                    tools: self.tool_calls.route(route),
                    head_seconds: self.head_seconds.get_or_create_owned(&labels),
                    total_seconds: self.total_seconds.get_or_create_owned(&labels),
                    sse_open: self.sse_open.get_or_create_owned(&labels),
                    sse_streams: self.sse_streams.get_or_create_owned(&labels),
                    sse_bytes: self.sse_bytes.get_or_create_owned(&labels),
                    sse_keepalives: self.sse_keepalives.get_or_create_owned(&labels),
                    sse_events: self.sse_events.get_or_create_owned(&labels),
                    dial: DialCounters {
                        opened: self.upstream_opened.get_or_create_owned(&labels),
                        reused: self.upstream_reused.get_or_create_owned(&labels),
                        idle: self.upstream_idle.get_or_create_owned(&labels),
                        failed: DIAL_STAGES.map(|stage| {
                            self.dial_failures.get_or_create_owned(&DialFailureLabels {
                                route: route.clone(),
                                stage,
                            })
                        }),
                    },
                }
            })
            .collect();
        RouteMetrics {
            names: names.into(),
            series,
            sessions_sealed: self.sessions_sealed.clone(),
            sessions_refused: self.sessions_refused.clone(),
        }
    }

    /// The verdict counters of protected route `route` (made for protected
    /// routes only: an open route has no series).
    pub(crate) fn auth(&self, route: &str) -> AuthCounters {
        let route = Name(route.into());
        AuthCounters(AUTH_OUTCOMES.map(|outcome| {
            AUTH_METHODS.map(|method| {
                self.auth_decisions.get_or_create_owned(&AuthLabels {
                    route: route.clone(),
                    outcome,
                    method,
                })
            })
        }))
    }

    /// Count one reload; a good one also sets the time of the last.
    pub fn reloaded(&self, outcome: ReloadOutcome) {
        let label = match outcome {
            ReloadOutcome::Ok => "ok",
            ReloadOutcome::Invalid => "invalid",
        };
        self.reloads
            .get_or_create(&ReloadLabels { outcome: label })
            .inc();
        self.reload_ok.set(i64::from(outcome == ReloadOutcome::Ok));
        if outcome == ReloadOutcome::Ok {
            self.reload_success_time.set(unix_now());
        }
    }

    /// Count one finished exchange (one that read no request is not one)
    /// of a configuration whose routes are `routes`; `elapsed` is
    /// [`Elapsed::of`] it, worked out once for the access log too.
    pub fn exchange_done(&self, routes: &RouteMetrics, s: &Summary, elapsed: &Elapsed) {
        if s.http_method.is_empty() {
            return;
        }
        let series = &routes.series[routes.index(s.route)];
        self.requests.add(requests::Key {
            route: series.slot,
            method: method_label(s),
            status: s.status.map_or("none", status_label),
            outcome: outcome_label(s.outcome),
        });
        if let Some(rpc) = &s.rpc
            && rpc.method.as_deref() == Some("tools/call")
            && let Some(tool) = &rpc.name
        {
            series.tools.add(tool, outcome_index(s.outcome));
        }
        if s.event_stream {
            series.sse_streams.inc();
            series.sse_bytes.inc_by(s.body_bytes);
            series.sse_keepalives.inc_by(s.keepalives);
            series.sse_events.inc_by(s.sse_events);
        }
        if let Some(head) = elapsed.head {
            series.head_seconds.observe(head.as_secs_f64());
        }
        if let Some(total) = elapsed.total {
            series.total_seconds.observe(total.as_secs_f64());
        }
    }

    /// An SSE answer started streaming on `route` (of `routes`).
    pub fn sse_stream_opened(&self, routes: &RouteMetrics, route: Option<usize>) -> SseStreamOpen {
        let gauge = routes.series[routes.index(route)].sse_open.clone();
        gauge.inc();
        SseStreamOpen(gauge)
    }

    /// Count one hook run.
    pub fn hook_ran(&self, phase: Phase, run: &HookRun) {
        let hook = Name(run.hook.clone());
        let phase = phase.label();
        let verdict = match &run.result {
            HookRunResult::Continue => "continue",
            HookRunResult::Replaced => "replace",
            HookRunResult::Rejected => "reject",
            HookRunResult::Responded => "respond",
            HookRunResult::Failed { error, .. } => {
                let labels = HookFailureLabels {
                    hook: hook.clone(),
                    kind: failure_label(&error.kind),
                };
                self.hook_failures.get_or_create(&labels).inc();
                "failed"
            }
        };
        let labels = HookLabels {
            hook: hook.clone(),
            phase,
            verdict,
            mode: if run.audit { "audit" } else { "enforce" },
        };
        self.hook_calls.get_or_create(&labels).inc();
        self.hook_seconds
            .get_or_create(&HookTimeLabels { hook, phase })
            .observe(run.elapsed.as_secs_f64());
    }

    /// The text of a scrape, with what is open on each of `routes` (by
    /// route index) as it is now. A route a reload removed shows nothing
    /// open.
    pub fn encode(&self, routes: &RouteMetrics, live: &[RouteLive]) -> String {
        let set = |gauge: &Gauge, n: usize| gauge.set(i64::try_from(n).unwrap_or(i64::MAX));
        let empty = RouteLive::default();
        let mut seen = std::collections::HashSet::new();
        let current = routes
            .names
            .iter()
            .zip(live.iter().chain(std::iter::repeat(&empty)));
        let known = self.requests.names();
        let gone = known.iter().filter(|n| !routes.names.contains(n));
        let all = current.chain(gone.map(|n| (n, &empty)));
        for (route, live) in all {
            if n_is_none(route) || !seen.insert(route.clone()) {
                continue;
            }
            let open = |kind| SessionLabels {
                route: route.clone(),
                kind,
            };
            set(
                &self.sessions_open.get_or_create(&open("legacy")),
                live.legacy_sessions,
            );
            set(
                &self.sessions_open.get_or_create(&open("stdio")),
                live.stdio_sessions,
            );
            let labels = RouteLabels {
                route: route.clone(),
            };
            set(
                &self.stdio_processes.get_or_create(&labels),
                live.stdio_processes,
            );
            set(
                &self.stdio_shared_sessions.get_or_create(&labels),
                live.stdio_shared_sessions,
            );
            for m in &live.members {
                let labels = MemberLabels {
                    route: route.clone(),
                    member: Name(m.name.as_str().into()),
                };
                // The total lives with the route; the counter follows it.
                let counter = self.member_left_out.get_or_create(&labels);
                counter.inc_by(m.left_out.saturating_sub(counter.get()));
                for (&outcome, &n) in LegOutcome::ALL.iter().zip(&m.requests) {
                    let counter = self.member_requests.get_or_create(&MemberRequestLabels {
                        route: labels.route.clone(),
                        member: labels.member.clone(),
                        outcome: member_outcome_label(outcome),
                    });
                    counter.inc_by(n.saturating_sub(counter.get()));
                }
                self.member_circuit_open
                    .get_or_create(&labels)
                    .set(i64::from(m.circuit_open));
            }
        }
        let mut text = String::with_capacity(8 << 10);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry);
        text
    }
}

/// `(none)` has no sessions or children.
fn n_is_none(route: &Name) -> bool {
    &*route.0 == "(none)"
}

/// Now, in seconds since the Unix epoch.
fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn method_label(s: &Summary) -> &'static str {
    match &s.rpc {
        None => "none",
        Some(rpc) if rpc.batch => "batch",
        Some(rpc) => match rpc.method.as_deref() {
            // A response or error a client posts back (to a server request).
            None => "none",
            Some(m) => sluice_core::jsonrpc::mcp_method(m).unwrap_or("other"),
        },
    }
}

fn status_label(status: u16) -> &'static str {
    const NAMES: &[&str] = &[
        "200", "202", "204", "400", "401", "403", "404", "405", "406", "408", "409", "413", "415",
        "429", "431", "500", "501", "502", "503", "504", "505",
    ];
    if let Some(i) = STATUSES.iter().position(|&s| s == status) {
        return NAMES[i];
    }
    match status / 100 {
        1 => "1xx",
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        5 => "5xx",
        _ => "other",
    }
}

/// How long an exchange took, from its request's first byte: worked out
/// once per exchange for the metrics and the access log (each reading of
/// an `Instant` difference costs some fifty instructions).
#[derive(Clone, Copy, Debug, Default)]
pub struct Elapsed {
    /// To the upstream's response head, when it arrived.
    pub head: Option<std::time::Duration>,
    /// To the exchange's end, when it ended.
    pub total: Option<std::time::Duration>,
}

impl Elapsed {
    /// The times of `s`.
    pub fn of(s: &Summary) -> Self {
        let since = |t: std::time::Instant| t.saturating_duration_since(s.started);
        Elapsed {
            head: s.response_head.map(since),
            total: s.finished.map(since),
        }
    }
}

/// The access log's word for an outcome.
pub(crate) fn outcome_label(o: Outcome) -> &'static str {
    match o {
        Outcome::Pending => "pending",
        Outcome::Complete => "complete",
        Outcome::Answered => "answered",
        Outcome::Aborted => "aborted",
        Outcome::ClientGone => "client-gone",
    }
}

/// An outcome's place in [`tools::OUTCOMES`].
fn outcome_index(o: Outcome) -> usize {
    let label = outcome_label(o);
    tools::OUTCOMES
        .iter()
        .position(|&w| w == label)
        .unwrap_or(tools::OUTCOMES.len() - 1)
}

pub(crate) fn failure_label(kind: &HookErrorKind) -> &'static str {
    match kind {
        HookErrorKind::Deadline(_) => "deadline",
        HookErrorKind::MemoryLimit(_) => "memory",
        HookErrorKind::Trap(_) => "trap",
        HookErrorKind::Instantiate(_) => "instantiate",
        HookErrorKind::InputTooLarge { .. } => "input-too-large",
        HookErrorKind::OutputTooLarge { .. } => "output-too-large",
        HookErrorKind::InvalidVerdict(_) => "invalid-verdict",
    }
}

#[cfg(test)]
mod tests {
    /// [`Metrics::exchange_done`] with the summary's own times.
    fn done(m: &Metrics, r: &RouteMetrics, s: &Summary) {
        m.exchange_done(r, s, &Elapsed::of(s));
    }

    use super::*;
    use sluice_core::exchange::RpcSummary;
    use std::time::{Duration, Instant};

    fn summary(route: Option<usize>, method: Option<&str>, status: u16) -> Summary {
        let started = Instant::now();
        Summary {
            http_method: "POST".into(),
            target: "/mcp".into(),
            rpc: Some(RpcSummary {
                method: method.map(str::to_owned),
                id: Some(b"1".to_vec()),
                name: None,
                batch: false,
            }),
            route,
            status: Some(status),
            outcome: Outcome::Complete,
            reason: None,
            error: None,
            started,
            request_done: Some(started),
            response_head: Some(started + Duration::from_micros(300)),
            finished: Some(started + Duration::from_millis(2)),
            body_bytes: 10,
            reused: false,
            event_stream: false,
            identity: None,
            keepalives: 0,
            sse_events: 0,
        }
    }

    /// The value of the series whose line starts with `series ` in `text`.
    fn value(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn requests_are_counted_with_bounded_labels() {
        let m = Metrics::new(None);
        let r = m.routes(&["up".into()]);
        done(&m, &r, &summary(Some(0), Some("tools/call"), 200));
        done(&m, &r, &summary(Some(0), Some("tools/call"), 200));
        done(&m, &r, &summary(Some(0), Some("made/up/by/a/client"), 299));
        done(&m, &r, &summary(None, None, 404));
        let text = m.encode(&r, &[RouteLive::default()]);
        let call = r#"sluice_requests_total{route="up",method="tools/call",status="200",outcome="complete"}"#;
        assert_eq!(value(&text, call), Some(2.0), "{text}");
        let other =
            r#"sluice_requests_total{route="up",method="other",status="2xx",outcome="complete"}"#;
        assert_eq!(value(&text, other), Some(1.0), "{text}");
        let unrouted = r#"sluice_requests_total{route="(none)",method="none",status="404",outcome="complete"}"#;
        assert_eq!(value(&text, unrouted), Some(1.0), "{text}");
        assert!(!text.contains("made/up"), "{text}");
        let head = r#"sluice_request_head_seconds_bucket{route="up",le="0.0005"}"#;
        assert_eq!(value(&text, head), Some(3.0), "{text}");
        let total = r#"sluice_request_duration_seconds_bucket{route="up",le="0.001"}"#;
        assert_eq!(value(&text, total), Some(0.0), "{text}");
        let count = r#"sluice_request_duration_seconds_count{route="up"}"#;
        assert_eq!(value(&text, count), Some(3.0), "{text}");
    }

    #[test]
    fn live_state_is_read_at_scrape_time() {
        let m = Metrics::new(None);
        let r = m.routes(&["a".into(), "b".into()]);
        let live = [
            RouteLive::default(),
            RouteLive {
                legacy_sessions: 0,
                stdio_sessions: 3,
                stdio_shared_sessions: 7,
                stdio_processes: 2,
                members: vec![MemberLive {
                    name: "gh".into(),
                    left_out: 4,
                    circuit_open: true,
                    requests: [5, 1, 2, 3, 0],
                }],
            },
        ];
        let text = m.encode(&r, &live);
        let sessions = r#"sluice_sessions_open{route="b",kind="stdio"}"#;
        assert_eq!(value(&text, sessions), Some(3.0), "{text}");
        let processes = r#"sluice_stdio_processes{route="b"}"#;
        assert_eq!(value(&text, processes), Some(2.0), "{text}");
        let shared = r#"sluice_stdio_shared_sessions{route="b"}"#;
        assert_eq!(value(&text, shared), Some(7.0), "{text}");
        let left_out = r#"sluice_federation_member_left_out_total{route="b",member="gh"}"#;
        assert_eq!(value(&text, left_out), Some(4.0), "{text}");
        let open = r#"sluice_federation_member_circuit_open{route="b",member="gh"}"#;
        assert_eq!(value(&text, open), Some(1.0), "{text}");
        let requests = |outcome: &str| {
            let series = format!(
                r#"sluice_federation_member_requests_total{{route="b",member="gh",outcome="{outcome}"}}"#
            );
            value(&text, &series)
        };
        assert_eq!(requests("ok"), Some(5.0), "{text}");
        assert_eq!(requests("circuit_open"), Some(3.0), "{text}");
        assert_eq!(requests("dropped"), Some(0.0), "{text}");
        let text = m.encode(&r, &[RouteLive::default(), RouteLive::default()]);
        assert_eq!(value(&text, sessions), Some(0.0), "{text}");
        // The standard process series, unprefixed, read from /proc.
        assert!(
            value(&text, "process_open_fds").is_some_and(|n| n >= 3.0),
            "{text}"
        );
        assert!(
            value(&text, "process_resident_memory_bytes").is_some_and(|n| n > 0.0),
            "{text}"
        );
    }

    #[test]
    fn an_sse_stream_is_open_while_its_guard_lives_and_its_bytes_count_at_its_end() {
        let m = Metrics::new(None);
        let r = m.routes(&["up".into()]);
        let open = r#"sluice_sse_streams_open{route="up"}"#;
        let guard = m.sse_stream_opened(&r, Some(0));
        assert_eq!(value(&m.encode(&r, &[]), open), Some(1.0));
        let mut s = summary(Some(0), Some("tools/call"), 200);
        s.event_stream = true;
        s.body_bytes = 1234;
        s.keepalives = 3;
        s.sse_events = 5;
        done(&m, &r, &s);
        drop(guard);
        let text = m.encode(&r, &[]);
        assert_eq!(value(&text, open), Some(0.0), "{text}");
        let bytes = r#"sluice_sse_bytes_total{route="up"}"#;
        assert_eq!(value(&text, bytes), Some(1234.0), "{text}");
        let keepalives = r#"sluice_sse_keepalives_total{route="up"}"#;
        assert_eq!(value(&text, keepalives), Some(3.0), "{text}");
        let events = r#"sluice_sse_events_total{route="up"}"#;
        assert_eq!(value(&text, events), Some(5.0), "{text}");
        let streams = r#"sluice_sse_streams_total{route="up"}"#;
        assert_eq!(value(&text, streams), Some(1.0), "{text}");
    }

    #[test]
    fn tool_calls_are_counted_by_name_with_the_names_capped_per_route() {
        let m = Metrics::new(None);
        let r = m.routes(&["a".into(), "b".into()]);
        let call = |route, tool: &str| {
            let mut s = summary(Some(route), Some("tools/call"), 200);
            s.rpc.as_mut().unwrap().name = Some(tool.into());
            s
        };
        done(&m, &r, &call(0, "echo"));
        done(&m, &r, &call(0, "echo"));
        let mut failed = call(0, "echo");
        failed.outcome = Outcome::Aborted;
        done(&m, &r, &failed);
        // Not a tools/call: its name is not a tool's.
        let mut prompt = summary(Some(0), Some("prompts/get"), 200);
        prompt.rpc.as_mut().unwrap().name = Some("greeting".into());
        done(&m, &r, &prompt);
        // Route a fills its table; route b's is its own.
        for i in 1..TOOLS_PER_ROUTE {
            done(&m, &r, &call(0, &format!("t{i}")));
        }
        done(&m, &r, &call(0, "late"));
        done(&m, &r, &call(0, "bad \"name\""));
        done(&m, &r, &call(1, "late"));
        let text = m.encode(&r, &[]);
        let series = |route: &str, tool: &str, outcome: &str| {
            let s = format!(
                r#"sluice_tool_calls_total{{route="{route}",tool="{tool}",outcome="{outcome}"}}"#
            );
            value(&text, &s)
        };
        assert_eq!(series("a", "echo", "complete"), Some(2.0), "{text}");
        assert_eq!(series("a", "echo", "aborted"), Some(1.0), "{text}");
        assert_eq!(series("a", "t63", "complete"), Some(1.0), "{text}");
        assert_eq!(series("a", "late", "complete"), None, "{text}");
        assert_eq!(series("a", "other", "complete"), Some(2.0), "{text}");
        assert_eq!(series("b", "late", "complete"), Some(1.0), "{text}");
        assert!(
            !text.contains("greeting") && !text.contains("bad"),
            "{text}"
        );
        let a_series = text
            .lines()
            .filter(|l| l.starts_with(r#"sluice_tool_calls_total{route="a""#))
            .count();
        // 64 names (one of them with two outcomes) and other.
        assert_eq!(a_series, TOOLS_PER_ROUTE + 2, "{text}");
    }

    #[test]
    fn upstream_dials_are_counted_per_route_and_stage() {
        use crate::dial::DialStage;
        let m = Metrics::new(None);
        let r = m.routes(&["a".into(), "b".into()]);
        let a = r.dial(0);
        a.opened();
        a.reused();
        a.reused();
        a.failed(DialStage::Tls);
        a.idle_moved(2);
        a.idle_moved(-1);
        r.dial(1).failed(DialStage::Resolve);
        // A reload that keeps route a keeps its counters.
        let r = m.routes(&["b".into(), "a".into()]);
        r.dial(1).failed(DialStage::Connect);
        let text = m.encode(&r, &[]);
        let series = |s: &str| value(&text, &format!("sluice_upstream_{s}"));
        assert_eq!(series(r#"connections_opened_total{route="a"}"#), Some(1.0));
        assert_eq!(series(r#"connections_reused_total{route="a"}"#), Some(2.0));
        assert_eq!(series(r#"connections_opened_total{route="b"}"#), Some(0.0));
        assert_eq!(series(r#"connections_idle{route="a"}"#), Some(1.0));
        let failed = |route: &str, stage: &str| {
            series(&format!(
                r#"dial_failures_total{{route="{route}",stage="{stage}"}}"#
            ))
        };
        assert_eq!(failed("a", "tls"), Some(1.0), "{text}");
        assert_eq!(failed("a", "connect"), Some(1.0), "{text}");
        assert_eq!(failed("a", "resolve"), Some(0.0), "{text}");
        assert_eq!(failed("b", "resolve"), Some(1.0), "{text}");
    }

    #[test]
    fn auth_verdicts_are_counted_by_outcome_and_method_on_protected_routes_only() {
        use sluice_core::auth::{Denial, Outage, Verdict};
        let m = Metrics::new(None);
        let r = m.routes(&["open".into(), "guarded".into()]);
        let guarded = m.auth("guarded");
        guarded.judged(&Verdict::Deny(Denial::InvalidToken), AuthMethod::Jwt);
        guarded.judged(&Verdict::Deny(Denial::InvalidToken), AuthMethod::None);
        guarded.judged(&Verdict::Deny(Denial::Missing), AuthMethod::Jwt);
        let scope = Verdict::Deny(Denial::InsufficientScope(vec!["s".into()]));
        guarded.judged(&scope, AuthMethod::ApiKey);
        let outage = Verdict::Unavailable(Outage::Introspection);
        guarded.judged(&outage, AuthMethod::Introspection);
        let text = m.encode(&r, &[]);
        let series = |outcome: &str, method: &str| {
            let s = format!(
                r#"sluice_auth_decisions_total{{route="guarded",outcome="{outcome}",method="{method}"}}"#
            );
            value(&text, &s)
        };
        assert_eq!(series("unauthenticated", "jwt"), Some(2.0), "{text}");
        assert_eq!(series("unauthenticated", "none"), Some(1.0), "{text}");
        assert_eq!(series("forbidden", "api_key"), Some(1.0), "{text}");
        assert_eq!(series("unavailable", "introspection"), Some(1.0), "{text}");
        assert_eq!(series("allowed", "cached"), Some(0.0), "{text}");
        assert!(
            !text.contains(r#"auth_decisions_total{route="open""#),
            "{text}"
        );
    }

    #[test]
    fn federated_sessions_are_counted_on_federated_routes_only() {
        let m = Metrics::new(None);
        let r = m.routes(&["plain".into(), "fed".into()]);
        let fed = r.federation(1);
        fed.sealed();
        fed.sealed();
        fed.refused();
        // A reload keeps the route's series, by name.
        m.routes(&["fed".into()]).federation(0).refused();
        let text = m.encode(&r, &[]);
        let opened = r#"sluice_federation_sessions_opened_total{route="fed"}"#;
        assert_eq!(value(&text, opened), Some(2.0), "{text}");
        let refused = r#"sluice_federation_session_refused_total{route="fed"}"#;
        assert_eq!(value(&text, refused), Some(2.0), "{text}");
        assert!(
            !text.contains(r#"sessions_opened_total{route="plain""#),
            "{text}"
        );
    }

    #[test]
    fn every_listed_status_has_its_own_label() {
        for &status in STATUSES {
            assert_eq!(status_label(status), status.to_string());
        }
        assert_eq!(status_label(418), "4xx");
        assert_eq!(status_label(999), "other");
    }
}
