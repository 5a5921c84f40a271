//! The proxy server: a listener, worker threads (the `rt` runtime), a task per
//! client connection on the least loaded worker, and graceful shutdown.

mod admin;
mod conn;
mod deadline;
mod upstream;

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use async_channel::{Receiver, Sender};
use sluice_core::exchange::ExchangeConfig;

use crate::access::AccessLog;
use crate::metrics::Metrics;
use crate::rt::net::{Listener, Stream};
use crate::rt::{Runtime, Timer};
pub use upstream::UpstreamTarget;
use upstream::Upstreams;

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

pub(crate) struct Shared {
    exchange: Arc<ExchangeConfig>,
    upstreams: Upstreams,
    access: AccessLog,
    metrics: Metrics,
    route_names: Vec<String>,
    hooks: Option<Arc<crate::hooks::HookHost>>,
    shutdown: Shutdown,
    /// Every connection's deadline; also wakes idle connections on shutdown.
    deadlines: Arc<deadline::Deadlines>,
    active: AtomicUsize,
}

impl Shared {
    fn is_shutting_down(&self) -> bool {
        self.shutdown.flag.load(Ordering::Acquire)
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
    grace: Duration,
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
        let deadline = Instant::now() + self.grace;
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
        if shared.upstreams.close_bridges() > 0 {
            let until = Instant::now() + BRIDGE_CLOSE_WAIT;
            while shared.upstreams.bridges_live() > 0 && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(10));
            }
            // Let the exchanges write the bridges' last words to their clients.
            while shared.active.load(Ordering::Acquire) > 0 && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        self.runtime.stop();
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
            Some((bound, a.config_json.clone()))
        }
        None => None,
    };
    let admin_addr = admin.as_ref().map(|(l, _)| l.local_addr()).transpose()?;
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
    let shared = Arc::new(Shared {
        exchange: Arc::new(settings.exchange),
        upstreams: Upstreams::new(
            runtime.handle().clone(),
            settings.upstreams,
            &settings.route_names,
            settings.tls,
            settings.max_idle_per_upstream,
            settings.pool_idle,
        ),
        access: AccessLog::new(settings.access_log, settings.access_output),
        metrics: Metrics::new(&settings.route_names, settings.log_dropped),
        route_names: settings.route_names,
        hooks: settings.hooks,
        shutdown: Shutdown {
            trigger: Mutex::new(Some(trigger)),
            listener: listener_rx,
            flag: AtomicBool::new(false),
        },
        deadlines: Arc::default(),
        active: AtomicUsize::new(0),
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
    if let Some((listener, config_json)) = admin {
        // On the first worker, beside the accept loop: scrapes are rare and
        // small, and a worker busy with traffic still answers them.
        let listener = match Listener::new(listener, runtime.first().reactor()) {
            Ok(listener) => listener,
            Err(e) => {
                runtime.stop();
                return Err(e.into());
            }
        };
        let admin = admin::Admin::new(Arc::downgrade(&shared), config_json);
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
        grace: settings.shutdown_grace,
        accept_done,
    })
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
        }
    }
}

impl ProxySettings {
    /// Run `host`'s hooks on every exchange (and parse only what they want).
    pub fn with_hooks(mut self, host: Arc<crate::hooks::HookHost>) -> ProxySettings {
        self.exchange.hooks = sluice_core::exchange::HookFilter::new(host.methods())
            .with_headers(&host.header_names());
        self.hooks = Some(host);
        self
    }
}
