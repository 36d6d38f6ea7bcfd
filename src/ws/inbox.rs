//! [`Inbox`]: messages read from a websocket, waiting for the app.
//!
//! The reading task stops reading once [`ROOM`] bytes wait here, so a
//! client that sends faster than the app receives is slowed down by TCP
//! instead of growing the server's memory.

use crate::sync::{Mutex, MutexGuard};
use std::collections::VecDeque;

use bytes::Bytes;
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Utf8Bytes;

/// Bytes of received messages that may wait for the app before the
/// server stops reading the socket. One message larger than this still
/// passes when nothing else waits.
pub(crate) const ROOM: usize = 1024 * 1024;

/// What the app gets from `receive()`.
#[derive(Debug, Clone)]
pub(crate) enum Received {
    Text(Utf8Bytes),
    Binary(Bytes),
    /// The connection is over: the close code the peer sent (1005 when it
    /// sent none, 1006 when it vanished without a close frame) and reason.
    Closed {
        code: u16,
        reason: String,
    },
}

impl Received {
    fn size(&self) -> usize {
        match self {
            Received::Text(text) => text.len(),
            Received::Binary(bytes) => bytes.len(),
            Received::Closed { .. } => 0,
        }
    }
}

type Waker = Box<dyn FnOnce() + Send>;

#[derive(Default)]
pub(crate) struct Inbox {
    state: Mutex<State>,
    /// Signalled when the app took a message (the reader may go on).
    room: Notify,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Received>,
    queued_bytes: usize,
    closed: Option<(u16, String)>,
    wakers: Vec<Waker>,
}

impl Inbox {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock()
    }

    /// The next message, or `None` after registering `wake` to run (on
    /// any thread) when one arrives. Once closed, every call returns the
    /// closing message.
    pub(crate) fn take(&self, wake: impl FnOnce() + Send + 'static) -> Option<Received> {
        let mut state = self.lock();
        if let Some(msg) = state.queue.pop_front() {
            state.queued_bytes -= msg.size();
            drop(state);
            self.room.notify_one();
            return Some(msg);
        }
        if let Some((code, reason)) = &state.closed {
            return Some(Received::Closed {
                code: *code,
                reason: reason.clone(),
            });
        }
        state.wakers.push(Box::new(wake));
        None
    }

    /// Reader side: queues a message and wakes whoever waits.
    pub(crate) fn push(&self, msg: Received) {
        let wakers = {
            let mut state = self.lock();
            if state.closed.is_some() {
                return;
            }
            match msg {
                Received::Closed { code, reason } => state.closed = Some((code, reason)),
                msg => {
                    state.queued_bytes += msg.size();
                    state.queue.push_back(msg);
                }
            }
            std::mem::take(&mut state.wakers)
        };
        for wake in wakers {
            wake();
        }
    }

    /// Ends the inbox (if it is not already ended) with `code`.
    pub(crate) fn close(&self, code: u16, reason: &str) {
        self.push(Received::Closed {
            code,
            reason: reason.to_owned(),
        });
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.lock().closed.is_some()
    }

    /// Whether the reader may read another message now.
    pub(crate) fn has_room(&self) -> bool {
        self.lock().queued_bytes < ROOM
    }

    /// Resolves when the app took a message (may fire spuriously).
    pub(crate) async fn room_freed(&self) {
        self.room.notified().await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[test]
    fn waiting_reader_is_woken_and_close_is_sticky() {
        let inbox = Inbox::default();
        let woken = Arc::new(AtomicUsize::new(0));
        let w = Arc::clone(&woken);
        assert!(
            inbox
                .take(move || {
                    w.fetch_add(1, Ordering::SeqCst);
                })
                .is_none()
        );
        inbox.push(Received::Binary(Bytes::from_static(b"hi")));
        assert_eq!(woken.load(Ordering::SeqCst), 1);
        assert!(matches!(inbox.take(|| ()), Some(Received::Binary(_))));
        inbox.close(1000, "bye");
        inbox.push(Received::Binary(Bytes::from_static(b"late")));
        for _ in 0..2 {
            assert!(matches!(
                inbox.take(|| ()),
                Some(Received::Closed { code: 1000, .. })
            ));
        }
    }

    #[test]
    fn room_is_counted_in_bytes() {
        let inbox = Inbox::default();
        inbox.push(Received::Binary(Bytes::from(vec![0u8; 4 * ROOM])));
        assert!(!inbox.has_room());
        inbox.take(|| ());
        assert!(inbox.has_room());
    }
}
