//! Shared mode's id rewriting: many client sessions, one child.
//!
//! Two clients may both send a request with id `1`; the child must see two
//! ids. Each request a client sends through a shared child gets a fresh
//! child id (a number sluice mints), and the answer the child gives under
//! that id goes back to the session that asked, with the client's own id
//! restored byte for byte (`1.0` stays `1.0`, `"\u0031"` stays as written).
//! Progress tokens collide the same way, so a request's
//! `params._meta.progressToken` goes to the child as the request's child id
//! and comes back, in each `notifications/progress`, as the client wrote
//! it; a client's `notifications/cancelled` names the child id. Only those
//! members are touched: the rest of a message is passed as written.

use std::collections::HashMap;
use std::ops::Range;

use crate::jsonrpc::{Kind, Message, RawId};

/// A request in flight on the child, by its child id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owed<S> {
    /// The client session that sent it.
    pub session: S,
    /// The client's id, as it wrote it.
    pub client_id: RawId,
    /// The client's progress token, as it wrote it.
    pub token: Option<RawId>,
}

/// Why a child's answer could not be routed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unrouted {
    /// Not a response or an error, or one without an id.
    NotAnAnswer,
    /// An id sluice did not mint, or one answered already.
    UnknownId,
}

/// Child ids for client requests, and the way back.
#[derive(Debug)]
pub struct IdRewriter<S> {
    next: u64,
    owed: HashMap<u64, Owed<S>>,
}

impl<S> Default for IdRewriter<S> {
    fn default() -> Self {
        IdRewriter {
            next: 1,
            owed: HashMap::new(),
        }
    }
}

impl<S: Clone + PartialEq> IdRewriter<S> {
    /// A rewriter with nothing in flight.
    pub fn new() -> Self {
        Self::default()
    }

    /// `text` (a request `message` classified from it) from `session`, as
    /// the child must see it: its id, and its progress token if it has
    /// one, replaced by a fresh child id. Returns the rewritten text and
    /// the child id; `None` for anything but a request (notifications and
    /// answers keep their ids).
    pub fn outbound(
        &mut self,
        session: S,
        text: &[u8],
        message: &Message<'_>,
    ) -> Option<(Vec<u8>, u64)> {
        if message.kind != Kind::Request {
            return None;
        }
        let id = message.id?;
        let id_span = span_of(text, id)?;
        let token = message
            .progress_token
            .and_then(|t| Some((t, span_of(text, t)?)));
        let child_id = self.next;
        self.next += 1;
        let minted = child_id.to_string();
        let mut edits = vec![(id_span, minted.as_bytes())];
        if let Some((_, span)) = &token {
            edits.push((span.clone(), minted.as_bytes()));
        }
        let out = splice_all(text, &mut edits);
        self.owed.insert(
            child_id,
            Owed {
                session,
                client_id: RawId::new(id),
                token: token.map(|(t, _)| RawId::new(t)),
            },
        );
        Some((out, child_id))
    }

    /// A `notifications/progress` from the child: the session whose
    /// request it reports on (still in flight), and the text with that
    /// request's progress token restored. `None` for a token sluice did not
    /// hand out or a request already answered.
    pub fn progress(&self, text: &[u8], message: &Message<'_>) -> Option<(S, Vec<u8>)> {
        let raw = message.progress_token?;
        let owed = self.owed.get(&child_id_of(raw)?)?;
        let token = owed.token.as_ref()?;
        let span = span_of(text, raw)?;
        Some((owed.session.clone(), splice(text, span, token.as_bytes())))
    }

    /// A client's `notifications/cancelled` (`text`, classified as
    /// `message`) as the child must see it: its `requestId` replaced by the
    /// child id of the request it names, which must be one `owns` accepts
    /// (the cancelling client's own). The request is forgotten: the child
    /// answers a cancelled request with nothing, and a late answer has
    /// nowhere to go. `None` when it names no such request.
    pub fn cancel(
        &mut self,
        owns: impl Fn(&S) -> bool,
        text: &[u8],
        message: &Message<'_>,
    ) -> Option<(S, Vec<u8>)> {
        let client_id = message.request_id?;
        let span = span_of(text, client_id)?;
        let (&child_id, _) = self
            .owed
            .iter()
            .find(|(_, o)| owns(&o.session) && o.client_id.matches(client_id))?;
        let owed = self.owed.remove(&child_id)?;
        Some((
            owed.session,
            splice(text, span, child_id.to_string().as_bytes()),
        ))
    }

    /// Who sent each request in flight, by child id (in no order).
    pub fn owners(&self) -> impl Iterator<Item = (u64, &S)> {
        self.owed.iter().map(|(id, o)| (*id, &o.session))
    }

    /// Forgets the request that went out as `child_id` (its client left);
    /// returns who sent it.
    pub fn forget(&mut self, child_id: u64) -> Option<Owed<S>> {
        self.owed.remove(&child_id)
    }

    /// An answer from the child (`text`, classified as `message`): the
    /// session that asked, and the text with the client's id restored.
    pub fn inbound(
        &mut self,
        text: &[u8],
        message: &Message<'_>,
    ) -> Result<(S, Vec<u8>), Unrouted> {
        if !matches!(message.kind, Kind::Response | Kind::Error) {
            return Err(Unrouted::NotAnAnswer);
        }
        let id = message.id.ok_or(Unrouted::NotAnAnswer)?;
        let child_id = child_id_of(id).ok_or(Unrouted::UnknownId)?;
        let owed = self.owed.remove(&child_id).ok_or(Unrouted::UnknownId)?;
        let span = span_of(text, id).ok_or(Unrouted::NotAnAnswer)?;
        Ok((owed.session, splice(text, span, owed.client_id.as_bytes())))
    }

    /// The child id a session's request went out under, to cancel it
    /// (`notifications/cancelled` carries the child's id).
    pub fn child_id(&self, session: &S, client_id: &[u8]) -> Option<u64> {
        self.owed
            .iter()
            .find(|(_, o)| o.session == *session && o.client_id.matches(client_id))
            .map(|(id, _)| *id)
    }

    /// A session (or stream) ended: forget the requests for which `pred`
    /// holds; returns their child ids (each owed a `notifications/cancelled`
    /// to the child), in the order sent.
    pub fn forget_all(&mut self, pred: impl Fn(&S) -> bool) -> Vec<u64> {
        let mut ids: Vec<u64> = self
            .owed
            .iter()
            .filter(|(_, o)| pred(&o.session))
            .map(|(id, _)| *id)
            .collect();
        ids.sort_unstable();
        for id in &ids {
            self.owed.remove(id);
        }
        ids
    }

    /// Requests in flight on the child.
    pub fn in_flight(&self) -> usize {
        self.owed.len()
    }
}

/// A child id as sluice writes it: a plain decimal number.
fn child_id_of(raw: &[u8]) -> Option<u64> {
    if raw.is_empty() || raw.len() > 20 || !raw.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(raw).ok()?.parse().ok()
}

/// Where `part` (a slice of `whole`, as the classifier hands out) lies.
pub(super) fn span_of(whole: &[u8], part: &[u8]) -> Option<Range<usize>> {
    let start = (part.as_ptr() as usize).checked_sub(whole.as_ptr() as usize)?;
    let end = start + part.len();
    (end <= whole.len()).then_some(start..end)
}

/// `text` with each span replaced; the spans must not overlap.
fn splice_all(text: &[u8], edits: &mut [(Range<usize>, &[u8])]) -> Vec<u8> {
    edits.sort_by_key(|(span, _)| span.start);
    let mut out = Vec::with_capacity(text.len() + 16 * edits.len());
    let mut at = 0;
    for (span, with) in edits.iter() {
        out.extend_from_slice(&text[at..span.start]);
        out.extend_from_slice(with);
        at = span.end;
    }
    out.extend_from_slice(&text[at..]);
    out
}

fn splice(text: &[u8], span: Range<usize>, with: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() - span.len() + with.len());
    out.extend_from_slice(&text[..span.start]);
    out.extend_from_slice(with);
    out.extend_from_slice(&text[span.end..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jsonrpc::{Classified, Limits, classify};

    fn one(text: &[u8]) -> Message<'_> {
        match classify(text, &Limits::default()).unwrap() {
            Classified::Single(m) => m,
            Classified::Batch(_) => panic!("a batch"),
        }
    }

    #[test]
    fn two_sessions_with_the_same_id_get_two_child_ids_and_their_own_answers() {
        let mut ids = IdRewriter::new();
        let a = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x"}}"#;
        let b = br#"{"jsonrpc":"2.0","method":"tools/list","id":1.0}"#;
        let (to_child_a, ca) = ids.outbound("A", a, &one(a)).unwrap();
        let (to_child_b, cb) = ids.outbound("B", b, &one(b)).unwrap();
        assert_ne!(ca, cb);
        assert_eq!(
            to_child_a,
            format!(
                r#"{{"jsonrpc":"2.0","id":{ca},"method":"tools/call","params":{{"name":"x"}}}}"#
            )
            .as_bytes()
        );
        assert_eq!(
            to_child_b,
            format!(r#"{{"jsonrpc":"2.0","method":"tools/list","id":{cb}}}"#).as_bytes()
        );
        assert_eq!(ids.in_flight(), 2);

        // Answers in the other order, each to its own session, ids as written.
        let answer_b = format!(r#"{{"jsonrpc":"2.0","id":{cb},"result":{{"tools":[]}}}}"#);
        let (session, text) = ids
            .inbound(answer_b.as_bytes(), &one(answer_b.as_bytes()))
            .unwrap();
        assert_eq!(
            (session, &text[..]),
            (
                "B",
                &br#"{"jsonrpc":"2.0","id":1.0,"result":{"tools":[]}}"#[..]
            )
        );
        let answer_a =
            format!(r#"{{"jsonrpc":"2.0","error":{{"code":-1,"message":"no"}},"id":{ca}}}"#);
        let (session, text) = ids
            .inbound(answer_a.as_bytes(), &one(answer_a.as_bytes()))
            .unwrap();
        assert_eq!(session, "A");
        assert_eq!(
            text,
            br#"{"jsonrpc":"2.0","error":{"code":-1,"message":"no"},"id":1}"#
        );
        assert_eq!(ids.in_flight(), 0);
        // A second answer to the same id has nowhere to go.
        assert_eq!(
            ids.inbound(answer_a.as_bytes(), &one(answer_a.as_bytes())),
            Err(Unrouted::UnknownId)
        );
    }

    #[test]
    fn a_string_id_comes_back_byte_for_byte() {
        let mut ids = IdRewriter::new();
        let req = br#"{"jsonrpc":"2.0","id":"\u0072-1","method":"ping"}"#;
        let (_, child) = ids.outbound(7u32, req, &one(req)).unwrap();
        let answer = format!(r#"{{"jsonrpc":"2.0","id":{child},"result":{{}}}}"#);
        let (session, text) = ids
            .inbound(answer.as_bytes(), &one(answer.as_bytes()))
            .unwrap();
        assert_eq!(session, 7);
        assert_eq!(text, br#"{"jsonrpc":"2.0","id":"\u0072-1","result":{}}"#);
    }

    #[test]
    fn only_requests_are_rewritten_and_only_minted_ids_routed() {
        let mut ids = IdRewriter::<&str>::new();
        let note = br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
        assert_eq!(ids.outbound("A", note, &one(note)), None);
        let answer = br#"{"jsonrpc":"2.0","id":"1","result":{}}"#;
        assert_eq!(ids.inbound(answer, &one(answer)), Err(Unrouted::UnknownId));
        let req = br#"{"jsonrpc":"2.0","id":5,"method":"sampling/createMessage"}"#;
        assert_eq!(ids.inbound(req, &one(req)), Err(Unrouted::NotAnAnswer));
    }

    #[test]
    fn a_session_that_leaves_hands_back_its_child_ids_to_cancel() {
        let mut ids = IdRewriter::new();
        let req = |id: u32| {
            format!(
                r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"slow"}}}}"#
            )
        };
        let mut sent = Vec::new();
        for (session, id) in [("A", 1), ("B", 1), ("A", 2)] {
            let text = req(id);
            sent.push(
                ids.outbound(session, text.as_bytes(), &one(text.as_bytes()))
                    .unwrap()
                    .1,
            );
        }
        assert_eq!(ids.child_id(&"A", b"2"), Some(sent[2]));
        assert_eq!(ids.child_id(&"B", b"2"), None);
        assert_eq!(ids.forget_all(|s| *s == "A"), vec![sent[0], sent[2]]);
        assert_eq!(ids.in_flight(), 1);
        assert_eq!(ids.child_id(&"B", b"1"), Some(sent[1]));
    }
}
