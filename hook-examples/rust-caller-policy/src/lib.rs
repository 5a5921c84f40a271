//! sluice hook (`sluice:hook@0.2.0`): which caller may see and call which
//! MCP tools, decided by the caller's scopes or a role claim of its token.
//!
//! Config (the hook's config string), JSON:
//! `{"tools": {"deploy": {"scope": "tools:deploy"}, "admin_*": {"role": "admin"}},
//!   "roles_claim": "roles"}`
//! - A tool that matches an entry of `tools` (`*` matches any run of
//!   characters; the first matching entry decides) needs the caller to hold
//!   its `scope`, or to have its `role` in the token's `roles_claim` claim
//!   (default `"roles"`: a string or an array of strings). An entry may give
//!   both: either one suffices. A tool no entry matches is open to every
//!   caller.
//! - `tools/list` answers are filtered per caller: nobody sees a tool it may
//!   not call. A refused `tools/call` is answered with -31001 "tool …
//!   needs …", naming what the caller lacks, without reaching the server.
//! - No identity (a route without `[route.auth]`) holds no scope and no
//!   role: the guarded tools are refused. A config that does not parse
//!   refuses every guarded tool and hides every tool (fail closed).

wit_bindgen::generate!({
    path: "wit",
    world: "sluice:hook/hook@0.2.0",
});

use std::borrow::Cow;
use std::collections::BTreeMap;

use exports::sluice::hook::handler::Guest;
use serde::Deserialize;
use sluice::hook::host;
use sluice::hook::types::{Context, Identity, Level, Message, RpcError, Verdict};

/// The code of a refusal: outside JSON-RPC's reserved range, as a hook's
/// own codes must be.
const REFUSED: i64 = -31001;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Policy {
    #[serde(default)]
    tools: BTreeMap<String, Need>,
    roles_claim: Option<String>,
}

/// What a guarded tool needs: either is enough.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Need {
    scope: Option<String>,
    role: Option<String>,
}

impl Policy {
    fn load() -> Result<Policy, String> {
        let text = host::config();
        if text.trim().is_empty() {
            return Ok(Policy::default());
        }
        serde_json::from_str(&text).map_err(|e| format!("bad caller-policy config: {e}"))
    }

    /// `None` when `caller` may use `tool`, else what it lacks.
    fn refusal(&self, tool: &str, caller: Option<&Caller>) -> Option<String> {
        let need = self
            .tools
            .iter()
            .find(|(pattern, _)| glob(pattern, tool))
            .map(|(_, need)| need)?;
        let holds_scope = need
            .scope
            .as_ref()
            .is_some_and(|s| caller.is_some_and(|c| c.scopes.iter().any(|have| have == s)));
        let holds_role = need
            .role
            .as_ref()
            .is_some_and(|r| caller.is_some_and(|c| c.roles.iter().any(|have| have == r)));
        if holds_scope || holds_role {
            return None;
        }
        let wanted = match (&need.scope, &need.role) {
            (Some(s), Some(r)) => format!("the scope {s:?} or the role {r:?}"),
            (Some(s), None) => format!("the scope {s:?}"),
            (None, Some(r)) => format!("the role {r:?}"),
            (None, None) => "a rule that grants it (its entry names neither scope nor role)".into(),
        };
        Some(wanted)
    }
}

/// What this hook reads of the caller.
struct Caller {
    subject: String,
    scopes: Vec<String>,
    roles: Vec<String>,
}

impl Caller {
    fn of(identity: Option<&Identity>, roles_claim: &str) -> Option<Caller> {
        let id = identity?;
        let claims: Option<serde_json::Value> =
            id.claims.as_deref().and_then(|c| serde_json::from_str(c).ok());
        let roles = match claims.as_ref().and_then(|c| c.get(roles_claim)) {
            Some(serde_json::Value::String(one)) => vec![one.clone()],
            Some(serde_json::Value::Array(many)) => many
                .iter()
                .filter_map(|r| r.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        };
        Some(Caller {
            subject: id.subject.clone(),
            scopes: id.scopes.clone(),
            roles,
        })
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

struct CallerPolicy;

impl Guest for CallerPolicy {
    fn methods() -> Vec<String> {
        vec!["tools/call@request".into(), "tools/list@response".into()]
    }

    fn on_request(ctx: Context, request: Message) -> Verdict {
        let policy = match Policy::load() {
            Ok(p) => p,
            Err(e) => {
                host::log(Level::Error, &e);
                return reject(-32603, "caller policy is misconfigured".into());
            }
        };
        let name = match serde_json::from_str::<Call>(&request.json) {
            Ok(Call {
                params: Some(CallParams { name: Some(n) }),
            }) => n,
            _ => return reject(-32602, "tools/call without a tool name".into()),
        };
        let roles_claim = policy.roles_claim.as_deref().unwrap_or("roles");
        let caller = Caller::of(ctx.identity.as_ref(), roles_claim);
        let Some(lacking) = policy.refusal(&name, caller.as_ref()) else {
            return Verdict::Continue;
        };
        let who = caller.map_or_else(|| "an anonymous caller".to_owned(), |c| c.subject);
        host::log(Level::Info, &format!("refused {name:?} to {who}"));
        reject(REFUSED, format!("tool {name:?} needs {lacking}"))
    }

    fn on_response(ctx: Context, _request: Message, response: Message) -> Verdict {
        let Ok(policy) = Policy::load() else {
            // Misconfigured: show no tools rather than all of them.
            return filter_tools(&response.json, |_| false);
        };
        let roles_claim = policy.roles_claim.as_deref().unwrap_or("roles");
        let caller = Caller::of(ctx.identity.as_ref(), roles_claim);
        filter_tools(&response.json, |tool| {
            policy.refusal(tool, caller.as_ref()).is_none()
        })
    }

    // Not asked for (see `methods`): what 0.2.0 requires every hook to have.
    fn on_server_message(_ctx: Context, _message: Message) -> Verdict {
        Verdict::Continue
    }

    fn on_client_answer(_ctx: Context, _request: Message, _answer: Message) -> Verdict {
        Verdict::Continue
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

export!(CallerPolicy);

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        serde_json::from_str(
            r#"{"tools": {"deploy": {"scope": "tools:deploy"}, "admin_*": {"role": "admin", "scope": "root"}}}"#,
        )
        .unwrap()
    }

    fn caller(scopes: &[&str], roles: &[&str]) -> Caller {
        Caller {
            subject: "t".into(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            roles: roles.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn a_guarded_tool_needs_its_scope_or_its_role_and_an_open_one_nothing() {
        let p = policy();
        assert_eq!(p.refusal("echo", None), None, "no entry: open");
        assert!(p.refusal("deploy", None).is_some(), "anonymous");
        assert!(p.refusal("deploy", Some(&caller(&["tools:read"], &[]))).is_some());
        assert_eq!(p.refusal("deploy", Some(&caller(&["tools:deploy"], &[]))), None);
        assert_eq!(p.refusal("admin_reset", Some(&caller(&[], &["admin"]))), None);
        assert_eq!(p.refusal("admin_reset", Some(&caller(&["root"], &[]))), None);
        assert_eq!(
            p.refusal("admin_reset", Some(&caller(&[], &["user"]))).as_deref(),
            Some(r#"the scope "root" or the role "admin""#)
        );
    }
}
