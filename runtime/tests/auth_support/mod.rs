//! What the auth tests share: signing keys and their JWKs, tokens signed
//! (or forged) by hand, a JWKS server that counts its hits and can go
//! down, an MCP upstream that records what reached it, and sluice started
//! in-process from a config file's text.
#![allow(dead_code)]

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ring::rand::SystemRandom;
use ring::signature::{self, KeyPair};
use serde_json::{Value, json};
use sluice::config::Config;
use sluice::proxy::{self, RunningProxy};
use sluice_core::base64;

use crate::common::{self, Received, Response};

/// The audience every test route expects.
pub const AUDIENCE: &str = "http://mcp.test/mcp";

pub fn b64(bytes: &[u8]) -> String {
    base64::encode_url(bytes)
}

/// A signing key with its `kid`.
pub enum Signer {
    Rsa(signature::RsaKeyPair),
    Ec(signature::EcdsaKeyPair),
    Ed(signature::Ed25519KeyPair),
}

pub struct Key {
    pub kid: String,
    pub signer: Signer,
}

impl Key {
    /// The committed RSA test key.
    pub fn rsa(kid: &str) -> Key {
        let pem = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/auth/rsa-2048.pem"),
        )
        .unwrap();
        let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = base64::decode(&b64).unwrap();
        Key {
            kid: kid.into(),
            signer: Signer::Rsa(signature::RsaKeyPair::from_pkcs8(&der).unwrap()),
        }
    }

    /// A fresh P-256 key.
    pub fn ec(kid: &str) -> Key {
        let rng = SystemRandom::new();
        let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
        let pkcs8 = signature::EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
        Key {
            kid: kid.into(),
            signer: Signer::Ec(
                signature::EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap(),
            ),
        }
    }

    /// A fresh Ed25519 key.
    pub fn ed(kid: &str) -> Key {
        let pkcs8 = signature::Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        Key {
            kid: kid.into(),
            signer: Signer::Ed(signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap()),
        }
    }

    /// The algorithm this key signs with here.
    pub fn alg(&self) -> &'static str {
        match self.signer {
            Signer::Rsa(_) => "RS256",
            Signer::Ec(_) => "ES256",
            Signer::Ed(_) => "EdDSA",
        }
    }

    /// Its public JWK.
    pub fn jwk(&self) -> Value {
        match &self.signer {
            Signer::Rsa(k) => {
                let public = ring::rsa::PublicKeyComponents::<Vec<u8>>::from(k.public());
                json!({
                    "kty": "RSA", "kid": self.kid, "use": "sig", "alg": "RS256",
                    "n": b64(&public.n),
                    "e": b64(&public.e),
                })
            }
            Signer::Ec(k) => {
                let point = k.public_key().as_ref();
                json!({
                    "kty": "EC", "kid": self.kid, "crv": "P-256",
                    "x": b64(&point[1..33]), "y": b64(&point[33..65]),
                })
            }
            Signer::Ed(k) => json!({
                "kty": "OKP", "kid": self.kid, "crv": "Ed25519",
                "x": b64(k.public_key().as_ref()),
            }),
        }
    }

    /// The RSA public key's DER bytes (what a key-confusion forger uses
    /// as an HMAC secret).
    pub fn public_der(&self) -> Vec<u8> {
        match &self.signer {
            Signer::Rsa(k) => k.public_key().as_ref().to_vec(),
            Signer::Ec(k) => k.public_key().as_ref().to_vec(),
            Signer::Ed(k) => k.public_key().as_ref().to_vec(),
        }
    }

    /// Signs `header.claims` as this key does.
    pub fn sign_parts(&self, header: &Value, claims: &Value) -> String {
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let rng = SystemRandom::new();
        let sig = match &self.signer {
            Signer::Rsa(k) => {
                let mut sig = vec![0; k.public().modulus_len()];
                k.sign(
                    &signature::RSA_PKCS1_SHA256,
                    &rng,
                    input.as_bytes(),
                    &mut sig,
                )
                .unwrap();
                sig
            }
            Signer::Ec(k) => k.sign(&rng, input.as_bytes()).unwrap().as_ref().to_vec(),
            Signer::Ed(k) => k.sign(input.as_bytes()).as_ref().to_vec(),
        };
        format!("{input}.{}", b64(&sig))
    }

    /// A token for `claims` with this key's header.
    pub fn sign(&self, claims: &Value) -> String {
        self.sign_parts(
            &json!({"alg": self.alg(), "kid": self.kid, "typ": "at+jwt"}),
            claims,
        )
    }
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Claims that pass every check of the test routes.
pub fn good_claims(issuer: &str) -> Value {
    json!({
        "iss": issuer,
        "aud": AUDIENCE,
        "sub": "alice",
        "client_id": "test-client",
        "exp": now() + 300,
        "iat": now(),
        "scope": "mcp:tools mcp:read",
    })
}

/// A JWKS (and authorization server metadata) server.
pub struct JwksServer {
    pub addr: SocketAddr,
    pub hits: Arc<AtomicUsize>,
    pub down: Arc<AtomicBool>,
    pub keys: Arc<Mutex<Vec<Value>>>,
    /// Kept: the fixture stops serving when nobody holds its receiver.
    _requests: mpsc::Receiver<Received>,
}

impl JwksServer {
    pub fn start(keys: Vec<Value>) -> JwksServer {
        let hits = Arc::new(AtomicUsize::new(0));
        let down = Arc::new(AtomicBool::new(false));
        let keys = Arc::new(Mutex::new(keys));
        let (h, d, k) = (hits.clone(), down.clone(), keys.clone());
        let up = common::upstream(move |conn, req| {
            let path = req.head.split(' ').nth(1).unwrap_or("").to_string();
            let issuer = format!("http://{}", conn.local_addr().unwrap());
            let body = match path.as_str() {
                "/jwks" => {
                    h.fetch_add(1, Ordering::SeqCst);
                    if d.load(Ordering::SeqCst) {
                        let _ = conn.write_all(
                            b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                        );
                        return false;
                    }
                    json!({ "keys": *k.lock().unwrap() }).to_string()
                }
                "/.well-known/oauth-authorization-server" => json!({
                    "issuer": issuer,
                    "jwks_uri": format!("{issuer}/jwks"),
                })
                .to_string(),
                _ => {
                    let _ = conn.write_all(
                        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    );
                    return false;
                }
            };
            let _ = conn.write_all(
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                     Connection: close\r\n\r\n{body}",
                    body.len()
                )
                .as_bytes(),
            );
            false
        });
        JwksServer {
            addr: up.addr,
            hits,
            down,
            keys,
            _requests: up.requests,
        }
    }

    pub fn issuer(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// Waits until the JWKS was fetched at least `n` times.
    pub fn wait_hits(&self, n: usize) {
        for _ in 0..500 {
            if self.hits() >= n {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("the JWKS was fetched {} times, not {n}", self.hits());
    }
}

/// An MCP upstream that answers every POST with a result and reports
/// what it received.
pub struct McpUpstream {
    pub addr: SocketAddr,
    pub requests: mpsc::Receiver<Received>,
}

impl McpUpstream {
    pub fn start() -> McpUpstream {
        let up = common::upstream(|conn, _| {
            common::json_response(conn, r#"{"jsonrpc":"2.0","id":"abc","result":{}}"#);
            true
        });
        McpUpstream {
            addr: up.addr,
            requests: up.requests,
        }
    }

    /// The next request that reached it.
    pub fn next(&self) -> Received {
        self.requests
            .recv_timeout(Duration::from_secs(10))
            .expect("a request reached the upstream")
    }

    /// Nothing reached it.
    pub fn untouched(&self) {
        if let Ok(r) = self.requests.recv_timeout(Duration::from_millis(100)) {
            panic!("the upstream was reached: {}", r.head);
        }
    }
}

/// sluice started from `config` (TOML text).
pub fn sluice(config: &str) -> RunningProxy {
    let config = Config::from_toml(config, "test.toml", Path::new("/tmp")).expect("config parses");
    let mut settings = sluice::settings::proxy_settings(&config).expect("settings");
    settings.access_log = false;
    proxy::start(settings).expect("sluice starts")
}

/// The usual test config: a route at `/mcp` in front of `upstream`, with
/// `auth` as its `[route.auth]` body.
pub fn config(upstream: SocketAddr, auth: &str) -> String {
    format!(
        "listen = \"127.0.0.1:0\"\n\n[[route]]\npath = \"/mcp\"\nupstream = \"http://{upstream}/mcp\"\n\
         transport = \"streamable\"\n\n[route.auth]\naudience = \"{AUDIENCE}\"\n{auth}\n"
    )
}

/// A JWT route in front of `upstream` with keys at `jwks`.
pub fn jwt_config(upstream: SocketAddr, jwks: &JwksServer, extra: &str) -> String {
    config(
        upstream,
        &format!(
            "issuer = \"{}\"\njwks_uri = \"{}/jwks\"\n{extra}",
            jwks.issuer(),
            jwks.issuer()
        ),
    )
}

/// POSTs a tools/call to `target` with these extra header lines.
pub fn call(proxy: &RunningProxy, target: &str, headers: &str) -> Response {
    let mut c = common::connect(proxy.local_addr());
    let body = common::CALL;
    let request = format!(
        "POST {target} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\n{headers}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    c.write_all(request.as_bytes()).unwrap();
    common::read_response(&mut c, "POST")
}

/// POSTs with `Authorization: Bearer <token>`.
pub fn call_with(proxy: &RunningProxy, token: &str) -> Response {
    call(proxy, "/mcp", &format!("Authorization: Bearer {token}\r\n"))
}

/// GETs `path`.
pub fn get(proxy: &RunningProxy, path: &str) -> Response {
    let mut c: TcpStream = common::connect(proxy.local_addr());
    c.write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes())
        .unwrap();
    common::read_response(&mut c, "GET")
}

/// The `WWW-Authenticate` value of a response.
pub fn challenge(r: &Response) -> Option<String> {
    r.head.split("\r\n").find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("www-authenticate")
            .then(|| value.trim().to_string())
    })
}

/// The metadata URL of the test routes.
pub const METADATA: &str = "http://mcp.test/.well-known/oauth-protected-resource/mcp";

/// Asserts a refusal: status, challenge, a JSON-RPC error body that says
/// nothing of why, and nothing upstream.
pub fn assert_refused(r: &Response, status: u16, error: Option<&str>, up: &McpUpstream) {
    assert_eq!(r.status, status, "{}{}", r.head, r.text());
    let want = match error {
        None => format!("Bearer resource_metadata=\"{METADATA}\""),
        Some(e) => format!("Bearer resource_metadata=\"{METADATA}\", error=\"{e}\""),
    };
    assert_eq!(challenge(r).as_deref(), Some(want.as_str()), "{}", r.head);
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body["jsonrpc"], "2.0");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        [
            "authorization required",
            "malformed authorization",
            "invalid access token",
            "insufficient scope"
        ]
        .contains(&message),
        "{message}"
    );
    up.untouched();
}
