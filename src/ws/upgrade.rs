//! [`serve`]: one websocket upgrade request, from admission to the task
//! that moves the upgraded connection's frames.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use pyo3::Python;

use super::app::WebsocketApp;
use super::frame_task::FrameTask;
use super::handshake::{Config, invalid_key, unsupported_version};
use super::session::Session;
use crate::http::{Backpressure, ConnInfo, Handover, ResponseBody, exchange};

/// Serves one upgrade request: admits it under `--backpressure`, has the
/// event-loop thread start `app` on the handshake,
/// and once the app accepted, starts the frame task on the upgraded connection
/// (tracked, so a graceful stop waits for it). A client that leaves during
/// the handshake ends the session with 1006.
pub(crate) async fn serve<A: WebsocketApp>(
    backpressure: &Backpressure,
    req: Request<Incoming>,
    conn: &Arc<ConnInfo>,
    config: Config,
    app: &Arc<A>,
) -> Response<ResponseBody> {
    // Boxed: inline, the upgrade's larger state would make the future of
    // every plain request, which embeds this call, bigger too.
    Box::pin(serve_upgrade(backpressure, req, conn, config, app)).await
}

async fn serve_upgrade<A: WebsocketApp>(
    backpressure: &Backpressure,
    mut req: Request<Incoming>,
    conn: &Arc<ConnInfo>,
    config: Config,
    app: &Arc<A>,
) -> Response<ResponseBody> {
    if let Some(refused) = unsupported_version(req.headers()).or_else(|| invalid_key(req.headers()))
    {
        return refused;
    }
    // Put there by the connection for a request asking to upgrade; absent
    // (HTTP/2), the frame task learns at once that no socket is coming.
    let upgrade = req
        .extensions_mut()
        .remove::<Handover>()
        .unwrap_or_default()
        .on_upgrade();
    let mut frames = None;
    let response = exchange(backpressure, req, |admitted| {
        let (session, outgoing) =
            Session::new(admitted.reply, admitted.permit, &admitted.head.headers);
        let session = Arc::new(session);
        frames = Some(FrameTask::new(Arc::clone(&session), outgoing, config));
        let (job_app, job_conn, job_session) =
            (Arc::clone(app), Arc::clone(conn), Arc::clone(&session));
        let head = admitted.head;
        let job = Box::new(move |py: Python<'_>| {
            job_app.start_websocket(py, head, job_conn, job_session)
        });
        if !app.bridge().submit(job) {
            return Err(StatusCode::SERVICE_UNAVAILABLE);
        }
        Ok(move || session.inbox.close(1006, ""))
    })
    .await;
    if response.status() == StatusCode::SWITCHING_PROTOCOLS
        && let Some(frames) = frames
    {
        let draining = conn.tasks.draining.clone();
        conn.tasks.tracker.spawn(frames.run(upgrade, draining));
    }
    response
}
