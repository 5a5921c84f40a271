//! One client connection: read, feed the exchange, drain, write — for each
//! request on the connection in turn.

use std::io::{self, IoSlice};
use std::net::{Shutdown, SocketAddr};
use std::sync::Arc;
use std::task::Poll;
use std::time::Instant;

use bytes::Bytes;
use futures_lite::{AsyncWrite, AsyncWriteExt, future};
use sluice_core::exchange::{
    ClientInfo, Close, Exchange, HookCall, HookPhase, HookVerdict, Output, UpstreamEnd,
};
use std::pin::Pin;

use crate::hooks::{ChainOutcome, HookContext};
use crate::metrics::{Phase, SseStreamOpen};
use crate::rt::net::Stream;

use super::deadline::{Due, Slot};
use super::upstream::{Heard, UpConn};
use super::{Generation, Shared};
use crate::rt::read;

/// Serve every request on one client connection.
pub(super) async fn serve(client: Stream, peer: SocketAddr, shared: Arc<Shared>) {
    let _ = client.set_nodelay(true);
    let info = ClientInfo {
        peer_ip: peer.ip().to_string(),
        https: false,
    };
    let slot = shared.deadlines.register();
    let mut carry = Vec::new();
    let mut to_client: Vec<Bytes> = Vec::new();
    let mut generation = shared.current();
    loop {
        // Each exchange runs to its end on the configuration it started
        // with; the next one takes the newest.
        shared.refresh(&mut generation);
        let gen_ref = &*generation;
        let now = Instant::now();
        let mut exchange = Exchange::new(gen_ref.exchange.clone(), info.clone(), now);
        let fresh = carry.is_empty();
        if !fresh {
            exchange.feed_client(&std::mem::take(&mut carry), now);
        }
        let mut driver = Driver {
            exchange: &mut exchange,
            client: &client,
            shared: &shared,
            generation: gen_ref,
            owner: &generation,
            upstream: None,
            route: 0,
            slot: &slot,
            armed: None,
            to_client: &mut to_client,
            hook_time: None,
            told_shutdown: false,
            sse_open: None,
            fresh,
            trace: None,
            spans: Vec::new(),
            attempt: None,
        };
        let close = match driver.run().await {
            Ended::Close(close) => close,
            // Nothing read yet: the request that comes takes the newest configuration.
            Ended::Stale => continue,
        };
        let hook_time = driver.hook_time;
        let (trace, spans) = (driver.trace.take(), std::mem::take(&mut driver.spans));
        let elapsed = crate::metrics::Elapsed::of(exchange.summary());
        gen_ref.access.record(
            exchange.summary(),
            &elapsed,
            exchange.session_id(),
            hook_time,
        );
        if let Some((tracer, local)) = &shared.tracer {
            // Sampled or not, decided for every exchange that read a request.
            let trace = trace.or_else(|| {
                (!exchange.summary().http_method.is_empty())
                    .then(|| tracer.begin(exchange.trace_context()))
            });
            if let Some(ctx) = trace.filter(|c| c.sampled) {
                let ends = super::trace::Ends {
                    local: *local,
                    peer: peer.ip(),
                };
                let span = super::trace::exchange_span(
                    &ctx,
                    &exchange,
                    &gen_ref.access,
                    &gen_ref.route_names,
                    &ends,
                );
                tracer.submit(span.into_iter().chain(spans));
            }
        }
        shared
            .metrics
            .exchange_done(&gen_ref.routes, exchange.summary(), &elapsed);
        match close {
            Close::KeepAlive if !shared.is_shutting_down() => carry = exchange.take_leftover(),
            Close::KeepAlive | Close::Graceful => {
                let _ = client.shutdown(Shutdown::Write);
                return;
            }
            Close::Abort => {
                // Dropping without a clean end: the client sees the truncation.
                let _ = client.shutdown(Shutdown::Both);
                return;
            }
        }
    }
}

/// How a driver's run ended.
enum Ended {
    /// The exchange ended; what becomes of the connection.
    Close(Close),
    /// A reload swapped the configuration while the exchange waited for
    /// its first byte: none was read, so it starts again on the new one.
    Stale,
}

enum Event {
    /// The client socket is readable (or was, the last time it was read).
    Client,
    Upstream(Heard),
    Timer,
    Shutdown,
}

struct Driver<'a> {
    exchange: &'a mut Exchange,
    client: &'a Stream,
    shared: &'a Shared,
    /// The configuration this exchange runs on, start to end.
    generation: &'a Generation,
    /// The same, for work that outlives the exchange.
    owner: &'a Arc<Generation>,
    upstream: Option<UpConn>,
    route: usize,
    /// This connection's deadline, checked by the proxy's ticker.
    slot: &'a Slot,
    /// The deadline last stored in `slot`.
    armed: Option<Instant>,
    /// Bytes for the client, written together at the next flush.
    to_client: &'a mut Vec<Bytes>,
    /// Time spent in hook chains on this exchange.
    hook_time: Option<std::time::Duration>,
    /// The exchange heard of the shutdown already.
    told_shutdown: bool,
    /// The answer streams as SSE: counted open until the driver is dropped.
    sse_open: Option<SseStreamOpen>,
    /// No byte of this exchange was read yet.
    fresh: bool,
    /// With tracing on, this exchange's span, decided at its first hook
    /// run or connect (whichever comes first), else when it ends.
    trace: Option<crate::otel::SpanContext>,
    /// Finished child spans (hook runs, upstream attempts), when the
    /// exchange is sampled.
    spans: Vec<crate::otel::Span>,
    /// The upstream attempt under way, when the exchange is sampled.
    attempt: Option<super::trace::Attempt>,
}

impl Driver<'_> {
    async fn run(&mut self) -> Ended {
        self.to_client.clear();
        loop {
            while let Some(output) = self.exchange.poll_output() {
                match output {
                    Output::ToClient(bytes) => self.to_client.push(bytes),
                    Output::RunHook(call) => {
                        let verdict = self.run_hooks(&call);
                        self.exchange.hook_done(verdict, Instant::now());
                    }
                    Output::ToUpstream(bytes) => self.write_upstream(&bytes).await,
                    Output::Authenticate(call) => {
                        let verdict = match &self.generation.auth {
                            Some(judge) => judge.judge(&call).await,
                            // A protected route with no judge fails closed.
                            None => sluice_core::auth::Verdict::Unavailable(
                                sluice_core::auth::Outage::NoKeys,
                            ),
                        };
                        self.exchange.auth_done(verdict, Instant::now());
                    }
                    Output::AnswerServer { route, request } => {
                        super::server_answer::send(self.owner.clone(), route, *request)
                    }
                    Output::Dispatch(request) => match self.upstream.as_mut() {
                        Some(UpConn::Message(link)) => link.dispatch(*request),
                        _ => self.upstream_closed(UpstreamEnd::ConnectFailed),
                    },
                    Output::Connect { route, fresh } => {
                        self.begin_attempt(route);
                        // A 100 Continue or similar must not wait for the connect.
                        if self.flush_client().await.is_err() {
                            self.exchange.client_closed(Instant::now());
                            continue;
                        }
                        self.connect(route, fresh).await;
                    }
                    Output::ProbeTransport(evidence) => {
                        // Once per route while its transport is in doubt; a
                        // held refusal waits here for the probe's GET, bounded
                        // by its own deadline. Boxed: not in every task's state.
                        let judged = self
                            .generation
                            .upstreams
                            .judge_transport(self.route, &evidence);
                        let legacy = Box::pin(judged).await;
                        if evidence.held {
                            self.exchange.transport_probed(legacy, Instant::now());
                        }
                    }
                    Output::ReleaseUpstream { reusable } => {
                        self.end_attempt(None);
                        if let Some(conn) = self.upstream.take()
                            && reusable
                        {
                            self.generation.upstreams.checkin(self.route, conn);
                        }
                    }
                    Output::Finished { close } => {
                        self.end_attempt(None);
                        let flushed = self.flush_client().await;
                        return Ended::Close(if flushed.is_err() {
                            Close::Abort
                        } else {
                            close
                        });
                    }
                }
            }
            if self.sse_open.is_none() && self.exchange.summary().event_stream {
                let route = self.exchange.summary().route;
                self.sse_open = Some(
                    self.shared
                        .metrics
                        .sse_stream_opened(&self.generation.routes, route),
                );
            }
            if self.flush_client().await.is_err() {
                self.exchange.client_closed(Instant::now());
                continue;
            }
            match self.wait(!self.told_shutdown).await {
                Event::Client if self.fresh && self.shared.is_stale(self.generation) => {
                    return Ended::Stale;
                }
                Event::Client => {
                    self.fresh = false;
                    self.read_client();
                }
                Event::Upstream(Heard::Bytes(Ok(bytes))) if bytes.is_empty() => {
                    self.upstream_closed(UpstreamEnd::Eof)
                }
                Event::Upstream(Heard::Bytes(Ok(bytes))) => {
                    self.exchange.feed_upstream(bytes, Instant::now())
                }
                Event::Upstream(Heard::Bytes(Err(_))) => self.upstream_closed(UpstreamEnd::Error),
                Event::Upstream(Heard::Part(Some(part))) => {
                    self.exchange.feed_answer(part, Instant::now())
                }
                // The bridge gave up on this stream before its answer was whole.
                Event::Upstream(Heard::Part(None)) => self.upstream_closed(UpstreamEnd::Error),
                Event::Timer => self.exchange.handle_timeout(Instant::now()),
                Event::Shutdown => {
                    // Core decides: idle closes, half-read gets 503, under way finishes.
                    self.told_shutdown = true;
                    self.exchange.shutdown(Instant::now());
                }
            }
        }
    }

    /// The exchange's span context, decided on first asking; `None` with
    /// tracing off.
    fn trace_context(&mut self) -> Option<&crate::otel::SpanContext> {
        let (tracer, _) = self.shared.tracer.as_ref()?;
        if self.trace.is_none() {
            self.trace = Some(tracer.begin(self.exchange.trace_context()));
        }
        self.trace.as_ref()
    }

    /// With tracing on, a new upstream attempt: its span's id goes upstream
    /// as the request's `traceparent` parent (its trace the exchange's), in
    /// the header and in `params._meta` (in every request for a stdio
    /// child or a federation, whose stdio members hear no header), and a
    /// sampled exchange times it.
    fn begin_attempt(&mut self, route: usize) {
        let Some(ctx) = self.trace_context() else {
            return;
        };
        let id = crate::otel::new_span_id();
        let sampled = ctx.sampled;
        let parent = sluice_core::tracecontext::TraceParent {
            parent_id: id,
            ..ctx.traceparent()
        };
        let carrier = self.generation.upstreams.trace_carrier(route);
        self.exchange.propagate_trace(&parent, carrier);
        if sampled {
            self.attempt = Some(super::trace::Attempt {
                id,
                start: std::time::SystemTime::now(),
            });
        }
    }

    /// The upstream attempt under way ended: its span, failed with
    /// `error`, or else with the exchange's failure if the upstream or a
    /// timeout caused it.
    fn end_attempt(&mut self, error: Option<&str>) {
        let (Some(attempt), Some(ctx)) = (self.attempt.take(), self.trace.as_ref()) else {
            return;
        };
        let s = self.exchange.summary();
        let error = error.map(str::to_owned).or_else(|| {
            s.error
                .as_ref()
                .filter(|e| matches!(e.side(), "upstream" | "timeout"))
                .map(|e| e.code().to_string())
        });
        let upstream = s.route.and_then(|r| self.generation.access.route(r));
        self.spans
            .push(super::trace::attempt_span(ctx, attempt, s, upstream, error));
    }

    /// Store the exchange's current deadline where the ticker sees it.
    fn arm(&mut self) {
        let deadline = self.exchange.poll_timeout();
        if deadline != self.armed {
            self.slot.set(deadline);
            self.armed = deadline;
        }
    }

    /// Wait for the upstream's next bytes, the client's, the deadline or
    /// (unless the exchange heard of it) shutdown. Holds no buffer while
    /// waiting.
    /// The client is not waited on while the exchange takes no more of its
    /// bytes (pipelined data past the limit): its socket pushes back.
    async fn wait(&mut self, shutdown: bool) -> Event {
        self.arm();
        let client = (self.exchange.client_read_budget() > 0).then_some(self.client);
        let slot = self.slot;
        let deadlines = &*self.shared.deadlines;
        let mut upstream = self.upstream.as_mut();
        future::poll_fn(move |cx| {
            if let Some(up) = upstream.as_deref_mut()
                && let Poll::Ready(heard) = up.poll_heard(cx)
            {
                return Poll::Ready(Event::Upstream(heard));
            }
            // Readiness only: a client read happens when there is something to read.
            if client.is_some_and(|c| c.poll_readable(cx).is_ready()) {
                return Poll::Ready(Event::Client);
            }
            slot.poll_due(deadlines, shutdown, cx).map(|due| match due {
                Due::Deadline => Event::Timer,
                Due::Shutdown => Event::Shutdown,
            })
        })
        .await
    }

    /// Read what the client sent straight from the worker's scratch buffer
    /// into the exchange.
    fn read_client(&mut self) {
        let exchange = &mut *self.exchange;
        let budget = exchange.client_read_budget();
        if budget == 0 {
            return;
        }
        let read = read::read_tcp(self.client, budget, |bytes| {
            if !bytes.is_empty() {
                exchange.feed_client(bytes, Instant::now());
            }
        });
        match read {
            Ok((0, ())) => self.exchange.client_closed(Instant::now()),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) => {}
            Err(_) => self.exchange.client_closed(Instant::now()),
        }
    }

    /// Run the hook chain inline: hooks are bounded CPU work (a deadline
    /// per hook), microseconds for compiled guests.
    fn run_hooks(&mut self, call: &HookCall) -> HookVerdict {
        let Some(host) = self.generation.hooks.as_deref() else {
            return HookVerdict::Continue;
        };
        let ctx = HookContext {
            session_id: call.session_id.clone(),
            protocol_version: call.protocol_version.clone(),
            upstream: self
                .generation
                .route_names
                .get(call.route)
                .cloned()
                .unwrap_or_default(),
            headers: call.headers.clone(),
            identity: self.exchange.identity().cloned(),
        };
        let started = self
            .trace_context()
            .filter(|c| c.sampled)
            .map(|_| std::time::SystemTime::now());
        // Core hands out text it classified: UTF-8 JSON-RPC, nothing to re-check.
        let report = match (call.phase, call.response.as_deref()) {
            (HookPhase::Request, _) => host.run_request(&ctx, &call.method, &call.request),
            (HookPhase::Response, response) => host.run_response(
                &ctx,
                &call.method,
                &call.request,
                response.unwrap_or_default(),
            ),
            (HookPhase::ServerMessage, _) => {
                host.run_server_message(&ctx, &call.method, &call.request)
            }
            (HookPhase::ClientAnswer, answer) => host.run_client_answer(
                &ctx,
                &call.method,
                &call.request,
                answer.unwrap_or_default(),
            ),
        };
        *self.hook_time.get_or_insert_default() += report.total;
        let phase = match call.phase {
            HookPhase::Request => Phase::Request,
            HookPhase::Response => Phase::Response,
            HookPhase::ServerMessage => Phase::ServerMessage,
            HookPhase::ClientAnswer => Phase::ClientAnswer,
        };
        if let (Some(start), Some(ctx)) = (started, self.trace.as_ref()) {
            super::trace::hook_spans(
                ctx,
                start,
                phase,
                &call.method,
                &report.runs,
                &mut self.spans,
            );
        }
        for run in &report.runs {
            self.shared.metrics.hook_ran(phase, run);
            if run.audit && !matches!(run.result, crate::hooks::HookRunResult::Continue) {
                let would = match &run.result {
                    crate::hooks::HookRunResult::Replaced => "replace",
                    crate::hooks::HookRunResult::Rejected => "reject",
                    crate::hooks::HookRunResult::Responded => "respond",
                    _ => "fail",
                };
                tracing::info!(
                    hook = %run.hook,
                    phase = phase.label(),
                    method = %call.method,
                    route = self.generation.route_names.get(call.route).map_or("", String::as_str),
                    session = call.session_id.as_deref().unwrap_or(""),
                    would,
                    "audit: a hook's verdict, not applied"
                );
            }
            if let crate::hooks::HookRunResult::Failed { error, passed } = &run.result {
                tracing::warn!(
                    hook = %run.hook,
                    phase = phase.label(),
                    method = %call.method,
                    route = self.generation.route_names.get(call.route).map_or("", String::as_str),
                    kind = crate::metrics::failure_label(&error.kind),
                    error = %error,
                    passed,
                    "hook failed"
                );
            }
        }
        match report.outcome {
            ChainOutcome::Continue => HookVerdict::Continue,
            ChainOutcome::Replaced(json) => HookVerdict::Replace(json.into_bytes()),
            ChainOutcome::Reject {
                code,
                message,
                data,
            } => HookVerdict::Reject {
                code,
                message,
                data: data.map(String::into_bytes),
            },
            ChainOutcome::Respond(result) => HookVerdict::Respond(result.into_bytes()),
        }
    }

    async fn connect(&mut self, route: usize, fresh: bool) {
        self.route = route;
        self.upstream = None;
        self.arm();
        let attempt = async { Some(self.generation.upstreams.checkout(route, fresh).await) };
        let (slot, deadlines) = (self.slot, &*self.shared.deadlines);
        let timeout = future::poll_fn(|cx| slot.poll_due(deadlines, false, cx).map(|_| None));
        match future::or(attempt, timeout).await {
            Some(Ok(checkout)) => {
                let messages = matches!(checkout.conn, UpConn::Message(_));
                self.upstream = Some(checkout.conn);
                if messages {
                    self.exchange.message_upstream_connected(Instant::now());
                } else {
                    if checkout.in_doubt {
                        self.exchange.probe_transport();
                    }
                    self.exchange
                        .upstream_connected(checkout.reused, Instant::now());
                }
            }
            Some(Err(e)) => {
                self.log_connect_failure(route, &e);
                self.end_attempt(Some("connect-failed"));
                self.exchange
                    .upstream_closed(UpstreamEnd::ConnectFailed, Instant::now());
            }
            None => {
                self.end_attempt(Some("connect-timeout"));
                self.exchange.handle_timeout(Instant::now());
            }
        }
    }

    /// A failed dial at `warn`, with the route, the upstream's address
    /// and the OS (or TLS) error: what an operator alerts on.
    fn log_connect_failure(&self, route: usize, e: &io::Error) {
        let name = self
            .generation
            .route_names
            .get(route)
            .map_or("", String::as_str);
        if !crate::dial::DialError::warn(name, e) {
            // Not a dial: a route that cannot serve (its cause was logged
            // when it started).
            tracing::warn!(route = name, error = %e, "upstream unavailable");
        }
    }

    async fn write_upstream(&mut self, bytes: &[u8]) {
        let Some(UpConn::Net(up)) = self.upstream.as_mut() else {
            self.end_attempt(Some("write-failed"));
            self.exchange
                .upstream_closed(UpstreamEnd::WriteFailed, Instant::now());
            return;
        };
        if up.write_all(bytes).await.is_err() {
            self.upstream_closed(UpstreamEnd::WriteFailed);
            return;
        }
        if up.flush().await.is_err() {
            // TLS: the request may have gone out whole before the flush failed.
            self.upstream_closed(UpstreamEnd::Error);
        }
    }

    fn upstream_closed(&mut self, end: UpstreamEnd) {
        self.upstream = None;
        let error = match end {
            // The answer may be whole (an until-close body): the
            // exchange's own failure, if any, says.
            UpstreamEnd::Eof => None,
            UpstreamEnd::Error => Some("upstream-error"),
            UpstreamEnd::WriteFailed => Some("write-failed"),
            UpstreamEnd::ConnectFailed => Some("connect-failed"),
        };
        self.end_attempt(error);
        self.exchange.upstream_closed(end, Instant::now());
    }

    async fn flush_client(&mut self) -> io::Result<()> {
        if self.to_client.is_empty() {
            return Ok(());
        }
        let result = write_all_vectored(self.client, self.to_client).await;
        self.to_client.clear();
        result
    }
}

/// Write every buffer, gathering them into as few syscalls as the kernel
/// allows. The slice array lives only inside one poll: held across an
/// `.await` it would add 1 KiB to every connection's task.
async fn write_all_vectored(
    mut w: impl AsyncWrite + Unpin,
    bufs: &mut Vec<Bytes>,
) -> io::Result<()> {
    bufs.retain(|b| !b.is_empty());
    let mut first = 0;
    future::poll_fn(|cx| {
        while first < bufs.len() {
            let mut slices = [IoSlice::new(&[]); 64];
            let count = (bufs.len() - first).min(slices.len());
            for (slice, b) in slices.iter_mut().zip(&bufs[first..first + count]) {
                *slice = IoSlice::new(b);
            }
            let mut n =
                std::task::ready!(Pin::new(&mut w).poll_write_vectored(cx, &slices[..count]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            while n > 0 {
                let len = bufs[first].len();
                if n >= len {
                    n -= len;
                    first += 1;
                } else {
                    let rest = bufs[first].slice(n..);
                    bufs[first] = rest;
                    n = 0;
                }
            }
        }
        Poll::Ready(Ok(()))
    })
    .await
}
