//! The access log: one structured line per exchange, never a token.
//!
//! Written straight into the log queue (`line`) when the proxy knows it
//! (the binary: plain text or JSON to a file or pipe), or through
//! `tracing` otherwise (colours on a terminal, an embedder's subscriber):
//! the same line either way.

mod line;

use std::hash::{BuildHasher, RandomState};

use sluice_core::exchange::Summary;

use crate::logq::LogWriter;
use crate::metrics::Elapsed;

/// Where access lines go.
pub struct AccessLog {
    sink: Sink,
    /// Write `subject=<redacted>` instead of the caller.
    redact_subject: bool,
    /// By route index: its name and where its upstream lives.
    routes: Vec<line::RouteLine>,
    /// The key of the session hash, random per process.
    session_key: RandomState,
}

/// How a route is named in access lines.
#[derive(Clone, Debug)]
pub struct RouteLabel {
    /// The configured route name.
    pub name: String,
    /// Where its upstream lives: `host:port` for a URL, `stdio` for a
    /// command, `federation` for a federated route. Never a path or a
    /// query (they may carry keys).
    pub upstream: String,
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
        AccessLog {
            sink,
            redact_subject: false,
            routes: Vec::new(),
            session_key: RandomState::new(),
        }
    }

    /// The same log, naming routes (by route index) with `routes`.
    pub fn with_routes(mut self, routes: Vec<RouteLabel>) -> Self {
        self.routes = routes.into_iter().map(line::RouteLine::new).collect();
        self
    }

    /// The same log, hashing session ids with `other`'s key: a session's
    /// lines match across a reload.
    pub fn with_key_of(mut self, other: &AccessLog) -> Self {
        self.session_key = other.session_key.clone();
        self
    }

    /// The same log, naming callers as `<redacted>` when `redact`.
    pub fn redacting_subject(mut self, redact: bool) -> Self {
        self.redact_subject = redact;
        self
    }

    /// Record one finished exchange, which took `elapsed`; `session` is the
    /// request's `Mcp-Session-Id` (logged as a hash, never as is).
    pub fn record(
        &self,
        s: &Summary,
        elapsed: &Elapsed,
        session: Option<&str>,
        hook_time: Option<std::time::Duration>,
    ) {
        if matches!(self.sink, Sink::Off) || s.http_method.is_empty() {
            return;
        }
        let rpc = s.rpc.as_ref();
        let route = s.route.and_then(|r| self.routes.get(r));
        let mut session_hex = [0u8; 16];
        let f = line::Fields {
            method: &s.http_method,
            path: path_only(&s.target),
            rpc: rpc
                .and_then(|r| r.method.as_deref())
                .or(rpc.filter(|r| r.batch).map(|_| "batch")),
            name: rpc.and_then(|r| r.name.as_deref()),
            status: s.status,
            route,
            session: session.map(|id| self.session_hash(id, &mut session_hex)),
            subject: self.subject(s),
            outcome: crate::metrics::outcome_label(s.outcome),
            reason: s.reason.as_deref(),
            fault: s.error.as_ref().map(|e| e.side()),
            head_us: elapsed.head.map(micros),
            total_us: elapsed.total.map(micros),
            bytes: s.body_bytes,
            reused: s.reused,
            hooks_us: hook_time.map(micros),
        };
        match &self.sink {
            Sink::Off => {}
            Sink::Queue { writer, json } => {
                let now = line::Stamp::now();
                let json = *json;
                writer.push_with(|out| match json {
                    true => line::json(&f, now, out),
                    false => line::text(&f, now, out),
                });
            }
            Sink::Tracing => line::through_subscriber(&f),
        }
    }
}

impl AccessLog {
    /// A session id as the line names it: 16 hex digits of a keyed hash
    /// (SipHash, its key random per process). Lines of one session match;
    /// the id, a bearer credential on some servers, cannot be read back,
    /// nor guessed from a hash when the server's ids are guessable.
    fn session_hash<'b>(&self, id: &str, out: &'b mut [u8; 16]) -> &'b str {
        let hash = self.session_key.hash_one(id);
        const HEX: &[u8; 16] = b"0123456789abcdef";
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = HEX[(hash >> (60 - 4 * i) & 0xf) as usize];
        }
        std::str::from_utf8(out).unwrap_or_default()
    }

    /// A session id as access lines name it (see [`AccessLog::session_hash`]),
    /// for a span's `mcp.session.id`: a trace and the access log agree.
    pub(crate) fn session_label(&self, id: &str) -> String {
        let mut out = [0u8; 16];
        self.session_hash(id, &mut out).to_string()
    }

    /// How route `index` is named in access lines.
    pub(crate) fn route(&self, index: usize) -> Option<&RouteLabel> {
        self.routes.get(index).map(|r| &r.label)
    }

    /// The caller as the line names it: its subject, or `<redacted>`.
    fn subject<'s>(&self, s: &'s Summary) -> Option<&'s str> {
        s.identity.as_ref().map(|id| match self.redact_subject {
            true => crate::config::REDACTED,
            false => id.subject.as_str(),
        })
    }
}

/// Whole microseconds of `d`, in u64 arithmetic (`as_micros` divides a
/// u128); saturating, as no exchange lasts 584,000 years.
fn micros(d: std::time::Duration) -> u64 {
    d.as_secs()
        .saturating_mul(1_000_000)
        .saturating_add(u64::from(d.subsec_micros()))
}

/// The path without its query: queries may carry secrets (tokens, keys).
fn path_only(target: &str) -> &str {
    // A plain loop: paths are short, and memchr's set-up costs more here.
    match target.bytes().position(|b| b == b'?') {
        Some(at) => &target[..at],
        None => target,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Instant;

    use sluice_core::auth::Identity;
    use sluice_core::exchange::{Exchange, ExchangeConfig};

    use super::*;

    #[test]
    fn the_subject_is_named_or_redacted() {
        let config: Arc<ExchangeConfig> = Arc::new(
            crate::proxy::ProxySettings::single(
                "127.0.0.1:0".parse().unwrap(),
                "127.0.0.1:9".parse().unwrap(),
                "/mcp",
            )
            .exchange,
        );
        let exchange = Exchange::new(config, Default::default(), Instant::now());
        let mut summary = exchange.summary().clone();
        let log = AccessLog::new(true, None);
        assert_eq!(log.subject(&summary), None, "no identity, no subject");
        summary.identity = Some(Arc::new(Identity {
            scheme: sluice_core::auth::Scheme::ApiKey,
            subject: "alice@example.com".into(),
            issuer: None,
            client_id: None,
            scopes: vec![],
            claims: None,
        }));
        assert_eq!(log.subject(&summary), Some("alice@example.com"));
        let log = log.redacting_subject(true);
        assert_eq!(log.subject(&summary), Some("<redacted>"));
    }
}
