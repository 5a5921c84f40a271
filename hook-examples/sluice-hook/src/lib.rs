//! Write [sluice](https://github.com/) hooks in Rust.
//!
//! A hook is a type that implements [`Hook`]; [`export_hook!`] turns it into
//! the `sluice:hook@0.2.0` component's exports. Messages come as [`Message`]
//! (the method and the exact JSON text, with typed views:
//! [`Message::tool_call`], [`Message::tools`], [`Message::result`], …) and
//! verdicts are built with [`Verdict`]'s constructors. [`testing`] runs a
//! hook natively, in `cargo test`, with the config and the caller you give
//! it, and hands back the verdict and the log lines.
//!
//! ```ignore
//! use sluice_hook::{Context, Hook, Message, Verdict, export_hook};
//!
//! struct NoDelete;
//!
//! impl Hook for NoDelete {
//!     fn methods() -> Vec<String> {
//!         vec!["tools/call@request".into()]
//!     }
//!
//!     fn on_request(_ctx: &Context, request: &Message) -> Verdict {
//!         match request.tool_call() {
//!             Some(call) if call.name.starts_with("delete") => {
//!                 Verdict::reject(-31001, format!("{} is not allowed", call.name))
//!             }
//!             _ => Verdict::Continue,
//!         }
//!     }
//! }
//!
//! export_hook!(NoDelete);
//! ```
//!
//! The WIT the bindings come from is sluice's own (`wit/` is a link to it),
//! so the SDK can never disagree with the proxy about the contract. A hook
//! written against the bare WIT keeps working: the SDK only wraps it.

extern crate self as sluice_hook;

use serde_json::Value;

pub use serde_json::{self, json};

/// The raw bindings of `sluice:hook@0.2.0`, for what the SDK does not wrap.
pub mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "sluice:hook/hook@0.2.0",
        pub_export_macro: true,
        export_macro_name: "export_raw",
        default_bindings_module: "sluice_hook::bindings",
        runtime_path: "sluice_hook::__private::wit_bindgen::rt",
    });
}

mod message;
pub mod testing;

pub use message::{Message, RpcError, ToolCall};

/// A hook. Every handler but [`Hook::methods`] has a default that lets the
/// message through, so a hook implements only the phases it asks for.
pub trait Hook {
    /// The methods this hook wants, with an optional phase suffix:
    /// `"tools/call"`, `"tools/*"`, `"*"`, `"tools/call@request"`,
    /// `"sampling/createMessage@server-message"` (docs/HOOKS.md, "The
    /// contract"). Called once, when the proxy loads the hook; the config
    /// ([`host::config`]) is readable already.
    fn methods() -> Vec<String>;

    /// A client request or notification, before it goes upstream.
    fn on_request(ctx: &Context, request: &Message) -> Verdict {
        let _ = (ctx, request);
        Verdict::Continue
    }

    /// The upstream's answer to `request` (as it was forwarded), before it
    /// goes to the client.
    fn on_response(ctx: &Context, request: &Message, response: &Message) -> Verdict {
        let _ = (ctx, request, response);
        Verdict::Continue
    }

    /// A server request or notification, before it goes to the client. On a
    /// request, [`Verdict::Reject`] and [`Verdict::Respond`] answer the
    /// server and the client never sees it; on a notification a rejection
    /// drops it.
    fn on_server_message(ctx: &Context, message: &Message) -> Verdict {
        let _ = (ctx, message);
        Verdict::Continue
    }

    /// The client's answer to the server's `request`, before it goes to the
    /// server. Every verdict sends the server something: the answer as it
    /// is ([`Verdict::Continue`]) or replaced, or, for
    /// [`Verdict::Reject`] and [`Verdict::Respond`], that error or result
    /// in its stead.
    fn on_client_answer(ctx: &Context, request: &Message, answer: &Message) -> Verdict {
        let _ = (ctx, request, answer);
        Verdict::Continue
    }
}

/// Which way the message travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// A client request or notification.
    Request,
    /// The upstream's answer to a client request.
    Response,
    /// A server request or notification.
    ServerMessage,
    /// The client's answer to a server request.
    ClientAnswer,
}

/// How the route established who is calling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// A JWT checked against the issuer's keys.
    Jwt,
    /// An opaque token the authorization server introspected.
    Introspection,
    /// An API key of the route's config.
    ApiKey,
}

/// Who is calling, on a route with `[route.auth]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    /// How it was established.
    pub scheme: Scheme,
    /// The token's `sub` (else its client id); an API key's `subject`.
    pub subject: String,
    /// The token's `iss`.
    pub issuer: Option<String>,
    /// The token's `client_id` (else `azp`).
    pub client_id: Option<String>,
    /// The scopes granted.
    pub scopes: Vec<String>,
    /// The token's claims, as the issuer wrote them; none for an API key.
    pub claims: Option<Value>,
}

impl Identity {
    /// Whether the caller holds `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }

    /// The claim `name`, if the token has it.
    pub fn claim(&self, name: &str) -> Option<&Value> {
        self.claims.as_ref()?.get(name)
    }
}

/// What the host knows about the exchange a message belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct Context {
    /// The client's `Mcp-Session-Id`.
    pub session_id: Option<String>,
    /// The client's `MCP-Protocol-Version`.
    pub protocol_version: Option<String>,
    /// The route's name.
    pub upstream: String,
    /// The request headers the operator lets this hook see, lower-case
    /// names in arrival order.
    pub headers: Vec<(String, String)>,
    /// Which call this is.
    pub phase: Phase,
    /// The caller, when the route authenticates its clients.
    pub identity: Option<Identity>,
}

impl Context {
    /// A context for `phase` with nothing else known (tests start here).
    pub fn new(phase: Phase) -> Context {
        Context {
            session_id: None,
            protocol_version: None,
            upstream: "upstream".to_owned(),
            headers: Vec::new(),
            phase,
            identity: None,
        }
    }

    /// The first value of the header `name` (any case), if the hook may see it.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What the proxy should do with the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Let it through unchanged.
    Continue,
    /// Send this JSON-RPC message instead (same kind, method and id).
    Replace(String),
    /// Stop it and answer with this JSON-RPC error.
    Reject(RpcError),
    /// Stop it and answer with a result of this JSON text.
    Respond(String),
}

impl Verdict {
    /// Stop the message with error `code` (outside -32768..=-32000, or one
    /// of JSON-RPC's predefined codes) and `message`.
    pub fn reject(code: i64, message: impl Into<String>) -> Verdict {
        Verdict::Reject(RpcError {
            code,
            message: message.into(),
            data: None,
        })
    }

    /// A rejection with `data` attached (a [`Verdict::Reject`]; anything
    /// else is returned as it is).
    pub fn with_data(self, data: &Value) -> Verdict {
        match self {
            Verdict::Reject(mut e) => {
                e.data = Some(data.to_string());
                Verdict::Reject(e)
            }
            other => other,
        }
    }

    /// Send `message` (a whole JSON-RPC message) instead.
    pub fn replace(message: &Value) -> Verdict {
        Verdict::Replace(message.to_string())
    }

    /// Answer with `result`.
    pub fn respond(result: &Value) -> Verdict {
        Verdict::Respond(result.to_string())
    }
}

/// The services the proxy gives every hook.
pub mod host {
    pub use crate::testing::Level;

    /// The hook's configuration string, as the operator wrote it.
    pub fn config() -> String {
        #[cfg(target_arch = "wasm32")]
        {
            crate::bindings::sluice::hook::host::config()
        }
        #[cfg(not(target_arch = "wasm32"))]
        {
            crate::testing::native_config()
        }
    }

    /// A line in the proxy's log, attributed to the hook.
    pub fn log(level: Level, message: &str) {
        #[cfg(target_arch = "wasm32")]
        {
            use crate::bindings::sluice::hook::types::Level as L;
            let level = match level {
                Level::Trace => L::Trace,
                Level::Debug => L::Debug,
                Level::Info => L::Info,
                Level::Warn => L::Warn,
                Level::Error => L::Error,
            };
            crate::bindings::sluice::hook::host::log(level, message)
        }
        #[cfg(not(target_arch = "wasm32"))]
        {
            crate::testing::native_log(level, message)
        }
    }

    /// [`log`] at `info`.
    pub fn info(message: &str) {
        log(Level::Info, message)
    }

    /// [`log`] at `warn`.
    pub fn warn(message: &str) {
        log(Level::Warn, message)
    }
}

/// Turn the [`Hook`] `$hook` into the component's exports.
#[macro_export]
macro_rules! export_hook {
    ($hook:ty) => {
        struct __SluiceHookExports;

        impl $crate::bindings::exports::sluice::hook::handler::Guest for __SluiceHookExports {
            fn methods() -> ::std::vec::Vec<::std::string::String> {
                <$hook as $crate::Hook>::methods()
            }

            fn on_request(
                ctx: $crate::bindings::sluice::hook::types::Context,
                request: $crate::bindings::sluice::hook::types::Message,
            ) -> $crate::bindings::sluice::hook::types::Verdict {
                let ctx = $crate::__private::context(ctx);
                let request = $crate::__private::message(request);
                $crate::__private::verdict(<$hook as $crate::Hook>::on_request(&ctx, &request))
            }

            fn on_response(
                ctx: $crate::bindings::sluice::hook::types::Context,
                request: $crate::bindings::sluice::hook::types::Message,
                response: $crate::bindings::sluice::hook::types::Message,
            ) -> $crate::bindings::sluice::hook::types::Verdict {
                let ctx = $crate::__private::context(ctx);
                let request = $crate::__private::message(request);
                let response = $crate::__private::message(response);
                $crate::__private::verdict(<$hook as $crate::Hook>::on_response(
                    &ctx, &request, &response,
                ))
            }

            fn on_server_message(
                ctx: $crate::bindings::sluice::hook::types::Context,
                message: $crate::bindings::sluice::hook::types::Message,
            ) -> $crate::bindings::sluice::hook::types::Verdict {
                let ctx = $crate::__private::context(ctx);
                let message = $crate::__private::message(message);
                $crate::__private::verdict(<$hook as $crate::Hook>::on_server_message(
                    &ctx, &message,
                ))
            }

            fn on_client_answer(
                ctx: $crate::bindings::sluice::hook::types::Context,
                request: $crate::bindings::sluice::hook::types::Message,
                answer: $crate::bindings::sluice::hook::types::Message,
            ) -> $crate::bindings::sluice::hook::types::Verdict {
                let ctx = $crate::__private::context(ctx);
                let request = $crate::__private::message(request);
                let answer = $crate::__private::message(answer);
                $crate::__private::verdict(<$hook as $crate::Hook>::on_client_answer(
                    &ctx, &request, &answer,
                ))
            }
        }

        $crate::bindings::export_raw!(__SluiceHookExports with_types_in $crate::bindings);
    };
}

/// What [`export_hook!`] expands to calls; not part of the API.
#[doc(hidden)]
pub mod __private {
    use crate::bindings::sluice::hook::types as wit;

    pub use wit_bindgen;

    pub fn context(ctx: wit::Context) -> crate::Context {
        crate::Context {
            session_id: ctx.session_id,
            protocol_version: ctx.protocol_version,
            upstream: ctx.upstream,
            headers: ctx.headers,
            phase: match ctx.phase {
                wit::Phase::Request => crate::Phase::Request,
                wit::Phase::Response => crate::Phase::Response,
                wit::Phase::ServerMessage => crate::Phase::ServerMessage,
                wit::Phase::ClientAnswer => crate::Phase::ClientAnswer,
            },
            identity: ctx.identity.map(|id| crate::Identity {
                scheme: match id.scheme {
                    wit::Scheme::Jwt => crate::Scheme::Jwt,
                    wit::Scheme::Introspection => crate::Scheme::Introspection,
                    wit::Scheme::ApiKey => crate::Scheme::ApiKey,
                },
                subject: id.subject,
                issuer: id.issuer,
                client_id: id.client_id,
                scopes: id.scopes,
                claims: id.claims.and_then(|c| serde_json::from_str(&c).ok()),
            }),
        }
    }

    pub fn message(m: wit::Message) -> crate::Message {
        crate::Message::new(m.method, m.json)
    }

    pub fn verdict(v: crate::Verdict) -> wit::Verdict {
        match v {
            crate::Verdict::Continue => wit::Verdict::Continue,
            crate::Verdict::Replace(json) => wit::Verdict::Replace(json),
            crate::Verdict::Reject(e) => wit::Verdict::Reject(wit::RpcError {
                code: e.code,
                message: e.message,
                data: e.data,
            }),
            crate::Verdict::Respond(json) => wit::Verdict::Respond(json),
        }
    }
}
