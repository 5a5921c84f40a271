//! One stdio MCP server as a child process on rt.
//!
//! MCP (*Transports*, "stdio"): the client launches the server as a
//! subprocess, writes JSON-RPC messages to its stdin and reads them from its
//! stdout; the server may log on stderr. To shut down, the client closes the
//! server's stdin, waits for it to exit, sends SIGTERM if it has not within
//! a reasonable time, and SIGKILL if it still has not.
//!
//! [`Child::spawn`] starts the server in a process group of its own, with
//! exactly the environment it is given, its three pipes, and no other
//! descriptor: every descriptor of this process at 3 or above is marked
//! close-on-exec in the child before `exec` (std marks its own, but one this
//! process inherited without the flag would pass on to every server).
//! The parent's ends of the pipes are non-blocking and registered with the
//! calling worker's reactor, like a socket; so is a pidfd of the child,
//! which becomes readable when it exits: no SIGCHLD handler, no thread per
//! child. Its stderr is read by a small task of its own that logs each line
//! (see [`StderrLines`]); its stdout is the owner's to read.
//!
//! Signals go to the whole group, so a server started through a wrapper
//! (`sh -c`, `npx` starting `node`) goes with everything it started, even
//! if the wrapper itself exits first. A process that leaves the group
//! (`setsid`) is out of reach. The group's id is the child's pid, and a
//! reaped pid may be given to a new process (another server, leading a
//! group of its own): so an exited child is left a zombie, its status read
//! with `waitid(WNOWAIT)`, until [`Child::shutdown`] or the drop has dealt
//! with its group and reaps it.
//!
//! What confines a server, honestly scoped: a cleared environment, no
//! inherited descriptors, optional rlimits (address space, CPU seconds,
//! open files) and an optional uid and gid. It is not a container: the
//! server sees the filesystem, the network and the other processes as the
//! user it runs as.
//!
//! If `pidfd_open` is refused (Linux before 5.3, or a seccomp filter that
//! does not know it), the exit is found by looking every
//! [`EXIT_POLL_EVERY`] instead, on an rt timer.

use std::fmt;
use std::future::Future;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::pin::Pin;
use std::process::{self, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use futures_lite::future;
use rustix::process::{Pid, Resource, Rlimit, Signal};

use crate::rt::{self, READ, Reactor, Source, Timer, WRITE};

/// At most this many stderr lines of one child are logged per second; the
/// rest are counted, and the count logged when the second is over.
const STDERR_LINES_PER_SECOND: u32 = 20;
/// A longer stderr line is cut to this many bytes (and marked `…`).
const MAX_STDERR_LINE: usize = 2048;
/// How often the exit is looked for when there is no pidfd to wait on.
const EXIT_POLL_EVERY: Duration = Duration::from_millis(50);
/// The longest pause between two looks at whether a group is gone.
const GROUP_POLL_MAX: Duration = Duration::from_millis(50);
/// Where a child's stderr lines are logged.
const LOG_TARGET: &str = "sluice::stdio";

/// What to run, and how confined.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ChildSpec {
    /// The program (argv\[0\]): a path, or a name looked up on the `PATH` of
    /// [`ChildSpec::env`] (as `std::process::Command` does).
    pub program: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// The child's complete environment: nothing of this process's is passed on.
    pub env: Vec<(String, String)>,
    /// Its working directory; this process's if `None`.
    pub cwd: Option<PathBuf>,
    /// Resource limits set in the child before `exec`.
    pub limits: Rlimits,
    /// Run as this user id (`setuid` before `exec`).
    pub uid: Option<u32>,
    /// Run as this group id (`setgid` before `exec`).
    pub gid: Option<u32>,
    /// The route it serves, for log lines.
    pub route: String,
}

/// Resource limits for a child, each set as both its soft and hard limit
/// (the child cannot raise it again), and never above this process's own
/// hard limit: a limit only lowers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Rlimits {
    /// Bytes of address space (`RLIMIT_AS`).
    pub address_space: Option<u64>,
    /// Seconds of CPU time (`RLIMIT_CPU`): SIGXCPU at the limit.
    pub cpu_seconds: Option<u64>,
    /// Open descriptors (`RLIMIT_NOFILE`).
    pub open_files: Option<u64>,
}

impl Rlimits {
    /// The limits to set, as they will be set.
    fn to_set(self) -> Vec<(Resource, Rlimit)> {
        [
            (Resource::As, self.address_space),
            (Resource::Cpu, self.cpu_seconds),
            (Resource::Nofile, self.open_files),
        ]
        .into_iter()
        .filter_map(|(resource, limit)| {
            let hard = rustix::process::getrlimit(resource).maximum;
            let limit = limit?;
            let limit = hard.map_or(limit, |hard| limit.min(hard));
            Some((
                resource,
                Rlimit {
                    current: Some(limit),
                    maximum: Some(limit),
                },
            ))
        })
        .collect()
    }
}

/// What made a child exit: the last step of the shutdown taken before it
/// did, in the order they are taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Ended {
    /// Nothing: it exited on its own.
    OnItsOwn,
    /// Its stdin had been closed.
    AfterStdinClosed,
    /// Its group had been sent SIGTERM.
    AfterSigterm,
    /// Its group had been sent SIGKILL.
    AfterSigkill,
}

impl Ended {
    /// The signal this step sends.
    fn signal(self) -> Option<i32> {
        match self {
            Ended::OnItsOwn | Ended::AfterStdinClosed => None,
            Ended::AfterSigterm => Some(Signal::TERM.as_raw()),
            Ended::AfterSigkill => Some(Signal::KILL.as_raw()),
        }
    }

    /// How [`Exit`]'s `Display` says it, after the status.
    fn words(self) -> &'static str {
        match self {
            Ended::OnItsOwn => "",
            Ended::AfterStdinClosed => " after stdin closed",
            Ended::AfterSigterm => " after SIGTERM",
            Ended::AfterSigkill => " after SIGKILL",
        }
    }
}

/// How a child ended: its wait status, and what made it end.
///
/// Its `Display` is what a client may read in a JSON-RPC error: "exited
/// with status 3", "killed by signal 11 (SIGSEGV)", "exited with status 0
/// after stdin closed", "killed by signal 9 (SIGKILL) at shutdown" (the
/// signal it died of is the one the shutdown sent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Exit {
    /// `None` if the status was lost: another waiter in this process reaped
    /// the child first (nothing in sluice does).
    status: Option<ExitStatus>,
    how: Ended,
}

impl Exit {
    /// No status: the child was reaped by someone else.
    const LOST: Exit = Exit {
        status: None,
        how: Ended::OnItsOwn,
    };

    /// Its exit code, if it exited (rather than being killed).
    pub(crate) fn code(&self) -> Option<i32> {
        self.status.and_then(|s| s.code())
    }

    /// The signal that killed it, if one did.
    pub(crate) fn signal(&self) -> Option<i32> {
        self.status.and_then(|s| s.signal())
    }

    /// What made it end.
    pub(crate) fn how(&self) -> Ended {
        self.how
    }
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(status) = self.status else {
            return write!(f, "ended, its status unknown{}", self.how.words());
        };
        if let Some(code) = status.code() {
            write!(f, "exited with status {code}{}", self.how.words())
        } else if let Some(signal) = status.signal() {
            let name = rt::signal::name(signal);
            write!(f, "killed by signal {signal} ({name})")?;
            if self.how.signal() == Some(signal) {
                f.write_str(" at shutdown")
            } else {
                f.write_str(self.how.words())
            }
        } else {
            // Neither exited nor killed: not reported without WUNTRACED.
            write!(f, "ended with wait status {:#x}", status.into_raw())
        }
    }
}

/// The child's life, as far as this process knows it.
enum State {
    /// Not known to have exited. `asked` is the last step of the shutdown
    /// taken so far ([`Ended::OnItsOwn`]: none).
    Running {
        proc: process::Child,
        watch: Watch,
        asked: Ended,
    },
    /// Exited, its status read but the process not reaped: while it is a
    /// zombie its pid, which is its group's id, cannot be given to another
    /// process, so signalling the group cannot hit a stranger's.
    Exited { proc: process::Child, exit: Exit },
    /// Reaped: by [`Child::shutdown`], after which nothing is signalled, or
    /// lost to another waiter.
    Reaped(Exit),
}

/// How the exit is noticed.
enum Watch {
    /// A pidfd on the reactor: readable once the child has exited.
    Pidfd(Source<OwnedFd>),
    /// `pidfd_open` was refused: look every [`EXIT_POLL_EVERY`].
    Poll(Option<Timer>),
}

impl Watch {
    fn open(pid: Pid, reactor: &Arc<Reactor>) -> io::Result<Watch> {
        // PIDFD_NONBLOCK only matters for waitid(P_PIDFD); the fd is CLOEXEC.
        match rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()) {
            // Already readable if it exited meanwhile: epoll reports it.
            Ok(fd) => Ok(Watch::Pidfd(Source::new(fd, reactor, 0)?)),
            Err(e) => {
                tracing::debug!(target: LOG_TARGET, error = %e, "no pidfd: polling for the child's exit");
                Ok(Watch::Poll(None))
            }
        }
    }

    /// Ready with the wait status once `pid` has exited (not reaped).
    fn poll_exit(&mut self, pid: Pid, cx: &mut Context<'_>) -> Poll<io::Result<ExitStatus>> {
        match self {
            Watch::Pidfd(fd) => fd.poll_attempt(READ, cx, || {
                // Not exited: drained, so the next look waits for the event.
                fd.attempt(
                    READ,
                    |_| exit_status(pid)?.ok_or(io::ErrorKind::WouldBlock.into()),
                    |_| false,
                )
            }),
            Watch::Poll(timer) => loop {
                match exit_status(pid) {
                    Ok(Some(status)) => return Poll::Ready(Ok(status)),
                    Ok(None) => {}
                    Err(e) => return Poll::Ready(Err(e)),
                }
                let t = timer.get_or_insert_with(|| Timer::after(EXIT_POLL_EVERY));
                ready!(Pin::new(t).poll(cx));
                *timer = None;
            },
        }
    }
}

/// The wait status of the child `pid` if it has exited, read without
/// reaping it (`waitid` with `WNOWAIT`).
fn exit_status(pid: Pid) -> io::Result<Option<ExitStatus>> {
    use rustix::process::{WaitId, WaitIdOptions as O};
    let Some(status) =
        rustix::process::waitid(WaitId::Pid(pid), O::EXITED | O::NOHANG | O::NOWAIT)?
    else {
        return Ok(None);
    };
    // As waitpid(2) would have put it.
    let raw = match (status.exit_status(), status.terminating_signal()) {
        (Some(code), _) => (code & 0xff) << 8,
        (None, Some(signal)) if status.dumped() => signal | 0x80,
        (None, Some(signal)) => signal,
        // Only exits were asked for.
        (None, None) => return Ok(None),
    };
    Ok(Some(ExitStatus::from_raw(raw)))
}

/// A running stdio server: its stdin and stdout, its exit, its shutdown.
///
/// Reads (stdout) and writes (stdin) take `&self`, so one task may do both
/// at once; one reader and one writer at a time, as for a socket.
/// Dropped without [`Child::shutdown`], it SIGKILLs the group and reaps the
/// child (on a task, if it does not die at once): no zombie, no group left
/// behind.
pub(crate) struct Child {
    /// Also its process group's id.
    pid: Pid,
    route: String,
    stdin: Option<Source<OwnedFd>>,
    stdout: Source<OwnedFd>,
    state: State,
}

impl Child {
    /// Starts `spec` in a process group of its own (its pid is the group's
    /// id), with its stdin, stdout and stderr piped and no other descriptor
    /// open, the pipes and a pidfd registered with the calling worker's
    /// reactor (off the workers: the least loaded worker of the runtime
    /// started last), and a task on that worker logging its stderr.
    ///
    /// An error names the program (and the working directory, if set).
    pub(crate) fn spawn(spec: &ChildSpec) -> io::Result<Child> {
        let worker = rt::Handle::current()
            .ok_or_else(|| io::Error::other("no runtime to supervise a child on"))?
            .local_or_least_loaded();
        let mut cmd = Command::new(&spec.program);
        cmd.args(&spec.args)
            .env_clear()
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        if let Some(cwd) = &spec.cwd {
            cmd.current_dir(cwd);
        }
        if let Some(uid) = spec.uid {
            cmd.uid(uid);
        }
        if let Some(gid) = spec.gid {
            cmd.gid(gid);
        }
        before_exec(&mut cmd, spec.limits.to_set());
        let mut proc = cmd.spawn().map_err(|e| {
            let what = match &spec.cwd {
                Some(cwd) => format!("{:?} (in {})", spec.program, cwd.display()),
                None => format!("{:?}", spec.program),
            };
            io::Error::new(e.kind(), format!("starting {what}: {e}"))
        })?;
        let pid = Pid::from_child(&proc);
        let reactor = worker.reactor();
        let pipes = (|| {
            let pipe = |fd: Option<OwnedFd>, initial| -> io::Result<Source<OwnedFd>> {
                let fd = fd.ok_or_else(|| io::Error::other("a pipe is missing"))?;
                rustix::io::ioctl_fionbio(&fd, true)?;
                Source::new(fd, reactor, initial)
            };
            // An empty pipe takes writes: stdin is tried before waiting.
            let stdin = pipe(proc.stdin.take().map(OwnedFd::from), WRITE)?;
            let stdout = pipe(proc.stdout.take().map(OwnedFd::from), 0)?;
            let stderr = pipe(proc.stderr.take().map(OwnedFd::from), 0)?;
            Ok((stdin, stdout, stderr, Watch::open(pid, reactor)?))
        })();
        let (stdin, stdout, stderr, watch) = match pipes {
            Ok(parts) => parts,
            Err(e) => {
                // Not left behind: SIGKILL is not refused, so the wait is short.
                signal_group(pid, Signal::KILL);
                let _ = proc.wait();
                return Err(e);
            }
        };
        let child = Child {
            pid,
            route: spec.route.clone(),
            stdin: Some(stdin),
            stdout,
            state: State::Running {
                proc,
                watch,
                asked: Ended::OnItsOwn,
            },
        };
        tracing::debug!(target: LOG_TARGET, route = spec.route.as_str(), pid = child.pid(), program = spec.program.as_str(), "started");
        worker
            .spawn(log_stderr(stderr, spec.route.clone(), child.pid()))
            .detach();
        Ok(child)
    }

    /// Its process id, which is also its process group's id.
    pub(crate) fn pid(&self) -> u32 {
        self.pid.as_raw_nonzero().get().unsigned_abs()
    }

    /// Reads from its stdout once there is something to read; `Ok(0)` is
    /// the end (every process that held its stdout has closed it).
    pub(crate) fn poll_read(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let len = buf.len();
        self.stdout.poll_attempt(READ, cx, || {
            self.stdout.attempt(
                READ,
                |fd| Ok(rustix::io::read(fd, &mut *buf)?),
                // Short (but not the end): the pipe is empty.
                |&n| n > 0 && n < len,
            )
        })
    }

    /// Writes to its stdin once the pipe has room. A child that is gone
    /// (or closed its stdin) is a `BrokenPipe` error; so is a write after
    /// [`Child::close_stdin`]. (SIGPIPE is ignored, as in every Rust binary.)
    pub(crate) fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let Some(stdin) = &self.stdin else {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the child's stdin is closed",
            )));
        };
        let want = buf.len();
        stdin.poll_attempt(WRITE, cx, || {
            stdin.attempt(
                WRITE,
                |fd| Ok(rustix::io::write(fd, buf)?),
                // Short: the pipe is full.
                |&n| n < want,
            )
        })
    }

    /// Writes all of `bytes` to its stdin (see [`Child::poll_write`]).
    #[cfg(test)]
    pub(crate) async fn write_all(&self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            let n = future::poll_fn(|cx| self.poll_write(cx, bytes)).await?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            bytes = &bytes[n..];
        }
        Ok(())
    }

    /// Closes its stdin: the end of its input, the first step of the
    /// transport's shutdown. An exit seen after this is reported as
    /// [`Ended::AfterStdinClosed`] (one that came before it, as on its own).
    pub(crate) fn close_stdin(&mut self) {
        if self.stdin.is_none() {
            return;
        }
        self.look();
        self.stdin = None;
        self.step(Ended::AfterStdinClosed);
    }

    /// Ready once it has exited: how it ended. Ready again with the same
    /// [`Exit`] after that.
    ///
    /// The process is left a zombie until [`Child::shutdown`] or the drop
    /// reaps it: its pid, its group's id, stays its own until then, so
    /// that what is left of the group can be signalled safely.
    pub(crate) fn poll_exit(&mut self, cx: &mut Context<'_>) -> Poll<Exit> {
        let pid = self.pid;
        match &mut self.state {
            State::Exited { exit, .. } | State::Reaped(exit) => Poll::Ready(*exit),
            State::Running { watch, .. } => {
                let status = ready!(watch.poll_exit(pid, cx));
                Poll::Ready(self.exited(status))
            }
        }
    }

    /// The MCP stdio transport's shutdown: close its stdin and wait up to
    /// `grace` for it to exit; then SIGTERM its group and wait up to `grace`
    /// again; then SIGKILL the group and wait. Whatever is left of the group
    /// once the child has exited (early, or first) is sent SIGTERM, given
    /// `grace` to go, then SIGKILL. At most about three times `grace`,
    /// unless a process killed with SIGKILL is stuck in the kernel.
    pub(crate) async fn shutdown(mut self, grace: Duration) -> Exit {
        self.look();
        let exit = match self.exit() {
            Some(exit) => exit,
            None => self.escalate(grace).await,
        };
        self.reap();
        // Reaped, the child gives up its pid; a group with members left
        // keeps its id, and one without has nothing to signal.
        self.sweep_group(exit.how, grace).await;
        tracing::debug!(target: LOG_TARGET, route = self.route.as_str(), pid = self.pid(), "{exit}");
        exit
    }

    /// Close stdin, then SIGTERM, then SIGKILL, until the child exits.
    async fn escalate(&mut self, grace: Duration) -> Exit {
        self.close_stdin();
        for (step, signal) in [
            (Ended::AfterSigterm, Signal::TERM),
            (Ended::AfterSigkill, Signal::KILL),
        ] {
            let exited = future::or(async { Some(self.wait_exit().await) }, async {
                rt::sleep(grace).await;
                None
            })
            .await;
            if let Some(exit) = exited {
                return exit;
            }
            // An exit that came before the signal is not the signal's doing.
            self.look();
            if self.step(step) {
                signal_group(self.pid, signal);
            }
        }
        self.wait_exit().await
    }

    /// The group, once its leader is reaped: SIGTERM (unless it had it
    /// already), `grace` to go, SIGKILL.
    async fn sweep_group(&self, how: Ended, grace: Duration) {
        if how == Ended::AfterSigkill || !group_alive(self.pid) {
            return;
        }
        if how < Ended::AfterSigterm {
            signal_group(self.pid, Signal::TERM);
        }
        let deadline = Instant::now() + grace;
        let mut pause = Duration::from_millis(1);
        while group_alive(self.pid) {
            let now = Instant::now();
            if now >= deadline {
                tracing::debug!(target: LOG_TARGET, route = self.route.as_str(), pid = self.pid(), "the group outlived its leader: SIGKILL");
                signal_group(self.pid, Signal::KILL);
                return;
            }
            rt::sleep(pause.min(deadline - now)).await;
            pause = (pause * 2).min(GROUP_POLL_MAX);
        }
    }

    async fn wait_exit(&mut self) -> Exit {
        future::poll_fn(|cx| self.poll_exit(cx)).await
    }

    /// Takes a shutdown step; false if the child has exited already.
    fn step(&mut self, step: Ended) -> bool {
        match &mut self.state {
            State::Running { asked, .. } => {
                *asked = (*asked).max(step);
                true
            }
            State::Exited { .. } | State::Reaped(_) => false,
        }
    }

    /// Whether it has exited, without waiting.
    fn look(&mut self) {
        if let State::Running { .. } = self.state {
            match exit_status(self.pid) {
                Ok(None) => {}
                Ok(Some(status)) => {
                    self.exited(Ok(status));
                }
                Err(e) => {
                    self.exited(Err(e));
                }
            }
        }
    }

    /// It has exited with `status` (or waiting for it failed: it is lost).
    fn exited(&mut self, status: io::Result<ExitStatus>) -> Exit {
        let State::Running { asked, .. } = self.state else {
            return self.exit().unwrap_or(Exit::LOST);
        };
        let status = status
            .inspect_err(|e| {
                tracing::error!(target: LOG_TARGET, route = self.route.as_str(), pid = self.pid(), error = %e, "waiting for the child failed");
            })
            .ok();
        let exit = Exit { status, how: asked };
        // Without a status it is no child of ours to reap (or signal).
        if let (State::Running { proc, .. }, Some(_)) = (
            std::mem::replace(&mut self.state, State::Reaped(exit)),
            status,
        ) {
            self.state = State::Exited { proc, exit };
        }
        exit
    }

    /// Reaps the zombie it has become.
    fn reap(&mut self) {
        if let State::Exited { proc, exit } = &mut self.state {
            let exit = *exit;
            // It has exited: the wait is over at once.
            let _ = proc.wait();
            self.state = State::Reaped(exit);
        }
    }

    /// How it ended, once it has.
    fn exit(&self) -> Option<Exit> {
        match self.state {
            State::Running { .. } => None,
            State::Exited { exit, .. } | State::Reaped(exit) => Some(exit),
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        self.stdin = None;
        match std::mem::replace(&mut self.state, State::Reaped(Exit::LOST)) {
            State::Reaped(_) => {}
            // Its zombie still holds the group's id: what is left of the
            // group can be killed, then the zombie reaped.
            State::Exited { mut proc, .. } => {
                signal_group(self.pid, Signal::KILL);
                let _ = proc.wait();
            }
            State::Running {
                mut proc,
                mut watch,
                ..
            } => {
                signal_group(self.pid, Signal::KILL);
                if !matches!(proc.try_wait(), Ok(None)) {
                    return;
                }
                // Dying takes a moment (a large process unmaps its memory):
                // reaped by a task rather than by blocking this worker.
                let pid = self.pid;
                match rt::Handle::current() {
                    Some(rt) => rt
                        .local_or_least_loaded()
                        .spawn(async move {
                            let _ = future::poll_fn(|cx| watch.poll_exit(pid, cx)).await;
                            let _ = proc.wait();
                        })
                        .detach(),
                    // No runtime left to wait on: a thread does.
                    None => {
                        let _ = std::thread::Builder::new()
                            .name("sluice-reap".into())
                            .spawn(move || {
                                let _ = proc.wait();
                            });
                    }
                }
            }
        }
    }
}

/// Sends `signal` to the process group `pgid`. An error means no process
/// of the group is left (`ESRCH`), or none we may signal: nothing to do.
fn signal_group(pgid: Pid, signal: Signal) {
    let _ = rustix::process::kill_process_group(pgid, signal);
}

/// Whether any process of the group `pgid` is left (a zombie counts until
/// its parent reaps it).
fn group_alive(pgid: Pid) -> bool {
    !matches!(
        rustix::process::test_kill_process_group(pgid),
        Err(rustix::io::Errno::SRCH)
    )
}

/// What the child does between `fork` and `exec`: mark every descriptor
/// from 3 up close-on-exec (std's pipes are on 0, 1 and 2 by then), and set
/// `limits`. (A hook here makes std `fork` rather than `posix_spawn`,
/// copying this process's page tables once per server started: the price of
/// a child that inherits nothing.)
fn before_exec(cmd: &mut Command, limits: Vec<(Resource, Rlimit)>) {
    // For the fallback below, the highest descriptor there can be.
    let max_fd = rustix::process::getrlimit(Resource::Nofile)
        .current
        .unwrap_or(1 << 20)
        .min(1 << 20) as libc::c_int;
    // SAFETY: the closure runs in the forked child, where only
    // async-signal-safe calls are allowed. It makes raw system calls only
    // (close_range and fcntl through libc, setrlimit through rustix's
    // linux_raw backend, or libc's thin wrapper), allocates nothing (`limits`
    // was built in the parent and is only read) and takes no lock; an error
    // becomes an `io::Error` from its raw errno, without allocating.
    #[allow(unsafe_code)]
    unsafe {
        cmd.pre_exec(move || {
            let cloexec = libc::syscall(
                libc::SYS_close_range,
                3 as libc::c_uint,
                libc::c_uint::MAX,
                libc::CLOSE_RANGE_CLOEXEC,
            );
            if cloexec != 0 {
                // Linux before 5.11: one descriptor at a time (EBADF for
                // those not open, which is fine).
                for fd in 3..max_fd {
                    libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
                }
            }
            for &(resource, limit) in &limits {
                rustix::process::setrlimit(resource, limit)?;
            }
            Ok(())
        });
    }
}

/// Reads a child's stderr to its end and logs it (see [`StderrLines`]).
async fn log_stderr(pipe: Source<OwnedFd>, route: String, pid: u32) {
    let mut lines = StderrLines::default();
    let mut out = Vec::new();
    let mut notice: Option<(Instant, Timer)> = None;
    loop {
        let open = future::poll_fn(|cx| {
            let read = rt::read::with_scratch(|buf| {
                let len = buf.len();
                let read = pipe.poll_attempt(READ, cx, || {
                    pipe.attempt(
                        READ,
                        |fd| Ok(rustix::io::read(fd, &mut *buf)?),
                        |&n| n > 0 && n < len,
                    )
                });
                match read {
                    Poll::Ready(Ok(0)) => Poll::Ready(false),
                    Poll::Ready(Ok(n)) => {
                        lines.feed(&buf[..n], Instant::now(), &mut out);
                        Poll::Ready(true)
                    }
                    Poll::Ready(Err(e)) => {
                        tracing::debug!(target: LOG_TARGET, route = route.as_str(), pid, error = %e, "reading stderr failed");
                        Poll::Ready(false)
                    }
                    Poll::Pending => Poll::Pending,
                }
            });
            if read.is_ready() {
                return read;
            }
            // Quiet after a flood: the count of what was left out, on time.
            let Some(at) = lines.notice_at() else {
                notice = None;
                return Poll::Pending;
            };
            if notice.as_ref().is_none_or(|(when, _)| *when != at) {
                notice = Some((at, Timer::at(at)));
            }
            let Some((_, timer)) = &mut notice else {
                return Poll::Pending;
            };
            ready!(Pin::new(timer).poll(cx));
            notice = None;
            lines.tick(Instant::now(), &mut out);
            Poll::Ready(true)
        })
        .await;
        if !open {
            lines.finish(Instant::now(), &mut out);
        }
        for logged in out.drain(..) {
            match logged {
                Logged::Line(line) => {
                    tracing::info!(target: LOG_TARGET, route = route.as_str(), pid, "{line}");
                }
                Logged::Suppressed(n) => {
                    tracing::info!(target: LOG_TARGET, route = route.as_str(), pid, "{n} stderr lines suppressed");
                }
            }
        }
        if !open {
            return;
        }
    }
}

/// One thing to log from a child's stderr.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Logged {
    /// A line, without its line ending, control characters escaped, cut to
    /// [`MAX_STDERR_LINE`] bytes (then ending in `…`).
    Line(String),
    /// This many lines were left out (over [`STDERR_LINES_PER_SECOND`]).
    Suppressed(u64),
}

/// A child's stderr, cut into lines and rate-limited, sans-IO: bytes (of
/// any split) and the time go in, [`Logged`] items come out.
///
/// Lines are counted in one-second windows, each starting at the first line
/// after the previous one ended; past [`STDERR_LINES_PER_SECOND`] in a
/// window, lines are counted instead of logged, and the count comes out
/// when the window is over ([`StderrLines::notice_at`]), or at the end.
/// Blank lines are skipped. A line holds at most [`MAX_STDERR_LINE`] bytes
/// in memory; the rest of it is dropped as it arrives.
#[derive(Debug, Default)]
struct StderrLines {
    /// The line so far.
    line: Vec<u8>,
    /// It was longer than `line` holds.
    cut: bool,
    /// The current window's start, and the lines logged in it.
    window: Option<(Instant, u32)>,
    /// Lines left out, not yet reported.
    suppressed: u64,
}

const WINDOW: Duration = Duration::from_secs(1);

impl StderrLines {
    fn feed(&mut self, mut bytes: &[u8], now: Instant, out: &mut Vec<Logged>) {
        while let Some(i) = memchr::memchr(b'\n', bytes) {
            self.push(&bytes[..i]);
            self.end_line(now, out);
            bytes = &bytes[i + 1..];
        }
        self.push(bytes);
    }

    /// The end of the stream, at `now`: the last line, if unfinished, and
    /// the count.
    fn finish(&mut self, now: Instant, out: &mut Vec<Logged>) {
        if !self.line.is_empty() {
            self.end_line(now, out);
        }
        self.report(out);
    }

    /// When a count of left-out lines is due, if one is waiting.
    fn notice_at(&self) -> Option<Instant> {
        match self.window {
            Some((start, _)) if self.suppressed > 0 => Some(start + WINDOW),
            _ => None,
        }
    }

    /// The time is `now`: the count, if its window is over.
    fn tick(&mut self, now: Instant, out: &mut Vec<Logged>) {
        if self.notice_at().is_some_and(|at| now >= at) {
            self.report(out);
            self.window = None;
        }
    }

    fn push(&mut self, part: &[u8]) {
        let room = MAX_STDERR_LINE - self.line.len();
        if part.len() > room {
            self.cut = true;
        }
        self.line.extend_from_slice(&part[..part.len().min(room)]);
    }

    fn end_line(&mut self, now: Instant, out: &mut Vec<Logged>) {
        let blank = self.line.iter().all(u8::is_ascii_whitespace);
        if !blank {
            let (start, logged) = match self.window {
                Some((start, logged)) if now.duration_since(start) < WINDOW => (start, logged),
                // A new window: the count of the last one goes first.
                _ => {
                    self.report(out);
                    (now, 0)
                }
            };
            let admitted = logged < STDERR_LINES_PER_SECOND;
            self.window = Some((start, logged + u32::from(admitted)));
            if admitted {
                out.push(Logged::Line(render(&self.line, self.cut)));
            } else {
                self.suppressed += 1;
            }
        }
        self.line.clear();
        self.cut = false;
    }

    fn report(&mut self, out: &mut Vec<Logged>) {
        if self.suppressed > 0 {
            out.push(Logged::Suppressed(std::mem::take(&mut self.suppressed)));
        }
    }
}

/// A stderr line as logged: no trailing CR, invalid UTF-8 replaced, control
/// characters but tab escaped (a child cannot move a terminal's cursor).
fn render(line: &[u8], cut: bool) -> String {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let text = String::from_utf8_lossy(line);
    let mut shown = String::with_capacity(text.len() + 3);
    for c in text.chars() {
        if c.is_control() && c != '\t' {
            shown.extend(c.escape_default());
        } else {
            shown.push(c);
        }
    }
    if cut {
        shown.push('…');
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rt::Runtime;
    use std::sync::Mutex;

    /// Runs `test` on a runtime of its own (one worker), failing it if it
    /// takes more than a minute.
    fn on_rt<T: Send + 'static>(test: impl Future<Output = T> + Send + 'static) -> T {
        let rt = Runtime::start("stdio-test", 1).unwrap();
        let out = rt.handle().block_on(async move {
            future::or(test, async {
                rt::sleep(Duration::from_secs(60)).await;
                panic!("the test took over a minute");
            })
            .await
        });
        rt.stop();
        out
    }

    fn sh(script: &str) -> ChildSpec {
        ChildSpec {
            program: "/bin/sh".into(),
            args: vec!["-c".into(), script.into()],
            env: vec![("PATH".into(), "/usr/bin:/bin".into())],
            route: "stdio-test".into(),
            ..ChildSpec::default()
        }
    }

    async fn read_some(child: &Child) -> Vec<u8> {
        let mut buf = [0u8; 4096];
        let n = future::poll_fn(|cx| child.poll_read(cx, &mut buf))
            .await
            .unwrap();
        buf[..n].to_vec()
    }

    /// The next line of stdout (`pending` holds what came after it), or
    /// `None` at the end.
    async fn read_line(child: &Child, pending: &mut Vec<u8>) -> Option<String> {
        loop {
            if let Some(i) = pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = pending.drain(..=i).collect();
                return Some(String::from_utf8(line[..i].to_vec()).unwrap());
            }
            let more = read_some(child).await;
            if more.is_empty() {
                return None;
            }
            pending.extend_from_slice(&more);
        }
    }

    async fn read_to_end(child: &Child) -> String {
        let mut all = Vec::new();
        loop {
            let more = read_some(child).await;
            if more.is_empty() {
                return String::from_utf8(all).unwrap();
            }
            all.extend_from_slice(&more);
        }
    }

    /// Whether `pid` is gone for good: no such process (`zombie_ok`: or a
    /// zombie, an orphan that the init of this machine has yet to reap).
    fn gone(pid: u32, zombie_ok: bool) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => true,
            // "pid (comm) S ...": the state follows the last ')'.
            Ok(stat) => {
                zombie_ok
                    && stat
                        .rsplit(')')
                        .next()
                        .is_some_and(|rest| rest.trim_start().starts_with('Z'))
            }
        }
    }

    /// Waits (at most ten seconds) for `pid` to be gone.
    async fn wait_gone(pid: u32, zombie_ok: bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !gone(pid, zombie_ok) {
            if Instant::now() >= deadline {
                return false;
            }
            rt::sleep(Duration::from_millis(10)).await;
        }
        true
    }

    fn status(raw: i32, how: Ended) -> Exit {
        Exit {
            status: Some(ExitStatus::from_raw(raw)),
            how,
        }
    }

    #[test]
    fn exit_says_how_it_ended_in_a_few_exact_words() {
        let cases = [
            (status(3 << 8, Ended::OnItsOwn), "exited with status 3"),
            (
                status(0, Ended::AfterStdinClosed),
                "exited with status 0 after stdin closed",
            ),
            (status(11, Ended::OnItsOwn), "killed by signal 11 (SIGSEGV)"),
            (
                status(9, Ended::AfterSigkill),
                "killed by signal 9 (SIGKILL) at shutdown",
            ),
            (
                status(15, Ended::AfterSigterm),
                "killed by signal 15 (SIGTERM) at shutdown",
            ),
            (
                status(1 << 8, Ended::AfterSigterm),
                "exited with status 1 after SIGTERM",
            ),
            (
                status(6, Ended::AfterSigterm),
                "killed by signal 6 (SIGABRT) after SIGTERM",
            ),
            (
                Exit {
                    status: None,
                    how: Ended::OnItsOwn,
                },
                "ended, its status unknown",
            ),
        ];
        for (exit, words) in cases {
            assert_eq!(exit.to_string(), words);
        }
        assert_eq!(status(3 << 8, Ended::OnItsOwn).code(), Some(3));
        assert_eq!(status(11, Ended::OnItsOwn).signal(), Some(11));
    }

    #[test]
    fn lines_echo_back_and_closing_stdin_ends_the_child() {
        let exit = on_rt(async {
            let mut child = Child::spawn(&sh(r#"while read l; do echo "$l"; done"#)).unwrap();
            child.write_all(b"one\ntwo\n").await.unwrap();
            let mut pending = Vec::new();
            assert_eq!(
                read_line(&child, &mut pending).await.as_deref(),
                Some("one")
            );
            assert_eq!(
                read_line(&child, &mut pending).await.as_deref(),
                Some("two")
            );
            child.write_all(b"three\n").await.unwrap();
            assert_eq!(
                read_line(&child, &mut pending).await.as_deref(),
                Some("three")
            );
            child.close_stdin();
            assert_eq!(read_to_end(&child).await, "");
            let err = child.write_all(b"late\n").await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
            let exit = future::poll_fn(|cx| child.poll_exit(cx)).await;
            // Seen once, the same ever after, shutdown included, which reaps it.
            assert_eq!(future::poll_fn(|cx| child.poll_exit(cx)).await, exit);
            let pid = child.pid();
            assert_eq!(child.shutdown(Duration::from_secs(5)).await, exit);
            assert!(gone(pid, false));
            exit
        });
        assert_eq!(exit.how(), Ended::AfterStdinClosed);
        assert_eq!(exit.code(), Some(0));
        assert_eq!(exit.to_string(), "exited with status 0 after stdin closed");
    }

    #[test]
    fn a_megabyte_goes_through_cat_both_ways() {
        let (sent, got) = on_rt(async {
            let mut spec = sh("");
            spec.program = "cat".into();
            spec.args.clear();
            let mut child = Child::spawn(&spec).unwrap();
            let sent: Vec<u8> = (0..20_000)
                .flat_map(|i| format!("line {i} of the megabyte ...........\n").into_bytes())
                .collect();
            assert!(sent.len() > 700_000);
            // More than a pipe holds: the writer waits for the reader.
            let (_, got) = future::zip(
                async {
                    child.write_all(&sent).await.unwrap();
                },
                async {
                    let mut got = Vec::new();
                    while got.len() < sent.len() {
                        let more = read_some(&child).await;
                        assert!(!more.is_empty(), "cat ended early");
                        got.extend_from_slice(&more);
                    }
                    got
                },
            )
            .await;
            child.close_stdin();
            assert_eq!(read_to_end(&child).await, "");
            assert_eq!(child.shutdown(Duration::from_secs(5)).await.code(), Some(0));
            (sent, got)
        });
        assert!(got == sent, "{} bytes back of {}", got.len(), sent.len());
    }

    #[test]
    fn the_environment_is_exactly_the_spec_and_the_cwd_applies() {
        let dir = std::env::temp_dir().canonicalize().unwrap();
        let cwd = dir.clone();
        let (env, pwd) = on_rt(async move {
            // `env` itself, found on the spec's PATH (not this process's).
            let mut spec = sh("");
            spec.program = "env".into();
            spec.args.clear();
            spec.env.push(("SLUICE_TEST".into(), "a b=c".into()));
            let child = Child::spawn(&spec).unwrap();
            let env = read_to_end(&child).await;
            let mut spec = sh("pwd");
            spec.cwd = Some(cwd);
            let child = Child::spawn(&spec).unwrap();
            (env, read_to_end(&child).await)
        });
        let mut env: Vec<&str> = env.lines().collect();
        env.sort();
        assert_eq!(env, ["PATH=/usr/bin:/bin", "SLUICE_TEST=a b=c"]);
        assert_eq!(pwd.trim_end(), dir.to_str().unwrap());
    }

    #[test]
    fn the_child_has_no_descriptor_but_its_three_pipes() {
        let fds = on_rt(async {
            // A descriptor without close-on-exec (dup(2) does not set it),
            // as one this process inherited would be: std alone passes it on.
            let null = std::fs::File::open("/dev/null").unwrap();
            let leaky = rustix::io::dup(&null).unwrap();
            let mut spec = sh("");
            spec.program = "ls".into();
            spec.args = vec!["/proc/self/fd".into()];
            let child = Child::spawn(&spec).unwrap();
            let fds = read_to_end(&child).await;
            drop(leaky);
            fds
        });
        let mut fds: Vec<u32> = fds.lines().map(|l| l.parse().unwrap()).collect();
        fds.sort();
        // 0, 1, 2, and the directory `ls` is reading.
        assert_eq!(fds.len(), 4, "{fds:?}");
        assert_eq!(fds[..3], [0, 1, 2], "{fds:?}");
    }

    #[test]
    fn shutdown_takes_the_whole_group() {
        let (exit, grandchild, gone) = on_rt(async {
            let child = Child::spawn(&sh("sleep 1000 & echo $!; wait")).unwrap();
            let mut pending = Vec::new();
            let grandchild: u32 = read_line(&child, &mut pending)
                .await
                .unwrap()
                .parse()
                .unwrap();
            assert!(!gone(grandchild, false));
            // `wait` does not read stdin: SIGTERM ends it, and the sleep.
            let exit = child.shutdown(Duration::from_millis(300)).await;
            (exit, grandchild, wait_gone(grandchild, true).await)
        });
        assert!(gone, "the grandchild {grandchild} outlived the shutdown");
        assert_eq!(exit.how(), Ended::AfterSigterm);
        assert_eq!(exit.signal(), Some(15));
        assert_eq!(
            exit.to_string(),
            "killed by signal 15 (SIGTERM) at shutdown"
        );
    }

    #[test]
    fn shutdown_takes_the_group_the_leader_left_behind() {
        let (exit, grandchild, gone) = on_rt(async {
            let child = Child::spawn(&sh("sleep 1000 & echo $!; read x; exit 7")).unwrap();
            let mut pending = Vec::new();
            let grandchild: u32 = read_line(&child, &mut pending)
                .await
                .unwrap()
                .parse()
                .unwrap();
            // The shell exits at the end of its stdin; the sleep would not.
            let exit = child.shutdown(Duration::from_millis(300)).await;
            (exit, grandchild, wait_gone(grandchild, true).await)
        });
        assert_eq!(exit.to_string(), "exited with status 7 after stdin closed");
        assert!(gone, "the grandchild {grandchild} outlived the shutdown");
    }

    #[test]
    fn a_child_that_ignores_sigterm_is_killed() {
        let exit = on_rt(async {
            let child =
                Child::spawn(&sh("trap '' TERM; echo ready; while :; do sleep 1; done")).unwrap();
            let mut pending = Vec::new();
            // The trap is set before the shutdown begins.
            assert_eq!(
                read_line(&child, &mut pending).await.as_deref(),
                Some("ready")
            );
            child.shutdown(Duration::from_millis(200)).await
        });
        assert_eq!(exit.how(), Ended::AfterSigkill);
        assert_eq!(exit.signal(), Some(9));
        assert_eq!(exit.to_string(), "killed by signal 9 (SIGKILL) at shutdown");
    }

    #[test]
    fn a_crash_and_an_exit_code_are_reported_as_they_were() {
        let (crash, code) = on_rt(async {
            let mut child = Child::spawn(&sh("kill -SEGV $$")).unwrap();
            let crash = future::poll_fn(|cx| child.poll_exit(cx)).await;
            let mut child = Child::spawn(&sh("exit 3")).unwrap();
            let code = future::poll_fn(|cx| child.poll_exit(cx)).await;
            (crash, code)
        });
        assert_eq!(crash.how(), Ended::OnItsOwn);
        assert_eq!(crash.to_string(), "killed by signal 11 (SIGSEGV)");
        assert_eq!(code.to_string(), "exited with status 3");
    }

    #[test]
    fn an_exited_child_holds_its_pid_until_it_is_dropped() {
        let (exit, zombie, reaped) = on_rt(async {
            let mut child = Child::spawn(&sh("exit 5")).unwrap();
            let pid = child.pid();
            let exit = future::poll_fn(|cx| child.poll_exit(cx)).await;
            // Its pid (its group's id) is not free for another process yet.
            let zombie = !gone(pid, false) && gone(pid, true);
            drop(child);
            (exit, zombie, gone(pid, false))
        });
        assert_eq!(exit.code(), Some(5));
        assert!(zombie, "not a zombie after its exit");
        assert!(reaped, "not reaped when dropped");
    }

    #[test]
    fn the_exit_is_seen_without_a_pidfd_too() {
        let exit = on_rt(async {
            let mut child = Child::spawn(&sh("sleep 0.1; exit 4")).unwrap();
            if let State::Running { watch, .. } = &mut child.state {
                *watch = Watch::Poll(None);
            }
            future::poll_fn(|cx| child.poll_exit(cx)).await
        });
        assert_eq!(exit.code(), Some(4));
        assert_eq!(exit.how(), Ended::OnItsOwn);
    }

    #[test]
    fn writing_to_a_child_that_is_gone_is_an_error_not_a_signal() {
        let err = on_rt(async {
            let mut child = Child::spawn(&sh("exit 0")).unwrap();
            future::poll_fn(|cx| child.poll_exit(cx)).await;
            // Another test's child, forked (not yet exec'd) while this one's
            // pipe was open, may hold its read end a moment longer: a write
            // then lands in the pipe. The next one, once it is let go, fails.
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                match child.write_all(b"{}\n").await {
                    Err(e) => break e,
                    Ok(()) if Instant::now() < deadline => {
                        rt::sleep(Duration::from_millis(10)).await;
                    }
                    Ok(()) => panic!("writes to a child that is gone went on succeeding"),
                }
            }
        });
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
    }

    #[test]
    fn a_megabyte_on_stderr_does_not_stall_the_child() {
        let (out, exit) = on_rt(async {
            let mut child = Child::spawn(&sh(
                "yes 'a line on stderr' | head -c 1048576 >&2; echo done",
            ))
            .unwrap();
            let out = read_to_end(&child).await;
            (out, future::poll_fn(|cx| child.poll_exit(cx)).await)
        });
        assert_eq!(out, "done\n");
        assert_eq!(exit.code(), Some(0));
    }

    /// Log lines written by a `tracing` subscriber, kept for a test.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
        type Writer = Captured;

        fn make_writer(&'a self) -> Captured {
            self.clone()
        }
    }

    #[test]
    fn stderr_lines_are_logged_with_route_and_pid_and_rate_limited() {
        let captured = Captured::default();
        let log = captured.clone();
        let (pid, accounted) = on_rt(async move {
            // tracing-core caches each callsite's interest process-wide;
            // while only one dispatcher is registered, a callsite first hit
            // on another thread (another test's worker, which has none) is
            // cached as never enabled. A second one, inert, makes it ask
            // every registered dispatcher instead.
            static INERT: std::sync::OnceLock<tracing::Dispatch> = std::sync::OnceLock::new();
            INERT.get_or_init(|| {
                tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default())
            });
            // This test's own worker logs to `captured` from now on.
            let subscriber = tracing_subscriber::fmt()
                .with_writer(captured)
                .with_ansi(false)
                .without_time()
                .with_max_level(tracing::Level::INFO)
                .finish();
            std::mem::forget(tracing::subscriber::set_default(subscriber));
            let mut spec = sh(concat!(
                "i=0; while [ $i -lt 50 ]; do echo \"line $i\" >&2; i=$((i+1)); done; ",
                r"printf 'last \033[31mred' >&2",
            ));
            spec.route = "logged-route".into();
            let mut child = Child::spawn(&spec).unwrap();
            let pid = child.pid();
            future::poll_fn(|cx| child.poll_exit(cx)).await;
            // The stderr task logs on its own time: wait for all 51 lines
            // to be logged or counted.
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
                let accounted: u64 = text
                    .lines()
                    .map(|l| {
                        if let Some((n, _)) = l
                            .split_once(": ")
                            .and_then(|(_, m)| m.split_once(" stderr lines suppressed"))
                        {
                            n.parse::<u64>().unwrap()
                        } else {
                            1
                        }
                    })
                    .sum();
                if accounted >= 51 || Instant::now() >= deadline {
                    return (pid, (accounted, text));
                }
                rt::sleep(Duration::from_millis(10)).await;
            }
        });
        let (accounted, text) = accounted;
        assert_eq!(accounted, 51, "{text}");
        let first = text.lines().next().unwrap();
        assert!(first.contains("INFO sluice::stdio: line 0"), "{text}");
        assert!(first.contains("route=\"logged-route\""), "{text}");
        assert!(first.contains(&format!("pid={pid}")), "{text}");
        // At most 20 lines a second, from 51 written at once.
        let logged = text.lines().filter(|l| l.contains(": line ")).count();
        assert!(logged <= 40, "{text}");
        // A terminal escape arrives escaped.
        if text.contains(": last ") {
            assert!(text.contains(r"last \u{1b}[31mred"), "{text}");
        }
    }

    #[test]
    fn rlimits_are_set_in_the_child() {
        let out = on_rt(async {
            let mut spec = sh("ulimit -n; ulimit -Hn; ulimit -v; ulimit -t");
            spec.limits = Rlimits {
                address_space: Some(1 << 30),
                cpu_seconds: Some(100),
                open_files: Some(64),
            };
            read_to_end(&Child::spawn(&spec).unwrap()).await
        });
        // ulimit -v counts KiB.
        assert_eq!(out, "64\n64\n1048576\n100\n");
    }

    #[test]
    fn uid_and_gid_apply() {
        if !rustix::process::getuid().is_root() {
            eprintln!("skipped: setting another uid takes root");
            return;
        }
        let out = on_rt(async {
            let mut spec = sh("id -u; id -g");
            spec.uid = Some(65534);
            spec.gid = Some(65534);
            spec.cwd = Some("/".into());
            read_to_end(&Child::spawn(&spec).unwrap()).await
        });
        assert_eq!(out, "65534\n65534\n");
    }

    #[test]
    fn dropping_a_child_leaves_no_process_behind() {
        let (pid, grandchild, gone) = on_rt(async {
            let child = Child::spawn(&sh("sleep 1000 & echo $!; wait")).unwrap();
            let pid = child.pid();
            let mut pending = Vec::new();
            let grandchild: u32 = read_line(&child, &mut pending)
                .await
                .unwrap()
                .parse()
                .unwrap();
            drop(child);
            // The child itself is reaped here (no zombie); the grandchild,
            // an orphan, by whoever inherited it.
            let gone = (
                wait_gone(pid, false).await,
                wait_gone(grandchild, true).await,
            );
            (pid, grandchild, gone)
        });
        assert_eq!(gone, (true, true), "child {pid}, grandchild {grandchild}");
    }

    #[test]
    fn a_missing_program_is_an_error_that_names_it() {
        let (bare, path, cwd) = on_rt(async {
            let mut spec = sh("");
            spec.program = "sluice-no-such-program".into();
            let bare = Child::spawn(&spec).map(|c| c.pid()).unwrap_err();
            spec.program = "/nonexistent/sluice-no-such-program".into();
            let path = Child::spawn(&spec).map(|c| c.pid()).unwrap_err();
            let mut spec = sh("true");
            spec.cwd = Some("/nonexistent-sluice-dir".into());
            let cwd = Child::spawn(&spec).map(|c| c.pid()).unwrap_err();
            (bare, path, cwd)
        });
        assert_eq!(bare.kind(), io::ErrorKind::NotFound);
        assert!(
            bare.to_string().contains("\"sluice-no-such-program\""),
            "{bare}"
        );
        assert!(
            path.to_string()
                .contains("\"/nonexistent/sluice-no-such-program\""),
            "{path}"
        );
        assert!(cwd.to_string().contains("/nonexistent-sluice-dir"), "{cwd}");
    }

    /// Feeds `bytes` at `now`, in pieces of `step` bytes.
    fn feed(lines: &mut StderrLines, bytes: &[u8], step: usize, now: Instant) -> Vec<Logged> {
        let mut out = Vec::new();
        for piece in bytes.chunks(step) {
            lines.feed(piece, now, &mut out);
        }
        out
    }

    fn line(s: &str) -> Logged {
        Logged::Line(s.into())
    }

    #[test]
    fn stderr_lines_are_the_same_however_the_pipe_splits_them() {
        let input = b"first\r\n\n  \nsecond\tline\n\x1b[2Jclear\nbad \xff byte\npartial";
        let t = Instant::now();
        let mut whole = None;
        for step in [input.len(), 1, 2, 7] {
            let mut lines = StderrLines::default();
            let mut out = feed(&mut lines, input, step, t);
            lines.finish(t, &mut out);
            assert_eq!(
                out,
                [
                    line("first"),
                    line("second\tline"),
                    line(r"\u{1b}[2Jclear"),
                    line("bad \u{fffd} byte"),
                    line("partial"),
                ],
                "in pieces of {step}"
            );
            assert!(whole.is_none_or(|w| w == out));
            whole = Some(out);
        }
    }

    #[test]
    fn a_long_stderr_line_is_cut_and_the_next_one_is_whole() {
        let t = Instant::now();
        let mut input = vec![b'x'; 5000];
        input.extend_from_slice(b"\nafter\n");
        for step in [input.len(), 100, 1] {
            let mut lines = StderrLines::default();
            let out = feed(&mut lines, &input, step, t);
            let mut cut = "x".repeat(MAX_STDERR_LINE);
            cut.push('…');
            assert_eq!(out, [line(&cut), line("after")], "in pieces of {step}");
            assert!(lines.line.capacity() <= 2 * MAX_STDERR_LINE);
        }
    }

    #[test]
    fn a_flood_of_stderr_is_logged_twenty_lines_a_second_then_counted() {
        let t = Instant::now();
        let ms = |n| t + Duration::from_millis(n);
        let mut lines = StderrLines::default();
        let flood: String = (0..25).map(|i| format!("l{i}\n")).collect();
        let out = feed(&mut lines, flood.as_bytes(), flood.len(), t);
        assert_eq!(out.len(), 20);
        assert_eq!(out[19], line("l19"));
        // The count is due when the window is over, not before.
        assert_eq!(lines.notice_at(), Some(ms(1000)));
        let mut out = Vec::new();
        lines.tick(ms(999), &mut out);
        assert_eq!(out, []);
        lines.tick(ms(1000), &mut out);
        assert_eq!(out, [Logged::Suppressed(5)]);
        assert_eq!(lines.notice_at(), None);
        // A new window opens with the next line.
        let out = feed(&mut lines, b"later\n", 6, ms(1500));
        assert_eq!(out, [line("later")]);

        // Without a tick, the count comes before the next window's first line,
        let mut lines = StderrLines::default();
        feed(&mut lines, flood.as_bytes(), 1, t);
        let out = feed(&mut lines, b"next\n", 1, ms(1200));
        assert_eq!(out, [Logged::Suppressed(5), line("next")]);
        // or at the end.
        let mut lines = StderrLines::default();
        let mut out = feed(&mut lines, flood.as_bytes(), 3, t);
        out.clear();
        lines.finish(ms(10), &mut out);
        assert_eq!(out, [Logged::Suppressed(5)]);
    }
}
