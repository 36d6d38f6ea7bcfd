//! [`Worker`]: the Python-facing handle on one worker's server: its tokio
//! runtime, its listener and its bridge to the event loop. This is the one
//! module that knows every interface: it wires the chosen one to `server`.
//! What `Worker(...)` takes is read in [`settings`].

mod settings;

use crate::sync::Mutex;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::asgi::{AsgiApp, AsgiHandler};
use crate::bridge::{Bridge, PyObj, PythonPool};
use crate::http::metrics;
use crate::http::{Backpressure, Handler};
use crate::http::{Proxies, StaticFiles};
use crate::log::{self, Logger};
use crate::memory;
use crate::rsgi::{RsgiApp, RsgiHandler};
use crate::server::{self, Http2Tuning, HttpMode, HttpOptions, IoRuntime, Limits, Listener};
use crate::tls::Tls;
use crate::ws;
use crate::wsgi::{WsgiApp, WsgiHandler};

use settings::{
    AccessSettings, Http2Settings, LimitSettings, MetricsSettings, ProxySettings, StaticSettings,
    TlsArg, WorkerError, access_log_for, ws_timer,
};
pub(crate) use settings::{TlsSettingError, check_tls, metrics_layout};

/// How often the event loop is asked to release the Python references
/// dropped on I/O threads and to give back what its thread's allocator
/// holds freed ([`Bridge::sweep`]).
const SWEEP_EVERY: Duration = Duration::from_secs(1);

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
    /// `--backpressure` and `--backpressure-timeout`.
    backpressure: (usize, Duration),
    /// `None` with `--no-ws`.
    websockets: Option<ws::Config>,
}

impl Worker {
    fn backpressure(&self) -> Backpressure {
        let (places, wait) = self.backpressure;
        Backpressure::new(places, wait)
    }

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
        let bridge = self.bridge.clone();
        runtime.handle().spawn(async move {
            let mut sweeps = tokio::time::interval(SWEEP_EVERY);
            sweeps.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                sweeps.tick().await;
                if !bridge.sweep() {
                    return;
                }
            }
        });
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
    #[pyo3(signature = (fd, *, unix = false, http = "auto", runtime_threads = 1, backpressure = 1024, backpressure_timeout = 30.0, keep_alive = true, pipeline_flush = false, h2_max_concurrent_streams = 200, http2 = None, limits = None, static_files = Vec::new(), websockets = true, ws_max_message_size = 16 * 1024 * 1024, ws_ping_interval = Some(20.0), ws_ping_timeout = Some(20.0), tls = None, metrics = None, access_log = None, proxy = None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        fd: i32,
        unix: bool,
        http: &str,
        runtime_threads: usize,
        backpressure: usize,
        backpressure_timeout: f64,
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
        memory::keep_freed_memory();
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
            backpressure: (
                backpressure,
                Duration::try_from_secs_f64(backpressure_timeout).map_err(|_| {
                    WorkerError::BadDuration("backpressure timeout", backpressure_timeout)
                })?,
            ),
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
        self.start(AsgiHandler::new(app, self.backpressure(), websockets))
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
        self.start(RsgiHandler::new(app, self.backpressure(), self.websockets))
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
        self.start(WsgiHandler::new(app, self.backpressure()))
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
