//! The federation's view of its members' tools and prompts: each list a
//! member answers is shown under its curated names, merged in member
//! order, and remembered, so that a call by a shown name finds the member
//! and the name it has there.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::value::RawValue;

use super::names::{Curation, NameError, check_name};
use crate::jsonrpc;

/// A member, by its place in the federation's configuration.
pub type Member = usize;

/// Something a list could not show as the member gave it; the rest of
/// the list is shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The curated name is not one clients accept: left out.
    Name {
        /// Whose.
        member: Member,
        /// The member's own name.
        name: String,
        /// What is wrong with the curated one.
        error: NameError,
    },
    /// Two members' items have one curated name: the first member's (in
    /// configuration order, or the one shown first) is kept.
    Collision {
        /// The curated name.
        name: String,
        /// The member whose item is shown.
        kept: Member,
        /// The member whose item is left out.
        dropped: Member,
    },
    /// An item without a string `name`, or a list that is not an array of
    /// objects: left out.
    Unreadable {
        /// Whose.
        member: Member,
        /// What was wrong.
        why: String,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Name {
                member,
                name,
                error,
            } => {
                write!(f, "member {member}'s {name:?} is left out: {error}")
            }
            Problem::Collision {
                name,
                kept,
                dropped,
            } => write!(
                f,
                "{name:?} is a name of members {kept} and {dropped}; member {dropped}'s is left out"
            ),
            Problem::Unreadable { member, why } => write!(f, "member {member}'s list: {why}"),
        }
    }
}

/// Where a shown name leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The member.
    pub member: Member,
    /// The name there.
    pub name: String,
}

/// One kind of named item (tools, or prompts) across the members.
#[derive(Debug, Clone)]
pub struct Catalog {
    curations: Vec<Curation>,
    /// Shown name → where it leads, from the lists seen so far.
    seen: BTreeMap<String, Target>,
}

impl Catalog {
    /// A catalog of the members curated as `curations` (one per member, in
    /// configuration order), knowing no list yet.
    pub fn new(curations: Vec<Curation>) -> Self {
        Catalog {
            curations,
            seen: BTreeMap::new(),
        }
    }

    /// Members in the federation.
    pub fn members(&self) -> usize {
        self.curations.len()
    }

    /// What is wrong before any member answers, in words for the operator:
    /// a prefix or alias that breaks the name rules, two members with one
    /// prefix (their names could collide however they are called).
    pub fn check(&self) -> Vec<String> {
        let members = self.curations.len();
        let mut errors = Vec::new();
        for (m, c) in self.curations.iter().enumerate() {
            errors.extend(
                c.check(members)
                    .into_iter()
                    .map(|e| format!("member {m}: {e}")),
            );
            let prefixed = c.prefixed(members);
            let twin = self.curations[..m]
                .iter()
                .position(|o| o.prefix == c.prefix && o.separator == c.separator);
            if let (true, Some(twin)) = (prefixed, twin) {
                errors.push(format!(
                    "members {twin} and {m} have one prefix, {:?}: give one of them another",
                    c.prefix
                ));
            }
        }
        errors
    }

    /// One page of the merged list: `pages` holds, in member order, the
    /// items (a JSON array's text, e.g. a `tools/list` result's `tools`)
    /// of each member that answered. Each item keeps its text but for its
    /// `name` (and `description`, when overridden); items are left out, and
    /// said why, when they are filtered, unreadable, badly named or
    /// collide. Returns the merged array's text.
    pub fn merge(&mut self, pages: &[(Member, &[u8])]) -> (Vec<u8>, Vec<Problem>) {
        let mut out = b"[".to_vec();
        let mut problems = Vec::new();
        let mut shown_here: BTreeMap<String, Member> = BTreeMap::new();
        let mut pages: Vec<&(Member, &[u8])> = pages.iter().collect();
        pages.sort_by_key(|(m, _)| *m);
        for &&(member, items) in &pages {
            let Some(curation) = self.curations.get(member) else {
                continue;
            };
            let items = match serde_json::from_slice::<Vec<&RawValue>>(items) {
                Ok(items) => items,
                Err(e) => {
                    problems.push(Problem::Unreadable {
                        member,
                        why: format!("not an array: {e}"),
                    });
                    continue;
                }
            };
            for item in items {
                let text = item.get().as_bytes();
                // Read once: the name here, the spans to rewrite below.
                let fields = serde_json::from_slice::<Fields<'_>>(text).ok();
                let Some(name) = fields.as_ref().and_then(name_of) else {
                    problems.push(Problem::Unreadable {
                        member,
                        why: "an item without a string name".into(),
                    });
                    continue;
                };
                let Some(shown) = curation.expose(&name, self.curations.len()) else {
                    continue;
                };
                if let Err(error) = check_name(&shown) {
                    problems.push(Problem::Name {
                        member,
                        name,
                        error,
                    });
                    continue;
                }
                let earlier = shown_here.get(&shown).copied().or_else(|| {
                    self.seen
                        .get(&shown)
                        .filter(|t| t.member != member || t.name != name)
                        .map(|t| t.member)
                });
                if let Some(kept) = earlier {
                    problems.push(Problem::Collision {
                        name: shown,
                        kept,
                        dropped: member,
                    });
                    continue;
                }
                let rewritten = fields
                    .as_ref()
                    .and_then(|fields| rewrite(text, fields, &shown, curation.description(&name)));
                let Some(rewritten) = rewritten else {
                    problems.push(Problem::Unreadable {
                        member,
                        why: format!("{name:?} is not an object"),
                    });
                    continue;
                };
                if out.len() > 1 {
                    out.push(b',');
                }
                out.extend_from_slice(&rewritten);
                shown_here.insert(shown.clone(), member);
                self.seen.insert(shown, Target { member, name });
            }
        }
        out.push(b']');
        (out, problems)
    }

    /// Where the shown name `shown` leads: the lists seen say, else the
    /// curations do when only one member's could have shown it (each
    /// member's prefix, aliases and filters reversed); when several could,
    /// their lists must be read first.
    pub fn resolve(&self, shown: &str) -> Resolved {
        if let Some(t) = self.seen.get(shown) {
            return Resolved::Known(t.clone());
        }
        let members = self.curations.len();
        let candidates: Vec<Target> = self
            .curations
            .iter()
            .enumerate()
            .filter_map(|(member, c)| {
                let name = unexpose(c, shown, members)?;
                Some(Target { member, name })
            })
            .collect();
        // Every member's curation was reversed: one candidate is the only
        // member that could show the name (whether it has the item, its
        // own answer tells).
        match candidates.len() {
            0 => Resolved::Unknown,
            1 => Resolved::Known(candidates.into_iter().next().expect("one")),
            _ => Resolved::Ask(candidates.into_iter().map(|t| t.member).collect()),
        }
    }
}

/// What [`Catalog::resolve`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    /// This member, under this name.
    Known(Target),
    /// One of these members may have it: their lists tell.
    Ask(Vec<Member>),
    /// No member can show this name.
    Unknown,
}

/// The member's own name that `c` would show as `shown`, if any.
fn unexpose(c: &Curation, shown: &str, members: usize) -> Option<String> {
    let prefixed = c.prefixed(members);
    let renamed = if prefixed {
        shown
            .strip_prefix(c.prefix.as_str())?
            .strip_prefix(c.separator.as_str())?
    } else {
        shown
    };
    // An alias's new name leads to its old one; an old name is no longer
    // shown (unless another alias shows it).
    let name = match c.aliases.iter().find(|(_, new)| new == renamed) {
        Some((old, _)) => old.clone(),
        None if c.aliases.iter().any(|(old, _)| old == renamed) => return None,
        None => renamed.to_owned(),
    };
    (c.expose(&name, members).as_deref() == Some(shown)).then_some(name)
}

/// What the catalog reads of an item: the JSON text of its `name` and
/// `description`, the rest skipped unread. A key given twice counts as
/// its last, as JavaScript's and Python's readers take it, so sluice
/// rewrites the name a client will see.
#[derive(Default)]
struct Fields<'a> {
    name: Option<&'a RawValue>,
    description: Option<&'a RawValue>,
}

impl<'de> serde::Deserialize<'de> for Fields<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Fields<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut fields = Fields::default();
                while let Some(key) = map.next_key::<Key>()? {
                    match key {
                        Key::Name => fields.name = Some(map.next_value()?),
                        Key::Description => fields.description = Some(map.next_value()?),
                        Key::Other => {
                            map.next_value::<serde::de::IgnoredAny>()?;
                        }
                    }
                }
                Ok(fields)
            }
        }
        d.deserialize_map(Visitor)
    }
}

/// An item's key, as far as the catalog cares; compared after unescaping
/// (`"na\u006de"` is `name`), without keeping it.
enum Key {
    Name,
    Description,
    Other,
}

impl<'de> serde::Deserialize<'de> for Key {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<Key, E> {
                Ok(match key {
                    "name" => Key::Name,
                    "description" => Key::Description,
                    _ => Key::Other,
                })
            }
        }
        d.deserialize_str(Visitor)
    }
}

/// The item's `name`, when it is a string.
fn name_of(fields: &Fields<'_>) -> Option<String> {
    serde_json::from_str(fields.name?.get()).ok()
}

/// `item` with its `name` set to `name` and, when given, its
/// `description` to `description`; every other byte as it was.
/// `fields` are the item's, read from it.
fn rewrite(
    item: &[u8],
    fields: &Fields<'_>,
    name: &str,
    description: Option<&str>,
) -> Option<Vec<u8>> {
    let mut edits: Vec<(std::ops::Range<usize>, Vec<u8>)> = Vec::new();
    let string = |s: &str| {
        let mut v = Vec::with_capacity(s.len() + 2);
        jsonrpc::write_json_string(&mut v, s);
        v
    };
    edits.push((span_in(item, fields.name?.get().as_bytes())?, string(name)));
    if let Some(d) = description {
        match fields.description {
            Some(old) => edits.push((span_in(item, old.get().as_bytes())?, string(d))),
            None => {
                // A new member, first: right after the opening brace.
                let at = item.iter().position(|&b| b == b'{')? + 1;
                let mut member = b"\"description\":".to_vec();
                member.extend_from_slice(&string(d));
                member.push(b',');
                edits.push((at..at, member));
            }
        }
    }
    edits.sort_by_key(|(span, _)| span.start);
    let mut out = Vec::with_capacity(item.len() + 32);
    let mut at = 0;
    for (span, with) in edits {
        out.extend_from_slice(&item[at..span.start]);
        out.extend_from_slice(&with);
        at = span.end;
    }
    out.extend_from_slice(&item[at..]);
    Some(out)
}

/// Where `part`, a slice of `whole`, lies in it.
fn span_in(whole: &[u8], part: &[u8]) -> Option<std::ops::Range<usize>> {
    let start = (part.as_ptr() as usize).checked_sub(whole.as_ptr() as usize)?;
    let end = start + part.len();
    (end <= whole.len()).then_some(start..end)
}

#[cfg(test)]
mod tests {
    use super::super::names::{Glob, PrefixMode};
    use super::*;

    fn two() -> Catalog {
        let mut gh = Curation::new("gh");
        gh.aliases = vec![("search".into(), "find".into())];
        gh.descriptions = vec![("find_issue".into(), "Look an issue up".into())];
        let mut fs = Curation::new("fs");
        fs.exclude = vec![Glob::new("write_*")];
        Catalog::new(vec![gh, fs])
    }

    #[test]
    fn an_items_name_is_read_as_a_client_reads_it() {
        let mut c = two();
        // A key given twice counts as its last; an escaped key is the key
        // it spells; the rewrite changes the name a client sees.
        let fs = br#"[{"name":"decoy","x":{"name":"deep"},"name":"read_file"},{"na\u006de":"stat","description":"d"}]"#;
        let (merged, problems) = c.merge(&[(1, fs)]);
        assert!(problems.is_empty(), "{problems:?}");
        let items: Vec<serde_json::Value> = serde_json::from_slice(&merged).unwrap();
        let names: Vec<&str> = items.iter().map(|i| i["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["fs__read_file", "fs__stat"]);
        assert_eq!(
            items[0]["x"]["name"], "deep",
            "a nested name is not the item's"
        );
        // Not an object, or a name that is not a string: left out, said.
        let (merged, problems) = c.merge(&[(1, br#"[7, {"name": 7}, {"name":"ok"}]"#)]);
        assert_eq!(String::from_utf8(merged).unwrap(), r#"[{"name":"fs__ok"}]"#);
        assert_eq!(problems.len(), 2, "{problems:?}");
    }

    #[test]
    fn a_page_is_merged_in_member_order_with_curated_names_and_untouched_bytes() {
        let mut c = two();
        let gh = br#"[{"name":"search","inputSchema":{"type":"object","n":1.50}},{"description":"old","name":"find_issue"}]"#;
        let fs = br#"[ {"name":"read_file","title":"R"}, {"name":"write_file"} ]"#;
        let (merged, problems) = c.merge(&[(1, fs), (0, gh)]);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            String::from_utf8(merged).unwrap(),
            r#"[{"name":"gh__find","inputSchema":{"type":"object","n":1.50}},{"description":"Look an issue up","name":"gh__find_issue"},{"name":"fs__read_file","title":"R"}]"#
        );
        assert_eq!(
            c.resolve("gh__find"),
            Resolved::Known(Target {
                member: 0,
                name: "search".into()
            })
        );
        assert_eq!(
            c.resolve("fs__read_file"),
            Resolved::Known(Target {
                member: 1,
                name: "read_file".into()
            })
        );
    }

    #[test]
    fn names_resolve_before_any_list_when_a_prefix_says_whose() {
        let c = two();
        assert_eq!(
            c.resolve("gh__find"),
            Resolved::Known(Target {
                member: 0,
                name: "search".into()
            }),
            "an alias reversed"
        );
        assert_eq!(
            c.resolve("gh__search"),
            Resolved::Unknown,
            "the old name is gone"
        );
        assert_eq!(c.resolve("fs__write_file"), Resolved::Unknown, "excluded");
        assert_eq!(c.resolve("nope"), Resolved::Unknown);
        let mut a = Curation::new("a");
        a.prefix_mode = PrefixMode::Never;
        let mut b = Curation::new("b");
        b.prefix_mode = PrefixMode::Never;
        let c = Catalog::new(vec![a, b]);
        assert_eq!(
            c.resolve("x"),
            Resolved::Ask(vec![0, 1]),
            "only the lists can tell"
        );
        let one = Catalog::new(vec![Curation::new("solo")]);
        assert_eq!(
            one.resolve("x"),
            Resolved::Known(Target {
                member: 0,
                name: "x".into()
            }),
            "one member, conditional: no prefix, and nobody else"
        );
    }

    #[test]
    fn a_shared_prefix_is_refused_at_start() {
        assert!(two().check().is_empty());
        let c = Catalog::new(vec![Curation::new("x"), Curation::new("x")]);
        let errors = c.check();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].contains("members 0 and 1"), "{}", errors[0]);
    }

    #[test]
    fn collisions_bad_names_and_garbage_are_left_out_and_said() {
        let mut a = Curation::new("a");
        a.prefix_mode = PrefixMode::Never;
        let mut b = Curation::new("b");
        b.prefix_mode = PrefixMode::Never;
        let mut c = Catalog::new(vec![a, b]);
        let long = "x".repeat(65);
        let a_items = format!(
            r#"[{{"name":"same"}},{{"name":"{long}"}},{{"name":"has space"}},{{"title":"no name"}}]"#
        );
        let (merged, problems) =
            c.merge(&[(0, a_items.as_bytes()), (1, br#"[{"name":"same","x":1}]"#)]);
        assert_eq!(String::from_utf8(merged).unwrap(), r#"[{"name":"same"}]"#);
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(matches!(
            &problems[0],
            Problem::Name {
                error: NameError::TooLong { .. },
                ..
            }
        ));
        assert!(matches!(
            &problems[1],
            Problem::Name {
                error: NameError::Character { .. },
                ..
            }
        ));
        assert!(matches!(
            &problems[2],
            Problem::Unreadable { member: 0, .. }
        ));
        assert_eq!(
            problems[3],
            Problem::Collision {
                name: "same".into(),
                kept: 0,
                dropped: 1
            }
        );
        assert!(problems[3].to_string().contains("member 1's is left out"));
        // A later page keeps the first owner too.
        let (merged, problems) = c.merge(&[(1, br#"[{"name":"same"}]"#)]);
        assert_eq!(merged, b"[]");
        assert_eq!(problems.len(), 1);
        let (_, problems) = c.merge(&[(0, b"{}")]);
        assert!(matches!(
            &problems[..],
            [Problem::Unreadable { member: 0, .. }]
        ));
    }
}
