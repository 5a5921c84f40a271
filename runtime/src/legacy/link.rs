//! The exchange's end of the typed seam to a bridge, and the bridge's end
//! of one client stream.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use futures_lite::Stream;
use sluice_core::legacy::StreamId;
use sluice_core::upstream::{AnswerPart, Request};

use super::{RouteBridge, session};

/// Most bytes of answer parts a client stream may have waiting for its
/// exchange. A client that reads slower than the backend writes is cut at
/// this point rather than holding the whole session back (the session
/// serves every other stream too). One part larger than this still goes
/// through when nothing else waits.
const MAX_QUEUED_BYTES: usize = 4 << 20;

/// One exchange's link to the bridge of its route: the request goes in
/// typed, the answer comes back as parts. Dropping it tells the session
/// serving it that the client is gone.
pub struct BridgeLink {
    route: Arc<RouteBridge>,
    stream: StreamId,
    /// The sending half, until the request is dispatched.
    sink: Option<ClientSink>,
    /// Pinned: the receiver keeps its wake-up listener in place.
    parts: Pin<Box<async_channel::Receiver<AnswerPart>>>,
    queued: Arc<AtomicUsize>,
    /// The session the request went to, to tell it when the client leaves.
    session: Option<async_channel::Sender<session::Msg>>,
}

impl BridgeLink {
    pub(super) fn new(route: Arc<RouteBridge>, stream: StreamId) -> Self {
        let (tx, parts) = async_channel::unbounded();
        let queued = Arc::new(AtomicUsize::new(0));
        BridgeLink {
            route,
            stream,
            sink: Some(ClientSink {
                tx,
                queued: queued.clone(),
            }),
            parts: Box::pin(parts),
            queued,
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
        let part = std::task::ready!(self.parts.as_mut().poll_next(cx));
        if let Some(part) = &part {
            self.queued.fetch_sub(part_len(part), Ordering::Relaxed);
        }
        Poll::Ready(part)
    }
}

impl Drop for BridgeLink {
    fn drop(&mut self) {
        if let Some(session) = &self.session {
            // Unbounded: never full; closed means the session is over anyway.
            let _ = session.try_send(session::Msg::Gone(self.stream));
        }
    }
}

/// The bridge's end of one client stream.
pub(crate) struct ClientSink {
    tx: async_channel::Sender<AnswerPart>,
    queued: Arc<AtomicUsize>,
}

impl ClientSink {
    /// Queues `part` for the exchange; false when the exchange is gone or
    /// has fallen too far behind (then the stream is over for the bridge).
    pub(super) fn send(&self, part: AnswerPart) -> bool {
        let len = part_len(&part);
        let before = self.queued.fetch_add(len, Ordering::Relaxed);
        if before > 0 && before + len > MAX_QUEUED_BYTES {
            self.queued.fetch_sub(len, Ordering::Relaxed);
            self.tx.close();
            return false;
        }
        self.tx.try_send(part).is_ok()
    }
}

fn part_len(part: &AnswerPart) -> usize {
    match part {
        AnswerPart::Whole { body, .. } => body.len(),
        AnswerPart::Event(data) => data.len(),
        AnswerPart::Stream(_) | AnswerPart::End => 0,
    }
}
