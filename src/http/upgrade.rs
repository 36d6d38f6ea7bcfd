//! [`Handover`]: how an HTTP/1 connection that answered `101 Switching
//! Protocols` reaches the task that speaks the new protocol.
//!
//! hyper hands an upgraded connection over itself only when it drives the
//! connection to its end; the server instead takes its connections back
//! from hyper while they are idle (to free hyper's buffers), so it drives
//! them with hyper's lower-level API and does the handing over here.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::oneshot;

/// A connection's socket once upgraded, with any bytes already read.
pub(crate) trait UpgradedIo: AsyncRead + AsyncWrite + Send + Unpin {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin> UpgradedIo for T {}

pub(crate) type Upgraded = Box<dyn UpgradedIo>;

/// One connection's hand-over point. The request being upgraded asks for
/// the socket ([`Handover::on_upgrade`]); the connection gives it once its
/// `101` response is written ([`Handover::fulfil`]), or drops it, and the
/// request's receiver then reports that no socket is coming.
#[derive(Clone, Default)]
pub(crate) struct Handover(Arc<Mutex<Option<oneshot::Sender<Upgraded>>>>);

impl Handover {
    /// The socket, once the connection has written the `101` response.
    pub(crate) fn on_upgrade(&self) -> oneshot::Receiver<Upgraded> {
        let (sender, receiver) = oneshot::channel();
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(sender);
        receiver
    }

    /// Tells the request waiting for the socket, if any, that none is
    /// coming (the connection ended). Needed because the hand-over point
    /// can outlive the connection: requests carry it, and an app may keep
    /// a request's head.
    pub(crate) fn cancel(&self) {
        drop(self.0.lock().unwrap_or_else(|e| e.into_inner()).take());
    }

    /// Gives the socket to the request that asked for it (if it still
    /// waits; otherwise the socket is dropped, closing it).
    pub(crate) fn fulfil(&self, io: Upgraded) {
        if let Some(sender) = self.0.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = sender.send(io);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_waiting_request_learns_when_no_socket_is_coming() {
        let handover = Handover::default();
        // A clone outlives the connection, as one kept in a request's
        // extensions would.
        let kept = handover.clone();
        let waiting = handover.on_upgrade();
        handover.cancel();
        assert!(waiting.await.is_err());
        let (socket, _client) = tokio::io::duplex(64);
        let waiting = kept.on_upgrade();
        kept.fulfil(Box::new(socket));
        assert!(waiting.await.is_ok());
    }
}
