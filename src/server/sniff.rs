//! Which HTTP version a connection speaks (`--http auto`), told from its
//! first bytes: HTTP/2 opens with a fixed 24-byte preface, anything else is
//! HTTP/1. hyper-util's automatic builder does the same, but hands hyper
//! the bytes it read in a read of their own; hyper then finds its fresh
//! 8 KiB read buffer partly filled and doubles it, and an idle keep-alive
//! connection holds 16 KiB for the rest of its life instead of 8.
//! [`Prefixed`] gives the sniffed bytes back together with whatever the
//! socket has ready, so the request lands in one read as on a connection
//! served without sniffing. `http1` uses it the same way for a parked
//! connection's next bytes, and for what hyper read but did not use.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Version {
    Http1,
    Http2,
}

/// Reads until the bytes stop matching the preface (HTTP/1), match all of
/// it (HTTP/2), or the client closes (HTTP/1: hyper sees the end and closes
/// quietly).
pub(super) async fn sniff<IO>(mut io: IO) -> io::Result<(Version, Prefixed<IO>)>
where
    IO: AsyncRead + Unpin,
{
    let mut prefix = [0; PREFACE.len()];
    let mut end = 0;
    let version = loop {
        let read = io.read(&mut prefix[end..]).await?;
        let start = end;
        end += read;
        if read == 0 || prefix[start..end] != PREFACE[start..end] {
            break Version::Http1;
        }
        if end == PREFACE.len() {
            break Version::Http2;
        }
    };
    Ok((
        version,
        Prefixed::new(io, Bytes::copy_from_slice(&prefix[..end])),
    ))
}

/// A socket whose first bytes were already read: they come first.
pub(super) struct Prefixed<IO> {
    io: IO,
    prefix: Bytes,
}

impl<IO> Prefixed<IO> {
    pub(super) fn new(io: IO, prefix: Bytes) -> Self {
        Self { io, prefix }
    }

    /// `bytes` were read from the socket after the prefix but not used:
    /// they come first.
    pub(super) fn unread(&mut self, bytes: Bytes) {
        if !bytes.is_empty() {
            self.prefix = if self.prefix.is_empty() {
                bytes
            } else {
                [bytes, std::mem::take(&mut self.prefix)].concat().into()
            };
        }
    }

    /// Drops the CR and LF bytes at the front of the unread bytes.
    pub(super) fn skip_empty_lines(&mut self) {
        let blank = self
            .prefix
            .iter()
            .take_while(|b| matches!(b, b'\r' | b'\n'))
            .count();
        let _ = self.prefix.split_to(blank);
    }

    pub(super) fn has_unread(&self) -> bool {
        !self.prefix.is_empty()
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> Prefixed<IO> {
    /// Waits for the client's next bytes, reading at most a preface's
    /// worth; false when the socket ended (or failed) first.
    pub(super) async fn await_bytes(&mut self) -> bool {
        let mut first = [0; PREFACE.len()];
        match self.io.read(&mut first).await {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.prefix = Bytes::copy_from_slice(&first[..n]);
                true
            }
        }
    }

    /// Shuts the socket down (a TLS close_notify, then the end of the
    /// stream), as hyper does when it ends a connection.
    pub(super) async fn close(mut self) {
        let _ = self.io.shutdown().await;
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Prefixed<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.prefix.is_empty() {
            return Pin::new(&mut this.io).poll_read(cx, buf);
        }
        let n = buf.remaining().min(this.prefix.len());
        buf.put_slice(&this.prefix.split_to(n));
        if this.prefix.is_empty() && buf.remaining() > 0 {
            // The rest of the request, if it is there. Bytes were given
            // either way, so a socket with nothing more (pending) or an
            // error waits for the next read, which sees it again.
            let _ = Pin::new(&mut this.io).poll_read(cx, buf);
        }
        Poll::Ready(Ok(()))
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Prefixed<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;

    use super::*;

    async fn sniffed(chunks: &[&[u8]]) -> (Version, Vec<u8>) {
        let (client, server) = tokio::io::duplex(64);
        let chunks: Vec<Vec<u8>> = chunks.iter().map(|c| c.to_vec()).collect();
        let writer = tokio::spawn(async move {
            let mut client = client;
            for chunk in chunks {
                client.write_all(&chunk).await.unwrap();
                tokio::task::yield_now().await;
            }
        });
        let (version, mut io) = sniff(server).await.unwrap();
        writer.await.unwrap();
        let mut all = Vec::new();
        io.read_to_end(&mut all).await.unwrap();
        (version, all)
    }

    #[tokio::test]
    async fn tells_the_versions_apart_and_loses_no_byte() {
        let h2 = [PREFACE.as_slice(), b"\x00\x00\x00\x04"].concat();
        assert_eq!(sniffed(&[&h2]).await, (Version::Http2, h2.clone()));
        // The preface a few bytes at a time.
        assert_eq!(
            sniffed(&[&h2[..3], &h2[3..20], &h2[20..]]).await,
            (Version::Http2, h2.clone())
        );
        let get = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();
        assert_eq!(sniffed(&[&get]).await, (Version::Http1, get.clone()));
        // "PRI" then something else is HTTP/1 (a method hyper refuses).
        let pri = b"PRI /x HTTP/1.1\r\n\r\n".to_vec();
        assert_eq!(
            sniffed(&[&pri[..3], &pri[3..]]).await,
            (Version::Http1, pri)
        );
        assert_eq!(sniffed(&[]).await, (Version::Http1, Vec::new()));
    }

    #[tokio::test]
    async fn unread_bytes_come_first_in_order_and_empty_lines_can_be_dropped() {
        let (mut client, server) = tokio::io::duplex(256);
        client.write_all(b" HTTP/1.1\r\n\r\n").await.unwrap();
        drop(client);
        let mut io = Prefixed::new(server, Bytes::from_static(b"/x"));
        io.unread(Bytes::from_static(b"GET "));
        let mut all = Vec::new();
        io.read_to_end(&mut all).await.unwrap();
        assert_eq!(all, b"GET /x HTTP/1.1\r\n\r\n");
        let mut io = Prefixed::new(tokio::io::empty(), Bytes::from_static(b"\r\n\r\nGET"));
        io.skip_empty_lines();
        assert!(io.has_unread());
        let mut rest = Vec::new();
        io.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest, b"GET");
        let mut io = Prefixed::new(tokio::io::empty(), Bytes::from_static(b"\r\n"));
        io.skip_empty_lines();
        assert!(!io.has_unread());
    }

    #[tokio::test]
    async fn gives_the_prefix_and_what_follows_in_one_read() {
        let (mut client, server) = tokio::io::duplex(256);
        let get = b"GET /a-longer-path HTTP/1.1\r\nHost: x\r\n\r\n";
        client.write_all(get).await.unwrap();
        let (_, mut io) = sniff(server).await.unwrap();
        let mut buf = [0; 256];
        let n = io.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], get);
    }
}
