//! The proxy server: a listener, worker threads (the `rt` runtime), a task per
//! client connection on the least loaded worker, and graceful shutdown.

mod admin;
mod conn;
mod deadline;
mod server_answer;
pub(crate) mod trace;
mod upstream;

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use async_channel::{Receiver, Sender};
use sluice_core::exchange::ExchangeConfig;

use crate::access::{AccessLog, AccessOutput, RouteLabel};
use crate::metrics::{Metrics, RouteMetrics};
use crate::rt::net::{Listener, Stream};
use crate::rt::{Runtime, Timer};
pub use upstream::UpstreamTarget;
use upstream::Upstreams;
pub(crate) use upstream::host_port;

/// Everything the proxy needs to run, resolved from configuration.
#[derive(Clone)]
pub struct ProxySettings {
    /// Address to listen on (port 0 picks a free one).
    pub listen: SocketAddr,
    /// The protocol core's configuration.
    pub exchange: ExchangeConfig,
    /// Per route (same order as the router's), where its upstream lives.
    pub upstreams: Vec<UpstreamTarget>,
    /// Route names for the access log, by route index.
    pub route_names: Vec<String>,
    /// TLS client configuration for `https` upstreams.
    pub tls: Option<Arc<futures_rustls::rustls::ClientConfig>>,
    /// Idle connections kept per upstream.
    pub max_idle_per_upstream: usize,
    /// How long an idle upstream connection is kept.
    pub pool_idle: Duration,
    /// How long shutdown waits for in-flight exchanges.
    pub shutdown_grace: Duration,
    /// Worker threads, each with its own event loop (the `rt` runtime).
    pub workers: usize,
    /// Write an access log line per exchange.
    pub access_log: bool,
    /// The loaded hooks (the exchange's hook filter asks them).
    pub hooks: Option<Arc<crate::hooks::HookHost>>,
    /// The admin listener (metrics, health, config), if on.
    pub admin: Option<AdminSettings>,
    /// The log queue's dropped-lines counter, exported as a metric.
    pub log_dropped: Option<crate::logq::DroppedLines>,
    /// Where access lines go without `tracing`'s generic formatting (the
    /// binary's log queue). `None`: through `tracing`.
    pub access_output: Option<crate::access::AccessOutput>,
    /// Per route (same order as the router's), who may call it; a route
    /// with `Some` must also be protected in the router
    /// (`Router::protect`), which decides when a token is judged.
    pub auth: Vec<Option<crate::config::RouteAuth>>,
    /// Write `subject=<redacted>` in access lines.
    pub redact_subject: bool,
    /// Traces over OTLP/HTTP (`[tracing]`), if on. Read at start only.
    pub tracing: Option<crate::otel::TraceSettings>,
}

/// The admin listener's settings.
#[derive(Clone, Debug)]
pub struct AdminSettings {
    /// Where it listens (port 0 picks a free port).
    pub listen: SocketAddr,
    /// What `/config` answers: the effective configuration, redacted.
    pub config_json: String,
}

/// The worker threads' names: `sluice-w0`, `sluice-w1`, …
pub const WORKER_NAME: &str = "sluice-w";

/// How long shutdown waits for the trace exporter's last batch.
const TRACE_FLUSH_WAIT: Duration = Duration::from_secs(2);

/// How long shutdown waits for closed legacy bridges to finish.
const BRIDGE_CLOSE_WAIT: Duration = Duration::from_secs(2);

pub(crate) struct ShutdownListener(Receiver<()>);

impl ShutdownListener {
    async fn wait(&mut self) {
        // The sender is dropped on shutdown; every receiver wakes.
        let _ = self.0.recv().await;
    }
}

pub(crate) struct Shutdown {
    trigger: Mutex<Option<Sender<()>>>,
    listener: Receiver<()>,
    flag: AtomicBool,
}

impl Shutdown {
    fn listen(&self) -> ShutdownListener {
        ShutdownListener(self.listener.clone())
    }
}

/// What lives as long as the process: the listener's side of things, the
/// metrics, and the configuration that runs now.
pub(crate) struct Shared {
    /// The configuration new exchanges take; swapped by a reload.
    current: RwLock<Arc<Generation>>,
    /// `current`'s id: a connection compares it with the generation it
    /// holds before each exchange, and takes the lock only when it moved.
    epoch: AtomicU64,
    /// Generations a reload replaced that exchanges may still hold: shut
    /// down with the current one.
    retired: Mutex<Vec<Weak<Generation>>>,
    /// Held by a swap from start to end.
    swapping: Mutex<()>,
    metrics: Metrics,
    /// Where a new generation's access lines go.
    access_output: Option<AccessOutput>,
    /// The access log the first generation made: later ones keep its
    /// session key (a session's lines match across reloads).
    access_key: AccessLog,
    /// The runtime the upstreams' sockets live on.
    rt: crate::rt::Handle,
    /// How long shutdown waits for in-flight exchanges (reloadable).
    grace: Mutex<Duration>,
    shutdown: Shutdown,
    /// Every connection's deadline; also wakes idle connections on shutdown.
    deadlines: Arc<deadline::Deadlines>,
    active: AtomicUsize,
    /// Spans per exchange, if tracing is on, and the listener's address
    /// (their `server.address` and `server.port`).
    tracer: Option<(Arc<crate::otel::Tracer>, SocketAddr)>,
}

/// Everything a configuration makes of the proxy, and a reload replaces
/// whole: an exchange (and so an SSE stream) runs to its end on the
/// generation it started with, which lives while one holds it.
pub(crate) struct Generation {
    /// 1 for the configuration the proxy started with, then one more per
    /// good reload.
    id: u64,
    exchange: Arc<ExchangeConfig>,
    upstreams: Upstreams,
    access: AccessLog,
    /// This configuration's routes' series.
    routes: RouteMetrics,
    route_names: Vec<String>,
    hooks: Option<Arc<crate::hooks::HookHost>>,
    /// The judge of tokens on protected routes, if any route is.
    auth: Option<Arc<crate::auth::Gatekeeper>>,
    /// What `/config` answers.
    config_json: Option<String>,
    /// Routes (by index) whose sessions and children a newer generation
    /// did not take over: closed once nothing holds this one.
    retire: Mutex<Vec<usize>>,
}

impl Drop for Generation {
    fn drop(&mut self) {
        let retire = self.retire.get_mut().unwrap_or_else(|e| e.into_inner());
        if !retire.is_empty() {
            let closed = self.upstreams.close_routes(retire);
            if closed > 0 {
                tracing::info!(
                    sessions = closed,
                    "closed the sessions and children of routes a reload removed or changed"
                );
            }
        }
    }
}

impl Shared {
    fn is_shutting_down(&self) -> bool {
        self.shutdown.flag.load(Ordering::Acquire)
    }

    /// The generation new exchanges take.
    fn current(&self) -> Arc<Generation> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The current generation's id.
    fn generation_id(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// A reload replaced `generation`.
    fn is_stale(&self, generation: &Generation) -> bool {
        self.epoch.load(Ordering::Acquire) != generation.id
    }

    /// `held` if it is still current, else the current one.
    fn refresh(&self, held: &mut Arc<Generation>) {
        if self.is_stale(held) {
            *held = self.current();
        }
    }

    /// The current generation and those still held by exchanges.
    fn live_generations(&self) -> Vec<Arc<Generation>> {
        let mut all = vec![self.current()];
        let retired = self.retired.lock().unwrap_or_else(|e| e.into_inner());
        all.extend(retired.iter().filter_map(Weak::upgrade));
        all
    }

    fn parts(&self) -> Parts<'_> {
        Parts {
            rt: &self.rt,
            metrics: &self.metrics,
            access_output: &self.access_output,
            access_key: &self.access_key,
            tracer: self.tracer.as_ref().map(|(t, _)| t),
        }
    }
}

/// What every generation is built with.
struct Parts<'a> {
    rt: &'a crate::rt::Handle,
    metrics: &'a Metrics,
    access_output: &'a Option<AccessOutput>,
    access_key: &'a AccessLog,
    /// The process's tracer, when tracing is on (a federation's fan-out
    /// makes its members' spans).
    tracer: Option<&'a Arc<crate::otel::Tracer>>,
}

/// Build generation `id` from `settings` (its listen address, workers,
/// admin address and log output are ignored: they are the process's).
/// `carry[i]`: the route of `previous` whose sessions and children new
/// route `i` takes over (same definition).
fn build(
    parts: &Parts<'_>,
    id: u64,
    settings: ProxySettings,
    previous: Option<(&Generation, &[Option<usize>])>,
) -> Generation {
    let gatekeeper = crate::auth::Gatekeeper::new(
        parts.rt.clone(),
        settings.tls.clone(),
        settings.auth,
        settings.route_names.clone(),
    )
    .counted_in(parts.metrics);
    let auth = gatekeeper.is_active().then(|| Arc::new(gatekeeper));
    if let Some(auth) = &auth {
        parts.rt.spawn(auth.clone().prefetch()).detach();
    }
    let labels = route_labels(&settings.route_names, &settings.upstreams);
    let routes = parts.metrics.routes(&settings.route_names);
    let upstreams = Upstreams::new(
        parts.rt.clone(),
        settings.upstreams,
        &settings.route_names,
        settings.tls,
        upstream::Pool {
            max_idle: settings.max_idle_per_upstream,
            idle_timeout: settings.pool_idle,
        },
        previous.map(|(g, carry)| (&g.upstreams, carry)),
        &routes,
        parts.tracer,
    );
    Generation {
        id,
        exchange: Arc::new(settings.exchange),
        upstreams,
        access: AccessLog::new(settings.access_log, parts.access_output.clone())
            .with_key_of(parts.access_key)
            .redacting_subject(settings.redact_subject)
            .with_routes(labels),
        routes,
        route_names: settings.route_names,
        hooks: settings.hooks,
        auth,
        config_json: settings.admin.map(|a| a.config_json),
        retire: Mutex::default(),
    }
}

/// What a reload changed, for its log line.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Swapped {
    /// The new generation's id.
    pub generation: u64,
    /// Routes whose sessions and children were taken over as they were.
    pub kept: Vec<String>,
}

/// A running proxy's configuration, for the thread that reloads it.
#[derive(Clone)]
pub struct ProxyHandle {
    shared: Arc<Shared>,
}

impl ProxyHandle {
    /// Make `settings` the configuration new exchanges take; exchanges
    /// under way finish on theirs. `carry[i]`: the index, in the running
    /// configuration, of a route with the very same definition as new
    /// route `i`, whose legacy sessions, stdio children and federation
    /// members it takes over; the running configuration's other routes
    /// close theirs once no exchange holds it any more. The listen
    /// address, the workers, the admin address and the log output stay
    /// the process's.
    ///
    /// `None` once the proxy is shutting down: nothing is swapped.
    pub fn swap(&self, settings: ProxySettings, carry: &[Option<usize>]) -> Option<Swapped> {
        let shared = &self.shared;
        if shared.is_shutting_down() {
            return None;
        }
        *shared.grace.lock().unwrap_or_else(|e| e.into_inner()) = settings.shutdown_grace;
        // One swap at a time; built outside `current`'s lock, which the
        // workers take to refresh.
        let _one = shared.swapping.lock().unwrap_or_else(|e| e.into_inner());
        let old = shared.current();
        let id = old.id + 1;
        let new = Arc::new(build(&shared.parts(), id, settings, Some((&old, carry))));
        let taken: Vec<usize> = carry.iter().flatten().copied().collect();
        *old.retire.lock().unwrap_or_else(|e| e.into_inner()) = (0..old.route_names.len())
            .filter(|i| !taken.contains(i))
            .collect();
        // A bridge carried over keeps the old dialer: its pool of idle
        // connections to direct upstreams would sit there unused.
        old.upstreams.drop_idle();
        let kept = carry
            .iter()
            .enumerate()
            .filter(|(_, c)| c.is_some())
            .map(|(i, _)| new.route_names[i].clone())
            .collect();
        *shared.current.write().unwrap_or_else(|e| e.into_inner()) = new;
        shared.epoch.store(id, Ordering::Release);
        let mut retired = shared.retired.lock().unwrap_or_else(|e| e.into_inner());
        retired.retain(|g| g.strong_count() > 0);
        retired.push(Arc::downgrade(&old));
        drop(retired);
        Some(Swapped {
            generation: id,
            kept,
        })
    }

    /// The proxy's metrics (a reload counts itself).
    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    /// The running generation's id.
    pub fn generation(&self) -> u64 {
        self.shared.epoch.load(Ordering::Acquire)
    }
}

/// SIGINT and SIGTERM, watched since [`RunningProxy::watch_signals`].
pub struct ShutdownSignals(Option<crate::rt::signal::Signals>);

/// A running proxy. Dropping it does not stop it; call [`RunningProxy::shutdown`].
pub struct RunningProxy {
    local_addr: SocketAddr,
    admin_addr: Option<SocketAddr>,
    shared: Arc<Shared>,
    runtime: Runtime,
    /// Closed once the accept loop has ended (and dropped the listener).
    accept_done: Receiver<()>,
}

impl RunningProxy {
    /// The address the proxy listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The address the admin listener listens on, if it is on.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    /// Stop accepting, let in-flight exchanges finish within the grace
    /// period, then stop every worker. Returns how many connections were
    /// still open when the grace period ended.
    pub fn shutdown(self) -> usize {
        let shared = self.shared;
        shared.shutdown.flag.store(true, Ordering::Release);
        shared.deadlines.shut_down();
        drop(
            shared
                .shutdown
                .trigger
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take(),
        );
        let grace = *shared.grace.lock().unwrap_or_else(|e| e.into_inner());
        let deadline = Instant::now() + grace;
        // Stopping the workers before the accept loop has seen the trigger
        // would strand it in the executor, which it keeps alive: the
        // listener would stay open and nothing would ever be dropped.
        let accept_done = self.accept_done;
        self.runtime.handle().block_on(async move {
            futures_lite::future::or(
                async {
                    let _ = accept_done.recv().await;
                },
                async {
                    Timer::at(deadline).await;
                },
            )
            .await
        });
        while shared.active.load(Ordering::Acquire) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let left = shared.active.load(Ordering::Acquire);
        // Legacy bridges run outside the workers (a session outlives its
        // client connections): close them, so their backend SSE streams end
        // and their clients get an error, before the workers stop.
        let generations = shared.live_generations();
        let closed: usize = generations
            .iter()
            .map(|g| g.upstreams.close_bridges())
            .sum();
        if closed > 0 {
            let until = Instant::now() + BRIDGE_CLOSE_WAIT;
            let live = || -> usize { generations.iter().map(|g| g.upstreams.bridges_live()).sum() };
            while live() > 0 && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(10));
            }
            // Let the exchanges write the bridges' last words to their clients.
            while shared.active.load(Ordering::Acquire) > 0 && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        self.runtime.stop();
        // The last exchanges' spans: exported before the process exits,
        // unless the receiver hangs.
        if let Some((tracer, _)) = &shared.tracer {
            tracer.flush(TRACE_FLUSH_WAIT);
        }
        left
    }

    /// Block until `signal` is done (it runs on a worker), then shut down.
    pub fn run_until(
        self,
        signal: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> usize {
        self.runtime.handle().block_on(signal);
        self.shutdown()
    }

    /// Watch SIGINT and SIGTERM from now on (they arrive on a worker's
    /// poller), for [`RunningProxy::run_until_signal`]. If they cannot be
    /// watched, says so in the log; the proxy then runs until killed.
    pub fn watch_signals(&self) -> ShutdownSignals {
        use crate::rt::signal::{SIGINT, SIGTERM, Signals};
        match Signals::new(&[SIGINT, SIGTERM], self.runtime.handle()) {
            Ok(signals) => ShutdownSignals(Some(signals)),
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch signals; running until killed");
                ShutdownSignals(None)
            }
        }
    }

    /// Block until one of `signals` arrives, then shut down.
    pub fn run_until_signal(self, signals: ShutdownSignals) -> usize {
        self.run_until(async move {
            let Some(signals) = signals.0 else {
                return futures_lite::future::pending().await;
            };
            match signals.recv().await {
                Ok(s) => tracing::info!(signal = crate::rt::signal::name(s), "shutting down"),
                Err(e) => tracing::warn!(error = %e, "watching signals failed; shutting down"),
            }
        })
    }

    /// Call `on_hangup` (on a worker) at every SIGHUP from now on, in
    /// place of SIGHUP's default (the end of the process).
    pub fn on_hangup(&self, on_hangup: impl Fn() + Send + 'static) -> std::io::Result<()> {
        use crate::rt::signal::{SIGHUP, Signals};
        let signals = Signals::new(&[SIGHUP], self.runtime.handle())?;
        self.runtime
            .first()
            .spawn(async move {
                loop {
                    match signals.recv().await {
                        Ok(_) => on_hangup(),
                        Err(e) => {
                            tracing::warn!(error = %e, "watching SIGHUP failed; reload with a restart");
                            // Kept: SIGHUP stays caught rather than fatal.
                            futures_lite::future::pending::<()>().await;
                        }
                    }
                }
            })
            .detach();
        Ok(())
    }

    /// A handle to swap the configuration while the proxy runs.
    pub fn handle(&self) -> ProxyHandle {
        ProxyHandle {
            shared: self.shared.clone(),
        }
    }

    /// The proxy's runtime (`sluice demo` runs its demo server on it too).
    pub(crate) fn runtime(&self) -> &crate::rt::Handle {
        self.runtime.handle()
    }
}

/// Bind and start serving in background threads.
pub fn start(settings: ProxySettings) -> anyhow::Result<RunningProxy> {
    let listener = TcpListener::bind(settings.listen)
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let local_addr = listener.local_addr()?;
    // Bound before anything starts, so a taken port fails the start.
    let admin = match &settings.admin {
        Some(a) => {
            let bound = TcpListener::bind(a.listen)
                .with_context(|| format!("cannot listen on {} (admin)", a.listen))?;
            Some(bound)
        }
        None => None,
    };
    let admin_addr = admin.as_ref().map(TcpListener::local_addr).transpose()?;
    let runtime =
        Runtime::start(WORKER_NAME, settings.workers).context("cannot start the worker threads")?;
    let listener = match Listener::new(listener, runtime.first().reactor()) {
        Ok(listener) => listener,
        Err(e) => {
            runtime.stop();
            return Err(e.into());
        }
    };
    let (trigger, listener_rx) = async_channel::bounded::<()>(1);
    let metrics = Metrics::new(settings.log_dropped.clone());
    let tracer = match settings.tracing.clone() {
        Some(t) => match crate::otel::Tracer::start(t, metrics.span_counters()) {
            Ok(tracer) => Some((Arc::new(tracer), local_addr)),
            Err(e) => {
                runtime.stop();
                return Err(anyhow::Error::new(e).context("cannot start the trace exporter"));
            }
        },
        None => None,
    };
    let access_output = settings.access_output.clone();
    let access_key = AccessLog::new(false, None);
    let grace = settings.shutdown_grace;
    let generation = build(
        &Parts {
            rt: runtime.handle(),
            metrics: &metrics,
            access_output: &access_output,
            access_key: &access_key,
            tracer: tracer.as_ref().map(|(t, _)| t),
        },
        1,
        settings,
        None,
    );
    let shared = Arc::new(Shared {
        current: RwLock::new(Arc::new(generation)),
        epoch: AtomicU64::new(1),
        retired: Mutex::default(),
        swapping: Mutex::default(),
        metrics,
        access_output,
        access_key,
        rt: runtime.handle().clone(),
        grace: Mutex::new(grace),
        shutdown: Shutdown {
            trigger: Mutex::new(Some(trigger)),
            listener: listener_rx,
            flag: AtomicBool::new(false),
        },
        deadlines: Arc::default(),
        active: AtomicUsize::new(0),
        tracer,
    });
    let (accept_done_tx, accept_done) = async_channel::bounded::<()>(1);
    let accept = {
        let shared = shared.clone();
        let workers = runtime.handle().clone();
        async move {
            accept_loop(listener, shared, workers).await;
            drop(accept_done_tx);
        }
    };
    runtime.first().spawn(accept).detach();
    runtime
        .first()
        .spawn(deadline::ticker(Arc::downgrade(&shared.deadlines)))
        .detach();
    if let Some(listener) = admin {
        // On the first worker, beside the accept loop: scrapes are rare and
        // small, and a worker busy with traffic still answers them.
        let listener = match Listener::new(listener, runtime.first().reactor()) {
            Ok(listener) => listener,
            Err(e) => {
                runtime.stop();
                return Err(e.into());
            }
        };
        let admin = admin::Admin::new(Arc::downgrade(&shared));
        runtime
            .first()
            .spawn(admin::serve(listener, Arc::new(admin)))
            .detach();
    }
    Ok(RunningProxy {
        local_addr,
        admin_addr,
        shared,
        runtime,
        accept_done,
    })
}

/// How access lines name each route and its upstream.
fn route_labels(names: &[String], upstreams: &[UpstreamTarget]) -> Vec<RouteLabel> {
    use crate::legacy::UpstreamTransport;
    names
        .iter()
        .zip(upstreams)
        .map(|(name, up)| RouteLabel {
            name: name.clone(),
            upstream: match &up.transport {
                UpstreamTransport::Stdio(_) => "stdio".to_owned(),
                UpstreamTransport::Federation(_) => "federation".to_owned(),
                _ => upstream::host_port(&up.host, up.port),
            },
        })
        .collect()
}

async fn accept_loop(listener: Listener, shared: Arc<Shared>, workers: crate::rt::Handle) {
    let mut shutdown = shared.shutdown.listen();
    loop {
        let accepted = futures_lite::future::or(async { Some(listener.accept().await) }, async {
            shutdown.wait().await;
            None
        })
        .await;
        let Some(accepted) = accepted else { return };
        match accepted {
            Ok((stream, peer)) => {
                // The connection lives on one worker: its socket is
                // registered with that worker's reactor.
                let worker = workers.least_loaded();
                let stream = match Stream::accepted(stream, worker.reactor()) {
                    Ok(stream) => stream,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot register a connection");
                        continue;
                    }
                };
                let shared = shared.clone();
                shared.active.fetch_add(1, Ordering::AcqRel);
                worker
                    .spawn(async move {
                        conn::serve(stream, peer, shared.clone()).await;
                        shared.active.fetch_sub(1, Ordering::AcqRel);
                    })
                    .detach();
            }
            Err(e) => {
                // Out of file descriptors and the like: back off, don't spin.
                tracing::warn!(error = %e, "accept failed");
                Timer::after(Duration::from_millis(50)).await;
            }
        }
    }
}

impl ProxySettings {
    /// Settings for one plain-HTTP upstream served at `path` (the same path
    /// upstream), with default limits and timeouts: the zero-config case,
    /// and what tests and the demo use.
    pub fn single(listen: SocketAddr, upstream: SocketAddr, path: &str) -> ProxySettings {
        use sluice_core::exchange::{ExchangeLimits, Timeouts};
        use sluice_core::guard::HostGuard;
        use sluice_core::route::{Route, Router};
        // The config file's defaults, one source for both.
        let defaults = crate::config::Timeouts::default();
        let host = upstream.ip().to_string();
        let host_header = match upstream {
            SocketAddr::V4(a) => format!("{}:{}", a.ip(), a.port()),
            SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
        };
        ProxySettings {
            listen,
            exchange: ExchangeConfig {
                router: Router::new(vec![Route {
                    prefix: path.to_owned(),
                    upstream_path: path.to_owned(),
                    well_known: true,
                    upstream_host: host_header,
                    upstream_query: None,
                }]),
                guard: HostGuard::local_default(&listen.ip().to_string()),
                limits: ExchangeLimits::default(),
                timeouts: Timeouts::recommended(),
                forwarded_headers: true,
                hooks: sluice_core::exchange::HookFilter::none(),
            },
            upstreams: vec![UpstreamTarget {
                host,
                port: upstream.port(),
                tls: false,
                transport: Default::default(),
            }],
            route_names: vec!["upstream".to_owned()],
            tls: None,
            max_idle_per_upstream: crate::config::Pool::default().max_idle_per_upstream,
            pool_idle: defaults.pool_idle,
            shutdown_grace: defaults.shutdown_grace,
            workers: 1,
            access_log: true,
            hooks: None,
            admin: None,
            log_dropped: None,
            access_output: None,
            auth: vec![None],
            redact_subject: false,
            tracing: None,
        }
    }
}

impl ProxySettings {
    /// Run `host`'s hooks on every exchange (and parse only what they want).
    pub fn with_hooks(mut self, host: Arc<crate::hooks::HookHost>) -> ProxySettings {
        self.exchange.hooks = sluice_core::exchange::HookFilter::new(host.methods())
            .with_headers(&host.header_names())
            .refusing_unseen_answers(host.refuses_unseen_answers());
        self.hooks = Some(host);
        self
    }
}
