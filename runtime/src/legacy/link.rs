//! The exchange's end of the typed seam to a bridge, and the bridge's end
//! of one client stream.
//!
//! The two share one small queue of answer parts, not a channel: an idle
//! stream (a GET stream waiting for server messages) holds a few dozen
//! bytes, where a channel's first block of slots is kilobytes. The queue
//! grows only while parts wait, and is bounded in bytes.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use sluice_core::legacy::StreamId;
use sluice_core::upstream::{AnswerPart, Request};

use super::{RouteBridge, session};

/// Most bytes of answer parts a client stream may have waiting for its
/// exchange. A client that reads slower than the backend writes is cut at
/// this point rather than holding the whole session back (the session
/// serves every other stream too). One part larger than this still goes
/// through when nothing else waits.
const MAX_QUEUED_BYTES: usize = 4 << 20;

/// The parts on their way from the bridge to one exchange.
#[derive(Default)]
struct Queue {
    parts: VecDeque<AnswerPart>,
    /// Bytes of `parts`.
    bytes: usize,
    /// No part will be added: the bridge is done with the stream (after its
    /// last part, or giving up on it), or the exchange left.
    closed: bool,
    /// The exchange's task, waiting for a part.
    waiter: Option<Waker>,
}

type Shared = Arc<Mutex<Queue>>;

fn lock(q: &Shared) -> MutexGuard<'_, Queue> {
    q.lock().unwrap_or_else(|e| e.into_inner())
}

/// One exchange's link to the bridge of its route: the request goes in
/// typed, the answer comes back as parts. Dropping it tells the session
/// serving it that the client is gone.
pub struct BridgeLink {
    route: Arc<RouteBridge>,
    stream: StreamId,
    queue: Shared,
    /// The bridge's end, until the request is dispatched.
    sink: Option<ClientSink>,
    /// The session the request went to, to tell it when the client leaves.
    session: Option<crate::rt::mailbox::Sender<session::Msg>>,
}

impl BridgeLink {
    pub(super) fn new(route: Arc<RouteBridge>, stream: StreamId) -> Self {
        let queue = Shared::default();
        BridgeLink {
            route,
            stream,
            sink: Some(ClientSink {
                queue: queue.clone(),
            }),
            queue,
            session: None,
        }
    }

    /// Hands the exchange's request to the session that serves it (or
    /// answers it at once: a refusal, an unknown session).
    pub(crate) fn dispatch(&mut self, req: Request) {
        let Some(sink) = self.sink.take() else {
            return;
        };
        self.session = self.route.dispatch(self.stream, req, sink);
    }

    /// The next part of the answer; `None` once the bridge is done with
    /// this stream (after the last part, or when it gave up on it).
    pub(crate) fn poll_part(&mut self, cx: &mut Context<'_>) -> Poll<Option<AnswerPart>> {
        poll_queue(&self.queue, cx)
    }
}

/// The next queued part, the end once the queue is closed and empty, else
/// wait.
fn poll_queue(queue: &Shared, cx: &mut Context<'_>) -> Poll<Option<AnswerPart>> {
    let mut q = lock(queue);
    if let Some(part) = q.parts.pop_front() {
        q.bytes -= part_len(&part);
        return Poll::Ready(Some(part));
    }
    if q.closed {
        return Poll::Ready(None);
    }
    match &q.waiter {
        Some(w) if w.will_wake(cx.waker()) => {}
        _ => q.waiter = Some(cx.waker().clone()),
    }
    Poll::Pending
}

impl Drop for BridgeLink {
    fn drop(&mut self) {
        {
            let mut q = lock(&self.queue);
            q.closed = true;
            q.parts = VecDeque::new();
        }
        if let Some(session) = &self.session {
            // Unbounded: never full; closed means the session is over anyway.
            let _ = session.try_send(session::Msg::Gone(self.stream));
        }
    }
}

/// The bridge's end of one client stream. Dropping it ends the stream: the
/// exchange gets the parts already queued, then the end.
pub(crate) struct ClientSink {
    queue: Shared,
}

impl ClientSink {
    /// Queues `part` for the exchange; false when the exchange is gone or
    /// has fallen too far behind (then the stream is over for the bridge).
    pub(super) fn send(&self, part: AnswerPart) -> bool {
        let len = part_len(&part);
        let (sent, waiter) = {
            let mut q = lock(&self.queue);
            if q.closed {
                return false;
            }
            let sent = q.bytes == 0 || q.bytes + len <= MAX_QUEUED_BYTES;
            if sent {
                q.bytes += len;
                q.parts.push_back(part);
            } else {
                q.closed = true;
            }
            (sent, q.waiter.take())
        };
        if let Some(w) = waiter {
            w.wake();
        }
        sent
    }
}

impl Drop for ClientSink {
    fn drop(&mut self) {
        let waiter = {
            let mut q = lock(&self.queue);
            q.closed = true;
            q.waiter.take()
        };
        if let Some(w) = waiter {
            w.wake();
        }
    }
}

fn part_len(part: &AnswerPart) -> usize {
    match part {
        AnswerPart::Whole { body, .. } => body.len(),
        AnswerPart::Event(data) => data.len(),
        AnswerPart::Stream(_) | AnswerPart::End => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use sluice_core::upstream::AnswerHead;

    fn poll(queue: &Shared) -> Poll<Option<AnswerPart>> {
        poll_queue(queue, &mut Context::from_waker(Waker::noop()))
    }

    #[test]
    fn parts_arrive_in_order_then_the_end_once_the_sink_is_gone() {
        let queue = Shared::default();
        let sink = ClientSink {
            queue: queue.clone(),
        };
        assert_eq!(poll(&queue), Poll::Pending);
        assert!(sink.send(AnswerPart::Stream(AnswerHead::status(200))));
        assert!(sink.send(AnswerPart::Event(Bytes::from_static(b"{}"))));
        drop(sink);
        assert!(matches!(
            poll(&queue),
            Poll::Ready(Some(AnswerPart::Stream(_)))
        ));
        assert!(matches!(
            poll(&queue),
            Poll::Ready(Some(AnswerPart::Event(_)))
        ));
        assert_eq!(poll(&queue), Poll::Ready(None));
    }

    #[test]
    fn a_client_too_far_behind_is_cut_but_one_big_part_goes_through() {
        let queue = Shared::default();
        let sink = ClientSink {
            queue: queue.clone(),
        };
        let big = Bytes::from(vec![b' '; MAX_QUEUED_BYTES + 1]);
        assert!(sink.send(AnswerPart::Event(big)), "alone, it fits");
        assert!(!sink.send(AnswerPart::Event(Bytes::from_static(b"{}"))));
        assert!(
            !sink.send(AnswerPart::End),
            "the stream is over for the bridge"
        );
        assert!(matches!(
            poll(&queue),
            Poll::Ready(Some(AnswerPart::Event(_)))
        ));
        assert_eq!(poll(&queue), Poll::Ready(None), "the exchange sees it cut");
    }
}
