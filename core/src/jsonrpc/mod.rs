//! JSON-RPC 2.0 messages as MCP uses them: classify one message (or a
//! 2025-03-26 batch) in a single validating pass, without building a
//! `serde_json::Value`, and build the answers a proxy sends.
//!
//! ```
//! use sluice_core::jsonrpc::{classify, Classified, Kind, Limits};
//!
//! let body = br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"get_w\u0065ather"}}"#;
//! let Ok(Classified::Single(msg)) = classify(body, &Limits::default()) else { panic!() };
//! assert_eq!(msg.kind, Kind::Request);
//! assert_eq!(msg.method.as_deref(), Some("tools/call"));
//! assert_eq!(msg.id, Some(&b"7"[..]));
//! assert_eq!(msg.name.as_deref(), Some("get_weather"));
//! ```
//!
//! # What is read
//!
//! [`classify`] validates the whole text as JSON and reads only: the kind,
//! `method` (decoded), `id` (raw text), `params._meta.progressToken` (raw
//! text), the name that 2026-07-28's `Mcp-Name` header must match
//! (`params.name` for `tools/call` and `prompts/get`, `params.uri` for
//! `resources/read`, decoded), and the byte spans of `params`, `result`,
//! `error`, `params._meta` and its `traceparent` and `tracestate` (W3C
//! Trace Context in the message, SEP-414; [`meta`] reads and writes them). Ids and tokens stay raw so they can be echoed byte for byte
//! ([`result_message`], [`error_message`], [`RawId`]); names are decoded
//! because that is how the backend will read them: `"tools\/call"` and
//! `"tools/c\u0061ll"` *are* `tools/call`.
//!
//! # Strictness: sluice never reads a message differently from the backend
//!
//! A proxy that runs hooks on some methods is a security boundary: if
//! sluice reads `{"method":"tools/list","method":"tools/call"}` as a list and
//! the backend reads it as a call, the hook on `tools/call` never runs. JSON
//! parsers disagree on exactly the corners RFC 8259 leaves open, so sluice
//! refuses every such corner rather than guess which reading the backend
//! picks. Refusing is always safe (the backend never sees the message);
//! accepting something the backend reads otherwise is not.
//!
//! | input | verdict | why |
//! |---|---|---|
//! | the same key twice in **any** object (compared after unescaping) | parse error | parsers keep the first, the last, or fail; a hook reading `arguments` must see what the tool sees |
//! | nesting deeper than [`Limits::max_depth`] (default 128) | parse error | bounded memory; serde_json stops at 127, others at 1000 or never |
//! | more than [`Limits::max_bytes`] (default 16 MiB) | parse error | bounded work |
//! | a leading UTF-8 BOM | parse error | RFC 8259 §8.1: must not be sent; some parsers skip it, some fail |
//! | invalid UTF-8 anywhere | parse error | lossy decoders would read different text |
//! | a `\u` escape naming a lone surrogate | parse error | not a Unicode scalar value; decoders fail, or substitute U+FFFD, or keep it |
//! | raw control characters in strings, bad escapes, `01`, `1.`, `NaN`, comments, trailing commas | parse error | not JSON |
//! | a number of magnitude ≥ 1e308 | parse error | serde_json fails, JavaScript reads `Infinity`, Python `inf` |
//! | anything but whitespace after the value | parse error | one body, one message |
//! | whitespace (space, tab, CR, LF) around the value | accepted | RFC 8259 |
//! | `"jsonrpc"` missing or not the string `"2.0"` | invalid request | JSON-RPC 2.0 |
//! | `"method"` not a string; `"params"` not an object or array | invalid request | JSON-RPC 2.0 |
//! | request `id` null, bool, object or array | invalid request | JSON-RPC 2.0 / MCP: string or number, never null |
//! | response `id` not string or number; error `id` not string, number, null or absent | invalid request | JSON-RPC 2.0 (MCP lets an error omit the id) |
//! | `method` with `result`/`error`; `result` with `error`; none of the three | invalid request | not a message |
//! | a message or batch element that is not an object; an empty batch | invalid request | JSON-RPC 2.0 |
//! | `tools/call` / `prompts/get` request without a string `params.name`, `resources/read` without a string `params.uri` | invalid params | the hook and `Mcp-Name` need the name; the backend would refuse it anyway |
//! | unknown members | accepted, ignored | JSON-RPC does not forbid them |
//!
//! Numbers are never converted: ids keep their text (`1`, `1.0`, `-0`,
//! `1e5` and `18446744073709551616` are five different ids), so no
//! precision question arises. A batch is classified element by element; one
//! bad element refuses the whole batch (a proxy that cannot read every
//! element cannot promise a hook saw every `tools/call`). Whether a batch is
//! allowed at all (only protocol 2025-03-26) is the caller's decision.
//!
//! When the text is not valid JSON *and* the shape is wrong, the parse error
//! wins: the whole input is validated before a shape error is reported.
//!
//! # Cost
//!
//! One forward pass, linear in the input: strings are skipped with `memchr`,
//! containers live on an explicit stack bounded by `max_depth` (no native
//! recursion), and duplicate keys are found pairwise in small objects and by
//! sorting in large ones. Allocation: two small stacks, the batch vector,
//! and a `String` only for a read name or key that contains escapes.

use std::borrow::Cow;
use std::ops::Range;

mod build;
mod classify;
mod error;
pub mod meta;
mod methods;
mod scan;

pub use build::{
    RawId, error_message, result_message, same_id, write_error_message, write_json_string,
    write_result_message,
};
pub use error::{ClassifyError, codes};
pub use methods::{MCP_METHODS, mcp_method};

/// Bounds on what [`classify`] will read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The deepest nesting of objects and arrays accepted; `{}` is depth 1,
    /// `{"params":{}}` depth 2. Deeper input is [`ClassifyError::TooDeep`].
    pub max_depth: usize,
    /// The longest message accepted, in bytes; longer input is
    /// [`ClassifyError::TooLarge`] (refused before any scanning).
    pub max_bytes: usize,
}

impl Default for Limits {
    /// 128 levels, 16 MiB.
    fn default() -> Self {
        Limits {
            max_depth: 128,
            max_bytes: 16 << 20,
        }
    }
}

/// The four kinds of JSON-RPC message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `method` and `id`: expects an answer.
    Request,
    /// `method` and no `id` member: expects none.
    Notification,
    /// `id` and `result`.
    Response,
    /// `error`, with an `id` that may be `null` or absent.
    Error,
}

/// One classified message, borrowing from the input.
///
/// Spans are byte ranges into the input passed to [`classify`] (for a
/// batch, the whole batch), covering the value exactly, without the
/// surrounding whitespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message<'a> {
    /// The message's exact JSON text (a batch element's own, for a batch),
    /// without surrounding whitespace: the validated input, not a copy.
    pub text: &'a str,
    /// What the message is.
    pub kind: Kind,
    /// The decoded method (requests and notifications).
    pub method: Option<Cow<'a, str>>,
    /// The id as its exact raw JSON text, e.g. `1.0` or `"a\"b"` (quotes
    /// and escapes included). Requests and responses always have one; an
    /// error has `Some(b"null")` for a null id and `None` for an absent one;
    /// notifications have none.
    pub id: Option<&'a [u8]>,
    /// The progress token as raw JSON text: `params._meta.progressToken`
    /// of a request or notification whose `params` is an object, and of a
    /// `notifications/progress` the token it reports on,
    /// `params.progressToken`.
    pub progress_token: Option<&'a [u8]>,
    /// `params.requestId` of a `notifications/cancelled`, as raw JSON text.
    pub request_id: Option<&'a [u8]>,
    /// The decoded `params.name` of `tools/call` and `prompts/get`, or
    /// `params.uri` of `resources/read` (what `Mcp-Name` must equal).
    /// Always present on such requests.
    pub name: Option<Cow<'a, str>>,
    /// The span of `params._meta` (any JSON type) of a request or
    /// notification whose `params` is an object.
    pub meta: Option<Range<usize>>,
    /// The span of `params._meta.traceparent`'s value (any JSON type),
    /// when `_meta` is an object: W3C Trace Context as SEP-414 carries it.
    /// Only its place is noted; [`meta`] reads it.
    pub traceparent: Option<Range<usize>>,
    /// The span of `params._meta.tracestate`'s value, as `traceparent`.
    pub tracestate: Option<Range<usize>>,
    /// The span of `params` (requests and notifications).
    pub params: Option<Range<usize>>,
    /// The span of `result` (responses).
    pub result: Option<Range<usize>>,
    /// The span of the `error` object (errors).
    pub error: Option<Range<usize>>,
}

impl Message<'_> {
    /// The id as an owned [`RawId`], to keep across a stream.
    pub fn raw_id(&self) -> Option<RawId> {
        self.id.map(RawId::new)
    }
}

/// A body: one message, or a 2025-03-26 batch of them.
// One per body, on the stack for the moment it is read: boxing the single
// message would allocate for every body to save bytes nobody keeps.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Classified<'a> {
    /// A single JSON object.
    Single(Message<'a>),
    /// A JSON array of messages, in order (never empty).
    Batch(Vec<Message<'a>>),
}

/// Validates `json` as exactly one JSON value and classifies it as a
/// JSON-RPC message or batch; see the [module docs](self) for what is
/// accepted and why.
pub fn classify<'a>(json: &'a [u8], limits: &Limits) -> Result<Classified<'a>, ClassifyError> {
    classify::classify(json, limits, true)
}

/// The raw id to answer a message [`classify`] refused with: for a single
/// request that is valid JSON-RPC but breaks an MCP rule
/// ([`ClassifyError::MissingName`]), its id, which JSON-RPC requires an
/// invalid-params error to echo; `None` for every other refusal (parse
/// errors and invalid requests answer with a null id).
pub fn refused_request_id(json: &[u8], limits: &Limits) -> Option<Vec<u8>> {
    match classify::classify(json, limits, false) {
        Ok(Classified::Single(m)) if m.kind == Kind::Request => m.id.map(<[u8]>::to_vec),
        _ => None,
    }
}
