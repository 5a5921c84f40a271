//! Traces over OTLP/HTTP: spans made by the proxy's drivers leave the
//! process through a bounded queue drained by one thread (`sluice-otlp`),
//! so a worker never waits on the trace backend.
//!
//! A worker that finishes a sampled exchange pushes its spans (the
//! exchange's, and one per hook run) into the queue under a mutex, or
//! drops them and counts them in `sluice_trace_spans_dropped_total` when it
//! is full. The thread takes up to [`BATCH`] spans when that many wait or
//! when the oldest has waited [`LINGER`], encodes them as OTLP/JSON
//! (`ExportTraceServiceRequest`, `Content-Type: application/json`: one of
//! the two encodings every OTLP/HTTP receiver takes) and POSTs them over a
//! plain blocking `TcpStream`. Spans the endpoint refused or never got
//! are counted as dropped too; those it took, in
//! `sluice_trace_spans_exported_total`.
//!
//! Off (no `[tracing]` table), the proxy holds no `Tracer` and a driver
//! pays one branch per exchange.

mod otlp;

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime};

use prometheus_client::metrics::counter::Counter;
use sluice_core::tracecontext::{SpanId, TraceId, TraceParent};

pub use otlp::encode;

/// The exporter thread's name.
pub const THREAD_NAME: &str = "sluice-otlp";

/// Most spans in one export request.
pub const BATCH: usize = 512;

/// Longest a span waits for its batch to fill.
pub const LINGER: Duration = Duration::from_millis(200);

/// How long one export may take to connect, and then to write and read.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where spans go and which are kept: `[tracing]` resolved.
#[derive(Clone, Debug)]
pub struct TraceSettings {
    /// The OTLP/HTTP receiver's host (a name or an IP literal).
    pub host: String,
    /// Its port.
    pub port: u16,
    /// The request target: the URL's path and query
    /// (`/v1/traces` by convention).
    pub target: String,
    /// The `Host` header's value.
    pub authority: String,
    /// The share of traces recorded that no client started (0.0 to 1.0);
    /// a client's sampled flag decides for the traces it started.
    pub sample_ratio: f64,
    /// The resource's `service.name`.
    pub service_name: String,
    /// Most spans waiting for export.
    pub queue_spans: usize,
    /// TLS towards an `https` receiver (the `[tls]` trust anchors);
    /// `None`: plain `http`.
    pub tls: Option<std::sync::Arc<futures_rustls::rustls::ClientConfig>>,
}

/// The two counters the exporter keeps, registered with the metrics.
#[derive(Clone, Debug, Default)]
pub struct SpanCounters {
    /// `sluice_trace_spans_dropped_total`.
    pub dropped: Counter,
    /// `sluice_trace_spans_exported_total`.
    pub exported: Counter,
}

/// A span's kind (OTLP's `SpanKind` numbers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Work inside sluice (a hook run).
    Internal = 1,
    /// sluice answering a client (the exchange).
    Server = 2,
    /// sluice calling an upstream.
    Client = 3,
}

/// An attribute's value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// `stringValue`.
    Str(String),
    /// `intValue`.
    Int(i64),
    /// `boolValue`.
    Bool(bool),
}

/// One finished span, ready to export.
#[derive(Clone, Debug)]
pub struct Span {
    /// Its trace.
    pub trace_id: TraceId,
    /// Its own id.
    pub span_id: SpanId,
    /// Its parent: the client's span, or sluice's exchange span.
    pub parent: Option<SpanId>,
    /// The W3C `tracestate` it carries (the client's).
    pub trace_state: Option<String>,
    /// Its name.
    pub name: String,
    /// Its kind.
    pub kind: Kind,
    /// When it started.
    pub start: SystemTime,
    /// When it ended.
    pub end: SystemTime,
    /// Its attributes, in the order written.
    pub attributes: Vec<(&'static str, Value)>,
    /// Set when it failed: the status `ERROR` and this message.
    pub error: Option<String>,
}

/// The exchange span's identity, decided once per exchange: the trace it
/// joins, its own id, and whether it is recorded.
#[derive(Clone, Debug)]
pub struct SpanContext {
    /// The trace: the client's, or a new one.
    pub trace_id: TraceId,
    /// The exchange span's id.
    pub span_id: SpanId,
    /// The client's span, when it sent a valid `traceparent`.
    pub parent: Option<SpanId>,
    /// The client's `tracestate`, with its parent.
    pub trace_state: Option<String>,
    /// Recorded and exported (else only propagated).
    pub sampled: bool,
}

impl SpanContext {
    /// The `traceparent` the upstream gets: this span as its parent.
    pub fn traceparent(&self) -> TraceParent {
        TraceParent {
            trace_id: self.trace_id,
            parent_id: self.span_id,
            flags: u8::from(self.sampled),
        }
    }
}

/// The tracer: the sampling rule, the queue and its exporter thread.
pub struct Tracer {
    settings: TraceSettings,
    queue: Arc<Queue>,
    counters: SpanCounters,
}

impl std::fmt::Debug for Tracer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracer")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

struct Pending {
    spans: VecDeque<Span>,
    /// When the oldest waiting span was queued.
    oldest: Option<Instant>,
    /// Set when the tracer is dropped: export what is left and stop.
    closing: bool,
}

struct Queue {
    pending: Mutex<Pending>,
    wake: Condvar,
    capacity: usize,
    /// Set by the exporter when it has exported what was left and stopped.
    done: (Mutex<bool>, Condvar),
}

impl Tracer {
    /// Start the exporter thread.
    pub fn start(settings: TraceSettings, counters: SpanCounters) -> std::io::Result<Tracer> {
        let queue = Arc::new(Queue {
            pending: Mutex::new(Pending {
                spans: VecDeque::new(),
                oldest: None,
                closing: false,
            }),
            wake: Condvar::new(),
            capacity: settings.queue_spans.max(1),
            done: (Mutex::new(false), Condvar::new()),
        });
        let exporter = Exporter {
            settings: settings.clone(),
            queue: queue.clone(),
            counters: counters.clone(),
            failing: false,
        };
        std::thread::Builder::new()
            .name(THREAD_NAME.into())
            .spawn(move || exporter.run())?;
        Ok(Tracer {
            settings,
            queue,
            counters,
        })
    }

    /// The exchange span's context: a valid client `traceparent` is
    /// continued (its trace, its parent, its sampled flag), else a new
    /// trace is sampled at the configured ratio.
    pub fn begin(
        &self,
        client: Option<(TraceParent, Option<std::borrow::Cow<'_, str>>)>,
    ) -> SpanContext {
        let parent = client.as_ref().map(|(p, _)| *p);
        let trace_id = match parent {
            Some(p) => p.trace_id,
            None => new_trace_id(),
        };
        let sampled = sluice_core::tracecontext::sampled(
            self.settings.sample_ratio,
            parent.as_ref(),
            &trace_id,
        );
        SpanContext {
            trace_id,
            span_id: new_span_id(),
            parent: parent.map(|p| p.parent_id),
            trace_state: client.and_then(|(_, s)| s.map(std::borrow::Cow::into_owned)),
            sampled,
        }
    }

    /// Queue finished spans for export, or count them dropped when the
    /// queue is full. Never blocks on the exporter (one short lock).
    pub fn submit(&self, spans: impl IntoIterator<Item = Span>) {
        let mut dropped = 0u64;
        let wake = {
            let Ok(mut p) = self.queue.pending.lock() else {
                return;
            };
            let was_empty = p.spans.is_empty();
            for span in spans {
                if p.spans.len() >= self.queue.capacity {
                    dropped += 1;
                } else {
                    p.spans.push_back(span);
                }
            }
            if was_empty && !p.spans.is_empty() {
                p.oldest = Some(Instant::now());
            }
            // The exporter sleeps while the queue is empty, and until a
            // batch fills or the oldest span lingered long enough otherwise.
            (was_empty && !p.spans.is_empty()) || p.spans.len() >= BATCH
        };
        if dropped > 0 {
            self.counters.dropped.inc_by(dropped);
        }
        if wake {
            self.queue.wake.notify_one();
        }
    }

    /// Export what is queued and stop the exporter, waiting up to `wait`
    /// for it (a receiver that hangs must not hold the process at exit);
    /// `true` when it finished. Spans submitted after this are not
    /// exported.
    pub fn flush(&self, wait: Duration) -> bool {
        if let Ok(mut p) = self.queue.pending.lock() {
            p.closing = true;
        }
        self.queue.wake.notify_one();
        let (done, signal) = &self.queue.done;
        let Ok(guard) = done.lock() else {
            return false;
        };
        match signal.wait_timeout_while(guard, wait, |done| !*done) {
            Ok((done, _)) => *done,
            Err(_) => false,
        }
    }

    /// The service name spans are exported under.
    pub fn service_name(&self) -> &str {
        &self.settings.service_name
    }
}

impl Drop for Tracer {
    fn drop(&mut self) {
        if let Ok(mut p) = self.queue.pending.lock() {
            p.closing = true;
        }
        self.queue.wake.notify_one();
    }
}

struct Exporter {
    settings: TraceSettings,
    queue: Arc<Queue>,
    counters: SpanCounters,
    /// The last export failed (said once in the log per failing streak).
    failing: bool,
}

impl Exporter {
    fn run(mut self) {
        loop {
            let (batch, last) = self.next_batch();
            if !batch.is_empty() {
                self.export(batch);
            }
            if last {
                break;
            }
        }
        let (done, signal) = &self.queue.done;
        if let Ok(mut done) = done.lock() {
            *done = true;
        }
        signal.notify_all();
    }

    /// Wait for a batch: [`BATCH`] spans, or the oldest has lingered, or
    /// the tracer is closing (`true`: the queue is empty after this one).
    fn next_batch(&self) -> (Vec<Span>, bool) {
        let Ok(mut p) = self.queue.pending.lock() else {
            return (Vec::new(), true);
        };
        loop {
            if p.closing {
                let n = p.spans.len().min(BATCH);
                let batch: Vec<Span> = p.spans.drain(..n).collect();
                let last = p.spans.is_empty();
                return (batch, last);
            }
            let due = p.oldest.map(|t| t + LINGER);
            let now = Instant::now();
            if p.spans.len() >= BATCH || due.is_some_and(|d| d <= now) {
                let n = p.spans.len().min(BATCH);
                let batch = p.spans.drain(..n).collect();
                p.oldest = (!p.spans.is_empty()).then_some(now);
                return (batch, false);
            }
            p = match due {
                None => match self.queue.wake.wait(p) {
                    Ok(p) => p,
                    Err(_) => return (Vec::new(), true),
                },
                Some(due) => match self.queue.wake.wait_timeout(p, due - now) {
                    Ok((p, _)) => p,
                    Err(_) => return (Vec::new(), true),
                },
            };
        }
    }

    fn export(&mut self, batch: Vec<Span>) {
        let n = batch.len() as u64;
        let body = encode(&self.settings.service_name, &batch);
        match otlp::post(&self.settings, &body, EXPORT_TIMEOUT) {
            Ok(()) => {
                self.counters.exported.inc_by(n);
                if std::mem::take(&mut self.failing) {
                    tracing::info!(
                        endpoint = %self.endpoint(),
                        "trace export works again"
                    );
                }
            }
            Err(e) => {
                self.counters.dropped.inc_by(n);
                if !std::mem::replace(&mut self.failing, true) {
                    tracing::warn!(
                        endpoint = %self.endpoint(),
                        error = %e,
                        spans = n,
                        "trace export failed; spans are dropped until it works"
                    );
                }
            }
        }
    }

    fn endpoint(&self) -> String {
        format!("http://{}{}", self.settings.authority, self.settings.target)
    }
}

thread_local! {
    /// SplitMix64 state, seeded once per thread from the OS.
    static RNG: std::cell::Cell<u64> = std::cell::Cell::new(seed());
}

fn seed() -> u64 {
    let mut b = [0u8; 8];
    // Ids need to be unique, not secret: a failed read still gets a
    // per-thread seed from the clock and the thread.
    if getrandom::fill(&mut b).is_err() {
        let t = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos() as u64;
        let id = std::hash::BuildHasher::hash_one(
            &std::hash::RandomState::new(),
            std::thread::current().id(),
        );
        return t ^ id;
    }
    u64::from_ne_bytes(b)
}

fn next_u64() -> u64 {
    RNG.with(|s| {
        let x = s.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
        s.set(x);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    })
}

/// A new random trace id (never all zero).
pub fn new_trace_id() -> TraceId {
    loop {
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&next_u64().to_be_bytes());
        id[8..].copy_from_slice(&next_u64().to_be_bytes());
        let id = TraceId(id);
        if id.is_valid() {
            return id;
        }
    }
}

/// A new random span id (never all zero).
pub fn new_span_id() -> SpanId {
    loop {
        let id = SpanId(next_u64().to_be_bytes());
        if id.is_valid() {
            return id;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(queue_spans: usize) -> TraceSettings {
        TraceSettings {
            // Nothing listens on port 9 (discard) here; exports fail.
            host: "127.0.0.1".into(),
            port: 9,
            target: "/v1/traces".into(),
            authority: "127.0.0.1:9".into(),
            sample_ratio: 1.0,
            service_name: "sluice".into(),
            queue_spans,
            tls: None,
        }
    }

    fn span(name: &str) -> Span {
        Span {
            trace_id: new_trace_id(),
            span_id: new_span_id(),
            parent: None,
            trace_state: None,
            name: name.into(),
            kind: Kind::Server,
            start: SystemTime::now(),
            end: SystemTime::now(),
            attributes: Vec::new(),
            error: None,
        }
    }

    #[test]
    fn a_full_queue_drops_and_counts() {
        let counters = SpanCounters::default();
        let queue = Arc::new(Queue {
            pending: Mutex::new(Pending {
                spans: VecDeque::new(),
                oldest: None,
                closing: false,
            }),
            wake: Condvar::new(),
            capacity: 2,
            done: (Mutex::new(false), Condvar::new()),
        });
        // No exporter thread: the queue only fills.
        let tracer = Tracer {
            settings: settings(2),
            queue: queue.clone(),
            counters: counters.clone(),
        };
        tracer.submit([span("a"), span("b"), span("c")]);
        tracer.submit([span("d")]);
        assert_eq!(counters.dropped.get(), 2);
        let names: Vec<String> = queue
            .pending
            .lock()
            .unwrap()
            .spans
            .iter()
            .map(|s| s.name.clone())
            .collect();
        assert_eq!(names, ["a", "b"], "the first spans stay, in order");
    }

    #[test]
    fn a_client_parent_is_continued_and_decides_sampling() {
        let mut s = settings(8);
        s.sample_ratio = 0.0;
        let tracer = Tracer::start(s, SpanCounters::default()).unwrap();
        let parent =
            TraceParent::parse(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        let ctx = tracer.begin(Some((parent, Some("k=v".into()))));
        assert_eq!(ctx.trace_id, parent.trace_id);
        assert_eq!(ctx.parent, Some(parent.parent_id));
        assert_ne!(ctx.span_id, parent.parent_id);
        assert!(
            ctx.sampled,
            "the client sampled it; ratio 0 does not matter"
        );
        assert_eq!(ctx.trace_state.as_deref(), Some("k=v"));
        let up = ctx.traceparent();
        assert_eq!(up.parent_id, ctx.span_id);
        assert!(up.is_sampled());
        let fresh = tracer.begin(None);
        assert!(!fresh.sampled, "ratio 0, no parent");
        assert_eq!(fresh.parent, None);
        assert_ne!(fresh.trace_id, parent.trace_id);
        assert!(!fresh.traceparent().is_sampled());
    }

    /// A receiver on a free port answering `status` to one request; it
    /// sends the body it read.
    fn receiver(status: u16) -> (u16, std::sync::mpsc::Receiver<Vec<u8>>) {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let Ok((mut conn, _)) = listener.accept() else {
                return;
            };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let body = loop {
                let Ok(n @ 1..) = conn.read(&mut chunk) else {
                    return;
                };
                buf.extend_from_slice(&chunk[..n]);
                let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                    continue;
                };
                let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                if buf.len() >= end + 4 + len {
                    break buf[end + 4..end + 4 + len].to_vec();
                }
            };
            let _ = write!(conn, "HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n");
            let _ = tx.send(body);
        });
        (port, rx)
    }

    #[test]
    fn a_flush_exports_what_is_queued_before_it_returns() {
        let (port, bodies) = receiver(200);
        let counters = SpanCounters::default();
        let mut s = settings(8);
        s.port = port;
        let tracer = Tracer::start(s, counters.clone()).unwrap();
        tracer.submit([span("one")]);
        assert!(
            tracer.flush(Duration::from_secs(30)),
            "the exporter stopped"
        );
        assert_eq!(counters.exported.get(), 1);
        assert_eq!(counters.dropped.get(), 0);
        let body = bodies.recv().unwrap();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            json["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["name"],
            "one"
        );
    }

    #[test]
    fn a_refused_export_counts_its_spans_dropped() {
        let (port, _bodies) = receiver(503);
        let counters = SpanCounters::default();
        let mut s = settings(8);
        s.port = port;
        let tracer = Tracer::start(s, counters.clone()).unwrap();
        tracer.submit([span("a"), span("b")]);
        assert!(tracer.flush(Duration::from_secs(30)));
        assert_eq!(counters.dropped.get(), 2);
        assert_eq!(counters.exported.get(), 0);
    }

    #[test]
    fn ids_are_valid_and_differ() {
        let a = new_trace_id();
        let b = new_trace_id();
        assert!(a.is_valid() && b.is_valid());
        assert_ne!(a, b);
        assert_ne!(new_span_id(), new_span_id());
    }
}
