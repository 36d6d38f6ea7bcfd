//! [`channel`]: the queue between a stream's senders and its one reader
//! (hyper writing a streamed body, or a websocket's frame task).
//!
//! tokio's unbounded channel allocates its first block of 32 slots, and
//! its cache-padded state, when it is made: about 2.8 KiB for a websocket's
//! messages, which every open websocket kept for its whole life, idle or
//! not. This queue starts empty and grows with what waits in it.
//!
//! A sender may also queue without waking the reader
//! ([`Sender::push_quietly`]) and wake it once for a batch later, from a
//! thread where waking a tokio task costs no system call. Until then the
//! reader does not see those items, nor anything queued behind them: a
//! reader polled meanwhile for another reason (its socket) would send them
//! one by one, and the websocket echo benchmark lost a third of its round
//! trips when it did.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use futures_util::task::AtomicWaker;
use tokio::sync::Notify;

use crate::sync::Mutex;

/// Slots an empty queue may keep. A burst (many small messages to a slow
/// client: the byte budget lets thousands wait) grows the queue; once it
/// has drained, that room is given back instead of kept for the life of a
/// websocket.
const KEEP_WHEN_EMPTY: usize = 64;

struct Shared<T> {
    state: Mutex<State<T>>,
    reader: AtomicWaker,
    /// Set once, under the lock, when the reader is dropped; also read
    /// without it, by senders deciding whether to bother.
    reader_gone: AtomicBool,
    gone: Notify,
}

struct State<T> {
    items: VecDeque<T>,
    /// How many of `items`, from the front, the reader may take; the rest
    /// wait for the wake-up owed for quietly queued items.
    visible: usize,
    senders: usize,
}

pub(crate) struct Sender<T>(Arc<Shared<T>>);

pub(crate) struct Receiver<T>(Arc<Shared<T>>);

pub(crate) fn channel<T>() -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            items: VecDeque::new(),
            visible: 0,
            senders: 1,
        }),
        reader: AtomicWaker::new(),
        reader_gone: AtomicBool::new(false),
        gone: Notify::new(),
    });
    (Sender(Arc::clone(&shared)), Receiver(shared))
}

impl<T> Sender<T> {
    /// Queues `item` and wakes the reader; gives `item` back if the
    /// reader is gone.
    pub(crate) fn send(&self, item: T) -> Result<(), T> {
        let mut state = self.0.state.lock();
        let none_held = state.visible == state.items.len();
        state.push(item, &self.0.reader_gone)?;
        if none_held {
            state.visible += 1;
            drop(state);
            self.0.reader.wake();
        }
        // Else it goes behind the held items, with them.
        Ok(())
    }

    /// Queues `item` out of the reader's sight until [`Sender::wake`].
    /// `Ok(true)` when the caller owes that wake-up; `Ok(false)` when an
    /// earlier item's caller does.
    pub(crate) fn push_quietly(&self, item: T) -> Result<bool, T> {
        let mut state = self.0.state.lock();
        let none_held = state.visible == state.items.len();
        state.push(item, &self.0.reader_gone)?;
        Ok(none_held)
    }

    /// Shows the reader everything queued, and wakes it.
    pub(crate) fn wake(&self) {
        {
            let mut state = self.0.state.lock();
            state.visible = state.items.len();
        }
        self.0.reader.wake();
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.0.reader_gone.load(Ordering::Acquire)
    }

    /// Returns once the reader is gone.
    pub(crate) async fn closed(&self) {
        loop {
            let gone = self.0.gone.notified();
            tokio::pin!(gone);
            // Registered before the check, so a drop after it is not missed.
            gone.as_mut().enable();
            if self.is_closed() {
                return;
            }
            gone.await;
        }
    }
}

impl<T> State<T> {
    fn take(&mut self) -> Option<T> {
        if self.visible == 0 {
            return None;
        }
        self.visible -= 1;
        let item = self.items.pop_front();
        if self.items.is_empty() && self.items.capacity() > KEEP_WHEN_EMPTY {
            self.items = VecDeque::new();
        }
        item
    }

    fn push(&mut self, item: T, reader_gone: &AtomicBool) -> Result<(), T> {
        // Read under the lock the reader sets it under: an item queued
        // here is either seen by the reader or dropped with the queue.
        if reader_gone.load(Ordering::Relaxed) {
            return Err(item);
        }
        self.items.push_back(item);
        Ok(())
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.0.state.lock().senders += 1;
        Self(Arc::clone(&self.0))
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let last = {
            let mut state = self.0.state.lock();
            state.senders -= 1;
            if state.senders == 0 {
                // Held items whose wake-up was lost unrun still go out.
                state.visible = state.items.len();
            }
            state.senders == 0
        };
        if last {
            // The reader learns that nothing more is coming.
            self.0.reader.wake();
        }
    }
}

impl<T> Receiver<T> {
    /// The next item; `None` once it is taken and every sender is gone.
    pub(crate) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        if let Some(item) = self.try_recv() {
            return Poll::Ready(Some(item));
        }
        self.0.reader.register(cx.waker());
        // Looked at again once registered: a sender that queued in between
        // woke nobody.
        let mut state = self.0.state.lock();
        match state.take() {
            Some(item) => Poll::Ready(Some(item)),
            // With no sender left, nothing is held (see `Sender::drop`).
            None if state.senders == 0 => Poll::Ready(None),
            None => Poll::Pending,
        }
    }

    pub(crate) async fn recv(&mut self) -> Option<T> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// The next item if one waits.
    pub(crate) fn try_recv(&mut self) -> Option<T> {
        self.0.state.lock().take()
    }

    /// Every sender is gone (items may still wait).
    #[cfg(test)]
    pub(crate) fn is_finished(&self) -> bool {
        self.0.state.lock().senders == 0
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let items = {
            let mut state = self.0.state.lock();
            self.0.reader_gone.store(true, Ordering::Release);
            std::mem::take(&mut state.items)
        };
        // Dropped outside the lock: an item's drop may wake its senders.
        drop(items);
        self.0.gone.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_come_out_in_order_and_the_end_after_them() {
        let (tx, mut rx) = channel();
        let other = tx.clone();
        tx.send(1).unwrap();
        other.send(2).unwrap();
        drop(tx);
        drop(other);
        assert!(rx.is_finished());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            assert_eq!(rx.recv().await, Some(1));
            assert_eq!(rx.recv().await, Some(2));
            assert_eq!(rx.recv().await, None);
        });
    }

    #[test]
    fn a_waiting_reader_is_woken_by_a_send_from_another_thread() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let (tx, mut rx) = channel();
        let thread = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(50));
            tx.send("x").unwrap();
            // Dropping the last sender ends the stream after the item.
        });
        runtime.block_on(async {
            assert_eq!(rx.recv().await, Some("x"));
            assert_eq!(rx.recv().await, None);
        });
        thread.join().unwrap();
    }

    #[test]
    fn quiet_pushes_wait_for_their_one_wake_and_what_follows_them_too() {
        let (tx, mut rx) = channel();
        tx.send(0).unwrap();
        assert_eq!(tx.push_quietly(1), Ok(true));
        assert_eq!(tx.push_quietly(2), Ok(false));
        tx.send(3).unwrap();
        assert_eq!(rx.try_recv(), Some(0));
        assert_eq!(rx.try_recv(), None);
        tx.wake();
        assert_eq!(tx.push_quietly(4), Ok(true));
        let got: Vec<_> = std::iter::from_fn(|| rx.try_recv()).collect();
        assert_eq!(got, [1, 2, 3]);
        tx.wake();
        assert_eq!(rx.try_recv(), Some(4));
    }

    #[test]
    fn a_drained_queue_gives_back_the_room_a_burst_took() {
        let (tx, mut rx) = channel();
        for i in 0..1000 {
            tx.send(i).unwrap();
        }
        let capacity = || rx.0.state.lock().items.capacity();
        assert!(capacity() >= 1000);
        let got: Vec<_> = std::iter::from_fn(|| rx.try_recv()).collect();
        assert_eq!(got, (0..1000).collect::<Vec<_>>());
        assert_eq!(rx.0.state.lock().items.capacity(), 0);
        // A queue that stays small keeps its room.
        tx.send(1).unwrap();
        assert_eq!(rx.try_recv(), Some(1));
        assert!(rx.0.state.lock().items.capacity() > 0);
    }

    #[test]
    fn held_items_whose_wake_was_lost_go_out_when_the_last_sender_goes() {
        let (tx, mut rx) = channel();
        assert_eq!(tx.push_quietly(1), Ok(true));
        assert_eq!(rx.try_recv(), None);
        drop(tx);
        assert_eq!(rx.try_recv(), Some(1));
    }

    #[test]
    fn the_reader_gone_refuses_items_and_wakes_who_waits_for_it() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let (tx, rx) = channel();
        tx.send(Arc::new(())).unwrap();
        let queued = {
            let probe = Arc::new(());
            tx.send(Arc::clone(&probe)).unwrap();
            probe
        };
        runtime.block_on(async {
            let waiter = tx.clone();
            let closed = tokio::spawn(async move { waiter.closed().await });
            tokio::task::yield_now().await;
            assert!(!closed.is_finished());
            drop(rx);
            closed.await.unwrap();
        });
        assert!(tx.is_closed());
        // What waited in the queue was dropped with the reader.
        assert_eq!(Arc::strong_count(&queued), 1);
        assert!(tx.send(Arc::new(())).is_err());
        assert!(tx.push_quietly(Arc::new(())).is_err());
    }
}
