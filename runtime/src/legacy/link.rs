//! The exchange's end of the typed seam to a bridge, and the bridge's end
//! of one client stream.
//!
//! The two share an [`rt::mailbox`](crate::rt::mailbox) of answer parts,
//! bounded in bytes: an idle stream (a GET stream waiting for server
//! messages) holds a few dozen bytes, where a channel's first block of
//! slots is kilobytes. It holds a buffer only while parts wait.

use std::sync::Arc;
use std::task::{Context, Poll};

use sluice_core::legacy::StreamId;
use sluice_core::upstream::{AnswerPart, Request};

use super::{RouteBridge, session};
use crate::rt::mailbox::{self, Receiver, Sender};

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
    parts: Receiver<AnswerPart>,
    /// The bridge's end, until the request is dispatched.
    sink: Option<ClientSink>,
    /// The session the request went to, to tell it when the client leaves.
    session: Option<Sender<session::Msg>>,
}

impl BridgeLink {
    pub(super) fn new(route: Arc<RouteBridge>, stream: StreamId) -> Self {
        let (sink, parts) = ClientSink::new();
        BridgeLink {
            route,
            stream,
            parts,
            sink: Some(sink),
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
        self.parts.poll_recv(cx)
    }
}

impl Drop for BridgeLink {
    fn drop(&mut self) {
        // `parts` closes as it drops: the bridge's next part is refused.
        if let Some(session) = &self.session {
            // Unbounded: never full; closed means the session is over anyway.
            let _ = session.try_send(session::Msg::Gone(self.stream));
        }
    }
}

/// The bridge's end of one client stream. Dropping it ends the stream: the
/// exchange gets the parts already queued, then the end.
pub(crate) struct ClientSink(Sender<AnswerPart>);

impl ClientSink {
    /// A sink and the exchange's end of its stream.
    fn new() -> (ClientSink, Receiver<AnswerPart>) {
        let (tx, rx) = mailbox::bounded(MAX_QUEUED_BYTES, part_len);
        (ClientSink(tx), rx)
    }

    /// Queues `part` for the exchange; false when the exchange is gone or
    /// has fallen too far behind (then the stream is over for the bridge).
    pub(super) fn send(&self, part: AnswerPart) -> bool {
        self.0.try_send(part).is_ok()
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

    fn poll(parts: &Receiver<AnswerPart>) -> Poll<Option<AnswerPart>> {
        parts.poll_recv(&mut Context::from_waker(std::task::Waker::noop()))
    }

    #[test]
    fn parts_arrive_in_order_then_the_end_once_the_sink_is_gone() {
        let (sink, queue) = ClientSink::new();
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
        let (sink, queue) = ClientSink::new();
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
