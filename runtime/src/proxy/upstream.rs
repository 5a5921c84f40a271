//! The exchange's upstreams, by route: real connections from the dialer
//! ([`crate::dial`]) for Streamable HTTP upstreams, and for routes whose
//! upstream speaks the legacy HTTP+SSE transport a typed link to the bridge
//! ([`crate::legacy`]).

use std::io;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use sluice_core::exchange::TransportEvidence;
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

enum RouteKind {
    Direct,
    Bridge(Arc<RouteBridge>),
    /// `transport = "auto"`: the bridge once the route is known to need it.
    Auto(Arc<RouteBridge>, AutoTransport),
    /// A stdio server.
    Stdio(Arc<RouteStdio>),
    /// A federation of servers (`None`: it could not start, for want of
    /// randomness to key its sessions; its requests fail).
    Federation(Option<Arc<RouteFederation>>),
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

impl Upstreams {
    /// Upstreams for `targets` (indexed like the router's routes), their
    /// sockets on `rt`'s workers.
    pub fn new(
        rt: crate::rt::Handle,
        targets: Vec<UpstreamTarget>,
        names: &[String],
        tls: Option<Arc<futures_rustls::rustls::ClientConfig>>,
        max_idle: usize,
        idle_timeout: Duration,
    ) -> Self {
        let dialer = Arc::new(Dialer::new(
            rt,
            targets
                .iter()
                .map(|t| dial::Target {
                    host: t.host.clone(),
                    port: t.port,
                    tls: t.tls,
                })
                .collect(),
            tls,
            max_idle,
            idle_timeout,
        ));
        let kinds = targets
            .into_iter()
            .enumerate()
            .map(|(route, t)| match t.transport {
                UpstreamTransport::Streamable => RouteKind::Direct,
                UpstreamTransport::Sse(b) => {
                    RouteKind::Bridge(RouteBridge::new(route, b, dialer.clone()))
                }
                UpstreamTransport::Auto(b) => RouteKind::Auto(
                    RouteBridge::new(route, b, dialer.clone()),
                    AutoTransport::default(),
                ),
                UpstreamTransport::Stdio(s) => {
                    let name = names.get(route).cloned().unwrap_or_default();
                    RouteKind::Stdio(RouteStdio::new(name, *s))
                }
                UpstreamTransport::Federation(f) => {
                    let name = names.get(route).cloned().unwrap_or_default();
                    let federation = RouteFederation::new(name.clone(), *f);
                    if federation.is_none() {
                        tracing::error!(route = %name, "no randomness for the federation's session key: its requests fail");
                    }
                    RouteKind::Federation(federation)
                }
            })
            .collect();
        Upstreams { dialer, kinds }
    }

    /// Shutting down: closes every running legacy bridge (their backend SSE
    /// streams included) and stdio bridge (their children shut down), and
    /// refuses new ones. Returns how many were running.
    pub fn close_bridges(&self) -> usize {
        self.kinds
            .iter()
            .map(|k| match k {
                RouteKind::Bridge(b) | RouteKind::Auto(b, _) => b.close_all(),
                RouteKind::Stdio(s) => s.close_all(),
                RouteKind::Federation(f) => f.as_ref().map_or(0, |f| f.close_all()),
                RouteKind::Direct => 0,
            })
            .sum()
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
                    let (sessions, processes) = s.open_counts();
                    crate::metrics::RouteLive {
                        stdio_sessions: sessions,
                        stdio_processes: processes,
                        ..Default::default()
                    }
                }
                RouteKind::Federation(f) => {
                    let (sessions, processes) = f.as_ref().map_or((0, 0), |f| f.open_counts());
                    crate::metrics::RouteLive {
                        stdio_sessions: sessions,
                        stdio_processes: processes,
                        ..Default::default()
                    }
                }
                RouteKind::Direct => crate::metrics::RouteLive::default(),
            })
            .collect()
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
