//! The one decision about where a body ends (RFC 9112 §6.3).
//!
//! Strict choices:
//! - `Content-Length` together with `Transfer-Encoding` is refused, in
//!   requests (§6.3 lets a server reject) and in responses (a proxy must not
//!   forward a message two parsers could frame two ways).
//! - Repeated `Content-Length` values (repeated fields or a comma list) are
//!   accepted only when all are equal (RFC 9110 §8.6); an empty list element,
//!   a sign, inner whitespace, a non-digit or a value over `u64` is refused.
//! - `Transfer-Encoding` must be exactly `chunked`: sluice implements no other
//!   transfer coding, so `gzip, chunked` gets 501, and anything where chunked
//!   is missing, not last, or repeated gets 400. Transfer codings with
//!   parameters are refused (chunked has none).
//! - `Transfer-Encoding` in an HTTP/1.0 message is refused (§6.1 says treat
//!   the framing as faulty).
//! - These checks run even where the framing is fixed regardless of the
//!   fields (HEAD, 204, 304, 1xx), since the fields are forwarded and a
//!   downstream cache may read them; only a 2xx to CONNECT is exempt, whose
//!   framing fields §6.3 says to ignore.

use super::syntax::{is_token, trim_ows};
use super::{Header, RequestHead, ResponseHead, Version};

/// How a message body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BodyFraming {
    /// No body: requests without framing fields; responses to HEAD; 1xx, 204
    /// and 304 responses; a 2xx to CONNECT (after which the connection is a
    /// tunnel, which sluice does not offer).
    None,
    /// Exactly this many bytes (possibly 0).
    ContentLength(u64),
    /// Chunked transfer coding; use [`super::ChunkedDecoder`].
    Chunked,
    /// Responses only: the body runs until the server closes the connection.
    UntilClose,
}

/// Why the body framing of a message could not be decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FramingError {
    /// Both `Content-Length` and `Transfer-Encoding`. 400.
    ContentLengthWithTransferEncoding,
    /// A `Content-Length` that is not a plain decimal `u64`. 400.
    InvalidContentLength,
    /// `Content-Length` values that differ. 400.
    ConflictingContentLength,
    /// `Transfer-Encoding` in an HTTP/1.0 message. 400.
    TransferEncodingInHttp10,
    /// A `Transfer-Encoding` that is empty or not a list of tokens. 400.
    InvalidTransferEncoding,
    /// `chunked` is missing or not the final coding. 400.
    ChunkedNotFinal,
    /// `chunked` appears more than once. 400.
    ChunkedRepeated,
    /// A coding before `chunked` (`gzip, chunked`): sluice implements only
    /// chunked. 501.
    UnsupportedTransferCoding,
}

impl FramingError {
    /// The status a proxy answers when a client's request fails this way.
    /// (For an upstream response, answer 502.)
    pub fn status(&self) -> u16 {
        match self {
            FramingError::UnsupportedTransferCoding => 501,
            _ => 400,
        }
    }

    fn message(&self) -> &'static str {
        match self {
            FramingError::ContentLengthWithTransferEncoding => {
                "both Content-Length and Transfer-Encoding"
            }
            FramingError::InvalidContentLength => "invalid Content-Length",
            FramingError::ConflictingContentLength => "conflicting Content-Length values",
            FramingError::TransferEncodingInHttp10 => "Transfer-Encoding in an HTTP/1.0 message",
            FramingError::InvalidTransferEncoding => "invalid Transfer-Encoding",
            FramingError::ChunkedNotFinal => "chunked is not the final transfer coding",
            FramingError::ChunkedRepeated => "chunked applied more than once",
            FramingError::UnsupportedTransferCoding => "unsupported transfer coding",
        }
    }
}

impl core::fmt::Display for FramingError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for FramingError {}

/// The framing of a request body. Without `Content-Length` or
/// `Transfer-Encoding` a request has no body.
pub fn request_framing(head: &RequestHead) -> Result<BodyFraming, FramingError> {
    Ok(match fields(head.version, &head.headers)? {
        Fields::None => BodyFraming::None,
        Fields::Length(n) => BodyFraming::ContentLength(n),
        Fields::Chunked => BodyFraming::Chunked,
    })
}

/// The framing of a response body, given the method of the request it
/// answers (compared case-sensitively, as methods are).
pub fn response_framing(
    request_method: &str,
    head: &ResponseHead,
) -> Result<BodyFraming, FramingError> {
    if request_method == "CONNECT" && (200..300).contains(&head.status) {
        return Ok(BodyFraming::None);
    }
    let fields = fields(head.version, &head.headers)?;
    if request_method == "HEAD" || head.status < 200 || head.status == 204 || head.status == 304 {
        return Ok(BodyFraming::None);
    }
    Ok(match fields {
        Fields::None => BodyFraming::UntilClose,
        Fields::Length(n) => BodyFraming::ContentLength(n),
        Fields::Chunked => BodyFraming::Chunked,
    })
}

enum Fields {
    None,
    Length(u64),
    Chunked,
}

/// Validate the framing fields, whatever the message kind.
fn fields(version: Version, headers: &[Header]) -> Result<Fields, FramingError> {
    let mut te = headers
        .iter()
        .filter(|h| h.is("transfer-encoding"))
        .peekable();
    let mut cl = headers.iter().filter(|h| h.is("content-length")).peekable();
    match (te.peek().is_some(), cl.peek().is_some()) {
        (true, true) => Err(FramingError::ContentLengthWithTransferEncoding),
        (true, false) if version == Version::Http10 => Err(FramingError::TransferEncodingInHttp10),
        (true, false) => {
            transfer_encoding(te.map(|h| h.value.as_slice())).map(|()| Fields::Chunked)
        }
        (false, true) => content_length(cl.map(|h| h.value.as_slice())).map(Fields::Length),
        (false, false) => Ok(Fields::None),
    }
}

/// All `Content-Length` values, across fields and comma lists, must be the
/// same plain decimal number.
fn content_length<'a>(values: impl Iterator<Item = &'a [u8]>) -> Result<u64, FramingError> {
    let mut found: Option<u64> = None;
    for value in values {
        for element in value.split(|&b| b == b',') {
            let n = decimal(trim_ows(element)).ok_or(FramingError::InvalidContentLength)?;
            match found {
                Some(m) if m != n => return Err(FramingError::ConflictingContentLength),
                _ => found = Some(n),
            }
        }
    }
    found.ok_or(FramingError::InvalidContentLength)
}

/// `1*DIGIT` as a `u64`; leading zeros are fine, anything else is not.
fn decimal(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    s.iter().try_fold(0u64, |acc, &b| {
        let d = b.checked_sub(b'0').filter(|d| *d <= 9)?;
        acc.checked_mul(10)?.checked_add(u64::from(d))
    })
}

/// The codings, in order, across all fields, must be exactly `chunked`.
fn transfer_encoding<'a>(values: impl Iterator<Item = &'a [u8]>) -> Result<(), FramingError> {
    let mut codings = 0usize;
    let mut chunked = 0usize;
    let mut last_is_chunked = false;
    for value in values {
        for element in value.split(|&b| b == b',') {
            let coding = trim_ows(element);
            // RFC 9110 §5.6.1: empty list elements are ignored.
            if coding.is_empty() {
                continue;
            }
            if !is_token(coding) {
                // Parameters (`;`), quotes or spaces inside: not for us.
                return Err(FramingError::InvalidTransferEncoding);
            }
            codings += 1;
            last_is_chunked = coding.eq_ignore_ascii_case(b"chunked");
            if last_is_chunked {
                chunked += 1;
            }
        }
    }
    if codings == 0 {
        Err(FramingError::InvalidTransferEncoding)
    } else if chunked > 1 {
        Err(FramingError::ChunkedRepeated)
    } else if !last_is_chunked {
        Err(FramingError::ChunkedNotFinal)
    } else if codings > 1 {
        Err(FramingError::UnsupportedTransferCoding)
    } else {
        Ok(())
    }
}
