//! The incremental event-stream parser.

use std::collections::VecDeque;
use std::mem;

use memchr::{memchr, memchr2};

use super::{SseError, SseEvent, SseItem, SseLimits};

const BOM: [u8; 3] = [0xEF, 0xBB, 0xBF];

/// A line buffer that grew past this is freed after use, so one huge line
/// does not pin its memory for the rest of a long-lived stream.
const KEEP_LINE_CAPACITY: usize = 64 * 1024;

/// Where the stream start stands with respect to the optional BOM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bom {
    /// Still at the very start; this many BOM bytes matched (and held) so far.
    Pending(u8),
    /// Decided: stripped, or absent.
    Done,
}

/// Incremental WHATWG `text/event-stream` parser.
///
/// Feed bytes with [`feed`](Self::feed), in any split, then drain with
/// [`poll`](Self::poll) until it returns `None`; do this after every feed
/// (items queue up until drained). Call [`finish`](Self::finish) at end of
/// stream. The result does not depend on how the input was split.
///
/// Work is linear in the input: each byte is searched for a line end once
/// (with `memchr2`), and only the unterminated tail of a feed is copied.
/// Memory is bounded by [`SseLimits::max_event_bytes`].
#[derive(Debug)]
pub struct SseParser {
    limits: SseLimits,
    /// Bytes consumed so far (absolute offset of the next input byte).
    offset: u64,
    /// Start of the block in progress; the end of the last completed block.
    block_start: u64,
    /// Start of the line in progress.
    line_start: u64,
    /// The unterminated line carried over from earlier feeds. It holds no
    /// CR or LF, so it is never searched again.
    line: Vec<u8>,
    /// The previous line ended with CR: an LF right after it is the rest of
    /// a CRLF, not an empty line.
    skip_lf: bool,
    bom: Bom,
    /// A field or comment line arrived since the last blank line.
    block_has_lines: bool,
    data: Vec<u8>,
    event_type: Vec<u8>,
    block_retry: Option<u64>,
    /// The spec's "last event ID buffer" (set by `id` lines).
    id_buffer: String,
    /// The spec's "last event ID string" (copied from the buffer at each
    /// blank line); what a client would send as `Last-Event-ID`.
    last_event_id: String,
    reconnection_time: Option<u64>,
    queue: VecDeque<SseItem>,
    error: Option<SseError>,
    error_reported: bool,
    finished: bool,
    /// Set by `finish`: the stream ended inside a block.
    truncated: bool,
    scanned: u64,
}

impl SseParser {
    /// A parser for a new stream.
    pub fn new(limits: SseLimits) -> Self {
        SseParser {
            limits,
            offset: 0,
            block_start: 0,
            line_start: 0,
            line: Vec::new(),
            skip_lf: false,
            bom: Bom::Pending(0),
            block_has_lines: false,
            data: Vec::new(),
            event_type: Vec::new(),
            block_retry: None,
            id_buffer: String::new(),
            last_event_id: String::new(),
            reconnection_time: None,
            queue: VecDeque::new(),
            error: None,
            error_reported: false,
            finished: false,
            truncated: false,
            scanned: 0,
        }
    }

    /// A parser for a stream resumed with `Last-Event-ID: last_event_id`:
    /// events carry that id until the stream sets another.
    pub fn resume(limits: SseLimits, last_event_id: &str) -> Self {
        let mut parser = SseParser::new(limits);
        parser.id_buffer.push_str(last_event_id);
        parser.last_event_id.push_str(last_event_id);
        parser
    }

    /// Push the next bytes of the stream. Never blocks, never panics; input
    /// after an error or after [`finish`](Self::finish) is ignored.
    pub fn feed(&mut self, input: &[u8]) {
        if self.error.is_some() || self.finished {
            return;
        }
        let base = self.offset;
        let mut pos = 0;
        if let Bom::Pending(matched) = self.bom {
            pos = self.strip_bom(input, matched);
            self.scanned += pos as u64;
        }
        while pos < input.len() {
            if self.skip_lf {
                self.skip_lf = false;
                if input[pos] == b'\n' {
                    pos += 1;
                    self.scanned += 1;
                    let end = base + pos as u64;
                    self.line_start = end;
                    if self.check_limit(end).is_err() {
                        return;
                    }
                    continue;
                }
            }
            let rest = &input[pos..];
            match memchr2(b'\n', b'\r', rest) {
                Some(i) => {
                    self.scanned += i as u64 + 1;
                    let end = base + (pos + i + 1) as u64;
                    if self.check_limit(end).is_err() {
                        return;
                    }
                    self.skip_lf = rest[i] == b'\r';
                    if self.line.is_empty() {
                        self.complete_line(&rest[..i], end);
                    } else {
                        let mut line = mem::take(&mut self.line);
                        line.extend_from_slice(&rest[..i]);
                        self.complete_line(&line, end);
                        if line.capacity() <= KEEP_LINE_CAPACITY {
                            line.clear();
                            self.line = line;
                        }
                    }
                    self.line_start = end;
                    pos += i + 1;
                }
                None => {
                    self.scanned += rest.len() as u64;
                    pos = input.len();
                    if self.check_limit(base + pos as u64).is_err() {
                        return;
                    }
                    self.line.extend_from_slice(rest);
                }
            }
        }
        if self.bom != Bom::Done {
            // Held BOM bytes count toward the block like any other.
            let _ = self.check_limit(base + pos as u64);
        }
        self.offset = base + pos as u64;
    }

    /// End of stream. A block without its blank line is discarded (the spec
    /// never dispatches it); [`at_event_boundary`](Self::at_event_boundary)
    /// then tells whether that happened.
    pub fn finish(&mut self) {
        if self.finished {
            return;
        }
        self.truncated = !self.at_event_boundary();
        self.finished = true;
        self.line = Vec::new();
        self.data = Vec::new();
        self.event_type = Vec::new();
        self.block_retry = None;
    }

    /// The next item, in stream order; `None` when drained. After an error
    /// the items before it come first, then the error once, then `None`.
    #[must_use]
    pub fn poll(&mut self) -> Option<Result<SseItem, SseError>> {
        if let Some(item) = self.queue.pop_front() {
            return Some(Ok(item));
        }
        match self.error {
            Some(error) if !self.error_reported => {
                self.error_reported = true;
                Some(Err(error))
            }
            _ => None,
        }
    }

    /// Whether an injected event may be written to the client now, after
    /// all bytes fed so far: no line is partly received, and no field or
    /// comment line arrived since the last blank line (a held partial BOM
    /// counts as a partial line).
    ///
    /// Right after a blank line that ended with CR this is `true` even
    /// though an LF may still follow: an event written between that CR and
    /// LF is read correctly, and the stray LF then reads as an empty line
    /// that dispatches nothing (the buffers are empty after the injected
    /// event). Holding the boundary back for the LF would delay it on
    /// CR-only streams forever.
    ///
    /// After [`finish`](Self::finish): whether the stream ended at a
    /// boundary (`false` means an incomplete event was discarded). After an
    /// error: `false`.
    pub fn at_event_boundary(&self) -> bool {
        if self.finished {
            return !self.truncated;
        }
        self.error.is_none()
            && matches!(self.bom, Bom::Done | Bom::Pending(0))
            && self.line.is_empty()
            && !self.block_has_lines
    }

    /// The stream offset just after the last completed block (its blank
    /// line's first byte): every byte before it belongs to finished blocks
    /// and may be forwarded. Offsets count raw input bytes, BOM included.
    pub fn boundary_offset(&self) -> u64 {
        self.block_start
    }

    /// The last event id as of the last blank line (the value a client
    /// would send as `Last-Event-ID` when reconnecting), after all bytes fed.
    pub fn last_event_id(&self) -> &str {
        &self.last_event_id
    }

    /// The reconnection time set by the latest valid `retry` line, if any,
    /// even one in a block that dispatched nothing.
    pub fn reconnection_time(&self) -> Option<u64> {
        self.reconnection_time
    }

    /// The error that stopped the parser, if any (sticky).
    pub fn error(&self) -> Option<SseError> {
        self.error
    }

    /// Total stream bytes consumed so far.
    pub fn consumed_bytes(&self) -> u64 {
        self.offset
    }

    /// Bytes examined so far, counting every pass (line-end search, colon
    /// search, UTF-8 validation). Tests use it to check that work stays
    /// linear in the input however it is split.
    pub fn scanned_bytes(&self) -> u64 {
        self.scanned
    }

    /// Match the optional BOM at the very start; returns how many input
    /// bytes it took. On a mismatch the held BOM prefix becomes the start of
    /// the first line.
    fn strip_bom(&mut self, input: &[u8], mut matched: u8) -> usize {
        for (pos, &byte) in input.iter().enumerate() {
            if byte != BOM[usize::from(matched)] {
                self.line.extend_from_slice(&BOM[..usize::from(matched)]);
                self.bom = Bom::Done;
                return pos;
            }
            matched += 1;
            if usize::from(matched) == BOM.len() {
                self.bom = Bom::Done;
                self.line_start = BOM.len() as u64;
                return pos + 1;
            }
        }
        self.bom = Bom::Pending(matched);
        input.len()
    }

    /// Fail if the block in progress would extend to `end`, past the limit.
    fn check_limit(&mut self, end: u64) -> Result<(), SseError> {
        if end - self.block_start <= self.limits.max_event_bytes as u64 {
            return Ok(());
        }
        let error = SseError::EventTooLarge {
            limit: self.limits.max_event_bytes,
        };
        self.error = Some(error);
        // Nothing more will be parsed: release the buffers now.
        self.line = Vec::new();
        self.data = Vec::new();
        self.event_type = Vec::new();
        Err(error)
    }

    /// One line, without its line end; `end` is the offset after its
    /// terminating CR or LF.
    fn complete_line(&mut self, line: &[u8], end: u64) {
        if line.is_empty() {
            self.dispatch(end);
            return;
        }
        self.block_has_lines = true;
        let colon = memchr(b':', line);
        self.scanned += colon.map_or(line.len(), |c| c + 1) as u64;
        match colon {
            Some(0) => {
                let text = lossy(strip_one_space(&line[1..]));
                let span = self.line_start..end;
                self.queue.push_back(SseItem::Comment { text, span });
            }
            Some(c) => self.field(&line[..c], strip_one_space(&line[c + 1..])),
            None => self.field(line, b""),
        }
    }

    fn field(&mut self, name: &[u8], value: &[u8]) {
        match name {
            b"event" => {
                self.event_type.clear();
                self.event_type.extend_from_slice(value);
            }
            b"data" => {
                self.data.extend_from_slice(value);
                self.data.push(b'\n');
            }
            b"id" => {
                self.scanned += value.len() as u64;
                if memchr(0, value).is_none() {
                    self.id_buffer = lossy(value);
                }
            }
            b"retry" => {
                self.scanned += value.len() as u64;
                if let Some(millis) = parse_retry(value) {
                    self.reconnection_time = Some(millis);
                    self.block_retry = Some(millis);
                }
            }
            _ => {}
        }
    }

    /// A blank line ending at `end`: close the block, and dispatch an event
    /// unless the data buffer is empty.
    fn dispatch(&mut self, end: u64) {
        let span = self.block_start..end;
        self.block_start = end;
        self.block_has_lines = false;
        self.last_event_id.clone_from(&self.id_buffer);
        let retry = self.block_retry.take();
        if self.data.is_empty() {
            self.event_type.clear();
            return;
        }
        // Every data line appended an LF; the spec drops the last one.
        self.data.pop();
        let data = mem::take(&mut self.data);
        self.scanned += data.len() as u64;
        let data = match String::from_utf8(data) {
            Ok(text) => text,
            Err(err) => String::from_utf8_lossy(err.as_bytes()).into_owned(),
        };
        let event_type = if self.event_type.is_empty() {
            String::from("message")
        } else {
            lossy(&self.event_type)
        };
        self.event_type.clear();
        self.queue.push_back(SseItem::Event(SseEvent {
            event_type,
            data,
            id: self.last_event_id.clone(),
            retry,
            span,
        }));
    }
}

/// UTF-8 decode with U+FFFD for each maximal invalid subpart, as the WHATWG
/// decoder does. Every byte that splits lines or fields is ASCII, so
/// decoding piece by piece gives the same text as decoding the whole stream.
fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn strip_one_space(value: &[u8]) -> &[u8] {
    value.strip_prefix(b" ").unwrap_or(value)
}

/// `retry` counts only when the value is one or more ASCII digits; a value
/// too large for `u64` is ignored too.
fn parse_retry(value: &[u8]) -> Option<u64> {
    if value.is_empty() {
        return None;
    }
    value.iter().try_fold(0u64, |acc, &b| {
        if !b.is_ascii_digit() {
            return None;
        }
        acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    })
}
