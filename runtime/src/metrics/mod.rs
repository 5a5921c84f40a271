//! The proxy's metrics, in the Prometheus text format (0.0.4) through
//! `prometheus-client`, the Prometheus project's own Rust client.
//!
//! Every label has a bound that does not depend on what clients send:
//! `route` is a configured route name (or `(none)` for a request no route
//! took), `method` one of the MCP methods the specification defines
//! ([`sluice_core::jsonrpc::MCP_METHODS`]) or `batch`, `other` (a method it
//! does not define) or `none` (no JSON-RPC message: a GET stream, a DELETE,
//! a refused request), `status` one of [`STATUSES`] or its class (`4xx`),
//! `outcome` one of five words, `hook` a configured hook name.
//! docs/OPERATIONS.md lists every series.
//!
//! What is counted as it happens (a request ending, a hook run) is a
//! counter or histogram updated by the worker that saw it: a read lock and
//! an atomic add. What exists as state elsewhere (sessions, children,
//! dropped log lines, the process's memory) is read when scraped.

mod process;
mod requests;

use std::fmt::Write as _;
use std::sync::Arc;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use sluice_core::exchange::{Outcome, Summary};

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
struct HookLabels {
    hook: Name,
    phase: &'static str,
    verdict: &'static str,
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
}

/// What is open on one route when scraped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RouteLive {
    /// Legacy HTTP+SSE bridge sessions (one backend SSE stream each).
    pub legacy_sessions: usize,
    /// stdio client sessions of per-session mode, each with its child (a
    /// shared child's sessions live in its bridge task: not counted).
    pub stdio_sessions: usize,
    /// stdio children alive, those shutting down included.
    pub stdio_processes: usize,
}

/// A route's own series, made at start so a request finds them by index.
struct RouteSeries {
    head_seconds: Histogram,
    total_seconds: Histogram,
    sse_open: Gauge,
    sse_streams: Counter,
    sse_bytes: Counter,
}

/// Every metric the proxy exports, and the registry that encodes them.
pub struct Metrics {
    registry: Registry,
    /// Route names by route index, then `(none)`.
    routes: Vec<Name>,
    /// By route index, then `(none)`'s.
    series: Vec<RouteSeries>,
    requests: Arc<requests::RequestCounts>,
    hook_calls: Family<HookLabels, Counter>,
    hook_seconds: HistogramFamily<HookTimeLabels>,
    hook_failures: Family<HookFailureLabels, Counter>,
    sessions_open: Family<SessionLabels, Gauge>,
    stdio_processes: Family<RouteLabels, Gauge>,
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
    /// The metrics of a proxy with these routes (by route index), counting
    /// `dropped` log lines.
    pub fn new(route_names: &[String], dropped: Option<DroppedLines>) -> Metrics {
        let mut root = Registry::default();
        // The process's own series keep their standard names (no prefix).
        root.register_collector(Box::new(process::ProcessCollector));
        let registry = root.sub_registry_with_prefix("sluice");
        let routes: Vec<Name> = route_names
            .iter()
            .map(|n| Name(n.as_str().into()))
            .chain(std::iter::once(Name("(none)".into())))
            .collect();
        let requests = Arc::new(requests::RequestCounts::new(routes.clone()));
        registry.register_collector(Box::new(requests.clone()));
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
        let series = routes
            .iter()
            .map(|route| {
                let labels = RouteLabels {
                    route: route.clone(),
                };
                RouteSeries {
                    head_seconds: head_seconds.get_or_create_owned(&labels),
                    total_seconds: total_seconds.get_or_create_owned(&labels),
                    sse_open: sse_open.get_or_create_owned(&labels),
                    sse_streams: sse_streams.get_or_create_owned(&labels),
                    sse_bytes: sse_bytes.get_or_create_owned(&labels),
                }
            })
            .collect();
        if let Some(dropped) = dropped {
            registry.register_collector(Box::new(process::DroppedCollector(dropped)));
        }
        Metrics {
            registry: root,
            routes,
            series,
            requests,
            hook_calls,
            hook_seconds,
            hook_failures,
            sessions_open,
            stdio_processes,
        }
    }

    /// A route's index, or `(none)`'s.
    fn route_index(&self, route: Option<usize>) -> usize {
        let none = self.routes.len() - 1;
        route.filter(|&r| r < none).unwrap_or(none)
    }

    /// Count one finished exchange (one that read no request is not one).
    pub fn exchange_done(&self, s: &Summary) {
        if s.http_method.is_empty() {
            return;
        }
        let route = self.route_index(s.route);
        self.requests.add(requests::Key {
            route,
            method: method_label(s),
            status: s.status.map_or("none", status_label),
            outcome: outcome_label(s.outcome),
        });
        let series = &self.series[route];
        let since = |t: std::time::Instant| t.saturating_duration_since(s.started).as_secs_f64();
        if s.event_stream {
            series.sse_streams.inc();
            series.sse_bytes.inc_by(s.body_bytes);
        }
        if let Some(head) = s.response_head {
            series.head_seconds.observe(since(head));
        }
        if let Some(end) = s.finished {
            series.total_seconds.observe(since(end));
        }
    }

    /// An SSE answer started streaming on `route`.
    pub fn sse_stream_opened(&self, route: Option<usize>) -> SseStreamOpen {
        let gauge = self.series[self.route_index(route)].sse_open.clone();
        gauge.inc();
        SseStreamOpen(gauge)
    }

    /// Count one hook run.
    pub fn hook_ran(&self, phase: Phase, run: &HookRun) {
        let hook = Name(run.hook.clone());
        let phase = match phase {
            Phase::Request => "request",
            Phase::Response => "response",
        };
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
        };
        self.hook_calls.get_or_create(&labels).inc();
        self.hook_seconds
            .get_or_create(&HookTimeLabels { hook, phase })
            .observe(run.elapsed.as_secs_f64());
    }

    /// The text of a scrape, with what is open on each route (by route
    /// index) as it is now.
    pub fn encode(&self, live: &[RouteLive]) -> String {
        for (route, live) in self.routes.iter().zip(live) {
            let open = |kind| SessionLabels {
                route: route.clone(),
                kind,
            };
            let set = |gauge: &Gauge, n: usize| gauge.set(i64::try_from(n).unwrap_or(i64::MAX));
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
        }
        let mut text = String::with_capacity(8 << 10);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry);
        text
    }
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

fn failure_label(kind: &HookErrorKind) -> &'static str {
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
        }
    }

    /// The value of the series whose line starts with `series ` in `text`.
    fn value(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn requests_are_counted_with_bounded_labels() {
        let m = Metrics::new(&["up".into()], None);
        m.exchange_done(&summary(Some(0), Some("tools/call"), 200));
        m.exchange_done(&summary(Some(0), Some("tools/call"), 200));
        m.exchange_done(&summary(Some(0), Some("made/up/by/a/client"), 299));
        m.exchange_done(&summary(None, None, 404));
        let text = m.encode(&[RouteLive::default()]);
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
        let m = Metrics::new(&["a".into(), "b".into()], None);
        let live = [
            RouteLive::default(),
            RouteLive {
                legacy_sessions: 0,
                stdio_sessions: 3,
                stdio_processes: 2,
            },
        ];
        let text = m.encode(&live);
        let sessions = r#"sluice_sessions_open{route="b",kind="stdio"}"#;
        assert_eq!(value(&text, sessions), Some(3.0), "{text}");
        let processes = r#"sluice_stdio_processes{route="b"}"#;
        assert_eq!(value(&text, processes), Some(2.0), "{text}");
        let text = m.encode(&[RouteLive::default(), RouteLive::default()]);
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
        let m = Metrics::new(&["up".into()], None);
        let open = r#"sluice_sse_streams_open{route="up"}"#;
        let guard = m.sse_stream_opened(Some(0));
        assert_eq!(value(&m.encode(&[]), open), Some(1.0));
        let mut s = summary(Some(0), Some("tools/call"), 200);
        s.event_stream = true;
        s.body_bytes = 1234;
        m.exchange_done(&s);
        drop(guard);
        let text = m.encode(&[]);
        assert_eq!(value(&text, open), Some(0.0), "{text}");
        let bytes = r#"sluice_sse_bytes_total{route="up"}"#;
        assert_eq!(value(&text, bytes), Some(1234.0), "{text}");
        let streams = r#"sluice_sse_streams_total{route="up"}"#;
        assert_eq!(value(&text, streams), Some(1.0), "{text}");
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
