//! Fuzzer-chosen client requests at a three-member federation, and
//! fuzzer-chosen member answers to whatever the `Fanout` sends (whole JSON
//! answers with the ids they were sent or others, SSE streams with
//! progress, members' own requests, primes, event ids, garbage, statuses),
//! member failures, deadlines and a client that leaves, interleaved.
//!
//! Never panic, and:
//! 1. the client gets one whole answer, or a stream head, events and an
//!    end, in that order, and nothing once its answer is complete
//!    (`is_finished` from then on);
//! 2. an answer sluice makes itself (a whole JSON body that is a JSON-RPC
//!    response) to a request carries the client's id byte for byte;
//! 3. member requests go out under fresh leg numbers, only to members in
//!    the client's session (any member for `initialize`), and never after
//!    the answer is complete; `DropLeg` names a leg that was sent;
//! 4. a routed call reaches its member with the member's own name (no
//!    `__` prefix left) and the client's id;
//! 5. a member's request reaches the client with its id tagged
//!    `sluice/<member>/`, and an event id shown to the client names the
//!    member that gave it;
//! 6. after `handle_timeout(now)`, `poll_timeout()` is later than `now`;
//! 7. a member whose circuit is open at the start gets no request that
//!    awaits an answer until the clock moves (past it: one trial).
#![no_main]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sluice_core::federation::{
    Breaker, Catalog, Context, Curation, Fanout, Lists, MemberPolicy, MemberSession, OnUnavailable,
    Output, Resources,
};
use sluice_core::http1::Header;
use sluice_core::jsonrpc::{self, Classified, Kind};
use sluice_core::upstream::{AnswerHead, AnswerPart, Request};

const MEMBERS: [&str; 3] = ["gh", "fs", "t"];

#[derive(Arbitrary, Debug)]
struct Input {
    /// Which members are in the client's session (bit per member); the
    /// top bit: no session at all.
    session: u8,
    /// Members whose circuit is open at the start (bit per member), and
    /// which ones fail lists rather than being left out (bits 4–6).
    health: u8,
    request: Req,
    ops: Vec<Op>,
}

#[derive(Arbitrary, Debug, Clone)]
enum Req {
    Initialize(u8),
    List { kind: u8, cursor: Option<String> },
    Call { name: u8, id: u8 },
    Read { uri: u8 },
    Ping,
    SetLevel,
    Notification,
    Answer { member: u8, raw: u8 },
    Get { last_event_id: Option<u64> },
    Delete,
    Garbage(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum Op {
    Whole { leg: u8, status: u8, body: Body },
    Stream { leg: u8 },
    Event { leg: u8, body: Body, id: Option<u16> },
    /// An event with a text id (an HTTP member's), or a number too large
    /// to mark.
    NamedEvent { leg: u8, body: Body, id: String, huge: bool },
    Prime { leg: u8, id: u16 },
    End { leg: u8 },
    Failed { leg: u8 },
    Timeout { secs: u8 },
    ClientGone,
}

#[derive(Arbitrary, Debug)]
enum Body {
    /// The answer to the id the leg was sent.
    Answer(u8),
    /// An answer to another id.
    OtherAnswer,
    Error,
    Progress,
    ServerRequest(u8),
    Notification,
    Garbage(Vec<u8>),
    Empty,
}

const IDS: [&str; 5] = ["1", "\"a\"", "1.0", "12345678901234567890", "\"sluice/0/1\""];
const NAMES: [&str; 6] = ["gh__find", "fs__read", "t__now", "nope", "gh__", "x__y__z"];
const URIS: [&str; 3] = ["file:///a", "mem://b", "db://t/1"];

fn lists(open: u8, now: Instant) -> Lists {
    let curations: Vec<Curation> = MEMBERS.iter().map(|m| Curation::new(*m)).collect();
    let health = (0..MEMBERS.len())
        .map(|m| {
            let mut b = Breaker::default();
            if open & (1 << m) != 0 {
                (0..3).for_each(|_| b.failed(now));
            }
            b
        })
        .collect();
    Lists {
        tools: Catalog::new(curations.clone()),
        prompts: Catalog::new(curations),
        resources: Resources::default(),
        health,
    }
}

fn request(r: &Req) -> (Request, Option<&'static str>) {
    let mut method = "POST";
    let mut id = None;
    let body = match r {
        Req::Initialize(v) => {
            id = Some(IDS[*v as usize % IDS.len()]);
            format!(
                r#"{{"jsonrpc":"2.0","id":{},"method":"initialize","params":{{"protocolVersion":"2025-06-18","capabilities":{{}},"clientInfo":{{"name":"f","version":"1"}}}}}}"#,
                id.unwrap()
            )
        }
        Req::List { kind, cursor } => {
            id = Some("7");
            let method = ["tools/list", "prompts/list", "resources/list", "resources/templates/list"]
                [*kind as usize % 4];
            match cursor {
                Some(c) => format!(
                    r#"{{"jsonrpc":"2.0","id":7,"method":"{method}","params":{{"cursor":{}}}}}"#,
                    serde_json::Value::String(c.clone())
                ),
                None => format!(r#"{{"jsonrpc":"2.0","id":7,"method":"{method}"}}"#),
            }
        }
        Req::Call { name, id: i } => {
            id = Some(IDS[*i as usize % IDS.len()]);
            format!(
                r#"{{"jsonrpc":"2.0","id":{},"method":"tools/call","params":{{"name":"{}","arguments":{{}},"_meta":{{"progressToken":"p"}}}}}}"#,
                id.unwrap(),
                NAMES[*name as usize % NAMES.len()]
            )
        }
        Req::Read { uri } => {
            id = Some("9");
            format!(
                r#"{{"jsonrpc":"2.0","id":9,"method":"resources/read","params":{{"uri":"{}"}}}}"#,
                URIS[*uri as usize % URIS.len()]
            )
        }
        Req::Ping => {
            id = Some("3");
            r#"{"jsonrpc":"2.0","id":3,"method":"ping"}"#.to_owned()
        }
        Req::SetLevel => {
            id = Some("4");
            r#"{"jsonrpc":"2.0","id":4,"method":"logging/setLevel","params":{"level":"info"}}"#.to_owned()
        }
        Req::Notification => r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#.to_owned(),
        Req::Answer { member, raw } => format!(
            r#"{{"jsonrpc":"2.0","id":"sluice/{}/{}","result":{{}}}}"#,
            member % 4,
            ["5", "\\\"x\\\"", "{}", ""][*raw as usize % 4]
        ),
        Req::Get { .. } => {
            method = "GET";
            String::new()
        }
        Req::Delete => {
            method = "DELETE";
            String::new()
        }
        Req::Garbage(g) => String::from_utf8_lossy(g).into_owned(),
    };
    let mut headers = vec![
        Header::new("Host", "h"),
        Header::new("Accept", "application/json, text/event-stream"),
        Header::new("Mcp-Session-Id", "tok"),
        Header::new("Mcp-Name", "gh__find"),
    ];
    if let Req::Get {
        last_event_id: Some(l),
    } = r
    {
        headers.push(Header::new("Last-Event-ID", l.to_string()));
    }
    let req = Request {
        method: method.to_owned(),
        target: "/mcp".to_owned(),
        headers,
        body: Bytes::from(body),
    };
    (req, id)
}

/// What the member of `leg` was sent, to answer it.
struct Sent {
    member: usize,
    id: Option<Vec<u8>>,
}

fn body(b: &Body, sent: &Sent) -> Bytes {
    let id = sent
        .id
        .as_deref()
        .map(|i| String::from_utf8_lossy(i).into_owned())
        .unwrap_or_else(|| "null".into());
    Bytes::from(match b {
        Body::Answer(k) => match k % 3 {
            0 => format!(
                r#"{{"jsonrpc":"2.0","id":{id},"result":{{"protocolVersion":"2025-06-18","capabilities":{{"tools":{{}}}},"tools":[{{"name":"find"}},{{"name":"read"}}],"nextCursor":"n{}"}}}}"#,
                sent.member
            ),
            1 => format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{{"resources":[{{"uri":"file:///a"}}],"resourceTemplates":[{{"uriTemplate":"db://{{t}}/{{id}}"}}]}}}}"#),
            _ => format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{{}}}}"#),
        },
        Body::OtherAnswer => r#"{"jsonrpc":"2.0","id":"zzz","result":{}}"#.to_owned(),
        Body::Error => format!(r#"{{"jsonrpc":"2.0","id":{id},"error":{{"code":-32601,"message":"no"}}}}"#),
        Body::Progress => {
            r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"p","progress":1}}"#.to_owned()
        }
        Body::ServerRequest(i) => format!(
            r#"{{"jsonrpc":"2.0","id":{},"method":"sampling/createMessage","params":{{}}}}"#,
            IDS[*i as usize % IDS.len()]
        ),
        Body::Notification => r#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}"#.to_owned(),
        Body::Garbage(g) => String::from_utf8_lossy(g).into_owned(),
        Body::Empty => String::new(),
    })
}

struct World {
    fanout: Fanout,
    lists: Lists,
    start: Instant,
    open_at_start: u8,
    now: Instant,
    /// What each leg was sent, by leg number (`None`: never sent).
    sent: Vec<Option<Sent>>,
    in_session: Vec<bool>,
    initialize: bool,
    client_id: Option<&'static str>,
    /// Client parts so far; whether the last one came.
    parts: Vec<AnswerPart>,
    done: bool,
    routed_call: bool,
}

impl World {
    fn drain(&mut self) {
        while let Some(out) = self.fanout.poll_output() {
            match out {
                Output::ToMember { leg, member, req } => {
                    assert!(!self.done, "a member request after the answer: {req:?}");
                    assert!(leg >= self.sent.len(), "fresh leg numbers");
                    if matches!(jsonrpc::classify(&req.body, &Default::default()), Ok(Classified::Single(m)) if m.kind == Kind::Request)
                    {
                        let open = self.open_at_start & (1 << member) != 0;
                        assert!(!(open && self.now == self.start), "a request to an open circuit");
                    }
                    assert!(member < MEMBERS.len());
                    assert!(self.initialize || self.in_session[member], "member {member} is not in the session");
                    let id = match jsonrpc::classify(&req.body, &Default::default()) {
                        Ok(Classified::Single(m)) => {
                            if self.routed_call && m.method.as_deref() == Some("tools/call") {
                                let v: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
                                let name = v["params"]["name"].as_str().unwrap_or_default();
                                assert!(!name.contains("__"), "the member's own name: {name}");
                                assert_eq!(m.id.map(<[u8]>::to_vec), self.client_id.map(|i| i.as_bytes().to_vec()));
                            }
                            m.id.map(<[u8]>::to_vec)
                        }
                        _ => None,
                    };
                    self.sent.resize_with(leg, || None);
                    self.sent.push(Some(Sent { member, id }));
                }
                Output::DropLeg { leg } => {
                    assert!(matches!(self.sent.get(leg), Some(Some(_))), "drop of a leg never sent")
                }
                Output::Seal(sessions) => {
                    assert!(self.initialize);
                    assert_eq!(sessions.len(), MEMBERS.len());
                    self.fanout.sealed("tok");
                }
                Output::ToClient(part) => self.client(part),
                Output::LeftOut { member, .. } => assert!(member < MEMBERS.len()),
                Output::Log(_) => {}
            }
        }
        if self.done {
            assert!(self.fanout.is_finished());
        }
    }

    fn client(&mut self, part: AnswerPart) {
        assert!(!self.done, "a part after the answer: {part:?}");
        let first = self.parts.is_empty();
        match &part {
            AnswerPart::Whole { body, .. } => {
                assert!(first, "a whole answer after other parts");
                self.done = true;
                if let (Some(id), Ok(Classified::Single(m))) =
                    (self.client_id, jsonrpc::classify(body, &Default::default()))
                    && matches!(m.kind, Kind::Response | Kind::Error)
                    && !self.routed_call
                {
                    assert_eq!(m.id, Some(id.as_bytes()), "the client's id, as written");
                }
            }
            AnswerPart::Stream(_) => assert!(first, "a second head"),
            AnswerPart::End => {
                assert!(!first, "an end with no head");
                self.done = true;
            }
            AnswerPart::Event(data)
            | AnswerPart::IdentifiedEvent { data, .. }
            | AnswerPart::NamedEvent { data, .. } => {
                assert!(!first, "an event before the head");
                if let Ok(Classified::Single(m)) = jsonrpc::classify(data, &Default::default())
                    && m.kind == Kind::Request
                {
                    let id = std::str::from_utf8(m.id.unwrap_or_default()).unwrap_or_default();
                    assert!(id.starts_with("\"sluice/"), "a member's request, untagged: {id}");
                }
                if let AnswerPart::IdentifiedEvent { id, .. } = &part {
                    assert!((*id >> 48) < MEMBERS.len() as u64, "an event id naming no member");
                }
                if let AnswerPart::NamedEvent { id, .. } = &part {
                    let member = id.split_once(':').and_then(|(m, _)| m.parse::<usize>().ok());
                    assert!(member.is_some_and(|m| m < MEMBERS.len()), "an event id naming no member: {id}");
                    assert!(!id.contains(['\r', '\n', '\0']), "an id the client cannot read back");
                }
            }
            AnswerPart::Prime(id) => {
                assert!(!first);
                assert!((*id >> 48) < MEMBERS.len() as u64);
            }
        }
        self.parts.push(part);
    }
}

fuzz_target!(|input: Input| {
    let now = Instant::now();
    let names: Vec<String> = MEMBERS.iter().map(|s| s.to_string()).collect();
    let sessions: Vec<Option<MemberSession>> = (0..MEMBERS.len())
        .map(|m| {
            (input.session & (1 << m) != 0).then(|| MemberSession {
                id: (m != 1).then(|| format!("s{m}")),
                version: "2025-06-18".into(),
            })
        })
        .collect();
    let has_session = input.session & 0x80 == 0;
    let (req, client_id) = request(&input.request);
    let policies: Vec<MemberPolicy> = (0..MEMBERS.len())
        .map(|m| MemberPolicy {
            timeout: Duration::from_secs(5),
            on_unavailable: if input.health & (0x10 << m) != 0 {
                OnUnavailable::Fail
            } else {
                OnUnavailable::Omit
            },
        })
        .collect();
    let ctx = Context {
        members: &names,
        session: has_session.then_some(("tok", sessions.as_slice())),
        policies: &policies,
    };
    let mut lists = lists(input.health, now);
    let fanout = Fanout::new(req, &ctx, &mut lists, now);
    let mut w = World {
        fanout,
        lists,
        now,
        start: now,
        open_at_start: input.health & 0x7,
        sent: Vec::new(),
        in_session: sessions.iter().map(Option::is_some).collect(),
        initialize: matches!(input.request, Req::Initialize(_)),
        client_id,
        parts: Vec::new(),
        done: false,
        routed_call: matches!(input.request, Req::Call { .. } | Req::Read { .. }),
    };
    w.drain();
    for op in input.ops.iter().take(64) {
        let leg = |l: &u8, w: &World| {
            let sent: Vec<usize> = (0..w.sent.len()).filter(|&i| w.sent[i].is_some()).collect();
            (!sent.is_empty()).then(|| sent[*l as usize % sent.len()])
        };
        match op {
            Op::Whole { leg: l, status, body: b } => {
                if let Some(leg) = leg(l, &w) {
                    let status = [200, 202, 400, 404, 500][*status as usize % 5];
                    let part = AnswerPart::Whole {
                        head: AnswerHead::status(status).with_session(Some("m")),
                        body: body(b, w.sent[leg].as_ref().unwrap()),
                    };
                    w.fanout.member_part(leg, part, &mut w.lists, w.now);
                }
            }
            Op::Stream { leg: l } => {
                if let Some(leg) = leg(l, &w) {
                    w.fanout
                        .member_part(leg, AnswerPart::Stream(AnswerHead::status(200)), &mut w.lists, w.now);
                }
            }
            Op::Event { leg: l, body: b, id } => {
                if let Some(leg) = leg(l, &w) {
                    let data = body(b, w.sent[leg].as_ref().unwrap());
                    let part = match id {
                        Some(id) => AnswerPart::IdentifiedEvent { id: *id as u64, data },
                        None => AnswerPart::Event(data),
                    };
                    w.fanout.member_part(leg, part, &mut w.lists, w.now);
                }
            }
            Op::NamedEvent { leg: l, body: b, id, huge } => {
                if let Some(leg) = leg(l, &w) {
                    let data = body(b, w.sent[leg].as_ref().unwrap());
                    // What an HTTP member can give: an id the parser read
                    // (no CR, LF or NUL), not empty.
                    let id: String = id.chars().filter(|c| !matches!(c, '\r' | '\n' | '\0')).collect();
                    let part = match (*huge, id.is_empty()) {
                        (true, _) => AnswerPart::IdentifiedEvent { id: u64::MAX - id.len() as u64, data },
                        (false, true) => AnswerPart::Event(data),
                        (false, false) => AnswerPart::NamedEvent { id, data },
                    };
                    w.fanout.member_part(leg, part, &mut w.lists, w.now);
                }
            }
            Op::Prime { leg: l, id } => {
                if let Some(leg) = leg(l, &w) {
                    w.fanout
                        .member_part(leg, AnswerPart::Prime(*id as u64), &mut w.lists, w.now);
                }
            }
            Op::End { leg: l } => {
                if let Some(leg) = leg(l, &w) {
                    w.fanout.member_part(leg, AnswerPart::End, &mut w.lists, w.now);
                }
            }
            Op::Failed { leg: l } => {
                if let Some(leg) = leg(l, &w) {
                    w.fanout.member_failed(leg, "fuzzed", &mut w.lists, w.now);
                }
            }
            Op::Timeout { secs } => {
                w.now += Duration::from_secs(*secs as u64 % 8);
                w.fanout.handle_timeout(&mut w.lists, w.now);
                if let Some(at) = w.fanout.poll_timeout() {
                    assert!(at > w.now, "a deadline that is due after handle_timeout");
                }
            }
            Op::ClientGone => {
                w.fanout.client_gone();
                w.done = true;
            }
        }
        w.drain();
    }
    let legs: BTreeSet<usize> = (0..w.sent.len()).filter(|&i| w.sent[i].is_some()).collect();
    assert!(legs.len() <= w.sent.len());
});
