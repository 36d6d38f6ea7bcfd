//! The strings ASGI messages are made of, interned once per worker, and
//! builders for the messages `receive()` returns.

use pyo3::prelude::*;

use crate::bridge::{Done, PyObj};
use crate::ws::Received;
use pyo3::exceptions::PyTypeError;
use pyo3::types::{PyBytes, PyDict, PyString};

pub(crate) struct Messages {
    /// The shared awaitable every `send` that needs no waiting returns.
    pub(crate) done: PyObj<Done>,
    pub(crate) type_: PyObj<PyString>,
    pub(crate) body: PyObj<PyString>,
    pub(crate) more_body: PyObj<PyString>,
    pub(crate) status: PyObj<PyString>,
    pub(crate) headers: PyObj<PyString>,
    pub(crate) trailers: PyObj<PyString>,
    pub(crate) more_trailers: PyObj<PyString>,
    pub(crate) path: PyObj<PyString>,
    pub(crate) http_request: PyObj<PyString>,
    pub(crate) http_disconnect: PyObj<PyString>,
    pub(crate) text: PyObj<PyString>,
    pub(crate) bytes: PyObj<PyString>,
    pub(crate) code: PyObj<PyString>,
    pub(crate) reason: PyObj<PyString>,
    pub(crate) subprotocol: PyObj<PyString>,
    pub(crate) ws_connect: PyObj<PyString>,
    pub(crate) ws_receive: PyObj<PyString>,
    pub(crate) ws_disconnect: PyObj<PyString>,
}

/// The `type` of a message the app sent.
pub(crate) enum Sent {
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
    pub(crate) fn new(py: Python<'_>) -> Self {
        let s = |text: &str| PyObj::from_bound(PyString::intern(py, text));
        Self {
            done: PyObj::new(Py::new(py, Done).expect("allocating the Done awaitable")),
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

    pub(crate) fn request<'py>(
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

    pub(crate) fn disconnect<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let msg = PyDict::new(py);
        msg.set_item(self.type_.bind(py), self.http_disconnect.bind(py))?;
        Ok(msg)
    }

    /// A received websocket message as the ASGI event `receive()` returns:
    /// `websocket.receive` with `text` or `bytes`, or `websocket.disconnect`.
    pub(crate) fn websocket<'py>(
        &self,
        py: Python<'py>,
        msg: Received,
    ) -> PyResult<Bound<'py, PyDict>> {
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

    pub(crate) fn websocket_connect<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let event = PyDict::new(py);
        event.set_item(self.type_.bind(py), self.ws_connect.bind(py))?;
        Ok(event)
    }

    /// A message the app sent: the dict and what its `type` says.
    pub(crate) fn read<'a, 'py>(
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
