//! Why an exchange ended with an answer of sluice's own, split by whose
//! fault it was (as h11 splits local from remote protocol errors): the
//! client's, the upstream's, or the clock's. Each carries the HTTP status
//! and the JSON-RPC code the client is answered with.

use std::fmt;

use crate::jsonrpc::codes;

/// Why sluice answered an exchange itself (or cut it short).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExchangeError {
    /// The client's request was refused before anything went upstream.
    Client(ClientError),
    /// The upstream failed or sent what cannot be forwarded faithfully.
    Upstream(UpstreamError),
    /// A deadline passed.
    Timeout(TimedOut),
    /// sluice is shutting down while the request was still arriving
    /// (nothing went upstream: the client may send it again elsewhere).
    ShuttingDown,
}

/// A request sluice refuses, with the status and code it is answered with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientError {
    /// The HTTP status (400, 403, 404, 405, 413, 431, 501, 505…).
    pub status: u16,
    /// The JSON-RPC code of the error body.
    pub code: i64,
    /// What is wrong, as the client reads it.
    pub message: String,
}

/// How the upstream failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamError {
    /// No connection could be opened.
    ConnectFailed,
    /// The connection ended cleanly before any answer.
    ClosedBeforeAnswer,
    /// The connection failed before any answer.
    FailedBeforeAnswer,
    /// The connection ended cleanly in the middle of the answer.
    ClosedMidAnswer,
    /// The connection failed in the middle of the answer.
    FailedMidAnswer,
    /// A message upstream's answer parts came out of order.
    OutOfOrder,
    /// What the upstream sent cannot be forwarded faithfully: why.
    Malformed(String),
}

/// Which deadline passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimedOut {
    /// The request did not arrive whole in time.
    Request,
    /// Connecting to the upstream.
    Connect,
    /// The upstream's answer did not begin in time.
    ResponseHead,
    /// The upstream's stream went quiet for too long.
    StreamIdle,
}

impl ExchangeError {
    /// The HTTP status the client gets when nothing of the answer went out.
    pub fn status(&self) -> u16 {
        match self {
            ExchangeError::Client(e) => e.status,
            ExchangeError::Upstream(_) => 502,
            ExchangeError::Timeout(TimedOut::Request) => 408,
            ExchangeError::Timeout(_) => 504,
            ExchangeError::ShuttingDown => 503,
        }
    }

    /// The JSON-RPC code of the error the client gets.
    pub fn code(&self) -> i64 {
        match self {
            ExchangeError::Client(e) => e.code,
            ExchangeError::Upstream(_) => codes::UPSTREAM_FAILED,
            ExchangeError::Timeout(TimedOut::Request) => codes::INVALID_REQUEST,
            ExchangeError::Timeout(_) => codes::UPSTREAM_TIMEOUT,
            ExchangeError::ShuttingDown => codes::INTERNAL_ERROR,
        }
    }

    /// Whose fault it was, as a short label for logs and metrics:
    /// `client`, `upstream`, `timeout` or `shutdown`.
    pub fn side(&self) -> &'static str {
        match self {
            ExchangeError::Client(_) => "client",
            ExchangeError::Upstream(_) => "upstream",
            ExchangeError::Timeout(_) => "timeout",
            ExchangeError::ShuttingDown => "shutdown",
        }
    }
}

impl fmt::Display for ExchangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExchangeError::Client(e) => f.write_str(&e.message),
            ExchangeError::Upstream(e) => e.fmt(f),
            ExchangeError::Timeout(t) => t.fmt(f),
            ExchangeError::ShuttingDown => {
                f.write_str("sluice is shutting down; send the request again")
            }
        }
    }
}

impl fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UpstreamError::ConnectFailed => "could not connect to the upstream",
            UpstreamError::ClosedBeforeAnswer => {
                "the upstream closed the connection before answering"
            }
            UpstreamError::FailedBeforeAnswer => "the upstream connection failed before answering",
            UpstreamError::ClosedMidAnswer => "the upstream closed the connection mid-answer",
            UpstreamError::FailedMidAnswer => "the upstream connection failed mid-answer",
            UpstreamError::OutOfOrder => "the upstream answered out of order",
            UpstreamError::Malformed(why) => why,
        })
    }
}

impl fmt::Display for TimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TimedOut::Request => "the request did not arrive in time",
            TimedOut::Connect => "connecting to the upstream timed out",
            TimedOut::ResponseHead => "the upstream did not answer in time",
            TimedOut::StreamIdle => "the upstream stream went idle",
        })
    }
}

impl std::error::Error for ExchangeError {}

impl From<UpstreamError> for ExchangeError {
    fn from(e: UpstreamError) -> Self {
        ExchangeError::Upstream(e)
    }
}

impl From<TimedOut> for ExchangeError {
    fn from(t: TimedOut) -> Self {
        ExchangeError::Timeout(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_side_answers_with_its_own_status_and_code() {
        let upstream = ExchangeError::from(UpstreamError::ClosedMidAnswer);
        assert_eq!(
            (upstream.status(), upstream.code()),
            (502, codes::UPSTREAM_FAILED)
        );
        assert_eq!(upstream.side(), "upstream");
        let idle = ExchangeError::from(TimedOut::StreamIdle);
        assert_eq!((idle.status(), idle.code()), (504, codes::UPSTREAM_TIMEOUT));
        let slow_client = ExchangeError::from(TimedOut::Request);
        assert_eq!(slow_client.status(), 408);
        let refused = ExchangeError::Client(ClientError {
            status: 413,
            code: codes::INVALID_REQUEST,
            message: "too large".into(),
        });
        assert_eq!((refused.status(), refused.side()), (413, "client"));
        assert_eq!(ExchangeError::ShuttingDown.status(), 503);
    }
}
