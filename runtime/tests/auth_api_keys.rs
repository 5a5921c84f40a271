//! Routes protected by API keys, on every kind of route, and no path
//! spelling that reaches a protected route's upstream unauthenticated.

mod auth_support;
mod common;

use auth_support::*;
use serde_json::{Value, json};
use sluice_core::auth::api_key::sha256;

const ALICE_KEY: &str = "sk-test-alice-0123456789";
const BOB_KEY: &str = "sk-test-bob-9876543210";

fn hex(key: &str) -> String {
    sha256(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn keys(extra: &str) -> String {
    format!(
        "{extra}\n\n[[route.auth.api_key]]\nsha256 = \"{}\"\nsubject = \"alice\"\nscopes = [\"mcp:tools\"]\n\n\
         [[route.auth.api_key]]\nsha256 = \"{}\"\nsubject = \"bob\"\n",
        hex(ALICE_KEY),
        hex(BOB_KEY)
    )
}

#[test]
fn a_good_key_passes_and_stays_with_sluice() {
    let up = McpUpstream::start();
    let proxy = sluice(&config(up.addr, &keys("")));
    let r = call_with(&proxy, ALICE_KEY);
    assert_eq!(r.status, 200, "{}", r.head);
    let seen = up.next();
    assert!(
        !seen.head.to_ascii_lowercase().contains("authorization"),
        "{}",
        seen.head
    );
    assert_eq!(call_with(&proxy, BOB_KEY).status, 200);
}

#[test]
fn an_unknown_key_is_401_invalid_token() {
    let up = McpUpstream::start();
    let proxy = sluice(&config(up.addr, &keys("")));
    for key in [
        "sk-test-mallory",
        "sk-test-alice-012345678",
        &hex(ALICE_KEY),
    ] {
        assert_refused(&call_with(&proxy, key), 401, Some("invalid_token"), &up);
    }
    assert_refused(&call(&proxy, "/mcp", ""), 401, None, &up);
}

#[test]
fn a_key_without_the_required_scope_is_403() {
    let up = McpUpstream::start();
    let proxy = sluice(&config(up.addr, &keys("required_scopes = [\"mcp:tools\"]")));
    assert_eq!(call_with(&proxy, ALICE_KEY).status, 200);
    up.next();
    let r = call_with(&proxy, BOB_KEY);
    assert_eq!(r.status, 403);
    assert_eq!(
        challenge(&r).unwrap(),
        format!(
            "Bearer resource_metadata=\"{METADATA}\", error=\"insufficient_scope\", scope=\"mcp:tools\""
        )
    );
    up.untouched();
}

#[test]
fn a_jwt_on_a_route_with_keys_only_is_refused() {
    let up = McpUpstream::start();
    let proxy = sluice(&config(up.addr, &keys("")));
    let key = Key::ec("k1");
    let token = key.sign(&good_claims("http://as.test"));
    assert_refused(&call_with(&proxy, &token), 401, Some("invalid_token"), &up);
}

#[test]
fn the_metadata_of_a_route_with_keys_only() {
    let up = McpUpstream::start();
    let proxy = sluice(&config(up.addr, &keys("")));
    let r = get(&proxy, "/.well-known/oauth-protected-resource/mcp");
    assert_eq!(r.status, 200);
    let doc: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        doc,
        json!({"resource": AUDIENCE, "bearer_methods_supported": ["header"]})
    );
    up.untouched();
    // The root document would be a route at "/"'s: this one goes, as any
    // other /.well-known/ request, to the upstream's origin.
    get(&proxy, "/.well-known/oauth-protected-resource");
    assert!(
        up.next()
            .head
            .starts_with("GET /.well-known/oauth-protected-resource HTTP/1.1\r\n")
    );
}

#[test]
fn no_spelling_of_the_protected_path_reaches_the_open_route() {
    let up = McpUpstream::start();
    // An open route at "/" in front of the same server.
    let text = format!(
        "{}\n[[route]]\npath = \"/\"\nupstream = \"http://{}/\"\ntransport = \"streamable\"\n",
        config(up.addr, &keys("")),
        up.addr
    );
    let proxy = sluice(&text);
    for target in [
        "/MCP",
        "//mcp",
        "/%6Dcp",
        "/%6dcp",
        "/mcp;x=1",
        "/Mcp/",
        "/mcp/../mcp",
        "/x/..%2Fmcp",
        "/mcp%2F",
    ] {
        let r = call(&proxy, target, "");
        assert_eq!(r.status, 400, "{target}: {}", r.head);
        up.untouched();
    }
    // The open route is open, and the protected one still asks.
    assert_eq!(call(&proxy, "/other", "").status, 200);
    up.next();
    assert_refused(&call(&proxy, "/mcp/", ""), 401, None, &up);
    assert_refused(&call(&proxy, "/mcp/sub", ""), 401, None, &up);
}

/// The Python interpreter itself (`python3` may be a pyenv shim).
fn python() -> String {
    let out = std::process::Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .expect("python3 runs");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn a_command_route_is_protected_too() {
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/stdio_server.py"
    );
    let text = format!(
        "listen = \"127.0.0.1:0\"\n\n[[route]]\npath = \"/mcp\"\ncommand = [\"{}\", \"{fixture}\"]\n\n\
         [route.auth]\naudience = \"{AUDIENCE}\"\n{}",
        python(),
        keys("")
    );
    let proxy = sluice(&text);
    let init = json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
        "protocolVersion":"2025-06-18","capabilities":{},
        "clientInfo":{"name":"t","version":"1"}}})
    .to_string();
    let send = |headers: &str| {
        use std::io::Write;
        let mut c = common::connect(proxy.local_addr());
        let request = format!(
            "POST /mcp HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
             Accept: application/json, text/event-stream\r\n{headers}Content-Length: {}\r\n\r\n{init}",
            init.len()
        );
        c.write_all(request.as_bytes()).unwrap();
        common::read_response(&mut c, "POST")
    };
    let r = send("");
    assert_eq!(r.status, 401, "{}", r.head);
    assert_eq!(
        challenge(&r).unwrap(),
        format!("Bearer resource_metadata=\"{METADATA}\"")
    );
    let r = send(&format!("Authorization: Bearer {ALICE_KEY}\r\n"));
    assert_eq!(r.status, 200, "{}{}", r.head, r.text());
    assert!(r.text().contains("\"protocolVersion\""), "{}", r.text());
}

#[test]
fn an_open_route_under_a_protected_one_stays_open() {
    let up = McpUpstream::start();
    let text = format!(
        "{}\n[[route]]\npath = \"/mcp/public\"\nupstream = \"http://{}/public\"\ntransport = \"streamable\"\n",
        config(up.addr, &keys("")),
        up.addr
    );
    let proxy = sluice(&text);
    assert_eq!(call(&proxy, "/mcp/public", "").status, 200);
    assert!(up.next().head.starts_with("POST /public HTTP/1.1\r\n"));
    assert_refused(&call(&proxy, "/mcp", ""), 401, None, &up);
    assert_refused(&call(&proxy, "/mcp/other", ""), 401, None, &up);
}

#[test]
fn the_upstream_gets_the_operators_credentials_never_the_clients() {
    let up = McpUpstream::start();
    let dir = std::env::temp_dir().join(format!("sluice-upstream-cred-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("token");
    std::fs::write(&file, "Bearer file-secret\n").unwrap();
    let home = std::env::var("HOME").expect("HOME is set");
    let config = config(up.addr, &keys("")).replacen(
        "transport = \"streamable\"\n",
        &format!(
            "transport = \"streamable\"\nupstream_headers = {{ Authorization = {{ from_file = \"{}\" }}, \
             X-Home = {{ from_env = \"HOME\" }}, X-Tenant = \"t1\" }}\n",
            file.display()
        ),
        1,
    );
    let proxy = sluice(&config);
    let r = call(
        &proxy,
        "/mcp",
        &format!("Authorization: Bearer {ALICE_KEY}\r\nx-tenant: forged\r\n"),
    );
    assert_eq!(r.status, 200, "{}", r.head);
    let head = up.next().head;
    assert!(
        head.contains("Authorization: Bearer file-secret\r\n"),
        "{head}"
    );
    assert!(head.contains(&format!("X-Home: {home}\r\n")), "{head}");
    assert!(head.contains("X-Tenant: t1\r\n"), "{head}");
    assert!(
        !head.contains(ALICE_KEY) && !head.contains("forged"),
        "{head}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// The admin listener's scrape.
fn scrape(proxy: &sluice::proxy::RunningProxy) -> String {
    use std::io::Write;
    let admin = proxy.admin_addr().expect("the admin listener runs");
    let mut c = common::connect(admin);
    c.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    common::read_response(&mut c, "GET").text()
}

/// The value of the decisions series of `outcome` on the route (named by
/// its upstream's host).
fn decisions(proxy: &sluice::proxy::RunningProxy, outcome: &str) -> Option<f64> {
    let text = scrape(proxy);
    let series = format!(
        r#"sluice_auth_decisions_total{{route="127.0.0.1",outcome="{outcome}",method="api_key"}} "#
    );
    text.lines()
        .find_map(|l| l.strip_prefix(&series)?.parse().ok())
}

#[test]
fn every_judged_key_is_counted_by_outcome_never_by_subject() {
    let up = McpUpstream::start();
    let admin = "\n[admin]\nlisten = \"127.0.0.1:0\"\n";
    let auth = keys("required_scopes = [\"mcp:tools\"]");
    let proxy = sluice(&format!("{}{admin}", config(up.addr, &auth)));
    assert_eq!(decisions(&proxy, "allowed"), Some(0.0));
    assert_eq!(call_with(&proxy, ALICE_KEY).status, 200);
    up.next();
    assert_eq!(call_with(&proxy, ALICE_KEY).status, 200);
    up.next();
    assert_eq!(call_with(&proxy, BOB_KEY).status, 403);
    assert_eq!(call_with(&proxy, "sk-test-mallory").status, 401);
    // No credentials: refused before any token is judged, so not a
    // decision (it is a 401 in sluice_requests_total).
    assert_eq!(call(&proxy, "/mcp", "").status, 401);
    assert_eq!(decisions(&proxy, "allowed"), Some(2.0));
    assert_eq!(decisions(&proxy, "forbidden"), Some(1.0));
    assert_eq!(decisions(&proxy, "unauthenticated"), Some(1.0));
    assert_eq!(decisions(&proxy, "unavailable"), Some(0.0));
    let text = scrape(&proxy);
    assert!(!text.contains("alice") && !text.contains("bob"), "{text}");
    up.untouched();
}
