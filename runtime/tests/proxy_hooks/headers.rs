//! The operator's header allow-list: a hook sees exactly the request headers
//! listed for it, from the TOML config to the guest.

use std::io::Write;
use std::path::Path;

use sluice::config::Config;

use crate::common::*;
use crate::support::{Guest, body, temp_dir};

const HEADERS: &str = "Authorization: Bearer t0k\r\nCookie: session=s3cret\r\n\
                       X-Tenant: acme\r\nX-Other: nope\r\nx-TENANT: beta\r\n";

fn post_with_headers(body: &str) -> Vec<u8> {
    format!(
        "POST /mcp HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\n{HEADERS}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Start the proxy the way the binary does, from a config file whose one
/// hook is `guest` with the `headers` line given.
fn proxy_from_config(
    upstream: std::net::SocketAddr,
    guest: &Guest,
    headers_line: &str,
) -> sluice::proxy::RunningProxy {
    let dir = temp_dir("headers");
    std::fs::write(dir.join("reflect.wasm"), guest.component()).unwrap();
    let toml = format!(
        "listen = \"127.0.0.1:0\"\n\
         [[route]]\npath = \"/mcp\"\nupstream = \"http://{upstream}/mcp\"\n\
         [log]\naccess = false\n\
         [[hook]]\npath = \"reflect.wasm\"\n{headers_line}\n"
    );
    let config = Config::from_toml(&toml, "t.toml", Path::new(&dir)).expect("config parses");
    let settings = sluice::settings::proxy_settings(&config).expect("settings");
    sluice::proxy::start(settings).expect("proxy starts")
}

fn seen(proxy: &sluice::proxy::RunningProxy) -> (i64, String) {
    let mut c = connect(proxy.local_addr());
    c.write_all(&post_with_headers(CALL)).unwrap();
    let r = read_response(&mut c, "POST");
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["id"], "abc", "{v}");
    (
        v["error"]["code"].as_i64().expect("a reject"),
        v["error"]["message"].as_str().unwrap().to_string(),
    )
}

#[test]
fn a_hook_sees_only_the_listed_headers_case_insensitively() {
    let up = crate::answering_upstream();
    let guest = Guest::new(&["tools/call"], body::reject_with_headers(false));
    let proxy = proxy_from_config(
        up.addr,
        &guest,
        r#"headers = ["authorization", "X-TENANT", "x-absent"]"#,
    );
    assert_eq!(
        seen(&proxy),
        (
            4003,
            "authorization=Bearer t0k;x-tenant=acme;x-tenant=beta;".to_string()
        )
    );
    proxy.shutdown();

    let proxy = proxy_from_config(up.addr, &guest, "");
    assert_eq!(seen(&proxy), (4000, String::new()), "none unless listed");
    proxy.shutdown();
    assert!(up.requests.try_recv().is_err());
}

#[test]
fn a_response_hook_sees_the_request_headers_too() {
    let up = crate::answering_upstream();
    let guest =
        Guest::new(&["tools/call"], body::cont()).on_response(body::reject_with_headers(true));
    let proxy = proxy_from_config(up.addr, &guest, r#"headers = ["cookie"]"#);
    assert_eq!(seen(&proxy), (4001, "cookie=session=s3cret;".to_string()));
    let forwarded = up.requests.try_recv().expect("the request went upstream");
    assert!(
        forwarded.head.contains("X-Other: nope\r\n"),
        "headers hidden from hooks still go upstream: {}",
        forwarded.head
    );
    proxy.shutdown();
}
