//! For unit tests of the per-request state machines: an event loop that
//! is never run (futures are only created and resolved) and a bridge on a
//! current-thread runtime that the test drives by hand.

use std::convert::Infallible;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use pyo3::prelude::*;
use tokio::io::{AsyncWriteExt, DuplexStream};
use tokio::runtime::Runtime;
use tokio::sync::oneshot;

use super::Bridge;
use crate::http::{RequestBody, ResponseBody};
use crate::sync::Mutex;

pub(crate) struct TestLoop<'py> {
    pub(crate) py: Python<'py>,
    pub(crate) runtime: Runtime,
    pub(crate) bridge: Bridge,
    pub(crate) event_loop: Bound<'py, PyAny>,
}

impl<'py> TestLoop<'py> {
    pub(crate) fn new(py: Python<'py>) -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let bridge = Bridge::new(runtime.handle().clone()).unwrap();
        let event_loop = unstarted_loop(py);
        Self {
            py,
            runtime,
            bridge,
            event_loop,
        }
    }

    /// Lets the tokio tasks run, then runs the jobs they left for the
    /// loop thread.
    pub(crate) fn settle(&self) {
        self.runtime.block_on(async {
            for _ in 0..64 {
                tokio::task::yield_now().await;
            }
        });
        self.bridge.run_jobs(self.py);
    }

    /// A request body read from a real hyper connection, whose client
    /// side the test writes (in chunked encoding) with [`TestLoop::feed`].
    pub(crate) fn streamed_body(&self) -> (Arc<RequestBody>, DuplexStream) {
        self.runtime.block_on(async {
            let (mut client, server) = tokio::io::duplex(1024);
            let (tx, rx) = oneshot::channel();
            let tx = Mutex::new(Some(tx));
            let service = service_fn(move |req: Request<Incoming>| {
                if let Some(tx) = tx.lock().take() {
                    let _ = tx.send(req.into_body());
                }
                // Never answers: only the request body matters here.
                std::future::pending::<Result<Response<ResponseBody>, Infallible>>()
            });
            tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(server), service));
            client
                .write_all(b"POST / HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\n\r\n")
                .await
                .unwrap();
            (
                RequestBody::spawn(rx.await.unwrap(), Default::default(), None),
                client,
            )
        })
    }

    /// Writes `data` as the client and lets the server side take it in.
    pub(crate) fn feed(&self, client: &mut DuplexStream, data: &[u8]) {
        self.runtime.block_on(client.write_all(data)).unwrap();
        self.settle();
    }
}

/// A new asyncio loop that is never run: futures only need one to exist.
pub(crate) fn unstarted_loop(py: Python<'_>) -> Bound<'_, PyAny> {
    py.import("asyncio")
        .unwrap()
        .call_method0("new_event_loop")
        .unwrap()
}

impl Drop for TestLoop<'_> {
    fn drop(&mut self) {
        let _ = self.event_loop.call_method0("close");
    }
}
