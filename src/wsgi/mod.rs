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
use std::sync::atomic::{AtomicUsize, Ordering};

use hyper::body::Incoming;
use hyper::{Request, Response};
use pyo3::prelude::*;
use tokio::runtime::Handle;
use tokio::sync::Semaphore;

use crate::bridge::PyObj;
use crate::http::{Admitted, ConnInfo, ResponseBody, exchange};
use crate::server::Handler;

pub use input::Input;
pub use response::FileWrapper;
pub use start::{StartResponse, Write};

use environ::EnvironBuilder;

/// Everything a pool thread needs to call the app.
pub struct WsgiApp {
    app: PyObj,
    /// `report(message, exc)`: logs under `diorite.app`, with a traceback.
    report: PyObj,
    environ: EnvironBuilder,
    /// The blocking pool the app runs on.
    pool: Handle,
    /// The I/O runtime, where parked iterators wait for the client.
    io: Handle,
    /// Jobs queued or running on the pool; shutdown checks it before the
    /// interpreter may finalize.
    busy: Arc<AtomicUsize>,
}

/// Counts one pool job for as long as it lives.
struct Busy(Arc<AtomicUsize>);

impl Busy {
    fn new(counter: &Arc<AtomicUsize>) -> Self {
        counter.fetch_add(1, Ordering::SeqCst);
        Self(Arc::clone(counter))
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl WsgiApp {
    pub fn new(
        py: Python<'_>,
        app: Py<PyAny>,
        report: Py<PyAny>,
        template: Py<PyAny>,
        pool: Handle,
        io: Handle,
    ) -> PyResult<Self> {
        Ok(Self {
            app: PyObj::new(app),
            report: PyObj::new(report),
            environ: EnvironBuilder::new(py, template)?,
            pool,
            io,
            busy: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// The counter of pool jobs not yet finished.
    pub fn busy(&self) -> Arc<AtomicUsize> {
        Arc::clone(&self.busy)
    }

    /// Runs `job` on the pool, attached to the interpreter.
    fn run_on_pool(&self, job: impl FnOnce(Python<'_>) + Send + 'static) {
        let busy = Busy::new(&self.busy);
        // If the pool is gone (shutdown), the closure is dropped unrun.
        drop(self.pool.spawn_blocking(move || {
            let _busy = busy;
            Python::attach(job);
        }));
    }

    /// Logs `message` with the current exception's traceback.
    fn report(&self, py: Python<'_>, message: &str, err: Option<PyErr>) {
        let exc = err
            .map(|e| e.into_value(py).into_any())
            .unwrap_or_else(|| py.None());
        if let Err(err) = self.report.bind(py).call1((message, exc)) {
            err.print(py);
        }
    }
}

pub struct WsgiHandler {
    app: Arc<WsgiApp>,
    limiter: Arc<Semaphore>,
}

impl WsgiHandler {
    pub fn new(app: WsgiApp, backpressure: usize) -> Self {
        Self {
            app: Arc::new(app),
            limiter: Arc::new(Semaphore::new(backpressure.max(1))),
        }
    }
}

impl Handler for WsgiHandler {
    async fn handle(&self, req: Request<Incoming>, conn: &Arc<ConnInfo>) -> Response<ResponseBody> {
        exchange(&self.limiter, req, |admitted| {
            let Admitted {
                head,
                body,
                permit,
                reply,
            } = admitted;
            let app = Arc::clone(&self.app);
            let conn = Arc::clone(conn);
            let gone_body = Arc::clone(&body);
            // Queued behind at most `--blocking-threads` running apps; if the
            // pool is gone (shutdown), the closure is dropped with its reply
            // and the client gets a 500.
            let run_app = Arc::clone(&app);
            run_app.run_on_pool(move |py| {
                response::call_app(py, app, head, &conn, body, reply, permit)
            });
            // A client that leaves before the head is ready stops the body
            // reader; the app sees the end of `wsgi.input` as an error.
            Ok(move || gone_body.close())
        })
        .await
    }
}
