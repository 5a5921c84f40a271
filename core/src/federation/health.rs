//! What a federation does about a member that is down, slow or broken:
//! its policy (how long it has, whether the lists go on without it) and a
//! circuit breaker that stops sending to it while it keeps failing.

use std::time::{Duration, Instant};

/// What a fanned-in list or `initialize` does when a member does not
/// answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnUnavailable {
    /// Go on without it (logged, counted).
    #[default]
    Omit,
    /// Fail the client's request with an error naming the member.
    Fail,
}

/// One member's failure policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberPolicy {
    /// How long it has to begin an answer.
    pub timeout: Duration,
    /// What lists do without it.
    pub on_unavailable: OnUnavailable,
}

/// Consecutive failures that open a member's circuit.
pub const OPEN_AFTER: u32 = 3;
/// How long a circuit stays open the first time; it doubles each time a
/// trial request fails, up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest a circuit stays open before a trial request.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Requests go; this many failed in a row.
    Closed { failures: u32 },
    /// Requests fail at once until `until`.
    Open { until: Instant },
    /// One trial request is out since `since`; the others fail at once.
    /// A trial that never reports (its client left) gives way to another
    /// after one backoff.
    Trial { since: Instant },
}

/// One member's circuit breaker, shared by every request of its route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Breaker {
    state: State,
    /// The next open period.
    backoff: Duration,
}

impl Default for Breaker {
    fn default() -> Self {
        Breaker {
            state: State::Closed { failures: 0 },
            backoff: FIRST_BACKOFF,
        }
    }
}

/// A request not sent: the member's circuit is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CircuitOpen {
    /// How long until a trial request goes.
    pub retry_in: Duration,
}

impl Breaker {
    /// Whether a request may go to the member at `now`.
    pub fn allow(&mut self, now: Instant) -> Result<(), CircuitOpen> {
        match self.state {
            State::Closed { .. } => Ok(()),
            State::Open { until } if now < until => Err(CircuitOpen {
                retry_in: until - now,
            }),
            State::Trial { since } if now < since + self.backoff => Err(CircuitOpen {
                retry_in: since + self.backoff - now,
            }),
            State::Open { .. } | State::Trial { .. } => {
                self.state = State::Trial { since: now };
                Ok(())
            }
        }
    }

    /// The member answered.
    pub fn succeeded(&mut self) {
        *self = Breaker::default();
    }

    /// The member failed a request (unreachable, timed out, cut short).
    pub fn failed(&mut self, now: Instant) {
        match self.state {
            State::Closed { failures } if failures + 1 < OPEN_AFTER => {
                self.state = State::Closed {
                    failures: failures + 1,
                };
            }
            State::Closed { .. } => {
                self.state = State::Open {
                    until: now + self.backoff,
                };
            }
            State::Trial { .. } | State::Open { .. } => {
                self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                self.state = State::Open {
                    until: now + self.backoff,
                };
            }
        }
    }

    /// Whether the circuit is open (requests fail at once) at `now`.
    pub fn is_open(&self, now: Instant) -> bool {
        match self.state {
            State::Closed { .. } => false,
            State::Open { until } => now < until,
            State::Trial { since } => now < since + self.backoff,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_consecutive_failures_and_a_success_resets_the_count() {
        let t0 = Instant::now();
        let mut b = Breaker::default();
        b.failed(t0);
        b.failed(t0);
        b.succeeded();
        b.failed(t0);
        b.failed(t0);
        assert!(b.allow(t0).is_ok(), "two in a row since the success");
        b.failed(t0);
        assert_eq!(
            b.allow(t0),
            Err(CircuitOpen {
                retry_in: FIRST_BACKOFF
            })
        );
        assert!(b.is_open(t0));
    }

    #[test]
    fn one_trial_after_the_backoff_and_a_failed_trial_doubles_it() {
        let t0 = Instant::now();
        let mut b = Breaker::default();
        (0..OPEN_AFTER).for_each(|_| b.failed(t0));
        let t1 = t0 + FIRST_BACKOFF;
        assert!(b.allow(t1).is_ok(), "the trial");
        assert!(b.allow(t1).is_err(), "only one trial at a time");
        b.failed(t1);
        assert_eq!(
            b.allow(t1 + FIRST_BACKOFF),
            Err(CircuitOpen {
                retry_in: FIRST_BACKOFF
            }),
            "open twice as long"
        );
        let t2 = t1 + FIRST_BACKOFF * 2;
        assert!(b.allow(t2).is_ok());
        b.succeeded();
        assert!(!b.is_open(t2));
        assert!(b.allow(t2).is_ok());
    }

    #[test]
    fn a_trial_that_never_reports_gives_way_and_backoff_is_capped() {
        let t0 = Instant::now();
        let mut b = Breaker::default();
        (0..OPEN_AFTER).for_each(|_| b.failed(t0));
        let mut now = t0;
        for _ in 0..20 {
            now += MAX_BACKOFF;
            assert!(b.allow(now).is_ok());
            b.failed(now);
        }
        assert_eq!(
            b.allow(now),
            Err(CircuitOpen {
                retry_in: MAX_BACKOFF
            })
        );
        now += MAX_BACKOFF;
        assert!(b.allow(now).is_ok(), "a trial");
        // It never reports: after one backoff another may go.
        assert!(
            b.allow(now + MAX_BACKOFF - Duration::from_millis(1))
                .is_err()
        );
        assert!(b.allow(now + MAX_BACKOFF).is_ok());
    }
}
