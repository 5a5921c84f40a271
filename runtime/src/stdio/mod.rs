//! The MCP stdio transport's process side: an MCP server run as a child
//! process, spoken to over its stdin and stdout, its stderr logged.
//!
//! [`Child`] spawns, supervises and shuts down one server on rt; the bytes on
//! its pipes are framed by `sluice_core::stdio` (sans-IO), not here.

// wired to the proxy by the stdio bridge (issue 13)
#![allow(dead_code)]

mod child;

#[allow(unused_imports)] // the same: used by the stdio bridge
pub(crate) use child::{Child, ChildSpec, Ended, Exit, Rlimits};
