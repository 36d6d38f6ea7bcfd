//! The `receive` and `send` callables an ASGI app gets for one HTTP
//! request: they read the app's messages and hand them to the [`Cycle`],
//! and turn what it answers into awaitables or exceptions.

use std::sync::Arc;

use hyper::HeaderMap;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

use super::cycle::{Cycle, Got};
use super::message::Sent as Message;
use crate::bridge::{Failed, Ready, Sent, Waiting, body_bytes};
use crate::http::{append_header, latin1_bytes, response_head};

#[pyclass(frozen, module = "diorite._diorite")]
pub(crate) struct HttpReceive {
    cycle: Arc<Cycle>,
}

impl HttpReceive {
    pub(crate) fn new(cycle: Arc<Cycle>) -> Self {
        Self { cycle }
    }
}

#[pymethods]
impl HttpReceive {
    fn __call__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        match self.cycle.receive(py)? {
            Got::Now(msg) => Ok(Py::new(py, Ready::new(msg.into_any().unbind()))?.into_any()),
            Got::Later(future) => Ok(Py::new(py, Waiting::new(future.unbind()))?.into_any()),
        }
    }
}

#[pyclass(frozen, module = "diorite._diorite")]
pub(crate) struct HttpSend {
    cycle: Arc<Cycle>,
}

impl HttpSend {
    pub(crate) fn new(cycle: Arc<Cycle>) -> Self {
        Self { cycle }
    }

    fn done(&self, py: Python<'_>) -> Py<PyAny> {
        self.cycle
            .app()
            .messages
            .done
            .get()
            .clone_ref(py)
            .into_any()
    }

    /// What the app awaits after a body part or trailers.
    fn awaitable(&self, py: Python<'_>, sent: Sent) -> PyResult<Py<PyAny>> {
        match sent {
            Sent::Queued => Ok(self.done(py)),
            Sent::Full(backlog) => self.cycle.wait_for_room(py, backlog),
        }
    }

    fn dispatch(&self, py: Python<'_>, message: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let messages = &self.cycle.app().messages;
        let (msg, kind) = messages.read(message)?;
        match kind {
            Some(Message::Start) => {
                let status: u16 =
                    required(msg, messages.status.bind(py), "http.response.start")?.extract()?;
                let headers = header_map(msg.get_item(messages.headers.bind(py))?)?;
                let trailers = flag(msg, messages.trailers.bind(py))?;
                self.cycle
                    .start_head(response_head(status, headers)?, trailers)?;
                Ok(self.done(py))
            }
            Some(Message::Body) => {
                let body = match msg.get_item(messages.body.bind(py))? {
                    Some(b) => body_bytes(&b)?,
                    None => bytes::Bytes::new(),
                };
                let more = flag(msg, messages.more_body.bind(py))?;
                let sent = self.cycle.body(py, body, more)?;
                self.awaitable(py, sent)
            }
            Some(Message::Trailers) => {
                let headers = header_map(msg.get_item(messages.headers.bind(py))?)?;
                let more = flag(msg, messages.more_trailers.bind(py))?;
                let sent = self.cycle.trailers(py, headers, more)?;
                self.awaitable(py, sent)
            }
            Some(Message::PathSend) => {
                let path: std::path::PathBuf =
                    required(msg, messages.path.bind(py), "http.response.pathsend")?.extract()?;
                self.cycle.pathsend(path)?;
                Ok(self.done(py))
            }
            _ => Err(unexpected(msg, "")),
        }
    }
}

#[pymethods]
impl HttpSend {
    /// Errors come back as an awaitable that raises them (as a coroutine
    /// would), not at the call.
    fn __call__(&self, py: Python<'_>, message: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        Failed::lazily(py, self.dispatch(py, message))
    }

    /// Called by the runner when the app returned; gives a problem to log.
    fn finish(&self) -> Option<&'static str> {
        self.cycle.finish(false)
    }

    /// The status the request body was refused with, if it was.
    fn body_refusal(&self) -> Option<u16> {
        self.cycle.body_refusal()
    }

    /// Called by the runner when the app raised.
    fn abort(&self) {
        self.cycle.finish(true);
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
        return latin1_bytes(s.to_str()?)
            .map(|bytes| bytes.into_owned())
            .ok_or_else(|| PyValueError::new_err("header text outside latin-1"));
    }
    Err(PyTypeError::new_err(
        "ASGI header names and values must be bytes",
    ))
}
