//! Which methods a hook sees: the method-pattern grammar, once, as data.
//!
//! An entry is `*` (every method), `prefix/*` (every method under
//! `prefix/`) or one method name, optionally limited to one phase by an
//! `@request`, `@response`, `@server-message` or `@client-answer` suffix:
//! `tools/call@response`. (The last two are the server-to-client phases of
//! `sluice:hook@0.2.0`.) A hook declares
//! its list (`methods()`), and the operator may narrow it; the hook then sees
//! a message only where both lists cover its method in that phase. The hook
//! host, the config and [`super::HookFilter`] all read entries with
//! [`MethodPattern::parse`].

use std::fmt;
use std::str::FromStr;

/// Entries one list may hold.
pub const MAX_PATTERNS: usize = 256;
/// Bytes one entry may hold.
pub const MAX_PATTERN_LEN: usize = 256;

/// A phase a hook can ask for: one name for the exchange's phases and
/// the method lists' suffixes.
pub use super::HookPhase as Phase;

impl Phase {
    /// Its suffix in a method list.
    pub fn suffix(self) -> &'static str {
        match self {
            Phase::Request => "@request",
            Phase::Response => "@response",
            Phase::ServerMessage => "@server-message",
            Phase::ClientAnswer => "@client-answer",
        }
    }

    /// A phase of a server-to-client message (or the client's answer to one).
    pub fn is_server_to_client(self) -> bool {
        matches!(self, Phase::ServerMessage | Phase::ClientAnswer)
    }
}

/// Where a server's messages to its client live: `ping`, every
/// notification, and the client features' requests (sampling, elicitation,
/// roots) and tasks. An entry without a phase covers the server-to-client
/// phases only for these: a hook listing `tools/call` does not make every
/// stream be read for server messages that cannot be `tools/call`.
const SERVER_TO_CLIENT: [&str; 5] = [
    "notifications/",
    "sampling/",
    "elicitation/",
    "roots/",
    "tasks/",
];

/// Whether a message of `method` can travel from a server to its client.
pub fn travels_server_to_client(method: &str) -> bool {
    method == "ping" || SERVER_TO_CLIENT.iter().any(|p| method.starts_with(p))
}

const PHASES: [Phase; 4] = [
    Phase::Request,
    Phase::Response,
    Phase::ServerMessage,
    Phase::ClientAnswer,
];

/// One entry of a method list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MethodPattern {
    methods: Methods,
    /// `None`: every phase.
    phase: Option<Phase>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Methods {
    All,
    /// Every method starting with this (which ends in `/`).
    Under(String),
    Exactly(String),
}

/// Why an entry is not a method pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatternError {
    /// The entry (without its phase) is empty.
    Empty,
    /// Longer than [`MAX_PATTERN_LEN`].
    TooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// A `*` other than the whole pattern or a final `/*`.
    Star {
        /// The pattern.
        pattern: String,
    },
    /// An `@` other than a phase suffix at the end.
    Phase {
        /// The entry.
        entry: String,
    },
    /// More than [`MAX_PATTERNS`] entries in one list.
    TooMany,
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PatternError::Empty => f.write_str("a method name cannot be empty"),
            PatternError::TooLong { len } => write!(
                f,
                "a method pattern of {len} bytes is longer than {MAX_PATTERN_LEN}"
            ),
            PatternError::Star { pattern } => write!(
                f,
                "{pattern:?}: '*' may only be the whole pattern or a final \"/*\""
            ),
            PatternError::Phase { entry } => write!(
                f,
                "{entry:?}: a phase is \"@request\", \"@response\", \"@server-message\" or \"@client-answer\" at the end"
            ),
            PatternError::TooMany => write!(f, "more than {MAX_PATTERNS} method patterns"),
        }
    }
}

impl std::error::Error for PatternError {}

impl MethodPattern {
    /// Reads one entry.
    pub fn parse(entry: &str) -> Result<MethodPattern, PatternError> {
        let (pattern, phase) = PHASES
            .iter()
            .find_map(|&p| entry.strip_suffix(p.suffix()).map(|rest| (rest, Some(p))))
            .unwrap_or((entry, None));
        if pattern.is_empty() {
            return Err(PatternError::Empty);
        }
        if pattern.len() > MAX_PATTERN_LEN {
            return Err(PatternError::TooLong { len: pattern.len() });
        }
        // An '@' elsewhere is a mistyped phase: no MCP method has one.
        if pattern.contains('@') {
            return Err(PatternError::Phase {
                entry: entry.to_owned(),
            });
        }
        let methods = match pattern.strip_suffix('*') {
            Some("") => Methods::All,
            Some(prefix) if prefix.ends_with('/') && !prefix.contains('*') => {
                Methods::Under(prefix.to_owned())
            }
            None if !pattern.contains('*') => Methods::Exactly(pattern.to_owned()),
            _ => {
                return Err(PatternError::Star {
                    pattern: pattern.to_owned(),
                });
            }
        };
        Ok(MethodPattern { methods, phase })
    }

    /// Whether this entry covers `method` in `phase`. Without a phase it
    /// covers every phase the method travels in.
    pub fn matches(&self, method: &str, phase: impl Into<Phase>) -> bool {
        let phase = phase.into();
        let in_phase = match self.phase {
            Some(p) => p == phase,
            None => !phase.is_server_to_client() || travels_server_to_client(method),
        };
        in_phase
            && match &self.methods {
                Methods::All => true,
                Methods::Under(prefix) => method.starts_with(prefix.as_str()),
                Methods::Exactly(m) => m == method,
            }
    }
}

impl MethodPattern {
    /// The one phase this entry is limited to, if any.
    pub fn phase(&self) -> Option<Phase> {
        self.phase
    }

    /// Whether this entry may cover some method in `phase`.
    fn covers_phase(&self, phase: Phase) -> bool {
        match self.phase {
            Some(p) => p == phase,
            None if !phase.is_server_to_client() => true,
            None => match &self.methods {
                Methods::All => true,
                Methods::Under(prefix) => {
                    travels_server_to_client(prefix)
                        || SERVER_TO_CLIENT
                            .iter()
                            .any(|p| p.starts_with(prefix.as_str()))
                }
                Methods::Exactly(m) => travels_server_to_client(m),
            },
        }
    }
}

impl FromStr for MethodPattern {
    type Err = PatternError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        MethodPattern::parse(s)
    }
}

impl fmt::Display for MethodPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.methods {
            Methods::All => f.write_str("*")?,
            Methods::Under(prefix) => write!(f, "{prefix}*")?,
            Methods::Exactly(m) => f.write_str(m)?,
        }
        match self.phase {
            None => Ok(()),
            Some(phase) => f.write_str(phase.suffix()),
        }
    }
}

/// A method list: a hook's `methods()` or an operator's narrowing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MethodSet(Vec<MethodPattern>);

impl MethodSet {
    /// Reads a list; the first bad entry fails it, with its index.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<MethodSet, (usize, PatternError)> {
        if entries.len() > MAX_PATTERNS {
            return Err((MAX_PATTERNS, PatternError::TooMany));
        }
        entries
            .iter()
            .enumerate()
            .map(|(i, e)| MethodPattern::parse(e.as_ref()).map_err(|err| (i, err)))
            .collect::<Result<_, _>>()
            .map(MethodSet)
    }

    /// Whether some entry covers `method` in `phase`.
    pub fn matches(&self, method: &str, phase: impl Into<Phase>) -> bool {
        let phase = phase.into();
        self.0.iter().any(|p| p.matches(method, phase))
    }

    /// The entries, in order.
    pub fn patterns(&self) -> &[MethodPattern] {
        &self.0
    }
}

/// The methods one hook of a chain sees: where its own list and the
/// operator's narrowing (if any) both cover a method in a phase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookMethods {
    own: MethodSet,
    narrowing: Option<MethodSet>,
    /// The hook's world has the server-to-client phases (0.2.0 on).
    server_phases: bool,
}

impl HookMethods {
    /// A hook that declared `own`, narrowed by the operator to `narrowing`.
    pub fn new(own: MethodSet, narrowing: Option<MethodSet>) -> HookMethods {
        HookMethods {
            own,
            narrowing,
            server_phases: true,
        }
    }

    /// The same, for a hook whose world has no server-to-client phases
    /// (`sluice:hook@0.1.0`): its `*` never covers them.
    pub fn without_server_phases(self) -> HookMethods {
        HookMethods {
            server_phases: false,
            ..self
        }
    }

    /// Whether this hook sees `method` in `phase`.
    pub fn wants(&self, method: &str, phase: impl Into<Phase>) -> bool {
        let phase = phase.into();
        (self.server_phases || !phase.is_server_to_client())
            && self.own.matches(method, phase)
            && self
                .narrowing
                .as_ref()
                .is_none_or(|n| n.matches(method, phase))
    }

    /// Whether this hook may see some method in `phase` (an entry of each
    /// list names that phase or none): the cheap test before any message
    /// of that phase is read.
    pub fn covers_phase(&self, phase: Phase) -> bool {
        let covers = |set: &MethodSet| set.0.iter().any(|p| p.covers_phase(phase));
        (self.server_phases || !phase.is_server_to_client())
            && covers(&self.own)
            && self.narrowing.as_ref().is_none_or(covers)
    }

    /// What the hook declared.
    pub fn declared(&self) -> &MethodSet {
        &self.own
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Phase::{Request, Response};

    #[test]
    fn an_entry_without_a_phase_covers_server_messages_only_where_they_travel() {
        let set = |entries: &[&str]| HookMethods::new(MethodSet::parse(entries).unwrap(), None);
        let s2c = Phase::ServerMessage;
        for (entries, method, want) in [
            (&["*"][..], "sampling/createMessage", true),
            (&["*"], "tools/call", false),
            (&["notifications/*"], "notifications/message", true),
            (&["tools/call"], "tools/call", false),
            (&["ping"], "ping", true),
            (&["tools/call@server-message"], "tools/call", true),
        ] {
            assert_eq!(
                set(entries).wants(method, s2c),
                want,
                "{entries:?} {method}"
            );
        }
        // The cheap gate: only lists that can match a server message open it.
        for (entries, want) in [
            (&["*"][..], true),
            (&["tools/call", "tools/list"], false),
            (&["tools/*"], false),
            (&["notifications/*"], true),
            (&["elicitation/create"], true),
            (&["tools/call@server-message"], true),
            (&["sampling/createMessage@request"], false),
        ] {
            assert_eq!(set(entries).covers_phase(s2c), want, "{entries:?}");
        }
        // A 0.1.0 hook has no such phase, whatever its list says.
        let old = set(&["*"]).without_server_phases();
        assert!(!old.covers_phase(s2c));
        assert!(!old.wants("sampling/createMessage", s2c));
        assert!(old.wants("tools/call", Phase::Request));
    }

    #[test]
    fn the_grammar() {
        let p = |s: &str| MethodPattern::parse(s);
        for ok in [
            "*",
            "tools/call",
            "tools/*",
            "notifications/tools/*",
            "tools/call@request",
            "*@response",
            "sampling/createMessage@server-message",
            "notifications/*@server-message",
            "elicitation/create@client-answer",
        ] {
            assert_eq!(p(ok).unwrap().to_string(), ok);
        }
        for (bad, want) in [
            ("", PatternError::Empty),
            ("@request", PatternError::Empty),
            (
                "tools*",
                PatternError::Star {
                    pattern: "tools*".into(),
                },
            ),
            (
                "*/call",
                PatternError::Star {
                    pattern: "*/call".into(),
                },
            ),
            (
                "t*/*",
                PatternError::Star {
                    pattern: "t*/*".into(),
                },
            ),
            (
                "**",
                PatternError::Star {
                    pattern: "**".into(),
                },
            ),
            (
                "tools/list@later",
                PatternError::Phase {
                    entry: "tools/list@later".into(),
                },
            ),
            (
                "a@request@request",
                PatternError::Phase {
                    entry: "a@request@request".into(),
                },
            ),
        ] {
            assert_eq!(p(bad), Err(want), "{bad:?}");
        }
        assert!(matches!(
            p(&"m".repeat(MAX_PATTERN_LEN + 1)),
            Err(PatternError::TooLong { .. })
        ));
    }

    #[test]
    fn matching() {
        let p = |s: &str| MethodPattern::parse(s).unwrap();
        assert!(p("*").matches("anything", Request));
        assert!(p("tools/*").matches("tools/call", Response));
        assert!(!p("tools/*").matches("tools", Request));
        assert!(!p("tools/*").matches("toolsx/call", Request));
        assert!(p("tools/call@request").matches("tools/call", Request));
        assert!(!p("tools/call@request").matches("tools/call", Response));
        assert!(!p("tools/call").matches("tools/call/x", Request));
    }

    #[test]
    fn a_hook_sees_what_both_lists_cover() {
        let set = |e: &[&str]| MethodSet::parse(e).unwrap();
        let h = HookMethods::new(set(&["tools/*"]), Some(set(&["tools/call@response"])));
        assert!(h.wants("tools/call", Response));
        assert!(!h.wants("tools/call", Request));
        assert!(!h.wants("tools/list", Response));
        let h = HookMethods::new(set(&["tools/call"]), None);
        assert!(h.wants("tools/call", Request) && h.wants("tools/call", Response));
        assert_eq!(
            MethodSet::parse(&["a", "b@x"]),
            Err((
                1,
                PatternError::Phase {
                    entry: "b@x".into()
                }
            ))
        );
        let many = vec!["a"; MAX_PATTERNS + 1];
        assert_eq!(
            MethodSet::parse(&many),
            Err((MAX_PATTERNS, PatternError::TooMany))
        );
    }

    #[test]
    fn a_server_to_client_phase_is_asked_for_by_name_and_an_entry_without_one_covers_all_four() {
        let sampling = MethodPattern::parse("sampling/createMessage@server-message").unwrap();
        assert_eq!(sampling.phase(), Some(Phase::ServerMessage));
        assert!(sampling.matches("sampling/createMessage", Phase::ServerMessage));
        assert!(!sampling.matches("sampling/createMessage", Phase::ClientAnswer));
        assert!(!sampling.matches("sampling/createMessage", Request));
        let any = MethodPattern::parse("ping").unwrap();
        for phase in PHASES {
            assert!(any.matches("ping", phase), "{phase:?}");
        }
        assert!(Phase::ClientAnswer.is_server_to_client() && !Response.is_server_to_client());
    }
}
