//! `transport = "auto"` riding on the client's own first request.
//!
//! While a route's transport is not known, the driver calls
//! [`Exchange::probe_transport`] on each exchange it sends there. The
//! request goes to the upstream as usual. What its answer says about the
//! transport is handed to the driver as [`Output::ProbeTransport`]:
//!
//! - an answer that cannot send the probe on to the legacy GET (anything
//!   but 400, 404 or 405 to a POST) streams to the client at once; the
//!   evidence is only for the driver's records (a 2xx means Streamable
//!   HTTP), nothing waits on it;
//! - a POST's 400, 404 or 405 is *held*: the client has seen nothing, the
//!   body is read (at most [`PROBE_BODY_MAX`] bytes of it) for
//!   `judge_answer`, and nothing moves until the driver has run
//!   `legacy::Probe::after_answer` and calls [`Exchange::transport_probed`].
//!   If the upstream speaks the legacy transport, the held answer is
//!   dropped and the request goes again, untouched (the request hooks do
//!   not run twice), through a new `Connect` — which the driver now answers
//!   with its bridge. Otherwise the held bytes are read again as if they
//!   had just arrived, and the client gets the upstream's answer.
//!
//! So a Streamable HTTP server sees exactly the requests its clients send,
//! and a 2024-11-05 server's refusal never reaches a client that the bridge
//! can serve.

use std::time::Instant;

use bytes::Bytes;

use super::timers::Timer;
use super::{Attempt, AwaitingHead, Exchange, Output, State, UpstreamEnd};
use crate::http1::{self, BodyFraming, BodyReader};

/// How much of a held refusal's body is read before it is judged: the
/// JSON-RPC error a Streamable HTTP server refuses with is far smaller, and
/// a framework's HTML error page is told apart by its first bytes.
pub const PROBE_BODY_MAX: usize = 4096;

/// What the upstream answered a request on a route whose transport is in
/// doubt, for the driver's `legacy::Probe::after_answer`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportEvidence {
    /// The answer's status.
    pub status: u16,
    /// The answer's body, decoded, at most [`PROBE_BODY_MAX`] bytes of it
    /// (empty unless `held`).
    pub body: Bytes,
    /// The request's header fields as they went upstream (empty unless
    /// `held`): the probe's GET carries the backend's own ones on.
    pub request_headers: Vec<http1::Header>,
    /// The answer is held: answer with [`Exchange::transport_probed`].
    /// When `false`, the answer is on its way to the client already.
    pub held: bool,
}

/// A POST's refusal held while the driver probes.
pub(super) struct HeldRefusal {
    attempt: Attempt,
    /// The answer as read, head included: read again if the route stays
    /// Streamable HTTP.
    raw: Vec<u8>,
    status: u16,
    reader: BodyReader,
    /// The body, decoded, up to [`PROBE_BODY_MAX`].
    body: Vec<u8>,
    /// The upstream connection ended while the answer was held.
    end: Option<UpstreamEnd>,
    /// [`Output::ProbeTransport`] went out.
    asked: bool,
}

impl Exchange {
    /// The route's transport is not known yet (`auto`): tell the driver
    /// what the upstream answers, and hold a POST's 400, 404 or 405 until
    /// [`Exchange::transport_probed`]. Call it before the first upstream
    /// bytes are fed; see the module docs of `exchange/probe.rs`.
    pub fn probe_transport(&mut self) {
        match &mut self.state {
            State::Connecting(attempt) => attempt.probing = true,
            State::AwaitingHead(h) => h.attempt.probing = true,
            _ => {}
        }
    }

    /// The driver's conclusion on the held answer of
    /// [`Output::ProbeTransport`]: `legacy` drops it and sends the request
    /// again through a new [`Output::Connect`] (answer it with the route's
    /// message upstream); otherwise the client gets the held answer.
    pub fn transport_probed(&mut self, legacy: bool, now: Instant) {
        if !matches!(self.state, State::HeldRefusal(_)) {
            return;
        }
        let State::HeldRefusal(held) = std::mem::replace(&mut self.state, State::Done) else {
            return;
        };
        let attempt = Attempt {
            probing: false,
            ..held.attempt
        };
        if legacy {
            self.outputs
                .push_back(Output::ReleaseUpstream { reusable: false });
            self.summary.reused = false;
            let route = self.summary.route.unwrap_or(0);
            self.outputs
                .push_back(Output::Connect { route, fresh: true });
            self.state = State::Connecting(Attempt {
                reused: false,
                ..attempt
            });
            let at = self.config.timeouts.connect.map(|t| now + t);
            self.timers.set(Timer::Connect, at);
            return;
        }
        // As if the answer had just arrived, with nothing held this time.
        self.state = State::AwaitingHead(AwaitingHead::new(attempt));
        self.read_response_head(Bytes::from(held.raw), now);
        if let Some(end) = held.end {
            self.upstream_closed(end, now);
        }
    }

    /// The evidence of an answer to a POST that is not held (its head is
    /// ready and goes to the client).
    pub(super) fn report_unheld_answer(&mut self, status: u16) {
        let evidence = TransportEvidence {
            status,
            body: Bytes::new(),
            request_headers: Vec::new(),
            held: false,
        };
        self.outputs
            .push_back(Output::ProbeTransport(Box::new(evidence)));
    }

    /// A refusal's head arrived (`raw`: the head's `len` bytes and what
    /// followed them): hold it and read its body.
    pub(super) fn hold_refusal(
        &mut self,
        attempt: Attempt,
        raw: &[u8],
        status: u16,
        framing: BodyFraming,
        len: usize,
        now: Instant,
    ) {
        let reader = BodyReader::new(framing, &self.config.limits.response_head);
        self.state = State::HeldRefusal(Box::new(HeldRefusal {
            attempt,
            raw: raw[..len].to_vec(),
            status,
            reader,
            body: Vec::new(),
            end: None,
            asked: false,
        }));
        self.timers.stop(Timer::Head);
        let at = self.config.timeouts.stream_idle.map(|t| now + t);
        self.timers.set(Timer::StreamIdle, at);
        self.feed_held(&raw[len..], now);
    }

    /// More of a held refusal's bytes.
    pub(super) fn feed_held(&mut self, input: &[u8], now: Instant) {
        let State::HeldRefusal(held) = &mut self.state else {
            return;
        };
        held.raw.extend_from_slice(input);
        if held.asked {
            return;
        }
        let body = &mut held.body;
        let read = held.reader.read(input, |range| {
            let room = PROBE_BODY_MAX - body.len();
            let data = &input[range];
            body.extend_from_slice(&data[..data.len().min(room)]);
        });
        // A framing error is judged on the body so far; read again, the
        // answer then fails as malformed like any other.
        let judged_now = match read {
            Ok(r) => r.done || held.body.len() >= PROBE_BODY_MAX,
            Err(_) => true,
        };
        if judged_now {
            self.ask_driver();
        } else {
            let at = self.config.timeouts.stream_idle.map(|t| now + t);
            self.timers.set(Timer::StreamIdle, at);
        }
    }

    /// The upstream ended while a refusal was held.
    pub(super) fn held_upstream_closed(&mut self, end: UpstreamEnd) {
        if let State::HeldRefusal(held) = &mut self.state {
            held.end.get_or_insert(end);
        }
        self.ask_driver();
    }

    /// Hand the held answer to the driver's judgement (once).
    pub(super) fn ask_driver(&mut self) {
        let State::HeldRefusal(held) = &mut self.state else {
            return;
        };
        if std::mem::replace(&mut held.asked, true) {
            return;
        }
        // The probe has its own deadline; nothing of ours runs meanwhile.
        self.timers.stop(Timer::StreamIdle);
        let evidence = TransportEvidence {
            status: held.status,
            body: Bytes::from(std::mem::take(&mut held.body)),
            request_headers: self
                .req
                .as_ref()
                .map(|r| r.headers.clone())
                .unwrap_or_default(),
            held: true,
        };
        self.outputs
            .push_back(Output::ProbeTransport(Box::new(evidence)));
    }
}
