//! The ASGI `websocket` scope's `receive` and `send`: ASGI events on top
//! of a [`ws::Session`].

use crate::sync::Mutex;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::BytesMut;
use hyper::Response;
use hyper::http::request::Parts;
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

use super::AsgiApp;
use super::message::Sent;
use super::protocol::{flag, header_map, required, unexpected};
use crate::bridge::{Bridge, Failed, PyObj, Ready, TaskSlot, body_bytes};
use crate::http::{ConnInfo, ResponseBody, response_head};
use crate::ws::{self, Message, Received, Session, WebsocketApp};

impl WebsocketApp for AsgiApp {
    fn start_websocket(
        self: &Arc<Self>,
        py: Python<'_>,
        head: Parts,
        conn: Arc<ConnInfo>,
        session: Arc<Session>,
    ) {
        let cycle = Arc::new(WsCycle::new(Arc::clone(self), session));
        let args = || -> PyResult<_> {
            let scope = self.scope.build_websocket(py, &head, &conn)?;
            let receive = Py::new(py, WebsocketReceive::new(Arc::clone(&cycle)))?;
            let send = Py::new(py, WebsocketSend::new(Arc::clone(&cycle)))?;
            Ok((scope, receive, send))
        };
        let keep = |task| cycle.keep_task(task);
        self.runner
            .launch(py, "the ASGI app", args, keep, || cycle.finish(true));
    }

    fn to_python(&self, py: Python<'_>, msg: Received) -> PyResult<Py<PyAny>> {
        Ok(self.messages.websocket(py, msg)?.into_any().unbind())
    }

    fn bridge(&self) -> &Bridge {
        &self.bridge
    }

    fn create_future(&self) -> &PyObj {
        &self.create_future
    }

    fn done(&self, py: Python<'_>) -> Py<PyAny> {
        self.messages.done.get().clone_ref(py).into_any()
    }
}

/// A refusal of the handshake with an HTTP response: its head, and its
/// body so far.
type Denial = (Response<()>, BytesMut);

/// One websocket connection's state on the app side.
pub(crate) struct WsCycle {
    app: Arc<AsgiApp>,
    session: Arc<Session>,
    /// `websocket.connect` was handed out (it is always the first event).
    connected: AtomicBool,
    /// A denial response (`websocket.http.response.*`) being assembled;
    /// boxed, as it is rare and every open websocket would carry its
    /// space (140 bytes) for hours.
    denial: Mutex<Option<Box<Denial>>>,
    task: Mutex<TaskSlot>,
}

impl WsCycle {
    pub(crate) fn new(app: Arc<AsgiApp>, session: Arc<Session>) -> Self {
        Self {
            app,
            session,
            connected: AtomicBool::new(false),
            denial: Mutex::new(None),
            task: Mutex::default(),
        }
    }

    pub(crate) fn keep_task(&self, task: Bound<'_, PyAny>) {
        self.task.lock().keep(task);
    }

    /// `websocket.http.response.start`: the app refuses the handshake with
    /// an HTTP response of its own, whose body follows.
    fn deny_start(&self, head: Response<()>) -> PyResult<()> {
        let mut denial = self.denial.lock();
        if denial.is_some() || !self.session.is_connecting() {
            return Err(PyRuntimeError::new_err(
                "'websocket.http.response.start' is only allowed once, before 'websocket.accept'",
            ));
        }
        *denial = Some(Box::new((head, BytesMut::new())));
        Ok(())
    }

    /// `websocket.http.response.body`: the denial goes out with its last part.
    fn deny_body(&self, chunk: &[u8], more: bool) -> PyResult<()> {
        let mut denial = self.denial.lock();
        let Some((_, body)) = denial.as_deref_mut() else {
            return Err(PyRuntimeError::new_err(
                "'websocket.http.response.body' sent before 'websocket.http.response.start'",
            ));
        };
        body.extend_from_slice(chunk);
        if !more {
            let (head, body) = *denial.take().expect("checked above");
            drop(denial);
            let response = head.map(|()| ResponseBody::full(body.freeze()));
            self.session.deny(response).map_err(ws::refused)?;
        }
        Ok(())
    }

    /// The app ended; `failed` when it raised.
    pub(crate) fn finish(&self, failed: bool) {
        self.session.finish(failed);
        let task = self.task.lock().end();
        drop(task);
    }
}

#[pyclass(frozen, module = "diorite._diorite")]
pub(crate) struct WebsocketReceive {
    cycle: Arc<WsCycle>,
}

impl WebsocketReceive {
    pub(crate) fn new(cycle: Arc<WsCycle>) -> Self {
        Self { cycle }
    }
}

#[pymethods]
impl WebsocketReceive {
    fn __call__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let cycle = &self.cycle;
        if !cycle.connected.swap(true, Ordering::AcqRel) {
            let event = cycle.app.messages.websocket_connect(py)?;
            return Ok(Py::new(py, Ready::new(event.into_any().unbind()))?.into_any());
        }
        ws::receive(py, &cycle.session, &cycle.app)
    }
}

#[pyclass(frozen, module = "diorite._diorite")]
pub(crate) struct WebsocketSend {
    cycle: Arc<WsCycle>,
}

impl WebsocketSend {
    pub(crate) fn new(cycle: Arc<WsCycle>) -> Self {
        Self { cycle }
    }

    fn done(&self, py: Python<'_>) -> Py<PyAny> {
        self.cycle.app.done(py)
    }

    fn accept(&self, py: Python<'_>, msg: &Bound<'_, PyDict>) -> PyResult<Py<PyAny>> {
        let m = &self.cycle.app.messages;
        let subprotocol: Option<String> = match msg.get_item(m.subprotocol.bind(py))? {
            Some(value) if !value.is_none() => Some(value.extract()?),
            _ => None,
        };
        let headers = header_map(msg.get_item(m.headers.bind(py))?)?;
        self.cycle
            .session
            .accept(subprotocol.as_deref(), headers)
            .map_err(PyRuntimeError::new_err)?;
        Ok(self.done(py))
    }

    fn send(&self, py: Python<'_>, msg: &Bound<'_, PyDict>) -> PyResult<Py<PyAny>> {
        let m = &self.cycle.app.messages;
        let message = match msg.get_item(m.bytes.bind(py))? {
            Some(bytes) if !bytes.is_none() => Message::Binary(body_bytes(&bytes)?),
            _ => match msg.get_item(m.text.bind(py))? {
                Some(text) if !text.is_none() => {
                    let text = text
                        .cast::<PyString>()
                        .map_err(|_| PyTypeError::new_err("'websocket.send' text must be a str"))?;
                    Message::text(text.to_str()?.to_owned())
                }
                _ => {
                    return Err(PyValueError::new_err(
                        "'websocket.send' needs 'bytes' or 'text'",
                    ));
                }
            },
        };
        ws::send(py, &self.cycle.session, self.cycle.app.as_ref(), message)
    }

    fn close(&self, py: Python<'_>, msg: &Bound<'_, PyDict>) -> PyResult<Py<PyAny>> {
        let m = &self.cycle.app.messages;
        let code: u16 = match msg.get_item(m.code.bind(py))? {
            Some(code) if !code.is_none() => code.extract()?,
            _ => 1000,
        };
        let reason: String = match msg.get_item(m.reason.bind(py))? {
            Some(reason) if !reason.is_none() => reason.extract()?,
            _ => String::new(),
        };
        self.cycle
            .session
            .close(code, &reason)
            .map_err(ws::refused)?;
        Ok(self.done(py))
    }

    fn deny_start(&self, py: Python<'_>, msg: &Bound<'_, PyDict>) -> PyResult<Py<PyAny>> {
        let m = &self.cycle.app.messages;
        let status: u16 =
            required(msg, m.status.bind(py), "websocket.http.response.start")?.extract()?;
        let headers = header_map(msg.get_item(m.headers.bind(py))?)?;
        self.cycle.deny_start(response_head(status, headers)?)?;
        Ok(self.done(py))
    }

    fn deny_body(&self, py: Python<'_>, msg: &Bound<'_, PyDict>) -> PyResult<Py<PyAny>> {
        let m = &self.cycle.app.messages;
        let more = flag(msg, m.more_body.bind(py))?;
        let chunk = match msg.get_item(m.body.bind(py))? {
            Some(body) => body_bytes(&body)?,
            None => bytes::Bytes::new(),
        };
        self.cycle.deny_body(&chunk, more)?;
        Ok(self.done(py))
    }
}

#[pymethods]
impl WebsocketSend {
    /// Errors come back as an awaitable that raises them (as a coroutine
    /// would), not at the call.
    fn __call__(&self, py: Python<'_>, message: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        Failed::lazily(py, self.dispatch(py, message))
    }

    /// Called by the runner when the app returned.
    fn finish(&self) -> Option<&'static str> {
        self.cycle.finish(false);
        None
    }

    /// Called by the runner when the app raised.
    fn abort(&self) {
        self.cycle.finish(true);
    }
}

impl WebsocketSend {
    fn dispatch(&self, py: Python<'_>, message: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let (msg, kind) = self.cycle.app.messages.read(message)?;
        match kind {
            Some(Sent::WsSend) => self.send(py, msg),
            Some(Sent::WsAccept) => self.accept(py, msg),
            Some(Sent::WsClose) => self.close(py, msg),
            Some(Sent::WsDenyStart) => self.deny_start(py, msg),
            Some(Sent::WsDenyBody) => self.deny_body(py, msg),
            _ => Err(unexpected(msg, " for a websocket")),
        }
    }
}
