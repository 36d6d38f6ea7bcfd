//! Sending a streamed body's chunks from the event-loop thread.

use pyo3::prelude::*;
use tokio::sync::mpsc::error::TrySendError;

use super::future::{reject, resolve};
use super::{Bridge, PyObj, Waiting, client_disconnected};
use crate::http::{StreamItem, StreamSender, Weighed};

/// Queues `item` and returns what the app should await: `done` when the
/// channel had room, or a future (from `create_future`) that a tokio task
/// resolves once the reader made room. A closed channel means the client
/// left: `ClientDisconnected`.
pub(crate) fn send_or_wait<T: Weighed>(
    py: Python<'_>,
    bridge: &Bridge,
    create_future: &PyObj,
    done: &Py<PyAny>,
    tx: &StreamSender<T>,
    item: T,
) -> PyResult<Py<PyAny>> {
    match tx.try_send(item) {
        Ok(()) => Ok(done.clone_ref(py)),
        Err(TrySendError::Closed(_)) => Err(client_disconnected()),
        Err(TrySendError::Full(item)) => wait_to_send(py, bridge, create_future, tx.clone(), item),
    }
}

/// The slow half of [`send_or_wait`], for a caller that already tried:
/// a future that a tokio task resolves once `item` is queued.
pub(crate) fn wait_to_send<T: Weighed>(
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
    if sent {
        resolve(&future, py.None());
    } else {
        reject(&future, client_disconnected());
    }
}

/// Ends a streamed body early, so the client sees it incomplete: at once
/// when the channel has room (an abort costs no bytes, so it only lacks
/// room when the client is gone), else from a tokio task.
pub(crate) fn abort_stream(bridge: &Bridge, tx: StreamSender) {
    if let Err(TrySendError::Full(item)) = tx.try_send(StreamItem::Abort) {
        bridge.spawn(async move {
            let _ = tx.send(item).await;
        });
    }
}
