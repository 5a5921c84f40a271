//! A route that introspects opaque tokens (RFC 7662) at an authorization
//! server the test runs: it counts its introspection requests (so a cache
//! hit is seen as no request), checks sluice's client authentication, and
//! can answer 503 or be gone.

mod auth_support;
mod common;

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use auth_support::*;
use serde_json::{Value, json};
use sluice::proxy::RunningProxy;
use sluice_core::base64;

const CLIENT_ID: &str = "sluice-rs";
const CLIENT_SECRET: &str = "introspection secret";

/// An authorization server with RFC 8414 metadata, an empty JWKS and an
/// introspection endpoint answering from a table of tokens (unknown
/// tokens are inactive).
struct FakeAs {
    addr: SocketAddr,
    introspections: Arc<AtomicUsize>,
    jwks_hits: Arc<AtomicUsize>,
    down: Arc<AtomicBool>,
    /// How long each introspection answer takes, in milliseconds.
    delay_ms: Arc<AtomicUsize>,
    answers: Arc<Mutex<HashMap<String, Value>>>,
    /// The `Authorization` of each introspection request.
    authorizations: Arc<Mutex<Vec<String>>>,
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

impl FakeAs {
    fn start() -> FakeAs {
        let introspections = Arc::new(AtomicUsize::new(0));
        let jwks_hits = Arc::new(AtomicUsize::new(0));
        let down = Arc::new(AtomicBool::new(false));
        let delay_ms = Arc::new(AtomicUsize::new(0));
        let answers = Arc::new(Mutex::new(HashMap::new()));
        let authorizations = Arc::new(Mutex::new(Vec::new()));
        let (n, j, d, a, auths, wait) = (
            introspections.clone(),
            jwks_hits.clone(),
            down.clone(),
            answers.clone(),
            authorizations.clone(),
            delay_ms.clone(),
        );
        let up = common::upstream(move |conn, req| {
            let mut line = req.head.split(' ');
            let (method, path) = (line.next().unwrap_or(""), line.next().unwrap_or(""));
            let issuer = format!("http://{}", conn.local_addr().unwrap());
            match (method, path) {
                ("GET", "/.well-known/oauth-authorization-server") => {
                    let doc = json!({
                        "issuer": issuer,
                        "jwks_uri": format!("{issuer}/jwks"),
                        "introspection_endpoint": format!("{issuer}/introspect"),
                    });
                    answer(conn, "200 OK", &doc.to_string());
                }
                ("GET", "/jwks") => {
                    j.fetch_add(1, Ordering::SeqCst);
                    answer(conn, "200 OK", r#"{"keys":[]}"#);
                }
                ("POST", "/introspect") => {
                    n.fetch_add(1, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(wait.load(Ordering::SeqCst) as u64));
                    let authorization = req
                        .head
                        .split("\r\n")
                        .find_map(|l| l.strip_prefix("Authorization: "))
                        .unwrap_or("")
                        .to_string();
                    auths.lock().unwrap().push(authorization);
                    if d.load(Ordering::SeqCst) {
                        answer(conn, "503 Service Unavailable", "");
                        return false;
                    }
                    let body = String::from_utf8_lossy(&req.body).to_string();
                    let token = body
                        .split('&')
                        .find_map(|p| p.strip_prefix("token="))
                        .unwrap_or("");
                    let found = a.lock().unwrap().get(token).cloned();
                    let reply = found.unwrap_or_else(|| json!({"active": false}));
                    answer(conn, "200 OK", &reply.to_string());
                }
                _ => answer(conn, "404 Not Found", ""),
            }
            false
        });
        FakeAs {
            addr: up.addr,
            introspections,
            jwks_hits,
            down,
            delay_ms,
            answers,
            authorizations,
            _requests: up.requests,
        }
    }

    fn issuer(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Introspection answers `token` as active with these claims over the
    /// usual good ones (`null` removes one).
    fn active(&self, token: &str, over: Value) {
        let mut claims = good_claims(&self.issuer());
        claims["active"] = json!(true);
        for (k, v) in over.as_object().unwrap() {
            match v {
                Value::Null => claims.as_object_mut().unwrap().remove(k),
                v => claims.as_object_mut().unwrap().insert(k.clone(), v.clone()),
            };
        }
        self.answers
            .lock()
            .unwrap()
            .insert(token.to_string(), claims);
    }

    fn introspections(&self) -> usize {
        self.introspections.load(Ordering::SeqCst)
    }
}

/// A directory of its own, removed at the end.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("sluice-{name}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Setup {
    fake: FakeAs,
    up: McpUpstream,
    proxy: RunningProxy,
    _dir: TempDir,
}

/// A route at `/mcp` with the fake AS as issuer, introspection found
/// through its metadata, the secret read from a file; `extra` is added to
/// the `[route.auth.introspection]` table, `auth_extra` to `[route.auth]`.
fn setup_with(auth_extra: &str, extra: &str) -> Setup {
    let fake = FakeAs::start();
    let up = McpUpstream::start();
    let dir = TempDir::new("auth-introspection");
    let secret = dir.path().join("secret");
    std::fs::write(&secret, format!("{CLIENT_SECRET}\n")).unwrap();
    let auth = format!(
        "issuer = \"{}\"\n{auth_extra}\n[route.auth.introspection]\nclient_id = \"{CLIENT_ID}\"\n\
         client_secret = {{ from_file = \"{}\" }}\n{extra}\n",
        fake.issuer(),
        secret.display()
    );
    let proxy = sluice(&config(up.addr, &auth));
    Setup {
        fake,
        up,
        proxy,
        _dir: dir,
    }
}

fn setup() -> Setup {
    setup_with("", "")
}

fn assert_passed(r: &common::Response, up: &McpUpstream) -> common::Received {
    assert_eq!(r.status, 200, "{}{}", r.head, r.text());
    up.next()
}

#[test]
fn an_active_token_passes_is_introspected_once_and_stays_home() {
    let s = setup();
    s.fake.active("opaque-alice", json!({}));
    for _ in 0..3 {
        let seen = assert_passed(&call_with(&s.proxy, "opaque-alice"), &s.up);
        assert!(
            !seen.head.to_ascii_lowercase().contains("authorization"),
            "{}",
            seen.head
        );
    }
    assert_eq!(s.fake.introspections(), 1, "later requests hit the cache");
    // sluice authenticated itself with client_secret_basic (RFC 6749
    // §2.3.1: the space in the secret form-encoded as '+').
    let want = format!(
        "Basic {}",
        base64::encode(format!("{CLIENT_ID}:introspection+secret").as_bytes())
    );
    assert_eq!(*s.fake.authorizations.lock().unwrap(), [want]);
}

#[test]
fn an_inactive_token_is_401_and_the_refusal_is_cached_too() {
    let s = setup();
    for _ in 0..2 {
        assert_refused(
            &call_with(&s.proxy, "revoked"),
            401,
            Some("invalid_token"),
            &s.up,
        );
    }
    assert_eq!(s.fake.introspections(), 1);
}

#[test]
fn expired() {
    let s = setup();
    s.fake.active("old", json!({"exp": now() - 120}));
    assert_refused(
        &call_with(&s.proxy, "old"),
        401,
        Some("invalid_token"),
        &s.up,
    );
}

#[test]
fn wrong_audience_or_none() {
    let s = setup();
    s.fake
        .active("other", json!({"aud": "http://other.test/mcp"}));
    s.fake.active("no-aud", json!({"aud": null}));
    for token in ["other", "no-aud"] {
        assert_refused(
            &call_with(&s.proxy, token),
            401,
            Some("invalid_token"),
            &s.up,
        );
    }
}

#[test]
fn wrong_issuer() {
    let s = setup();
    s.fake.active("evil", json!({"iss": "http://evil.test"}));
    assert_refused(
        &call_with(&s.proxy, "evil"),
        401,
        Some("invalid_token"),
        &s.up,
    );
}

#[test]
fn missing_scope_is_403() {
    let s = setup_with("required_scopes = [\"mcp:admin\"]", "");
    s.fake.active("alice", json!({}));
    let r = call_with(&s.proxy, "alice");
    assert_eq!(r.status, 403, "{}", r.head);
    assert_eq!(
        challenge(&r).as_deref(),
        Some(
            format!(
                "Bearer resource_metadata=\"{METADATA}\", error=\"insufficient_scope\", scope=\"mcp:admin\""
            )
            .as_str()
        )
    );
    s.up.untouched();
}

fn assert_unavailable(r: &common::Response, up: &McpUpstream) {
    assert_eq!(r.status, 503, "{}{}", r.head, r.text());
    assert_eq!(challenge(r), None, "{}", r.head);
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body["jsonrpc"], "2.0");
    assert_eq!(
        body["error"]["message"],
        "authorization is unavailable: the token cannot be introspected"
    );
    up.untouched();
}

#[test]
fn as_down_is_503_with_a_json_rpc_error_and_not_cached() {
    let s = setup();
    s.fake.active("alice", json!({}));
    s.fake.down.store(true, Ordering::SeqCst);
    assert_unavailable(&call_with(&s.proxy, "alice"), &s.up);
    s.fake.down.store(false, Ordering::SeqCst);
    assert_passed(&call_with(&s.proxy, "alice"), &s.up);
    assert_eq!(s.fake.introspections(), 2);
}

#[test]
fn an_unreachable_endpoint_is_503() {
    // A port that was free a moment ago: nothing listens there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let s = setup_with("", &format!("endpoint = \"http://{closed}/introspect\""));
    s.fake.active("alice", json!({}));
    assert_unavailable(&call_with(&s.proxy, "alice"), &s.up);
    assert_eq!(s.fake.introspections(), 0);
}

#[test]
fn a_configured_endpoint_is_used() {
    let fake2 = FakeAs::start();
    let s = setup_with(
        "",
        &format!("endpoint = \"http://{}/introspect\"", fake2.addr),
    );
    // fake2 knows the token, with the issuer the route expects.
    let mut claims = good_claims(&s.fake.issuer());
    claims["active"] = json!(true);
    fake2.answers.lock().unwrap().insert("alice".into(), claims);
    assert_passed(&call_with(&s.proxy, "alice"), &s.up);
    assert_eq!((fake2.introspections(), s.fake.introspections()), (1, 0));
}

#[test]
fn the_cache_ttl_bounds_an_active_answer() {
    let s = setup_with("", "cache_ttl = \"1s\"");
    s.fake.active("alice", json!({}));
    assert_passed(&call_with(&s.proxy, "alice"), &s.up);
    assert_passed(&call_with(&s.proxy, "alice"), &s.up);
    assert_eq!(s.fake.introspections(), 1);
    // Past the ttl the answer is gone (it cannot outlive it).
    std::thread::sleep(Duration::from_millis(1500));
    assert_passed(&call_with(&s.proxy, "alice"), &s.up);
    assert_eq!(s.fake.introspections(), 2);
}

#[test]
fn a_cache_of_one_keeps_the_latest() {
    let s = setup_with("", "cache_size = 1");
    s.fake.active("a", json!({}));
    s.fake.active("b", json!({}));
    for token in ["a", "b", "b", "a"] {
        assert_passed(&call_with(&s.proxy, token), &s.up);
    }
    // a, b (evicts a), b from the cache, a again.
    assert_eq!(s.fake.introspections(), 3);
}

#[test]
fn jwts_are_verified_locally_unless_every_token_is_introspected() {
    let s = setup();
    let key = Key::rsa("k1");
    let jwt = key.sign(&good_claims(&s.fake.issuer()));
    // The JWKS is empty: the JWT cannot be verified, and is not introspected.
    let r = call_with(&s.proxy, &jwt);
    assert!(r.status == 503 || r.status == 401, "{}", r.head);
    assert_eq!(s.fake.introspections(), 0);

    let all = setup_with("", "tokens = \"all\"");
    all.fake.active(&jwt, json!({}));
    assert_passed(&call_with(&all.proxy, &jwt), &all.up);
    assert_eq!(all.fake.introspections(), 1);
    // No keys are fetched for a route that introspects everything.
    assert_eq!(all.fake.jwks_hits.load(Ordering::SeqCst), 0);
}

#[test]
fn an_api_key_is_found_before_introspection() {
    let key = "k-0123456789";
    let hash: String = sluice_core::auth::api_key::sha256(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let s = setup_with(
        &format!("[[route.auth.api_key]]\nsha256 = \"{hash}\"\nsubject = \"bot\"\n"),
        "",
    );
    s.fake.active("alice", json!({}));
    assert_passed(&call_with(&s.proxy, key), &s.up);
    assert_passed(&call_with(&s.proxy, "alice"), &s.up);
    assert_eq!(s.fake.introspections(), 1);

    // Also when every token is introspected: the key is sluice's own.
    let all = setup_with(
        &format!("[[route.auth.api_key]]\nsha256 = \"{hash}\"\nsubject = \"bot\"\n"),
        "tokens = \"all\"",
    );
    assert_passed(&call_with(&all.proxy, key), &all.up);
    assert_eq!(all.fake.introspections(), 0);
}

#[test]
fn concurrent_requests_with_a_new_token_wait_for_one_introspection() {
    let s = setup();
    s.fake.active("alice", json!({}));
    // Slow enough that the four requests overlap: without the wait for
    // the one under way, each would introspect.
    s.fake.delay_ms.store(400, Ordering::SeqCst);
    std::thread::scope(|scope| {
        let calls: Vec<_> = (0..4)
            .map(|_| scope.spawn(|| call_with(&s.proxy, "alice").status))
            .collect();
        for call in calls {
            assert_eq!(call.join().unwrap(), 200);
        }
    });
    for _ in 0..4 {
        s.up.next();
    }
    assert_eq!(s.fake.introspections(), 1);
}

#[test]
fn sluice_does_not_start_without_its_client_secret() {
    let fake = FakeAs::start();
    let up = McpUpstream::start();
    let var = "SLUICE_TEST_INTROSPECTION_SECRET_THAT_IS_NOT_SET";
    assert!(std::env::var_os(var).is_none());
    let auth = format!(
        "issuer = \"{}\"\n\n[route.auth.introspection]\nclient_id = \"{CLIENT_ID}\"\n\
         client_secret = {{ from_env = \"{var}\" }}\n",
        fake.issuer()
    );
    let config = sluice::config::Config::from_toml(
        &config(up.addr, &auth),
        "test.toml",
        std::path::Path::new("/tmp"),
    )
    .unwrap();
    let e = match sluice::settings::proxy_settings(&config) {
        Ok(_) => panic!("set up without its secret"),
        Err(e) => e.to_string(),
    };
    assert!(
        e.contains("auth.introspection.client_secret")
            && e.contains(&format!("sluice's environment variable {var} is not set")),
        "{e}"
    );
}
