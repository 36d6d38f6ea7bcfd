//! Sending a streamed body's chunks from the event-loop thread.

use pyo3::intern;
use pyo3::prelude::*;
use tokio::sync::mpsc::error::TrySendError;

use super::{Bridge, ClientDisconnected, PyObj, Waiting};
use crate::http::{StreamSender, Weighed};

/// Queues `item` and returns what the app should await: `done` when the
/// channel had room, or a future (from `create_future`) that a tokio task
/// resolves once the reader made room. A closed channel means the client
/// left: `ClientDisconnected`.
pub fn send_or_wait<T: Weighed>(
    py: Python<'_>,
    bridge: &Bridge,
    create_future: &PyObj,
    done: &Py<PyAny>,
    tx: &StreamSender<T>,
    item: T,
) -> PyResult<Py<PyAny>> {
    match tx.try_send(item) {
        Ok(()) => Ok(done.clone_ref(py)),
        Err(TrySendError::Closed(_)) => Err(ClientDisconnected::new_err("client disconnected")),
        Err(TrySendError::Full(item)) => wait_to_send(py, bridge, create_future, tx.clone(), item),
    }
}

/// The slow half of [`send_or_wait`], for a caller that already tried:
/// a future that a tokio task resolves once `item` is queued.
pub fn wait_to_send<T: Weighed>(
    py: Python<'_>,
    bridge: &Bridge,
    create_future: &PyObj,
    tx: StreamSender<T>,
    item: T,
) -> PyResult<Py<PyAny>> {
    let future = create_future.bind(py).call0()?;
    let waiter = PyObj::from_bound(future.clone());
    let loop_side = bridge.clone();
    bridge.spawn(async move {
        let sent = tx.send(item).await.is_ok();
        loop_side.submit(Box::new(move |py| settle(py, waiter, sent)));
    });
    Ok(Py::new(py, Waiting::new(future.unbind()))?.into_any())
}

fn settle(py: Python<'_>, waiter: PyObj, sent: bool) {
    let future = waiter.into_bound(py);
    if is_done(&future) {
        return;
    }
    let result = if sent {
        future.call_method1(intern!(py, "set_result"), (py.None(),))
    } else {
        let exc = ClientDisconnected::new_err("client disconnected").into_value(py);
        future.call_method1(intern!(py, "set_exception"), (exc,))
    };
    if let Err(err) = result {
        err.print(py);
    }
}

/// `future.done()`, taking a failing call as done (nothing to resolve).
pub fn is_done(future: &Bound<'_, PyAny>) -> bool {
    future
        .call_method0(intern!(future.py(), "done"))
        .and_then(|d| d.is_truthy())
        .unwrap_or(true)
}

/// Resolves `future` with `value` unless it is already done (cancelled).
pub fn resolve<'py>(future: &Bound<'py, PyAny>, value: impl IntoPyObject<'py>) {
    if is_done(future) {
        return;
    }
    let py = future.py();
    if let Err(err) = future.call_method1(intern!(py, "set_result"), (value,)) {
        err.print(py);
    }
}
