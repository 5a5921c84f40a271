//! Server-message hooks: a server request or notification some hook wants
//! (`@server-message`) is held at its place in the stream until the hooks
//! have spoken; everything else goes through as it comes. A stopped server
//! request is answered to the server, never shown to the client.

use super::*;

const SAMPLING: &str = r#"{"jsonrpc":"2.0","id":0,"method":"sampling/createMessage","params":{"messages":[],"maxTokens":9}}"#;
const LOG_NOTE: &str =
    r#"{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"hi"}}"#;
const RESULT: &str = r#"{"jsonrpc":"2.0","id":"req-7","result":{"content":[]}}"#;

fn event(id: &str, data: &str) -> String {
    format!("event: message\nid: {id}\ndata: {data}\n\n")
}

/// A tools/call whose answer streams; hooks want the server's sampling
/// requests and log notifications, and nothing of the client's.
fn streaming_call() -> Harness {
    let mut h = Harness::new(hooked_config(&[
        "sampling/createMessage@server-message",
        "notifications/message@server-message",
    ]));
    h.client(&post(CALL)).connected(false);
    assert!(h.log.hooks.is_empty(), "no request hook is asked for");
    h.upstream(SSE_HEAD.as_bytes());
    h
}

fn client_body(h: &Harness) -> String {
    String::from_utf8(decode_response_partial(&h.log.to_client).1).unwrap()
}

#[test]
fn a_stopped_server_request_is_answered_to_the_server_and_never_reaches_the_client() {
    let mut h = streaming_call();
    h.upstream(chunk(PROGRESS).as_bytes())
        .upstream(chunk(&event("1", SAMPLING)).as_bytes())
        .upstream(chunk(&event("2", RESULT)).as_bytes());
    // The progress went out; the sampling request waits, and the result
    // behind it too: order is kept.
    assert_eq!(client_body(&h), PROGRESS);
    assert_eq!(h.log.hooks.len(), 1);
    let call = &h.log.hooks[0];
    assert_eq!(call.phase, HookPhase::ServerMessage);
    assert_eq!(call.method, "sampling/createMessage");
    assert_eq!(&*call.request, SAMPLING);
    assert_eq!(call.session_id.as_deref(), Some("s-1"));

    h.verdict(HookVerdict::Reject {
        code: -31000,
        message: "sampling is not allowed here".into(),
        data: None,
    })
    .upstream(b"0\r\n\r\n");
    let body = client_body(&h);
    assert!(!body.contains("sampling/createMessage"), "{body}");
    assert_eq!(body, format!("{PROGRESS}{}", event("2", RESULT)));
    assert_eq!(h.log.finished, Some(Close::KeepAlive));

    assert_eq!(h.log.to_server.len(), 1);
    let (route, post) = &h.log.to_server[0];
    assert_eq!(*route, 0);
    assert_eq!(post.method, "POST");
    assert_eq!(post.target, "/mcp");
    assert_eq!(post.session_id(), Some("s-1"));
    assert_eq!(post.header("content-type"), Some(&b"application/json"[..]));
    let answer: serde_json::Value = serde_json::from_slice(&post.body).unwrap();
    assert_eq!(answer["id"], 0);
    assert_eq!(answer["error"]["code"], -31000);
    let rendered = String::from_utf8(post.render().unwrap()).unwrap();
    assert!(
        rendered.starts_with("POST /mcp HTTP/1.1\r\nHost: "),
        "{rendered}"
    );
    assert!(
        rendered.ends_with(&format!(
            "Content-Length: {}\r\n\r\n{}",
            post.body.len(),
            String::from_utf8_lossy(&post.body)
        )),
        "{rendered}"
    );
}

#[test]
fn a_responded_server_request_sends_the_hooks_result_upstream() {
    let mut h = streaming_call();
    h.upstream(chunk(&event("1", SAMPLING)).as_bytes())
        .verdict(HookVerdict::Respond(br#"{"role":"assistant"}"#.to_vec()));
    assert_eq!(client_body(&h), "");
    let answer: serde_json::Value = serde_json::from_slice(&h.log.to_server[0].1.body).unwrap();
    assert_eq!(
        answer,
        serde_json::json!({"jsonrpc":"2.0","id":0,"result":{"role":"assistant"}})
    );
}

#[test]
fn continue_forwards_the_event_byte_for_byte_and_replace_rewrites_it() {
    let mut h = streaming_call();
    let sampling = event("1", SAMPLING);
    h.upstream(chunk(&sampling).as_bytes())
        .verdict(HookVerdict::Continue);
    assert_eq!(client_body(&h), sampling);
    assert!(h.log.to_server.is_empty());

    let mut h = streaming_call();
    let quieter = LOG_NOTE.replace("\"hi\"", "\"[redacted]\"");
    h.upstream(chunk(&event("5", LOG_NOTE)).as_bytes())
        .verdict(HookVerdict::Replace(quieter.clone().into_bytes()));
    assert_eq!(client_body(&h), event("5", &quieter));
}

#[test]
fn a_replacement_that_changes_the_method_or_id_fails_closed() {
    for bad in [
        SAMPLING.replace("sampling/createMessage", "roots/list"),
        SAMPLING.replace("\"id\":0", "\"id\":\"0\""),
        LOG_NOTE.to_owned(),
    ] {
        let mut h = streaming_call();
        h.upstream(chunk(&event("1", SAMPLING)).as_bytes())
            .verdict(HookVerdict::Replace(bad.clone().into_bytes()));
        assert_eq!(client_body(&h), "", "{bad}");
        let answer: serde_json::Value = serde_json::from_slice(&h.log.to_server[0].1.body).unwrap();
        assert_eq!(answer["error"]["code"], HOOK_FAILED, "{bad}");
    }
}

#[test]
fn a_stopped_notification_is_dropped_and_nobody_is_answered() {
    for verdict in [
        HookVerdict::Reject {
            code: -31000,
            message: "no".into(),
            data: None,
        },
        // Invalid on a notification: dropped all the same.
        HookVerdict::Respond(b"{}".to_vec()),
    ] {
        let mut h = streaming_call();
        h.upstream(chunk(&event("1", LOG_NOTE)).as_bytes())
            .verdict(verdict)
            .upstream(chunk(&event("2", RESULT)).as_bytes())
            .upstream(b"0\r\n\r\n");
        assert_eq!(client_body(&h), event("2", RESULT));
        assert!(h.log.to_server.is_empty());
        assert_eq!(h.log.finished, Some(Close::KeepAlive));
    }
}

#[test]
fn unhooked_server_messages_and_answers_pass_unread_by_hooks() {
    let mut h = streaming_call();
    let roots = r#"{"jsonrpc":"2.0","id":3,"method":"roots/list"}"#;
    // An answer with a stray id is not policed: no response hook asked.
    let stray = r#"{"jsonrpc":"2.0","id":"other","result":{}}"#;
    let body = format!(
        "{PROGRESS}{}{}{}",
        event("1", roots),
        event("2", stray),
        event("3", RESULT)
    );
    h.upstream(chunk(&body).as_bytes()).upstream(b"0\r\n\r\n");
    assert!(h.log.hooks.is_empty());
    assert_eq!(client_body(&h), body);
    assert_eq!(h.log.finished, Some(Close::KeepAlive));
}

#[test]
fn a_held_event_split_byte_by_byte_is_judged_once_whole() {
    let mut h = streaming_call();
    let body = format!("{}{}", event("1", SAMPLING), event("2", RESULT));
    for b in body.as_bytes() {
        h.upstream(chunk(std::str::from_utf8(&[*b]).unwrap()).as_bytes());
    }
    assert_eq!(h.log.hooks.len(), 1);
    assert_eq!(client_body(&h), "");
    h.verdict(HookVerdict::Continue).upstream(b"0\r\n\r\n");
    assert_eq!(client_body(&h), body);
}

#[test]
fn a_hooked_server_message_inside_an_array_cuts_the_answer() {
    let mut h = streaming_call();
    let array = format!("[{SAMPLING}]");
    h.upstream(chunk(&event("1", &array)).as_bytes());
    assert!(h.log.hooks.is_empty());
    let body = client_body(&h);
    assert!(!body.contains("sampling/createMessage"), "{body}");
    let error = body.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
    let error: serde_json::Value = serde_json::from_str(error).unwrap();
    assert_eq!(error["id"], "req-7");
    assert_eq!(error["error"]["code"], HOOK_FAILED);
}

#[test]
fn a_hooked_server_request_in_a_json_answer_is_refused() {
    let mut h = Harness::new(hooked_config(&["sampling/createMessage@server-message"]));
    h.client(&post(CALL)).connected(false).upstream(
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{SAMPLING}",
            SAMPLING.len()
        )
        .as_bytes(),
    );
    let (_, body) = decode_response(&h.log.to_client);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["id"], "req-7");
    assert_eq!(v["error"]["code"], HOOK_FAILED);
}

#[test]
fn the_get_stream_holds_hooked_server_messages_too() {
    let mut h = Harness::new(hooked_config(&["sampling/createMessage@server-message"]));
    h.client(b"GET /mcp HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\nMcp-Session-Id: s-9\r\n\r\n")
        .connected(false);
    assert!(
        String::from_utf8_lossy(&h.log.to_upstream).contains("Accept-Encoding: identity"),
        "the hooks must read the stream: it is asked for unencoded"
    );
    h.upstream(SSE_HEAD.as_bytes())
        .upstream(chunk(&format!("{PROGRESS}{}", event("1", SAMPLING))).as_bytes());
    assert_eq!(client_body(&h), PROGRESS);
    assert_eq!(h.log.hooks[0].phase, HookPhase::ServerMessage);
    assert_eq!(h.log.hooks[0].session_id.as_deref(), Some("s-9"));
    h.verdict(HookVerdict::Reject {
        code: -31000,
        message: "no".into(),
        data: None,
    })
    .upstream(chunk(PROGRESS).as_bytes());
    assert_eq!(client_body(&h), format!("{PROGRESS}{PROGRESS}"));
    let (_, post) = &h.log.to_server[0];
    assert_eq!(
        post.method, "POST",
        "the answer to a GET stream's request is a POST"
    );
    assert_eq!(post.session_id(), Some("s-9"));
    assert!(post.header("accept-encoding").is_none());
}

#[test]
fn a_message_upstreams_server_request_is_held_and_answered_through_it() {
    let mut h = Harness::new(hooked_config(&["sampling/createMessage@server-message"]));
    h.client(&post(CALL)).message_connected();
    h.answer(AnswerPart::Stream(upstream::AnswerHead::status(200)))
        .answer(AnswerPart::Event(Bytes::from_static(SAMPLING.as_bytes())));
    assert_eq!(h.log.hooks.len(), 1);
    h.verdict(HookVerdict::Reject {
        code: -31000,
        message: "no".into(),
        data: None,
    });
    assert!(!client_body(&h).contains("sampling"));
    let (_, post) = &h.log.to_server[0];
    assert_eq!(post.session_id(), Some("s-1"), "the fields went with it");
}

// ---- The client's answers to server requests (`@client-answer`) ----

const ELICIT: &str =
    r#"{"jsonrpc":"2.0","id":"e-1","method":"elicitation/create","params":{"message":"name?"}}"#;
const ELICITED: &str =
    r#"{"jsonrpc":"2.0","id":"e-1","result":{"action":"accept","content":{"name":"secret"}}}"#;

/// A tools/call whose answer stream asks the client `request` (session
/// s-1), under a chain that wants `methods`; the stream ends.
fn asked(methods: &'static [&'static str], request: &str) -> ExchangeConfig {
    asked_under(hooked_config(methods), request)
}

/// [`asked`] under `config`.
fn asked_under(config: ExchangeConfig, request: &str) -> ExchangeConfig {
    let mut h = Harness::new(config.clone());
    h.client(&post(CALL)).connected(false);
    h.upstream(SSE_HEAD.as_bytes())
        .upstream(chunk(&event("1", request)).as_bytes())
        .upstream(chunk(&event("2", RESULT)).as_bytes())
        .upstream(b"0\r\n\r\n");
    assert!(client_body(&h).contains(request), "the client was asked");
    assert!(h.log.hooks.is_empty(), "no hook runs on the way out");
    config
}

/// The client's `answer` POSTed on session `session` under `config`.
fn answering(config: ExchangeConfig, session: &str, answer: &str) -> Harness {
    let mut h = Harness::new(config);
    let request = format!(
        "POST /mcp HTTP/1.1\r\nHost: localhost:8080\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nMcp-Session-Id: {session}\r\n\
         Content-Length: {}\r\n\r\n{answer}",
        answer.len()
    );
    h.client(request.as_bytes());
    h
}

fn forwarded_body(h: &Harness) -> serde_json::Value {
    let up = String::from_utf8_lossy(&h.log.to_upstream).into_owned();
    let body = up.split("\r\n\r\n").nth(1).unwrap_or_default();
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {up}"))
}

#[test]
fn a_client_answer_reaches_the_hooks_with_the_request_it_answers() {
    let config = asked(&["elicitation/create@client-answer"], ELICIT);
    let mut h = answering(config.clone(), "s-1", ELICITED);
    assert_eq!(h.log.hooks.len(), 1);
    let call = &h.log.hooks[0];
    assert_eq!(call.phase, HookPhase::ClientAnswer);
    assert_eq!(call.method, "elicitation/create");
    assert_eq!(&*call.request, ELICIT);
    assert_eq!(call.response.as_deref(), Some(ELICITED));
    // Refused: the server gets the hook's error in the client's stead.
    h.verdict(HookVerdict::Reject {
        code: -31003,
        message: "no names".into(),
        data: None,
    })
    .connected(false);
    let sent = forwarded_body(&h);
    assert_eq!(sent["id"], "e-1");
    assert_eq!(sent["error"]["code"], -31003);
    assert!(!String::from_utf8_lossy(&h.log.to_upstream).contains("secret"));

    // Answered once: the same answer again is not the asked request's.
    let h = answering(config, "s-1", ELICITED);
    assert!(h.log.hooks.is_empty());
}

#[test]
fn respond_and_replace_change_what_the_server_gets() {
    let config = asked(&["elicitation/create@client-answer"], ELICIT);
    let mut h = answering(config, "s-1", ELICITED);
    h.verdict(HookVerdict::Respond(br#"{"action":"decline"}"#.to_vec()))
        .connected(false);
    assert_eq!(forwarded_body(&h)["result"]["action"], "decline");

    let config = asked(&["elicitation/create@client-answer"], ELICIT);
    let mut h = answering(config, "s-1", ELICITED);
    let cancel = r#"{"jsonrpc":"2.0","id":"e-1","result":{"action":"cancel"}}"#;
    h.verdict(HookVerdict::Replace(cancel.as_bytes().to_vec()))
        .connected(false);
    assert_eq!(forwarded_body(&h)["result"]["action"], "cancel");

    // A replacement with another id fails closed: an error goes instead.
    let config = asked(&["elicitation/create@client-answer"], ELICIT);
    let mut h = answering(config, "s-1", ELICITED);
    h.verdict(HookVerdict::Replace(
        ELICITED.replace("e-1", "e-2").into_bytes(),
    ))
    .connected(false);
    assert_eq!(forwarded_body(&h)["error"]["code"], HOOK_FAILED);
}

#[test]
fn an_answer_from_another_session_or_to_an_unasked_id_is_not_hooked() {
    let config = asked(&["elicitation/create@client-answer"], ELICIT);
    for (session, answer) in [
        ("s-2", ELICITED.to_owned()),
        ("s-1", ELICITED.replace("e-1", "e-9")),
    ] {
        let mut h = answering(config.clone(), session, &answer);
        assert!(h.log.hooks.is_empty(), "{session} {answer}");
        h.connected(false);
        assert_eq!(
            forwarded_body(&h),
            serde_json::from_str::<serde_json::Value>(&answer).unwrap()
        );
    }
    // Nor one whose method no client-answer hook wants.
    let config = asked(&["roots/list@client-answer"], ELICIT);
    assert!(answering(config, "s-1", ELICITED).log.hooks.is_empty());
}

/// An enforced client-answer hook that fails closed: an answer no hook
/// can judge reaches the server as an error, never as written.
#[test]
fn an_answer_to_a_request_never_forwarded_here_is_refused_when_hooks_fail_closed() {
    let refusing = || {
        let mut config = hooked_config(&["elicitation/create@client-answer"]);
        config.hooks = config.hooks.refusing_unseen_answers(true);
        config
    };
    let config = asked_under(refusing(), ELICIT);
    let refused = |h: &Harness, id: &str| {
        let sent = forwarded_body(h);
        assert_eq!(sent["id"], id, "{sent}");
        assert_eq!(sent["error"]["code"], HOOK_FAILED, "{sent}");
        assert!(!String::from_utf8_lossy(&h.log.to_upstream).contains("secret"));
    };
    // Another session's, and one to an id never asked.
    for (session, id) in [("s-2", "e-1"), ("s-1", "e-9")] {
        let mut h = answering(config.clone(), session, &ELICITED.replace("e-1", id));
        assert!(h.log.hooks.is_empty(), "{session} {id}");
        h.connected(false);
        refused(&h, id);
    }
    // The asked one is judged, once: the same answer again is refused.
    let mut h = answering(config.clone(), "s-1", ELICITED);
    assert_eq!(h.log.hooks.len(), 1);
    h.verdict(HookVerdict::Continue).connected(false);
    assert_eq!(forwarded_body(&h)["result"]["content"]["name"], "secret");
    let mut h = answering(config, "s-1", ELICITED);
    assert!(h.log.hooks.is_empty());
    h.connected(false);
    refused(&h, "e-1");

    // A server request no hook wants the answer of is noted as it goes
    // by: its answer goes on as written.
    let roots = r#"{"jsonrpc":"2.0","id":"r-1","method":"roots/list"}"#;
    let config = asked_under(refusing(), roots);
    let answer = r#"{"jsonrpc":"2.0","id":"r-1","result":{"roots":[]}}"#;
    let mut h = answering(config.clone(), "s-1", answer);
    assert!(h.log.hooks.is_empty());
    h.connected(false);
    assert_eq!(forwarded_body(&h)["result"]["roots"], serde_json::json!([]));

    // In an array, only the element no hook can judge is replaced.
    let config = asked_under(refusing(), ELICIT);
    let batch = format!("[{ELICITED},{}]", ELICITED.replace("e-1", "e-9"));
    let mut h = answering(config, "s-1", &batch);
    assert_eq!(h.log.hooks.len(), 1, "the asked element is judged");
    h.verdict(HookVerdict::Continue).connected(false);
    let sent = forwarded_body(&h);
    assert_eq!(sent[0]["result"]["action"], "accept", "{sent}");
    assert_eq!(sent[1]["id"], "e-9", "{sent}");
    assert_eq!(sent[1]["error"]["code"], HOOK_FAILED, "{sent}");
}

#[test]
fn a_server_message_hook_and_a_client_answer_hook_on_one_request() {
    // The request is judged on its way out, replaced, and the replacement
    // is what the answer's hook sees as the request.
    let config = hooked_config(&["elicitation/create"]);
    let mut h = Harness::new(config.clone());
    h.client(&post(CALL)).connected(false);
    h.upstream(SSE_HEAD.as_bytes())
        .upstream(chunk(&event("1", ELICIT)).as_bytes());
    assert_eq!(h.log.hooks[0].phase, HookPhase::ServerMessage);
    let milder = ELICIT.replace("name?", "nickname?");
    h.verdict(HookVerdict::Replace(milder.clone().into_bytes()));
    let h = answering(config, "s-1", ELICITED);
    assert_eq!(h.log.hooks[0].phase, HookPhase::ClientAnswer);
    assert_eq!(&*h.log.hooks[0].request, milder);
}
