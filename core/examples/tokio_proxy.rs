//! A complete single-upstream MCP proxy on tokio: one task per client
//! connection drives one [`Exchange`] at a time. Copy it to start a driver
//! of your own.
//!
//! ```text
//! cargo run -p sluice-core --example tokio_proxy -- \
//!     --listen 127.0.0.1:9000 --upstream 127.0.0.1:3000 --path /mcp
//! ```
//!
//! Requests for `--path` (and below it, and `/.well-known/*`) go to the
//! upstream at the same path; `Host` and `Origin` must be local names (the
//! DNS-rebinding defence of `HostGuard::local_default`).
//!
//! The loop is the crate's: feed one event, drain every output in order,
//! then `select!` over a client read (only while `client_read_budget()` is
//! above 0), an upstream read and `sleep_until(poll_timeout())`. Each client
//! connection keeps the upstream connection the exchange releases as
//! reusable for its next request, and checks it before reusing it.
//!
//! Limits of the example: plain HTTP upstreams only, one upstream, no hooks,
//! and a client that stops reading stalls its own connection (writes have no
//! timeout).

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_core::bytes::Bytes;
use sluice_core::exchange::{
    ClientInfo, Close, Exchange, ExchangeConfig, ExchangeLimits, HookFilter, HookVerdict, Output,
    Timeouts, UpstreamEnd,
};
use sluice_core::guard::HostGuard;
use sluice_core::route::{Route, Router};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::{TcpListener, TcpStream};

/// Size of one read from either side.
const READ_CHUNK: usize = 16 * 1024;
/// How long a graceful close keeps reading what the client still sends.
const LINGER: Duration = Duration::from_secs(2);

const USAGE: &str = "usage: tokio_proxy --listen ADDR:PORT --upstream HOST:PORT [--path /mcp]";

/// Command-line options.
#[derive(Debug, Clone)]
pub struct Options {
    /// Address to listen on (port 0 picks a free one).
    pub listen: String,
    /// The upstream MCP server, `host:port`, plain HTTP.
    pub upstream: String,
    /// The MCP endpoint path, the same on both sides.
    pub path: String,
}

/// Read `--listen`, `--upstream` and `--path`.
pub fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Options, String> {
    let mut listen = None;
    let mut upstream = None;
    let mut path = "/mcp".to_owned();
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--listen" => listen = Some(value()?),
            "--upstream" => upstream = Some(value()?),
            "--path" => path = value()?,
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    if !path.starts_with('/') {
        return Err(format!("--path must start with '/', got {path:?}"));
    }
    Ok(Options {
        listen: listen.ok_or(USAGE)?,
        upstream: upstream.ok_or(USAGE)?,
        path,
    })
}

/// The exchange configuration for one route `path` → `upstream`.
pub fn exchange_config(upstream: &str, path: &str, listen_host: &str) -> ExchangeConfig {
    ExchangeConfig {
        router: Router::new(vec![Route {
            prefix: path.to_owned(),
            upstream_path: path.to_owned(),
            upstream_query: None,
            well_known: true,
            upstream_host: upstream.to_owned(),
        }]),
        guard: HostGuard::local_default(listen_host),
        limits: ExchangeLimits::default(),
        timeouts: Timeouts::recommended(),
        forwarded_headers: true,
        // This example runs no hooks, so nothing is ever parsed for them.
        hooks: HookFilter::none(),
    }
}

/// Bind (so a bad address fails at once), resolve the upstream once, and
/// build the config.
fn setup(
    options: &Options,
) -> io::Result<(std::net::TcpListener, Arc<ExchangeConfig>, SocketAddr)> {
    let upstream = options
        .upstream
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::other(format!("{} resolves to nothing", options.upstream)))?;
    let listener = std::net::TcpListener::bind(&options.listen)?;
    listener.set_nonblocking(true)?;
    let listen_host = listener.local_addr()?.ip().to_string();
    let config = exchange_config(&options.upstream, &options.path, &listen_host);
    Ok((listener, Arc::new(config), upstream))
}

/// Bind the listener and serve on a runtime of its own on a background
/// thread; returns the bound address.
pub fn spawn(options: &Options) -> io::Result<SocketAddr> {
    let (listener, config, upstream) = setup(options)?;
    let addr = listener.local_addr()?;
    let runtime = tokio::runtime::Runtime::new()?;
    std::thread::spawn(move || {
        runtime.block_on(async move {
            match TcpListener::from_std(listener) {
                Ok(listener) => serve(listener, config, upstream).await,
                Err(e) => eprintln!("tokio_proxy: {e}"),
            }
        })
    });
    Ok(addr)
}

/// Accept connections forever, one task each.
pub async fn serve(listener: TcpListener, config: Arc<ExchangeConfig>, upstream: SocketAddr) {
    loop {
        match listener.accept().await {
            Ok((client, peer)) => {
                tokio::spawn(serve_connection(client, peer, config.clone(), upstream));
            }
            Err(e) => eprintln!("tokio_proxy: accept: {e}"),
        }
    }
}

/// One client connection: its exchanges one after another, and the upstream
/// connection kept between them.
async fn serve_connection(
    client: TcpStream,
    peer: SocketAddr,
    config: Arc<ExchangeConfig>,
    upstream: SocketAddr,
) {
    let _ = client.set_nodelay(true);
    let info = ClientInfo {
        peer_ip: peer.ip().to_string(),
        https: false,
    };
    let mut conn = Connection {
        // Small writes (chunk framing) gather here; flushed before each wait.
        client: BufWriter::new(client),
        upstream_addr: upstream,
        upstream: None,
        idle: None,
        client_buf: vec![0; READ_CHUNK],
        upstream_buf: vec![0; READ_CHUNK],
    };
    let mut carry = Vec::new();
    loop {
        let now = Instant::now();
        let mut exchange = Exchange::new(config.clone(), info.clone(), now);
        if !carry.is_empty() {
            // Pipelined bytes read during the previous exchange.
            exchange.feed_client(&carry, now);
        }
        match conn.run(&mut exchange).await {
            Close::KeepAlive => carry = exchange.take_leftover(),
            Close::Graceful => {
                // FIN after the answer, then read until the client's FIN for
                // a moment: closing with unread input would send a reset that
                // can destroy the answer before the client reads it.
                if conn.client.shutdown().await.is_ok() {
                    let (client, buf) = (&mut conn.client, &mut conn.client_buf);
                    let drain = async { while client.read(buf).await.is_ok_and(|n| n > 0) {} };
                    let _ = tokio::time::timeout(LINGER, drain).await;
                }
                return;
            }
            Close::Abort => {
                // A reset, so that no client takes a cut answer for a whole one.
                let _ = conn.client.get_ref().set_zero_linger();
                return;
            }
        }
    }
}

struct Connection {
    client: BufWriter<TcpStream>,
    upstream_addr: SocketAddr,
    /// The upstream connection of the running exchange.
    upstream: Option<TcpStream>,
    /// A connection released as reusable, for the next request.
    idle: Option<TcpStream>,
    client_buf: Vec<u8>,
    upstream_buf: Vec<u8>,
}

impl Connection {
    /// Drive one exchange to its end.
    async fn run(&mut self, exchange: &mut Exchange) -> Close {
        // A failed client write makes the rest moot; the end becomes an abort.
        let mut client_ok = true;
        loop {
            while let Some(output) = exchange.poll_output() {
                match output {
                    Output::ToClient(bytes) => {
                        if client_ok && self.client.write_all(&bytes).await.is_err() {
                            client_ok = false;
                            exchange.client_closed(Instant::now());
                        }
                    }
                    Output::Connect { route: _, fresh } => {
                        // A `100 Continue` must not wait for the connect.
                        if client_ok && self.client.flush().await.is_err() {
                            client_ok = false;
                            exchange.client_closed(Instant::now());
                            continue;
                        }
                        self.connect(exchange, fresh).await;
                    }
                    Output::ToUpstream(bytes) => self.write_upstream(exchange, &bytes).await,
                    // This driver judges no tokens: a protected route
                    // fails closed.
                    Output::Authenticate(_) => exchange.auth_done(
                        sluice_core::auth::Verdict::Unavailable(sluice_core::auth::Outage::NoKeys),
                        Instant::now(),
                    ),
                    // Only after `message_upstream_connected`, which this
                    // driver never calls: its upstream is HTTP (see
                    // blocking_proxy.rs for a message upstream).
                    Output::Dispatch(_) => {
                        exchange.upstream_closed(UpstreamEnd::ConnectFailed, Instant::now())
                    }
                    // Only after `probe_transport`, which this driver never
                    // calls: its upstream speaks Streamable HTTP.
                    Output::ProbeTransport(_) => {}
                    Output::ReleaseUpstream { reusable } => {
                        let conn = self.upstream.take();
                        if reusable {
                            self.idle = conn;
                        }
                    }
                    Output::Finished { close } => {
                        let flushed = client_ok && self.client.flush().await.is_ok();
                        return if flushed { close } else { Close::Abort };
                    }
                    // Unreachable with `HookFilter::none()`; a driver with
                    // hooks would run the chain here.
                    Output::RunHook(_) => exchange.hook_done(HookVerdict::Continue, Instant::now()),
                    // Only a hook stops a server request: never asked here.
                    Output::AnswerServer { .. } => {}
                }
            }
            if client_ok && self.client.flush().await.is_err() {
                client_ok = false;
                exchange.client_closed(Instant::now());
                continue;
            }
            // At 0 the client is not read: its bytes wait in the kernel.
            let budget = exchange.client_read_budget().min(READ_CHUNK);
            let client_buf = &mut self.client_buf[..budget];
            tokio::select! {
                read = self.client.read(client_buf), if budget > 0 => match read {
                    Ok(n) if n > 0 => exchange.feed_client(&self.client_buf[..n], Instant::now()),
                    _ => exchange.client_closed(Instant::now()),
                },
                read = read_upstream(self.upstream.as_mut(), &mut self.upstream_buf) => match read {
                    Ok(n) if n > 0 => {
                        let bytes = Bytes::copy_from_slice(&self.upstream_buf[..n]);
                        exchange.feed_upstream(bytes, Instant::now());
                    }
                    Ok(_) => self.upstream_closed(exchange, UpstreamEnd::Eof),
                    Err(_) => self.upstream_closed(exchange, UpstreamEnd::Error),
                },
                () = sleep_until(exchange.poll_timeout()) => {
                    exchange.handle_timeout(Instant::now());
                }
            }
        }
    }

    /// Take the idle connection if it is still good, else open one; while
    /// connecting, `poll_timeout()` is the connect deadline.
    async fn connect(&mut self, exchange: &mut Exchange, fresh: bool) {
        let pooled = self.idle.take().filter(|_| !fresh).and_then(still_open);
        if let Some(conn) = pooled {
            self.upstream = Some(conn);
            exchange.upstream_connected(true, Instant::now());
            return;
        }
        let attempt = TcpStream::connect(self.upstream_addr);
        let result = match exchange.poll_timeout() {
            Some(at) => tokio::time::timeout_at(at.into(), attempt).await,
            None => Ok(attempt.await),
        };
        match result {
            Ok(Ok(conn)) => {
                let _ = conn.set_nodelay(true);
                self.upstream = Some(conn);
                exchange.upstream_connected(false, Instant::now());
            }
            Ok(Err(_)) => exchange.upstream_closed(UpstreamEnd::ConnectFailed, Instant::now()),
            Err(_elapsed) => exchange.handle_timeout(Instant::now()),
        }
    }

    async fn write_upstream(&mut self, exchange: &mut Exchange, bytes: &[u8]) {
        let written = match self.upstream.as_mut() {
            Some(up) => up.write_all(bytes).await.is_ok(),
            None => false,
        };
        if !written {
            // The request did not go out whole, so the upstream cannot have
            // acted on it: on a pooled connection the exchange sends it
            // again on a fresh one; on a fresh one the client gets a 502.
            self.upstream_closed(exchange, UpstreamEnd::WriteFailed);
        }
    }

    fn upstream_closed(&mut self, exchange: &mut Exchange, end: UpstreamEnd) {
        self.upstream = None;
        exchange.upstream_closed(end, Instant::now());
    }
}

/// The next read of the upstream connection; never, without one.
async fn read_upstream(upstream: Option<&mut TcpStream>, buf: &mut [u8]) -> io::Result<usize> {
    match upstream {
        Some(up) => up.read(buf).await,
        None => std::future::pending().await,
    }
}

/// The exchange's deadline; never, without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// An idle connection, if the upstream has not closed it (nor sent bytes
/// nobody asked for) meanwhile. A request written into a closed connection
/// would seem to go out, and a POST could not be sent again. The reactor's
/// readiness may be older than the upstream's FIN, so this asks the kernel:
/// a non-blocking `peek` on the socket, taken out of the reactor for it.
fn still_open(conn: TcpStream) -> Option<TcpStream> {
    let conn = conn.into_std().ok()?;
    match conn.peek(&mut [0; 1]) {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => TcpStream::from_std(conn).ok(),
        _ => None,
    }
}

#[tokio::main]
async fn main() {
    let options = match parse_args(std::env::args().skip(1)) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let (listener, config, upstream) = match setup(&options).and_then(|(l, c, u)| {
        let l = TcpListener::from_std(l)?;
        Ok((l, c, u))
    }) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("tokio_proxy: {e}");
            std::process::exit(1);
        }
    };
    if let Ok(addr) = listener.local_addr() {
        eprintln!(
            "tokio_proxy: http://{addr}{} -> http://{}{}",
            options.path, options.upstream, options.path
        );
    }
    serve(listener, config, upstream).await;
}
