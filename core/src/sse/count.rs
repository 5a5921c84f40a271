//! Counting a stream's events without parsing them: what an SSE answer
//! passed through unread (no hooks, nothing owed) costs to count.

use memchr::memchr2;

/// A line's field name when it is `data` (the only field whose lines make
/// a block an event); the first line may open with a byte order mark.
const DATA: &[u8] = b"data";
const BOM_DATA: &[u8] = b"\xEF\xBB\xBFdata";

/// How far the line in progress is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Head {
    /// No byte of it yet: a line end here ends a blank line.
    Start,
    /// Its first `matched` bytes are those of `name` (all of them: the next
    /// byte decides).
    Name { name: &'static [u8], matched: u8 },
    /// A `data` line.
    Data,
    /// Any other line (a comment, another field).
    Other,
}

/// Counts the events an `EventSource` would dispatch from a stream (blocks
/// with a `data` line, ended by a blank line), fed in any split, without
/// keeping any of it: per line it finds the line end with `memchr2` and
/// looks at its first five bytes at most (eight on a first line opening
/// with a byte order mark), so it costs one scan of the stream and no
/// allocation. It agrees with [`super::SseParser`] on every
/// stream the parser reads whole; past the parser's limit it goes on
/// counting, as a client would.
#[derive(Debug, Clone)]
pub struct EventCounter {
    head: Head,
    /// The previous line ended with CR: an LF next is the rest of a CRLF.
    skip_lf: bool,
    /// The stream's first line is in progress (it may open with a BOM).
    first_line: bool,
    /// A `data` line arrived since the last blank line.
    block_has_data: bool,
    events: u64,
}

impl Default for EventCounter {
    fn default() -> Self {
        EventCounter {
            head: Head::Start,
            skip_lf: false,
            first_line: true,
            block_has_data: false,
            events: 0,
        }
    }
}

impl EventCounter {
    /// Count the events that the next bytes of the stream complete.
    pub fn feed(&mut self, input: &[u8]) {
        let mut pos = 0;
        while pos < input.len() {
            if self.skip_lf {
                self.skip_lf = false;
                if input[pos] == b'\n' {
                    pos += 1;
                    continue;
                }
            }
            let rest = &input[pos..];
            match memchr2(b'\n', b'\r', rest) {
                Some(i) => {
                    self.line_bytes(&rest[..i]);
                    self.line_end();
                    self.skip_lf = rest[i] == b'\r';
                    pos += i + 1;
                }
                None => {
                    self.line_bytes(rest);
                    pos = input.len();
                }
            }
        }
    }

    /// Events completed so far.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// Bytes of the line in progress (no CR or LF): only its first ones
    /// are looked at.
    fn line_bytes(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.head = match self.head {
                Head::Start => {
                    let name = if self.first_line && b == BOM_DATA[0] {
                        BOM_DATA
                    } else {
                        DATA
                    };
                    Self::next(name, 0, b)
                }
                Head::Name { name, matched } => Self::next(name, matched, b),
                Head::Data | Head::Other => return,
            };
        }
    }

    /// The head after byte `b`, `matched` bytes into `name`.
    fn next(name: &'static [u8], matched: u8, b: u8) -> Head {
        match name.get(usize::from(matched)) {
            Some(&want) if want == b => Head::Name {
                name,
                matched: matched + 1,
            },
            Some(_) => Head::Other,
            // The whole name, then its colon.
            None if b == b':' => Head::Data,
            None => Head::Other,
        }
    }

    fn line_end(&mut self) {
        match self.head {
            Head::Start if self.block_has_data => {
                self.events += 1;
                self.block_has_data = false;
            }
            Head::Start | Head::Other => {}
            // `data` alone is a data line with an empty value.
            Head::Name { name, matched } if usize::from(matched) == name.len() => {
                self.block_has_data = true;
            }
            Head::Name { .. } => {}
            Head::Data => self.block_has_data = true,
        }
        self.head = Head::Start;
        self.first_line = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sse::{SseItem, SseLimits, SseParser};

    /// Streams whose events the parser and the counter must agree on.
    const STREAMS: &[&[u8]] = &[
        b"",
        b"data: x\n\n",
        b"data: x\n",
        b"data\n\n",
        b"data:\n\n",
        b"datum: x\n\ndat\n\ndata : x\n\n",
        b": keepalive\n\n: ping\r\n\r\n",
        b"id: 1\nretry: 5\n\nevent: e\n\n",
        b"event: message\r\ndata: {\"a\":1}\r\ndata: 2\r\n\r\nid: 3\r\ndata: y\r\n\r\n",
        b"data: a\r\rdata: b\r\r\n\ndata: c\n\r\n",
        b"\xEF\xBB\xBFdata: bom\n\ndata: x\n\n",
        b"\xEF\xBB\xBF\ndata: x\n\n\xEF\xBB\xBFdata: not first\n\n",
        b"\xEF\xBBdata: half a bom\n\n",
        b"data: x\n\n\n\n\ndata: y\n: c\n\ndata: z",
        b"id: 0\ndata:\n\n",
    ];

    fn parsed(stream: &[u8]) -> u64 {
        let mut parser = SseParser::new(SseLimits::default());
        parser.feed(stream);
        let mut n = 0;
        while let Some(item) = parser.poll() {
            if let Ok(SseItem::Event(_)) = item {
                n += 1;
            }
        }
        n
    }

    fn counted<'a>(pieces: impl IntoIterator<Item = &'a [u8]>) -> u64 {
        let mut counter = EventCounter::default();
        for piece in pieces {
            counter.feed(piece);
        }
        counter.events()
    }

    #[test]
    fn counts_what_the_parser_dispatches_in_any_split() {
        for &stream in STREAMS {
            let want = parsed(stream);
            let shown = String::from_utf8_lossy(stream);
            assert_eq!(counted([stream]), want, "whole: {shown:?}");
            assert_eq!(counted(stream.chunks(1)), want, "byte by byte: {shown:?}");
            for at in 0..=stream.len() {
                let (a, b) = stream.split_at(at);
                assert_eq!(counted([a, b]), want, "split at {at}: {shown:?}");
            }
        }
    }

    #[test]
    fn counts_events_not_comments_or_bare_fields() {
        assert_eq!(
            counted([&b"data: 1\n\n: keepalive\n\nid: 2\n\ndata: 3\n\n"[..]]),
            2
        );
    }
}
