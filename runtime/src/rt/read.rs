//! Reads without per-connection buffers.
//!
//! A connection owns no read buffer: it waits for readiness, then reads
//! into its worker thread's scratch buffer (allocated and zeroed once per
//! thread) and hands on exactly the bytes read. The scratch is only borrowed
//! inside one synchronous poll, never across an `.await`, so tasks that
//! move between workers or interleave on one cannot see each other's bytes.
//! An idle connection thus holds no buffer at all, and no read zeroes or
//! allocates 16 KiB.

use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_lite::AsyncRead;

use super::net::Stream;

/// Size of one read from either side.
pub(crate) const READ_CHUNK: usize = 16 * 1024;

thread_local! {
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(vec![0; READ_CHUNK]);
}

/// Run `f` on this thread's scratch buffer.
pub(crate) fn with_scratch<R>(f: impl FnOnce(&mut [u8]) -> R) -> R {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => f(&mut buf),
        // Not reachable today (nothing reads inside a read); stay correct anyway.
        Err(_) => f(&mut vec![0; READ_CHUNK]),
    })
}

/// One non-blocking read of at most `max` bytes from a socket into the
/// scratch buffer; `f` gets the bytes read (empty at EOF). `WouldBlock`
/// when nothing is there.
pub(crate) fn read_tcp<R>(
    tcp: &Stream,
    max: usize,
    f: impl FnOnce(&[u8]) -> R,
) -> io::Result<(usize, R)> {
    with_scratch(|buf| {
        let max = max.clamp(1, buf.len());
        let n = tcp.try_read(&mut buf[..max])?;
        Ok((n, f(&buf[..n])))
    })
}

/// Wait until `tcp` is readable, then read once. A socket the last read
/// left possibly non-empty counts as readable without asking the reactor.
pub(crate) fn poll_read_tcp(tcp: &Stream, cx: &mut Context<'_>) -> Poll<io::Result<Bytes>> {
    loop {
        std::task::ready!(tcp.poll_readable(cx));
        match read_tcp(tcp, READ_CHUNK, Bytes::copy_from_slice) {
            Ok((_, bytes)) => return Poll::Ready(Ok(bytes)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Poll::Ready(Err(e)),
        }
    }
}

/// One read from any async reader into the scratch buffer.
pub(crate) fn poll_read_any(
    r: Pin<&mut (impl AsyncRead + ?Sized)>,
    cx: &mut Context<'_>,
) -> Poll<io::Result<Bytes>> {
    with_scratch(|buf| match r.poll_read(cx, buf) {
        Poll::Ready(Ok(n)) => Poll::Ready(Ok(Bytes::copy_from_slice(&buf[..n]))),
        Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
        Poll::Pending => Poll::Pending,
    })
}
