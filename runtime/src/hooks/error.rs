//! What can go wrong when one hook handles one message.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// A hook failed to produce a usable verdict. Names the hook; the chain runner
/// applies the hook's [`OnError`](super::OnError) policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookError {
    /// The hook's name from the operator's config.
    pub hook: Arc<str>,
    /// What went wrong.
    pub kind: HookErrorKind,
}

/// The ways a hook call can fail.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HookErrorKind {
    /// The hook ran past its CPU deadline (instantiation plus call).
    Deadline(Duration),
    /// The hook tried to grow its memory past the cap (bytes).
    MemoryLimit(usize),
    /// The guest trapped (a panic, `unreachable`, an out-of-bounds access…).
    Trap(String),
    /// The guest could not be instantiated (e.g. the instance pool is full).
    Instantiate(String),
    /// The message was larger than the host's cap, so the hook was not run.
    InputTooLarge {
        /// Size of the message in bytes.
        len: usize,
        /// The cap.
        limit: usize,
    },
    /// The verdict carried more bytes than the host's cap.
    OutputTooLarge {
        /// Size of the verdict's payload in bytes.
        len: usize,
        /// The cap.
        limit: usize,
    },
    /// The verdict was not acceptable: a replacement that is not a JSON-RPC
    /// message of the right kind, a reject with a reserved code, bad JSON…
    InvalidVerdict(String),
}

impl HookErrorKind {
    /// A short reason, safe to show a client (no guest backtraces).
    pub(crate) fn short(&self) -> &'static str {
        match self {
            Self::Deadline(_) => "deadline exceeded",
            Self::MemoryLimit(_) => "memory limit exceeded",
            Self::Trap(_) => "trapped",
            Self::Instantiate(_) => "could not be instantiated",
            Self::InputTooLarge { .. } => "message too large for hooks",
            Self::OutputTooLarge { .. } => "verdict too large",
            Self::InvalidVerdict(_) => "invalid verdict",
        }
    }
}

impl fmt::Display for HookErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Deadline(d) => write!(f, "deadline of {d:?} exceeded"),
            Self::MemoryLimit(n) => write!(f, "memory limit of {n} bytes exceeded"),
            Self::Trap(m) => write!(f, "trapped: {m}"),
            Self::Instantiate(m) => write!(f, "could not be instantiated: {m}"),
            Self::InputTooLarge { len, limit } => {
                write!(f, "message of {len} bytes exceeds the {limit}-byte cap")
            }
            Self::OutputTooLarge { len, limit } => {
                write!(f, "verdict of {len} bytes exceeds the {limit}-byte cap")
            }
            Self::InvalidVerdict(m) => write!(f, "invalid verdict: {m}"),
        }
    }
}

impl fmt::Display for HookError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "hook {} {}", self.hook, self.kind)
    }
}

impl std::error::Error for HookError {}
