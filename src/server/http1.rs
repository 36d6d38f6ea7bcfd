//! Serving one HTTP/1 connection, parked outside hyper while it is idle.
//!
//! hyper keeps an 8 KiB read buffer and an 8 KiB write buffer for as long
//! as a connection lives, idle or not, which made an idle keep-alive
//! connection cost about 25 KiB. Once a connection has been idle for
//! `PARK_AFTER` with nothing half-written and no request body that may
//! still be coming (the socket's timer in `timeouts` says so), hyper's
//! connection is taken apart (its buffers freed, any bytes it read but
//! did not use kept) and the socket waits here for its next bytes; a new
//! hyper connection then serves them. The keep-alive timeout, an eviction
//! and a graceful stop apply to a parked connection as to any other.
//!
//! Driving connections this way means hyper no longer hands upgraded
//! connections over itself: that is done here too, through the
//! connection's [`Handover`].

use std::error::Error as StdError;
use std::future::{Future, poll_fn};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use hyper::body::{Body, Incoming};
use hyper::server::conn::http1::{Builder, Parts};
use hyper::service::HttpService;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;

use super::sniff::Prefixed;
use super::timeouts::{Activity, PARK_AFTER};
use crate::http::Handover;

/// What one HTTP/1 connection is served with.
pub(super) struct Http1<'a, S> {
    pub(super) builder: &'a Builder,
    pub(super) service: S,
    pub(super) activity: Arc<Activity>,
    pub(super) handover: Handover,
    /// Whether the connection is parked when idle: not with
    /// `--http1-pipeline-flush`, where hyper may hold a response back
    /// while part of the next request waits in its buffer.
    pub(super) parks: bool,
    pub(super) draining: &'a CancellationToken,
    /// hyper's header-read timeout, which also closes a connection idle
    /// for that long when the keep-alive timeout is longer.
    pub(super) header_read_timeout: Option<Duration>,
}

impl<S, B> Http1<'_, S>
where
    S: HttpService<Incoming, ResBody = B> + Clone + Unpin,
    S::Error: Into<Box<dyn StdError + Send + Sync>>,
    B: Body + 'static,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    /// Serves `io` until the client or the server ends the connection, or
    /// until it is upgraded and handed over; a graceful stop finishes the
    /// request in flight, if any, then closes.
    pub(super) async fn serve<IO>(self, io: Prefixed<IO>) -> hyper::Result<()>
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let ended = self.serve_until_done(io).await;
        self.handover.cancel();
        ended
    }

    async fn serve_until_done<IO>(&self, mut io: Prefixed<IO>) -> hyper::Result<()>
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        if self.parks {
            self.activity.may_park();
        }
        loop {
            // Boxed: inline, hyper's connection would make the task of
            // every connection, parked ones too, 2 KiB bigger.
            let mut conn = Box::new(
                self.builder
                    .serve_connection(TokioIo::new(io), self.service.clone()),
            );
            let ended = tokio::select! {
                ended = poll_fn(|cx| match std::pin::Pin::new(&mut conn).poll(cx) {
                    Poll::Ready(ended) => Poll::Ready(Some(ended)),
                    // Asked for while hyper polled the socket.
                    Poll::Pending if self.activity.take_park() => Poll::Ready(None),
                    Poll::Pending => Poll::Pending,
                }) => ended,
                _ = self.draining.cancelled() => {
                    std::pin::Pin::new(&mut *conn).graceful_shutdown();
                    Some((&mut conn).await)
                }
            };
            // hyper shut the socket down when it ended the connection,
            // except for an upgrade, which it leaves to its owner.
            let upgraded = match ended {
                Some(Ok(())) if self.activity.is_upgraded() => true,
                Some(ended) => return ended,
                None => false,
            };
            // Idle, or upgraded: hyper has nothing left to write, and what
            // it read but did not use (the start of a pipelined request, or
            // the client's first websocket frames) goes back in front of
            // the socket.
            let Parts {
                io: taken,
                read_buf,
                ..
            } = (*conn).into_parts();
            io = taken.into_inner();
            io.unread(read_buf);
            if upgraded {
                self.handover.fulfil(Box::new(io));
                return Ok(());
            }
            // Empty lines before a request are ignored (RFC 9112, 2.2);
            // left in front of a new hyper connection, which counts as
            // busy until its first request, they would keep a graceful
            // stop waiting for a request that is not coming.
            io.skip_empty_lines();
            if !(io.has_unread() || self.next_bytes(&mut io).await) {
                io.close().await;
                return Ok(());
            }
        }
    }

    /// Waits for a parked connection's next bytes; false if it is to
    /// close first (the keep-alive or header-read timeout, an eviction, a
    /// stop, or the client's end).
    async fn next_bytes<IO>(&self, io: &mut Prefixed<IO>) -> bool
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        // hyper's header-read timer started with the idle spell, which
        // began `PARK_AFTER` ago.
        let limit = self
            .header_read_timeout
            .map_or(Duration::MAX, |limit| limit.saturating_sub(PARK_AFTER));
        tokio::select! {
            got = tokio::time::timeout(limit, io.await_bytes()) => got.unwrap_or(false),
            _ = self.draining.cancelled() => false,
        }
    }
}
