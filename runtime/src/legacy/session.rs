//! The task that drives one `sluice_core::legacy::Bridge`: the backend's SSE
//! connection, its POSTs, and the client streams attached to it.

use std::collections::HashMap;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::rt::mailbox::{Receiver, Sender};
use crate::rt::{self, Timer};
use bytes::Bytes;
use futures_lite::{AsyncWriteExt, future};
use sluice_core::legacy::{
    self, Bridge, Origin, Output, PostAnswerReader, PostId, PostOutcome, StreamId,
};
use sluice_core::upstream::Request;

use super::{ClientSink, Key, RouteBridge, read_answer};
use crate::dial::{Conn, Dialer};

/// What reaches a session task.
pub(super) enum Msg {
    /// A client request for this session, and where its answer goes.
    Attach {
        stream: StreamId,
        req: Request,
        client: ClientSink,
    },
    /// The client of this stream went away.
    Gone(StreamId),
    /// A POST ended.
    PostDone(PostId, PostOutcome),
    /// The proxy is shutting down: close the session now.
    Close,
}

enum Event {
    Backend(io::Result<Bytes>),
    Inbox(Option<Msg>),
    Timer,
}

/// What one session task holds. Boxed, so that the task's future keeps a
/// pointer to it across its awaits rather than a copy of the bridge in each
/// of its states (an async fn's arguments and the locals they move into are
/// laid out side by side).
struct Session {
    route: Arc<RouteBridge>,
    bridge: Bridge,
    inbox: Receiver<Msg>,
    /// Handed to each POST's task, for its `PostDone`.
    tx: Sender<Msg>,
    key: Key,
    clients: HashMap<StreamId, ClientSink>,
    /// The POSTs out now; dropping one's task drops its connection.
    posts: HashMap<PostId, rt::Task<()>>,
    backend: Option<Conn>,
}

/// Runs `bridge` until it closes.
pub(super) fn run(
    route: Arc<RouteBridge>,
    bridge: Bridge,
    inbox: Receiver<Msg>,
    tx: Sender<Msg>,
    key: Key,
) -> impl Future<Output = ()> + Send + 'static {
    drive(Box::new(Session {
        route,
        bridge,
        inbox,
        tx,
        key,
        clients: HashMap::new(),
        posts: HashMap::new(),
        backend: None,
    }))
}

async fn drive(mut s: Box<Session>) {
    loop {
        while let Some(output) = s.bridge.poll_output() {
            match s.perform(output) {
                Performed::Done => {}
                Performed::Closed => return,
                Performed::Open(bytes) => {
                    // Boxed: the dial (connect, TLS handshake) happens once per
                    // session and must not size the task of every idle one.
                    match Box::pin(open_stream(s.route.clone(), bytes)).await {
                        Ok(conn) => s.backend = Some(conn),
                        Err(e) => {
                            // A dial failure is worth a warning; an answer
                            // that was not a stream is told elsewhere.
                            if !crate::dial::DialError::warn(&s.route.name, &e) {
                                tracing::info!(route = s.route.route, error = %e, "legacy backend stream failed to open");
                            }
                            s.bridge.stream_closed(true, Instant::now());
                        }
                    }
                }
            }
        }
        let event = s.next_event().await;
        s.handle(event);
    }
}

/// What is left to do after [`Session::perform`].
enum Performed {
    Done,
    /// Dial the backend and send these bytes (an await: the caller's).
    Open(Bytes),
    /// The bridge closed; the task ends.
    Closed,
}

impl Session {
    /// Does what the bridge said, but for the dial, which it hands back.
    fn perform(&mut self, output: Output) -> Performed {
        match output {
            Output::OpenStream(bytes) => return Performed::Open(bytes),
            Output::Post {
                id,
                bytes,
                origin,
                fresh,
            } => {
                let dialer = self.route.dialer.clone();
                let tx = self.tx.clone();
                let limits = self.route.config.limits.http.clone();
                let r = self.route.route;
                // Beside the session: its answer comes back without a hop.
                let task = rt::spawn_here(async move {
                    let outcome = post(&dialer, r, origin, fresh, bytes, &limits).await;
                    let _ = tx.try_send(Msg::PostDone(id, outcome));
                });
                self.posts.insert(id, task);
            }
            Output::AbandonPost { id } => self.post_over(id),
            Output::ToClient { stream, part } => {
                let Some(client) = self.clients.get(&stream) else {
                    return Performed::Done;
                };
                if !client.send(part) {
                    self.clients.remove(&stream);
                    self.bridge.client_gone(stream, Instant::now());
                }
            }
            Output::EndClient { stream } => {
                // Dropping the sink ends the exchange's parts after the last.
                self.clients.remove(&stream);
            }
            Output::CloseStream => self.backend = None,
            Output::Closed { error } => {
                let route = &self.route;
                route.forget(&self.key);
                match error {
                    Some(e) => {
                        tracing::info!(route = route.route, error = %e, "legacy session ended")
                    }
                    None => tracing::debug!(route = route.route, "legacy session ended"),
                }
                refuse_latecomers(&self.inbox, &route.config.limits.json);
                return Performed::Closed;
            }
        }
        Performed::Done
    }

    /// The POST `id` is over (its task ended or is dropped now). The table
    /// of POSTs lets go of its buffer once empty: most sessions wait with
    /// none out.
    fn post_over(&mut self, id: PostId) {
        self.posts.remove(&id);
        if self.posts.is_empty() {
            self.posts = HashMap::new();
        }
    }

    /// Waits for the backend's bytes, a message or the bridge's deadline.
    async fn next_event(&mut self) -> Event {
        let deadline = self.bridge.poll_timeout();
        let timer = async {
            match deadline {
                Some(at) => Timer::at(at).await,
                None => future::pending().await,
            };
            Event::Timer
        };
        let inbox = &self.inbox;
        let inbox_ev = async { Event::Inbox(inbox.recv().await) };
        match self.backend.as_mut() {
            Some(conn) => {
                // Read into the worker's scratch buffer: an idle session
                // holds no read buffer.
                let read = future::poll_fn(|cx| conn.poll_read_bytes(cx).map(Event::Backend));
                future::or(read, future::or(inbox_ev, timer)).await
            }
            None => future::or(inbox_ev, timer).await,
        }
    }

    /// Feeds `event` to the bridge.
    fn handle(&mut self, event: Event) {
        let now = Instant::now();
        match event {
            Event::Backend(Ok(bytes)) if bytes.is_empty() => {
                self.backend = None;
                self.bridge.stream_closed(false, now);
            }
            Event::Backend(Err(_)) => {
                self.backend = None;
                self.bridge.stream_closed(true, now);
            }
            Event::Backend(Ok(bytes)) => self.bridge.stream_data(&bytes, now),
            Event::Inbox(Some(Msg::Attach {
                stream,
                req,
                client,
            })) => {
                self.clients.insert(stream, client);
                self.bridge.attach(stream, req, now);
            }
            Event::Inbox(Some(Msg::Gone(stream))) => {
                self.clients.remove(&stream);
                self.bridge.client_gone(stream, now);
            }
            Event::Inbox(Some(Msg::PostDone(id, outcome))) => {
                self.post_over(id);
                self.bridge.post_done(id, outcome, now)
            }
            Event::Inbox(Some(Msg::Close)) => self.bridge.close(),
            // Cannot happen while this task holds a sender; close anyway.
            Event::Inbox(None) => self.bridge.close(),
            Event::Timer => self.bridge.handle_timeout(now),
        }
    }
}

/// Requests that reached the inbox after the session closed get 404.
fn refuse_latecomers(inbox: &Receiver<Msg>, json: &sluice_core::jsonrpc::Limits) {
    inbox.close();
    while let Some(msg) = inbox.try_recv() {
        if let Msg::Attach { client, req, .. } = msg {
            client.send(legacy::unknown_session(&req, json));
        }
    }
}

/// Connects afresh and sends the GET of the SSE stream.
async fn open_stream(route: Arc<RouteBridge>, bytes: Bytes) -> io::Result<Conn> {
    let attempt = async {
        let (mut conn, _) = route.dialer.checkout(route.route, true).await?;
        conn.write_all(&bytes).await?;
        conn.flush().await?;
        Ok(conn)
    };
    with_timeout(attempt, route.settings.connect_timeout).await
}

/// One POST, on a pooled connection unless `fresh`, its answer read whole.
/// Whether the bridge may send it again is the bridge's call: this only
/// reports whether the request went out whole.
async fn post(
    dialer: &Dialer,
    route: usize,
    origin: Option<Origin>,
    fresh: bool,
    bytes: Bytes,
    limits: &sluice_core::http1::Limits,
) -> PostOutcome {
    let checkout = match &origin {
        None => dialer.checkout(route, fresh).await,
        Some(o) => dialer.connect_origin(o).await.map(|c| (c, false)),
    };
    let (mut conn, reused) = match checkout {
        Ok(c) => c,
        Err(e) => {
            return PostOutcome::NotSent {
                reused: false,
                detail: e.to_string(),
            };
        }
    };
    let sent = async {
        conn.write_all(&bytes).await?;
        conn.flush().await
    }
    .await;
    if let Err(e) = sent {
        return PostOutcome::NotSent {
            reused,
            detail: e.to_string(),
        };
    }
    let mut reader = PostAnswerReader::post(limits);
    match read_answer(&mut conn, &mut reader).await {
        Ok(answer) => {
            if answer.reusable && origin.is_none() {
                dialer.checkin(route, conn);
            }
            PostOutcome::Answered(answer)
        }
        Err(e) => PostOutcome::Unanswered {
            detail: e.to_string(),
        },
    }
}

async fn with_timeout<T>(f: impl Future<Output = io::Result<T>>, after: Duration) -> io::Result<T> {
    future::or(f, async {
        Timer::after(after).await;
        Err(io::Error::new(io::ErrorKind::TimedOut, "timed out"))
    })
    .await
}
