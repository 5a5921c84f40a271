//! The binary's one runtime: worker threads, each with its own
//! edge-triggered epoll ([`reactor`], through rustix), its own run
//! queue (`async-task` runnables) and its own timers, running the tasks
//! spawned on it and only those. Every socket of the process (and a stdio
//! child's pipes and pidfd, `crate::stdio`) is registered with a worker;
//! nothing else polls.
//!
//! A connection's task, its sockets and (mostly) its pooled upstream
//! connections live on one worker, so an event wakes a task on the thread
//! that polled it: no hand-off between threads per wake-up. Wake-ups from
//! other threads (another worker's task, a channel, the DNS threads) go
//! through the worker's remote queue and, if it sleeps, `Poller::notify`.
//!
//! What runs off the workers and how it reaches them:
//! - [`spawn_here`] puts a task on the caller's own worker (off the
//!   workers, the least loaded one of the runtime started last);
//!   [`Handle::spawn`] on the least loaded worker of a named runtime.
//! - [`Handle::block_on`] (main thread, tests) spawns the future and parks
//!   the calling thread until it is done: it runs no reactor.
//! - Sockets created off the workers (a test's thread) are registered with
//!   a worker of the runtime the caller names, and used from their thread
//!   like any other.
//! - [`Timer`] waits in the timer list of the worker that polls it (see [`timer`]).
//! - DNS lookups run on blocking threads of their own ([`dns`]); signals
//!   arrive through a self-pipe on a worker's poller ([`signal`]).

pub(crate) mod dns;
pub(crate) mod mailbox;
pub mod net;
mod reactor;
pub(crate) mod read;
pub(crate) mod signal;
mod timer;

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use async_task::Runnable;
use slab::Slab;

pub(crate) use reactor::{Events, READ, Reactor, Source, WRITE};
pub(crate) use timer::{Timer, sleep};

/// A spawned task: awaiting it gives its output, dropping it cancels it,
/// [`Task::detach`](async_task::Task::detach) lets it run on its own (as
/// `smol::Task`).
pub(crate) type Task<T> = async_task::Task<T>;

/// Runnables a worker runs before it looks at its sockets again.
const BATCH: usize = 128;

/// One worker: a reactor, a run queue, timers, the tasks spawned on it.
pub(crate) struct Worker {
    reactor: Arc<Reactor>,
    /// Tasks woken from other threads.
    remote: Mutex<Remote>,
    /// In (or about to enter) its wait: a remote wake-up must interrupt it.
    sleeping: AtomicBool,
    stop: AtomicBool,
    /// Every live task's waker, so stopping the worker can cancel them.
    tasks: Mutex<Slab<Waker>>,
    /// Live tasks, for choosing the least loaded worker.
    load: AtomicUsize,
    timers: Mutex<timer::Timers>,
}

#[derive(Default)]
struct Remote {
    queue: Vec<Runnable>,
    /// The worker has stopped: a task scheduled now is dropped (cancelled).
    closed: bool,
}

thread_local! {
    /// The worker this thread runs, if any, and its runtime.
    static CURRENT: RefCell<Option<(Arc<Worker>, Handle)>> = const { RefCell::new(None) };
    /// Its identity, checked on every wake-up without touching the Arc.
    static CURRENT_ID: Cell<usize> = const { Cell::new(0) };
    /// Runnables woken on this thread.
    static QUEUE: RefCell<VecDeque<Runnable>> = const { RefCell::new(VecDeque::new()) };
    /// Tasks that ended on this thread, to forget after the batch.
    static FINISHED: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

impl Worker {
    fn new() -> io::Result<Worker> {
        Ok(Worker {
            reactor: Reactor::new()?,
            remote: Mutex::default(),
            sleeping: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            tasks: Mutex::new(Slab::new()),
            load: AtomicUsize::new(0),
            timers: Mutex::default(),
        })
    }

    fn id(&self) -> usize {
        self as *const Worker as usize
    }

    fn schedule(self: &Arc<Self>, runnable: Runnable) {
        if CURRENT_ID.with(Cell::get) == self.id() {
            QUEUE.with(|q| q.borrow_mut().push_back(runnable));
            return;
        }
        let mut remote = lock(&self.remote);
        if remote.closed {
            drop(remote);
            // Cancels the task: its future is dropped here.
            drop(runnable);
            return;
        }
        remote.queue.push(runnable);
        drop(remote);
        self.notify_if_sleeping();
    }

    /// Interrupt the worker's wait, if it is in (or entering) one.
    fn notify_if_sleeping(&self) {
        if self.sleeping.swap(false, Ordering::SeqCst) {
            self.reactor.wake();
        }
    }

    /// Run `future` on this worker.
    pub(crate) fn spawn<F>(self: &Arc<Self>, future: F) -> Task<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let mut tasks = lock(&self.tasks);
        let slot = tasks.vacant_entry();
        let future = Tracked {
            inner: future,
            worker: self.clone(),
            key: slot.key(),
        };
        let worker = self.clone();
        // A task that panics ends alone: the panic is caught in its poll
        // (and raised again in whoever awaits it), never unwinding through
        // the worker and every connection it serves.
        let (runnable, task) = async_task::Builder::new()
            .propagate_panic(true)
            .spawn(move |_| future, move |r| worker.schedule(r));
        slot.insert(runnable.waker());
        self.load.fetch_add(1, Ordering::Relaxed);
        drop(tasks);
        runnable.schedule();
        task
    }

    pub(crate) fn reactor(&self) -> &Arc<Reactor> {
        &self.reactor
    }

    fn run(self: Arc<Self>, handle: Handle) {
        CURRENT.with(|c| *c.borrow_mut() = Some((self.clone(), handle)));
        CURRENT_ID.with(|c| c.set(self.id()));
        let mut events = Events::with_capacity(1024);
        let mut ready = Vec::new();
        let mut remote = Vec::new();
        let mut due = Vec::new();
        while !self.stop.load(Ordering::Acquire) {
            std::mem::swap(&mut remote, &mut lock(&self.remote).queue);
            QUEUE.with(|q| q.borrow_mut().extend(remote.drain(..)));
            for _ in 0..BATCH {
                let Some(runnable) = QUEUE.with(|q| q.borrow_mut().pop_front()) else {
                    break;
                };
                runnable.run();
            }
            self.forget_finished();
            let timeout = if QUEUE.with(|q| !q.borrow().is_empty()) {
                Some(Duration::ZERO)
            } else {
                // Set before looking at the remote queue and the timers:
                // whatever another thread adds after the look notifies.
                self.sleeping.store(true, Ordering::SeqCst);
                if lock(&self.remote).queue.is_empty() {
                    lock(&self.timers)
                        .next()
                        .map(|at| at.saturating_duration_since(Instant::now()))
                } else {
                    Some(Duration::ZERO)
                }
            };
            if let Err(e) = self.reactor.wait(&mut events, timeout) {
                // Not expected from epoll_wait with valid arguments; don't spin.
                tracing::error!(error = %e, "waiting for events failed");
                std::thread::sleep(Duration::from_millis(10));
            }
            self.sleeping.store(false, Ordering::SeqCst);
            self.reactor.dispatch(&events, &mut ready);
            lock(&self.timers).take_due(Instant::now(), &mut due);
            due.drain(..).for_each(Waker::wake);
        }
        self.cancel_all();
        CURRENT.with(|c| c.borrow_mut().take());
        CURRENT_ID.with(|c| c.set(0));
    }

    fn forget_finished(&self) {
        FINISHED.with(|f| {
            let mut f = f.borrow_mut();
            if f.is_empty() {
                return;
            }
            let mut tasks = lock(&self.tasks);
            for key in f.drain(..) {
                tasks.try_remove(key);
            }
        });
    }

    /// A task's future was dropped (it ended, or was cancelled).
    fn forget(&self, key: usize) {
        self.load.fetch_sub(1, Ordering::Relaxed);
        if CURRENT_ID.with(Cell::get) == self.id() {
            // Batched: one lock per turn, not per task.
            FINISHED.with(|f| f.borrow_mut().push(key));
        } else {
            lock(&self.tasks).try_remove(key);
        }
    }

    /// Drop every task still alive, and with them their sockets: wake each
    /// (so it is scheduled) and drop its runnable instead of running it.
    fn cancel_all(&self) {
        loop {
            let wakers: Vec<Waker> = lock(&self.tasks).iter().map(|(_, w)| w.clone()).collect();
            if wakers.is_empty() {
                break;
            }
            wakers.into_iter().for_each(Waker::wake);
            let mut doomed: Vec<Runnable> = QUEUE.with(|q| q.borrow_mut().drain(..).collect());
            doomed.append(&mut lock(&self.remote).queue);
            let progressed = !doomed.is_empty();
            // Dropping a runnable drops its future (which may wake others).
            drop(doomed);
            self.forget_finished();
            if !progressed {
                // Every live task was woken, so each was queued here; not
                // reachable, but never spin on a broken invariant.
                tracing::error!("a task could not be cancelled when its worker stopped");
                break;
            }
        }
        let late = {
            let mut remote = lock(&self.remote);
            remote.closed = true;
            std::mem::take(&mut remote.queue)
        };
        drop(late);
        // Taken out before dropping: a drop may wake (queue) another.
        while let Some(rest) = QUEUE.with(|q| {
            let mut q = q.borrow_mut();
            (!q.is_empty()).then(|| std::mem::take(&mut *q))
        }) {
            drop(rest);
        }
        self.forget_finished();
    }
}

pin_project_lite::pin_project! {
    /// A task's future, and the bookkeeping when it is dropped (ended or
    /// cancelled). (An `async` block awaiting the future it captured would
    /// hold it twice: an idle connection's task was 5 KiB instead of 2.5.)
    struct Tracked<F> {
        #[pin]
        inner: F,
        worker: Arc<Worker>,
        key: usize,
    }

    impl<F> PinnedDrop for Tracked<F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            this.worker.forget(*this.key);
        }
    }
}

impl<F: Future> Future for Tracked<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.project().inner.poll(cx)
    }
}

/// A running set of workers.
struct Shared {
    workers: Box<[Arc<Worker>]>,
}

/// A runtime, for spawning on it and registering sockets with it.
#[derive(Clone)]
pub(crate) struct Handle(Arc<Shared>);

/// Runtimes started and not stopped, newest last: off the workers,
/// [`Handle::current`] is the newest.
static RUNNING: Mutex<Vec<Handle>> = Mutex::new(Vec::new());

impl Handle {
    /// The runtime of the current worker thread or, off the workers, the
    /// runtime started last that is still running.
    pub(crate) fn current() -> Option<Handle> {
        CURRENT
            .with(|c| c.borrow().as_ref().map(|(_, h)| h.clone()))
            .or_else(|| lock(&RUNNING).last().cloned())
    }

    /// The worker with the fewest live tasks.
    pub(crate) fn least_loaded(&self) -> &Arc<Worker> {
        self.0
            .workers
            .iter()
            .min_by_key(|w| w.load.load(Ordering::Relaxed))
            .unwrap_or(&self.0.workers[0])
    }

    /// This thread's worker if it is one of this runtime's, else the least
    /// loaded one: where a socket made by this thread should live.
    pub(crate) fn local_or_least_loaded(&self) -> Arc<Worker> {
        local_worker()
            .filter(|w| self.0.workers.iter().any(|o| Arc::ptr_eq(o, w)))
            .unwrap_or_else(|| self.least_loaded().clone())
    }

    /// Run `future` on the least loaded worker.
    pub(crate) fn spawn<F>(&self, future: F) -> Task<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.least_loaded().spawn(future)
    }

    /// Run `future` on a worker and block this thread (which must not be a
    /// worker) until it is done. The thread only parks: it polls nothing.
    ///
    /// # Panics
    /// On a worker thread, or if the runtime stops before `future` is done.
    pub(crate) fn block_on<F>(&self, future: F) -> F::Output
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        assert!(
            CURRENT_ID.with(Cell::get) == 0,
            "rt::block_on on a worker thread would stall its tasks"
        );
        let task = self.spawn(future).fallible();
        futures_lite::future::block_on(task).expect("the runtime stopped before the future ended")
    }
}

/// Run `future` on this thread's worker when called on one (the task that
/// spawns it and the one it spawns then share a thread, and what passes
/// between them crosses none), else on the least loaded worker.
///
/// # Panics
/// If no runtime is running.
pub(crate) fn spawn_here<F>(future: F) -> Task<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    Handle::current()
        .expect("rt::spawn_here with no runtime running")
        .local_or_least_loaded()
        .spawn(future)
}

/// Worker threads that run until [`Runtime::stop`].
pub(crate) struct Runtime {
    handle: Handle,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Runtime {
    /// Start `count` workers (at least one), their threads named `{name}0`,
    /// `{name}1`, … (at most 15 bytes show in `/proc`).
    pub(crate) fn start(name: &str, count: usize) -> io::Result<Runtime> {
        let workers = (0..count.max(1))
            .map(|_| Worker::new().map(Arc::new))
            .collect::<io::Result<Vec<_>>>()?;
        let handle = Handle(Arc::new(Shared {
            workers: workers.into(),
        }));
        let runtime = Runtime {
            handle: handle.clone(),
            threads: Mutex::new(Vec::new()),
        };
        for (i, worker) in handle.0.workers.iter().enumerate() {
            let (w, h) = (worker.clone(), handle.clone());
            let started = std::thread::Builder::new()
                .name(format!("{name}{i}"))
                .spawn(move || w.run(h));
            match started {
                Ok(thread) => lock(&runtime.threads).push(thread),
                Err(e) => {
                    runtime.stop();
                    return Err(e);
                }
            }
        }
        lock(&RUNNING).push(handle);
        Ok(runtime)
    }

    pub(crate) fn handle(&self) -> &Handle {
        &self.handle
    }

    /// The first worker.
    pub(crate) fn first(&self) -> &Arc<Worker> {
        &self.handle.0.workers[0]
    }

    /// Stop every worker, cancel what still runs on them, and wait for the
    /// threads.
    pub(crate) fn stop(&self) {
        lock(&RUNNING).retain(|h| !Arc::ptr_eq(&h.0, &self.handle.0));
        for w in self.handle.0.workers.iter() {
            w.stop.store(true, Ordering::Release);
            w.reactor.wake();
        }
        for t in std::mem::take(&mut *lock(&self.threads)) {
            let _ = t.join();
        }
    }
}

/// The worker running on this thread, if any.
fn local_worker() -> Option<Arc<Worker>> {
    CURRENT.with(|c| c.borrow().as_ref().map(|(w, _)| w.clone()))
}

/// Whether `worker` runs on this thread.
fn is_current(worker: &Worker) -> bool {
    CURRENT_ID.with(Cell::get) == worker.id()
}

/// `f` on the reactor of the worker running on this thread, if any.
pub(crate) fn with_local_reactor<R>(f: impl FnOnce(&Arc<Reactor>) -> R) -> Option<R> {
    CURRENT.with(|c| c.borrow().as_ref().map(|(w, _)| f(&w.reactor)))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::mpsc;

    fn worker_name() -> String {
        std::thread::current().name().unwrap_or_default().to_owned()
    }

    #[test]
    fn a_task_that_panics_ends_alone_and_its_worker_goes_on() {
        let rt = Runtime::start("rt-test-p", 1).unwrap();
        let (tx, rx) = mpsc::channel();
        let (gate_tx, gate_rx) = async_channel::bounded::<()>(1);
        // Waiting on the same worker while the other task panics.
        let waiting = tx.clone();
        rt.handle()
            .spawn(async move {
                gate_rx.recv().await.unwrap();
                waiting.send("survived").unwrap();
            })
            .detach();
        rt.handle()
            .spawn(async {
                panic!("a bug in one connection's task");
            })
            .detach();
        std::thread::sleep(Duration::from_millis(50));
        gate_tx.send_blocking(()).unwrap();
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)), Ok("survived"));
        rt.handle()
            .spawn(async move { tx.send("new work").unwrap() })
            .detach();
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)), Ok("new work"));
        rt.stop();
    }

    #[test]
    fn a_task_runs_on_its_worker_and_a_remote_wake_reaches_it() {
        let rt = Runtime::start("rt-test-w", 2).unwrap();
        let (tx, rx) = async_channel::bounded::<u32>(1);
        let (done_tx, done_rx) = mpsc::channel();
        rt.handle()
            .spawn(async move {
                // Sleeps in its wait until the send below wakes it from this thread.
                let n = rx.recv().await.unwrap();
                done_tx.send((n, worker_name())).unwrap();
            })
            .detach();
        std::thread::sleep(Duration::from_millis(50));
        tx.send_blocking(7).unwrap();
        let (n, name) = done_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(n, 7);
        assert!(name.starts_with("rt-test-w"), "{name}");
        rt.stop();
    }

    #[test]
    fn stopping_the_workers_drops_the_tasks_still_waiting() {
        struct Guard(mpsc::Sender<()>);
        impl Drop for Guard {
            fn drop(&mut self) {
                let _ = self.0.send(());
            }
        }
        let rt = Runtime::start("rt-test-w", 1).unwrap();
        let (tx, rx) = mpsc::channel();
        let guard = Guard(tx);
        // Held, not detached: the handle must not keep the task alive.
        let task = rt.first().spawn(async move {
            let _guard = guard;
            futures_lite::future::pending::<()>().await;
        });
        rt.stop();
        rx.recv_timeout(Duration::from_secs(10))
            .expect("the task was dropped");
        assert!(futures_lite::future::block_on(task.fallible()).is_none());
        // A task spawned onto a stopped worker is dropped at once.
        let (tx, rx) = mpsc::channel();
        let guard = Guard(tx);
        rt.first()
            .spawn(async move {
                let _guard = guard;
            })
            .detach();
        rx.recv_timeout(Duration::from_secs(10))
            .expect("the late task was dropped");
        assert_eq!(lock(&rt.first().tasks).len(), 0);
    }

    #[test]
    fn dropping_a_task_handle_cancels_it_and_frees_its_slot() {
        let rt = Runtime::start("rt-test-w", 1).unwrap();
        let task = rt.first().spawn(futures_lite::future::pending::<()>());
        let w = rt.first().clone();
        let gone = rt.handle().block_on(async move {
            drop(task);
            // Give the cancelled task's runnable a turn.
            Timer::after(Duration::from_millis(20)).await;
            w.load.load(Ordering::Relaxed)
        });
        // Only the `block_on` task itself is left.
        assert_eq!(gone, 1);
        rt.stop();
    }

    #[test]
    fn block_on_runs_on_a_worker_and_returns_the_output() {
        let rt = Runtime::start("rt-test-w", 1).unwrap();
        let name = rt.handle().block_on(async { worker_name() });
        assert_eq!(name, "rt-test-w0");
        rt.stop();
    }

    #[test]
    fn timers_fire_in_order_and_not_early() {
        let rt = Runtime::start("rt-test-w", 2).unwrap();
        let start = Instant::now();
        let order = rt.handle().block_on(async move {
            let (tx, rx) = async_channel::unbounded();
            for ms in [60u64, 20, 40] {
                let tx = tx.clone();
                spawn_here(async move {
                    let at = sleep(Duration::from_millis(ms)).await;
                    assert!(Instant::now() >= at);
                    tx.send(ms).await.unwrap();
                })
                .detach();
            }
            drop(tx);
            let mut order = Vec::new();
            while let Ok(ms) = rx.recv().await {
                order.push(ms);
            }
            order
        });
        assert_eq!(order, [20, 40, 60]);
        assert!(start.elapsed() >= Duration::from_millis(60));
        rt.stop();
    }

    #[test]
    fn a_dropped_timer_leaves_its_worker() {
        let rt = Runtime::start("rt-test-w", 1).unwrap();
        let w = rt.first().clone();
        let left = rt.handle().block_on(async move {
            let never = Timer::after(Duration::from_secs(3600));
            let soon = Timer::after(Duration::from_millis(5));
            futures_lite::future::or(async { Some(never.await) }, async {
                soon.await;
                None
            })
            .await;
            lock(&w.timers).len()
        });
        assert_eq!(left, 0);
        rt.stop();
    }

    #[test]
    fn data_and_fin_in_one_event_read_to_eof() {
        let rt = Runtime::start("rt-test-w", 1).unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (sent_tx, sent_rx) = mpsc::channel::<()>();
        let peer = std::thread::spawn(move || {
            let (mut peer, _) = listener.accept().unwrap();
            peer.write_all(b"last words").unwrap();
            drop(peer);
            sent_tx.send(()).unwrap();
        });
        let handle = rt.handle().clone();
        let got = rt.handle().block_on(async move {
            let stream = net::Stream::connect(addr, &handle).await.unwrap();
            // Data and FIN are both in before the first wait sees the socket.
            let _ = sent_rx.recv();
            let mut got = Vec::new();
            let read_to_eof = async {
                let mut buf = [0u8; 64];
                loop {
                    let n = futures_lite::future::poll_fn(|cx| stream.poll_read(cx, &mut buf))
                        .await
                        .unwrap();
                    if n == 0 {
                        break;
                    }
                    got.extend_from_slice(&buf[..n]);
                }
                true
            };
            // Waiting for a second report of the FIN would never end.
            let timeout = async {
                Timer::after(Duration::from_secs(10)).await;
                false
            };
            let done = futures_lite::future::or(read_to_eof, timeout).await;
            (done, got)
        });
        peer.join().unwrap();
        assert!(got.0, "EOF never seen");
        assert_eq!(got.1, b"last words");
        rt.stop();
    }

    #[test]
    fn connecting_to_a_closed_port_fails() {
        let rt = Runtime::start("rt-test-w", 1).unwrap();
        let addr = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let handle = rt.handle().clone();
        let result = rt
            .handle()
            .block_on(async move { net::Stream::connect(addr, &handle).await.map(drop) });
        assert_eq!(result.unwrap_err().kind(), io::ErrorKind::ConnectionRefused);
        rt.stop();
    }
}
