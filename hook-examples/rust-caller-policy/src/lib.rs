//! sluice hook (`sluice:hook@0.2.0`, on the `sluice-hook` SDK): which caller may see and call which
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

use std::collections::BTreeMap;

use serde::Deserialize;
use sluice_hook::serde_json::{self, Value};
use sluice_hook::{Context, Hook, Identity, Message, Verdict, export_hook, host};

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
        let roles = match id.claim(roles_claim) {
            Some(Value::String(one)) => vec![one.clone()],
            Some(Value::Array(many)) => many
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

struct CallerPolicy;

impl Hook for CallerPolicy {
    fn methods() -> Vec<String> {
        vec!["tools/call@request".into(), "tools/list@response".into()]
    }

    fn on_request(ctx: &Context, request: &Message) -> Verdict {
        let policy = match Policy::load() {
            Ok(p) => p,
            Err(e) => {
                host::log(host::Level::Error, &e);
                return Verdict::reject(-32603, "caller policy is misconfigured");
            }
        };
        let Some(call) = request.tool_call() else {
            return Verdict::reject(-32602, "tools/call without a tool name");
        };
        let roles_claim = policy.roles_claim.as_deref().unwrap_or("roles");
        let caller = Caller::of(ctx.identity.as_ref(), roles_claim);
        let Some(lacking) = policy.refusal(&call.name, caller.as_ref()) else {
            return Verdict::Continue;
        };
        let who = caller.map_or_else(|| "an anonymous caller".to_owned(), |c| c.subject);
        host::info(&format!("refused {:?} to {who}", call.name));
        Verdict::reject(REFUSED, format!("tool {:?} needs {lacking}", call.name))
    }

    fn on_response(ctx: &Context, _request: &Message, response: &Message) -> Verdict {
        let Ok(policy) = Policy::load() else {
            // Misconfigured: show no tools rather than all of them.
            return response.keep_tools(|_| false);
        };
        let roles_claim = policy.roles_claim.as_deref().unwrap_or("roles");
        let caller = Caller::of(ctx.identity.as_ref(), roles_claim);
        response.keep_tools(|tool| {
            tool["name"]
                .as_str()
                .is_some_and(|name| policy.refusal(name, caller.as_ref()).is_none())
        })
    }
}

export_hook!(CallerPolicy);

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
        assert!(
            p.refusal("deploy", Some(&caller(&["tools:read"], &[])))
                .is_some()
        );
        assert_eq!(
            p.refusal("deploy", Some(&caller(&["tools:deploy"], &[]))),
            None
        );
        assert_eq!(
            p.refusal("admin_reset", Some(&caller(&[], &["admin"]))),
            None
        );
        assert_eq!(
            p.refusal("admin_reset", Some(&caller(&["root"], &[]))),
            None
        );
        assert_eq!(
            p.refusal("admin_reset", Some(&caller(&[], &["user"])))
                .as_deref(),
            Some(r#"the scope "root" or the role "admin""#)
        );
    }
}
