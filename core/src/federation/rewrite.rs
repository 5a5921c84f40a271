//! Byte-level edits of JSON-RPC messages crossing a federation: a string
//! inside a message replaced where it lies, and the ids of members'
//! requests to the client tagged with the member (and restored), so any
//! replica can send the client's answer back without remembering anything.

use std::collections::BTreeMap;
use std::ops::Range;

use serde_json::value::RawValue;

use super::catalog::Member;
use crate::jsonrpc;

/// What starts a tagged id's text: `"sluice/<member>/<the id as the member wrote it>"`.
const TAG: &str = "sluice/";

/// `text` with the JSON string at `path` (object keys from the top)
/// replaced by `value`; every other byte kept. `None` when the path does
/// not lead to a string.
pub fn replace_string(text: &[u8], path: &[&str], value: &str) -> Option<Vec<u8>> {
    let span = string_span(text, path)?;
    let mut out = Vec::with_capacity(text.len() + value.len());
    out.extend_from_slice(&text[..span.start]);
    jsonrpc::write_json_string(&mut out, value);
    out.extend_from_slice(&text[span.end..]);
    Some(out)
}

/// Where the value at `path` lies in `text`, when it is a string.
fn string_span(text: &[u8], path: &[&str]) -> Option<Range<usize>> {
    let mut at: &RawValue = serde_json::from_slice(text).ok()?;
    for key in path {
        let fields: BTreeMap<&str, &RawValue> = serde_json::from_str(at.get()).ok()?;
        at = fields.get(key)?;
    }
    if !at.get().starts_with('"') {
        return None;
    }
    span_in(text, at.get().as_bytes())
}

/// Where `part`, a slice of `whole`, lies in it.
pub(super) fn span_in(whole: &[u8], part: &[u8]) -> Option<Range<usize>> {
    let start = (part.as_ptr() as usize).checked_sub(whole.as_ptr() as usize)?;
    let end = start + part.len();
    (end <= whole.len()).then_some(start..end)
}

/// A member's message with its id (raw text `id`, a slice of `text`)
/// replaced by the tag naming `member` and the id.
pub fn tag_id(text: &[u8], id: &[u8], member: Member) -> Option<Vec<u8>> {
    let span = span_in(text, id)?;
    let raw = std::str::from_utf8(id).ok()?;
    let mut out = Vec::with_capacity(text.len() + 16);
    out.extend_from_slice(&text[..span.start]);
    jsonrpc::write_json_string(&mut out, &tagged(member, raw));
    out.extend_from_slice(&text[span.end..]);
    Some(out)
}

/// The tagged form of `member`'s id `raw` (its JSON text).
pub fn tagged(member: Member, raw: &str) -> String {
    format!("{TAG}{member}/{raw}")
}

/// The member and the id as it wrote it, from a tagged id's raw text;
/// `None` for an id sluice did not tag (or tagged for more members than
/// there are).
pub fn untag_id(id: &[u8], members: usize) -> Option<(Member, String)> {
    let text: String = serde_json::from_slice(id).ok()?;
    let rest = text.strip_prefix(TAG)?;
    let (member, raw) = rest.split_once('/')?;
    let member: Member = member.parse().ok()?;
    // Only an id: a number or a string, as the member wrote it.
    let valid = serde_json::from_str::<serde_json::Value>(raw)
        .is_ok_and(|v| v.is_string() || v.is_number());
    (member < members && valid).then(|| (member, raw.to_owned()))
}

/// `text` (a message whose id is the raw slice `id`) with the id `raw`.
pub fn restore_id(text: &[u8], id: &[u8], raw: &str) -> Option<Vec<u8>> {
    let span = span_in(text, id)?;
    let mut out = Vec::with_capacity(text.len());
    out.extend_from_slice(&text[..span.start]);
    out.extend_from_slice(raw.as_bytes());
    out.extend_from_slice(&text[span.end..]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jsonrpc::Classified;

    #[test]
    fn a_string_is_replaced_where_it_lies() {
        let text = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"gh__find","arguments":{"n":1.50}}}"#;
        let out = replace_string(text, &["params", "name"], "search").unwrap();
        assert_eq!(
            out,
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search","arguments":{"n":1.50}}}"#
        );
        assert_eq!(
            replace_string(text, &["params", "arguments"], "x"),
            None,
            "not a string"
        );
        assert_eq!(replace_string(text, &["params", "nope"], "x"), None);
        let nested = br#"{"params":{"ref":{"type":"ref/prompt","name":"p__x"}}}"#;
        let out = replace_string(nested, &["params", "ref", "name"], "x").unwrap();
        assert_eq!(
            out,
            br#"{"params":{"ref":{"type":"ref/prompt","name":"x"}}}"#
        );
    }

    #[test]
    fn ids_are_tagged_with_their_member_and_restored_byte_for_byte() {
        for raw in [
            r#"7"#,
            r#""abc""#,
            r#"1.0"#,
            r#""sluice/1/2""#,
            r#"12345678901234567890"#,
        ] {
            let text =
                format!(r#"{{"jsonrpc":"2.0","id":{raw},"method":"sampling/createMessage"}}"#);
            let Ok(Classified::Single(m)) = jsonrpc::classify(text.as_bytes(), &Default::default())
            else {
                panic!("one message");
            };
            let tagged = tag_id(text.as_bytes(), m.id.unwrap(), 3).unwrap();
            let Ok(Classified::Single(t)) = jsonrpc::classify(&tagged, &Default::default()) else {
                panic!("still one message");
            };
            let (member, back) = untag_id(t.id.unwrap(), 4).unwrap();
            assert_eq!((member, back.as_str()), (3, raw));
            // The client answers with the tag; the member gets its own id.
            let answer = format!(
                r#"{{"jsonrpc":"2.0","id":{},"result":{{}}}}"#,
                String::from_utf8_lossy(t.id.unwrap())
            );
            let Ok(Classified::Single(a)) =
                jsonrpc::classify(answer.as_bytes(), &Default::default())
            else {
                panic!("one answer");
            };
            let restored = restore_id(answer.as_bytes(), a.id.unwrap(), &back).unwrap();
            assert_eq!(
                String::from_utf8(restored).unwrap(),
                format!(r#"{{"jsonrpc":"2.0","id":{raw},"result":{{}}}}"#)
            );
        }
        assert_eq!(untag_id(br#""sluice/9/1""#, 4), None, "no such member");
        assert_eq!(untag_id(br#""other""#, 4), None);
        assert_eq!(untag_id(br#""sluice/1/{}""#, 4), None, "not an id");
        assert_eq!(untag_id(b"5", 4), None);
    }
}
