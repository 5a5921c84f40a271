//! The task that drives one `sluice_core::stdio::Bridge`: its child's
//! pipes, its clients' streams, its timer.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::sync::Arc;
use std::task::Poll;
use std::time::Instant;

use bytes::Bytes;
use futures_lite::future;
use sluice_core::legacy::StreamId;
use sluice_core::stdio::{Bridge, Note, Output};
use sluice_core::upstream::Request;

use super::child::{Child, Exit};
use super::route::{Key, RouteStdio};
use crate::link::ClientSink;
use crate::rt::mailbox::Receiver;
use crate::rt::{self, Timer};

/// Size of one read of the child's stdout.
const READ_CHUNK: usize = 16 * 1024;

/// How a request is taken by its bridge.
pub(super) enum Admit {
    /// In a session: its own, or (`Some`) the new one minted for it.
    Session(Option<String>),
    /// A 2026-07-28 request, in no session.
    Stateless,
}

/// What reaches a bridge task.
pub(super) enum Msg {
    /// A client request, where its answer goes, and how it is taken.
    Attach {
        stream: StreamId,
        req: Request,
        sink: ClientSink,
        admit: Admit,
    },
    /// The client of this stream went away.
    Gone(StreamId),
    /// The proxy is shutting down.
    Close,
}

enum Event {
    Inbox(Option<Msg>),
    Stdout(io::Result<usize>),
    Written(io::Result<usize>),
    Exited(Exit),
    Timer,
}

/// The running child and what is on its way to it.
struct Running {
    child: Child,
    /// Lines queued for stdin, the first maybe partly written.
    stdin: VecDeque<Bytes>,
    /// Their bytes.
    queued: usize,
    /// The child closed its stdout (it still has to exit).
    stdout_done: bool,
    /// Its stdin broke: what would go there is dropped.
    stdin_done: bool,
    buf: Box<[u8]>,
}

/// What one bridge task holds (boxed: the future keeps a pointer).
struct Task {
    route: Arc<RouteStdio>,
    bridge: Bridge,
    inbox: Receiver<Msg>,
    key: Key,
    clients: HashMap<StreamId, ClientSink>,
    running: Option<Running>,
    /// The client sessions last told to the route (shared mode's gauge).
    sessions_told: usize,
}

/// Runs `bridge` until it closes.
pub(super) fn run(
    route: Arc<RouteStdio>,
    bridge: Bridge,
    inbox: Receiver<Msg>,
    key: Key,
) -> impl Future<Output = ()> + Send + 'static {
    drive(Box::new(Task {
        route,
        bridge,
        inbox,
        key,
        clients: HashMap::new(),
        running: None,
        sessions_told: 0,
    }))
}

async fn drive(mut t: Box<Task>) {
    loop {
        while let Some(output) = t.bridge.poll_output() {
            if t.perform(output) {
                return;
            }
        }
        t.tell_sessions();
        let event = t.next_event().await;
        t.handle(event);
    }
}

impl Task {
    /// A shared bridge's client sessions live here: the route's gauge
    /// hears of them when their number moves (a per-session bridge is one
    /// session, counted by the route).
    fn tell_sessions(&mut self) {
        let n = self.bridge.sessions();
        if self.key == Key::Shared && n != self.sessions_told {
            self.sessions_told = n;
            self.route.shared_sessions_now(n);
        }
    }

    /// Does what the bridge said; true once the bridge is closed.
    fn perform(&mut self, output: Output) -> bool {
        let now = Instant::now();
        match output {
            Output::Spawn => match Child::spawn(&self.route.settings.spec(&self.route.name)) {
                Ok(child) => {
                    self.route.process_started();
                    tracing::info!(route = %self.route.name, pid = child.pid(), "stdio server started");
                    self.running = Some(Running {
                        child,
                        stdin: VecDeque::new(),
                        queued: 0,
                        stdout_done: false,
                        stdin_done: false,
                        buf: vec![0; READ_CHUNK].into_boxed_slice(),
                    });
                    self.bridge.spawned(now);
                }
                Err(e) => {
                    tracing::warn!(route = %self.route.name, error = %e, "stdio server failed to start");
                    self.route.spawn_failed(e.to_string());
                    self.bridge.spawn_failed(&e.to_string(), now);
                }
            },
            Output::ToChild(line) => {
                let limit = self.route.settings.max_stdin_queue;
                if let Some(r) = &mut self.running
                    && !r.stdin_done
                {
                    // One line always goes in line (a message is bounded by
                    // the route's limits); past that, the bound says the
                    // child has stopped reading.
                    if !r.stdin.is_empty() && r.queued + line.len() > limit {
                        let waiting = r.queued;
                        tracing::warn!(
                            route = %self.route.name,
                            pid = r.child.pid(),
                            waiting,
                            limit,
                            "stdio server stopped reading its stdin; ending it"
                        );
                        self.shut_down_child();
                        let how = format!(
                            "stopped reading its stdin ({waiting} bytes waiting) and was ended"
                        );
                        self.bridge.child_exited(&how, now);
                        return false;
                    }
                    r.queued += line.len();
                    r.stdin.push_back(line);
                }
            }
            Output::Shutdown => self.shut_down_child(),
            Output::ToClient { stream, part } => {
                let Some(sink) = self.clients.get(&stream) else {
                    return false;
                };
                if !sink.send(part) {
                    self.clients.remove(&stream);
                    self.bridge.client_gone(stream, now);
                }
            }
            Output::EndClient { stream } => {
                // Dropping the sink ends the exchange's parts after the last.
                self.clients.remove(&stream);
            }
            Output::Log(note) => self.log(note),
            Output::Closed { error } => {
                self.route.forget(&self.key);
                match error {
                    Some(e) => {
                        tracing::info!(route = %self.route.name, error = %e, "stdio session ended")
                    }
                    None => tracing::debug!(route = %self.route.name, "stdio session ended"),
                }
                // The bridge asked for the shutdown first if a child ran.
                self.shut_down_child();
                self.refuse_latecomers();
                return true;
            }
        }
        false
    }

    /// Ends the running child beside this task (the MCP stdio sequence:
    /// stdin closed, SIGTERM, SIGKILL); its exit is logged, not reported.
    fn shut_down_child(&mut self) {
        let Some(running) = self.running.take() else {
            return;
        };
        let route = self.route.clone();
        let grace = route.settings.shutdown_grace;
        rt::spawn_here(async move {
            let pid = running.child.pid();
            let exit = running.child.shutdown(grace).await;
            tracing::info!(
                route = %route.name,
                pid,
                code = exit.code(),
                signal = exit.signal(),
                step = ?exit.how(),
                exit = %exit,
                "stdio server stopped"
            );
            route.process_ended();
        })
        .detach();
    }

    fn log(&self, note: Note) {
        let route = &self.route.name;
        match note {
            Note::Noise(excerpt) => tracing::warn!(
                route = %route,
                line = %excerpt,
                "stdio server wrote a line that is not a message on stdout (skipped; the rest of this burst is only counted)"
            ),
            Note::Refused(e) => {
                tracing::warn!(route = %route, error = %e, "stdio server's line refused")
            }
            Note::Dropped(what) => tracing::debug!(route = %route, what, "stdio message dropped"),
            Note::Initialized(version) => {
                tracing::info!(route = %route, version = %version, "stdio server initialized")
            }
        }
    }

    /// Requests that reached the inbox after the bridge closed get 404.
    fn refuse_latecomers(&self) {
        self.inbox.close();
        while let Some(msg) = self.inbox.try_recv() {
            if let Msg::Attach { sink, req, .. } = msg {
                sink.send(sluice_core::stdio::unknown_session(
                    &req,
                    &self.route.config.json,
                ));
            }
        }
    }

    /// Waits for a message, the child's stdout, room on its stdin, its
    /// exit, or the bridge's deadline.
    async fn next_event(&mut self) -> Event {
        let deadline = self.bridge.poll_timeout();
        let inbox = &self.inbox;
        let running = &mut self.running;
        let io = future::poll_fn(|cx| {
            if let Poll::Ready(msg) = inbox.poll_recv(cx) {
                return Poll::Ready(Event::Inbox(msg));
            }
            if let Some(r) = running.as_mut() {
                if let Some(line) = r.stdin.front()
                    && let Poll::Ready(n) = r.child.poll_write(cx, line)
                {
                    return Poll::Ready(Event::Written(n));
                }
                if !r.stdout_done
                    && let Poll::Ready(n) = r.child.poll_read(cx, &mut r.buf)
                {
                    return Poll::Ready(Event::Stdout(n));
                }
                if let Poll::Ready(exit) = r.child.poll_exit(cx) {
                    return Poll::Ready(Event::Exited(exit));
                }
            }
            Poll::Pending
        });
        let timer = async {
            match deadline {
                Some(at) => Timer::at(at).await,
                None => future::pending().await,
            };
            Event::Timer
        };
        future::or(io, timer).await
    }

    /// Feeds `event` to the bridge.
    fn handle(&mut self, event: Event) {
        let now = Instant::now();
        match event {
            Event::Inbox(Some(Msg::Attach {
                stream,
                req,
                sink,
                admit,
            })) => {
                self.clients.insert(stream, sink);
                match admit {
                    Admit::Session(new_session) => {
                        self.bridge.attach(stream, req, new_session, now)
                    }
                    Admit::Stateless => self.bridge.attach_stateless(stream, req, now),
                }
            }
            Event::Inbox(Some(Msg::Gone(stream))) => {
                self.clients.remove(&stream);
                self.bridge.client_gone(stream, now);
            }
            Event::Inbox(Some(Msg::Close) | None) => self.bridge.close(),
            Event::Stdout(Ok(0)) | Event::Stdout(Err(_)) => {
                // It closed stdout: its exit follows.
                if let Some(r) = &mut self.running {
                    r.stdout_done = true;
                }
            }
            Event::Stdout(Ok(n)) => {
                // Straight from the read buffer: no copy per read.
                if let Some(r) = &self.running {
                    self.bridge.child_output(&r.buf[..n], now);
                }
            }
            Event::Written(Ok(n)) => {
                if let Some(r) = &mut self.running
                    && let Some(line) = r.stdin.front_mut()
                {
                    if n >= line.len() {
                        r.stdin.pop_front();
                    } else {
                        let _ = line.split_to(n);
                    }
                    r.queued = r.queued.saturating_sub(n);
                }
            }
            Event::Written(Err(e)) => {
                // The child closed stdin (or died): nothing more goes in;
                // its exit tells the bridge what happened.
                tracing::debug!(route = %self.route.name, error = %e, "stdio server's stdin closed");
                if let Some(r) = &mut self.running {
                    r.stdin.clear();
                    r.queued = 0;
                    r.stdin_done = true;
                    r.child.close_stdin();
                }
            }
            Event::Exited(exit) => {
                let pid = self.running.as_ref().map(|r| r.child.pid());
                self.running = None;
                self.route.process_ended();
                tracing::warn!(
                    route = %self.route.name,
                    pid,
                    code = exit.code(),
                    signal = exit.signal(),
                    exit = %exit,
                    "stdio server ended"
                );
                self.bridge.child_exited(&exit.to_string(), now);
            }
            Event::Timer => self.bridge.handle_timeout(now),
        }
    }
}
