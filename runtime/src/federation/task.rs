//! One client request at a federated route: the fan-out machine driven
//! over the members' links.

use std::future::poll_fn;
use std::sync::Arc;
use std::task::Poll;
use std::time::Instant;

use futures_lite::FutureExt;
use sluice_core::federation::{Context, Fanout, Output};
use sluice_core::jsonrpc::{self, codes};
use sluice_core::upstream::{AnswerHead, AnswerPart, Request};

use super::RouteFederation;
use crate::link::{ClientSink, MessageLink};
use crate::rt::Timer;
use crate::rt::mailbox::Receiver;

/// The client left.
pub(super) struct Gone;

enum Event {
    Part(usize, Option<AnswerPart>),
    Gone,
    Timer,
}

pub(super) async fn run(
    route: Arc<RouteFederation>,
    req: Request,
    sink: ClientSink,
    inbox: Receiver<Gone>,
) {
    let members = route.member_names.len();
    let token = req.session_id().map(str::to_owned);
    let sessions = match &token {
        None => None,
        Some(t) => match route.sealer.open(t, members) {
            Ok(s) => Some(s),
            Err(_) => {
                // Another key's, another federation's, or forged: the client
                // starts over, as the spec says of an unknown session.
                route.sessions.refused();
                let msg = jsonrpc::error_message(
                    jsonrpc::refused_request_id(&req.body, &Default::default()).as_deref(),
                    codes::INVALID_REQUEST,
                    "sluice: unknown or expired session",
                    None,
                );
                sink.send(AnswerPart::json(AnswerHead::status(404), msg));
                return;
            }
        },
    };
    let ctx = Context {
        members: &route.member_names,
        session: token.as_deref().zip(sessions.as_deref()),
        policies: &route.policies,
    };
    // Dropped last: the member spans end when the request does.
    let mut spans = super::trace::MemberSpans::new(&route, &req);
    let now = Instant::now();
    let mut fanout = Fanout::new(req, &ctx, &mut route.lists(), now);
    // Legs dropped while this is set failed for this reason.
    let mut dropped_for: Option<&'static str> = None;
    let mut legs: Vec<Option<MessageLink>> = Vec::new();
    loop {
        while let Some(output) = fanout.poll_output() {
            match output {
                Output::ToMember {
                    leg,
                    member,
                    mut req,
                } => {
                    if let Some(spans) = spans.as_mut() {
                        spans.begin(leg, member, &mut req);
                    }
                    let mut link = route.members[member].open();
                    link.dispatch(req);
                    if legs.len() <= leg {
                        legs.resize_with(leg + 1, || None);
                    }
                    legs[leg] = Some(link);
                }
                Output::DropLeg { leg } => {
                    if let Some(l) = legs.get_mut(leg) {
                        *l = None;
                    }
                    if let Some(spans) = spans.as_mut() {
                        spans.end(leg, dropped_for.map(str::to_owned));
                    }
                }
                Output::Seal(sessions) => match route.sealer.seal(&sessions) {
                    Some(token) => {
                        route.sessions.sealed();
                        fanout.sealed(&token);
                    }
                    None => {
                        tracing::error!(route = %route.name, "no randomness to seal a session");
                        fanout.client_gone();
                    }
                },
                Output::ToClient(part) => {
                    if !sink.send(part) {
                        fanout.client_gone();
                    }
                }
                Output::LeftOut { member, why } => {
                    route.left_out(member);
                    let member = &route.member_names[member];
                    tracing::warn!(route = %route.name, %member, "member left out: {why}");
                }
                Output::Log(line) => tracing::warn!(route = %route.name, "{line}"),
            }
        }
        dropped_for = None;
        if fanout.is_finished() {
            // The client's answer is whole; a leg still out (a
            // notification on its way to a member) was handed over already.
            route.requests_ended(fanout.leg_outcomes());
            return;
        }
        let deadline = fanout.poll_timeout();
        let event = poll_fn(|cx| {
            for (i, leg) in legs.iter_mut().enumerate() {
                if let Some(link) = leg
                    && let Poll::Ready(part) = link.poll_part(cx)
                {
                    return Poll::Ready(Event::Part(i, part));
                }
            }
            if inbox.poll_recv(cx).is_ready() {
                return Poll::Ready(Event::Gone);
            }
            Poll::Pending
        })
        .or(async {
            match deadline {
                Some(at) => {
                    Timer::at(at).await;
                    Event::Timer
                }
                None => std::future::pending().await,
            }
        })
        .await;
        let now = Instant::now();
        let mut lists = route.lists();
        match event {
            Event::Part(leg, Some(part)) => {
                if let Some(spans) = spans.as_mut() {
                    spans.heard(leg, &part);
                }
                fanout.member_part(leg, part, &mut lists, now)
            }
            Event::Part(leg, None) => {
                legs[leg] = None;
                if let Some(spans) = spans.as_mut() {
                    spans.end(leg, Some("upstream-error".into()));
                }
                fanout.member_failed(leg, "it ended the answer early", &mut lists, now);
            }
            Event::Gone => {
                dropped_for = Some("client-gone");
                fanout.client_gone()
            }
            Event::Timer => {
                dropped_for = Some("timeout");
                fanout.handle_timeout(&mut lists, now)
            }
        }
    }
}
