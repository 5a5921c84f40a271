//! TCP sockets on the workers' pollers: `std::net` sockets in non-blocking
//! mode, each registered with one worker.

use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_lite::{AsyncRead, AsyncWrite};

use super::reactor::{READ, Reactor, Source, WRITE};

/// A non-blocking TCP stream registered with a worker's reactor.
pub struct Stream {
    io: Source<TcpStream>,
}

impl Stream {
    /// Register `io` (already non-blocking), assumed ready in the
    /// directions of `ready` until an event says otherwise: a read or write
    /// tries first, and only a refused (or, writing, short) one makes the
    /// next attempt wait for the reactor.
    fn register(io: TcpStream, reactor: &Arc<Reactor>, ready: usize) -> io::Result<Self> {
        Ok(Stream {
            io: Source::new(io, reactor, ready)?,
        })
    }

    /// Adopt a connection from [`Listener::accept`] onto `reactor` (a
    /// client's request is usually there already: the first read does not
    /// wait).
    pub(crate) fn accepted(io: TcpStream, reactor: &Arc<Reactor>) -> io::Result<Self> {
        Self::register(io, reactor, READ | WRITE)
    }

    /// Connect to `addr` and wait for the handshake. The socket lives on
    /// the worker running this task, or, off the workers, on the least
    /// loaded worker of `rt`.
    pub(crate) async fn connect(addr: SocketAddr, rt: &super::Handle) -> io::Result<Self> {
        let reactor = rt.local_or_least_loaded().reactor().clone();
        let stream = Self::register(connect_nonblocking(addr)?, &reactor, 0)?;
        futures_lite::future::poll_fn(|cx| stream.io.state().poll_ready(WRITE, cx)).await;
        let tcp = stream.io.get_ref();
        if let Some(e) = tcp.take_error()? {
            return Err(e);
        }
        // Writable without an error can still mean "not connected".
        tcp.peer_addr()?;
        Ok(stream)
    }

    /// Ready to read (or at EOF, or in error) now, or the task is woken when it is.
    pub fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.io.state().poll_ready(READ, cx)
    }

    /// One read. One that comes back short (but not at EOF) drained the
    /// socket: the next wait asks the reactor instead of reading into
    /// `EAGAIN`. A FIN that came with the data is not lost: the reactor
    /// registered `EPOLLRDHUP`, and a closed read side stays ready.
    pub fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        let len = buf.len();
        self.io
            .attempt(READ, |mut io| io.read(buf), |&n| n > 0 && n < len)
    }

    /// Peek without consuming (the pool's liveness check).
    pub fn try_peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.io.attempt(READ, |io| io.peek(buf), |_| false)
    }

    /// One gathered write; a short one means the send buffer is full (the
    /// next attempt waits for the reactor).
    fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let want: usize = bufs.iter().map(|b| b.len()).sum();
        self.io
            .attempt(WRITE, |mut io| io.write_vectored(bufs), |&n| n < want)
    }

    /// Read once the socket is ready; `Pending` until then.
    pub fn poll_read(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        self.io.poll_attempt(READ, cx, || self.try_read(buf))
    }

    /// Write once the socket is ready; `Pending` until then.
    pub fn poll_write_vectored(
        &self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.io
            .poll_attempt(WRITE, cx, || self.try_write_vectored(bufs))
    }

    /// `TCP_NODELAY`.
    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        self.io.get_ref().set_nodelay(on)
    }

    /// Shut down one or both directions.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.io.get_ref().shutdown(how)
    }

    /// Whether this socket's events are delivered by the current worker.
    pub(crate) fn is_local(&self) -> bool {
        super::with_local_reactor(|r| self.io.belongs_to(r)).unwrap_or(false)
    }
}

/// A TCP socket whose connect to `addr` is under way (`std::net` only
/// connects blocking).
fn connect_nonblocking(addr: SocketAddr) -> io::Result<TcpStream> {
    use rustix::net::{AddressFamily, SocketFlags, SocketType};
    let family = match addr {
        SocketAddr::V4(_) => AddressFamily::INET,
        SocketAddr::V6(_) => AddressFamily::INET6,
    };
    let fd = rustix::net::socket_with(
        family,
        SocketType::STREAM,
        SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
        None,
    )?;
    match rustix::net::connect(&fd, &addr) {
        Ok(()) => {}
        Err(e) if e == rustix::io::Errno::INPROGRESS => {}
        Err(e) => return Err(e.into()),
    }
    Ok(TcpStream::from(fd))
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

/// A listening socket registered with a worker's reactor.
pub(crate) struct Listener {
    io: Source<TcpListener>,
}

impl Listener {
    pub(crate) fn new(listener: TcpListener, reactor: &Arc<Reactor>) -> io::Result<Self> {
        listener.set_nonblocking(true)?;
        Ok(Listener {
            io: Source::new(listener, reactor, READ)?,
        })
    }

    /// The next connection, already non-blocking (`accept4`, no `ioctl`
    /// after it), for [`Stream::accepted`].
    pub(crate) async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        futures_lite::future::poll_fn(|cx| {
            self.io
                .poll_attempt(READ, cx, || self.io.attempt(READ, accept, |_| false))
        })
        .await
    }
}

fn accept(listener: &TcpListener) -> io::Result<(TcpStream, SocketAddr)> {
    use rustix::net::SocketFlags;
    let (fd, peer) =
        rustix::net::acceptfrom_with(listener, SocketFlags::NONBLOCK | SocketFlags::CLOEXEC)?;
    let stream = TcpStream::from(fd);
    let peer = match peer.map(SocketAddr::try_from) {
        Some(Ok(peer)) => peer,
        _ => stream.peer_addr()?,
    };
    Ok((stream, peer))
}
