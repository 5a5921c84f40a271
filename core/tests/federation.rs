//! The federation's fan-out machine, driven by hand: members are scripts
//! of answer parts.

use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{Value, json};
use sluice_core::federation::{
    Breaker, Catalog, Context, Curation, Fanout, LegOutcome, Lists, MemberPolicy, MemberSession,
    OnUnavailable, Output, Resources,
};
use sluice_core::http1::Header;
use sluice_core::upstream::{AnswerHead, AnswerPart, Request};

const NAMES: [&str; 3] = ["gh", "fs", "time"];

const POLICY: MemberPolicy = MemberPolicy {
    timeout: Duration::from_secs(5),
    on_unavailable: OnUnavailable::Omit,
};
const POLICIES: [MemberPolicy; 3] = [POLICY; 3];

fn names() -> Vec<String> {
    NAMES.iter().map(|s| s.to_string()).collect()
}

fn lists() -> Lists {
    let mut gh = Curation::new("gh");
    gh.aliases = vec![("search".into(), "find".into())];
    let curations = || vec![gh.clone(), Curation::new("fs"), Curation::new("time")];
    Lists {
        tools: Catalog::new(curations()),
        prompts: Catalog::new(curations()),
        resources: Resources::default(),
        health: vec![Breaker::default(); 3],
    }
}

fn post(body: Value, session: Option<&str>) -> Request {
    let mut headers = vec![
        Header::new("Host", "127.0.0.1"),
        Header::new("Accept", "application/json, text/event-stream"),
        Header::new("Content-Length", "99"),
        Header::new("MCP-Protocol-Version", "2025-11-25"),
    ];
    if let Some(s) = session {
        headers.push(Header::new("Mcp-Session-Id", s));
    }
    Request {
        method: "POST".into(),
        target: "/mcp".into(),
        headers,
        body: body.to_string().into(),
    }
}

fn sessions() -> Vec<Option<MemberSession>> {
    vec![
        Some(MemberSession {
            id: Some("s0".into()),
            version: "2025-06-18".into(),
        }),
        Some(MemberSession {
            id: None,
            version: "2025-11-25".into(),
        }),
        None,
    ]
}

fn drain(f: &mut Fanout) -> Vec<Output> {
    std::iter::from_fn(|| f.poll_output()).collect()
}

/// The member requests in `out`: (leg, member, request).
fn sent(out: &[Output]) -> Vec<(usize, usize, Request)> {
    out.iter()
        .filter_map(|o| match o {
            Output::ToMember { leg, member, req } => Some((*leg, *member, req.clone())),
            _ => None,
        })
        .collect()
}

fn client(out: &[Output]) -> Vec<AnswerPart> {
    out.iter()
        .filter_map(|o| match o {
            Output::ToClient(p) => Some(p.clone()),
            _ => None,
        })
        .collect()
}

fn whole(out: &[Output]) -> (u16, Option<String>, Value) {
    match client(out).as_slice() {
        [AnswerPart::Whole { head, body }] => (
            head.status,
            head.session_id.clone(),
            if body.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(body).unwrap()
            },
        ),
        other => panic!("not one whole answer: {other:?}"),
    }
}

fn header(req: &Request, name: &str) -> Option<String> {
    req.header(name)
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

fn json_answer(session: Option<&str>, body: Value) -> AnswerPart {
    AnswerPart::Whole {
        head: AnswerHead::status(200).with_session(session),
        body: body.to_string().into(),
    }
}

fn ctx<'a>(
    names: &'a [String],
    session: Option<(&'a str, &'a [Option<MemberSession>])>,
) -> Context<'a> {
    Context {
        members: names,
        session,
        policies: &POLICIES,
    }
}

#[test]
fn initialize_fans_out_and_seals_the_members_sessions() {
    let (now, names, mut lists) = (Instant::now(), names(), lists());
    let init = json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"c","version":"1"}}});
    let mut f = Fanout::new(post(init, None), &ctx(&names, None), &mut lists, now);
    let out = drain(&mut f);
    let legs = sent(&out);
    assert_eq!(legs.len(), 3);
    for (_, _, req) in &legs {
        assert_eq!(header(req, "mcp-session-id"), None);
        assert_eq!(header(req, "content-length"), None, "the driver frames it");
        assert_eq!(header(req, "host").as_deref(), Some("127.0.0.1"));
    }
    let result = |v: &str, caps: Value, instr: &str| json!({"jsonrpc":"2.0","id":0,"result":{"protocolVersion":v,"capabilities":caps,"instructions":instr,"serverInfo":{"name":"m","version":"1"}}});
    f.member_part(
        0,
        json_answer(
            Some("s0"),
            result(
                "2025-06-18",
                json!({"tools":{"listChanged":true}}),
                "issues",
            ),
        ),
        &mut lists,
        now,
    );
    f.member_part(
        1,
        AnswerPart::Stream(AnswerHead::status(200)),
        &mut lists,
        now,
    );
    let progress = json!({"jsonrpc":"2.0","method":"notifications/message","params":{}});
    f.member_part(
        1,
        AnswerPart::Event(progress.to_string().into()),
        &mut lists,
        now,
    );
    let r1 = result(
        "2025-11-25",
        json!({"tools":{"listChanged":false},"prompts":{}}),
        "files",
    );
    f.member_part(1, AnswerPart::Event(r1.to_string().into()), &mut lists, now);
    f.member_part(1, AnswerPart::End, &mut lists, now);
    assert!(drain(&mut f).is_empty(), "waits for every member");
    f.member_failed(2, "connection refused", &mut lists, now);
    let out = drain(&mut f);
    let seal = out.iter().find_map(|o| match o {
        Output::Seal(s) => Some(s.clone()),
        _ => None,
    });
    assert_eq!(seal, Some(sessions()));
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::LeftOut { member: 2, why } if why.contains("initialize")))
    );
    f.sealed("tok");
    let (status, session, body) = whole(&drain(&mut f));
    assert_eq!((status, session.as_deref()), (200, Some("tok")));
    let r = &body["result"];
    assert_eq!(body["id"], 0);
    assert_eq!(r["protocolVersion"], "2025-06-18", "the oldest");
    assert_eq!(
        r["capabilities"],
        json!({"tools":{"listChanged":true},"prompts":{}})
    );
    assert_eq!(r["instructions"], "[gh] issues\n\n[fs] files");
    assert!(f.is_finished());
}

#[test]
fn lists_merge_curated_and_page_on_with_each_members_cursor() {
    let (now, names, mut lists) = (Instant::now(), names(), lists());
    let s = sessions();
    let c = ctx(&names, Some(("tok", &s)));
    let list = json!({"jsonrpc":"2.0","id":"L","method":"tools/list","params":{}});
    let mut f = Fanout::new(post(list, Some("tok")), &c, &mut lists, now);
    let legs = sent(&drain(&mut f));
    assert_eq!(
        legs.iter().map(|l| l.1).collect::<Vec<_>>(),
        vec![0, 1],
        "not the member outside the session"
    );
    assert_eq!(header(&legs[0].2, "mcp-session-id").as_deref(), Some("s0"));
    assert_eq!(
        header(&legs[0].2, "mcp-protocol-version").as_deref(),
        Some("2025-06-18")
    );
    assert_eq!(header(&legs[1].2, "mcp-session-id"), None);
    f.member_part(
        1,
        json_answer(None, json!({"jsonrpc":"2.0","id":"L","result":{"tools":[{"name":"read"}],"nextCursor":"p2"}})),
        &mut lists,
        now,
    );
    f.member_part(
        0,
        json_answer(
            Some("s0"),
            json!({"jsonrpc":"2.0","id":"L","result":{"tools":[{"name":"search"}]}}),
        ),
        &mut lists,
        now,
    );
    let (status, session, body) = whole(&drain(&mut f));
    assert_eq!((status, session.as_deref()), (200, Some("tok")));
    assert_eq!(body["id"], "L");
    let tools: Vec<&str> = body["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(tools, ["gh__find", "fs__read"]);
    let next = body["result"]["nextCursor"].as_str().unwrap().to_owned();

    let list = json!({"jsonrpc":"2.0","id":"L2","method":"tools/list","params":{"cursor":next}});
    let mut f = Fanout::new(post(list, Some("tok")), &c, &mut lists, now);
    let legs = sent(&drain(&mut f));
    assert_eq!(legs.len(), 1);
    assert_eq!(legs[0].1, 1);
    let asked: Value = serde_json::from_slice(&legs[0].2.body).unwrap();
    assert_eq!(asked["params"]["cursor"], "p2", "the member's own cursor");
    f.member_part(
        0,
        json_answer(
            None,
            json!({"jsonrpc":"2.0","id":"L2","result":{"tools":[{"name":"write"}]}}),
        ),
        &mut lists,
        now,
    );
    let (_, _, body) = whole(&drain(&mut f));
    assert_eq!(body["result"]["tools"][0]["name"], "fs__write");
    assert!(
        body["result"].get("nextCursor").is_none(),
        "every list done"
    );

    let foreign =
        json!({"jsonrpc":"2.0","id":3,"method":"tools/list","params":{"cursor":"bm9wZQ"}});
    let mut f = Fanout::new(post(foreign, Some("tok")), &c, &mut lists, now);
    let out = drain(&mut f);
    assert!(sent(&out).is_empty());
    let (status, _, body) = whole(&out);
    assert_eq!(
        (status, body["error"]["code"].as_i64()),
        (400, Some(-32602))
    );
}

#[test]
fn a_member_that_fails_or_is_late_is_left_out_of_a_list() {
    let (now, names, mut lists) = (Instant::now(), names(), lists());
    let s = sessions();
    let c = ctx(&names, Some(("tok", &s)));
    let list = json!({"jsonrpc":"2.0","id":1,"method":"prompts/list"});
    let mut f = Fanout::new(post(list, Some("tok")), &c, &mut lists, now);
    drain(&mut f);
    f.member_part(
        1,
        json_answer(
            None,
            json!({"jsonrpc":"2.0","id":1,"result":{"prompts":[{"name":"p"}]}}),
        ),
        &mut lists,
        now,
    );
    assert_eq!(f.poll_timeout(), Some(now + Duration::from_secs(5)));
    f.handle_timeout(&mut lists, now + Duration::from_secs(5));
    let out = drain(&mut f);
    assert!(out.contains(&Output::DropLeg { leg: 0 }));
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::LeftOut { member: 0, why } if why.contains("in time")))
    );
    let (_, _, body) = whole(&out);
    assert_eq!(body["result"]["prompts"], json!([{"name":"fs__p"}]));
    // Each member's request, as the metrics count it.
    let outcomes: Vec<_> = f.leg_outcomes().collect();
    let answered = LegOutcome::Answered;
    assert_eq!(outcomes, [(0, LegOutcome::TimedOut), (1, answered)]);
}

#[test]
fn a_call_goes_to_its_member_under_its_own_name_and_streams_back_with_requests_tagged() {
    let (now, names, mut lists) = (Instant::now(), names(), lists());
    let s = sessions();
    let c = ctx(&names, Some(("tok", &s)));
    let mut call = post(
        json!({"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"gh__find","arguments":{"q":"x"},"_meta":{"progressToken":"p"}}}),
        Some("tok"),
    );
    call.headers.push(Header::new("Mcp-Name", "gh__find"));
    let mut f = Fanout::new(call, &c, &mut lists, now);
    let legs = sent(&drain(&mut f));
    assert_eq!(legs.len(), 1);
    let (leg, member, req) = &legs[0];
    assert_eq!(*member, 0, "the prefix says whose, no list needed");
    let body: Value = serde_json::from_slice(&req.body).unwrap();
    assert_eq!(body["params"]["name"], "search", "the alias reversed");
    assert_eq!(body["params"]["_meta"]["progressToken"], "p", "unchanged");
    assert_eq!(body["id"], 7);
    assert_eq!(header(req, "mcp-name").as_deref(), Some("search"));
    assert_eq!(header(req, "mcp-session-id").as_deref(), Some("s0"));

    assert_eq!(
        f.poll_timeout(),
        Some(now + Duration::from_secs(5)),
        "its answer must begin in time"
    );
    f.member_part(
        *leg,
        AnswerPart::Stream(AnswerHead::status(200).with_session(Some("s0"))),
        &mut lists,
        now,
    );
    assert_eq!(
        f.poll_timeout(),
        None,
        "a long call streams as long as it runs"
    );
    let progress = json!({"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"p","progress":1}});
    f.member_part(
        *leg,
        AnswerPart::IdentifiedEvent {
            id: 4,
            data: progress.to_string().into(),
        },
        &mut lists,
        now,
    );
    let ask = json!({"jsonrpc":"2.0","id":12,"method":"sampling/createMessage","params":{}});
    f.member_part(
        *leg,
        AnswerPart::Event(ask.to_string().into()),
        &mut lists,
        now,
    );
    let done = json!({"jsonrpc":"2.0","id":7,"result":{"content":[]}});
    f.member_part(
        *leg,
        AnswerPart::Event(done.to_string().into()),
        &mut lists,
        now,
    );
    f.member_part(*leg, AnswerPart::End, &mut lists, now);
    let parts = client(&drain(&mut f));
    assert!(matches!(&parts[0], AnswerPart::Stream(h) if h.session_id.as_deref() == Some("tok")));
    let events: Vec<Value> = parts
        .iter()
        .filter_map(|p| match p {
            AnswerPart::Event(d) | AnswerPart::IdentifiedEvent { data: d, .. } => {
                Some(serde_json::from_slice(d).unwrap())
            }
            _ => None,
        })
        .collect();
    assert_eq!(events[0], progress);
    assert!(
        matches!(parts[1], AnswerPart::IdentifiedEvent { id: 4, .. }),
        "member 0's event id, marked with member 0"
    );
    assert_eq!(events[1]["id"], "sluice/0/12");
    assert_eq!(events[2], done);
    assert_eq!(parts.last(), Some(&AnswerPart::End));

    // The client's answer goes to the member, with the member's id.
    let answer = json!({"jsonrpc":"2.0","id":"sluice/0/12","result":{"content":{"type":"text","text":"ok"}}});
    let mut f = Fanout::new(post(answer, Some("tok")), &c, &mut lists, now);
    let out = drain(&mut f);
    let legs = sent(&out);
    assert_eq!(legs.len(), 1);
    assert_eq!(legs[0].1, 0);
    let back: Value = serde_json::from_slice(&legs[0].2.body).unwrap();
    assert_eq!(back["id"], 12);
    assert!(client(&out).is_empty(), "202 once the member took it");
    f.member_part(
        legs[0].0,
        AnswerPart::empty(AnswerHead::status(202)),
        &mut lists,
        now,
    );
    assert_eq!(whole(&drain(&mut f)).0, 202);
    assert!(f.is_finished());
}

#[test]
fn what_cannot_be_routed_is_said_with_the_request_id() {
    let (now, names, mut lists) = (Instant::now(), names(), lists());
    let s = sessions();
    let c = ctx(&names, Some(("tok", &s)));
    let cases = [
        (
            json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"nope"}}),
            200,
            -32602,
            "no member has",
        ),
        (
            json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"time__now"}}),
            502,
            -32000,
            "member time",
        ),
        (
            json!({"jsonrpc":"2.0","id":4,"method":"custom/thing"}),
            404,
            -32601,
            "not routed",
        ),
    ];
    for (body, status, code, text) in cases {
        let id = body["id"].clone();
        let mut f = Fanout::new(post(body, Some("tok")), &c, &mut lists, now);
        let out = drain(&mut f);
        assert!(sent(&out).is_empty());
        let (got, session, answer) = whole(&out);
        assert_eq!(
            (got, answer["error"]["code"].as_i64()),
            (status, Some(code)),
            "{answer}"
        );
        assert_eq!(answer["id"], id);
        assert_eq!(session.as_deref(), Some("tok"));
        assert!(
            answer["error"]["message"].as_str().unwrap().contains(text),
            "{answer}"
        );
    }
    let no_session = json!({"jsonrpc":"2.0","id":5,"method":"tools/list"});
    let mut f = Fanout::new(post(no_session, None), &ctx(&names, None), &mut lists, now);
    assert_eq!(whole(&drain(&mut f)).0, 400);
}

#[test]
fn ping_delete_and_get_reach_every_member_and_a_forgotten_session_is_404() {
    let (now, names, mut lists) = (Instant::now(), names(), lists());
    let s = sessions();
    let c = ctx(&names, Some(("tok", &s)));
    let ping = || post(json!({"jsonrpc":"2.0","id":1,"method":"ping"}), Some("tok"));
    let mut f = Fanout::new(ping(), &c, &mut lists, now);
    assert_eq!(sent(&drain(&mut f)).len(), 2);
    f.member_part(
        0,
        json_answer(None, json!({"jsonrpc":"2.0","id":1,"result":{}})),
        &mut lists,
        now,
    );
    f.member_part(
        1,
        AnswerPart::json(AnswerHead::status(404), "{}"),
        &mut lists,
        now,
    );
    assert_eq!(
        whole(&drain(&mut f)).2["result"],
        json!({}),
        "one member still knows it"
    );
    let mut f = Fanout::new(ping(), &c, &mut lists, now);
    drain(&mut f);
    for leg in 0..2 {
        f.member_part(
            leg,
            AnswerPart::json(AnswerHead::status(404), "{}"),
            &mut lists,
            now,
        );
    }
    let (status, _, body) = whole(&drain(&mut f));
    assert_eq!(
        (status, body["id"].as_i64()),
        (404, Some(1)),
        "DELETEd: the client starts over"
    );

    let bare = |method: &str| Request {
        method: method.into(),
        target: "/mcp".into(),
        headers: vec![Header::new("Mcp-Session-Id", "tok")],
        body: Bytes::new(),
    };
    let mut f = Fanout::new(bare("DELETE"), &c, &mut lists, now);
    let legs = sent(&drain(&mut f));
    assert_eq!(legs.len(), 2);
    f.member_part(
        0,
        AnswerPart::empty(AnswerHead::status(200)),
        &mut lists,
        now,
    );
    f.member_part(
        1,
        AnswerPart::empty(AnswerHead::status(405)),
        &mut lists,
        now,
    );
    assert_eq!(whole(&drain(&mut f)).0, 200);

    let mut f = Fanout::new(bare("GET"), &c, &mut lists, now);
    let out = drain(&mut f);
    assert_eq!(sent(&out).len(), 2);
    assert!(matches!(client(&out)[..], [AnswerPart::Stream(_)]));
    f.member_part(
        1,
        AnswerPart::empty(AnswerHead::status(405)),
        &mut lists,
        now,
    );
    f.member_part(
        0,
        AnswerPart::Stream(AnswerHead::status(200)),
        &mut lists,
        now,
    );
    let changed = json!({"jsonrpc":"2.0","method":"notifications/tools/list_changed"});
    let event = |id: u64| AnswerPart::IdentifiedEvent {
        id,
        data: changed.to_string().into(),
    };
    f.member_part(0, AnswerPart::Prime(3), &mut lists, now);
    f.member_part(0, event(4), &mut lists, now);
    f.member_part(0, AnswerPart::End, &mut lists, now);
    let parts = client(&drain(&mut f));
    assert_eq!(parts[0], AnswerPart::Prime(3), "member 0: its own ids");
    assert_eq!(parts[1], event(4));
    assert_eq!(parts.last(), Some(&AnswerPart::End));
    assert!(f.is_finished());

    // Member 1's event 9 is 1 << 48 | 9 to the client; resuming after it
    // asks member 1 alone, with its own id.
    let mut get = bare("GET");
    get.headers
        .push(Header::new("Last-Event-ID", ((1u64 << 48) | 9).to_string()));
    let mut f = Fanout::new(get, &c, &mut lists, now);
    let legs = sent(&drain(&mut f));
    assert_eq!(legs.len(), 1);
    assert_eq!(legs[0].1, 1);
    assert_eq!(header(&legs[0].2, "last-event-id").as_deref(), Some("9"));
    f.member_part(
        0,
        AnswerPart::Stream(AnswerHead::status(200)),
        &mut lists,
        now,
    );
    f.member_part(0, event(10), &mut lists, now);
    assert_eq!(client(&drain(&mut f))[0], event((1 << 48) | 10));

    // Ids a number cannot carry (a UUID, a number past 48 bits) are marked
    // as text, `member:id`, and resume the same way.
    let mut f = Fanout::new(bare("GET"), &c, &mut lists, now);
    drain(&mut f);
    f.member_part(
        1,
        AnswerPart::Stream(AnswerHead::status(200)),
        &mut lists,
        now,
    );
    let named = AnswerPart::NamedEvent {
        id: "s_1733_abc".into(),
        data: changed.to_string().into(),
    };
    f.member_part(1, named, &mut lists, now);
    f.member_part(1, event(1 << 50), &mut lists, now);
    let parts = client(&drain(&mut f));
    let ids: Vec<&str> = parts
        .iter()
        .filter_map(|p| match p {
            AnswerPart::NamedEvent { id, .. } => Some(id.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(ids, ["1:s_1733_abc", "1:1125899906842624"]);
    let mut get = bare("GET");
    get.headers
        .push(Header::new("Last-Event-ID", "1:s_1733_abc"));
    let mut f = Fanout::new(get, &c, &mut lists, now);
    let legs = sent(&drain(&mut f));
    assert_eq!(legs.iter().map(|l| l.1).collect::<Vec<_>>(), [1]);
    assert_eq!(
        header(&legs[0].2, "last-event-id").as_deref(),
        Some("s_1733_abc")
    );
    // An id no member gave (not canonical, not ours): a new stream to all.
    for junk in ["01:x", "1:", "x:y", "-1:x", "garbage"] {
        let mut get = bare("GET");
        get.headers.push(Header::new("Last-Event-ID", junk));
        let mut f = Fanout::new(get, &c, &mut lists, now);
        let legs = sent(&drain(&mut f));
        assert_eq!(legs.len(), 2, "{junk}");
        assert!(legs.iter().all(|l| header(&l.2, "last-event-id").is_none()));
    }
}

#[test]
fn a_client_that_leaves_drops_every_leg() {
    let (now, names, mut lists) = (Instant::now(), names(), lists());
    let s = sessions();
    let c = ctx(&names, Some(("tok", &s)));
    let mut f = Fanout::new(
        post(
            json!({"jsonrpc":"2.0","id":1,"method":"tools/list"}),
            Some("tok"),
        ),
        &c,
        &mut lists,
        now,
    );
    drain(&mut f);
    f.client_gone();
    assert_eq!(
        drain(&mut f),
        vec![Output::DropLeg { leg: 0 }, Output::DropLeg { leg: 1 }]
    );
    f.member_part(
        0,
        json_answer(None, json!({"jsonrpc":"2.0","id":1,"result":{"tools":[]}})),
        &mut lists,
        now,
    );
    assert!(drain(&mut f).is_empty());
}

#[test]
fn a_uri_no_list_has_shown_yet_is_found_by_reading_the_members_lists_once() {
    let (now, names, mut lists) = (Instant::now(), names(), lists());
    let s = sessions();
    let c = ctx(&names, Some(("tok", &s)));
    let read = |uri: &str| {
        post(
            json!({"jsonrpc":"2.0","id":"r","method":"resources/read","params":{"uri":uri}}),
            Some("tok"),
        )
    };
    let mut f = Fanout::new(read("file:///docs/a.md"), &c, &mut lists, now);
    let legs = sent(&drain(&mut f));
    let asked: Vec<(usize, String)> = legs
        .iter()
        .map(|(_, m, r)| {
            let v: Value = serde_json::from_slice(&r.body).unwrap();
            (*m, v["method"].as_str().unwrap().to_owned())
        })
        .collect();
    assert_eq!(
        asked,
        [
            (0, "resources/list".to_owned()),
            (0, "resources/templates/list".to_owned()),
            (1, "resources/list".to_owned()),
            (1, "resources/templates/list".to_owned())
        ]
    );
    let empty = |key: &str| {
        json_answer(
            None,
            json!({"jsonrpc":"2.0","id":"sluice/discover","result":{key:[]}}),
        )
    };
    f.member_part(legs[0].0, empty("resources"), &mut lists, now);
    f.member_part(legs[1].0, empty("resourceTemplates"), &mut lists, now);
    f.member_part(legs[2].0, empty("resources"), &mut lists, now);
    let templates = json!({"jsonrpc":"2.0","id":"sluice/discover","result":{"resourceTemplates":[{"uriTemplate":"file:///{+path}","name":"f"}]}});
    f.member_part(legs[3].0, json_answer(None, templates), &mut lists, now);
    let routed = sent(&drain(&mut f));
    assert_eq!(routed.len(), 1);
    assert_eq!(routed[0].1, 1, "the member whose template matches");
    let body: Value = serde_json::from_slice(&routed[0].2.body).unwrap();
    assert_eq!(body["id"], "r", "the client's request, as it came");

    // Learned: the next read goes straight there; a URI nobody has is said.
    let mut f = Fanout::new(read("file:///b"), &c, &mut lists, now);
    assert_eq!(sent(&drain(&mut f))[0].1, 1);
    let mut f = Fanout::new(read("mem://nothing"), &c, &mut lists, now);
    let legs = sent(&drain(&mut f));
    for (leg, _, _) in &legs {
        f.member_part(
            *leg,
            AnswerPart::json(AnswerHead::status(404), "{}"),
            &mut lists,
            now,
        );
    }
    let (status, _, body) = whole(&drain(&mut f));
    assert_eq!(
        (status, body["error"]["code"].as_i64()),
        (200, Some(-32602))
    );
}

#[test]
fn a_member_answering_out_of_order_fails_the_call_cleanly() {
    // Found by the federation_fanout fuzz target: a prime before a head.
    let (now, names, mut lists) = (Instant::now(), names(), lists());
    let s = sessions();
    let c = ctx(&names, Some(("tok", &s)));
    let call = json!({"jsonrpc":"2.0","id":"k","method":"tools/call","params":{"name":"fs__read"}});
    let mut f = Fanout::new(post(call, Some("tok")), &c, &mut lists, now);
    drain(&mut f);
    f.member_part(0, AnswerPart::Prime(1), &mut lists, now);
    let out = drain(&mut f);
    assert!(out.contains(&Output::DropLeg { leg: 0 }));
    let (status, _, body) = whole(&out);
    assert_eq!((status, body["id"].as_str()), (502, Some("k")));
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("member fs answered out of order")
    );
    // Found by the same target: a refusal for want of a session keeps the id.
    let list = json!({"jsonrpc":"2.0","id":"L","method":"tools/list"});
    let mut f = Fanout::new(post(list, None), &ctx(&names, None), &mut lists, now);
    let (status, _, body) = whole(&drain(&mut f));
    assert_eq!((status, body["id"].as_str()), (400, Some("L")));
}

#[test]
fn a_member_marked_fail_fails_the_list_with_its_name() {
    let (now, names, mut lists) = (Instant::now(), names(), lists());
    let s = sessions();
    let mut policies = POLICIES;
    policies[0].on_unavailable = OnUnavailable::Fail;
    policies[1].timeout = Duration::from_secs(1);
    let c = Context {
        members: &names,
        session: Some(("tok", &s)),
        policies: &policies,
    };
    let list = json!({"jsonrpc":"2.0","id":"l","method":"tools/list"});
    let mut f = Fanout::new(post(list, Some("tok")), &c, &mut lists, now);
    drain(&mut f);
    assert_eq!(
        f.poll_timeout(),
        Some(now + Duration::from_secs(1)),
        "each member its own timeout"
    );
    f.member_part(
        1,
        json_answer(
            None,
            json!({"jsonrpc":"2.0","id":"l","result":{"tools":[]}}),
        ),
        &mut lists,
        now,
    );
    f.member_failed(0, "connection refused", &mut lists, now);
    let out = drain(&mut f);
    let (status, _, body) = whole(&out);
    assert_eq!(status, 502);
    assert_eq!(body["id"], "l");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("member gh is unavailable") && message.contains("connection refused"),
        "{message}"
    );
}

#[test]
fn a_failing_member_is_not_tried_while_its_circuit_is_open() {
    let (now, names, mut lists) = (Instant::now(), names(), lists());
    let s = sessions();
    let c = ctx(&names, Some(("tok", &s)));
    let call = |id: u32| {
        post(
            json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":"gh__find"}}),
            Some("tok"),
        )
    };
    // Three calls in a row fail: the circuit opens.
    for id in 0..3 {
        let mut f = Fanout::new(call(id), &c, &mut lists, now);
        assert_eq!(sent(&drain(&mut f)).len(), 1);
        f.member_failed(0, "connection refused", &mut lists, now);
        assert_eq!(whole(&drain(&mut f)).0, 502);
        assert_eq!(
            f.leg_outcomes().collect::<Vec<_>>(),
            [(0, LegOutcome::Failed)]
        );
    }
    // The next is refused without a request to the member, with its id
    // and the member's name.
    let mut f = Fanout::new(call(3), &c, &mut lists, now);
    let out = drain(&mut f);
    assert!(sent(&out).is_empty(), "{out:?}");
    let (status, _, body) = whole(&out);
    assert_eq!(status, 502);
    assert_eq!(body["id"], 3);
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("member gh") && message.contains("not tried again"),
        "{message}"
    );
    let not_sent = (0, LegOutcome::CircuitOpen);
    assert_eq!(f.leg_outcomes().collect::<Vec<_>>(), [not_sent]);
    // Lists go on without it.
    let list = json!({"jsonrpc":"2.0","id":"l","method":"tools/list"});
    let mut f = Fanout::new(post(list, Some("tok")), &c, &mut lists, now);
    let out = drain(&mut f);
    assert_eq!(
        sent(&out).iter().map(|(_, m, _)| *m).collect::<Vec<_>>(),
        [1],
        "the other member in the session"
    );
    f.member_part(
        1,
        json_answer(
            None,
            json!({"jsonrpc":"2.0","id":"l","result":{"tools":[]}}),
        ),
        &mut lists,
        now,
    );
    let out = drain(&mut f);
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::LeftOut { member: 0, why } if why.contains("failing"))),
        "{out:?}"
    );
    assert_eq!(whole(&out).0, 200);
    // After the backoff one trial goes; its success closes the circuit.
    let later = now + sluice_core::federation::health::FIRST_BACKOFF;
    let mut f = Fanout::new(call(4), &c, &mut lists, later);
    let legs = sent(&drain(&mut f));
    assert_eq!(legs.len(), 1, "the trial");
    f.member_part(
        legs[0].0,
        json_answer(None, json!({"jsonrpc":"2.0","id":4,"result":{}})),
        &mut lists,
        later,
    );
    assert_eq!(whole(&drain(&mut f)).0, 200);
    assert!(!lists.health[0].is_open(later));
}

#[test]
fn a_notification_is_answered_once_every_member_took_it() {
    let (now, names, mut lists) = (Instant::now(), names(), lists());
    let s = sessions();
    let c = ctx(&names, Some(("tok", &s)));
    let note = json!({"jsonrpc":"2.0","method":"notifications/initialized"});
    let mut f = Fanout::new(post(note, Some("tok")), &c, &mut lists, now);
    let out = drain(&mut f);
    let legs = sent(&out);
    assert_eq!(
        legs.iter().map(|(_, m, _)| *m).collect::<Vec<_>>(),
        [0, 1],
        "every member in the session"
    );
    assert!(client(&out).is_empty(), "not before the members took it");
    assert_eq!(f.poll_timeout(), Some(now + Duration::from_secs(5)));
    f.member_part(
        0,
        AnswerPart::empty(AnswerHead::status(202)),
        &mut lists,
        now,
    );
    assert!(client(&drain(&mut f)).is_empty());
    f.member_failed(1, "connection refused", &mut lists, now);
    let out = drain(&mut f);
    assert_eq!(whole(&out).0, 202, "what a member missed is logged");
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::LeftOut { member: 1, .. }))
    );
    assert!(f.is_finished());
}

#[test]
fn a_members_cancellation_of_its_own_request_names_it_as_the_client_knows_it() {
    let (now, names, mut lists) = (Instant::now(), names(), lists());
    let s = sessions();
    let c = ctx(&names, Some(("tok", &s)));
    let call = post(
        json!({"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"gh__find"}}),
        Some("tok"),
    );
    let mut f = Fanout::new(call, &c, &mut lists, now);
    let leg = sent(&drain(&mut f))[0].0;
    f.member_part(
        leg,
        AnswerPart::Stream(AnswerHead::status(200)),
        &mut lists,
        now,
    );
    let ask = json!({"jsonrpc":"2.0","id":"s-1","method":"sampling/createMessage","params":{}});
    let cancel = json!({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"s-1","reason":"timeout"}});
    for m in [&ask, &cancel] {
        f.member_part(
            leg,
            AnswerPart::Event(m.to_string().into()),
            &mut lists,
            now,
        );
    }
    let out = drain(&mut f);
    let got: Vec<Value> = client(&out)
        .iter()
        .filter_map(|p| match p {
            AnswerPart::Event(d) => serde_json::from_slice(d).ok(),
            _ => None,
        })
        .collect();
    assert_eq!(got[0]["id"], "sluice/0/\"s-1\"");
    assert_eq!(
        got[1]["params"]["requestId"], got[0]["id"],
        "the same name for the same request"
    );
    assert_eq!(got[1]["params"]["reason"], "timeout");
}

#[test]
fn lists_keep_each_items_text_and_merge_any_spacing_into_valid_json() {
    // Members write their answers as they like: spaces, newlines, an empty
    // page spelled `[ ]`. The merged list must still be one JSON value, each
    // item as its member wrote it (but for the name sluice shows).
    let (now, names, mut lists) = (Instant::now(), names(), lists());
    let s = sessions();
    let c = ctx(&names, Some(("tok", &s)));
    for (method, key, spaced) in [
        (
            "tools/list",
            "tools",
            r#"{ "jsonrpc" : "2.0", "id" : "L", "result" : { "tools" : [ { "name" : "read", "x" : [ 1 , 2 ] } ] } }"#,
        ),
        (
            "resources/list",
            "resources",
            r#"{ "jsonrpc":"2.0", "id":"L", "result":{ "resources":[ { "uri" : "file:///a",  "name":"a" } ,
                { "uri":"file:///b", "name":"b" } ] } }"#,
        ),
    ] {
        let list = json!({"jsonrpc":"2.0","id":"L","method":method,"params":{}});
        let mut f = Fanout::new(post(list, Some("tok")), &c, &mut lists, now);
        assert_eq!(sent(&drain(&mut f)).len(), 2);
        let empty = format!(r#"{{"jsonrpc":"2.0","id":"L","result":{{"{key}":[ ]}}}}"#);
        f.member_part(
            0,
            AnswerPart::json(AnswerHead::status(200), empty.into_bytes()),
            &mut lists,
            now,
        );
        f.member_part(
            1,
            AnswerPart::json(AnswerHead::status(200), spaced.as_bytes().to_vec()),
            &mut lists,
            now,
        );
        let (status, _, body) = whole(&drain(&mut f));
        assert_eq!(status, 200, "{body}");
        let items = body["result"][key].as_array().unwrap();
        if key == "tools" {
            assert_eq!(items.len(), 1);
            assert_eq!(items[0], json!({"name": "fs__read", "x": [1, 2]}));
        } else {
            let uris: Vec<&str> = items.iter().map(|r| r["uri"].as_str().unwrap()).collect();
            assert_eq!(uris, ["file:///a", "file:///b"]);
        }
    }
}
