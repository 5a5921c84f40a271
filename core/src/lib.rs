//! sluice-core: the sans-IO protocol core of the sluice MCP proxy.
//!
//! Everything sluice knows about HTTP/1.1, Server-Sent Events, JSON-RPC and
//! MCP's transport rules lives here, as data types and state machines that
//! never touch a socket, a clock, a thread or an async runtime. Callers push
//! bytes (and the current time) in and drain what the machines decide, so
//! the same code runs under the `sluice` binary's own executor (epoll and
//! async-task worker threads), a blocking `std::net` loop
//! (`examples/blocking_proxy.rs`), tokio (`examples/tokio_proxy.rs`) or a
//! proxy-wasm filter.
//!
//! # Modules
//!
//! | module | what it does |
//! |---|---|
//! | [`http1`] | request and response heads (over `httparse`), the one function that decides body framing, a strict chunked codec, hop-by-hop handling, head writers |
//! | [`sse`] | an incremental WHATWG event-stream parser (linear under any split, events keep their byte span) and an encoder |
//! | [`jsonrpc`] | classify one message or a batch in one pass without building a `Value`; build results and errors that echo the id byte for byte; read and write the trace context in `params._meta` ([`jsonrpc::meta`]) |
//! | [`inject`] | the pure rules for how an answer sluice makes itself reaches a client, given what the client has already been sent |
//! | [`guard`] | the `Host`/`Origin` checks against DNS rebinding |
//! | [`route`] | which upstream serves a request target, and the target it sees |
//! | [`host`] | the one reader of host names and IP literals |
//! | [`upstream`] | the typed seam to upstreams that speak in messages (a request in, answer parts out) |
//! | [`legacy`] | the bridge to HTTP+SSE (2024-11-05) backends and the `auto` transport probe, as state machines |
//! | [`federation`] | many servers behind one endpoint: curated names (globs, aliases, prefixes, the 64-character rule), merged lists and their cursors, routing by name and by URI |
//! | [`modern`] | MCP 2026-07-28's per-request era where sluice is the server: the envelope check, results completed for the era, `server/discover` |
//! | [`stdio`] | the stdio transport's framing: newline-delimited messages from a child's stdout told apart from the noise servers print there, and one line per message for its stdin |
//! | [`auth`] | who is calling: bearer credentials read strictly, `WWW-Authenticate` challenges, RFC 9728 metadata, JWT header and claim rules, scopes, API keys by hash |
//! | [`base64`] | RFC 4648 in the two alphabets MCP headers and sluice's tokens use |
//! | [`tracecontext`] | W3C `traceparent` read strictly and written, and the parent-based ratio sampling rule |
//! | [`exchange`] | one proxied request and its answer, as a state machine built from all of the above |
//!
//! # The loop
//!
//! Every state machine here is driven the same way: feed an input, then
//! drain outputs until there are none, performing each in the order given;
//! then wait for the next socket event or the machine's deadline. **Drain
//! after every input**: an output left in the queue while more input goes
//! in is still correct to perform later, but it is late (an SSE event held
//! back, an upstream connection not released), and the deadline reported by
//! `poll_timeout` only describes the machine after its outputs are drained.
//!
//! Here is one [`exchange::Exchange`] driven on a virtual clock, with the
//! outputs in the order a driver performs them:
//!
//! ```
//! use std::sync::Arc;
//! use std::time::{Duration, Instant};
//!
//! use sluice_core::bytes::Bytes;
//! use sluice_core::exchange::{
//!     ClientInfo, Close, Exchange, ExchangeConfig, ExchangeLimits, HookFilter, Output, Timeouts,
//! };
//! use sluice_core::guard::HostGuard;
//! use sluice_core::route::{Route, Router};
//!
//! let config = Arc::new(ExchangeConfig {
//!     router: Router::new(vec![Route {
//!         prefix: "/mcp".into(),
//!         upstream_path: "/mcp".into(),
//!         upstream_query: None,
//!         well_known: true,
//!         upstream_host: "127.0.0.1:3000".into(),
//!     }]),
//!     guard: HostGuard::local_default("127.0.0.1"),
//!     limits: ExchangeLimits::default(),
//!     timeouts: Timeouts {
//!         client_idle: Some(Duration::from_secs(60)),
//!         ..Timeouts::default()
//!     },
//!     forwarded_headers: false,
//!     hooks: HookFilter::none(),
//! });
//!
//! /// Perform every queued output, in order (here: write it down).
//! fn drain(exchange: &mut Exchange, done: &mut Vec<String>) {
//!     while let Some(output) = exchange.poll_output() {
//!         done.push(match output {
//!             Output::Connect { route, fresh } => format!("connect route {route} fresh={fresh}"),
//!             Output::ToUpstream(bytes) => format!("upstream <- {} bytes", bytes.len()),
//!             Output::ToClient(bytes) => format!("client <- {:?}", String::from_utf8_lossy(&bytes)),
//!             Output::ReleaseUpstream { reusable } => format!("release reusable={reusable}"),
//!             Output::Finished { close } => format!("finished {close:?}"),
//!             Output::RunHook(call) => format!("run hooks on {}", call.method),
//!             Output::Authenticate(call) => format!("judge the token for route {}", call.route),
//!             Output::Dispatch(request) => format!("message upstream <- {}", request.method),
//!             Output::ProbeTransport(evidence) => format!("transport evidence: {}", evidence.status),
//!             Output::AnswerServer { route, .. } => format!("answer a server request on route {route}"),
//!         });
//!     }
//! }
//!
//! let mut now = Instant::now(); // the caller's clock; tests advance it by hand
//! let mut done = Vec::new();
//! let mut exchange = Exchange::new(config.clone(), ClientInfo::default(), now);
//!
//! // 1. The client's request arrives (in any split).
//! let body = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
//! let request = format!(
//!     "POST /mcp HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n{body}",
//!     body.len()
//! );
//! let (a, b) = request.as_bytes().split_at(30);
//! exchange.feed_client(a, now);
//! drain(&mut exchange, &mut done);
//! exchange.feed_client(b, now);
//! drain(&mut exchange, &mut done);
//! assert_eq!(done, ["connect route 0 fresh=false"]);
//!
//! // 2. The driver opened (or pooled) a connection; the request goes out.
//! exchange.upstream_connected(false, now);
//! drain(&mut exchange, &mut done);
//! assert_eq!(done[1], "upstream <- 104 bytes");
//!
//! // 3. The answer comes back; each upstream read is forwarded at once.
//! now += Duration::from_millis(3);
//! exchange.feed_upstream(
//!     Bytes::from_static(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 36\r\n\r\n"),
//!     now,
//! );
//! drain(&mut exchange, &mut done);
//! exchange.feed_upstream(Bytes::from_static(br#"{"jsonrpc":"2.0","id":1,"result":{}}"#), now);
//! drain(&mut exchange, &mut done);
//! assert_eq!(
//!     done[2..],
//!     [
//!         r#"client <- "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 36\r\n\r\n""#,
//!         r#"client <- "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}""#,
//!         "release reusable=true",
//!         "finished KeepAlive",
//!     ]
//! );
//! assert!(exchange.is_finished() && exchange.poll_timeout().is_none());
//!
//! // 4. Keep-alive: the next exchange on the connection starts with the
//! //    leftover bytes. Time only moves when the caller says so: an idle
//! //    connection closes once its deadline is handed back.
//! let leftover = exchange.take_leftover();
//! let mut next = Exchange::new(config, ClientInfo::default(), now);
//! next.feed_client(&leftover, now);
//! let deadline = next.poll_timeout().expect("client_idle is set");
//! next.handle_timeout(deadline);
//! done.clear();
//! drain(&mut next, &mut done);
//! assert_eq!(done, ["finished Graceful"]);
//! # let _ = Close::Abort;
//! ```
//!
//! A real driver replaces `drain`'s bookkeeping with writes, connects and
//! pool check-ins, and waits with `poll_timeout` as its timer; what it owes
//! the sockets is in the [`exchange`] docs. See `core/examples/tokio_proxy.rs`
//! (tokio, the one to copy), `core/examples/blocking_proxy.rs` (threads and
//! `std::net`) and `runtime/src/proxy/conn.rs` (the `sluice` binary). Start
//! from [`exchange::Timeouts::recommended`]: `Timeouts::default()` turns
//! every timeout off.
//!
//! # Errors and limits
//!
//! - Nothing here panics on input, whatever the bytes; the fuzz targets in
//!   `fuzz/` hold every module to that.
//! - Each layer has its own small error enum ([`http1::HeadError`],
//!   [`http1::ChunkedError`], [`sse::SseError`], [`jsonrpc::ClassifyError`],
//!   [`guard::GuardError`]) that carries what the layer above needs to
//!   answer: an HTTP status (`status()`) or a JSON-RPC code (`code()`).
//!   Parsers' errors are sticky: after one, the stream is not trusted again.
//! - A peer's mistake is answered on the wire (a 4xx to a client, a 502 or
//!   an injected JSON-RPC error for an upstream, by the [`inject`] rules);
//!   a truncated answer is never made to look complete.
//! - Everything that buffers or counts has a named, documented limit in a
//!   config struct ([`http1::Limits`], [`sse::SseLimits`],
//!   [`jsonrpc::Limits`], [`exchange::ExchangeLimits`]) with defaults that
//!   are generous for real peers and bounded for attackers. Time limits are
//!   [`exchange::Timeouts`]; the machines only compare `Instant`s they are
//!   given.
//!
//! # Guarantees
//!
//! - `#![forbid(unsafe_code)]`: no `unsafe` anywhere in the crate (fast
//!   paths use `memchr` and word-at-a-time scans in safe code).
//! - `#![warn(missing_docs)]`: every public item is documented.
//! - No I/O, no clock, no threads: the crate builds for `wasm32-wasip2`
//!   (`cargo build -p sluice-core --target wasm32-wasip2`), its only
//!   dependencies being `bytes`, `httparse`, `memchr` and `serde_json`.
//! - [`Bytes`](bytes::Bytes) is part of the API (upstream input, every
//!   output), so the crate re-exports [`bytes`]: `sluice_core::bytes::Bytes`
//!   is always the version the machines take, with no second dependency to
//!   keep in step.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub use bytes;

pub mod auth;
pub mod base64;
pub mod exchange;
pub mod federation;
pub mod guard;
pub mod host;
pub mod http1;
pub mod inject;
pub mod jsonrpc;
pub mod legacy;
pub mod modern;
pub mod route;
pub mod sse;
pub mod stdio;
pub mod tracecontext;
pub mod upstream;
