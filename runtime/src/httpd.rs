//! Just enough HTTP/1.1 serving for sluice's own small servers (the demo
//! MCP server, the admin listener): read one request at a time off a
//! keep-alive connection (heads and framing from `sluice_core::http1`),
//! write whole responses or a chunked SSE stream.

use std::io;

use futures_lite::{AsyncReadExt, AsyncWriteExt, future};
use sluice_core::http1::{
    BodyFraming, ChunkedDecoder, HeadScanner, Header, Limits, Parsed, RequestHead, ResponseHead,
    Version, encode_chunk, encode_last_chunk, request_framing, write_response_head,
};

use crate::rt::net::Stream;

/// Largest request body read. MCP messages to the demo are small, and the
/// admin listener takes none; anything bigger is a mistake or an attack.
const MAX_BODY: usize = 1024 * 1024;

/// One request, body read in full.
pub(crate) struct Request {
    pub head: RequestHead,
    pub body: Vec<u8>,
}

impl Request {
    /// The first value of header `name` as text; `None` when absent or not
    /// UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head
            .header(name)
            .and_then(|h| std::str::from_utf8(&h.value).ok())
    }

    /// The target's path, without the query.
    pub fn path(&self) -> &str {
        let t = self.head.target.as_str();
        t.split_once('?').map_or(t, |(p, _)| p)
    }
}

/// Why no request came.
pub(crate) enum ReadError {
    /// The peer closed (or the socket failed): nothing to answer.
    Closed,
    /// The request is malformed; answer this status and close.
    Bad(u16),
}

impl From<io::Error> for ReadError {
    fn from(_: io::Error) -> Self {
        ReadError::Closed
    }
}

/// A response with its whole body.
pub(crate) struct Response {
    pub status: u16,
    pub headers: Vec<Header>,
    pub body: Vec<u8>,
}

impl Response {
    /// A response with no headers of its own and an empty body.
    pub fn empty(status: u16) -> Self {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// A `text/plain` response.
    pub fn text(status: u16, text: &str) -> Self {
        Response {
            status,
            headers: vec![Header::new("Content-Type", "text/plain; charset=utf-8")],
            body: format!("{text}\n").into_bytes(),
        }
    }

    /// An `application/json` response.
    pub fn json(status: u16, value: &serde_json::Value) -> Self {
        Response {
            status,
            headers: vec![Header::new("Content-Type", "application/json")],
            body: value.to_string().into_bytes(),
        }
    }

    /// Add a header.
    pub fn with(mut self, name: &str, value: impl Into<Vec<u8>>) -> Self {
        self.headers.push(Header::new(name, value));
        self
    }
}

/// One accepted connection and the bytes read from it but not yet used.
pub(crate) struct Conn {
    stream: Stream,
    buf: Vec<u8>,
    scanner: HeadScanner,
    limits: Limits,
    /// The current request's version: HTTP/1.0 gets close-delimited streams,
    /// since it has no chunked coding.
    version: Version,
}

impl Conn {
    pub fn new(stream: Stream) -> Self {
        Conn {
            stream,
            buf: Vec::new(),
            scanner: HeadScanner::new(),
            limits: Limits::default(),
            version: Version::Http11,
        }
    }

    async fn read_more(&mut self) -> io::Result<usize> {
        let mut chunk = [0u8; 8192];
        let n = (&self.stream).read(&mut chunk).await?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    /// Read the next request. Bytes after it (a pipelined request) stay
    /// buffered for the next call.
    pub async fn read_request(&mut self) -> Result<Request, ReadError> {
        let head = loop {
            match self.scanner.parse_request(&self.buf, &self.limits) {
                Ok(Parsed::Complete { head, len }) => {
                    self.buf.drain(..len);
                    break head;
                }
                Ok(Parsed::Partial) => {
                    if self.read_more().await? == 0 {
                        return Err(ReadError::Closed);
                    }
                }
                Err(e) => return Err(ReadError::Bad(e.status())),
            }
        };
        self.version = head.version;
        let framing = request_framing(&head).map_err(|e| ReadError::Bad(e.status()))?;
        let body = match framing {
            BodyFraming::None | BodyFraming::UntilClose => Vec::new(),
            BodyFraming::ContentLength(n) => {
                let n = usize::try_from(n)
                    .ok()
                    .filter(|&n| n <= MAX_BODY)
                    .ok_or(ReadError::Bad(413))?;
                while self.buf.len() < n {
                    if self.read_more().await? == 0 {
                        return Err(ReadError::Closed);
                    }
                }
                self.buf.drain(..n).collect()
            }
            BodyFraming::Chunked => self.read_chunked().await?,
        };
        Ok(Request { head, body })
    }

    async fn read_chunked(&mut self) -> Result<Vec<u8>, ReadError> {
        let mut decoder = ChunkedDecoder::new(&self.limits);
        let mut body = Vec::new();
        loop {
            let step = decoder
                .decode(&self.buf)
                .map_err(|e| ReadError::Bad(e.status()))?;
            if let Some(range) = step.data.clone() {
                body.extend_from_slice(&self.buf[range]);
                if body.len() > MAX_BODY {
                    return Err(ReadError::Bad(413));
                }
            }
            self.buf.drain(..step.consumed);
            if step.done {
                return Ok(body);
            }
            // The decoder keeps partial lines itself, so an unconsumed rest
            // only happens after a data range; otherwise it needs more bytes.
            if (self.buf.is_empty() || step.consumed == 0) && self.read_more().await? == 0 {
                return Err(ReadError::Closed);
            }
        }
    }

    async fn write(&self, bytes: &[u8]) -> io::Result<()> {
        // TCP_NODELAY is set on accept, so each write leaves at once.
        (&self.stream).write_all(bytes).await
    }

    fn head(&self, status: u16, headers: Vec<Header>) -> io::Result<Vec<u8>> {
        let head = ResponseHead {
            version: Version::Http11,
            status,
            reason: reason(status).to_owned(),
            headers,
        };
        let mut out = Vec::with_capacity(256);
        write_response_head(&head, &mut out)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        Ok(out)
    }

    /// Write a whole response. `close` adds `Connection: close`; the caller
    /// then drops the connection.
    pub async fn send(&self, response: Response, close: bool) -> io::Result<()> {
        let mut headers = response.headers;
        headers.push(Header::new(
            "Content-Length",
            response.body.len().to_string(),
        ));
        if close {
            headers.push(Header::new("Connection", "close"));
        }
        let mut out = self.head(response.status, headers)?;
        out.extend_from_slice(&response.body);
        self.write(&out).await
    }

    /// Start a `text/event-stream` response. Events follow with
    /// [`SseStream::event`], each written (and so flushed) on its own.
    pub async fn start_sse(&self, mut headers: Vec<Header>) -> io::Result<SseStream<'_>> {
        let chunked = self.version == Version::Http11;
        headers.push(Header::new("Content-Type", "text/event-stream"));
        headers.push(Header::new("Cache-Control", "no-cache"));
        headers.push(Header::new("X-Accel-Buffering", "no"));
        if chunked {
            headers.push(Header::new("Transfer-Encoding", "chunked"));
        } else {
            headers.push(Header::new("Connection", "close"));
        }
        self.write(&self.head(200, headers)?).await?;
        Ok(SseStream {
            conn: self,
            chunked,
        })
    }

    /// Wait until the peer closes its side (or sends anything: a stream's
    /// connection carries nothing else, so that counts as leaving too).
    pub async fn closed(&self) {
        let mut byte = [0u8; 1];
        let _ = (&self.stream).read(&mut byte).await;
    }
}

/// An SSE response in progress.
pub(crate) struct SseStream<'a> {
    conn: &'a Conn,
    chunked: bool,
}

impl SseStream<'_> {
    /// Write one `message` event holding `data` (one line of JSON).
    pub async fn event(&self, data: &str) -> io::Result<()> {
        self.named("message", data).await
    }

    /// Write one event called `name` holding `data` (one line).
    pub async fn named(&self, name: &str, data: &str) -> io::Result<()> {
        let event = format!("event: {name}\ndata: {data}\n\n");
        if self.chunked {
            let mut out = Vec::with_capacity(event.len() + 12);
            encode_chunk(event.as_bytes(), &mut out);
            self.conn.write(&out).await
        } else {
            self.conn.write(event.as_bytes()).await
        }
    }

    /// Write each message `rx` gives as a `message` event until the sender
    /// is gone (the session ended) or the client leaves.
    pub async fn relay(&self, rx: &async_channel::Receiver<String>) -> io::Result<()> {
        loop {
            let next = future::or(async { rx.recv().await.ok() }, async {
                self.conn.closed().await;
                None
            })
            .await;
            match next {
                Some(message) => self.event(&message).await?,
                None => return Ok(()),
            }
        }
    }

    /// End the stream (the last chunk; nothing for HTTP/1.0, whose stream
    /// ends with the connection).
    pub async fn end(self) -> io::Result<()> {
        if self.chunked {
            let mut out = Vec::new();
            encode_last_chunk(&mut out);
            self.conn.write(&out).await?;
        }
        Ok(())
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        409 => "Conflict",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        431 => "Request Header Fields Too Large",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}
