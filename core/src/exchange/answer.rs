//! Which messages of an upstream answer a response hook must judge, under
//! the one strict rule that keeps hooked content from reaching a client
//! unseen.
//!
//! # The rule
//!
//! When a hook subscribed to the answer of a request, every message the
//! upstream sends in that answer is either the one the hook judged, or
//! something no client takes as an answer:
//!
//! - a response or error whose `id` is **byte for byte** the raw text of an
//!   owed request id is that request's answer, and is held for the hooks
//!   (or passes, in a batch, when no hook wants that request's answer);
//! - a server request, a notification or an SSE event without data (a
//!   priming event) is not an answer and passes;
//! - anything else breaks the rule: a response with any other id (`"1"`,
//!   `1.0`, `1e0` or `"\u0031"` for the request id `1`, `null`, or a second
//!   answer to the same request), an array in the answer to a single
//!   request, an array holding anything but owed answers, or a message that
//!   does not classify. The answer is then cut there: every request still
//!   owed an answer gets a hook-failure error with its own id, and nothing
//!   after the cut reaches the client.
//!
//! Comparing ids "the way the SDKs do" was the alternative. It was not
//! taken: the SDKs disagree (the TypeScript SDK matches `"1"`, `1.0` and
//! `1e0` to `1`, the Python SDKs only `"1"`), so "equal as some client reads
//! it" would be the union of every client's quirks, today's and tomorrow's.
//! An upstream that answers with a re-spelled id is broken or hostile;
//! failing its answer closed costs nothing a correct server ever sees.

use std::sync::Arc;

use std::time::Instant;

use super::HookFilter;
use super::asked::Asked;
use crate::jsonrpc::{self, Classified, Kind};

/// One request of the client's body that is owed an answer.
#[derive(Debug, Clone)]
pub(super) struct Owed {
    /// The request id, as its raw JSON text.
    pub id: Vec<u8>,
    /// The request's method.
    pub method: String,
    /// The request message as it was forwarded.
    pub request: Arc<str>,
    /// Some hook wants this request's answer.
    pub hooked: bool,
    /// A message answering it was seen in the answer.
    seen: bool,
    /// Its answer (or an error in its place) went to the client.
    pub delivered: bool,
}

/// One message of a held answer that a hook judges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Part {
    /// The element of an array answer, `None` for a single message.
    pub element: Option<usize>,
    /// Index into the ledger's owed requests.
    pub owed: usize,
    /// The answer's exact text, as classified (what a hook sees).
    pub text: Arc<str>,
}

/// What one message of an answer (a JSON body or an SSE event's data) is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Judged {
    /// Not an answer (a server request, a notification, no data): it goes
    /// through as it is.
    Pass,
    /// Answers only requests no hook judges (in a batch): it goes through,
    /// and these owed requests are answered once it has.
    Through(Vec<usize>),
    /// Answers hooked requests: held until the hooks have judged each hooked
    /// part (every answer in it is listed, hooked or not).
    Hold(Vec<Part>),
    /// A server request or notification some hook wants in the
    /// server-message phase: held until the hooks have judged it.
    Server(ServerMessage),
    /// Breaks the rule (why): the answer is cut here.
    Refuse(String),
}

/// A server request or notification held for the server-message hooks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ServerMessage {
    pub method: String,
    /// The raw id of a server request; `None` for a notification.
    pub id: Option<Vec<u8>>,
    /// The message's exact text, as classified (what a hook sees).
    pub text: Arc<str>,
}

/// The requests of one exchange that are owed answers, for an answer some
/// response hook subscribed to, and the server messages some hook wants.
#[derive(Debug)]
pub(super) struct Ledger {
    owed: Vec<Owed>,
    /// The client sent a batch (arrays may answer it).
    batch: bool,
    limits: jsonrpc::Limits,
    /// Some owed answer is hooked: the strict rule holds for every answer.
    /// Without it (only server messages are hooked) answers are not
    /// policed: one matching an owed id is counted, any other passes, as on
    /// an unhooked stream.
    strict: bool,
    /// The chain, when some hook may want server messages or the answers
    /// to them.
    server: Option<HookFilter>,
    /// Where the server requests of this answer are asked: the route and
    /// the client's session (for the client-answer hooks).
    asked_in: (usize, Option<String>),
    /// The time of the bytes being judged.
    clock: Option<Instant>,
}

impl Ledger {
    /// The ledger for a request body, or `None` when no hook wants any of
    /// its answers (the answer then streams unheld).
    pub fn for_request(
        body: &[u8],
        wants_response: impl Fn(&str) -> bool,
        limits: jsonrpc::Limits,
    ) -> Option<Ledger> {
        let ledger = Ledger::read(body, wants_response, limits)?;
        ledger.strict.then_some(ledger)
    }

    /// The requests of `body`, each hooked where `wants_response` says.
    fn read(
        body: &[u8],
        wants_response: impl Fn(&str) -> bool,
        limits: jsonrpc::Limits,
    ) -> Option<Ledger> {
        let owed_of = |m: &jsonrpc::Message<'_>| -> Option<Owed> {
            if m.kind != Kind::Request {
                return None;
            }
            let method = m.method.as_deref()?;
            Some(Owed {
                id: m.id?.to_vec(),
                method: method.to_owned(),
                request: Arc::from(m.text),
                hooked: wants_response(method),
                seen: false,
                delivered: false,
            })
        };
        let (owed, batch): (Vec<Owed>, bool) = match jsonrpc::classify(body, &limits).ok()? {
            Classified::Single(m) => (owed_of(&m).into_iter().collect(), false),
            Classified::Batch(ms) => (ms.iter().filter_map(owed_of).collect(), true),
        };
        Some(Ledger {
            strict: owed.iter().any(|o| o.hooked),
            owed,
            batch,
            limits,
            server: None,
            asked_in: (0, None),
            clock: None,
        })
    }

    /// The ledger for the answer to a request with `body` (empty for a GET)
    /// under the hook chain `filter`: `None` when no hook wants any of its
    /// answers nor any server message (the answer then streams unheld).
    pub fn for_answer(
        body: &[u8],
        filter: &HookFilter,
        limits: jsonrpc::Limits,
        asked_in: (usize, Option<String>),
    ) -> Option<Ledger> {
        let ledger = if body.is_empty() {
            None
        } else {
            Ledger::for_request(body, |m| filter.wants_response(m), limits)
        };
        if !filter.reads_server_streams() {
            return ledger;
        }
        let mut ledger = ledger.unwrap_or_else(|| Ledger::unhooked(body, limits));
        ledger.server = Some(filter.clone());
        ledger.asked_in = asked_in;
        Some(ledger)
    }

    /// The time of the bytes judged next.
    pub fn tick(&mut self, now: Instant) {
        self.clock = Some(now);
    }

    /// The server request `id` of `method`, as the client gets it in
    /// `text`: remembered when some hook wants client answers. Every
    /// server request is, so that an answer to one never forwarded here
    /// is told from one no hook wants; only a wanted one's text is kept.
    pub fn remember_asked(&self, method: &str, id: Option<&[u8]>, text: &str) {
        let (Some(filter), Some(id), Some(now)) = (&self.server, id, self.clock) else {
            return;
        };
        let Some(book) = filter.asked() else { return };
        let key = (self.asked_in.0, self.asked_in.1.clone(), id.to_vec());
        let asked = Asked {
            method: method.to_owned(),
            request: if filter.wants_client_answer(method) {
                Arc::from(text)
            } else {
                Arc::from("")
            },
        };
        book.record(key, asked, now);
    }

    /// A ledger of `body`'s requests with no answer hooked (their answers
    /// are counted, not held).
    fn unhooked(body: &[u8], limits: jsonrpc::Limits) -> Ledger {
        Ledger::read(body, |_| false, limits).unwrap_or(Ledger {
            owed: Vec::new(),
            batch: false,
            limits,
            strict: false,
            server: None,
            asked_in: (0, None),
            clock: None,
        })
    }

    /// The server message `m` if some hook wants it held.
    fn hooked_server_message(&self, m: &jsonrpc::Message<'_>) -> Option<ServerMessage> {
        let method = m.method.as_deref()?;
        let filter = self.server.as_ref()?;
        filter.wants_server_message(method).then(|| ServerMessage {
            method: method.to_owned(),
            id: m.id.map(<[u8]>::to_vec),
            text: Arc::from(m.text),
        })
    }

    pub fn owed(&self, index: usize) -> &Owed {
        &self.owed[index]
    }

    /// Judge one message of the answer, in stream order. An empty `data`
    /// (an SSE event without data) is not a message.
    pub fn judge(&mut self, data: &[u8]) -> Judged {
        if data.is_empty() {
            return Judged::Pass;
        }
        let classified = match jsonrpc::classify(data, &self.limits) {
            Ok(c) => c,
            Err(e) => return Judged::Refuse(format!("a message could not be read: {e}")),
        };
        let mut parts = Vec::new();
        match classified {
            Classified::Single(m) => match m.kind {
                Kind::Request | Kind::Notification => {
                    return match self.hooked_server_message(&m) {
                        Some(server) => Judged::Server(server),
                        None => {
                            if let (Kind::Request, Some(method)) = (m.kind, m.method.as_deref()) {
                                self.remember_asked(method, m.id, m.text);
                            }
                            Judged::Pass
                        }
                    };
                }
                Kind::Response | Kind::Error => match self.claim(m.id, &[]) {
                    Ok(owed) => parts.push(Part {
                        element: None,
                        owed,
                        text: Arc::from(m.text),
                    }),
                    Err(_) if !self.strict => return Judged::Pass,
                    Err(why) => return Judged::Refuse(why),
                },
            },
            Classified::Batch(ms) => {
                // A hooked server message must not hide in an array:
                // hooks see messages one at a time.
                if ms.iter().any(|m| self.hooked_server_message(m).is_some()) {
                    return Judged::Refuse(
                        "an array held a server message a hook must see on its own".into(),
                    );
                }
                for m in ms.iter().filter(|m| m.kind == Kind::Request) {
                    if let Some(method) = m.method.as_deref() {
                        self.remember_asked(method, m.id, m.text);
                    }
                }
                if !self.strict {
                    // Not policed: answers are counted where they match.
                    let mut claimed = Vec::new();
                    for m in ms
                        .iter()
                        .filter(|m| matches!(m.kind, Kind::Response | Kind::Error))
                    {
                        if let Ok(owed) = self.claim(m.id, &claimed) {
                            claimed.push(owed);
                        }
                    }
                    for &i in &claimed {
                        self.owed[i].seen = true;
                    }
                    return Judged::Through(claimed);
                }
                if !self.batch {
                    return Judged::Refuse("an array answered a single request".into());
                }
                let mut claimed = Vec::with_capacity(ms.len());
                for (i, m) in ms.iter().enumerate() {
                    if !matches!(m.kind, Kind::Response | Kind::Error) {
                        return Judged::Refuse(
                            "an array held a message that is not an answer".into(),
                        );
                    }
                    match self.claim(m.id, &claimed) {
                        Ok(owed) => {
                            claimed.push(owed);
                            parts.push(Part {
                                element: Some(i),
                                owed,
                                text: Arc::from(m.text),
                            });
                        }
                        Err(why) => return Judged::Refuse(why),
                    }
                }
            }
        }
        // The whole message is valid: only now are its answers counted.
        for p in &parts {
            self.owed[p.owed].seen = true;
        }
        if parts.iter().any(|p| self.owed[p.owed].hooked) {
            // Unhooked elements of a held array wait with it.
            Judged::Hold(parts)
        } else {
            Judged::Through(parts.iter().map(|p| p.owed).collect())
        }
    }

    /// The owed request that `id` answers, if it is owed and not yet seen
    /// (nor claimed by an earlier element of the same array).
    fn claim(&self, id: Option<&[u8]>, claimed: &[usize]) -> Result<usize, String> {
        let Some(id) = id else {
            return Err("an answer carried no id".into());
        };
        self.owed
            .iter()
            .enumerate()
            .position(|(i, o)| o.id == id && !o.seen && !claimed.contains(&i))
            .ok_or_else(|| {
                let text = String::from_utf8_lossy(id);
                if self.owed.iter().any(|o| o.id == id) {
                    format!("a second answer to the request with id {text}")
                } else {
                    format!("an answer with id {text}, which is not the request's id as sent")
                }
            })
    }

    /// The answers to these owed requests went to the client.
    pub fn delivered(&mut self, owed: impl IntoIterator<Item = usize>) {
        for i in owed {
            self.owed[i].delivered = true;
        }
    }

    /// Every owed request has been seen answered.
    pub fn all_seen(&self) -> bool {
        self.owed.iter().all(|o| o.seen)
    }

    /// Every owed request's answer went to the client.
    pub fn all_delivered(&self) -> bool {
        self.owed.iter().all(|o| o.delivered)
    }

    /// A hook-failure error for every request whose answer has not gone to
    /// the client, which now counts as delivered; `why` goes into the
    /// message.
    pub fn fail_undelivered(&mut self, code: i64, why: &str) -> Vec<Vec<u8>> {
        let message = format!("sluice: {why}");
        let mut out = Vec::new();
        for o in &mut self.owed {
            if !o.delivered {
                o.delivered = true;
                o.seen = true;
                out.push(jsonrpc::error_message(Some(&o.id), code, &message, None));
            }
        }
        out
    }

    /// The JSON text that carries `messages` as one body: the message
    /// itself, or an array for a batch.
    pub fn body_of(&self, messages: &[Vec<u8>]) -> Vec<u8> {
        match messages {
            [one] if !self.batch => one.clone(),
            many => {
                let mut out = vec![b'['];
                for (i, m) in many.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    out.extend_from_slice(m);
                }
                out.push(b']');
                out
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ledger(body: &str, hooked: &'static [&'static str]) -> Ledger {
        Ledger::for_request(
            body.as_bytes(),
            |m| hooked.contains(&m),
            jsonrpc::Limits::default(),
        )
        .expect("a hooked request")
    }

    const CALL_1: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x"}}"#;

    #[test]
    fn only_the_exact_id_is_the_answer() {
        for (answer, want) in [
            (r#"{"jsonrpc":"2.0","id":1,"result":{}}"#, true),
            (
                r#"{"jsonrpc":"2.0","id":1,"error":{"code":1,"message":"x"}}"#,
                true,
            ),
            (r#"{"jsonrpc":"2.0","id":"1","result":{}}"#, false),
            (r#"{"jsonrpc":"2.0","id":1.0,"result":{}}"#, false),
            (r#"{"jsonrpc":"2.0","id":1e0,"result":{}}"#, false),
            (r#"{"jsonrpc":"2.0","id":"\u0031","result":{}}"#, false),
            (r#"{"jsonrpc":"2.0","id":2,"result":{}}"#, false),
            (
                r#"{"jsonrpc":"2.0","id":null,"error":{"code":1,"message":"x"}}"#,
                false,
            ),
            (
                r#"{"jsonrpc":"2.0","error":{"code":1,"message":"x"}}"#,
                false,
            ),
            (r#"[{"jsonrpc":"2.0","id":1,"result":{}}]"#, false),
            (r#"{"jsonrpc":"2.0","id":1,"result":{},"result":{}}"#, false),
            (r#"not json"#, false),
        ] {
            let got = ledger(CALL_1, &["tools/call"]).judge(answer.as_bytes());
            match (want, &got) {
                (true, Judged::Hold(parts)) => assert_eq!(
                    parts,
                    &[Part {
                        element: None,
                        owed: 0,
                        text: Arc::from(answer.trim()),
                    }]
                ),
                (false, Judged::Refuse(_)) => {}
                _ => panic!("{answer}: {got:?}"),
            }
        }
    }

    #[test]
    fn escapes_in_a_string_id_are_a_different_spelling() {
        let mut l = ledger(
            r#"{"jsonrpc":"2.0","id":"r-1","method":"tools/call","params":{"name":"x"}}"#,
            &["tools/call"],
        );
        assert!(matches!(
            l.judge(br#"{"jsonrpc":"2.0","id":"\u0072-1","result":{}}"#),
            Judged::Refuse(_)
        ));
        assert!(matches!(
            l.judge(br#"{"jsonrpc":"2.0","id":"r-1","result":{}}"#),
            Judged::Hold(_)
        ));
    }

    #[test]
    fn what_is_not_an_answer_passes_and_a_second_answer_is_refused() {
        let mut l = ledger(CALL_1, &["tools/call"]);
        for other in [
            r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":1,"progress":1}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"sampling/createMessage","params":{}}"#,
            "",
        ] {
            assert_eq!(l.judge(other.as_bytes()), Judged::Pass, "{other}");
        }
        assert!(matches!(
            l.judge(br#"{"jsonrpc":"2.0","id":1,"result":{}}"#),
            Judged::Hold(_)
        ));
        assert!(l.all_seen());
        assert!(matches!(
            l.judge(br#"{"jsonrpc":"2.0","id":1,"result":{}}"#),
            Judged::Refuse(why) if why.contains("second answer")
        ));
    }

    #[test]
    fn a_batch_holds_each_hooked_answer_and_passes_the_others() {
        let body = r#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x"}},
                       {"jsonrpc":"2.0","id":"b","method":"tools/list"},
                       {"jsonrpc":"2.0","method":"notifications/x"}]"#;
        let mut l = ledger(body, &["tools/call"]);
        assert!(l.batch);
        assert_eq!(l.owed(0).request.as_ref(), CALL_1.replace(' ', ""));
        // The unhooked answer passes; the hooked one is held, as an element.
        assert_eq!(
            l.judge(br#"{"jsonrpc":"2.0","id":"b","result":{}}"#),
            Judged::Through(vec![1])
        );
        assert_eq!(
            l.judge(br#"[{"jsonrpc":"2.0","id":1,"result":{}}]"#),
            Judged::Hold(vec![Part {
                element: Some(0),
                owed: 0,
                text: Arc::from(r#"{"jsonrpc":"2.0","id":1,"result":{}}"#),
            }])
        );
        let mut l = ledger(body, &["tools/call"]);
        assert_eq!(
            l.judge(
                br#"[{"jsonrpc":"2.0","id":"b","result":{}},{"jsonrpc":"2.0","id":1,"result":{}}]"#
            ),
            Judged::Hold(vec![
                Part {
                    element: Some(0),
                    owed: 1,
                    text: Arc::from(r#"{"jsonrpc":"2.0","id":"b","result":{}}"#),
                },
                Part {
                    element: Some(1),
                    owed: 0,
                    text: Arc::from(r#"{"jsonrpc":"2.0","id":1,"result":{}}"#),
                }
            ])
        );
        // An element answering nothing owed, twice the same id, or a request.
        for bad in [
            r#"[{"jsonrpc":"2.0","id":"1","result":{}}]"#,
            r#"[{"jsonrpc":"2.0","id":1,"result":{}},{"jsonrpc":"2.0","id":1,"result":{}}]"#,
            r#"[{"jsonrpc":"2.0","id":1,"result":{}},{"jsonrpc":"2.0","id":9,"method":"ping"}]"#,
        ] {
            let mut l = ledger(body, &["tools/call"]);
            assert!(
                matches!(l.judge(bad.as_bytes()), Judged::Refuse(_)),
                "{bad}"
            );
            assert!(!l.owed(0).seen, "a refused array counts nothing");
        }
    }

    #[test]
    fn unhooked_requests_need_no_ledger() {
        assert!(
            Ledger::for_request(CALL_1.as_bytes(), |_| false, jsonrpc::Limits::default()).is_none()
        );
        let note = r#"{"jsonrpc":"2.0","method":"tools/call","params":{"name":"x"}}"#;
        assert!(
            Ledger::for_request(note.as_bytes(), |_| true, jsonrpc::Limits::default()).is_none()
        );
    }

    #[test]
    fn failing_names_every_undelivered_request_once() {
        let body = r#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x"}},
                       {"jsonrpc":"2.0","id":"b","method":"tools/list"}]"#;
        let mut l = ledger(body, &["tools/call"]);
        assert_eq!(
            l.judge(br#"{"jsonrpc":"2.0","id":"b","result":{}}"#),
            Judged::Through(vec![1])
        );
        l.delivered([1]);
        let errors = l.fail_undelivered(-32010, "cut");
        assert_eq!(errors.len(), 1);
        assert!(errors[0].starts_with(br#"{"jsonrpc":"2.0","id":1,"error""#));
        assert!(l.all_delivered());
        assert!(l.fail_undelivered(-32010, "again").is_empty());
        assert_eq!(l.body_of(&errors).first(), Some(&b'['));
    }
}
