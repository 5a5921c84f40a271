//! The proxy's own small runtime: worker threads, each with its own
//! edge-triggered epoll ([`reactor`]) and its own run queue, running the
//! tasks spawned on it and only those.
//!
//! A connection's task, its sockets and (mostly) its pooled upstream
//! connections live on one worker, so an event wakes a task on the thread
//! that polled it: no hand-off between threads per wake-up. Wake-ups from
//! other threads (the deadline ticker, legacy bridges, channels) go through
//! the worker's remote queue and, if it sleeps, its eventfd.
//!
//! Threads that are not workers (legacy bridges on smol's executor, tests)
//! register their sockets with a shared reactor driven by a thread of its
//! own.

pub mod net;
mod reactor;

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::Duration;

use async_task::{Runnable, Task};
use slab::Slab;

pub(crate) use reactor::Reactor;

/// Runnables a worker runs before it looks at its sockets again.
const BATCH: usize = 128;

/// One worker: a reactor, a run queue, the tasks spawned on it.
pub(crate) struct Worker {
    reactor: Arc<Reactor>,
    /// Tasks woken from other threads.
    remote: Mutex<Vec<Runnable>>,
    /// In (or about to enter) `epoll_wait`: a remote wake-up must interrupt it.
    sleeping: AtomicBool,
    stop: AtomicBool,
    /// Every live task, so stopping the worker can cancel them.
    tasks: Mutex<Slab<Task<()>>>,
    /// Live tasks, for choosing the least loaded worker.
    load: AtomicUsize,
}

thread_local! {
    /// The worker this thread runs, if any.
    static CURRENT: RefCell<Option<Arc<Worker>>> = const { RefCell::new(None) };
    /// Its identity, checked on every wake-up without touching the Arc.
    static CURRENT_ID: Cell<usize> = const { Cell::new(0) };
    /// Runnables woken on this thread.
    static QUEUE: RefCell<VecDeque<Runnable>> = const { RefCell::new(VecDeque::new()) };
    /// Tasks that finished on this thread, to forget after the batch.
    static FINISHED: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

impl Worker {
    fn id(self: &Arc<Self>) -> usize {
        Arc::as_ptr(self) as usize
    }

    fn schedule(self: &Arc<Self>, runnable: Runnable) {
        if CURRENT_ID.with(Cell::get) == self.id() {
            QUEUE.with(|q| q.borrow_mut().push_back(runnable));
            return;
        }
        lock(&self.remote).push(runnable);
        if self.sleeping.swap(false, Ordering::SeqCst) {
            self.reactor.wake();
        }
    }

    /// Run `future` on this worker.
    pub(crate) fn spawn(self: &Arc<Self>, future: impl Future<Output = ()> + Send + 'static) {
        let mut tasks = lock(&self.tasks);
        let key = tasks.vacant_entry().key();
        self.load.fetch_add(1, Ordering::Relaxed);
        let future = Tracked {
            inner: future,
            worker: self.clone(),
            key,
        };
        let worker = self.clone();
        let (runnable, task) = async_task::spawn(future, move |r| worker.schedule(r));
        tasks.insert(task);
        drop(tasks);
        runnable.schedule();
    }

    pub(crate) fn reactor(&self) -> &Arc<Reactor> {
        &self.reactor
    }

    fn run(self: Arc<Self>, mut poll: mio::Poll) {
        CURRENT.with(|c| *c.borrow_mut() = Some(self.clone()));
        CURRENT_ID.with(|c| c.set(self.id()));
        let mut events = mio::Events::with_capacity(1024);
        let mut ready = Vec::new();
        let mut remote = Vec::new();
        while !self.stop.load(Ordering::Acquire) {
            std::mem::swap(&mut remote, &mut *lock(&self.remote));
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
                self.sleeping.store(true, Ordering::SeqCst);
                if lock(&self.remote).is_empty() {
                    None
                } else {
                    Some(Duration::ZERO)
                }
            };
            if let Err(e) = poll.poll(&mut events, timeout)
                && e.kind() != io::ErrorKind::Interrupted
            {
                // Not expected from epoll_wait with valid arguments; don't spin.
                tracing::error!(error = %e, "epoll_wait failed");
                std::thread::sleep(Duration::from_millis(10));
            }
            self.sleeping.store(false, Ordering::SeqCst);
            self.reactor.dispatch(&events, &mut ready);
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
                // Completed: dropping the handle only frees it.
                tasks.try_remove(key);
            }
        });
    }

    /// Drop every task still running, and with them their sockets.
    fn cancel_all(&self) {
        let tasks = std::mem::take(&mut *lock(&self.tasks));
        // Dropping a handle schedules its task so its future gets dropped;
        // run those (and anything they wake) until nothing is left.
        drop(tasks);
        loop {
            let mut batch: Vec<Runnable> = QUEUE.with(|q| q.borrow_mut().drain(..).collect());
            batch.append(&mut lock(&self.remote));
            if batch.is_empty() {
                break;
            }
            for runnable in batch {
                runnable.run();
            }
        }
        FINISHED.with(|f| f.borrow_mut().clear());
    }
}

pin_project_lite::pin_project! {
    /// A task's future, and the bookkeeping when it ends. (An `async` block
    /// awaiting the future it captured would hold it twice: an idle
    /// connection's task was 5 KiB instead of 2.5.)
    struct Tracked<F> {
        #[pin]
        inner: F,
        worker: Arc<Worker>,
        key: usize,
    }
}

impl<F: Future<Output = ()>> Future for Tracked<F> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.project();
        std::task::ready!(this.inner.poll(cx));
        this.worker.load.fetch_sub(1, Ordering::Relaxed);
        let key = *this.key;
        FINISHED.with(|f| f.borrow_mut().push(key));
        Poll::Ready(())
    }
}

/// The proxy's worker threads.
pub(crate) struct Workers {
    workers: WorkersHandle,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

/// The workers, for spawning on them.
#[derive(Clone)]
pub(crate) struct WorkersHandle(Arc<[Arc<Worker>]>);

impl WorkersHandle {
    /// The worker with the fewest live tasks.
    pub(crate) fn least_loaded(&self) -> &Arc<Worker> {
        self.0
            .iter()
            .min_by_key(|w| w.load.load(Ordering::Relaxed))
            .unwrap_or(&self.0[0])
    }
}

impl Workers {
    /// Start `count` workers (at least one).
    pub(crate) fn start(count: usize) -> io::Result<Workers> {
        let mut workers = Vec::new();
        let mut threads = Vec::new();
        for i in 0..count.max(1) {
            let (reactor, poll) = Reactor::new()?;
            let worker = Arc::new(new_worker(reactor));
            let w = worker.clone();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("sluice-worker-{i}"))
                    .spawn(move || w.run(poll))?,
            );
            workers.push(worker);
        }
        Ok(Workers {
            workers: WorkersHandle(workers.into()),
            threads: Mutex::new(threads),
        })
    }

    /// The first worker (it runs the accept loop).
    pub(crate) fn first(&self) -> &Arc<Worker> {
        &self.workers.0[0]
    }

    pub(crate) fn handle(&self) -> WorkersHandle {
        self.workers.clone()
    }

    /// Stop every worker, cancel what still runs, and wait for the threads.
    pub(crate) fn stop(&self) {
        for w in self.workers.0.iter() {
            w.stop.store(true, Ordering::Release);
            w.reactor.wake();
        }
        for t in std::mem::take(&mut *lock(&self.threads)) {
            let _ = t.join();
        }
    }
}

fn new_worker(reactor: Arc<Reactor>) -> Worker {
    Worker {
        reactor,
        remote: Mutex::new(Vec::new()),
        sleeping: AtomicBool::new(false),
        stop: AtomicBool::new(false),
        tasks: Mutex::new(Slab::new()),
        load: AtomicUsize::new(0),
    }
}

/// `f` on the reactor of the worker running on this thread, if any.
pub(crate) fn with_local_reactor<R>(f: impl FnOnce(&Arc<Reactor>) -> R) -> Option<R> {
    CURRENT.with(|c| c.borrow().as_ref().map(|w| f(&w.reactor)))
}

/// The reactor new sockets of this thread register with: the worker's, or
/// off the workers the shared one.
pub(crate) fn current_reactor() -> io::Result<Arc<Reactor>> {
    if let Some(r) = with_local_reactor(Arc::clone) {
        return Ok(r);
    }
    static SHARED: Mutex<Option<Arc<Reactor>>> = Mutex::new(None);
    let mut shared = lock(&SHARED);
    if let Some(r) = shared.as_ref() {
        return Ok(r.clone());
    }
    let (reactor, poll) = Reactor::new()?;
    let worker = Arc::new(new_worker(reactor.clone()));
    std::thread::Builder::new()
        .name("sluice-io".into())
        .spawn(move || worker.run(poll))?;
    *shared = Some(reactor.clone());
    Ok(reactor)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::mpsc;

    #[test]
    fn a_task_runs_on_its_worker_and_a_remote_wake_reaches_it() {
        let workers = Workers::start(2).unwrap();
        let (tx, rx) = smol::channel::bounded::<u32>(1);
        let (done_tx, done_rx) = mpsc::channel();
        workers.handle().least_loaded().spawn(async move {
            // Sleeps in epoll_wait until the send below wakes it from this thread.
            let n = rx.recv().await.unwrap();
            let name = std::thread::current().name().unwrap_or_default().to_owned();
            done_tx.send((n, name)).unwrap();
        });
        std::thread::sleep(Duration::from_millis(50));
        smol::block_on(tx.send(7)).unwrap();
        let (n, name) = done_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(n, 7);
        assert!(name.starts_with("sluice-worker-"), "{name}");
        workers.stop();
    }

    #[test]
    fn stopping_the_workers_drops_the_tasks_still_waiting() {
        struct Guard(mpsc::Sender<()>);
        impl Drop for Guard {
            fn drop(&mut self) {
                let _ = self.0.send(());
            }
        }
        let workers = Workers::start(1).unwrap();
        let (tx, rx) = mpsc::channel();
        let guard = Guard(tx);
        workers.first().spawn(async move {
            let _guard = guard;
            futures_lite::future::pending::<()>().await;
        });
        workers.stop();
        rx.recv_timeout(Duration::from_secs(10))
            .expect("the task was dropped");
    }

    #[test]
    fn data_and_fin_in_one_event_read_to_eof() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stream = smol::block_on(net::Stream::connect(addr)).unwrap();
        let (mut peer, _) = listener.accept().unwrap();
        peer.write_all(b"last words").unwrap();
        drop(peer);
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
            async_io::Timer::after(Duration::from_secs(10)).await;
            false
        };
        assert!(
            smol::block_on(futures_lite::future::or(read_to_eof, timeout)),
            "EOF never seen"
        );
        assert_eq!(got, b"last words");
    }
}
