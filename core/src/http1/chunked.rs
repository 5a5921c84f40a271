//! The chunked transfer coding (RFC 9112 §7.1): an incremental, zero-copy
//! decoder and an encoder.
//!
//! httparse's chunk-size parser is too lenient for a proxy (it skips spaces
//! and tolerates bare LF). This decoder accepts exactly this grammar:
//!
//! ```text
//! chunk-line  = 1*HEXDIG *( ";" ext-name [ "=" ( token / quoted-string ) ] ) CRLF
//! ext-name    = token
//! chunk       = chunk-line chunk-data CRLF          ; size > 0
//! last        = 1*"0" *( ext ) CRLF *( field-line CRLF ) CRLF
//! ```
//!
//! Strict choices:
//! - No whitespace anywhere in a chunk line. RFC 9112 allows BWS around `;`
//!   and `=`, but senders do not emit it and parsers that disagree about it
//!   have been used to smuggle requests.
//! - Every line ends in CRLF: a bare LF, or a CR not followed by LF, is an
//!   error, as is anything but CRLF right after the chunk data.
//! - The size has at most [`Limits::max_chunk_size_digits`] hex digits,
//!   counting leading zeros.
//! - Trailer field lines are checked like header lines (token name, colon
//!   right after it, no controls, no obs-fold) and their total size and
//!   count are limited.

use core::ops::Range;

use super::syntax::{
    hex_value, is_field_value_byte, is_qdtext, is_quoted_pair_byte, is_tchar, is_token, trim_ows,
};
use super::{Header, Limits};

/// Why a chunked body was refused. Once returned, the decoder keeps
/// returning it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChunkedError {
    /// A chunk-size line without any hex digit.
    EmptyChunkSize,
    /// A byte other than a hex digit, `;` or CR in the chunk size
    /// (whitespace, signs and `0x` included).
    InvalidChunkSize,
    /// More hex digits than [`Limits::max_chunk_size_digits`].
    ChunkSizeTooLong,
    /// A size that does not fit in a `u64` (only when the digit limit is
    /// raised above 16).
    ChunkSizeOverflow,
    /// A bare LF, or a CR not followed by LF, in a chunk line or trailer.
    InvalidLineEnding,
    /// A malformed chunk extension.
    InvalidChunkExtension,
    /// Chunk extensions longer than [`Limits::max_chunk_ext_bytes`].
    ChunkExtensionTooLong,
    /// Chunk data not followed by exactly CRLF.
    MissingCrlfAfterData,
    /// A malformed trailer field line.
    InvalidTrailer,
    /// A trailer section over [`Limits::max_trailer_bytes`] or with more
    /// than [`Limits::max_headers`] fields.
    TrailerTooLarge,
}

impl ChunkedError {
    /// The status a proxy answers when a client's request body fails this
    /// way (if the response has not started yet). An upstream response body
    /// that fails midway can only be aborted.
    pub fn status(&self) -> u16 {
        match self {
            ChunkedError::TrailerTooLarge => 431,
            _ => 400,
        }
    }

    fn message(&self) -> &'static str {
        match self {
            ChunkedError::EmptyChunkSize => "empty chunk size",
            ChunkedError::InvalidChunkSize => "invalid chunk size",
            ChunkedError::ChunkSizeTooLong => "chunk size has too many digits",
            ChunkedError::ChunkSizeOverflow => "chunk size overflows",
            ChunkedError::InvalidLineEnding => "bare CR or LF in chunked framing",
            ChunkedError::InvalidChunkExtension => "invalid chunk extension",
            ChunkedError::ChunkExtensionTooLong => "chunk extension too long",
            ChunkedError::MissingCrlfAfterData => "missing CRLF after chunk data",
            ChunkedError::InvalidTrailer => "invalid trailer field",
            ChunkedError::TrailerTooLarge => "trailer section too large",
        }
    }
}

impl core::fmt::Display for ChunkedError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for ChunkedError {}

/// What one [`ChunkedDecoder::decode`] call did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct Decoded {
    /// Bytes of the input used up (framing and data). The rest belongs to a
    /// later call, or, once `done`, to whatever follows the body.
    pub consumed: usize,
    /// Body data found, as a range of the input given to this call. At most
    /// one per call, so it can be a borrowed slice.
    pub data: Option<Range<usize>>,
    /// The last chunk and trailer section are complete.
    pub done: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading hex digits of the size.
    Size,
    /// Just after a `;`: an extension name must start.
    ExtStart,
    ExtName,
    /// Just after `=`: a token or a quoted-string must start.
    ExtValueStart,
    ExtToken,
    ExtQuoted,
    ExtQuotedPair,
    ExtAfterQuoted,
    /// CR seen at the end of a chunk line.
    SizeLf,
    Data {
        remaining: u64,
    },
    DataCr,
    DataLf,
    /// At the start of a trailer line, or of the final empty line.
    TrailerLineStart,
    TrailerLine,
    TrailerLf,
    /// CR of the final empty line seen.
    EndLf,
    Done,
    Failed(ChunkedError),
}

/// An incremental decoder for one chunked body.
///
/// Feed it any split of the body. Each call to [`decode`](Self::decode)
/// returns how much it consumed and at most one range of body data inside the
/// given input; call again with the rest of the input until all is consumed
/// or `done`. Bytes after the final CRLF are never consumed, so a pipelined
/// next message stays with the caller.
///
/// ```text
/// let mut rest = input;
/// while !rest.is_empty() {
///     let step = decoder.decode(rest)?;
///     if let Some(r) = step.data.clone() { forward(&rest[r]); }
///     rest = &rest[step.consumed..];
///     if step.done { break; }
/// }
/// ```
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: State,
    size: u64,
    digits: usize,
    ext_len: usize,
    trailer_len: usize,
    line: Vec<u8>,
    trailers: Vec<Header>,
    max_digits: usize,
    max_ext: usize,
    max_trailer: usize,
    max_trailers: usize,
}

impl ChunkedDecoder {
    /// A decoder at the start of a chunked body.
    pub fn new(limits: &Limits) -> Self {
        ChunkedDecoder {
            state: State::Size,
            size: 0,
            digits: 0,
            ext_len: 0,
            trailer_len: 0,
            line: Vec::new(),
            trailers: Vec::new(),
            max_digits: limits.max_chunk_size_digits,
            max_ext: limits.max_chunk_ext_bytes,
            max_trailer: limits.max_trailer_bytes,
            max_trailers: limits.max_headers,
        }
    }

    /// Whether the whole body, trailers included, has been decoded.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// The trailer fields received so far (all of them once done).
    pub fn trailers(&self) -> &[Header] {
        &self.trailers
    }

    /// Take the trailer fields out of the decoder.
    pub fn take_trailers(&mut self) -> Vec<Header> {
        core::mem::take(&mut self.trailers)
    }

    /// Decode from the start of `input`; see the type docs for the loop.
    ///
    /// When an error follows data in the same input, the data is returned
    /// first (with `consumed` stopping at the bad byte) and the error on the
    /// next call, so the data seen never depends on how the input was split.
    pub fn decode(&mut self, input: &[u8]) -> Result<Decoded, ChunkedError> {
        match self.state {
            State::Failed(e) => return Err(e),
            State::Done => {
                return Ok(Decoded {
                    consumed: 0,
                    data: None,
                    done: true,
                });
            }
            _ => {}
        }
        let mut pos = 0;
        let mut data = None;
        while pos < input.len() {
            match self.state {
                State::Data { remaining } => {
                    if data.is_some() {
                        break;
                    }
                    let take = remaining.min((input.len() - pos) as u64);
                    // `take` is at most the input length, so it fits.
                    let end = pos + take as usize;
                    data = Some(pos..end);
                    pos = end;
                    let remaining = remaining - take;
                    self.state = if remaining == 0 {
                        State::DataCr
                    } else {
                        State::Data { remaining }
                    };
                }
                State::Done => break,
                _ => {
                    if let Err(e) = self.step(input[pos]) {
                        self.state = State::Failed(e);
                        if data.is_some() {
                            return Ok(Decoded {
                                consumed: pos,
                                data,
                                done: false,
                            });
                        }
                        return Err(e);
                    }
                    pos += 1;
                }
            }
        }
        Ok(Decoded {
            consumed: pos,
            data,
            done: self.state == State::Done,
        })
    }

    /// Advance over one framing byte.
    fn step(&mut self, b: u8) -> Result<(), ChunkedError> {
        use ChunkedError as E;
        self.state = match self.state {
            State::Size => match b {
                b';' | b'\r' if self.digits == 0 => return Err(E::EmptyChunkSize),
                b';' => self.ext_byte(State::ExtStart)?,
                b'\r' => State::SizeLf,
                b'\n' => return Err(E::InvalidLineEnding),
                _ => {
                    let d = hex_value(b).ok_or(E::InvalidChunkSize)?;
                    self.digits += 1;
                    if self.digits > self.max_digits {
                        return Err(E::ChunkSizeTooLong);
                    }
                    if self.size > u64::MAX >> 4 {
                        return Err(E::ChunkSizeOverflow);
                    }
                    self.size = (self.size << 4) | u64::from(d);
                    State::Size
                }
            },
            State::ExtStart => match b {
                b'\n' => return Err(E::InvalidLineEnding),
                _ if is_tchar(b) => self.ext_byte(State::ExtName)?,
                _ => return Err(E::InvalidChunkExtension),
            },
            State::ExtName => match b {
                b'\r' => State::SizeLf,
                b'\n' => return Err(E::InvalidLineEnding),
                b';' => self.ext_byte(State::ExtStart)?,
                b'=' => self.ext_byte(State::ExtValueStart)?,
                _ if is_tchar(b) => self.ext_byte(State::ExtName)?,
                _ => return Err(E::InvalidChunkExtension),
            },
            State::ExtValueStart => match b {
                b'\n' => return Err(E::InvalidLineEnding),
                b'"' => self.ext_byte(State::ExtQuoted)?,
                _ if is_tchar(b) => self.ext_byte(State::ExtToken)?,
                _ => return Err(E::InvalidChunkExtension),
            },
            State::ExtToken => match b {
                b'\r' => State::SizeLf,
                b'\n' => return Err(E::InvalidLineEnding),
                b';' => self.ext_byte(State::ExtStart)?,
                _ if is_tchar(b) => self.ext_byte(State::ExtToken)?,
                _ => return Err(E::InvalidChunkExtension),
            },
            State::ExtQuoted => match b {
                b'\n' => return Err(E::InvalidLineEnding),
                b'"' => self.ext_byte(State::ExtAfterQuoted)?,
                b'\\' => self.ext_byte(State::ExtQuotedPair)?,
                _ if is_qdtext(b) => self.ext_byte(State::ExtQuoted)?,
                _ => return Err(E::InvalidChunkExtension),
            },
            State::ExtQuotedPair => match b {
                b'\n' => return Err(E::InvalidLineEnding),
                _ if is_quoted_pair_byte(b) => self.ext_byte(State::ExtQuoted)?,
                _ => return Err(E::InvalidChunkExtension),
            },
            State::ExtAfterQuoted => match b {
                b'\r' => State::SizeLf,
                b'\n' => return Err(E::InvalidLineEnding),
                b';' => self.ext_byte(State::ExtStart)?,
                _ => return Err(E::InvalidChunkExtension),
            },
            State::SizeLf => match b {
                b'\n' => {
                    let size = core::mem::take(&mut self.size);
                    self.digits = 0;
                    self.ext_len = 0;
                    if size == 0 {
                        State::TrailerLineStart
                    } else {
                        State::Data { remaining: size }
                    }
                }
                _ => return Err(E::InvalidLineEnding),
            },
            State::DataCr => match b {
                b'\r' => State::DataLf,
                _ => return Err(E::MissingCrlfAfterData),
            },
            State::DataLf => match b {
                b'\n' => State::Size,
                _ => return Err(E::MissingCrlfAfterData),
            },
            State::TrailerLineStart => {
                self.trailer_byte()?;
                match b {
                    b'\r' => State::EndLf,
                    b'\n' => return Err(E::InvalidLineEnding),
                    // obs-fold, or a line that cannot start a field.
                    _ if !is_tchar(b) => return Err(E::InvalidTrailer),
                    _ => {
                        self.line.push(b);
                        State::TrailerLine
                    }
                }
            }
            State::TrailerLine => {
                self.trailer_byte()?;
                match b {
                    b'\r' => State::TrailerLf,
                    b'\n' => return Err(E::InvalidLineEnding),
                    _ => {
                        self.line.push(b);
                        State::TrailerLine
                    }
                }
            }
            State::TrailerLf => {
                self.trailer_byte()?;
                if b != b'\n' {
                    return Err(E::InvalidLineEnding);
                }
                self.finish_trailer_line()?;
                State::TrailerLineStart
            }
            State::EndLf => {
                self.trailer_byte()?;
                if b != b'\n' {
                    return Err(E::InvalidLineEnding);
                }
                self.line = Vec::new();
                State::Done
            }
            // `decode` handles these without calling `step`.
            State::Data { .. } | State::Done | State::Failed(_) => self.state,
        };
        Ok(())
    }

    /// Count one extension byte against the limit, then move to `next`.
    fn ext_byte(&mut self, next: State) -> Result<State, ChunkedError> {
        self.ext_len += 1;
        if self.ext_len > self.max_ext {
            return Err(ChunkedError::ChunkExtensionTooLong);
        }
        Ok(next)
    }

    fn trailer_byte(&mut self) -> Result<(), ChunkedError> {
        self.trailer_len += 1;
        if self.trailer_len > self.max_trailer {
            return Err(ChunkedError::TrailerTooLarge);
        }
        Ok(())
    }

    /// Check the buffered trailer line and keep it as a field.
    fn finish_trailer_line(&mut self) -> Result<(), ChunkedError> {
        let line = core::mem::take(&mut self.line);
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or(ChunkedError::InvalidTrailer)?;
        let (name, value) = (&line[..colon], trim_ows(&line[colon + 1..]));
        if !is_token(name) || !value.iter().all(|&b| is_field_value_byte(b)) {
            return Err(ChunkedError::InvalidTrailer);
        }
        if self.trailers.len() >= self.max_trailers {
            return Err(ChunkedError::TrailerTooLarge);
        }
        // A token is ASCII, so this never fails.
        let name = String::from_utf8(name.to_vec()).map_err(|_| ChunkedError::InvalidTrailer)?;
        self.trailers.push(Header {
            name,
            value: value.to_vec(),
        });
        self.line = line;
        self.line.clear();
        Ok(())
    }
}

/// The last chunk with no trailers: ends a chunked body.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// What follows each chunk's data.
pub const CHUNK_END: &[u8] = b"\r\n";

/// A chunk-size line (`<hex>\r\n`) on the stack, for writing a chunk as
/// header + data + [`CHUNK_END`] without copying the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkHeader {
    buf: [u8; 18],
    len: u8,
}

impl ChunkHeader {
    /// The line's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..usize::from(self.len)]
    }
}

impl AsRef<[u8]> for ChunkHeader {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

/// The size line for a chunk of `len` bytes, lowercase hex without padding.
/// `None` for 0: a zero-size chunk would end the body.
pub fn chunk_header(len: usize) -> Option<ChunkHeader> {
    if len == 0 {
        return None;
    }
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let len = len as u64;
    let digits = (64 - len.leading_zeros()).div_ceil(4) as usize;
    let mut buf = [0u8; 18];
    for (i, slot) in buf[..digits].iter_mut().enumerate() {
        let shift = 4 * (digits - 1 - i);
        *slot = HEX[((len >> shift) & 0xF) as usize];
    }
    buf[digits] = b'\r';
    buf[digits + 1] = b'\n';
    Some(ChunkHeader {
        buf,
        len: (digits + 2) as u8,
    })
}

/// Append `data` as one chunk. Empty `data` appends nothing (an empty chunk
/// would be the last chunk).
pub fn encode_chunk(data: &[u8], out: &mut Vec<u8>) {
    if let Some(header) = chunk_header(data.len()) {
        out.reserve(header.as_bytes().len() + data.len() + CHUNK_END.len());
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        out.extend_from_slice(CHUNK_END);
    }
}

/// Append the last chunk (no trailers), ending the body.
pub fn encode_last_chunk(out: &mut Vec<u8>) {
    out.extend_from_slice(LAST_CHUNK);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_digits() {
        assert_eq!(chunk_header(0), None);
        assert_eq!(chunk_header(1).unwrap().as_bytes(), b"1\r\n");
        assert_eq!(chunk_header(0xa).unwrap().as_bytes(), b"a\r\n");
        assert_eq!(chunk_header(0x10).unwrap().as_bytes(), b"10\r\n");
        assert_eq!(chunk_header(0xfff).unwrap().as_bytes(), b"fff\r\n");
        assert_eq!(
            chunk_header(usize::MAX).unwrap().as_bytes().len(),
            2 * core::mem::size_of::<usize>() + 2
        );
    }
}
