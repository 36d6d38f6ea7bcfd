//! ASGI 3: the `http` scope, the `receive`/`send` pair and the handler that
//! takes requests from hyper to the app.
//!
//! Lifespan is run by the Python side before the server starts serving;
//! this module only sees requests.

mod cycle;
mod message;
mod protocol;
mod scope;
mod websocket;

use std::sync::Arc;

use hyper::http::request::Parts;
use pyo3::prelude::*;
use tokio::sync::OwnedSemaphorePermit;

use crate::bridge::{AppRunner, Bridge, PyObj};
use crate::http::{ConnInfo, Reply, RequestBody};
use crate::ws;

pub(crate) use protocol::{HttpReceive, HttpSend};
pub(crate) use websocket::{WebsocketReceive, WebsocketSend};

use cycle::Cycle;
use message::Messages;
use scope::ScopeBuilder;

/// What the event-loop side needs to start an app call; touched only by
/// jobs running on the event-loop thread.
pub(crate) struct AsgiApp {
    /// Starts `run_http(scope, receive, send)` from `diorite.asgi` as a
    /// task (for websocket scopes too).
    runner: AppRunner,
    /// `loop.create_future`.
    create_future: PyObj,
    scope: ScopeBuilder,
    messages: Messages,
    bridge: Bridge,
}

impl AsgiApp {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        py: Python<'_>,
        runner: Py<PyAny>,
        spawn: Py<PyAny>,
        event_loop: &Bound<'_, PyAny>,
        template: Py<PyAny>,
        ws_template: Option<Py<PyAny>>,
        state: Option<Py<PyAny>>,
        bridge: Bridge,
    ) -> PyResult<Self> {
        Ok(Self {
            runner: AppRunner::new(runner, spawn),
            create_future: PyObj::from_bound(event_loop.getattr("create_future")?),
            scope: ScopeBuilder::new(py, template, ws_template, state)?,
            messages: Messages::new(py),
            bridge,
        })
    }
}

/// The handler ASGI gives the server.
pub(crate) type AsgiHandler = ws::AsyncHandler<AsgiApp>;

impl ws::AsyncApp for AsgiApp {
    type Call = Cycle;

    fn new_call(
        self: &Arc<Self>,
        body: Arc<RequestBody>,
        reply: Reply,
        permit: OwnedSemaphorePermit,
    ) -> Arc<Cycle> {
        Arc::new(Cycle::new(Arc::clone(self), body, reply, permit))
    }

    fn start_http(
        self: &Arc<Self>,
        py: Python<'_>,
        head: Parts,
        conn: Arc<ConnInfo>,
        cycle: Arc<Cycle>,
    ) {
        let args = || -> PyResult<_> {
            let scope = self.scope.build(py, &head, &conn)?;
            let receive = Py::new(py, HttpReceive::new(Arc::clone(&cycle)))?;
            let send = Py::new(py, HttpSend::new(Arc::clone(&cycle)))?;
            Ok((scope, receive, send))
        };
        let keep = |task| cycle.keep_task(task);
        let failed = || {
            cycle.finish(true);
        };
        self.runner.launch(py, "the ASGI app", args, keep, failed);
    }

    fn client_gone(cycle: &Arc<Cycle>) {
        cycle.client_gone();
    }
}
