//! The exchange's end of the typed seam to a message upstream (the legacy
//! bridge, a stdio server), and the upstream's end of one client stream.
//!
//! The two share an [`rt::mailbox`](crate::rt::mailbox) of answer parts,
//! bounded in bytes: an idle stream (a GET stream waiting for server
//! messages) holds a few dozen bytes, where a channel's first block of
//! slots is kilobytes. It holds a buffer only while parts wait.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use sluice_core::legacy::StreamId;
use sluice_core::upstream::{AnswerPart, Request};

use crate::rt::mailbox::{self, Receiver, Sender};

/// A route whose upstream speaks in messages: it takes an exchange's
/// request and answers on the stream's sink.
pub(crate) trait MessageRoute: Send + Sync {
    /// Hands the request of client stream `stream` to the task that serves
    /// it (or answers it on `sink` at once). Returns what to run when the
    /// client leaves: telling that task the stream is gone.
    fn dispatch(
        self: Arc<Self>,
        stream: StreamId,
        req: Request,
        sink: ClientSink,
    ) -> Option<OnGone>;
}

/// Run once when an exchange's link drops.
pub(crate) type OnGone = Box<dyn FnOnce() + Send>;

/// An `OnGone` that sends `msg` to a task's inbox (unbounded: never full;
/// closed means the task is over anyway).
pub(crate) fn notify<M: Send + 'static>(inbox: Sender<M>, msg: M) -> OnGone {
    Box::new(move || {
        let _ = inbox.try_send(msg);
    })
}

static NEXT_STREAM: AtomicU64 = AtomicU64::new(1);

/// 128 random bits from the OS's CSPRNG, as hex: an unguessable
/// `Mcp-Session-Id` for a session sluice keeps. Without randomness there
/// is no safe id to hand out (`None`, logged), so the caller refuses the
/// session rather than give it a guessable one.
pub(crate) fn mint_session_id() -> Option<String> {
    let mut bytes = [0u8; 16];
    if let Err(e) = getrandom::fill(&mut bytes) {
        tracing::error!(error = %e, "no randomness for a session id");
        return None;
    }
    Some(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Most bytes of answer parts a client stream may have waiting for its
/// exchange. A client that reads slower than the backend writes is cut at
/// this point rather than holding the whole session back (the session
/// serves every other stream too). One part larger than this still goes
/// through when nothing else waits.
const MAX_QUEUED_BYTES: usize = 4 << 20;

/// One exchange's link to the message upstream of its route: the request
/// goes in typed, the answer comes back as parts. Dropping it tells the
/// task serving it that the client is gone.
pub struct MessageLink {
    route: Arc<dyn MessageRoute>,
    stream: StreamId,
    parts: Receiver<AnswerPart>,
    /// The upstream's end, until the request is dispatched.
    sink: Option<ClientSink>,
    /// Tells the task the request went to that the client left.
    on_gone: Option<OnGone>,
}

impl MessageLink {
    /// A link for one exchange on `route`, with a stream id of its own.
    pub(crate) fn open(route: Arc<dyn MessageRoute>) -> Self {
        let (sink, parts) = ClientSink::new();
        MessageLink {
            route,
            stream: NEXT_STREAM.fetch_add(1, Ordering::Relaxed),
            parts,
            sink: Some(sink),
            on_gone: None,
        }
    }

    /// Hands the exchange's request to the task that serves it (or
    /// answers it at once: a refusal, an unknown session).
    pub(crate) fn dispatch(&mut self, req: Request) {
        let Some(sink) = self.sink.take() else {
            return;
        };
        self.on_gone = self.route.clone().dispatch(self.stream, req, sink);
    }

    /// The next part of the answer; `None` once the bridge is done with
    /// this stream (after the last part, or when it gave up on it).
    pub(crate) fn poll_part(&mut self, cx: &mut Context<'_>) -> Poll<Option<AnswerPart>> {
        self.parts.poll_recv(cx)
    }
}

impl Drop for MessageLink {
    fn drop(&mut self) {
        // `parts` closes as it drops: the upstream's next part is refused.
        if let Some(on_gone) = self.on_gone.take() {
            on_gone();
        }
    }
}

/// The upstream's end of one client stream. Dropping it ends the stream:
/// the exchange gets the parts already queued, then the end.
pub(crate) struct ClientSink(Sender<AnswerPart>);

impl ClientSink {
    /// A sink and the exchange's end of its stream.
    fn new() -> (ClientSink, Receiver<AnswerPart>) {
        let (tx, rx) = mailbox::bounded(MAX_QUEUED_BYTES, part_len);
        (ClientSink(tx), rx)
    }

    /// Queues `part` for the exchange; false when the exchange is gone or
    /// has fallen too far behind (then the stream is over for the bridge).
    pub(crate) fn send(&self, part: AnswerPart) -> bool {
        self.0.try_send(part).is_ok()
    }
}

fn part_len(part: &AnswerPart) -> usize {
    match part {
        AnswerPart::Whole { body, .. } => body.len(),
        AnswerPart::Event(data) | AnswerPart::IdentifiedEvent { data, .. } => data.len(),
        AnswerPart::NamedEvent { id, data } => id.len() + data.len(),
        AnswerPart::Stream(_) | AnswerPart::Prime(_) | AnswerPart::End => 0,
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
