//! HTTP/1.1 for a proxy: heads, body framing, a strict chunked codec and
//! hop-by-hop handling.
//!
//! This module is the proxy's security boundary, so wherever RFC 9112 lets a
//! recipient reject a message, it rejects. A message two parsers could read
//! two ways is the raw material of request smuggling; sluice refuses it rather
//! than guessing. Each strict choice is written down where it is made.
//!
//! The pieces, in the order a proxy uses them:
//!
//! 1. [`parse_request_head`] / [`parse_response_head`] (stateless, over the
//!    caller's buffer) or [`HeadScanner`] (the same, with a memo so byte-by-byte
//!    arrival stays linear). Heads are owned: [`RequestHead`], [`ResponseHead`].
//! 2. [`request_framing`] / [`response_framing`]: the one place that decides
//!    how the body is delimited ([`BodyFraming`]).
//! 3. [`ChunkedDecoder`] for chunked bodies (zero copy: it hands back ranges of
//!    the input), [`encode_chunk`] / [`chunk_header`] / [`encode_last_chunk`]
//!    to re-frame.
//! 4. [`remove_hop_by_hop`] before forwarding, [`connection_close`] to decide
//!    whether the connection survives the exchange.
//! 5. [`write_request_head`] / [`write_response_head`] to serialize.
//!
//! Every error type has a `status()`: the status a proxy answers its *client*
//! with when the client's message fails. When an upstream *response* fails,
//! the proxy answers 502 (Bad Gateway) whatever the error.
//!
//! ```
//! use sluice_core::http1::*;
//!
//! let limits = Limits::default();
//! let buf = b"POST /mcp HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
//! let Parsed::Complete { head, len } = parse_request_head(buf, &limits).unwrap() else {
//!     unreachable!()
//! };
//! assert_eq!(request_framing(&head).unwrap(), BodyFraming::Chunked);
//!
//! let mut body = &buf[len..];
//! let mut decoder = ChunkedDecoder::new(&limits);
//! let mut data = Vec::new();
//! while !body.is_empty() {
//!     let step = decoder.decode(body).unwrap();
//!     if let Some(range) = step.data.clone() {
//!         data.extend_from_slice(&body[range]);
//!     }
//!     body = &body[step.consumed..];
//!     if step.done {
//!         break;
//!     }
//! }
//! assert_eq!(data, b"hello");
//! ```

mod body;
mod chunked;
mod framing;
mod head;
mod headers;
mod syntax;
mod write;

pub use body::{BodyRead, BodyReader};
pub use chunked::{
    CHUNK_END, ChunkHeader, ChunkedDecoder, ChunkedError, Decoded, LAST_CHUNK, chunk_header,
    encode_chunk, encode_last_chunk,
};
pub use framing::{BodyFraming, FramingError, request_framing, response_framing};
pub use head::{
    HeadError, HeadScanner, Parsed, TargetForm, parse_request_head, parse_response_head,
};
pub use headers::{
    connection_close, connection_has_token, find_header, header_values, is_hop_by_hop,
    is_writer_owned, remove_hop_by_hop, remove_proxy_auth,
};
pub use write::{WriteError, write_request_head, write_response_head};

/// Named limits for everything this module buffers or counts.
///
/// The defaults are generous for real clients and bounded for attackers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest head (start line + fields + the empty line) accepted, in bytes.
    /// Larger heads get 431. Default 32 KiB: above h11's 16 KiB because
    /// bearer tokens plus cookies sometimes pass that, and equal to nginx's
    /// default total (4 × 8 KiB).
    pub max_head_bytes: usize,
    /// Most header fields in one head (and most trailer fields in one body).
    /// More get 431. Default 100, as hyper and Envoy.
    pub max_headers: usize,
    /// Most hex digits in one chunk size, leading zeros included (so padding
    /// cannot smuggle past the limit). Default 16, enough for any `u64`.
    pub max_chunk_size_digits: usize,
    /// Most bytes of chunk extensions on one chunk-size line (from the first
    /// `;` up to the CR). Default 1 KiB: nobody sends them in practice.
    pub max_chunk_ext_bytes: usize,
    /// Largest trailer section (all trailer lines and the final CRLF), in
    /// bytes. Default 8 KiB.
    pub max_trailer_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_head_bytes: 32 * 1024,
            max_headers: 100,
            max_chunk_size_digits: 16,
            max_chunk_ext_bytes: 1024,
            max_trailer_bytes: 8 * 1024,
        }
    }
}

/// One header (or trailer) field, kept as received.
///
/// The name keeps its case (for faithful forwarding) and is always a valid
/// token after parsing. The value is opaque bytes: obs-text (0x80–0xFF) is
/// legal on the wire and need not be UTF-8. Leading and trailing whitespace
/// around the value is not part of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Field name, case preserved.
    pub name: String,
    /// Field value, without surrounding whitespace.
    pub value: Vec<u8>,
}

impl Header {
    /// A header from a name and a value.
    pub fn new(name: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        Header {
            name: name.into(),
            value: value.into(),
        }
    }

    /// Whether this field is called `name` (ASCII case-insensitive).
    pub fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
    }
}

/// The HTTP version of a message. Only 1.0 and 1.1 exist on this wire;
/// anything else is rejected at parse time (505 for requests).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// HTTP/1.0
    Http10,
    /// HTTP/1.1
    Http11,
}

impl Version {
    /// The version as it appears on the wire, e.g. `HTTP/1.1`.
    pub fn as_str(self) -> &'static str {
        match self {
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
        }
    }
}

/// A parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    /// The method token, case-sensitive as on the wire.
    pub method: String,
    /// The request-target, in any of the four forms (see [`TargetForm`]).
    pub target: String,
    /// The version from the request line.
    pub version: Version,
    /// The fields in wire order, names in wire case.
    pub headers: Vec<Header>,
}

impl RequestHead {
    /// The first field called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&Header> {
        find_header(&self.headers, name)
    }

    /// Whether the connection must close after this exchange, judging by the
    /// request alone (see [`connection_close`]).
    pub fn connection_close(&self) -> bool {
        connection_close(self.version, &self.headers)
    }

    /// Which of the four request-target forms this target has. Always
    /// `Some` for a head that came out of [`parse_request_head`].
    pub fn target_form(&self) -> Option<TargetForm> {
        head::classify_target(&self.method, self.target.as_bytes())
    }
}

/// A parsed response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    /// The version from the status line.
    pub version: Version,
    /// The status code, 100–599.
    pub status: u16,
    /// The reason phrase; empty when absent or when it held non-ASCII bytes
    /// (it carries no meaning, so nothing is lost).
    pub reason: String,
    /// The fields in wire order, names in wire case.
    pub headers: Vec<Header>,
}

impl ResponseHead {
    /// The first field called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&Header> {
        find_header(&self.headers, name)
    }

    /// Whether the connection must close after this response, judging by the
    /// response alone (see [`connection_close`]).
    pub fn connection_close(&self) -> bool {
        connection_close(self.version, &self.headers)
    }
}
