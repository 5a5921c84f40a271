//! Which member serves a resource URI. Resources keep their URIs in a
//! federation (a URI is an address, not a name to curate): the table is
//! learned from the members' `resources/list` and
//! `resources/templates/list` answers.

use std::collections::BTreeMap;

use serde_json::value::RawValue;

use super::catalog::Member;

/// Longest URI template read (longer ones are not learned).
const MAX_TEMPLATE: usize = 1024;
/// Most expressions in one template.
const MAX_EXPRESSIONS: usize = 16;

/// URIs and URI templates, each with the member that listed it.
#[derive(Debug, Clone, Default)]
pub struct Resources {
    exact: BTreeMap<String, Member>,
    templates: Vec<(Template, Member)>,
}

impl Resources {
    /// Learns the `uri` of each item of a member's `resources` (a JSON
    /// array's text); the first member to list a URI keeps it.
    pub fn learn(&mut self, member: Member, resources: &[u8]) {
        for uri in strings_of(resources, "uri") {
            self.exact.entry(uri).or_insert(member);
        }
    }

    /// Learns the `uriTemplate` of each item of a member's
    /// `resourceTemplates`.
    pub fn learn_templates(&mut self, member: Member, templates: &[u8]) {
        for text in strings_of(templates, "uriTemplate") {
            let known = self.templates.iter().any(|(t, _)| t.text == text);
            if !known && let Some(t) = Template::parse(&text) {
                self.templates.push((t, member));
            }
        }
    }

    /// The member that serves `uri`: the one that listed it, else the
    /// first (in the order learned) whose template matches it.
    pub fn route(&self, uri: &str) -> Option<Member> {
        if let Some(m) = self.exact.get(uri) {
            return Some(*m);
        }
        self.templates
            .iter()
            .find(|(t, _)| t.matches(uri))
            .map(|(_, m)| *m)
    }
}

/// The string `key` of each object in a JSON array's text.
fn strings_of(array: &[u8], key: &str) -> Vec<String> {
    let Ok(items) = serde_json::from_slice::<Vec<&RawValue>>(array) else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| {
            let fields = serde_json::from_str::<BTreeMap<String, &RawValue>>(item.get()).ok()?;
            serde_json::from_str(fields.get(key)?.get()).ok()
        })
        .collect()
}

/// An RFC 6570 URI template, for matching: literal text and expressions.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Template {
    text: String,
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    /// `{x}` and most operators: one or more characters of one segment.
    Segment,
    /// `{+x}`, `{#x}`: one or more characters, `/` included.
    Reserved,
    /// `{?x}`, `{&x}`: a query, or nothing.
    Query,
}

impl Template {
    fn parse(text: &str) -> Option<Template> {
        if text.len() > MAX_TEMPLATE {
            return None;
        }
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(Part::Literal(rest[..open].to_owned()));
            }
            let close = rest[open..].find('}')? + open;
            let expr = &rest[open + 1..close];
            parts.push(match expr.chars().next()? {
                '+' | '#' => Part::Reserved,
                '?' | '&' => Part::Query,
                _ => Part::Segment,
            });
            rest = &rest[close + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_owned()));
        }
        let expressions = parts
            .iter()
            .filter(|p| !matches!(p, Part::Literal(_)))
            .count();
        (expressions <= MAX_EXPRESSIONS).then(|| Template {
            text: text.to_owned(),
            parts,
        })
    }

    fn matches(&self, uri: &str) -> bool {
        match_parts(&self.parts, uri)
    }
}

fn match_parts(parts: &[Part], uri: &str) -> bool {
    let Some((first, rest)) = parts.split_first() else {
        return uri.is_empty();
    };
    match first {
        Part::Literal(l) => uri
            .strip_prefix(l.as_str())
            .is_some_and(|u| match_parts(rest, u)),
        Part::Query => (uri.starts_with(['?', '&']) && rest.is_empty()) || match_parts(rest, uri),
        Part::Segment | Part::Reserved => {
            let stop = |c: char| *first == Part::Segment && matches!(c, '/' | '?' | '#');
            // Every split point where the expression could end, longest
            // last; templates are short and bounded, so this stays small.
            let mut ends = uri
                .char_indices()
                .skip(1)
                .map(|(i, _)| i)
                .chain(std::iter::once(uri.len()));
            let limit = uri.find(stop).unwrap_or(uri.len());
            !uri.is_empty()
                && !uri.starts_with(stop)
                && ends.any(|end| end <= limit && match_parts(rest, &uri[end..]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listed_uris_then_templates_route_reads() {
        let mut r = Resources::default();
        r.learn(
            0,
            br#"[{"uri":"file:///a.txt","name":"a"},{"uri":"mem://x"}]"#,
        );
        r.learn(1, br#"[{"uri":"file:///a.txt"},{"uri":"db://t/1"}]"#);
        r.learn_templates(1, br#"[{"uriTemplate":"db://{table}/{id}","name":"row"}]"#);
        r.learn_templates(
            0,
            br#"[{"uriTemplate":"file:///{+path}"},{"uriTemplate":"search://q{?q,n}"}]"#,
        );
        assert_eq!(r.route("file:///a.txt"), Some(0), "the first to list it");
        assert_eq!(r.route("db://t/1"), Some(1));
        assert_eq!(r.route("db://users/42"), Some(1));
        assert_eq!(r.route("db://users/42/x"), None, "a segment has no slash");
        assert_eq!(
            r.route("file:///deep/dir/b.txt"),
            Some(0),
            "reserved takes slashes"
        );
        assert_eq!(r.route("search://q?q=x&n=2"), Some(0));
        assert_eq!(r.route("search://q"), Some(0));
        assert_eq!(r.route("other://x"), None);
        assert_eq!(r.route("db:///1"), None, "an expression is never empty");
    }

    #[test]
    fn unreadable_lists_and_templates_teach_nothing() {
        let mut r = Resources::default();
        r.learn(0, b"{}");
        r.learn_templates(0, br#"[{"uriTemplate":"x{unclosed"},{"uriTemplate":7}]"#);
        assert_eq!(r.route("x{unclosed"), None);
        let many = "{a}".repeat(MAX_EXPRESSIONS + 1);
        assert!(Template::parse(&many).is_none());
    }
}
