//! What Python passes to `Worker(...)`, read into the server's settings:
//! one dict per concern, every key required so that a key misspelled on
//! the Python side is an error rather than a setting silently left out;
//! and the errors a bad value raises.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;

use crate::bridge::Bridge;
use crate::http::RequestLimits;
use crate::http::metrics;
use crate::http::{MountSettings, Proxies, StaticError, Trusted};
use crate::log::access::AccessLog;
use crate::server::{Http2Tuning, HttpMode, Limits, Timeouts};
use crate::tls::{ProtocolMin, Tls, TlsError, TlsSettings};

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
pub(super) enum WorkerError {
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
pub(super) struct Http2Settings {
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
pub(super) struct LimitSettings {
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
pub(super) struct AccessSettings {
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
    pub(super) fn settings(self, mode: HttpMode) -> PyResult<TlsSettings> {
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
pub(super) struct ProxySettings {
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
pub(super) struct StaticSettings {
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
pub(super) struct MetricsSettings {
    pub(super) fd: i32,
    /// `asgi`, `rsgi` or `wsgi`: the label of this worker's requests.
    pub(super) interface: String,
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

/// How long access records wait for the ones that follow before the event
/// loop is asked to log them. Waking it for every few records costs a
/// GIL hand-off each time where the app runs on other threads (WSGI).
const ACCESS_LOG_DELAY: Duration = Duration::from_millis(10);

/// The access log, drained on the event loop by one bridge job, queued
/// [`ACCESS_LOG_DELAY`] after its queue stops being empty.
pub(super) fn access_log_for(given: AccessSettings, bridge: &Bridge) -> PyResult<Arc<AccessLog>> {
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
pub(super) fn ws_timer(
    what: &'static str,
    seconds: Option<f64>,
) -> Result<Option<Duration>, WorkerError> {
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
