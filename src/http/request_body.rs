//! [`RequestBody`]: the request body, read from hyper by a tokio task into a
//! bounded buffer and taken out by the interface as the app asks for it.
//!
//! The reader stops when [`BUFFER_LIMIT`] bytes wait unread, so an upload
//! the app reads slowly never sits whole in memory. It also enforces the
//! request's [`BodyLimits`]: a body over the size limit, one that stalls
//! past the read timeout, or one that is malformed ends the body as
//! [`Take::Failed`] for the app and as a [`RequestBody::refused`] status
//! for the server to answer with.

use crate::sync::{Mutex, MutexGuard};
use std::collections::VecDeque;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::StatusCode;
use hyper::body::Incoming;
use tokio::sync::Notify;

use super::BodyLimits;

/// Bytes read ahead of the app before the reader waits.
pub(crate) const BUFFER_LIMIT: usize = 1 << 20;

type Wake = Box<dyn FnOnce() + Send>;

/// Told by the reader when a request's body has been read to its end, by
/// the request's number on its connection: an HTTP/1 connection is not
/// parked while hyper may still be reading a body (see `server::http1`).
pub(crate) trait BodyRead: Send + Sync {
    fn body_read(&self, request: u64);
}

/// Who to tell that this request's body was read to its end; carried in
/// the request's extensions, on HTTP/1 requests with a body.
#[derive(Clone)]
pub(crate) struct OnBodyRead {
    pub(crate) connection: Arc<dyn BodyRead>,
    pub(crate) request: u64,
}

pub(crate) struct RequestBody {
    state: Mutex<State>,
    resume: Notify,
    /// Woken when the body ends refused.
    refused: Notify,
}

#[derive(Default)]
struct State {
    chunks: VecDeque<Bytes>,
    buffered: usize,
    end: End,
    end_delivered: bool,
    closed: bool,
    wake: Option<Wake>,
}

#[derive(Default, PartialEq, Eq, Clone, Copy)]
enum End {
    #[default]
    Open,
    Finished,
    /// The client went away, or broke the stream (HTTP/2).
    Gone,
    /// Refused by the server, with the status that says why: the client
    /// sent something it must not (400, 413) or stalled (408).
    Refused(StatusCode),
}

/// What [`RequestBody::take`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Take {
    /// Everything buffered so far; `more` is false on the last piece.
    Data { body: Bytes, more: bool },
    /// Nothing yet; the wake callback will run when something arrives.
    Pending,
    /// The last piece was already taken.
    Finished,
    /// The body could not be read to its end: the client went away, or
    /// the server refused the body ([`RequestBody::refused`]).
    Failed,
}

impl RequestBody {
    /// A body that is already complete and empty (a GET, say).
    pub(crate) fn empty() -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State {
                end: End::Finished,
                ..State::default()
            }),
            resume: Notify::new(),
            refused: Notify::new(),
        })
    }

    /// Starts a tokio task that reads `incoming` into the buffer, and tells
    /// `on_read` (if any) once it has read it to its end.
    pub(crate) fn spawn(
        incoming: Incoming,
        limits: BodyLimits,
        on_read: Option<OnBodyRead>,
    ) -> Arc<Self> {
        let body = Arc::new(Self {
            state: Mutex::new(State::default()),
            resume: Notify::new(),
            refused: Notify::new(),
        });
        tokio::spawn(Arc::clone(&body).read_from(incoming, limits, on_read));
        body
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock()
    }

    async fn read_from(
        self: Arc<Self>,
        mut incoming: Incoming,
        limits: BodyLimits,
        mut on_read: Option<OnBodyRead>,
    ) {
        let mut received: u64 = 0;
        loop {
            loop {
                let resumed = self.resume.notified();
                {
                    let state = self.lock();
                    if state.closed {
                        return;
                    }
                    if state.buffered < BUFFER_LIMIT {
                        break;
                    }
                }
                resumed.await;
            }
            let frame = match limits.read_timeout {
                Some(limit) => tokio::time::timeout(limit, incoming.frame())
                    .await
                    .map_err(|_| StatusCode::REQUEST_TIMEOUT),
                None => Ok(incoming.frame().await),
            };
            if matches!(frame, Ok(None))
                && let Some(on_read) = on_read.take()
            {
                // hyper has read the body to its end, whether or not the
                // app still wants it.
                on_read.connection.body_read(on_read.request);
            }
            let (wake, end) = {
                let mut state = self.lock();
                if state.closed {
                    return;
                }
                match frame {
                    Ok(Some(Ok(frame))) => match frame.into_data() {
                        Ok(data) if !data.is_empty() => {
                            received += data.len() as u64;
                            if limits.max_size.is_some_and(|max| received > max) {
                                state.end = End::Refused(StatusCode::PAYLOAD_TOO_LARGE);
                            } else {
                                state.buffered += data.len();
                                state.chunks.push_back(data);
                            }
                        }
                        _ => continue,
                    },
                    Ok(Some(Err(err))) => state.end = failure(&err),
                    Ok(None) => state.end = End::Finished,
                    Err(status) => state.end = End::Refused(status),
                }
                if matches!(state.end, End::Refused(_)) {
                    // What the app has not taken yet is of no more use.
                    state.chunks.clear();
                    state.buffered = 0;
                }
                (state.wake.take(), state.end)
            };
            if let Some(wake) = wake {
                wake();
            }
            match end {
                End::Open => {}
                End::Refused(_) => {
                    self.refused.notify_waiters();
                    return;
                }
                End::Finished | End::Gone => return,
            }
        }
    }

    /// The status the body was refused with, once it is.
    pub(crate) fn refusal(&self) -> Option<StatusCode> {
        match self.lock().end {
            End::Refused(status) => Some(status),
            _ => None,
        }
    }

    /// Waits until the body is refused (forever, if it never is).
    pub(crate) async fn refused(&self) -> StatusCode {
        loop {
            let refused = self.refused.notified();
            if let Some(status) = self.refusal() {
                return status;
            }
            refused.await;
        }
    }

    /// Takes what is buffered, or registers `wake` to run (on a tokio
    /// thread) when there is something to take.
    pub(crate) fn take(&self, wake: impl FnOnce() + Send + 'static) -> Take {
        let mut state = self.lock();
        let taken = Self::take_locked(&mut state);
        if taken == Take::Pending {
            state.wake = Some(Box::new(wake));
        }
        drop(state);
        if matches!(taken, Take::Data { .. }) {
            self.resume.notify_one();
        }
        taken
    }

    fn take_locked(state: &mut State) -> Take {
        if state.closed {
            return Take::Failed;
        }
        if !state.chunks.is_empty() {
            let body = if state.chunks.len() == 1 {
                state.chunks.pop_front().unwrap_or_default()
            } else {
                let mut joined = BytesMut::with_capacity(state.buffered);
                for chunk in state.chunks.drain(..) {
                    joined.extend_from_slice(&chunk);
                }
                joined.freeze()
            };
            state.buffered = 0;
            let more = state.end == End::Open;
            state.end_delivered = !more;
            return Take::Data { body, more };
        }
        match state.end {
            End::Open => Take::Pending,
            End::Gone | End::Refused(_) => Take::Failed,
            End::Finished if state.end_delivered => Take::Finished,
            End::Finished => {
                state.end_delivered = true;
                Take::Data {
                    body: Bytes::new(),
                    more: false,
                }
            }
        }
    }

    /// True once the whole body has been read from the client.
    pub(crate) fn is_complete(&self) -> bool {
        self.lock().end == End::Finished
    }

    /// Stops the reader and drops anything buffered and any wake callback.
    pub(crate) fn close(&self) {
        let wake = {
            let mut state = self.lock();
            state.closed = true;
            state.chunks.clear();
            state.buffered = 0;
            state.wake.take()
        };
        drop(wake);
        self.resume.notify_one();
    }
}

/// Why hyper could not read a body: the client's malformed framing (an
/// HTTP/1 chunk size that is not one, or overflows) is the client's fault
/// and answered 400; anything else means the client is gone.
fn failure(err: &hyper::Error) -> End {
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            return match io.kind() {
                std::io::ErrorKind::InvalidData | std::io::ErrorKind::InvalidInput => {
                    End::Refused(StatusCode::BAD_REQUEST)
                }
                _ => End::Gone,
            };
        }
        source = cause.source();
    }
    End::Gone
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_body_yields_one_final_piece() {
        let body = RequestBody::empty();
        assert_eq!(
            body.take(|| ()),
            Take::Data {
                body: Bytes::new(),
                more: false
            }
        );
        assert_eq!(body.take(|| ()), Take::Finished);
    }

    #[test]
    fn buffered_chunks_are_joined() {
        let body = RequestBody::empty();
        {
            let mut state = body.lock();
            state.end = End::Open;
            state.chunks.push_back(Bytes::from_static(b"ab"));
            state.chunks.push_back(Bytes::from_static(b"cd"));
            state.buffered = 4;
        }
        assert_eq!(
            body.take(|| ()),
            Take::Data {
                body: Bytes::from_static(b"abcd"),
                more: true
            }
        );
        assert_eq!(body.take(|| ()), Take::Pending);
    }
}
