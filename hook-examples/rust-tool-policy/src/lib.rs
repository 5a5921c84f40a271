//! sluice hook: allow or deny MCP tools by name pattern.
//!
//! Config (the hook's config string), JSON:
//! `{"allow": ["echo", "add*"], "deny": ["*delete*"], "as_result": false}`
//! - `deny` wins over `allow`; with `allow` present a tool must match one of
//!   its patterns; `*` matches any run of characters.
//! - Denied `tools/call` requests are rejected with -32602 (what MCP servers
//!   answer for an unknown tool), or, with `"as_result": true`, answered with
//!   a tool result flagged `isError` so the model sees the refusal.
//! - `tools/list` results are filtered so clients never see denied tools.
//! - A config that does not parse denies every call (fail closed).

wit_bindgen::generate!({
    path: "wit",
    world: "sluice:hook/hook",
});

use std::borrow::Cow;

use exports::sluice::hook::handler::Guest;
use serde::Deserialize;
use sluice::hook::host;
use sluice::hook::types::{Context, Level, Message, RpcError, Verdict};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Policy {
    allow: Option<Vec<String>>,
    #[serde(default)]
    deny: Vec<String>,
    #[serde(default)]
    as_result: bool,
}

impl Policy {
    fn load() -> Result<Policy, String> {
        let text = host::config();
        if text.trim().is_empty() {
            return Ok(Policy::default());
        }
        serde_json::from_str(&text).map_err(|e| format!("bad tool-policy config: {e}"))
    }

    fn allows(&self, tool: &str) -> bool {
        !self.deny.iter().any(|p| glob(p, tool))
            && self
                .allow
                .as_ref()
                .is_none_or(|a| a.iter().any(|p| glob(p, tool)))
    }
}

/// `*` matches any run of characters (including none); everything else
/// matches itself. Linear time: greedy with one backtrack point.
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

#[derive(Deserialize)]
struct Call<'a> {
    #[serde(borrow)]
    params: Option<CallParams<'a>>,
}

#[derive(Deserialize)]
struct CallParams<'a> {
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
}

fn reject(code: i64, message: String) -> Verdict {
    Verdict::Reject(RpcError {
        code,
        message,
        data: None,
    })
}

struct ToolPolicy;

impl Guest for ToolPolicy {
    fn methods() -> Vec<String> {
        // Calls are checked on the way in, lists filtered on the way out;
        // asking for only those phases spares an instance per message.
        vec!["tools/call@request".into(), "tools/list@response".into()]
    }

    fn on_request(_ctx: Context, request: Message) -> Verdict {
        if request.method != "tools/call" {
            return Verdict::Continue;
        }
        let policy = match Policy::load() {
            Ok(p) => p,
            Err(e) => {
                host::log(Level::Error, &e);
                return reject(-32603, "tool policy is misconfigured".into());
            }
        };
        let name = match serde_json::from_str::<Call>(&request.json) {
            Ok(Call {
                params: Some(CallParams { name: Some(n) }),
            }) => n,
            _ => return reject(-32602, "tools/call without a tool name".into()),
        };
        if policy.allows(&name) {
            return Verdict::Continue;
        }
        let text = format!("tool {name:?} is not allowed by policy");
        if policy.as_result {
            let result = serde_json::json!({
                "content": [{"type": "text", "text": text}],
                "isError": true,
            });
            return Verdict::Respond(result.to_string());
        }
        reject(-32602, text)
    }

    fn on_response(_ctx: Context, request: Message, response: Message) -> Verdict {
        if request.method != "tools/list" {
            return Verdict::Continue;
        }
        let Ok(policy) = Policy::load() else {
            // Misconfigured: show no tools rather than all of them.
            return filter_tools(&response.json, |_| false);
        };
        filter_tools(&response.json, |name| policy.allows(name))
    }
}

/// Drop the tools `keep` refuses from a tools/list result.
fn filter_tools(json: &str, keep: impl Fn(&str) -> bool) -> Verdict {
    let Ok(mut msg) = serde_json::from_str::<serde_json::Value>(json) else {
        return Verdict::Continue;
    };
    let Some(tools) = msg
        .pointer_mut("/result/tools")
        .and_then(|t| t.as_array_mut())
    else {
        return Verdict::Continue;
    };
    let before = tools.len();
    tools.retain(|t| t.get("name").and_then(|n| n.as_str()).is_some_and(&keep));
    if tools.len() == before {
        return Verdict::Continue;
    }
    Verdict::Replace(msg.to_string())
}

export!(ToolPolicy);

#[cfg(test)]
mod tests {
    use super::glob;

    #[test]
    fn globs() {
        assert!(glob("echo", "echo"));
        assert!(!glob("echo", "echo2"));
        assert!(glob("add*", "add"));
        assert!(glob("add*", "addNumbers"));
        assert!(glob("*delete*", "repo_delete_all"));
        assert!(!glob("*delete*", "remove"));
        assert!(glob("*", ""));
        assert!(glob("a*b*c", "aXXbYYc"));
        assert!(!glob("a*b*c", "aXXbYY"));
    }
}
