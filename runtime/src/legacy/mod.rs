//! The legacy HTTP+SSE bridge as a message upstream.
//!
//! For a route whose upstream speaks the 2024-11-05 transport, the proxy's
//! upstream table hands the exchange a `MessageLink` instead of a socket
//! (its `UpConn::Message`): the exchange dispatches its request typed
//! ([`sluice_core::upstream::Request`]) and gets its answer back as parts
//! ([`sluice_core::upstream::AnswerPart`]), so the injection rules, the
//! access log and the hooks apply to bridged traffic as to any other, with
//! no HTTP written or parsed between the two. Each link carries one
//! exchange and is never pooled.
//!
//! Every protocol decision is `sluice_core::legacy`'s; this module only
//! moves bytes and parts: it asks the core which session serves a request,
//! runs one task per backend session (the SSE stream, the POSTs, the client
//! streams attached to it, the timers) and does what the core says. A
//! message the backend sends is parsed once, by that session's bridge, and
//! crosses to the exchange's worker as one part. It reaches the backend
//! through the dialer (`dial`) and its pool, and knows nothing of the proxy.

mod probe;
mod session;

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::rt::mailbox::{self, Sender};
use futures_lite::AsyncReadExt;
use sluice_core::legacy::{self, BridgeConfig, Mode, PostAnswerReader, StreamId};
use sluice_core::upstream::Request;

use crate::rt;

use crate::dial::{Conn, Dialer};
use crate::link::{ClientSink, MessageLink, MessageRoute, OnGone};
pub(crate) use probe::AutoTransport;

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
    /// Not HTTP at all: a stdio server sluice runs (the target's host and
    /// port are unused).
    Stdio(Box<crate::stdio::StdioUpstream>),
    /// Many servers behind one endpoint (the target's host and port are
    /// unused).
    Federation(Box<crate::federation::FederationUpstream>),
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
            probe_timeout: PROBE_TIMEOUT,
            // The config file's default, one source for both.
            connect_timeout: crate::config::Timeouts::default().connect,
            max_sessions: DEFAULT_MAX_SESSIONS,
        }
    }
}

/// How long the `auto` probe's GET may take, from the refusal it judges.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// Default of [`Bridging::max_sessions`].
pub(crate) const DEFAULT_MAX_SESSIONS: usize = 1024;

/// Size of one read.
const READ_CHUNK: usize = 16 * 1024;

/// The bridge of one route: its settings and its live sessions.
pub(crate) struct RouteBridge {
    route: usize,
    /// The route's name, for the log (empty for a federation's member).
    name: String,
    settings: Bridging,
    config: Arc<BridgeConfig>,
    dialer: Arc<Dialer>,
    live: Mutex<Live>,
}

/// The bridges of a route that are running, each by its inbox.
#[derive(Default)]
struct Live {
    sessions: HashMap<String, Sender<session::Msg>>,
    per_request: HashMap<StreamId, Sender<session::Msg>>,
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
        Self::named(route, String::new(), settings, dialer)
    }

    /// The bridge of route `route`, called `name` in the log.
    pub(crate) fn named(
        route: usize,
        name: String,
        settings: Bridging,
        dialer: Arc<Dialer>,
    ) -> Arc<Self> {
        Arc::new(RouteBridge {
            route,
            name,
            config: Arc::new(settings.config.clone()),
            settings,
            dialer,
            live: Mutex::new(Live::default()),
        })
    }

    /// A link for one exchange: its request goes to the session that
    /// serves it once the exchange dispatches it.
    pub(crate) fn open(self: &Arc<Self>) -> MessageLink {
        MessageLink::open(self.clone())
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
    fn register(&self, key: &Key, tx: &Sender<session::Msg>) -> Result<(), legacy::BridgeError> {
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
}

impl MessageRoute for RouteBridge {
    /// Hands the request of client stream `stream` to the session that
    /// serves it, starting one when the request opens a session (or, per
    /// request, always); refusals are answered on `client` at once. Returns
    /// the inbox of the session it went to.
    fn dispatch(
        self: Arc<Self>,
        stream: StreamId,
        req: Request,
        client: ClientSink,
    ) -> Option<OnGone> {
        let json = &self.config.limits.json;
        let now = std::time::Instant::now();
        let (mode, key, id) = match legacy::dispatch(&req, self.settings.mode, json) {
            legacy::Dispatch::Reply(part) => {
                client.send(part);
                return None;
            }
            legacy::Dispatch::Session(id) => {
                let Some(tx) = self.lock().sessions.get(&id).cloned() else {
                    client.send(legacy::unknown_session(&req, json));
                    return None;
                };
                let attach = session::Msg::Attach {
                    stream,
                    req,
                    client,
                };
                if let Err(attach) = tx.try_send(attach) {
                    // The session ended between the lookup and now.
                    if let session::Msg::Attach { req, client, .. } = attach {
                        client.send(legacy::unknown_session(&req, json));
                    }
                    return None;
                }
                return Some(crate::link::notify(tx, session::Msg::Gone(stream)));
            }
            legacy::Dispatch::NewSession => match mint_session_id() {
                Ok(id) => (Mode::Session, Key::Session(id.clone()), Some(id)),
                Err(e) => {
                    client.send(legacy::refuse_new_session(&req, &e, json));
                    return None;
                }
            },
            legacy::Dispatch::PerRequest => (Mode::PerRequest, Key::PerRequest(stream), None),
        };
        let (tx, rx) = mailbox::mailbox();
        if let Err(e) = self.register(&key, &tx) {
            tracing::warn!(route = self.route, error = %e, "legacy bridge refused");
            client.send(legacy::refuse_new_session(&req, &e, json));
            return None;
        }
        let bridge = legacy::Bridge::new(self.config.clone(), mode, id, now);
        // Unbounded and just made: the request is first in the inbox.
        let _ = tx.try_send(session::Msg::Attach {
            stream,
            req,
            client,
        });
        // On the worker of the exchange that opens the session: a client that
        // keeps its connection has its answers read, parsed and written by
        // one thread, with no hand-off between workers.
        rt::spawn_here(session::run(self.clone(), bridge, rx, tx.clone(), key)).detach();
        Some(crate::link::notify(tx, session::Msg::Gone(stream)))
    }
}

/// Reads an answer to a request the bridge sent.
pub(crate) async fn read_answer(
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

/// A session id for a new legacy session (see `link::mint_session_id`).
fn mint_session_id() -> Result<String, legacy::BridgeError> {
    crate::link::mint_session_id().ok_or(legacy::BridgeError::NoSessionId)
}
