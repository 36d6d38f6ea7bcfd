//! [`Worker`]: the Python-facing handle on one worker's server: its tokio
//! runtime, its listener and its bridge to the event loop. This is the one
//! module that knows every interface: it wires the chosen one to `server`.

use crate::sync::Mutex;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::asgi::{AsgiApp, AsgiHandler};
use crate::bridge::{Bridge, PyObj, PythonPool};
use crate::http::Handler;
use crate::http::RequestLimits;
use crate::http::metrics;
use crate::http::{MountSettings, Proxies, StaticError, StaticFiles, Trusted};
use crate::log::access::AccessLog;
use crate::log::{self, Logger};
use crate::rsgi::{RsgiApp, RsgiHandler};
use crate::server::{
    self, Http2Tuning, HttpMode, HttpOptions, IoRuntime, Limits, Listener, Timeouts,
};
use crate::tls::{ProtocolMin, Tls, TlsError, TlsSettings};
use crate::ws;
use crate::wsgi::{WsgiApp, WsgiHandler};

pyo3::create_exception!(
    _diorite,
    TlsSettingError,
    PyValueError,
    "A TLS file or setting that cannot be used: args are (setting, message)."
);

impl From<TlsError> for PyErr {
    fn from(err: TlsError) -> Self {
        TlsSettingError::new_err((err.setting.key(), err.message))
    }
}

/// Why the Python side's call on a [`Worker`] was refused.
#[derive(Debug)]
enum WorkerError {
    Closed,
    AlreadyServing,
    UnknownHttpMode(String),
    /// A duration (which one, and the value) that is negative or not finite.
    BadDuration(&'static str, f64),
    BadHttp2Setting(&'static str, f64),
    BadLimit(&'static str, usize),
    BadStaticFiles(StaticError),
}

impl From<WorkerError> for PyErr {
    fn from(err: WorkerError) -> Self {
        match err {
            WorkerError::Closed => PyRuntimeError::new_err("worker is closed"),
            WorkerError::AlreadyServing => PyRuntimeError::new_err("worker is already serving"),
            WorkerError::UnknownHttpMode(mode) => {
                PyValueError::new_err(format!("unknown HTTP mode {mode:?}"))
            }
            WorkerError::BadDuration(what, value) => {
                PyValueError::new_err(format!("invalid {what}: {value}"))
            }
            WorkerError::BadHttp2Setting(name, value) => {
                PyValueError::new_err(format!("invalid HTTP/2 setting {name} = {value}"))
            }
            WorkerError::BadLimit(name, value) => {
                PyValueError::new_err(format!("invalid limit {name} = {value}"))
            }
            WorkerError::BadStaticFiles(err) => PyValueError::new_err(err.to_string()),
        }
    }
}

/// `Worker(http2={...})`: every key is required, so a key misspelled on
/// the Python side is an error rather than a setting silently left out.
/// Durations are seconds.
#[derive(Debug, FromPyObject)]
#[pyo3(from_item_all)]
struct Http2Settings {
    adaptive_window: bool,
    initial_connection_window_size: u32,
    initial_stream_window_size: u32,
    keep_alive_interval: Option<f64>,
    keep_alive_timeout: f64,
    max_frame_size: u32,
    max_send_buffer_size: u32,
}

/// `Worker(limits={...})`: every key is required, as for `http2`. Sizes
/// are bytes; a size or duration of `None` means no limit; durations are
/// seconds.
#[derive(Debug, FromPyObject)]
#[pyo3(from_item_all)]
struct LimitSettings {
    buffer_size: usize,
    request_line: Option<usize>,
    request_fields: usize,
    request_field_size: Option<usize>,
    max_body_size: Option<u64>,
    h2_max_headers_size: u32,
    header_read_timeout: Option<f64>,
    keep_alive_timeout: Option<f64>,
    body_read_timeout: Option<f64>,
    write_timeout: Option<f64>,
    connections: Option<usize>,
}

/// `Worker(access_log={...})`: every key required, as for `http2`.
/// `format` is the `%`-format of a line, `headers` the request headers
/// it names, `parts` the format split for rendering in Rust (`None` when
/// it is beyond that), `queue` the most records waiting for the loop.
#[derive(Debug, FromPyObject)]
#[pyo3(from_item_all)]
struct AccessSettings {
    format: String,
    headers: Vec<String>,
    parts: Option<Vec<(String, String, String, i64)>>,
    queue: usize,
}

/// `Worker(tls={...})` and [`check_tls`]: file paths and the options'
/// values, every key required as for `http2`.
#[derive(Debug, FromPyObject)]
#[pyo3(from_item_all)]
pub(crate) struct TlsArg {
    certificate: PathBuf,
    keyfile: PathBuf,
    password: Option<String>,
    protocol_min: String,
    ca: Option<PathBuf>,
    client_verify: bool,
    crl: Vec<PathBuf>,
}

impl TlsArg {
    /// ALPN offers what `mode` serves, HTTP/2 first.
    fn settings(self, mode: HttpMode) -> PyResult<TlsSettings> {
        let protocol_min = match self.protocol_min.as_str() {
            "tls1.2" => ProtocolMin::Tls12,
            "tls1.3" => ProtocolMin::Tls13,
            other => {
                return Err(TlsSettingError::new_err((
                    "protocol_min",
                    format!("unknown TLS version {other:?} (tls1.2 or tls1.3)"),
                )));
            }
        };
        let alpn: &[&[u8]] = match mode {
            HttpMode::Auto => &[b"h2", b"http/1.1"],
            HttpMode::Http1 => &[b"http/1.1"],
            HttpMode::Http2 => &[b"h2"],
        };
        Ok(TlsSettings {
            certificate: self.certificate,
            keyfile: self.keyfile,
            password: self.password,
            protocol_min,
            ca: self.ca,
            client_verify: self.client_verify,
            crls: self.crl,
            alpn: alpn.iter().map(|p| p.to_vec()).collect(),
        })
    }
}

/// Loads the TLS files as a worker would, raising [`TlsSettingError`] on
/// the first problem: the command line checks them before any worker starts.
#[pyfunction]
pub(crate) fn check_tls(tls: TlsArg) -> PyResult<()> {
    Tls::new(tls.settings(HttpMode::Auto)?)?;
    Ok(())
}

/// `Worker(proxy={...})`: what trusted proxies may tell, every key
/// required as for `http2`.
#[derive(Debug, FromPyObject)]
#[pyo3(from_item_all)]
struct ProxySettings {
    /// Read `Forwarded` and `X-Forwarded-*`.
    headers: bool,
    /// Read a PROXY protocol preamble on every TCP connection.
    protocol: bool,
    /// Addresses and CIDR networks of trusted proxies, or `*`.
    forwarded_allow_ips: Vec<String>,
}

impl TryFrom<ProxySettings> for Proxies {
    type Error = PyErr;

    fn try_from(given: ProxySettings) -> PyResult<Self> {
        let trusted = Trusted::parse(&given.forwarded_allow_ips).map_err(|bad| {
            PyValueError::new_err(format!("invalid forwarded_allow_ips entry {bad:?}"))
        })?;
        Ok(Self {
            trusted,
            headers: given.headers,
            protocol: given.protocol,
        })
    }
}

/// `Worker(static_files=[{...}, ...])`, one dict per route: every key is
/// required, as for `http2`; `expires` is seconds (0: no Cache-Control).
#[derive(Debug, FromPyObject)]
#[pyo3(from_item_all)]
struct StaticSettings {
    route: String,
    mount: std::path::PathBuf,
    dir_to_file: Option<String>,
    expires: u64,
}

impl From<StaticSettings> for MountSettings {
    fn from(given: StaticSettings) -> Self {
        Self {
            route: given.route,
            mount: given.mount,
            dir_to_file: given.dir_to_file,
            expires: given.expires,
        }
    }
}

/// `Worker(metrics={...})`: `fd` is the shared block this worker counts
/// into (`--metrics`, and the heartbeat `--workers-loop-timeout` reads).
#[derive(Debug, FromPyObject)]
#[pyo3(from_item_all)]
struct MetricsSettings {
    fd: i32,
    /// `asgi`, `rsgi` or `wsgi`: the label of this worker's requests.
    interface: String,
}

/// How Python reads a metrics block: its size in bytes, the index of
/// each single slot, and the histogram's bounds and the request labels
/// (buckets, then requests by method and status class, follow the single
/// slots in that order).
#[pyfunction]
pub(crate) fn metrics_layout(py: Python<'_>) -> PyResult<Bound<'_, pyo3::types::PyDict>> {
    let layout = pyo3::types::PyDict::new(py);
    layout.set_item("size", metrics::LEN * 8)?;
    layout.set_item("slots", metrics::SLOTS.to_vec())?;
    layout.set_item("buckets", metrics::BUCKETS.to_vec())?;
    layout.set_item("methods", metrics::METHODS.to_vec())?;
    layout.set_item("classes", metrics::CLASSES.to_vec())?;
    layout.set_item("interfaces", metrics::INTERFACES.to_vec())?;
    Ok(layout)
}

/// hyper's smallest HTTP/1 buffer: it panics on a smaller one.
const MIN_BUFFER_SIZE: usize = 8192;

impl TryFrom<LimitSettings> for Limits {
    type Error = WorkerError;

    fn try_from(given: LimitSettings) -> Result<Self, WorkerError> {
        let timer = |name, seconds: Option<f64>| {
            seconds
                .map(|s| positive_duration(s).ok_or(WorkerError::BadDuration(name, s)))
                .transpose()
        };
        if given.buffer_size < MIN_BUFFER_SIZE {
            return Err(WorkerError::BadLimit("buffer_size", given.buffer_size));
        }
        if given.request_fields == 0 {
            return Err(WorkerError::BadLimit("request_fields", 0));
        }
        if given.connections == Some(0) {
            return Err(WorkerError::BadLimit("connections", 0));
        }
        Ok(Self {
            buffer_size: Some(given.buffer_size),
            // hyper's default needs no heap allocation per request.
            max_headers: Some(given.request_fields).filter(|n| *n != 100),
            header_read_timeout: timer("header read timeout", given.header_read_timeout)?,
            h2_max_header_list_size: Some(given.h2_max_headers_size),
            max_connections: given.connections,
            timeouts: Timeouts {
                keep_alive: timer("keep-alive timeout", given.keep_alive_timeout)?,
                write: timer("write timeout", given.write_timeout)?,
            },
            request: RequestLimits {
                request_line: given.request_line,
                field_size: given.request_field_size,
                max_body_size: given.max_body_size,
                body_read_timeout: timer("body read timeout", given.body_read_timeout)?,
            },
        })
    }
}

/// As the options table: a zero timer would fire in a loop, and one
/// centuries ahead would overflow the clock.
fn positive_duration(seconds: f64) -> Option<Duration> {
    const YEAR: Duration = Duration::from_secs(365 * 86_400);
    Duration::try_from_secs_f64(seconds)
        .ok()
        .filter(|d| !d.is_zero() && *d <= YEAR)
}

impl TryFrom<Http2Settings> for Http2Tuning {
    type Error = WorkerError;

    fn try_from(given: Http2Settings) -> Result<Self, WorkerError> {
        let positive = |name, seconds: f64| {
            positive_duration(seconds).ok_or(WorkerError::BadHttp2Setting(name, seconds))
        };
        let tuning = Self {
            adaptive_window: given.adaptive_window,
            initial_connection_window_size: given.initial_connection_window_size,
            initial_stream_window_size: given.initial_stream_window_size,
            keep_alive_interval: given
                .keep_alive_interval
                .map(|seconds| positive("keep_alive_interval", seconds))
                .transpose()?,
            keep_alive_timeout: positive("keep_alive_timeout", given.keep_alive_timeout)?,
            max_frame_size: given.max_frame_size,
            max_send_buffer_size: given.max_send_buffer_size,
        };
        match tuning.out_of_range() {
            Some((name, value)) => Err(WorkerError::BadHttp2Setting(name, value.into())),
            None => Ok(tuning),
        }
    }
}

#[pyclass(frozen, module = "diorite._diorite")]
pub(crate) struct Worker {
    bridge: Bridge,
    runtime: Mutex<Option<IoRuntime>>,
    /// WSGI only: the bounded pool of threads the app runs on.
    pool: Mutex<Option<Arc<PythonPool>>>,
    listener: Mutex<Option<OwnedFd>>,
    unix: bool,
    serving: Mutex<Option<JoinHandle<bool>>>,
    stop: watch::Sender<Option<Duration>>,
    opts: HttpOptions,
    backpressure: usize,
    /// `None` with `--no-ws`.
    websockets: Option<ws::Config>,
}

impl Worker {
    fn start<H: Handler>(&self, handler: H) -> PyResult<()> {
        let runtime = self.runtime.lock();
        let runtime = runtime.as_ref().ok_or(WorkerError::Closed)?;
        let listener = self
            .listener
            .lock()
            .take()
            .ok_or(WorkerError::AlreadyServing)?;
        let listener = {
            let _entered = runtime.handle().enter();
            let made = if self.unix {
                let std = std::os::unix::net::UnixListener::from(listener);
                std.set_nonblocking(true)
                    .and_then(|()| tokio::net::UnixListener::from_std(std))
                    .map(Listener::Unix)
            } else {
                let std = std::net::TcpListener::from(listener);
                std.set_nonblocking(true)
                    .and_then(|()| tokio::net::TcpListener::from_std(std))
                    .map(Listener::Tcp)
            };
            made?
        };
        let serving = runtime.handle().spawn(server::serve(
            listener,
            Arc::new(handler),
            self.opts.clone(),
            self.stop.subscribe(),
        ));
        *self.serving.lock() = Some(serving);
        Ok(())
    }

    fn runtime_handle(&self) -> PyResult<tokio::runtime::Handle> {
        self.runtime
            .lock()
            .as_ref()
            .map(|rt| rt.handle().clone())
            .ok_or_else(|| WorkerError::Closed.into())
    }
}

#[pymethods]
impl Worker {
    /// `fd` is a listening TCP socket; the worker serves a duplicate of it,
    /// so the caller keeps ownership of its own. `http2`, a dict of
    /// [`Http2Settings`], tunes HTTP/2, and `limits`, a dict of
    /// [`LimitSettings`], bounds what clients may send; without them
    /// hyper's defaults apply.
    #[new]
    #[pyo3(signature = (fd, *, unix = false, http = "auto", runtime_threads = 1, backpressure = 1024, keep_alive = true, pipeline_flush = false, h2_max_concurrent_streams = 200, http2 = None, limits = None, static_files = Vec::new(), websockets = true, ws_max_message_size = 16 * 1024 * 1024, ws_ping_interval = Some(20.0), ws_ping_timeout = Some(20.0), tls = None, metrics = None, access_log = None, proxy = None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        fd: i32,
        unix: bool,
        http: &str,
        runtime_threads: usize,
        backpressure: usize,
        keep_alive: bool,
        pipeline_flush: bool,
        h2_max_concurrent_streams: u32,
        http2: Option<Http2Settings>,
        limits: Option<LimitSettings>,
        static_files: Vec<StaticSettings>,
        websockets: bool,
        ws_max_message_size: usize,
        ws_ping_interval: Option<f64>,
        ws_ping_timeout: Option<f64>,
        tls: Option<TlsArg>,
        metrics: Option<MetricsSettings>,
        access_log: Option<AccessSettings>,
        proxy: Option<ProxySettings>,
    ) -> PyResult<Self> {
        log::note_level(py);
        let mode = match http {
            "auto" => HttpMode::Auto,
            "1" => HttpMode::Http1,
            "2" => HttpMode::Http2,
            other => {
                return Err(WorkerError::UnknownHttpMode(other.to_owned()).into());
            }
        };
        let h2 = http2.map(Http2Tuning::try_from).transpose()?;
        let tls = match tls {
            Some(tls) => Some(Arc::new(Tls::new(tls.settings(mode)?)?)),
            None => None,
        };
        let statics = StaticFiles::new(static_files.into_iter().map(Into::into).collect())
            .map_err(WorkerError::BadStaticFiles)?;
        let proxies = match proxy {
            Some(given) => Proxies::try_from(given)?,
            None => Proxies::NONE,
        };
        let limits = match limits {
            Some(given) => Limits::try_from(given)?,
            None => Limits::HYPER,
        };
        // SAFETY: the caller keeps its socket open for this call; the
        // duplicate (close-on-exec, so a reload's new process does not
        // inherit it) is ours.
        let listener = unsafe { BorrowedFd::borrow_raw(fd) }.try_clone_to_owned()?;
        if let Some(given) = metrics {
            // SAFETY: as for `fd`; the duplicate is ours.
            let block = unsafe { BorrowedFd::borrow_raw(given.fd) }.try_clone_to_owned()?;
            metrics::install(&std::fs::File::from(block), &given.interface)?;
        }
        let runtime = IoRuntime::start(runtime_threads)?;
        let bridge = Bridge::new(runtime.handle().clone())?;
        let (stop, _) = watch::channel(None);
        let access = access_log
            .map(|given| access_log_for(given, &bridge))
            .transpose()?;
        Ok(Self {
            bridge,
            runtime: Mutex::new(Some(runtime)),
            pool: Mutex::new(None),
            listener: Mutex::new(Some(listener)),
            unix,
            serving: Mutex::new(None),
            stop,
            opts: HttpOptions {
                mode,
                keep_alive,
                pipeline_flush,
                h2_max_concurrent_streams,
                h2,
                limits,
                tls,
                statics,
                access,
                proxies: Arc::new(proxies),
            },
            backpressure,
            websockets: websockets.then_some(ws::Config {
                max_message_size: ws_max_message_size,
                ping_interval: ws_timer("websocket ping interval", ws_ping_interval)?,
                ping_timeout: ws_timer("websocket ping timeout", ws_ping_timeout)?,
            }),
        })
    }

    /// The event loop is alive at `ms` (`time.monotonic()` in
    /// milliseconds): a `/health` check and `--workers-loop-timeout` read it.
    fn heartbeat(&self, ms: u64) {
        metrics::beat(ms);
    }

    /// Reads the TLS files again: handshakes from now on use them, open
    /// connections keep what they have. On failure (raised as
    /// [`TlsSettingError`]) the certificate in use stays.
    fn reload_tls(&self, py: Python<'_>) -> PyResult<()> {
        match &self.opts.tls {
            Some(tls) => py.detach(|| tls.reload()).map_err(PyErr::from),
            None => Err(PyRuntimeError::new_err("this worker does not serve TLS")),
        }
    }

    /// The descriptor the event loop watches (`loop.add_reader`).
    fn fileno(&self) -> i32 {
        self.bridge.fileno()
    }

    /// Runs the work tokio handed to the event loop since the last call.
    fn run_jobs(&self, py: Python<'_>) {
        self.bridge.run_jobs(py);
    }

    /// Starts serving an ASGI app. `runner(scope, receive, send)` returns
    /// the coroutine to run; `spawn(coro)` makes it a task.
    /// `ws_template`, when websockets are on, holds the websocket scope's
    /// constant keys.
    #[pyo3(signature = (runner, spawn, event_loop, template, ws_template = None, state = None))]
    #[allow(clippy::too_many_arguments)]
    fn serve_asgi(
        &self,
        py: Python<'_>,
        runner: Py<PyAny>,
        spawn: Py<PyAny>,
        event_loop: Bound<'_, PyAny>,
        template: Py<PyAny>,
        ws_template: Option<Py<PyAny>>,
        state: Option<Py<PyAny>>,
    ) -> PyResult<()> {
        self.bridge.attach_loop(&event_loop)?;
        let websockets = self.websockets.filter(|_| ws_template.is_some());
        let app = AsgiApp::new(
            py,
            runner,
            spawn,
            &event_loop,
            template,
            ws_template,
            state,
            self.bridge.clone(),
        )?;
        self.start(AsgiHandler::new(app, self.backpressure, websockets))
    }

    /// Starts serving an RSGI app. `runner(scope, protocol)` returns the
    /// coroutine to run; `spawn(coro)` makes it a task.
    fn serve_rsgi(
        &self,
        py: Python<'_>,
        runner: Py<PyAny>,
        spawn: Py<PyAny>,
        event_loop: Bound<'_, PyAny>,
    ) -> PyResult<()> {
        self.bridge.attach_loop(&event_loop)?;
        let app = RsgiApp::new(py, runner, spawn, &event_loop, self.bridge.clone())?;
        self.start(RsgiHandler::new(app, self.backpressure, self.websockets))
    }

    /// Starts serving a WSGI app on `blocking_threads` pool threads.
    /// `template` holds the environ's constant keys.
    fn serve_wsgi(
        &self,
        py: Python<'_>,
        app: Py<PyAny>,
        template: Py<PyAny>,
        blocking_threads: usize,
        idle_timeout: f64,
    ) -> PyResult<()> {
        let idle_timeout = Duration::try_from_secs_f64(idle_timeout)
            .map_err(|_| WorkerError::BadDuration("blocking threads idle timeout", idle_timeout))?;
        let pool = Arc::new(PythonPool::start(blocking_threads, idle_timeout)?);
        let app = WsgiApp::new(
            py,
            app,
            template,
            Arc::clone(&pool),
            self.runtime_handle()?,
            self.bridge.outbox(),
        )?;
        *self.pool.lock() = Some(pool);
        self.start(WsgiHandler::new(app, self.backpressure))
    }

    /// Stops accepting and lets open requests finish for up to `timeout`
    /// seconds; then `on_done(clean)` runs on the event-loop thread.
    fn shutdown(&self, timeout: f64, on_done: Py<PyAny>) -> PyResult<()> {
        let grace = Duration::try_from_secs_f64(timeout.max(0.0))
            .map_err(|_| WorkerError::BadDuration("shutdown timeout", timeout))?;
        let _ = self.stop.send(Some(grace));
        let serving = self.serving.lock().take();
        let on_done = PyObj::new(on_done);
        let bridge = self.bridge.clone();
        let finish = async move {
            let clean = match serving {
                Some(handle) => handle.await.unwrap_or(false),
                None => true,
            };
            bridge.submit(Box::new(move |py| {
                if let Err(err) = on_done.bind(py).call1((clean,)) {
                    log::error(py, Logger::Server, "shutdown callback failed", Some(err));
                }
            }));
        };
        self.runtime_handle()?.spawn(finish);
        Ok(())
    }

    /// Stops the runtime. Tasks still running are dropped; the Python
    /// objects they held are released on this (attached) thread. Returns
    /// false when app code is still running on a pool thread: the process
    /// must then exit without finalizing the interpreter under it.
    fn close(&self, py: Python<'_>) -> bool {
        let runtime = self.runtime.lock().take();
        if let Some(mut runtime) = runtime {
            py.detach(move || runtime.shutdown());
        }
        let pool = self.pool.lock().take();
        let mut idle = true;
        if let Some(pool) = pool {
            // Apps still running get a moment; their threads are then left
            // to finish on their own.
            idle = py.detach(|| pool.shutdown(Duration::from_secs(1)));
        }
        self.bridge.close();
        self.bridge.run_jobs(py);
        if let Some(access) = &self.opts.access {
            // Records of requests the runtime's shutdown cut off.
            access.drain(py);
        }
        idle
    }
}

/// How long access records wait for the ones that follow before the event
/// loop is asked to log them. Waking it for every few records costs a
/// GIL hand-off each time where the app runs on other threads (WSGI).
const ACCESS_LOG_DELAY: Duration = Duration::from_millis(10);

/// The access log, drained on the event loop by one bridge job, queued
/// [`ACCESS_LOG_DELAY`] after its queue stops being empty.
fn access_log_for(given: AccessSettings, bridge: &Bridge) -> PyResult<Arc<AccessLog>> {
    let log = AccessLog::new(given.format, &given.headers, given.parts, given.queue)
        .map_err(|err| PyValueError::new_err(format!("access log header: {err}")))?;
    let log = Arc::new(log);
    let weak = Arc::downgrade(&log);
    let bridge = bridge.clone();
    log.set_wake(move || {
        let weak = weak.clone();
        let submit = bridge.clone();
        // A stopped runtime drops this task: `close` drains what is left.
        bridge.spawn(async move {
            tokio::time::sleep(ACCESS_LOG_DELAY).await;
            submit.submit(Box::new(move |py| {
                if let Some(log) = weak.upgrade() {
                    log.drain(py);
                }
            }));
        });
    });
    Ok(log)
}

/// A websocket keep-alive setting: `None` is off. As in the options table,
/// zero is refused (the Python side turns `0` into `None`): a timer of
/// 0 s would ping in a loop, and one centuries ahead would overflow the
/// clock.
fn ws_timer(what: &'static str, seconds: Option<f64>) -> Result<Option<Duration>, WorkerError> {
    const YEAR: Duration = Duration::from_secs(365 * 86_400);
    seconds
        .map(|s| {
            Duration::try_from_secs_f64(s)
                .ok()
                .filter(|d| !d.is_zero() && *d <= YEAR)
                .ok_or(WorkerError::BadDuration(what, s))
        })
        .transpose()
}
