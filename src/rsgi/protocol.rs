//! The RSGI HTTP protocol object, its body iterator and the stream
//! transport `response_stream` returns: the Python face of an
//! [`HttpCall`], turning the app's arguments into its transitions and
//! their results into awaitables and exceptions.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use hyper::{HeaderMap, Response};
use pyo3::exceptions::PyStopAsyncIteration;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use super::body::Got;
use super::call::{HttpCall, file_range};
use crate::bridge::Sent;
use crate::bridge::{Ready, body_bytes, each_str_pair};
use crate::http::{ResponseBody, append_header, response_head};

#[pyclass(frozen, module = "diorite._diorite")]
pub(crate) struct HttpProtocol {
    call: Arc<HttpCall>,
}

impl HttpProtocol {
    pub(crate) fn new(call: Arc<HttpCall>) -> Self {
        Self { call }
    }

    fn respond(
        &self,
        py: Python<'_>,
        status: u16,
        headers: Option<&Bound<'_, PyAny>>,
        body: Bytes,
    ) -> PyResult<()> {
        let response = head(status, headers)?.map(|()| ResponseBody::full(body));
        Ok(self.call.respond(py, response)?)
    }
}

/// Builds a response head from RSGI's `status` and `(name, value)` pairs.
fn head(status: u16, headers: Option<&Bound<'_, PyAny>>) -> PyResult<Response<()>> {
    let mut map = HeaderMap::new();
    if let Some(headers) = headers {
        each_str_pair(headers, |name, value| {
            Ok(append_header(&mut map, name.as_bytes(), value.as_bytes())?)
        })?;
    }
    Ok(response_head(status, map)?)
}

/// The awaitable for a body read: bytes at once, or the pending future.
fn awaitable(py: Python<'_>, got: Got<'_>) -> PyResult<Py<PyAny>> {
    match got {
        Got::Bytes(bytes) => {
            let bytes = PyBytes::new(py, &bytes).into_any().unbind();
            Ok(Py::new(py, Ready::new(bytes))?.into_any())
        }
        Got::Later(future) => Ok(future.unbind()),
    }
}

#[pymethods]
impl HttpProtocol {
    /// `await protocol()`: the whole request body as `bytes`.
    fn __call__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        awaitable(py, self.call.read_whole(py)?)
    }

    /// `async for chunk in protocol`: the body piece by piece.
    fn __aiter__(&self) -> BodyChunks {
        BodyChunks {
            call: Arc::clone(&self.call),
        }
    }

    /// Resolves once the client has gone away.
    fn client_disconnect(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        match self.call.wait_disconnect(py)? {
            Some(future) => Ok(future.unbind()),
            None => Ok(self.call.done(py)),
        }
    }

    #[pyo3(signature = (status, headers = None))]
    fn response_empty(
        &self,
        py: Python<'_>,
        status: u16,
        headers: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        self.respond(py, status, headers, Bytes::new())
    }

    #[pyo3(signature = (status, headers, body))]
    fn response_str(
        &self,
        py: Python<'_>,
        status: u16,
        headers: Option<&Bound<'_, PyAny>>,
        body: String,
    ) -> PyResult<()> {
        self.respond(py, status, headers, Bytes::from(body))
    }

    #[pyo3(signature = (status, headers, body))]
    fn response_bytes(
        &self,
        status: u16,
        headers: Option<&Bound<'_, PyAny>>,
        body: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        self.respond(body.py(), status, headers, body_bytes(body)?)
    }

    /// Sends a file from Rust; the app's memory never holds it.
    #[pyo3(signature = (status, headers, file))]
    fn response_file(
        &self,
        status: u16,
        headers: Option<&Bound<'_, PyAny>>,
        file: PathBuf,
    ) -> PyResult<()> {
        let head = head(status, headers)?;
        Ok(self.call.send_file(file, None, head)?)
    }

    /// Sends bytes `start` (inclusive) to `end` (exclusive) of a file, as
    /// Granian does; a `content-length` is added when absent.
    #[pyo3(signature = (status, headers, file, start, end))]
    fn response_file_range(
        &self,
        status: u16,
        headers: Option<&Bound<'_, PyAny>>,
        file: PathBuf,
        start: u64,
        end: u64,
    ) -> PyResult<()> {
        let range = file_range(start, end)?;
        let head = head(status, headers)?;
        Ok(self.call.send_file(file, Some(range), head)?)
    }

    /// Starts a streamed response; the body follows through the transport.
    #[pyo3(signature = (status, headers = None))]
    fn response_stream(
        &self,
        status: u16,
        headers: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<StreamTransport> {
        self.call.open_stream(head(status, headers)?)?;
        Ok(StreamTransport {
            call: Arc::clone(&self.call),
        })
    }

    /// The status the request body was refused with, if it was.
    #[pyo3(name = "_body_refusal")]
    fn body_refusal(&self) -> Option<u16> {
        self.call.body_refusal()
    }

    /// Called by the runner when the app returned or raised; true when the
    /// app sent no response (it became a 500).
    #[pyo3(name = "_finish")]
    fn finish(&self, py: Python<'_>, failed: bool) -> bool {
        self.call.finish(py, failed)
    }
}

/// The async iterator over request body pieces.
#[pyclass(frozen, module = "diorite._diorite")]
pub(crate) struct BodyChunks {
    call: Arc<HttpCall>,
}

#[pymethods]
impl BodyChunks {
    fn __aiter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __anext__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        match self.call.read_chunk(py)? {
            Some(got) => awaitable(py, got),
            None => Err(PyStopAsyncIteration::new_err(())),
        }
    }
}

/// What `response_stream` returns: `send_bytes` / `send_str` awaitables.
#[pyclass(frozen, module = "diorite._diorite")]
pub(crate) struct StreamTransport {
    call: Arc<HttpCall>,
}

impl StreamTransport {
    fn send(&self, py: Python<'_>, data: Bytes) -> PyResult<Py<PyAny>> {
        match self.call.stream_send(data)? {
            Sent::Queued => Ok(self.call.done(py)),
            Sent::Full(backlog) => self.call.wait_for_room(py, backlog),
        }
    }
}

#[pymethods]
impl StreamTransport {
    fn send_bytes(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.send(py, body_bytes(data)?)
    }

    fn send_str(&self, py: Python<'_>, data: String) -> PyResult<Py<PyAny>> {
        self.send(py, Bytes::from(data))
    }
}
