//! Which HTTP version a connection speaks (`--http auto`), told from its
//! first bytes: HTTP/2 opens with a fixed 24-byte preface, anything else is
//! HTTP/1. hyper-util's automatic builder does the same, but hands hyper
//! the bytes it read in a read of their own; hyper then finds its fresh
//! 8 KiB read buffer partly filled and doubles it, and an idle keep-alive
//! connection holds 16 KiB for the rest of its life instead of 8.
//! [`Prefixed`] gives the sniffed bytes back together with whatever the
//! socket has ready, so the request lands in one read as on a connection
//! served without sniffing.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

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
    let prefixed = Prefixed {
        io,
        prefix,
        start: 0,
        end,
    };
    Ok((version, prefixed))
}

/// A socket whose first bytes were already read: they come first.
pub(super) struct Prefixed<IO> {
    io: IO,
    prefix: [u8; PREFACE.len()],
    start: usize,
    end: usize,
}

impl<IO: AsyncRead + Unpin> AsyncRead for Prefixed<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.start == this.end {
            return Pin::new(&mut this.io).poll_read(cx, buf);
        }
        let n = buf.remaining().min(this.end - this.start);
        buf.put_slice(&this.prefix[this.start..this.start + n]);
        this.start += n;
        if this.start == this.end && buf.remaining() > 0 {
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
