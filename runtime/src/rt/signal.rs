//! Unix signals as readiness on a worker's poller: each watched signal gets
//! a socket pair whose write end `signal-hook`'s handler writes a byte to
//! (async-signal-safe) and whose read end is registered with a worker like
//! any socket. No signal thread, no reactor of its own.

use std::io::{self, Read};
use std::os::raw::c_int;
use std::os::unix::net::UnixStream;
use std::task::{Context, Poll};

use signal_hook::SigId;

use super::Handle;
use super::reactor::{READ, Source};

/// Watches a set of signals until dropped (then their handlers go).
pub(crate) struct Signals {
    pipes: Vec<Pipe>,
}

struct Pipe {
    signal: c_int,
    id: SigId,
    read: Source<UnixStream>,
}

impl Signals {
    /// Watch `signals`; the read ends live on the current worker or, off
    /// the workers, the least loaded one of `rt`.
    pub(crate) fn new(signals: &[c_int], rt: &Handle) -> io::Result<Signals> {
        let reactor = rt.local_or_least_loaded().reactor().clone();
        let mut pipes = Vec::new();
        for &signal in signals {
            let (read, write) = UnixStream::pair()?;
            read.set_nonblocking(true)?;
            write.set_nonblocking(true)?;
            let read = Source::new(read, &reactor, 0)?;
            let id = signal_hook::low_level::pipe::register(signal, write)?;
            pipes.push(Pipe { signal, id, read });
        }
        Ok(Signals { pipes })
    }

    /// The next signal to arrive (one that came since the last call, or
    /// before the first, counts).
    pub(crate) async fn recv(&self) -> io::Result<c_int> {
        futures_lite::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<io::Result<c_int>> {
        for pipe in &self.pipes {
            let mut buf = [0u8; 64];
            let read = pipe.read.poll_attempt(READ, cx, || {
                pipe.read
                    .attempt(READ, |mut io| io.read(&mut buf), |_| false)
            });
            match read {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(io::Error::other("a signal pipe closed")));
                }
                Poll::Ready(Ok(_)) => return Poll::Ready(Ok(pipe.signal)),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {}
            }
        }
        Poll::Pending
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        for pipe in &self.pipes {
            signal_hook::low_level::unregister(pipe.id);
        }
    }
}

/// A signal's name for the logs (`SIGTERM`).
pub(crate) fn name(signal: c_int) -> &'static str {
    signal_hook::low_level::signal_name(signal).unwrap_or("a signal")
}

pub(crate) use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
