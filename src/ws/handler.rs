//! [`AsyncHandler`]: the handler of both async interfaces, which differ
//! only in the per-request state their app shares with the event loop.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::http::request::Parts;
use hyper::{Request, Response, StatusCode};
use pyo3::Python;
use tokio::sync::OwnedSemaphorePermit;

use super::app::WebsocketApp;
use super::handshake::{Config, is_upgrade};
use super::upgrade::serve;
use crate::http::{Backpressure, ConnInfo, Handler, Reply, RequestBody, ResponseBody, exchange};

/// What an async interface's app does with a plain HTTP request.
pub(crate) trait AsyncApp: WebsocketApp {
    /// The state of one request, shared by tokio and the app's objects.
    type Call: Send + Sync + 'static;

    fn new_call(
        self: &Arc<Self>,
        body: Arc<RequestBody>,
        reply: Reply,
        permit: OwnedSemaphorePermit,
    ) -> Arc<Self::Call>;

    /// Runs on the event-loop thread: starts the app on the request.
    fn start_http(
        self: &Arc<Self>,
        py: Python<'_>,
        head: Parts,
        conn: Arc<ConnInfo>,
        call: Arc<Self::Call>,
    );

    /// Any thread: the client left before the response head was ready.
    fn client_gone(call: &Arc<Self::Call>);
}

/// The hyper-facing half: one per worker, shared by every connection.
pub(crate) struct AsyncHandler<A> {
    app: Arc<A>,
    backpressure: Backpressure,
    /// `None` with `--no-ws`: upgrade requests are then plain requests.
    websockets: Option<Config>,
}

impl<A: AsyncApp> AsyncHandler<A> {
    pub(crate) fn new(app: A, backpressure: Backpressure, websockets: Option<Config>) -> Self {
        Self {
            app: Arc::new(app),
            backpressure,
            websockets,
        }
    }
}

impl<A: AsyncApp> Handler for AsyncHandler<A> {
    async fn handle(&self, req: Request<Incoming>, conn: &Arc<ConnInfo>) -> Response<ResponseBody> {
        if let Some(config) = self.websockets
            && is_upgrade(&req)
        {
            return serve(&self.backpressure, req, conn, config, &self.app).await;
        }
        exchange(&self.backpressure, req, |admitted| {
            let call = self
                .app
                .new_call(admitted.body, admitted.reply, admitted.permit);
            let (app, conn, job_call) =
                (Arc::clone(&self.app), Arc::clone(conn), Arc::clone(&call));
            let head = admitted.head;
            let job = Box::new(move |py: Python<'_>| app.start_http(py, head, conn, job_call));
            if !self.app.bridge().submit(job) {
                return Err(StatusCode::SERVICE_UNAVAILABLE);
            }
            // The client leaving before the head is ready reaches the app
            // through its receive (ASGI) or disconnect wait (RSGI).
            Ok(move || A::client_gone(&call))
        })
        .await
    }
}
