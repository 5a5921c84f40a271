//! The `sluice` binary: parse the command line, start the proxy (and the
//! demo server for `sluice demo`), run until SIGINT/SIGTERM, shut down
//! gracefully.

use std::process::ExitCode;

use sluice::config::{Command, Config, Log, LogFormat, LogLevel};
use sluice::demo::{DemoListener, DemoServer};
use std::io::IsTerminal as _;

use sluice::access::AccessOutput;
use sluice::{logq, proxy, reload, settings};

// jemalloc: a proxied request makes ~57 small allocations, and glibc's malloc
// and free were a quarter of the instructions per request (callgrind). With
// jemalloc, wrk -c64 through one worker runs ~10% faster and an idle SSE
// stream costs the same memory (mimalloc was as fast but 1 KiB per stream
// heavier). See docs/BENCHMARKS.md.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let command = Config::from_args(args.clone()).unwrap_or_else(|e| e.exit());
    let result = match command {
        Command::Proxy(config) => run(config, None, Some(args)),
        // Bound first (the proxy's configuration names it), served on the
        // proxy's workers once they run.
        Command::Demo(demo) => DemoServer::bind()
            .and_then(|listener| run(demo.proxy_config(listener.addr()), Some(listener), None)),
        // No logging set up: stdout carries messages only.
        Command::DemoStdio => sluice::demo::stdio::serve().map_err(Into::into),
        // Its own exit statuses (`sluice hook test --help`).
        Command::Hook(hook) => return sluice::hook_cli::run(hook),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sluice: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Serve `config`; with `args`, a reload (SIGHUP, `--watch`) reads them
/// again (`sluice demo` has nothing to reload).
fn run(
    config: Config,
    demo: Option<DemoListener>,
    args: Option<Vec<std::ffi::OsString>>,
) -> anyhow::Result<()> {
    // Dropped on the way out, error or not: queued lines reach stderr
    // before main prints the error.
    let (_log, writer) = init_logging(&config.log)?;
    let mut settings = settings::proxy_settings(&config)?;
    settings.log_dropped = Some(writer.dropped());
    // Access lines skip tracing's generic formatting, unless they are
    // coloured for a terminal (where speed is not the point).
    if !std::io::stderr().is_terminal() {
        settings.access_output = Some(AccessOutput {
            writer,
            json: config.log.format == LogFormat::Json,
        });
    }
    let running = proxy::start(settings)?;
    // Before the line below: a script that signals as soon as it reads it
    // must get the graceful shutdown.
    let signals = running.watch_signals();
    let _reloader = watch_reloads(&running, &config, args)?;
    let demo = demo.map(|listener| listener.serve_on(&running));
    let addr = running.local_addr();
    // One line on stdout that scripts (and people) can rely on. Written,
    // not println!'d: a closed stdout (a script that read the line and left)
    // must not take the proxy down.
    let mut banner = format!("sluice listening on http://{addr}\n");
    if let Some(admin) = running.admin_addr() {
        banner.push_str(&format!("admin listening on http://{admin}\n"));
    }
    for route in &config.routes {
        // Redacted: a URL's query and a command's flags may carry keys.
        tracing::info!(route = %route.name, path = %route.path, upstream = %route.backend.redacted(), "route");
    }
    if let Some(server) = &demo {
        banner.push_str(&format!(
            "\n  demo MCP server (in-process): {}\n  point an MCP client at:       http://{addr}/mcp\n  \
             its legacy HTTP+SSE face:     http://{addr}/legacy (found and bridged by transport = auto)\n  \
             its stdio face:               http://{addr}/stdio (sluice runs `sluice demo --stdio` as a child)\n  \
             all three behind one endpoint: http://{addr}/federated (tools stdio__echo, http__echo, legacy__echo, …)\n\n  \
             try it:\n    curl -s http://{addr}/mcp -H 'Content-Type: application/json' \\\n      \
             -H 'Accept: application/json, text/event-stream' \\\n      \
             -d '{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{{\"protocolVersion\":\"2025-11-25\",\"capabilities\":{{}},\"clientInfo\":{{\"name\":\"curl\",\"version\":\"1\"}}}}}}' -i\n  \
             press Ctrl-C to stop\n",
            server.url()
        ));
    }
    {
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        if let Err(e) = out.write_all(banner.as_bytes()).and_then(|()| out.flush()) {
            tracing::warn!(error = %e, "stdout is closed; the banner was not printed");
        }
    }
    let left = running.run_until_signal(signals);
    if left > 0 {
        tracing::warn!(
            connections = left,
            "grace period over; cut the remaining connections"
        );
    }
    if let Some(server) = demo {
        server.shutdown();
    }
    tracing::info!("stopped");
    Ok(())
}

/// SIGHUP, and `--watch`'s changes, reload the configuration on a thread
/// of their own (`sluice::reload`). SIGHUP is caught either way: it never
/// ends the process.
fn watch_reloads(
    running: &proxy::RunningProxy,
    config: &Config,
    args: Option<Vec<std::ffi::OsString>>,
) -> anyhow::Result<Option<reload::Reloader>> {
    let Some(args) = args else {
        running
            .on_hangup(|| tracing::warn!("SIGHUP: sluice demo has no configuration to reload"))?;
        return Ok(None);
    };
    let options = Config::reload_options(args.clone()).unwrap_or_default();
    let source: reload::Source = Box::new(move || match Config::from_args(args.clone())? {
        Command::Proxy(config) => Ok(config),
        // The same arguments: the same command.
        Command::Demo(_) | Command::DemoStdio | Command::Hook(_) => {
            unreachable!("a proxy's arguments")
        }
    });
    let reloader = reload::Reloader::start(
        running.handle(),
        config.clone(),
        source,
        options.config_file,
        options.watch,
    )?;
    let trigger = reloader.trigger();
    running.on_hangup(move || trigger.reload())?;
    Ok(Some(reloader))
}

/// Logs go to stderr through the log queue; the returned drain writes
/// what is queued when dropped.
fn init_logging(log: &Log) -> std::io::Result<(logq::LogDrain, logq::LogWriter)> {
    use tracing_subscriber::filter::LevelFilter;
    let level = match log.level {
        LogLevel::Off => LevelFilter::OFF,
        LogLevel::Error => LevelFilter::ERROR,
        LogLevel::Warn => LevelFilter::WARN,
        LogLevel::Info => LevelFilter::INFO,
        LogLevel::Debug => LevelFilter::DEBUG,
        LogLevel::Trace => LevelFilter::TRACE,
    };
    let (writer, drain) = logq::start(std::io::stderr(), logq::QueueLimits::default())?;
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(writer.clone())
        .with_ansi(std::io::stderr().is_terminal());
    let _ = match log.format {
        LogFormat::Text => builder.with_target(true).try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    Ok((drain, writer))
}
