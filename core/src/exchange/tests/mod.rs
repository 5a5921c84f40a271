//! The exchange between a scripted client and a scripted upstream, on a
//! virtual clock.

use super::*;
use crate::http1::{ChunkedDecoder, Parsed};
use crate::jsonrpc::codes;
use crate::route::Route;

fn config() -> ExchangeConfig {
    ExchangeConfig {
        router: Router::new(vec![Route {
            prefix: "/mcp".into(),
            upstream_path: "/mcp".into(),
            well_known: true,
            upstream_host: "backend:3000".into(),
            upstream_query: None,
        }]),
        guard: HostGuard::local_default("127.0.0.1"),
        limits: ExchangeLimits {
            max_request_body: 1024,
            ..Default::default()
        },
        timeouts: Timeouts {
            client_idle: Some(Duration::from_secs(30)),
            client_request: Some(Duration::from_secs(10)),
            connect: Some(Duration::from_secs(5)),
            response_head: Some(Duration::from_secs(60)),
            stream_idle: None,
            sse_keepalive: None,
        },
        forwarded_headers: true,
        hooks: HookFilter::none(),
    }
}

/// Everything one exchange asked for, in order, with client and upstream
/// bytes concatenated for convenience.
#[derive(Default, Debug)]
struct Log {
    to_client: Vec<u8>,
    to_upstream: Vec<u8>,
    connects: Vec<(usize, bool)>,
    releases: Vec<bool>,
    finished: Option<Close>,
    hooks: Vec<HookCall>,
    dispatched: Vec<upstream::Request>,
    to_server: Vec<(usize, upstream::Request)>,
    evidence: Vec<TransportEvidence>,
    auths: Vec<AuthCall>,
}

struct Harness {
    ex: Exchange,
    now: Instant,
    log: Log,
}

impl Harness {
    fn new(config: ExchangeConfig) -> Self {
        let now = Instant::now();
        let client = ClientInfo {
            peer_ip: "10.0.0.7".into(),
            https: false,
        };
        Harness {
            ex: Exchange::new(Arc::new(config), client, now),
            now,
            log: Log::default(),
        }
    }

    fn drain(&mut self) {
        while let Some(out) = self.ex.poll_output() {
            assert!(
                self.log.finished.is_none(),
                "output after Finished: {out:?}"
            );
            match out {
                Output::Connect { route, fresh } => self.log.connects.push((route, fresh)),
                Output::ToUpstream(b) => self.log.to_upstream.extend_from_slice(&b),
                Output::Dispatch(r) => self.log.dispatched.push(*r),
                Output::ToClient(b) => self.log.to_client.extend_from_slice(&b),
                Output::ReleaseUpstream { reusable } => self.log.releases.push(reusable),
                Output::Finished { close } => self.log.finished = Some(close),
                Output::RunHook(call) => self.log.hooks.push(*call),
                Output::ProbeTransport(e) => self.log.evidence.push(*e),
                Output::Authenticate(call) => self.log.auths.push(*call),
                Output::AnswerServer { route, request } => {
                    self.log.to_server.push((route, *request))
                }
            }
        }
    }

    fn client(&mut self, bytes: &[u8]) -> &mut Self {
        self.ex.feed_client(bytes, self.now);
        self.drain();
        self
    }

    fn connected(&mut self, reused: bool) -> &mut Self {
        self.ex.upstream_connected(reused, self.now);
        self.drain();
        self
    }

    /// The upstream asked for is a message upstream.
    fn message_connected(&mut self) -> &mut Self {
        self.ex.message_upstream_connected(self.now);
        self.drain();
        self
    }

    fn answer(&mut self, part: AnswerPart) -> &mut Self {
        self.ex.feed_answer(part, self.now);
        self.drain();
        self
    }

    fn upstream(&mut self, bytes: &[u8]) -> &mut Self {
        self.ex
            .feed_upstream(Bytes::copy_from_slice(bytes), self.now);
        self.drain();
        self
    }

    fn upstream_end(&mut self, end: UpstreamEnd) -> &mut Self {
        self.ex.upstream_closed(end, self.now);
        self.drain();
        self
    }

    fn verdict(&mut self, v: HookVerdict) -> &mut Self {
        self.ex.hook_done(v, self.now);
        self.drain();
        self
    }

    fn advance(&mut self, by: Duration) -> &mut Self {
        self.now += by;
        if self.ex.poll_timeout().is_some_and(|t| t <= self.now) {
            self.ex.handle_timeout(self.now);
            self.drain();
        }
        self
    }

    fn client_text(&self) -> String {
        String::from_utf8_lossy(&self.log.to_client).into_owned()
    }
}

const POST_HEAD: &str = "POST /mcp HTTP/1.1\r\nHost: localhost:8080\r\nContent-Type: application/json\r\n\
                         Accept: application/json, text/event-stream\r\nMcp-Session-Id: s-1\r\n";

fn post(body: &str) -> Vec<u8> {
    format!("{POST_HEAD}Content-Length: {}\r\n\r\n{body}", body.len()).into_bytes()
}

const CALL: &str = r#"{"jsonrpc":"2.0","id":"req-7","method":"tools/call","params":{"name":"echo","arguments":{}}}"#;

/// Split a client-side response into head text and decoded body.
fn decode_response(bytes: &[u8]) -> (String, Vec<u8>) {
    decode(bytes, true)
}

/// Like [`decode_response`], for a response still under way.
fn decode_response_partial(bytes: &[u8]) -> (String, Vec<u8>) {
    decode(bytes, false)
}

fn decode(bytes: &[u8], whole: bool) -> (String, Vec<u8>) {
    let limits = http1::Limits::default();
    let Ok(Parsed::Complete { head, len }) = http1::parse_response_head(bytes, &limits) else {
        panic!(
            "no complete response head in {:?}",
            String::from_utf8_lossy(bytes)
        );
    };
    let head_text = String::from_utf8_lossy(&bytes[..len]).into_owned();
    let body = &bytes[len..];
    let chunked = head
        .headers
        .iter()
        .any(|h| h.name.eq_ignore_ascii_case("transfer-encoding"));
    if !chunked {
        return (head_text, body.to_vec());
    }
    let mut decoder = ChunkedDecoder::new(&limits);
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < body.len() {
        let d = decoder
            .decode(&body[pos..])
            .expect("client-side chunking is valid");
        if let Some(r) = d.data {
            out.extend_from_slice(&body[pos + r.start..pos + r.end]);
        }
        pos += d.consumed;
        if d.done {
            assert_eq!(pos, body.len(), "bytes after the last chunk");
            return (head_text, out);
        }
    }
    assert!(
        !whole,
        "chunked body without its last chunk: {:?}",
        String::from_utf8_lossy(body)
    );
    (head_text, out)
}

#[test]
fn json_post_is_forwarded_with_normalized_head() {
    let mut h = Harness::new(config());
    h.client(&post(CALL));
    assert_eq!(h.log.connects, vec![(0, false)]);
    h.connected(false);
    let up = String::from_utf8(h.log.to_upstream.clone()).unwrap();
    assert!(
        up.starts_with("POST /mcp HTTP/1.1\r\nHost: backend:3000\r\n"),
        "{up}"
    );
    assert!(up.contains("Mcp-Session-Id: s-1\r\n"));
    assert!(up.contains(&format!("Content-Length: {}\r\n", CALL.len())));
    assert!(up.contains("X-Forwarded-For: 10.0.0.7\r\n"));
    assert!(up.contains("X-Forwarded-Host: localhost:8080\r\n"));
    assert!(up.ends_with(CALL));

    let body = r#"{"jsonrpc":"2.0","id":"req-7","result":{"content":[]}}"#;
    let resp = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nMcp-Session-Id: s-1\r\nKeep-Alive: timeout=5\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    h.upstream(&resp.as_bytes()[..40])
        .upstream(&resp.as_bytes()[40..]);
    let text = h.client_text();
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"));
    assert!(
        !text.contains("Keep-Alive"),
        "hop-by-hop header dropped: {text}"
    );
    assert!(text.contains("Mcp-Session-Id: s-1\r\n"));
    assert!(text.ends_with(body));
    assert_eq!(h.log.releases, vec![true]);
    assert_eq!(h.log.finished, Some(Close::KeepAlive));
    let summary = h.ex.summary();
    assert_eq!(summary.outcome, Outcome::Complete);
    assert!(!summary.event_stream, "a JSON answer");
    let rpc = summary.rpc.as_ref().unwrap();
    assert_eq!(rpc.method.as_deref(), Some("tools/call"));
    assert_eq!(rpc.name.as_deref(), Some("echo"));
    assert_eq!(rpc.id.as_deref(), Some(&b"\"req-7\""[..]));
}

/// A driver out of step (found by the exchange_ops fuzz target): a
/// message upstream's parts while an HTTP answer streams, or HTTP bytes
/// while a message upstream answers, are dropped; the client's framing
/// stays whole.
#[test]
fn input_of_the_other_upstream_kind_is_dropped() {
    let body = r#"{"jsonrpc":"2.0","id":"req-7","result":{"content":[]}}"#;
    let resp = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let mut h = Harness::new(config());
    h.client(&post(CALL))
        .connected(false)
        .upstream(resp.as_bytes());
    h.message_connected()
        .answer(AnswerPart::Event(Bytes::from_static(
            b"{\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{}}",
        )))
        .answer(AnswerPart::End);
    assert!(
        h.log.dispatched.is_empty(),
        "no message upstream was asked for"
    );
    h.upstream(body.as_bytes());
    assert_eq!(h.client_text(), format!("{resp}{body}"));
    assert_eq!(h.log.finished, Some(Close::KeepAlive));

    // And HTTP bytes while a message upstream answers.
    let mut h = Harness::new(config());
    h.client(&post(CALL)).message_connected();
    h.upstream(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}");
    assert!(h.log.to_client.is_empty(), "{}", h.client_text());
    h.answer(AnswerPart::json(
        crate::upstream::AnswerHead::status(200),
        body,
    ));
    let (head, got) = decode_response(&h.log.to_client);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert_eq!(got, body.as_bytes());
}

const SSE_HEAD: &str = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n";

fn chunk(data: &str) -> String {
    format!("{:x}\r\n{data}\r\n", data.len())
}

const PROGRESS: &str = "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progressToken\":1,\"progress\":1}}\n\n";
const ANSWER: &str =
    "event: message\nid: 9\ndata: {\"jsonrpc\":\"2.0\",\"id\":\"req-7\",\"result\":{}}\n\n";

#[test]
fn sse_answer_streams_event_by_event_byte_for_byte() {
    let mut h = Harness::new(config());
    h.client(&post(CALL)).connected(false);
    assert!(!h.ex.summary().event_stream, "no head yet");
    h.upstream(SSE_HEAD.as_bytes());
    let head_len = h.log.to_client.len();
    assert!(head_len > 0, "head forwarded before any body");
    // Known with the head: a driver sees the stream open while it streams.
    assert!(h.ex.summary().event_stream);
    // Each upstream read goes out at once, even a partial event.
    h.upstream(chunk(&PROGRESS[..10]).as_bytes());
    assert!(h.log.to_client.len() > head_len);
    h.upstream(chunk(&PROGRESS[10..]).as_bytes());
    h.upstream(format!("{}0\r\n\r\n", chunk(ANSWER)).as_bytes());
    let (head, body) = decode_response(&h.log.to_client);
    assert!(head.contains("Content-Type: text/event-stream"));
    assert_eq!(
        String::from_utf8(body).unwrap(),
        format!("{PROGRESS}{ANSWER}")
    );
    assert_eq!(h.log.finished, Some(Close::KeepAlive));
    assert_eq!(h.log.releases, vec![true]);
    // Counted by the parser that watches for the answer.
    assert_eq!(h.ex.summary().sse_events, 2);
}

#[test]
fn past_the_watching_parsers_limit_a_scan_counts_the_events_on() {
    let mut cfg = config();
    cfg.limits.sse.max_event_bytes = 200;
    let mut h = Harness::new(cfg);
    h.client(&post(CALL)).connected(false);
    let big = format!("data: {}\n\n", "x".repeat(300));
    // The event past the limit shares a read with one the parser counts.
    h.upstream(SSE_HEAD.as_bytes())
        .upstream(chunk(PROGRESS).as_bytes())
        .upstream(chunk(&format!("{PROGRESS}{big}")).as_bytes())
        .upstream(format!("{}0\r\n\r\n", chunk(ANSWER)).as_bytes());
    assert!(h.log.finished.is_some());
    // All four went out, each counted once.
    let (_, body) = decode_response(&h.log.to_client);
    assert_eq!(
        body,
        format!("{PROGRESS}{PROGRESS}{big}{ANSWER}").as_bytes()
    );
    assert_eq!(h.ex.summary().sse_events, 4);
}

#[test]
fn upstream_dying_at_a_boundary_gets_an_injected_error_with_the_clients_id() {
    let mut h = Harness::new(config());
    h.client(&post(CALL)).connected(false);
    h.upstream(SSE_HEAD.as_bytes())
        .upstream(chunk(PROGRESS).as_bytes());
    h.upstream_end(UpstreamEnd::Error);
    let (_, body) = decode_response(&h.log.to_client);
    let body = String::from_utf8(body).unwrap();
    let injected = body
        .strip_prefix(PROGRESS)
        .expect("progress forwarded first");
    assert!(
        injected.starts_with("event: message\ndata: {"),
        "{injected}"
    );
    assert!(injected.contains("\"id\":\"req-7\""), "{injected}");
    assert!(injected.contains(&UPSTREAM_FAILED.to_string()));
    assert!(injected.ends_with("\n\n"));
    assert_eq!(h.log.releases, vec![false]);
    assert_eq!(h.ex.summary().outcome, Outcome::Answered);
    // The progress was forwarded; the error is sluice's own.
    assert_eq!(h.ex.summary().sse_events, 1);
}

#[test]
fn upstream_dying_mid_event_aborts_the_client() {
    let mut h = Harness::new(config());
    h.client(&post(CALL)).connected(false);
    h.upstream(SSE_HEAD.as_bytes())
        .upstream(chunk(&PROGRESS[..20]).as_bytes());
    let before = h.log.to_client.len();
    h.upstream_end(UpstreamEnd::Eof);
    assert_eq!(
        h.log.to_client.len(),
        before,
        "nothing written after a partial event"
    );
    assert_eq!(h.log.finished, Some(Close::Abort));
    assert_eq!(h.ex.summary().outcome, Outcome::Aborted);
}

#[test]
fn upstream_dying_after_the_answer_ends_cleanly() {
    let mut h = Harness::new(config());
    h.client(&post(CALL)).connected(false);
    h.upstream(SSE_HEAD.as_bytes())
        .upstream(chunk(ANSWER).as_bytes());
    h.upstream_end(UpstreamEnd::Eof);
    let (_, body) = decode_response(&h.log.to_client);
    assert_eq!(body, ANSWER.as_bytes());
    assert_ne!(h.log.finished, Some(Close::Abort));
}

#[test]
fn only_the_answer_to_the_clients_id_settles_the_stream() {
    // A notification that mentions `"result"` and the id's text, and an
    // answer to another id: the answer to req-7 is still owed.
    let lookalike = "data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{\"result\":\"req-7\"}}\n\n";
    let other = "data: {\"jsonrpc\":\"2.0\",\"id\":\"req-8\",\"result\":{}}\n\n";
    let mut h = Harness::new(config());
    h.client(&post(CALL)).connected(false);
    h.upstream(SSE_HEAD.as_bytes())
        .upstream(chunk(PROGRESS).as_bytes())
        .upstream(chunk(lookalike).as_bytes())
        .upstream(chunk(other).as_bytes());
    h.upstream_end(UpstreamEnd::Error);
    let (_, body) = decode_response(&h.log.to_client);
    let body = String::from_utf8(body).unwrap();
    let injected = body
        .strip_prefix(&format!("{PROGRESS}{lookalike}{other}"))
        .expect("every event forwarded first");
    assert!(injected.contains("\"id\":\"req-7\""), "{injected}");
    assert_eq!(h.ex.summary().outcome, Outcome::Answered);
}

#[test]
fn an_answer_with_an_escaped_member_name_still_counts() {
    // `\u0072esult` is `result`: the answer went out, nothing is owed.
    let answer = "data: {\"jsonrpc\":\"2.0\",\"id\":\"req-7\",\"\\u0072esult\":{}}\n\n";
    let mut h = Harness::new(config());
    h.client(&post(CALL)).connected(false);
    h.upstream(SSE_HEAD.as_bytes())
        .upstream(chunk(PROGRESS).as_bytes())
        .upstream(chunk(answer).as_bytes());
    h.upstream_end(UpstreamEnd::Error);
    let (_, body) = decode_response(&h.log.to_client);
    assert_eq!(
        String::from_utf8(body).unwrap(),
        format!("{PROGRESS}{answer}"),
        "no error injected after the answer"
    );
    assert_ne!(h.log.finished, Some(Close::Abort));
}

#[test]
fn json_body_cut_short_aborts() {
    let mut h = Harness::new(config());
    h.client(&post(CALL)).connected(false);
    h.upstream(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"jsonrpc\"");
    h.upstream_end(UpstreamEnd::Eof);
    assert_eq!(h.log.finished, Some(Close::Abort));
}

#[test]
fn upstream_closing_before_the_head_is_a_502_with_the_id() {
    let mut h = Harness::new(config());
    h.client(&post(CALL))
        .connected(false)
        .upstream_end(UpstreamEnd::Eof);
    let (head, body) = decode_response(&h.log.to_client);
    assert!(head.starts_with("HTTP/1.1 502 "), "{head}");
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["id"], "req-7");
    assert_eq!(v["error"]["code"], UPSTREAM_FAILED);
}

#[test]
fn a_request_that_could_not_be_written_is_retried_once_on_a_fresh_connection() {
    let mut h = Harness::new(config());
    h.client(&post(CALL)).connected(true);
    let once = h.log.to_upstream.len();
    // A pooled connection the upstream had closed: the write fails.
    h.upstream_end(UpstreamEnd::WriteFailed);
    assert_eq!(h.log.connects, vec![(0, false), (0, true)]);
    assert_eq!(h.log.releases, vec![false]);
    assert!(h.log.to_client.is_empty());
    h.connected(false);
    assert_eq!(
        h.log.to_upstream.len(),
        2 * once,
        "the same request sent again"
    );
    h.upstream_end(UpstreamEnd::WriteFailed);
    assert!(
        h.client_text().starts_with("HTTP/1.1 502 "),
        "a second failure is not retried"
    );
}

#[test]
fn a_post_that_went_out_on_a_pooled_connection_is_never_sent_twice() {
    for end in [UpstreamEnd::Eof, UpstreamEnd::Error] {
        let mut h = Harness::new(config());
        h.client(&post(CALL)).connected(true);
        let once = h.log.to_upstream.len();
        // Written whole, then the connection closed without an answer: the
        // upstream may have run the tool. Say so instead of running it again.
        h.upstream_end(end);
        assert_eq!(h.log.connects, vec![(0, false)], "{end:?}");
        assert_eq!(h.log.to_upstream.len(), once, "{end:?}");
        let (head, body) = decode_response(&h.log.to_client);
        assert!(head.starts_with("HTTP/1.1 502 "), "{end:?}: {head}");
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["id"], "req-7");
        assert_eq!(v["error"]["code"], UPSTREAM_FAILED);
    }
}

#[test]
fn an_idempotent_request_is_retried_after_a_silent_close() {
    for method in ["GET", "DELETE"] {
        let mut h = Harness::new(config());
        let request =
            format!("{method} /mcp HTTP/1.1\r\nHost: localhost\r\nMcp-Session-Id: s-1\r\n\r\n");
        h.client(request.as_bytes()).connected(true);
        h.upstream_end(UpstreamEnd::Eof);
        assert_eq!(h.log.connects, vec![(0, false), (0, true)], "{method}");
        assert!(h.log.to_client.is_empty(), "{method}");
        h.connected(false)
            .upstream(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        assert!(h.client_text().starts_with("HTTP/1.1 200 "), "{method}");
    }
}

#[test]
fn a_fresh_connection_that_closes_is_not_retried() {
    let mut h = Harness::new(config());
    h.client(&post(CALL))
        .connected(false)
        .upstream_end(UpstreamEnd::WriteFailed);
    assert_eq!(h.log.connects, vec![(0, false)]);
    assert!(h.client_text().starts_with("HTTP/1.1 502 "));
}

#[test]
fn connect_timeout_is_a_504() {
    let mut h = Harness::new(config());
    h.client(&post(CALL));
    h.advance(Duration::from_secs(4));
    assert!(h.log.to_client.is_empty());
    h.advance(Duration::from_secs(2));
    assert!(
        h.client_text().starts_with("HTTP/1.1 504 "),
        "{}",
        h.client_text()
    );
    assert!(h.client_text().contains(&UPSTREAM_TIMEOUT.to_string()));
}

#[test]
fn local_rejections() {
    let cases: Vec<(Vec<u8>, u16)> = vec![
        (b"GARBAGE\r\n\r\n".to_vec(), 400),
        (b"POST /mcp HTTP/1.1\r\nHost: evil.example\r\nContent-Length: 0\r\n\r\n".to_vec(), 403),
        (b"POST /mcp HTTP/1.1\r\nHost: localhost\r\nOrigin: http://evil.example\r\nContent-Length: 0\r\n\r\n".to_vec(), 403),
        (b"POST /other HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n".to_vec(), 404),
        (b"POST /mcp HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5000\r\n\r\n".to_vec(), 413),
        (
            b"POST /mcp HTTP/1.1\r\nHost: localhost\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec(),
            400,
        ),
        (b"CONNECT localhost:1 HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec(), 501),
    ];
    for (request, status) in cases {
        let mut h = Harness::new(config());
        h.client(&request);
        let text = h.client_text();
        assert!(
            text.starts_with(&format!("HTTP/1.1 {status} ")),
            "{:?} -> {text}",
            String::from_utf8_lossy(&request)
        );
        assert!(h.log.connects.is_empty(), "nothing reaches the upstream");
        assert_eq!(h.log.finished, Some(Close::Graceful));
    }
}

#[test]
fn chunked_request_body_goes_upstream_with_a_content_length() {
    let mut h = Harness::new(config());
    let request = format!(
        "{POST_HEAD}Transfer-Encoding: chunked\r\n\r\n{}{}0\r\n\r\n",
        chunk(&CALL[..30]),
        chunk(&CALL[30..])
    );
    h.client(request.as_bytes()).connected(false);
    let up = String::from_utf8(h.log.to_upstream.clone()).unwrap();
    assert!(!up.to_ascii_lowercase().contains("transfer-encoding"));
    assert!(up.contains(&format!("Content-Length: {}\r\n", CALL.len())));
    assert!(up.ends_with(CALL));
}

#[test]
fn pipelined_bytes_are_left_for_the_next_exchange() {
    let mut h = Harness::new(config());
    let mut two = post(CALL);
    two.extend_from_slice(b"GET /mcp HTTP/1.1\r\n");
    h.client(&two);
    assert!(h.ex.request_complete());
    h.client(b"Host: localhost\r\n\r\n");
    assert_eq!(
        h.ex.take_leftover(),
        b"GET /mcp HTTP/1.1\r\nHost: localhost\r\n\r\n"
    );
}

#[test]
fn client_going_away_releases_the_upstream() {
    let mut h = Harness::new(config());
    h.client(&post(CALL))
        .connected(false)
        .upstream(SSE_HEAD.as_bytes());
    h.ex.client_closed(h.now);
    h.drain();
    assert_eq!(h.log.releases, vec![false]);
    assert_eq!(h.log.finished, Some(Close::Abort));
    assert_eq!(h.ex.summary().outcome, Outcome::ClientGone);
}

#[test]
fn get_stream_until_close_is_rechunked_and_ends_cleanly_at_eof() {
    let mut h = Harness::new(config());
    h.client(b"GET /mcp HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n\r\n")
        .connected(false)
        .upstream(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n: hi\n\n")
        .upstream(PROGRESS.as_bytes())
        .upstream_end(UpstreamEnd::Eof);
    let (head, body) = decode_response(&h.log.to_client);
    assert!(head.contains("Transfer-Encoding: chunked"));
    assert_eq!(body, format!(": hi\n\n{PROGRESS}").as_bytes());
    assert_eq!(
        h.log.releases,
        vec![false],
        "an until-close upstream is never pooled"
    );
}

#[test]
fn get_stream_reset_aborts() {
    let mut h = Harness::new(config());
    h.client(b"GET /mcp HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .connected(false)
        .upstream(SSE_HEAD.as_bytes())
        .upstream(chunk(PROGRESS).as_bytes())
        .upstream_end(UpstreamEnd::Error);
    assert_eq!(
        h.log.finished,
        Some(Close::Abort),
        "no response is owed on a GET stream: resume, don't end"
    );
}

#[test]
fn events_of_a_stream_passed_through_unread_are_counted_in_any_split() {
    let mut h = Harness::new(config());
    h.client(b"GET /mcp HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .connected(false)
        .upstream(SSE_HEAD.as_bytes())
        .upstream(chunk("data: a\n\n: comment\n\nid: 1\nda").as_bytes())
        .upstream(chunk("ta: b\r\n\r").as_bytes())
        .upstream(chunk("\nid: 2\n\ndata: cut short").as_bytes())
        .upstream(b"0\r\n\r\n");
    assert!(h.log.finished.is_some());
    // Two events; a comment, a bare id and a block without its blank line
    // are none.
    assert_eq!(h.ex.summary().sse_events, 2);
}

#[test]
fn keepalive_comments_only_at_boundaries() {
    let mut cfg = config();
    cfg.timeouts.sse_keepalive = Some(Duration::from_secs(15));
    let mut h = Harness::new(cfg);
    h.client(b"GET /mcp HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .connected(false)
        .upstream(SSE_HEAD.as_bytes());
    h.advance(Duration::from_secs(16));
    let (_, body) = decode_response(&[h.log.to_client.clone(), b"0\r\n\r\n".to_vec()].concat());
    assert_eq!(body, b": keepalive\n\n");
    // Mid-event: no comment, however long the silence.
    h.upstream(chunk("data: par").as_bytes());
    h.advance(Duration::from_secs(100));
    let (_, body) = decode_response(&[h.log.to_client.clone(), b"0\r\n\r\n".to_vec()].concat());
    assert_eq!(body, b": keepalive\n\ndata: par");
    assert_eq!(h.ex.summary().keepalives, 1);
}

#[test]
fn expect_continue_is_answered_by_sluice() {
    let mut h = Harness::new(config());
    let head = format!(
        "{POST_HEAD}Expect: 100-continue\r\nContent-Length: {}\r\n\r\n",
        CALL.len()
    );
    h.client(head.as_bytes());
    assert_eq!(h.client_text(), "HTTP/1.1 100 Continue\r\n\r\n");
    h.client(CALL.as_bytes()).connected(false);
    let up = String::from_utf8(h.log.to_upstream.clone()).unwrap();
    assert!(!up.to_ascii_lowercase().contains("expect:"));
}

#[test]
fn http10_client_gets_an_until_close_body() {
    let mut h = Harness::new(config());
    h.client(b"GET /mcp HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .connected(false)
        .upstream(SSE_HEAD.as_bytes())
        .upstream(chunk(PROGRESS).as_bytes())
        .upstream(b"0\r\n\r\n");
    let text = h.client_text();
    assert!(text.contains("Connection: close\r\n"));
    assert!(!text.contains("Transfer-Encoding"));
    assert!(text.ends_with(PROGRESS));
    assert_eq!(h.log.finished, Some(Close::Graceful));
}

#[test]
fn idle_keepalive_connection_closes_quietly() {
    let mut h = Harness::new(config());
    h.advance(Duration::from_secs(31));
    assert!(h.log.to_client.is_empty());
    assert_eq!(h.log.finished, Some(Close::Graceful));
}

#[test]
fn slow_request_is_a_408() {
    let mut h = Harness::new(config());
    h.advance(Duration::from_secs(20));
    h.client(b"POST /mcp HTTP/1.1\r\nHost: local");
    h.advance(Duration::from_secs(9));
    assert!(h.log.to_client.is_empty());
    h.advance(Duration::from_secs(2));
    assert!(
        h.client_text().starts_with("HTTP/1.1 408 "),
        "{}",
        h.client_text()
    );
    assert_eq!(h.log.finished, Some(Close::Graceful));
}

/// One hook declaring `methods`.
fn filter(methods: &[&str]) -> HookFilter {
    let own = methods::MethodSet::parse(methods).unwrap();
    HookFilter::new(vec![methods::HookMethods::new(own, None)])
}

fn hooked_config(methods: &'static [&'static str]) -> ExchangeConfig {
    let mut c = config();
    c.hooks = filter(methods);
    c
}

/// A hooked tools/call whose request hooks said continue, sent upstream.
fn call_past_the_request_hooks() -> Harness {
    let mut h = Harness::new(hooked_config(&["tools/call"]));
    h.client(&post(CALL))
        .verdict(HookVerdict::Continue)
        .connected(false);
    h
}

#[test]
fn unhooked_methods_never_ask_for_a_hook() {
    let mut h = Harness::new(hooked_config(&["tools/list"]));
    h.client(&post(CALL)).connected(false);
    assert!(h.log.hooks.is_empty());
    assert_eq!(h.log.connects.len(), 1);
}

#[test]
fn a_message_the_hooks_cannot_read_never_goes_upstream() {
    // Two `name` keys: JSON parsers keep the first, the last, or fail, so a
    // policy hook cannot know which tool the backend would call.
    let twice = r#"{"jsonrpc":"2.0","id":"req-7","method":"tools/call","params":{"name":"echo","name":"rm_rf"}}"#;
    let mut h = Harness::new(hooked_config(&["tools/call"]));
    h.client(&post(twice));
    assert!(h.log.hooks.is_empty());
    assert!(h.log.connects.is_empty(), "refused before any connect");
    let (head, body) = decode_response(&h.log.to_client);
    assert!(head.starts_with("HTTP/1.1 400 "), "{head}");
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["error"]["code"], -32700);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("duplicate"),
        "{v}"
    );
    // The same for a hook on another method: the method cannot be trusted
    // either when the message cannot be read.
    let mut h = Harness::new(hooked_config(&["tools/list"]));
    h.client(&post(twice));
    assert!(h.log.connects.is_empty());
    // A readable request that breaks an MCP rule is answered with its id.
    let nameless =
        r#"{"jsonrpc":"2.0","id":"req-7","method":"tools/call","params":{"arguments":{}}}"#;
    let mut h = Harness::new(hooked_config(&["tools/call"]));
    h.client(&post(nameless));
    assert!(h.log.connects.is_empty());
    let v: serde_json::Value =
        serde_json::from_slice(&decode_response(&h.log.to_client).1).unwrap();
    assert_eq!(v["id"], "req-7", "{v}");
    assert_eq!(v["error"]["code"], -32602);
    // Without hooks the proxy does not judge bodies: the upstream does.
    let mut h = Harness::new(config());
    h.client(&post(twice));
    assert_eq!(h.log.connects.len(), 1);
}

#[test]
fn a_request_hook_runs_before_anything_goes_upstream() {
    let mut h = Harness::new(hooked_config(&["tools/call"]));
    h.client(&post(CALL));
    assert_eq!(h.log.hooks.len(), 1);
    assert!(h.log.connects.is_empty(), "no connect before the verdict");
    let call = &h.log.hooks[0];
    assert_eq!(call.phase, HookPhase::Request);
    assert_eq!(call.method, "tools/call");
    assert_eq!(&*call.request, CALL);
    assert_eq!(call.session_id.as_deref(), Some("s-1"));
    h.verdict(HookVerdict::Continue).connected(false);
    assert!(String::from_utf8_lossy(&h.log.to_upstream).ends_with(CALL));
}

#[test]
fn a_replaced_request_goes_upstream_with_its_own_length_and_mirror_headers() {
    let mut h = Harness::new(hooked_config(&["tools/call"]));
    let request = format!(
        "{POST_HEAD}Mcp-Method: tools/call\r\nMcp-Name: echo\r\nContent-Length: {}\r\n\r\n{CALL}",
        CALL.len()
    );
    h.client(request.as_bytes());
    let new = r#"{"jsonrpc":"2.0","id":"req-7","method":"tools/call","params":{"name":"safe_echo","arguments":{"text":"redacted"}}}"#;
    h.verdict(HookVerdict::Replace(new.as_bytes().to_vec()))
        .connected(false);
    let up = String::from_utf8(h.log.to_upstream.clone()).unwrap();
    assert!(
        up.contains(&format!("Content-Length: {}\r\n", new.len())),
        "{up}"
    );
    assert!(up.contains("Mcp-Name: safe_echo\r\n"), "{up}");
    assert!(up.ends_with(new));
}

#[test]
fn a_rejected_request_never_reaches_the_upstream() {
    let mut h = Harness::new(hooked_config(&["tools/call"]));
    h.client(&post(CALL)).verdict(HookVerdict::Reject {
        code: -32602,
        message: "tool echo is not allowed".into(),
        data: Some(br#"{"hook":"policy"}"#.to_vec()),
    });
    assert!(h.log.connects.is_empty());
    let (head, body) = decode_response(&h.log.to_client);
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["id"], "req-7");
    assert_eq!(v["error"]["code"], -32602);
    assert_eq!(v["error"]["data"]["hook"], "policy");
    assert_eq!(h.log.finished, Some(Close::KeepAlive));
}

#[test]
fn a_direct_answer_is_a_result_with_the_clients_id() {
    let mut h = Harness::new(hooked_config(&["tools/call"]));
    h.client(&post(CALL))
        .verdict(HookVerdict::Respond(br#"{"content":[]}"#.to_vec()));
    let (_, body) = decode_response(&h.log.to_client);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["id"], "req-7");
    assert_eq!(v["result"]["content"], serde_json::json!([]));
}

#[test]
fn every_hooked_message_of_a_batch_is_checked() {
    let mut h = Harness::new(hooked_config(&["tools/call"]));
    let batch = r#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a"}},{"jsonrpc":"2.0","id":2,"method":"tools/list"},{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"b"}}]"#;
    h.client(&post(batch));
    assert_eq!(h.log.hooks.len(), 1);
    h.verdict(HookVerdict::Continue);
    assert_eq!(h.log.hooks.len(), 2, "the second tools/call is hooked too");
    assert!(
        h.log.hooks[1]
            .request
            .starts_with(r#"{"jsonrpc":"2.0","id":3"#)
    );
    h.verdict(HookVerdict::Reject {
        code: -32001,
        message: "no b".into(),
        data: None,
    });
    assert!(
        h.log.connects.is_empty(),
        "a batch with a refused call is not forwarded"
    );
    let (_, body) = decode_response(&h.log.to_client);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let answers = v.as_array().unwrap();
    assert_eq!(answers.len(), 3);
    assert_eq!(answers[0]["error"]["code"], BATCH_REFUSED);
    assert_eq!(answers[2]["error"]["message"], "no b");
}

#[test]
fn hooks_see_only_the_headers_the_operator_listed() {
    let request = format!(
        "{POST_HEAD}authorization: Bearer t0k\r\nCookie: c=1\r\nX-Tenant: acme\r\nx-TENANT: beta\r\n\
         Content-Length: {}\r\n\r\n{CALL}",
        CALL.len()
    );
    let expected: Vec<(String, String)> = [
        ("authorization", "Bearer t0k"),
        ("x-tenant", "acme"),
        ("x-tenant", "beta"),
    ]
    .iter()
    .map(|(n, v)| (n.to_string(), v.to_string()))
    .collect();
    let mut c = hooked_config(&["tools/call"]);
    c.hooks = c
        .hooks
        .with_headers(&["Authorization", "X-Tenant", "x-absent"]);
    let mut h = Harness::new(c);
    h.client(request.as_bytes());
    assert_eq!(h.log.hooks[0].headers, expected);
    h.verdict(HookVerdict::Continue).connected(false);
    let up = String::from_utf8_lossy(&h.log.to_upstream).into_owned();
    assert!(
        up.contains("Cookie: c=1\r\n"),
        "headers still go upstream: {up}"
    );
    let body = r#"{"jsonrpc":"2.0","id":"req-7","result":{}}"#;
    h.upstream(
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
    assert_eq!(h.log.hooks[1].phase, HookPhase::Response);
    assert_eq!(h.log.hooks[1].headers, expected, "the response phase too");

    // Nothing listed: nothing seen.
    let mut h = Harness::new(hooked_config(&["tools/call"]));
    h.client(request.as_bytes());
    assert!(h.log.hooks[0].headers.is_empty());
}

const NOTIFICATION: &str = r#"{"jsonrpc":"2.0","method":"notifications/roots/list_changed"}"#;
const NOTIFICATIONS: &[&str] = &[
    "notifications/roots/list_changed",
    "notifications/cancelled",
];

#[test]
fn a_refused_notification_is_a_400_carrying_the_error_and_goes_nowhere() {
    let mut h = Harness::new(hooked_config(NOTIFICATIONS));
    h.client(&post(NOTIFICATION)).verdict(HookVerdict::Reject {
        code: 4001,
        message: "not now".into(),
        data: None,
    });
    assert!(h.log.connects.is_empty(), "nothing went upstream");
    let (head, body) = decode_response(&h.log.to_client);
    assert!(head.starts_with("HTTP/1.1 400 "), "{head}");
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["id"], serde_json::Value::Null);
    assert_eq!(v["error"]["code"], 4001);
    assert_eq!(v["error"]["message"], "not now");
    assert_eq!(h.log.finished, Some(Close::KeepAlive));
}

#[test]
fn a_notification_a_hook_answers_is_consumed_with_a_202() {
    let mut h = Harness::new(hooked_config(NOTIFICATIONS));
    h.client(&post(NOTIFICATION))
        .verdict(HookVerdict::Respond(b"{}".to_vec()));
    assert!(h.log.connects.is_empty());
    let text = h.client_text();
    assert!(
        text.starts_with("HTTP/1.1 202 Accepted\r\n") && text.ends_with("\r\n\r\n"),
        "{text}"
    );
    assert_eq!(h.ex.summary().status, Some(202));
}

#[test]
fn a_batch_of_notifications_with_one_refused_is_a_400() {
    let mut h = Harness::new(hooked_config(NOTIFICATIONS));
    let batch = format!(
        "[{NOTIFICATION},{}]",
        r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}}"#
    );
    h.client(&post(&batch)).verdict(HookVerdict::Continue);
    assert_eq!(h.log.hooks.len(), 2, "both notifications are hooked");
    h.verdict(HookVerdict::Reject {
        code: 4002,
        message: "no cancelling".into(),
        data: None,
    });
    assert!(h.log.connects.is_empty());
    let (head, body) = decode_response(&h.log.to_client);
    assert!(head.starts_with("HTTP/1.1 400 "), "{head}");
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["error"]["code"], 4002);
}

#[test]
fn a_json_response_is_held_for_the_response_hooks() {
    let mut h = call_past_the_request_hooks();
    let body = r#"{"jsonrpc":"2.0","id":"req-7","result":{"content":[{"type":"text","text":"sk-secret"}]}}"#;
    let resp = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n{}0\r\n\r\n",
        chunk(body)
    );
    h.upstream(resp.as_bytes());
    assert!(h.log.to_client.is_empty(), "nothing before the verdict");
    assert_eq!(h.log.hooks.len(), 2);
    assert_eq!(h.log.hooks[1].phase, HookPhase::Response);
    assert_eq!(h.log.hooks[1].response.as_deref(), Some(body));
    let redacted = r#"{"jsonrpc":"2.0","id":"req-7","result":{"content":[{"type":"text","text":"[redacted]"}]}}"#;
    h.verdict(HookVerdict::Replace(redacted.as_bytes().to_vec()));
    let (head, got) = decode_response(&h.log.to_client);
    assert!(
        head.contains(&format!("Content-Length: {}\r\n", redacted.len())),
        "{head}"
    );
    assert_eq!(got, redacted.as_bytes());
    assert_eq!(h.log.finished, Some(Close::KeepAlive));
}

#[test]
fn a_replacement_core_cannot_read_alike_is_a_hook_failure() {
    // Two `method` keys: a first-wins reader and a last-wins reader would
    // send different requests. Refused: nothing goes upstream, the client
    // gets the hook failure under its id.
    let mut h = Harness::new(hooked_config(&["tools/call"]));
    h.client(&post(CALL));
    let dup = r#"{"jsonrpc":"2.0","id":"req-7","method":"tools/call","params":{"name":"a"},"params":{"name":"b"}}"#;
    h.verdict(HookVerdict::Replace(dup.as_bytes().to_vec()));
    assert!(h.log.to_upstream.is_empty());
    let (head, body) = decode_response(&h.log.to_client);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["id"], "req-7");
    assert_eq!(v["error"]["code"], HOOK_FAILED);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("duplicate"),
        "{v}"
    );
}

#[test]
fn a_response_replacement_that_respells_the_id_goes_with_the_ids_own_spelling() {
    let mut h = call_past_the_request_hooks();
    let body = r#"{"jsonrpc":"2.0","id":"req-7","result":{"content":[]}}"#;
    let resp = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    h.upstream(resp.as_bytes());
    // A hook that parsed the answer and wrote it again with an escape.
    let respelled = r#"{"jsonrpc":"2.0","id":"\u0072eq-7","result":{"content":[1]}}"#;
    h.verdict(HookVerdict::Replace(respelled.as_bytes().to_vec()));
    let (_, got) = decode_response(&h.log.to_client);
    let got = String::from_utf8(got).unwrap();
    assert_eq!(
        got,
        r#"{"jsonrpc":"2.0","id":"req-7","result":{"content":[1]}}"#
    );
}

#[test]
fn a_phase_no_hook_wants_is_neither_asked_for_nor_held() {
    let body = r#"{"jsonrpc":"2.0","id":"req-7","result":{"content":[]}}"#;
    let resp = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    // Requests only: the answer streams through without a verdict.
    let mut c = config();
    c.hooks = filter(&["tools/call@request"]);
    let mut h = Harness::new(c);
    h.client(&post(CALL))
        .verdict(HookVerdict::Continue)
        .connected(false);
    h.upstream(resp.as_bytes());
    assert_eq!(h.log.hooks.len(), 1);
    assert_eq!(h.log.hooks[0].phase, HookPhase::Request);
    assert_eq!(decode_response(&h.log.to_client).1, body.as_bytes());
    assert_eq!(h.log.finished, Some(Close::KeepAlive));

    // Responses only: the request goes upstream at once, the answer waits.
    let mut c = config();
    c.hooks = filter(&["tools/call@response"]);
    let mut h = Harness::new(c);
    h.client(&post(CALL)).connected(false);
    assert!(h.log.hooks.is_empty(), "no request-phase call");
    h.upstream(resp.as_bytes());
    assert_eq!(h.log.hooks.len(), 1);
    assert_eq!(h.log.hooks[0].phase, HookPhase::Response);
    assert!(h.log.to_client.is_empty(), "held for the verdict");
    h.verdict(HookVerdict::Continue);
    assert_eq!(decode_response(&h.log.to_client).1, body.as_bytes());
}

#[test]
fn a_hooked_json_answer_that_cannot_be_read_becomes_an_error() {
    let mut h = call_past_the_request_hooks();
    // Two `result` keys: a client might read either one.
    let body =
        r#"{"jsonrpc":"2.0","id":"req-7","result":{"content":[]},"result":{"secret":"sk-1"}}"#;
    let resp = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    h.upstream(resp.as_bytes());
    assert_eq!(
        h.log.hooks.len(),
        1,
        "no response-phase call on unreadable input"
    );
    let (_, got) = decode_response(&h.log.to_client);
    let v: serde_json::Value = serde_json::from_slice(&got).unwrap();
    assert_eq!(v["id"], "req-7");
    assert_eq!(v["error"]["code"], HOOK_FAILED);
    assert!(!String::from_utf8_lossy(&got).contains("sk-1"));
}

#[test]
fn a_hooked_sse_answer_that_cannot_be_read_becomes_an_error_event() {
    let mut h = call_past_the_request_hooks();
    let twice = "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":\"req-7\",\"result\":{},\"result\":{\"secret\":\"sk-1\"}}\n\n";
    h.upstream(SSE_HEAD.as_bytes())
        .upstream(chunk(PROGRESS).as_bytes())
        .upstream(chunk(twice).as_bytes())
        .upstream(b"0\r\n\r\n");
    assert_eq!(
        h.log.hooks.len(),
        1,
        "no response-phase call on unreadable input"
    );
    let (_, got) = decode_response(&h.log.to_client);
    let text = String::from_utf8(got).unwrap();
    let rest = text
        .strip_prefix(PROGRESS)
        .expect("progress first, unchanged");
    assert!(!rest.contains("sk-1"), "{rest}");
    let data = rest
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .expect("an event");
    let v: serde_json::Value = serde_json::from_str(data).unwrap();
    assert_eq!(v["id"], "req-7");
    assert_eq!(v["error"]["code"], HOOK_FAILED);
    assert_eq!(h.log.finished, Some(Close::KeepAlive));
}

#[test]
fn an_sse_response_holds_only_the_answer_event() {
    let mut h = call_past_the_request_hooks();
    h.upstream(SSE_HEAD.as_bytes())
        .upstream(chunk(PROGRESS).as_bytes());
    let (_, so_far) = decode_response(&[h.log.to_client.clone(), b"0\r\n\r\n".to_vec()].concat());
    assert_eq!(so_far, PROGRESS.as_bytes(), "progress flows at once");
    h.upstream(chunk(ANSWER).as_bytes()).upstream(b"0\r\n\r\n");
    assert_eq!(h.log.hooks.len(), 2);
    let (_, so_far) = decode_response(&[h.log.to_client.clone(), b"0\r\n\r\n".to_vec()].concat());
    assert_eq!(
        so_far,
        PROGRESS.as_bytes(),
        "the answer waits for the verdict"
    );
    assert!(h.log.finished.is_none());
    h.verdict(HookVerdict::Reject {
        code: -32003,
        message: "denied".into(),
        data: None,
    });
    let (_, body) = decode_response(&h.log.to_client);
    let body = String::from_utf8(body).unwrap();
    let answer = body.strip_prefix(PROGRESS).unwrap();
    assert!(
        answer.starts_with("event: message\nid: 9\ndata: "),
        "{answer}"
    );
    assert!(
        answer.contains("\"id\":\"req-7\"") && answer.contains("-32003"),
        "{answer}"
    );
    assert_eq!(h.log.finished, Some(Close::KeepAlive));
}

#[test]
fn an_sse_answer_left_unchanged_keeps_its_bytes() {
    let mut h = call_past_the_request_hooks();
    h.upstream(format!("{SSE_HEAD}{}{}0\r\n\r\n", chunk(PROGRESS), chunk(ANSWER)).as_bytes());
    h.verdict(HookVerdict::Continue);
    let (_, body) = decode_response(&h.log.to_client);
    assert_eq!(body, format!("{PROGRESS}{ANSWER}").as_bytes());
}

#[test]
fn upstream_death_while_the_answer_is_held_is_still_answered() {
    let mut h = call_past_the_request_hooks();
    h.upstream(SSE_HEAD.as_bytes())
        .upstream(chunk(&PROGRESS[..30]).as_bytes());
    h.upstream_end(UpstreamEnd::Error);
    let (_, body) = decode_response(&h.log.to_client);
    let body = String::from_utf8(body).unwrap();
    assert!(
        body.starts_with("event: message\ndata: "),
        "held mode forwards whole events only: {body}"
    );
    assert!(body.contains("\"id\":\"req-7\""));
}

/// Found by the `exchange_ops` fuzz target: a 502 for a `HEAD` request
/// carried a JSON body, which a keep-alive client reads as the start of the
/// next response. (`HEAD` reaches an upstream only on `/.well-known/*`; on an
/// MCP endpoint it is a local 405.)
#[test]
fn answers_to_head_requests_have_no_body() {
    let head_request =
        b"HEAD /.well-known/oauth-protected-resource HTTP/1.1\r\nHost: localhost\r\n\r\n";
    let mut h = Harness::new(config());
    h.client(head_request)
        .upstream_end(UpstreamEnd::ConnectFailed);
    let text = h.client_text();
    assert!(text.starts_with("HTTP/1.1 502 "), "{text}");
    assert!(text.ends_with("\r\n\r\n"), "no body after the head: {text}");
    assert_eq!(h.log.finished, Some(Close::KeepAlive));

    // Local answers too (the connection closes, but the bytes stay exact).
    let mut h = Harness::new(config());
    h.client(b"HEAD /other HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let text = h.client_text();
    assert!(text.starts_with("HTTP/1.1 404 "), "{text}");
    assert!(text.ends_with("\r\n\r\n"), "no body after the head: {text}");
    let mut h = Harness::new(config());
    h.client(b"HEAD /mcp HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let text = h.client_text();
    assert!(text.starts_with("HTTP/1.1 405 "), "{text}");
    assert!(text.ends_with("\r\n\r\n"), "no body after the head: {text}");
}

/// Issue 11, item 4: a dot-segment or an encoded separator was routed on the
/// bytes as sent and forwarded verbatim; an upstream that normalises would
/// serve another prefix. Refused before routing, whichever route it names.
#[test]
fn paths_another_server_could_read_differently_are_refused_before_routing() {
    let tenant = || {
        let mut c = config();
        c.router = Router::new(vec![
            Route {
                prefix: "/tenant".into(),
                upstream_path: "/v1/tenant-a/mcp".into(),
                well_known: true,
                upstream_host: "backend:3000".into(),
                upstream_query: None,
            },
            Route {
                prefix: "/".into(),
                upstream_path: "/".into(),
                well_known: false,
                upstream_host: "backend:3000".into(),
                upstream_query: None,
            },
        ]);
        c
    };
    for target in [
        "/tenant/../../tenant-b/mcp",
        "/tenant/%2e%2e/%2E%2E/tenant-b/mcp",
        "/tenant/.%2e/x",
        "/tenant/..;/x",
        "/tenant/..;x/y",
        "/tenant/.;/x",
        "/tenant/./x",
        "/.well-known/../tenant/x",
        "/.well-known/oauth-protected-resource/../../tenant",
        "/tenant%2f..%2fother",
        "/tenant/a%2Fb",
        "/tenant/a%5cb",
        "/tenant\\..\\other",
        "/other/../tenant",
        "http://localhost/tenant/../x",
        "http://localhost/.well-known/%2e%2e/tenant?q",
    ] {
        for method in ["POST", "GET"] {
            let mut h = Harness::new(tenant());
            let request = if method == "POST" {
                format!(
                    "POST {target} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n{CALL}",
                    CALL.len()
                )
            } else {
                format!("GET {target} HTTP/1.1\r\nHost: localhost\r\n\r\n")
            };
            h.client(request.as_bytes());
            let text = h.client_text();
            assert!(
                text.starts_with("HTTP/1.1 400 "),
                "{method} {target}: {text}"
            );
            assert!(h.log.connects.is_empty(), "{method} {target}: routed");
            assert!(h.log.to_upstream.is_empty(), "{method} {target}");
            assert_eq!(h.log.finished, Some(Close::Graceful));
            assert_eq!(h.ex.summary().status, Some(400));
        }
    }
    // The query is not the path; dots and slashes there are the upstream's
    // business.
    let mut h = Harness::new(tenant());
    h.client(b"GET /tenant/x?next=/../%2f HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .connected(false);
    let up = String::from_utf8(h.log.to_upstream.clone()).unwrap();
    assert!(
        up.starts_with("GET /v1/tenant-a/mcp/x?next=/../%2f HTTP/1.1\r\n"),
        "{up}"
    );
}

/// Issue 11, item 5: request hooks run on POST bodies only, and a
/// `tools/call` sent with `PUT`, a lowercase `post`, or as a `GET` with a
/// body reached the upstream unhooked. On an MCP endpoint only POST carries a
/// body; GET, DELETE and OPTIONS go without one; everything else is a 405
/// with `Allow`, before any hook or upstream.
#[test]
fn only_a_post_carries_a_message_to_an_mcp_endpoint() {
    let hooked = || {
        let mut c = config();
        c.hooks = filter(&["tools/call"]);
        c
    };
    let with_length = |method: &str, target: &str, body: &str| {
        format!(
            "{method} {target} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    let chunked = |method: &str, target: &str| {
        format!(
            "{method} {target} HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n\
             {:x}\r\n{CALL}\r\n0\r\n\r\n",
            CALL.len()
        )
    };
    let bare = |method: &str, target: &str| {
        format!("{method} {target} HTTP/1.1\r\nHost: localhost\r\n\r\n")
    };
    let mcp = "POST, GET, DELETE, OPTIONS";
    let well_known = "GET, HEAD, OPTIONS";
    let wk = "/.well-known/oauth-protected-resource";
    let refused = [
        (with_length("PUT", "/mcp", CALL), mcp),
        (with_length("PATCH", "/mcp", CALL), mcp),
        (with_length("post", "/mcp", CALL), mcp),
        (with_length("Post", "/mcp", CALL), mcp),
        (with_length("GET", "/mcp", CALL), mcp),
        (with_length("DELETE", "/mcp", CALL), mcp),
        (with_length("OPTIONS", "/mcp", CALL), mcp),
        (with_length("PROPFIND", "/mcp", CALL), mcp),
        (chunked("GET", "/mcp"), mcp),
        (chunked("PUT", "/mcp"), mcp),
        // Any Transfer-Encoding is a body, even an empty one.
        (
            "GET /mcp HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
                .to_owned(),
            mcp,
        ),
        (bare("PUT", "/mcp"), mcp),
        (bare("HEAD", "/mcp"), mcp),
        (bare("TRACE", "/mcp"), mcp),
        (bare("get", "/mcp"), mcp),
        (with_length("POST", wk, CALL), well_known),
        (with_length("GET", wk, CALL), well_known),
        (bare("DELETE", wk), well_known),
        (bare("PUT", wk), well_known),
    ];
    for (request, allow) in refused {
        let mut h = Harness::new(hooked());
        h.client(request.as_bytes());
        let line = request.lines().next().unwrap();
        let (head, body) = decode_response(&h.log.to_client);
        assert!(head.starts_with("HTTP/1.1 405 "), "{line}: {head}");
        assert!(
            head.contains(&format!("\r\nAllow: {allow}\r\n")),
            "{line}: {head}"
        );
        assert!(head.contains("\r\nConnection: close\r\n"), "{line}: {head}");
        if !line.starts_with("HEAD") {
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(v["error"]["code"], codes::INVALID_REQUEST, "{line}");
        }
        assert!(h.log.hooks.is_empty(), "{line}");
        assert!(h.log.connects.is_empty(), "{line}");
        assert!(h.log.to_upstream.is_empty(), "{line}");
        assert_eq!(h.log.finished, Some(Close::Graceful), "{line}");
        assert_eq!(h.ex.summary().status, Some(405), "{line}");
    }

    // What goes through, body-less but for POST.
    let passed = [
        bare("GET", "/mcp"),
        bare("DELETE", "/mcp"),
        bare("OPTIONS", "/mcp"),
        with_length("GET", "/mcp", ""),
        bare("GET", wk),
        bare("HEAD", wk),
        bare("OPTIONS", wk),
    ];
    for request in passed {
        let mut h = Harness::new(hooked());
        h.client(request.as_bytes());
        let line = request.lines().next().unwrap();
        assert_eq!(h.log.connects, vec![(0, false)], "{line}");
        assert!(h.log.hooks.is_empty(), "{line}");
        h.connected(false);
        let up = String::from_utf8(h.log.to_upstream.clone()).unwrap();
        assert!(up.starts_with(&format!("{line}\r\n")), "{up}");
        assert!(up.ends_with("\r\n\r\n"), "no body upstream: {up}");
    }
    // And a POST is hooked.
    let mut h = Harness::new(hooked());
    h.client(&post(CALL));
    assert_eq!(h.log.hooks.len(), 1);
}

/// A work-stealing runtime moves the task driving an exchange between
/// threads, and shares the config between connections.
#[test]
fn exchange_is_send_and_its_config_shareable() {
    fn assert_send<T: Send>() {}
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send::<Exchange>();
    assert_send::<Output>();
    assert_send_sync::<ExchangeConfig>();
}

#[test]
fn recommended_timeouts_are_all_set_but_the_stream_ones() {
    let t = Timeouts::recommended();
    assert!(t.client_idle.is_some() && t.client_request.is_some());
    assert!(t.connect.is_some() && t.response_head.is_some());
    // MCP streams may be quiet for hours; keep-alive comments are opt-in.
    assert_eq!((t.stream_idle, t.sse_keepalive), (None, None));
    let off = Timeouts::default();
    assert_eq!(
        (
            off.client_idle,
            off.client_request,
            off.connect,
            off.response_head
        ),
        (None, None, None, None)
    );
}

mod auth;
mod bounds;
mod hooked_answers;
mod message_upstream;
mod server_messages;
mod transport_probe;

#[test]
fn shutdown_closes_an_idle_connection_quietly() {
    let mut h = Harness::new(config());
    h.ex.shutdown(h.now);
    h.drain();
    assert!(h.log.to_client.is_empty());
    assert_eq!(h.log.finished, Some(Close::Graceful));
}

#[test]
fn shutdown_answers_a_half_read_request_503_and_sends_nothing_upstream() {
    let mut h = Harness::new(config());
    let request = post(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#);
    h.client(&request[..request.len() - 5]);
    h.ex.shutdown(h.now);
    h.drain();
    let text = h.client_text();
    assert!(text.starts_with("HTTP/1.1 503 "), "{text}");
    assert!(text.contains("Connection: close\r\n"), "{text}");
    assert!(h.log.to_upstream.is_empty());
    assert_eq!(h.log.finished, Some(Close::Graceful));
}

#[test]
fn shutdown_lets_an_exchange_under_way_finish_then_close() {
    let mut h = Harness::new(config());
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
    h.client(&post(body)).connected(false);
    h.ex.shutdown(h.now);
    h.drain();
    assert!(h.log.finished.is_none(), "the answer is still owed");
    let answer = r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[]}}"#;
    h.upstream(
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{answer}",
            answer.len()
        )
        .as_bytes(),
    );
    let text = h.client_text();
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.contains("Connection: close\r\n"), "{text}");
    assert!(text.ends_with(answer));
    assert_eq!(h.log.finished, Some(Close::Graceful));
}

fn post_with(extra: &str, body: &str) -> Vec<u8> {
    format!(
        "{POST_HEAD}{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

const CLIENT_PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[test]
fn the_clients_trace_context_is_read_and_replaced_upstream() {
    use crate::tracecontext::{SpanId, TraceParent};
    let mut h = Harness::new(config());
    let extra = format!("traceparent: {CLIENT_PARENT}\r\ntracestate: a=1\r\ntracestate: b=2\r\n");
    h.client(&post_with(&extra, CALL));
    let (parent, state) = h.ex.trace_context().expect("a valid traceparent");
    assert_eq!(parent.write(), CLIENT_PARENT);
    assert_eq!(state.as_deref(), Some("a=1,b=2"));
    let ours = TraceParent {
        parent_id: SpanId([1, 2, 3, 4, 5, 6, 7, 8]),
        ..parent
    };
    h.ex.propagate_trace(&ours, TraceCarrier::Headers);
    h.connected(false);
    let up = String::from_utf8(h.log.to_upstream.clone()).unwrap();
    assert_eq!(up.matches("traceparent").count(), 1, "{up}");
    assert!(
        up.contains("traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-0102030405060708-01\r\n"),
        "{up}"
    );
    assert!(up.contains("tracestate: a=1\r\n"), "kept: {up}");
}

#[test]
fn a_bad_traceparent_is_ignored_and_its_tracestate_dropped_upstream() {
    use crate::tracecontext::{SpanId, TraceId, TraceParent};
    let extra = "traceparent: 00-zz-00f067aa0ba902b7-01\r\ntracestate: a=1\r\n";
    let mut h = Harness::new(config());
    h.client(&post_with(extra, CALL));
    assert_eq!(h.ex.trace_context(), None);
    let ours = TraceParent {
        trace_id: TraceId([9; 16]),
        parent_id: SpanId([8; 8]),
        flags: 1,
    };
    h.ex.propagate_trace(&ours, TraceCarrier::Headers);
    h.connected(false);
    let up = String::from_utf8(h.log.to_upstream.clone()).unwrap();
    assert!(!up.contains("tracestate"), "{up}");
    assert!(
        up.contains(&format!("traceparent: {}\r\n", ours.write())),
        "{up}"
    );
    // Two traceparent lines are as invalid as one bad one.
    let twice = format!("traceparent: {CLIENT_PARENT}\r\ntraceparent: {CLIENT_PARENT}\r\n");
    let mut h = Harness::new(config());
    h.client(&post_with(&twice, CALL));
    assert_eq!(h.ex.trace_context(), None);
}

/// A tools/call whose `params._meta` carries `traceparent` (a JSON value
/// as written) and `tracestate`.
fn call_with_meta(traceparent: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":"req-7","method":"tools/call","params":{{"name":"echo","_meta":{{"progressToken":1,"traceparent":{traceparent},"tracestate":"m=1"}},"arguments":{{}}}}}}"#
    )
}

const META_PARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

/// sluice's context for the upstream, in the trace `of`.
fn ours(of: crate::tracecontext::TraceId) -> crate::tracecontext::TraceParent {
    crate::tracecontext::TraceParent {
        trace_id: of,
        parent_id: crate::tracecontext::SpanId([1, 2, 3, 4, 5, 6, 7, 8]),
        flags: 1,
    }
}

/// The body of the one request written upstream, checked against its
/// `Content-Length`.
fn upstream_body(log: &Log) -> String {
    let up = String::from_utf8(log.to_upstream.clone()).unwrap();
    let (head, body) = up.split_once("\r\n\r\n").unwrap();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .unwrap();
    assert_eq!(length.parse::<usize>().unwrap(), body.len(), "{up}");
    body.to_string()
}

#[test]
fn a_valid_meta_traceparent_wins_over_the_header_and_is_replaced_upstream() {
    let body = call_with_meta(&format!("\"{META_PARENT}\""));
    let mut h = Harness::new(config());
    let extra = format!("traceparent: {CLIENT_PARENT}\r\ntracestate: h=1\r\n");
    h.client(&post_with(&extra, &body));
    let (parent, state) = h.ex.trace_context().expect("a context");
    assert_eq!(parent.write(), META_PARENT, "_meta first");
    assert_eq!(state.as_deref(), Some("m=1"), "with its own tracestate");
    let ours = ours(parent.trace_id);
    h.ex.propagate_trace(&ours, TraceCarrier::Headers);
    h.connected(false);
    let up = String::from_utf8(h.log.to_upstream.clone()).unwrap();
    assert!(
        up.contains(&format!("traceparent: {}\r\n", ours.write())),
        "{up}"
    );
    assert!(up.contains("tracestate: m=1\r\n"), "_meta's state: {up}");
    assert!(!up.contains("h=1"), "not the header's: {up}");
    assert_eq!(
        upstream_body(&h.log),
        body.replace(META_PARENT, &ours.write()),
        "the value replaced, every other byte kept"
    );
    // A second attempt (a re-send) writes the body again, with its own parent.
    let mut again = ours;
    again.parent_id = crate::tracecontext::SpanId([9; 8]);
    h.ex.propagate_trace(&again, TraceCarrier::Headers);
    assert_eq!(
        h.ex.req.as_ref().unwrap().body,
        body.as_bytes(),
        "kept as sent"
    );
}

#[test]
fn an_invalid_meta_traceparent_leaves_the_header_in_charge_is_replaced_and_its_tracestate_dropped()
{
    for bad in [
        "\"00-zz\"",
        "17",
        "null",
        &format!("\"{}\"", CLIENT_PARENT.to_uppercase()),
    ] {
        let body = call_with_meta(bad);
        let mut h = Harness::new(config());
        h.client(&post_with(
            &format!("traceparent: {CLIENT_PARENT}\r\n"),
            &body,
        ));
        let (parent, state) = h.ex.trace_context().expect("the header's");
        assert_eq!((parent.write().as_str(), state), (CLIENT_PARENT, None));
        let mut h = Harness::new(config());
        h.client(&post(&body));
        assert_eq!(h.ex.trace_context(), None, "{bad}");
        let ours = ours(crate::tracecontext::TraceId([7; 16]));
        h.ex.propagate_trace(&ours, TraceCarrier::Headers);
        h.connected(false);
        // The state belonged to no trace: it goes, as a header's would.
        let want = body
            .replace(bad, &format!("\"{}\"", ours.write()))
            .replace(r#","tracestate":"m=1""#, "");
        assert_eq!(upstream_body(&h.log), want);
    }
}

#[test]
fn without_propagation_the_body_goes_as_sent() {
    // Tracing off: the driver never calls propagate_trace.
    let body = call_with_meta(&format!("\"{META_PARENT}\""));
    let mut h = Harness::new(config());
    h.client(&post(&body));
    h.connected(false);
    assert_eq!(upstream_body(&h.log), body);
    // Tracing on, over HTTP, a body without `_meta.traceparent` is not
    // touched, even where a `tracestate` stands alone there.
    let alone = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","_meta":{"tracestate":"m=1"}}}"#;
    for body in [CALL, alone] {
        let mut h = Harness::new(config());
        h.client(&post(body));
        h.ex.propagate_trace(
            &ours(crate::tracecontext::TraceId([7; 16])),
            TraceCarrier::Headers,
        );
        h.connected(false);
        assert_eq!(upstream_body(&h.log), body);
    }
}

#[test]
fn a_message_upstream_gets_meta_traceparent_added() {
    let mut h = Harness::new(config());
    h.client(&post(CALL));
    let ours = ours(crate::tracecontext::TraceId([7; 16]));
    h.ex.propagate_trace(&ours, TraceCarrier::Message);
    h.message_connected();
    let [req] = h.log.dispatched.as_slice() else {
        panic!("one dispatch: {:?}", h.log.dispatched);
    };
    let want = CALL.replace(
        r#""params":{"#,
        &format!(
            r#""params":{{"_meta":{{"traceparent":"{}"}},"#,
            ours.write()
        ),
    );
    assert_eq!(req.body, want.as_bytes());
}

#[test]
fn a_hook_replacement_keeps_the_clients_context_and_gets_ours() {
    let body = call_with_meta(&format!("\"{META_PARENT}\""));
    let mut h = Harness::new(hooked_config(&["tools/call"]));
    h.client(&post(&body));
    // The hook drops `_meta`: the client's context is still what it sent.
    let replaced =
        r#"{"jsonrpc":"2.0","id":"req-7","method":"tools/call","params":{"name":"echo"}}"#;
    h.verdict(HookVerdict::Replace(replaced.as_bytes().to_vec()));
    let (parent, state) = h.ex.trace_context().expect("the client's");
    assert_eq!(
        (parent.write().as_str(), state.as_deref()),
        (META_PARENT, Some("m=1"))
    );
    let ours = ours(parent.trace_id);
    h.ex.propagate_trace(&ours, TraceCarrier::Message);
    h.message_connected();
    let [req] = h.log.dispatched.as_slice() else {
        panic!("one dispatch");
    };
    let want = replaced.replace(
        r#""params":{"#,
        &format!(
            r#""params":{{"_meta":{{"traceparent":"{}"}},"#,
            ours.write()
        ),
    );
    assert_eq!(req.body, want.as_bytes());
}
