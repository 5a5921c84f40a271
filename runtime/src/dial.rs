//! Dialing upstreams: TCP connections with `TCP_NODELAY`, TLS over them
//! where the upstream is `https`, and a small pool of idle keep-alive
//! connections per upstream.
//!
//! This sits below both users of real upstream sockets: the proxy's
//! upstream table (`proxy::upstream`, which alone knows the routes bridged
//! to a legacy backend) and the legacy bridge (`legacy`, which dials the
//! backend for its SSE stream, its POSTs and the `auto` probe). It imports
//! neither.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_lite::{AsyncRead, AsyncWrite};
use futures_rustls::TlsConnector;
use futures_rustls::rustls::pki_types::ServerName;

use crate::metrics::DialCounters;
use crate::rt;
use crate::rt::net::Stream;

/// Where one upstream listens.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// Host name or IP literal (no brackets), for DNS and SNI.
    pub(crate) host: String,
    /// TCP port.
    pub(crate) port: u16,
    /// Speak TLS.
    pub(crate) tls: bool,
}

/// An open connection to an upstream.
pub(crate) enum Conn {
    /// Plain TCP.
    Plain(Stream),
    /// TLS over TCP.
    Tls(Box<futures_rustls::client::TlsStream<Stream>>),
}

impl Conn {
    /// One read into the worker's scratch buffer, the bytes read copied
    /// out (empty at EOF): nothing is allocated or held while the
    /// connection waits. TLS keeps its own buffers; readiness of the
    /// socket says nothing about them.
    pub(crate) fn poll_read_bytes(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<bytes::Bytes>> {
        match self {
            Conn::Plain(s) => crate::rt::read::poll_read_tcp(s, cx),
            Conn::Tls(s) => crate::rt::read::poll_read_any(std::pin::Pin::new(s.as_mut()), cx),
        }
    }

    /// The TCP socket under the connection.
    fn tcp(&self) -> &Stream {
        match self {
            Conn::Plain(s) => s,
            Conn::Tls(s) => s.get_ref().0,
        }
    }

    /// Coming out of the pool: a non-blocking peek finds out whether the
    /// upstream closed it (or sent stray bytes) while it sat there. The
    /// reactor cannot be trusted for this: it may not have polled since
    /// the upstream closed the connection, and a POST written into a closed
    /// connection cannot be re-sent. The peek's `WouldBlock` also leaves
    /// the socket marked drained, so the next read waits for the reactor.
    fn looks_alive(&self) -> bool {
        let mut probe = [0u8; 1];
        matches!(self.tcp().try_peek(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }

    /// Whether the connection's socket is served by this thread's worker.
    fn is_local(&self) -> bool {
        self.tcp().is_local()
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_close(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_close(cx),
        }
    }
}

/// Opens connections to the upstreams, by index, and keeps idle ones for
/// reuse.
pub(crate) struct Dialer {
    /// The proxy's runtime: a socket opened off its workers (by the legacy
    /// bridge's tasks) is registered with one of them.
    rt: rt::Handle,
    targets: Vec<Target>,
    tls: Option<TlsConnector>,
    idle: Mutex<HashMap<usize, Vec<(Conn, Instant)>>>,
    max_idle: usize,
    idle_timeout: Duration,
    /// By target: the counters of the route it serves (a federation's
    /// members count under their route). Empty: nothing counted.
    counters: Vec<DialCounters>,
}

impl Dialer {
    /// A dialer for `targets` (indexed like the router's routes), keeping up
    /// to `max_idle` idle connections per target for `idle_timeout`.
    pub(crate) fn new(
        rt: rt::Handle,
        targets: Vec<Target>,
        tls: Option<std::sync::Arc<futures_rustls::rustls::ClientConfig>>,
        max_idle: usize,
        idle_timeout: Duration,
    ) -> Self {
        Dialer {
            rt,
            targets,
            tls: tls.map(TlsConnector::from),
            idle: Mutex::new(HashMap::new()),
            max_idle,
            idle_timeout,
            counters: Vec::new(),
        }
    }

    /// Count the checkouts of target `i` in `counters[i]`.
    pub(crate) fn with_counters(mut self, counters: Vec<DialCounters>) -> Self {
        self.counters = counters;
        self
    }

    /// A connection to upstream `route` (pooled unless `fresh`). Returns
    /// whether it was reused.
    pub(crate) async fn checkout(&self, route: usize, fresh: bool) -> io::Result<(Conn, bool)> {
        let counters = self.counters.get(route);
        if !fresh && let Some(conn) = self.take_idle(route) {
            if let Some(counters) = counters {
                counters.reused();
            }
            return Ok((conn, true));
        }
        let target = self
            .targets
            .get(route)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such route"))?;
        // Boxed: resolving and connecting is the largest state a
        // connection's task would otherwise carry, idle or not.
        let dialed = Box::pin(self.connect(&target.host, target.port, target.tls)).await;
        if let Some(counters) = counters {
            match &dialed {
                Ok(_) => counters.opened(),
                Err(e) => {
                    if let Some(dial) = DialError::of(e) {
                        counters.failed(dial.stage);
                    }
                }
            }
        }
        Ok((dialed?, false))
    }

    /// Whether upstream `index` takes a TCP connection within `within`
    /// (its name resolved first); the connection is closed at once, before
    /// any TLS. For `/readyz`.
    pub(crate) async fn probe(&self, index: usize, within: Duration) -> Result<(), DialError> {
        let Some(target) = self.targets.get(index) else {
            return Ok(());
        };
        let failed = |stage, source| DialError {
            stage,
            upstream: crate::proxy::host_port(&target.host, target.port),
            source,
        };
        let connect = async { Some(connect_tcp(&target.host, target.port, &self.rt).await) };
        let late = async {
            rt::Timer::after(within).await;
            None
        };
        match futures_lite::future::or(connect, late).await {
            Some(Ok(_tcp)) => Ok(()),
            Some(Err((stage, e))) => Err(failed(stage, e)),
            None => Err(failed(
                DialStage::Connect,
                io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no answer within {} ms", within.as_millis()),
                ),
            )),
        }
    }

    /// Close every idle pooled connection.
    pub(crate) fn drop_idle(&self) {
        let idle = std::mem::take(&mut *self.idle.lock().unwrap_or_else(|e| e.into_inner()));
        self.forget(idle);
    }

    /// Close `idle`'s connections, taken out of the pool, and count them
    /// gone.
    fn forget(&self, idle: HashMap<usize, Vec<(Conn, Instant)>>) {
        for (target, list) in idle {
            self.idle_moved(target, 0, list.len());
        }
    }

    /// Target `target`'s pool went from `before` to `after` connections.
    fn idle_moved(&self, target: usize, before: usize, after: usize) {
        if let Some(counters) = self.counters.get(target) {
            let delta = i64::try_from(after).unwrap_or(i64::MAX)
                - i64::try_from(before).unwrap_or(i64::MAX);
            counters.idle_moved(delta);
        }
    }

    /// The runtime the dialer's sockets live on.
    pub(crate) fn runtime(&self) -> &rt::Handle {
        &self.rt
    }

    /// A new connection to another origin (a legacy endpoint elsewhere,
    /// when configured).
    pub(crate) async fn connect_origin(
        &self,
        origin: &sluice_core::legacy::Origin,
    ) -> io::Result<Conn> {
        self.connect(&origin.host, origin.port, origin.https).await
    }

    /// A new connection; a failure is a [`DialError`] inside the
    /// `io::Error` (its kind kept), naming the stage and the address.
    async fn connect(&self, host: &str, port: u16, tls: bool) -> io::Result<Conn> {
        let failed = |stage, source: io::Error| {
            let kind = source.kind();
            let upstream = crate::proxy::host_port(host, port);
            io::Error::new(
                kind,
                DialError {
                    stage,
                    upstream,
                    source,
                },
            )
        };
        let tcp = connect_tcp(host, port, &self.rt)
            .await
            .map_err(|(stage, e)| failed(stage, e))?;
        if !tls {
            return Ok(Conn::Plain(tcp));
        }
        let connector = self
            .tls
            .as_ref()
            .ok_or_else(|| failed(DialStage::Tls, io::Error::other("TLS is not configured")))?;
        let name = ServerName::try_from(host.to_owned()).map_err(|e| {
            failed(
                DialStage::Tls,
                io::Error::new(io::ErrorKind::InvalidInput, e),
            )
        })?;
        // Boxed: the handshake state is large, and would otherwise size
        // every connection's task, idle streams included.
        let tls = Box::pin(connector.connect(name, tcp))
            .await
            .map_err(|e| failed(DialStage::Tls, e))?;
        Ok(Conn::Tls(Box::new(tls)))
    }

    /// The most recently used live connection, preferring one whose socket
    /// this worker serves (its events then wake no other thread).
    fn take_idle(&self, route: usize) -> Option<Conn> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let list = idle.get_mut(&route)?;
        let before = list.len();
        let now = Instant::now();
        list.retain(|(_, since)| now.duration_since(*since) < self.idle_timeout);
        let mut taken = None;
        while !list.is_empty() {
            let at = list
                .iter()
                .rposition(|(conn, _)| conn.is_local())
                .unwrap_or(list.len() - 1);
            let (conn, _) = list.remove(at);
            if conn.looks_alive() {
                taken = Some(conn);
                break;
            }
        }
        self.idle_moved(route, before, list.len());
        taken
    }

    /// Return a connection to upstream `route` that ended at a clean
    /// message boundary.
    pub(crate) fn checkin(&self, route: usize, conn: Conn) {
        if self.max_idle == 0 {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let list = idle.entry(route).or_default();
        let before = list.len();
        let now = Instant::now();
        list.retain(|(_, since)| now.duration_since(*since) < self.idle_timeout);
        if list.len() >= self.max_idle {
            list.remove(0);
        }
        list.push((conn, now));
        self.idle_moved(route, before, list.len());
    }
}

impl Drop for Dialer {
    /// Its idle connections close with it (a configuration replaced):
    /// the pool's gauge forgets them.
    fn drop(&mut self) {
        let idle = std::mem::take(self.idle.get_mut().unwrap_or_else(|e| e.into_inner()));
        self.forget(idle);
    }
}

/// Where dialing an upstream failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DialStage {
    /// Its name did not resolve (or resolved to no address).
    Resolve,
    /// The TCP connect (refused, unreachable, timed out).
    Connect,
    /// The TLS handshake (a certificate refused, a protocol mismatch).
    Tls,
}

/// A failed dial: the stage, the upstream's `host:port` and the OS (or
/// TLS) error. Carried inside the `io::Error` the dialer returns, so the
/// driver can log it with the address without a second error type on
/// every path.
#[derive(Debug)]
pub(crate) struct DialError {
    pub(crate) stage: DialStage,
    pub(crate) upstream: String,
    pub(crate) source: io::Error,
}

impl DialError {
    /// The dial failure behind `e`, if it is one.
    pub(crate) fn of(e: &io::Error) -> Option<&DialError> {
        e.get_ref()?.downcast_ref()
    }

    /// Log the dial failure behind `e` (if it is one: returns whether) at
    /// `warn`, with the route's name, the upstream's address and the OS
    /// (or TLS) error: what an operator alerts on (docs/OPERATIONS.md,
    /// "Lines to alert on").
    pub(crate) fn warn(route: &str, e: &io::Error) -> bool {
        let Some(dial) = DialError::of(e) else {
            return false;
        };
        let (upstream, error) = (dial.upstream.as_str(), &dial.source);
        match dial.stage {
            DialStage::Resolve => {
                tracing::warn!(route, upstream, error = %error, "upstream name did not resolve")
            }
            DialStage::Connect => {
                tracing::warn!(route, upstream, error = %error, "upstream connect failed")
            }
            DialStage::Tls => {
                tracing::warn!(route, upstream, error = %error, "upstream TLS handshake failed")
            }
        }
        true
    }
}

impl std::fmt::Display for DialError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let stage = match self.stage {
            DialStage::Resolve => "resolving",
            DialStage::Connect => "connecting to",
            DialStage::Tls => "the TLS handshake with",
        };
        write!(f, "{stage} {}: {}", self.upstream, self.source)
    }
}

impl std::error::Error for DialError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// Resolve (a name on the DNS threads, an IP literal here) and connect,
/// trying each address in turn; TCP_NODELAY set.
async fn connect_tcp(
    host: &str,
    port: u16,
    rt: &rt::Handle,
) -> Result<Stream, (DialStage, io::Error)> {
    let addrs = match host.parse::<std::net::IpAddr>() {
        Ok(ip) => vec![std::net::SocketAddr::new(ip, port)],
        Err(_) => rt::dns::resolve(host, port)
            .await
            .map_err(|e| (DialStage::Resolve, e))?,
    };
    let mut last = (
        DialStage::Resolve,
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("{host} resolved to no address"),
        ),
    );
    for addr in addrs {
        match Stream::connect(addr, rt).await {
            Ok(tcp) => {
                tcp.set_nodelay(true).map_err(|e| (DialStage::Connect, e))?;
                return Ok(tcp);
            }
            Err(e) => last = (DialStage::Connect, e),
        }
    }
    Err(last)
}
