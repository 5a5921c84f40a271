//! The single pass: walk the JSON structure iteratively, validate all of it,
//! and note the spans of the few members a proxy reads.
//!
//! Each open container is a [`Frame`] on an explicit stack (never native
//! recursion), tagged with a [`Role`] that says whether its members matter:
//! the message object itself, its `params`, or `params._meta`. Everything
//! else is validated and forgotten. Keys of every open object are kept (as
//! borrowed slices unless escaped) so duplicates are caught when it closes.

use std::borrow::Cow;

use super::scan::{decode, scan_literal, scan_number, scan_string, skip_ws};
use super::{Classified, ClassifyError, Kind, Limits, Message};

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Objects with at most this many keys are checked for duplicates pairwise;
/// larger ones are sorted, so a huge object costs n log n, not n².
const PAIRWISE_MAX: usize = 16;

/// What a container is to the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Nothing we read.
    Other,
    /// The top-level array of a batch.
    Batch,
    /// A message object (top level, or a batch element).
    Top,
    /// The message's `params` object.
    Params,
    /// `params._meta`.
    Meta,
}

/// The member whose value is being read in the current object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    None,
    JsonRpc,
    Id,
    Method,
    Params,
    Result,
    Error,
    Name,
    Uri,
    Meta,
    ProgressToken,
    /// `params.progressToken` (of `notifications/progress`).
    ParamsProgressToken,
    /// `params.requestId` (of `notifications/cancelled`).
    RequestId,
    /// `params._meta.traceparent` (W3C Trace Context, SEP-414).
    TraceParent,
    /// `params._meta.tracestate`.
    TraceState,
}

/// The JSON type of a scanned value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Type {
    Object,
    Array,
    /// `escaped`: the raw text holds at least one backslash escape.
    String {
        escaped: bool,
    },
    Number,
    Bool,
    Null,
}

/// A scanned value: its bytes `start..end` and its type.
#[derive(Debug, Clone, Copy)]
struct Span {
    start: usize,
    end: usize,
    ty: Type,
}

#[derive(Debug)]
struct Frame {
    is_object: bool,
    role: Role,
    /// Where the container opens (for its span once closed).
    start: usize,
    /// Index into `Walker::keys` where this object's keys begin.
    keys_from: usize,
    /// The member being read right now (objects only).
    field: Field,
}

/// A key of an open object: its raw span, quotes included. Decoded only
/// when it holds escapes and is compared with another key.
#[derive(Debug, Clone, Copy)]
struct Key {
    start: usize,
    end: usize,
    escaped: bool,
    /// The first (up to) eight raw bytes, so most unequal keys are told
    /// apart without a `memcmp`.
    prefix: u64,
}

impl Key {
    fn new(buf: &[u8], start: usize, end: usize, escaped: bool) -> Key {
        let len = end - start;
        let prefix = match buf.get(start..).and_then(|r| r.first_chunk::<8>()) {
            Some(word) if len >= 8 => u64::from_le_bytes(*word),
            Some(word) => u64::from_le_bytes(*word) & ((1u64 << (8 * len)) - 1),
            // Within eight bytes of the end: the bytes one by one.
            None => buf
                .get(start..end)
                .unwrap_or_default()
                .iter()
                .take(8)
                .enumerate()
                .fold(0, |acc, (k, &b)| acc | (b as u64) << (8 * k)),
        };
        Key {
            start,
            end,
            escaped,
            prefix,
        }
    }
}

/// The spans of the members read from one message object.
#[derive(Debug, Default, Clone, Copy)]
struct Extract {
    jsonrpc: Option<Span>,
    id: Option<Span>,
    method: Option<Span>,
    params: Option<Span>,
    result: Option<Span>,
    error: Option<Span>,
    name: Option<Span>,
    uri: Option<Span>,
    progress: Option<Span>,
    params_progress: Option<Span>,
    request_id: Option<Span>,
    meta: Option<Span>,
    traceparent: Option<Span>,
    tracestate: Option<Span>,
}

struct Walker<'a> {
    buf: &'a [u8],
    text: &'a str,
    max_depth: usize,
    stack: Vec<Frame>,
    keys: Vec<Key>,
    cur: Extract,
    out: Vec<Message<'a>>,
    /// The first shape error; reported only if the whole text is valid JSON.
    shape: Option<ClassifyError>,
    batch_len: usize,
    /// Apply the MCP rules (a named method needs its name) on top of JSON-RPC's.
    mcp_rules: bool,
}

/// See [`super::classify`]; without `mcp_rules`, JSON-RPC's rules only.
pub(super) fn classify<'a>(
    buf: &'a [u8],
    limits: &Limits,
    mcp_rules: bool,
) -> Result<Classified<'a>, ClassifyError> {
    if buf.len() > limits.max_bytes {
        return Err(ClassifyError::TooLarge {
            max_bytes: limits.max_bytes,
        });
    }
    if buf.starts_with(BOM) {
        return Err(ClassifyError::Bom);
    }
    let text = std::str::from_utf8(buf).map_err(|e| ClassifyError::InvalidUtf8 {
        offset: e.valid_up_to(),
    })?;
    let mut w = Walker {
        buf,
        text,
        max_depth: limits.max_depth,
        stack: Vec::with_capacity(16),
        keys: Vec::with_capacity(16),
        cur: Extract::default(),
        out: Vec::new(),
        shape: None,
        batch_len: 0,
        mcp_rules,
    };
    let start = skip_ws(buf, 0);
    let batch = match buf.get(start) {
        Some(b'{') => false,
        Some(b'[') => true,
        Some(_) => {
            w.shape = Some(ClassifyError::NotAnObject);
            false
        }
        None => return Err(ClassifyError::UnexpectedEnd),
    };
    let end = skip_ws(buf, w.walk(start)?);
    if end != buf.len() {
        return Err(ClassifyError::TrailingData { offset: end });
    }
    if let Some(e) = w.shape {
        return Err(e);
    }
    if batch {
        if w.batch_len == 0 {
            return Err(ClassifyError::EmptyBatch);
        }
        return Ok(Classified::Batch(w.out));
    }
    w.out
        .pop()
        .map(Classified::Single)
        .ok_or(ClassifyError::NotAnObject)
}

impl<'a> Walker<'a> {
    /// Walks the one value at `pos`; returns the offset just past it.
    fn walk(&mut self, mut pos: usize) -> Result<usize, ClassifyError> {
        'value: loop {
            pos = skip_ws(self.buf, pos);
            let start = pos;
            let Some(&b) = self.buf.get(pos) else {
                return Err(ClassifyError::UnexpectedEnd);
            };
            let mut span = match b {
                b'{' | b'[' => {
                    let is_object = b == b'{';
                    self.open(is_object, start)?;
                    pos = skip_ws(self.buf, pos + 1);
                    let close = if is_object { b'}' } else { b']' };
                    if self.buf.get(pos) != Some(&close) {
                        if is_object {
                            pos = self.key(pos)?;
                        }
                        continue 'value;
                    }
                    pos += 1;
                    self.close(pos)?
                }
                b'"' => {
                    let (end, escaped) = scan_string(self.buf, pos)?;
                    pos = end;
                    Span {
                        start,
                        end,
                        ty: Type::String { escaped },
                    }
                }
                b'-' | b'0'..=b'9' => {
                    pos = scan_number(self.buf, pos)?;
                    Span {
                        start,
                        end: pos,
                        ty: Type::Number,
                    }
                }
                b't' | b'f' | b'n' => {
                    let (word, ty): (&[u8], _) = match b {
                        b't' => (b"true", Type::Bool),
                        b'f' => (b"false", Type::Bool),
                        _ => (b"null", Type::Null),
                    };
                    pos = scan_literal(self.buf, pos, word)?;
                    Span {
                        start,
                        end: pos,
                        ty,
                    }
                }
                _ => return Err(ClassifyError::Syntax { offset: pos }),
            };
            // A value is complete: hand it to its container, then either
            // expect the container's next member or close it (and repeat).
            loop {
                let Some(frame) = self.stack.last() else {
                    return Ok(pos);
                };
                let is_object = frame.is_object;
                self.record(span);
                pos = skip_ws(self.buf, pos);
                match (self.buf.get(pos), is_object) {
                    (Some(b','), true) => {
                        pos = self.key(pos + 1)?;
                        continue 'value;
                    }
                    (Some(b','), false) => {
                        pos += 1;
                        continue 'value;
                    }
                    (Some(b'}'), true) | (Some(b']'), false) => {
                        pos += 1;
                        span = self.close(pos)?;
                    }
                    (Some(_), _) => return Err(ClassifyError::Syntax { offset: pos }),
                    (None, _) => return Err(ClassifyError::UnexpectedEnd),
                }
            }
        }
    }

    /// Pushes a container opening at `start`, deciding its role from its parent.
    fn open(&mut self, is_object: bool, start: usize) -> Result<(), ClassifyError> {
        if self.stack.len() >= self.max_depth {
            return Err(ClassifyError::TooDeep { offset: start });
        }
        let role = match self.stack.last() {
            None if is_object => Role::Top,
            None => Role::Batch,
            Some(parent) => match (parent.role, parent.field, is_object) {
                (Role::Batch, _, true) => Role::Top,
                (Role::Top, Field::Params, true) => Role::Params,
                (Role::Params, Field::Meta, true) => Role::Meta,
                _ => Role::Other,
            },
        };
        if role == Role::Top {
            self.cur = Extract::default();
        }
        self.stack.push(Frame {
            is_object,
            role,
            start,
            keys_from: self.keys.len(),
            field: Field::None,
        });
        Ok(())
    }

    /// Pops the container that just closed at `end`; checks its keys and,
    /// for a message object, turns what was read into a [`Message`].
    fn close(&mut self, end: usize) -> Result<Span, ClassifyError> {
        let Some(frame) = self.stack.pop() else {
            return Err(ClassifyError::Syntax { offset: end - 1 });
        };
        if frame.is_object {
            let keys = self.keys.get(frame.keys_from..).unwrap_or_default();
            check_duplicates(self.text, keys)?;
            self.keys.truncate(frame.keys_from);
        }
        if frame.role == Role::Top {
            let whole = &self.text[frame.start..end];
            match finish(self.text, whole, &self.cur, self.mcp_rules) {
                Ok(m) => self.out.push(m),
                Err(e) => {
                    self.shape.get_or_insert(e);
                }
            }
        }
        let ty = if frame.is_object {
            Type::Object
        } else {
            Type::Array
        };
        Ok(Span {
            start: frame.start,
            end,
            ty,
        })
    }

    /// Reads `"key" :` at `pos` (whitespace allowed first) inside the top
    /// object; returns the offset after the colon.
    fn key(&mut self, pos: usize) -> Result<usize, ClassifyError> {
        let pos = skip_ws(self.buf, pos);
        match self.buf.get(pos) {
            Some(b'"') => {}
            Some(_) => return Err(ClassifyError::Syntax { offset: pos }),
            None => return Err(ClassifyError::UnexpectedEnd),
        }
        let (end, escaped) = scan_string(self.buf, pos)?;
        let Some(frame) = self.stack.last_mut() else {
            return Err(ClassifyError::Syntax { offset: pos });
        };
        frame.field = match frame.role {
            // Most keys sit in objects we do not read: no decoding.
            Role::Other | Role::Batch => Field::None,
            role => field(role, &decode(self.text, pos + 1, end - 1, escaped)?),
        };
        self.keys.push(Key::new(self.buf, pos, end, escaped));
        let colon = skip_ws(self.buf, end);
        match self.buf.get(colon) {
            Some(b':') => Ok(colon + 1),
            Some(_) => Err(ClassifyError::Syntax { offset: colon }),
            None => Err(ClassifyError::UnexpectedEnd),
        }
    }

    /// Gives a completed value to the innermost open container.
    #[inline]
    fn record(&mut self, span: Span) {
        let Some(frame) = self.stack.last() else {
            return;
        };
        let slot = match (frame.role, frame.field) {
            (Role::Batch, _) => {
                self.batch_len += 1;
                if span.ty != Type::Object {
                    self.shape.get_or_insert(ClassifyError::NotAnObject);
                }
                return;
            }
            (Role::Top, Field::JsonRpc) => &mut self.cur.jsonrpc,
            (Role::Top, Field::Id) => &mut self.cur.id,
            (Role::Top, Field::Method) => &mut self.cur.method,
            (Role::Top, Field::Params) => &mut self.cur.params,
            (Role::Top, Field::Result) => &mut self.cur.result,
            (Role::Top, Field::Error) => &mut self.cur.error,
            (Role::Params, Field::Name) => &mut self.cur.name,
            (Role::Params, Field::Uri) => &mut self.cur.uri,
            (Role::Meta, Field::ProgressToken) => &mut self.cur.progress,
            (Role::Params, Field::ParamsProgressToken) => &mut self.cur.params_progress,
            (Role::Params, Field::RequestId) => &mut self.cur.request_id,
            (Role::Params, Field::Meta) => &mut self.cur.meta,
            (Role::Meta, Field::TraceParent) => &mut self.cur.traceparent,
            (Role::Meta, Field::TraceState) => &mut self.cur.tracestate,
            _ => return,
        };
        *slot = Some(span);
    }
}

/// Which member a key names, in an object whose members we read.
fn field(role: Role, name: &str) -> Field {
    match (role, name) {
        (Role::Top, "jsonrpc") => Field::JsonRpc,
        (Role::Top, "id") => Field::Id,
        (Role::Top, "method") => Field::Method,
        (Role::Top, "params") => Field::Params,
        (Role::Top, "result") => Field::Result,
        (Role::Top, "error") => Field::Error,
        (Role::Params, "name") => Field::Name,
        (Role::Params, "uri") => Field::Uri,
        (Role::Params, "_meta") => Field::Meta,
        (Role::Meta, "progressToken") => Field::ProgressToken,
        (Role::Params, "progressToken") => Field::ParamsProgressToken,
        (Role::Params, "requestId") => Field::RequestId,
        (Role::Meta, "traceparent") => Field::TraceParent,
        (Role::Meta, "tracestate") => Field::TraceState,
        _ => Field::None,
    }
}

/// The decoded text of a key.
fn key_name(text: &str, k: Key) -> Result<Cow<'_, str>, ClassifyError> {
    decode(text, k.start + 1, k.end - 1, k.escaped)
}

/// Fails on the first key (after unescaping) that appears twice.
fn check_duplicates(text: &str, keys: &[Key]) -> Result<(), ClassifyError> {
    let raw = |k: &Key| text.as_bytes().get(k.start..k.end).unwrap_or_default();
    if keys.len() <= PAIRWISE_MAX {
        for (i, b) in keys.iter().enumerate().skip(1) {
            for a in &keys[..i] {
                // Without escapes, equal text is equal raw bytes.
                let same = if a.escaped || b.escaped {
                    key_name(text, *a)? == key_name(text, *b)?
                } else {
                    a.prefix == b.prefix && raw(a) == raw(b)
                };
                if same {
                    return Err(ClassifyError::DuplicateKey { offset: b.start });
                }
            }
        }
        return Ok(());
    }
    let mut names = keys
        .iter()
        .map(|k| Ok((key_name(text, *k)?, k.start)))
        .collect::<Result<Vec<_>, ClassifyError>>()?;
    names.sort_unstable();
    match names
        .windows(2)
        .filter(|w| w[0].0 == w[1].0)
        .map(|w| w[1].1)
        .min()
    {
        Some(offset) => Err(ClassifyError::DuplicateKey { offset }),
        None => Ok(()),
    }
}

/// The raw text of a span.
fn raw(text: &str, s: Span) -> &[u8] {
    text.as_bytes().get(s.start..s.end).unwrap_or_default()
}

/// The decoded content of a string span (`None` if it is not a string).
fn string<'a>(text: &'a str, s: Option<Span>) -> Result<Option<Cow<'a, str>>, ClassifyError> {
    match s {
        Some(Span {
            start,
            end,
            ty: Type::String { escaped },
        }) => decode(text, start + 1, end - 1, escaped).map(Some),
        _ => Ok(None),
    }
}

/// Decides the kind of one message object from the members read.
fn finish<'a>(
    text: &'a str,
    whole: &'a str,
    ex: &Extract,
    mcp_rules: bool,
) -> Result<Message<'a>, ClassifyError> {
    if string(text, ex.jsonrpc)?.as_deref() != Some("2.0") {
        return Err(ClassifyError::BadVersion);
    }
    let id_ok = |id: Option<Span>, null_ok: bool| match id.map(|s| s.ty) {
        Some(Type::String { .. } | Type::Number) => true,
        Some(Type::Null) => null_ok,
        _ => false,
    };
    let kind = match (ex.method, ex.result, ex.error) {
        (Some(m), None, None) => {
            if !matches!(m.ty, Type::String { .. }) {
                return Err(ClassifyError::BadMethod);
            }
            if let Some(p) = ex.params
                && !matches!(p.ty, Type::Object | Type::Array)
            {
                return Err(ClassifyError::BadParams);
            }
            match ex.id {
                None => Kind::Notification,
                id if id_ok(id, false) => Kind::Request,
                _ => return Err(ClassifyError::BadId),
            }
        }
        (None, Some(_), None) => {
            if !id_ok(ex.id, false) {
                return Err(ClassifyError::BadId);
            }
            Kind::Response
        }
        (None, None, Some(e)) => {
            if e.ty != Type::Object {
                return Err(ClassifyError::BadError);
            }
            if ex.id.is_some() && !id_ok(ex.id, true) {
                return Err(ClassifyError::BadId);
            }
            Kind::Error
        }
        _ => return Err(ClassifyError::BadShape),
    };
    let mut msg = Message {
        text: whole,
        kind,
        method: None,
        id: ex.id.map(|s| raw(text, s)),
        progress_token: None,
        request_id: None,
        name: None,
        meta: None,
        traceparent: None,
        tracestate: None,
        params: None,
        result: None,
        error: None,
    };
    match kind {
        Kind::Request | Kind::Notification => {
            let method = string(text, ex.method)?;
            msg.params = ex.params.map(|s| s.start..s.end);
            if ex.params.map(|s| s.ty) == Some(Type::Object) {
                msg.progress_token = match method.as_deref() {
                    Some("notifications/progress") => ex.params_progress,
                    _ => ex.progress,
                }
                .map(|s| raw(text, s));
                msg.meta = ex.meta.map(|s| s.start..s.end);
                if ex.meta.map(|s| s.ty) == Some(Type::Object) {
                    msg.traceparent = ex.traceparent.map(|s| s.start..s.end);
                    msg.tracestate = ex.tracestate.map(|s| s.start..s.end);
                }
                if method.as_deref() == Some("notifications/cancelled") {
                    msg.request_id = ex.request_id.map(|s| raw(text, s));
                }
                msg.name = match method.as_deref() {
                    Some("tools/call" | "prompts/get") => string(text, ex.name)?,
                    Some("resources/read") => string(text, ex.uri)?,
                    _ => None,
                };
            }
            let named = matches!(
                method.as_deref(),
                Some("tools/call" | "prompts/get" | "resources/read")
            );
            if mcp_rules && kind == Kind::Request && named && msg.name.is_none() {
                return Err(ClassifyError::MissingName);
            }
            msg.method = method;
        }
        Kind::Response => msg.result = ex.result.map(|s| s.start..s.end),
        Kind::Error => msg.error = ex.error.map(|s| s.start..s.end),
    }
    Ok(msg)
}
