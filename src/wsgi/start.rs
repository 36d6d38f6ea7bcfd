//! `start_response` and the `write` callable it returns, and the response
//! state they share with the code that iterates the app's result.

use crate::sync::{Mutex, MutexGuard};
use std::sync::Arc;

use bytes::Bytes;
use hyper::header::TRANSFER_ENCODING;
use hyper::{HeaderMap, Response};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;

use crate::bridge::{Delivery, body_bytes, client_disconnected, each_str_pair};
use crate::http::{
    Reply, ResponseBody, StreamItem, StreamSender, append_header, latin1_bytes, response_head,
};

/// The response of one WSGI call, as far as it got.
pub(crate) struct ResponseState {
    inner: Mutex<Inner>,
}

#[derive(Default)]
pub(crate) struct Inner {
    /// Set by `start_response`; taken when the head goes to hyper.
    pub(crate) head: Option<Response<()>>,
    /// Present until the head went to hyper.
    pub(crate) reply: Option<Reply>,
    /// The body's sender once the response is streamed.
    pub(crate) stream: Option<StreamSender>,
}

impl Inner {
    pub(crate) fn headers_sent(&self) -> bool {
        self.reply.is_none()
    }

    /// The head with a complete body, in one piece (exact length).
    /// Returned as a delivery for the outbox, to run once the lock is gone.
    pub(crate) fn send_full(&mut self, body: Bytes) -> Result<Delivery, &'static str> {
        let head = self
            .head
            .take()
            .ok_or("the app did not call start_response")?;
        let reply = self.reply.take().ok_or("the response was already sent")?;
        let response = head.map(|()| ResponseBody::full(body));
        Ok(Box::new(move || {
            let _ = reply.send(response);
        }))
    }

    /// The body's sender, sending the head first if it is not out yet.
    pub(crate) fn stream(&mut self) -> Result<StreamSender, &'static str> {
        if let Some(tx) = &self.stream {
            return Ok(tx.clone());
        }
        let head = self
            .head
            .take()
            .ok_or("the app did not call start_response")?;
        let reply = self.reply.take().ok_or("the response was already sent")?;
        let (tx, body) = ResponseBody::channel(None);
        let _ = reply.send(head.map(|()| body));
        self.stream = Some(tx.clone());
        Ok(tx)
    }
}

impl ResponseState {
    pub(crate) fn new(reply: Reply) -> Arc<Self> {
        Arc::new(Self {
            inner: Mutex::new(Inner {
                reply: Some(reply),
                ..Inner::default()
            }),
        })
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock()
    }
}

/// Parses `"200 OK"` and the header list into a response head.
fn head(status: &str, headers: &Bound<'_, PyAny>) -> PyResult<Response<()>> {
    let code = status
        .split_ascii_whitespace()
        .next()
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or_else(|| PyValueError::new_err(format!("invalid WSGI status {status:?}")))?;
    let mut map = HeaderMap::new();
    each_str_pair(headers, |name, value| {
        // The server frames the body itself.
        if name.eq_ignore_ascii_case(TRANSFER_ENCODING.as_str()) {
            return Ok(());
        }
        // PEP 3333: header values are str holding latin-1.
        let bytes = latin1_bytes(value)
            .ok_or_else(|| PyValueError::new_err(format!("header '{name}' is not latin-1 text")))?;
        Ok(append_header(&mut map, name.as_bytes(), &bytes)?)
    })?;
    Ok(response_head(code, map)?)
}

#[pyclass(frozen, module = "diorite._diorite")]
pub(crate) struct StartResponse {
    state: Arc<ResponseState>,
}

impl StartResponse {
    pub(crate) fn new(state: Arc<ResponseState>) -> Self {
        Self { state }
    }
}

#[pymethods]
impl StartResponse {
    #[pyo3(signature = (status, headers, exc_info = None))]
    fn __call__(
        &self,
        status: &str,
        headers: &Bound<'_, PyAny>,
        exc_info: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Write> {
        let exc_info = exc_info.filter(|e| !e.is_none());
        let head = head(status, headers)?;
        let mut inner = self.state.lock();
        match exc_info {
            // PEP 3333: too late to change the response; re-raise.
            Some(exc_info) if inner.headers_sent() => {
                drop(inner);
                return Err(PyErr::from_value(exc_info.get_item(1)?));
            }
            Some(_) => {}
            None if inner.head.is_some() || inner.headers_sent() => {
                return Err(PyRuntimeError::new_err(
                    "start_response called a second time without exc_info",
                ));
            }
            None => {}
        }
        inner.head = Some(head);
        Ok(Write {
            state: Arc::clone(&self.state),
        })
    }
}

/// The `write(data)` callable: the legacy, imperative way to send body
/// bytes. It sends the head first, and blocks (without the interpreter)
/// while the client is behind.
#[pyclass(frozen, module = "diorite._diorite")]
pub(crate) struct Write {
    state: Arc<ResponseState>,
}

#[pymethods]
impl Write {
    fn __call__(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let data = body_bytes(data)?;
        let tx = self
            .state
            .lock()
            .stream()
            .map_err(PyRuntimeError::new_err)?;
        if data.is_empty() {
            return Ok(());
        }
        py.detach(|| tx.blocking_send(StreamItem::Data(data)))
            .map_err(|_| client_disconnected())
    }
}
