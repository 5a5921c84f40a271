//! sluice hook (`sluice:hook@0.2.0`): what an MCP server may send the
//! client. It sees server-to-client messages only (`@server-message`).
//!
//! Config (the hook's config string), JSON:
//! `{"refuse": ["sampling/createMessage"], "redact": ["sk-"]}`
//! - `refuse` (default `["sampling/createMessage"]`): server requests the
//!   client never sees. The server gets the error -31002 "the client does not
//!   take <method> through this gateway" as the client's answer, and goes on
//!   without it (server-everything's `sampleLLM` tool reports the error).
//! - `redact` (default none): a log notification (`notifications/message`)
//!   whose text holds one of these strings reaches the client with its `data`
//!   replaced by "[redacted by sluice]".
//! - A config that does not parse refuses every server request and redacts
//!   every log notification (fail closed).

wit_bindgen::generate!({
    path: "wit",
    world: "sluice:hook/hook@0.2.0",
});

use exports::sluice::hook::handler::Guest;
use serde::Deserialize;
use serde_json::Value;
use sluice::hook::host;
use sluice::hook::types::{Context, Level, Message, RpcError, Verdict};

/// The code of a refusal: outside JSON-RPC's reserved range, as a hook's
/// own codes must be.
const REFUSED: i64 = -31002;

const LOG: &str = "notifications/message";

/// Every server request the MCP specification defines, for the fail-closed
/// policy.
const SERVER_REQUESTS: [&str; 4] = [
    "sampling/createMessage",
    "elicitation/create",
    "roots/list",
    "ping",
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Policy {
    #[serde(default = "default_refuse")]
    refuse: Vec<String>,
    #[serde(default)]
    redact: Vec<String>,
}

fn default_refuse() -> Vec<String> {
    vec!["sampling/createMessage".to_owned()]
}

impl Policy {
    fn load() -> Policy {
        let text = host::config();
        if text.trim().is_empty() {
            return Policy {
                refuse: default_refuse(),
                redact: Vec::new(),
            };
        }
        serde_json::from_str(&text).unwrap_or_else(|e| {
            host::log(
                Level::Error,
                &format!("bad server-guard config, refusing everything: {e}"),
            );
            Policy {
                refuse: SERVER_REQUESTS.iter().map(|m| (*m).to_owned()).collect(),
                // The empty string is in every text.
                redact: vec![String::new()],
            }
        })
    }
}

struct ServerGuard;

impl Guest for ServerGuard {
    fn methods() -> Vec<String> {
        let policy = Policy::load();
        let mut methods: Vec<String> = policy
            .refuse
            .iter()
            .map(|m| format!("{m}@server-message"))
            .collect();
        if !policy.redact.is_empty() {
            methods.push(format!("{LOG}@server-message"));
        }
        methods
    }

    fn on_request(_ctx: Context, _request: Message) -> Verdict {
        Verdict::Continue
    }

    fn on_response(_ctx: Context, _request: Message, _response: Message) -> Verdict {
        Verdict::Continue
    }

    fn on_server_message(ctx: Context, message: Message) -> Verdict {
        let policy = Policy::load();
        if message.method == LOG {
            return redact(&message.json, &policy.redact);
        }
        if policy.refuse.iter().any(|m| *m == message.method) {
            host::log(
                Level::Info,
                &format!(
                    "refused {} from {} (session {})",
                    message.method,
                    ctx.upstream,
                    ctx.session_id.as_deref().unwrap_or("-")
                ),
            );
            return Verdict::Reject(RpcError {
                code: REFUSED,
                message: format!(
                    "the client does not take {} through this gateway",
                    message.method
                ),
                data: None,
            });
        }
        Verdict::Continue
    }

    fn on_client_answer(_ctx: Context, _request: Message, _answer: Message) -> Verdict {
        Verdict::Continue
    }
}

/// The log notification `json` with its `data` replaced when its text holds
/// one of `secrets`.
fn redact(json: &str, secrets: &[String]) -> Verdict {
    if !secrets.iter().any(|s| json.contains(s.as_str())) {
        return Verdict::Continue;
    }
    let Ok(mut note) = serde_json::from_str::<Value>(json) else {
        // The proxy hands over only JSON it read; fail closed all the same.
        return Verdict::Reject(RpcError {
            code: REFUSED,
            message: "unreadable log notification".to_owned(),
            data: None,
        });
    };
    if let Some(params) = note.get_mut("params").and_then(Value::as_object_mut) {
        params.insert("data".to_owned(), Value::from("[redacted by sluice]"));
    }
    Verdict::Replace(note.to_string())
}

export!(ServerGuard);
