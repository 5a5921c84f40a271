//! sluice: the runtime of the sluice MCP proxy around `sluice-core` — the
//! I/O driver, the upstream dialer and pool, the wasmtime hook host,
//! configuration and the CLI.
//!
//! What runs where:
//!
//! - Everything runs on one runtime, `rt`: worker threads (`sluice-w0`,
//!   `sluice-w1`, …), each an edge-triggered epoll (through rustix),
//!   an async-task run queue and a timer list. The accept loop is a task on
//!   the first worker; each accepted connection is one task on the least
//!   loaded worker, which also polls the connection's upstream socket and
//!   runs its hook chains inline (wasmtime calls, each bounded by a
//!   deadline). Connection deadlines are not timers: one ticker task per
//!   proxy (one timer) wakes the connections that are due. `sluice demo`'s
//!   demo server runs on the same workers; signals arrive on a worker's
//!   poller; the main thread only waits.
//! - DNS lookups of upstream names run on at most four blocking
//!   `sluice-dns` threads (`getaddrinfo`), which hand the answer back
//!   through a channel. They run no reactor.
//! - A reload (SIGHUP, `--watch`) runs on the `sluice-reload` thread: it
//!   reads and checks the configuration and compiles its hooks there, off
//!   the workers, then swaps the proxy's current generation (`reload`).
//! - Log lines go through a bounded queue to one `sluice-log` thread that
//!   writes them to stderr in batches (`logq`): a worker never waits on
//!   stderr, and a line that finds the queue full is dropped and counted.
//! - The legacy HTTP+SSE bridge's tasks (one per backend session and per
//!   POST) run on the same workers, spawned with `rt::spawn_here`, with `rt`
//!   timers; an exchange reaches its session through a typed link (async
//!   channels), not a socket.
//!
//! No protocol rule lives here: this crate turns core outputs into syscalls
//! and syscalls into core inputs.

pub mod access;
mod auth;
pub mod config;
pub mod demo;
mod dial;
pub mod federation;
pub mod hook_cli;
pub mod hooks;
mod httpd;
pub mod legacy;
mod link;
pub mod logq;
pub mod metrics;
pub mod otel;
pub mod proxy;
pub mod reload;
mod rt;
pub mod settings;
pub mod stdio;
pub mod tls;
