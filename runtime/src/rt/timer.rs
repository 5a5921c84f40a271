//! Timers: each worker keeps its own, ordered by deadline, and waits in its
//! poller no longer than until the nearest one. No timer thread, no timerfd
//! of ours.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use super::{Handle, Worker, lock};

/// One worker's timers, by deadline (and a sequence number for ties).
#[derive(Default)]
pub(super) struct Timers {
    by_deadline: BTreeMap<(Instant, u64), Waker>,
    next_id: u64,
}

impl Timers {
    /// The nearest deadline.
    pub(super) fn next(&self) -> Option<Instant> {
        self.by_deadline.first_key_value().map(|(&(at, _), _)| at)
    }

    /// Move the wakers of every timer due at `now` into `due`.
    pub(super) fn take_due(&mut self, now: Instant, due: &mut Vec<Waker>) {
        while let Some(entry) = self.by_deadline.first_entry() {
            if entry.key().0 > now {
                break;
            }
            due.push(entry.remove());
        }
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.by_deadline.len()
    }
}

/// Ready at a deadline; the [`Instant`] it was set for is its output.
///
/// It waits on the worker that first polls it (off the workers, on one of
/// the running runtime's): no syscall to arm it, no thread to fire it. A
/// drop-in for `async_io::Timer::{at, after}` as a future.
pub(crate) struct Timer {
    when: Instant,
    /// The worker holding it, and its sequence number there.
    entry: Option<(Arc<Worker>, u64)>,
}

/// A timer `duration` from now.
pub(crate) fn sleep(duration: Duration) -> Timer {
    Timer::after(duration)
}

impl Timer {
    /// Ready `duration` from now.
    pub(crate) fn after(duration: Duration) -> Timer {
        let now = Instant::now();
        // An overflowing duration means "never" in practice.
        let when = now
            .checked_add(duration)
            .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600));
        Timer::at(when)
    }

    /// Ready at `when`.
    pub(crate) fn at(when: Instant) -> Timer {
        Timer { when, entry: None }
    }
}

impl Future for Timer {
    type Output = Instant;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Instant> {
        let when = self.when;
        if Instant::now() >= when {
            self.cancel();
            return Poll::Ready(when);
        }
        if let Some((worker, id)) = &self.entry {
            let mut timers = lock(&worker.timers);
            match timers.by_deadline.get_mut(&(when, *id)) {
                Some(w) if w.will_wake(cx.waker()) => {}
                Some(w) => *w = cx.waker().clone(),
                // Fired, yet not due by this thread's clock: wait again.
                None => {
                    timers.by_deadline.insert((when, *id), cx.waker().clone());
                }
            }
            return Poll::Pending;
        }
        let worker = super::local_worker().unwrap_or_else(|| {
            Handle::current()
                .expect("rt::Timer polled outside the workers with no runtime running")
                .least_loaded()
                .clone()
        });
        let id = {
            let mut timers = lock(&worker.timers);
            let id = timers.next_id;
            timers.next_id += 1;
            timers.by_deadline.insert((when, id), cx.waker().clone());
            id
        };
        // From another thread: the worker may be asleep with a later
        // deadline. (Its own tasks run before it computes its wait.)
        if !super::is_current(&worker) {
            worker.notify_if_sleeping();
        }
        self.entry = Some((worker, id));
        Poll::Pending
    }
}

impl Timer {
    fn cancel(&mut self) {
        if let Some((worker, id)) = self.entry.take() {
            lock(&worker.timers).by_deadline.remove(&(self.when, id));
        }
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        self.cancel();
    }
}
