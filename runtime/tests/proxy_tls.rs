//! The proxy towards an `https` upstream: a rustls server with certificates
//! from a CA generated at test time, trusted through a CA file the way
//! `--ca-file` does it.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::Duration;

use common::{CALL, Received, connect, post, read_response};
use futures_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use futures_rustls::rustls::{self, ClientConfig, ServerConfig, ServerConnection, StreamOwned};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use sluice::proxy::{self, ProxySettings, RunningProxy};
use sluice::tls::client_config;
use sluice_core::http1::{self, BodyFraming, Parsed};
use sluice_core::route::{Route, Router};

/// A test certificate authority.
struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

fn new_ca(name: &str) -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    Ca {
        pem: cert.pem(),
        issuer: Issuer::new(params, key),
    }
}

/// A server configuration presenting a certificate for `dns_name` signed by `ca`.
fn server_for(ca: &Ca, dns_name: &str) -> Arc<ServerConfig> {
    let mut params = CertificateParams::new(vec![dns_name.to_owned()]).unwrap();
    params.distinguished_name.push(DnType::CommonName, dns_name);
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca.issuer).unwrap();
    let chain = vec![cert.der().clone()];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// A file under the temp directory, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(contents: &[u8]) -> TempFile {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "sluice-tls-test-{}-{}.pem",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&path, contents).unwrap();
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The client configuration `--ca-file` builds: no built-in roots, only the CA.
fn trusting(ca: &Ca) -> Arc<ClientConfig> {
    let file = TempFile::new(ca.pem.as_bytes());
    client_config(None, Some(&file.0)).expect("a CA file with one certificate loads")
}

type Tls = StreamOwned<ServerConnection, TcpStream>;

/// An HTTPS upstream on a free loopback port; like `common::upstream`, it
/// reports each request and runs `script`, which returns whether to keep
/// the connection for another request.
struct TlsUpstream {
    addr: SocketAddr,
    requests: mpsc::Receiver<Received>,
}

fn tls_upstream(
    config: Arc<ServerConfig>,
    script: impl Fn(&mut Tls, &Received) -> bool + Send + Sync + 'static,
) -> TlsUpstream {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    let script = Arc::new(script);
    thread::spawn(move || {
        for (index, tcp) in listener.incoming().enumerate() {
            let Ok(tcp) = tcp else { return };
            let (tx, script, config) = (tx.clone(), script.clone(), config.clone());
            thread::spawn(move || {
                tcp.set_nodelay(true).unwrap();
                let _ = tcp.set_read_timeout(Some(Duration::from_secs(20)));
                let conn = ServerConnection::new(config).unwrap();
                let mut tls = StreamOwned::new(conn, tcp);
                let mut buf = Vec::new();
                while let Some(req) = read_request(&mut tls, &mut buf, index) {
                    if tx.send(req.clone()).is_err() || !script(&mut tls, &req) {
                        break;
                    }
                }
                tls.conn.send_close_notify();
                let _ = tls.flush();
            });
        }
    });
    TlsUpstream { addr, requests: rx }
}

fn read_request(conn: &mut impl Read, buf: &mut Vec<u8>, connection: usize) -> Option<Received> {
    let limits = http1::Limits::default();
    loop {
        if let Ok(Parsed::Complete { head, len }) = http1::parse_request_head(buf, &limits) {
            let n = match http1::request_framing(&head) {
                Ok(BodyFraming::ContentLength(n)) => n as usize,
                _ => 0,
            };
            while buf.len() < len + n {
                read_more(conn, buf)?;
            }
            let received = Received {
                head: String::from_utf8_lossy(&buf[..len]).into_owned(),
                body: buf[len..len + n].to_vec(),
                connection,
            };
            buf.drain(..len + n);
            return Some(received);
        }
        read_more(conn, buf)?;
    }
}

fn read_more(conn: &mut impl Read, buf: &mut Vec<u8>) -> Option<()> {
    let mut chunk = [0u8; 8192];
    match conn.read(&mut chunk) {
        Ok(0) | Err(_) => None,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            Some(())
        }
    }
}

fn send(tls: &mut Tls, bytes: &[u8]) {
    tls.write_all(bytes).unwrap();
    tls.flush().unwrap();
}

/// Sluice in front of `https://localhost:<port>/mcp`, with `tls` as its
/// client configuration.
fn proxy_to(upstream: SocketAddr, tls: Option<Arc<ClientConfig>>) -> RunningProxy {
    let mut settings = ProxySettings::single("127.0.0.1:0".parse().unwrap(), upstream, "/mcp");
    settings.access_log = false;
    settings.upstreams[0].tls = true;
    settings.upstreams[0].host = "localhost".to_owned();
    settings.exchange.router = Router::new(vec![Route {
        prefix: "/mcp".to_owned(),
        upstream_path: "/mcp".to_owned(),
        well_known: true,
        upstream_host: format!("localhost:{}", upstream.port()),
        upstream_query: None,
    }]);
    settings.tls = tls;
    proxy::start(settings).expect("proxy starts")
}

const JSON_ANSWER: &str =
    r#"{"jsonrpc":"2.0","id":"abc","result":{"content":[{"type":"text","text":"hi"}]}}"#;

static SSE_EVENTS: &[&[u8]] = &[
    b": keep\n\n",
    b"id: 7\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{}}\n\n",
    b"event: message\r\ndata: {\"jsonrpc\":\"2.0\",\"id\":\"abc\",",
    b"\r\ndata: \"result\":{}}\r\n\r\n",
];

/// Answers `tools/call` with JSON and anything mentioning `"sse"` with a
/// chunked event stream; keeps every connection.
fn json_and_sse_upstream(config: Arc<ServerConfig>) -> TlsUpstream {
    tls_upstream(config, |tls, req| {
        if String::from_utf8_lossy(&req.body).contains("\"sse\"") {
            send(
                tls,
                b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n\
                  Transfer-Encoding: chunked\r\n\r\n",
            );
            for event in SSE_EVENTS {
                let mut chunk = format!("{:x}\r\n", event.len()).into_bytes();
                chunk.extend_from_slice(event);
                chunk.extend_from_slice(b"\r\n");
                send(tls, &chunk);
            }
            send(tls, b"0\r\n\r\n");
        } else {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nMcp-Session-Id: s-1\r\n\
                 Content-Length: {}\r\n\r\n",
                JSON_ANSWER.len()
            );
            send(tls, head.as_bytes());
            send(tls, JSON_ANSWER.as_bytes());
        }
        true
    })
}

const SSE_CALL: &str =
    r#"{"jsonrpc":"2.0","id":"abc","method":"tools/call","params":{"name":"sse","arguments":{}}}"#;

#[test]
fn json_and_sse_pass_byte_exactly_over_one_reused_tls_connection() {
    let ca = new_ca("sluice test CA");
    let up = json_and_sse_upstream(server_for(&ca, "localhost"));
    let proxy = proxy_to(up.addr, Some(trusting(&ca)));
    let mut c = connect(proxy.local_addr());

    c.write_all(&post(CALL)).unwrap();
    let r = read_response(&mut c, "POST");
    assert_eq!(r.status, 200, "{}", r.head);
    assert!(r.complete);
    assert!(r.head.contains("Content-Type: application/json\r\n"));
    assert!(r.head.contains("Mcp-Session-Id: s-1\r\n"));
    assert_eq!(r.text(), JSON_ANSWER);

    c.write_all(&post(SSE_CALL)).unwrap();
    let r = read_response(&mut c, "POST");
    assert_eq!(r.status, 200, "{}", r.head);
    assert!(r.complete, "the stream ends with its last chunk");
    assert!(r.head.contains("Content-Type: text/event-stream\r\n"));
    assert_eq!(r.body, SSE_EVENTS.concat());

    let first = up.requests.recv().unwrap();
    let second = up.requests.recv().unwrap();
    assert_eq!(first.body, CALL.as_bytes());
    assert_eq!(second.body, SSE_CALL.as_bytes());
    assert!(
        first
            .head
            .contains(&format!("Host: localhost:{}\r\n", up.addr.port())),
        "{}",
        first.head
    );
    assert_eq!(
        (first.connection, second.connection),
        (0, 0),
        "both requests on one pooled TLS connection"
    );
    proxy.shutdown();
}

#[test]
fn keep_alive_over_tls_holds_for_many_requests() {
    let ca = new_ca("sluice test CA");
    let up = json_and_sse_upstream(server_for(&ca, "localhost"));
    let proxy = proxy_to(up.addr, Some(trusting(&ca)));
    let mut c = connect(proxy.local_addr());
    for i in 0..6 {
        let body = if i % 2 == 0 { CALL } else { SSE_CALL };
        c.write_all(&post(body)).unwrap();
        let r = read_response(&mut c, "POST");
        assert_eq!(r.status, 200);
        assert!(r.complete);
    }
    let conns: Vec<usize> = (0..6)
        .map(|_| up.requests.recv().unwrap().connection)
        .collect();
    assert_eq!(conns, vec![0; 6]);
    proxy.shutdown();
}

/// A request through a proxy whose TLS handshake upstream must fail: the
/// client gets a 502 carrying its request id, and nothing reaches the upstream.
fn assert_handshake_refused(up: TlsUpstream, proxy: RunningProxy) {
    let mut c = connect(proxy.local_addr());
    c.write_all(&post(CALL)).unwrap();
    let r = read_response(&mut c, "POST");
    assert_eq!(r.status, 502, "{} {}", r.head, r.text());
    let json: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(json["jsonrpc"], "2.0");
    assert_eq!(json["id"], "abc");
    assert!(json["error"]["code"].is_i64(), "{json}");
    assert!(
        up.requests.try_recv().is_err(),
        "no request went over a connection that failed verification"
    );
    proxy.shutdown();
}

#[test]
fn a_certificate_from_another_ca_is_a_502_with_the_id() {
    let trusted = new_ca("sluice test CA");
    let other = new_ca("someone else's CA");
    let up = json_and_sse_upstream(server_for(&other, "localhost"));
    let proxy = proxy_to(up.addr, Some(trusting(&trusted)));
    assert_handshake_refused(up, proxy);
}

#[test]
fn a_certificate_for_another_name_is_a_502_with_the_id() {
    let ca = new_ca("sluice test CA");
    let up = json_and_sse_upstream(server_for(&ca, "not-localhost.example"));
    let proxy = proxy_to(up.addr, Some(trusting(&ca)));
    assert_handshake_refused(up, proxy);
}

#[test]
fn an_empty_trust_store_is_refused_at_configuration() {
    let err = client_config(None, None).expect_err("trusting nothing is an error");
    assert!(format!("{err:#}").contains("no trust anchors"), "{err:#}");
}

#[test]
fn an_https_upstream_without_a_tls_config_is_a_502_with_the_id() {
    let ca = new_ca("sluice test CA");
    let up = json_and_sse_upstream(server_for(&ca, "localhost"));
    let proxy = proxy_to(up.addr, None);
    assert_handshake_refused(up, proxy);
}

#[test]
fn ca_file_errors_name_the_file() {
    let check = |contents: Option<&[u8]>, expect: &str| {
        let file = TempFile::new(contents.unwrap_or_default());
        if contents.is_none() {
            std::fs::remove_file(&file.0).unwrap();
        }
        let err = client_config(None, Some(&file.0)).expect_err(expect);
        let message = format!("{err:#}");
        assert!(
            message.contains(&file.0.display().to_string()),
            "{message:?} names {}",
            file.0.display()
        );
        assert!(message.contains(expect), "{message:?} says {expect:?}");
    };
    check(None, "cannot read CA file");
    check(Some(b""), "holds no certificate");
    check(
        Some(b"# a comment, and a key rather than a certificate\n"),
        "holds no certificate",
    );
    check(
        Some(b"-----BEGIN CERTIFICATE-----\n!!!! not base64 !!!!\n-----END CERTIFICATE-----\n"),
        "bad PEM",
    );
    // A well-formed PEM block whose contents are not a certificate.
    check(
        Some(b"-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n"),
        "unusable certificate",
    );
}

#[test]
fn a_ca_file_adds_to_the_builtin_roots() {
    let ca = new_ca("sluice test CA");
    let file = TempFile::new(ca.pem.as_bytes());
    let config = client_config(Some(sluice::tls::Roots::Webpki), Some(&file.0)).unwrap();
    assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()]);
    let up = json_and_sse_upstream(server_for(&ca, "localhost"));
    let proxy = proxy_to(up.addr, Some(config));
    let mut c = connect(proxy.local_addr());
    c.write_all(&post(CALL)).unwrap();
    let r = read_response(&mut c, "POST");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), JSON_ANSWER);
    proxy.shutdown();
}

/// `[tracing]` towards `receiver`, an https endpoint named `localhost`,
/// trusting what `tls` trusts.
fn tracing_over_tls(receiver: &TlsUpstream, tls: Arc<ClientConfig>) -> sluice::otel::TraceSettings {
    sluice::otel::TraceSettings {
        host: "localhost".into(),
        port: receiver.addr.port(),
        target: "/v1/traces".into(),
        authority: format!("localhost:{}", receiver.addr.port()),
        sample_ratio: 1.0,
        service_name: "sluice-tls".into(),
        queue_spans: 64,
        tls: Some(tls),
    }
}

fn traced_call(receiver: &TlsUpstream, tls: Arc<ClientConfig>) -> proxy::RunningProxy {
    let up = common::upstream(|conn, _| {
        common::json_response(conn, r#"{"jsonrpc":"2.0","id":"abc","result":{}}"#);
        true
    });
    let proxy = common::proxy_with(up.addr, |s| {
        s.tracing = Some(tracing_over_tls(receiver, tls))
    });
    let mut client = connect(proxy.local_addr());
    client.write_all(&post(CALL)).unwrap();
    assert_eq!(read_response(&mut client, "POST").status, 200);
    proxy
}

#[test]
fn spans_go_to_an_https_receiver_over_tls_checked_against_the_trust_anchors() {
    let ca = new_ca("sluice trace CA");
    let answer_ok = |tls: &mut Tls, _: &Received| {
        let _ =
            tls.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}");
        false
    };
    let receiver = tls_upstream(server_for(&ca, "localhost"), answer_ok);
    let proxy = traced_call(&receiver, trusting(&ca));
    let export = receiver
        .requests
        .recv_timeout(Duration::from_secs(30))
        .expect("an export over TLS");
    assert!(
        export.head.starts_with("POST /v1/traces HTTP/1.1\r\n"),
        "{}",
        export.head
    );
    let body: serde_json::Value = serde_json::from_slice(&export.body).expect("OTLP/JSON");
    let spans = &body["resourceSpans"][0]["scopeSpans"][0]["spans"];
    assert!(spans.as_array().is_some_and(|s| !s.is_empty()), "{body}");
    proxy.shutdown();

    // A receiver whose certificate another CA signed gets no span: the
    // handshake fails before a byte of the export is sent.
    let stranger = new_ca("someone else's CA");
    let receiver = tls_upstream(server_for(&stranger, "localhost"), answer_ok);
    let proxy = traced_call(&receiver, trusting(&ca));
    assert!(
        receiver
            .requests
            .recv_timeout(Duration::from_secs(3))
            .is_err(),
        "an export reached a receiver sluice does not trust"
    );
    proxy.shutdown();
}
