//! sluice-core: the sans-IO protocol core of the sluice MCP proxy.
//!
//! Nothing here touches a socket, a clock or a thread. Callers push bytes in
//! and drain what the state machines decide, so the same code runs under
//! smol (the `sluice` binary), a blocking `std::net` loop, or a proxy-wasm
//! filter.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod exchange;
pub mod guard;
pub mod http1;
pub mod inject;
pub mod jsonrpc;
pub mod legacy;
pub mod route;
pub mod sse;
