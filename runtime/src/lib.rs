//! sluice: the runtime of the sluice MCP proxy around `sluice-core` — the
//! I/O driver, the upstream dialer and pool, the wasmtime hook host,
//! configuration and the CLI.
//!
//! What runs where:
//!
//! - Client connections run on the proxy's own executor, `rt`: worker
//!   threads, each an edge-triggered epoll (mio) and an async-task run
//!   queue. The accept loop is a task on the first worker; each accepted
//!   connection is one task on the least loaded worker, which also polls the
//!   connection's upstream socket and runs its hook chains inline (wasmtime
//!   calls, each bounded by a deadline). Connection deadlines are not
//!   timers: one ticker thread per proxy wakes the connections that are due.
//! - The legacy HTTP+SSE bridge's tasks (one per virtual connection, per
//!   backend session and per POST) run on smol's global executor, because a
//!   session outlives the client connections that use it; their backend
//!   sockets are registered with `rt`'s shared reactor thread.
//! - smol and async-io otherwise serve as helpers: channels, `block_on` on
//!   the thread that waits for shutdown, async-io timers (the accept
//!   back-off, shutdown, the bridge's timeouts), DNS lookups on smol's
//!   blocking pool, and the demo server, which runs on a thread of its own
//!   with a smol executor.
//!
//! No protocol rule lives here: this crate turns core outputs into syscalls
//! and syscalls into core inputs.

mod access;
pub mod config;
pub mod demo;
mod dial;
pub mod hooks;
pub mod legacy;
pub mod proxy;
mod rt;
pub mod settings;
pub mod tls;
