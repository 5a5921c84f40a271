//! OTLP/JSON encoding of an `ExportTraceServiceRequest`, and its POST.
//!
//! JSON rather than protobuf: OTLP/HTTP receivers take both (the
//! OpenTelemetry Collector, Jaeger, Tempo), serde_json is in the tree
//! already, and the payload reads in a packet capture. The OTLP/JSON
//! mapping differs from proto3's canonical JSON in two ways this follows:
//! trace and span ids are hex strings (not base64), and field names are
//! lowerCamelCase. 64-bit integers are strings, as proto3 JSON writes them.

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, SystemTime};

use futures_rustls::rustls::pki_types::ServerName;
use futures_rustls::rustls::{ClientConnection, StreamOwned};

use sluice_core::jsonrpc::write_json_string;

use super::{Span, TraceSettings, Value};

/// The request body for `spans`, under one resource (`service.name`) and
/// one instrumentation scope (`sluice`). Written straight into the buffer:
/// a tree of `serde_json::Value`s per span cost ~100k instructions, eight
/// times a proxied request (`TRACING=1 bench/instructions`).
pub fn encode(service_name: &str, spans: &[Span]) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + spans.len() * 1024);
    out.extend_from_slice(br#"{"resourceSpans":[{"resource":{"attributes":["#);
    attribute(&mut out, "service.name", &Value::Str(service_name.into()));
    out.extend_from_slice(br#"]},"scopeSpans":[{"scope":{"name":"sluice","version":"#);
    write_json_string(&mut out, env!("CARGO_PKG_VERSION"));
    out.extend_from_slice(br#"},"spans":["#);
    for (i, s) in spans.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        span(&mut out, s);
    }
    out.extend_from_slice(b"]}]}]}");
    out
}

fn span(out: &mut Vec<u8>, s: &Span) {
    out.extend_from_slice(br#"{"traceId":""#);
    out.extend_from_slice(s.trace_id.hex().as_bytes());
    out.extend_from_slice(br#"","spanId":""#);
    out.extend_from_slice(s.span_id.hex().as_bytes());
    out.push(b'"');
    if let Some(parent) = s.parent {
        out.extend_from_slice(br#","parentSpanId":""#);
        out.extend_from_slice(parent.hex().as_bytes());
        out.push(b'"');
    }
    if let Some(state) = &s.trace_state {
        out.extend_from_slice(br#","traceState":"#);
        write_json_string(out, state);
    }
    out.extend_from_slice(br#","name":"#);
    write_json_string(out, &s.name);
    // 64-bit integers as strings, as proto3 JSON writes them.
    out.extend_from_slice(
        format!(
            r#","kind":{},"startTimeUnixNano":"{}","endTimeUnixNano":"{}","attributes":["#,
            s.kind as i32,
            nanos(s.start),
            nanos(s.end)
        )
        .as_bytes(),
    );
    for (i, (key, value)) in s.attributes.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        attribute(out, key, value);
    }
    out.push(b']');
    if let Some(message) = &s.error {
        // STATUS_CODE_ERROR.
        out.extend_from_slice(br#","status":{"code":2,"message":"#);
        write_json_string(out, message);
        out.push(b'}');
    }
    out.push(b'}');
}

fn attribute(out: &mut Vec<u8>, key: &str, value: &Value) {
    out.extend_from_slice(br#"{"key":"#);
    write_json_string(out, key);
    match value {
        Value::Str(s) => {
            out.extend_from_slice(br#","value":{"stringValue":"#);
            write_json_string(out, s);
        }
        Value::Int(i) => {
            out.extend_from_slice(format!(r#","value":{{"intValue":"{i}""#).as_bytes())
        }
        Value::Bool(b) => {
            out.extend_from_slice(format!(r#","value":{{"boolValue":{b}"#).as_bytes())
        }
    }
    out.extend_from_slice(b"}}");
}

fn nanos(t: SystemTime) -> u128 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos()
}

/// Why an export failed.
#[derive(Debug)]
pub enum ExportError {
    /// Resolving, connecting, writing or reading failed.
    Io(io::Error),
    /// The receiver answered, but not with a 2xx.
    Status(u16),
    /// The receiver's answer did not start with an HTTP/1.x status line.
    Garbled,
}

impl std::fmt::Display for ExportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExportError::Io(e) => e.fmt(f),
            ExportError::Status(s) => write!(f, "the receiver answered {s}"),
            ExportError::Garbled => f.write_str("the receiver's answer is not HTTP/1.x"),
        }
    }
}

impl From<io::Error> for ExportError {
    fn from(e: io::Error) -> Self {
        ExportError::Io(e)
    }
}

/// POST `body` to the receiver on a connection of its own
/// (`Connection: close`, over TLS for an `https` endpoint), each step
/// bounded by `timeout`; `Ok` when it answered 2xx.
pub(super) fn post(s: &TraceSettings, body: &[u8], timeout: Duration) -> Result<(), ExportError> {
    let mut last = None;
    let mut stream = None;
    for addr in (s.host.as_str(), s.port).to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(c) => {
                stream = Some(c);
                break;
            }
            Err(e) => last = Some(e),
        }
    }
    let Some(stream) = stream else {
        return Err(last
            .unwrap_or_else(|| io::Error::other("the name resolved to no address"))
            .into());
    };
    stream.set_write_timeout(Some(timeout))?;
    stream.set_read_timeout(Some(timeout))?;
    match &s.tls {
        None => exchange(stream, s, body),
        Some(config) => {
            let name = ServerName::try_from(s.host.clone())
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
            let conn = ClientConnection::new(config.clone(), name).map_err(io::Error::other)?;
            // The handshake runs in the first write, under the same timeouts.
            exchange(StreamOwned::new(conn, stream), s, body)
        }
    }
}

/// The POST on a connected stream, and the status line of its answer.
fn exchange(
    mut stream: impl Read + Write,
    s: &TraceSettings,
    body: &[u8],
) -> Result<(), ExportError> {
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\nUser-Agent: sluice/{}\r\n\r\n",
        s.target,
        s.authority,
        body.len(),
        env!("CARGO_PKG_VERSION"),
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    stream.flush()?;
    // The status line is all that is read; the rest goes with the socket.
    let mut buf = [0u8; 64];
    let mut len = 0;
    while len < 12 {
        match stream.read(&mut buf[len..])? {
            0 => break,
            n => len += n,
        }
    }
    status_of(&buf[..len]).map_or(Err(ExportError::Garbled), |status| {
        if (200..300).contains(&status) {
            Ok(())
        } else {
            Err(ExportError::Status(status))
        }
    })
}

/// The status of an `HTTP/1.x NNN` line's start.
fn status_of(line: &[u8]) -> Option<u16> {
    let rest = line
        .strip_prefix(b"HTTP/1.1 ")
        .or_else(|| line.strip_prefix(b"HTTP/1.0 "))?;
    let digits = rest.get(..3)?;
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::super::{Kind, new_span_id, new_trace_id};
    use super::*;
    use serde_json::{Value as Json, json};

    #[test]
    fn a_span_encodes_as_otlp_json() {
        let parent = new_span_id();
        let span = Span {
            trace_id: new_trace_id(),
            span_id: new_span_id(),
            parent: Some(parent),
            trace_state: Some("k=v".into()),
            name: "tools/call echo".into(),
            kind: Kind::Server,
            start: SystemTime::UNIX_EPOCH + Duration::from_nanos(1_000_000_123),
            end: SystemTime::UNIX_EPOCH + Duration::from_nanos(2_000_000_456),
            attributes: vec![
                ("mcp.method.name", Value::Str("tools/call".into())),
                ("server.port", Value::Int(8080)),
            ],
            error: Some("-32000".into()),
        };
        let body: Json =
            serde_json::from_slice(&encode("svc", std::slice::from_ref(&span))).unwrap();
        let rs = &body["resourceSpans"][0];
        assert_eq!(
            rs["resource"]["attributes"][0],
            json!({"key": "service.name", "value": {"stringValue": "svc"}})
        );
        let s = &rs["scopeSpans"][0]["spans"][0];
        assert_eq!(s["traceId"], span.trace_id.hex());
        assert_eq!(s["spanId"], span.span_id.hex());
        assert_eq!(s["parentSpanId"], parent.hex());
        assert_eq!(s["traceState"], "k=v");
        assert_eq!(s["kind"], 2);
        assert_eq!(s["startTimeUnixNano"], "1000000123");
        assert_eq!(s["endTimeUnixNano"], "2000000456");
        assert_eq!(
            s["attributes"][1],
            json!({"key": "server.port", "value": {"intValue": "8080"}})
        );
        assert_eq!(s["status"], json!({"code": 2, "message": "-32000"}));
    }

    #[test]
    fn any_text_encodes_as_valid_json_and_reads_back_as_written() {
        // Names and values come from clients (a tool's name, a session's
        // protocol version): quotes, controls, non-ASCII.
        let odd = "a\"b\\c\n\u{1}\u{7f}é\u{2028}🦀";
        let span = |parent| Span {
            trace_id: new_trace_id(),
            span_id: new_span_id(),
            parent,
            trace_state: None,
            name: odd.into(),
            kind: Kind::Client,
            start: SystemTime::UNIX_EPOCH,
            end: SystemTime::UNIX_EPOCH,
            attributes: vec![
                (odd_key(), Value::Str(odd.into())),
                ("b", Value::Bool(true)),
                ("n", Value::Int(-7)),
            ],
            error: None,
        };
        let spans = [span(None), span(Some(new_span_id()))];
        let body: Json = serde_json::from_slice(&encode(odd, &spans)).unwrap();
        let rs = &body["resourceSpans"][0];
        assert_eq!(rs["resource"]["attributes"][0]["value"]["stringValue"], odd);
        let got = rs["scopeSpans"][0]["spans"].as_array().unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0]["name"], odd);
        assert!(got[0].get("parentSpanId").is_none() && got[0].get("status").is_none());
        assert_eq!(got[1]["parentSpanId"], spans[1].parent.unwrap().hex());
        assert_eq!(
            got[0]["attributes"],
            json!([
                {"key": odd_key(), "value": {"stringValue": odd}},
                {"key": "b", "value": {"boolValue": true}},
                {"key": "n", "value": {"intValue": "-7"}},
            ])
        );
        assert_eq!(
            serde_json::from_slice::<Json>(&encode("s", &[])).unwrap()["resourceSpans"][0]["scopeSpans"]
                [0]["spans"],
            json!([])
        );
    }

    fn odd_key() -> &'static str {
        "k\"\t"
    }

    #[test]
    fn only_a_2xx_status_line_is_success() {
        assert_eq!(status_of(b"HTTP/1.1 200 OK\r\n"), Some(200));
        assert_eq!(status_of(b"HTTP/1.0 503 x"), Some(503));
        assert_eq!(status_of(b"HTTP/1.1 2"), None);
        assert_eq!(status_of(b"SSH-2.0-x"), None);
        assert_eq!(status_of(b""), None);
    }
}
