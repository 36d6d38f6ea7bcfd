//! [`RequestBody`]: the request body, read from hyper by a tokio task into a
//! bounded buffer and taken out by the interface as the app asks for it.
//!
//! The reader stops when [`BUFFER_LIMIT`] bytes wait unread, so an upload
//! the app reads slowly never sits whole in memory.

use crate::sync::{Mutex, MutexGuard};
use std::collections::VecDeque;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::sync::Notify;

/// Bytes read ahead of the app before the reader waits.
pub(crate) const BUFFER_LIMIT: usize = 1 << 20;

type Wake = Box<dyn FnOnce() + Send>;

pub(crate) struct RequestBody {
    state: Mutex<State>,
    resume: Notify,
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
    Failed,
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
    /// The body could not be read to its end (the client went away).
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
        })
    }

    /// Starts a tokio task that reads `incoming` into the buffer.
    pub(crate) fn spawn(incoming: Incoming) -> Arc<Self> {
        let body = Arc::new(Self {
            state: Mutex::new(State::default()),
            resume: Notify::new(),
        });
        tokio::spawn(Arc::clone(&body).read_from(incoming));
        body
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock()
    }

    async fn read_from(self: Arc<Self>, mut incoming: Incoming) {
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
            let frame = incoming.frame().await;
            let wake = {
                let mut state = self.lock();
                if state.closed {
                    return;
                }
                match frame {
                    Some(Ok(frame)) => match frame.into_data() {
                        Ok(data) if !data.is_empty() => {
                            state.buffered += data.len();
                            state.chunks.push_back(data);
                        }
                        _ => continue,
                    },
                    Some(Err(_)) => state.end = End::Failed,
                    None => state.end = End::Finished,
                }
                state.wake.take()
            };
            if let Some(wake) = wake {
                wake();
            }
            if self.lock().end != End::Open {
                return;
            }
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
            End::Failed => Take::Failed,
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
