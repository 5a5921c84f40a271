//! Server-Sent Events: an incremental WHATWG event-stream parser and an encoder.
//!
//! # The feed/drain loop
//!
//! [`SseParser`] is push-in, drain-out. Call [`SseParser::feed`] with whatever
//! bytes arrived (any split: a CRLF or a UTF-8 sequence may straddle two
//! feeds), then call [`SseParser::poll`] until it returns `None`. Items come
//! out in stream order. `feed` does all the work eagerly and queues the
//! results, so the accessors ([`SseParser::at_event_boundary`],
//! [`SseParser::boundary_offset`], [`SseParser::last_event_id`]) describe the
//! stream after the *whole* last feed, even before its items are drained.
//! At end of stream call [`SseParser::finish`]: an unterminated block is
//! discarded, as the spec requires.
//!
//! A proxy that passes the original bytes through forwards everything up to
//! [`SseParser::boundary_offset`]; each [`SseEvent`] carries the `span` of
//! the block it came from, so one event can be held back or replaced while
//! the rest flows.
//!
//! ```
//! use sluice_core::sse::{SseItem, SseLimits, SseParser};
//!
//! let mut parser = SseParser::new(SseLimits::default());
//! let mut messages = Vec::new();
//! // A Python-style stream: CRLF line ends, a keep-alive comment, and a
//! // blank line whose CR and LF arrive in different reads.
//! let reads: [&[u8]; 3] = [
//!     b"event: message\r\ndata: {\"jsonrpc\":",
//!     b"\"2.0\",\"method\":\"ping\"}\r\n\r",
//!     b"\n: ping\r\n\r\n",
//! ];
//! for read in reads {
//!     parser.feed(read);
//!     while let Some(item) = parser.poll() {
//!         match item? {
//!             SseItem::Event(event) => messages.push(event.data),
//!             SseItem::Comment { text, .. } => assert_eq!(text, "ping"),
//!         }
//!     }
//!     // Safe to pass through: every byte before parser.boundary_offset().
//! }
//! parser.finish();
//! assert_eq!(messages, [r#"{"jsonrpc":"2.0","method":"ping"}"#]);
//! assert!(parser.at_event_boundary()); // the stream did not end mid-event
//! # Ok::<(), sluice_core::sse::SseError>(())
//! ```
//!
//! The encoder ([`encode_event`], [`encode_comment`],
//! [`encode_jsonrpc_message`]) writes blocks this parser reads back as the
//! same event.

use std::fmt;
use std::ops::Range;

mod count;
mod encoder;
mod parser;

pub use count::EventCounter;

pub use encoder::{
    EncodeError, OutgoingEvent, encode_comment, encode_event, encode_jsonrpc_message,
    encode_jsonrpc_message_with_id, encode_jsonrpc_message_with_text_id, encode_prime,
};
pub use parser::SseParser;

/// Resource limits of one [`SseParser`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SseLimits {
    /// Largest raw block (the bytes between two boundaries, blank line
    /// included) the parser accepts before failing with
    /// [`SseError::EventTooLarge`]. This bounds every buffer the parser keeps:
    /// the pending line, the data buffer and the event type. Comment and
    /// field lines without a blank line count too, since they belong to the
    /// block in progress.
    pub max_event_bytes: usize,
}

impl Default for SseLimits {
    /// 16 MiB per block: room for a large tool result, small enough to bound
    /// a hostile upstream.
    fn default() -> Self {
        SseLimits {
            max_event_bytes: 16 * 1024 * 1024,
        }
    }
}

/// One thing the parser found in the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseItem {
    /// A dispatched event (a block whose data buffer was not empty).
    Event(SseEvent),
    /// A comment line (`:` first). Reported so keep-alives are visible; the
    /// bytes also belong to the enclosing block, so forward by
    /// [`SseParser::boundary_offset`], not by comment spans.
    Comment {
        /// The text after the colon, with one leading space removed
        /// (`": ping"` gives `"ping"`), invalid UTF-8 replaced by U+FFFD.
        text: String,
        /// Stream offsets of the line: from its first byte through the first
        /// byte of its line end (for CRLF, the CR; the LF is reached later
        /// and stays out of the span because the comment is reported as soon
        /// as the CR arrives).
        span: Range<u64>,
    },
}

/// A dispatched event, as the WHATWG `EventSource` would see it, plus where
/// it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event` field, or `"message"` when the block had none (or an empty one).
    pub event_type: String,
    /// The `data` lines joined with LF.
    pub data: String,
    /// The last event id at dispatch (persists across events; `""` if none).
    pub id: String,
    /// The last valid `retry` value in this block, if any.
    pub retry: Option<u64>,
    /// Absolute stream offsets of the raw block: from the first byte after
    /// the previous block up to and including the first byte of its
    /// terminating blank line. If that blank line is a CRLF, the LF is not in
    /// this span but starts the next block (the event is emitted when the CR
    /// arrives, before anyone can know an LF follows). Blocks that
    /// dispatch nothing (comments only, `id`/`retry` only) lie between two
    /// event spans; the bytes of one span fed alone to a parser resumed with
    /// the previous id give this event back.
    pub span: Range<u64>,
}

/// Why the parser stopped. Errors are sticky: after one, the parser ignores
/// further input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SseError {
    /// A block grew past [`SseLimits::max_event_bytes`] (peer error).
    EventTooLarge {
        /// The configured limit.
        limit: usize,
    },
}

impl fmt::Display for SseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SseError::EventTooLarge { limit } => {
                write!(f, "SSE event larger than the limit of {limit} bytes")
            }
        }
    }
}

impl std::error::Error for SseError {}
