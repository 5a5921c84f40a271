//! One client request at a federated endpoint, fanned out to the members
//! and fanned back in, sans-IO.
//!
//! A client session of a federation is a session with each member (the
//! member's session id and the version it negotiated, [`MemberSession`]),
//! which the driver keeps in the client's `Mcp-Session-Id` (sealed, so
//! any replica can serve the session). Client ids and progress tokens go to
//! the members unchanged: each member session is the client's own. What a
//! request becomes:
//!
//! | client request | members | client answer |
//! |---|---|---|
//! | `initialize` | every member | capabilities joined, instructions labelled, the oldest version; a new session ([`Output::Seal`]) |
//! | `tools/list`, `prompts/list`, `resources/list`, `resources/templates/list` | every member with more to list ([`MergedCursor`]) | one merged page ([`Catalog`], [`Resources`]); a member that fails is left out |
//! | `tools/call`, `prompts/get`, `resources/read`, `completion/complete` | the member the name or URI leads to, the name its own | the member's answer as it streams, its requests to the client tagged |
//! | `ping`, `logging/setLevel` | every member | `{}`; 404 when every member forgot its session |
//! | notifications, `DELETE` | every member | 202, 200 |
//! | an answer to a member's request | that member (the tag says which), its id restored | 202 |
//! | `GET` | every member | one stream of their events |
//! | `GET` with `Last-Event-ID` | the member the id names, with its own id | that member's stream, resumed |
//!
//! An event id a member gives is shown as `member << 48 | id`, so a
//! resumption finds its member without anything remembered.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{Map, Value};

use super::catalog::{Catalog, Member, Resolved};
use super::cursor::MergedCursor;
use super::health::{Breaker, MemberPolicy, OnUnavailable};
use super::resources::Resources;
use super::rewrite::{replace_string, restore_id, tag_id, tagged, untag_id};
use crate::http1::Header;
use crate::jsonrpc::{self, Classified, Kind, Message, codes};
use crate::modern::encode_header_value;
use crate::upstream::{AnswerHead, AnswerPart, Request, SESSION_HEADER};

/// A client session's session with one member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberSession {
    /// The member's `Mcp-Session-Id`, if it gave one.
    pub id: Option<String>,
    /// The protocol version it negotiated.
    pub version: String,
}

/// One member request of a fan-out.
pub type Leg = usize;

/// How one member request (a leg) ended, as the route's metrics count it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegOutcome {
    /// The member's answer came whole (its stream's end included).
    Answered,
    /// Its link failed, it could not be reached, its answer ended early or
    /// came out of order.
    Failed,
    /// No answer began within the member's timeout.
    TimedOut,
    /// Not sent: the member's circuit was open.
    CircuitOpen,
    /// No longer wanted before it ended: the client left, or its answer
    /// was complete without this one.
    Dropped,
}

impl LegOutcome {
    /// Every outcome, in the order of [`LegOutcome::index`].
    pub const ALL: [LegOutcome; 5] = [
        LegOutcome::Answered,
        LegOutcome::Failed,
        LegOutcome::TimedOut,
        LegOutcome::CircuitOpen,
        LegOutcome::Dropped,
    ];

    /// Its place in [`LegOutcome::ALL`].
    pub fn index(self) -> usize {
        match self {
            LegOutcome::Answered => 0,
            LegOutcome::Failed => 1,
            LegOutcome::TimedOut => 2,
            LegOutcome::CircuitOpen => 3,
            LegOutcome::Dropped => 4,
        }
    }
}

/// How long a member without a policy has to begin an answer.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// What the driver must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send `req` to `member`; its answer comes back as `leg`'s parts.
    ToMember {
        /// Names the answer.
        leg: Leg,
        /// Whom to send it to.
        member: Member,
        /// The request.
        req: Request,
    },
    /// `leg`'s answer is no longer wanted: drop its link.
    DropLeg {
        /// The leg.
        leg: Leg,
    },
    /// `initialize` is answered: seal these sessions (one per member,
    /// `None` for a member that did not take part) into the client's
    /// session id and call [`Fanout::sealed`].
    Seal(Vec<Option<MemberSession>>),
    /// A part of the client's answer.
    ToClient(AnswerPart),
    /// A member was left out of a fanned-in answer (a list, the session),
    /// for the log and the route's count.
    LeftOut {
        /// Who.
        member: Member,
        /// Why, in words.
        why: String,
    },
    /// Something for the log (a name dropped, a stray answer).
    Log(String),
}

/// What the fan-out needs of its federation.
pub struct Context<'a> {
    /// The members' names, in order.
    pub members: &'a [String],
    /// The client's session: its sealed id and what it holds (`None`
    /// before `initialize`).
    pub session: Option<(&'a str, &'a [Option<MemberSession>])>,
    /// Each member's failure policy, in member order.
    pub policies: &'a [MemberPolicy],
}

/// The route's memory of its members, shared by every request: their
/// lists and their health.
#[derive(Debug, Clone)]
pub struct Lists {
    /// Tools, by name.
    pub tools: Catalog,
    /// Prompts, by name.
    pub prompts: Catalog,
    /// Resources, by URI.
    pub resources: Resources,
    /// Each member's circuit breaker, in member order (a member without
    /// one is always tried).
    pub health: Vec<Breaker>,
}

#[derive(Debug)]
enum Op {
    Initialize,
    List {
        kind: ListKind,
        cursor: MergedCursor,
    },
    Routed,
    /// `logging/setLevel`: answered `{}` when every member has.
    SetLevel,
    /// Reading members' lists (first pages) to learn where the pending
    /// request goes; each leg's kind.
    Discover(Vec<ListKind>),
    /// Notifications and answers: 202 once every member took them.
    Forwarded,
    Delete,
    Get,
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ListKind {
    Tools,
    Prompts,
    Resources,
    Templates,
}

impl ListKind {
    fn of(method: &str) -> Option<Self> {
        Some(match method {
            "tools/list" => ListKind::Tools,
            "prompts/list" => ListKind::Prompts,
            "resources/list" => ListKind::Resources,
            "resources/templates/list" => ListKind::Templates,
            _ => return None,
        })
    }

    /// The result's member holding the items.
    fn key(self) -> &'static str {
        match self {
            ListKind::Tools => "tools",
            ListKind::Prompts => "prompts",
            ListKind::Resources => "resources",
            ListKind::Templates => "resourceTemplates",
        }
    }
}

#[derive(Debug)]
struct LegState {
    member: Member,
    deadline: Instant,
    /// Its answer is complete (or it failed, or was dropped).
    done: bool,
    /// A part of its answer arrived (the member is alive).
    heard: bool,
    /// Why it failed, for the fanned-in answer that leaves it out.
    failure: Option<String>,
    /// The JSON-RPC answer it gave (fan-in).
    answer: Option<Bytes>,
    /// The status and session of a whole answer.
    head: Option<AnswerHead>,
    /// An SSE answer is open (pass-through and GET).
    streaming: bool,
    /// How it ended, once it did (the first word stands).
    outcome: Option<LegOutcome>,
}

impl LegState {
    /// The leg is over, for `outcome` unless it ended already.
    fn end(&mut self, outcome: LegOutcome) {
        self.done = true;
        self.outcome.get_or_insert(outcome);
    }
}

/// One client request across the members; see the [module docs](self).
#[derive(Debug)]
pub struct Fanout {
    op: Op,
    id: Option<Vec<u8>>,
    client_session: Option<String>,
    members: usize,
    member_names: Vec<String>,
    legs: Vec<LegState>,
    outputs: VecDeque<Output>,
    /// The client's SSE head went out (pass-through, GET).
    client_streaming: bool,
    /// The client's answer is complete.
    finished: bool,
    /// `initialize`'s merged result, until the session is sealed.
    pending_init: Option<Vec<u8>>,
    /// The client's session, as its token holds it.
    sessions: Vec<Option<MemberSession>>,
    /// Each member's policy.
    policies: Vec<MemberPolicy>,
    /// Legs before this one went through the members' circuit breakers.
    gated: Leg,
    /// A request waiting for the lists that tell where it goes.
    pending: Option<Request>,
    /// Those lists were read once already.
    discovered: bool,
}

impl Fanout {
    /// Takes `req`, a client request at the federation, at `now`; drain
    /// [`poll_output`](Self::poll_output) next.
    pub fn new(req: Request, ctx: &Context<'_>, lists: &mut Lists, now: Instant) -> Self {
        let mut f = Fanout {
            op: Op::Done,
            id: None,
            client_session: ctx.session.map(|(id, _)| id.to_owned()),
            members: ctx.members.len(),
            member_names: ctx.members.to_vec(),
            legs: Vec::new(),
            outputs: VecDeque::new(),
            client_streaming: false,
            finished: false,
            pending_init: None,
            sessions: ctx.session.map(|(_, s)| s.to_vec()).unwrap_or_default(),
            policies: ctx.policies.to_vec(),
            gated: 0,
            pending: None,
            discovered: false,
        };
        f.start(req, ctx, lists, now);
        f.gate(lists, now);
        f
    }

    /// Legs sent since the last call meet their members' circuit
    /// breakers: to a member whose circuit is open, the leg is not sent
    /// and fails at once.
    fn gate(&mut self, lists: &mut Lists, now: Instant) {
        while self.gated < self.legs.len() {
            let leg = self.gated;
            self.gated += 1;
            let l = &self.legs[leg];
            if l.done {
                // Failed already.
                continue;
            }
            let Some(breaker) = lists.health.get_mut(l.member) else {
                continue;
            };
            if let Err(open) = breaker.allow(now) {
                self.outputs
                    .retain(|o| !matches!(o, Output::ToMember { leg: l, .. } if *l == leg));
                let why = format!(
                    "it is failing; not tried again for {:.1}s",
                    open.retry_in.as_secs_f64()
                );
                self.leg_failed(leg, &why, LegOutcome::CircuitOpen, lists, now);
            }
        }
    }

    /// The next thing to do.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.legs
            .iter()
            .filter(|l| self.timed(l))
            .map(|l| l.deadline)
            .min()
    }

    /// Whether `l` must answer by its deadline: a member's answer must
    /// begin in time; a routed call's stream, once begun, runs as long as
    /// the call (the exchange's idle timeout watches it), and GET streams
    /// and forwarded messages have no answer to wait for.
    fn timed(&self, l: &LegState) -> bool {
        let unbounded = match self.op {
            Op::Get => true,
            Op::Routed => l.streaming,
            _ => false,
        };
        !l.done && !unbounded
    }

    /// The client's answer is complete.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    fn start(&mut self, req: Request, ctx: &Context<'_>, lists: &mut Lists, now: Instant) {
        let sessions = ctx.session.map(|(_, s)| s);
        match req.method.as_str() {
            "GET" => {
                let Some(sessions) = sessions else {
                    return self.no_session();
                };
                self.op = Op::Get;
                // A resumption is one member's stream; a new GET, everyone's.
                // An id no member gave resumes nothing: a new stream.
                let resume = last_event_id(&req).and_then(split_event_id);
                for (member, s) in sessions.iter().enumerate() {
                    let Some(s) = s else { continue };
                    let mut r = member_request(&req, req.body.clone(), s, None);
                    match &resume {
                        Some((m, _)) if *m != member => continue,
                        Some((_, own)) => {
                            r.headers.push(Header::new("Last-Event-ID", own.as_bytes()))
                        }
                        None => {}
                    }
                    self.send(member, r, now);
                }
                self.open_client_stream();
                if self.legs.is_empty() {
                    self.finish(AnswerPart::End);
                }
                return;
            }
            "DELETE" => {
                let Some(sessions) = sessions else {
                    return self.no_session();
                };
                self.op = Op::Delete;
                self.send_to_every_member(&req, Bytes::new(), sessions, now);
                return self.settle();
            }
            "POST" => {}
            _ => return self.reply(405, None, codes::INVALID_REQUEST, "method not allowed"),
        }
        let body = req.body.clone();
        let message = match jsonrpc::classify(&body, &jsonrpc::Limits::default()) {
            Ok(Classified::Single(m)) => m,
            Ok(Classified::Batch(_)) => {
                return self.reply(
                    400,
                    None,
                    codes::BATCH_REFUSED,
                    "batches are not fanned out to a federation",
                );
            }
            Err(e) => return self.reply(400, None, e.code(), &format!("unreadable message: {e}")),
        };
        self.id = message.id.map(<[u8]>::to_vec);
        let method = message.method.as_deref().unwrap_or_default().to_owned();
        if method == "initialize" {
            self.op = Op::Initialize;
            for member in 0..self.members {
                let init = MemberSession {
                    id: None,
                    version: String::new(),
                };
                self.send(member, member_request(&req, body.clone(), &init, None), now);
            }
            return;
        }
        let Some(sessions) = sessions else {
            return self.no_session();
        };
        match message.kind {
            Kind::Notification => {
                // Answered once every member took it: the client's next
                // request must not overtake it (`notifications/initialized`
                // before the first call, a cancellation before a retry).
                self.op = Op::Forwarded;
                self.send_to_every_member(&req, body.clone(), sessions, now);
                self.settle_forwarded();
            }
            Kind::Response | Kind::Error => {
                // The client's answer to a member's request: the tag says whose.
                let target = message
                    .id
                    .and_then(|id| untag_id(id, self.members))
                    .and_then(|(member, raw)| {
                        let s = sessions.get(member)?.as_ref()?;
                        let text = restore_id(&body, message.id?, &raw)?;
                        Some((member, text, s))
                    });
                match target {
                    Some((member, text, s)) => {
                        self.op = Op::Forwarded;
                        self.send(member, member_request(&req, text.into(), s, None), now);
                    }
                    None => {
                        self.outputs.push_back(Output::Log(
                            "a client answered a request no member sent it".into(),
                        ));
                        self.finish(AnswerPart::empty(self.head(202)));
                    }
                }
            }
            Kind::Request => self.request(&req, &message, &method, sessions, lists, now),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn request(
        &mut self,
        req: &Request,
        message: &Message<'_>,
        method: &str,
        sessions: &[Option<MemberSession>],
        lists: &mut Lists,
        now: Instant,
    ) {
        let body = req.body.clone();
        // `ping` goes to the members too: a session sealed in a token lives
        // as long as its members' sessions, which only they can tell.
        if method == "ping" || method == "logging/setLevel" {
            self.op = Op::SetLevel;
            self.send_to_every_member(req, body.clone(), sessions, now);
            return self.settle();
        }
        if let Some(kind) = ListKind::of(method) {
            let names: Vec<&str> = self.member_names.iter().map(String::as_str).collect();
            let cursor = match cursor_of(&body, message) {
                None => MergedCursor::start(self.members),
                Some(c) => match MergedCursor::decode(&c, &names) {
                    Ok(c) => c,
                    Err(e) => {
                        return self.reply(
                            400,
                            self.id.clone(),
                            codes::INVALID_PARAMS,
                            &e.to_string(),
                        );
                    }
                },
            };
            for (member, own) in cursor.asks() {
                let Some(Some(s)) = sessions.get(member) else {
                    continue;
                };
                let text = with_cursor(&body, own);
                self.send(member, member_request(req, text.into(), s, None), now);
            }
            self.op = Op::List { kind, cursor };
            return self.settle_list(lists);
        }
        let routed = match method {
            "tools/call" => {
                route_by_name(&lists.tools, ListKind::Tools, &body, &["params", "name"])
            }
            "prompts/get" => route_by_name(
                &lists.prompts,
                ListKind::Prompts,
                &body,
                &["params", "name"],
            ),
            "resources/read" | "resources/subscribe" | "resources/unsubscribe" => {
                route_by_uri(&lists.resources, &body, &["params", "uri"], sessions)
            }
            "completion/complete" => {
                let kind = string_at(&body, &["params", "ref", "type"]);
                match kind.as_deref() {
                    Some("ref/prompt") => route_by_name(
                        &lists.prompts,
                        ListKind::Prompts,
                        &body,
                        &["params", "ref", "name"],
                    ),
                    Some("ref/resource") => {
                        route_by_uri(&lists.resources, &body, &["params", "ref", "uri"], sessions)
                    }
                    _ => Err(Unrouted::No(
                        "a completion/complete whose ref is neither a prompt nor a resource".into(),
                    )),
                }
            }
            _ => {
                let text = format!("{method} is not routed by a federation");
                return self.reply(404, self.id.clone(), codes::METHOD_NOT_FOUND, &text);
            }
        };
        let (member, text, own_name) = match routed {
            Ok(r) => r,
            Err(Unrouted::Ask(kind, members)) if !self.discovered => {
                return self.discover(req, kind, &members, now);
            }
            Err(Unrouted::Ask(..)) => {
                let why = "no member's list says it has it";
                return self.reply(200, self.id.clone(), codes::INVALID_PARAMS, why);
            }
            Err(Unrouted::No(why)) => {
                return self.reply(200, self.id.clone(), codes::INVALID_PARAMS, &why);
            }
        };
        let Some(Some(s)) = sessions.get(member) else {
            let why = format!(
                "member {} is not part of this session (it was unavailable when the session began)",
                self.member_names[member]
            );
            return self.reply(502, self.id.clone(), codes::UPSTREAM_FAILED, &why);
        };
        // `Mcp-Name` follows a name the member knows by another; a URI is
        // the same everywhere.
        let own_name = own_name.filter(|_| matches!(method, "tools/call" | "prompts/get"));
        self.op = Op::Routed;
        self.send(
            member,
            member_request(req, text.into(), s, own_name.as_deref()),
            now,
        );
    }

    /// [`Output::Seal`] is done: `token` is the client's session id.
    pub fn sealed(&mut self, token: &str) {
        self.client_session = Some(token.to_owned());
        if let Some(result) = self.pending_init.take() {
            self.answer(result);
        }
    }

    /// A part of `leg`'s answer.
    pub fn member_part(&mut self, leg: Leg, part: AnswerPart, lists: &mut Lists, now: Instant) {
        self.on_part(leg, part, lists, now);
        self.gate(lists, now);
    }

    fn on_part(&mut self, leg: Leg, part: AnswerPart, lists: &mut Lists, now: Instant) {
        let Some(l) = self.legs.get_mut(leg) else {
            return;
        };
        if l.done || self.finished && !matches!(self.op, Op::Forwarded) {
            return;
        }
        let member = l.member;
        if !l.heard {
            l.heard = true;
            if let Some(b) = lists.health.get_mut(member) {
                b.succeeded();
            }
        }
        match (&self.op, part) {
            (Op::Routed, part) => self.pass_through(leg, member, part),
            (Op::Get, AnswerPart::Stream(_)) => {}
            (
                Op::Get,
                part @ (AnswerPart::Event(_)
                | AnswerPart::IdentifiedEvent { .. }
                | AnswerPart::NamedEvent { .. }
                | AnswerPart::Prime(_)),
            ) => {
                if let Some(part) = event_for_client(part, member) {
                    self.emit(part);
                }
            }
            (Op::Get, AnswerPart::Whole { .. } | AnswerPart::End) => {
                self.legs[leg].end(LegOutcome::Answered);
                if self.legs.iter().all(|l| l.done) {
                    self.finish(AnswerPart::End);
                }
            }
            (_, AnswerPart::Whole { head, body }) => {
                let l = &mut self.legs[leg];
                l.end(LegOutcome::Answered);
                l.head = Some(head);
                l.answer = (!body.is_empty()).then_some(body);
                self.settle_any(lists, now);
            }
            (_, AnswerPart::Stream(head)) => {
                let l = &mut self.legs[leg];
                l.head = Some(head);
                l.streaming = true;
            }
            (
                _,
                AnswerPart::Event(data)
                | AnswerPart::IdentifiedEvent { data, .. }
                | AnswerPart::NamedEvent { data, .. },
            ) => {
                // Fan-in keeps the answer; what comes before it (progress on
                // a list) has nowhere to go in a merged JSON answer.
                if let Ok(Classified::Single(m)) =
                    jsonrpc::classify(&data, &jsonrpc::Limits::default())
                    && matches!(m.kind, Kind::Response | Kind::Error)
                {
                    self.legs[leg].answer = Some(data);
                }
            }
            (_, AnswerPart::Prime(_)) => {}
            (_, AnswerPart::End) => {
                self.legs[leg].end(LegOutcome::Answered);
                self.settle_any(lists, now);
            }
        }
    }

    /// `leg`'s member failed (its link closed, it could not be reached)
    /// before its answer was complete.
    pub fn member_failed(&mut self, leg: Leg, why: &str, lists: &mut Lists, now: Instant) {
        self.member_failed_for(leg, why, LegOutcome::Failed, lists, now);
    }

    fn member_failed_for(
        &mut self,
        leg: Leg,
        why: &str,
        outcome: LegOutcome,
        lists: &mut Lists,
        now: Instant,
    ) {
        if let Some(l) = self.legs.get(leg)
            && !l.done
            && let Some(b) = lists.health.get_mut(l.member)
        {
            b.failed(now);
        }
        self.leg_failed(leg, why, outcome, lists, now);
        self.gate(lists, now);
    }

    fn leg_failed(
        &mut self,
        leg: Leg,
        why: &str,
        outcome: LegOutcome,
        lists: &mut Lists,
        now: Instant,
    ) {
        let Some(l) = self.legs.get_mut(leg) else {
            return;
        };
        if l.done {
            return;
        }
        l.end(outcome);
        let member = l.member;
        let name = self.member_names[member].clone();
        match self.op {
            Op::Routed if !self.client_streaming => {
                let text = format!("member {name} failed: {why}");
                self.reply(502, self.id.clone(), codes::UPSTREAM_FAILED, &text);
            }
            Op::Routed => {
                // Mid-stream: the exchange's injection rules say what the
                // client is owed; the stream just ends.
                self.outputs.push_back(Output::Log(format!(
                    "member {name} failed mid-answer: {why}"
                )));
                self.finish(AnswerPart::End);
            }
            Op::Get => {
                self.outputs.push_back(Output::Log(format!(
                    "member {name}'s GET stream ended: {why}"
                )));
                if self.legs.iter().all(|l| l.done) {
                    self.finish(AnswerPart::End);
                }
            }
            Op::Initialize | Op::List { .. } => {
                // Said once, by the fan-in that leaves it out.
                self.legs[leg].failure = Some(why.to_owned());
                self.settle_any(lists, now);
            }
            _ => {
                let why = why.to_owned();
                self.outputs.push_back(Output::LeftOut { member, why });
                self.settle_any(lists, now);
            }
        }
    }

    /// Legs past their deadline fail.
    pub fn handle_timeout(&mut self, lists: &mut Lists, now: Instant) {
        let late: Vec<Leg> = (0..self.legs.len())
            .filter(|&i| self.timed(&self.legs[i]) && now >= self.legs[i].deadline)
            .collect();
        for leg in late {
            self.outputs.push_back(Output::DropLeg { leg });
            self.member_failed_for(leg, "no answer in time", LegOutcome::TimedOut, lists, now);
        }
        self.gate(lists, now);
    }

    /// The client left: every leg is dropped.
    pub fn client_gone(&mut self) {
        for (leg, l) in self.legs.iter_mut().enumerate() {
            if !l.done {
                l.end(LegOutcome::Dropped);
                self.outputs.push_back(Output::DropLeg { leg });
            }
        }
        self.finished = true;
    }

    /// Each request sent (or meant) for a member so far: whom to, and how
    /// it ended (a leg still out counts as dropped: the driver reads this
    /// when it lets the fan-out go).
    pub fn leg_outcomes(&self) -> impl Iterator<Item = (Member, LegOutcome)> + '_ {
        self.legs
            .iter()
            .map(|l| (l.member, l.outcome.unwrap_or(LegOutcome::Dropped)))
    }

    // ---- fan-in ----------------------------------------------------------

    fn settle_any(&mut self, lists: &mut Lists, now: Instant) {
        match self.op {
            Op::Initialize => self.settle_initialize(),
            Op::List { .. } => self.settle_list(lists),
            Op::SetLevel | Op::Delete => self.settle(),
            Op::Discover(_) => self.settle_discover(lists, now),
            Op::Forwarded => self.settle_forwarded(),
            _ => {}
        }
    }

    /// A notification or an answer: 202 once every member took it (or
    /// failed to: what a member does not get is logged, not the client's
    /// concern).
    fn settle_forwarded(&mut self) {
        if !self.finished && self.legs.iter().all(|l| l.done) {
            self.finish(AnswerPart::empty(self.head(202)));
        }
    }

    /// `logging/setLevel` and `DELETE`, once every leg is done.
    fn settle(&mut self) {
        if !self.all_answered() {
            return;
        }
        match self.op {
            Op::Delete => self.finish(AnswerPart::empty(self.head(200))),
            _ => self.answer(b"{}".to_vec()),
        }
    }

    /// Every leg is done and the client not answered yet. When every
    /// member asked no longer knows its session, that answer is 404 (given
    /// here): the client's session is gone too.
    fn all_answered(&mut self) -> bool {
        if self.finished || !self.legs.iter().all(|l| l.done) {
            return false;
        }
        if self.session_gone() {
            let id = self.id.clone();
            self.reply(
                404,
                id,
                codes::INVALID_REQUEST,
                "unknown or expired session",
            );
            return false;
        }
        true
    }

    /// Every member asked said it no longer knows its session (DELETEd,
    /// expired, restarted): so is the client's. A member says so with 404,
    /// as the spec has it, or with the 400 several servers give a session
    /// id they do not know (server-everything, MCP-NOTES); the request
    /// itself was checked by sluice and is a member's own list or ping.
    fn session_gone(&self) -> bool {
        !self.legs.is_empty()
            && self.legs.iter().all(|l| {
                l.head
                    .as_ref()
                    .is_some_and(|h| matches!(h.status, 400 | 404))
            })
    }

    fn settle_initialize(&mut self) {
        if self.finished || !self.legs.iter().all(|l| l.done) {
            return;
        }
        let mut sessions = vec![None; self.members];
        let mut results = Vec::new();
        for leg in 0..self.legs.len() {
            let l = &self.legs[leg];
            let result = l.answer.as_ref().and_then(|a| result_of(a));
            let version = result
                .as_ref()
                .and_then(|r| r.get("protocolVersion")?.as_str().map(str::to_owned));
            match (result, version) {
                (Some(result), Some(version)) => {
                    let id = l.head.as_ref().and_then(|h| h.session_id.clone());
                    sessions[l.member] = Some(MemberSession { id, version });
                    results.push((self.member_names[l.member].clone(), result));
                }
                _ => {
                    let why = match &l.failure {
                        Some(why) => format!("its initialize failed: {why}"),
                        None => "its initialize failed".into(),
                    };
                    if self.without(l.member, why) {
                        return;
                    }
                }
            }
        }
        if results.is_empty() {
            return self.reply(
                502,
                self.id.clone(),
                codes::UPSTREAM_FAILED,
                "no member could be initialized",
            );
        }
        let merged = merge_initialize(&results);
        self.pending_init = Some(merged);
        self.outputs.push_back(Output::Seal(sessions));
    }

    /// `member` has no part in a fanned-in answer, for `why`: with
    /// `on_unavailable = fail` the client's request fails naming it (true);
    /// else it is left out (logged, counted).
    fn without(&mut self, member: Member, why: String) -> bool {
        let policy = self.policies.get(member).map(|p| p.on_unavailable);
        if policy == Some(OnUnavailable::Fail) {
            let text = format!("member {} is unavailable: {why}", self.member_names[member]);
            self.reply(502, self.id.clone(), codes::UPSTREAM_FAILED, &text);
            return true;
        }
        self.outputs.push_back(Output::LeftOut { member, why });
        false
    }

    fn settle_list(&mut self, lists: &mut Lists) {
        if !self.all_answered() {
            return;
        }
        let Op::List { kind, cursor } = &self.op else {
            return;
        };
        let (kind, cursor) = (*kind, cursor.clone());
        let mut pages: Vec<(Member, Vec<u8>)> = Vec::new();
        let mut nexts = Vec::new();
        for leg in 0..self.legs.len() {
            let l = &self.legs[leg];
            let Some(page) = l.answer.as_ref().and_then(|a| page_of(a, kind)) else {
                let why = match &l.failure {
                    Some(why) => why.clone(),
                    None => format!("no {} result", kind.key()),
                };
                if self.without(l.member, why) {
                    return;
                }
                continue;
            };
            pages.push((l.member, page.items));
            nexts.push((l.member, page.next));
        }
        let merged = match kind {
            ListKind::Tools | ListKind::Prompts => {
                let catalog = if kind == ListKind::Tools {
                    &mut lists.tools
                } else {
                    &mut lists.prompts
                };
                let refs: Vec<(Member, &[u8])> =
                    pages.iter().map(|(m, p)| (*m, p.as_slice())).collect();
                let (merged, problems) = catalog.merge(&refs);
                for p in problems {
                    self.outputs.push_back(Output::Log(p.to_string()));
                }
                merged
            }
            ListKind::Resources | ListKind::Templates => {
                let mut out = b"[".to_vec();
                for (member, page) in &pages {
                    if kind == ListKind::Resources {
                        lists.resources.learn(*member, page);
                    } else {
                        lists.resources.learn_templates(*member, page);
                    }
                    // Each item as the member wrote it; a page that is no
                    // array adds nothing (the catalog's merge says so for
                    // tools and prompts).
                    let items = serde_json::from_slice::<Vec<&serde_json::value::RawValue>>(page)
                        .unwrap_or_default();
                    for item in items {
                        if out.len() > 1 {
                            out.push(b',');
                        }
                        out.extend_from_slice(item.get().as_bytes());
                    }
                }
                out.push(b']');
                out
            }
        };
        let mut result = format!("{{\"{}\":", kind.key()).into_bytes();
        result.extend_from_slice(&merged);
        if let Some(next) = cursor.after(&nexts) {
            let names: Vec<&str> = self.member_names.iter().map(String::as_str).collect();
            result.extend_from_slice(b",\"nextCursor\":");
            jsonrpc::write_json_string(&mut result, &next.encode(&names));
        }
        result.push(b'}');
        self.answer(result);
    }
}

impl Fanout {
    // ---- pass-through ----------------------------------------------------

    /// A routed call's answer, as the member gives it: its head with the
    /// client's session, its events with the member's requests tagged.
    fn pass_through(&mut self, leg: Leg, member: Member, part: AnswerPart) {
        let streaming = self.legs[leg].streaming;
        match (streaming, part) {
            (false, AnswerPart::Whole { head, body }) => {
                self.legs[leg].end(LegOutcome::Answered);
                let head = AnswerHead {
                    session_id: self.client_session.clone(),
                    ..head
                };
                self.finish(AnswerPart::Whole { head, body });
            }
            (false, AnswerPart::Stream(head)) => {
                self.legs[leg].streaming = true;
                self.client_streaming = true;
                let head = AnswerHead {
                    session_id: self.client_session.clone(),
                    ..head
                };
                self.emit(AnswerPart::Stream(head));
            }
            (
                true,
                part @ (AnswerPart::Event(_)
                | AnswerPart::IdentifiedEvent { .. }
                | AnswerPart::NamedEvent { .. }
                | AnswerPart::Prime(_)),
            ) => {
                if let Some(part) = event_for_client(part, member) {
                    self.emit(part);
                }
            }
            (true, AnswerPart::End) => {
                self.legs[leg].end(LegOutcome::Answered);
                self.finish(AnswerPart::End);
            }
            // A part out of order: the member's answer is broken.
            (_, part) => {
                self.legs[leg].end(LegOutcome::Failed);
                self.outputs.push_back(Output::DropLeg { leg });
                let name = self.member_names[member].clone();
                let why = format!("member {name} answered out of order ({})", part_name(&part));
                self.outputs.push_back(Output::Log(why.clone()));
                if streaming {
                    self.finish(AnswerPart::End);
                } else {
                    self.reply(502, self.id.clone(), codes::UPSTREAM_FAILED, &why);
                }
            }
        }
    }

    // ---- discovery ------------------------------------------------------

    /// `req` waits while `members`' lists of `kind` (resources: and their
    /// templates) are read, once; then it is routed again.
    fn discover(&mut self, req: &Request, kind: ListKind, members: &[Member], now: Instant) {
        let kinds: &[ListKind] = match kind {
            ListKind::Resources | ListKind::Templates => {
                &[ListKind::Resources, ListKind::Templates]
            }
            k => &[k][..],
        };
        let mut legs = Vec::new();
        for &member in members {
            let Some(Some(s)) = self.sessions.get(member).cloned() else {
                continue;
            };
            for &k in kinds {
                let method = match k {
                    ListKind::Tools => "tools/list",
                    ListKind::Prompts => "prompts/list",
                    ListKind::Resources => "resources/list",
                    ListKind::Templates => "resources/templates/list",
                };
                // An id per list: a member may keep one stream per request id.
                let body = format!(
                    r#"{{"jsonrpc":"2.0","id":"sluice/discover/{method}","method":"{method}"}}"#
                );
                let mut list = member_request(req, body.into(), &s, None);
                list.headers
                    .retain(|h| !h.is("mcp-name") && !h.is("mcp-method") && !h.is("last-event-id"));
                legs.push(k);
                self.send(member, list, now);
            }
        }
        self.pending = Some(req.clone());
        self.discovered = true;
        self.op = Op::Discover(legs);
    }

    /// The lists are in: learn them, then route the pending request.
    fn settle_discover(&mut self, lists: &mut Lists, now: Instant) {
        if self.finished || !self.legs.iter().all(|l| l.done) {
            return;
        }
        let Op::Discover(kinds) = &self.op else {
            return;
        };
        let first = self.legs.len() - kinds.len();
        let kinds = kinds.clone();
        for (i, kind) in kinds.into_iter().enumerate() {
            let l = &self.legs[first + i];
            let Some(page) = l.answer.as_ref().and_then(|a| page_of(a, kind)) else {
                continue;
            };
            let items = page.items.as_slice();
            match kind {
                ListKind::Tools => drop(lists.tools.merge(&[(l.member, items)])),
                ListKind::Prompts => drop(lists.prompts.merge(&[(l.member, items)])),
                ListKind::Resources => lists.resources.learn(l.member, items),
                ListKind::Templates => lists.resources.learn_templates(l.member, items),
            }
        }
        let Some(req) = self.pending.take() else {
            return;
        };
        let sessions = self.sessions.clone();
        let body = req.body.clone();
        let Ok(Classified::Single(message)) = jsonrpc::classify(&body, &jsonrpc::Limits::default())
        else {
            return;
        };
        let method = message.method.as_deref().unwrap_or_default().to_owned();
        self.request(&req, &message, &method, &sessions, lists, now);
    }

    // ---- output helpers --------------------------------------------------

    /// `req` with `body` to every member in the client's session.
    fn send_to_every_member(
        &mut self,
        req: &Request,
        body: Bytes,
        sessions: &[Option<MemberSession>],
        now: Instant,
    ) {
        for (member, s) in sessions.iter().enumerate() {
            if let Some(s) = s {
                self.send(member, member_request(req, body.clone(), s, None), now);
            }
        }
    }

    /// The answer to a request that needs a session and names none.
    fn no_session(&mut self) {
        let id = self.id.clone();
        self.reply(
            400,
            id,
            codes::INVALID_REQUEST,
            "no Mcp-Session-Id: initialize first",
        );
    }

    fn send(&mut self, member: Member, req: Request, now: Instant) {
        let leg = self.legs.len();
        let timeout = self
            .policies
            .get(member)
            .map_or(DEFAULT_TIMEOUT, |p| p.timeout);
        self.legs.push(LegState {
            member,
            deadline: now + timeout,
            done: false,
            heard: false,
            failure: None,
            answer: None,
            head: None,
            streaming: false,
            outcome: None,
        });
        self.outputs
            .push_back(Output::ToMember { leg, member, req });
    }

    fn head(&self, status: u16) -> AnswerHead {
        AnswerHead::status(status).with_session(self.client_session.as_deref())
    }

    /// A result for the client's request.
    fn answer(&mut self, result: Vec<u8>) {
        let id = self.id.clone().unwrap_or_else(|| b"null".to_vec());
        let msg = jsonrpc::result_message(&id, &result);
        self.finish(AnswerPart::json(self.head(200), msg));
    }

    /// An error for the client's request, with `status`.
    fn reply(&mut self, status: u16, id: Option<Vec<u8>>, code: i64, text: &str) {
        let msg = jsonrpc::error_message(id.as_deref(), code, &format!("sluice: {text}"), None);
        if self.client_streaming {
            self.emit(AnswerPart::Event(msg.into()));
            return self.finish(AnswerPart::End);
        }
        self.finish(AnswerPart::json(self.head(status), msg));
    }

    fn open_client_stream(&mut self) {
        self.client_streaming = true;
        self.emit(AnswerPart::Stream(self.head(200)));
    }

    fn emit(&mut self, part: AnswerPart) {
        if !self.finished {
            self.outputs.push_back(Output::ToClient(part));
        }
    }

    /// The client's last part; legs still running are dropped.
    fn finish(&mut self, part: AnswerPart) {
        if self.finished {
            return;
        }
        self.outputs.push_back(Output::ToClient(part));
        self.finished = true;
        if matches!(self.op, Op::Forwarded) {
            return;
        }
        for (leg, l) in self.legs.iter_mut().enumerate() {
            if !l.done {
                l.end(LegOutcome::Dropped);
                self.outputs.push_back(Output::DropLeg { leg });
            }
        }
    }
}

/// The request for a member: the client's, with the member's session and
/// version, `body` as the member must get it, and `Mcp-Name` (when the
/// client sent one) set to the member's own name.
fn member_request(
    req: &Request,
    body: Bytes,
    s: &MemberSession,
    own_name: Option<&str>,
) -> Request {
    let mut headers: Vec<Header> = req
        .headers
        .iter()
        .filter(|h| {
            // The member's own session and version replace the client's.
            let replaced =
                h.is(SESSION_HEADER) || (h.is("mcp-protocol-version") && !s.version.is_empty());
            !replaced && !h.is("content-length") && !h.is("last-event-id")
        })
        .cloned()
        .collect();
    if let Some(name) = own_name {
        for h in headers.iter_mut().filter(|h| h.is("mcp-name")) {
            h.value = encode_header_value(name).into_bytes();
        }
    }
    if let Some(id) = &s.id {
        headers.push(Header::new(SESSION_HEADER, id.as_bytes()));
    }
    if !s.version.is_empty() {
        headers.push(Header::new("MCP-Protocol-Version", s.version.as_bytes()));
    }
    Request {
        method: req.method.clone(),
        target: req.target.clone(),
        headers,
        body,
    }
}

fn part_name(part: &AnswerPart) -> &'static str {
    match part {
        AnswerPart::Whole { .. } => "a whole answer",
        AnswerPart::Stream(_) => "a stream head",
        AnswerPart::Event(_)
        | AnswerPart::IdentifiedEvent { .. }
        | AnswerPart::NamedEvent { .. } => "an event",
        AnswerPart::Prime(_) => "a priming event",
        AnswerPart::End => "an end",
    }
}

/// Bits of a client-facing event id that hold the member's own id.
const MEMBER_ID_BITS: u32 = 48;

/// A member's event as the client gets it: its event id marked with the
/// member, its request to the client tagged; a prime whose id cannot be
/// marked is dropped. A number that fits is marked as a number
/// (`member << 48 | id`); any other id as text, `member:id`.
fn event_for_client(part: AnswerPart, member: Member) -> Option<AnswerPart> {
    let mark = |id: u64| {
        (id >> MEMBER_ID_BITS == 0 && (member as u64) < (1 << (64 - MEMBER_ID_BITS)))
            .then_some((member as u64) << MEMBER_ID_BITS | id)
    };
    Some(match part {
        AnswerPart::IdentifiedEvent { id, data } => {
            let data = tag_request(&data, member);
            match mark(id) {
                Some(id) => AnswerPart::IdentifiedEvent { id, data },
                None => AnswerPart::NamedEvent {
                    id: format!("{member}:{id}"),
                    data,
                },
            }
        }
        AnswerPart::NamedEvent { id, data } => AnswerPart::NamedEvent {
            id: format!("{member}:{id}"),
            data: tag_request(&data, member),
        },
        AnswerPart::Event(data) => AnswerPart::Event(tag_request(&data, member)),
        AnswerPart::Prime(id) => AnswerPart::Prime(mark(id)?),
        other => other,
    })
}

/// Where a client resumes: the member whose event it saw last, and that
/// member's own event id.
fn split_event_id(id: &str) -> Option<(Member, String)> {
    if let Ok(n) = id.parse::<u64>() {
        let own = n & ((1 << MEMBER_ID_BITS) - 1);
        return Some(((n >> MEMBER_ID_BITS) as Member, own.to_string()));
    }
    let (member, own) = id.split_once(':')?;
    // The member as marked: digits only, no sign, no leading zero.
    let canonical = !member.is_empty()
        && member.bytes().all(|b| b.is_ascii_digit())
        && (member == "0" || !member.starts_with('0'));
    (canonical && !own.is_empty()).then(|| Some((member.parse().ok()?, own.to_owned())))?
}

/// The `Last-Event-ID` a client sent, if it is text.
fn last_event_id(req: &Request) -> Option<&str> {
    let v = req.header("last-event-id")?;
    std::str::from_utf8(v).ok().map(str::trim)
}

/// A member's request in `data` (sampling, elicitation, roots) with its
/// id tagged; anything else as it is.
fn tag_request(data: &Bytes, member: Member) -> Bytes {
    match jsonrpc::classify(data, &jsonrpc::Limits::default()) {
        Ok(Classified::Single(m)) if m.kind == Kind::Request => {
            m.id.and_then(|id| tag_id(data, id, member))
                .map_or_else(|| data.clone(), Bytes::from)
        }
        // The member gives up on a request of its own: the client knows
        // that request by its tagged id.
        Ok(Classified::Single(m))
            if m.kind == Kind::Notification
                && m.method.as_deref() == Some("notifications/cancelled") =>
        {
            tag_cancelled(data, member).map_or_else(|| data.clone(), Bytes::from)
        }
        _ => data.clone(),
    }
}

/// A member's `notifications/cancelled` with its `requestId` tagged as the
/// request was (a cancellation is rare: parsed and written again).
fn tag_cancelled(data: &[u8], member: Member) -> Option<Vec<u8>> {
    let mut v: Value = serde_json::from_slice(data).ok()?;
    let id = v.get_mut("params")?.get_mut("requestId")?;
    if !(id.is_string() || id.is_number()) {
        return None;
    }
    *id = Value::String(tagged(member, &id.to_string()));
    serde_json::to_vec(&v).ok()
}

/// The string at `path` in a message's text.
fn string_at(text: &[u8], path: &[&str]) -> Option<String> {
    let v: Value = serde_json::from_slice(text).ok()?;
    path.iter()
        .try_fold(&v, |v, key| v.get(key))?
        .as_str()
        .map(str::to_owned)
}

/// The client's cursor (`params.cursor`).
fn cursor_of(body: &[u8], message: &Message<'_>) -> Option<String> {
    message.params.as_ref()?;
    string_at(body, &["params", "cursor"])
}

/// The list request as one member gets it: the member's own cursor in
/// place of the merged one, or none for its first page.
fn with_cursor(body: &[u8], own: Option<&str>) -> Vec<u8> {
    match own {
        Some(c) => replace_string(body, &["params", "cursor"], c).unwrap_or_else(|| body.to_vec()),
        None => {
            let mut v: Value = match serde_json::from_slice(body) {
                Ok(v) => v,
                Err(_) => return body.to_vec(),
            };
            let removed = v
                .get_mut("params")
                .and_then(Value::as_object_mut)
                .and_then(|p| p.remove("cursor"));
            match removed {
                Some(_) => v.to_string().into_bytes(),
                None => body.to_vec(),
            }
        }
    }
}

/// Where a request goes: the member, the body it gets, and the name it
/// knows the item by when that differs from the client's.
type Routed = (Member, Vec<u8>, Option<String>);

/// Why a request could not be routed yet.
enum Unrouted {
    /// These members' lists of this kind would tell.
    Ask(ListKind, Vec<Member>),
    /// Nothing can route it.
    No(String),
}

/// The member a name at `path` leads to, and the body with the member's
/// own name there.
fn route_by_name(
    catalog: &Catalog,
    kind: ListKind,
    body: &[u8],
    path: &[&str],
) -> Result<Routed, Unrouted> {
    let no = |why: &str| Unrouted::No(why.to_owned());
    let shown = string_at(body, path).ok_or_else(|| no("no name to route by"))?;
    match catalog.resolve(&shown) {
        Resolved::Known(t) => {
            let text =
                replace_string(body, path, &t.name).ok_or_else(|| no("no name to route by"))?;
            Ok((t.member, text, Some(t.name)))
        }
        Resolved::Ask(members) => Err(Unrouted::Ask(kind, members)),
        Resolved::Unknown => Err(Unrouted::No(format!("no member has {shown:?}"))),
    }
}

/// The member a URI at `path` leads to (the body is unchanged): the one
/// that listed it or a template matching it, the session's only member,
/// or else the members' lists must tell.
fn route_by_uri(
    resources: &Resources,
    body: &[u8],
    path: &[&str],
    sessions: &[Option<MemberSession>],
) -> Result<Routed, Unrouted> {
    let uri = string_at(body, path).ok_or_else(|| Unrouted::No("no uri to route by".into()))?;
    if let Some(m) = resources.route(&uri) {
        return Ok((m, body.to_vec(), None));
    }
    let members: Vec<Member> = (0..sessions.len())
        .filter(|m| sessions[*m].is_some())
        .collect();
    match members.as_slice() {
        [only] => Ok((*only, body.to_vec(), None)),
        [] => Err(Unrouted::No(format!("no member can serve {uri:?}"))),
        _ => Err(Unrouted::Ask(ListKind::Resources, members)),
    }
}

/// The `result` of one JSON-RPC response, when it is an object.
/// One member's page of a list: the items' JSON text as the member wrote
/// it, and its own cursor for the next page.
struct Page {
    items: Vec<u8>,
    next: Option<String>,
}

/// The page in a member's list answer, read without building a tree of it:
/// a list answer is the largest thing a federation reads, on every
/// `tools/list` (docs/BENCHMARKS.md, "Federation"). No result object, no
/// page; no items, an empty one.
fn page_of(answer: &[u8], kind: ListKind) -> Option<Page> {
    use serde_json::value::RawValue;
    use std::collections::BTreeMap;
    let answer = serde_json::from_slice::<BTreeMap<String, &RawValue>>(answer).ok()?;
    let result =
        serde_json::from_str::<BTreeMap<String, &RawValue>>(answer.get("result")?.get()).ok()?;
    let items = result
        .get(kind.key())
        .map_or(b"[]".to_vec(), |raw| raw.get().as_bytes().to_vec());
    // A cursor that is not a string is no cursor, as before.
    let next = result
        .get("nextCursor")
        .and_then(|raw| serde_json::from_str::<String>(raw.get()).ok());
    Some(Page { items, next })
}

fn result_of(answer: &[u8]) -> Option<Map<String, Value>> {
    match serde_json::from_slice::<Value>(answer)
        .ok()?
        .get("result")?
    {
        Value::Object(r) => Some(r.clone()),
        _ => None,
    }
}

/// One `initialize` result from the members': capabilities joined (an
/// object member present when any member has it, flags true when any is),
/// instructions labelled with their member, the oldest version.
fn merge_initialize(results: &[(String, Map<String, Value>)]) -> Vec<u8> {
    let mut capabilities = Map::new();
    let mut instructions = Vec::new();
    let mut version: Option<&str> = None;
    for (name, r) in results {
        if let Some(Value::Object(c)) = r.get("capabilities") {
            join(&mut capabilities, c);
        }
        if let Some(text) = r.get("instructions").and_then(Value::as_str) {
            instructions.push(format!("[{name}] {text}"));
        }
        if let Some(v) = r.get("protocolVersion").and_then(Value::as_str) {
            version = Some(version.map_or(v, |o: &str| o.min(v)));
        }
    }
    let mut result = Map::new();
    result.insert(
        "protocolVersion".into(),
        Value::from(version.unwrap_or_default()),
    );
    result.insert("capabilities".into(), Value::Object(capabilities));
    result.insert(
        "serverInfo".into(),
        serde_json::json!({"name": "sluice", "version": env!("CARGO_PKG_VERSION")}),
    );
    if !instructions.is_empty() {
        result.insert(
            "instructions".into(),
            Value::from(instructions.join("\n\n")),
        );
    }
    Value::Object(result).to_string().into_bytes()
}

fn join(into: &mut Map<String, Value>, from: &Map<String, Value>) {
    for (k, v) in from {
        match (into.get_mut(k), v) {
            (Some(Value::Object(a)), Value::Object(b)) => join(a, b),
            (Some(Value::Bool(a)), Value::Bool(b)) => *a |= *b,
            (Some(_), _) => {}
            (None, v) => {
                into.insert(k.clone(), v.clone());
            }
        }
    }
}
