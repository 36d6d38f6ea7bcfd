//! RSGI (the interface Granian defined): the scope and header objects, the
//! HTTP protocol object with its `response_*` methods, and the handler that
//! takes requests from hyper to the app. Websockets come with `ws/`.

mod body;
mod call;
mod protocol;
mod scope;
mod websocket;

use std::sync::Arc;

use hyper::http::request::Parts;
use pyo3::prelude::*;
use tokio::sync::OwnedSemaphorePermit;

use crate::bridge::{AppRunner, Bridge, Done, PyObj};
use crate::http::{ConnInfo, Reply, RequestBody};
use crate::ws;

pub(crate) use protocol::{BodyChunks, HttpProtocol, StreamTransport};
pub(crate) use scope::{Headers, Scope};
pub(crate) use websocket::{WebsocketMessage, WebsocketProtocol, WebsocketTransport};

use call::HttpCall;

/// The RSGI version diorite implements (as Granian 2.8 does).
pub(crate) const RSGI_VERSION: &str = "1.6";

/// What the event-loop side needs to start an app call.
pub(crate) struct RsgiApp {
    /// Starts `run_rsgi(scope, protocol)` from `diorite.rsgi` as a task.
    runner: AppRunner,
    /// `loop.create_future`.
    create_future: PyObj,
    done: PyObj,
    bridge: Bridge,
}

impl RsgiApp {
    pub(crate) fn new(
        py: Python<'_>,
        runner: Py<PyAny>,
        spawn: Py<PyAny>,
        event_loop: &Bound<'_, PyAny>,
        bridge: Bridge,
    ) -> PyResult<Self> {
        Ok(Self {
            runner: AppRunner::new(runner, spawn),
            create_future: PyObj::from_bound(event_loop.getattr("create_future")?),
            done: PyObj::new(Py::new(py, Done)?.into_any()),
            bridge,
        })
    }
}

/// The handler RSGI gives the server.
pub(crate) type RsgiHandler = ws::AsyncHandler<RsgiApp>;

impl ws::AsyncApp for RsgiApp {
    type Call = HttpCall;

    fn new_call(
        self: &Arc<Self>,
        body: Arc<RequestBody>,
        reply: Reply,
        permit: OwnedSemaphorePermit,
    ) -> Arc<HttpCall> {
        Arc::new(HttpCall::new(Arc::clone(self), body, reply, permit))
    }

    fn start_http(
        self: &Arc<Self>,
        py: Python<'_>,
        head: Parts,
        conn: Arc<ConnInfo>,
        call: Arc<HttpCall>,
    ) {
        let args = || -> PyResult<_> {
            let scope = Py::new(py, Scope::new(head, conn))?;
            let protocol = Py::new(py, HttpProtocol::new(Arc::clone(&call)))?;
            Ok((scope, protocol))
        };
        let keep = |task| call.keep_task(task);
        let failed = || {
            call.finish(py, true);
        };
        self.runner.launch(py, "the RSGI app", args, keep, failed);
    }

    fn client_gone(call: &Arc<HttpCall>) {
        call.client_gone();
    }
}
