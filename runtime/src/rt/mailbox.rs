//! A many-to-one queue of messages for one task, as small as it can be:
//! a mutex, a `VecDeque` that holds memory only while messages wait, and
//! the receiver's waker. An async-channel's unbounded queue allocates a
//! block of 31 slots on its first send and keeps it, which for a task that
//! waits most of its life (a legacy session with an idle GET stream, the
//! exchange of that GET stream) is most of what it holds. Here the queue's
//! buffer is let go whenever the receiver finds it empty and goes to wait,
//! so a burst is drained without reallocating and an idle mailbox holds no
//! buffer at all.
//!
//! The mailbox ends for the receiver, after what is queued, once it is
//! closed (by the receiver, or by a send past its byte limit) or every
//! sender is gone. A mailbox may bound the bytes waiting in it
//! ([`bounded`]): a send that would pass the bound closes it instead, so a
//! receiver that falls too far behind is cut rather than holding its
//! senders back.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

struct State<T> {
    items: VecDeque<T>,
    /// Weight of `items`, by `weigh`.
    bytes: usize,
    /// Most weight that may wait; one item heavier than this still goes in
    /// when nothing else waits.
    max_bytes: usize,
    weigh: fn(&T) -> usize,
    /// Live senders.
    senders: usize,
    closed: bool,
    waiter: Option<Waker>,
}

impl<T> State<T> {
    /// No item will be added.
    fn ended(&self) -> bool {
        self.closed || self.senders == 0
    }
}

type Shared<T> = Arc<Mutex<State<T>>>;

fn lock<T>(s: &Shared<T>) -> MutexGuard<'_, State<T>> {
    s.lock().unwrap_or_else(|e| e.into_inner())
}

/// A new mailbox: any number of senders (clone it), one receiver.
pub(crate) fn mailbox<T>() -> (Sender<T>, Receiver<T>) {
    bounded(usize::MAX, |_| 0)
}

/// A new mailbox that holds at most `max_bytes` of items waiting, each item
/// weighing `weigh(item)`. A send that would go past it closes the
/// mailbox; one item heavier than `max_bytes` still goes in when nothing
/// else waits.
pub(crate) fn bounded<T>(max_bytes: usize, weigh: fn(&T) -> usize) -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Mutex::new(State {
        items: VecDeque::new(),
        bytes: 0,
        max_bytes,
        weigh,
        senders: 1,
        closed: false,
        waiter: None,
    }));
    (Sender(shared.clone()), Receiver(shared))
}

/// Puts messages in a mailbox. When the last one is dropped, the receiver
/// gets what was queued, then the end.
pub(crate) struct Sender<T>(Shared<T>);

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        lock(&self.0).senders += 1;
        Sender(self.0.clone())
    }
}

impl<T> Sender<T> {
    /// Queues `item`, or gives it back when the mailbox is closed, or would
    /// hold more than its bound with it (then it is closed now: the
    /// receiver gets what was queued, then the end).
    pub(crate) fn try_send(&self, item: T) -> Result<(), T> {
        let (result, waiter) = {
            let mut s = lock(&self.0);
            if s.closed {
                return Err(item);
            }
            let weight = (s.weigh)(&item);
            let result = if s.bytes == 0 || s.bytes.saturating_add(weight) <= s.max_bytes {
                s.bytes += weight;
                s.items.push_back(item);
                Ok(())
            } else {
                s.closed = true;
                Err(item)
            };
            (result, s.waiter.take())
        };
        if let Some(w) = waiter {
            w.wake();
        }
        result
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let waiter = {
            let mut s = lock(&self.0);
            s.senders -= 1;
            if s.senders > 0 {
                return;
            }
            s.waiter.take()
        };
        if let Some(w) = waiter {
            w.wake();
        }
    }
}

/// Takes messages out of a mailbox. Dropping it closes the mailbox.
pub(crate) struct Receiver<T>(Shared<T>);

impl<T> Receiver<T> {
    /// The next message, or `None` once the mailbox ended and is empty;
    /// else `Pending`, and the task is woken by the next send or the end.
    pub(crate) fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut s = lock(&self.0);
        if let Some(item) = s.items.pop_front() {
            let weight = (s.weigh)(&item);
            s.bytes -= weight;
            return Poll::Ready(Some(item));
        }
        if s.ended() {
            return Poll::Ready(None);
        }
        // Waiting: hold no buffer meanwhile.
        if s.items.capacity() > 0 {
            s.items = VecDeque::new();
        }
        match &s.waiter {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => s.waiter = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// The next message, waiting for one; `None` once the mailbox ended
    /// and is empty.
    pub(crate) fn recv(&self) -> impl Future<Output = Option<T>> + '_ {
        std::future::poll_fn(|cx| self.poll_recv(cx))
    }

    /// The next message already there.
    pub(crate) fn try_recv(&self) -> Option<T> {
        let mut s = lock(&self.0);
        let item = s.items.pop_front()?;
        let weight = (s.weigh)(&item);
        s.bytes -= weight;
        Some(item)
    }

    /// Refuse further messages; those already queued can still be taken.
    pub(crate) fn close(&self) {
        lock(&self.0).closed = true;
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let items = {
            let mut s = lock(&self.0);
            s.closed = true;
            s.bytes = 0;
            std::mem::take(&mut s.items)
        };
        // Dropped outside the lock: an item's drop may send elsewhere.
        drop(items);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::future::block_on;

    fn poll<T>(rx: &Receiver<T>) -> Poll<Option<T>> {
        rx.poll_recv(&mut Context::from_waker(Waker::noop()))
    }

    #[test]
    fn messages_come_in_order_and_a_closed_mailbox_refuses_more() {
        let (tx, rx) = mailbox();
        let tx2 = tx.clone();
        tx.try_send(1).unwrap();
        tx2.try_send(2).unwrap();
        assert_eq!(block_on(rx.recv()), Some(1));
        rx.close();
        assert_eq!(tx.try_send(3), Err(3));
        assert_eq!(rx.try_recv(), Some(2), "what was queued stays");
        assert_eq!(block_on(rx.recv()), None);
        drop(rx);
        assert_eq!(tx2.try_send(4), Err(4));
    }

    #[test]
    fn the_end_comes_after_the_last_sender_and_what_it_queued() {
        let (tx, rx) = mailbox();
        let tx2 = tx.clone();
        tx.try_send(1).unwrap();
        drop(tx);
        assert_eq!(poll(&rx), Poll::Ready(Some(1)));
        assert_eq!(poll(&rx), Poll::Pending, "one sender is left");
        tx2.try_send(2).unwrap();
        drop(tx2);
        assert_eq!(poll(&rx), Poll::Ready(Some(2)));
        assert_eq!(poll(&rx), Poll::Ready(None));
    }

    #[test]
    fn a_waiting_mailbox_holds_no_buffer() {
        let (tx, rx) = mailbox();
        for i in 0..10 {
            tx.try_send(i).unwrap();
        }
        for i in 0..10 {
            assert_eq!(poll(&rx), Poll::Ready(Some(i)));
        }
        assert!(lock(&rx.0).items.capacity() > 0, "kept through the burst");
        assert_eq!(poll(&rx), Poll::Pending);
        assert_eq!(lock(&rx.0).items.capacity(), 0);
    }

    #[test]
    fn past_its_bound_a_mailbox_closes_but_one_heavy_item_goes_through() {
        let (tx, rx) = bounded(10, |s: &String| s.len());
        assert_eq!(tx.try_send("x".repeat(11)), Ok(()), "alone, it fits");
        assert_eq!(tx.try_send("y".into()), Err("y".into()));
        assert_eq!(tx.try_send(String::new()), Err(String::new()), "closed");
        assert_eq!(poll(&rx).map(|s| s.map(|s| s.len())), Poll::Ready(Some(11)));
        assert_eq!(poll(&rx), Poll::Ready(None), "the receiver sees it cut");

        let (tx, rx) = bounded(10, |s: &String| s.len());
        tx.try_send("x".repeat(6)).unwrap();
        assert_eq!(poll(&rx).map(|s| s.map(|s| s.len())), Poll::Ready(Some(6)));
        tx.try_send("x".repeat(6)).unwrap();
        tx.try_send("x".repeat(4)).unwrap();
        assert_eq!(
            lock(&rx.0).bytes,
            10,
            "what waits is counted, not what went"
        );
        assert!(tx.try_send("z".into()).is_err());
    }
}
