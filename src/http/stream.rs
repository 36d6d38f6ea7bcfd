//! [`StreamSender`]: the sending half of a streamed response body, with
//! back-pressure counted in bytes.
//!
//! A count of frames would let tiny chunks (a streamed generator's lines)
//! wait on the client after a few hundred bytes, and let big chunks buffer
//! megabytes. Instead up to [`BUDGET`] bytes may wait between the app and
//! the socket; a sender that would exceed it waits (asynchronously, or
//! blocking a pool thread with the GIL released) until hyper took enough.
//! One chunk larger than the budget still passes when nothing else waits.
//!
//! A tokio task woken from outside its runtime costs a system call. The
//! event loop answering websocket messages on many connections in one
//! batch would make one per message, so it may queue with
//! [`StreamSender::try_send_later`]: its items are queued out of the
//! reader's sight, and one [`Wake`] for the batch, run on the I/O thread
//! (see `bridge::Outbox`), shows them and wakes it with a local queue push.

use crate::sync::{Condvar, Mutex};
use std::sync::Arc;

use tokio::sync::Notify;
use tokio::sync::mpsc::error::{SendError, TrySendError};

use super::StreamItem;
use super::channel::{self, Receiver, Sender};

/// Bytes buffered per streamed response before senders wait.
pub(crate) const BUDGET: usize = 512 * 1024;

#[derive(Default)]
pub(crate) struct Budget {
    used: Mutex<Used>,
    freed: Notify,
    freed_blocking: Condvar,
}

#[derive(Default)]
struct Used {
    bytes: usize,
    /// Tasks waiting in `take` and threads waiting in `take_blocking`.
    /// Frames are freed far more often than anyone waits, and waking (a
    /// lock in `Notify`, a system call for the condition variable) is
    /// skipped when nobody does.
    waiting: usize,
    blocked: usize,
}

impl Used {
    fn has_room(&self, n: usize) -> bool {
        self.bytes == 0 || self.bytes + n <= BUDGET
    }
}

impl Budget {
    fn try_take(self: &Arc<Self>, n: usize) -> Option<Charge> {
        let mut used = self.used.lock();
        self.charge(&mut used, n)
    }

    /// Counts `n` bytes when they fit, with the lock held.
    fn charge(self: &Arc<Self>, used: &mut Used, n: usize) -> Option<Charge> {
        used.has_room(n).then(|| {
            used.bytes += n;
            Charge {
                budget: Arc::clone(self),
                n,
            }
        })
    }

    async fn take(self: &Arc<Self>, n: usize) -> Charge {
        /// Counts this task as waiting while it does (also if the wait is
        /// cancelled).
        struct Waiting<'a>(&'a Budget);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.used.lock().waiting -= 1;
            }
        }
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            // Registered before the check, so a frame freed after it
            // cannot be missed.
            freed.as_mut().enable();
            let waiting = {
                let mut used = self.used.lock();
                if let Some(charge) = self.charge(&mut used, n) {
                    return charge;
                }
                used.waiting += 1;
                Waiting(self)
            };
            freed.await;
            drop(waiting);
        }
    }

    fn take_blocking(self: &Arc<Self>, n: usize) -> Charge {
        let mut used = self.used.lock();
        loop {
            if let Some(charge) = self.charge(&mut used, n) {
                return charge;
            }
            used.blocked += 1;
            used = self.freed_blocking.wait(used);
            used.blocked -= 1;
        }
    }
}

/// Bytes counted against the budget until the frame reaches hyper.
pub(crate) struct Charge {
    budget: Arc<Budget>,
    n: usize,
}

impl Drop for Charge {
    fn drop(&mut self) {
        let mut used = self.budget.used.lock();
        used.bytes -= self.n;
        let (waiting, blocked) = (used.waiting > 0, used.blocked > 0);
        drop(used);
        if waiting {
            self.budget.freed.notify_waiters();
        }
        if blocked {
            self.budget.freed_blocking.notify_all();
        }
    }
}

/// What an item costs against the budget: its payload bytes.
pub(crate) trait Weighed: Send + 'static {
    fn weight(&self) -> usize;
}

impl Weighed for StreamItem {
    fn weight(&self) -> usize {
        match self {
            StreamItem::Data(bytes) => bytes.len(),
            _ => 0,
        }
    }
}

pub(crate) type Queued<T = StreamItem> = (T, Option<Charge>);

/// The reading half: hyper's streamed body, or a websocket's frame task.
pub(crate) type StreamReceiver<T = StreamItem> = Receiver<Queued<T>>;

/// What the items queued by [`StreamSender::try_send_later`] are owed:
/// waking the reader. Run it once the batch is queued, typically on the
/// I/O thread ([`Wake::into_fn`]); dropped unrun, it runs where it is
/// dropped, so a forgotten one costs a system call, never a stalled item.
#[must_use]
pub(crate) struct Wake(Option<Box<dyn FnOnce() + Send>>);

impl Wake {
    /// Nothing owed (nothing queued, or the wake-up is someone else's).
    pub(crate) fn none() -> Self {
        Self(None)
    }

    /// The wake-up, to run on another thread; `None` when nothing is owed.
    pub(crate) fn into_fn(mut self) -> Option<Box<dyn FnOnce() + Send>> {
        self.0.take()
    }
}

impl Drop for Wake {
    fn drop(&mut self) {
        if let Some(wake) = self.0.take() {
            wake();
        }
    }
}

/// The sending half of a byte-budgeted channel: a streamed response body
/// (`StreamItem`) or a websocket's outgoing messages.
pub(crate) struct StreamSender<T = StreamItem> {
    tx: Sender<Queued<T>>,
    budget: Arc<Budget>,
}

impl<T> Clone for StreamSender<T> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
            budget: Arc::clone(&self.budget),
        }
    }
}

impl<T: Weighed> StreamSender<T> {
    pub(crate) fn new() -> (Self, StreamReceiver<T>) {
        let (tx, rx) = channel::channel();
        let sender = Self {
            tx,
            budget: Arc::new(Budget::default()),
        };
        (sender, rx)
    }

    /// [`StreamSender::try_send`] for the event-loop thread: the item waits
    /// out of the reader's sight, and the [`Wake`] returned for the first
    /// item of a batch shows them all to the reader and wakes it.
    pub(crate) fn try_send_later(&self, item: T) -> Result<Wake, TrySendError<T>> {
        let (item, charge) = self.try_charge(item)?;
        match self.tx.push_quietly((item, charge)) {
            Ok(false) => Ok(Wake::none()),
            Ok(true) => {
                let tx = self.tx.clone();
                Ok(Wake(Some(Box::new(move || tx.wake()))))
            }
            Err((item, _)) => Err(TrySendError::Closed(item)),
        }
    }

    /// Queues `item` if the budget allows; `Full` when the client is
    /// behind, `Closed` when it is gone.
    pub(crate) fn try_send(&self, item: T) -> Result<(), TrySendError<T>> {
        let (item, charge) = self.try_charge(item)?;
        self.queue(item, charge).map_err(TrySendError::Closed)
    }

    fn queue(&self, item: T, charge: Option<Charge>) -> Result<(), T> {
        self.tx.send((item, charge)).map_err(|(item, _)| item)
    }

    /// `item` with its charge against the budget, if it fits.
    fn try_charge(&self, item: T) -> Result<Queued<T>, TrySendError<T>> {
        if self.tx.is_closed() {
            return Err(TrySendError::Closed(item));
        }
        let n = item.weight();
        if n == 0 {
            return Ok((item, None));
        }
        match self.budget.try_take(n) {
            Some(charge) => Ok((item, Some(charge))),
            None => Err(TrySendError::Full(item)),
        }
    }

    /// Queues `item` once the budget allows. `Err` when the client is gone.
    pub(crate) async fn send(&self, item: T) -> Result<(), SendError<T>> {
        let n = item.weight();
        let charge = if n > 0 {
            tokio::select! {
                charge = self.budget.take(n) => Some(charge),
                () = self.tx.closed() => return Err(SendError(item)),
            }
        } else {
            None
        };
        self.queue(item, charge).map_err(SendError)
    }

    /// Like [`StreamSender::send`], for threads outside tokio: blocks the
    /// calling thread (call it with the GIL released).
    pub(crate) fn blocking_send(&self, item: T) -> Result<(), SendError<T>> {
        let n = item.weight();
        let charge = (n > 0).then(|| self.budget.take_blocking(n));
        self.queue(item, charge).map_err(SendError)
    }

    #[cfg(test)]
    pub(crate) fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    #[cfg(test)]
    pub(crate) fn queued_bytes(&self) -> usize {
        self.budget.used.lock().bytes
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    #[test]
    fn small_chunks_fill_the_budget_before_waiting() {
        let (tx, mut rx) = StreamSender::<StreamItem>::new();
        let chunk = Bytes::from(vec![0u8; 1024]);
        for _ in 0..BUDGET / 1024 {
            assert!(tx.try_send(StreamItem::Data(chunk.clone())).is_ok());
        }
        assert!(matches!(
            tx.try_send(StreamItem::Data(chunk.clone())),
            Err(TrySendError::Full(_))
        ));
        // hyper takes one frame: its bytes are free again.
        drop(rx.try_recv().unwrap());
        assert!(tx.try_send(StreamItem::Data(chunk)).is_ok());
    }

    #[test]
    fn one_big_chunk_passes_when_nothing_waits() {
        let (tx, mut rx) = StreamSender::<StreamItem>::new();
        assert!(
            tx.try_send(StreamItem::Data(Bytes::from(vec![0u8; 4 * BUDGET])))
                .is_ok()
        );
        assert!(
            tx.try_send(StreamItem::Data(Bytes::from_static(b"x")))
                .is_err()
        );
        drop(rx.try_recv().unwrap());
        assert!(
            tx.try_send(StreamItem::Data(Bytes::from_static(b"x")))
                .is_ok()
        );
    }

    #[test]
    fn a_waiting_sender_wakes_when_a_frame_is_taken() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let (tx, mut rx) = StreamSender::<StreamItem>::new();
            tx.try_send(StreamItem::Data(Bytes::from(vec![0u8; BUDGET])))
                .unwrap();
            let waiter = tx.clone();
            let sender = tokio::spawn(async move {
                waiter
                    .send(StreamItem::Data(Bytes::from_static(b"x")))
                    .await
                    .is_ok()
            });
            tokio::task::yield_now().await;
            assert!(!sender.is_finished());
            assert_eq!(tx.budget.used.lock().waiting, 1);
            // hyper takes the frame: the sender goes on.
            drop(rx.recv().await.unwrap());
            let sent = tokio::time::timeout(std::time::Duration::from_secs(5), sender);
            assert!(sent.await.unwrap().unwrap());
            assert_eq!(tx.budget.used.lock().waiting, 0);

            // A wait that is given up leaves no count behind.
            let waiter = tx.clone();
            let sender = tokio::spawn(async move {
                waiter
                    .send(StreamItem::Data(Bytes::from(vec![0u8; BUDGET])))
                    .await
                    .is_ok()
            });
            tokio::task::yield_now().await;
            assert_eq!(tx.budget.used.lock().waiting, 1);
            sender.abort();
            let _ = sender.await;
            assert_eq!(tx.budget.used.lock().waiting, 0);
        });
    }

    fn data(bytes: &'static [u8]) -> StreamItem {
        StreamItem::Data(Bytes::from_static(bytes))
    }

    fn bytes_of(queued: Queued) -> Bytes {
        match queued.0 {
            StreamItem::Data(bytes) => bytes,
            _ => panic!("not data"),
        }
    }

    #[test]
    fn items_sent_later_keep_their_order_and_one_wake_is_owed_per_batch() {
        let (tx, mut rx) = StreamSender::<StreamItem>::new();
        let wake = tx.try_send_later(data(b"1")).ok().unwrap();
        // The rest of the batch owes nothing more.
        let more = tx.try_send_later(data(b"2")).ok().unwrap();
        assert!(more.into_fn().is_none());
        // Another thread's send goes behind them, not ahead.
        assert!(tx.try_send(data(b"3")).is_ok());
        assert!(rx.try_recv().is_none());
        (wake.into_fn().unwrap())();
        let got: Vec<Bytes> = (0..3).map(|_| bytes_of(rx.try_recv().unwrap())).collect();
        assert_eq!(got, [&b"1"[..], b"2", b"3"]);
        // Nothing held now: a plain send goes straight in, and the next
        // later one owes a wake again.
        assert!(tx.try_send(data(b"4")).is_ok());
        assert_eq!(bytes_of(rx.try_recv().unwrap()), &b"4"[..]);
        let again = tx.try_send_later(data(b"5")).ok().unwrap();
        assert!(again.into_fn().is_some());
    }

    #[test]
    fn a_wake_dropped_unrun_wakes_at_once_and_keeps_the_stream_open_till_then() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let (tx, mut rx) = StreamSender::<StreamItem>::new();
        let wake = tx.try_send_later(data(b"x")).ok().unwrap();
        drop(tx);
        // The wake holds a sender: the stream is not over, and the item
        // waits for it.
        assert!(!rx.is_finished());
        assert!(rx.try_recv().is_none());
        drop(wake);
        assert!(rx.is_finished());
        runtime.block_on(async {
            assert_eq!(bytes_of(rx.recv().await.unwrap()), &b"x"[..]);
            assert!(rx.recv().await.is_none());
        });
    }

    #[test]
    fn closed_when_the_body_is_gone() {
        let (tx, rx) = StreamSender::<StreamItem>::new();
        drop(rx);
        assert!(matches!(
            tx.try_send(StreamItem::Abort),
            Err(TrySendError::Closed(_))
        ));
        assert!(tx.blocking_send(data(b"x")).is_err());
    }
}
