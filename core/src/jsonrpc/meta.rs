//! W3C Trace Context inside a message: `params._meta.traceparent` and
//! `params._meta.tracestate`, the keys MCP's SEP-414 reserves and
//! OpenTelemetry's MCP conventions use as the carrier.
//!
//! [`classify`](super::classify) notes where they are in the one pass it
//! makes ([`MetaSpans::of`] keeps that, a few offsets); nothing here runs
//! unless a caller asks, so a proxy with tracing off pays nothing more.
//! Reading decodes the JSON string and hands it to
//! [`TraceParent::parse`], as strict as for the header. Writing replaces
//! the value of `traceparent` (or adds the member, creating `_meta` and
//! `params` where they are missing) and keeps every other byte of the
//! message as written: key order, spacing, escapes, `tracestate` — unless
//! the `traceparent` beside it is missing or not valid: then the trace
//! sent on is not the one it belongs to, and [`without_member`] removes it
//! (as W3C Trace Context has a vendor drop the header's).
//!
//! | the message | [`MetaSpans::slot`] |
//! |---|---|
//! | `_meta.traceparent` present (any value, a request or a notification) | [`Slot::Value`]: its value replaced |
//! | a request, `_meta` an object without `traceparent` | [`Slot::Meta`]: a member added first (only when inserting) |
//! | a request, `params` an object without `_meta` | [`Slot::Params`]: `"_meta":{…}` added first (only when inserting) |
//! | a request without `params` | [`Slot::Message`]: `,"params":{"_meta":{…}}` added last (only when inserting) |
//! | `params` an array, `_meta` not an object, a batch, no JSON-RPC | none: left as written |

use std::borrow::Cow;
use std::ops::Range;

use super::scan::{decode, scan_string, skip_ws};
use super::{Kind, Message};
use crate::tracecontext::TraceParent;

/// Where a single message's `params`, `_meta` and trace context sit: what
/// [`classify`](super::classify) noted, kept as offsets into its input.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetaSpans {
    /// The message is a request (only a request gets a member added).
    pub request: bool,
    /// The message object's closing `}`.
    pub close: usize,
    /// The span of `params`.
    pub params: Option<Range<usize>>,
    /// The span of `params._meta`.
    pub meta: Option<Range<usize>>,
    /// The span of `params._meta.traceparent`'s value.
    pub traceparent: Option<Range<usize>>,
    /// The span of `params._meta.tracestate`'s value.
    pub tracestate: Option<Range<usize>>,
}

/// Where `traceparent` goes in a message (offsets into its text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Slot {
    /// The value of the `traceparent` there, replaced.
    Value(Range<usize>),
    /// A member added after the `{` of `_meta` at this offset.
    Meta {
        /// The `{`.
        open: usize,
        /// The object has no member (no comma after the new one).
        empty: bool,
    },
    /// `"_meta":{…}` added after the `{` of `params` at this offset.
    Params {
        /// The `{`.
        open: usize,
        /// The object has no member.
        empty: bool,
    },
    /// `,"params":{"_meta":{…}}` added before the message's closing `}`
    /// at this offset.
    Message {
        /// The `}`.
        close: usize,
    },
}

impl MetaSpans {
    /// The spans of `msg`, a single message classified from `text`.
    pub fn of(text: &[u8], msg: &Message<'_>) -> MetaSpans {
        MetaSpans {
            request: msg.kind == Kind::Request,
            close: text.iter().rposition(|&b| b == b'}').unwrap_or(0),
            params: msg.params.clone(),
            meta: msg.meta.clone(),
            traceparent: msg.traceparent.clone(),
            tracestate: msg.tracestate.clone(),
        }
    }

    /// The message's `_meta.traceparent`, when it is a string that
    /// [`TraceParent::parse`] accepts.
    pub fn traceparent(&self, text: &[u8]) -> Option<TraceParent> {
        let value = string_value(text, self.traceparent.clone()?)?;
        TraceParent::parse(value.as_bytes())
    }

    /// The span of a `_meta.tracestate` that belongs to no trace: beside a
    /// `traceparent` that is missing or not valid. W3C Trace Context: a
    /// vendor that cannot parse `traceparent` must not use `tracestate`;
    /// the trace sluice sends on is another one, so it goes.
    pub fn stale_tracestate(&self, text: &[u8]) -> Option<Range<usize>> {
        let state = self.tracestate.clone()?;
        self.traceparent(text).is_none().then_some(state)
    }

    /// The message's `_meta.tracestate`, when it is a string that is not
    /// blank.
    pub fn tracestate<'t>(&self, text: &'t [u8]) -> Option<Cow<'t, str>> {
        let value = string_value(text, self.tracestate.clone()?)?;
        (!value.trim().is_empty()).then_some(value)
    }

    /// Where a `traceparent` goes in `text` (the text these spans were
    /// noted in): over the one there; else, with `insert`, a new member in
    /// a request (see the [module docs](self)). `None`: leave the message
    /// as written.
    pub fn slot(&self, text: &[u8], insert: bool) -> Option<Slot> {
        if let Some(value) = &self.traceparent {
            return Some(Slot::Value(value.clone()));
        }
        if !insert || !self.request {
            return None;
        }
        let object = |span: &Range<usize>| {
            (text.get(span.start) == Some(&b'{')).then(|| {
                let empty = text.get(skip_ws(text, span.start + 1)) == Some(&b'}');
                (span.start, empty)
            })
        };
        match (&self.params, &self.meta) {
            (Some(_), Some(meta)) => object(meta).map(|(open, empty)| Slot::Meta { open, empty }),
            (Some(params), None) => {
                object(params).map(|(open, empty)| Slot::Params { open, empty })
            }
            (None, _) => {
                (text.get(self.close) == Some(&b'}')).then_some(Slot::Message { close: self.close })
            }
        }
    }
}

/// `text` with `traceparent` (a [`TraceParent::write`] value: nothing in
/// it that JSON escapes) written at `slot`, appended to `out`. Every byte
/// outside the slot is kept.
pub fn write(text: &[u8], slot: &Slot, traceparent: &str, out: &mut Vec<u8>) {
    let member = |out: &mut Vec<u8>| {
        out.extend_from_slice(b"\"traceparent\":\"");
        out.extend_from_slice(traceparent.as_bytes());
        out.push(b'"');
    };
    let (at, resume) = match slot {
        Slot::Value(span) => (span.start, span.end),
        Slot::Meta { open, .. } | Slot::Params { open, .. } => (open + 1, open + 1),
        Slot::Message { close } => (*close, *close),
    };
    out.extend_from_slice(text.get(..at).unwrap_or_default());
    match slot {
        Slot::Value(_) => {
            out.push(b'"');
            out.extend_from_slice(traceparent.as_bytes());
            out.push(b'"');
        }
        Slot::Meta { empty, .. } => {
            member(out);
            if !empty {
                out.push(b',');
            }
        }
        Slot::Params { empty, .. } => {
            out.extend_from_slice(b"\"_meta\":{");
            member(out);
            out.push(b'}');
            if !empty {
                out.push(b',');
            }
        }
        Slot::Message { .. } => {
            out.extend_from_slice(b",\"params\":{\"_meta\":{");
            member(out);
            out.extend_from_slice(b"}}");
        }
    }
    out.extend_from_slice(text.get(resume..).unwrap_or_default());
}

/// `text` without the `_meta` member whose value is at `value` (its key,
/// and one comma beside it), or `None` when `text` is not shaped so there.
/// The key's text needs no decoding: [`classify`](super::classify) noted
/// the value because the key reads `tracestate`, which holds no quote.
pub fn without_member(text: &[u8], value: Range<usize>) -> Option<Vec<u8>> {
    let back_ws = |mut i: usize| {
        while i > 0 && matches!(text[i - 1], b' ' | b'\t' | b'\n' | b'\r') {
            i -= 1;
        }
        i
    };
    // `"key"` `:` before the value, whitespace allowed around the colon.
    let colon = back_ws(value.start).checked_sub(1)?;
    let key_end = back_ws((text.get(colon) == Some(&b':')).then_some(colon)?);
    let quote = key_end.checked_sub(1)?;
    if text.get(quote) != Some(&b'"') {
        return None;
    }
    let key_start = text.get(..quote)?.iter().rposition(|&b| b == b'"')?;
    let after = skip_ws(text, value.end);
    let cut = if text.get(after) == Some(&b',') {
        key_start..after + 1
    } else {
        let before = back_ws(key_start);
        match before.checked_sub(1).map(|i| (i, text[i])) {
            Some((comma, b',')) => comma..value.end,
            Some((_, b'{')) => key_start..value.end,
            _ => return None,
        }
    };
    let mut out = Vec::with_capacity(text.len() - cut.len());
    out.extend_from_slice(&text[..cut.start]);
    out.extend_from_slice(&text[cut.end..]);
    Some(out)
}

/// The length of what [`write()`] makes of a `len`-byte text.
pub fn written_len(len: usize, slot: &Slot, traceparent: &str) -> usize {
    let member = "\"traceparent\":\"\"".len() + traceparent.len();
    match slot {
        Slot::Value(span) => len - span.len() + traceparent.len() + 2,
        Slot::Meta { empty, .. } => len + member + usize::from(!empty),
        Slot::Params { empty, .. } => len + "\"_meta\":{}".len() + member + usize::from(!empty),
        Slot::Message { .. } => len + ",\"params\":{\"_meta\":{}}".len() + member,
    }
}

/// The decoded text of the JSON string at `span` of `text`; `None` for
/// any other value.
fn string_value(text: &[u8], span: Range<usize>) -> Option<Cow<'_, str>> {
    let raw = text.get(span.clone())?;
    if raw.first() != Some(&b'"') {
        return None;
    }
    let (end, escaped) = scan_string(raw, 0).ok()?;
    if end != raw.len() {
        return None;
    }
    let raw = std::str::from_utf8(raw).ok()?;
    decode(raw, 1, end - 1, escaped).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jsonrpc::{Classified, Limits, classify};

    const OURS: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-0102030405060708-01";
    const CLIENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn spans(text: &str) -> Option<MetaSpans> {
        match classify(text.as_bytes(), &Limits::default()) {
            Ok(Classified::Single(m)) => Some(MetaSpans::of(text.as_bytes(), &m)),
            _ => None,
        }
    }

    /// `text` as written with our `traceparent`, or `None` when it is left
    /// alone; the length [`written_len`] predicts is checked on the way.
    fn rewrite(text: &str, insert: bool) -> Option<String> {
        let noted = spans(text)?;
        let slot = noted.slot(text.as_bytes(), insert)?;
        let mut out = Vec::new();
        write(text.as_bytes(), &slot, OURS, &mut out);
        assert_eq!(out.len(), written_len(text.len(), &slot, OURS), "{text}");
        let out = String::from_utf8(out).unwrap();
        let written = spans(&out).unwrap_or_else(|| panic!("still one valid message: {out}"));
        assert_eq!(
            written
                .traceparent(out.as_bytes())
                .map(|t| t.write())
                .as_deref(),
            Some(OURS),
            "reads back: {out}"
        );
        Some(out)
    }

    #[test]
    fn a_member_is_removed_with_one_comma_and_every_other_byte_kept() {
        let cases = [
            (r#"{"tracestate":"a=1","x":1}"#, r#"{"x":1}"#),
            (r#"{"x":1,"tracestate":"a=1"}"#, r#"{"x":1}"#),
            (
                r#"{"x":1, "tracestate" : "a=1" ,"y":2}"#,
                r#"{"x":1, "y":2}"#,
            ),
            (r#"{ "tracestate":"a=1" }"#, r#"{  }"#),
            (r#"{"x":1,"tracestate":{"deep":[","]}}"#, r#"{"x":1}"#),
        ];
        for (meta, want) in cases {
            let text =
                format!(r#"{{"jsonrpc":"2.0","id":1,"method":"m","params":{{"_meta":{meta}}}}}"#);
            let noted = spans(&text).unwrap_or_else(|| panic!("{text}"));
            let state = noted.tracestate.clone().expect("noted");
            let out = without_member(text.as_bytes(), state).expect("removed");
            let want =
                format!(r#"{{"jsonrpc":"2.0","id":1,"method":"m","params":{{"_meta":{want}}}}}"#);
            assert_eq!(String::from_utf8(out).unwrap(), want);
        }
    }

    #[test]
    fn the_value_is_replaced_and_every_other_byte_kept() {
        let cases = [
            (
                format!(
                    r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"t","_meta":{{"progressToken":"p","traceparent":"{CLIENT}","tracestate":"a=1"}}}}}}"#
                ),
                format!(
                    r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"t","_meta":{{"progressToken":"p","traceparent":"{OURS}","tracestate":"a=1"}}}}}}"#
                ),
            ),
            // Spacing, an escaped key, a value that is not a string.
            (
                r#" { "params" : { "_meta" : { "trace\u0070arent" : 7 , "x" : [ 1 ] } } , "method" : "ping" , "id" : "a" , "jsonrpc" : "2.0" } "#
                    .to_string(),
                format!(
                    r#" {{ "params" : {{ "_meta" : {{ "trace\u0070arent" : "{OURS}" , "x" : [ 1 ] }} }} , "method" : "ping" , "id" : "a" , "jsonrpc" : "2.0" }} "#
                ),
            ),
            // A notification's is replaced too (never added).
            (
                r#"{"jsonrpc":"2.0","method":"notifications/x","params":{"_m\u0065ta":{"traceparent":"junk"}}}"#
                    .to_string(),
                format!(
                    r#"{{"jsonrpc":"2.0","method":"notifications/x","params":{{"_m\u0065ta":{{"traceparent":"{OURS}"}}}}}}"#
                ),
            ),
        ];
        for (input, want) in &cases {
            for insert in [false, true] {
                assert_eq!(rewrite(input, insert).as_deref(), Some(want.as_str()));
            }
        }
    }

    #[test]
    fn a_member_is_added_only_when_asked_and_only_to_a_request() {
        let cases = [
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
                format!(
                    r#"{{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{{"_meta":{{"traceparent":"{OURS}"}}}}}}"#
                ),
            ),
            (
                "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\",\"params\":{ }}\r\n",
                format!(
                    "{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\",\"params\":{{\"_meta\":{{\"traceparent\":\"{OURS}\"}} }}}}\r\n"
                ),
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t"}}"#,
                format!(
                    r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"_meta":{{"traceparent":"{OURS}"}},"name":"t"}}}}"#
                ),
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","_meta":{}}}"#,
                format!(
                    r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"t","_meta":{{"traceparent":"{OURS}"}}}}}}"#
                ),
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","_meta":{"tracestate":"a=1"}}}"#,
                format!(
                    r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"t","_meta":{{"traceparent":"{OURS}","tracestate":"a=1"}}}}}}"#
                ),
            ),
        ];
        for (input, want) in &cases {
            assert_eq!(rewrite(input, true).as_deref(), Some(want.as_str()));
            assert_eq!(rewrite(input, false), None, "{input}");
        }
        let notification = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
        assert_eq!(rewrite(notification, true), None);
    }

    #[test]
    fn odd_messages_are_left_as_written() {
        let untouched = [
            // `_meta` not an object, `params` an array.
            r#"{"jsonrpc":"2.0","id":1,"method":"m","params":{"_meta":"traceparent"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"m","params":{"_meta":null}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"m","params":[{"_meta":{"traceparent":"x"}}]}"#,
            // A traceparent that is not `params._meta`'s own.
            r#"{"jsonrpc":"2.0","id":1,"method":"m","params":{"_meta":{"x":{"traceparent":"x"}}},"traceparent":"y"}"#,
            // Answers are never touched.
            r#"{"jsonrpc":"2.0","id":1,"result":{"_meta":{"traceparent":"x"}}}"#,
        ];
        for input in untouched {
            assert_eq!(rewrite(input, false), None, "{input}");
            if input.contains("[{") || input.contains("result") || !input.contains("\"_meta\":{") {
                assert_eq!(rewrite(input, true), None, "{input}");
            }
        }
        // Duplicate keys (in `_meta` or anywhere) and batches do not
        // classify as one message: nothing to write into.
        for input in [
            r#"{"jsonrpc":"2.0","id":1,"method":"m","params":{"_meta":{"traceparent":"a","traceparent":"b"}}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"m","params":{"_meta":{},"_m\u0065ta":{}}}"#,
        ] {
            assert_eq!(spans(input), None, "{input}");
        }
    }

    #[test]
    fn the_clients_context_is_read_strictly() {
        let with = |tp: &str, ts: &str| {
            format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"m","params":{{"_meta":{{"traceparent":{tp},"tracestate":{ts}}}}}}}"#
            )
        };
        let read = |text: &str| {
            let s = spans(text).unwrap();
            (
                s.traceparent(text.as_bytes()).map(|t| t.write()),
                s.tracestate(text.as_bytes()).map(Cow::into_owned),
            )
        };
        let good = format!("\"{CLIENT}\"");
        assert_eq!(
            read(&with(&good, r#""a=1,b=2""#)),
            (Some(CLIENT.to_string()), Some("a=1,b=2".into()))
        );
        // Escapes are read as the server reads them.
        let escaped = format!("\"\\u0030{}\"", &CLIENT[1..]);
        assert_eq!(read(&with(&escaped, "1")), (Some(CLIENT.into()), None));
        for bad in [
            "1".to_string(),
            "null".into(),
            format!("\"{}\"", CLIENT.to_uppercase()),
            format!("\"{}\"", &CLIENT[..54]),
            "\"00-00000000000000000000000000000000-00f067aa0ba902b7-01\"".into(),
        ] {
            assert_eq!(read(&with(&bad, r#""  ""#)), (None, None), "{bad}");
        }
    }

    /// Every one-byte change and insertion of a few seeds: nothing panics,
    /// and whatever classifies as one message is either left alone or
    /// written into so that it still classifies as the same message, reads
    /// back our value, and keeps every byte outside the slot; and without
    /// its `tracestate` it is still the same message.
    #[test]
    fn mutated_messages_are_written_or_left_alone_never_broken() {
        let seeds = [
            format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"m","params":{{"_meta":{{"traceparent":"{CLIENT}","tracestate":"a=1"}}}}}}"#
            ),
            r#"{"jsonrpc":"2.0","id":"x","method":"tools/call","params":{"name":"t","_meta":{}}}"#
                .into(),
            r#"{"jsonrpc":"2.0","id":2,"method":"m","params":{}}"#.into(),
            r#"{"jsonrpc":"2.0","id":2,"method":"m"}"#.into(),
        ];
        let bytes = b"{}[]\":, \\a0";
        let mut inputs: Vec<Vec<u8>> = Vec::new();
        for seed in &seeds {
            let seed = seed.as_bytes();
            for pos in 0..=seed.len() {
                for &b in bytes {
                    let mut inserted = seed.to_vec();
                    inserted.insert(pos, b);
                    inputs.push(inserted);
                    if pos < seed.len() {
                        let mut changed = seed.to_vec();
                        changed[pos] = b;
                        inputs.push(changed);
                    }
                }
            }
        }
        let (mut written, mut removed) = (0, 0);
        for input in &inputs {
            let Ok(Classified::Single(m)) = classify(input, &Limits::default()) else {
                continue;
            };
            let noted = MetaSpans::of(input, &m);
            let _ = (noted.traceparent(input), noted.tracestate(input));
            // Removing `tracestate` leaves the same message, without it.
            if let Some(out) = noted
                .tracestate
                .clone()
                .and_then(|s| without_member(input, s))
            {
                let Ok(Classified::Single(again)) = classify(&out, &Limits::default()) else {
                    panic!("broken: {}", String::from_utf8_lossy(&out));
                };
                assert_eq!(
                    (again.kind, &again.method, again.id, &again.tracestate),
                    (m.kind, &m.method, m.id, &None)
                );
                removed += 1;
            }
            for insert in [false, true] {
                let Some(slot) = noted.slot(input, insert) else {
                    continue;
                };
                let mut out = Vec::new();
                write(input, &slot, OURS, &mut out);
                assert_eq!(out.len(), written_len(input.len(), &slot, OURS));
                let Ok(Classified::Single(again)) = classify(&out, &Limits::default()) else {
                    panic!("broken: {}", String::from_utf8_lossy(&out));
                };
                assert_eq!(
                    (again.kind, &again.method, again.id),
                    (m.kind, &m.method, m.id)
                );
                let back = MetaSpans::of(&out, &again).traceparent(&out);
                assert_eq!(back.map(|t| t.write()).as_deref(), Some(OURS));
                let (at, resume) = match &slot {
                    Slot::Value(span) => (span.start, span.end),
                    Slot::Meta { open, .. } | Slot::Params { open, .. } => (open + 1, open + 1),
                    Slot::Message { close } => (*close, *close),
                };
                assert_eq!(out[..at], input[..at]);
                assert_eq!(out[out.len() - (input.len() - resume)..], input[resume..]);
                written += 1;
            }
        }
        assert!(written > 100, "{written} written");
        assert!(removed > 100, "{removed} removed");
    }
}
