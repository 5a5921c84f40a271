//! The stdio upstream of one route: which bridge task serves a request,
//! and the registry of those that run.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use sluice_core::legacy::StreamId;
use sluice_core::stdio::{self, Bridge, Dispatch, StdioConfig, StdioError, StdioMode};
use sluice_core::upstream::Request;

use super::StdioUpstream;
use super::task::{self, Admit, Msg};
use crate::link::{ClientSink, MessageLink, MessageRoute, OnGone, mint_session_id, notify};
use crate::rt::{self, mailbox::Sender};

/// The stdio server of one route and the bridges that speak to it.
pub(crate) struct RouteStdio {
    /// The route's name, for logs.
    pub(super) name: String,
    pub(super) settings: StdioUpstream,
    pub(super) config: Arc<StdioConfig>,
    live: Mutex<Live>,
}

/// The bridge tasks of a route that are running, each by its inbox.
#[derive(Default)]
struct Live {
    /// Shared mode: the one bridge.
    shared: Option<Sender<Msg>>,
    /// Per-session mode: each session's bridge.
    sessions: HashMap<String, Sender<Msg>>,
    /// Children still running, those shutting down included.
    processes: usize,
    /// The shared bridge's client sessions, as its task last said.
    shared_sessions: usize,
    /// Shutting down: no new bridge starts.
    closing: bool,
    /// Why the last child failed to start, until one starts (for
    /// `/readyz`).
    spawn_error: Option<String>,
}

/// What a stdio route (or a federation's stdio members, summed) holds for
/// clients now, for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct StdioOpen {
    /// Per-session mode's client sessions, each with its child.
    pub per_session: usize,
    /// The client sessions of a shared child (a 2026-07-28 request in
    /// flight holds one while it runs, as it holds one of `max_sessions`).
    pub shared_sessions: usize,
    /// Children alive, those shutting down included.
    pub processes: usize,
}

impl std::ops::Add for StdioOpen {
    type Output = StdioOpen;

    fn add(self, other: StdioOpen) -> StdioOpen {
        StdioOpen {
            per_session: self.per_session + other.per_session,
            shared_sessions: self.shared_sessions + other.shared_sessions,
            processes: self.processes + other.processes,
        }
    }
}

/// Which bridge a task is, to forget it when it ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Key {
    Shared,
    Session(String),
}

impl RouteStdio {
    pub(crate) fn new(name: String, settings: StdioUpstream) -> Arc<Self> {
        Arc::new(RouteStdio {
            name,
            config: Arc::new(settings.config.clone()),
            settings,
            live: Mutex::new(Live::default()),
        })
    }

    /// A link for one exchange.
    pub(crate) fn open(self: &Arc<Self>) -> MessageLink {
        MessageLink::open(self.clone())
    }

    /// Bridges running, and children still alive (shutting down or not).
    pub(crate) fn live_count(&self) -> usize {
        let live = self.lock();
        live.sessions.len() + usize::from(live.shared.is_some()) + live.processes
    }

    /// Client sessions and children alive, for metrics.
    pub(crate) fn open_counts(&self) -> StdioOpen {
        let live = self.lock();
        StdioOpen {
            per_session: live.sessions.len(),
            shared_sessions: live.shared_sessions,
            processes: live.processes,
        }
    }

    /// The shared bridge serves `n` client sessions now (its task says so
    /// when the number moves).
    pub(super) fn shared_sessions_now(&self, n: usize) {
        self.lock().shared_sessions = n;
    }

    /// Shutting down: every bridge answers its clients and ends its child;
    /// no new one starts. Returns how many were told.
    pub(crate) fn close_all(&self) -> usize {
        let mut live = self.lock();
        live.closing = true;
        let mut n = 0;
        for tx in live.shared.iter().chain(live.sessions.values()) {
            if tx.try_send(Msg::Close).is_ok() {
                n += 1;
            }
        }
        n
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Live> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A child started / ended (its shutdown included).
    pub(super) fn process_started(&self) {
        let mut live = self.lock();
        live.processes += 1;
        live.spawn_error = None;
    }

    /// A child could not be started (`error` says why).
    pub(super) fn spawn_failed(&self, error: String) {
        self.lock().spawn_error = Some(error);
    }

    /// Whether the route can serve, for `/readyz`: its program is found
    /// (a path that is an executable file, or a name on the `PATH` of the
    /// child's environment; not checked when that has no `PATH`), and the
    /// last child it tried to start did start. A child that exits and
    /// restarts is not a failure here: the bridge restarts it.
    pub(crate) fn readiness(&self) -> Result<(), String> {
        if let Some(error) = &self.lock().spawn_error {
            return Err(format!("the last child failed to start: {error}"));
        }
        let program = self.settings.command.first().map_or("", String::as_str);
        let path = self
            .settings
            .env
            .iter()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.as_str());
        find_program(program, path, self.settings.cwd.as_deref())
    }

    pub(super) fn process_ended(&self) {
        let mut live = self.lock();
        live.processes = live.processes.saturating_sub(1);
    }

    /// A bridge ended.
    pub(super) fn forget(&self, key: &Key) {
        let mut live = self.lock();
        match key {
            Key::Shared => {
                live.shared = None;
                live.shared_sessions = 0;
            }
            Key::Session(id) => {
                live.sessions.remove(id);
            }
        }
    }

    /// The bridge for `key`, started if the route may start one: the
    /// shared bridge, or a new session's.
    fn start(self: &Arc<Self>, key: Key) -> Result<Sender<Msg>, StdioError> {
        let mut live = self.lock();
        if live.closing {
            return Err(StdioError::ShuttingDown);
        }
        if key == Key::Shared
            && let Some(tx) = &live.shared
        {
            return Ok(tx.clone());
        }
        let limit = self.settings.max_processes;
        if matches!(key, Key::Session(_)) && live.sessions.len() >= limit {
            return Err(StdioError::TooManyProcesses { limit });
        }
        let (tx, rx) = crate::rt::mailbox::mailbox();
        match &key {
            Key::Shared => live.shared = Some(tx.clone()),
            Key::Session(id) => {
                live.sessions.insert(id.clone(), tx.clone());
            }
        }
        drop(live);
        let bridge = Bridge::new(self.config.clone(), Instant::now());
        // On the worker of the exchange that needs it: for a per-session
        // client that keeps its connection, one thread reads the child and
        // writes the client.
        rt::spawn_here(task::run(self.clone(), bridge, rx, key)).detach();
        Ok(tx)
    }
}

impl MessageRoute for RouteStdio {
    fn dispatch(
        self: Arc<Self>,
        stream: StreamId,
        req: Request,
        sink: ClientSink,
    ) -> Option<OnGone> {
        let json = &self.config.json;
        let (key, admit) = match (stdio::dispatch(&req, json), self.config.mode) {
            (Dispatch::Reply(part), _) => {
                sink.send(part);
                return None;
            }
            (Dispatch::Existing(_), StdioMode::Shared) => (Key::Shared, Admit::Session(None)),
            (Dispatch::Stateless, StdioMode::Shared) => (Key::Shared, Admit::Stateless),
            // A child per session cannot serve a request of none: the
            // client of both eras falls back to the handshake.
            (Dispatch::Stateless, StdioMode::PerSession) => {
                sink.send(sluice_core::upstream::no_session());
                return None;
            }
            (Dispatch::Existing(id), StdioMode::PerSession) => {
                let Some(tx) = self.lock().sessions.get(&id).cloned() else {
                    sink.send(stdio::unknown_session(&req, json));
                    return None;
                };
                return attach(tx, stream, req, sink, Admit::Session(None), json);
            }
            (Dispatch::New, mode) => {
                let Some(id) = mint_session_id() else {
                    sink.send(stdio::refusal(&req, json, &StdioError::ShuttingDown));
                    return None;
                };
                match mode {
                    StdioMode::Shared => (Key::Shared, Admit::Session(Some(id))),
                    StdioMode::PerSession => (Key::Session(id.clone()), Admit::Session(Some(id))),
                }
            }
        };
        match self.start(key) {
            Ok(tx) => attach(tx, stream, req, sink, admit, json),
            Err(e) => {
                tracing::warn!(route = %self.name, error = %e, "stdio session refused");
                sink.send(stdio::refusal(&req, json, &e));
                None
            }
        }
    }
}

/// Hands the request to a bridge task; a task that ended meanwhile means
/// its session is gone (404).
fn attach(
    tx: Sender<Msg>,
    stream: StreamId,
    req: Request,
    sink: ClientSink,
    admit: Admit,
    json: &sluice_core::jsonrpc::Limits,
) -> Option<OnGone> {
    let msg = Msg::Attach {
        stream,
        req,
        sink,
        admit,
    };
    match tx.try_send(msg) {
        Ok(()) => Some(notify(tx, Msg::Gone(stream))),
        Err(Msg::Attach { req, sink, .. }) => {
            sink.send(stdio::unknown_session(&req, json));
            None
        }
        Err(_) => None,
    }
}

/// `program` as `execvp` would find it: a path with a `/` (relative to
/// `cwd`), else the first executable file of that name on `path`.
fn find_program(
    program: &str,
    path: Option<&str>,
    cwd: Option<&std::path::Path>,
) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt as _;
    use std::path::Path;
    let executable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        let p = match cwd {
            Some(dir) => dir.join(program),
            None => Path::new(program).to_path_buf(),
        };
        return match executable(&p) {
            true => Ok(()),
            false => Err(format!("{program} is not an executable file")),
        };
    }
    let Some(path) = path else {
        // The search path is not ours to guess; a failed start says it.
        return Ok(());
    };
    match path
        .split(':')
        .any(|dir| !dir.is_empty() && executable(&Path::new(dir).join(program)))
    {
        true => Ok(()),
        false => Err(format!("{program} is not on the PATH {path}")),
    }
}

#[cfg(test)]
mod tests {
    use super::find_program;

    #[test]
    fn a_program_is_found_as_exec_would_find_it() {
        assert_eq!(
            find_program("sh", Some("/nowhere:/bin:/usr/bin"), None),
            Ok(())
        );
        assert!(find_program("sh", Some("/nowhere"), None).is_err());
        assert_eq!(find_program("/bin/sh", None, None), Ok(()));
        let plain = std::env::temp_dir().join(format!("sluice-not-exec-{}", std::process::id()));
        std::fs::write(&plain, "#!/bin/sh\n").unwrap();
        let plain_str = plain.to_str().unwrap().to_owned();
        let not_executable = find_program(&plain_str, None, None);
        std::fs::remove_file(&plain).unwrap();
        assert!(not_executable.is_err(), "mode 0644 is not executable");
        assert!(find_program("/no/such/program", None, None).is_err());
        assert_eq!(find_program("./sh", None, Some("/bin".as_ref())), Ok(()));
        // No PATH in the child's environment: not guessed.
        assert_eq!(find_program("anything", None, None), Ok(()));
    }
}
