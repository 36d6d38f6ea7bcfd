//! The strings ASGI messages are made of, interned once per worker, and
//! builders for the messages `receive()` returns.

use pyo3::prelude::*;

use crate::bridge::Done;
use crate::ws::Received;
use pyo3::exceptions::PyTypeError;
use pyo3::types::{PyBytes, PyDict, PyString};

pub struct Messages {
    /// The shared awaitable every `send` that needs no waiting returns.
    pub done: Py<Done>,
    pub type_: Py<PyString>,
    pub body: Py<PyString>,
    pub more_body: Py<PyString>,
    pub status: Py<PyString>,
    pub headers: Py<PyString>,
    pub trailers: Py<PyString>,
    pub more_trailers: Py<PyString>,
    pub path: Py<PyString>,
    pub http_request: Py<PyString>,
    pub http_disconnect: Py<PyString>,
    pub text: Py<PyString>,
    pub bytes: Py<PyString>,
    pub code: Py<PyString>,
    pub reason: Py<PyString>,
    pub subprotocol: Py<PyString>,
    pub ws_connect: Py<PyString>,
    pub ws_receive: Py<PyString>,
    pub ws_disconnect: Py<PyString>,
}

/// The `type` of a message the app sent.
pub enum Sent {
    Start,
    Body,
    Trailers,
    PathSend,
    WsAccept,
    WsSend,
    WsClose,
    WsDenyStart,
    WsDenyBody,
}

impl Messages {
    pub fn new(py: Python<'_>) -> Self {
        let s = |text: &str| PyString::intern(py, text).unbind();
        Self {
            done: Py::new(py, Done).expect("allocating the Done awaitable"),
            type_: s("type"),
            body: s("body"),
            more_body: s("more_body"),
            status: s("status"),
            headers: s("headers"),
            trailers: s("trailers"),
            more_trailers: s("more_trailers"),
            path: s("path"),
            http_request: s("http.request"),
            http_disconnect: s("http.disconnect"),
            text: s("text"),
            bytes: s("bytes"),
            code: s("code"),
            reason: s("reason"),
            subprotocol: s("subprotocol"),
            ws_connect: s("websocket.connect"),
            ws_receive: s("websocket.receive"),
            ws_disconnect: s("websocket.disconnect"),
        }
    }

    pub fn request<'py>(
        &self,
        py: Python<'py>,
        body: &[u8],
        more: bool,
    ) -> PyResult<Bound<'py, PyDict>> {
        let msg = PyDict::new(py);
        msg.set_item(self.type_.bind(py), self.http_request.bind(py))?;
        msg.set_item(self.body.bind(py), PyBytes::new(py, body))?;
        msg.set_item(self.more_body.bind(py), more)?;
        Ok(msg)
    }

    pub fn disconnect<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let msg = PyDict::new(py);
        msg.set_item(self.type_.bind(py), self.http_disconnect.bind(py))?;
        Ok(msg)
    }

    /// A received websocket message as the ASGI event `receive()` returns:
    /// `websocket.receive` with `text` or `bytes`, or `websocket.disconnect`.
    pub fn websocket<'py>(&self, py: Python<'py>, msg: Received) -> PyResult<Bound<'py, PyDict>> {
        let event = PyDict::new(py);
        match msg {
            Received::Text(text) => {
                event.set_item(self.type_.bind(py), self.ws_receive.bind(py))?;
                event.set_item(self.text.bind(py), text.as_str())?;
            }
            Received::Binary(bytes) => {
                event.set_item(self.type_.bind(py), self.ws_receive.bind(py))?;
                event.set_item(self.bytes.bind(py), PyBytes::new(py, &bytes))?;
            }
            Received::Closed { code, reason } => {
                event.set_item(self.type_.bind(py), self.ws_disconnect.bind(py))?;
                event.set_item(self.code.bind(py), code)?;
                event.set_item(self.reason.bind(py), reason)?;
            }
        }
        Ok(event)
    }

    pub fn websocket_connect<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let event = PyDict::new(py);
        event.set_item(self.type_.bind(py), self.ws_connect.bind(py))?;
        Ok(event)
    }

    /// A message the app sent: the dict and what its `type` says.
    pub fn read<'a, 'py>(
        &self,
        message: &'a Bound<'py, PyAny>,
    ) -> PyResult<(&'a Bound<'py, PyDict>, Option<Sent>)> {
        let py = message.py();
        let msg = message
            .cast::<PyDict>()
            .map_err(|_| PyTypeError::new_err("ASGI messages must be dicts"))?;
        let kind = msg.get_item(self.type_.bind(py))?.ok_or_else(|| {
            pyo3::exceptions::PyValueError::new_err("an ASGI message is missing the 'type' key")
        })?;
        let kind = kind
            .cast::<PyString>()
            .map_err(|_| PyTypeError::new_err("ASGI message 'type' must be a str"))?
            .to_str()?;
        let sent = self.kind(kind);
        Ok((msg, sent))
    }

    fn kind(&self, kind: &str) -> Option<Sent> {
        match kind {
            "http.response.start" => Some(Sent::Start),
            "http.response.body" => Some(Sent::Body),
            "http.response.trailers" => Some(Sent::Trailers),
            "http.response.pathsend" => Some(Sent::PathSend),
            "websocket.accept" => Some(Sent::WsAccept),
            "websocket.send" => Some(Sent::WsSend),
            "websocket.close" => Some(Sent::WsClose),
            "websocket.http.response.start" => Some(Sent::WsDenyStart),
            "websocket.http.response.body" => Some(Sent::WsDenyBody),
            _ => None,
        }
    }
}
