//! The Rust example hooks (hook-examples/) built for wasm32-wasip2 and run
//! through the host. Skipped, with a message, when the target is missing.

#[path = "fixtures/hooks/support.rs"]
mod support;

use sluice::hooks::*;
use support::{example_spec, rust_examples};

const POLICY: &str = r#"{"allow":["echo","add*"],"deny":["*delete*"]}"#;

fn ctx() -> HookContext {
    HookContext {
        upstream: "everything".into(),
        ..HookContext::default()
    }
}

fn call(id: u32, tool: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"{tool}","arguments":{{}}}}}}"#
    )
}

fn policy_host(config: &str) -> Option<HookHost> {
    let dir = rust_examples()?;
    let mut spec = example_spec(&dir, "rust_tool_policy");
    spec.config = config.into();
    Some(HookHost::load(vec![spec], None).expect("tool policy loads"))
}

#[test]
fn tool_policy_allows_and_denies_by_pattern() {
    let Some(h) = policy_host(POLICY) else { return };
    assert!(h.wants("tools/call") && h.wants("tools/list"));
    assert!(!h.wants("resources/read"));
    for tool in ["echo", "add", "addNumbers"] {
        let r = h.run_request(&ctx(), "tools/call", &call(1, tool));
        assert_eq!(r.outcome, ChainOutcome::Continue, "{tool}: {r:?}");
    }
    for tool in ["add_delete", "delete_repo", "rm", "echo2"] {
        let r = h.run_request(&ctx(), "tools/call", &call(1, tool));
        match r.outcome {
            ChainOutcome::Reject { code, message, .. } => {
                assert_eq!(code, -32602);
                assert!(message.contains(tool), "{message}");
            }
            other => panic!("{tool}: {other:?}"),
        }
    }
    let r = h.run_request(
        &ctx(),
        "tools/call",
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{}}"#,
    );
    assert!(matches!(
        r.outcome,
        ChainOutcome::Reject { code: -32602, .. }
    ));
}

#[test]
fn tool_policy_can_answer_with_an_error_result() {
    let Some(h) = policy_host(r#"{"deny":["rm"],"as_result":true}"#) else {
        return;
    };
    match h.run_request(&ctx(), "tools/call", &call(3, "rm")).outcome {
        ChainOutcome::Respond(result) => {
            let v: serde_json::Value = serde_json::from_str(&result).unwrap();
            assert_eq!(v["isError"], true);
            assert!(v["content"][0]["text"].as_str().unwrap().contains("rm"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        h.run_request(&ctx(), "tools/call", &call(4, "echo"))
            .outcome,
        ChainOutcome::Continue
    );
}

#[test]
fn tool_policy_filters_tools_list() {
    let Some(h) = policy_host(POLICY) else { return };
    let req = r#"{"jsonrpc":"2.0","id":9,"method":"tools/list"}"#;
    let resp = r#"{"jsonrpc":"2.0","id":9,"result":{"tools":[{"name":"echo"},{"name":"delete_all"},{"name":"add"},{"name":"rm"}]}}"#;
    match h.run_response(&ctx(), "tools/list", req, resp).outcome {
        ChainOutcome::Replaced(json) => {
            let v: serde_json::Value = serde_json::from_str(&json).unwrap();
            let names: Vec<_> = v["result"]["tools"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["name"].as_str().unwrap().to_string())
                .collect();
            assert_eq!(names, ["echo", "add"]);
            assert_eq!(v["id"], 9);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn tool_policy_fails_closed_on_bad_config() {
    let Some(h) = policy_host("{not json") else {
        return;
    };
    assert!(matches!(
        h.run_request(&ctx(), "tools/call", &call(1, "echo"))
            .outcome,
        ChainOutcome::Reject { code: -32603, .. }
    ));
}

fn redact_host(config: &str) -> Option<HookHost> {
    let dir = rust_examples()?;
    let mut spec = example_spec(&dir, "rust_redact");
    spec.config = config.into();
    Some(HookHost::load(vec![spec], None).expect("redact loads"))
}

fn result_with(text: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":5,"result":{{"content":[{{"type":"text","text":"{text}"}}]}}}}"#
    )
}

#[test]
fn redact_masks_secrets_in_tool_results() {
    let Some(h) = redact_host("") else { return };
    assert!(h.wants("tools/call"));
    assert!(!h.wants("tools/list"));
    let req = call(5, "env");
    let secrets = [
        "sk-proj-abcdefghijklmnopqrstuvwxyz012345",
        "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
        "AKIAIOSFODNN7EXAMPLE",
        "Bearer abcdef0123456789.xyz",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    ];
    for secret in secrets {
        let resp = result_with(&format!("token is {secret} ok"));
        match h.run_response(&ctx(), "tools/call", &req, &resp).outcome {
            ChainOutcome::Replaced(json) => {
                assert_eq!(json, result_with("token is [REDACTED] ok"), "{secret}");
            }
            other => panic!("{secret}: {other:?}"),
        }
    }
    let clean = result_with("nothing to see, task-abcdefghijklmnopqrstuvwxyz");
    assert_eq!(
        h.run_response(&ctx(), "tools/call", &req, &clean).outcome,
        ChainOutcome::Continue
    );
    // Requests pass untouched.
    assert_eq!(
        h.run_request(&ctx(), "tools/call", &req).outcome,
        ChainOutcome::Continue
    );
}

#[test]
fn redact_takes_mask_and_methods_from_config() {
    let Some(h) = redact_host(r#"{"mask": "***", "methods": ["tools/call", "resources/read"]}"#)
    else {
        return;
    };
    assert!(h.wants("resources/read"));
    let resp = result_with("AKIAIOSFODNN7EXAMPLE");
    match h
        .run_response(&ctx(), "resources/read", "{}", &resp)
        .outcome
    {
        ChainOutcome::Replaced(json) => assert_eq!(json, result_with("***")),
        other => panic!("{other:?}"),
    }
}

fn caller_host(config: &str) -> Option<HookHost> {
    let dir = rust_examples()?;
    let mut spec = example_spec(&dir, "rust_caller_policy");
    spec.config = config.into();
    Some(HookHost::load(vec![spec], None).expect("the example loads"))
}

fn caller(subject: &str, scopes: &[&str], claims: Option<serde_json::Value>) -> HookContext {
    use sluice_core::auth::{Identity, Scheme};
    HookContext {
        identity: Some(std::sync::Arc::new(Identity {
            scheme: if claims.is_some() {
                Scheme::Jwt
            } else {
                Scheme::ApiKey
            },
            subject: subject.into(),
            issuer: claims.as_ref().map(|_| "https://as.example".into()),
            client_id: None,
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            claims: claims.and_then(|c| c.as_object().cloned()),
        })),
        ..ctx()
    }
}

/// A 0.2.0 hook reads the caller the host hands it, as it was established.
#[test]
fn caller_policy_decides_by_the_identity_in_the_context() {
    let Some(h) = caller_host(
        r#"{"tools": {"deploy": {"scope": "ops"}, "admin_*": {"role": "admin"}}, "roles_claim": "groups"}"#,
    ) else {
        return;
    };
    assert_eq!(h.hooks()[0].world, "sluice:hook@0.2.0");
    let outcome =
        |c: &HookContext, tool: &str| h.run_request(c, "tools/call", &call(1, tool)).outcome;
    assert_eq!(
        outcome(&caller("ann", &["ops"], None), "deploy"),
        ChainOutcome::Continue
    );
    assert!(matches!(
        outcome(&caller("bob", &["read"], None), "deploy"),
        ChainOutcome::Reject { code: -31001, ref message, .. } if message == r#"tool "deploy" needs the scope "ops""#
    ));
    let admin = caller("cat", &[], Some(serde_json::json!({"groups": ["admin"]})));
    assert_eq!(outcome(&admin, "admin_reset"), ChainOutcome::Continue);
    // The role is read from the claim the config names, not from "roles".
    let elsewhere = caller("dan", &[], Some(serde_json::json!({"roles": ["admin"]})));
    assert!(matches!(
        outcome(&elsewhere, "admin_reset"),
        ChainOutcome::Reject { .. }
    ));
    assert!(
        matches!(outcome(&ctx(), "deploy"), ChainOutcome::Reject { .. }),
        "no identity"
    );
    assert_eq!(outcome(&ctx(), "echo"), ChainOutcome::Continue);
}
