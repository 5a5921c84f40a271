//! One epoll instance per worker, edge-triggered, driven through rustix
//! (the safe syscall layer smol-rs's `polling` is itself built on): a
//! source is registered once for reads, writes and the peer's FIN
//! (`EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET`) and never re-armed, and a
//! worker's wait is one `epoll_pwait` reporting every ready source at once.
//! Wake-ups from other threads write an eventfd registered the same way.
//!
//! A registration's epoll data is its slot in the reactor's registry and
//! the slot's generation. A source is removed from the epoll set before its
//! descriptor is closed: a copy of the descriptor (a child between `fork`
//! and `exec` holds one of every descriptor) would otherwise keep the
//! registration alive, reporting the old socket's events under a slot the
//! registry has since given to another source. An event read before a
//! source closed, dispatched after, names a generation that is gone and is
//! dropped. (A stale hang-up once landed on a live connection as a sticky
//! `READ_CLOSED`: its task saw it readable forever and starved its worker.)
//!
//! Readiness is kept per source as two bits and an event count. A bit is
//! set by an event and cleared by the task that found the source drained
//! (a read or write that came back short or `WouldBlock`), unless an event
//! arrived since the task looked: then the bit stays and the task tries
//! again. The peer's FIN (`EPOLLRDHUP`), a hang-up or an error are sticky:
//! with edge triggering a FIN that came in the same event as the last data
//! is reported once, and a short read of that data must not make the task
//! wait for a second report. Sources may be used from any thread; their
//! events are delivered by the worker whose epoll they are registered with.
//!
//! Why not `polling` itself: measured on this reactor (strace, one
//! connection, requests one after another), its wait is five syscalls
//! (`timerfd_settime`, `epoll_ctl` arming its timer, `epoll_wait`, and a
//! `read` + `epoll_ctl` re-arming its notifier) where one suffices, and it
//! cannot ask for `EPOLLRDHUP`, which costs one more `read` per request:
//! 17 syscalls per request against 8. See docs/ARCHITECTURE.md.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use rustix::event::{EventfdFlags, Timespec, epoll, eventfd};
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

/// The key of the wake-up eventfd (sources are keyed by [`Token`]).
const WAKE: u64 = u64::MAX;

/// A registration's epoll data: its slot in the registry (low half) and
/// the generation the slot had when it was registered (high half).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Token {
    slot: u32,
    generation: u32,
}

impl Token {
    fn to_u64(self) -> u64 {
        u64::from(self.generation) << 32 | u64::from(self.slot)
    }

    fn from_u64(data: u64) -> Token {
        Token {
            slot: data as u32,
            generation: (data >> 32) as u32,
        }
    }
}

/// The sources registered with one reactor.
#[derive(Default)]
struct Registry {
    slots: Slab<(u32, Arc<IoState>)>,
    /// The generation the next registration gets.
    next_generation: u32,
}

impl Registry {
    fn insert(&mut self, state: Arc<IoState>) -> io::Result<Token> {
        let generation = self.next_generation;
        self.next_generation = generation.wrapping_add(1);
        let entry = self.slots.vacant_entry();
        // Four billion live sources: never, but the wake-up's key must stay its own.
        let slot = u32::try_from(entry.key())
            .ok()
            .filter(|&s| s != u32::MAX)
            .ok_or_else(|| io::Error::other("too many sources on one reactor"))?;
        entry.insert((generation, state));
        Ok(Token { slot, generation })
    }

    /// The source `token` names, if it is still registered.
    fn get(&self, token: Token) -> Option<&Arc<IoState>> {
        self.slots
            .get(token.slot as usize)
            .filter(|(generation, _)| *generation == token.generation)
            .map(|(_, state)| state)
    }

    fn remove(&mut self, token: Token) {
        if self.get(token).is_some() {
            self.slots.remove(token.slot as usize);
        }
    }
}

/// What one wait reported, reused from wait to wait.
pub(crate) struct Events(Vec<epoll::Event>);

impl Events {
    pub(crate) fn with_capacity(n: usize) -> Self {
        Events(Vec::with_capacity(n))
    }
}

/// A worker's epoll, its wake-up eventfd, and the sources registered with it.
pub(crate) struct Reactor {
    epoll: OwnedFd,
    wake: OwnedFd,
    sources: Mutex<Registry>,
}

/// Every source and the waker are registered for everything, edge-triggered.
fn interest() -> epoll::EventFlags {
    use epoll::EventFlags as F;
    F::IN | F::OUT | F::RDHUP | F::ET
}

impl Reactor {
    pub(crate) fn new() -> io::Result<Arc<Reactor>> {
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        let wake = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?;
        epoll::add(
            &epoll,
            &wake,
            epoll::EventData::new_u64(WAKE),
            epoll::EventFlags::IN | epoll::EventFlags::ET,
        )?;
        Ok(Arc::new(Reactor {
            epoll,
            wake,
            sources: Mutex::default(),
        }))
    }

    /// Wait for events (at most `timeout`; `None` waits until one comes or
    /// [`Reactor::wake`] is called). Only the worker calls this.
    pub(crate) fn wait(&self, events: &mut Events, timeout: Option<Duration>) -> io::Result<()> {
        events.0.clear();
        let timeout = timeout.map(|d| Timespec {
            tv_sec: d.as_secs().min(i64::MAX as u64) as i64,
            tv_nsec: i64::from(d.subsec_nanos()),
        });
        match epoll::wait(
            &self.epoll,
            rustix::buffer::spare_capacity(&mut events.0),
            timeout.as_ref(),
        ) {
            Ok(_) => Ok(()),
            // A signal landed on this thread: a wait with nothing to report.
            Err(rustix::io::Errno::INTR) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Interrupt the worker's wait (or make its next one return at once).
    /// Each write is a new edge, so the counter is never read back; at its
    /// ceiling (2^64 - 2 wake-ups unread) a write would block: it is reset
    /// and written again.
    pub(crate) fn wake(&self) {
        let one = 1u64.to_ne_bytes();
        if let Err(rustix::io::Errno::AGAIN) = rustix::io::write(&self.wake, &one) {
            let mut drain = [0u8; 8];
            let _ = rustix::io::read(&self.wake, &mut drain);
            let _ = rustix::io::write(&self.wake, &one);
        }
    }

    /// Hand the events of one wait to the sources they concern. `ready` is
    /// scratch space: the tasks are woken after the registry's lock is let
    /// go, so a wake-up that ends up dropping a socket cannot deadlock.
    pub(crate) fn dispatch(&self, events: &Events, ready: &mut Vec<(Arc<IoState>, usize)>) {
        if events.0.is_empty() {
            return;
        }
        {
            let sources = lock(&self.sources);
            for event in &events.0 {
                let key = event.data.u64();
                if key == WAKE {
                    continue;
                }
                // A source closed since the wait left its events behind:
                // its slot is empty, or another source's (a newer generation).
                let Some(state) = sources.get(Token::from_u64(key)) else {
                    continue;
                };
                let flags = event.flags;
                use epoll::EventFlags as F;
                let mut bits = 0;
                if flags.intersects(F::IN | F::PRI) {
                    bits |= READ;
                }
                if flags.contains(F::OUT) {
                    bits |= WRITE;
                }
                // The peer's FIN: reads never block again.
                if flags.contains(F::RDHUP) {
                    bits |= READ | READ_CLOSED;
                }
                // EPOLLHUP (both directions shut, or a reset) or EPOLLERR:
                // neither direction blocks again.
                if flags.intersects(F::HUP | F::ERR) {
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
    token: Token,
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
        let token = lock(&reactor.sources).insert(state.clone())?;
        let data = epoll::EventData::new_u64(token.to_u64());
        if let Err(e) = epoll::add(&reactor.epoll, io.as_fd(), data, interest()) {
            lock(&reactor.sources).remove(token);
            return Err(e.into());
        }
        Ok(Source {
            reactor: reactor.clone(),
            token,
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
        // Out of the epoll set while the descriptor still names it: closing
        // it (when `io` drops, right after) removes the registration only if
        // no copy of the descriptor is left anywhere, and a forked child may
        // hold one until it execs. An event already read for it is dropped
        // in `dispatch` (its generation is gone with the slot).
        let _ = epoll::delete(&self.reactor.epoll, self.io.as_fd());
        lock(&self.reactor.sources).remove(self.token);
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

    /// A Unix socket pair, both ends non-blocking.
    fn pair() -> (
        std::os::unix::net::UnixStream,
        std::os::unix::net::UnixStream,
    ) {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        b.set_nonblocking(true).unwrap();
        (a, b)
    }

    fn noop_ready(state: &IoState, dir: usize) -> bool {
        state
            .poll_ready(dir, &mut Context::from_waker(Waker::noop()))
            .is_ready()
    }

    /// What a stdio server's `fork` does to every socket of the proxy: a
    /// copy of the descriptor outlives the source. The old socket's
    /// hang-up must not reach the source that took its slot.
    #[test]
    fn a_closed_sources_events_never_reach_the_source_in_its_slot() {
        let reactor = Reactor::new().unwrap();
        let (old, old_peer) = pair();
        let copy = old.try_clone().unwrap();
        drop(Source::new(old, &reactor, 0).unwrap());
        let (new, _new_peer) = pair();
        let new = Source::new(new, &reactor, 0).unwrap();
        assert_eq!(new.token.slot, 0, "the freed slot was taken again");
        drop(old_peer);
        let mut events = Events::with_capacity(8);
        reactor
            .wait(&mut events, Some(Duration::from_millis(20)))
            .unwrap();
        reactor.dispatch(&events, &mut Vec::new());
        assert!(!noop_ready(new.state(), READ), "nothing came for it");
        drop(copy);
    }

    /// An event read by the worker's wait, for a source another thread
    /// closes before the events are handed out.
    #[test]
    fn an_event_read_before_its_source_closed_is_dropped() {
        let reactor = Reactor::new().unwrap();
        let (old, old_peer) = pair();
        let old = Source::new(old, &reactor, 0).unwrap();
        drop(old_peer);
        let mut events = Events::with_capacity(8);
        reactor
            .wait(&mut events, Some(Duration::from_secs(5)))
            .unwrap();
        assert_eq!(events.0.len(), 1, "the hang-up was read");
        drop(old);
        let (new, _new_peer) = pair();
        let new = Source::new(new, &reactor, 0).unwrap();
        assert_eq!(new.token.slot, 0);
        reactor.dispatch(&events, &mut Vec::new());
        assert!(!noop_ready(new.state(), READ));
        // Its own events still arrive.
        let (mine, mine_peer) = pair();
        let mine = Source::new(mine, &reactor, 0).unwrap();
        drop(mine_peer);
        reactor
            .wait(&mut events, Some(Duration::from_secs(5)))
            .unwrap();
        reactor.dispatch(&events, &mut Vec::new());
        assert!(noop_ready(mine.state(), READ));
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
