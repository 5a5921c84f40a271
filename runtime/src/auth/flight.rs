//! One request to the authorization server per token at a time: while a
//! token is being introspected (or exchanged), the other requests that
//! carry it wait for that answer instead of asking again. A burst of
//! requests with a new token costs one round trip, as a cache hit would.

use std::collections::HashMap;
use std::sync::Mutex;

use async_channel::{Receiver, Sender};
use sluice_core::auth::api_key::sha256;

/// The requests under way, by token hash, with who waits for each.
pub(crate) struct Flights<V> {
    waiting: Mutex<HashMap<[u8; 32], Vec<Sender<V>>>>,
}

/// What a caller of [`Flights::join`] is to do.
pub(crate) enum Turn<'a, V: Clone> {
    /// Ask the server, then [`Leader::land`] the answer.
    Lead(Leader<'a, V>),
    /// Another request is asking: wait for its answer (`None` if it gave
    /// none it could share, then ask yourself).
    Wait(Receiver<V>),
}

/// The one request asking for a token. Dropped without landing (a failure
/// it does not share, or its task cancelled), it lets the waiters go to
/// ask themselves.
pub(crate) struct Leader<'a, V> {
    flights: &'a Flights<V>,
    key: [u8; 32],
    landed: bool,
}

impl<V: Clone> Flights<V> {
    pub(crate) fn new() -> Self {
        Flights {
            waiting: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Vec<Sender<V>>>> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Leads the request for `token`, or waits for the one under way.
    pub(crate) fn join(&self, token: &str) -> Turn<'_, V> {
        let key = sha256(token.as_bytes());
        let mut waiting = self.lock();
        match waiting.get_mut(&key) {
            Some(waiters) => {
                let (tx, rx) = async_channel::bounded(1);
                waiters.push(tx);
                Turn::Wait(rx)
            }
            None => {
                waiting.insert(key, Vec::new());
                Turn::Lead(Leader {
                    flights: self,
                    key,
                    landed: false,
                })
            }
        }
    }
}

impl<V: Clone> Leader<'_, V> {
    /// Hands `value` to every request that waited for it.
    pub(crate) fn land(mut self, value: &V) {
        self.landed = true;
        let waiters = self.flights.lock().remove(&self.key).unwrap_or_default();
        for tx in waiters {
            let _ = tx.try_send(value.clone());
        }
    }
}

impl<V> Drop for Leader<'_, V> {
    fn drop(&mut self) {
        // Not landed: the waiters' channels close. (Landed, the key may
        // already be a newer flight's.)
        if !self.landed {
            let mut waiting = self
                .flights
                .waiting
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            waiting.remove(&self.key);
        }
    }
}

/// The value for `token`: `cache`'s, else the one request under way's,
/// else `ask`'s (which keeps it in the cache itself, as it knows for how
/// long) shared with whoever waited meanwhile. A failure is not shared:
/// the waiters then ask themselves.
pub(crate) async fn cached_or_asked<V, E, F>(
    cache: &Mutex<sluice_core::auth::cache::TokenCache<V>>,
    flights: &Flights<V>,
    token: &str,
    ask: impl FnOnce() -> F,
) -> Result<V, E>
where
    V: Clone,
    F: std::future::Future<Output = Result<V, E>>,
{
    let held = cache
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(token, std::time::Instant::now());
    if let Some(value) = held {
        return Ok(value);
    }
    let leader = match flights.join(token) {
        Turn::Lead(leader) => Some(leader),
        Turn::Wait(answer) => match answer.recv().await {
            Ok(value) => return Ok(value),
            // It got none: ask.
            Err(_) => None,
        },
    };
    let value = ask().await?;
    if let Some(leader) = leader {
        leader.land(&value);
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_leads_the_others_wait_for_its_answer() {
        let flights: Flights<u32> = Flights::new();
        let Turn::Lead(leader) = flights.join("t") else {
            panic!("the first leads");
        };
        let Turn::Wait(a) = flights.join("t") else {
            panic!("the second waits");
        };
        let Turn::Wait(b) = flights.join("t") else {
            panic!("the third waits");
        };
        // Another token is not held up.
        assert!(matches!(flights.join("u"), Turn::Lead(_)));
        leader.land(&7);
        assert_eq!((a.try_recv(), b.try_recv()), (Ok(7), Ok(7)));
        // Landed: the next request leads again, and its flight stays while
        // it is under way.
        let next = flights.join("t");
        assert!(matches!(next, Turn::Lead(_)));
        assert!(matches!(flights.join("t"), Turn::Wait(_)));
    }

    #[test]
    fn a_leader_gone_without_an_answer_lets_the_waiters_go() {
        let flights: Flights<u32> = Flights::new();
        let leader = flights.join("t");
        let Turn::Wait(rx) = flights.join("t") else {
            panic!("waits");
        };
        drop(leader);
        assert!(rx.try_recv().is_err());
        assert!(rx.is_closed());
        assert!(matches!(flights.join("t"), Turn::Lead(_)));
    }
}
