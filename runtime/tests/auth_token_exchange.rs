//! A route whose upstream gets a token exchanged for the caller's (RFC
//! 8693) at an authorization server the test runs: it records each
//! exchange request (so a cache hit is seen as none), and can refuse, fail
//! or be gone.

mod auth_support;
mod common;
#[path = "fixtures/legacy_backend.rs"]
mod legacy_backend;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};

use auth_support::*;
use serde_json::{Value, json};
use sluice::proxy::RunningProxy;
use sluice_core::base64;

/// How the token endpoint answers.
#[derive(Clone, Copy)]
enum Mode {
    /// A token `up-N` (N counts the exchanges) for this many seconds.
    Issue(u64),
    /// 400 `invalid_target`.
    Refuse,
    /// 503.
    Down,
}

/// One exchange request: its `Authorization` and its form, decoded.
type Exchange = (String, Vec<(String, String)>);

struct FakeAs {
    addr: SocketAddr,
    mode: Arc<Mutex<Mode>>,
    exchanges: Arc<Mutex<Vec<Exchange>>>,
    _requests: mpsc::Receiver<common::Received>,
}

fn answer(conn: &mut std::net::TcpStream, status: &str, body: &str) {
    let _ = conn.write_all(
        format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
}

/// `application/x-www-form-urlencoded`, decoded.
fn form(body: &[u8]) -> Vec<(String, String)> {
    let decode = |s: &str| {
        let mut out = Vec::new();
        let b = s.as_bytes();
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'+' => out.push(b' '),
                b'%' => {
                    out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                    i += 2;
                }
                c => out.push(c),
            }
            i += 1;
        }
        String::from_utf8(out).unwrap()
    };
    std::str::from_utf8(body)
        .unwrap()
        .split('&')
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap();
            (decode(k), decode(v))
        })
        .collect()
}

impl FakeAs {
    fn start(key: Value) -> FakeAs {
        let mode = Arc::new(Mutex::new(Mode::Issue(300)));
        let exchanges = Arc::new(Mutex::new(Vec::new()));
        let count = Arc::new(AtomicUsize::new(0));
        let (m, x) = (mode.clone(), exchanges.clone());
        let up = common::upstream(move |conn, req| {
            let mut line = req.head.split(' ');
            let (method, path) = (line.next().unwrap_or(""), line.next().unwrap_or(""));
            let issuer = format!("http://{}", conn.local_addr().unwrap());
            match (method, path) {
                ("GET", "/.well-known/oauth-authorization-server") => {
                    let doc = json!({
                        "issuer": issuer,
                        "jwks_uri": format!("{issuer}/jwks"),
                        "token_endpoint": format!("{issuer}/token"),
                    });
                    answer(conn, "200 OK", &doc.to_string());
                }
                ("GET", "/jwks") => answer(conn, "200 OK", &json!({"keys": [key]}).to_string()),
                ("POST", "/token") => {
                    let authorization = req
                        .head
                        .split("\r\n")
                        .find_map(|l| l.strip_prefix("Authorization: "))
                        .unwrap_or("")
                        .to_string();
                    x.lock().unwrap().push((authorization, form(&req.body)));
                    // Slow enough that concurrent callers overlap.
                    std::thread::sleep(std::time::Duration::from_millis(300));
                    match *m.lock().unwrap() {
                        Mode::Issue(expires_in) => {
                            let n = count.fetch_add(1, Ordering::SeqCst) + 1;
                            let body = json!({
                                "access_token": format!("up-{n}"),
                                "token_type": "Bearer",
                                "expires_in": expires_in,
                                "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
                            });
                            answer(conn, "200 OK", &body.to_string());
                        }
                        Mode::Refuse => {
                            answer(conn, "400 Bad Request", r#"{"error":"invalid_target"}"#)
                        }
                        Mode::Down => answer(conn, "503 Service Unavailable", ""),
                    }
                }
                _ => answer(conn, "404 Not Found", ""),
            }
            false
        });
        FakeAs {
            addr: up.addr,
            mode,
            exchanges,
            _requests: up.requests,
        }
    }

    fn issuer(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn exchanges(&self) -> usize {
        self.exchanges.lock().unwrap().len()
    }

    fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }
}

struct Setup {
    key: Key,
    fake: FakeAs,
    up: McpUpstream,
    proxy: RunningProxy,
}

impl Setup {
    /// A good token for `sub`.
    fn token(&self, sub: &str) -> String {
        let mut claims = good_claims(&self.fake.issuer());
        claims["sub"] = json!(sub);
        self.key.sign(&claims)
    }

    /// The `Authorization` the upstream got for a call with `token`.
    fn upstream_authorization(&self, token: &str) -> String {
        let r = call_with(&self.proxy, token);
        assert_eq!(r.status, 200, "{}{}", r.head, r.text());
        let seen = self.up.next();
        assert!(!seen.head.contains(token), "{}", seen.head);
        let mut found = seen
            .head
            .split("\r\n")
            .filter_map(|l| l.strip_prefix("Authorization: "));
        let value = found.next().expect("an Authorization upstream").to_string();
        assert_eq!(found.next(), None, "{}", seen.head);
        value
    }
}

/// A JWT route whose `[route.auth.token_exchange]` has `extra`.
fn setup(extra: &str) -> Setup {
    let key = Key::rsa("k1");
    let fake = FakeAs::start(key.jwk());
    let up = McpUpstream::start();
    let auth = format!(
        "issuer = \"{}\"\n\n[route.auth.token_exchange]\nclient_id = \"sluice\"\n\
         client_secret = \"s3cret\"\n{extra}\n",
        fake.issuer()
    );
    let proxy = sluice(&config(up.addr, &auth));
    Setup {
        key,
        fake,
        up,
        proxy,
    }
}

#[test]
fn the_upstream_gets_the_exchanged_token_once_per_caller_token() {
    let s = setup("");
    let alice = s.token("alice");
    assert_eq!(s.upstream_authorization(&alice), "Bearer up-1");
    assert_eq!(s.upstream_authorization(&alice), "Bearer up-1");
    assert_eq!(s.fake.exchanges(), 1, "the second call used the cache");
    let bob = s.token("bob");
    assert_eq!(s.upstream_authorization(&bob), "Bearer up-2");
    assert_eq!(s.fake.exchanges(), 2);

    // What sluice asked: RFC 8693 with the caller's token, for the
    // upstream's URL, authenticated with client_secret_basic.
    let (authorization, form) = s.fake.exchanges.lock().unwrap()[0].clone();
    assert_eq!(
        authorization,
        format!("Basic {}", base64::encode(b"sluice:s3cret"))
    );
    let upstream = format!("http://{}/mcp", s.up.addr);
    let want = [
        (
            "grant_type",
            "urn:ietf:params:oauth:grant-type:token-exchange",
        ),
        ("subject_token", alice.as_str()),
        (
            "subject_token_type",
            "urn:ietf:params:oauth:token-type:access_token",
        ),
        (
            "requested_token_type",
            "urn:ietf:params:oauth:token-type:access_token",
        ),
        ("resource", upstream.as_str()),
    ];
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(form, want);
}

#[test]
fn audience_resource_and_scopes_as_configured() {
    let s = setup(
        "audience = \"billing-api\"\nresource = \"https://billing.example/mcp\"\nscopes = [\"read\", \"write\"]",
    );
    s.upstream_authorization(&s.token("alice"));
    let (_, form) = s.fake.exchanges.lock().unwrap()[0].clone();
    let get = |k: &str| {
        form.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str().to_string())
    };
    assert_eq!(get("audience").as_deref(), Some("billing-api"));
    assert_eq!(
        get("resource").as_deref(),
        Some("https://billing.example/mcp")
    );
    assert_eq!(get("scope").as_deref(), Some("read write"));
}

#[test]
fn a_token_that_expires_soon_is_not_kept() {
    let s = setup("");
    s.fake.set(Mode::Issue(20));
    let alice = s.token("alice");
    assert_eq!(s.upstream_authorization(&alice), "Bearer up-1");
    assert_eq!(s.upstream_authorization(&alice), "Bearer up-2");
}

fn assert_failed(r: &common::Response, status: u16, message: &str, up: &McpUpstream) {
    assert_eq!(r.status, status, "{}{}", r.head, r.text());
    assert_eq!(challenge(r), None, "{}", r.head);
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body["jsonrpc"], "2.0");
    assert_eq!(body["error"]["message"], message);
    up.untouched();
}

#[test]
fn a_refusal_is_502_and_an_outage_503() {
    let s = setup("");
    let alice = s.token("alice");
    s.fake.set(Mode::Refuse);
    assert_failed(
        &call_with(&s.proxy, &alice),
        502,
        "upstream credentials are unavailable: the token exchange was refused",
        &s.up,
    );
    s.fake.set(Mode::Down);
    assert_failed(
        &call_with(&s.proxy, &alice),
        503,
        "upstream credentials are unavailable: the token exchange cannot be made",
        &s.up,
    );
    // Failures are not kept: once the server issues, the call goes.
    s.fake.set(Mode::Issue(300));
    assert_eq!(s.upstream_authorization(&alice), "Bearer up-1");
    assert_eq!(s.fake.exchanges(), 3);
}

#[test]
fn an_unreachable_token_endpoint_is_503() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let s = setup(&format!("endpoint = \"http://{closed}/token\""));
    assert_failed(
        &call_with(&s.proxy, &s.token("alice")),
        503,
        "upstream credentials are unavailable: the token exchange cannot be made",
        &s.up,
    );
    assert_eq!(s.fake.exchanges(), 0);
}

#[test]
fn a_bad_caller_token_is_refused_before_any_exchange() {
    let s = setup("");
    let mut claims = good_claims(&s.fake.issuer());
    claims["aud"] = json!("http://other.test/mcp");
    let token = s.key.sign(&claims);
    assert_refused(
        &call_with(&s.proxy, &token),
        401,
        Some("invalid_token"),
        &s.up,
    );
    assert_eq!(s.fake.exchanges(), 0);
}

#[test]
fn concurrent_calls_of_one_caller_wait_for_one_exchange() {
    let s = setup("");
    let alice = s.token("alice");
    std::thread::scope(|scope| {
        let calls: Vec<_> = (0..4)
            .map(|_| scope.spawn(|| call_with(&s.proxy, &alice).status))
            .collect();
        for call in calls {
            assert_eq!(call.join().unwrap(), 200);
        }
    });
    for _ in 0..4 {
        assert!(s.up.next().head.contains("Authorization: Bearer up-1\r\n"));
    }
    assert_eq!(s.fake.exchanges(), 1);
}

#[test]
fn a_legacy_backend_gets_the_exchanged_token_on_its_stream_and_its_posts() {
    let key = Key::rsa("k1");
    let fake = FakeAs::start(key.jwk());
    let backend = legacy_backend::backend(legacy_backend::Opts::default());
    let config = format!(
        "listen = \"127.0.0.1:0\"\n\n[[route]]\npath = \"/mcp\"\nupstream = \"http://{}/mcp\"\n\
         transport = \"sse\"\n\n[route.auth]\naudience = \"{AUDIENCE}\"\nissuer = \"{}\"\n\n\
         [route.auth.token_exchange]\nclient_id = \"sluice\"\nclient_secret = \"s3cret\"\n\
         resource = \"http://legacy.test/mcp\"\n",
        backend.addr,
        fake.issuer()
    );
    let proxy = sluice(&config);
    let token = key.sign(&good_claims(&fake.issuer()));
    let with_token = |bytes: Vec<u8>| {
        String::from_utf8(bytes)
            .unwrap()
            .replacen(
                "Host: localhost\r\n",
                &format!("Host: localhost\r\nAuthorization: Bearer {token}\r\n"),
                1,
            )
            .into_bytes()
    };
    use legacy_backend::{BOTH, INIT, exchange, request};
    let init = exchange(&proxy, &with_token(request("POST", INIT, None, BOTH)));
    assert_eq!(init.status, 200, "{}", String::from_utf8_lossy(&init.body));
    let sid = init.header("mcp-session-id").expect("a session");
    let list = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
    let got = exchange(&proxy, &with_token(request("POST", list, Some(&sid), BOTH)));
    assert_eq!(got.status, 200);
    let seen = backend.authorizations.lock().unwrap().clone();
    assert!(
        seen.iter().any(|(m, _)| m == "GET") && seen.iter().any(|(m, _)| m == "POST"),
        "{seen:?}"
    );
    for (method, authorization) in &seen {
        assert_eq!(authorization.as_deref(), Some("Bearer up-1"), "{method}");
    }
    assert_eq!(fake.exchanges(), 1);
}
