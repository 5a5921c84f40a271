//! `transport = "auto"` riding on the client's first request: a POST's
//! refusal is held until the driver has probed, then either replayed to the
//! route's message upstream or given to the client as it came.

use super::*;

const REFUSAL: &str = "HTTP/1.1 405 Method Not Allowed\r\nContent-Type: text/plain\r\n\
                       Allow: GET\r\nContent-Length: 18\r\n\r\nMethod Not Allowed";
const ANSWER: &str = r#"{"jsonrpc":"2.0","id":"req-7","result":{"content":[]}}"#;

/// A tools/call sent upstream on a route whose transport is in doubt.
fn probing() -> Harness {
    let mut h = Harness::new(config());
    h.client(&post(CALL));
    h.ex.probe_transport();
    h.connected(false);
    h
}

fn the_evidence(h: &Harness) -> &TransportEvidence {
    let [e] = h.log.evidence.as_slice() else {
        panic!("one piece of evidence: {:?}", h.log.evidence);
    };
    e
}

#[test]
fn a_refusal_is_held_and_the_request_replayed_through_the_message_upstream() {
    let mut h = probing();
    h.upstream(REFUSAL.as_bytes());
    let e = the_evidence(&h);
    assert!(e.held);
    assert_eq!((e.status, &e.body[..]), (405, &b"Method Not Allowed"[..]));
    assert!(
        e.request_headers
            .iter()
            .any(|h| h.name.eq_ignore_ascii_case("mcp-session-id") && h.value == b"s-1"),
        "the request's own header fields go to the probe's GET: {:?}",
        e.request_headers
    );
    assert!(h.log.to_client.is_empty(), "the client sees nothing yet");
    assert_eq!(h.log.finished, None);
    assert_eq!(
        h.ex.poll_timeout(),
        None,
        "the probe keeps its own deadline"
    );

    h.ex.transport_probed(true, h.now);
    h.drain();
    assert_eq!(
        h.log.releases,
        vec![false],
        "the refusing connection is dropped"
    );
    assert_eq!(h.log.connects, vec![(0, false), (0, true)]);
    h.message_connected();
    let [req] = h.log.dispatched.as_slice() else {
        panic!("one dispatch: {:?}", h.log.dispatched);
    };
    assert_eq!(
        req.body,
        CALL.as_bytes(),
        "the request goes again, untouched"
    );
    assert_eq!(req.session_id(), Some("s-1"));
    h.answer(AnswerPart::json(upstream::AnswerHead::status(200), ANSWER));
    let (head, body) = decode_response(&h.log.to_client);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(!h.client_text().contains("Method Not Allowed"));
    assert_eq!(body, ANSWER.as_bytes());
    assert_eq!(h.ex.summary().status, Some(200));
    assert_eq!(h.ex.summary().outcome, Outcome::Complete);
}

#[test]
fn a_refusal_that_stays_streamable_reaches_the_client_as_it_came() {
    let mut h = probing();
    let error = r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32000,"message":"Bad Request: No valid session ID provided"}}"#;
    let answer = format!(
        "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n\
         {:x}\r\n{error}\r\n0\r\n\r\n",
        error.len()
    );
    // The head and the body in small pieces: the body is decoded for judging.
    for piece in answer.as_bytes().chunks(7) {
        assert!(h.log.evidence.is_empty() || h.log.evidence[0].held);
        h.upstream(piece);
    }
    let e = the_evidence(&h);
    assert_eq!((e.status, &e.body[..]), (400, error.as_bytes()));
    assert!(h.log.to_client.is_empty());

    h.ex.transport_probed(false, h.now);
    h.drain();
    let (head, body) = decode_response(&h.log.to_client);
    assert!(head.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{head}");
    assert_eq!(body, error.as_bytes());
    assert_eq!(h.log.connects, vec![(0, false)], "no second request");
    assert_eq!(
        h.log.releases,
        vec![true],
        "a whole answer keeps its connection"
    );
    assert_eq!(h.log.finished, Some(Close::KeepAlive));
    assert_eq!(h.ex.summary().status, Some(400));
}

#[test]
fn a_success_streams_at_once_and_is_reported_unheld() {
    let mut h = probing();
    let answer = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{ANSWER}",
        ANSWER.len()
    );
    h.upstream(answer.as_bytes());
    let e = the_evidence(&h);
    assert_eq!((e.status, e.held), (200, false));
    assert!(e.body.is_empty() && e.request_headers.is_empty());
    let (_, body) = decode_response(&h.log.to_client);
    assert_eq!(body, ANSWER.as_bytes());
    assert_eq!(h.log.finished, Some(Close::KeepAlive));
}

#[test]
fn only_a_post_is_probed() {
    let mut h = Harness::new(config());
    h.client(b"GET /mcp HTTP/1.1\r\nHost: localhost:8080\r\nAccept: text/event-stream\r\n\r\n");
    h.ex.probe_transport();
    h.connected(false);
    h.upstream(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n");
    assert!(h.log.evidence.is_empty(), "{:?}", h.log.evidence);
    assert!(h.client_text().starts_with("HTTP/1.1 405 "));
    assert_eq!(h.log.finished, Some(Close::KeepAlive));
}

#[test]
fn a_refusal_that_ends_with_the_connection_is_judged_at_its_end_and_replayed_whole() {
    let mut h = probing();
    h.upstream(b"HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\n\r\n<h1>Not");
    assert!(h.log.evidence.is_empty(), "the body is not over yet");
    h.upstream(b" Found</h1>");
    h.upstream_end(UpstreamEnd::Eof);
    let e = the_evidence(&h);
    assert_eq!((e.status, &e.body[..]), (404, &b"<h1>Not Found</h1>"[..]));

    h.ex.transport_probed(false, h.now);
    h.drain();
    let (head, body) = decode_response(&h.log.to_client);
    assert!(head.starts_with("HTTP/1.1 404 Not Found\r\n"), "{head}");
    assert_eq!(body, b"<h1>Not Found</h1>");
    assert_eq!(h.ex.summary().outcome, Outcome::Complete);
    assert!(h.log.finished.is_some());
}

#[test]
fn a_large_refusal_is_judged_on_its_first_bytes() {
    let mut h = probing();
    let page = "x".repeat(3 * PROBE_BODY_MAX);
    let answer = format!(
        "HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\r\n{page}",
        page.len()
    );
    let (first, rest) = answer.as_bytes().split_at(answer.len() / 2);
    h.upstream(first);
    let e = the_evidence(&h);
    assert_eq!(e.body.len(), PROBE_BODY_MAX);
    // What the driver read meanwhile is kept for the client.
    h.upstream(rest);
    h.ex.transport_probed(false, h.now);
    h.drain();
    let (_, body) = decode_response(&h.log.to_client);
    assert_eq!(body, page.as_bytes());
}

#[test]
fn a_refusal_whose_body_stalls_is_judged_at_the_stream_idle_deadline() {
    let mut config = config();
    config.timeouts.stream_idle = Some(Duration::from_secs(30));
    let mut h = Harness::new(config);
    h.client(&post(CALL));
    h.ex.probe_transport();
    h.connected(false);
    h.upstream(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 100\r\n\r\nMeth");
    assert!(h.log.evidence.is_empty());
    h.advance(Duration::from_secs(31));
    assert_eq!(&the_evidence(&h).body[..], b"Meth");
    assert_eq!(h.log.finished, None, "judged, not failed");
}

#[test]
fn a_client_that_leaves_while_the_refusal_is_held_ends_the_exchange() {
    let mut h = probing();
    h.upstream(REFUSAL.as_bytes());
    h.ex.client_closed(h.now);
    h.drain();
    assert_eq!(h.log.releases, vec![false]);
    assert_eq!(h.log.finished, Some(Close::Abort));
    assert_eq!(h.ex.summary().outcome, Outcome::ClientGone);
    // The driver's late answer changes nothing.
    h.ex.transport_probed(true, h.now);
    h.drain();
    assert_eq!(h.log.connects, vec![(0, false)]);
}
