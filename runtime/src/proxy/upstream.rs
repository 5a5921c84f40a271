//! The exchange's upstreams, by route: real connections from the dialer
//! ([`crate::dial`]) for Streamable HTTP upstreams, and for routes whose
//! upstream speaks the legacy HTTP+SSE transport a typed link to the bridge
//! ([`crate::legacy`]).

use std::io;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use sluice_core::exchange::{TraceCarrier, TransportEvidence};
use sluice_core::upstream::AnswerPart;

use crate::dial::{self, Conn, Dialer};
use crate::federation::RouteFederation;
use crate::legacy::{AutoTransport, RouteBridge, UpstreamTransport};
use crate::link::MessageLink;
use crate::stdio::RouteStdio;

/// Where one route's upstream lives.
#[derive(Debug, Clone)]
pub struct UpstreamTarget {
    /// Host name or IP literal (no brackets), for DNS and SNI.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Speak TLS.
    pub tls: bool,
    /// Streamable HTTP, or the legacy transport through the bridge.
    pub transport: UpstreamTransport,
}

/// `host:port`, an IPv6 literal bracketed: how logs name an upstream.
pub(crate) fn host_port(host: &str, port: u16) -> String {
    match host.contains(':') {
        true => format!("[{host}]:{port}"),
        false => format!("{host}:{port}"),
    }
}

/// The exchange's upstream.
pub(crate) enum UpConn {
    /// A real connection (TCP or TLS), pooled when it ends cleanly.
    Net(Conn),
    /// A typed link to a message upstream: the legacy bridge or a stdio
    /// server (one exchange, never pooled).
    Message(MessageLink),
}

/// What an upstream said.
pub(super) enum Heard {
    /// Bytes from a connection (empty: end of stream).
    Bytes(io::Result<Bytes>),
    /// A part of a message upstream's answer; `None` when it has no more.
    Part(Option<AnswerPart>),
}

impl UpConn {
    /// The upstream's next bytes or part. A connection's read goes into the
    /// worker's scratch buffer and only the bytes read are copied out:
    /// nothing is allocated or held while it waits.
    pub(super) fn poll_heard(&mut self, cx: &mut Context<'_>) -> Poll<Heard> {
        match self {
            UpConn::Net(conn) => conn.poll_read_bytes(cx).map(Heard::Bytes),
            UpConn::Message(link) => link.poll_part(cx).map(Heard::Part),
        }
    }
}

/// Opens upstream connections and keeps idle ones for reuse; routes to a
/// legacy upstream get a virtual connection to their bridge.
pub(crate) struct Upstreams {
    dialer: Arc<Dialer>,
    kinds: Vec<RouteKind>,
}

/// Cloned when a reload keeps a route whose definition did not change:
/// both generations then share its sessions and children.
#[derive(Clone)]
enum RouteKind {
    Direct,
    Bridge(Arc<RouteBridge>),
    /// `transport = "auto"`: the bridge once the route is known to need it.
    Auto(Arc<RouteBridge>, Arc<AutoTransport>),
    /// A stdio server.
    Stdio(Arc<RouteStdio>),
    /// A federation of servers (`None`: it could not start, for want of
    /// randomness to key its sessions; its requests fail).
    Federation(Option<Arc<RouteFederation>>),
}

impl RouteKind {
    /// Close its bridges and children; none starts after. Returns how many
    /// were running.
    fn close(&self) -> usize {
        match self {
            RouteKind::Bridge(b) | RouteKind::Auto(b, _) => b.close_all(),
            RouteKind::Stdio(s) => s.close_all(),
            RouteKind::Federation(f) => f.as_ref().map_or(0, |f| f.close_all()),
            RouteKind::Direct => 0,
        }
    }
}

/// A connection handed out by [`Upstreams::checkout`].
pub(crate) struct Checkout {
    pub conn: UpConn,
    /// It came from the pool.
    pub reused: bool,
    /// The route's transport is in doubt (`auto`, not known yet): the
    /// exchange should `probe_transport`.
    pub in_doubt: bool,
}

/// The upstream pool's settings.
#[derive(Debug, Clone, Copy)]
pub struct Pool {
    /// Idle connections kept per upstream (0: no pooling).
    pub max_idle: usize,
    /// How long one is kept.
    pub idle_timeout: Duration,
}

impl Upstreams {
    /// Upstreams for `targets` (indexed like the router's routes), their
    /// sockets on `rt`'s workers, their dials counted in `metrics`. With
    /// `previous`, route `i` takes over the sessions and children of
    /// `previous`'s route `carry[i]` (a reload that did not change its
    /// definition): they keep the dialer they were made with. A
    /// federation makes its members' spans with `tracer`.
    #[allow(clippy::too_many_arguments)] // called once, by `build`
    pub fn new(
        rt: crate::rt::Handle,
        targets: Vec<UpstreamTarget>,
        names: &[String],
        tls: Option<Arc<futures_rustls::rustls::ClientConfig>>,
        pool: Pool,
        previous: Option<(&Upstreams, &[Option<usize>])>,
        metrics: &crate::metrics::RouteMetrics,
        tracer: Option<&Arc<crate::otel::Tracer>>,
    ) -> Self {
        // Routes first, by route index; then federations' HTTP members,
        // each federation's from the index noted for it.
        let mut dial_targets: Vec<dial::Target> = targets
            .iter()
            .map(|t| dial::Target {
                host: t.host.clone(),
                port: t.port,
                tls: t.tls,
            })
            .collect();
        let mut counters: Vec<_> = (0..targets.len()).map(|r| metrics.dial(r)).collect();
        let mut member_targets = Vec::with_capacity(targets.len());
        for (route, t) in targets.iter().enumerate() {
            member_targets.push(dial_targets.len());
            if let UpstreamTransport::Federation(f) = &t.transport {
                dial_targets.extend(f.http_targets());
                // Members count under their route: `route` alone stays
                // the label, as in every other per-route family.
                counters.resize(dial_targets.len(), metrics.dial(route));
            }
        }
        let dialer = Dialer::new(rt, dial_targets, tls, pool.max_idle, pool.idle_timeout);
        let dialer = Arc::new(dialer.with_counters(counters));
        let kinds = targets
            .into_iter()
            .enumerate()
            .map(|(route, t)| {
                let kept = previous.and_then(|(up, carry)| up.kinds.get((*carry.get(route)?)?));
                match kept {
                    // A direct route keeps nothing: the new dialer serves it.
                    Some(RouteKind::Direct) | None => {}
                    Some(kind) => return kind.clone(),
                }
                match t.transport {
                UpstreamTransport::Streamable => RouteKind::Direct,
                UpstreamTransport::Sse(b) => {
                    let name = names.get(route).cloned().unwrap_or_default();
                    RouteKind::Bridge(RouteBridge::named(route, name, b, dialer.clone()))
                }
                UpstreamTransport::Auto(b) => RouteKind::Auto(
                    RouteBridge::named(
                        route,
                        names.get(route).cloned().unwrap_or_default(),
                        b,
                        dialer.clone(),
                    ),
                    Arc::default(),
                ),
                UpstreamTransport::Stdio(s) => {
                    let name = names.get(route).cloned().unwrap_or_default();
                    RouteKind::Stdio(RouteStdio::new(name, *s))
                }
                UpstreamTransport::Federation(f) => {
                    let name = names.get(route).cloned().unwrap_or_default();
                    let federation =
                        RouteFederation::new(
                        name.clone(),
                        *f,
                        &dialer,
                        member_targets[route],
                        metrics.federation(route),
                        tracer.cloned(),
                    );
                    if federation.is_none() {
                        tracing::error!(route = %name, "no randomness for the federation's session key: its requests fail");
                    }
                    RouteKind::Federation(federation)
                }
            }})
            .collect();
        Upstreams { dialer, kinds }
    }

    /// Shutting down: closes every running legacy bridge (their backend SSE
    /// streams included) and stdio bridge (their children shut down), and
    /// refuses new ones. Returns how many were running.
    pub fn close_bridges(&self) -> usize {
        self.kinds.iter().map(RouteKind::close).sum()
    }

    /// Closes the sessions and children of `routes` (by index), as
    /// [`Upstreams::close_bridges`] does for all. Returns how many were
    /// running.
    pub fn close_routes(&self, routes: &[usize]) -> usize {
        routes
            .iter()
            .filter_map(|&r| self.kinds.get(r))
            .map(RouteKind::close)
            .sum()
    }

    /// Close the idle pooled connections (a reload replaced these
    /// upstreams).
    pub fn drop_idle(&self) {
        self.dialer.drop_idle();
    }

    /// What is open on each route, by route index, for metrics.
    pub fn live(&self) -> Vec<crate::metrics::RouteLive> {
        self.kinds
            .iter()
            .map(|k| match k {
                RouteKind::Bridge(b) | RouteKind::Auto(b, _) => crate::metrics::RouteLive {
                    legacy_sessions: b.live_count(),
                    ..Default::default()
                },
                RouteKind::Stdio(s) => {
                    let open = s.open_counts();
                    crate::metrics::RouteLive {
                        stdio_sessions: open.per_session,
                        stdio_shared_sessions: open.shared_sessions,
                        stdio_processes: open.processes,
                        ..Default::default()
                    }
                }
                RouteKind::Federation(f) => {
                    let open = f.as_ref().map(|f| f.open_counts()).unwrap_or_default();
                    crate::metrics::RouteLive {
                        stdio_sessions: open.per_session,
                        stdio_shared_sessions: open.shared_sessions,
                        stdio_processes: open.processes,
                        members: f.as_ref().map_or_else(Vec::new, |f| f.members_live()),
                        ..Default::default()
                    }
                }
                RouteKind::Direct => crate::metrics::RouteLive::default(),
            })
            .collect()
    }

    /// Whether each route (by route index) can serve, for `/readyz`: a
    /// URL route's upstream takes a TCP connection within `within` (all
    /// probed at once), a stdio route's program is there and its last
    /// start did not fail, a federated route started (its members are
    /// not required: it serves without those that are down).
    pub async fn readiness(&self, within: Duration) -> Vec<Result<(), String>> {
        let rt = self.dialer.runtime();
        let probes: Vec<_> = self
            .kinds
            .iter()
            .enumerate()
            .map(|(route, kind)| match kind {
                RouteKind::Direct | RouteKind::Bridge(_) | RouteKind::Auto(..) => {
                    let dialer = self.dialer.clone();
                    Err(rt.spawn(async move { dialer.probe(route, within).await }))
                }
                RouteKind::Stdio(s) => Ok(s.readiness()),
                RouteKind::Federation(Some(_)) => Ok(Ok(())),
                RouteKind::Federation(None) => {
                    Ok(Err("the federation has no session key".to_owned()))
                }
            })
            .collect();
        let mut ready = Vec::with_capacity(probes.len());
        for probe in probes {
            ready.push(match probe {
                Ok(known) => known,
                Err(task) => task.await.map_err(|e| e.to_string()),
            });
        }
        ready
    }

    /// Bridges (and stdio children) still running, across routes.
    pub fn bridges_live(&self) -> usize {
        self.kinds
            .iter()
            .map(|k| match k {
                RouteKind::Bridge(b) | RouteKind::Auto(b, _) => b.live_count(),
                RouteKind::Stdio(s) => s.live_count(),
                RouteKind::Federation(f) => f.as_ref().map_or(0, |f| f.live_count()),
                RouteKind::Direct => 0,
            })
            .sum()
    }

    /// How route `route`'s upstream hears a request's trace context: in
    /// the message for a stdio child (it reads no headers) and for a
    /// federation (its stdio members read none; its HTTP members get
    /// both), in the headers for every other kind.
    pub fn trace_carrier(&self, route: usize) -> TraceCarrier {
        match self.kinds.get(route) {
            Some(RouteKind::Stdio(_) | RouteKind::Federation(_)) => TraceCarrier::Message,
            _ => TraceCarrier::Headers,
        }
    }

    /// A connection to route `route`'s upstream: a pooled one unless `fresh`,
    /// else a new one; for a legacy upstream, a virtual connection to its
    /// bridge.
    pub async fn checkout(&self, route: usize, fresh: bool) -> io::Result<Checkout> {
        let bridge = |b: &Arc<RouteBridge>| Checkout {
            conn: UpConn::Message(b.open()),
            reused: false,
            in_doubt: false,
        };
        let in_doubt = match self.kinds.get(route) {
            Some(RouteKind::Bridge(b)) => return Ok(bridge(b)),
            Some(RouteKind::Stdio(s)) => {
                return Ok(Checkout {
                    conn: UpConn::Message(s.open()),
                    reused: false,
                    in_doubt: false,
                });
            }
            Some(RouteKind::Federation(Some(f))) => {
                return Ok(Checkout {
                    conn: UpConn::Message(f.open()),
                    reused: false,
                    in_doubt: false,
                });
            }
            Some(RouteKind::Federation(None)) => {
                return Err(io::Error::other("the federation has no session key"));
            }
            Some(RouteKind::Auto(b, auto)) => match auto.known() {
                Some(true) => return Ok(bridge(b)),
                Some(false) => false,
                None => true,
            },
            _ => false,
        };
        let (conn, reused) = self.dialer.checkout(route, fresh).await?;
        Ok(Checkout {
            conn: UpConn::Net(conn),
            reused,
            in_doubt,
        })
    }

    /// What an answer on route `route` says about its transport (an `auto`
    /// route's exchange reported it): whether the request should go again
    /// through the bridge. See `legacy::AutoTransport::judge`.
    pub async fn judge_transport(&self, route: usize, evidence: &TransportEvidence) -> bool {
        match self.kinds.get(route) {
            Some(RouteKind::Auto(b, auto)) => auto.judge(b, evidence).await,
            _ => false,
        }
    }

    /// Return a connection that ended at a clean message boundary (links to
    /// a bridge are never kept).
    pub fn checkin(&self, route: usize, conn: UpConn) {
        if let UpConn::Net(conn) = conn {
            self.dialer.checkin(route, conn);
        }
    }
}
