//! The server requests a client was asked, remembered so that its answer,
//! which comes back on another HTTP request, reaches the client-answer
//! hooks with the request it answers (`on-client-answer`).
//!
//! While some hook wants client answers, every server request a client is
//! sent is noted, by (route, the client's session, the id's raw text), each
//! until it is answered or for [`AskedBook::KEEP`]; at most
//! [`AskedBook::CAPACITY`] at once, the oldest making room. The text is
//! kept only for methods some hook wants in the `client-answer` phase. An
//! answer whose request is not here (this process never forwarded it:
//! another replica did, it expired, or the server never sent it) cannot be
//! judged: it is refused in the server's direction when an enforced
//! client-answer hook fails closed, and goes on unjudged otherwise
//! (`HookFilter::refusing_unseen_answers`; docs/HOOKS.md says so).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Which request: route, the client's `Mcp-Session-Id`, the id's raw text.
pub(super) type AskedKey = (usize, Option<String>, Vec<u8>);

/// A server request the client was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Asked {
    pub method: String,
    /// The request as the client got it; empty for a method no hook wants
    /// the answer of.
    pub request: Arc<str>,
}

#[derive(Debug, Default)]
struct Book {
    asked: HashMap<AskedKey, (Asked, Instant)>,
    /// Keys in the order they were recorded (some may be answered already).
    order: VecDeque<(AskedKey, Instant)>,
}

/// The server requests the clients of one configuration were asked.
#[derive(Debug, Default)]
pub struct AskedBook {
    book: Mutex<Book>,
}

impl AskedBook {
    /// How long a request waits for its answer.
    pub const KEEP: Duration = Duration::from_secs(600);
    /// Most requests remembered at once.
    pub const CAPACITY: usize = 16_384;

    pub(super) fn record(&self, key: AskedKey, asked: Asked, now: Instant) {
        let mut book = self.book.lock().unwrap_or_else(|e| e.into_inner());
        book.expire(now);
        while book.asked.len() >= Self::CAPACITY {
            let Some((oldest, at)) = book.order.pop_front() else {
                break;
            };
            if book.asked.get(&oldest).is_some_and(|(_, t)| *t == at) {
                book.asked.remove(&oldest);
            }
        }
        book.order.push_back((key.clone(), now));
        book.asked.insert(key, (asked, now));
    }

    /// The request `key` answers, once: an answer is given once.
    pub(super) fn take(&self, key: &AskedKey, now: Instant) -> Option<Asked> {
        let mut book = self.book.lock().unwrap_or_else(|e| e.into_inner());
        book.expire(now);
        book.asked.remove(key).map(|(asked, _)| asked)
    }

    /// Requests waiting for an answer.
    pub fn len(&self) -> usize {
        self.book
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .asked
            .len()
    }

    /// None waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Book {
    fn expire(&mut self, now: Instant) {
        while let Some((key, at)) = self.order.front() {
            if now.saturating_duration_since(*at) < AskedBook::KEEP {
                break;
            }
            if self.asked.get(key).is_some_and(|(_, t)| t == at) {
                self.asked.remove(key);
            }
            self.order.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(session: &str, id: &str) -> AskedKey {
        (0, Some(session.to_owned()), id.as_bytes().to_vec())
    }

    fn asked(method: &str) -> Asked {
        Asked {
            method: method.to_owned(),
            request: Arc::from("{}"),
        }
    }

    #[test]
    fn an_answer_finds_its_request_once_in_its_own_session_only() {
        let book = AskedBook::default();
        let now = Instant::now();
        book.record(key("a", "0"), asked("sampling/createMessage"), now);
        assert_eq!(book.take(&key("b", "0"), now), None, "another session");
        assert_eq!(book.take(&key("a", "\"0\""), now), None, "another spelling");
        assert_eq!(
            book.take(&key("a", "0"), now).map(|a| a.method),
            Some("sampling/createMessage".to_owned())
        );
        assert_eq!(book.take(&key("a", "0"), now), None, "answered once");
    }

    #[test]
    fn requests_expire_and_the_oldest_make_room() {
        let book = AskedBook::default();
        let t0 = Instant::now();
        book.record(key("a", "1"), asked("m"), t0);
        assert!(book.take(&key("a", "1"), t0 + AskedBook::KEEP).is_none());
        for i in 0..AskedBook::CAPACITY + 2 {
            book.record(key("a", &i.to_string()), asked("m"), t0);
        }
        assert_eq!(book.len(), AskedBook::CAPACITY);
        assert!(book.take(&key("a", "0"), t0).is_none(), "the oldest went");
        assert!(book.take(&key("a", "2"), t0).is_some());
    }
}
