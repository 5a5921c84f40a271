//! What a member's tools and prompts are called at the federation's
//! endpoint: include and exclude globs, aliases, a prefix, and the limits
//! clients enforce on a name.

use std::fmt;

/// The longest name sluice exposes: the limit the model APIs clients
/// forward tools to enforce (`^[a-zA-Z0-9_-]{1,64}$`), which a name MCP
/// itself allows (up to 128) may break.
pub const MAX_NAME_LEN: usize = 64;

/// The separator between a member's prefix and a name by default. Two
/// characters, so that prefix `a` with `b_c` and prefix `a_b` with `c`
/// stay apart, and inside the characters every client accepts.
pub const DEFAULT_SEPARATOR: &str = "__";

/// When a member's names get its prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PrefixMode {
    /// Always.
    Always,
    /// Only when the federation has more than one member (one server
    /// behind an endpoint keeps its names).
    #[default]
    Conditional,
    /// Never: the names must not collide across members.
    Never,
}

/// A `*` / `?` pattern over names: `*` any run of characters, `?` one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob(Vec<char>);

impl Glob {
    /// `pattern` as a glob; every character but `*` and `?` is literal.
    pub fn new(pattern: &str) -> Self {
        Glob(pattern.chars().collect())
    }

    /// Whether `name` matches, whole. Linear in the two lengths' product
    /// at worst (no backtracking beyond the last `*`).
    pub fn matches(&self, name: &str) -> bool {
        let name: Vec<char> = name.chars().collect();
        let (p, n) = (&self.0, &name);
        let (mut i, mut j) = (0, 0);
        // Where the last `*` was, and where in `name` it resumed.
        let mut star: Option<(usize, usize)> = None;
        while j < n.len() {
            if i < p.len() && (p[i] == '?' || (p[i] != '*' && p[i] == n[j])) {
                i += 1;
                j += 1;
            } else if i < p.len() && p[i] == '*' {
                star = Some((i, j));
                i += 1;
            } else if let Some((si, sj)) = star {
                i = si + 1;
                j = sj + 1;
                star = Some((si, sj + 1));
            } else {
                return false;
            }
        }
        p[i..].iter().all(|c| *c == '*')
    }
}

impl fmt::Display for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|c| write!(f, "{c}"))
    }
}

/// How one member's names (of tools, or of prompts) are shown: filtered
/// by `include` (when not empty) and `exclude`, renamed by `aliases`, then
/// prefixed as `prefix_mode` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Curation {
    /// The prefix (the member's name by default).
    pub prefix: String,
    /// When it applies.
    pub prefix_mode: PrefixMode,
    /// Between the prefix and the name.
    pub separator: String,
    /// Only names matching one of these (all when empty).
    pub include: Vec<Glob>,
    /// No name matching one of these.
    pub exclude: Vec<Glob>,
    /// Old name → new name, before the prefix.
    pub aliases: Vec<(String, String)>,
    /// Name (the member's own) → the description clients see instead.
    pub descriptions: Vec<(String, String)>,
}

impl Curation {
    /// A member's default curation: its name as the prefix.
    pub fn new(prefix: impl Into<String>) -> Self {
        Curation {
            prefix: prefix.into(),
            prefix_mode: PrefixMode::default(),
            separator: DEFAULT_SEPARATOR.to_owned(),
            include: Vec::new(),
            exclude: Vec::new(),
            aliases: Vec::new(),
            descriptions: Vec::new(),
        }
    }

    /// The name `name` (as the member calls it) is shown under, in a
    /// federation of `members` members; `None` when it is filtered out.
    /// The filters see the member's own name, the aliases map it.
    pub fn expose(&self, name: &str, members: usize) -> Option<String> {
        if !self.include.is_empty() && !self.include.iter().any(|g| g.matches(name)) {
            return None;
        }
        if self.exclude.iter().any(|g| g.matches(name)) {
            return None;
        }
        let renamed = self
            .aliases
            .iter()
            .find(|(old, _)| old == name)
            .map_or(name, |(_, new)| new.as_str());
        Some(if self.prefixed(members) {
            format!("{}{}{renamed}", self.prefix, self.separator)
        } else {
            renamed.to_owned()
        })
    }

    /// Whether names get the prefix in a federation of `members`.
    pub fn prefixed(&self, members: usize) -> bool {
        match self.prefix_mode {
            PrefixMode::Always => true,
            PrefixMode::Conditional => members > 1,
            PrefixMode::Never => false,
        }
    }

    /// The description shown for the member's `name`, when overridden.
    pub fn description(&self, name: &str) -> Option<&str> {
        self.descriptions
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, d)| d.as_str())
    }

    /// What can be known wrong before any member answers: an alias or a
    /// prefix that makes a name too long or unusable however the member
    /// names its tools.
    pub fn check(&self, members: usize) -> Vec<NameError> {
        let mut errors = Vec::new();
        for (old, new) in &self.aliases {
            if let Some(shown) = self.expose(old, members)
                && let Err(e) = check_name(&shown)
            {
                errors.push(e);
            }
            if new.is_empty() {
                errors.push(NameError::Empty);
            }
        }
        if self.prefixed(members) {
            let head = format!("{}{}", self.prefix, self.separator);
            // Room for a name of one character at least.
            if head.chars().count() >= MAX_NAME_LEN {
                errors.push(NameError::TooLong { name: head });
            } else if let Err(e) = check_name(&format!("{head}x")) {
                errors.push(e);
            }
        }
        errors
    }
}

/// Why a name cannot be shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameError {
    /// No characters.
    Empty,
    /// Longer than [`MAX_NAME_LEN`].
    TooLong {
        /// The name.
        name: String,
    },
    /// A character outside `A-Z a-z 0-9 _ - .`.
    Character {
        /// The name.
        name: String,
        /// The character.
        found: char,
    },
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameError::Empty => f.write_str("an empty name"),
            NameError::TooLong { name } => write!(
                f,
                "{name:?} is {} characters long; clients accept at most {MAX_NAME_LEN}",
                name.chars().count()
            ),
            NameError::Character { name, found } => write!(
                f,
                "{name:?} has {found:?}; names are letters, digits, '_', '-' and '.'"
            ),
        }
    }
}

impl std::error::Error for NameError {}

/// Whether clients accept `name`: 1 to [`MAX_NAME_LEN`] characters of
/// `A-Z a-z 0-9 _ - .` (MCP's own rule for tool names, within the length
/// model APIs allow).
pub fn check_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if let Some(found) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        return Err(NameError::Character {
            name: name.to_owned(),
            found,
        });
    }
    if name.chars().count() > MAX_NAME_LEN {
        return Err(NameError::TooLong {
            name: name.to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_whole_names() {
        let g = |p: &str, n: &str| Glob::new(p).matches(n);
        assert!(g("*", ""));
        assert!(g("*", "anything"));
        assert!(g("get_*", "get_user"));
        assert!(!g("get_*", "xget_user"));
        assert!(g("*_user", "get_user"));
        assert!(g("g?t", "get"));
        assert!(!g("g?t", "gt"));
        assert!(g("*a*b*", "xxaxxbxx"));
        assert!(!g("*a*b", "xxaxxbxx"));
        assert!(g("a*b*c", "abbbc"));
        assert!(g("delete", "delete"));
        assert!(!g("delete", "delete_all"));
        assert!(g("日*", "日本"));
        // Long runs of stars stay cheap.
        let name = "a".repeat(2000);
        assert!(!Glob::new(&format!("{}b", "*a".repeat(50))).matches(&name));
    }

    fn curation() -> Curation {
        let mut c = Curation::new("gh");
        c.include = vec![Glob::new("*issue*"), Glob::new("search")];
        c.exclude = vec![Glob::new("delete_*")];
        c.aliases = vec![("search".into(), "find".into())];
        c
    }

    #[test]
    fn filters_then_aliases_then_the_prefix() {
        let c = curation();
        assert_eq!(
            c.expose("create_issue", 2).as_deref(),
            Some("gh__create_issue")
        );
        assert_eq!(
            c.expose("create_issue", 1).as_deref(),
            Some("create_issue"),
            "conditional"
        );
        assert_eq!(
            c.expose("search", 2).as_deref(),
            Some("gh__find"),
            "the filters see the old name"
        );
        assert_eq!(c.expose("delete_issue", 2), None, "excluded");
        assert_eq!(c.expose("list_repos", 2), None, "not included");
        let always = Curation {
            prefix_mode: PrefixMode::Always,
            separator: ".".into(),
            ..Curation::new("gh")
        };
        assert_eq!(always.expose("x", 1).as_deref(), Some("gh.x"));
        let never = Curation {
            prefix_mode: PrefixMode::Never,
            ..Curation::new("gh")
        };
        assert_eq!(never.expose("x", 5).as_deref(), Some("x"));
    }

    #[test]
    fn what_is_wrong_at_start_is_said_at_start() {
        let mut c = Curation::new("p".repeat(70));
        assert!(matches!(c.check(2)[..], [NameError::TooLong { .. }]));
        assert!(c.check(1).is_empty(), "no prefix with one member");
        c.prefix = "gh".into();
        c.aliases = vec![("a".into(), "b".repeat(63))];
        let errors = c.check(2);
        assert!(
            matches!(errors[..], [NameError::TooLong { .. }]),
            "{errors:?}"
        );
        assert!(
            errors[0].to_string().contains("67 characters"),
            "{}",
            errors[0]
        );
        c.aliases = vec![("a".into(), "no spaces".into())];
        assert!(matches!(
            c.check(2)[..],
            [NameError::Character { found: ' ', .. }]
        ));
        assert_eq!(check_name("a.b-c_D9"), Ok(()));
        assert_eq!(check_name(""), Err(NameError::Empty));
    }
}
