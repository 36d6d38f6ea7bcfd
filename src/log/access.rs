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
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hyper::header::{HeaderName, HeaderValue};
use hyper::{Method, Request, Uri, Version};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyString, PyTuple};

use super::line::{self, Atom, Conversion, Part, Value};
use crate::sync::Mutex;

/// The status logged for a request whose client left before its response
/// was complete (nginx's "client closed request").
pub(crate) const CLIENT_GONE: u16 = 499;

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

/// What one request leaves in the log.
#[derive(Debug)]
struct Record {
    client: Option<IpAddr>,
    scheme: &'static str,
    method: Method,
    uri: Uri,
    version: Version,
    headers: Vec<Option<HeaderValue>>,
    /// Wall-clock time the request arrived.
    arrived: SystemTime,
    started: Instant,
    duration: Duration,
    /// 0 until the response head is known.
    status: u16,
    /// Body bytes handed to the connection.
    size: u64,
    complete: bool,
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
            .map(|name| req.headers().get(name).cloned())
            .collect();
        Pending {
            log: std::sync::Arc::clone(self),
            record: Some(Record {
                client,
                scheme,
                method: req.method().clone(),
                uri: req.uri().clone(),
                version: req.version(),
                headers,
                arrived: SystemTime::now(),
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
        let batch = std::mem::take(&mut *self.queue.lock());
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
        if batch.is_empty() {
            return;
        }
        if let Err(err) = self.log_batch(py, batch) {
            err.write_unraisable(py, None);
        }
    }

    fn log_batch(&self, py: Python<'_>, batch: Vec<Record>) -> PyResult<()> {
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
                let mut clock = Clock::default();
                let mut text = String::with_capacity(batch.len() * 100);
                for record in &batch {
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
        let mut clock = Clock::default();
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

/// The format's pieces, or `None` when one of them is beyond [`line`].
fn split(given: Vec<(String, String, String, i64)>, headers: &[&str]) -> Option<Vec<Part>> {
    let mut parts = Vec::with_capacity(given.len() * 2);
    for (text, key, conversion, precision) in given {
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        if !key.is_empty() {
            let atom = Atom::parse(&key, headers)?;
            parts.push(Part::Atom(atom, Conversion::parse(&conversion, precision)?));
        }
    }
    Some(parts)
}

/// The dict keys of the configured headers: Granian's `header{name}` and
/// Gunicorn's `{name}i`.
struct Keys<'py> {
    headers: Vec<(Bound<'py, PyString>, Bound<'py, PyString>)>,
}

impl<'py> Keys<'py> {
    fn new(py: Python<'py>, names: &[HeaderName]) -> Self {
        let headers = names
            .iter()
            .map(|name| {
                (
                    PyString::new(py, &format!("header{{{}}}", name.as_str())),
                    PyString::new(py, &format!("{{{}}}i", name.as_str())),
                )
            })
            .collect();
        Self { headers }
    }
}

/// The `time` atom, formatted once per second of the batch.
#[derive(Default)]
struct Clock {
    second: Option<u64>,
    text: Option<Py<PyString>>,
}

impl Clock {
    /// `at` as local time, `YYYY-MM-DD HH:MM:SS +zzzz` (Granian's `time`).
    fn text<'py>(&mut self, py: Python<'py>, at: SystemTime) -> PyResult<Bound<'py, PyString>> {
        let second = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if self.second != Some(second) || self.text.is_none() {
            let time = py.import("time")?;
            let local = time.call_method1("localtime", (second,))?;
            let text = time
                .call_method1("strftime", ("%Y-%m-%d %H:%M:%S %z", local))?
                .cast_into::<PyString>()?;
            self.second = Some(second);
            self.text = Some(text.unbind());
        }
        Ok(self.text.as_ref().map(|t| t.bind(py).clone()).unwrap())
    }
}

impl Record {
    fn status(&self) -> u16 {
        if self.complete {
            self.status
        } else {
            CLIENT_GONE
        }
    }

    /// Appends the line `parts` make of this record.
    fn render(
        &self,
        py: Python<'_>,
        parts: &[Part],
        clock: &mut Clock,
        line: &mut String,
    ) -> PyResult<()> {
        for part in parts {
            let (atom, conversion) = match part {
                Part::Text(text) => {
                    line.push_str(text);
                    continue;
                }
                Part::Atom(atom, conversion) => (*atom, *conversion),
            };
            let time;
            let addr;
            let value = match atom {
                Atom::Addr => match self.client {
                    Some(ip) => {
                        addr = ip.to_string();
                        Value::Str(&addr)
                    }
                    None => Value::Str("-"),
                },
                Atom::Time => {
                    time = clock.text(py, self.arrived)?;
                    Value::Str(time.to_str()?)
                }
                Atom::DtMs => Value::Float(self.duration.as_secs_f64() * 1000.0),
                Atom::Status => Value::Int(self.status().into()),
                Atom::Path => Value::Str(self.uri.path()),
                Atom::QueryString => Value::Str(self.uri.query().unwrap_or("")),
                Atom::Method => Value::Str(self.method.as_str()),
                Atom::Scheme => Value::Str(self.scheme),
                Atom::Protocol => Value::Str(protocol(self.version)),
                Atom::Size => Value::Int(self.size),
                Atom::Header(n) => match self.headers.get(n).and_then(|v| v.as_ref()) {
                    Some(value) => {
                        addr = String::from_utf8_lossy(value.as_bytes()).into_owned();
                        Value::Str(&addr)
                    }
                    None => Value::Str("-"),
                },
            };
            line::push(line, value, conversion);
        }
        Ok(())
    }

    fn atoms<'py>(
        &self,
        py: Python<'py>,
        keys: &Keys<'py>,
        clock: &mut Clock,
    ) -> PyResult<Bound<'py, PyDict>> {
        let atoms = PyDict::new(py);
        let addr = match self.client {
            Some(ip) => ip.to_string(),
            None => "-".to_owned(),
        };
        let status = self.status();
        atoms.set_item("addr", addr)?;
        atoms.set_item("time", clock.text(py, self.arrived)?)?;
        atoms.set_item("dt_ms", self.duration.as_secs_f64() * 1000.0)?;
        atoms.set_item("status", status)?;
        atoms.set_item("path", self.uri.path())?;
        atoms.set_item("query_string", self.uri.query().unwrap_or(""))?;
        atoms.set_item("method", self.method.as_str())?;
        atoms.set_item("scheme", self.scheme)?;
        atoms.set_item("protocol", protocol(self.version))?;
        atoms.set_item("rbl", self.size)?;
        atoms.set_item("size", self.size)?;
        for ((granian, gunicorn), value) in keys.headers.iter().zip(&self.headers) {
            let value = match value {
                Some(value) => String::from_utf8_lossy(value.as_bytes()).into_owned(),
                None => "-".to_owned(),
            };
            atoms.set_item(granian, &value)?;
            atoms.set_item(gunicorn, value)?;
        }
        Ok(atoms)
    }
}

fn protocol(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_11 => "HTTP/1.1",
        Version::HTTP_2 => "HTTP/2",
        Version::HTTP_3 => "HTTP/3",
        _ => "HTTP",
    }
}

/// A request's record until its response is done: queued when dropped.
/// Dropped before [`Pending::respond`] or [`Pending::complete`] (the
/// client left first), it is logged as [`CLIENT_GONE`].
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
