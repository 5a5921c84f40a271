//! The legacy HTTP+SSE bridge as a virtual upstream.
//!
//! For a route whose upstream speaks the 2024-11-05 transport, the proxy's
//! upstream table hands the exchange a `BridgePipe` instead of a socket
//! (its `UpConn::Bridge`): an in-memory duplex pipe whose far end is served
//! here. The exchange writes its normalized HTTP/1.1 request into the pipe
//! and reads a Streamable HTTP response back, so the injection rules, the
//! access log and the hooks apply to bridged traffic as to any other. Each
//! pipe carries one exchange and is never pooled.
//!
//! Every protocol decision is `sluice_core::legacy`'s; this module only
//! moves bytes: it reads the request from the pipe, asks the core which
//! session serves it, runs one task per backend session (the SSE stream, the
//! POSTs, the client streams attached to it, the timers) and writes what the
//! core says to write. It reaches the backend through the dialer
//! (`dial`) and its pool, and knows nothing of the proxy.

mod pipe;
mod probe;
mod session;

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_lite::{AsyncReadExt, AsyncWriteExt, future};
use sluice_core::legacy::{self, BridgeConfig, Mode, PostAnswerReader, StreamId};

use crate::dial::{Conn, Dialer};
pub(crate) use pipe::BridgePipe;

/// How an upstream is reached.
#[derive(Debug, Clone, Default)]
pub enum UpstreamTransport {
    /// Streamable HTTP: connections pass through.
    #[default]
    Streamable,
    /// HTTP+SSE, bridged.
    Sse(Bridging),
    /// Probe once, then one of the two.
    Auto(Bridging),
}

/// Settings of the bridge of one route.
#[derive(Debug, Clone)]
pub struct Bridging {
    /// Session or per-request.
    pub mode: Mode,
    /// The core's configuration (limits, timeouts, the backend's scheme).
    pub config: BridgeConfig,
    /// `Host` value of the upstream, for the `auto` probe.
    pub authority: String,
    /// The upstream URL's path and query, for the `auto` probe.
    pub target: String,
    /// How long the `auto` probe may take.
    pub probe_timeout: Duration,
    /// Connecting to the backend (TCP and TLS).
    pub connect_timeout: Duration,
    /// Most bridges (backend SSE sessions) running at once on the route;
    /// past it a new client session (or, per-request, a request) gets 503.
    pub max_sessions: usize,
}

impl Bridging {
    /// Default bridge settings for an upstream at `authority` + `target`.
    pub fn new(mode: Mode, https: bool, authority: &str, target: &str) -> Self {
        Bridging {
            mode,
            config: BridgeConfig {
                https,
                ..BridgeConfig::default()
            },
            authority: authority.to_owned(),
            target: target.to_owned(),
            probe_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            max_sessions: DEFAULT_MAX_SESSIONS,
        }
    }
}

/// Default of [`Bridging::max_sessions`].
pub(crate) const DEFAULT_MAX_SESSIONS: usize = 1024;

/// Size of each direction of a pipe.
const PIPE_BYTES: usize = 256 * 1024;
/// Size of one read.
const READ_CHUNK: usize = 16 * 1024;

static NEXT_STREAM: AtomicU64 = AtomicU64::new(1);

/// The bridge of one route: its settings and its live sessions.
pub(crate) struct RouteBridge {
    route: usize,
    settings: Bridging,
    config: Arc<BridgeConfig>,
    dialer: Arc<Dialer>,
    live: Mutex<Live>,
}

/// The bridges of a route that are running, each by its inbox.
#[derive(Default)]
struct Live {
    sessions: HashMap<String, smol::channel::Sender<session::Msg>>,
    per_request: HashMap<StreamId, smol::channel::Sender<session::Msg>>,
    /// Shutting down: no new bridge starts.
    closing: bool,
}

/// Which running bridge a session task is, to forget it when it ends.
pub(super) enum Key {
    /// Session mode, by its `Mcp-Session-Id`.
    Session(String),
    /// Per-request mode, by its client stream.
    PerRequest(StreamId),
}

impl RouteBridge {
    /// The bridge of route `route`, opening backend connections with `dialer`.
    pub(crate) fn new(route: usize, settings: Bridging, dialer: Arc<Dialer>) -> Arc<Self> {
        Arc::new(RouteBridge {
            route,
            config: Arc::new(settings.config.clone()),
            settings,
            dialer,
            live: Mutex::new(Live::default()),
        })
    }

    /// A virtual connection for one exchange; its far end is served by a
    /// task of its own.
    pub(crate) fn open(self: &Arc<Self>) -> BridgePipe {
        let (to_bridge_r, to_bridge_w) = piper::pipe(PIPE_BYTES);
        let (to_exchange_r, to_exchange_w) = piper::pipe(PIPE_BYTES);
        let this = self.clone();
        smol::spawn(async move { this.serve(to_bridge_r, to_exchange_w).await }).detach();
        BridgePipe::new(to_exchange_r, to_bridge_w)
    }

    /// Running bridges of either mode, each holding a backend SSE stream
    /// (or about to open one).
    pub(crate) fn live_count(&self) -> usize {
        let live = self.lock();
        live.sessions.len() + live.per_request.len()
    }

    /// Shutting down: every running bridge closes its backend stream and
    /// answers its clients with an error; no new one starts. Returns how
    /// many were told to close; [`live_count`](Self::live_count) drops to
    /// zero as they finish.
    pub(crate) fn close_all(&self) -> usize {
        let mut live = self.lock();
        live.closing = true;
        let inboxes = live.sessions.values().chain(live.per_request.values());
        let mut n = 0;
        for tx in inboxes {
            // Unbounded: never full; closed means that task is already ending.
            if tx.try_send(session::Msg::Close).is_ok() {
                n += 1;
            }
        }
        n
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Live> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a new bridge, unless the route is at its limit or closing.
    fn register(
        &self,
        key: &Key,
        tx: &smol::channel::Sender<session::Msg>,
    ) -> Result<(), legacy::BridgeError> {
        let mut live = self.lock();
        if live.closing {
            return Err(legacy::BridgeError::ShuttingDown);
        }
        let limit = self.settings.max_sessions;
        if live.sessions.len() + live.per_request.len() >= limit {
            return Err(legacy::BridgeError::TooManySessions { limit });
        }
        match key {
            Key::Session(id) => live.sessions.insert(id.clone(), tx.clone()),
            Key::PerRequest(stream) => live.per_request.insert(*stream, tx.clone()),
        };
        Ok(())
    }

    /// A bridge ended.
    fn forget(&self, key: &Key) {
        let mut live = self.lock();
        match key {
            Key::Session(id) => live.sessions.remove(id),
            Key::PerRequest(stream) => live.per_request.remove(stream),
        };
    }

    /// Reads one request from the pipe and hands it to the session that
    /// serves it.
    async fn serve(self: Arc<Self>, mut from: piper::Reader, mut to: piper::Writer) {
        let stream: StreamId = NEXT_STREAM.fetch_add(1, Ordering::Relaxed);
        let limits = &self.config.limits;
        let mut reader = legacy::RequestReader::new();
        let mut buf = vec![0u8; READ_CHUNK];
        let req = loop {
            let n = match from.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            match reader.feed(&buf[..n], &limits.http, limits.max_body) {
                Ok(Some(req)) => break req,
                Ok(None) => {}
                Err(legacy::Refusal(bytes)) => {
                    let _ = to.write_all(&bytes).await;
                    return;
                }
            }
        };
        let now = std::time::Instant::now();
        match legacy::dispatch(&req, self.settings.mode, &limits.json) {
            legacy::Dispatch::Reply(bytes) => {
                let _ = to.write_all(&bytes).await;
            }
            legacy::Dispatch::NewSession => {
                let id = mint_session_id();
                let (tx, rx) = smol::channel::unbounded();
                let key = Key::Session(id.clone());
                if let Err(e) = self.register(&key, &tx) {
                    tracing::warn!(route = self.route, error = %e, "legacy session refused");
                    let _ = to
                        .write_all(&legacy::refuse_new_session(&req, &e, &limits.json))
                        .await;
                    return;
                }
                let bridge = legacy::Bridge::new(self.config.clone(), Mode::Session, Some(id), now);
                let this = self.clone();
                let tx2 = tx.clone();
                smol::spawn(async move { session::run(this, bridge, rx, tx2, key).await }).detach();
                let _ = tx
                    .send(session::Msg::Attach {
                        stream,
                        req,
                        writer: to,
                    })
                    .await;
                watch_until_gone(from, &tx, stream).await;
            }
            legacy::Dispatch::Session(id) => {
                let tx = self.lock().sessions.get(&id).cloned();
                let Some(tx) = tx else {
                    let _ = to
                        .write_all(&legacy::unknown_session(&req, &limits.json))
                        .await;
                    return;
                };
                if let Err(e) = tx
                    .send(session::Msg::Attach {
                        stream,
                        req,
                        writer: to,
                    })
                    .await
                {
                    // The session ended between the lookup and now.
                    if let session::Msg::Attach {
                        mut writer, req, ..
                    } = e.into_inner()
                    {
                        let bytes = legacy::unknown_session(&req, &limits.json);
                        let _ = writer.write_all(&bytes).await;
                    }
                    return;
                }
                watch_until_gone(from, &tx, stream).await;
            }
            legacy::Dispatch::PerRequest => {
                let (tx, rx) = smol::channel::unbounded();
                let key = Key::PerRequest(stream);
                if let Err(e) = self.register(&key, &tx) {
                    tracing::warn!(route = self.route, error = %e, "legacy request refused");
                    let _ = to
                        .write_all(&legacy::refuse_new_session(&req, &e, &limits.json))
                        .await;
                    return;
                }
                let bridge = legacy::Bridge::new(self.config.clone(), Mode::PerRequest, None, now);
                let _ = tx
                    .send(session::Msg::Attach {
                        stream,
                        req,
                        writer: to,
                    })
                    .await;
                let watch = async {
                    watch_until_gone(from, &tx, stream).await;
                    future::pending::<()>().await
                };
                future::or(
                    session::run(self.clone(), bridge, rx, tx.clone(), key),
                    watch,
                )
                .await;
            }
        }
    }
}

/// Waits until the exchange drops its end of the pipe, then tells the session.
async fn watch_until_gone(
    mut from: piper::Reader,
    tx: &smol::channel::Sender<session::Msg>,
    stream: StreamId,
) {
    let mut sink = [0u8; 256];
    while matches!(from.read(&mut sink).await, Ok(n) if n > 0) {}
    let _ = tx.send(session::Msg::Gone(stream)).await;
}

/// Reads an answer to a request the bridge sent.
async fn read_answer(
    conn: &mut Conn,
    reader: &mut PostAnswerReader,
) -> io::Result<legacy::PostAnswer> {
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        let n = conn.read(&mut buf).await?;
        if n == 0 {
            return reader.eof().map_err(io::Error::other);
        }
        if let Some(answer) = reader.feed(&buf[..n]).map_err(io::Error::other)? {
            return Ok(answer);
        }
    }
}

/// 128 random bits as hex: unguessable session ids.
fn mint_session_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut bytes = [0u8; 16];
    let random = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes));
    if random.is_err() {
        // No /dev/urandom: SipHash keyed by the std's per-process random keys.
        for (i, half) in bytes.chunks_mut(8).enumerate() {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_usize(i);
            h.write_u128(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos()),
            );
            half.copy_from_slice(&h.finish().to_le_bytes());
        }
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
