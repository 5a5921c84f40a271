//! Why a message was refused, and the JSON-RPC code a proxy answers with.

use std::fmt;

/// JSON-RPC error codes a proxy answers with: every code sluice uses is
/// defined here, once.
pub mod codes {
    /// Invalid JSON: the text could not be read as one unambiguous value.
    pub const PARSE_ERROR: i64 = -32700;
    /// Valid JSON that is not a valid JSON-RPC message.
    pub const INVALID_REQUEST: i64 = -32600;
    /// The method does not exist or is not available.
    pub const METHOD_NOT_FOUND: i64 = -32601;
    /// Invalid method parameters.
    pub const INVALID_PARAMS: i64 = -32602;
    /// Internal JSON-RPC error.
    pub const INTERNAL_ERROR: i64 = -32603;
    /// MCP 2026-07-28: an `Mcp-Method` / `Mcp-Name` / `Mcp-Param-*` header
    /// disagrees with the body.
    pub const HEADER_MISMATCH: i64 = -32020;
    /// MCP 2026-07-28: the request needs a client capability its envelope
    /// does not declare.
    pub const MISSING_CLIENT_CAPABILITY: i64 = -32021;
    /// MCP 2026-07-28: the requested protocol version is not supported.
    pub const UNSUPPORTED_PROTOCOL_VERSION: i64 = -32022;
    /// An upstream (or a legacy backend) that failed, refused or closed
    /// before the answer was complete (the TypeScript SDK's
    /// `ConnectionClosed`).
    pub const UPSTREAM_FAILED: i64 = -32000;
    /// An upstream that did not answer, or did not do its part, in time
    /// (the TypeScript SDK's `RequestTimeout`).
    pub const UPSTREAM_TIMEOUT: i64 = -32001;
    /// A batch element that was not forwarded because a hook stopped another
    /// element of the same batch.
    pub const BATCH_REFUSED: i64 = -32002;
    /// A message the hooks were owed but could not judge: a hook failed
    /// (closed), or an answer to a hooked request broke the strict answer
    /// rule and was cut.
    pub const HOOK_FAILED: i64 = -32010;
}

/// Why [`classify`](super::classify) refused a message.
///
/// Text-level failures (the bytes are not one unambiguous JSON value within
/// the limits) answer [`codes::PARSE_ERROR`]; shape failures (good JSON, bad
/// JSON-RPC) answer [`codes::INVALID_REQUEST`]; a named MCP method without
/// its name answers [`codes::INVALID_PARAMS`]. When the text is broken and the
/// shape is wrong too, the text error wins: the whole input is validated
/// before any shape error is reported. Offsets are byte offsets into the input.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClassifyError {
    /// The input is longer than [`Limits::max_bytes`](super::Limits::max_bytes).
    TooLarge {
        /// The configured limit.
        max_bytes: usize,
    },
    /// Containers nest deeper than [`Limits::max_depth`](super::Limits::max_depth).
    TooDeep {
        /// Where the container that went too deep opens.
        offset: usize,
    },
    /// The input starts with a UTF-8 byte order mark (RFC 8259 §8.1 forbids
    /// sending one; parsers disagree on skipping it).
    Bom,
    /// The input is not UTF-8.
    InvalidUtf8 {
        /// The first byte that is not part of a valid sequence.
        offset: usize,
    },
    /// The input ends inside a value (or holds no value at all).
    UnexpectedEnd,
    /// A byte that the JSON grammar does not allow here (including raw
    /// control characters inside strings).
    Syntax {
        /// The offending byte.
        offset: usize,
    },
    /// A backslash escape that JSON does not define, or bad `\u` hex digits.
    InvalidEscape {
        /// The offending escape.
        offset: usize,
    },
    /// A `\u` escape that names half of a surrogate pair without the other half.
    LoneSurrogate {
        /// The backslash of the offending escape.
        offset: usize,
    },
    /// A number whose magnitude is 1e308 or more.
    NumberOutOfRange {
        /// Where the number starts.
        offset: usize,
    },
    /// An object holds the same key (after unescaping) twice.
    DuplicateKey {
        /// The later of the two keys.
        offset: usize,
    },
    /// Something other than whitespace follows the value.
    TrailingData {
        /// The first byte after the value and its whitespace.
        offset: usize,
    },
    /// The message (or a batch element) is not a JSON object.
    NotAnObject,
    /// A batch with no elements.
    EmptyBatch,
    /// `"jsonrpc"` is missing or is not the string `"2.0"`.
    BadVersion,
    /// `"id"` has a type this kind of message does not allow.
    BadId,
    /// `"method"` is not a string.
    BadMethod,
    /// `"params"` is neither an object nor an array.
    BadParams,
    /// `"error"` is not an object.
    BadError,
    /// The members fit none of request, notification, response, error
    /// (e.g. `method` with `result`, both `result` and `error`, or neither).
    BadShape,
    /// A `tools/call` or `prompts/get` request without a string
    /// `params.name`, or a `resources/read` request without a string
    /// `params.uri`.
    MissingName,
}

impl ClassifyError {
    /// The JSON-RPC error code a proxy answers this failure with.
    pub fn code(&self) -> i64 {
        use ClassifyError::*;
        match self {
            TooLarge { .. }
            | TooDeep { .. }
            | Bom
            | InvalidUtf8 { .. }
            | UnexpectedEnd
            | Syntax { .. }
            | InvalidEscape { .. }
            | LoneSurrogate { .. }
            | NumberOutOfRange { .. }
            | DuplicateKey { .. }
            | TrailingData { .. } => codes::PARSE_ERROR,
            NotAnObject | EmptyBatch | BadVersion | BadId | BadMethod | BadParams | BadError
            | BadShape => codes::INVALID_REQUEST,
            MissingName => codes::INVALID_PARAMS,
        }
    }
}

impl fmt::Display for ClassifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use ClassifyError::*;
        match self {
            TooLarge { max_bytes } => write!(f, "message larger than {max_bytes} bytes"),
            TooDeep { offset } => write!(f, "nesting too deep at byte {offset}"),
            Bom => f.write_str("byte order mark before the JSON text"),
            InvalidUtf8 { offset } => write!(f, "invalid UTF-8 at byte {offset}"),
            UnexpectedEnd => f.write_str("unexpected end of JSON text"),
            Syntax { offset } => write!(f, "JSON syntax error at byte {offset}"),
            InvalidEscape { offset } => write!(f, "invalid escape at byte {offset}"),
            LoneSurrogate { offset } => write!(f, "lone surrogate escape at byte {offset}"),
            NumberOutOfRange { offset } => write!(f, "number out of range at byte {offset}"),
            DuplicateKey { offset } => write!(f, "duplicate object key at byte {offset}"),
            TrailingData { offset } => write!(f, "trailing data at byte {offset}"),
            NotAnObject => f.write_str("message is not a JSON object"),
            EmptyBatch => f.write_str("empty batch"),
            BadVersion => f.write_str("\"jsonrpc\" must be \"2.0\""),
            BadId => f.write_str("invalid \"id\""),
            BadMethod => f.write_str("\"method\" must be a string"),
            BadParams => f.write_str("\"params\" must be an object or an array"),
            BadError => f.write_str("\"error\" must be an object"),
            BadShape => f.write_str("not a request, notification, response or error"),
            MissingName => f.write_str("missing params.name or params.uri"),
        }
    }
}

impl std::error::Error for ClassifyError {}
