//! A complete single-upstream MCP proxy on blocking `std::net`, with no async
//! runtime: the proof that [`sluice_core::exchange::Exchange`] is not tied to
//! the `sluice` binary's driver in `runtime/` (async tasks on an executor of
//! its own: epoll and async-task worker threads).
//!
//! ```text
//! cargo run -p sluice-core --example blocking_proxy -- \
//!     --listen 127.0.0.1:9000 --upstream 127.0.0.1:3000 --path /mcp
//! ```
//!
//! Requests for `--path` (and below it, and `/.well-known/*`) go to the
//! upstream at the same path; `Host` and `Origin` must be local names (the
//! DNS-rebinding defence of `HostGuard::local_default`).
//!
//! `--upstream builtin` answers from a tiny MCP server in this process
//! instead, over the typed seam of [`sluice_core::upstream`]: the exchange
//! hands it a parsed [`Request`] and gets [`AnswerPart`]s back, which it
//! frames for the client exactly as it frames an HTTP upstream's answer.
//! That is how the `sluice` binary joins its legacy bridge to the exchange,
//! and it needs no thread and no async here.
//!
//! # Waiting on two sockets and a clock without async
//!
//! An exchange reacts to whichever comes first: client bytes, upstream bytes
//! or its deadline. A blocking `read` waits on one socket only, so every
//! socket gets a *reader thread* that only reads and sends what it read (or
//! how the socket ended) into one channel per client connection. The
//! connection's own thread is the only one that touches the `Exchange`: it
//! waits on that channel with `recv_timeout(poll_timeout() - now)`, feeds the
//! event (or calls `handle_timeout`), drains every output in order and
//! performs it with plain blocking writes on a clone of the socket.
//!
//! Why not `set_read_timeout` polling of both sockets in turn: each SSE event
//! could wait up to one polling interval behind a read on the other socket,
//! and an idle stream would wake the thread for nothing. The channel wakes
//! the driver the moment either side has bytes, and the exchange's deadline
//! maps exactly onto `recv_timeout`. The price is threads (three per client
//! connection while a request is in flight), acceptable for a demonstration
//! and what the `sluice` binary avoids: there a connection is one task, and
//! one epoll per worker thread waits on the sockets of all its tasks.
//!
//! Upstream events carry the id of the connection they came from, so a
//! reader thread that outlives its connection (released, retried, dropped)
//! is never mistaken for the current one. Each client connection keeps the
//! upstream connection the exchange releases as reusable for its next
//! request, and peeks at it before reusing it; if it dies anyway before
//! answering, the exchange decides whether the request may go again on a
//! fresh one (`Connect { fresh: true }`).
//!
//! Limits of the demonstration: plain HTTP upstreams (or the built-in one),
//! one upstream, no hooks, and `Close::Abort` is a `shutdown` (a FIN, not a reset: `std` has
//! no stable `SO_LINGER`): an HTTP/1.1 client still sees a chunked body
//! without its last chunk as cut, but an HTTP/1.0 client, whose body ends
//! with the connection, cannot tell. `core/examples/tokio_proxy.rs` resets.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::thread;
use std::time::Instant;

use bytes::Bytes;
use sluice_core::exchange::{
    ClientInfo, Close, Exchange, ExchangeConfig, ExchangeLimits, HookFilter, HookVerdict, Output,
    Timeouts, UpstreamEnd,
};
use sluice_core::guard::HostGuard;
use sluice_core::jsonrpc::{self, Classified, Kind};
use sluice_core::route::{Route, Router};
use sluice_core::upstream::{AnswerHead, AnswerPart, Request};

/// Size of one read from either side.
const READ_CHUNK: usize = 16 * 1024;

const USAGE: &str =
    "usage: blocking_proxy --listen ADDR:PORT --upstream HOST:PORT|builtin [--path /mcp]";

/// The `--upstream` that selects the in-process message upstream.
pub const BUILTIN: &str = "builtin";

/// Command-line options.
#[derive(Debug, Clone)]
pub struct Options {
    /// Address to listen on (port 0 picks a free one).
    pub listen: String,
    /// The upstream MCP server, `host:port`, plain HTTP; or [`BUILTIN`].
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
        // This example runs no hooks, so nothing is ever parsed for them.
        hooks: HookFilter::none(),
        timeouts: Timeouts::recommended(),
        forwarded_headers: true,
    }
}

/// Bind the listener and serve on a background thread; returns the bound
/// address.
pub fn spawn(options: &Options) -> io::Result<SocketAddr> {
    let (listener, config, upstream) = setup(options)?;
    let addr = listener.local_addr()?;
    thread::spawn(move || serve(listener, config, upstream));
    Ok(addr)
}

/// Where requests go: an HTTP upstream's address, or (`None`) the built-in
/// message upstream.
type UpstreamAddr = Option<SocketAddr>;

fn setup(options: &Options) -> io::Result<(TcpListener, Arc<ExchangeConfig>, UpstreamAddr)> {
    let upstream =
        if options.upstream == BUILTIN {
            None
        } else {
            let addr = options.upstream.to_socket_addrs()?.next();
            Some(addr.ok_or_else(|| {
                io::Error::other(format!("{} resolves to nothing", options.upstream))
            })?)
        };
    let listener = TcpListener::bind(&options.listen)?;
    let listen_host = listener.local_addr()?.ip().to_string();
    let config = exchange_config(&options.upstream, &options.path, &listen_host);
    Ok((listener, Arc::new(config), upstream))
}

/// Accept connections forever, one thread each.
pub fn serve(listener: TcpListener, config: Arc<ExchangeConfig>, upstream: UpstreamAddr) {
    for client in listener.incoming() {
        let client = match client {
            Ok(c) => c,
            Err(e) => {
                eprintln!("blocking_proxy: accept: {e}");
                continue;
            }
        };
        let config = config.clone();
        thread::spawn(move || {
            if let Err(e) = serve_connection(client, config, upstream) {
                eprintln!("blocking_proxy: connection: {e}");
            }
        });
    }
}

/// What a reader thread saw.
enum Event {
    Client(Result<Bytes, UpstreamEnd>),
    Upstream {
        conn: u64,
        read: Result<Bytes, UpstreamEnd>,
    },
}

/// Read `stream` until it ends, sending each read through `tx`. With
/// `credits`, each read waits for a credit and reads at most that many
/// bytes: the driver grants one only while the exchange has room
/// (`Exchange::client_read_budget`), so a client that floods is held back by
/// its socket, not buffered here.
fn spawn_reader(
    mut stream: TcpStream,
    tx: Sender<Event>,
    credits: Option<Receiver<usize>>,
    wrap: impl Fn(Result<Bytes, UpstreamEnd>) -> Event + Send + 'static,
) {
    thread::spawn(move || {
        let mut buf = vec![0u8; READ_CHUNK];
        loop {
            let max = match &credits {
                Some(credits) => match credits.recv() {
                    Ok(max) => max.clamp(1, READ_CHUNK),
                    Err(_) => return,
                },
                None => READ_CHUNK,
            };
            let read = match stream.read(&mut buf[..max]) {
                Ok(0) => Err(UpstreamEnd::Eof),
                Ok(n) => Ok(Bytes::copy_from_slice(&buf[..n])),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => Err(UpstreamEnd::Error),
            };
            let last = read.is_err();
            // A closed channel means the connection's driver is gone.
            if tx.send(wrap(read)).is_err() || last {
                return;
            }
        }
    });
}

/// An upstream connection; dropping it closes the socket, which also ends
/// its reader thread.
struct Upstream {
    id: u64,
    stream: TcpStream,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}

/// One client connection and what it holds between exchanges.
struct Connection {
    client: TcpStream,
    events: Receiver<Event>,
    /// Lets the client's reader read once more (at most this many bytes).
    credit: SyncSender<usize>,
    /// A credit is out and its read not yet handled.
    granted: bool,
    tx: Sender<Event>,
    upstream_addr: UpstreamAddr,
    /// The connection the current exchange uses.
    current: Option<Upstream>,
    /// A released, reusable connection for the next request.
    idle: Option<Upstream>,
    next_id: u64,
}

fn serve_connection(
    client: TcpStream,
    config: Arc<ExchangeConfig>,
    upstream_addr: UpstreamAddr,
) -> io::Result<()> {
    client.set_nodelay(true)?;
    let info = ClientInfo {
        peer_ip: client.peer_addr()?.ip().to_string(),
        https: false,
    };
    let (tx, events) = mpsc::channel();
    let (credit, credits) = mpsc::sync_channel(1);
    spawn_reader(
        client.try_clone()?,
        tx.clone(),
        Some(credits),
        Event::Client,
    );
    let mut conn = Connection {
        client,
        events,
        credit,
        granted: false,
        tx,
        upstream_addr,
        current: None,
        idle: None,
        next_id: 0,
    };
    let mut carry = Vec::new();
    loop {
        let now = Instant::now();
        let mut exchange = Exchange::new(config.clone(), info.clone(), now);
        if !carry.is_empty() {
            // Pipelined bytes read during the previous exchange.
            exchange.feed_client(&carry, now);
        }
        match conn.run(&mut exchange) {
            Close::KeepAlive => carry = exchange.take_leftover(),
            Close::Graceful => {
                let _ = conn.client.shutdown(Shutdown::Write);
                return Ok(());
            }
            Close::Abort => {
                let _ = conn.client.shutdown(Shutdown::Both);
                return Ok(());
            }
        }
    }
}

impl Connection {
    /// Drive one exchange to its end.
    fn run(&mut self, exchange: &mut Exchange) -> Close {
        // A failed client write makes the rest moot; the end becomes an abort.
        let mut client_ok = true;
        loop {
            while let Some(output) = exchange.poll_output() {
                match output {
                    Output::Connect { route: _, fresh } => self.connect(exchange, fresh),
                    Output::ToUpstream(bytes) => self.write_upstream(exchange, &bytes),
                    // Only the built-in upstream is a message upstream; it
                    // answers at once, part by part.
                    Output::Dispatch(request) => {
                        for part in builtin_answer(&request) {
                            exchange.feed_answer(part, Instant::now());
                        }
                    }
                    // Only after `probe_transport`, which this driver never
                    // calls: its routes' transports are known.
                    Output::ProbeTransport(_) => {}
                    Output::ToClient(bytes) => {
                        if client_ok && self.client.write_all(&bytes).is_err() {
                            client_ok = false;
                            exchange.client_closed(Instant::now());
                        }
                    }
                    Output::ReleaseUpstream { reusable } => {
                        let conn = self.current.take();
                        if reusable {
                            self.idle = conn;
                        }
                    }
                    Output::Finished { close } => {
                        return if client_ok { close } else { Close::Abort };
                    }
                    // Unreachable with `HookFilter::none()`; a runtime with
                    // hooks would run the chain here.
                    Output::RunHook(_) => exchange.hook_done(HookVerdict::Continue, Instant::now()),
                    // Only a hook stops a server request: never asked here.
                    Output::AnswerServer { .. } => {}
                    // No token judge here: a protected route fails closed.
                    Output::Authenticate(_) => exchange.auth_done(
                        sluice_core::auth::Verdict::Unavailable(sluice_core::auth::Outage::NoKeys),
                        Instant::now(),
                    ),
                }
            }
            let budget = exchange.client_read_budget();
            if !self.granted && budget > 0 && self.credit.send(budget).is_ok() {
                self.granted = true;
            }
            let event = match exchange.poll_timeout() {
                Some(at) => {
                    let wait = at.saturating_duration_since(Instant::now());
                    match self.events.recv_timeout(wait) {
                        Ok(event) => event,
                        Err(RecvTimeoutError::Timeout) => {
                            exchange.handle_timeout(Instant::now());
                            continue;
                        }
                        // Unreachable while `self.tx` lives; treat as gone.
                        Err(RecvTimeoutError::Disconnected) => Event::Client(Err(UpstreamEnd::Eof)),
                    }
                }
                None => self
                    .events
                    .recv()
                    .unwrap_or(Event::Client(Err(UpstreamEnd::Eof))),
            };
            self.handle(exchange, event);
        }
    }

    fn handle(&mut self, exchange: &mut Exchange, event: Event) {
        let now = Instant::now();
        match event {
            Event::Client(Ok(bytes)) => {
                self.granted = false;
                exchange.feed_client(&bytes, now);
            }
            Event::Client(Err(_)) => exchange.client_closed(now),
            Event::Upstream { conn, read } => {
                if self.current.as_ref().is_some_and(|u| u.id == conn) {
                    match read {
                        Ok(bytes) => exchange.feed_upstream(bytes, now),
                        Err(end) => {
                            self.current = None;
                            exchange.upstream_closed(end, now);
                        }
                    }
                } else if self.idle.as_ref().is_some_and(|u| u.id == conn) {
                    // An idle connection that speaks or ends is not reusable.
                    self.idle = None;
                }
                // Otherwise: a reader of a connection already dropped.
            }
        }
    }

    fn connect(&mut self, exchange: &mut Exchange, fresh: bool) {
        let now = Instant::now();
        let Some(upstream_addr) = self.upstream_addr else {
            exchange.message_upstream_connected(now);
            return;
        };
        if !fresh && let Some(conn) = self.idle.take().filter(|c| still_open(&c.stream)) {
            self.current = Some(conn);
            exchange.upstream_connected(true, now);
            return;
        }
        let deadline = exchange.poll_timeout();
        let result = match deadline {
            Some(at) => match at.checked_duration_since(now).filter(|d| !d.is_zero()) {
                Some(budget) => TcpStream::connect_timeout(&upstream_addr, budget),
                None => Err(io::ErrorKind::TimedOut.into()),
            },
            None => TcpStream::connect(upstream_addr),
        };
        let opened = result.and_then(|stream| {
            stream.set_nodelay(true)?;
            let reader = stream.try_clone()?;
            Ok((stream, reader))
        });
        match opened {
            Ok((stream, reader)) => {
                let id = self.next_id;
                self.next_id += 1;
                spawn_reader(reader, self.tx.clone(), None, move |read| Event::Upstream {
                    conn: id,
                    read,
                });
                self.current = Some(Upstream { id, stream });
                exchange.upstream_connected(false, Instant::now());
            }
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                // The connect budget was the exchange's deadline: it has come.
                let now = Instant::now();
                exchange.handle_timeout(deadline.map_or(now, |d| d.max(now)));
            }
            Err(_) => exchange.upstream_closed(UpstreamEnd::ConnectFailed, Instant::now()),
        }
    }

    fn write_upstream(&mut self, exchange: &mut Exchange, bytes: &[u8]) {
        let written = match self.current.as_mut() {
            Some(up) => up.stream.write_all(bytes).is_ok(),
            None => false,
        };
        if !written {
            // `write_all` stopped at an error, so the request did not go out
            // whole and the upstream cannot have acted on it: on a pooled
            // connection the exchange sends it again on a fresh one, any
            // method; on a fresh connection the client gets a 502.
            self.current = None;
            exchange.upstream_closed(UpstreamEnd::WriteFailed, Instant::now());
        }
    }
}

/// Whether an idle pooled connection is still open and silent. The upstream
/// may have closed it while it was idle, and the reader thread's report of
/// that may still wait in the channel behind the client's request; a request
/// written into it would seem to go out, and a POST could not be sent again.
/// Its reader thread sits in a blocking `read` meanwhile, which a
/// non-blocking flag set for a moment does not disturb.
fn still_open(stream: &TcpStream) -> bool {
    if stream.set_nonblocking(true).is_err() {
        return false;
    }
    // EOF, an error or bytes nobody asked for: not reusable.
    let silent =
        matches!(stream.peek(&mut [0; 1]), Err(e) if e.kind() == io::ErrorKind::WouldBlock);
    silent && stream.set_nonblocking(false).is_ok()
}

/// The built-in MCP server: `initialize`, `ping` and an empty `tools/list`.
/// A request is answered as an SSE stream (a log notification, then the
/// result) when the client takes SSE, else as one JSON body; a
/// notification gets `202`; anything but POST gets `405`.
fn builtin_answer(req: &Request) -> Vec<AnswerPart> {
    const SESSION: &str = "builtin-session";
    if req.method != "POST" {
        let head = AnswerHead {
            allow: Some("POST"),
            ..AnswerHead::status(405)
        };
        return vec![AnswerPart::empty(head)];
    }
    let head = AnswerHead::status(200).with_session(Some(SESSION));
    let message = match jsonrpc::classify(&req.body, &jsonrpc::Limits::default()) {
        Ok(Classified::Single(m)) => m,
        _ => {
            let error = jsonrpc::error_message(None, -32600, "one message, please", None);
            return vec![AnswerPart::json(AnswerHead::status(400), error)];
        }
    };
    let (Kind::Request, Some(id)) = (message.kind, message.id) else {
        return vec![AnswerPart::empty(
            AnswerHead::status(202).with_session(Some(SESSION)),
        )];
    };
    let result: &[u8] = match message.method.as_deref() {
        Some("initialize") => {
            br#"{"protocolVersion":"2025-06-18","capabilities":{"tools":{}},"serverInfo":{"name":"builtin","version":"1"}}"#
        }
        Some("tools/list") => br#"{"tools":[]}"#,
        Some("ping") => b"{}",
        _ => {
            let error = jsonrpc::error_message(Some(id), -32601, "method not found", None);
            return vec![AnswerPart::json(head, error)];
        }
    };
    let answer = jsonrpc::result_message(id, result);
    if !req.accepts().sse {
        return vec![AnswerPart::json(head, answer)];
    }
    let log = br#"{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"answered by the built-in upstream"}}"#;
    vec![
        AnswerPart::Stream(head),
        AnswerPart::Event(Bytes::from_static(log)),
        AnswerPart::Event(Bytes::from(answer)),
        AnswerPart::End,
    ]
}

fn main() {
    let options = match parse_args(std::env::args().skip(1)) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let (listener, config, upstream) = match setup(&options) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("blocking_proxy: {e}");
            std::process::exit(1);
        }
    };
    if let Ok(addr) = listener.local_addr() {
        let upstream = match upstream {
            Some(_) => format!("http://{}{}", options.upstream, options.path),
            None => "the built-in upstream".to_owned(),
        };
        eprintln!(
            "blocking_proxy: http://{addr}{} -> {upstream}",
            options.path
        );
    }
    serve(listener, config, upstream);
}
