//! The one path for what the Rust side reports: Python's `logging`, so the
//! user's `--log-level`, `--no-log` and formats apply to every line.
//!
//! App errors go to `diorite.app` with the exception's traceback; the
//! server's own problems go to `diorite`. A line that cannot be logged
//! (logging itself raised) falls back to `sys.unraisablehook`, which is
//! still Python's and still visible, never to a bare `eprintln!`.

pub(crate) mod access;
mod line;
mod record;

use std::sync::atomic::{AtomicBool, Ordering};

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

/// Which logger a line belongs to.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Logger {
    /// `diorite`: the server itself.
    Server,
    /// `diorite.app`: errors raised by (or caused by) the application.
    App,
}

// Statics are never dropped, so these references never need a thread
// attached to release them.
static SERVER: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static APP: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

impl Logger {
    fn get<'py>(self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let (cell, name) = match self {
            Logger::Server => (&SERVER, "diorite"),
            Logger::App => (&APP, "diorite.app"),
        };
        cell.get_or_try_init(py, || {
            Ok(py
                .import("logging")?
                .call_method1("getLogger", (name,))?
                .unbind())
        })
        .map(|logger| logger.bind(py).clone())
    }
}

/// Logs `message` at error level, with `err`'s traceback when given.
pub(crate) fn error(py: Python<'_>, logger: Logger, message: &str, err: Option<PyErr>) {
    emit(py, logger, "error", message, err);
}

/// Logs `message` at warning level.
pub(crate) fn warning(py: Python<'_>, logger: Logger, message: &str) {
    emit(py, logger, "warning", message, None);
}

/// Logs `message` at debug level, with `err`'s traceback when given.
pub(crate) fn debug(py: Python<'_>, logger: Logger, message: &str, err: Option<PyErr>) {
    emit(py, logger, "debug", message, err);
}

/// [`error`] from a thread that may not be attached (a tokio or pool
/// thread). It attaches for the call, so it is for rare events only, never
/// for something that happens per request. Nothing is logged once the
/// interpreter is shutting down.
pub(crate) fn error_from_any_thread(logger: Logger, message: &str) {
    let _ = Python::try_attach(|py| error(py, logger, message, None));
}

/// Whether `diorite` logs debug lines, as of [`note_level`].
static DEBUG: AtomicBool = AtomicBool::new(false);

/// Records whether the server's logger takes debug lines, so that
/// [`debug_from_any_thread`] attaches to Python only when it will log.
pub(crate) fn note_level(py: Python<'_>) {
    let enabled = Logger::Server
        .get(py)
        .and_then(|logger| logger.call_method1("isEnabledFor", (10,))?.is_truthy())
        .unwrap_or(false);
    DEBUG.store(enabled, Ordering::Relaxed);
}

/// [`debug`] from any thread, for events a client can cause at will (a
/// failed TLS handshake): with debug lines off, as in production, it costs
/// an atomic load and never waits for the interpreter.
pub(crate) fn debug_from_any_thread(logger: Logger, message: &str) {
    if DEBUG.load(Ordering::Relaxed) {
        let _ = Python::try_attach(|py| debug(py, logger, message, None));
    }
}

fn emit(py: Python<'_>, logger: Logger, level: &str, message: &str, err: Option<PyErr>) {
    let logged = logger.get(py).and_then(|logger| {
        let kwargs = pyo3::types::PyDict::new(py);
        if let Some(err) = err {
            // `into_value` puts the traceback on the exception (`value` alone
            // may leave it without one on Python < 3.12).
            kwargs.set_item("exc_info", err.into_value(py))?;
        }
        logger.call_method(level, ("%s", message), Some(&kwargs))?;
        Ok(())
    });
    if let Err(failed) = logged {
        failed.write_unraisable(py, None);
    }
}
