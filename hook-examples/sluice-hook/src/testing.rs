//! Run a hook natively, in `cargo test`: the config it reads and the caller
//! it sees are yours to give, and the log lines it writes come back with
//! its verdict. (Compiled for wasm32, a hook talks to the proxy instead;
//! `sluice hook test FILE.wasm` runs the component itself offline.)
//!
//! ```ignore
//! let out = sluice_hook::testing::Call::new()
//!     .config(r#"{"deny": ["delete_file"]}"#)
//!     .request::<MyHook>(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_file"}}"#);
//! assert!(matches!(out.verdict, Verdict::Reject(_)));
//! ```

#![cfg_attr(target_arch = "wasm32", allow(dead_code))]

use std::cell::RefCell;

use crate::{Context, Hook, Identity, Message, Phase, Verdict};

/// Severity of a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Very detailed tracing.
    Trace,
    /// Diagnostic detail.
    Debug,
    /// Normal operational information.
    Info,
    /// Something unexpected the hook worked around.
    Warn,
    /// Something failed.
    Error,
}

#[derive(Default)]
struct Host {
    config: String,
    logs: Vec<(Level, String)>,
}

thread_local! {
    static HOST: RefCell<Host> = RefCell::default();
}

pub(crate) fn native_config() -> String {
    HOST.with(|h| h.borrow().config.clone())
}

pub(crate) fn native_log(level: Level, message: &str) {
    HOST.with(|h| h.borrow_mut().logs.push((level, message.to_owned())));
}

/// What a hook did with one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Its verdict.
    pub verdict: Verdict,
    /// The lines it logged meanwhile.
    pub logs: Vec<(Level, String)>,
}

/// One call of a hook, set up as the proxy would.
#[derive(Debug, Clone)]
pub struct Call {
    config: String,
    ctx: Context,
}

impl Default for Call {
    fn default() -> Call {
        Call::new()
    }
}

impl Call {
    /// No config, no session, no caller.
    pub fn new() -> Call {
        Call {
            config: String::new(),
            ctx: Context::new(Phase::Request),
        }
    }

    /// The hook's config string.
    pub fn config(mut self, text: &str) -> Call {
        self.config = text.to_owned();
        self
    }

    /// The caller.
    pub fn identity(mut self, identity: Identity) -> Call {
        self.ctx.identity = Some(identity);
        self
    }

    /// The client's session id.
    pub fn session(mut self, id: &str) -> Call {
        self.ctx.session_id = Some(id.to_owned());
        self
    }

    /// A request header the hook may see.
    pub fn header(mut self, name: &str, value: &str) -> Call {
        self.ctx
            .headers
            .push((name.to_ascii_lowercase(), value.to_owned()));
        self
    }

    /// `H::methods()` under this call's config.
    pub fn methods<H: Hook>(&self) -> Vec<String> {
        self.with_host(H::methods).0
    }

    /// `H::on_request` on the client's `request`.
    pub fn request<H: Hook>(&self, request: &str) -> Outcome {
        let request = message(request, None);
        let ctx = self.phase(Phase::Request);
        self.outcome(|| H::on_request(&ctx, &request))
    }

    /// `H::on_response` on the upstream's `response` to `request`.
    pub fn response<H: Hook>(&self, request: &str, response: &str) -> Outcome {
        let request = message(request, None);
        let response = message(response, Some(request.method()));
        let ctx = self.phase(Phase::Response);
        self.outcome(|| H::on_response(&ctx, &request, &response))
    }

    /// `H::on_server_message` on a server request or notification.
    pub fn server_message<H: Hook>(&self, message_json: &str) -> Outcome {
        let m = message(message_json, None);
        let ctx = self.phase(Phase::ServerMessage);
        self.outcome(|| H::on_server_message(&ctx, &m))
    }

    /// `H::on_client_answer` on the client's `answer` to the server's `request`.
    pub fn client_answer<H: Hook>(&self, request: &str, answer: &str) -> Outcome {
        let request = message(request, None);
        let answer = message(answer, Some(request.method()));
        let ctx = self.phase(Phase::ClientAnswer);
        self.outcome(|| H::on_client_answer(&ctx, &request, &answer))
    }

    fn phase(&self, phase: Phase) -> Context {
        Context {
            phase,
            ..self.ctx.clone()
        }
    }

    fn outcome(&self, run: impl FnOnce() -> Verdict) -> Outcome {
        let (verdict, logs) = self.with_host(run);
        Outcome { verdict, logs }
    }

    fn with_host<T>(&self, run: impl FnOnce() -> T) -> (T, Vec<(Level, String)>) {
        HOST.with(|h| {
            *h.borrow_mut() = Host {
                config: self.config.clone(),
                logs: Vec::new(),
            }
        });
        let out = run();
        let logs = HOST.with(|h| std::mem::take(&mut h.borrow_mut().logs));
        (out, logs)
    }
}

/// `json` as a message; its method is its own `method`, else `method`.
fn message(json: &str, method: Option<&str>) -> Message {
    let own = serde_json::from_str::<serde_json::Value>(json)
        .ok()
        .and_then(|v| v.get("method")?.as_str().map(str::to_owned));
    Message::new(own.or(method.map(str::to_owned)).unwrap_or_default(), json)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Scheme, host, json};

    struct Guard;

    impl Hook for Guard {
        fn methods() -> Vec<String> {
            let mut m = vec![
                "tools/call@request".to_owned(),
                "tools/list@response".to_owned(),
            ];
            if host::config().contains("sampling") {
                m.push("sampling/createMessage@server-message".to_owned());
            }
            m
        }

        fn on_request(ctx: &Context, request: &Message) -> Verdict {
            let Some(call) = request.tool_call() else {
                return Verdict::Continue;
            };
            let admin = ctx.identity.as_ref().is_some_and(|i| i.has_scope("admin"));
            if call.name == "deploy" && !admin {
                host::info(&format!("refused deploy for {:?}", ctx.session_id));
                return Verdict::reject(-31001, "deploy needs the admin scope")
                    .with_data(&json!({"tool": call.name}));
            }
            if call.arguments.get("path").is_some() {
                return request.edited(|m| m["params"]["arguments"]["path"] = json!("/sandbox"));
            }
            Verdict::Continue
        }

        fn on_response(_: &Context, _: &Message, response: &Message) -> Verdict {
            response.keep_tools(|t| t["name"] != "deploy")
        }

        fn on_server_message(_: &Context, m: &Message) -> Verdict {
            Verdict::reject(-31002, format!("no {}", m.method()))
        }
    }

    const DEPLOY: &str =
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"deploy"}}"#;

    fn admin() -> Identity {
        Identity {
            scheme: Scheme::ApiKey,
            subject: "ops".into(),
            issuer: None,
            client_id: None,
            scopes: vec!["admin".into()],
            claims: None,
        }
    }

    #[test]
    fn a_hook_runs_natively_with_its_config_caller_and_log() {
        let out = Call::new().session("s-1").request::<Guard>(DEPLOY);
        assert_eq!(
            out.verdict,
            Verdict::Reject(crate::RpcError {
                code: -31001,
                message: "deploy needs the admin scope".into(),
                data: Some(r#"{"tool":"deploy"}"#.into()),
            })
        );
        assert_eq!(
            out.logs,
            [(Level::Info, "refused deploy for Some(\"s-1\")".to_owned())]
        );
        let out = Call::new().identity(admin()).request::<Guard>(DEPLOY);
        assert_eq!(out.verdict, Verdict::Continue);
        assert!(out.logs.is_empty());

        assert_eq!(Call::new().methods::<Guard>().len(), 2);
        assert_eq!(Call::new().config("sampling").methods::<Guard>().len(), 3);
    }

    #[test]
    fn typed_views_and_edits() {
        let call = r#"{"jsonrpc":"2.0","id":"a","method":"tools/call","params":{"name":"read","arguments":{"path":"/etc"}}}"#;
        let out = Call::new().request::<Guard>(call);
        let Verdict::Replace(new) = out.verdict else {
            panic!("{:?}", out.verdict)
        };
        let new: serde_json::Value = serde_json::from_str(&new).unwrap();
        assert_eq!(new["id"], "a");
        assert_eq!(new["params"]["arguments"]["path"], "/sandbox");

        let list =
            r#"{"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"read"},{"name":"deploy"}]}}"#;
        let req = r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#;
        let Verdict::Replace(kept) = Call::new().response::<Guard>(req, list).verdict else {
            panic!("deploy is hidden")
        };
        assert_eq!(Message::new("tools/list", kept).tools().unwrap().len(), 1);
        let only_read = r#"{"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"read"}]}}"#;
        assert_eq!(
            Call::new().response::<Guard>(req, only_read).verdict,
            Verdict::Continue
        );

        let m = Message::new(
            "tools/call",
            r#"{"jsonrpc":"2.0","id":3,"result":{"content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}}"#,
        );
        assert_eq!(m.text().as_deref(), Some("a\nb"));
        let e = Message::new(
            "x",
            r#"{"jsonrpc":"2.0","id":3,"error":{"code":-1,"message":"no"}}"#,
        );
        assert_eq!(e.error().unwrap().message, "no");
    }

    #[test]
    fn server_messages() {
        let sampling = r#"{"jsonrpc":"2.0","id":0,"method":"sampling/createMessage","params":{}}"#;
        let out = Call::new().server_message::<Guard>(sampling);
        assert_eq!(
            out.verdict,
            Verdict::reject(-31002, "no sampling/createMessage")
        );
    }
}
