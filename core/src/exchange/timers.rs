//! The exchange's timers, one slot each, after quinn's `TimerTable`: every
//! timer has one meaning whatever the state, and the machine's deadline is
//! the earliest one set.

use std::time::Instant;

/// What each timer waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Timer {
    /// A kept-alive connection waits for the next request's first byte
    /// ([`Timeouts::client_idle`](super::Timeouts::client_idle)).
    Idle,
    /// The request is arriving
    /// ([`Timeouts::client_request`](super::Timeouts::client_request)).
    Request,
    /// The upstream connection is being opened
    /// ([`Timeouts::connect`](super::Timeouts::connect)).
    Connect,
    /// The request went upstream; its answer's head is due
    /// ([`Timeouts::response_head`](super::Timeouts::response_head)).
    Head,
    /// The answer is streaming; the upstream's next bytes are due
    /// ([`Timeouts::stream_idle`](super::Timeouts::stream_idle)).
    StreamIdle,
    /// A keep-alive comment is due on a quiet SSE answer
    /// ([`Timeouts::sse_keepalive`](super::Timeouts::sse_keepalive)).
    Keepalive,
}

const ALL: [Timer; 6] = [
    Timer::Idle,
    Timer::Request,
    Timer::Connect,
    Timer::Head,
    Timer::StreamIdle,
    Timer::Keepalive,
];

/// When each timer fires, if it is set.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct TimerTable {
    at: [Option<Instant>; ALL.len()],
}

impl TimerTable {
    pub fn set(&mut self, timer: Timer, at: Option<Instant>) {
        self.at[timer as usize] = at;
    }

    pub fn stop(&mut self, timer: Timer) {
        self.at[timer as usize] = None;
    }

    pub fn stop_all(&mut self) {
        self.at = [None; ALL.len()];
    }

    /// The earliest deadline set.
    pub fn next(&self) -> Option<Instant> {
        self.at.iter().flatten().min().copied()
    }

    /// The earliest timer due at `now`, stopped as it is handed out.
    pub fn take_expired(&mut self, now: Instant) -> Option<Timer> {
        let timer = ALL
            .into_iter()
            .filter(|t| self.at[*t as usize].is_some_and(|at| at <= now))
            .min_by_key(|t| self.at[*t as usize])?;
        self.stop(timer);
        Some(timer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_earliest_due_timer_comes_first_and_only_once() {
        let t0 = Instant::now();
        let mut table = TimerTable::default();
        table.set(Timer::Keepalive, Some(t0 + Duration::from_secs(2)));
        table.set(Timer::StreamIdle, Some(t0 + Duration::from_secs(1)));
        assert_eq!(table.next(), Some(t0 + Duration::from_secs(1)));
        assert_eq!(table.take_expired(t0), None);
        let later = t0 + Duration::from_secs(3);
        assert_eq!(table.take_expired(later), Some(Timer::StreamIdle));
        assert_eq!(table.take_expired(later), Some(Timer::Keepalive));
        assert_eq!(table.take_expired(later), None);
        assert_eq!(table.next(), None);
    }
}
