//! [`Bridge`]: the one road from tokio threads to the event-loop thread.
//!
//! Tokio tasks push [`Job`]s; the first push after the loop last ran them
//! writes one byte to a socket pair that the loop watches with
//! `add_reader`. However many requests arrive before the loop wakes, they
//! cost one wake-up: the loop runs them all in one [`Bridge::run_jobs`].

use crate::sync::Mutex;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use pyo3::prelude::*;
use tokio::runtime::Handle;

use super::outbox::{Delivery, Outbox};
use super::pyobj::release_deferred;
use crate::memory;

/// Work for the event-loop thread. It runs attached to the interpreter and
/// must handle its own errors (there is nobody to return them to).
pub(crate) type Job = Box<dyn FnOnce(Python<'_>) + Send>;

#[derive(Clone)]
pub(crate) struct Bridge {
    shared: Arc<Shared>,
    runtime: Handle,
}

struct Shared {
    jobs: Mutex<Vec<Job>>,
    wake_pending: AtomicBool,
    closed: AtomicBool,
    wake_tx: UnixStream,
    wake_rx: UnixStream,
    outbox: Arc<Outbox>,
}

impl Bridge {
    /// A bridge between `runtime` and the event loop that will watch
    /// [`Bridge::fileno`].
    pub(crate) fn new(runtime: Handle) -> std::io::Result<Self> {
        let (wake_tx, wake_rx) = UnixStream::pair()?;
        wake_tx.set_nonblocking(true)?;
        wake_rx.set_nonblocking(true)?;
        Ok(Self {
            shared: Arc::new(Shared {
                jobs: Mutex::new(Vec::with_capacity(64)),
                wake_pending: AtomicBool::new(false),
                closed: AtomicBool::new(false),
                wake_tx,
                wake_rx,
                outbox: Outbox::new(&runtime),
            }),
            runtime,
        })
    }

    /// The file descriptor the event loop should watch for readability.
    pub(crate) fn fileno(&self) -> i32 {
        self.shared.wake_rx.as_raw_fd()
    }

    /// Queues `job` for the event-loop thread. Returns false once the
    /// bridge is closed; the job is then dropped, which is safe because
    /// jobs hold Python objects only through `PyObj`.
    pub(crate) fn submit(&self, job: Job) -> bool {
        if self.shared.closed.load(Ordering::Acquire) {
            return false;
        }
        self.shared.jobs.lock().push(job);
        if !self.shared.wake_pending.swap(true, Ordering::AcqRel) {
            // A full socket buffer means a wake-up is already waiting.
            let _ = (&self.shared.wake_tx).write(&[1]);
        }
        true
    }

    /// Where responses made on this bridge's threads are batched.
    pub(crate) fn outbox(&self) -> Arc<Outbox> {
        Arc::clone(&self.shared.outbox)
    }

    /// Called on the event-loop thread before serving: from then on,
    /// [`Bridge::deliver`] batches what that thread hands back.
    pub(crate) fn attach_loop(&self, event_loop: &Bound<'_, PyAny>) -> PyResult<()> {
        self.shared.outbox.attach(event_loop)
    }

    /// Runs `delivery` (typically sending a finished response) on the
    /// tokio side, batched per loop iteration; see [`Outbox`].
    pub(crate) fn deliver(&self, py: Python<'_>, delivery: Delivery) {
        self.shared.outbox.deliver(py, delivery);
    }

    /// Runs every queued job. Called by the event loop when the wake-up
    /// socket is readable, and once more at shutdown.
    pub(crate) fn run_jobs(&self, py: Python<'_>) {
        let mut sink = [0u8; 256];
        loop {
            match (&self.shared.wake_rx).read(&mut sink) {
                Ok(n) if n == sink.len() => continue,
                Ok(_) => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        // Cleared before taking the jobs: a push that lands after the take
        // sees `false` and writes a new wake-up byte.
        self.shared.wake_pending.store(false, Ordering::Release);
        // One batch per call: jobs pushed meanwhile have written a new
        // wake-up byte, so the loop gets to run its other callbacks first.
        let jobs = std::mem::take(&mut *self.shared.jobs.lock());
        // What the jobs deliver goes out in one go at the end (also if a
        // job panics).
        struct FlushAtEnd<'a>(&'a Outbox);
        impl Drop for FlushAtEnd<'_> {
            fn drop(&mut self) {
                self.0.flush();
            }
        }
        self.shared.outbox.hold();
        let flush = FlushAtEnd(&self.shared.outbox);
        for job in jobs {
            job(py);
        }
        drop(flush);
        release_deferred(py);
    }

    /// Runs `future` on the tokio side (used by loop-thread code that must
    /// wait for I/O, such as a `send` into a full stream).
    pub(crate) fn spawn<F>(&self, future: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.runtime.spawn(future);
    }

    /// Has the event loop release the references dropped on other threads
    /// that wait for it, and its thread's allocator look at what was freed.
    /// Without this they wait for the loop's next job: a server left idle
    /// after a spike of connections, or after a large response (whose
    /// `bytes` hyper dropped on its I/O thread), would hold them until its
    /// next request. False once the bridge is closed.
    ///
    /// The allocator looks even when no reference waits: what Rust code
    /// on the loop thread allocated (each websocket's app-side state, say)
    /// and other threads freed goes back to the loop thread's heap, and
    /// mimalloc frees those pages only when that thread allocates or
    /// collects. Looking only after a release left 10 MiB of them after
    /// 10,000 websockets closed.
    pub(crate) fn sweep(&self) -> bool {
        // A loop already woken releases them at the end of its jobs; one
        // that is stalled gets one sweep, not one per second.
        if self.shared.wake_pending.load(Ordering::Acquire) {
            return !self.shared.closed.load(Ordering::Acquire);
        }
        self.submit(Box::new(|py| {
            release_deferred(py);
            // Rust's allocator only: Python's larger objects went to glibc,
            // which the accept loop's heartbeat trims.
            memory::collect_this_thread();
        }))
    }

    /// Refuses further jobs; queued ones still run on the next `run_jobs`.
    pub(crate) fn close(&self) {
        self.shared.closed.store(true, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending_wake_bytes(bridge: &Bridge) -> usize {
        let mut buf = [0u8; 64];
        (&bridge.shared.wake_rx).read(&mut buf).unwrap_or(0)
    }

    #[test]
    fn many_jobs_cost_one_wake_up() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let bridge = Bridge::new(runtime.handle().clone()).unwrap();
        for _ in 0..100 {
            assert!(bridge.submit(Box::new(|_| ())));
        }
        assert_eq!(pending_wake_bytes(&bridge), 1);
        assert_eq!(bridge.shared.jobs.lock().len(), 100);
    }

    #[test]
    fn closed_bridge_refuses_jobs() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let bridge = Bridge::new(runtime.handle().clone()).unwrap();
        bridge.close();
        assert!(!bridge.submit(Box::new(|_| ())));
        assert_eq!(pending_wake_bytes(&bridge), 0);
    }
}
