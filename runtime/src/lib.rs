//! sluice: the runtime of the sluice MCP proxy — the smol driver around
//! `sluice-core`, the wasmtime hook host, configuration and the CLI.
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
