//! One poller (`polling`, epoll on Linux) per worker, edge-triggered: a
//! source is registered once for reads and writes and never re-armed
//! (`PollMode::Edge`, not `Oneshot`), and a worker's wait reports every
//! ready source at once.
//!
//! Readiness is kept per source as two bits and an event count. A bit is
//! set by an event and cleared by the task that found the source drained
//! (a read that came back `WouldBlock`, a write that came back short or
//! `WouldBlock`), unless an event arrived since the task looked: then the
//! bit stays and the task tries again. Sources may be used from any thread;
//! their events are delivered by the worker whose poller they are
//! registered with.
//!
//! What `polling` changes against the mio version of this reactor, by
//! necessity (its API offers no way around either):
//! - It registers no `EPOLLRDHUP`, so an event cannot tell that the peer
//!   sent its FIN. With edge triggering, data and a FIN that arrive together
//!   are one event; a short read of that data is therefore no proof that
//!   the socket is drained (the FIN is still to be read as EOF), and only a
//!   read that comes back `WouldBlock` clears the read bit: a read cycle
//!   ends with one more `read` than with mio.
//! - Its epoll wait is `timerfd_settime` + `epoll_ctl` (arming its timerfd,
//!   even without a timeout) + `epoll_wait` + `read` + `epoll_ctl` (clearing
//!   and re-arming its notifier): five syscalls per wait where mio made one.
//! - A source must be deleted from the poller before it is closed: one
//!   `epoll_ctl` per socket when it is dropped.

use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use polling::{Event, Events, PollMode, Poller};
use slab::Slab;

/// The socket can be read.
pub(crate) const READ: usize = 0b0001;
/// The socket can be written.
pub(crate) const WRITE: usize = 0b0010;
/// The socket is shut down both ways or in error: reads never block
/// again. Never cleared: the event that says so is reported once.
const READ_CLOSED: usize = READ << 2;
/// Writes never block again (the socket is in error or shut down).
const WRITE_CLOSED: usize = WRITE << 2;
/// One event, counted in the bits above the readiness bits.
const EVENT: usize = 0b1_0000;
const BITS: usize = READ | WRITE | READ_CLOSED | WRITE_CLOSED;

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

/// A worker's poller and the sources registered with it.
pub(crate) struct Reactor {
    poller: Poller,
    sources: Mutex<Slab<Arc<IoState>>>,
}

impl Reactor {
    pub(crate) fn new() -> io::Result<Arc<Reactor>> {
        Ok(Arc::new(Reactor {
            poller: Poller::new()?,
            sources: Mutex::new(Slab::new()),
        }))
    }

    /// Wait for events (at most `timeout`; `None` waits until one comes or
    /// [`Reactor::wake`] is called). Only the worker calls this.
    pub(crate) fn wait(&self, events: &mut Events, timeout: Option<Duration>) -> io::Result<()> {
        events.clear();
        self.poller.wait(events, timeout).map(drop)
    }

    /// Interrupt the worker's wait (or make its next one return at once).
    pub(crate) fn wake(&self) {
        // Fails only if the eventfd cannot be written, which cannot be retried.
        let _ = self.poller.notify();
    }

    /// Hand the events of one wait to the sources they concern. `ready` is
    /// scratch space: the tasks are woken after the registry's lock is let
    /// go, so a wake-up that ends up dropping a socket cannot deadlock.
    pub(crate) fn dispatch(&self, events: &Events, ready: &mut Vec<(Arc<IoState>, usize)>) {
        if events.is_empty() {
            return;
        }
        {
            let sources = lock(&self.sources);
            // `iter` leaves out the poller's own wake-up events.
            for event in events.iter() {
                // A source closed since the wait may have left an event for
                // a slot now reused: a spurious readiness, which a read or
                // write that finds nothing turns back into a wait.
                let Some(state) = sources.get(event.key) else {
                    continue;
                };
                let mut bits = 0;
                if event.readable {
                    bits |= READ;
                }
                if event.writable {
                    bits |= WRITE;
                }
                // EPOLLHUP (both directions shut, or a reset) or EPOLLERR:
                // neither direction blocks again.
                if event.is_interrupt() || event.is_err() == Some(true) {
                    bits |= READ_CLOSED | WRITE_CLOSED;
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

/// An I/O object registered with a reactor, edge-triggered, for reads and
/// writes, once: never re-armed. Dropping it removes it from the poller,
/// then closes it.
pub(crate) struct Source<T: AsFd> {
    reactor: Arc<Reactor>,
    key: usize,
    state: Arc<IoState>,
    io: T,
}

impl<T: AsFd> Source<T> {
    /// Register `io` (non-blocking) with `reactor`, with `initial`
    /// readiness assumed until the first event.
    pub(crate) fn new(io: T, reactor: &Arc<Reactor>, initial: usize) -> io::Result<Self> {
        let state = Arc::new(IoState {
            readiness: AtomicUsize::new(initial & BITS),
            waiters: Mutex::default(),
        });
        let key = lock(&reactor.sources).insert(state.clone());
        // SAFETY: polling requires a source to be deleted from the poller
        // before it is closed. `io` is owned here and closed only when this
        // `Source` drops, and `Drop` deletes it first; nothing else can
        // close it through the shared reference `get_ref` hands out.
        #[allow(unsafe_code)]
        let added = unsafe {
            reactor
                .poller
                .add_with_mode(io.as_fd().as_raw_fd(), Event::all(key), PollMode::Edge)
        };
        if let Err(e) = added {
            lock(&reactor.sources).remove(key);
            return Err(e);
        }
        Ok(Source {
            reactor: reactor.clone(),
            key,
            state,
            io,
        })
    }

    pub(crate) fn get_ref(&self) -> &T {
        &self.io
    }

    pub(crate) fn state(&self) -> &IoState {
        &self.state
    }

    /// One non-blocking operation in `dir`. A refusal (`WouldBlock`), or a
    /// result `drained` calls short, marks the source drained so the next
    /// wait asks the reactor, unless an event came in meanwhile.
    pub(crate) fn attempt<R>(
        &self,
        dir: usize,
        op: impl FnOnce(&T) -> io::Result<R>,
        drained: impl FnOnce(&R) -> bool,
    ) -> io::Result<R> {
        let snapshot = self.state.snapshot();
        let result = op(&self.io);
        let empty = match &result {
            Ok(r) => drained(r),
            Err(e) => e.kind() == io::ErrorKind::WouldBlock,
        };
        if empty {
            self.state.clear(dir, snapshot);
        }
        result
    }

    /// `attempt` (made by `op`) each time the source is ready in `dir`,
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

    /// Whether this source's events are delivered by `reactor`.
    pub(crate) fn belongs_to(&self, reactor: &Arc<Reactor>) -> bool {
        Arc::ptr_eq(&self.reactor, reactor)
    }
}

impl<T: AsFd> Drop for Source<T> {
    fn drop(&mut self) {
        // One `epoll_ctl` per source: polling's contract (closing the
        // descriptor would remove it from an epoll set by itself, which
        // is what the mio version relied on).
        let _ = self.reactor.poller.delete(self.io.as_fd());
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
    fn a_hang_up_stays_readable_after_a_read_found_nothing() {
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
