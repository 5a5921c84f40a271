//! Upstream connections: plain TCP or TLS, opened with TCP_NODELAY, and a
//! small pool of idle keep-alive connections per route; for routes whose
//! upstream speaks the legacy HTTP+SSE transport, a virtual connection to
//! the bridge ([`crate::legacy`]).

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_lite::{AsyncRead, AsyncWrite};
use futures_rustls::TlsConnector;
use futures_rustls::rustls::pki_types::ServerName;

use crate::legacy::{BridgePipe, RouteBridge, UpstreamTransport};
use crate::rt::net::Stream;

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

/// An open upstream connection.
pub enum UpConn {
    /// Plain TCP.
    Plain(Stream),
    /// TLS over TCP.
    Tls(Box<futures_rustls::client::TlsStream<Stream>>),
    /// A virtual connection to the legacy bridge (one exchange, never pooled).
    Bridge(BridgePipe),
}

impl UpConn {
    /// The TCP socket under a real connection.
    fn tcp(&self) -> Option<&Stream> {
        match self {
            UpConn::Plain(s) => Some(s),
            UpConn::Tls(s) => Some(s.get_ref().0),
            UpConn::Bridge(_) => None,
        }
    }

    /// Coming out of the pool: a non-blocking peek finds out whether the
    /// upstream closed it (or sent stray bytes) while it sat there. The
    /// reactor cannot be trusted for this: it may not have polled since
    /// the upstream closed the connection, and a POST written into a closed
    /// connection cannot be re-sent. The peek's `WouldBlock` also leaves
    /// the socket marked drained, so the next read waits for the reactor.
    fn looks_alive(&self) -> bool {
        let Some(tcp) = self.tcp() else { return false };
        let mut probe = [0u8; 1];
        matches!(tcp.try_peek(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }

    /// Whether the connection's socket is served by this thread's worker.
    fn is_local(&self) -> bool {
        self.tcp().is_some_and(Stream::is_local)
    }

    /// One read into the worker's scratch buffer, the bytes read copied out:
    /// nothing is allocated or held while the connection waits.
    pub(super) fn poll_read_bytes(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Bytes>> {
        match self {
            UpConn::Plain(s) => super::read::poll_read_tcp(s, cx),
            // TLS and the bridge pipe keep their own buffers; readiness of
            // the socket says nothing about them.
            UpConn::Tls(s) => super::read::poll_read_any(Pin::new(s.as_mut()), cx),
            UpConn::Bridge(s) => super::read::poll_read_any(Pin::new(s), cx),
        }
    }
}

impl AsyncRead for UpConn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            UpConn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            UpConn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            UpConn::Bridge(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for UpConn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            UpConn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            UpConn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            UpConn::Bridge(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            UpConn::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            UpConn::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
            UpConn::Bridge(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpConn::Plain(s) => Pin::new(s).poll_flush(cx),
            UpConn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            UpConn::Bridge(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpConn::Plain(s) => Pin::new(s).poll_close(cx),
            UpConn::Tls(s) => Pin::new(s.as_mut()).poll_close(cx),
            UpConn::Bridge(s) => Pin::new(s).poll_close(cx),
        }
    }
}

/// Opens upstream connections and keeps idle ones for reuse; routes to a
/// legacy upstream get a virtual connection to their bridge.
pub struct Upstreams {
    direct: Arc<Direct>,
    kinds: Vec<RouteKind>,
}

enum RouteKind {
    Direct,
    Bridge(Arc<RouteBridge>),
    /// `transport = "auto"`: `Some(true)` once the probe found the legacy
    /// transport, `Some(false)` Streamable HTTP.
    Auto(Arc<RouteBridge>, Mutex<Option<bool>>),
}

impl Upstreams {
    /// Upstreams for `targets` (indexed like the router's routes).
    pub fn new(
        targets: Vec<UpstreamTarget>,
        tls: Option<Arc<futures_rustls::rustls::ClientConfig>>,
        max_idle: usize,
        idle_timeout: Duration,
    ) -> Self {
        let direct = Arc::new(Direct {
            targets: targets.clone(),
            tls: tls.map(TlsConnector::from),
            idle: Mutex::new(HashMap::new()),
            max_idle,
            idle_timeout,
        });
        let kinds = targets
            .into_iter()
            .enumerate()
            .map(|(route, t)| match t.transport {
                UpstreamTransport::Streamable => RouteKind::Direct,
                UpstreamTransport::Sse(b) => {
                    RouteKind::Bridge(RouteBridge::new(route, b, direct.clone()))
                }
                UpstreamTransport::Auto(b) => {
                    RouteKind::Auto(RouteBridge::new(route, b, direct.clone()), Mutex::new(None))
                }
            })
            .collect();
        Upstreams { direct, kinds }
    }

    /// The target of route `route`.
    pub fn target(&self, route: usize) -> Option<&UpstreamTarget> {
        self.direct.targets.get(route)
    }

    /// The bridge of route `route`, if its upstream is (or may be) legacy.
    pub fn bridge(&self, route: usize) -> Option<&Arc<RouteBridge>> {
        match self.kinds.get(route)? {
            RouteKind::Bridge(b) | RouteKind::Auto(b, _) => Some(b),
            RouteKind::Direct => None,
        }
    }

    /// Shutting down: closes every running legacy bridge (their backend SSE
    /// streams included) and refuses new ones. Returns how many were running.
    pub fn close_bridges(&self) -> usize {
        self.bridges().map(|b| b.close_all()).sum()
    }

    /// Legacy bridges still running, across routes.
    pub fn bridges_live(&self) -> usize {
        self.bridges().map(|b| b.live_count()).sum()
    }

    fn bridges(&self) -> impl Iterator<Item = &Arc<RouteBridge>> {
        self.kinds.iter().filter_map(|k| match k {
            RouteKind::Bridge(b) | RouteKind::Auto(b, _) => Some(b),
            RouteKind::Direct => None,
        })
    }

    /// A connection to route `route`'s upstream: a pooled one unless `fresh`,
    /// else a new one; for a legacy upstream, a virtual connection to its
    /// bridge. Returns whether it was reused.
    pub async fn checkout(&self, route: usize, fresh: bool) -> io::Result<(UpConn, bool)> {
        match self.kinds.get(route) {
            Some(RouteKind::Bridge(b)) => return Ok((UpConn::Bridge(b.open()), false)),
            Some(RouteKind::Auto(b, known)) => {
                let decided = *known.lock().unwrap_or_else(|e| e.into_inner());
                let legacy = match decided {
                    Some(legacy) => legacy,
                    // Boxed for the same reason as the TLS handshake (once per route).
                    None => match Box::pin(b.probe()).await? {
                        Some(legacy) => {
                            tracing::info!(
                                route,
                                transport = if legacy { "sse" } else { "streamable" },
                                "upstream transport probed"
                            );
                            *known.lock().unwrap_or_else(|e| e.into_inner()) = Some(legacy);
                            legacy
                        }
                        None => false,
                    },
                };
                if legacy {
                    return Ok((UpConn::Bridge(b.open()), false));
                }
            }
            _ => {}
        }
        self.direct.checkout(route, fresh).await
    }

    /// Return a connection that ended at a clean message boundary.
    pub fn checkin(&self, route: usize, conn: UpConn) {
        self.direct.checkin(route, conn);
    }
}

/// Real connections to the upstreams, and the pool of idle ones.
pub struct Direct {
    targets: Vec<UpstreamTarget>,
    tls: Option<TlsConnector>,
    idle: Mutex<HashMap<usize, Vec<(UpConn, Instant)>>>,
    max_idle: usize,
    idle_timeout: Duration,
}

impl Direct {
    /// A real connection to route `route`'s upstream (pooled unless `fresh`).
    pub async fn checkout(&self, route: usize, fresh: bool) -> io::Result<(UpConn, bool)> {
        if !fresh && let Some(conn) = self.take_idle(route) {
            return Ok((conn, true));
        }
        let target = self
            .targets
            .get(route)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such route"))?;
        // Boxed: resolving and connecting is the largest state a
        // connection's task would otherwise carry, idle or not.
        let conn = Box::pin(self.connect(&target.host, target.port, target.tls)).await?;
        Ok((conn, false))
    }

    /// A new connection to another origin (a legacy endpoint elsewhere,
    /// when configured).
    pub async fn connect_origin(&self, origin: &sluice_core::legacy::Origin) -> io::Result<UpConn> {
        self.connect(&origin.host, origin.port, origin.https).await
    }

    async fn connect(&self, host: &str, port: u16, tls: bool) -> io::Result<UpConn> {
        let tcp = connect_tcp(host, port).await?;
        if !tls {
            return Ok(UpConn::Plain(tcp));
        }
        let connector = self
            .tls
            .as_ref()
            .ok_or_else(|| io::Error::other("TLS is not configured"))?;
        let name = ServerName::try_from(host.to_owned())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        // Boxed: the handshake state is large, and would otherwise size
        // every connection's task, idle streams included.
        let tls = Box::pin(connector.connect(name, tcp)).await?;
        Ok(UpConn::Tls(Box::new(tls)))
    }

    /// The most recently used live connection, preferring one whose socket
    /// this worker serves (its events then wake no other thread).
    fn take_idle(&self, route: usize) -> Option<UpConn> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let list = idle.get_mut(&route)?;
        let now = Instant::now();
        list.retain(|(_, since)| now.duration_since(*since) < self.idle_timeout);
        while !list.is_empty() {
            let at = list
                .iter()
                .rposition(|(conn, _)| conn.is_local())
                .unwrap_or(list.len() - 1);
            let (conn, _) = list.remove(at);
            if conn.looks_alive() {
                return Some(conn);
            }
        }
        None
    }

    /// Return a connection that ended at a clean message boundary (virtual
    /// connections are never kept).
    pub fn checkin(&self, route: usize, conn: UpConn) {
        if self.max_idle == 0 || conn.tcp().is_none() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let list = idle.entry(route).or_default();
        let now = Instant::now();
        list.retain(|(_, since)| now.duration_since(*since) < self.idle_timeout);
        if list.len() >= self.max_idle {
            list.remove(0);
        }
        list.push((conn, now));
    }
}

/// Resolve and connect, trying each address in turn; TCP_NODELAY set.
pub async fn connect_tcp(host: &str, port: u16) -> io::Result<Stream> {
    let addrs = match host.parse::<std::net::IpAddr>() {
        Ok(ip) => vec![std::net::SocketAddr::new(ip, port)],
        Err(_) => smol::net::resolve((host, port)).await?,
    };
    let mut last = io::Error::new(
        io::ErrorKind::NotFound,
        format!("{host} resolved to no address"),
    );
    for addr in addrs {
        match Stream::connect(addr).await {
            Ok(tcp) => {
                tcp.set_nodelay(true)?;
                return Ok(tcp);
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}
