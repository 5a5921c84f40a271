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

/// Progress through the line being received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LineState {
    /// No byte of this line yet (an LF/CR now means a blank line).
    Idle,
    /// Before the first colon; the field name so far is in `line`.
    Name,
    /// After the colon. `at_start`: no value byte seen yet, so a leading
    /// space may still need stripping.
    Value { field: Field, at_start: bool },
}

/// What a line's value feeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    /// Value streamed straight into the data buffer.
    Data,
    /// Value streamed straight into the event type buffer.
    Event,
    /// Value collected in `line`, applied at the line end (a NUL anywhere
    /// voids it).
    Id,
    /// Value collected in `line`, applied at the line end.
    Retry,
    /// A line starting with `:`; text collected in `line`.
    Comment,
    /// Value dropped as it arrives.
    Unknown,
}

impl Field {
    fn from_name(name: &[u8]) -> Field {
        match name {
            b"" => Field::Comment,
            b"data" => Field::Data,
            b"event" => Field::Event,
            b"id" => Field::Id,
            b"retry" => Field::Retry,
            _ => Field::Unknown,
        }
    }
}

/// Incremental WHATWG `text/event-stream` parser.
///
/// Feed bytes with [`feed`](Self::feed), in any split, then drain with
/// [`poll`](Self::poll) until it returns `None`; do this after every feed
/// (items queue up until drained). Call [`finish`](Self::finish) at end of
/// stream. The result does not depend on how the input was split.
///
/// Work is linear in the input: each byte is searched for a line end once
/// (with `memchr2`) and, up to the first colon, for a colon once. Lines are
/// processed as they arrive rather than buffered whole: a `data` value goes
/// straight into the data buffer, an unknown field's value is dropped, and
/// only a field name, an `id`, `retry` or comment value waits in the line
/// buffer until its line end.
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
    line_state: LineState,
    /// The field name, or the `id`/`retry`/comment value, of the line in
    /// progress. It holds no CR or LF and is never searched again.
    line: Vec<u8>,
    /// The previous line ended with CR: an LF right after it is the rest of
    /// a CRLF, not an empty line.
    skip_lf: bool,
    bom: Bom,
    /// A field or comment line was completed since the last blank line.
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
            line_state: LineState::Idle,
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
            // BOM bytes belong to the first block and count toward its limit.
            if self.check_limit(base + pos as u64).is_err() {
                return;
            }
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
                    if i > 0 {
                        self.line_bytes(&rest[..i]);
                    }
                    self.line_end(end);
                    self.line_start = end;
                    pos += i + 1;
                }
                None => {
                    self.scanned += rest.len() as u64;
                    pos = input.len();
                    if self.check_limit(base + pos as u64).is_err() {
                        return;
                    }
                    self.line_bytes(rest);
                }
            }
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

    /// Lets go of buffer space that holds nothing now: the item queue once
    /// drained, the line, data and event-type buffers when empty. Feeding
    /// grows them again as needed; a long-lived stream that stays quiet
    /// between events (a legacy backend's session stream) calls this after
    /// draining, so that it holds no buffers while it waits.
    pub fn let_go(&mut self) {
        if self.queue.is_empty() && self.queue.capacity() > 0 {
            self.queue = VecDeque::new();
        }
        for buf in [&mut self.line, &mut self.data, &mut self.event_type] {
            if buf.is_empty() && buf.capacity() > 0 {
                *buf = Vec::new();
            }
        }
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
    /// Before the first byte this is `true` too. One caveat: a BOM is only
    /// stripped at the very start of the stream, so if the upstream then
    /// opens with a BOM, an event injected before it pushes the BOM into the
    /// first line; an injector writing first should drop a leading BOM from
    /// the forwarded bytes.
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
            && self.line_state == LineState::Idle
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

    /// Total stream bytes consumed so far (stops advancing at an error).
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
                if matched > 0 {
                    self.line_bytes(&BOM[..usize::from(matched)]);
                }
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

    /// Bytes of the line in progress (non-empty, no CR or LF).
    fn line_bytes(&mut self, mut bytes: &[u8]) {
        if matches!(self.line_state, LineState::Idle | LineState::Name) {
            let colon = memchr(b':', bytes);
            self.scanned += colon.map_or(bytes.len(), |c| c + 1) as u64;
            let Some(c) = colon else {
                self.line.extend_from_slice(bytes);
                self.line_state = LineState::Name;
                return;
            };
            let field = if self.line.is_empty() {
                Field::from_name(&bytes[..c])
            } else {
                self.line.extend_from_slice(&bytes[..c]);
                let field = Field::from_name(&self.line);
                self.line.clear();
                field
            };
            if field == Field::Event {
                // Replacing the type early is invisible: the block can only
                // dispatch after this line ends.
                self.event_type.clear();
            }
            self.line_state = LineState::Value {
                field,
                at_start: true,
            };
            bytes = &bytes[c + 1..];
        }
        if let LineState::Value { field, at_start } = &mut self.line_state {
            if *at_start && !bytes.is_empty() {
                *at_start = false;
                bytes = bytes.strip_prefix(b" ").unwrap_or(bytes);
            }
            match field {
                Field::Data => {
                    // Room for the LF too, so ending the line never
                    // reallocates a large buffer.
                    self.data.reserve(bytes.len() + 1);
                    self.data.extend_from_slice(bytes);
                }
                Field::Event => self.event_type.extend_from_slice(bytes),
                Field::Id | Field::Retry | Field::Comment => self.line.extend_from_slice(bytes),
                Field::Unknown => {}
            }
        }
    }

    /// The line in progress ended; `end` is the offset after its CR or LF.
    fn line_end(&mut self, end: u64) {
        let (field, value_in_line) = match self.line_state {
            LineState::Idle => {
                self.dispatch(end);
                return;
            }
            // No colon: the whole line is the name, the value is empty.
            LineState::Name => (Field::from_name(&self.line), false),
            LineState::Value { field, .. } => (field, true),
        };
        let value: &[u8] = if value_in_line { &self.line } else { b"" };
        match field {
            Field::Data => self.data.push(b'\n'),
            Field::Event => {
                if !value_in_line {
                    self.event_type.clear();
                }
            }
            Field::Id => {
                self.scanned += value.len() as u64;
                if memchr(0, value).is_none() {
                    // In place: ids repeat on every event, keep the allocation.
                    self.id_buffer.clear();
                    self.id_buffer.push_str(&String::from_utf8_lossy(value));
                }
            }
            Field::Retry => {
                self.scanned += value.len() as u64;
                if let Some(millis) = parse_retry(value) {
                    self.reconnection_time = Some(millis);
                    self.block_retry = Some(millis);
                }
            }
            Field::Comment => {
                let text = lossy(value);
                let span = self.line_start..end;
                self.queue.push_back(SseItem::Comment { text, span });
            }
            Field::Unknown => {}
        }
        self.line_state = LineState::Idle;
        self.block_has_lines = true;
        if self.line.capacity() > KEEP_LINE_CAPACITY {
            self.line = Vec::new();
        } else {
            self.line.clear();
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
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_owned(),
        Err(_) => String::from_utf8_lossy(bytes).into_owned(),
    }
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

#[cfg(test)]
mod let_go_tests {
    use super::*;

    #[test]
    fn letting_go_between_feeds_changes_nothing_parsed() {
        let input: &[u8] =
            b"event: endpoint\ndata: /a\n\n: c\nid: 7\nevent: x\ndata: 1\ndata: 2\n\n";
        let mut whole = SseParser::new(SseLimits::default());
        whole.feed(input);
        let expected: Vec<_> = std::iter::from_fn(|| whole.poll()).collect();
        for split in 0..=input.len() {
            let mut p = SseParser::new(SseLimits::default());
            let mut got = Vec::new();
            for part in [&input[..split], &input[split..]] {
                p.feed(part);
                got.extend(std::iter::from_fn(|| p.poll()));
                p.let_go();
            }
            assert_eq!(got, expected, "split at {split}");
        }
        let mut p = SseParser::new(SseLimits::default());
        p.feed(input);
        while p.poll().is_some() {}
        p.let_go();
        assert_eq!(
            (p.queue.capacity(), p.line.capacity(), p.data.capacity()),
            (0, 0, 0)
        );
        assert_eq!(p.event_type.capacity(), 0);
    }
}
