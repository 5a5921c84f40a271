//! The driver of `sluice_core::legacy::Probe`, the `auto` transport probe:
//! it dials what the machine asks for, writes what it says, feeds it what
//! the connection reads, and wakes it at its deadline. Every decision (which
//! request, what an answer means, when to give up) is the machine's.

use std::io;
use std::time::Instant;

use crate::rt::Timer;
use futures_lite::{AsyncReadExt, AsyncWriteExt, future};
use sluice_core::legacy::{Cleanup, Probe, ProbeConfig, ProbeOutput, ProbeResult};

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

    /// `transport = "auto"`: which transport the backend speaks, from the
    /// probe's own POST. `Some(true)`: the legacy transport; `Some(false)`:
    /// Streamable HTTP; `None`: no conclusion (do not remember one). An
    /// upstream that could not be reached, or did not answer in time, is an
    /// error, as a failed connect is for a direct route.
    pub(crate) async fn probe(&self) -> io::Result<Option<bool>> {
        let result = self
            .run_probe(Probe::new(self.probe_config(), Instant::now()))
            .await;
        let route = self.route;
        match result {
            ProbeResult::Streamable { status, cleanup } => {
                match cleanup {
                    Cleanup::Failed(e) => {
                        tracing::info!(route, error = %e, "transport probe: its session was not deleted")
                    }
                    Cleanup::NotNeeded | Cleanup::Answered(_) => {}
                }
                tracing::debug!(route, status, "transport probe: Streamable HTTP");
                Ok(Some(false))
            }
            ProbeResult::Legacy { endpoint } => {
                tracing::debug!(route, endpoint = %endpoint, "transport probe: HTTP+SSE");
                Ok(Some(true))
            }
            ProbeResult::Inconclusive(e) => {
                tracing::info!(
                    route,
                    error = %e,
                    "transport probe inconclusive; --upstream-transport (transport in the \
                     config file) set to streamable or sse skips the probe"
                );
                if e.upstream_unreachable() {
                    Err(io::Error::other(e))
                } else {
                    Ok(None)
                }
            }
        }
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
