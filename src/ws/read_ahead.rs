//! [`ReadAhead`]: an upgraded connection as tungstenite reads it.
//!
//! tungstenite keeps its read buffer for a websocket's whole life, and the
//! buffer's size is also the most it reads per call (and zero-fills before
//! each read: its 128 KiB default cost a quarter of the I/O thread's time
//! in the echo benchmark). A large buffer is held by every idle websocket;
//! a small one costs large messages a system call per few KiB. So
//! tungstenite gets a small one ([`SMALL_READS`]), and reads go straight to
//! the socket until one fills it; then more is likely waiting, and the next
//! read takes up to [`AHEAD`] bytes into a buffer of this wrapper's own,
//! which tungstenite then takes from without system calls. That buffer is
//! given back once drained, and whenever the socket has nothing: an idle
//! websocket, or one that gets small messages, holds none.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_util::io::poll_read_buf;

/// tungstenite's read buffer, kept for the websocket's life.
pub(super) const SMALL_READS: usize = 2 * 1024;
/// The most read ahead in one system call.
const AHEAD: usize = 64 * 1024;

pub(crate) struct ReadAhead<S> {
    inner: S,
    /// Read from the socket and not yet taken; empty and unallocated when
    /// drained.
    ahead: BytesMut,
    /// The last read filled the reader's buffer.
    filled: bool,
}

impl<S> ReadAhead<S> {
    pub(crate) fn new(inner: S) -> Self {
        Self {
            inner,
            ahead: BytesMut::new(),
            filled: false,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ReadAhead<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.ahead.is_empty() {
            if !this.filled {
                let room = out.remaining();
                ready!(Pin::new(&mut this.inner).poll_read(cx, out))?;
                this.filled = room > 0 && out.remaining() == 0;
                return Poll::Ready(Ok(()));
            }
            this.ahead.reserve(AHEAD);
            let read = Pin::new(&mut this.inner);
            match poll_read_buf(read, cx, &mut this.ahead) {
                // A short read most likely took all there was.
                Poll::Ready(Ok(n)) => this.filled = n >= AHEAD,
                other => {
                    // Nothing waiting after all (or an error): hold nothing
                    // while the socket is idle.
                    this.ahead = BytesMut::new();
                    this.filled = false;
                    return other.map_ok(|_| ());
                }
            }
        }
        let n = out.remaining().min(this.ahead.len());
        out.put_slice(&this.ahead[..n]);
        this.ahead.advance(n);
        if this.ahead.is_empty() {
            this.ahead = BytesMut::new();
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ReadAhead<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn small_reads_go_straight_to_the_socket() {
        runtime().block_on(async {
            let (mut client, server) = tokio::io::duplex(1 << 20);
            let mut reader = ReadAhead::new(server);
            client.write_all(b"hello").await.unwrap();
            let mut buf = [0u8; SMALL_READS];
            assert_eq!(reader.read(&mut buf).await.unwrap(), 5);
            assert_eq!(&buf[..5], b"hello");
            assert!(!reader.filled);
            assert_eq!(reader.ahead.capacity(), 0);
        });
    }

    #[test]
    fn a_large_message_is_read_ahead_and_the_buffer_given_back_once_taken() {
        runtime().block_on(async {
            let (mut client, server) = tokio::io::duplex(1 << 20);
            let mut reader = ReadAhead::new(server);
            let message: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
            client.write_all(&message).await.unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; SMALL_READS];
            let mut ahead_seen = false;
            while got.len() < message.len() {
                let n = reader.read(&mut buf).await.unwrap();
                got.extend_from_slice(&buf[..n]);
                ahead_seen |= reader.ahead.capacity() > 0;
            }
            assert_eq!(got, message);
            assert!(ahead_seen);
            assert_eq!(reader.ahead.capacity(), 0);
            // Nothing more waiting: the read-ahead buffer is not kept
            // while the reader waits.
            {
                let mut wait = std::pin::pin!(reader.read(&mut buf));
                assert!(futures_util::poll!(wait.as_mut()).is_pending());
            }
            assert_eq!(reader.ahead.capacity(), 0);
            // And the end of the stream is still the end.
            drop(client);
            assert_eq!(reader.read(&mut buf).await.unwrap(), 0);
        });
    }
}
