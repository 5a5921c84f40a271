//! The MCP stdio transport's framing, sans-IO: newline-delimited JSON-RPC
//! on a child process's stdin and stdout.
//!
//! MCP (*Transports*, "stdio", 2025-03-26 and later): messages are
//! delimited by newlines and must not contain embedded newlines; the server
//! must not write anything to stdout that is not a valid MCP message, and
//! may log to stderr. Servers in the field break the middle rule: they print
//! banners, warnings and progress bars to stdout. So a reader must tell a
//! message from noise without ever reading one as the other:
//!
//! | a line on stdout | becomes |
//! |---|---|
//! | empty, or only spaces, tabs and `\r` | nothing |
//! | its first byte past leading whitespace is `{` or `[`, valid UTF-8 | [`Item::Message`] (the bytes, trimmed; whether they are JSON-RPC is the next layer's question) |
//! | the same, not valid UTF-8 | [`Item::Refused`]`(`[`LineError::InvalidUtf8`]`)`: a message nobody may read |
//! | anything else | [`Item::Noise`] (skipped and counted; the first line of a burst is kept, cut, for the log) |
//! | longer than [`StdioLimits::max_line`] before its newline | [`Item::Refused`]`(`[`LineError::TooLong`]`)` once, and the rest of the line is dropped as it arrives |
//!
//! A last line without its newline is read at [`LineReader::finish`] (the
//! child exited). Lines end at LF; a CR before it is dropped.
//!
//! In shared mode one child serves many client sessions: [`IdRewriter`]
//! gives each client request a child id of its own and brings the answer
//! back to the session that asked, with the client's id as it wrote it.
//!
//! Writing is [`encode_message`]: a JSON text can only hold a raw CR or LF
//! as whitespace between tokens (inside a string they must be escaped), so
//! a pretty-printed message becomes one line by turning those bytes into
//! spaces, with no parse and no change of meaning.
//!
//! ```
//! use sluice_core::stdio::{Item, LineReader, StdioLimits};
//! let mut reader = LineReader::new(StdioLimits::default());
//! reader.feed(b"Server ready on stdio\n{\"jsonrpc\":\"2.0\",\"id\":1,\"res");
//! reader.feed(b"ult\":{}}\r\n");
//! assert!(matches!(reader.poll(), Some(Item::Noise(n)) if n.first_of_burst));
//! assert_eq!(
//!     reader.poll(),
//!     Some(Item::Message(br#"{"jsonrpc":"2.0","id":1,"result":{}}"#.to_vec().into()))
//! );
//! assert_eq!(reader.poll(), None);
//! assert_eq!(reader.noise_lines(), 1);
//! ```

mod bridge;
mod error;
mod ids;

use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

use bytes::Bytes;

use crate::jsonrpc;
use crate::upstream::{AnswerPart, Request};

pub use bridge::{Bridge, Note, Output, RESUME_GRACE, SESSION_VERSIONS};
pub use error::StdioError;
pub use ids::{IdRewriter, Owed, Unrouted};

/// How client sessions map to children.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StdioMode {
    /// One child serves every client session of the route: sluice
    /// initializes it once and answers each client's `initialize` itself;
    /// ids and progress tokens are rewritten so sessions never collide.
    Shared,
    /// Each client session gets a child of its own, opened by the client's
    /// own `initialize`; the session ends with it.
    PerSession,
}

/// Configuration of a route's stdio bridges.
#[derive(Debug, Clone)]
pub struct StdioConfig {
    /// Shared or per-session.
    pub mode: StdioMode,
    /// The framing's bounds.
    pub limits: StdioLimits,
    /// Bounds of the JSON-RPC messages read.
    pub json: jsonrpc::Limits,
    /// How long the child may take to answer `initialize`.
    pub init_timeout: Duration,
    /// A session with no client stream for this long is forgotten (per
    /// session: its child ended). `None`: never.
    pub session_idle: Option<Duration>,
    /// Shared mode: the first restart's delay, doubled after each failure
    /// in a row.
    pub restart_backoff: Duration,
    /// The longest delay between restarts.
    pub restart_backoff_max: Duration,
    /// Most requests held while the child starts.
    pub max_waiting: usize,
    /// Most client sessions the bridge keeps (shared mode; a per-session
    /// bridge has one). Past it a new session is refused with 503.
    pub max_sessions: usize,
    /// Shared mode: the `protocolVersion` sluice asks the child for.
    pub protocol_version: String,
}

/// The default [`StdioConfig::init_timeout`]: 60 s (a first `npx -y` or
/// `uvx` downloads the server before it can answer).
pub const DEFAULT_INIT_TIMEOUT: Duration = Duration::from_secs(60);
/// The default [`StdioConfig::session_idle`]: 30 min.
pub const DEFAULT_SESSION_IDLE: Duration = Duration::from_secs(30 * 60);
/// The default [`StdioConfig::restart_backoff_max`]: 30 s.
pub const DEFAULT_RESTART_BACKOFF_MAX: Duration = Duration::from_secs(30);

impl Default for StdioConfig {
    /// Shared; 60 s to initialize; sessions idle for 30 min are forgotten;
    /// restarts after 100 ms, doubling up to 30 s; 1024 requests may wait;
    /// 4096 sessions.
    fn default() -> Self {
        StdioConfig {
            mode: StdioMode::Shared,
            limits: StdioLimits::default(),
            json: jsonrpc::Limits::default(),
            init_timeout: DEFAULT_INIT_TIMEOUT,
            session_idle: Some(DEFAULT_SESSION_IDLE),
            restart_backoff: Duration::from_millis(100),
            restart_backoff_max: DEFAULT_RESTART_BACKOFF_MAX,
            max_waiting: 1024,
            max_sessions: 4096,
            protocol_version: SESSION_VERSIONS[SESSION_VERSIONS.len() - 1].to_owned(),
        }
    }
}

/// Which bridge serves a request: [`session_of`](crate::upstream::session_of) (its `Mcp-Session-Id`, or
/// a new session for an `initialize`).
pub use crate::upstream::{SessionOf as Dispatch, session_of as dispatch};

/// The whole answer to a request no bridge takes (`e`: too many
/// processes, shutting down…): `e`'s status and a JSON-RPC error with the
/// request's id (`null` for anything but one request).
pub fn refusal(req: &Request, json: &jsonrpc::Limits, e: &StdioError) -> AnswerPart {
    bridge::error_part(req, json, e, None)
}

/// The answer for a session id no bridge knows: 404 (the client starts a
/// new session, as the spec says), with the request's id.
pub fn unknown_session(req: &Request, json: &jsonrpc::Limits) -> AnswerPart {
    bridge::unknown_session(req, json)
}

/// Bounds of the framing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StdioLimits {
    /// The longest line (a message) accepted, newline excluded. 16 MiB by
    /// default, the largest JSON-RPC message the exchange accepts.
    pub max_line: usize,
}

impl Default for StdioLimits {
    fn default() -> Self {
        StdioLimits { max_line: 16 << 20 }
    }
}

/// How much of a noise line is kept for the log.
pub const NOISE_EXCERPT: usize = 160;

/// A line of stdout that is not a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Noise {
    /// The line's start, lossily decoded, at most [`NOISE_EXCERPT`] bytes
    /// (empty unless `first_of_burst`).
    pub excerpt: String,
    /// The first noise line since the last message (or the start): the
    /// one to log; the rest of a burst is only counted.
    pub first_of_burst: bool,
}

/// Why a line that looked like a message was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineError {
    /// The line grew past the limit before its newline; the rest of it is
    /// dropped.
    TooLong {
        /// [`StdioLimits::max_line`].
        limit: usize,
    },
    /// The line is not valid UTF-8 (MCP messages are UTF-8 JSON).
    InvalidUtf8,
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LineError::TooLong { limit } => write!(
                f,
                "the server wrote a line longer than {limit} bytes on stdout; it was dropped"
            ),
            LineError::InvalidUtf8 => {
                f.write_str("the server wrote a message that is not valid UTF-8; it was dropped")
            }
        }
    }
}

impl std::error::Error for LineError {}

/// What one line of stdout is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A message: one line, whitespace around it trimmed, UTF-8.
    Message(Bytes),
    /// Not a message; skipped.
    Noise(Noise),
    /// A line that may have been a message and cannot be read.
    Refused(LineError),
}

/// Splits a child's stdout into [`Item`]s. Feed what the pipe gives, in any
/// pieces; poll until `None`.
#[derive(Debug)]
pub struct LineReader {
    limits: StdioLimits,
    /// The line being read.
    line: Vec<u8>,
    /// Dropping an overlong line until its newline.
    dropping: bool,
    items: VecDeque<Item>,
    in_burst: bool,
    noise_lines: u64,
}

impl LineReader {
    /// A reader with `limits`.
    pub fn new(limits: StdioLimits) -> Self {
        LineReader {
            limits,
            line: Vec::new(),
            dropping: false,
            items: VecDeque::new(),
            in_burst: false,
            noise_lines: 0,
        }
    }

    /// Bytes from the child's stdout.
    pub fn feed(&mut self, mut input: &[u8]) {
        while !input.is_empty() {
            let newline = memchr::memchr(b'\n', input);
            let (piece, ends) = match newline {
                Some(at) => (&input[..at], true),
                None => (input, false),
            };
            input = match newline {
                Some(at) => &input[at + 1..],
                None => &[],
            };
            if !self.dropping {
                if self.line.len() + piece.len() > self.limits.max_line {
                    self.dropping = true;
                    self.line = Vec::new();
                    // Reported on its own: it ends a burst of noise too.
                    self.in_burst = false;
                    self.items.push_back(Item::Refused(LineError::TooLong {
                        limit: self.limits.max_line,
                    }));
                } else {
                    self.line.extend_from_slice(piece);
                }
            }
            if ends {
                if self.dropping {
                    self.dropping = false;
                } else {
                    let line = std::mem::take(&mut self.line);
                    self.judge(line);
                }
            }
        }
    }

    /// The child's stdout ended: a last line without its newline is read
    /// now (an overlong one stays dropped).
    pub fn finish(&mut self) {
        if !self.dropping && !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.judge(line);
        }
        self.dropping = false;
    }

    /// The next item, in the order the lines came.
    pub fn poll(&mut self) -> Option<Item> {
        let item = self.items.pop_front();
        if self.items.is_empty() && self.items.capacity() > 0 {
            // An idle child's reader holds no spare buffer.
            self.items = VecDeque::new();
        }
        item
    }

    /// Noise lines skipped so far.
    pub fn noise_lines(&self) -> u64 {
        self.noise_lines
    }

    /// Bytes of an unfinished line held now (at most the limit).
    pub fn buffered(&self) -> usize {
        self.line.len()
    }

    fn judge(&mut self, line: Vec<u8>) {
        let start = line.iter().position(|b| !is_space(*b));
        let Some(start) = start else {
            return; // blank
        };
        let end = line
            .iter()
            .rposition(|b| !is_space(*b))
            .map_or(start, |e| e + 1);
        let text = &line[start..end];
        if matches!(text[0], b'{' | b'[') {
            if std::str::from_utf8(text).is_err() {
                self.items.push_back(Item::Refused(LineError::InvalidUtf8));
            } else {
                let message = if start == 0 && end == line.len() {
                    Bytes::from(line)
                } else {
                    Bytes::copy_from_slice(text)
                };
                self.items.push_back(Item::Message(message));
            }
            self.in_burst = false;
            return;
        }
        self.noise_lines += 1;
        let first_of_burst = !std::mem::replace(&mut self.in_burst, true);
        let excerpt = if first_of_burst {
            let cut = text.len().min(NOISE_EXCERPT);
            String::from_utf8_lossy(&text[..cut]).into_owned()
        } else {
            String::new()
        };
        self.items.push_back(Item::Noise(Noise {
            excerpt,
            first_of_burst,
        }));
    }
}

/// Whitespace around a line: JSON's own (space, tab, CR), LF aside.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r')
}

/// One message as a line for a child's stdin: `json` (a JSON text) with
/// every raw CR or LF turned into a space — in valid JSON they can only be
/// whitespace between tokens — and a newline appended.
pub fn encode_message(json: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(json.len() + 1);
    out.extend(json.iter().map(|&b| match b {
        b'\n' | b'\r' => b' ',
        b => b,
    }));
    out.push(b'\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(reader: &mut LineReader) -> Vec<Item> {
        std::iter::from_fn(|| reader.poll()).collect()
    }

    fn message(s: &str) -> Item {
        Item::Message(Bytes::copy_from_slice(s.as_bytes()))
    }

    #[test]
    fn messages_noise_and_blank_lines() {
        let mut r = LineReader::new(StdioLimits::default());
        r.feed(b"\n  \r\n{\"a\":1}\nStarting server...\nWARN: x\n[1,2]\r\n  {\"b\":2}  \n");
        let got = items(&mut r);
        assert_eq!(got.len(), 5, "{got:?}");
        assert_eq!(got[0], message(r#"{"a":1}"#));
        assert_eq!(
            got[1],
            Item::Noise(Noise {
                excerpt: "Starting server...".into(),
                first_of_burst: true
            })
        );
        assert_eq!(
            got[2],
            Item::Noise(Noise {
                excerpt: String::new(),
                first_of_burst: false
            })
        );
        assert_eq!(got[3], message("[1,2]"));
        assert_eq!(got[4], message(r#"{"b":2}"#));
        assert_eq!(r.noise_lines(), 2);
        // A message ends a burst: the next noise line is logged again.
        r.feed(b"again\n");
        assert!(
            matches!(r.poll(), Some(Item::Noise(n)) if n.first_of_burst && n.excerpt == "again")
        );
    }

    #[test]
    fn any_split_gives_the_same_items() {
        let input: &[u8] = b"banner\n{\"x\":\"\xc3\xa9\"}\r\n{\"bad\":\"\xff\"}\n\n[]\npartial";
        let mut whole = LineReader::new(StdioLimits::default());
        whole.feed(input);
        whole.finish();
        let want = items(&mut whole);
        assert_eq!(want.len(), 5, "{want:?}");
        assert_eq!(want[2], Item::Refused(LineError::InvalidUtf8));
        assert!(matches!(&want[4], Item::Noise(n) if n.excerpt == "partial"));
        for at in 0..=input.len() {
            for at2 in at..=input.len() {
                let mut r = LineReader::new(StdioLimits::default());
                r.feed(&input[..at]);
                r.feed(&input[at..at2]);
                r.feed(&input[at2..]);
                r.finish();
                assert_eq!(items(&mut r), want, "split at {at}, {at2}");
            }
        }
    }

    #[test]
    fn an_overlong_line_is_refused_once_and_dropped_to_its_newline() {
        let mut r = LineReader::new(StdioLimits { max_line: 8 });
        r.feed(b"{\"a\":");
        r.feed(b"12345");
        assert_eq!(r.buffered(), 0, "nothing past the limit is kept");
        r.feed(b"6789}\n{\"b\":2}\n");
        assert_eq!(
            items(&mut r),
            [
                Item::Refused(LineError::TooLong { limit: 8 }),
                message(r#"{"b":2}"#)
            ]
        );
        // Exactly the limit is fine.
        r.feed(b"{\"c\":33}\n");
        assert_eq!(items(&mut r), [message(r#"{"c":33}"#)]);
        // An overlong last line stays dropped at the end.
        r.feed(b"{\"d\":4444444");
        r.finish();
        assert_eq!(
            items(&mut r),
            [Item::Refused(LineError::TooLong { limit: 8 })]
        );
    }

    #[test]
    fn a_last_line_without_its_newline_is_read_at_the_end() {
        let mut r = LineReader::new(StdioLimits::default());
        r.feed(br#"{"id":1,"result":{}}"#);
        assert_eq!(r.poll(), None);
        r.finish();
        assert_eq!(items(&mut r), [message(r#"{"id":1,"result":{}}"#)]);
    }

    #[test]
    fn a_noise_excerpt_is_cut() {
        let mut r = LineReader::new(StdioLimits::default());
        let long = "x".repeat(1000);
        r.feed(format!("{long}\n").as_bytes());
        assert!(matches!(r.poll(), Some(Item::Noise(n)) if n.excerpt.len() == NOISE_EXCERPT));
    }

    #[test]
    fn encoding_makes_one_line_without_changing_the_message() {
        let pretty = b"{\r\n  \"jsonrpc\": \"2.0\",\n  \"params\": {\"text\": \"a\\nb\"}\n}";
        let line = encode_message(pretty);
        assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
        assert!(line.ends_with(b"\n"));
        let a: serde_json::Value = serde_json::from_slice(pretty).unwrap();
        let b: serde_json::Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(a, b);
        let mut r = LineReader::new(StdioLimits::default());
        r.feed(&line);
        assert!(matches!(r.poll(), Some(Item::Message(_))));
    }
}
