//! A federated request's member calls as spans of their own: each member
//! request a CLIENT span, the child of the route's upstream attempt span
//! (whose `traceparent` the exchange wrote into the request the fan-out
//! got), named and attributed as an attempt span from the member's own
//! request. Each member request names its span as its parent, in the
//! `traceparent` header and in `params._meta.traceparent` where the body
//! holds one.
//!
//! Made only when tracing is on and the exchange is sampled (the
//! request's `traceparent` says so); an unsampled request goes to every
//! member with the attempt's context, as before.

use std::time::SystemTime;

use sluice_core::exchange::RpcSummary;
use sluice_core::jsonrpc::meta::{self, MetaSpans};
use sluice_core::jsonrpc::{self, Classified};
use sluice_core::tracecontext::{SpanId, TraceParent};
use sluice_core::upstream::{AnswerHead, AnswerPart, Request};

use super::RouteFederation;
use crate::otel::{Span, Tracer, new_span_id};
use crate::proxy::trace::{MemberCall, member_span};

/// A member request under way.
struct Leg {
    member: usize,
    id: SpanId,
    start: SystemTime,
    rpc: Option<RpcSummary>,
    /// A failure heard before its end (a 5xx stream head).
    error: Option<String>,
}

/// The member spans of one federated request; what is left open when it
/// is dropped ends then, and every span goes to the tracer.
pub(super) struct MemberSpans<'r> {
    route: &'r RouteFederation,
    tracer: &'r Tracer,
    /// The attempt's context: the members' parent.
    parent: TraceParent,
    trace_state: Option<String>,
    legs: Vec<Option<Leg>>,
    done: Vec<Span>,
}

impl<'r> MemberSpans<'r> {
    /// `None` unless tracing is on and `req` carries one sampled
    /// `traceparent`.
    pub fn new(route: &'r RouteFederation, req: &Request) -> Option<Self> {
        let tracer = route.tracer.as_deref()?;
        let mut values = req.headers.iter().filter(|h| h.is("traceparent"));
        let parent = match (values.next(), values.next()) {
            (Some(h), None) => TraceParent::parse(&h.value)?,
            _ => return None,
        };
        if !parent.is_sampled() {
            return None;
        }
        let trace_state = req
            .headers
            .iter()
            .find(|h| h.is("tracestate"))
            .and_then(|h| std::str::from_utf8(&h.value).ok())
            .map(str::to_owned);
        Some(MemberSpans {
            route,
            tracer,
            parent,
            trace_state,
            legs: Vec::new(),
            done: Vec::new(),
        })
    }

    /// `req` goes to `member` as `leg`: its span begins, and the request
    /// names it as the parent.
    pub fn begin(&mut self, leg: usize, member: usize, req: &mut Request) {
        let id = new_span_id();
        let value = TraceParent {
            parent_id: id,
            ..self.parent
        }
        .write();
        for h in req.headers.iter_mut().filter(|h| h.is("traceparent")) {
            h.value = value.clone().into_bytes();
        }
        let (rpc, body) = match jsonrpc::classify(&req.body, &jsonrpc::Limits::default()) {
            Ok(Classified::Single(m)) => {
                let slot = MetaSpans::of(&req.body, &m).slot(&req.body, false);
                let body = slot.map(|slot| {
                    let mut out =
                        Vec::with_capacity(meta::written_len(req.body.len(), &slot, &value));
                    meta::write(&req.body, &slot, &value, &mut out);
                    out
                });
                (Some(RpcSummary::of(&m)), body)
            }
            _ => (None, None),
        };
        if let Some(body) = body {
            req.body = body.into();
        }
        if self.legs.len() <= leg {
            self.legs.resize_with(leg + 1, || None);
        }
        self.legs[leg] = Some(Leg {
            member,
            id,
            start: SystemTime::now(),
            rpc,
            error: None,
        });
    }

    /// A part of `leg`'s answer: a whole answer or a stream's end ends it.
    pub fn heard(&mut self, leg: usize, part: &AnswerPart) {
        match part {
            AnswerPart::Whole { head, .. } => self.end(leg, failed(head)),
            AnswerPart::Stream(head) => {
                if let Some(Some(l)) = self.legs.get_mut(leg) {
                    l.error = failed(head);
                }
            }
            AnswerPart::End => self.end(leg, None),
            _ => {}
        }
    }

    /// `leg` ended (`error`: how it failed), if it was still open.
    pub fn end(&mut self, leg: usize, error: Option<String>) {
        let Some(l) = self.legs.get_mut(leg).and_then(Option::take) else {
            return;
        };
        let route = self.route;
        let call = MemberCall {
            parent: &self.parent,
            trace_state: self.trace_state.clone(),
            id: l.id,
            start: l.start,
            rpc: l.rpc.as_ref(),
            route: &route.name,
            member: route.member_names.get(l.member).map_or("", String::as_str),
            address: route
                .addresses
                .get(l.member)
                .and_then(|a| a.as_ref())
                .map(|(h, p)| (h.as_str(), *p)),
        };
        self.done.push(member_span(call, error.or(l.error)));
    }
}

impl Drop for MemberSpans<'_> {
    fn drop(&mut self) {
        for leg in 0..self.legs.len() {
            self.end(leg, None);
        }
        self.tracer.submit(std::mem::take(&mut self.done));
    }
}

/// A member's 5xx, as the exchange span's `error.type` spells one.
fn failed(head: &AnswerHead) -> Option<String> {
    (head.status >= 500).then(|| head.status.to_string())
}
