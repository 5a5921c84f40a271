//! Coarse deadlines for connections, checked by one ticker per proxy.
//!
//! The exchange's deadlines are seconds away (idle, request, connect and
//! response-head timeouts) and move on every request. A timer per wait
//! would be armed and cancelled twice per request (with `async-io`, four
//! syscalls each time; with `rt`'s timers, a locked insert and remove in
//! an ordered map). Here a connection only stores its deadline in its own
//! slot; a single ticker task (one `rt` timer, on the first worker) scans the
//! slots every [`TICK`] and wakes the connections whose deadline has passed.
//! A deadline fires up to one tick late, which second-scale timeouts do not
//! notice; nothing is ever early.
//!
//! The same scan wakes idle connections when the proxy shuts down.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// How often the ticker looks at the deadlines.
pub(crate) const TICK: Duration = Duration::from_millis(100);

/// Every connection's slot, and the shutdown flag the slots report.
#[derive(Default)]
pub(crate) struct Deadlines {
    slots: Mutex<Vec<Weak<Slot>>>,
    shutting_down: AtomicBool,
}

#[derive(Default)]
struct SlotState {
    at: Option<Instant>,
    /// The connection waits only for its deadline or, when idle, shutdown.
    waker: Option<Waker>,
}

/// One connection's deadline.
#[derive(Default)]
pub(crate) struct Slot {
    state: Mutex<SlotState>,
}

/// What a connection's deadline wait ended with.
pub(crate) enum Due {
    Deadline,
    Shutdown,
}

impl Deadlines {
    /// A slot for a new connection; dropped with the connection.
    pub fn register(&self) -> Arc<Slot> {
        let slot = Arc::new(Slot::default());
        let mut slots = lock(&self.slots);
        slots.push(Arc::downgrade(&slot));
        slot
    }

    /// Start shutting down: every waiting connection looks again (idle ones close).
    pub fn shut_down(&self) {
        self.shutting_down.store(true, Ordering::Release);
        self.scan(None);
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }

    /// Wake every slot whose deadline is at or before `now` (every slot when
    /// `now` is `None`), and forget the slots of closed connections.
    fn scan(&self, now: Option<Instant>) {
        let mut due = Vec::new();
        {
            let mut slots = lock(&self.slots);
            slots.retain(|weak| {
                let Some(slot) = weak.upgrade() else {
                    return false;
                };
                let mut state = lock(&slot.state);
                let fire = match now {
                    None => true,
                    Some(now) => state.at.is_some_and(|at| at <= now),
                };
                if fire && let Some(w) = state.waker.take() {
                    due.push(w);
                }
                true
            });
        }
        // Woken outside the locks: a woken task may run at once on another worker.
        due.into_iter().for_each(Waker::wake);
    }
}

/// Check the deadlines every [`TICK`] until the proxy is gone: a task on a
/// worker, one timer per tick (a timer per connection wait would touch the
/// worker's timer map twice per request).
pub(crate) async fn ticker(deadlines: Weak<Deadlines>) {
    loop {
        crate::rt::sleep(TICK).await;
        let Some(deadlines) = deadlines.upgrade() else {
            return;
        };
        deadlines.scan(Some(Instant::now()));
    }
}

impl Slot {
    /// Set (or clear) the deadline. Cheap: no timer, no syscall.
    pub fn set(&self, at: Option<Instant>) {
        lock(&self.state).at = at;
    }

    /// Ready once the deadline has passed, or, when `report_shutdown`, once
    /// the proxy shuts down.
    pub fn poll_due(
        &self,
        deadlines: &Deadlines,
        report_shutdown: bool,
        cx: &mut Context<'_>,
    ) -> Poll<Due> {
        let mut state = lock(&self.state);
        if state.at.is_some_and(|at| at <= Instant::now()) {
            return Poll::Ready(Due::Deadline);
        }
        match &state.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => state.waker = Some(cx.waker().clone()),
        }
        // Checked after the waker is stored: `shut_down` sets the flag
        // before it wakes, so either this sees it or the wake comes.
        if report_shutdown && deadlines.is_shutting_down() {
            return Poll::Ready(Due::Shutdown);
        }
        Poll::Pending
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::task::Wake;

    struct CountWakes(AtomicUsize);
    impl Wake for CountWakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counter() -> (Arc<CountWakes>, Waker) {
        let c = Arc::new(CountWakes(AtomicUsize::new(0)));
        (c.clone(), Waker::from(c))
    }

    #[test]
    fn a_passed_deadline_is_due_and_a_scan_wakes_only_due_slots() {
        let d = Deadlines::default();
        let now = Instant::now();
        let passed = d.register();
        passed.set(Some(now));
        let (_, w) = counter();
        assert!(matches!(
            passed.poll_due(&d, false, &mut Context::from_waker(&w)),
            Poll::Ready(Due::Deadline)
        ));

        let early = d.register();
        let late = d.register();
        early.set(Some(now + Duration::from_secs(60)));
        late.set(Some(now + Duration::from_secs(3600)));
        let (ce, we) = counter();
        let (cl, wl) = counter();
        assert!(
            early
                .poll_due(&d, false, &mut Context::from_waker(&we))
                .is_pending()
        );
        assert!(
            late.poll_due(&d, false, &mut Context::from_waker(&wl))
                .is_pending()
        );
        d.scan(Some(now + Duration::from_secs(61)));
        assert_eq!(ce.0.load(Ordering::SeqCst), 1, "due: woken");
        assert_eq!(cl.0.load(Ordering::SeqCst), 0, "not due: not woken");
        d.scan(Some(now + Duration::from_secs(62)));
        assert_eq!(ce.0.load(Ordering::SeqCst), 1, "woken once per wait");
    }

    #[test]
    fn no_deadline_never_fires() {
        let d = Deadlines::default();
        let slot = d.register();
        let (c, w) = counter();
        assert!(
            slot.poll_due(&d, false, &mut Context::from_waker(&w))
                .is_pending()
        );
        d.scan(Some(Instant::now() + Duration::from_secs(1 << 20)));
        assert_eq!(c.0.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn shutdown_wakes_and_releases_only_idle_waiters() {
        let d = Deadlines::default();
        let idle = d.register();
        let busy = d.register();
        let (ci, wi) = counter();
        let (cb, wb) = counter();
        assert!(
            idle.poll_due(&d, true, &mut Context::from_waker(&wi))
                .is_pending()
        );
        assert!(
            busy.poll_due(&d, false, &mut Context::from_waker(&wb))
                .is_pending()
        );
        d.shut_down();
        assert_eq!(ci.0.load(Ordering::SeqCst), 1);
        assert_eq!(cb.0.load(Ordering::SeqCst), 1, "woken, looks again");
        assert!(matches!(
            idle.poll_due(&d, true, &mut Context::from_waker(&wi)),
            Poll::Ready(Due::Shutdown)
        ));
        assert!(
            busy.poll_due(&d, false, &mut Context::from_waker(&wb))
                .is_pending()
        );
    }

    #[test]
    fn closed_connections_leave_the_registry() {
        let d = Deadlines::default();
        let kept = d.register();
        drop(d.register());
        d.scan(Some(Instant::now()));
        assert_eq!(lock(&d.slots).len(), 1);
        drop(kept);
        d.scan(None);
        assert!(lock(&d.slots).is_empty());
    }
}
