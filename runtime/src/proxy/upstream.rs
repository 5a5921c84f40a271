//! Upstream connections: plain TCP or TLS, opened with TCP_NODELAY, and a
//! small pool of idle keep-alive connections per route.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use async_io::Async;
use futures_lite::{AsyncRead, AsyncWrite};
use futures_rustls::TlsConnector;
use futures_rustls::rustls::pki_types::ServerName;
use std::net::TcpStream;

/// Where one route's upstream lives.
#[derive(Debug, Clone)]
pub struct UpstreamTarget {
    /// Host name or IP literal (no brackets), for DNS and SNI.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Speak TLS.
    pub tls: bool,
}

/// An open upstream connection.
pub enum UpConn {
    /// Plain TCP.
    Plain(Async<TcpStream>),
    /// TLS over TCP.
    Tls(Box<futures_rustls::client::TlsStream<Async<TcpStream>>>),
}

impl UpConn {
    /// A cheap liveness check for an idle pooled connection: a plain socket
    /// that is readable (EOF or stray bytes) is not reusable.
    fn looks_alive(&self) -> bool {
        let tcp = match self {
            UpConn::Plain(s) => s,
            UpConn::Tls(s) => s.get_ref().0,
        };
        let mut probe = [0u8; 1];
        // A non-blocking peek: WouldBlock means idle and open.
        matches!(tcp_peek(tcp, &mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }
}

fn tcp_peek(tcp: &Async<TcpStream>, buf: &mut [u8]) -> io::Result<usize> {
    // The socket is non-blocking; peek never waits.
    tcp.get_ref().peek(buf)
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
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpConn::Plain(s) => Pin::new(s).poll_flush(cx),
            UpConn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpConn::Plain(s) => Pin::new(s).poll_close(cx),
            UpConn::Tls(s) => Pin::new(s.as_mut()).poll_close(cx),
        }
    }
}

/// Opens upstream connections and keeps idle ones for reuse.
pub struct Upstreams {
    targets: Vec<UpstreamTarget>,
    tls: Option<TlsConnector>,
    idle: Mutex<HashMap<usize, Vec<(UpConn, Instant)>>>,
    max_idle: usize,
    idle_timeout: Duration,
}

impl Upstreams {
    /// Upstreams for `targets` (indexed like the router's routes).
    pub fn new(
        targets: Vec<UpstreamTarget>,
        tls: Option<Arc<futures_rustls::rustls::ClientConfig>>,
        max_idle: usize,
        idle_timeout: Duration,
    ) -> Self {
        Upstreams {
            targets,
            tls: tls.map(TlsConnector::from),
            idle: Mutex::new(HashMap::new()),
            max_idle,
            idle_timeout,
        }
    }

    /// The target of route `route`.
    pub fn target(&self, route: usize) -> Option<&UpstreamTarget> {
        self.targets.get(route)
    }

    /// A connection to route `route`'s upstream: a pooled one unless `fresh`,
    /// else a new one. Returns whether it was reused.
    pub async fn checkout(&self, route: usize, fresh: bool) -> io::Result<(UpConn, bool)> {
        if !fresh && let Some(conn) = self.take_idle(route) {
            return Ok((conn, true));
        }
        let target = self
            .targets
            .get(route)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such route"))?;
        let tcp = connect_tcp(&target.host, target.port).await?;
        if !target.tls {
            return Ok((UpConn::Plain(tcp), false));
        }
        let connector = self
            .tls
            .as_ref()
            .ok_or_else(|| io::Error::other("TLS is not configured"))?;
        let name = ServerName::try_from(target.host.clone())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let tls = connector.connect(name, tcp).await?;
        Ok((UpConn::Tls(Box::new(tls)), false))
    }

    fn take_idle(&self, route: usize) -> Option<UpConn> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let list = idle.get_mut(&route)?;
        let now = Instant::now();
        while let Some((conn, since)) = list.pop() {
            if now.duration_since(since) < self.idle_timeout && conn.looks_alive() {
                return Some(conn);
            }
        }
        None
    }

    /// Return a connection that ended at a clean message boundary.
    pub fn checkin(&self, route: usize, conn: UpConn) {
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

/// Resolve and connect, trying each address in turn; TCP_NODELAY set.
pub async fn connect_tcp(host: &str, port: u16) -> io::Result<Async<TcpStream>> {
    let addrs = match host.parse::<std::net::IpAddr>() {
        Ok(ip) => vec![std::net::SocketAddr::new(ip, port)],
        Err(_) => smol::net::resolve((host, port)).await?,
    };
    let mut last = io::Error::new(
        io::ErrorKind::NotFound,
        format!("{host} resolved to no address"),
    );
    for addr in addrs {
        match Async::<TcpStream>::connect(addr).await {
            Ok(tcp) => {
                tcp.get_ref().set_nodelay(true)?;
                return Ok(tcp);
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}
