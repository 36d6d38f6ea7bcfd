//! [`Session`]: one websocket as the app sees it, from the handshake to
//! the close, shared by the interface's Python objects (on the event-loop
//! thread) and the [`FrameTask`](super::frame_task::FrameTask) that moves
//! its frames (on tokio). The handshake's answer, the app's close and the
//! end of the app are transitions of its [`Phase`], made here only.

use crate::sync::{Mutex, MutexGuard};

use hyper::header::{HeaderMap, SEC_WEBSOCKET_KEY};
use hyper::{Response, StatusCode};
use tokio::sync::OwnedSemaphorePermit;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

use super::handshake::accept_response;
use super::inbox::Inbox;
use crate::http::{Reply, ResponseBody, StreamReceiver, StreamSender, Weighed, error_response};

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
    /// The handshake waits for the app's answer, which needs the
    /// request's `Sec-WebSocket-Key`; an open websocket keeps nothing of
    /// the handshake (it may be idle for hours, times thousands).
    Connecting(Reply, Option<Box<[u8]>>),
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
    /// Messages for the client, taken by the frame task.
    sender: StreamSender<Message>,
    state: Mutex<State>,
}

/// The frame task's end of [`Session`]'s sender.
pub(crate) type Outgoing = StreamReceiver<Message>;

impl Session {
    /// A session whose handshake (`handshake`: the request's headers)
    /// waits for the app's answer on `reply`, counted against
    /// `--backpressure` by `permit` until then.
    pub(crate) fn new(
        reply: Reply,
        permit: OwnedSemaphorePermit,
        handshake: &HeaderMap,
    ) -> (Self, Outgoing) {
        let (sender, outgoing) = StreamSender::new();
        // A copy: a slice of the request's buffer would keep all of it.
        let key = handshake
            .get(SEC_WEBSOCKET_KEY)
            .map(|key| key.as_bytes().into());
        let session = Self {
            inbox: Inbox::default(),
            sender,
            state: Mutex::new(State {
                phase: Phase::Connecting(reply, key),
                permit: Some(permit),
            }),
        };
        (session, outgoing)
    }

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
        let Phase::Connecting(_, key) = &state.phase else {
            return Err(refusal(&state.phase).to_owned());
        };
        let response = accept_response(key.as_deref(), subprotocol, headers)?;
        let Phase::Connecting(reply, _) = std::mem::replace(&mut state.phase, Phase::Open) else {
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
            Phase::Connecting(reply, _) => {
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
    pub(crate) fn sender(&self) -> Result<StreamSender<Message>, Refused> {
        let state = self.lock();
        match state.phase {
            Phase::Open if !self.inbox.is_closed() => Ok(self.sender.clone()),
            Phase::Open => Err(Refused::ClientGone),
            Phase::Connecting(..) => Err(Refused::NotAccepted),
            Phase::Closed => Err(Refused::ClosedByApp),
        }
    }

    /// The app closes the websocket: before the handshake was answered,
    /// that refuses it with 403; after, it sends a close frame.
    pub(crate) fn close(&self, code: u16, reason: &str) -> Result<(), Refused> {
        let mut state = self.lock();
        match std::mem::replace(&mut state.phase, Phase::Closed) {
            Phase::Connecting(reply, _) => {
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
                match self.sender.try_send(Message::Close(Some(frame))) {
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
            Phase::Connecting(reply, _) => {
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
                let _ = self.sender.try_send(Message::Close(Some(frame)));
            }
            Phase::Closed => {}
        }
    }

    /// Whether the handshake is still waiting for the app.
    pub(crate) fn is_connecting(&self) -> bool {
        matches!(self.lock().phase, Phase::Connecting(..))
    }
}

/// Why `accept` is refused in `phase`.
fn refusal(phase: &Phase) -> &'static str {
    match phase {
        Phase::Connecting(..) => "the websocket handshake is still open",
        Phase::Open => "the websocket was already accepted",
        Phase::Closed => "the websocket is already closed",
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use hyper::header::HeaderValue;
    use tokio::sync::{Semaphore, oneshot};

    use super::*;
    use crate::ws::Received;

    /// A session waiting for the app's answer, the receiving ends of its
    /// reply channel and of its frames, and the semaphore its permit is from.
    fn connecting() -> (
        Session,
        oneshot::Receiver<Response<ResponseBody>>,
        Outgoing,
        Arc<Semaphore>,
    ) {
        let limiter = Arc::new(Semaphore::new(1));
        let permit = Arc::clone(&limiter).try_acquire_owned().unwrap();
        let (reply, answer) = oneshot::channel();
        let mut headers = HeaderMap::new();
        headers.insert(
            hyper::header::SEC_WEBSOCKET_KEY,
            HeaderValue::from_static("dGhlIHNhbXBsZSBub25jZQ=="),
        );
        headers.insert(
            hyper::header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        let (session, outgoing) = Session::new(reply, permit, &headers);
        (session, answer, outgoing, limiter)
    }

    fn closed_code(session: &Session) -> Option<u16> {
        match session.inbox.take(|| ()) {
            Some(Received::Closed { code, .. }) => Some(code),
            _ => None,
        }
    }

    fn sent_close(outgoing: &mut Outgoing) -> Option<u16> {
        match outgoing.try_recv() {
            Some((Message::Close(Some(frame)), _)) => Some(frame.code.into()),
            _ => None,
        }
    }

    #[test]
    fn accept_answers_101_once_and_frees_the_backpressure_place() {
        let (session, mut answer, _outgoing, limiter) = connecting();
        assert!(session.is_connecting());
        assert_eq!(session.sender().err(), Some(Refused::NotAccepted));
        session.accept(Some("chat"), HeaderMap::new()).unwrap();
        let response = answer.try_recv().unwrap();
        assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
        assert_eq!(response.headers()["sec-websocket-protocol"], "chat");
        assert_eq!(limiter.available_permits(), 1);
        assert!(!session.is_connecting());
        assert!(session.sender().is_ok());
        assert_eq!(
            session.accept(None, HeaderMap::new()).unwrap_err(),
            "the websocket was already accepted"
        );
        assert_eq!(
            session.deny(error_response(StatusCode::FORBIDDEN)).err(),
            Some(Refused::AlreadyAnswered)
        );
    }

    #[test]
    fn close_before_accepting_refuses_with_403_and_ends_the_inbox() {
        let (session, mut answer, _outgoing, limiter) = connecting();
        session.close(1000, "").unwrap();
        assert_eq!(answer.try_recv().unwrap().status(), StatusCode::FORBIDDEN);
        assert_eq!(closed_code(&session), Some(1006));
        assert_eq!(limiter.available_permits(), 1);
        assert_eq!(session.close(1000, "").err(), Some(Refused::ClosedByApp));
        assert_eq!(session.sender().err(), Some(Refused::ClosedByApp));
    }

    #[test]
    fn close_after_accepting_queues_a_close_frame() {
        let (session, _answer, mut outgoing, _limiter) = connecting();
        session.accept(None, HeaderMap::new()).unwrap();
        session.close(4001, "bye").unwrap();
        assert_eq!(sent_close(&mut outgoing), Some(4001));
        assert_eq!(session.sender().err(), Some(Refused::ClosedByApp));
    }

    #[test]
    fn finish_answers_what_the_app_left_open() {
        for (failed, status) in [
            (false, StatusCode::FORBIDDEN),
            (true, StatusCode::INTERNAL_SERVER_ERROR),
        ] {
            let (session, mut answer, _outgoing, _limiter) = connecting();
            session.finish(failed);
            assert_eq!(answer.try_recv().unwrap().status(), status);
            assert_eq!(closed_code(&session), Some(1006));
        }
        for (failed, code) in [(false, 1000), (true, 1011)] {
            let (session, _answer, mut outgoing, _limiter) = connecting();
            session.accept(None, HeaderMap::new()).unwrap();
            session.finish(failed);
            assert_eq!(sent_close(&mut outgoing), Some(code));
            // Finishing twice (the app's task and its done callback) is harmless.
            session.finish(failed);
            assert!(outgoing.try_recv().is_none());
        }
    }

    #[test]
    fn a_client_gone_before_the_answer_is_reported_to_the_sender() {
        let (session, answer, _outgoing, _limiter) = connecting();
        drop(answer);
        session.accept(None, HeaderMap::new()).unwrap();
        assert_eq!(closed_code(&session), Some(1006));
        assert_eq!(session.sender().err(), Some(Refused::ClientGone));
    }

    #[test]
    fn deny_sends_the_apps_response() {
        let (session, mut answer, _outgoing, _limiter) = connecting();
        session
            .deny(error_response(StatusCode::UNAUTHORIZED))
            .unwrap();
        assert_eq!(
            answer.try_recv().unwrap().status(),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            session.deny(error_response(StatusCode::OK)).err(),
            Some(Refused::AlreadyAnswered)
        );
    }
}
