//! The request side of an exchange: read the head and body within limits,
//! check them, and build the bytes that go upstream.

use std::borrow::Cow;

use bytes::Bytes;

use super::{ClientInfo, ExchangeConfig, accepts_of};
use crate::auth::gate::DOCUMENT_PREFLIGHT;
use crate::auth::{Credentials, Denial, Gate, read_credentials};
use crate::http1::{self, BodyFraming, BodyReader, Header, Parsed, RequestHead};
use crate::inject::Accepts;
use crate::jsonrpc::meta::{self, MetaSpans, Slot};
use crate::jsonrpc::{self, Classified, Kind, codes};
use crate::route;

/// JSON-RPC facts about a request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcSummary {
    /// The method, for a single request or notification.
    pub method: Option<String>,
    /// The id as its raw JSON text, for a single request.
    pub id: Option<Vec<u8>>,
    /// The tool, prompt or resource named (tools/call, prompts/get, resources/read).
    pub name: Option<String>,
    /// The body was a batch (2025-03-26).
    pub batch: bool,
}

impl RpcSummary {
    /// The facts of one classified message.
    pub fn of(m: &jsonrpc::Message<'_>) -> RpcSummary {
        RpcSummary {
            method: m.method.as_deref().map(str::to_owned),
            id: match m.kind {
                Kind::Request => m.id.map(<[u8]>::to_vec),
                _ => None,
            },
            name: m.name.as_deref().map(str::to_owned),
            batch: false,
        }
    }
}

/// What reading more client bytes led to.
pub(super) enum Step {
    NeedMore,
    /// The client waits for `100 Continue` before sending its body.
    Continue100,
    Reject {
        status: u16,
        code: i64,
        message: String,
        /// For a 405: the methods the target takes (the `Allow` header).
        allow: Option<&'static str>,
        /// For a request refused for its credentials: the
        /// `WWW-Authenticate` value.
        challenge: Option<String>,
    },
    /// A protected route's metadata document (or its CORS preflight): the
    /// whole HTTP answer.
    Document(Bytes),
    Ready(Box<Forward>),
}

/// A request ready to go upstream (the body may still be replaced by a hook).
pub(super) struct Forward {
    pub route: usize,
    pub method: String,
    pub upstream_target: String,
    /// End-to-end headers as forwarded, `Host` first; no framing headers.
    pub headers: Vec<Header>,
    /// Send a `Content-Length` (every POST, and a `Content-Length: 0` on
    /// another method).
    pub send_length: bool,
    pub body: Vec<u8>,
    pub client_keep_alive: bool,
    pub client_http10: bool,
    pub accepts: Accepts,
    pub rpc: Option<RpcSummary>,
    pub session_id: Option<String>,
    pub protocol_version: Option<String>,
    /// The client's `traceparent`, when it sent exactly one and it is valid.
    pub traceparent: Option<crate::tracecontext::TraceParent>,
    /// The client's `tracestate` (its field lines joined by `,`), kept
    /// only with a valid `traceparent`.
    pub tracestate: Option<String>,
    /// The body's trace context (`params._meta`), read and written only
    /// with tracing on.
    pub meta: BodyTrace,
    /// The client's headers hooks may see (empty unless the operator listed some).
    pub hook_headers: Vec<(String, String)>,
    /// On a protected route, the bearer token the driver must judge
    /// before the request goes any further.
    pub token: Option<String>,
}

/// Trace context in a request body: where the client's sits, and where
/// sluice's goes. Offsets only until a tracing driver asks.
#[derive(Debug, Default)]
pub(super) struct BodyTrace {
    /// Where `params._meta` and its trace context sit in the client's
    /// body (a single message); noted by the classify pass.
    pub spans: Option<MetaSpans>,
    /// The client's body, kept when a hook replaced it and `spans` names
    /// a `traceparent` in it: the client's context stays readable.
    pub client_body: Option<Vec<u8>>,
    /// A hook replaced the body: `spans` no longer point into it.
    pub replaced: bool,
    /// Where sluice's `traceparent` goes in the body sent upstream, and
    /// the value (set by `Exchange::propagate_trace`).
    pub out: Option<(Slot, String)>,
}

impl BodyTrace {
    /// The client's `_meta.traceparent` and `tracestate`, read from
    /// `body` (the body as forwarded, until a hook replaces it).
    pub fn client<'b>(
        &'b self,
        body: &'b [u8],
    ) -> Option<(crate::tracecontext::TraceParent, Option<Cow<'b, str>>)> {
        let spans = self.spans.as_ref()?;
        let text = match (&self.client_body, self.replaced) {
            (Some(kept), _) => kept.as_slice(),
            (None, true) => return None,
            (None, false) => body,
        };
        Some((spans.traceparent(text)?, spans.tracestate(text)))
    }

    /// A hook replaced `old` (the client's body): keep it while the
    /// client's context is still to be read from it.
    pub fn replaced(&mut self, old: Vec<u8>) {
        if !self.replaced && self.spans.as_ref().is_some_and(|s| s.traceparent.is_some()) {
            self.client_body = Some(old);
        }
        self.replaced = true;
    }

    /// The body as the upstream gets it: `body`, with sluice's
    /// `traceparent` written in when `Exchange::propagate_trace` placed one.
    pub fn render(&self, body: &[u8], out: &mut Vec<u8>) {
        match &self.out {
            Some((slot, value)) => meta::write(body, slot, value, out),
            None => out.extend_from_slice(body),
        }
    }

    /// The length of what [`BodyTrace::render`] writes.
    pub fn rendered_len(&self, body: &[u8]) -> usize {
        match &self.out {
            Some((slot, value)) => meta::written_len(body.len(), slot, value),
            None => body.len(),
        }
    }
}

/// Head checked, body being read.
struct Accepted {
    head: RequestHead,
    route: usize,
    upstream_target: String,
    framing: BodyFraming,
    reader: BodyReader,
    body: Vec<u8>,
    wants_continue: bool,
    token: Option<String>,
}

/// A head that passed the checks.
enum Admitted {
    /// A request for a route: its body is read next.
    Forward(Accepted),
    /// A metadata document sluice serves itself.
    Document(Bytes),
}

#[derive(Default)]
pub(super) struct Intake {
    /// Head bytes until the head is complete.
    buf: Vec<u8>,
    /// Remembers how far `buf` was searched, so a slow head stays linear.
    scanner: http1::HeadScanner,
    accepted: Option<Accepted>,
    /// The request line, kept for the access log even when rejected.
    line: Option<(String, String)>,
    done: bool,
}

impl Intake {
    /// No byte of a request has arrived.
    pub fn is_idle(&self) -> bool {
        self.buf.is_empty() && self.accepted.is_none()
    }

    /// The request line (method, target), once; kept for the access log
    /// even when the request is rejected.
    pub fn take_request_line(&mut self) -> Option<(String, String)> {
        self.line.take()
    }

    pub fn feed(
        &mut self,
        input: &[u8],
        config: &ExchangeConfig,
        client: &ClientInfo,
        leftover: &mut Vec<u8>,
    ) -> Step {
        if self.done {
            leftover.extend_from_slice(input);
            return Step::NeedMore;
        }
        if self.accepted.is_none() {
            // A head that arrives whole in one read is parsed where it lies.
            let buffered = !self.buf.is_empty();
            if buffered {
                self.buf.extend_from_slice(input);
            }
            let buf = if buffered {
                std::mem::take(&mut self.buf)
            } else {
                Vec::new()
            };
            let data = if buffered { &buf[..] } else { input };
            let (head, len) = match self
                .scanner
                .parse_request(data, &config.limits.request_head)
            {
                Ok(Parsed::Partial) => {
                    self.buf = if buffered { buf } else { input.to_vec() };
                    return Step::NeedMore;
                }
                Ok(Parsed::Complete { head, len }) => (head, len),
                Err(e) => {
                    return self.reject(
                        e.status(),
                        codes::INVALID_REQUEST,
                        format!("malformed request: {e}"),
                    );
                }
            };
            self.line = Some((head.method.clone(), head.target.clone()));
            let rest = &data[len..];
            match accept(head, config) {
                Ok(Admitted::Forward(accepted)) => self.accepted = Some(accepted),
                Ok(Admitted::Document(answer)) => {
                    self.done = true;
                    return Step::Document(answer);
                }
                Err(refusal) => {
                    self.done = true;
                    return Step::Reject {
                        status: refusal.status,
                        code: codes::INVALID_REQUEST,
                        message: refusal.message,
                        allow: refusal.allow,
                        challenge: refusal.challenge,
                    };
                }
            }
            let step = self.read_body(rest, config, client, leftover);
            return match step {
                Step::NeedMore if self.accepted.as_ref().is_some_and(|a| a.wants_continue) => {
                    Step::Continue100
                }
                other => other,
            };
        }
        self.read_body(input, config, client, leftover)
    }

    fn reject(&mut self, status: u16, code: i64, message: String) -> Step {
        self.done = true;
        Step::Reject {
            status,
            code,
            message,
            allow: None,
            challenge: None,
        }
    }

    fn read_body(
        &mut self,
        input: &[u8],
        config: &ExchangeConfig,
        client: &ClientInfo,
        leftover: &mut Vec<u8>,
    ) -> Step {
        let max = config.limits.max_request_body;
        let Some(acc) = self.accepted.as_mut() else {
            return Step::NeedMore;
        };
        let framing = acc.framing;
        let body = &mut acc.body;
        let mut too_large_now = false;
        let read = acc.reader.read(input, |r| {
            if body.len() + r.len() > max {
                too_large_now = true;
                return;
            }
            if let (BodyFraming::ContentLength(n), 0) = (framing, body.capacity()) {
                // The length was checked against the limit: room for it all at once.
                body.reserve_exact(n as usize);
            }
            body.extend_from_slice(&input[r]);
        });
        let complete = match read {
            Err(e) => {
                return self.reject(
                    400,
                    codes::INVALID_REQUEST,
                    format!("malformed chunked body: {e}"),
                );
            }
            Ok(_) if too_large_now => {
                return self.reject(413, codes::INVALID_REQUEST, too_large(max));
            }
            Ok(read) => {
                if read.done {
                    leftover.extend_from_slice(&input[read.consumed..]);
                }
                read.done
            }
        };
        if !complete {
            return Step::NeedMore;
        }
        self.done = true;
        let Some(acc) = self.accepted.take() else {
            return Step::NeedMore;
        };
        Step::Ready(Box::new(forward(acc, config, client)))
    }
}

fn too_large(max: usize) -> String {
    format!("request body larger than the limit of {max} bytes")
}

/// Why a request is answered by sluice before anything goes upstream.
struct Refusal {
    status: u16,
    message: String,
    /// For a 405: the methods the target takes (the `Allow` header).
    allow: Option<&'static str>,
    /// For a request refused for its credentials: `WWW-Authenticate`.
    challenge: Option<String>,
}

impl Refusal {
    fn new(status: u16, message: String) -> Self {
        Refusal {
            status,
            message,
            allow: None,
            challenge: None,
        }
    }

    /// A request a protected route refuses before its token is judged.
    fn denied(denial: &Denial, gate: &Gate) -> Self {
        let answer = denial.answer(Some(gate.resource_metadata()));
        Refusal {
            status: answer.status,
            message: answer.message.to_string(),
            allow: None,
            challenge: Some(answer.challenge),
        }
    }
}

/// Check a complete head, in this order: CONNECT (501), target form and
/// path (400), Host/Origin (403/400), a protected route's metadata
/// document (served), route (404), framing (400/501), the method the
/// route's endpoint takes (405), a protected route's credentials (400/401),
/// size (413).
fn accept(head: RequestHead, config: &ExchangeConfig) -> Result<Admitted, Refusal> {
    if head.method == "CONNECT" {
        return Err(Refusal::new(
            501,
            "sluice does not tunnel CONNECT requests".into(),
        ));
    }
    let target = origin_form(&head.target).ok_or_else(|| {
        Refusal::new(400, format!("unsupported request target {:?}", head.target))
    })?;
    // Before routing: a path the upstream could read as another must not be
    // matched against a prefix at all.
    route::check_path(target).map_err(|e| Refusal::new(e.status(), format!("{e}: {target:?}")))?;
    let hosts = values(&head.headers, "host");
    let origins = values(&head.headers, "origin");
    config
        .guard
        .check(&hosts, &origins)
        .map_err(|e| Refusal::new(e.status(), e.to_string()))?;
    let path = target.split('?').next().unwrap_or(target);
    if let Some(answer) = config.router.metadata_document(path) {
        let framing = http1::request_framing(&head)
            .map_err(|e| Refusal::new(e.status(), format!("malformed request: {e}")))?;
        let has_body = !matches!(framing, BodyFraming::None | BodyFraming::ContentLength(0));
        route::Endpoint::WellKnown
            .check_method(&head.method, has_body)
            .map_err(|e| Refusal {
                status: e.status(),
                message: format!("{e}: {:?}", head.method),
                allow: Some(e.allow()),
                challenge: None,
            })?;
        return Ok(Admitted::Document(match head.method.as_str() {
            "OPTIONS" => Bytes::from_static(DOCUMENT_PREFLIGHT),
            _ => answer.clone(),
        }));
    }
    let resolved = config
        .router
        .resolve(target)
        .ok_or_else(|| Refusal::new(404, format!("no route serves {target:?}")))?;
    let framing = http1::request_framing(&head)
        .map_err(|e| Refusal::new(e.status(), format!("malformed request: {e}")))?;
    // Request hooks read POST bodies: no other method may carry one upstream.
    let has_body = !matches!(framing, BodyFraming::None | BodyFraming::ContentLength(0));
    resolved
        .endpoint
        .check_method(&head.method, has_body)
        .map_err(|e| Refusal {
            status: e.status(),
            message: format!("{e}: {:?}", head.method),
            allow: Some(e.allow()),
            challenge: None,
        })?;
    if let Some(gated) = config.router.shadowed_gate(path, resolved.route) {
        return Err(Refusal::new(
            400,
            format!(
                "{path:?} is another spelling of {:?}, which needs credentials",
                config.router.routes()[gated].prefix
            ),
        ));
    }
    // A protected route's MCP requests carry a bearer token; a CORS
    // preflight never does (browsers send it without credentials) and
    // carries no message.
    let mut token = None;
    if let (route::Endpoint::Mcp, Some(gate)) =
        (resolved.endpoint, config.router.gate(resolved.route))
        && head.method != "OPTIONS"
    {
        match read_credentials(&head.headers, target) {
            Ok(Credentials::Bearer(t)) => token = Some(t.to_string()),
            Ok(Credentials::None) => return Err(Refusal::denied(&Denial::Missing, gate)),
            Err(e) => return Err(Refusal::denied(&Denial::BadRequest(e), gate)),
        }
    }
    let max = config.limits.max_request_body;
    if let BodyFraming::ContentLength(n) = framing
        && n > max as u64
    {
        return Err(Refusal::new(413, too_large(max)));
    }
    let wants_continue = http1::header_values(&head.headers, "expect")
        .any(|v| v.eq_ignore_ascii_case(b"100-continue"))
        && has_body;
    Ok(Admitted::Forward(Accepted {
        token,
        route: resolved.route,
        upstream_target: resolved.upstream_target,
        framing,
        // No framing means no body: a request never runs to the close.
        reader: BodyReader::new(
            match framing {
                BodyFraming::UntilClose => BodyFraming::None,
                other => other,
            },
            &config.limits.request_head,
        ),
        body: Vec::new(),
        wants_continue,
        head,
    }))
}

/// The path-and-query of an origin-form or absolute-form target.
fn origin_form(target: &str) -> Option<&str> {
    if target.starts_with('/') {
        return Some(target);
    }
    let rest = target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("https://"))?;
    let path_at = rest.find(['/', '?']).unwrap_or(rest.len());
    match &rest[path_at..] {
        "" => Some("/"),
        p if p.starts_with('/') => Some(p),
        _ => None,
    }
}

fn values<'h>(headers: &'h [Header], name: &str) -> Vec<&'h [u8]> {
    headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value.as_ref())
        .collect()
}

/// Whether the client connection stays open after this exchange.
fn keep_alive(head: &RequestHead) -> bool {
    let mut close = false;
    let mut keep = false;
    for v in http1::header_values(&head.headers, "connection") {
        for token in v.split(|&b| b == b',') {
            let token = token.trim_ascii();
            close |= token.eq_ignore_ascii_case(b"close");
            keep |= token.eq_ignore_ascii_case(b"keep-alive");
        }
    }
    if head.version == http1::Version::Http10 {
        keep && !close
    } else {
        !close
    }
}

/// The body's JSON-RPC facts, and where a single message keeps its trace
/// context (offsets noted in the same pass: nothing read yet).
pub(super) fn classify(
    body: &[u8],
    config: &ExchangeConfig,
) -> (Option<RpcSummary>, Option<MetaSpans>) {
    let Ok(classified) = jsonrpc::classify(body, &config.limits.json) else {
        return (None, None);
    };
    let meta = match &classified {
        Classified::Single(m) => Some(MetaSpans::of(body, m)),
        Classified::Batch(_) => None,
    };
    let summary = match classified {
        Classified::Single(m) => RpcSummary::of(&m),
        Classified::Batch(_) => RpcSummary {
            method: None,
            id: None,
            name: None,
            batch: true,
        },
    };
    (Some(summary), meta)
}

/// The request as the upstream sees it: our framing, its Host, no hop-by-hop
/// headers, the forwarding headers.
fn forward(acc: Accepted, config: &ExchangeConfig, client: &ClientInfo) -> Forward {
    let Accepted {
        head,
        route: route_index,
        upstream_target,
        framing,
        body,
        token,
        ..
    } = acc;
    let route = &config.router.routes()[route_index];
    let client_keep_alive = keep_alive(&head);
    let accepts = accepts_of(&head.headers);
    let hook_headers = config.hooks.visible_headers(&head.headers);
    let client_http10 = head.version == http1::Version::Http10;
    let RequestHead {
        method,
        mut headers,
        ..
    } = head;
    let original_host = http1::header_values(&headers, "host")
        .next()
        .map(<[u8]>::to_vec);
    let session_id = text_header(&headers, "mcp-session-id");
    let protocol_version = text_header(&headers, "mcp-protocol-version");
    let (traceparent, tracestate) = trace_context(&headers);
    http1::remove_hop_by_hop(&mut headers);
    // Proxy credentials are for sluice, not for the MCP server behind it.
    http1::remove_proxy_auth(&mut headers);
    // So is a protected route's token, unless the operator passes it on.
    if config
        .router
        .gate(route_index)
        .is_some_and(|g| !g.forward_token())
    {
        headers.retain(|h| !h.is("authorization"));
    }
    // The operator's fields for the upstream replace the client's.
    let upstream_headers = config.router.upstream_headers(route_index);
    if !upstream_headers.is_empty() {
        headers.retain(|h| !upstream_headers.iter().any(|u| h.is(&u.name)));
    }
    headers.retain(|h| {
        !["host", "content-length", "expect"]
            .iter()
            .any(|n| h.name.eq_ignore_ascii_case(n))
    });

    let mut out_headers = Vec::with_capacity(headers.len() + 4 + upstream_headers.len());
    out_headers.push(Header::new("Host", route.upstream_host.as_bytes()));
    out_headers.extend(upstream_headers.iter().cloned());
    let mut forwarded_for: Option<Vec<u8>> = None;
    for h in headers {
        if config.forwarded_headers && h.name.eq_ignore_ascii_case("x-forwarded-for") {
            let prior = forwarded_for.get_or_insert_with(Vec::new);
            if !prior.is_empty() {
                prior.extend_from_slice(b", ");
            }
            prior.extend_from_slice(&h.value);
            continue;
        }
        if config.forwarded_headers
            && (h.name.eq_ignore_ascii_case("x-forwarded-proto")
                || h.name.eq_ignore_ascii_case("x-forwarded-host"))
        {
            continue;
        }
        out_headers.push(h);
    }
    if config.forwarded_headers {
        // The client's address is appended; what earlier hops claimed stays in front.
        if !client.peer_ip.is_empty() || forwarded_for.is_some() {
            let mut xff = forwarded_for.unwrap_or_default();
            if !client.peer_ip.is_empty() {
                if !xff.is_empty() {
                    xff.extend_from_slice(b", ");
                }
                xff.extend_from_slice(client.peer_ip.as_bytes());
            }
            out_headers.push(Header::new("X-Forwarded-For", xff));
        }
        let proto: &[u8] = if client.https { b"https" } else { b"http" };
        out_headers.push(Header::new("X-Forwarded-Proto", proto));
        if let Some(host) = original_host {
            out_headers.push(Header::new("X-Forwarded-Host", host));
        }
    }
    let has_body = !body.is_empty() || !matches!(framing, BodyFraming::None);
    // Only a POST carries a body this far (`Endpoint::check_method`).
    let send_length = has_body || method == "POST";
    let (rpc, meta) = if method == "POST" {
        classify(&body, config)
    } else {
        (None, None)
    };
    Forward {
        route: route_index,
        rpc,
        meta: BodyTrace {
            spans: meta,
            ..BodyTrace::default()
        },
        method,
        upstream_target,
        headers: out_headers,
        send_length,
        body,
        client_keep_alive,
        client_http10,
        accepts,
        session_id,
        protocol_version,
        traceparent,
        tracestate,
        hook_headers,
        token,
    }
}

/// The client's W3C trace context: one valid `traceparent` (two are as
/// invalid as a bad one), and its `tracestate` lines joined.
fn trace_context(headers: &[Header]) -> (Option<crate::tracecontext::TraceParent>, Option<String>) {
    let mut values = http1::header_values(headers, "traceparent");
    let parent = match (values.next(), values.next()) {
        (Some(one), None) => crate::tracecontext::TraceParent::parse(one),
        _ => None,
    };
    if parent.is_none() {
        return (None, None);
    }
    let mut state: Option<String> = None;
    for value in http1::header_values(headers, "tracestate") {
        let Ok(value) = std::str::from_utf8(value) else {
            return (parent, None);
        };
        let value = value.trim();
        if value.is_empty() {
            continue;
        }
        match &mut state {
            Some(s) => {
                s.push(',');
                s.push_str(value);
            }
            None => state = Some(value.to_string()),
        }
    }
    (parent, state)
}

fn text_header(headers: &[Header], name: &str) -> Option<String> {
    let value = http1::header_values(headers, name).next()?;
    std::str::from_utf8(value).ok().map(str::to_owned)
}

impl Forward {
    /// The request as the upstream gets it: our framing, its `Host`.
    pub fn render(&self) -> Bytes {
        use std::io::Write as _;
        let head_len: usize = self
            .headers
            .iter()
            .map(|h| h.name.len() + h.value.len() + 4)
            .sum();
        let mut out = Vec::with_capacity(
            self.method.len() + self.upstream_target.len() + head_len + 64 + self.body.len(),
        );
        out.extend_from_slice(self.method.as_bytes());
        out.push(b' ');
        out.extend_from_slice(self.upstream_target.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\n");
        for h in &self.headers {
            push_header(&mut out, &h.name, &h.value);
        }
        if self.send_length {
            // Writing to a Vec cannot fail.
            let _ = write!(
                out,
                "Content-Length: {}\r\n",
                self.meta.rendered_len(&self.body)
            );
        }
        out.extend_from_slice(b"\r\n");
        self.meta.render(&self.body, &mut out);
        Bytes::from(out)
    }
}

fn push_header(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}
