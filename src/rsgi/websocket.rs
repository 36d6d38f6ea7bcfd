//! RSGI websockets: the protocol object (`accept`, `close`), the transport
//! `accept` returns (`receive`, `send_bytes`, `send_str`) and the messages
//! `receive` gives, on top of a [`ws::Session`].

use crate::sync::Mutex;
use std::sync::Arc;

use hyper::header::HeaderMap;
use hyper::http::request::Parts;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};

use super::{RsgiApp, Scope};
use crate::bridge::{Bridge, Failed, PyObj, Ready, TaskSlot, body_bytes};
use crate::http::ConnInfo;
use crate::ws::{self, Message, Received, Session, WebsocketApp};

/// `WebsocketMessage.kind` values from the RSGI spec.
const KIND_CLOSE: u8 = 0;
const KIND_BYTES: u8 = 1;
const KIND_STRING: u8 = 2;

impl WebsocketApp for RsgiApp {
    fn start_websocket(
        self: &Arc<Self>,
        py: Python<'_>,
        head: Parts,
        conn: Arc<ConnInfo>,
        session: Arc<Session>,
    ) {
        let protocol = WebsocketProtocol::new(Arc::clone(self), Arc::clone(&session));
        let handle = std::cell::OnceCell::new();
        let args = || -> PyResult<_> {
            let scope = Py::new(py, Scope::websocket(head, conn))?;
            let protocol = Py::new(py, protocol)?;
            let _ = handle.set(protocol.clone_ref(py));
            Ok((scope, protocol))
        };
        let keep = |task| {
            if let Some(protocol) = handle.get() {
                protocol.get().keep_task(task);
            }
        };
        self.runner
            .launch(py, "the RSGI app", args, keep, || session.finish(true));
    }

    fn to_python(&self, py: Python<'_>, msg: Received) -> PyResult<Py<PyAny>> {
        let (kind, data) = match msg {
            Received::Binary(bytes) => (KIND_BYTES, PyBytes::new(py, &bytes).into_any().unbind()),
            Received::Text(text) => (
                KIND_STRING,
                PyString::new(py, text.as_str()).into_any().unbind(),
            ),
            Received::Closed { .. } => (KIND_CLOSE, py.None()),
        };
        Ok(Py::new(py, WebsocketMessage { kind, data })?.into_any())
    }

    fn bridge(&self) -> &Bridge {
        &self.bridge
    }

    fn create_future(&self) -> &PyObj {
        &self.create_future
    }

    fn done(&self, py: Python<'_>) -> Py<PyAny> {
        self.done.get().clone_ref(py)
    }
}

/// A message from the client: `kind` 0 (closed), 1 (bytes) or 2 (str).
#[pyclass(frozen, get_all, module = "diorite._diorite")]
pub(crate) struct WebsocketMessage {
    kind: u8,
    data: Py<PyAny>,
}

#[pymethods]
impl WebsocketMessage {
    fn __repr__(&self) -> String {
        format!("<WebsocketMessage kind={}>", self.kind)
    }
}

#[pyclass(frozen, module = "diorite._diorite")]
pub(crate) struct WebsocketProtocol {
    app: Arc<RsgiApp>,
    session: Arc<Session>,
    task: Mutex<TaskSlot>,
}

impl WebsocketProtocol {
    pub(crate) fn new(app: Arc<RsgiApp>, session: Arc<Session>) -> Self {
        Self {
            app,
            session,
            task: Mutex::default(),
        }
    }

    pub(crate) fn keep_task(&self, task: Bound<'_, PyAny>) {
        self.task.lock().keep(task);
    }
}

#[pymethods]
impl WebsocketProtocol {
    /// Completes the handshake; the awaitable gives the transport.
    fn accept(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.session
            .accept(None, HeaderMap::new())
            .map_err(PyRuntimeError::new_err)?;
        let transport = WebsocketTransport {
            app: Arc::clone(&self.app),
            session: Arc::clone(&self.session),
        };
        let transport = Py::new(py, transport)?.into_any();
        Ok(Py::new(py, Ready::new(transport))?.into_any())
    }

    /// Closes the websocket with `status` (1000 when not given); before
    /// `accept`, refuses the handshake with 403.
    #[pyo3(signature = (status = None))]
    fn close(&self, status: Option<u16>) -> PyResult<()> {
        match self.session.close(status.unwrap_or(1000), "") {
            // Closing twice, or after the client left, has nothing to do.
            Ok(()) | Err(ws::Refused::ClosedByApp | ws::Refused::ClientGone) => Ok(()),
            Err(other) => Err(ws::refused(other)),
        }
    }

    /// Called by the runner when the app ended (`failed` when it raised).
    /// Returns false: a websocket app that never accepted has refused.
    fn _finish(&self, failed: bool) -> bool {
        self.session.finish(failed);
        let task = self.task.lock().end();
        drop(task);
        false
    }
}

#[pyclass(frozen, module = "diorite._diorite")]
pub(crate) struct WebsocketTransport {
    app: Arc<RsgiApp>,
    session: Arc<Session>,
}

#[pymethods]
impl WebsocketTransport {
    fn receive(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        ws::receive(py, &self.session, &self.app)
    }

    /// Like all sends, failures raise when awaited, not at the call.
    fn send_bytes(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let message = Message::Binary(body_bytes(data)?);
        Failed::lazily(py, ws::send(py, &self.session, self.app.as_ref(), message))
    }

    fn send_str(&self, py: Python<'_>, data: String) -> PyResult<Py<PyAny>> {
        let message = Message::text(data);
        Failed::lazily(py, ws::send(py, &self.session, self.app.as_ref(), message))
    }
}
