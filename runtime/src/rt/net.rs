//! TCP sockets on the workers' reactors.

use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_lite::{AsyncRead, AsyncWrite};

use super::reactor::{READ, Reactor, Registration, WRITE};

/// A non-blocking TCP stream registered with a reactor.
pub struct Stream {
    // Declared before `io`: the registration is forgotten before the socket closes.
    reg: Registration,
    io: mio::net::TcpStream,
}

impl Stream {
    /// Register `io`, assumed ready in the directions of `ready` until an
    /// event says otherwise: a read or write tries first, and only a short
    /// or refused one makes the next attempt wait for the reactor.
    fn register(
        mut io: mio::net::TcpStream,
        reactor: &Arc<Reactor>,
        ready: usize,
    ) -> io::Result<Self> {
        let reg = reactor.register(&mut io, ready)?;
        Ok(Stream { reg, io })
    }

    /// Adopt an accepted connection onto `reactor` (a client's request is
    /// usually there already: the first read does not wait).
    pub(crate) fn accepted(io: mio::net::TcpStream, reactor: &Arc<Reactor>) -> io::Result<Self> {
        Self::register(io, reactor, READ | WRITE)
    }

    /// Connect to `addr` (on this worker's reactor, or the shared one off
    /// the workers) and wait for the handshake.
    pub async fn connect(addr: SocketAddr) -> io::Result<Self> {
        let io = mio::net::TcpStream::connect(addr)?;
        let stream = Self::register(io, &super::current_reactor()?, 0)?;
        futures_lite::future::poll_fn(|cx| stream.reg.state().poll_ready(WRITE, cx)).await;
        if let Some(e) = stream.io.take_error()? {
            return Err(e);
        }
        // Writable without an error can still mean "not connected" (mio's docs).
        stream.io.peer_addr()?;
        Ok(stream)
    }

    /// Ready to read (or at EOF, or in error) now, or the task is woken when it is.
    pub fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.reg.state().poll_ready(READ, cx)
    }

    /// One read. One that comes back short (but not at EOF) drained the
    /// socket: the next wait asks the reactor instead of reading into `EAGAIN`.
    pub fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        let len = buf.len();
        self.reg
            .attempt(READ, || (&self.io).read(buf), |&n| n > 0 && n < len)
    }

    /// Peek without consuming (the pool's liveness check).
    pub fn try_peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.reg.attempt(READ, || self.io.peek(buf), |_| false)
    }

    fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let want: usize = bufs.iter().map(|b| b.len()).sum();
        self.reg
            .attempt(WRITE, || (&self.io).write_vectored(bufs), |&n| n < want)
    }

    /// Read once the socket is ready; `Pending` until then.
    pub fn poll_read(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        self.reg.poll_attempt(READ, cx, || self.try_read(buf))
    }

    /// Write once the socket is ready; `Pending` until then.
    pub fn poll_write_vectored(
        &self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.reg
            .poll_attempt(WRITE, cx, || self.try_write_vectored(bufs))
    }

    /// `TCP_NODELAY`.
    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        self.io.set_nodelay(on)
    }

    /// Shut down one or both directions.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.io.shutdown(how)
    }

    /// Whether this socket's events are delivered by the current worker.
    pub(crate) fn is_local(&self) -> bool {
        super::with_local_reactor(|r| self.reg.belongs_to(r)).unwrap_or(false)
    }
}

macro_rules! async_io_traits {
    ($t:ty) => {
        impl AsyncRead for $t {
            fn poll_read(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut [u8],
            ) -> Poll<io::Result<usize>> {
                Stream::poll_read(&self, cx, buf)
            }
        }

        impl AsyncWrite for $t {
            fn poll_write(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                Stream::poll_write_vectored(&self, cx, &[IoSlice::new(buf)])
            }

            fn poll_write_vectored(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &[IoSlice<'_>],
            ) -> Poll<io::Result<usize>> {
                Stream::poll_write_vectored(&self, cx, bufs)
            }

            fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
                Poll::Ready(Ok(()))
            }

            fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
                Poll::Ready(self.shutdown(Shutdown::Write))
            }
        }
    };
}

async_io_traits!(Stream);
async_io_traits!(&Stream);

/// A listening socket registered with a reactor.
pub(crate) struct Listener {
    reg: Registration,
    io: mio::net::TcpListener,
}

impl Listener {
    pub(crate) fn new(listener: std::net::TcpListener, reactor: &Arc<Reactor>) -> io::Result<Self> {
        listener.set_nonblocking(true)?;
        let mut io = mio::net::TcpListener::from_std(listener);
        let reg = reactor.register(&mut io, READ)?;
        Ok(Listener { reg, io })
    }

    /// The next connection.
    pub(crate) async fn accept(&self) -> io::Result<(mio::net::TcpStream, SocketAddr)> {
        futures_lite::future::poll_fn(|cx| {
            self.reg.poll_attempt(READ, cx, || {
                self.reg.attempt(READ, || self.io.accept(), |_| false)
            })
        })
        .await
    }
}
