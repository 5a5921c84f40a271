//! The hook host: runs operator-configured WebAssembly components
//! (`wit/hook.wit`, package `sluice:hook@0.2.0`, and the 0.1.0 world of
//! `wit/0.1.0/hook.wit`, see `world.rs`) on JSON-RPC messages.
//!
//! Each hook is compiled once at [`HookHost::load`] (through a cache of
//! precompiled artifacts), validated against the world, and asked which
//! methods it wants. Per hooked message the host takes a fresh instance from
//! the pooling allocator (copy-on-write memory images make that cheap), sets
//! a CPU deadline (epoch interruption, 1 ms ticks) and a memory cap, calls the
//! hook and checks its verdict. Hooks in an interpreted language, whose
//! instantiation costs hundreds of microseconds, may instead run in
//! [`InstanceMode::Warm`]: a few instances kept between calls, recycled after
//! a number of calls and discarded after any failure.
//!
//! Calls are synchronous CPU work bounded by the deadline; [`HookHost`] is
//! `Send + Sync` and may be called from many tasks at once.
//!
//! ```no_run
//! # use sluice::hooks::*;
//! # fn main() -> anyhow::Result<()> {
//! let host = HookHost::load(vec![HookSpec::new("policy", "policy.wasm")], None)?;
//! let ctx = HookContext { upstream: "tools".into(), ..HookContext::default() };
//! let req = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"rm"}}"#;
//! if host.wants("tools/call") {
//!     match host.run_request(&ctx, "tools/call", req).outcome {
//!         ChainOutcome::Continue => { /* forward the original bytes */ }
//!         ChainOutcome::Replaced(json) => { /* forward `json` */ }
//!         ChainOutcome::Reject { code, message, data } => { /* answer with an error */ }
//!         ChainOutcome::Respond(result) => { /* answer with a result */ }
//!     }
//! }
//! # Ok(()) }
//! ```

mod bindings;
mod cache;
mod error;
mod imports;
mod verdict;
mod world;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use sluice_core::exchange::HookPhase;
use wasmtime::component::{Linker, ResourceTable};
use wasmtime::{
    Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, ResourceLimiter,
    Store, Trap,
};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use world::{CallContext, Instance, Pre};

pub use cache::{CacheStatus, default_cache_dir};
pub use error::{HookError, HookErrorKind};
pub use imports::ImportKind;
use sluice_core::exchange::methods::{HookMethods, MethodSet};
use verdict::Checked;

/// The JSON-RPC error code the proxy answers with when a hook with
/// `on_error = reject` fails (in the implementation-defined range
/// -32000..-32019; hooks themselves may not use that range).
pub const HOOK_FAILED_CODE: i64 = sluice_core::exchange::HOOK_FAILED;

/// Default deadline per hooked message (instantiation plus call). It is
/// wall-clock time on the calling thread, so it also counts time the OS
/// spends running other threads: a safety net against runaway guests, set
/// well above a hook's normal cost (tens of microseconds).
pub const DEFAULT_DEADLINE: Duration = Duration::from_millis(50);
/// Default cap on a hook's linear memory, in bytes: 16 MiB, the config's
/// documented `max_memory` default (the config takes it from here).
pub const DEFAULT_MAX_MEMORY: usize = 16 << 20;
/// Default cap on a message handed to a hook and on a verdict's payload.
pub const DEFAULT_MAX_MESSAGE: usize = 4 << 20;
/// Default number of instance slots in the pool, shared by all hooks of a
/// host (concurrent fresh calls plus every warm instance).
pub const DEFAULT_MAX_INSTANCES: u32 = 128;

/// Log lines from a guest are cut at this many bytes.
const MAX_LOG_LINE: usize = 4096;
/// The epoch ticker's period: the granularity of deadlines.
const TICK: Duration = Duration::from_millis(1);
/// A wasm file larger than this is refused at load.
const MAX_WASM_FILE: u64 = 256 << 20;

/// What the chain runner does when a hook fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnError {
    /// Fail closed: answer the client with a [`HOOK_FAILED_CODE`] error.
    #[default]
    Reject,
    /// Fail open: skip the hook, as if it had said `continue`.
    Pass,
}

/// Whether a hook's verdicts act (the MCP Interceptors draft's `mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Enforcement {
    /// Its verdicts act: a rejection stops the message, a replacement goes on.
    #[default]
    Enforce,
    /// It runs on every message it wants and its verdict is logged and
    /// counted, never applied: the chain goes on with the message it got,
    /// whatever the hook said, and a failure never stops it.
    Audit,
}

impl Enforcement {
    /// As metrics and logs name it.
    pub fn label(self) -> &'static str {
        match self {
            Enforcement::Enforce => "enforce",
            Enforcement::Audit => "audit",
        }
    }
}

/// How instances are provided to a hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InstanceMode {
    /// A fresh instance per hooked message: nothing survives between
    /// messages. Right for Rust, C and other compiled guests (~10–20 µs).
    #[default]
    Fresh,
    /// Keep up to `pool` instantiated instances and reuse them; an instance
    /// is dropped after `recycle_after` calls or after any failure. State
    /// (globals, memory) survives between the calls one instance serves.
    /// For interpreted guests (JS, Python) whose instantiation is slow.
    Warm {
        /// Instances kept idle at most.
        pool: usize,
        /// Calls one instance serves before it is dropped.
        recycle_after: u32,
    },
}

/// Capabilities the operator grants a hook. Everything is denied by default.
///
/// WASI interfaces are always linked (Rust std guests import some whether
/// they use them or not) but behave as denied: no files, no network, no
/// environment, closed stdin, discarded stdout/stderr, a clock frozen at the
/// Unix epoch and a fixed, non-secret "random" sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Grants {
    /// The real wall and monotonic clocks.
    pub clock: bool,
    /// Real randomness (secure and insecure WASI random).
    pub random: bool,
    /// The guest's stdout and stderr go to the proxy's stderr (debugging).
    pub stdio: bool,
}

impl Grants {
    /// Parse grant names as written in config: `clock`, `random`, `stdio`.
    pub fn parse<S: AsRef<str>>(names: &[S]) -> anyhow::Result<Grants> {
        let mut g = Grants::default();
        for n in names {
            match n.as_ref() {
                "clock" => g.clock = true,
                "random" => g.random = true,
                "stdio" => g.stdio = true,
                other => bail!("unknown hook grant {other:?} (known: clock, random, stdio)"),
            }
        }
        Ok(g)
    }
}

/// One hook as the operator configured it.
#[derive(Debug, Clone)]
pub struct HookSpec {
    /// Name used in logs and error messages.
    pub name: String,
    /// The component file (`.wasm`).
    pub path: PathBuf,
    /// Operator narrowing: the hook sees a method only if both its own
    /// `methods()` and this list match it. `None` = no narrowing.
    pub methods: Option<Vec<String>>,
    /// The string the hook's `config()` import returns.
    pub config: String,
    /// What a failure of this hook does to the message.
    pub on_error: OnError,
    /// Deadline per message, instantiation plus call (wall-clock, 1 ms
    /// granularity; may overrun by up to 1 ms).
    pub deadline: Duration,
    /// Cap on the hook's linear memory, in bytes.
    pub max_memory_bytes: usize,
    /// Fresh or warm instances.
    pub mode: InstanceMode,
    /// Enforced or audited.
    pub enforcement: Enforcement,
    /// Where it runs in the chain: lower first; hooks of equal order keep
    /// their order in the config.
    pub order: i32,
    /// Capabilities granted.
    pub grants: Grants,
    /// The client request headers this hook sees in its context, by name
    /// (case-insensitive). Empty: none. Headers not listed never reach it.
    pub headers: Vec<String>,
}

impl HookSpec {
    /// A spec with the defaults: no narrowing, empty config, fail closed,
    /// [`DEFAULT_DEADLINE`], [`DEFAULT_MAX_MEMORY`], fresh instances, no grants,
    /// no headers.
    pub fn new(name: impl Into<String>, path: impl Into<PathBuf>) -> HookSpec {
        HookSpec {
            name: name.into(),
            path: path.into(),
            methods: None,
            config: String::new(),
            on_error: OnError::Reject,
            deadline: DEFAULT_DEADLINE,
            max_memory_bytes: DEFAULT_MAX_MEMORY,
            mode: InstanceMode::Fresh,
            enforcement: Enforcement::Enforce,
            order: 0,
            grants: Grants::default(),
            headers: Vec::new(),
        }
    }
}

/// Whether `name` can be put in a hook's header allow-list: an HTTP field
/// name (RFC 9110 token characters), no wildcard.
pub(crate) fn check_header_name(name: &str) -> Result<(), String> {
    const EXTRA: &[u8] = b"!#$%&'*+-.^_`|~";
    if name.is_empty() {
        return Err("a header name cannot be empty".into());
    }
    if name == "*" {
        return Err("there is no wildcard: list each header a hook may see".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || (c.is_ascii() && EXTRA.contains(&(*c as u8)))))
    {
        return Err(format!(
            "{name:?} is not a header name ({c:?} is not allowed)"
        ));
    }
    Ok(())
}

/// Severity of a guest's log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// Very detailed tracing.
    Trace,
    /// Diagnostic detail.
    Debug,
    /// Normal information.
    Info,
    /// Something unexpected.
    Warn,
    /// Something failed.
    Error,
}

/// Where guest log lines go: `(hook name, level, line)`.
pub type LogSink = Arc<dyn Fn(&str, LogLevel, &str) + Send + Sync>;

/// Host-wide settings beyond the hook specs.
#[derive(Clone)]
pub struct HostOptions {
    /// Directory of the precompiled-artifact cache; `None` compiles in memory.
    pub cache_dir: Option<PathBuf>,
    /// Cap on a message given to a hook and on a verdict's payload.
    pub max_message_bytes: usize,
    /// Instance slots in the pooling allocator (see [`DEFAULT_MAX_INSTANCES`]).
    pub max_instances: u32,
    /// Receives the guests' `log` calls. Default: stderr, `info` and up.
    pub log: LogSink,
}

impl Default for HostOptions {
    fn default() -> Self {
        HostOptions {
            cache_dir: None,
            max_message_bytes: DEFAULT_MAX_MESSAGE,
            max_instances: DEFAULT_MAX_INSTANCES,
            log: Arc::new(|hook, level, line| {
                if level >= LogLevel::Info {
                    eprintln!("hook {hook} [{level:?}]: {line}");
                }
            }),
        }
    }
}

/// What the proxy knows about the exchange; given to hooks as `context`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HookContext {
    /// `Mcp-Session-Id`, when the session has one.
    pub session_id: Option<String>,
    /// The negotiated MCP protocol version, when known.
    pub protocol_version: Option<String>,
    /// The route / upstream name.
    pub upstream: String,
    /// The client's request headers, (lower-case name, value) in arrival
    /// order. Each hook gets only those its [`HookSpec::headers`] names;
    /// the rest are dropped before the guest is called.
    pub headers: Vec<(String, String)>,
    /// The caller, when the route authenticates its clients: what
    /// `sluice:hook@0.2.0` hooks get as `context.identity` (0.1.0 hooks
    /// never see it).
    pub identity: Option<Arc<sluice_core::auth::Identity>>,
}

/// The final word of a hook chain on one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainOutcome {
    /// Forward the message unchanged (the original bytes).
    Continue,
    /// Forward this JSON-RPC message instead (same kind, same id).
    Replaced(String),
    /// Answer the client with this JSON-RPC error (echoing the request id).
    Reject {
        /// JSON-RPC error code.
        code: i64,
        /// Error message.
        message: String,
        /// Optional `data`, as JSON text.
        data: Option<String>,
    },
    /// Answer the client with a success response whose `result` is this JSON.
    Respond(String),
}

/// What one hook did in a chain run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookRunResult {
    /// Said `continue`.
    Continue,
    /// Replaced the message.
    Replaced,
    /// Rejected (stopped the chain).
    Rejected,
    /// Answered directly (stopped the chain).
    Responded,
    /// Failed; `passed` tells whether `on_error = pass` let the chain go on.
    Failed {
        /// The failure.
        error: HookError,
        /// Whether the chain continued past it.
        passed: bool,
    },
}

/// Timing and result of one hook in a chain run, for the access log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookRun {
    /// The hook's name.
    pub hook: Arc<str>,
    /// Wall time spent (instantiation, call and checks).
    pub elapsed: Duration,
    /// What it did (in audit mode: what it would have done).
    pub result: HookRunResult,
    /// The hook is audited: its verdict was not applied.
    pub audit: bool,
}

/// The outcome of a chain run plus what each hook did and how long it took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainReport {
    /// What the proxy should do.
    pub outcome: ChainOutcome,
    /// Total wall time of the chain.
    pub total: Duration,
    /// One entry per hook that ran, in order.
    pub runs: Vec<HookRun>,
}

/// Facts about a loaded hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookInfo {
    /// The hook's name.
    pub name: Arc<str>,
    /// What the hook's `methods()` returned.
    pub declared: Vec<String>,
    /// Whether its compiled artifact came from the cache.
    pub cache: CacheStatus,
    /// The world it implements: `sluice:hook@0.2.0` or `sluice:hook@0.1.0`.
    pub world: &'static str,
    /// The component's imports, in its order, with how the host serves each.
    pub imports: Vec<(String, ImportKind)>,
    /// Enforced or audited.
    pub enforcement: Enforcement,
}

/// The loaded hooks, ready to run. `Send + Sync`.
pub struct HookHost {
    hooks: Vec<LoadedHook>,
    max_message_bytes: usize,
    // Dropped last: stops the epoch thread after the hooks are gone.
    _ticker: Ticker,
}

struct LoadedHook {
    shared: Arc<Shared>,
    pre: Pre,
    declared: Vec<String>,
    /// What it sees: its `methods()`, narrowed by the operator's list.
    methods: HookMethods,
    /// Lower-case names of the headers this hook may see.
    headers: Vec<String>,
    on_error: OnError,
    enforcement: Enforcement,
    deadline: Duration,
    deadline_ticks: u64,
    mode: InstanceMode,
    warm: Mutex<Vec<Warm>>,
    cache: CacheStatus,
    imports: Vec<(String, ImportKind)>,
}

/// Per-hook data every store of that hook points at.
struct Shared {
    name: Arc<str>,
    config: String,
    grants: Grants,
    max_memory: usize,
    log: LogSink,
}

struct Warm {
    store: Store<HostState>,
    hook: Instance,
    calls: u32,
}

/// The store data of one instance.
struct HostState {
    shared: Arc<Shared>,
    memory_used: usize,
    memory_denied: bool,
    // Built on the first WASI call only: most hooks never make one.
    wasi: Option<WasiCtx>,
    table: ResourceTable,
}

impl HostState {
    fn new(shared: Arc<Shared>) -> HostState {
        HostState {
            shared,
            memory_used: 0,
            memory_denied: false,
            wasi: None,
            table: ResourceTable::new(),
        }
    }
}

impl ResourceLimiter for HostState {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Counted over all memories of the instance.
        let next = self.memory_used + desired.saturating_sub(current);
        if next > self.shared.max_memory {
            self.memory_denied = true;
            // An error traps at once, rather than leaving a guest to spin on
            // a failing `memory.grow` until the deadline.
            return Err(wasmtime::Error::msg("hook memory cap reached"));
        }
        self.memory_used = next;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        let grants = self.shared.grants;
        let ctx = self.wasi.get_or_insert_with(|| wasi_ctx(grants));
        WasiCtxView {
            ctx,
            table: &mut self.table,
        }
    }
}

/// A clock stopped at the Unix epoch: what a guest without the `clock`
/// grant sees.
struct FrozenClock;

impl wasmtime_wasi::HostWallClock for FrozenClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl wasmtime_wasi::HostMonotonicClock for FrozenClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }
    fn now(&self) -> u64 {
        0
    }
}

fn wasi_ctx(grants: Grants) -> WasiCtx {
    let mut b = WasiCtxBuilder::new();
    // No tokio threads for blocking stdio; no sockets, files, env or args
    // (the builder's defaults for the latter two).
    b.allow_blocking_current_thread(true)
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false);
    if grants.stdio {
        b.stdout(std::io::stderr()).stderr(std::io::stderr());
    }
    if !grants.clock {
        b.wall_clock(FrozenClock).monotonic_clock(FrozenClock);
    }
    if !grants.random {
        b.secure_random(wasmtime_wasi::Deterministic::new(vec![0x5a]))
            .insecure_random(wasmtime_wasi::Deterministic::new(vec![0xa5]))
            .insecure_random_seed(0);
    }
    b.build()
}

/// The thread that advances the engine's epoch every [`TICK`].
struct Ticker {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Ticker {
    fn start(engine: Engine) -> anyhow::Result<Ticker> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::Builder::new()
            .name("sluice-hook-epoch".into())
            .spawn(move || {
                // One tick per wake-up, deliberately not catching up after a
                // late one: when the machine is starved of CPU the deadline
                // stretches with it, rather than killing hooks whose thread
                // merely waited for a core.
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(TICK);
                    engine.increment_epoch();
                }
            })?;
        Ok(Ticker {
            stop,
            handle: Some(handle),
        })
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Reads a method list with core's grammar; `who` names it in the error.
fn method_set(who: &str, entries: &[String]) -> anyhow::Result<MethodSet> {
    MethodSet::parse(entries).map_err(|(i, e)| {
        anyhow::anyhow!(
            "{who}: bad method pattern {:?}: {e} (use a method name, \"*\" or \"prefix/*\", \
             optionally followed by @request or @response)",
            entries.get(i).map_or("", String::as_str)
        )
    })
}

/// Bytes of a linear memory reset in place (memset) rather than returned to
/// the kernel when its instance ends.
const KEEP_RESIDENT: usize = 2 << 20;

fn engine(specs: &[HookSpec], opts: &HostOptions) -> anyhow::Result<Engine> {
    const PAGE: usize = 64 << 10;
    let max_memory = specs
        .iter()
        .map(|s| s.max_memory_bytes)
        .max()
        .unwrap_or(DEFAULT_MAX_MEMORY)
        .div_ceil(PAGE)
        .max(1)
        * PAGE;
    let slots = opts.max_instances.max(1);
    let mut pool = PoolingAllocationConfig::default();
    // Compiled guests (Rust std + WASI shims, Python) have many core
    // instances and tables per component.
    pool.total_component_instances(slots)
        .total_core_instances(slots.saturating_mul(16))
        .total_memories(slots.saturating_mul(2))
        .total_tables(slots.saturating_mul(16))
        .max_core_instances_per_component(128)
        .max_memories_per_component(8)
        .max_tables_per_component(64)
        .max_tables_per_module(8)
        .max_memory_size(max_memory)
        // A fresh instance per message reuses a slot whose pages the last
        // one dirtied. Resetting them with madvise cost a quarter of a
        // hooked request (the madvise, the TLB shootdown across workers,
        // then a page fault per page the next instance touches again):
        // with PAGEMAP_SCAN (Linux 6.7) only the pages that are resident
        // are found and reset with memset, up to this much, and stay mapped.
        .pagemap_scan(Enabled::Auto)
        .linear_memory_keep_resident(KEEP_RESIDENT)
        .table_keep_resident(64 << 10);
    let mut cfg = Config::new();
    cfg.wasm_component_model(true)
        .epoch_interruption(true)
        .memory_init_cow(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Ok(Engine::new(&cfg)?)
}

fn linker(engine: &Engine) -> anyhow::Result<Linker<HostState>> {
    let mut linker = Linker::new(engine);
    world::add_to_linker(&mut linker)?;
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
    Ok(linker)
}

impl HookHost {
    /// Load, compile (through the cache at `cache_dir`, if any) and validate
    /// every hook, and ask each which methods it wants. Errors name the hook.
    pub fn load(specs: Vec<HookSpec>, cache_dir: Option<PathBuf>) -> anyhow::Result<HookHost> {
        HookHost::load_with(
            specs,
            HostOptions {
                cache_dir,
                ..HostOptions::default()
            },
        )
    }

    /// [`HookHost::load`] with every host-wide setting.
    pub fn load_with(mut specs: Vec<HookSpec>, opts: HostOptions) -> anyhow::Result<HookHost> {
        // Stable: equal orders keep the config's.
        specs.sort_by_key(|s| s.order);
        let engine = engine(&specs, &opts)?;
        let mut hooks = Vec::with_capacity(specs.len());
        for spec in specs {
            let name = spec.name.clone();
            let hook = load_one(&engine, spec, &opts).with_context(|| format!("hook {name}"))?;
            hooks.push(hook);
        }
        Ok(HookHost {
            hooks,
            max_message_bytes: opts.max_message_bytes,
            _ticker: Ticker::start(engine)?,
        })
    }

    /// Whether any hook wants to see `method`, in either phase: if not, the
    /// proxy need not parse the message (or its response) at all.
    pub fn wants(&self, method: &str) -> bool {
        self.wants_in(method, HookPhase::Request) || self.wants_in(method, HookPhase::Response)
    }

    /// Whether any hook wants to see `method` in `phase`: if not, running
    /// the chain there is a no-op and instantiates nothing.
    pub fn wants_in(&self, method: &str, phase: HookPhase) -> bool {
        self.hooks.iter().any(|h| h.methods.wants(method, phase))
    }

    /// What each hook sees, in chain order: the proxy's exchange filter
    /// ([`sluice_core::exchange::HookFilter`]) is built from it.
    pub fn methods(&self) -> Vec<HookMethods> {
        self.hooks.iter().map(|h| h.methods.clone()).collect()
    }

    /// The lower-case names of every header some hook may see (sorted, no
    /// duplicates): the proxy collects only these from a request.
    pub fn header_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .hooks
            .iter()
            .flat_map(|h| h.headers.iter().cloned())
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// Whether a client's answer the hooks cannot judge (its server request
    /// was never forwarded here) must be refused: some enforced hook that
    /// wants client answers fails closed.
    pub fn refuses_unseen_answers(&self) -> bool {
        self.hooks.iter().any(|h| {
            h.methods.covers_phase(HookPhase::ClientAnswer)
                && h.enforcement == Enforcement::Enforce
                && h.on_error == OnError::Reject
        })
    }

    /// Facts about the loaded hooks, in chain order.
    pub fn hooks(&self) -> Vec<HookInfo> {
        self.hooks
            .iter()
            .map(|h| HookInfo {
                name: h.shared.name.clone(),
                declared: h.declared.clone(),
                cache: h.cache,
                world: h.pre.world(),
                imports: h.imports.clone(),
                enforcement: h.enforcement,
            })
            .collect()
    }

    /// Run the chain on a client request (or notification) `request_json`
    /// whose method is `method`.
    pub fn run_request(&self, ctx: &HookContext, method: &str, request_json: &str) -> ChainReport {
        self.run(ctx, HookPhase::Request, method, None, request_json)
    }

    /// Run the chain on the upstream's `response_json` to `request_json` (the
    /// request as forwarded, after any replacement).
    pub fn run_response(
        &self,
        ctx: &HookContext,
        method: &str,
        request_json: &str,
        response_json: &str,
    ) -> ChainReport {
        self.run(
            ctx,
            HookPhase::Response,
            method,
            Some(request_json),
            response_json,
        )
    }

    /// Run the chain on a server request or notification `message_json`
    /// (method `method`) on its way to the client.
    pub fn run_server_message(
        &self,
        ctx: &HookContext,
        method: &str,
        message_json: &str,
    ) -> ChainReport {
        self.run(ctx, HookPhase::ServerMessage, method, None, message_json)
    }

    /// Run the chain on the client's `answer_json` to the server request
    /// `request_json` (method `method`) on its way to the server.
    pub fn run_client_answer(
        &self,
        ctx: &HookContext,
        method: &str,
        request_json: &str,
        answer_json: &str,
    ) -> ChainReport {
        self.run(
            ctx,
            HookPhase::ClientAnswer,
            method,
            Some(request_json),
            answer_json,
        )
    }

    fn run(
        &self,
        ctx: &HookContext,
        phase: HookPhase,
        method: &str,
        request: Option<&str>,
        message: &str,
    ) -> ChainReport {
        let start = Instant::now();
        let mut replaced: Option<String> = None;
        let mut runs = Vec::new();
        for hook in self.hooks.iter().filter(|h| h.methods.wants(method, phase)) {
            let t0 = Instant::now();
            let current = replaced.as_deref().unwrap_or(message);
            let hook_ctx = CallContext {
                session_id: ctx.session_id.as_deref(),
                protocol_version: ctx.protocol_version.as_deref(),
                upstream: &ctx.upstream,
                headers: hook.visible_headers(&ctx.headers),
                phase,
                identity: ctx.identity.as_deref(),
            };
            let result = self.run_one(hook, &hook_ctx, method, request, current);
            let audit = hook.enforcement == Enforcement::Audit;
            let mut run = |result| {
                runs.push(HookRun {
                    hook: hook.shared.name.clone(),
                    elapsed: t0.elapsed(),
                    result,
                    audit,
                })
            };
            if audit {
                // Noted, never acted on: the next hook sees what this one saw.
                run(match result {
                    Ok(Checked::Continue) => HookRunResult::Continue,
                    Ok(Checked::Replace(_)) => HookRunResult::Replaced,
                    Ok(Checked::Reject { .. }) => HookRunResult::Rejected,
                    Ok(Checked::Respond(_)) => HookRunResult::Responded,
                    Err(kind) => HookRunResult::Failed {
                        error: HookError {
                            hook: hook.shared.name.clone(),
                            kind,
                        },
                        passed: true,
                    },
                });
                continue;
            }
            let stop = match result {
                Ok(Checked::Continue) => {
                    run(HookRunResult::Continue);
                    None
                }
                Ok(Checked::Replace(json)) => {
                    run(HookRunResult::Replaced);
                    replaced = Some(json);
                    None
                }
                Ok(Checked::Reject {
                    code,
                    message,
                    data,
                }) => {
                    run(HookRunResult::Rejected);
                    Some(ChainOutcome::Reject {
                        code,
                        message,
                        data,
                    })
                }
                Ok(Checked::Respond(result)) => {
                    run(HookRunResult::Responded);
                    Some(ChainOutcome::Respond(result))
                }
                Err(kind) => {
                    let passed = hook.on_error == OnError::Pass;
                    let outcome = (!passed).then(|| ChainOutcome::Reject {
                        code: HOOK_FAILED_CODE,
                        message: format!("hook {} failed: {}", hook.shared.name, kind.short()),
                        data: None,
                    });
                    let error = HookError {
                        hook: hook.shared.name.clone(),
                        kind,
                    };
                    run(HookRunResult::Failed { error, passed });
                    outcome
                }
            };
            if let Some(outcome) = stop {
                return ChainReport {
                    outcome,
                    total: start.elapsed(),
                    runs,
                };
            }
        }
        ChainReport {
            outcome: replaced.map_or(ChainOutcome::Continue, ChainOutcome::Replaced),
            total: start.elapsed(),
            runs,
        }
    }

    fn run_one(
        &self,
        hook: &LoadedHook,
        ctx: &CallContext<'_>,
        method: &str,
        request: Option<&str>,
        current: &str,
    ) -> Result<Checked, HookErrorKind> {
        let len = current.len() + request.map_or(0, str::len);
        if len > self.max_message_bytes {
            return Err(HookErrorKind::InputTooLarge {
                len,
                limit: self.max_message_bytes,
            });
        }
        let verdict = hook.call(|g, store| g.on_message(store, ctx, method, request, current))?;
        verdict::check(verdict, ctx.phase, current, self.max_message_bytes)
    }
}

fn load_one(engine: &Engine, spec: HookSpec, opts: &HostOptions) -> anyhow::Result<LoadedHook> {
    if let InstanceMode::Warm {
        pool,
        recycle_after,
    } = spec.mode
        && (pool == 0 || recycle_after == 0)
    {
        bail!("warm mode needs pool >= 1 and recycle_after >= 1");
    }
    let narrowing = spec
        .methods
        .as_deref()
        .map(|m| method_set("operator methods", m))
        .transpose()?;
    for h in &spec.headers {
        check_header_name(h).map_err(anyhow::Error::msg)?;
    }
    let mut headers: Vec<String> = spec
        .headers
        .iter()
        .map(|h| h.to_ascii_lowercase())
        .collect();
    headers.sort();
    headers.dedup();
    let len = std::fs::metadata(&spec.path)
        .with_context(|| format!("reading {}", spec.path.display()))?
        .len();
    if len > MAX_WASM_FILE {
        bail!(
            "{} is larger than {MAX_WASM_FILE} bytes",
            spec.path.display()
        );
    }
    let wasm =
        std::fs::read(&spec.path).with_context(|| format!("reading {}", spec.path.display()))?;
    let (component, cache) = cache::load_component(engine, &wasm, opts.cache_dir.as_deref())?;
    component.initialize_copy_on_write_image()?;
    let mut linker = linker(engine)?;
    let imports = imports::list(engine, &component);
    // Imports nobody provides (wasi:http, other worlds' interfaces) trap if
    // called instead of failing the load: toolchains add imports a hook
    // never uses.
    imports::stub_unprovided(&mut linker, engine, &component)?;
    let pre = Pre::new(&linker, &component)?;
    let deadline_ticks = (spec.deadline.as_micros().div_ceil(TICK.as_micros()) as u64).max(1) + 1;
    let mut hook = LoadedHook {
        shared: Arc::new(Shared {
            name: spec.name.into(),
            config: spec.config,
            grants: spec.grants,
            max_memory: spec.max_memory_bytes,
            log: opts.log.clone(),
        }),
        pre,
        declared: Vec::new(),
        methods: HookMethods::new(MethodSet::default(), None),
        headers,
        on_error: spec.on_error,
        enforcement: spec.enforcement,
        deadline: spec.deadline,
        deadline_ticks,
        // Asking for the methods must not leave a warm instance behind.
        mode: InstanceMode::Fresh,
        warm: Mutex::new(Vec::new()),
        cache,
        imports,
    };
    let declared = hook
        .call(|g, store| g.methods(store))
        .map_err(|e| anyhow::anyhow!("methods() failed: {e}"))?;
    let own = method_set("methods()", &declared)?;
    // A 0.1.0 hook has no handler for these: asking is a mistake to say now.
    if !hook.pre.has_server_phases()
        && let Some(p) = own
            .patterns()
            .iter()
            .find(|p| p.phase().is_some_and(|p| p.is_server_to_client()))
    {
        bail!(
            "methods(): {p} asks for a server-to-client phase, which {} hooks do not have (sluice:hook@0.2.0 does)",
            hook.pre.world()
        );
    }
    hook.methods = HookMethods::new(own, narrowing);
    if !hook.pre.has_server_phases() {
        hook.methods = hook.methods.without_server_phases();
    }
    hook.declared = declared;
    hook.mode = spec.mode;
    Ok(hook)
}

impl LoadedHook {
    /// The headers of `all` this hook may see, in their order.
    fn visible_headers(&self, all: &[(String, String)]) -> Vec<(String, String)> {
        all.iter()
            .filter(|(name, _)| self.headers.iter().any(|h| h.eq_ignore_ascii_case(name)))
            .cloned()
            .collect()
    }

    fn new_store(&self) -> Store<HostState> {
        let mut store = Store::new(self.pre.engine(), HostState::new(self.shared.clone()));
        store.limiter(|s| s as &mut dyn ResourceLimiter);
        // Before instantiating: a new store's deadline has already passed,
        // and instantiation runs guest code (start functions, constructors).
        store.set_epoch_deadline(self.deadline_ticks);
        store
    }

    /// Call into the guest with an instance per the mode, turning every
    /// failure into a [`HookErrorKind`].
    fn call<R>(
        &self,
        f: impl FnOnce(&Instance, &mut Store<HostState>) -> wasmtime::Result<R>,
    ) -> Result<R, HookErrorKind> {
        match self.mode {
            InstanceMode::Fresh => {
                let mut store = self.new_store();
                let hook = self
                    .pre
                    .instantiate(&mut store)
                    .map_err(|e| self.classify(&store, e, true))?;
                f(&hook, &mut store).map_err(|e| self.classify(&store, e, false))
            }
            InstanceMode::Warm {
                pool,
                recycle_after,
            } => {
                let idle = self.warm.lock().unwrap_or_else(|p| p.into_inner()).pop();
                let mut warm = match idle {
                    Some(mut w) => {
                        w.store.set_epoch_deadline(self.deadline_ticks);
                        w
                    }
                    None => {
                        let mut store = self.new_store();
                        let hook = self
                            .pre
                            .instantiate(&mut store)
                            .map_err(|e| self.classify(&store, e, true))?;
                        Warm {
                            store,
                            hook,
                            calls: 0,
                        }
                    }
                };
                // On failure the instance is dropped: its state is suspect.
                let r = f(&warm.hook, &mut warm.store)
                    .map_err(|e| self.classify(&warm.store, e, false))?;
                warm.calls += 1;
                if warm.calls < recycle_after {
                    let mut idle = self.warm.lock().unwrap_or_else(|p| p.into_inner());
                    if idle.len() < pool {
                        idle.push(warm);
                    }
                }
                Ok(r)
            }
        }
    }

    fn classify(
        &self,
        store: &Store<HostState>,
        e: wasmtime::Error,
        instantiating: bool,
    ) -> HookErrorKind {
        if store.data().memory_denied {
            return HookErrorKind::MemoryLimit(self.shared.max_memory);
        }
        match e.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => HookErrorKind::Deadline(self.deadline),
            Some(t) => HookErrorKind::Trap(t.to_string()),
            None if instantiating => HookErrorKind::Instantiate(format!("{e:#}")),
            None => HookErrorKind::Trap(format!("{e:#}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_lists_use_cores_grammar_and_name_the_bad_entry() {
        let set = |p: &str| method_set("methods()", &[p.to_string()]);
        assert!(set("*").is_ok() && set("tools/*").is_ok() && set("initialize").is_ok());
        for bad in ["", "to*", "*/call", "a*b", "x@later"] {
            let e = set(bad).unwrap_err().to_string();
            assert!(
                e.starts_with(&format!("methods(): bad method pattern {bad:?}")),
                "{e}"
            );
        }
    }

    #[test]
    fn host_is_send_sync() {
        fn check<T: Send + Sync>() {}
        check::<HookHost>();
    }
}
