//! The `receive` and `send` callables an ASGI app gets for one request.

use std::sync::Arc;

use hyper::{HeaderMap, Response, StatusCode};
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

use super::cycle::{Cycle, Phase, State};
use super::message::Sent;
use crate::bridge::{
    ClientDisconnected, Failed, PyObj, Ready, Waiting, body_bytes, is_done, reject, resolve,
    send_or_wait,
};
use crate::http::{ResponseBody, StreamItem, StreamSender, Take, append_header};

#[pyclass(frozen, module = "diorite._diorite")]
pub(crate) struct Receive {
    cycle: Arc<Cycle>,
}

impl Receive {
    pub(crate) fn new(cycle: Arc<Cycle>) -> Self {
        Self { cycle }
    }
}

/// What the next `receive()` returns, if it is known now. With the lock
/// held, a body that is not ready registers the wake-up before the caller
/// stores its future, so no arrival is missed.
fn next_message<'py>(
    py: Python<'py>,
    cycle: &Arc<Cycle>,
    state: &State,
) -> PyResult<Option<Bound<'py, PyDict>>> {
    let messages = &cycle.app.messages;
    if state.disconnected || matches!(state.phase, Phase::Complete) {
        return messages.disconnect(py).map(Some);
    }
    let waker = Arc::clone(cycle);
    match cycle.body.take(move || waker.body_ready()) {
        Take::Data { body, more } => messages.request(py, &body, more).map(Some),
        Take::Failed => messages.disconnect(py).map(Some),
        // After the whole body, `receive()` waits for the disconnect.
        Take::Pending | Take::Finished => Ok(None),
    }
}

#[pymethods]
impl Receive {
    fn __call__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let mut state = self.cycle.lock();
        if let Some(msg) = next_message(py, &self.cycle, &state)? {
            drop(state);
            return Ok(Py::new(py, Ready::new(msg.into_any().unbind()))?.into_any());
        }
        let future = self.cycle.app.create_future.bind(py).call0()?;
        state.receive_waiter = Some(PyObj::from_bound(future.clone()));
        Ok(Py::new(py, Waiting::new(future.unbind()))?.into_any())
    }
}

/// Runs on the loop thread when a waiting `receive()` may now be answered.
pub(crate) fn resolve_receive(py: Python<'_>, cycle: &Arc<Cycle>, waiter: PyObj) {
    let future = waiter.into_bound(py);
    // A cancelled receive must not swallow a piece of the body.
    if is_done(&future) {
        return;
    }
    let mut state = cycle.lock();
    let message = match next_message(py, cycle, &state) {
        Ok(Some(msg)) => msg,
        Ok(None) => {
            state.receive_waiter = Some(PyObj::from_bound(future));
            return;
        }
        Err(err) => {
            drop(state);
            reject(&future, err);
            return;
        }
    };
    drop(state);
    resolve(&future, message);
}

#[pyclass(frozen, module = "diorite._diorite")]
pub(crate) struct Send {
    cycle: Arc<Cycle>,
}

impl Send {
    pub(crate) fn new(cycle: Arc<Cycle>) -> Self {
        Self { cycle }
    }

    fn done(&self, py: Python<'_>) -> Py<PyAny> {
        self.cycle.app.messages.done.get().clone_ref(py).into_any()
    }

    fn already_complete(&self, state: &State, what: &str) -> PyErr {
        if state.disconnected {
            ClientDisconnected::new_err("client disconnected")
        } else {
            PyRuntimeError::new_err(format!(
                "unexpected ASGI message '{what}' after the response was complete"
            ))
        }
    }

    /// Queues one stream item; waits (through a future) when the client
    /// reads slower than the app writes.
    fn push(&self, py: Python<'_>, tx: &StreamSender, item: StreamItem) -> PyResult<Py<PyAny>> {
        let app = &self.cycle.app;
        let done = app.messages.done.get().clone_ref(py).into_any();
        send_or_wait(py, &app.bridge, &app.create_future, &done, tx, item)
    }

    fn start(&self, msg: &Bound<'_, PyDict>) -> PyResult<()> {
        let messages = &self.cycle.app.messages;
        let py = msg.py();
        let status: u16 =
            required(msg, messages.status.bind(py), "http.response.start")?.extract()?;
        let status = StatusCode::from_u16(status)
            .map_err(|_| PyValueError::new_err(format!("invalid HTTP status code {status}")))?;
        let headers = header_map(msg.get_item(messages.headers.bind(py))?)?;
        let trailers = flag(msg, messages.trailers.bind(py))?;
        let mut state = self.cycle.lock();
        match std::mem::replace(&mut state.phase, Phase::Complete) {
            Phase::Waiting(reply) => {
                let mut response = Response::new(());
                *response.status_mut() = status;
                *response.headers_mut() = headers;
                state.phase = Phase::Started {
                    reply,
                    response,
                    trailers,
                };
                Ok(())
            }
            other => {
                let err = match other {
                    Phase::Complete => self.already_complete(&state, "http.response.start"),
                    _ => PyRuntimeError::new_err("'http.response.start' sent twice"),
                };
                state.phase = other;
                Err(err)
            }
        }
    }

    fn body(&self, py: Python<'_>, msg: &Bound<'_, PyDict>) -> PyResult<Py<PyAny>> {
        let messages = &self.cycle.app.messages;
        let body = match msg.get_item(messages.body.bind(py))? {
            Some(b) => body_bytes(&b)?,
            None => bytes::Bytes::new(),
        };
        let more = flag(msg, messages.more_body.bind(py))?;
        let mut state = self.cycle.lock();
        match std::mem::replace(&mut state.phase, Phase::Complete) {
            Phase::Started {
                reply,
                response,
                trailers,
            } => {
                if !more && !trailers {
                    // The fast path: the whole response in one hand-off.
                    let response = response.map(|()| ResponseBody::full(body));
                    self.cycle.app.bridge.deliver(
                        py,
                        Box::new(move || {
                            let _ = reply.send(response);
                        }),
                    );
                    let waiter = self.cycle.complete(&mut state);
                    drop(state);
                    if let Some(waiter) = waiter {
                        resolve_receive(py, &self.cycle, waiter);
                    }
                    return Ok(self.done(py));
                }
                let gone = Arc::clone(&self.cycle);
                let (tx, stream) =
                    ResponseBody::channel(Some(Box::new(move || gone.client_gone())));
                if let Err(unsent) = reply.send(response.map(|()| stream)) {
                    // The client left before the head went out. Dropping the
                    // body runs its abandon hook, which takes this lock.
                    drop(state);
                    drop(unsent);
                    return Err(ClientDisconnected::new_err("client disconnected"));
                }
                self.stream_body(py, &mut state, tx, trailers, body, more)
            }
            Phase::Streaming { tx, trailers } => {
                self.stream_body(py, &mut state, tx, trailers, body, more)
            }
            Phase::Waiting(reply) => {
                state.phase = Phase::Waiting(reply);
                Err(PyRuntimeError::new_err(
                    "'http.response.body' sent before 'http.response.start'",
                ))
            }
            Phase::Complete => Err(self.already_complete(&state, "http.response.body")),
        }
    }

    fn stream_body(
        &self,
        py: Python<'_>,
        state: &mut State,
        tx: StreamSender,
        trailers: bool,
        body: bytes::Bytes,
        more: bool,
    ) -> PyResult<Py<PyAny>> {
        let awaitable = if body.is_empty() {
            self.done(py)
        } else {
            self.push(py, &tx, StreamItem::Data(body))?
        };
        if more || trailers {
            state.phase = Phase::Streaming { tx, trailers };
        } else {
            // Dropping the last sender ends the body once it is drained.
            if let Some(waiter) = self.cycle.complete(state) {
                let cycle = Arc::clone(&self.cycle);
                self.cycle
                    .app
                    .bridge
                    .submit(Box::new(move |py| resolve_receive(py, &cycle, waiter)));
            }
        }
        Ok(awaitable)
    }

    fn trailers(&self, py: Python<'_>, msg: &Bound<'_, PyDict>) -> PyResult<Py<PyAny>> {
        let messages = &self.cycle.app.messages;
        let headers = header_map(msg.get_item(messages.headers.bind(py))?)?;
        let more = flag(msg, messages.more_trailers.bind(py))?;
        let mut state = self.cycle.lock();
        match std::mem::replace(&mut state.phase, Phase::Complete) {
            Phase::Streaming { tx, trailers: true } => {
                if more {
                    // hyper sends one trailer block: later parts are merged.
                    return Err(PyValueError::new_err(
                        "'more_trailers' is not supported; send all trailers at once",
                    ));
                }
                let awaitable = self.push(py, &tx, StreamItem::Trailers(headers))?;
                Ok(awaitable)
            }
            Phase::Complete => Err(self.already_complete(&state, "http.response.trailers")),
            other => {
                state.phase = other;
                Err(PyRuntimeError::new_err(
                    "'http.response.trailers' needs 'trailers': True in the start message and a final body message first",
                ))
            }
        }
    }

    fn pathsend(&self, py: Python<'_>, msg: &Bound<'_, PyDict>) -> PyResult<Py<PyAny>> {
        let messages = &self.cycle.app.messages;
        let path: std::path::PathBuf =
            required(msg, messages.path.bind(py), "http.response.pathsend")?.extract()?;
        let mut state = self.cycle.lock();
        match std::mem::replace(&mut state.phase, Phase::Complete) {
            Phase::Started {
                reply, response, ..
            } => {
                let gone = Arc::clone(&self.cycle);
                self.cycle.app.bridge.spawn(crate::http::send_file(
                    path,
                    None,
                    response,
                    reply,
                    Box::new(move || gone.client_gone()),
                ));
                Ok(self.done(py))
            }
            Phase::Complete => Err(self.already_complete(&state, "http.response.pathsend")),
            other => {
                state.phase = other;
                Err(PyRuntimeError::new_err(
                    "'http.response.pathsend' must follow 'http.response.start'",
                ))
            }
        }
    }
}

#[pymethods]
impl Send {
    /// Errors come back as an awaitable that raises them (as a coroutine
    /// would), not at the call.
    fn __call__(&self, py: Python<'_>, message: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        Failed::lazily(py, self.dispatch(py, message))
    }

    /// Called by the runner when the app returned; gives a problem to log.
    fn finish(&self) -> Option<&'static str> {
        self.cycle.finish()
    }

    /// Called by the runner when the app raised.
    fn abort(&self) {
        self.cycle.abort();
    }
}

impl Send {
    fn dispatch(&self, py: Python<'_>, message: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let (msg, kind) = self.cycle.app.messages.read(message)?;
        match kind {
            Some(Sent::Start) => self.start(msg).map(|()| self.done(py)),
            Some(Sent::Body) => self.body(py, msg),
            Some(Sent::Trailers) => self.trailers(py, msg),
            Some(Sent::PathSend) => self.pathsend(py, msg),
            _ => Err(unexpected(msg, "")),
        }
    }
}

/// The error for a message of a type this scope does not take.
pub(super) fn unexpected(msg: &Bound<'_, PyDict>, scope: &str) -> PyErr {
    let kind = msg
        .get_item(intern!(msg.py(), "type"))
        .ok()
        .flatten()
        .map(|k| k.to_string())
        .unwrap_or_default();
    PyValueError::new_err(format!("unexpected ASGI message type '{kind}'{scope}"))
}

pub(super) fn required<'py>(
    msg: &Bound<'py, PyDict>,
    key: &Bound<'py, PyString>,
    what: &str,
) -> PyResult<Bound<'py, PyAny>> {
    msg.get_item(key)?
        .ok_or_else(|| PyValueError::new_err(format!("{what} is missing the '{key}' key")))
}

pub(super) fn flag(msg: &Bound<'_, PyDict>, key: &Bound<'_, PyString>) -> PyResult<bool> {
    match msg.get_item(key)? {
        Some(value) => value.is_truthy(),
        None => Ok(false),
    }
}

/// ASGI headers (an iterable of `[name, value]` byte pairs) as a header map.
pub(super) fn header_map(headers: Option<Bound<'_, PyAny>>) -> PyResult<HeaderMap> {
    let mut map = HeaderMap::new();
    let Some(headers) = headers else {
        return Ok(map);
    };
    for pair in headers.try_iter()? {
        let pair = pair?;
        let name = header_bytes(&pair.get_item(0)?)?;
        let value = header_bytes(&pair.get_item(1)?)?;
        append_header(&mut map, &name, &value)?;
    }
    Ok(map)
}

fn header_bytes(obj: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    if let Ok(b) = obj.cast::<pyo3::types::PyBytes>() {
        return Ok(b.as_bytes().to_vec());
    }
    if let Ok(s) = obj.cast::<PyString>() {
        // Frameworks sometimes pass str; accept the latin-1 range.
        return s
            .to_str()?
            .chars()
            .map(|c| {
                u8::try_from(u32::from(c))
                    .map_err(|_| PyValueError::new_err("header text outside latin-1"))
            })
            .collect();
    }
    Err(PyTypeError::new_err(
        "ASGI header names and values must be bytes",
    ))
}
