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
        }
    }

    /// A connection to upstream `route` (pooled unless `fresh`). Returns
    /// whether it was reused.
    pub(crate) async fn checkout(&self, route: usize, fresh: bool) -> io::Result<(Conn, bool)> {
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
    pub(crate) async fn connect_origin(
        &self,
        origin: &sluice_core::legacy::Origin,
    ) -> io::Result<Conn> {
        self.connect(&origin.host, origin.port, origin.https).await
    }

    async fn connect(&self, host: &str, port: u16, tls: bool) -> io::Result<Conn> {
        let tcp = connect_tcp(host, port, &self.rt).await?;
        if !tls {
            return Ok(Conn::Plain(tcp));
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
        Ok(Conn::Tls(Box::new(tls)))
    }

    /// The most recently used live connection, preferring one whose socket
    /// this worker serves (its events then wake no other thread).
    fn take_idle(&self, route: usize) -> Option<Conn> {
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

    /// Return a connection to upstream `route` that ended at a clean
    /// message boundary.
    pub(crate) fn checkin(&self, route: usize, conn: Conn) {
        if self.max_idle == 0 {
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

/// Resolve (a name on the DNS threads, an IP literal here) and connect,
/// trying each address in turn; TCP_NODELAY set.
async fn connect_tcp(host: &str, port: u16, rt: &rt::Handle) -> io::Result<Stream> {
    let addrs = match host.parse::<std::net::IpAddr>() {
        Ok(ip) => vec![std::net::SocketAddr::new(ip, port)],
        Err(_) => rt::dns::resolve(host, port).await?,
    };
    let mut last = io::Error::new(
        io::ErrorKind::NotFound,
        format!("{host} resolved to no address"),
    );
    for addr in addrs {
        match Stream::connect(addr, rt).await {
            Ok(tcp) => {
                tcp.set_nodelay(true)?;
                return Ok(tcp);
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}
