//! The access log: one record per request, taken on the I/O thread where
//! the response ends and handed to Python's `diorite.access` logger in
//! batches, so that no request waits for the interpreter.
//!
//! A request's [`Pending`] record rides with its response body; when the
//! body has been handed to the socket (or the client is gone) it is queued
//! in the [`AccessLog`]. The first record queued after the event loop last
//! drained the queue calls the wake-up the worker installed (one bridge
//! job); the job logs every record queued by then. The queue is bounded:
//! when the loop cannot keep up, records are dropped and counted, and the
//! first drop is reported once on the `diorite` logger.

use std::net::IpAddr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hyper::Request;
use hyper::header::{HeaderName, HeaderValue};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyString, PyTuple};

use super::line::Part;
use super::record::{Clock, Keys, Record, split};
use crate::sync::Mutex;

/// `logging.INFO`.
const INFO: i32 = 20;

/// Called when the queue stops being empty: the worker submits a job that
/// runs [`AccessLog::drain`] on the event-loop thread.
type Wake = Box<dyn Fn() + Send + Sync>;

pub(crate) struct AccessLog {
    /// The `%`-format the records are logged with (`--access-log-fmt`).
    format: String,
    /// Request headers the format names, lower case: only these are kept.
    headers: Vec<HeaderName>,
    /// The format split for rendering in Rust; `None`: not plain enough.
    parts: Option<Vec<Part>>,
    queue: Mutex<Vec<Record>>,
    /// The drained queue, emptied, kept for the next swap: the queue keeps
    /// its capacity instead of growing from nothing for every batch.
    spare: Mutex<Vec<Record>>,
    /// Kept between batches: the time text is made once per second.
    clock: Mutex<Clock>,
    capacity: usize,
    dropped: AtomicU64,
    warned: AtomicBool,
    wake: OnceLock<Wake>,
}

impl std::fmt::Debug for AccessLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessLog")
            .field("format", &self.format)
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl AccessLog {
    /// `headers` are the request header names `format` refers to; a name
    /// that is not a valid header name is an error. `parts` is the format
    /// split by `diorite.logs.access_parts`: (text before, key, conversion,
    /// precision or -1), the last with an empty key.
    pub(crate) fn new(
        format: String,
        headers: &[String],
        parts: Option<Vec<(String, String, String, i64)>>,
        capacity: usize,
    ) -> Result<Self, hyper::header::InvalidHeaderName> {
        let headers: Vec<HeaderName> = headers
            .iter()
            .map(|name| HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()))
            .collect::<Result<_, _>>()?;
        let names: Vec<&str> = headers.iter().map(HeaderName::as_str).collect();
        let parts = parts.and_then(|parts| split(parts, &names));
        Ok(Self {
            format,
            headers,
            parts,
            queue: Mutex::new(Vec::with_capacity(256)),
            spare: Mutex::new(Vec::with_capacity(256)),
            clock: Mutex::new(Clock::default()),
            capacity: capacity.max(1),
            dropped: AtomicU64::new(0),
            warned: AtomicBool::new(false),
            wake: OnceLock::new(),
        })
    }

    /// Installs the wake-up (once; later calls are ignored).
    pub(crate) fn set_wake(&self, wake: impl Fn() + Send + Sync + 'static) {
        let _ = self.wake.set(Box::new(wake));
    }

    /// Starts the record of `req`, which arrived on a connection from
    /// `client` speaking `scheme`.
    pub(crate) fn begin<B>(
        self: &std::sync::Arc<Self>,
        req: &Request<B>,
        client: Option<IpAddr>,
        scheme: &'static str,
    ) -> Pending {
        let headers = self
            .headers
            .iter()
            .map(|name| {
                let value = req.headers().get(name)?;
                HeaderValue::from_bytes(value.as_bytes()).ok()
            })
            .collect();
        let uri = req.uri();
        let path = uri.path();
        let target = match uri.query() {
            Some(query) => format!("{path}?{query}").into_boxed_str(),
            None => path.into(),
        };
        Pending {
            log: std::sync::Arc::clone(self),
            record: Some(Record {
                client,
                scheme,
                method: req.method().clone(),
                path_len: path.len(),
                target,
                version: req.version(),
                headers,
                started: Instant::now(),
                duration: Duration::ZERO,
                status: 0,
                size: 0,
                complete: false,
            }),
        }
    }

    fn push(&self, record: Record) {
        let mut queue = self.queue.lock();
        if queue.len() >= self.capacity {
            drop(queue);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let first = queue.is_empty();
        queue.push(record);
        drop(queue);
        if first && let Some(wake) = self.wake.get() {
            wake();
        }
    }

    /// Logs every queued record through `diorite.access`. Runs on the
    /// event-loop thread (or at shutdown, on the thread closing the worker).
    pub(crate) fn drain(&self, py: Python<'_>) {
        let mut batch = std::mem::take(&mut *self.spare.lock());
        std::mem::swap(&mut batch, &mut *self.queue.lock());
        let dropped = self.dropped.load(Ordering::Relaxed);
        if dropped > 0 && !self.warned.swap(true, Ordering::Relaxed) {
            super::warning(
                py,
                super::Logger::Server,
                &format!(
                    "access log: the event loop is not keeping up; records beyond {} waiting \
                     are dropped (counted, not reported again)",
                    self.capacity
                ),
            );
        }
        if !batch.is_empty()
            && let Err(err) = self.log_batch(py, &batch)
        {
            err.write_unraisable(py, None);
        }
        batch.clear();
        *self.spare.lock() = batch;
    }

    fn log_batch(&self, py: Python<'_>, batch: &[Record]) -> PyResult<()> {
        static LOGGER: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
        let logger = LOGGER
            .get_or_try_init(py, || {
                Ok::<_, PyErr>(
                    py.import("logging")?
                        .call_method1("getLogger", ("diorite.access",))?
                        .unbind(),
                )
            })?
            .bind(py);
        if !logger.call_method1("isEnabledFor", (INFO,))?.is_truthy()? {
            return Ok(());
        }
        if let Some(parts) = &self.parts {
            static PLAIN: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
            let plain = PLAIN.import(py, "diorite.logs", "plain_access_handler")?;
            let handler = plain.call0()?;
            if !handler.is_none() {
                // The line is the whole message: rendered here, written
                // with one call for the batch.
                let mut clock = self.clock.lock();
                clock.tick();
                let mut text = String::with_capacity(batch.len() * 100);
                for record in batch {
                    record.render(py, parts, &mut clock, &mut text)?;
                    text.push('\n');
                }
                handler.call_method1("write_lines", (text,))?;
                return Ok(());
            }
        }
        // `makeRecord` + `handle` is what `logger.info` does, without
        // walking the stack to find a caller that is not Python code.
        let make = logger.getattr("makeRecord")?;
        let handle = logger.getattr("handle")?;
        let name = PyString::new(py, "diorite.access");
        let format = PyString::new(py, &self.format);
        let keys = Keys::new(py, &self.headers);
        let mut clock = self.clock.lock();
        clock.tick();
        for record in batch {
            let atoms = record.atoms(py, &keys, &mut clock)?;
            let args = PyTuple::new(py, [atoms])?;
            let entry = make.call1((&name, INFO, "", 0, &format, args, py.None()))?;
            handle.call1((entry,))?;
        }
        // One flush per batch: the default handlers leave it to this.
        for handler in logger.getattr("handlers")?.try_iter()? {
            handler?.call_method0("flush")?;
        }
        Ok(())
    }
}

/// A request's record until its response is done: queued when dropped.
/// Dropped before [`Pending::respond`] or [`Pending::complete`] (the
/// client left first), it is logged as
/// [`CLIENT_GONE`](super::record::CLIENT_GONE).
#[derive(Debug)]
pub(crate) struct Pending {
    log: std::sync::Arc<AccessLog>,
    record: Option<Record>,
}

impl Pending {
    /// The response's status, once its head is known. A response that
    /// has no body to send (to a HEAD request, or a 1xx, 204 or 304) is
    /// complete as soon as it is handed over: hyper never polls its body.
    pub(crate) fn respond(&mut self, status: u16, to_head: bool) {
        if let Some(record) = &mut self.record {
            record.status = status;
            if to_head || status < 200 || status == 204 || status == 304 {
                record.complete = true;
            }
        }
    }

    /// `bytes` more of the body went to the connection.
    pub(crate) fn sent(&mut self, bytes: u64) {
        if let Some(record) = &mut self.record {
            record.size += bytes;
        }
    }

    /// The whole response went to the connection.
    pub(crate) fn complete(&mut self) {
        if let Some(record) = &mut self.record {
            record.complete = true;
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some(mut record) = self.record.take() {
            record.duration = record.started.elapsed();
            self.log.push(record);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;

    use super::*;

    fn request() -> Request<()> {
        Request::builder()
            .uri("/a?b=c")
            .header("user-agent", "test")
            .body(())
            .unwrap()
    }

    #[test]
    fn the_first_record_wakes_and_a_full_queue_drops() {
        let log =
            Arc::new(AccessLog::new("%(path)s".into(), &["User-Agent".into()], None, 2).unwrap());
        let wakes = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&wakes);
        log.set_wake(move || {
            counted.fetch_add(1, Ordering::Relaxed);
        });
        for _ in 0..3 {
            let mut pending = log.begin(&request(), None, "http");
            pending.respond(200, false);
            pending.complete();
        }
        assert_eq!(wakes.load(Ordering::Relaxed), 1);
        assert_eq!(log.queue.lock().len(), 2);
        assert_eq!(log.dropped.load(Ordering::Relaxed), 1);
        let queue = log.queue.lock();
        assert_eq!(queue[0].headers[0].as_ref().unwrap(), "test");
        assert!(queue[0].complete && queue[0].status == 200);
    }

    #[test]
    fn a_record_dropped_unanswered_is_incomplete() {
        let log = Arc::new(AccessLog::new(String::new(), &[], None, 8).unwrap());
        drop(log.begin(&request(), None, "http"));
        let queue = log.queue.lock();
        assert!(!queue[0].complete);
    }

    #[test]
    fn a_bad_header_name_is_refused() {
        assert!(AccessLog::new(String::new(), &["a b".into()], None, 8).is_err());
    }
}
