//! [`Session`]: one websocket as the app sees it, from the handshake to
//! the close, shared by the interface's Python objects (on the event-loop
//! thread) and the [`Pump`](super::Pump) that moves its frames (on tokio).

use crate::sync::{Mutex, MutexGuard};
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::header::HeaderMap;
use hyper::{Request, Response, StatusCode};
use pyo3::Python;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

use super::calls::WebsocketApp;
use super::handshake::{Config, accept_response, unsupported_version};
use super::inbox::Inbox;
use super::pump::Pump;
use crate::http::{ConnInfo, Reply, ResponseBody, StreamSender, Weighed, error_response, exchange};

impl Weighed for Message {
    /// Close frames cost nothing: closing must never wait for room.
    fn weight(&self) -> usize {
        match self {
            Message::Close(_) => 0,
            other => other.len(),
        }
    }
}

/// Why the app may not do what it asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Sending before the handshake was accepted.
    NotAccepted,
    /// Accepting or rejecting twice.
    AlreadyAnswered,
    /// The app itself closed the websocket already.
    ClosedByApp,
    /// The client closed it or went away.
    ClientGone,
}

enum Phase {
    /// The handshake waits for the app's answer.
    Connecting(Reply),
    Open,
    /// The app closed (or refused) the websocket.
    Closed,
}

struct State {
    phase: Phase,
    /// Counts the handshake against `--backpressure`; an open websocket
    /// no longer does (it may live for hours).
    permit: Option<OwnedSemaphorePermit>,
}

pub(crate) struct Session {
    pub(crate) inbox: Inbox,
    outbox: StreamSender<Message>,
    /// The request's handshake headers (key and version).
    request: HeaderMap,
    state: Mutex<State>,
}

impl Session {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock()
    }

    /// Answers the handshake with `101`.
    pub(crate) fn accept(
        &self,
        subprotocol: Option<&str>,
        headers: HeaderMap,
    ) -> Result<(), String> {
        let mut state = self.lock();
        let Phase::Connecting(_) = &state.phase else {
            return Err(refusal(&state.phase).to_owned());
        };
        let response = accept_response(&self.request, subprotocol, headers)?;
        let Phase::Connecting(reply) = std::mem::replace(&mut state.phase, Phase::Open) else {
            unreachable!("checked above")
        };
        state.permit = None;
        drop(state);
        if reply.send(response).is_err() {
            self.inbox.close(1006, "");
        }
        Ok(())
    }

    /// Answers the handshake with an ordinary HTTP response instead.
    pub(crate) fn deny(&self, response: Response<ResponseBody>) -> Result<(), Refused> {
        let mut state = self.lock();
        match std::mem::replace(&mut state.phase, Phase::Closed) {
            Phase::Connecting(reply) => {
                state.permit = None;
                drop(state);
                let _ = reply.send(response);
                self.inbox.close(1006, "");
                Ok(())
            }
            other => {
                state.phase = other;
                Err(Refused::AlreadyAnswered)
            }
        }
    }

    /// The channel for a message, if the websocket is open.
    pub(crate) fn outbox(&self) -> Result<StreamSender<Message>, Refused> {
        let state = self.lock();
        match state.phase {
            Phase::Open if !self.inbox.is_closed() => Ok(self.outbox.clone()),
            Phase::Open => Err(Refused::ClientGone),
            Phase::Connecting(_) => Err(Refused::NotAccepted),
            Phase::Closed => Err(Refused::ClosedByApp),
        }
    }

    /// The app closes the websocket: before the handshake was answered,
    /// that refuses it with 403; after, it sends a close frame.
    pub(crate) fn close(&self, code: u16, reason: &str) -> Result<(), Refused> {
        let mut state = self.lock();
        match std::mem::replace(&mut state.phase, Phase::Closed) {
            Phase::Connecting(reply) => {
                state.permit = None;
                drop(state);
                let _ = reply.send(error_response(StatusCode::FORBIDDEN));
                self.inbox.close(1006, "");
                Ok(())
            }
            Phase::Open => {
                drop(state);
                let frame = CloseFrame {
                    code: code.into(),
                    reason: reason.into(),
                };
                match self.outbox.try_send(Message::Close(Some(frame))) {
                    Ok(()) => Ok(()),
                    Err(_) => Err(Refused::ClientGone),
                }
            }
            Phase::Closed => Err(Refused::ClosedByApp),
        }
    }

    /// The app returned (`failed` false) or raised. A handshake it never
    /// answered is refused (403, or 500 when it raised); an open websocket
    /// is closed with 1000 (or 1011, internal error).
    pub(crate) fn finish(&self, failed: bool) {
        let phase = {
            let mut state = self.lock();
            state.permit = None;
            std::mem::replace(&mut state.phase, Phase::Closed)
        };
        match phase {
            Phase::Connecting(reply) => {
                let status = if failed {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::FORBIDDEN
                };
                let _ = reply.send(error_response(status));
                self.inbox.close(1006, "");
            }
            Phase::Open => {
                let (code, reason) = if failed {
                    (1011, "internal error")
                } else {
                    (1000, "")
                };
                let frame = CloseFrame {
                    code: code.into(),
                    reason: reason.into(),
                };
                let _ = self.outbox.try_send(Message::Close(Some(frame)));
            }
            Phase::Closed => {}
        }
    }

    /// Whether the handshake is still waiting for the app.
    pub(crate) fn is_connecting(&self) -> bool {
        matches!(self.lock().phase, Phase::Connecting(_))
    }
}

/// Why `accept` is refused in `phase`.
fn refusal(phase: &Phase) -> &'static str {
    match phase {
        Phase::Connecting(_) => "the websocket handshake is still open",
        Phase::Open => "the websocket was already accepted",
        Phase::Closed => "the websocket is already closed",
    }
}

/// Serves one upgrade request: admits it under `--backpressure`, has the
/// event-loop thread start `app` on the handshake,
/// and once the app accepted, starts the pump on the upgraded connection
/// (tracked, so a graceful stop waits for it). A client that leaves during
/// the handshake ends the session with 1006.
pub(crate) async fn serve<A: WebsocketApp>(
    limiter: &Arc<Semaphore>,
    req: Request<Incoming>,
    conn: &Arc<ConnInfo>,
    config: Config,
    app: &Arc<A>,
) -> Response<ResponseBody> {
    // Boxed: inline, the upgrade's larger state would make the future of
    // every plain request, which embeds this call, bigger too.
    Box::pin(serve_upgrade(limiter, req, conn, config, app)).await
}

async fn serve_upgrade<A: WebsocketApp>(
    limiter: &Arc<Semaphore>,
    mut req: Request<Incoming>,
    conn: &Arc<ConnInfo>,
    config: Config,
    app: &Arc<A>,
) -> Response<ResponseBody> {
    if let Some(refused) = unsupported_version(req.headers()) {
        return refused;
    }
    let upgrade = hyper::upgrade::on(&mut req);
    let mut pump = None;
    let response = exchange(limiter, req, |admitted| {
        let (outbox, outgoing) = StreamSender::new();
        let mut request = HeaderMap::new();
        for name in [
            hyper::header::SEC_WEBSOCKET_KEY,
            hyper::header::SEC_WEBSOCKET_VERSION,
        ] {
            if let Some(value) = admitted.head.headers.get(&name) {
                request.insert(name, value.clone());
            }
        }
        let session = Arc::new(Session {
            inbox: Inbox::default(),
            outbox,
            request,
            state: Mutex::new(State {
                phase: Phase::Connecting(admitted.reply),
                permit: Some(admitted.permit),
            }),
        });
        pump = Some(Pump::new(Arc::clone(&session), outgoing, config));
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
        && let Some(pump) = pump
    {
        let draining = conn.tasks.draining.clone();
        conn.tasks.tracker.spawn(pump.run(upgrade, draining));
    }
    response
}
