//! An exchange whose upstream speaks in messages (the typed seam of
//! `crate::upstream`): the request goes out typed, the answer comes back
//! as parts, and the client sees the same HTTP an HTTP upstream's answer
//! would give it, with the same hooks and injection rules.

use super::*;
use crate::upstream::AnswerHead;

const PROGRESS: &str = r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"t","progress":1}}"#;
const ANSWER: &str = r#"{"jsonrpc":"2.0","id":"req-7","result":{"content":[]}}"#;

fn head() -> AnswerHead {
    AnswerHead::status(200).with_session(Some("s-1"))
}

fn event(data: &str) -> AnswerPart {
    AnswerPart::Event(Bytes::copy_from_slice(data.as_bytes()))
}

/// The data of every event of an SSE body.
fn events(body: &[u8]) -> Vec<String> {
    let mut parser = crate::sse::SseParser::new(SseLimits::default());
    parser.feed(body);
    let mut out = Vec::new();
    while let Some(item) = parser.poll() {
        if let Ok(crate::sse::SseItem::Event(e)) = item {
            out.push(e.data);
        }
    }
    assert!(parser.at_event_boundary(), "the body ends between events");
    out
}

/// A tools/call handed to a message upstream.
fn dispatched(config: ExchangeConfig) -> Harness {
    let mut h = Harness::new(config);
    h.client(&post(CALL));
    if !h.log.hooks.is_empty() {
        h.verdict(HookVerdict::Continue);
    }
    assert_eq!(h.log.connects, vec![(0, false)]);
    h.message_connected();
    h
}

#[test]
fn the_request_goes_out_typed_and_a_whole_answer_comes_back_framed() {
    let mut h = dispatched(config());
    assert!(h.log.to_upstream.is_empty(), "no HTTP is written");
    let [req] = h.log.dispatched.as_slice() else {
        panic!("one dispatch: {:?}", h.log.dispatched);
    };
    assert_eq!((req.method.as_str(), req.target.as_str()), ("POST", "/mcp"));
    assert_eq!(req.body, CALL.as_bytes());
    assert_eq!(req.session_id(), Some("s-1"));
    assert!(req.accepts().sse && req.accepts().json);

    h.answer(AnswerPart::json(head(), ANSWER));
    let (head_text, body) = decode_response(&h.log.to_client);
    assert!(head_text.starts_with("HTTP/1.1 200 OK\r\n"), "{head_text}");
    assert!(head_text.contains("Content-Type: application/json\r\n"));
    assert!(head_text.contains(&format!("Content-Length: {}\r\n", ANSWER.len())));
    assert!(head_text.contains("Mcp-Session-Id: s-1\r\n"));
    assert_eq!(body, ANSWER.as_bytes());
    assert_eq!(h.log.finished, Some(Close::KeepAlive));
    assert_eq!(h.log.releases, vec![false], "a link is never pooled");
    assert_eq!(h.ex.summary().outcome, Outcome::Complete);
}

#[test]
fn an_empty_answer_is_a_bodyless_response() {
    let mut h = dispatched(config());
    h.answer(AnswerPart::empty(AnswerHead::status(202)));
    let text = h.client_text();
    assert!(text.starts_with("HTTP/1.1 202 Accepted\r\n"), "{text}");
    assert!(text.contains("Content-Length: 0\r\n"), "{text}");
    assert!(!text.contains("Content-Type"), "{text}");
    assert_eq!(h.log.finished, Some(Close::KeepAlive));
}

#[test]
fn a_streamed_answer_is_one_event_per_message_and_chunked() {
    let mut h = dispatched(config());
    h.answer(AnswerPart::Stream(head())).answer(event(PROGRESS));
    // The progress is out before the answer exists.
    let (_, so_far) = decode_response_partial(&h.log.to_client);
    assert_eq!(events(&so_far), [PROGRESS]);
    h.answer(event(ANSWER)).answer(AnswerPart::End);
    let (head_text, body) = decode_response(&h.log.to_client);
    assert!(head_text.contains("Content-Type: text/event-stream\r\n"));
    assert!(head_text.contains("Transfer-Encoding: chunked\r\n"));
    assert_eq!(events(&body), [PROGRESS, ANSWER]);
    assert_eq!(h.log.finished, Some(Close::KeepAlive));
}

#[test]
fn a_stream_that_ends_before_its_answer_gets_the_clients_id_as_an_error_event() {
    for end in [AnswerPart::End, AnswerPart::Event(Bytes::new())] {
        let mut h = dispatched(config());
        h.answer(AnswerPart::Stream(head())).answer(event(PROGRESS));
        match end {
            // The upstream says the answer is over, without the answer.
            AnswerPart::End => h.answer(AnswerPart::End),
            // The upstream gave up on the stream.
            _ => h.upstream_end(UpstreamEnd::Error),
        };
        let (_, body) = decode_response(&h.log.to_client);
        let messages = events(&body);
        assert_eq!(messages.len(), 2, "{messages:?}");
        let error: serde_json::Value = serde_json::from_str(&messages[1]).unwrap();
        assert_eq!(error["id"], "req-7");
        assert_eq!(error["error"]["code"], UPSTREAM_FAILED);
    }
}

#[test]
fn parts_out_of_order_fail_the_exchange_with_the_clients_id() {
    let mut h = dispatched(config());
    h.answer(event(ANSWER));
    let (head_text, body) = decode_response(&h.log.to_client);
    assert!(head_text.starts_with("HTTP/1.1 502"), "{head_text}");
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["id"], "req-7");
    assert_eq!(h.log.releases, vec![false]);
}

#[test]
fn a_response_hook_judges_a_streamed_answer_and_its_replacement_goes_out() {
    let mut h = dispatched(hooked_config(&["tools/call"]));
    h.answer(AnswerPart::Stream(head())).answer(event(PROGRESS));
    assert_eq!(h.log.hooks.len(), 1, "only the request hook so far");
    h.answer(event(ANSWER));
    let call = h.log.hooks.last().unwrap();
    assert_eq!(call.phase, HookPhase::Response);
    assert_eq!(call.response.as_deref(), Some(ANSWER));
    let (_, so_far) = decode_response_partial(&h.log.to_client);
    assert_eq!(events(&so_far), [PROGRESS], "the answer waits for its hook");
    let replaced = r#"{"jsonrpc":"2.0","id":"req-7","result":{"content":[],"isError":true}}"#;
    h.verdict(HookVerdict::Replace(replaced.as_bytes().to_vec()))
        .answer(AnswerPart::End);
    let (_, body) = decode_response(&h.log.to_client);
    assert_eq!(events(&body), [PROGRESS, replaced]);
    assert_eq!(h.log.finished, Some(Close::KeepAlive));
}

#[test]
fn the_strict_answer_rule_holds_for_messages_too() {
    // An answer under a respelled id must not reach the client unjudged.
    let mut h = dispatched(hooked_config(&["tools/call"]));
    let respelled = r#"{"jsonrpc":"2.0","id":"req\u002d7","result":{"secret":1}}"#;
    h.answer(AnswerPart::Stream(head()))
        .answer(event(respelled));
    h.answer(AnswerPart::End);
    let (_, body) = decode_response(&h.log.to_client);
    let messages = events(&body);
    assert!(
        !messages.iter().any(|m| m.contains("secret")),
        "{messages:?}"
    );
    let v: serde_json::Value = serde_json::from_str(messages.last().unwrap()).unwrap();
    assert_eq!(v["id"], "req-7");
    assert_eq!(v["error"]["code"], HOOK_FAILED);
}

#[test]
fn a_prime_and_identified_events_carry_their_ids_for_last_event_id() {
    let mut h = dispatched(config());
    h.answer(AnswerPart::Stream(head()));
    h.answer(AnswerPart::Prime(40));
    h.answer(AnswerPart::IdentifiedEvent {
        id: 41,
        data: Bytes::from_static(PROGRESS.as_bytes()),
    });
    h.answer(AnswerPart::IdentifiedEvent {
        id: 42,
        data: Bytes::from_static(ANSWER.as_bytes()),
    });
    h.answer(AnswerPart::End);
    let (_, body) = decode_response(&h.log.to_client);
    let text = String::from_utf8(body.clone()).unwrap();
    assert!(text.contains("id: 41\n"), "{text}");
    let mut parser = crate::sse::SseParser::new(SseLimits::default());
    parser.feed(&body);
    let mut ids = Vec::new();
    while let Some(item) = parser.poll() {
        if let Ok(crate::sse::SseItem::Event(e)) = item {
            ids.push((e.id.clone(), e.data.clone()));
        }
    }
    assert!(
        text.starts_with("id: 40\ndata:\n\n"),
        "primed first: {text}"
    );
    assert_eq!(
        ids,
        vec![
            ("40".to_owned(), String::new()),
            ("41".to_owned(), PROGRESS.to_owned()),
            ("42".to_owned(), ANSWER.to_owned())
        ]
    );
    assert_eq!(h.ex.summary().outcome, Outcome::Complete);
}

#[test]
fn a_named_event_carries_its_text_id_and_one_the_client_could_not_read_goes_without() {
    let mut h = dispatched(config());
    h.answer(AnswerPart::Stream(head()));
    h.answer(AnswerPart::NamedEvent {
        id: "1:s_1733_abc".into(),
        data: Bytes::from_static(PROGRESS.as_bytes()),
    });
    h.answer(AnswerPart::NamedEvent {
        id: "2:bad\nid: 9".into(),
        data: Bytes::from_static(ANSWER.as_bytes()),
    });
    h.answer(AnswerPart::End);
    let (_, body) = decode_response(&h.log.to_client);
    let mut parser = crate::sse::SseParser::new(SseLimits::default());
    parser.feed(&body);
    let mut ids = Vec::new();
    while let Some(item) = parser.poll() {
        if let Ok(crate::sse::SseItem::Event(e)) = item {
            ids.push((e.id.clone(), e.data.clone()));
        }
    }
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert_eq!(ids[0], ("1:s_1733_abc".to_owned(), PROGRESS.to_owned()));
    // No id line of its own: the last one stays (the parser's rule), and
    // nothing the member wrote became a field.
    assert_eq!(ids[1], ("1:s_1733_abc".to_owned(), ANSWER.to_owned()));
}
