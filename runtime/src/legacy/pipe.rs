//! The exchange's end of a virtual upstream connection.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_lite::{AsyncRead, AsyncWrite};

/// One virtual connection to the bridge: the exchange writes its request
/// into it and reads the response out. Dropping it tells the bridge the
/// client is gone.
pub struct BridgePipe {
    reader: piper::Reader,
    writer: piper::Writer,
}

impl BridgePipe {
    pub(super) fn new(reader: piper::Reader, writer: piper::Writer) -> Self {
        BridgePipe { reader, writer }
    }
}

impl AsyncRead for BridgePipe {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().reader).poll_read(cx, buf)
    }
}

impl AsyncWrite for BridgePipe {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.get_mut().writer).poll_write(cx, buf) {
            // A closed pipe accepts nothing: report it as the broken pipe it is.
            Poll::Ready(Ok(0)) if !buf.is_empty() => {
                Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()))
            }
            other => other,
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().writer).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().writer).poll_close(cx)
    }
}
