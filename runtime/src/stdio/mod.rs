//! stdio MCP servers as message upstreams.
//!
//! A route whose upstream is a command gets a `MessageLink` per exchange,
//! like a legacy route: the exchange dispatches its request typed and gets
//! its answer back as parts, so routing, guards, hooks, the injection rules
//! and the access log apply as on any route. Every protocol decision is
//! `sluice_core::stdio`'s (`Bridge`: shared or per-session, ids, progress,
//! server requests, restarts); this module runs the child (`child`),
//! moves bytes and parts, and keeps the registry of bridges (`route`), each
//! one task (`task`) on the worker that opened it.

mod child;
mod route;
mod task;

use std::path::PathBuf;
use std::time::Duration;

use sluice_core::stdio::StdioConfig;

pub(crate) use route::{RouteStdio, StdioOpen};

/// Settings of a route whose upstream is a stdio server.
#[derive(Debug, Clone)]
pub struct StdioUpstream {
    /// The core bridge's configuration (mode, limits, timeouts).
    pub config: StdioConfig,
    /// The program and its arguments (non-empty).
    pub command: Vec<String>,
    /// The child's complete environment.
    pub env: Vec<(String, String)>,
    /// Its working directory (sluice's when `None`).
    pub cwd: Option<PathBuf>,
    /// Its process limits and identity.
    pub sandbox: Sandbox,
    /// Per-session mode: most sessions (children) at once.
    pub max_processes: usize,
    /// Each step of the shutdown (stdin closed, then SIGTERM) waits this
    /// long before the next.
    pub shutdown_grace: Duration,
    /// Bytes that may wait for a child's stdin beyond the line being
    /// written: a child that leaves more unread has stopped reading and
    /// is ended (its calls fail with why).
    pub max_stdin_queue: usize,
}

/// Process limits for a child: `setrlimit` and `setuid`/`setgid` before
/// `exec`. Not a container: the child sees the same file system, network
/// and processes as sluice.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sandbox {
    /// Bytes of address space (`RLIMIT_AS`).
    pub max_memory: Option<u64>,
    /// Seconds of CPU time (`RLIMIT_CPU`).
    pub max_cpu_seconds: Option<u64>,
    /// Open file descriptors (`RLIMIT_NOFILE`).
    pub max_open_files: Option<u64>,
    /// Run as this user id.
    pub uid: Option<u32>,
    /// Run as this group id.
    pub gid: Option<u32>,
}

impl StdioUpstream {
    /// A shared-mode upstream running `command` with `env`, every other
    /// setting at its default.
    pub fn new(command: Vec<String>, env: Vec<(String, String)>) -> Self {
        StdioUpstream {
            config: StdioConfig::default(),
            command,
            env,
            cwd: None,
            sandbox: Sandbox::default(),
            max_processes: DEFAULT_MAX_PROCESSES,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            max_stdin_queue: DEFAULT_MAX_STDIN_QUEUE,
        }
    }

    /// What to spawn for route `route`.
    fn spec(&self, route: &str) -> child::ChildSpec {
        let (program, args) = match self.command.split_first() {
            Some((p, a)) => (p.clone(), a.to_vec()),
            None => (String::new(), Vec::new()),
        };
        child::ChildSpec {
            program,
            args,
            env: self.env.clone(),
            cwd: self.cwd.clone(),
            limits: child::Rlimits {
                address_space: self.sandbox.max_memory,
                cpu_seconds: self.sandbox.max_cpu_seconds,
                open_files: self.sandbox.max_open_files,
            },
            uid: self.sandbox.uid,
            gid: self.sandbox.gid,
            route: route.to_owned(),
        }
    }
}

/// Default of [`StdioUpstream::max_processes`].
pub const DEFAULT_MAX_PROCESSES: usize = 64;
/// Default of [`StdioUpstream::max_stdin_queue`]: four of the largest
/// messages sluice reads by default.
pub const DEFAULT_MAX_STDIN_QUEUE: usize = 64 << 20;
/// Default of [`StdioUpstream::shutdown_grace`].
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
