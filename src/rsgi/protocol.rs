//! The RSGI HTTP protocol object, its body iterator and the stream
//! transport `response_stream` returns.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use hyper::{HeaderMap, Response};
use pyo3::exceptions::{PyRuntimeError, PyStopAsyncIteration, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use tokio::sync::mpsc::error::TrySendError;

use super::exchange::{BodyWaiter, Exchange};
use crate::bridge::{
    ClientDisconnected, PyObj, Ready, body_bytes, each_str_pair, is_done, reject, resolve,
    wait_to_send,
};
use crate::http::{
    FileRange, ResponseBody, StreamItem, Take, append_header, response_head, send_file,
};

#[pyclass(frozen, module = "diorite._diorite")]
pub(crate) struct HttpProtocol {
    exchange: Arc<Exchange>,
}

impl HttpProtocol {
    pub(crate) fn new(exchange: Arc<Exchange>) -> Self {
        Self { exchange }
    }

    /// Takes the reply channel: each request gets exactly one response.
    fn reply(&self) -> PyResult<crate::http::Reply> {
        let mut state = self.exchange.lock();
        if state.finished {
            return Err(PyRuntimeError::new_err(
                "the RSGI request is already finished",
            ));
        }
        state
            .reply
            .take()
            .ok_or_else(|| PyRuntimeError::new_err("a response was already sent for this request"))
    }

    fn respond(
        &self,
        py: Python<'_>,
        status: u16,
        headers: Option<&Bound<'_, PyAny>>,
        body: Bytes,
    ) -> PyResult<()> {
        let response = head(status, headers)?.map(|()| ResponseBody::full(body));
        let reply = self.reply()?;
        self.exchange.app.bridge.deliver(
            py,
            Box::new(move || {
                let _ = reply.send(response);
            }),
        );
        Ok(())
    }

    fn ready(&self, py: Python<'_>, value: Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let _ = py;
        Ok(Py::new(value.py(), Ready::new(value.unbind()))?.into_any())
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

/// What a body read can answer now, with the exchange locked so that a
/// wake-up registered here cannot be missed.
enum Read {
    Chunk(Bytes),
    End,
    Gone,
    Wait,
}

fn read_now(exchange: &Arc<Exchange>, disconnected: bool) -> Read {
    if disconnected {
        return Read::Gone;
    }
    let waker = Arc::clone(exchange);
    match exchange.body.take(move || waker.body_ready()) {
        Take::Data { body, .. } if !body.is_empty() => Read::Chunk(body),
        // An empty last piece only says "end".
        Take::Data { .. } | Take::Finished => {
            if exchange.body.is_complete() {
                Read::End
            } else {
                Read::Wait
            }
        }
        Take::Failed => Read::Gone,
        Take::Pending => Read::Wait,
    }
}

/// Gathers what is there into `acc`; true once the body is complete.
fn gather(exchange: &Arc<Exchange>, disconnected: bool, acc: &mut BytesMut) -> PyResult<bool> {
    loop {
        match read_now(exchange, disconnected) {
            Read::Chunk(chunk) => acc.extend_from_slice(&chunk),
            Read::End => return Ok(true),
            Read::Wait => return Ok(false),
            Read::Gone => return Err(ClientDisconnected::new_err("client disconnected")),
        }
    }
}

/// Loop thread: a pending body read may go on (data arrived, or the client
/// left).
pub(crate) fn continue_body(py: Python<'_>, exchange: &Arc<Exchange>, waiter: BodyWaiter) {
    let mut state = exchange.lock();
    let disconnected = state.disconnected;
    match waiter {
        BodyWaiter::Whole(future, mut acc) => {
            if is_done(future.bind(py)) {
                return;
            }
            match gather(exchange, disconnected, &mut acc) {
                Ok(false) => state.body_waiter = Some(BodyWaiter::Whole(future, acc)),
                Ok(true) => {
                    drop(state);
                    resolve(future.bind(py), PyBytes::new(py, &acc));
                }
                Err(err) => {
                    drop(state);
                    fail(py, &future, err);
                }
            }
        }
        BodyWaiter::Chunk(future) => {
            if is_done(future.bind(py)) {
                return;
            }
            match read_now(exchange, disconnected) {
                Read::Wait => state.body_waiter = Some(BodyWaiter::Chunk(future)),
                Read::Chunk(chunk) => {
                    drop(state);
                    resolve(future.bind(py), PyBytes::new(py, &chunk));
                }
                Read::End => {
                    drop(state);
                    fail(py, &future, PyStopAsyncIteration::new_err(()));
                }
                Read::Gone => {
                    drop(state);
                    fail(
                        py,
                        &future,
                        ClientDisconnected::new_err("client disconnected"),
                    );
                }
            }
        }
    }
}

fn fail(py: Python<'_>, future: &PyObj, err: PyErr) {
    reject(future.bind(py), err);
}

#[pymethods]
impl HttpProtocol {
    /// `await protocol()`: the whole request body as `bytes`.
    fn __call__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let exchange = &self.exchange;
        let mut state = exchange.lock();
        if state.body_waiter.is_some() {
            return Err(PyRuntimeError::new_err(
                "the request body is already being read",
            ));
        }
        let mut acc = BytesMut::new();
        if gather(exchange, state.disconnected, &mut acc)? {
            drop(state);
            return self.ready(py, PyBytes::new(py, &acc).into_any());
        }
        let future = exchange.app.create_future.bind(py).call0()?;
        state.body_waiter = Some(BodyWaiter::Whole(PyObj::from_bound(future.clone()), acc));
        Ok(future.unbind())
    }

    /// `async for chunk in protocol`: the body piece by piece.
    fn __aiter__(&self) -> BodyChunks {
        BodyChunks {
            exchange: Arc::clone(&self.exchange),
        }
    }

    /// Resolves once the client has gone away.
    fn client_disconnect(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let future = self.exchange.app.create_future.bind(py).call0()?;
        match self.exchange.wait_disconnect(future) {
            Some(future) => Ok(future.unbind()),
            None => Ok(self.exchange.app.done.get().clone_ref(py)),
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
        let reply = self.reply()?;
        let exchange = Arc::clone(&self.exchange);
        self.exchange.app.bridge.spawn(send_file(
            file,
            None,
            head,
            reply,
            Box::new(move || exchange.client_gone()),
        ));
        Ok(())
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
        if end < start {
            return Err(PyValueError::new_err(
                "response_file_range: end is before start",
            ));
        }
        let head = head(status, headers)?;
        let reply = self.reply()?;
        let exchange = Arc::clone(&self.exchange);
        self.exchange.app.bridge.spawn(send_file(
            file,
            Some(FileRange { start, end }),
            head,
            reply,
            Box::new(move || exchange.client_gone()),
        ));
        Ok(())
    }

    /// Starts a streamed response; the body follows through the transport.
    #[pyo3(signature = (status, headers = None))]
    fn response_stream(
        &self,
        status: u16,
        headers: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<StreamTransport> {
        let head = head(status, headers)?;
        let reply = self.reply()?;
        let gone = Arc::clone(&self.exchange);
        let (tx, body) = ResponseBody::channel(Some(Box::new(move || gone.client_gone())));
        if reply.send(head.map(|()| body)).is_err() {
            return Err(ClientDisconnected::new_err("client disconnected"));
        }
        self.exchange.lock().stream = Some(tx);
        Ok(StreamTransport {
            exchange: Arc::clone(&self.exchange),
        })
    }

    /// Called by the runner when the app returned or raised; true when the
    /// app sent no response (it became a 500).
    #[pyo3(name = "_finish")]
    fn finish(&self, py: Python<'_>, failed: bool) -> bool {
        self.exchange.finish(py, failed)
    }
}

/// The async iterator over request body pieces.
#[pyclass(frozen, module = "diorite._diorite")]
pub(crate) struct BodyChunks {
    exchange: Arc<Exchange>,
}

#[pymethods]
impl BodyChunks {
    fn __aiter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __anext__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let exchange = &self.exchange;
        let mut state = exchange.lock();
        if state.body_waiter.is_some() {
            return Err(PyRuntimeError::new_err(
                "the request body is already being read",
            ));
        }
        match read_now(exchange, state.disconnected) {
            Read::Chunk(chunk) => {
                drop(state);
                let chunk = PyBytes::new(py, &chunk).into_any().unbind();
                Ok(Py::new(py, Ready::new(chunk))?.into_any())
            }
            Read::End => Err(PyStopAsyncIteration::new_err(())),
            Read::Gone => Err(ClientDisconnected::new_err("client disconnected")),
            Read::Wait => {
                let future = exchange.app.create_future.bind(py).call0()?;
                state.body_waiter = Some(BodyWaiter::Chunk(PyObj::from_bound(future.clone())));
                Ok(future.unbind())
            }
        }
    }
}

/// What `response_stream` returns: `send_bytes` / `send_str` awaitables.
#[pyclass(frozen, module = "diorite._diorite")]
pub(crate) struct StreamTransport {
    exchange: Arc<Exchange>,
}

impl StreamTransport {
    fn send(&self, py: Python<'_>, data: Bytes) -> PyResult<Py<PyAny>> {
        let app = &self.exchange.app;
        let state = self.exchange.lock();
        if state.disconnected {
            return Err(ClientDisconnected::new_err("client disconnected"));
        }
        let Some(tx) = &state.stream else {
            return Err(PyRuntimeError::new_err("the response stream is closed"));
        };
        if data.is_empty() {
            return Ok(app.done.get().clone_ref(py));
        }
        // Queued under the lock when there is room (the common case, no
        // clone of the sender); the wait for room happens without it.
        match tx.try_send(StreamItem::Data(data)) {
            Ok(()) => Ok(app.done.get().clone_ref(py)),
            Err(TrySendError::Closed(_)) => Err(ClientDisconnected::new_err("client disconnected")),
            Err(TrySendError::Full(item)) => {
                let tx = tx.clone();
                drop(state);
                wait_to_send(py, &app.bridge, &app.create_future, tx, item)
            }
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
