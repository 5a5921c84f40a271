//! The access log: one structured line per exchange, never a token.

use sluice_core::exchange::Summary;

/// Writes access lines through `tracing` (target `sluice::access`).
pub struct AccessLog {
    enabled: bool,
}

impl AccessLog {
    /// An access log, on or off.
    pub fn new(enabled: bool) -> Self {
        AccessLog { enabled }
    }

    /// Record one finished exchange.
    pub fn record(
        &self,
        s: &Summary,
        route_names: &[String],
        hook_time: Option<std::time::Duration>,
    ) {
        if !self.enabled || s.http_method.is_empty() {
            return;
        }
        let micros = |t: Option<std::time::Instant>| {
            t.map(|t| t.saturating_duration_since(s.started).as_micros() as u64)
        };
        let rpc = s.rpc.as_ref();
        let route = s.route.and_then(|r| route_names.get(r)).map(String::as_str);
        tracing::info!(
            target: "sluice::access",
            method = %s.http_method,
            path = %path_only(&s.target),
            rpc = rpc.and_then(|r| r.method.as_deref()).or(rpc.filter(|r| r.batch).map(|_| "batch")),
            name = rpc.and_then(|r| r.name.as_deref()),
            status = s.status,
            upstream = route,
            outcome = crate::metrics::outcome_label(s.outcome),
            reason = s.reason.as_deref(),
            fault = s.error.as_ref().map(|e| e.side()),
            head_us = micros(s.response_head),
            total_us = micros(s.finished),
            bytes = s.body_bytes,
            reused = s.reused,
            hooks_us = hook_time.map(|t| t.as_micros() as u64),
        );
    }
}

/// The path without its query: queries may carry secrets (tokens, keys).
fn path_only(target: &str) -> &str {
    target.split('?').next().unwrap_or(target)
}
