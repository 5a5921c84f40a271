//! The spans of one exchange, from what the driver saw: the exchange's
//! own (kind SERVER, named and attributed per OpenTelemetry's MCP
//! semantic conventions) and one per hook run (kind INTERNAL, its child).

use std::net::{IpAddr, SocketAddr};
use std::time::{Instant, SystemTime};

use sluice_core::exchange::{Exchange, Outcome, RpcSummary, Summary};
use sluice_core::tracecontext::SpanId;

use crate::access::{AccessLog, RouteLabel};
use crate::hooks::{HookRun, HookRunResult};
use crate::metrics::Phase;
use crate::otel::{Kind, Span, SpanContext, Value, new_span_id};

/// Where the exchange ran: the listener and the client.
pub(super) struct Ends {
    pub local: SocketAddr,
    pub peer: IpAddr,
}

/// The exchange's span, `None` when no request was read (an idle
/// connection closing).
pub(super) fn exchange_span(
    ctx: &SpanContext,
    ex: &Exchange,
    access: &AccessLog,
    route_names: &[String],
    ends: &Ends,
) -> Option<Span> {
    let s = ex.summary();
    if s.http_method.is_empty() {
        return None;
    }
    let (wall, now) = (SystemTime::now(), Instant::now());
    let at = |t: Instant| wall - now.saturating_duration_since(t);
    let name = span_name(s);
    let mut a: Vec<(&'static str, Value)> = Vec::with_capacity(16);
    let text = |v: &str| Value::Str(v.to_string());
    rpc_attributes(s.rpc.as_ref(), &mut a);
    if let Some(id) = ex.session_id() {
        a.push(("mcp.session.id", Value::Str(access.session_label(id))));
    }
    if let Some(v) = ex.protocol_version() {
        a.push(("mcp.protocol.version", text(v)));
    }
    a.push(("http.request.method", text(&s.http_method)));
    if let Some(status) = s.status {
        a.push(("http.response.status_code", Value::Int(status.into())));
    }
    a.push(("server.address", Value::Str(ends.local.ip().to_string())));
    a.push(("server.port", Value::Int(ends.local.port().into())));
    a.push(("client.address", Value::Str(ends.peer.to_string())));
    a.push(("network.transport", text("tcp")));
    a.push(("network.protocol.name", text("http")));
    let version = if ex.client_http10() { "1.0" } else { "1.1" };
    a.push(("network.protocol.version", text(version)));
    if let Some(route) = s.route.and_then(|r| route_names.get(r)) {
        a.push(("sluice.route", text(route)));
    }
    a.push((
        "sluice.outcome",
        text(crate::metrics::outcome_label(s.outcome)),
    ));
    let error_type = match (&s.error, s.outcome, s.status) {
        (Some(e), _, _) => Some(e.code().to_string()),
        (None, Outcome::Aborted, _) => Some("aborted".to_string()),
        (None, Outcome::ClientGone, _) => Some("client-gone".to_string()),
        (None, _, Some(status)) if status >= 500 => Some(status.to_string()),
        _ => None,
    };
    let error = error_type.map(|t| {
        let message = s.reason.clone().unwrap_or_else(|| t.clone());
        a.push(("error.type", Value::Str(t)));
        message
    });
    Some(Span {
        trace_id: ctx.trace_id,
        span_id: ctx.span_id,
        parent: ctx.parent,
        trace_state: ctx.trace_state.clone(),
        name,
        kind: Kind::Server,
        start: at(s.started),
        end: at(s.finished.unwrap_or(now)),
        attributes: a,
        error,
    })
}

/// A span's name per the MCP conventions: `{mcp.method.name} {target}`
/// (the tool or prompt), the method alone, or the HTTP method.
fn span_name(s: &Summary) -> String {
    rpc_span_name(s.rpc.as_ref(), &s.http_method)
}

/// [`span_name`] of a message's facts, `otherwise` without a method.
fn rpc_span_name(rpc: Option<&RpcSummary>, otherwise: &str) -> String {
    match (
        rpc.and_then(|r| r.method.as_deref()),
        rpc.and_then(|r| r.name.as_deref()),
    ) {
        (Some(m @ ("tools/call" | "prompts/get")), Some(t)) => format!("{m} {t}"),
        (Some(m), _) => m.to_string(),
        (None, _) => otherwise.to_string(),
    }
}

/// The message's attributes: its method, id, and the tool, prompt or
/// resource it names.
fn rpc_attributes(rpc: Option<&RpcSummary>, a: &mut Vec<(&'static str, Value)>) {
    let method = rpc.and_then(|r| r.method.as_deref());
    let target = rpc.and_then(|r| r.name.as_deref());
    let text = |v: &str| Value::Str(v.to_string());
    if let Some(m) = method {
        a.push(("mcp.method.name", text(m)));
    }
    if let Some(id) = rpc.and_then(|r| r.id.as_deref()) {
        a.push(("jsonrpc.request.id", Value::Str(request_id(id))));
    }
    match (method, target) {
        (Some("tools/call"), Some(t)) => a.push(("gen_ai.tool.name", text(t))),
        (Some("prompts/get"), Some(t)) => a.push(("gen_ai.prompt.name", text(t))),
        (Some("resources/read"), Some(t)) => a.push(("mcp.resource.uri", text(t))),
        _ => {}
    }
}

/// One try at the upstream, under way: its span's id and start.
pub(super) struct Attempt {
    pub id: SpanId,
    pub start: SystemTime,
}

/// The span of one upstream attempt (kind CLIENT, a child of the
/// exchange's): from `Connect` to the connection's release or end.
/// `upstream` is the route's access-log label (`host:port`, `stdio`,
/// `federation`); `error` what ended it early, if anything did.
pub(super) fn attempt_span(
    ctx: &SpanContext,
    attempt: Attempt,
    s: &Summary,
    upstream: Option<&RouteLabel>,
    error: Option<String>,
) -> Span {
    let mut a: Vec<(&'static str, Value)> = Vec::with_capacity(10);
    rpc_attributes(s.rpc.as_ref(), &mut a);
    if let Some(label) = upstream {
        match split_host_port(&label.upstream) {
            Some((host, port)) => {
                a.push(("server.address", Value::Str(host.to_string())));
                a.push(("server.port", Value::Int(port.into())));
            }
            None => a.push(("sluice.upstream", Value::Str(label.upstream.clone()))),
        }
        a.push(("sluice.route", Value::Str(label.name.clone())));
    }
    a.push(("sluice.upstream.reused", Value::Bool(s.reused)));
    if let Some(e) = &error {
        a.push(("error.type", Value::Str(e.clone())));
    }
    Span {
        trace_id: ctx.trace_id,
        span_id: attempt.id,
        parent: Some(ctx.span_id),
        trace_state: ctx.trace_state.clone(),
        name: span_name(s),
        kind: Kind::Client,
        start: attempt.start,
        end: SystemTime::now(),
        attributes: a,
        error,
    }
}

/// One member request of a federated route (kind CLIENT): a child of
/// the route's attempt span (`parent`, whose trace it joins), named and
/// attributed as an attempt span from the member's own request (`rpc`),
/// with `sluice.member`, and the member's address or `sluice.upstream` =
/// `stdio`.
pub(crate) struct MemberCall<'a> {
    pub parent: &'a sluice_core::tracecontext::TraceParent,
    pub trace_state: Option<String>,
    pub id: SpanId,
    pub start: SystemTime,
    pub rpc: Option<&'a RpcSummary>,
    pub route: &'a str,
    pub member: &'a str,
    pub address: Option<(&'a str, u16)>,
}

pub(crate) fn member_span(call: MemberCall<'_>, error: Option<String>) -> Span {
    let mut a: Vec<(&'static str, Value)> = Vec::with_capacity(10);
    rpc_attributes(call.rpc, &mut a);
    a.push(("sluice.member", Value::Str(call.member.to_string())));
    match call.address {
        Some((host, port)) => {
            a.push(("server.address", Value::Str(host.to_string())));
            a.push(("server.port", Value::Int(port.into())));
        }
        None => a.push(("sluice.upstream", Value::Str("stdio".into()))),
    }
    a.push(("sluice.route", Value::Str(call.route.to_string())));
    if let Some(e) = &error {
        a.push(("error.type", Value::Str(e.clone())));
    }
    Span {
        trace_id: call.parent.trace_id,
        span_id: call.id,
        parent: Some(call.parent.parent_id),
        trace_state: call.trace_state,
        name: rpc_span_name(call.rpc, "POST"),
        kind: Kind::Client,
        start: call.start,
        end: SystemTime::now(),
        attributes: a,
        error,
    }
}

/// `host:port` (an IPv6 host bracketed) split; `None` for a label that
/// names no address (`stdio`, `federation`).
fn split_host_port(label: &str) -> Option<(&str, u16)> {
    let (host, port) = label.rsplit_once(':')?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    Some((host, port.parse().ok()?))
}

/// A JSON-RPC id as an attribute: a string id's text, a number as written.
fn request_id(raw: &[u8]) -> String {
    if raw.first() == Some(&b'"')
        && let Ok(s) = serde_json::from_slice::<String>(raw)
    {
        return s;
    }
    String::from_utf8_lossy(raw).into_owned()
}

/// One span per hook run of a chain that started at `start`, children of
/// the exchange's span; the runs follow one another.
pub(super) fn hook_spans(
    ctx: &SpanContext,
    start: SystemTime,
    phase: Phase,
    method: &str,
    runs: &[HookRun],
    out: &mut Vec<Span>,
) {
    let mut at = start;
    for run in runs {
        let end = at + run.elapsed;
        let (verdict, error) = match &run.result {
            HookRunResult::Continue => ("continue", None),
            HookRunResult::Replaced => ("replace", None),
            HookRunResult::Rejected => ("reject", None),
            HookRunResult::Responded => ("respond", None),
            HookRunResult::Failed { error, .. } => ("failed", Some(error)),
        };
        let mut attributes = vec![
            ("sluice.hook.name", Value::Str(run.hook.to_string())),
            ("sluice.hook.phase", Value::Str(phase.label().into())),
            ("sluice.hook.verdict", Value::Str(verdict.into())),
            ("mcp.method.name", Value::Str(method.into())),
        ];
        if let Some(e) = error {
            attributes.push((
                "error.type",
                Value::Str(crate::metrics::failure_label(&e.kind).into()),
            ));
        }
        out.push(Span {
            trace_id: ctx.trace_id,
            span_id: new_span_id(),
            parent: Some(ctx.span_id),
            trace_state: ctx.trace_state.clone(),
            name: format!("hook {}", run.hook),
            kind: Kind::Internal,
            start: at,
            end,
            attributes,
            error: error.map(|e| e.to_string()),
        });
        at = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_read_as_text() {
        assert_eq!(request_id(br#""req-7""#), "req-7");
        assert_eq!(request_id(br#""a\"b""#), "a\"b");
        assert_eq!(request_id(b"42"), "42");
        assert_eq!(request_id(br#""unterminated"#), "\"unterminated");
    }

    #[test]
    fn upstream_labels_split_into_host_and_port() {
        assert_eq!(split_host_port("10.0.0.7:8080"), Some(("10.0.0.7", 8080)));
        assert_eq!(split_host_port("[::1]:443"), Some(("::1", 443)));
        assert_eq!(split_host_port("stdio"), None);
        assert_eq!(split_host_port("federation"), None);
    }
}
