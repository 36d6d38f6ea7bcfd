//! The Python-facing halves of a websocket's `receive` and `send`, shared
//! by ASGI and RSGI; each interface only says how a received message
//! looks in Python ([`WebsocketApp`]).

use std::sync::Arc;

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

use super::app::WebsocketApp;
use super::session::{Refused, Session};
use crate::bridge::{ClientDisconnected, PyObj, Ready, Waiting, is_done, send_or_wait, settle};
use tokio_tungstenite::tungstenite::Message;

/// `receive()`: the next message at once when one is waiting, else a
/// future that a later arrival (or the close) resolves.
pub(crate) fn receive<D: WebsocketApp>(
    py: Python<'_>,
    session: &Arc<Session>,
    delivery: &Arc<D>,
) -> PyResult<Py<PyAny>> {
    if let Some(msg) = session.inbox.take(|| ()) {
        let value = delivery.to_python(py, msg)?;
        return Ok(Py::new(py, Ready::new(value))?.into_any());
    }
    let future = delivery.create_future().bind(py).call0()?;
    wait_for_message(py, session, delivery, future.clone());
    Ok(Py::new(py, Waiting::new(future.unbind()))?.into_any())
}

/// Resolves `future` with the next message now, or registers it to be
/// resolved on the loop thread when one arrives.
fn wait_for_message<D: WebsocketApp>(
    py: Python<'_>,
    session: &Arc<Session>,
    delivery: &Arc<D>,
    future: Bound<'_, PyAny>,
) {
    let waiter = PyObj::from_bound(future.clone());
    let (s, d) = (Arc::clone(session), Arc::clone(delivery));
    let wake = move || {
        let bridge = d.bridge().clone();
        bridge.submit(Box::new(move |py| {
            let future = waiter.into_bound(py);
            // A cancelled receive must not swallow a message.
            if !is_done(&future) {
                wait_for_message(py, &s, &d, future);
            }
        }));
    };
    if let Some(msg) = session.inbox.take(wake) {
        settle(&future, delivery.to_python(py, msg));
    }
}

/// `send(message)`: queues it; the awaitable waits while the client is
/// behind.
pub(crate) fn send<D: WebsocketApp>(
    py: Python<'_>,
    session: &Session,
    delivery: &D,
    msg: Message,
) -> PyResult<Py<PyAny>> {
    let sender = session.sender().map_err(refused)?;
    let done = delivery.done(py);
    send_or_wait(
        py,
        delivery.bridge(),
        delivery.create_future(),
        &done,
        &sender,
        msg,
    )
}

/// The Python exception for a refused websocket operation.
pub(crate) fn refused(why: Refused) -> PyErr {
    match why {
        Refused::ClientGone => ClientDisconnected::new_err("the websocket client disconnected"),
        Refused::NotAccepted => {
            PyRuntimeError::new_err("the websocket must be accepted before sending")
        }
        Refused::AlreadyAnswered => {
            PyRuntimeError::new_err("the websocket handshake was already answered")
        }
        Refused::ClosedByApp => PyRuntimeError::new_err("the websocket is already closed"),
    }
}
