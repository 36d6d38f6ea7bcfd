//! RSGI (the interface Granian defined): the scope and header objects, the
//! HTTP protocol object with its `response_*` methods, and the handler that
//! takes requests from hyper to the app. Websockets come with `ws/`.

mod body;
mod exchange;
mod protocol;
mod scope;
mod websocket;

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use pyo3::prelude::*;
use tokio::sync::Semaphore;

use crate::bridge::{AppRunner, Bridge, Done, PyObj};
use crate::http::{self, ConnInfo, Handler, ResponseBody};
use crate::ws;

pub(crate) use protocol::{BodyChunks, HttpProtocol, StreamTransport};
pub(crate) use scope::{Headers, Scope};
pub(crate) use websocket::{WebsocketMessage, WebsocketProtocol, WebsocketTransport};

use crate::log::{self, Logger};
use exchange::Exchange;

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

    fn start(
        &self,
        py: Python<'_>,
        head: hyper::http::request::Parts,
        conn: Arc<ConnInfo>,
        exchange: Arc<Exchange>,
    ) {
        let started = (|| -> PyResult<()> {
            let scope = Py::new(py, Scope::new(head, conn))?;
            let protocol = Py::new(py, HttpProtocol::new(Arc::clone(&exchange)))?;
            let task = self.runner.start(py, (scope, protocol))?;
            exchange.keep_task(task);
            Ok(())
        })();
        if let Err(err) = started {
            log::error(
                py,
                Logger::App,
                "the RSGI app could not be started",
                Some(err),
            );
            exchange.finish(py, true);
        }
    }
}

pub(crate) struct RsgiHandler {
    app: Arc<RsgiApp>,
    limiter: Arc<Semaphore>,
    /// `None` with `--no-ws`: upgrade requests are then plain requests.
    websockets: Option<ws::Config>,
}

impl RsgiHandler {
    pub(crate) fn new(app: RsgiApp, backpressure: usize, websockets: Option<ws::Config>) -> Self {
        Self {
            app: Arc::new(app),
            limiter: Arc::new(Semaphore::new(backpressure.max(1))),
            websockets,
        }
    }
}

impl Handler for RsgiHandler {
    async fn handle(&self, req: Request<Incoming>, conn: &Arc<ConnInfo>) -> Response<ResponseBody> {
        if let Some(config) = self.websockets
            && ws::is_upgrade(&req)
        {
            return ws::serve(&self.limiter, req, conn, config, &self.app).await;
        }
        http::exchange(&self.limiter, req, |admitted| {
            let exchange = Arc::new(Exchange::new(
                Arc::clone(&self.app),
                admitted.body,
                admitted.reply,
                admitted.permit,
            ));
            let head = admitted.head;
            let app = Arc::clone(&self.app);
            let conn = Arc::clone(conn);
            let job_exchange = Arc::clone(&exchange);
            if !self
                .app
                .bridge
                .submit(Box::new(move |py| app.start(py, head, conn, job_exchange)))
            {
                return Err(StatusCode::SERVICE_UNAVAILABLE);
            }
            Ok(move || exchange.client_gone())
        })
        .await
    }
}
