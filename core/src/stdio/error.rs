//! What can go wrong between a client and a stdio server, and how each
//! failure reads to a client.

use std::fmt;

use crate::jsonrpc::codes;

/// A failure of the stdio bridge or of the child behind it. Each says what
/// happened in words a client may see (in a JSON-RPC error's message) and
/// carries the code and the status it is answered with.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StdioError {
    /// The child could not be started.
    SpawnFailed(String),
    /// The child ended (its exit status or signal, as the driver words it,
    /// e.g. `exited with status 1`).
    Exited(String),
    /// The child did not answer `initialize` in time.
    InitTimeout,
    /// The child answered `initialize` with an error or a result that is
    /// not an object.
    InitRefused(String),
    /// Shared mode: the child is restarting after a failure and this many
    /// requests wait already.
    TooManyWaiting {
        /// The limit.
        limit: usize,
    },
    /// Per-session mode: the route runs as many children as it may.
    TooManyProcesses {
        /// The limit (`max_processes`).
        limit: usize,
    },
    /// Shared mode: the bridge keeps as many client sessions as it may.
    TooManySessions {
        /// The limit.
        limit: usize,
    },
    /// The session was deleted (or reaped) while the request was in flight.
    SessionEnded,
    /// sluice is shutting down.
    ShuttingDown,
}

impl StdioError {
    /// The JSON-RPC code a request that failed this way is answered with.
    pub fn code(&self) -> i64 {
        match self {
            StdioError::InitTimeout => codes::UPSTREAM_TIMEOUT,
            StdioError::TooManyWaiting { .. }
            | StdioError::TooManyProcesses { .. }
            | StdioError::TooManySessions { .. } => codes::INTERNAL_ERROR,
            _ => codes::UPSTREAM_FAILED,
        }
    }

    /// The HTTP status when nothing of the answer went out yet.
    pub fn status(&self) -> u16 {
        match self {
            StdioError::InitTimeout => 504,
            StdioError::TooManyWaiting { .. }
            | StdioError::TooManyProcesses { .. }
            | StdioError::TooManySessions { .. }
            | StdioError::ShuttingDown => 503,
            StdioError::SessionEnded => 404,
            _ => 502,
        }
    }
}

impl fmt::Display for StdioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StdioError::SpawnFailed(e) => write!(f, "the stdio server could not be started: {e}"),
            StdioError::Exited(how) => write!(f, "the stdio server {how}"),
            StdioError::InitTimeout => {
                f.write_str("the stdio server did not answer initialize in time")
            }
            StdioError::InitRefused(why) => write!(f, "the stdio server refused initialize: {why}"),
            StdioError::TooManyWaiting { limit } => {
                write!(
                    f,
                    "{limit} requests already wait for the stdio server to start"
                )
            }
            StdioError::TooManyProcesses { limit } => {
                write!(
                    f,
                    "the route runs its limit of {limit} stdio server processes"
                )
            }
            StdioError::TooManySessions { limit } => {
                write!(
                    f,
                    "the stdio server has its limit of {limit} client sessions"
                )
            }
            StdioError::SessionEnded => f.write_str("the session ended"),
            StdioError::ShuttingDown => f.write_str("shutting down"),
        }
    }
}
