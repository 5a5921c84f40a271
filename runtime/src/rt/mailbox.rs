//! A many-to-one queue of messages for one task, as small as it can be:
//! a mutex, a `VecDeque` that allocates only while messages wait, and the
//! receiver's waker. An async-channel's unbounded queue allocates a block
//! of 31 slots on its first send and keeps it, which for a task that waits
//! most of its life (a legacy session with an idle GET stream) is most of
//! what it holds.
//!
//! The receiving task usually holds a sender itself (to hand to helpers),
//! so the end of the senders is not tracked: the queue ends when the
//! receiver closes it (or drops).

use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Poll, Waker};

struct State<T> {
    items: VecDeque<T>,
    closed: bool,
    waiter: Option<Waker>,
}

type Shared<T> = Arc<Mutex<State<T>>>;

fn lock<T>(s: &Shared<T>) -> MutexGuard<'_, State<T>> {
    s.lock().unwrap_or_else(|e| e.into_inner())
}

/// A new mailbox: any number of senders (clone it), one receiver.
pub(crate) fn mailbox<T>() -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Mutex::new(State {
        items: VecDeque::new(),
        closed: false,
        waiter: None,
    }));
    (Sender(shared.clone()), Receiver(shared))
}

/// Puts messages in a mailbox.
pub(crate) struct Sender<T>(Shared<T>);

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        Sender(self.0.clone())
    }
}

impl<T> Sender<T> {
    /// Queues `item`, or gives it back when the mailbox is closed.
    pub(crate) fn try_send(&self, item: T) -> Result<(), T> {
        let waiter = {
            let mut s = lock(&self.0);
            if s.closed {
                return Err(item);
            }
            s.items.push_back(item);
            s.waiter.take()
        };
        if let Some(w) = waiter {
            w.wake();
        }
        Ok(())
    }
}

/// Takes messages out of a mailbox. Dropping it closes the mailbox.
pub(crate) struct Receiver<T>(Shared<T>);

impl<T> Receiver<T> {
    /// The next message, waiting for one; `None` once the mailbox is
    /// closed and empty.
    pub(crate) fn recv(&self) -> impl Future<Output = Option<T>> + '_ {
        std::future::poll_fn(|cx| {
            let mut s = lock(&self.0);
            if let Some(item) = s.items.pop_front() {
                return Poll::Ready(Some(item));
            }
            if s.closed {
                return Poll::Ready(None);
            }
            match &s.waiter {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => s.waiter = Some(cx.waker().clone()),
            }
            Poll::Pending
        })
    }

    /// The next message already there.
    pub(crate) fn try_recv(&self) -> Option<T> {
        lock(&self.0).items.pop_front()
    }

    /// Refuse further messages; those already queued can still be taken.
    pub(crate) fn close(&self) {
        lock(&self.0).closed = true;
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let mut s = lock(&self.0);
        s.closed = true;
        s.items = VecDeque::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_come_in_order_and_a_closed_mailbox_refuses_more() {
        let (tx, rx) = mailbox();
        let tx2 = tx.clone();
        tx.try_send(1).unwrap();
        tx2.try_send(2).unwrap();
        assert_eq!(futures_lite::future::block_on(rx.recv()), Some(1));
        rx.close();
        assert_eq!(tx.try_send(3), Err(3));
        assert_eq!(rx.try_recv(), Some(2), "what was queued stays");
        assert_eq!(futures_lite::future::block_on(rx.recv()), None);
        drop(rx);
        assert_eq!(tx2.try_send(4), Err(4));
    }
}
