//! The access log: one structured line per exchange, never a token.
//!
//! Written straight into the log queue (`line`) when the proxy knows it
//! (the binary: plain text or JSON to a file or pipe), or through
//! `tracing` otherwise (colours on a terminal, an embedder's subscriber):
//! the same line either way.

mod line;

use std::cell::RefCell;
use std::time::SystemTime;

use sluice_core::exchange::Summary;

use crate::logq::LogWriter;

/// Where access lines go.
pub struct AccessLog {
    sink: Sink,
}

enum Sink {
    Off,
    /// `tracing::info!` with target `sluice::access`.
    Tracing,
    /// Formatted here into the log queue.
    Queue {
        writer: LogWriter,
        json: bool,
    },
}

/// The log queue and the form of its lines, for an access log that skips
/// `tracing`'s generic formatting.
#[derive(Clone)]
pub struct AccessOutput {
    /// The queue every log line goes through.
    pub writer: LogWriter,
    /// JSON lines (`--log-format json`), else text.
    pub json: bool,
}

impl AccessLog {
    /// An access log: off, through `tracing`, or straight into `output`.
    pub fn new(enabled: bool, output: Option<AccessOutput>) -> Self {
        let sink = match (enabled, output) {
            (false, _) => Sink::Off,
            (true, None) => Sink::Tracing,
            (true, Some(AccessOutput { writer, json })) => Sink::Queue { writer, json },
        };
        AccessLog { sink }
    }

    /// Record one finished exchange.
    pub fn record(
        &self,
        s: &Summary,
        route_names: &[String],
        hook_time: Option<std::time::Duration>,
    ) {
        if matches!(self.sink, Sink::Off) || s.http_method.is_empty() {
            return;
        }
        let micros = |t: Option<std::time::Instant>| {
            t.map(|t| t.saturating_duration_since(s.started).as_micros() as u64)
        };
        let rpc = s.rpc.as_ref();
        let f = line::Fields {
            method: &s.http_method,
            path: path_only(&s.target),
            rpc: rpc
                .and_then(|r| r.method.as_deref())
                .or(rpc.filter(|r| r.batch).map(|_| "batch")),
            name: rpc.and_then(|r| r.name.as_deref()),
            status: s.status,
            upstream: s.route.and_then(|r| route_names.get(r)).map(String::as_str),
            outcome: crate::metrics::outcome_label(s.outcome),
            reason: s.reason.as_deref(),
            fault: s.error.as_ref().map(|e| e.side()),
            head_us: micros(s.response_head),
            total_us: micros(s.finished),
            bytes: s.body_bytes,
            reused: s.reused,
            hooks_us: hook_time.map(|t| t.as_micros() as u64),
        };
        match &self.sink {
            Sink::Off => {}
            Sink::Queue { writer, json } => {
                thread_local! {
                    static LINE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
                }
                LINE.with_borrow_mut(|out| {
                    out.clear();
                    let now = SystemTime::now();
                    if *json {
                        line::json(&f, now, out);
                    } else {
                        line::text(&f, now, out);
                    }
                    writer.push_line(out);
                });
            }
            Sink::Tracing => line::through_subscriber(&f),
        }
    }
}

/// The path without its query: queries may carry secrets (tokens, keys).
fn path_only(target: &str) -> &str {
    target.split('?').next().unwrap_or(target)
}
