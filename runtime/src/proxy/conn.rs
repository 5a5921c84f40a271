//! One client connection: read, feed the exchange, drain, write — for each
//! request on the connection in turn.

use std::io::{self, IoSlice};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Instant;

use async_io::{Async, Timer};
use bytes::{Bytes, BytesMut};
use futures_lite::{AsyncReadExt, AsyncWrite, AsyncWriteExt, future};
use sluice_core::exchange::{
    ClientInfo, Close, Exchange, HookCall, HookPhase, HookVerdict, Output, UpstreamEnd,
};

use crate::hooks::{ChainOutcome, HookContext};

use super::Shared;
use super::upstream::UpConn;

/// Size of one read from either side.
const READ_CHUNK: usize = 16 * 1024;

/// Serve every request on one client connection.
pub(super) async fn serve(client: Async<TcpStream>, peer: SocketAddr, shared: Arc<Shared>) {
    let _ = client.get_ref().set_nodelay(true);
    let info = ClientInfo {
        peer_ip: peer.ip().to_string(),
        https: false,
    };
    let mut carry = Vec::new();
    let mut shutdown = shared.shutdown.listen();
    loop {
        let now = Instant::now();
        let mut exchange = Exchange::new(shared.exchange.clone(), info.clone(), now);
        if !carry.is_empty() {
            exchange.feed_client(&std::mem::take(&mut carry), now);
        }
        let mut driver = Driver {
            exchange: &mut exchange,
            client: &client,
            shared: &shared,
            upstream: None,
            route: 0,
            shutdown: &mut shutdown,
            hook_time: None,
        };
        let close = driver.run().await;
        let hook_time = driver.hook_time;
        shared
            .access
            .record(exchange.summary(), &shared.route_names, hook_time);
        match close {
            Close::KeepAlive if !shared.is_shutting_down() => carry = exchange.take_leftover(),
            Close::KeepAlive | Close::Graceful => {
                let _ = client.get_ref().shutdown(Shutdown::Write);
                return;
            }
            Close::Abort => {
                // Dropping without a clean end: the client sees the truncation.
                let _ = client.get_ref().shutdown(Shutdown::Both);
                return;
            }
        }
    }
}

enum Event {
    Client(io::Result<usize>),
    Upstream(io::Result<usize>),
    Timer,
    Shutdown,
}

struct Driver<'a> {
    exchange: &'a mut Exchange,
    client: &'a Async<TcpStream>,
    shared: &'a Shared,
    upstream: Option<UpConn>,
    route: usize,
    shutdown: &'a mut super::ShutdownListener,
    /// Time spent in hook chains on this exchange.
    hook_time: Option<std::time::Duration>,
}

impl Driver<'_> {
    async fn run(&mut self) -> Close {
        let mut client_buf = vec![0u8; READ_CHUNK];
        let mut up_buf = BytesMut::new();
        let mut to_client: Vec<Bytes> = Vec::new();
        loop {
            while let Some(output) = self.exchange.poll_output() {
                match output {
                    Output::ToClient(bytes) => to_client.push(bytes),
                    Output::RunHook(call) => {
                        let verdict = self.run_hooks(&call);
                        self.exchange.hook_done(verdict, Instant::now());
                    }
                    Output::ToUpstream(bytes) => self.write_upstream(&bytes).await,
                    Output::Connect { route, fresh } => {
                        // A 100 Continue or similar must not wait for the connect.
                        if self.flush_client(&mut to_client).await.is_err() {
                            self.exchange.client_closed(Instant::now());
                            continue;
                        }
                        self.connect(route, fresh).await;
                    }
                    Output::ReleaseUpstream { reusable } => {
                        if let Some(conn) = self.upstream.take()
                            && reusable
                        {
                            self.shared.upstreams.checkin(self.route, conn);
                        }
                    }
                    Output::Finished { close } => {
                        let flushed = self.flush_client(&mut to_client).await;
                        return if flushed.is_err() {
                            Close::Abort
                        } else {
                            close
                        };
                    }
                }
            }
            if self.flush_client(&mut to_client).await.is_err() {
                self.exchange.client_closed(Instant::now());
                continue;
            }
            let idle_between_requests =
                !self.exchange.request_complete() && self.upstream.is_none();
            match self
                .wait(&mut client_buf, &mut up_buf, idle_between_requests)
                .await
            {
                Event::Client(Ok(0)) | Event::Client(Err(_)) => {
                    self.exchange.client_closed(Instant::now())
                }
                Event::Client(Ok(n)) => self.exchange.feed_client(&client_buf[..n], Instant::now()),
                Event::Upstream(Ok(0)) => self.upstream_closed(UpstreamEnd::Eof),
                Event::Upstream(Err(_)) => self.upstream_closed(UpstreamEnd::Error),
                Event::Upstream(Ok(n)) => {
                    let bytes = up_buf.split_to(n).freeze();
                    self.exchange.feed_upstream(bytes, Instant::now());
                }
                Event::Timer => self.exchange.handle_timeout(Instant::now()),
                Event::Shutdown => {
                    // Only an idle connection between requests is closed early.
                    self.exchange.client_closed(Instant::now());
                }
            }
        }
    }

    async fn wait(&mut self, client_buf: &mut [u8], up_buf: &mut BytesMut, idle: bool) -> Event {
        let deadline = self.exchange.poll_timeout();
        let timer = async {
            match deadline {
                Some(at) => {
                    Timer::at(at).await;
                }
                None => future::pending::<()>().await,
            }
            Event::Timer
        };
        let shutdown = async {
            if idle {
                self.shutdown.wait().await;
                Event::Shutdown
            } else {
                future::pending().await
            }
        };
        let client = async { Event::Client((&*self.client).read(client_buf).await) };
        match self.upstream.as_mut() {
            Some(up) => {
                up_buf.resize(READ_CHUNK, 0);
                let upstream = async { Event::Upstream(up.read(&mut up_buf[..]).await) };
                let event =
                    future::or(upstream, future::or(client, future::or(timer, shutdown))).await;
                if !matches!(event, Event::Upstream(Ok(_))) {
                    up_buf.clear();
                } else if let Event::Upstream(Ok(n)) = event {
                    up_buf.truncate(n);
                }
                event
            }
            None => future::or(client, future::or(timer, shutdown)).await,
        }
    }

    /// Run the hook chain inline: hooks are bounded CPU work (a deadline
    /// per hook), microseconds for compiled guests.
    fn run_hooks(&mut self, call: &HookCall) -> HookVerdict {
        let Some(host) = self.shared.hooks.as_deref() else {
            return HookVerdict::Continue;
        };
        let ctx = HookContext {
            session_id: call.session_id.clone(),
            protocol_version: call.protocol_version.clone(),
            upstream: self
                .shared
                .route_names
                .get(call.route)
                .cloned()
                .unwrap_or_default(),
            headers: call.headers.clone(),
        };
        let (Ok(request), Ok(response)) = (
            std::str::from_utf8(&call.request),
            std::str::from_utf8(call.response.as_deref().unwrap_or_default()),
        ) else {
            // Classified JSON is UTF-8; anything else is refused, not guessed.
            return HookVerdict::Reject {
                code: crate::hooks::HOOK_FAILED_CODE,
                message: "sluice: message is not UTF-8; hooks not run".into(),
                data: None,
            };
        };
        let report = match call.phase {
            HookPhase::Request => host.run_request(&ctx, &call.method, request),
            HookPhase::Response => host.run_response(&ctx, &call.method, request, response),
        };
        *self.hook_time.get_or_insert_default() += report.total;
        for run in &report.runs {
            if let crate::hooks::HookRunResult::Failed { error, passed } = &run.result {
                tracing::warn!(hook = %run.hook, error = %error, passed, "hook failed");
            }
        }
        match report.outcome {
            ChainOutcome::Continue => HookVerdict::Continue,
            ChainOutcome::Replaced(json) => HookVerdict::Replace(json.into_bytes()),
            ChainOutcome::Reject {
                code,
                message,
                data,
            } => HookVerdict::Reject {
                code,
                message,
                data: data.map(String::into_bytes),
            },
            ChainOutcome::Respond(result) => HookVerdict::Respond(result.into_bytes()),
        }
    }

    async fn connect(&mut self, route: usize, fresh: bool) {
        self.route = route;
        self.upstream = None;
        let deadline = self.exchange.poll_timeout();
        let attempt = async { Some(self.shared.upstreams.checkout(route, fresh).await) };
        let timeout = async {
            match deadline {
                Some(at) => {
                    Timer::at(at).await;
                    None
                }
                None => future::pending().await,
            }
        };
        match future::or(attempt, timeout).await {
            Some(Ok((conn, reused))) => {
                self.upstream = Some(conn);
                self.exchange.upstream_connected(reused, Instant::now());
            }
            Some(Err(e)) => {
                tracing::warn!(route, error = %e, "upstream connect failed");
                self.exchange
                    .upstream_closed(UpstreamEnd::ConnectFailed, Instant::now());
            }
            None => self.exchange.handle_timeout(Instant::now()),
        }
    }

    async fn write_upstream(&mut self, bytes: &[u8]) {
        let Some(up) = self.upstream.as_mut() else {
            self.exchange
                .upstream_closed(UpstreamEnd::Error, Instant::now());
            return;
        };
        let result = async {
            up.write_all(bytes).await?;
            up.flush().await
        }
        .await;
        if result.is_err() {
            self.upstream_closed(UpstreamEnd::Error);
        }
    }

    fn upstream_closed(&mut self, end: UpstreamEnd) {
        self.upstream = None;
        self.exchange.upstream_closed(end, Instant::now());
    }

    async fn flush_client(&mut self, pending: &mut Vec<Bytes>) -> io::Result<()> {
        let result = write_all_vectored(self.client, pending).await;
        pending.clear();
        result
    }
}

/// Write every buffer, gathering them into as few syscalls as the kernel allows.
async fn write_all_vectored(
    mut w: impl AsyncWrite + Unpin,
    bufs: &mut Vec<Bytes>,
) -> io::Result<()> {
    bufs.retain(|b| !b.is_empty());
    let mut first = 0;
    while first < bufs.len() {
        let slices: Vec<IoSlice<'_>> = bufs[first..]
            .iter()
            .take(64)
            .map(|b| IoSlice::new(b))
            .collect();
        let mut n = w.write_vectored(&slices).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        while n > 0 {
            let len = bufs[first].len();
            if n >= len {
                n -= len;
                first += 1;
            } else {
                let rest = bufs[first].slice(n..);
                bufs[first] = rest;
                n = 0;
            }
        }
    }
    Ok(())
}
