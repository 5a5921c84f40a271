//! `sluice demo`: a small MCP server, run in-process, to put the proxy in
//! front of.
//!
//! It speaks MCP Streamable HTTP (protocol versions 2025-03-26, 2025-06-18
//! and 2025-11-25) at `/mcp`, with sessions, a GET stream for
//! server-initiated messages and five tools: `echo`, `add`, `countdown`
//! (streams progress over SSE when given a progress token), `fail` (a tool
//! error) and `crash` (a JSON-RPC error). It is a fixture, not part of the
//! proxy path, so it uses `serde_json::Value` freely.
//!
//! ```no_run
//! let server = sluice::demo::DemoServer::start()?;
//! println!("point your MCP client at {}", server.url());
//! server.shutdown();
//! # Ok::<(), anyhow::Error>(())
//! ```

mod http;
mod mcp;
mod tools;

use std::cell::RefCell;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::rc::Rc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context as _;
use async_io::{Async, Timer};
use futures_lite::future;
use smol::LocalExecutor;
use smol::channel::{Receiver, Sender};

use http::{Conn, ReadError, Response};
use sluice_core::http1::Version;

/// The demo MCP server, running on its own thread until shut down or
/// dropped.
#[derive(Debug)]
pub struct DemoServer {
    addr: SocketAddr,
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl DemoServer {
    /// Bind 127.0.0.1 on a free port and start serving on a new thread.
    pub fn start() -> anyhow::Result<DemoServer> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .context("binding the demo server to 127.0.0.1")?;
        let addr = listener.local_addr()?;
        let listener = Async::new(listener)?;
        let (stop, stopped) = smol::channel::bounded(1);
        let thread = std::thread::Builder::new()
            .name("sluice-demo".to_owned())
            .spawn(move || {
                // Connection tasks live in this executor: when `serve`
                // returns, dropping it cancels them and closes their sockets.
                // `smol::block_on` drives the reactor on this thread itself.
                let ex = LocalExecutor::new();
                smol::block_on(ex.run(serve(&ex, listener, stopped)));
            })
            .context("starting the demo server thread")?;
        Ok(DemoServer {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The MCP endpoint, e.g. `http://127.0.0.1:41234/mcp`.
    pub fn url(&self) -> String {
        format!("http://{}/mcp", self.addr)
    }

    /// Stop serving: close the listener and every connection, and wait for
    /// the thread to finish.
    pub fn shutdown(self) {
        // Drop does it.
    }
}

impl Drop for DemoServer {
    fn drop(&mut self) {
        // Closing the channel wakes the accept loop.
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn serve(ex: &LocalExecutor<'_>, listener: Async<TcpListener>, stopped: Receiver<()>) {
    let state = Rc::new(RefCell::new(mcp::State::new()));
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
            None => return,
            Some(Ok((stream, _))) => {
                let _ = stream.get_ref().set_nodelay(true);
                ex.spawn(connection(Conn::new(stream), state.clone()))
                    .detach();
            }
            // Out of descriptors, most likely: back off instead of spinning.
            Some(Err(_)) => {
                Timer::after(Duration::from_millis(50)).await;
            }
        }
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
