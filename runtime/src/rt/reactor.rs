//! One epoll instance per worker, edge-triggered: a socket is registered
//! once for reads and writes and never re-armed, and a wait is one
//! `epoll_wait` (async-io's reactor made five syscalls per wait plus one
//! `epoll_ctl` per socket per wait).
//!
//! Readiness is kept per socket as two bits and an event count. A bit is
//! set by an event and cleared by the task that found the socket drained
//! (a read or write that came back short or `WouldBlock`), unless an event
//! arrived since the task looked: then the bit stays and the task tries
//! again. Sockets may be used from any thread; their events are delivered
//! by the worker whose epoll they are registered with.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use mio::{Events, Interest, Token};
use slab::Slab;

/// The socket can be read.
pub(crate) const READ: usize = 0b0001;
/// The socket can be written.
pub(crate) const WRITE: usize = 0b0010;
/// The peer closed its side or the socket is in error: reads never block
/// again. Never cleared: with edge triggering, a FIN that came in the same
/// event as the last data is reported once, and a short read of that data
/// must not make the task wait for a second report.
const READ_CLOSED: usize = READ << 2;
/// Writes never block again (the socket is in error or shut down).
const WRITE_CLOSED: usize = WRITE << 2;
/// One event, counted in the bits above the readiness bits.
const EVENT: usize = 0b1_0000;
const BITS: usize = READ | WRITE | READ_CLOSED | WRITE_CLOSED;

/// The waker token: a wake-up from another thread.
const WAKE: Token = Token(usize::MAX);

/// What one socket's reactor knows, and who waits on it: one task per
/// direction (a second waiter would replace the first, which every user
/// here avoids: a socket is read by one task and written by one task).
pub(crate) struct IoState {
    /// [`READ`] | [`WRITE`], plus the count of events above them.
    readiness: AtomicUsize,
    waiters: Mutex<Waiters>,
}

#[derive(Default)]
struct Waiters {
    read: Option<Waker>,
    write: Option<Waker>,
}

impl IoState {
    /// Ready in `dir` now, or the task is woken by the next event.
    pub(crate) fn poll_ready(&self, dir: usize, cx: &mut Context<'_>) -> Poll<()> {
        let ready = dir | dir << 2;
        let now = self.readiness.load(Ordering::Acquire);
        if now & ready != 0 {
            return Poll::Ready(());
        }
        let mut waiters = lock(&self.waiters);
        let slot = if dir == READ {
            &mut waiters.read
        } else {
            &mut waiters.write
        };
        match slot {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => *slot = Some(cx.waker().clone()),
        }
        // An event that came in before the waker was stored found no one
        // to wake: look again, under the lock the reactor takes to wake.
        let now = self.readiness.load(Ordering::Acquire);
        if now & ready != 0 {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// The readiness now, for [`IoState::clear`].
    pub(crate) fn snapshot(&self) -> usize {
        self.readiness.load(Ordering::Acquire)
    }

    /// The socket was found drained in `dir` after `snapshot` was taken:
    /// clear the bit, unless an event has arrived since.
    pub(crate) fn clear(&self, dir: usize, snapshot: usize) {
        let mut now = self.readiness.load(Ordering::Acquire);
        while now & !BITS == snapshot & !BITS && now & dir != 0 {
            match self.readiness.compare_exchange_weak(
                now,
                now & !dir,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return,
                Err(actual) => now = actual,
            }
        }
    }

    fn deliver(&self, ready: usize) {
        let mut now = self.readiness.load(Ordering::Acquire);
        loop {
            let next = now.wrapping_add(EVENT) | ready;
            match self.readiness.compare_exchange_weak(
                now,
                next,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(actual) => now = actual,
            }
        }
        let (read, write) = {
            let mut waiters = lock(&self.waiters);
            (
                if ready & (READ | READ_CLOSED) != 0 {
                    waiters.read.take()
                } else {
                    None
                },
                if ready & (WRITE | WRITE_CLOSED) != 0 {
                    waiters.write.take()
                } else {
                    None
                },
            )
        };
        if let Some(w) = read {
            w.wake();
        }
        if let Some(w) = write {
            w.wake();
        }
    }
}

/// A worker's epoll registry and the sockets registered with it.
pub(crate) struct Reactor {
    registry: mio::Registry,
    waker: mio::Waker,
    sources: Mutex<Slab<Arc<IoState>>>,
}

impl Reactor {
    /// A reactor and the `Poll` its worker waits on.
    pub(crate) fn new() -> io::Result<(Arc<Reactor>, mio::Poll)> {
        let poll = mio::Poll::new()?;
        let registry = poll.registry().try_clone()?;
        let waker = mio::Waker::new(poll.registry(), WAKE)?;
        Ok((
            Arc::new(Reactor {
                registry,
                waker,
                sources: Mutex::new(Slab::new()),
            }),
            poll,
        ))
    }

    /// Register `source` for reads and writes, edge-triggered, with
    /// `initial` readiness assumed until the first event.
    pub(crate) fn register(
        self: &Arc<Self>,
        source: &mut impl mio::event::Source,
        initial: usize,
    ) -> io::Result<Registration> {
        let state = Arc::new(IoState {
            readiness: AtomicUsize::new(initial & BITS),
            waiters: Mutex::default(),
        });
        let key = lock(&self.sources).insert(state.clone());
        if let Err(e) =
            self.registry
                .register(source, Token(key), Interest::READABLE | Interest::WRITABLE)
        {
            lock(&self.sources).remove(key);
            return Err(e);
        }
        Ok(Registration {
            reactor: self.clone(),
            key,
            state,
        })
    }

    /// Interrupt the worker's wait.
    pub(crate) fn wake(&self) {
        // Fails only if the eventfd cannot be written, which cannot be retried.
        let _ = self.waker.wake();
    }

    /// Hand the events of one wait to the sockets they concern. `ready` is
    /// scratch space: the tasks are woken after the registry's lock is let
    /// go, so a wake-up that ends up dropping a socket cannot deadlock.
    pub(crate) fn dispatch(&self, events: &Events, ready: &mut Vec<(Arc<IoState>, usize)>) {
        if events.is_empty() {
            return;
        }
        {
            let sources = lock(&self.sources);
            for event in events {
                if event.token() == WAKE {
                    continue;
                }
                // A socket closed since the wait may have left an event for
                // a slot now reused: a spurious readiness, which a read or
                // write that finds nothing turns back into a wait.
                let Some(state) = sources.get(event.token().0) else {
                    continue;
                };
                let mut bits = 0;
                if event.is_readable() {
                    bits |= READ;
                }
                if event.is_writable() {
                    bits |= WRITE;
                }
                if event.is_read_closed() || event.is_error() {
                    bits |= READ_CLOSED;
                }
                if event.is_write_closed() || event.is_error() {
                    bits |= WRITE_CLOSED;
                }
                if bits != 0 {
                    ready.push((state.clone(), bits));
                }
            }
        }
        for (state, bits) in ready.drain(..) {
            state.deliver(bits);
        }
    }
}

/// A socket's place in a reactor; dropping it forgets the socket (closing
/// the descriptor removes it from the epoll set, so no `epoll_ctl`).
pub(crate) struct Registration {
    reactor: Arc<Reactor>,
    key: usize,
    state: Arc<IoState>,
}

impl Registration {
    pub(crate) fn state(&self) -> &IoState {
        &self.state
    }

    /// One non-blocking operation in `dir`. A refusal (`WouldBlock`), or a
    /// result `drained` calls short, marks the socket drained so the next
    /// wait asks the reactor, unless an event came in meanwhile.
    pub(crate) fn attempt<R>(
        &self,
        dir: usize,
        op: impl FnOnce() -> io::Result<R>,
        drained: impl FnOnce(&R) -> bool,
    ) -> io::Result<R> {
        let snapshot = self.state.snapshot();
        let result = op();
        let empty = match &result {
            Ok(r) => drained(r),
            Err(e) => e.kind() == io::ErrorKind::WouldBlock,
        };
        if empty {
            self.state.clear(dir, snapshot);
        }
        result
    }

    /// `attempt` (made by `op`) each time the socket is ready in `dir`,
    /// until it neither refuses nor is interrupted; `Pending` while not ready.
    pub(crate) fn poll_attempt<R>(
        &self,
        dir: usize,
        cx: &mut Context<'_>,
        mut op: impl FnMut() -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        loop {
            std::task::ready!(self.state.poll_ready(dir, cx));
            match op() {
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) => {}
                other => return Poll::Ready(other),
            }
        }
    }

    /// Whether this socket's events are delivered by `reactor`.
    pub(crate) fn belongs_to(&self, reactor: &Arc<Reactor>) -> bool {
        Arc::ptr_eq(&self.reactor, reactor)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        lock(&self.reactor.sources).try_remove(self.key);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(initial: usize) -> IoState {
        IoState {
            readiness: AtomicUsize::new(initial),
            waiters: Mutex::default(),
        }
    }

    #[test]
    fn a_clear_after_a_newer_event_keeps_the_event() {
        let s = state(0);
        s.deliver(READ);
        let seen = s.snapshot();
        // The socket was read to WouldBlock, but data arrived meanwhile.
        s.deliver(READ);
        s.clear(READ, seen);
        assert!(
            s.poll_ready(READ, &mut Context::from_waker(Waker::noop()))
                .is_ready()
        );
        // With no newer event the clear takes effect.
        let seen = s.snapshot();
        s.clear(READ, seen);
        assert!(
            s.poll_ready(READ, &mut Context::from_waker(Waker::noop()))
                .is_pending()
        );
    }

    #[test]
    fn a_peer_close_stays_readable_after_a_short_read() {
        let s = state(0);
        s.deliver(READ | READ_CLOSED);
        let seen = s.snapshot();
        s.clear(READ, seen);
        assert!(
            s.poll_ready(READ, &mut Context::from_waker(Waker::noop()))
                .is_ready()
        );
        assert!(
            s.poll_ready(WRITE, &mut Context::from_waker(Waker::noop()))
                .is_pending()
        );
    }

    #[test]
    fn a_waiting_task_is_woken_by_its_direction_only() {
        use std::sync::atomic::AtomicBool;
        struct Flag(AtomicBool);
        impl std::task::Wake for Flag {
            fn wake(self: Arc<Self>) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let s = state(0);
        let (r, w) = (
            Arc::new(Flag(AtomicBool::new(false))),
            Arc::new(Flag(AtomicBool::new(false))),
        );
        let (rw, ww) = (Waker::from(r.clone()), Waker::from(w.clone()));
        assert!(
            s.poll_ready(READ, &mut Context::from_waker(&rw))
                .is_pending()
        );
        assert!(
            s.poll_ready(WRITE, &mut Context::from_waker(&ww))
                .is_pending()
        );
        s.deliver(WRITE);
        assert!(!r.0.load(Ordering::SeqCst) && w.0.load(Ordering::SeqCst));
        s.deliver(READ_CLOSED);
        assert!(r.0.load(Ordering::SeqCst));
    }
}
