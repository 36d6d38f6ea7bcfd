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

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use pyo3::prelude::*;
use tokio::sync::Semaphore;

use crate::bridge::{AppRunner, Bridge, PyObj};
use crate::http::{ConnInfo, Handler, ResponseBody, exchange};
use crate::ws;

pub(crate) use protocol::{Receive, Send};
pub(crate) use websocket::{WebsocketReceive, WebsocketSend};

use crate::log::{self, Logger};
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

    /// Runs on the event-loop thread: builds the scope and starts the app.
    fn start(
        &self,
        py: Python<'_>,
        head: hyper::http::request::Parts,
        conn: &ConnInfo,
        cycle: Arc<Cycle>,
    ) {
        let started = (|| -> PyResult<()> {
            let scope = self.scope.build(py, &head, conn)?;
            let receive = Py::new(py, Receive::new(Arc::clone(&cycle)))?;
            let send = Py::new(py, Send::new(Arc::clone(&cycle)))?;
            let task = self.runner.start(py, (scope, receive, send))?;
            cycle.keep_task(task);
            Ok(())
        })();
        if let Err(err) = started {
            log::error(
                py,
                Logger::App,
                "the ASGI app could not be started",
                Some(err),
            );
            cycle.abort();
        }
    }
}

/// The hyper-facing half: one per worker, shared by every connection.
pub(crate) struct AsgiHandler {
    app: Arc<AsgiApp>,
    limiter: Arc<Semaphore>,
    /// `None` with `--no-ws`: upgrade requests are then plain requests.
    websockets: Option<ws::Config>,
}

impl AsgiHandler {
    pub(crate) fn new(app: AsgiApp, backpressure: usize, websockets: Option<ws::Config>) -> Self {
        Self {
            app: Arc::new(app),
            limiter: Arc::new(Semaphore::new(backpressure.max(1))),
            websockets,
        }
    }
}

impl Handler for AsgiHandler {
    async fn handle(&self, req: Request<Incoming>, conn: &Arc<ConnInfo>) -> Response<ResponseBody> {
        if let Some(config) = self.websockets
            && ws::is_upgrade(&req)
        {
            return ws::serve(&self.limiter, req, conn, config, &self.app).await;
        }
        exchange(&self.limiter, req, |admitted| {
            let cycle = Arc::new(Cycle::new(
                Arc::clone(&self.app),
                admitted.body,
                admitted.reply,
                admitted.permit,
            ));
            let head = admitted.head;
            let app = Arc::clone(&self.app);
            let conn = Arc::clone(conn);
            let job_cycle = Arc::clone(&cycle);
            if !self
                .app
                .bridge
                .submit(Box::new(move |py| app.start(py, head, &conn, job_cycle)))
            {
                return Err(StatusCode::SERVICE_UNAVAILABLE);
            }
            // The client leaving before the head is ready reaches the app
            // through `receive()`.
            Ok(move || cycle.client_gone())
        })
        .await
    }
}
