//! Shared pieces of the load harness: a clock comparable across processes,
//! the messages the stub and the clients exchange, a client-side HTTP/1.1
//! response reader that undoes chunked framing, and percentile summaries.
//!
//! Deliberately independent of `sluice-core`: the harness must not share a
//! parser bug with the thing it measures.

use std::io::{self, Read};
use std::time::{SystemTime, UNIX_EPOCH};

/// Nanoseconds on a clock every process on the host shares.
///
/// `Instant` is per-process opaque; `SystemTime` reads CLOCK_REALTIME
/// through the vDSO, as cheap and comparable across processes. A clock step
/// during a run would show as one absurd sample, not a skew.
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// A 1 KiB-class JSON-RPC `tools/call` request body of exactly `size` bytes
/// (at least the unpadded message).
pub fn jsonrpc_request(size: usize) -> Vec<u8> {
    let head = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":""#;
    let tail = br#""}}}"#;
    padded(head, tail, size)
}

/// A JSON-RPC result of exactly `size` bytes (at least the unpadded message).
pub fn jsonrpc_result(size: usize) -> Vec<u8> {
    let head = br#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":""#;
    let tail = br#""}],"isError":false}}"#;
    padded(head, tail, size)
}

fn padded(head: &[u8], tail: &[u8], size: usize) -> Vec<u8> {
    let fill = size.saturating_sub(head.len() + tail.len());
    let mut v = Vec::with_capacity(head.len() + fill + tail.len());
    v.extend_from_slice(head);
    v.extend(std::iter::repeat_n(b'x', fill));
    v.extend_from_slice(tail);
    v
}

/// A `tools/list` result of at most `size` bytes (within one tool of it): many tools with schemas, the
/// shape of a real large listing.
pub fn tools_list(size: usize) -> Vec<u8> {
    let mut v = br#"{"jsonrpc":"2.0","id":1,"result":{"tools":["#.to_vec();
    let mut i = 0usize;
    loop {
        let tool = format!(
            r#"{{"name":"tool_{i}","description":"Tool number {i}: reads a file, searches a repository or calls an API; the description is long because real ones are.","inputSchema":{{"type":"object","properties":{{"path":{{"type":"string"}},"limit":{{"type":"integer","minimum":1}}}},"required":["path"]}}}}"#
        );
        // Stay within `size`: a separator, the tool and the closing `]}}`.
        if v.len() + 1 + tool.len() + 3 > size {
            break;
        }
        if i > 0 {
            v.push(b',');
        }
        v.extend_from_slice(tool.as_bytes());
        i += 1;
    }
    v.extend_from_slice(b"]}}");
    v
}

/// One SSE event's `data` payload: a progress notification stamped with its
/// send time and sequence number.
pub fn sse_event(seq: u64, pad: usize) -> Vec<u8> {
    let mut v = format!(
        r#"data: {{"jsonrpc":"2.0","method":"notifications/progress","params":{{"progressToken":1,"progress":{seq},"t":{},"pad":""#,
        now_ns()
    )
    .into_bytes();
    v.extend(std::iter::repeat_n(b'x', pad));
    v.extend_from_slice(b"\"}}\n\n");
    v
}

/// The event that ends an SSE answer: the JSON-RPC response to the request.
pub const SSE_FINAL: &[u8] =
    b"data: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"content\":[],\"done\":true}}\n\n";

/// Pull `"key":<digits>` out of an event.
pub fn field_u64(event: &[u8], key: &[u8]) -> Option<u64> {
    let mut pat = Vec::with_capacity(key.len() + 3);
    pat.push(b'"');
    pat.extend_from_slice(key);
    pat.extend_from_slice(b"\":");
    let at = event.windows(pat.len()).position(|w| w == pat.as_slice())? + pat.len();
    let digits = event[at..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    std::str::from_utf8(&event[at..at + digits])
        .ok()?
        .parse()
        .ok()
}

/// An HTTP/1.1 request as the harness's clients send it: JSON in, JSON or
/// SSE accepted, the `Mcp-Session-Id` when there is one.
pub fn http_request(
    method: &str,
    path: &str,
    host: impl std::fmt::Display,
    session: Option<&str>,
    body: &[u8],
) -> Vec<u8> {
    let session = session.map_or(String::new(), |s| format!("Mcp-Session-Id: {s}\r\n"));
    let mut v = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\n{session}Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    v.extend_from_slice(body);
    v
}

/// A GET for an SSE stream (`Accept: text/event-stream`).
pub fn sse_get(path: &str, host: impl std::fmt::Display, session: Option<&str>) -> Vec<u8> {
    let session = session.map_or(String::new(), |s| format!("Mcp-Session-Id: {s}\r\n"));
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n{session}\r\n")
        .into_bytes()
}

/// An MCP `initialize` request (id 0, protocol 2024-11-05) from a client
/// called `name`.
pub fn initialize_request(name: &str) -> Vec<u8> {
    format!(
        r#"{{"jsonrpc":"2.0","id":0,"method":"initialize","params":{{"protocolVersion":"2024-11-05","capabilities":{{}},"clientInfo":{{"name":"{name}","version":"0"}}}}}}"#
    )
    .into_bytes()
}

/// The notification that ends the MCP handshake.
pub const INITIALIZED: &[u8] = br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;

/// One whole response, as [`read_response`] returns it.
#[derive(Debug)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// Its `Mcp-Session-Id`, if any.
    pub session_id: Option<String>,
    /// The body, framing undone.
    pub body: Vec<u8>,
    /// The read buffer, for the next response.
    pub buf: Vec<u8>,
}

/// Read one whole response.
pub fn read_response(r: &mut impl Read, buf: Vec<u8>) -> io::Result<Response> {
    let mut rr = ResponseReader::start(r, buf)?;
    let mut body = Vec::new();
    while rr.next(r, &mut body)?.is_some() {}
    Ok(Response {
        status: rr.status,
        session_id: rr.session_id.take(),
        body,
        buf: rr.into_buf(),
    })
}

/// How a response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Length(u64),
    Chunked,
    Close,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    Size,
    SizeExt,
    SizeLf,
    Data(u64),
    DataCr,
    DataLf,
    Trailer,
    Done,
}

/// Reads one HTTP/1.1 response off a blocking stream and hands back its body
/// piece by piece, with the time each read returned.
pub struct ResponseReader {
    buf: Vec<u8>,
    /// Bytes of `buf` not yet consumed.
    start: usize,
    end: usize,
    framing: Framing,
    chunk: ChunkState,
    chunk_size: u64,
    /// HTTP status of the response.
    pub status: u16,
    /// The response's `Mcp-Session-Id`, if it has one.
    pub session_id: Option<String>,
    /// The response's `Content-Type` says `text/event-stream`.
    pub is_sse: bool,
    done: bool,
}

impl ResponseReader {
    /// Read the head from `r`. Body bytes that came with it are kept.
    pub fn start(r: &mut impl Read, mut buf: Vec<u8>) -> io::Result<ResponseReader> {
        buf.resize(buf.capacity().max(64 * 1024), 0);
        let mut end = 0;
        loop {
            let n = r.read(&mut buf[end..])?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            end += n;
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut resp = httparse::Response::new(&mut headers);
            match resp.parse(&buf[..end]) {
                Ok(httparse::Status::Complete(len)) => {
                    let status = resp.code.unwrap_or(0);
                    let mut framing = Framing::Close;
                    let mut session_id = None;
                    let mut is_sse = false;
                    for h in resp.headers.iter() {
                        if h.name.eq_ignore_ascii_case("content-type") {
                            is_sse = h.value.starts_with(b"text/event-stream");
                        }
                        if h.name.eq_ignore_ascii_case("mcp-session-id") {
                            session_id = std::str::from_utf8(h.value).ok().map(str::to_owned);
                        }
                        if h.name.eq_ignore_ascii_case("transfer-encoding")
                            && h.value.eq_ignore_ascii_case(b"chunked")
                        {
                            framing = Framing::Chunked;
                        } else if h.name.eq_ignore_ascii_case("content-length")
                            && framing != Framing::Chunked
                        {
                            let n = std::str::from_utf8(h.value)
                                .ok()
                                .and_then(|s| s.trim().parse().ok())
                                .ok_or_else(|| io::Error::other("bad content-length"))?;
                            framing = Framing::Length(n);
                        }
                    }
                    return Ok(ResponseReader {
                        buf,
                        start: len,
                        end,
                        framing,
                        chunk: ChunkState::Size,
                        chunk_size: 0,
                        status,
                        session_id,
                        is_sse,
                        done: framing == Framing::Length(0),
                    });
                }
                Ok(httparse::Status::Partial) if end < buf.len() => {}
                Ok(httparse::Status::Partial) => {
                    return Err(io::Error::other("response head too large"));
                }
                Err(e) => return Err(io::Error::other(format!("bad response head: {e}"))),
            }
        }
    }

    /// The body is over.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Give the buffer back for the next response.
    pub fn into_buf(self) -> Vec<u8> {
        self.buf
    }

    /// Append the next body bytes to `out`; returns the time the read that
    /// brought them returned (or the time of the call for bytes already
    /// buffered), `None` at the end of the body.
    pub fn next(&mut self, r: &mut impl Read, out: &mut Vec<u8>) -> io::Result<Option<u64>> {
        if self.done {
            return Ok(None);
        }
        let mut at = now_ns();
        if self.start == self.end {
            self.start = 0;
            let n = r.read(&mut self.buf)?;
            at = now_ns();
            if n == 0 {
                if self.framing == Framing::Close {
                    self.done = true;
                    return Ok(None);
                }
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            self.end = n;
        }
        let input = &self.buf[self.start..self.end];
        let used = match self.framing {
            Framing::Close => {
                out.extend_from_slice(input);
                input.len()
            }
            Framing::Length(left) => {
                let take = (left as usize).min(input.len());
                out.extend_from_slice(&input[..take]);
                self.framing = Framing::Length(left - take as u64);
                self.done = left == take as u64;
                take
            }
            Framing::Chunked => self.dechunk(out)?,
        };
        self.start += used;
        Ok(Some(at))
    }

    fn dechunk(&mut self, out: &mut Vec<u8>) -> io::Result<usize> {
        let input = &self.buf[self.start..self.end];
        let mut i = 0;
        while i < input.len() && self.chunk != ChunkState::Done {
            let b = input[i];
            self.chunk = match self.chunk {
                ChunkState::Size => match b {
                    b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                        let d = (b as char).to_digit(16).unwrap_or(0) as u64;
                        self.chunk_size = self.chunk_size * 16 + d;
                        ChunkState::Size
                    }
                    b';' | b' ' => ChunkState::SizeExt,
                    b'\r' => ChunkState::SizeLf,
                    _ => return Err(io::Error::other("bad chunk size")),
                },
                ChunkState::SizeExt => match b {
                    b'\r' => ChunkState::SizeLf,
                    _ => ChunkState::SizeExt,
                },
                ChunkState::SizeLf => {
                    let size = std::mem::take(&mut self.chunk_size);
                    if size == 0 {
                        ChunkState::Trailer
                    } else {
                        ChunkState::Data(size)
                    }
                }
                ChunkState::Data(left) => {
                    let take = (left as usize).min(input.len() - i);
                    out.extend_from_slice(&input[i..i + take]);
                    i += take;
                    let left = left - take as u64;
                    self.chunk = if left == 0 {
                        ChunkState::DataCr
                    } else {
                        ChunkState::Data(left)
                    };
                    continue;
                }
                ChunkState::DataCr => ChunkState::DataLf,
                ChunkState::DataLf => ChunkState::Size,
                // Trailers are not used here: the last chunk's CRLF ends it.
                ChunkState::Trailer => match b {
                    b'\n' => ChunkState::Done,
                    _ => ChunkState::Trailer,
                },
                ChunkState::Done => ChunkState::Done,
            };
            i += 1;
        }
        if self.chunk == ChunkState::Done {
            self.done = true;
        }
        Ok(i)
    }

    /// Read and discard the rest of the body.
    pub fn drain(&mut self, r: &mut impl Read) -> io::Result<()> {
        let mut sink = Vec::new();
        while self.next(r, &mut sink)?.is_some() {
            sink.clear();
        }
        Ok(())
    }
}

/// Percentiles of a sample, in the sample's unit.
#[derive(Debug, Clone, Copy, Default)]
pub struct Summary {
    /// Number of samples.
    pub count: usize,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest sample.
    pub max: f64,
}

impl Summary {
    /// Summarize `samples` (sorted in place).
    pub fn of(samples: &mut [f64]) -> Summary {
        if samples.is_empty() {
            return Summary::default();
        }
        samples.sort_by(f64::total_cmp);
        let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
        Summary {
            count: samples.len(),
            p50: at(0.5),
            p90: at(0.9),
            p99: at(0.99),
            max: samples[samples.len() - 1],
        }
    }

    /// `"name_p50":…` JSON members, values with one decimal.
    pub fn json(&self, name: &str) -> String {
        format!(
            r#""{name}_n":{},"{name}_p50":{:.1},"{name}_p90":{:.1},"{name}_p99":{:.1},"{name}_max":{:.1}"#,
            self.count, self.p50, self.p90, self.p99, self.max
        )
    }
}

/// A tiny `--key value` argument reader: the harness binaries are driven by
/// a script, so a dependency on a full CLI crate buys nothing.
pub struct Args(Vec<String>);

impl Args {
    /// The process arguments.
    pub fn from_env() -> Args {
        Args(std::env::args().skip(1).collect())
    }

    /// The value after `--name`, parsed, or `default`.
    pub fn get<T: std::str::FromStr>(&self, name: &str, default: T) -> T {
        self.0
            .iter()
            .position(|a| a == name)
            .and_then(|i| self.0.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    }

    /// The value after `--name`, as text.
    pub fn text(&self, name: &str, default: &str) -> String {
        self.get(name, default.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(wire: &[u8], split: usize) -> (u16, Vec<u8>) {
        struct Pieces<'a>(&'a [u8], usize);
        impl Read for Pieces<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = self.0.len().min(self.1).min(buf.len());
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let mut r = Pieces(wire, split);
        let mut rr = ResponseReader::start(&mut r, Vec::new()).unwrap();
        let mut body = Vec::new();
        while rr.next(&mut r, &mut body).unwrap().is_some() {}
        (rr.status, body)
    }

    #[test]
    fn chunked_bodies_decode_at_any_split() {
        let wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n1;x=y\r\n!\r\n0\r\n\r\n";
        for split in 1..wire.len() {
            assert_eq!(read_all(wire, split), (200, b"hello!".to_vec()), "{split}");
        }
    }

    #[test]
    fn whole_responses_keep_their_session_id() {
        let wire = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nMcp-Session-Id: abc\r\n\r\n{}";
        let got = read_response(&mut &wire[..], Vec::new()).unwrap();
        assert_eq!(
            (got.status, got.session_id.as_deref(), &got.body[..]),
            (200, Some("abc"), &b"{}"[..])
        );
    }

    #[test]
    fn length_bodies_decode() {
        let wire = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc";
        assert_eq!(read_all(wire, 7), (200, b"abc".to_vec()));
    }

    #[test]
    fn messages_have_the_asked_sizes() {
        assert_eq!(jsonrpc_request(1024).len(), 1024);
        assert_eq!(jsonrpc_result(1024).len(), 1024);
        let big = tools_list(1 << 20);
        assert!(big.len() > (1 << 20) - 400 && big.len() <= 1 << 20);
        let e = sse_event(7, 10);
        assert_eq!(field_u64(&e, b"progress"), Some(7));
        assert!(field_u64(&e, b"t").is_some());
    }
}
