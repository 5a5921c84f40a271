//! A bounded cache keyed by bearer token, with the time passed in: what
//! keeps an introspected token (or a token exchanged for it) from costing
//! a round trip to the authorization server on every request.
//!
//! The rules:
//! - tokens are held by their SHA-256, never as sent;
//! - an entry lives until the instant it was given, and is gone at it;
//! - at most `capacity` entries: inserting into a full cache first drops
//!   what has expired, then the entry that would expire soonest;
//! - [`active_lifetime`] and [`NEGATIVE_LIFETIME`] say how long an answer
//!   may be kept, [`exchanged_lifetime`] how long an exchanged token.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use super::api_key::sha256;

/// How long a refusal (an inactive token, one for another audience) is
/// kept: long enough that a client retrying a bad token does not reach the
/// authorization server each time, short enough that a token that just
/// became valid is not refused for long.
pub const NEGATIVE_LIFETIME: Duration = Duration::from_secs(10);

/// How long before its `expires_in` an exchanged token stops being used:
/// one that expires on its way to the upstream is no use.
pub const EXCHANGE_MARGIN: Duration = Duration::from_secs(30);

/// How long an active token's answer may be kept: until its `exp`, and no
/// longer than `ttl` (a revocation is seen within `ttl`). `now` and `exp`
/// are seconds since the Unix epoch; no `exp` gives `ttl`.
pub fn active_lifetime(exp: Option<u64>, now: u64, ttl: Duration) -> Duration {
    match exp {
        Some(exp) => ttl.min(Duration::from_secs(exp.saturating_sub(now))),
        None => ttl,
    }
}

/// How long an exchanged token with this `expires_in` (seconds) may be
/// used: until [`EXCHANGE_MARGIN`] before it expires, no longer than `ttl`;
/// `None` when that leaves nothing (use it once, keep nothing). No
/// `expires_in` gives `ttl`.
pub fn exchanged_lifetime(expires_in: Option<u64>, ttl: Duration) -> Option<Duration> {
    let life = match expires_in {
        Some(s) => ttl.min(Duration::from_secs(s).checked_sub(EXCHANGE_MARGIN)?),
        None => ttl,
    };
    (!life.is_zero()).then_some(life)
}

/// Values kept per token, at most `capacity` of them.
#[derive(Debug)]
pub struct TokenCache<V> {
    entries: HashMap<[u8; 32], (V, Instant)>,
    /// The same entries by expiry, soonest first: making room in a full
    /// cache takes from the front rather than scanning every entry (a scan
    /// of 10000 cost more than the signature check it saves).
    by_expiry: BTreeSet<(Instant, [u8; 32])>,
    capacity: usize,
}

impl<V: Clone> TokenCache<V> {
    /// An empty cache for at most `capacity` tokens (0 keeps nothing).
    pub fn new(capacity: usize) -> Self {
        TokenCache {
            entries: HashMap::new(),
            by_expiry: BTreeSet::new(),
            capacity,
        }
    }

    /// The value kept for `token`, if it has not expired at `now`.
    pub fn get(&mut self, token: &str, now: Instant) -> Option<V> {
        let key = sha256(token.as_bytes());
        match self.entries.get(&key) {
            Some((value, until)) if now < *until => Some(value.clone()),
            Some(_) => {
                self.remove_key(&key);
                None
            }
            None => None,
        }
    }

    fn remove_key(&mut self, key: &[u8; 32]) {
        if let Some((_, until)) = self.entries.remove(key) {
            self.by_expiry.remove(&(until, *key));
        }
    }

    /// Keeps `value` for `token` until `now + lifetime`, in place of what
    /// was kept for it.
    pub fn insert(&mut self, token: &str, value: V, lifetime: Duration, now: Instant) {
        if self.capacity == 0 || lifetime.is_zero() {
            return;
        }
        let key = sha256(token.as_bytes());
        self.remove_key(&key);
        if self.entries.len() >= self.capacity {
            // Whatever has expired, then (still full) the soonest to expire.
            while let Some(&(until, soonest)) = self.by_expiry.first() {
                if now < until && self.entries.len() < self.capacity {
                    break;
                }
                self.by_expiry.pop_first();
                self.entries.remove(&soonest);
            }
        }
        let until = now + lifetime;
        self.by_expiry.insert((until, key));
        self.entries.insert(key, (value, until));
    }

    /// Forgets what was kept for `token`.
    pub fn remove(&mut self, token: &str) {
        self.remove_key(&sha256(token.as_bytes()));
    }

    /// The most entries it holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// How many entries are held (expired ones included until swept).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn entries_live_until_their_instant() {
        let t0 = Instant::now();
        let mut c = TokenCache::new(4);
        c.insert("a", 1, 10 * S, t0);
        assert_eq!(c.get("a", t0), Some(1));
        assert_eq!(c.get("a", t0 + 9 * S), Some(1));
        assert_eq!(c.get("a", t0 + 10 * S), None);
        assert!(c.is_empty(), "an expired entry is dropped when seen");
        assert_eq!(c.get("b", t0), None);
        // A new answer replaces the old one.
        c.insert("a", 1, 10 * S, t0);
        c.insert("a", 2, S, t0);
        assert_eq!(c.get("a", t0), Some(2));
        assert_eq!(c.get("a", t0 + S), None);
        c.insert("a", 3, S, t0);
        c.remove("a");
        assert_eq!(c.get("a", t0), None);
    }

    #[test]
    fn bounded() {
        let t0 = Instant::now();
        let mut c = TokenCache::new(3);
        c.insert("short", 0, S, t0);
        c.insert("long", 1, 100 * S, t0);
        c.insert("mid", 2, 50 * S, t0);
        // Full: the one that would expire soonest goes.
        c.insert("new", 3, 60 * S, t0);
        assert_eq!(c.len(), 3);
        assert_eq!(c.get("short", t0), None);
        assert_eq!(c.get("long", t0), Some(1));
        // Full again, with two expired by now: both go, nothing live does.
        let later = t0 + 55 * S;
        c.insert("x", 4, S, later);
        assert_eq!(c.get("long", later), Some(1));
        assert_eq!(c.get("new", later), Some(3));
        assert_eq!(c.get("x", later), Some(4));
        assert_eq!(c.get("mid", later), None);
        // Replacing a held token never evicts another.
        c.insert("long", 5, S, later);
        assert_eq!(c.len(), 3);
        assert_eq!(c.get("new", later), Some(3));
        // Nothing kept at zero capacity or for no time.
        let mut none = TokenCache::new(0);
        none.insert("a", 1, S, t0);
        assert_eq!(none.get("a", t0), None);
        c.insert("zero", 6, Duration::ZERO, later);
        assert_eq!(c.get("zero", later), None);
        assert_eq!(c.by_expiry.len(), c.len(), "both indexes hold the same");
    }

    #[test]
    fn room_comes_from_the_soonest_to_expire() {
        let t0 = Instant::now();
        let mut c = TokenCache::new(100);
        // Inserted in no particular order of expiry.
        for i in 0..100u32 {
            let life = (i * 37 % 100 + 1) * S;
            c.insert(&i.to_string(), i, life, t0);
        }
        // Each newcomer takes the place of the soonest left.
        for n in 0..10u32 {
            c.insert(&format!("new{n}"), 1000 + n, 1000 * S, t0);
            assert_eq!(c.len(), 100);
        }
        let kept: Vec<u32> = (0..100u32)
            .filter(|i| c.get(&i.to_string(), t0).is_some())
            .collect();
        assert!(kept.iter().all(|i| i * 37 % 100 + 1 > 10), "{kept:?}");
        assert_eq!(kept.len(), 90);
        // Expired entries all go at once; a re-inserted token moves.
        c.insert("0", 0, 2000 * S, t0);
        let later = t0 + 50 * S;
        c.insert("x", 1, S, later);
        assert!(c.len() < 100);
        assert_eq!(c.get("0", later), Some(0));
        assert_eq!(c.by_expiry.len(), c.len());
        c.remove("0");
        assert_eq!(c.get("0", later), None);
        assert_eq!(c.by_expiry.len(), c.len());
    }

    #[test]
    fn tokens_are_held_by_hash() {
        let mut c = TokenCache::new(1);
        c.insert("secret-token", (), S, Instant::now());
        assert!(!format!("{c:?}").contains("secret-token"));
    }

    #[test]
    fn lifetimes() {
        let ttl = 300 * S;
        // Until exp, at most the ttl.
        assert_eq!(active_lifetime(Some(1060), 1000, ttl), 60 * S);
        assert_eq!(active_lifetime(Some(100_000), 1000, ttl), ttl);
        assert_eq!(active_lifetime(Some(900), 1000, ttl), Duration::ZERO);
        assert_eq!(active_lifetime(None, 1000, ttl), ttl);
        // Exchanged: the margin off expires_in.
        assert_eq!(exchanged_lifetime(Some(3600), ttl), Some(ttl));
        assert_eq!(exchanged_lifetime(Some(90), ttl), Some(60 * S));
        assert_eq!(exchanged_lifetime(Some(30), ttl), None);
        assert_eq!(exchanged_lifetime(Some(10), ttl), None);
        assert_eq!(exchanged_lifetime(None, ttl), Some(ttl));
    }
}
