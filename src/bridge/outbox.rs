//! [`Outbox`]: what the event-loop thread hands back to tokio, delivered
//! with one wake-up per batch.
//!
//! A tokio task woken from a thread outside its runtime costs a system call
//! (the runtime's event fd), and on a busy machine the woken I/O thread
//! then takes the CPU from the loop thread after every single response.
//! Responses finished on the loop thread are therefore queued here, and
//! the loop delivers them together once it has run the batch of callbacks
//! they came from: one wake-up, after which the sends happen on the I/O
//! thread itself, where waking a task is only a queue push.
//!
//! The loop thread queues with [`Outbox::deliver`], which holds what it
//! gets until the loop's batch is done. WSGI pool threads use
//! [`Outbox::post`]: only the delivery that finds the outbox empty wakes
//! the I/O thread, and those posted before the I/O thread got to them
//! share the wake-up. Other threads (an app answering from a thread of its
//! own) deliver at once.

use crate::sync::{Mutex, MutexGuard};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::thread::ThreadId;

use pyo3::prelude::*;
use tokio::runtime::Handle;
use tokio::sync::Notify;

use super::PyObj;
use crate::log::{self, Logger};

/// Something to run on the I/O thread, such as sending a response.
pub(crate) type Delivery = Box<dyn FnOnce() + Send>;

pub(crate) struct Outbox {
    queued: Mutex<Vec<Delivery>>,
    /// A flush is queued on the loop (only the loop thread touches it).
    flush_scheduled: AtomicBool,
    ready: Notify,
    event_loop: OnceLock<EventLoop>,
}

struct EventLoop {
    thread: ThreadId,
    /// `loop.call_soon`.
    call_soon: PyObj,
    /// A [`Flush`] for this outbox.
    flush: PyObj,
}

impl Outbox {
    /// An outbox whose deliveries run on `runtime`.
    pub(crate) fn new(runtime: &Handle) -> Arc<Self> {
        let outbox = Arc::new(Self {
            queued: Mutex::new(Vec::with_capacity(64)),
            flush_scheduled: AtomicBool::new(false),
            ready: Notify::new(),
            event_loop: OnceLock::new(),
        });
        // The courier owns a reference until the runtime shuts down.
        let courier = Arc::clone(&outbox);
        runtime.spawn(async move {
            let outbox = courier;
            loop {
                outbox.ready.notified().await;
                let batch = std::mem::take(&mut *outbox.lock());
                for delivery in batch {
                    delivery();
                }
            }
        });
        outbox
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Delivery>> {
        self.queued.lock()
    }

    /// Called once, on the loop thread, before any request is served:
    /// from then on deliveries made on this thread are batched.
    pub(crate) fn attach(self: &Arc<Self>, event_loop: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = event_loop.py();
        let flush = Py::new(
            py,
            Flush {
                outbox: Arc::downgrade(self),
            },
        )?;
        let _ = self.event_loop.set(EventLoop {
            thread: std::thread::current().id(),
            call_soon: PyObj::from_bound(event_loop.getattr("call_soon")?),
            flush: PyObj::new(flush.into_any()),
        });
        Ok(())
    }

    /// Runs `delivery` on the I/O thread: batched when called on the loop
    /// thread, at once otherwise.
    pub(crate) fn deliver(&self, py: Python<'_>, delivery: Delivery) {
        let Some(event_loop) = self
            .event_loop
            .get()
            .filter(|l| l.thread == std::thread::current().id())
        else {
            delivery();
            return;
        };
        self.lock().push(delivery);
        if !self.flush_scheduled.swap(true, Ordering::Relaxed) {
            // The flush runs after the callbacks already queued, which
            // include the tasks that produce the rest of this batch.
            if let Err(err) = event_loop
                .call_soon
                .bind(py)
                .call1((event_loop.flush.bind(py),))
            {
                // Nothing else will run on this loop: deliver now.
                log::error(py, Logger::Server, "could not schedule a flush", Some(err));
                self.flush();
            }
        }
    }

    /// Any thread: runs `delivery` on the I/O thread. Deliveries posted
    /// while earlier ones still wait for the I/O thread share their
    /// wake-up.
    pub(crate) fn post(&self, delivery: Delivery) {
        let first = {
            let mut queued = self.lock();
            queued.push(delivery);
            queued.len() == 1
        };
        if first {
            self.ready.notify_one();
        }
    }

    /// Loop thread: work that delivers is about to run, and will be
    /// followed by a [`Outbox::flush`]; no flush needs to be queued.
    pub(crate) fn hold(&self) {
        self.flush_scheduled.store(true, Ordering::Relaxed);
    }

    /// Loop thread: wakes the I/O thread for what is queued.
    pub(crate) fn flush(&self) {
        self.flush_scheduled.store(false, Ordering::Relaxed);
        if !self.lock().is_empty() {
            self.ready.notify_one();
        }
    }
}

/// The callable the loop runs to flush an [`Outbox`]. It holds the outbox
/// weakly: the outbox holds it.
#[pyclass(frozen, module = "diorite._diorite")]
pub(crate) struct Flush {
    outbox: Weak<Outbox>,
}

#[pymethods]
impl Flush {
    fn __call__(&self) {
        if let Some(outbox) = self.outbox.upgrade() {
            outbox.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;

    type Ran = mpsc::Receiver<std::thread::ThreadId>;

    /// An outbox on a runtime driven by a thread of its own, as the
    /// worker's I/O runtime is, and a channel its deliveries report to.
    fn outbox_on_io_thread() -> (
        tokio::runtime::Runtime,
        Arc<Outbox>,
        mpsc::Sender<std::thread::ThreadId>,
        Ran,
    ) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .unwrap();
        let outbox = Outbox::new(runtime.handle());
        let (sent, received) = mpsc::channel();
        (runtime, outbox, sent, received)
    }

    /// `n` deliveries ran, none of them on this thread.
    fn expect_on_io_thread(received: &Ran, n: usize) {
        for _ in 0..n {
            let ran_on = received.recv_timeout(Duration::from_secs(5)).unwrap();
            assert_ne!(ran_on, std::thread::current().id());
        }
    }

    /// Attaches `outbox` to an event loop reduced to what the outbox uses:
    /// its `call_soon` records the callbacks (in `queued`) instead of
    /// running them.
    fn attach_recording_loop<'py>(py: Python<'py>, outbox: &Arc<Outbox>) -> Bound<'py, PyAny> {
        let event_loop = py
            .eval(
                c"type('Loop', (), {'queued': [], 'call_soon': lambda self, cb: self.queued.append(cb)})()",
                None,
                None,
            )
            .unwrap();
        outbox.attach(&event_loop).unwrap();
        event_loop
    }

    fn delivery(sent: &mpsc::Sender<std::thread::ThreadId>) -> Delivery {
        let sent = sent.clone();
        Box::new(move || sent.send(std::thread::current().id()).unwrap())
    }

    #[test]
    fn posts_from_any_thread_run_on_the_io_thread() {
        let (_runtime, outbox, sent, received) = outbox_on_io_thread();
        for _ in 0..3 {
            outbox.post(delivery(&sent));
        }
        expect_on_io_thread(&received, 3);
    }

    #[test]
    fn an_unattached_thread_delivers_at_once() {
        Python::initialize();
        let (_runtime, outbox, sent, received) = outbox_on_io_thread();
        Python::attach(|py| outbox.deliver(py, delivery(&sent)));
        let ran_on = received.try_recv().unwrap();
        assert_eq!(ran_on, std::thread::current().id());
    }

    #[test]
    fn the_loop_thread_batches_until_its_flush_runs() {
        Python::initialize();
        let (_runtime, outbox, sent, received) = outbox_on_io_thread();
        Python::attach(|py| {
            let event_loop = attach_recording_loop(py, &outbox);
            for _ in 0..3 {
                outbox.deliver(py, delivery(&sent));
            }
            // Held: one flush queued for the whole batch, nothing sent yet.
            let queued = event_loop.getattr("queued").unwrap();
            assert_eq!(queued.len().unwrap(), 1);
            assert!(received.recv_timeout(Duration::from_millis(100)).is_err());
            // The loop runs the flush after the batch: all three go out,
            // on the I/O thread.
            queued.get_item(0).unwrap().call0().unwrap();
        });
        expect_on_io_thread(&received, 3);
    }

    #[test]
    fn a_held_outbox_schedules_no_flush_of_its_own() {
        Python::initialize();
        let (_runtime, outbox, sent, received) = outbox_on_io_thread();
        Python::attach(|py| {
            let event_loop = attach_recording_loop(py, &outbox);
            // What `Bridge::run_jobs` does around a batch of jobs.
            outbox.hold();
            outbox.deliver(py, delivery(&sent));
            outbox.deliver(py, delivery(&sent));
            assert_eq!(event_loop.getattr("queued").unwrap().len().unwrap(), 0);
            outbox.flush();
        });
        expect_on_io_thread(&received, 2);
    }
}
