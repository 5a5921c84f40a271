//! Many MCP servers behind one endpoint: the rules of a federation, as
//! data and pure functions, and the machine that fans one client request
//! out to the members and back in ([`fanout`]).
//!
//! - [`names`]: what a member's tools and prompts are called at the
//!   endpoint — include and exclude globs over the member's own names,
//!   aliases, a prefix (`always`, `conditional`: only with more than one
//!   member, or `never`) with a separator, description overrides — and the
//!   name rules clients enforce (1 to 64 characters of `A-Za-z0-9_-.`).
//! - [`catalog`]: one page of a merged `tools/list` or `prompts/list`, in
//!   member order, every item's text kept but its name (and overridden
//!   description); collisions, bad names and unreadable items left out and
//!   reported; and where a shown name leads ([`Catalog::resolve`]: from the
//!   lists seen, or from the curation alone when a prefix says whose, so a
//!   replica that never listed can route a call).
//! - [`cursor`]: the opaque cursor of a merged list, carrying each
//!   member's own.
//! - [`resources`]: which member serves a URI (resources keep their URIs),
//!   from the members' resource lists and URI templates.
//! - [`rewrite`]: byte-level edits — a name replaced where it lies, a
//!   member's request id tagged with the member and restored.
//! - [`fanout`]: one client request across the members (`initialize`,
//!   merged lists, routed calls streaming back, the client's answers to
//!   members' requests, `GET`, `DELETE`), with a deadline per member.
//! - [`health`]: each member's failure policy (timeout, whether lists go
//!   on without it) and its circuit breaker.
//! - [`http`]: a member over Streamable HTTP — its request written, its
//!   answer read back as parts.

pub mod catalog;
pub mod cursor;
pub mod fanout;
pub mod health;
pub mod http;
pub mod names;
pub mod resources;
pub mod rewrite;

pub use catalog::{Catalog, Member, Problem, Resolved, Target};
pub use cursor::{ForeignCursor, MergedCursor};
pub use fanout::{Context, Fanout, Leg, LegOutcome, Lists, MemberSession, Output};
pub use health::{Breaker, CircuitOpen, MemberPolicy, OnUnavailable};
pub use names::{Curation, Glob, MAX_NAME_LEN, NameError, PrefixMode, check_name};
pub use resources::Resources;
