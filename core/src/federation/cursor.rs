//! The opaque cursor of a merged list: where each member's list stands.
//!
//! A merged page holds a page of every member still listing; its
//! `nextCursor` carries each member's own next cursor (or that it is done)
//! and the members it was made for, so a cursor from another federation,
//! or from before its members changed, is refused rather than misread. It
//! is base64url of a small JSON text: opaque to clients, as MCP requires,
//! and readable by any replica, since it holds nothing secret.

use serde_json::{Value, json};

use crate::base64;

/// Where each member's list stands, in member order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergedCursor {
    /// Per member: `Some(cursor)` to ask for its next page with, `None`
    /// when its list is done.
    pub next: Vec<Option<String>>,
}

/// A cursor sluice did not make, or made for other members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignCursor;

impl std::fmt::Display for ForeignCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a cursor this federation did not make (or made before its members changed)")
    }
}

impl std::error::Error for ForeignCursor {}

impl MergedCursor {
    /// The first page: every member, from its start.
    pub fn start(members: usize) -> Self {
        MergedCursor {
            next: vec![Some(String::new()); members],
        }
    }

    /// The members to ask for the page this cursor points at, each with
    /// its own cursor (`None`: its first page).
    pub fn asks(&self) -> Vec<(usize, Option<&str>)> {
        self.next
            .iter()
            .enumerate()
            .filter_map(|(m, c)| {
                let c = c.as_deref()?;
                Some((m, (!c.is_empty()).then_some(c)))
            })
            .collect()
    }

    /// The cursor after a page on which each member asked answered
    /// `answers` (its `nextCursor`, if any); `None` when every list is done.
    /// A member that was not asked, or failed, is done.
    pub fn after(&self, answers: &[(usize, Option<String>)]) -> Option<MergedCursor> {
        let next: Vec<Option<String>> = (0..self.next.len())
            .map(|m| {
                answers
                    .iter()
                    .find(|(a, _)| *a == m)
                    .and_then(|(_, c)| c.clone())
                    .filter(|c| !c.is_empty())
            })
            .collect();
        next.iter()
            .any(Option::is_some)
            .then_some(MergedCursor { next })
    }

    /// The cursor as clients see it, for a federation of `members` (their
    /// names, in order).
    pub fn encode(&self, members: &[&str]) -> String {
        let text = json!({"v": 1, "m": members, "c": self.next}).to_string();
        base64::encode_url(text.as_bytes())
    }

    /// The cursor a client sent, for a federation of `members`.
    pub fn decode(cursor: &str, members: &[&str]) -> Result<Self, ForeignCursor> {
        let bytes = base64::decode_url(cursor).ok_or(ForeignCursor)?;
        let v: Value = serde_json::from_slice(&bytes).map_err(|_| ForeignCursor)?;
        if v["v"] != 1 || v["m"] != json!(members) {
            return Err(ForeignCursor);
        }
        let next = v["c"]
            .as_array()
            .filter(|c| c.len() == members.len())
            .ok_or(ForeignCursor)?
            .iter()
            .map(|c| match c {
                Value::Null => Ok(None),
                Value::String(s) if !s.is_empty() => Ok(Some(s.clone())),
                _ => Err(ForeignCursor),
            })
            .collect::<Result<_, _>>()?;
        Ok(MergedCursor { next })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEMBERS: [&str; 3] = ["gh", "fs", "time"];

    #[test]
    fn pages_walk_each_member_to_its_end() {
        let first = MergedCursor::start(3);
        assert_eq!(first.asks(), vec![(0, None), (1, None), (2, None)]);
        let next = first
            .after(&[(0, Some("g2".into())), (1, None), (2, Some(String::new()))])
            .unwrap();
        let text = next.encode(&MEMBERS);
        assert!(
            text.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        let back = MergedCursor::decode(&text, &MEMBERS).unwrap();
        assert_eq!(back, next);
        assert_eq!(back.asks(), vec![(0, Some("g2"))], "only who has more");
        assert_eq!(back.after(&[(0, None)]), None, "all done: no nextCursor");
    }

    #[test]
    fn foreign_cursors_are_refused() {
        let c = MergedCursor::start(3)
            .after(&[(0, Some("x".into()))])
            .unwrap();
        let text = c.encode(&MEMBERS);
        assert_eq!(
            MergedCursor::decode(&text, &["gh", "fs"]),
            Err(ForeignCursor)
        );
        assert_eq!(
            MergedCursor::decode(&text, &["fs", "gh", "time"]),
            Err(ForeignCursor)
        );
        for junk in [
            "",
            "a",
            "!!!!",
            "e30",
            &base64::encode_url(br#"{"v":1,"m":["gh","fs","time"],"c":[1,null,null]}"#),
        ] {
            assert_eq!(
                MergedCursor::decode(junk, &MEMBERS),
                Err(ForeignCursor),
                "{junk}"
            );
        }
    }
}
