//! `sluice demo`: a small MCP server, run in-process, to put the proxy in
//! front of.
//!
//! It speaks MCP Streamable HTTP (protocol versions 2025-03-26, 2025-06-18
//! and 2025-11-25) at `/mcp`, with sessions, a GET stream for
//! server-initiated messages and five tools: `echo`, `add`, `countdown`
//! (streams progress over SSE when given a progress token), `fail` (a tool
//! error) and `crash` (a JSON-RPC error). The same tools are on the legacy
//! HTTP+SSE transport (2024-11-05) at `/sse` and `/messages`, which
//! `sluice demo` serves at `/legacy` through the bridge, found by the
//! default transport. It is a fixture, not part of the
//! proxy path, so it uses `serde_json::Value` freely.
//!
//! ```no_run
//! let server = sluice::demo::DemoServer::start()?;
//! println!("point your MCP client at {}", server.url());
//! server.shutdown();
//! # Ok::<(), anyhow::Error>(())
//! ```

mod legacy;
mod mcp;
pub mod stdio;
mod tools;

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use async_channel::{Receiver, Sender};
use futures_lite::future;

use crate::httpd::{Conn, ReadError, Response};
use crate::proxy::RunningProxy;
use crate::rt::net::{Listener, Stream};
use crate::rt::{Handle, Runtime, Task, Timer};
use sluice_core::http1::Version;

/// The demo MCP server, running until shut down or dropped: on the
/// workers of the proxy in front of it (`sluice demo`), or on a worker
/// thread of its own ([`DemoServer::start`]).
pub struct DemoServer {
    addr: SocketAddr,
    stop: Option<Sender<()>>,
    /// The accept loop; it ends once every connection is closed.
    serving: Option<Task<()>>,
    /// The runtime it started for itself, if any.
    own: Option<Runtime>,
}

/// The demo server's socket, bound and not yet served: its address goes
/// into the proxy's configuration before the proxy (whose workers will
/// serve it) starts.
pub struct DemoListener {
    listener: TcpListener,
    addr: SocketAddr,
}

impl std::fmt::Debug for DemoServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DemoServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl DemoServer {
    /// Bind 127.0.0.1 on a free port and serve on a worker thread of its
    /// own (`sluice-demo-w0`).
    pub fn start() -> anyhow::Result<DemoServer> {
        let listener = DemoServer::bind()?;
        let runtime = Runtime::start("sluice-demo-w", 1)
            .context("starting the demo server's worker thread")?;
        let mut server = listener.serve(runtime.handle());
        server.own = Some(runtime);
        Ok(server)
    }

    /// Bind 127.0.0.1 on a free port; [`DemoListener::serve_on`] serves it.
    pub fn bind() -> anyhow::Result<DemoListener> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .context("binding the demo server to 127.0.0.1")?;
        let addr = listener.local_addr()?;
        Ok(DemoListener { listener, addr })
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The MCP endpoint, e.g. `http://127.0.0.1:41234/mcp`.
    pub fn url(&self) -> String {
        format!("http://{}/mcp", self.addr)
    }

    /// Stop serving: close the listener and every connection, and wait
    /// until they are closed.
    pub fn shutdown(self) {
        // Drop does it.
    }
}

impl DemoListener {
    /// The address it is bound to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serve on the workers of `proxy` (one runtime in the process). Its
    /// tasks end with [`DemoServer::shutdown`] or when the proxy stops.
    pub fn serve_on(self, proxy: &RunningProxy) -> DemoServer {
        self.serve(proxy.runtime())
    }

    fn serve(self, rt: &Handle) -> DemoServer {
        let (stop, stopped) = async_channel::bounded(1);
        let serving = rt.spawn(serve(rt.clone(), self.listener, stopped));
        DemoServer {
            addr: self.addr,
            stop: Some(stop),
            serving: Some(serving),
            own: None,
        }
    }
}

impl Drop for DemoServer {
    fn drop(&mut self) {
        // Closing the channel wakes the accept loop.
        drop(self.stop.take());
        if let Some(serving) = self.serving.take() {
            // Parks this thread; `None` if the runtime stopped (and so
            // dropped the server's tasks) first.
            let _ = future::block_on(serving.fallible());
        }
        if let Some(runtime) = self.own.take() {
            runtime.stop();
        }
    }
}

async fn serve(rt: Handle, listener: TcpListener, stopped: Receiver<()>) {
    let listener = match Listener::new(listener, rt.local_or_least_loaded().reactor()) {
        Ok(listener) => listener,
        Err(e) => {
            tracing::error!(error = %e, "the demo server cannot serve its socket");
            return;
        }
    };
    let state = Arc::new(Mutex::new(mcp::State::new()));
    // Every open connection; dropping a handle cancels its task.
    let mut connections: Vec<Task<()>> = Vec::new();
    loop {
        let accepted = future::or(
            async {
                let _ = stopped.recv().await;
                None
            },
            async { Some(listener.accept().await) },
        )
        .await;
        match accepted {
            None => break,
            Some(Ok((tcp, _))) => {
                connections.retain(|c| !c.is_finished());
                // The connection's task and its socket on one worker.
                let worker = rt.least_loaded();
                let stream = match Stream::accepted(tcp, worker.reactor()) {
                    Ok(stream) => stream,
                    Err(_) => continue,
                };
                let _ = stream.set_nodelay(true);
                connections.push(worker.spawn(connection(Conn::new(stream), state.clone())));
            }
            // Out of descriptors, most likely: back off instead of spinning.
            Some(Err(_)) => {
                Timer::after(Duration::from_millis(50)).await;
            }
        }
    }
    drop(listener);
    for c in connections {
        c.cancel().await;
    }
}

/// Serve requests on one keep-alive connection until either side closes.
async fn connection(mut conn: Conn, state: mcp::Shared) {
    loop {
        let request = match conn.read_request().await {
            Ok(request) => request,
            Err(ReadError::Closed) => return,
            Err(ReadError::Bad(status)) => {
                let _ = conn.send(Response::text(status, "bad request"), true).await;
                return;
            }
        };
        // HTTP/1.0 always closes: its streams are close-delimited.
        let close = request.head.version == Version::Http10 || request.head.connection_close();
        match mcp::handle(&state, &conn, request, close).await {
            Ok(mcp::Next::KeepAlive) => {}
            Ok(mcp::Next::Close) | Err(_) => return,
        }
    }
}
