//! sluice hook (`sluice:hook@0.2.0`, on the `sluice-hook` SDK): what an MCP
//! server may send the client. It sees server-to-client messages only
//! (`@server-message`).
//!
//! Config (the hook's config string), JSON:
//! `{"refuse": ["sampling/createMessage"], "redact": ["sk-"]}`
//! - `refuse` (default `["sampling/createMessage"]`): server requests the
//!   client never sees. The server gets the error -31002 "the client does not
//!   take <method> through this gateway" as the client's answer, and goes on
//!   without it (server-everything's sampling tool reports the error).
//! - `redact` (default none): a log notification (`notifications/message`)
//!   whose text holds one of these strings reaches the client with its `data`
//!   replaced by "[redacted by sluice]".
//! - `withhold` (default none): a client's answer to a server request
//!   (`elicitation/create`, `sampling/createMessage`, `roots/list`) whose text
//!   holds one of these strings goes to the server as the error -31004
//!   instead (`@client-answer`).
//! - A config that does not parse refuses every server request and redacts
//!   every log notification (fail closed).

use serde::Deserialize;
use sluice_hook::{Context, Hook, Message, Verdict, export_hook, host, json};

const REFUSED: i64 = -31002;
const LOG: &str = "notifications/message";
/// Every server request MCP defines, for the fail-closed policy.
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
    #[serde(default)]
    withhold: Vec<String>,
}

fn default_refuse() -> Vec<String> {
    vec!["sampling/createMessage".to_owned()]
}

impl Policy {
    fn load() -> Policy {
        let text = host::config();
        let text = if text.trim().is_empty() { "{}" } else { &text };
        sluice_hook::serde_json::from_str(text).unwrap_or_else(|e| {
            host::log(
                host::Level::Error,
                &format!("bad server-guard config, refusing everything: {e}"),
            );
            Policy {
                refuse: SERVER_REQUESTS.map(str::to_owned).to_vec(),
                redact: vec![String::new()], // in every text
                withhold: Vec::new(),
            }
        })
    }
}

struct ServerGuard;

impl Hook for ServerGuard {
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
        if !policy.withhold.is_empty() {
            let answered = SERVER_REQUESTS
                .iter()
                .filter(|m| !policy.refuse.iter().any(|r| r == *m));
            methods.extend(answered.map(|m| format!("{m}@client-answer")));
        }
        methods
    }

    fn on_server_message(ctx: &Context, message: &Message) -> Verdict {
        let policy = Policy::load();
        if message.method() == LOG {
            if !policy
                .redact
                .iter()
                .any(|s| message.json().contains(s.as_str()))
            {
                return Verdict::Continue;
            }
            return message.edited(|note| note["params"]["data"] = json!("[redacted by sluice]"));
        }
        if !policy.refuse.iter().any(|m| m == message.method()) {
            return Verdict::Continue;
        }
        let session = ctx.session_id.as_deref().unwrap_or("-");
        host::info(&format!(
            "refused {} from {} (session {session})",
            message.method(),
            ctx.upstream
        ));
        Verdict::reject(
            REFUSED,
            format!(
                "the client does not take {} through this gateway",
                message.method()
            ),
        )
    }

    fn on_client_answer(_ctx: &Context, request: &Message, answer: &Message) -> Verdict {
        let policy = Policy::load();
        match policy
            .withhold
            .iter()
            .find(|s| answer.json().contains(s.as_str()))
        {
            Some(_) => {
                host::info(&format!("withheld an answer to {}", request.method()));
                Verdict::reject(
                    -31004,
                    "the client's answer held something this gateway does not let through",
                )
            }
            None => Verdict::Continue,
        }
    }
}

export_hook!(ServerGuard);

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_hook::testing::Call;

    const SAMPLING: &str =
        r#"{"jsonrpc":"2.0","id":0,"method":"sampling/createMessage","params":{}}"#;
    const NOTE: &str = r#"{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"sk-123"}}"#;

    #[test]
    fn refuses_sampling_and_redacts_logs() {
        let call = Call::new().config(r#"{"redact": ["sk-"]}"#);
        assert_eq!(call.methods::<ServerGuard>().len(), 2);
        let out = call.server_message::<ServerGuard>(SAMPLING);
        assert!(matches!(out.verdict, Verdict::Reject(e) if e.code == REFUSED));
        assert_eq!(out.logs.len(), 1);
        let Verdict::Replace(note) = call.server_message::<ServerGuard>(NOTE).verdict else {
            panic!("redacted")
        };
        assert!(note.contains("[redacted by sluice]") && !note.contains("sk-123"));
    }

    #[test]
    fn a_bad_config_fails_closed() {
        let call = Call::new().config("not json");
        assert_eq!(
            call.methods::<ServerGuard>().len(),
            SERVER_REQUESTS.len() + 1
        );
        assert!(matches!(
            call.server_message::<ServerGuard>(NOTE).verdict,
            Verdict::Replace(_)
        ));
    }

    #[test]
    fn withholds_answers_that_hold_a_secret() {
        let call = Call::new().config(r#"{"withhold": ["secret"]}"#);
        let methods = call.methods::<ServerGuard>();
        assert!(methods.contains(&"elicitation/create@client-answer".to_owned()));
        let ask = r#"{"jsonrpc":"2.0","id":"e","method":"elicitation/create","params":{}}"#;
        let told =
            r#"{"jsonrpc":"2.0","id":"e","result":{"action":"accept","content":{"pw":"secret"}}}"#;
        let out = call.client_answer::<ServerGuard>(ask, told);
        assert!(matches!(out.verdict, Verdict::Reject(e) if e.code == -31004));
        let fine = told.replace("secret", "hunter");
        assert_eq!(
            call.client_answer::<ServerGuard>(ask, &fine).verdict,
            Verdict::Continue
        );
    }
}
