//! Live reload: SIGHUP, or `--watch` seeing a file change, reads the
//! configuration and its hooks again on a thread of its own
//! (`sluice-reload`), checks all of it — the file parses, its values and
//! routes are valid, every hook compiles — and only then swaps it in
//! ([`ProxyHandle::swap`]). A configuration that fails any check changes
//! nothing: the error is logged with its file, line and column, and
//! `sluice_config_reloads_total{outcome="invalid"}` counts it.
//!
//! What a reload cannot change (the process's own resources) is listed in
//! [`RESTART_ONLY`]: a new value there is logged and the running one kept,
//! and the rest of the file is applied.

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, SystemTime};

use crate::config::{Config, ConfigError};
use crate::metrics::ReloadOutcome;
use crate::proxy::ProxyHandle;

/// The keys a reload does not apply, and what each is: the listener is
/// bound, the workers run, the admin listener is bound, the log output is
/// set up once, the trace exporter runs.
pub const RESTART_ONLY: &[&str] = &[
    "listen",
    "admin.listen",
    "server.workers",
    "log.level",
    "log.format",
    "tracing",
];

/// Where a reload reads the configuration from: the command line again,
/// which reads the config file and the hook files.
pub type Source = Box<dyn FnMut() -> Result<Config, ConfigError> + Send>;

enum Msg {
    /// Read the configuration again (SIGHUP).
    Reload,
    Stop,
}

/// The reload thread. Dropping this stops it (after a reload under way).
pub struct Reloader {
    tx: mpsc::Sender<Msg>,
}

/// Asks the reload thread for a reload; cheap to clone, never blocks.
#[derive(Clone)]
pub struct Trigger(mpsc::Sender<Msg>);

impl Trigger {
    /// Reload as soon as the thread is free (requests made meanwhile are
    /// one reload).
    pub fn reload(&self) {
        let _ = self.0.send(Msg::Reload);
    }
}

impl Reloader {
    /// Start the reload thread for `proxy`, now running `running`.
    /// `config_file` is watched, with the hook files of the running
    /// configuration, every `watch` interval when given.
    pub fn start(
        proxy: ProxyHandle,
        running: Config,
        source: Source,
        config_file: Option<PathBuf>,
        watch: Option<Duration>,
    ) -> std::io::Result<Reloader> {
        let (tx, rx) = mpsc::channel();
        let mut state = State {
            proxy,
            running,
            source,
            config_file,
        };
        // Taken now, not when the thread first runs: a change made once
        // the proxy said it listens must be seen as one.
        let seen = state.fingerprint();
        std::thread::Builder::new()
            .name("sluice-reload".into())
            .spawn(move || state.run(&rx, watch, seen))?;
        Ok(Reloader { tx })
    }

    /// A handle that asks for a reload (for the SIGHUP task).
    pub fn trigger(&self) -> Trigger {
        Trigger(self.tx.clone())
    }
}

impl Drop for Reloader {
    fn drop(&mut self) {
        let _ = self.tx.send(Msg::Stop);
    }
}

struct State {
    proxy: ProxyHandle,
    running: Config,
    source: Source,
    config_file: Option<PathBuf>,
}

impl State {
    fn run(&mut self, rx: &mpsc::Receiver<Msg>, watch: Option<Duration>, mut seen: Fingerprint) {
        loop {
            let msg = match watch {
                Some(every) => match rx.recv_timeout(every) {
                    Ok(msg) => Some(msg),
                    Err(mpsc::RecvTimeoutError::Timeout) => None,
                    Err(mpsc::RecvTimeoutError::Disconnected) => return,
                },
                None => match rx.recv() {
                    Ok(msg) => Some(msg),
                    Err(_) => return,
                },
            };
            match msg {
                Some(Msg::Stop) => return,
                Some(Msg::Reload) => {
                    // Signals that came while the last reload ran ask for one more, not many.
                    while let Ok(msg) = rx.try_recv() {
                        if matches!(msg, Msg::Stop) {
                            return;
                        }
                    }
                    tracing::info!("SIGHUP: reloading the configuration");
                }
                None => {
                    let now = self.fingerprint();
                    if now == seen {
                        continue;
                    }
                    tracing::info!("a watched file changed: reloading the configuration");
                }
            }
            // Taken before reading: a change while the files are read is seen next time.
            let before = self.fingerprint();
            self.reload();
            // The watched hook files are the running configuration's.
            seen = if self.fingerprint_files() == before.files {
                before
            } else {
                self.fingerprint()
            };
        }
    }

    /// Read, check, and swap in the configuration; or keep the running one.
    fn reload(&mut self) {
        let metrics = self.proxy.metrics();
        let mut config = match (self.source)() {
            Ok(config) => config,
            Err(e) => {
                metrics.reloaded(ReloadOutcome::Invalid);
                tracing::error!(error = %e, "reload refused, the running configuration stays");
                return;
            }
        };
        for key in keep_restart_only(&self.running, &mut config) {
            tracing::warn!(
                key,
                "reload: this setting changes only with a restart; its running value stays"
            );
        }
        // Compiles the hooks: here, off the workers, which serve on meanwhile.
        let settings = match crate::settings::proxy_settings(&config) {
            Ok(settings) => settings,
            Err(e) => {
                metrics.reloaded(ReloadOutcome::Invalid);
                tracing::error!(
                    error = format!("{e:#}"),
                    "reload refused, the running configuration stays"
                );
                return;
            }
        };
        let carry = carried(&self.running, &config);
        let Some(swapped) = self.proxy.swap(settings, &carry) else {
            tracing::info!("shutting down: the reload is dropped");
            return;
        };
        metrics.reloaded(ReloadOutcome::Ok);
        for route in &config.routes {
            tracing::info!(route = %route.name, path = %route.path, upstream = %route.backend.redacted(), "route");
        }
        tracing::info!(
            generation = swapped.generation,
            kept = %swapped.kept.join(", "),
            "configuration reloaded"
        );
        self.running = config;
    }

    fn fingerprint(&self) -> Fingerprint {
        Fingerprint {
            config: self
                .config_file
                .as_ref()
                .and_then(|p| std::fs::read(p).ok())
                .map(|text| hash(&text)),
            files: self.fingerprint_files(),
        }
    }

    /// The config file's and the running hooks' metadata.
    fn fingerprint_files(&self) -> Vec<Option<FileStamp>> {
        self.config_file
            .iter()
            .chain(self.running.hooks.iter().map(|h| &h.path))
            .map(|p| FileStamp::of(p))
            .collect()
    }
}

/// What `--watch` compares, poll after poll.
#[derive(Debug, PartialEq, Eq)]
struct Fingerprint {
    /// A hash of the config file's contents (small; a coarse clock can
    /// give two quick writes of the same size the same times).
    config: Option<u64>,
    /// The config and hook files' metadata (`None`: it cannot be read).
    files: Vec<Option<FileStamp>>,
}

#[derive(Debug, PartialEq, Eq)]
struct FileStamp {
    len: u64,
    modified: Option<SystemTime>,
    /// A file replaced by a rename (an editor's save, a Kubernetes
    /// ConfigMap's symlink swap) is a new inode.
    inode: u64,
    changed: i64,
}

impl FileStamp {
    fn of(path: &std::path::Path) -> Option<FileStamp> {
        use std::os::unix::fs::MetadataExt as _;
        let m = std::fs::metadata(path).ok()?;
        Some(FileStamp {
            len: m.len(),
            modified: m.modified().ok(),
            inode: m.ino(),
            changed: m.ctime_nsec() + m.ctime() * 1_000_000_000,
        })
    }
}

fn hash(bytes: &[u8]) -> u64 {
    use std::hash::Hasher as _;
    // Fixed keys: the hash is compared within this process only.
    let mut h = std::collections::hash_map::DefaultHasher::new();
    h.write(bytes);
    h.finish()
}

/// Sets `new`'s restart-only settings ([`RESTART_ONLY`]) to `running`'s;
/// returns the keys that differed.
pub fn keep_restart_only(running: &Config, new: &mut Config) -> Vec<&'static str> {
    let mut kept = Vec::new();
    if new.listen != running.listen {
        new.listen = running.listen;
        kept.push("listen");
    }
    if new.admin != running.admin {
        new.admin = running.admin;
        kept.push("admin.listen");
    }
    if new.server.worker_threads() != running.server.worker_threads() {
        kept.push("server.workers");
    }
    new.server.workers = running.server.workers;
    if new.log.level != running.log.level {
        new.log.level = running.log.level;
        kept.push("log.level");
    }
    if new.log.format != running.log.format {
        new.log.format = running.log.format;
        kept.push("log.format");
    }
    if new.tracing != running.tracing {
        new.tracing = running.tracing.clone();
        kept.push("tracing");
    }
    kept
}

/// For each route of `new`, the route of `running` whose legacy
/// sessions, stdio children and federation members it takes over: one of
/// the same name and the very same definition, with the same settings
/// that shape its bridges (limits, the connect timeout, TLS, the pool and
/// its idle timeout).
/// Any other is rebuilt.
pub fn carried(running: &Config, new: &Config) -> Vec<Option<usize>> {
    let same_ground = running.limits == new.limits
        && running.timeouts.connect == new.timeouts.connect
        && running.timeouts.pool_idle == new.timeouts.pool_idle
        && running.tls == new.tls
        && running.pool == new.pool;
    new.routes
        .iter()
        .map(|route| {
            if !same_ground {
                return None;
            }
            running.routes.iter().position(|r| r == route)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn config(text: &str) -> Config {
        Config::from_toml(text, "t.toml", Path::new("/")).unwrap()
    }

    const BASE: &str = r#"
listen = "127.0.0.1:8080"
[[route]]
name = "a"
path = "/a"
command = ["server-a"]
[[route]]
name = "b"
path = "/b"
upstream = "http://127.0.0.1:9000/mcp"
"#;

    #[test]
    fn an_unchanged_route_is_carried_and_a_changed_one_is_not() {
        let running = config(BASE);
        let same = config(BASE);
        assert_eq!(carried(&running, &same), [Some(0), Some(1)]);
        // Reordered, one changed, one new.
        let new = config(
            r#"
[[route]]
name = "b"
path = "/b"
upstream = "http://127.0.0.1:9001/mcp"
[[route]]
name = "c"
path = "/c"
command = ["server-c"]
[[route]]
name = "a"
path = "/a"
command = ["server-a"]
"#,
        );
        assert_eq!(carried(&running, &new), [None, None, Some(0)]);
        // A limit every bridge reads: nothing is carried.
        let mut limits = config(BASE);
        limits.limits.max_json_depth += 1;
        assert_eq!(carried(&running, &limits), [None, None]);
        let mut connect = config(BASE);
        connect.timeouts.connect += Duration::from_secs(1);
        assert_eq!(carried(&running, &connect), [None, None]);
        // Timeouts of the client side and the shutdown shape no bridge.
        let mut grace = config(BASE);
        grace.timeouts.shutdown_grace += Duration::from_secs(1);
        grace.timeouts.client_idle += Duration::from_secs(1);
        assert_eq!(carried(&running, &grace), [Some(0), Some(1)]);
    }

    #[test]
    fn restart_only_settings_keep_their_running_values() {
        let running = config(BASE);
        let mut new = config(&BASE.replace("8080", "8081"));
        new.server.workers = Some(running.server.worker_threads() + 1);
        new.log.level = crate::config::LogLevel::Debug;
        new.timeouts.shutdown_grace = Duration::from_secs(1);
        let kept = keep_restart_only(&running, &mut new);
        assert_eq!(kept, ["listen", "server.workers", "log.level"]);
        assert_eq!(new.listen, running.listen);
        assert_eq!(new.server, running.server);
        assert_eq!(new.log, running.log);
        // Reloadable: applied.
        assert_eq!(new.timeouts.shutdown_grace, Duration::from_secs(1));
        assert!(kept.iter().all(|k| RESTART_ONLY.contains(k)));
    }

    #[test]
    fn tracing_is_restart_only() {
        let running = config(BASE);
        let mut new = config(&format!(
            "{BASE}\n[tracing]\nendpoint = \"http://127.0.0.1:4318/v1/traces\"\n"
        ));
        assert!(new.tracing.is_some());
        assert_eq!(keep_restart_only(&running, &mut new), ["tracing"]);
        assert_eq!(new.tracing, None, "the running exporter stays as it is");
    }
}
