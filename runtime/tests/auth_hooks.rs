//! The caller's identity in hooks (`sluice:hook@0.2.0`): the
//! rust-caller-policy example in front of a route with `[route.auth]`
//! shows and allows each caller the tools its scopes or role claim grant,
//! and nothing reaches the upstream for a refused call.

mod auth_support;
mod common;
#[path = "fixtures/hooks/support.rs"]
mod support;

use auth_support::*;
use serde_json::{Value, json};
use sluice_core::auth::api_key::sha256;

const DEPLOYER_KEY: &str = "sk-test-deployer-0123456789";
const READER_KEY: &str = "sk-test-reader-9876543210";

const POLICY: &str =
    r#"{"tools": {"deploy": {"scope": "tools:deploy"}, "admin_*": {"role": "admin"}}}"#;

fn hex(key: &str) -> String {
    sha256(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// An MCP upstream with three tools: it lists them and answers any call.
fn tools_upstream() -> common::Upstream {
    common::upstream(|conn, req| {
        let msg: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
        let id = msg["id"].clone();
        let result = match msg["method"].as_str() {
            Some("tools/list") => json!({"tools": [
                {"name": "echo", "inputSchema": {"type": "object"}},
                {"name": "deploy", "inputSchema": {"type": "object"}},
                {"name": "admin_reset", "inputSchema": {"type": "object"}},
            ]}),
            _ => json!({"content": [{"type": "text", "text": "done"}]}),
        };
        let body = json!({"jsonrpc": "2.0", "id": id, "result": result}).to_string();
        common::json_response(conn, &body);
        true
    })
}

/// sluice with the caller-policy hook and `auth` as the route's auth body;
/// `None` when the wasm32-wasip2 target is missing.
fn guarded(up: &common::Upstream, auth: &str) -> Option<sluice::proxy::RunningProxy> {
    let dir = support::rust_examples()?;
    let wasm = dir.join("rust-caller-policy.wasm");
    let cfg = format!(
        "{}\n[[hook]]\npath = {:?}\nconfig = '{POLICY}'\n",
        config(up.addr, auth),
        wasm.display().to_string()
    );
    Some(sluice(&cfg))
}

fn rpc(
    proxy: &sluice::proxy::RunningProxy,
    token: &str,
    id: u32,
    method: &str,
    params: Value,
) -> Value {
    use std::io::Write;
    let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string();
    let mut c = common::connect(proxy.local_addr());
    let auth = if token.is_empty() {
        String::new()
    } else {
        format!("Authorization: Bearer {token}\r\n")
    };
    write!(
        c,
        "POST /mcp HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\n{auth}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let r = common::read_response(&mut c, "POST");
    assert_eq!(r.status, 200, "{}", r.head);
    serde_json::from_slice(&r.body).unwrap_or_else(|_| panic!("JSON: {}", r.text()))
}

fn tool_names(list: &Value) -> Vec<String> {
    list["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("a tools list: {list}"))
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

fn call(proxy: &sluice::proxy::RunningProxy, token: &str, tool: &str) -> Value {
    rpc(
        proxy,
        token,
        7,
        "tools/call",
        json!({"name": tool, "arguments": {}}),
    )
}

#[test]
fn each_api_key_sees_and_calls_the_tools_its_scopes_grant() {
    let up = tools_upstream();
    let keys = format!(
        "[[route.auth.api_key]]\nsha256 = \"{}\"\nsubject = \"deployer\"\nscopes = [\"tools:deploy\"]\n\n\
         [[route.auth.api_key]]\nsha256 = \"{}\"\nsubject = \"reader\"\nscopes = [\"tools:read\"]\n",
        hex(DEPLOYER_KEY),
        hex(READER_KEY)
    );
    let Some(proxy) = guarded(&up, &keys) else {
        return;
    };
    let list = |key| tool_names(&rpc(&proxy, key, 1, "tools/list", json!({})));
    assert_eq!(list(DEPLOYER_KEY), ["echo", "deploy"]);
    assert_eq!(list(READER_KEY), ["echo"]);
    for _ in 0..2 {
        up.requests.recv().unwrap();
    }

    let allowed = call(&proxy, DEPLOYER_KEY, "deploy");
    assert_eq!(allowed["result"]["content"][0]["text"], "done", "{allowed}");
    let seen: Value = serde_json::from_slice(&up.requests.recv().unwrap().body).unwrap();
    assert_eq!(seen["params"]["name"], "deploy");

    let refused = call(&proxy, READER_KEY, "deploy");
    assert_eq!(refused["id"], 7);
    assert_eq!(refused["error"]["code"], -31001);
    assert_eq!(
        refused["error"]["message"],
        r#"tool "deploy" needs the scope "tools:deploy""#
    );
    // An open tool is open to both.
    assert_eq!(
        call(&proxy, READER_KEY, "echo")["result"]["content"][0]["text"],
        "done"
    );
    let seen: Value = serde_json::from_slice(&up.requests.recv().unwrap().body).unwrap();
    assert_eq!(
        seen["params"]["name"], "echo",
        "the refused call never reached it"
    );
    proxy.shutdown();
}

#[test]
fn a_jwt_callers_role_claim_opens_the_admin_tools() {
    let up = tools_upstream();
    let key = Key::ec("k1");
    let jwks = JwksServer::start(vec![key.jwk()]);
    let Some(proxy) = guarded(
        &up,
        &format!(
            "issuer = \"{}\"\njwks_uri = \"{}/jwks\"\n",
            jwks.issuer(),
            jwks.issuer()
        ),
    ) else {
        return;
    };
    let token = |roles: Value| {
        let mut claims = good_claims(&jwks.issuer());
        claims["roles"] = roles;
        key.sign(&claims)
    };
    let admin = token(json!(["admin", "user"]));
    let user = token(json!("user"));
    assert_eq!(
        tool_names(&rpc(&proxy, &admin, 1, "tools/list", json!({}))),
        ["echo", "admin_reset"]
    );
    assert_eq!(
        tool_names(&rpc(&proxy, &user, 1, "tools/list", json!({}))),
        ["echo"]
    );
    assert_eq!(
        call(&proxy, &admin, "admin_reset")["result"]["content"][0]["text"],
        "done"
    );
    assert_eq!(
        call(&proxy, &user, "admin_reset")["error"]["message"],
        r#"tool "admin_reset" needs the role "admin""#
    );
    proxy.shutdown();
}

#[test]
fn a_route_without_auth_gives_hooks_no_identity_and_guarded_tools_stay_shut() {
    let up = tools_upstream();
    let Some(dir) = support::rust_examples() else {
        return;
    };
    let cfg = format!(
        "listen = \"127.0.0.1:0\"\n\n[[route]]\npath = \"/mcp\"\nupstream = \"http://{}/mcp\"\n\
         transport = \"streamable\"\n\n[[hook]]\npath = {:?}\nconfig = '{POLICY}'\n",
        up.addr,
        dir.join("rust-caller-policy.wasm").display().to_string()
    );
    let proxy = sluice(&cfg);
    assert_eq!(
        tool_names(&rpc(&proxy, "", 1, "tools/list", json!({}))),
        ["echo"]
    );
    assert_eq!(call(&proxy, "", "deploy")["error"]["code"], -31001);
    proxy.shutdown();
}
