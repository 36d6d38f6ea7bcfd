//! Resolving asyncio futures from Rust: the one place that checks a future
//! is still pending (an app may have cancelled it) before setting its
//! outcome, and logs what goes wrong doing so.

use pyo3::intern;
use pyo3::prelude::*;

use crate::log::{self, Logger};

/// `future.done()`, taking a failing call as done (nothing to resolve).
pub(crate) fn is_done(future: &Bound<'_, PyAny>) -> bool {
    future
        .call_method0(intern!(future.py(), "done"))
        .and_then(|d| d.is_truthy())
        .unwrap_or(true)
}

/// Resolves `future` with `value` unless it is already done (cancelled).
pub(crate) fn resolve<'py>(future: &Bound<'py, PyAny>, value: impl IntoPyObject<'py>) {
    if is_done(future) {
        return;
    }
    let py = future.py();
    report(py, future.call_method1(intern!(py, "set_result"), (value,)));
}

/// Fails `future` with `err` unless it is already done (cancelled).
pub(crate) fn reject(future: &Bound<'_, PyAny>, err: PyErr) {
    if is_done(future) {
        return;
    }
    let py = future.py();
    let exc = err.into_value(py);
    report(
        py,
        future.call_method1(intern!(py, "set_exception"), (exc,)),
    );
}

/// [`resolve`] or [`reject`], after `outcome`.
pub(crate) fn settle<'py, T: IntoPyObject<'py>>(future: &Bound<'py, PyAny>, outcome: PyResult<T>) {
    match outcome {
        Ok(value) => resolve(future, value),
        Err(err) => reject(future, err),
    }
}

fn report<T>(py: Python<'_>, result: PyResult<T>) {
    if let Err(err) = result {
        log::error(py, Logger::Server, "could not resolve a future", Some(err));
    }
}
