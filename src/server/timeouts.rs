//! Timeouts hyper does not have: [`Timed`] wraps a connection's socket,
//! ends a connection that has been idle (no request in flight, nothing
//! received) for the keep-alive timeout, and fails one whose client has
//! stopped reading for the write timeout. [`InFlight`] is how the
//! connection's requests tell it whether it is idle. An HTTP/1 connection
//! idle for [`PARK_AFTER`] is also asked to leave hyper (see `http1`).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Buf;
use futures_util::task::AtomicWaker;
use hyper::body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::http::metrics::{self, Open, RequestTimer};
use crate::http::{BodyRead, OnBodyRead};
use crate::log::access::Pending;

/// How long an HTTP/1 connection is idle before it is parked. Long enough
/// that a client sending requests one after another never is; parking
/// and taking a connection back costs two buffers and one more read.
pub(super) const PARK_AFTER: Duration = Duration::from_secs(1);

/// Stands for "never" where a timer must have a deadline.
const NEVER: Duration = Duration::from_secs(365 * 86_400);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Timeouts {
    /// Close a connection with no request in flight that received nothing
    /// for this long; `None`: never.
    pub(crate) keep_alive: Option<Duration>,
    /// Fail a connection whose socket accepted no byte for this long while
    /// there was something to write; `None`: never.
    pub(crate) write: Option<Duration>,
}

/// What one connection's requests share with its socket.
#[derive(Debug, Default)]
pub(crate) struct Activity {
    in_flight: AtomicUsize,
    /// Upgraded to a websocket: idle time is the websocket's business.
    upgraded: AtomicBool,
    /// Closed to make room for a new connection (`--limit-connections`).
    evicted: AtomicBool,
    /// Bytes arrived with no request in flight: the start of a head not
    /// yet handed over (cleared when it is).
    head_begun: AtomicBool,
    /// Requests the connection has handed over so far.
    requests: AtomicU64,
    /// The number of the last request if it came with a body that has not
    /// been read to its end (0 otherwise): hyper may still be reading (or
    /// discarding) it, so the connection must not be parked.
    body_pending: AtomicU64,
    /// Served by `http1`, which can park the connection.
    parks: AtomicBool,
    /// Idle for [`PARK_AFTER`] with nothing half-written and no request
    /// body still coming: the connection may leave hyper until its next
    /// bytes arrive.
    park: AtomicBool,
    /// The read that found the connection busy, to be woken when it is not.
    reader: AtomicWaker,
    /// `--metrics`: counted as open from admission until the last holder
    /// (the upgraded websocket's, if any) lets go.
    open: OnceLock<Option<Open>>,
    websocket: OnceLock<Option<Open>>,
}

impl Activity {
    fn idle(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0 && !self.upgraded.load(Ordering::Acquire)
    }

    fn upgraded(&self) {
        self.upgraded.store(true, Ordering::Release);
        let _ = self.websocket.set(Open::websocket());
    }

    /// Admitted: counted as an open connection from now on.
    pub(crate) fn opened(&self) {
        let _ = self.open.set(Open::connection());
    }

    /// Idle and not already on its way out: may make room for another.
    pub(crate) fn evictable(&self) -> bool {
        self.idle() && !self.is_evicted()
    }

    /// Has the connection close as soon as it is idle.
    pub(crate) fn evict(&self) {
        self.evicted.store(true, Ordering::Release);
        self.reader.wake();
    }

    pub(crate) fn is_evicted(&self) -> bool {
        self.evicted.load(Ordering::Acquire)
    }

    /// Whether part of a request head has arrived that never became a
    /// request: tells a head cut off by the header-read timeout from an
    /// idle keep-alive connection the same timer closed.
    pub(crate) fn head_begun(&self) -> bool {
        self.head_begun.load(Ordering::Acquire)
    }

    /// The connection may be parked (`http1` serves it).
    pub(super) fn may_park(&self) {
        self.parks.store(true, Ordering::Release);
    }

    /// Whether the connection asked to be parked since the last call.
    pub(super) fn take_park(&self) -> bool {
        self.park.load(Ordering::Relaxed) && self.park.swap(false, Ordering::AcqRel)
    }

    /// Whether the socket's last request was upgraded (`101`).
    pub(super) fn is_upgraded(&self) -> bool {
        self.upgraded.load(Ordering::Acquire)
    }
}

impl BodyRead for Activity {
    /// Only the last request's body counts: a late word about an earlier
    /// one must not clear it.
    fn body_read(&self, request: u64) {
        let _ = self
            .body_pending
            .compare_exchange(request, 0, Ordering::AcqRel, Ordering::Relaxed);
    }
}

/// One request counted as in flight from the moment hyper hands it over
/// until its response body is done (or dropped).
#[derive(Debug)]
pub(crate) struct InFlight(Arc<Activity>);

impl InFlight {
    /// A request handed over with its body (if any) still to come. On a
    /// connection that may be parked, a request with a body carries an
    /// [`OnBodyRead`] in its extensions: the connection is not parked
    /// until its body has been read to the end.
    pub(crate) fn new<B: Body>(activity: &Arc<Activity>, req: &mut hyper::Request<B>) -> Self {
        activity.in_flight.fetch_add(1, Ordering::AcqRel);
        activity.head_begun.store(false, Ordering::Release);
        let request = activity.requests.fetch_add(1, Ordering::Relaxed) + 1;
        let body = !req.body().is_end_stream();
        let pending = if body { request } else { 0 };
        activity.body_pending.store(pending, Ordering::Release);
        if body && activity.parks.load(Ordering::Relaxed) {
            let connection: Arc<dyn BodyRead> = Arc::clone(activity) as _;
            req.extensions_mut().insert(OnBodyRead {
                connection,
                request,
            });
        }
        Self(Arc::clone(activity))
    }

    /// This request upgraded its connection to a websocket.
    pub(crate) fn upgraded(&self) {
        self.0.upgraded();
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            // The idle timer starts in the socket's next read.
            self.0.reader.wake();
        }
    }
}

/// A response body that keeps its request [`InFlight`] (and, with
/// `--metrics`, its timer) until it ends, and its access-log record (if
/// any) until the body has been handed over.
#[derive(Debug)]
pub(crate) struct Tracked<B> {
    body: B,
    _in_flight: InFlight,
    _timer: Option<RequestTimer>,
    access: Option<Pending>,
}

impl<B: Body> Tracked<B> {
    pub(crate) fn new(
        body: B,
        in_flight: InFlight,
        timer: Option<RequestTimer>,
        mut access: Option<Pending>,
    ) -> Self {
        // hyper never polls a body that is empty from the start.
        if let Some(pending) = &mut access
            && body.is_end_stream()
        {
            pending.complete();
        }
        Self {
            body,
            _in_flight: in_flight,
            _timer: timer,
            access,
        }
    }
}

impl<B: Body + Unpin> Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.body).poll_frame(cx);
        if let Some(pending) = &mut this.access {
            match &polled {
                Poll::Ready(Some(Ok(frame))) => {
                    if let Some(data) = frame.data_ref() {
                        pending.sent(data.remaining() as u64);
                    }
                    if this.body.is_end_stream() {
                        pending.complete();
                    }
                }
                Poll::Ready(None) => pending.complete(),
                _ => {}
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A socket with the [`Timeouts`].
#[derive(Debug)]
pub(crate) struct Timed<IO> {
    io: IO,
    activity: Arc<Activity>,
    timeouts: Timeouts,
    idle: Option<IdleTimer>,
    stalled: Option<Pin<Box<Sleep>>>,
    /// The last write or flush could not finish: hyper still holds bytes
    /// for the client.
    write_blocked: bool,
}

/// The timer of one idle spell: first to [`PARK_AFTER`] (when the
/// keep-alive timeout is longer), then to the keep-alive timeout.
#[derive(Debug)]
struct IdleTimer {
    sleep: Pin<Box<Sleep>>,
    parking: bool,
}

impl<IO> Timed<IO> {
    pub(crate) fn new(io: IO, activity: Arc<Activity>, timeouts: Timeouts) -> Self {
        Self {
            io,
            activity,
            timeouts,
            idle: None,
            stalled: None,
            write_blocked: false,
        }
    }

    /// Runs the idle timer of a connection with nothing in flight: true
    /// once the keep-alive timeout has passed. On the way, [`PARK_AFTER`]
    /// into the spell, asks for the connection to be parked if nothing is
    /// half-written and no request body may still be coming.
    fn idle_expired(&mut self, cx: &mut Context<'_>) -> bool {
        let keep_alive = self.timeouts.keep_alive;
        let timer = match &mut self.idle {
            Some(timer) => timer,
            None => {
                let parking = self.activity.parks.load(Ordering::Relaxed)
                    && keep_alive.is_none_or(|limit| limit > PARK_AFTER);
                let Some(first) = (if parking {
                    Some(PARK_AFTER)
                } else {
                    keep_alive
                }) else {
                    return false;
                };
                let sleep = Box::pin(tokio::time::sleep(first));
                self.idle.insert(IdleTimer { sleep, parking })
            }
        };
        if timer.sleep.as_mut().poll(cx).is_pending() {
            return false;
        }
        if !timer.parking {
            return true;
        }
        timer.parking = false;
        let start = timer.sleep.deadline() - PARK_AFTER;
        let end: Instant = start + keep_alive.unwrap_or(NEVER);
        timer.sleep.as_mut().reset(end);
        let activity = &self.activity;
        if !self.write_blocked
            && !activity.head_begun()
            && activity.body_pending.load(Ordering::Acquire) == 0
        {
            activity.park.store(true, Ordering::Release);
        }
        timer.sleep.as_mut().poll(cx).is_ready()
    }
}

/// Polls the timer in `slot`, starting it for `limit` if it is not running.
fn expired(slot: &mut Option<Pin<Box<Sleep>>>, limit: Duration, cx: &mut Context<'_>) -> bool {
    slot.get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)))
        .as_mut()
        .poll(cx)
        .is_ready()
}

impl<IO: AsyncRead + Unpin> AsyncRead for Timed<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        if let Poll::Ready(read) = Pin::new(&mut this.io).poll_read(cx, buf) {
            let got = buf.filled().len() - before;
            if got > 0 {
                this.idle = None;
                metrics::bytes_in(got);
                if this.activity.idle() {
                    this.activity.head_begun.store(true, Ordering::Release);
                }
            }
            return Poll::Ready(read);
        }
        this.activity.reader.register(cx.waker());
        if !this.activity.idle() {
            this.idle = None;
            return Poll::Pending;
        }
        if this.idle_expired(cx) || this.activity.is_evicted() {
            // An end of stream: hyper closes an idle connection quietly.
            return Poll::Ready(Ok(()));
        }
        Poll::Pending
    }
}

impl<IO: AsyncWrite + Unpin> Timed<IO> {
    /// The write timeout around one write-side poll.
    fn guard_write<T>(
        &mut self,
        cx: &mut Context<'_>,
        poll: impl FnOnce(Pin<&mut IO>, &mut Context<'_>) -> Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if let Poll::Ready(done) = poll(Pin::new(&mut self.io), cx) {
            self.stalled = None;
            self.write_blocked = false;
            return Poll::Ready(done);
        }
        self.write_blocked = true;
        if let Some(limit) = self.timeouts.write
            && expired(&mut self.stalled, limit, cx)
        {
            self.stalled = None;
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client stopped reading",
            )));
        }
        Poll::Pending
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Timed<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let written = self.guard_write(cx, |io, cx| io.poll_write(cx, buf));
        if let Poll::Ready(Ok(n)) = written {
            metrics::bytes_out(n);
        }
        written
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let written = self.guard_write(cx, |io, cx| io.poll_write_vectored(cx, bufs));
        if let Poll::Ready(Ok(n)) = written {
            metrics::bytes_out(n);
        }
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.guard_write(cx, |io, cx| io.poll_flush(cx))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use http_body_util::{Empty, Full};

    use super::*;

    fn request(body: &'static [u8]) -> hyper::Request<Full<Bytes>> {
        hyper::Request::new(Full::new(Bytes::from_static(body)))
    }

    #[test]
    fn only_the_last_requests_body_keeps_the_connection_from_parking() {
        let activity = Arc::new(Activity::default());
        activity.may_park();
        let mut post = request(b"body");
        drop(InFlight::new(&activity, &mut post));
        let first = post.extensions_mut().remove::<OnBodyRead>().unwrap();
        assert_eq!(activity.body_pending.load(Ordering::Acquire), first.request);
        // The next request has no body and carries no watcher.
        let mut get = hyper::Request::new(Empty::<Bytes>::new());
        drop(InFlight::new(&activity, &mut get));
        assert!(get.extensions().get::<OnBodyRead>().is_none());
        assert_eq!(activity.body_pending.load(Ordering::Acquire), 0);
        // A body read to its end clears only its own request.
        let mut post = request(b"more");
        drop(InFlight::new(&activity, &mut post));
        let third = post.extensions_mut().remove::<OnBodyRead>().unwrap();
        first.connection.body_read(first.request);
        assert_eq!(activity.body_pending.load(Ordering::Acquire), third.request);
        third.connection.body_read(third.request);
        assert_eq!(activity.body_pending.load(Ordering::Acquire), 0);
    }

    #[test]
    fn a_connection_that_cannot_park_gets_no_watcher() {
        let activity = Arc::new(Activity::default());
        let mut post = request(b"body");
        drop(InFlight::new(&activity, &mut post));
        assert!(post.extensions().get::<OnBodyRead>().is_none());
        assert_ne!(activity.body_pending.load(Ordering::Acquire), 0);
    }
}
