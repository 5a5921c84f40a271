//! The published `sluice:hook` worlds, behind one face: a component is
//! loaded as the newest world it implements, and called through
//! [`Instance`] with a world-neutral [`CallContext`]. Verdicts come back in
//! the 0.1.0 shape, which 0.2.0 kept.

use sluice_core::auth::{Identity, Scheme};
use sluice_core::exchange::HookPhase;
use wasmtime::Store;
use wasmtime::component::{Component, HasSelf, Linker};

use super::bindings::{v1, v2};
use super::{HostState, LogLevel, MAX_LOG_LINE};

/// What the host hands a guest with every call, whatever its world.
pub(crate) struct CallContext<'a> {
    pub session_id: Option<&'a str>,
    pub protocol_version: Option<&'a str>,
    pub upstream: &'a str,
    pub headers: Vec<(String, String)>,
    pub phase: HookPhase,
    pub identity: Option<&'a Identity>,
}

/// A verdict, as every world spells it.
pub(crate) type Verdict = v1::sluice::hook::types::Verdict;

/// A compiled component, ready to instantiate in its world.
pub(crate) enum Pre {
    V1(v1::HookPre<HostState>),
    V2(v2::HookPre<HostState>),
}

/// One instance of a hook.
pub(crate) enum Instance {
    V1(v1::Hook),
    V2(v2::Hook),
}

impl Pre {
    /// `component` in the newest world it implements, with the error of
    /// the newest when it implements none.
    pub(crate) fn new(linker: &Linker<HostState>, component: &Component) -> anyhow::Result<Pre> {
        let pre = linker.instantiate_pre(component)?;
        match v2::HookPre::new(pre.clone()) {
            Ok(v2) => Ok(Pre::V2(v2)),
            Err(newest) => v1::HookPre::new(pre).map(Pre::V1).map_err(|_| {
                anyhow::Error::from(newest).context(
                    "the component implements neither sluice:hook/hook@0.2.0 nor sluice:hook/hook@0.1.0",
                )
            }),
        }
    }

    /// The world's package, for the log.
    pub(crate) fn world(&self) -> &'static str {
        match self {
            Pre::V1(_) => "sluice:hook@0.1.0",
            Pre::V2(_) => "sluice:hook@0.2.0",
        }
    }

    /// Whether its world has the server-to-client phases.
    pub(crate) fn has_server_phases(&self) -> bool {
        matches!(self, Pre::V2(_))
    }

    pub(crate) fn engine(&self) -> &wasmtime::Engine {
        match self {
            Pre::V1(p) => p.engine(),
            Pre::V2(p) => p.engine(),
        }
    }

    pub(crate) fn instantiate(&self, store: &mut Store<HostState>) -> wasmtime::Result<Instance> {
        Ok(match self {
            Pre::V1(p) => Instance::V1(p.instantiate(store)?),
            Pre::V2(p) => Instance::V2(p.instantiate(store)?),
        })
    }
}

impl Instance {
    pub(crate) fn methods(&self, store: &mut Store<HostState>) -> wasmtime::Result<Vec<String>> {
        match self {
            Instance::V1(h) => h.sluice_hook_handler().call_methods(store),
            Instance::V2(h) => h.sluice_hook_handler().call_methods(store),
        }
    }

    /// The handler of `ctx.phase`: `on-request` or `on-server-message` with
    /// `message`; `on-response` or `on-client-answer` with `request` and
    /// `message`.
    pub(crate) fn on_message(
        &self,
        store: &mut Store<HostState>,
        ctx: &CallContext<'_>,
        method: &str,
        request: Option<&str>,
        message: &str,
    ) -> wasmtime::Result<Verdict> {
        match self {
            Instance::V1(h) => {
                use v1::sluice::hook::types as t;
                let phase = match ctx.phase {
                    HookPhase::Request => t::Phase::Request,
                    HookPhase::Response => t::Phase::Response,
                    // The load refuses a 0.1.0 hook that asks for these.
                    HookPhase::ServerMessage | HookPhase::ClientAnswer => {
                        return Err(wasmtime::format_err!(
                            "a sluice:hook@0.1.0 hook has no server-to-client phases"
                        ));
                    }
                };
                let wit = t::Context {
                    session_id: ctx.session_id.map(str::to_owned),
                    protocol_version: ctx.protocol_version.map(str::to_owned),
                    upstream: ctx.upstream.to_owned(),
                    headers: ctx.headers.clone(),
                    phase,
                };
                let msg = |json: &str| t::Message {
                    method: method.to_owned(),
                    json: json.to_owned(),
                };
                let g = h.sluice_hook_handler();
                match request {
                    None => g.call_on_request(store, &wit, &msg(message)),
                    Some(req) => g.call_on_response(store, &wit, &msg(req), &msg(message)),
                }
            }
            Instance::V2(h) => {
                use v2::sluice::hook::types as t;
                let wit = t::Context {
                    session_id: ctx.session_id.map(str::to_owned),
                    protocol_version: ctx.protocol_version.map(str::to_owned),
                    upstream: ctx.upstream.to_owned(),
                    headers: ctx.headers.clone(),
                    phase: match ctx.phase {
                        HookPhase::Request => t::Phase::Request,
                        HookPhase::Response => t::Phase::Response,
                        HookPhase::ServerMessage => t::Phase::ServerMessage,
                        HookPhase::ClientAnswer => t::Phase::ClientAnswer,
                    },
                    identity: ctx.identity.map(identity),
                };
                let msg = |json: &str| t::Message {
                    method: method.to_owned(),
                    json: json.to_owned(),
                };
                let g = h.sluice_hook_handler();
                let verdict = match (ctx.phase, request) {
                    (HookPhase::ServerMessage, _) => {
                        g.call_on_server_message(store, &wit, &msg(message))?
                    }
                    (HookPhase::ClientAnswer, Some(req)) => {
                        g.call_on_client_answer(store, &wit, &msg(req), &msg(message))?
                    }
                    (_, None) => g.call_on_request(store, &wit, &msg(message))?,
                    (_, Some(req)) => g.call_on_response(store, &wit, &msg(req), &msg(message))?,
                };
                Ok(from_v2(verdict))
            }
        }
    }
}

/// The caller as 0.2.0 hands it to a guest.
fn identity(id: &Identity) -> v2::sluice::hook::types::Identity {
    use v2::sluice::hook::types as t;
    t::Identity {
        scheme: match id.scheme {
            Scheme::Jwt => t::Scheme::Jwt,
            Scheme::Introspection => t::Scheme::Introspection,
            Scheme::ApiKey => t::Scheme::ApiKey,
        },
        subject: id.subject.clone(),
        issuer: id.issuer.clone(),
        client_id: id.client_id.clone(),
        scopes: id.scopes.clone(),
        claims: id
            .claims
            .as_ref()
            .map(|c| serde_json::to_string(c).unwrap_or_else(|_| "{}".to_owned())),
    }
}

fn from_v2(verdict: v2::sluice::hook::types::Verdict) -> Verdict {
    use v1::sluice::hook::types as old;
    use v2::sluice::hook::types as new;
    match verdict {
        new::Verdict::Continue => Verdict::Continue,
        new::Verdict::Replace(json) => Verdict::Replace(json),
        new::Verdict::Reject(e) => Verdict::Reject(old::RpcError {
            code: e.code,
            message: e.message,
            data: e.data,
        }),
        new::Verdict::Respond(json) => Verdict::Respond(json),
    }
}

/// The host interfaces of every world.
pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> anyhow::Result<()> {
    v1::Hook::add_to_linker::<HostState, HasSelf<HostState>>(linker, |s| s)?;
    v2::Hook::add_to_linker::<HostState, HasSelf<HostState>>(linker, |s| s)?;
    Ok(())
}

impl HostState {
    fn log_line(&mut self, level: LogLevel, message: &str) {
        let mut end = message.len().min(MAX_LOG_LINE);
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        (self.shared.log)(&self.shared.name, level, &message[..end]);
    }

    fn config_text(&self) -> String {
        self.shared.config.clone()
    }
}

macro_rules! host_services {
    ($world:ident) => {
        impl $world::sluice::hook::types::Host for HostState {}

        impl $world::sluice::hook::host::Host for HostState {
            fn log(&mut self, level: $world::sluice::hook::types::Level, message: String) {
                use $world::sluice::hook::types::Level;
                let level = match level {
                    Level::Trace => LogLevel::Trace,
                    Level::Debug => LogLevel::Debug,
                    Level::Info => LogLevel::Info,
                    Level::Warn => LogLevel::Warn,
                    Level::Error => LogLevel::Error,
                };
                self.log_line(level, &message);
            }

            fn config(&mut self) -> String {
                self.config_text()
            }
        }
    };
}

host_services!(v1);
host_services!(v2);
