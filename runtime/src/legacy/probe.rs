//! `transport = "auto"`: what a route's upstream speaks, found out from
//! the answer to a client's own first POST (`sluice_core::exchange`'s
//! transport probe) and remembered per route ([`AutoTransport`]), and the
//! driver of `sluice_core::legacy::Probe` that runs the GET when that answer
//! is a refusal: it dials what the machine asks for, writes what it says,
//! feeds it what the connection reads, and wakes it at its deadline. Every
//! decision (which request, what an answer means, when to give up) is the
//! machine's.

use std::io;
use std::sync::Mutex;
use std::task::{Poll, Waker};
use std::time::Instant;

use crate::rt::Timer;
use futures_lite::{AsyncReadExt, AsyncWriteExt, future};
use sluice_core::exchange::TransportEvidence;
use sluice_core::legacy::{
    FirstAnswer, Probe, ProbeConfig, ProbeOutput, ProbeResult, ProbeStep, judge_answer,
};

use super::{READ_CHUNK, RouteBridge};
use crate::dial::Conn;

enum Event {
    Connected(io::Result<Conn>),
    Read(io::Result<usize>),
    Deadline,
}

impl RouteBridge {
    /// The probe's configuration for this route.
    pub(crate) fn probe_config(&self) -> ProbeConfig {
        let s = &self.settings;
        ProbeConfig::with_limits(
            s.authority.clone(),
            s.target.clone(),
            &self.config.limits,
            s.probe_timeout,
        )
    }

    /// Drives `probe` to its conclusion over fresh connections to this
    /// route's upstream.
    pub(crate) async fn run_probe(&self, mut probe: Probe) -> ProbeResult {
        let mut conn: Option<Conn> = None;
        let mut connecting = false;
        let mut buf = vec![0u8; READ_CHUNK];
        loop {
            while let Some(output) = probe.poll_output() {
                match output {
                    ProbeOutput::Connect => connecting = true,
                    ProbeOutput::Send(bytes) => {
                        let Some(c) = conn.as_mut() else { continue };
                        let send = async {
                            c.write_all(&bytes).await?;
                            c.flush().await
                        };
                        let deadline = probe.poll_timeout();
                        let late = async {
                            match deadline {
                                Some(at) => Timer::at(at).await,
                                None => future::pending().await,
                            };
                            Err(io::Error::new(io::ErrorKind::TimedOut, "timed out"))
                        };
                        // Past the deadline, `failed` concludes with the timeout.
                        if let Err(e) = future::or(send, late).await {
                            probe.failed(&e.to_string(), Instant::now());
                        }
                    }
                    ProbeOutput::Close => {
                        conn = None;
                        connecting = false;
                    }
                    ProbeOutput::Done(result) => return result,
                }
            }
            let deadline = async {
                match probe.poll_timeout() {
                    Some(at) => Timer::at(at).await,
                    None => future::pending().await,
                };
                Event::Deadline
            };
            let event = if connecting {
                let dial = async {
                    let dialed = self.dialer.checkout(self.route, true).await;
                    Event::Connected(dialed.map(|(c, _)| c))
                };
                future::or(dial, deadline).await
            } else if let Some(c) = conn.as_mut() {
                future::or(async { Event::Read(c.read(&mut buf).await) }, deadline).await
            } else {
                deadline.await
            };
            let now = Instant::now();
            match event {
                Event::Connected(Ok(c)) => {
                    connecting = false;
                    conn = Some(c);
                    probe.connected(now);
                }
                Event::Connected(Err(e)) => {
                    connecting = false;
                    probe.connect_failed(&e.to_string(), now);
                }
                Event::Read(Ok(0)) => probe.eof(now),
                Event::Read(Ok(n)) => probe.feed(&buf[..n], now),
                Event::Read(Err(e)) => probe.failed(&e.to_string(), now),
                Event::Deadline => probe.handle_timeout(now),
            }
        }
    }
}

/// What an `auto` route's upstream speaks, as far as is known, shared by
/// every exchange on the route: at most one probe runs at a time, and the
/// exchanges whose refusals arrive meanwhile wait for its conclusion.
#[derive(Default)]
pub(crate) struct AutoTransport {
    state: Mutex<AutoState>,
}

#[derive(Default)]
struct AutoState {
    /// `Some(true)`: the legacy transport; `Some(false)`: Streamable HTTP.
    known: Option<bool>,
    /// The probe running now, by number.
    probing: Option<u64>,
    /// Probes started so far.
    started: u64,
    /// The conclusion of the last probe that ended (`legacy`), by number,
    /// for those who waited on it even when it is not remembered.
    last: Option<(u64, bool)>,
    waiting: Vec<Waker>,
}

impl AutoState {
    /// A probe ended: `legacy`, and whether that is a conclusion to keep
    /// (`None` when the probe never ended).
    fn publish(&mut self, probe: u64, outcome: Option<(bool, bool)>) {
        if self.probing == Some(probe) {
            self.probing = None;
        }
        if let Some((legacy, keep)) = outcome {
            self.last = Some((probe, legacy));
            if keep {
                self.known = Some(legacy);
            }
        }
        for waker in self.waiting.drain(..) {
            waker.wake();
        }
    }
}

/// Ends a probe for the others even if the exchange that runs it is
/// dropped midway (they then try again).
struct Running<'a> {
    auto: &'a AutoTransport,
    probe: u64,
    outcome: Option<(bool, bool)>,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.auto.lock().publish(self.probe, self.outcome);
    }
}

impl AutoTransport {
    fn lock(&self) -> std::sync::MutexGuard<'_, AutoState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `Some(true)` once the route is known to speak the legacy transport,
    /// `Some(false)` Streamable HTTP, `None` while it is in doubt.
    pub(crate) fn known(&self) -> Option<bool> {
        self.lock().known
    }

    /// What `evidence` (an answer the route's upstream gave a client's
    /// POST) says: whether the request should go to the bridge. A held
    /// refusal runs the probe's GET, or waits for the one running; an
    /// answer on its way to the client only concludes what needs no I/O.
    pub(crate) async fn judge(&self, bridge: &RouteBridge, evidence: &TransportEvidence) -> bool {
        let route = bridge.route;
        let answer = FirstAnswer {
            request_headers: &evidence.request_headers,
            status: evidence.status,
            body: &evidence.body,
        };
        if !evidence.held {
            // The rule table alone: an unheld answer never needs the GET.
            let json = &bridge.config.limits.json;
            if judge_answer(evidence.status, &evidence.body, json) == ProbeStep::Streamable {
                let mut state = self.lock();
                if state.known.is_none() {
                    state.known = Some(false);
                    let status = evidence.status;
                    tracing::info!(route, status, "upstream transport: Streamable HTTP");
                }
            }
            return false;
        }
        loop {
            let probe = {
                let mut state = self.lock();
                if let Some(legacy) = state.known {
                    return legacy;
                }
                match state.probing {
                    Some(running) => Err(running),
                    None => {
                        state.started += 1;
                        state.probing = Some(state.started);
                        Ok(state.started)
                    }
                }
            };
            match probe {
                Ok(probe) => {
                    let mut running = Running {
                        auto: self,
                        probe,
                        outcome: None,
                    };
                    let machine =
                        Probe::after_answer(bridge.probe_config(), answer, Instant::now());
                    let (legacy, keep) =
                        bridge.conclude(evidence.status, bridge.run_probe(machine).await);
                    running.outcome = Some((legacy, keep));
                    return legacy;
                }
                Err(running) => {
                    if let Some(legacy) = self.wait_for(running).await {
                        return legacy;
                    }
                }
            }
        }
    }

    /// The conclusion of probe `probe`, once it ends; `None` if it ended
    /// without one.
    async fn wait_for(&self, probe: u64) -> Option<bool> {
        future::poll_fn(|cx| {
            let mut state = self.lock();
            if let Some(legacy) = state.known {
                return Poll::Ready(Some(legacy));
            }
            match state.last {
                Some((p, legacy)) if p == probe => Poll::Ready(Some(legacy)),
                _ if state.probing == Some(probe) => {
                    state.waiting.push(cx.waker().clone());
                    Poll::Pending
                }
                _ => Poll::Ready(None),
            }
        })
        .await
    }
}

impl RouteBridge {
    /// What a probe's result means for the request whose refusal (`status`)
    /// started it: (send it to the bridge, remember that). Logs it.
    fn conclude(&self, status: u16, result: ProbeResult) -> (bool, bool) {
        let route = self.route;
        const HINT: &str = "the client gets the upstream's answer; --upstream-transport \
                            (transport in the config file) set to streamable or sse skips the probe";
        match result {
            ProbeResult::Legacy { endpoint } => {
                tracing::info!(
                    route,
                    status,
                    endpoint = %endpoint,
                    "upstream transport: HTTP+SSE (2024-11-05); the request goes through the bridge"
                );
                (true, true)
            }
            ProbeResult::Streamable { .. } => {
                tracing::info!(
                    route,
                    status,
                    "upstream transport: Streamable HTTP, refusing with a JSON-RPC error; {HINT}"
                );
                (false, true)
            }
            ProbeResult::Inconclusive(e) => {
                tracing::warn!(
                    route,
                    status,
                    error = %e,
                    "upstream transport unknown: it refused a POST and is no HTTP+SSE server \
                     either; {HINT}"
                );
                (false, false)
            }
        }
    }
}
