//! WSGI (PEP 3333): the environ, `start_response` and `write`, a streaming
//! `wsgi.input`, `wsgi.file_wrapper`, and the handler that runs the app on
//! a bounded pool of blocking threads.
//!
//! The app never runs on a tokio I/O thread. A streamed response is
//! iterated on a pool thread only while the client can take more: when the
//! socket is backed up, the iterator is parked with tokio and the thread
//! goes back to the pool until the client drains.

mod environ;
mod input;
mod response;
mod start;

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use pyo3::prelude::*;
use tokio::runtime::Handle;

use crate::bridge::{Outbox, PyObj, PythonPool};
use crate::http::{Backpressure, ConnInfo, Handler, ResponseBody, exchange};

pub(crate) use input::Input;
pub(crate) use response::FileWrapper;
pub(crate) use start::{StartResponse, Write};

use environ::EnvironBuilder;

/// Everything a pool thread needs to call the app.
pub(crate) struct WsgiApp {
    app: PyObj,
    environ: EnvironBuilder,
    /// The threads the app runs on.
    pool: Arc<PythonPool>,
    /// The I/O runtime, where parked iterators wait for the client.
    io: Handle,
    /// How complete responses go to the I/O thread.
    outbox: Arc<Outbox>,
}

impl WsgiApp {
    pub(crate) fn new(
        py: Python<'_>,
        app: Py<PyAny>,
        template: Py<PyAny>,
        pool: Arc<PythonPool>,
        io: Handle,
        outbox: Arc<Outbox>,
    ) -> PyResult<Self> {
        Ok(Self {
            app: PyObj::new(app),
            environ: EnvironBuilder::new(py, template)?,
            pool,
            io,
            outbox,
        })
    }

    /// Runs `job` on a pool thread. If the pool is closed (shutdown), the
    /// job is dropped unrun, which is safe: it holds Python objects only
    /// through `PyObj`; returns false then.
    fn run_on_pool(&self, job: impl FnOnce(Python<'_>) + Send + 'static) -> bool {
        self.pool.submit(Box::new(job))
    }
}

pub(crate) struct WsgiHandler {
    app: Arc<WsgiApp>,
    backpressure: Backpressure,
}

impl WsgiHandler {
    pub(crate) fn new(app: WsgiApp, backpressure: Backpressure) -> Self {
        Self {
            app: Arc::new(app),
            backpressure,
        }
    }
}

impl Handler for WsgiHandler {
    async fn handle(&self, req: Request<Incoming>, conn: &Arc<ConnInfo>) -> Response<ResponseBody> {
        exchange(&self.backpressure, req, |admitted| {
            let app = Arc::clone(&self.app);
            let conn = Arc::clone(conn);
            let gone_body = Arc::clone(&admitted.body);
            // Queued behind at most `--blocking-threads` running apps. A pool
            // closed by shutdown drops the job (and its reply) unrun, and the
            // client is told to come back, as the async interfaces do.
            let run_app = Arc::clone(&app);
            if !run_app.run_on_pool(move |py| response::call_app(py, app, admitted, &conn)) {
                return Err(StatusCode::SERVICE_UNAVAILABLE);
            }
            // A client that leaves before the head is ready stops the body
            // reader; the app sees the end of `wsgi.input` as an error.
            Ok(move || gone_body.close())
        })
        .await
    }
}
