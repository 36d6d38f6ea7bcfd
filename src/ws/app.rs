//! [`WebsocketApp`]: what an interface gives the websocket machinery.

use std::sync::Arc;

use hyper::http::request::Parts;
use pyo3::prelude::*;

use super::inbox::Received;
use super::session::Session;
use crate::bridge::{Bridge, PyObj};
use crate::http::ConnInfo;

/// How an interface starts its app on a handshake and how a received
/// message looks in Python. Implemented by the per-worker app state, which
/// also knows the bridge and the loop.
pub(crate) trait WebsocketApp: Send + Sync + 'static {
    /// Runs on the event-loop thread: starts the app on the handshake.
    fn start_websocket(
        self: &Arc<Self>,
        py: Python<'_>,
        head: Parts,
        conn: Arc<ConnInfo>,
        session: Arc<Session>,
    );

    fn to_python(&self, py: Python<'_>, msg: Received) -> PyResult<Py<PyAny>>;
    fn bridge(&self) -> &Bridge;
    /// `loop.create_future`.
    fn create_future(&self) -> &PyObj;
    /// The finished awaitable a send that needs no waiting returns.
    fn done(&self, py: Python<'_>) -> Py<PyAny>;
}
