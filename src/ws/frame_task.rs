//! [`FrameTask`]: the tokio task that owns an upgraded websocket connection.
//!
//! One task both reads and writes, so a message costs no hand-off between
//! tasks: it reads frames into the session's inbox (tungstenite reassembles
//! fragments and answers pings) while the inbox has room, and writes what
//! the app queued for the client. It stops reading when the app falls
//! behind, and the app's sends wait when the client falls behind, so
//! neither direction buffers without bound.
//!
//! It also sends the keep-alive pings (`--ws-ping-interval`) and closes
//! the connection with 1011 when one goes unanswered for
//! `--ws-ping-timeout`. The pong deadline only runs while the task reads,
//! and starts again when reading resumes: when the app is behind and
//! reading has stopped, the client's pong may be waiting unread in the
//! socket, and the client is not at fault.

use std::pin::Pin;
use std::sync::Arc;
use std::task::ready;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::oneshot;
use tokio::time::{Instant, Sleep};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_util::sync::CancellationToken;

use super::handshake::Config;
use super::inbox::Received;
use super::keepalive::{Due, Keepalive};
use super::read_ahead::{ReadAhead, SMALL_READS};
use super::session::{Outgoing, Session};
use crate::http::{Queued, Upgraded};

/// How long a close handshake may take before the connection is dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Close code for a client that vanished without a close frame.
const ABNORMAL: u16 = 1006;
/// Close code sent to clients when the server stops.
const GOING_AWAY: u16 = 1001;
/// Close code and reason for a client that left a ping unanswered: those
/// of the `websockets` library, which Uvicorn serves websockets with.
const PING_TIMEOUT: (u16, &str) = (1011, "keepalive ping timeout");

pub(crate) struct FrameTask {
    session: Arc<Session>,
    outgoing: Outgoing,
    config: Config,
}

type Socket = WebSocketStream<ReadAhead<Upgraded>>;

impl FrameTask {
    pub(crate) fn new(session: Arc<Session>, outgoing: Outgoing, config: Config) -> Self {
        Self {
            session,
            outgoing,
            config,
        }
    }

    /// Waits for the connection to be handed over, then moves messages
    /// until the websocket is closed. `draining` starts a close (1001).
    ///
    /// An async block rather than an `async fn`: the latter keeps a second
    /// copy of its arguments for the task's whole life (rust-lang/rust
    /// #62958), and every open websocket's task would carry it.
    #[allow(clippy::manual_async_fn)]
    pub(crate) fn run(
        mut self,
        upgrade: oneshot::Receiver<Upgraded>,
        draining: CancellationToken,
    ) -> impl Future<Output = ()> + Send {
        async move {
            let Ok(upgraded) = upgrade.await else {
                self.session.inbox.close(ABNORMAL, "");
                return;
            };
            let limit = Some(self.config.max_message_size);
            let config = WebSocketConfig::default()
                .read_buffer_size(SMALL_READS)
                .max_message_size(limit)
                .max_frame_size(limit);
            let upgraded = ReadAhead::new(upgraded);
            let mut socket =
                WebSocketStream::from_raw_socket(upgraded, Role::Server, Some(config)).await;
            self.move_frames(&mut socket, draining).await;
            // Whatever ended it, the app's `receive()` now reports the close
            // (if the client's close frame did not already).
            self.session.inbox.close(ABNORMAL, "");
        }
    }

    async fn move_frames(&mut self, socket: &mut Socket, draining: CancellationToken) {
        // Set once a close frame went out; `timer` then holds the deadline
        // for the client's.
        let mut closing = false;
        // Made once: a new one per message would cost a lock each time.
        let drained = draining.cancelled();
        tokio::pin!(drained);
        let (interval, timeout) = (self.config.ping_interval, self.config.ping_timeout);
        let mut keepalive = Keepalive::new(interval, timeout, Instant::now());
        // One timer, reset when it fires: a new one per message would cost
        // a trip to tokio's timer wheel each time. Once closing, it is the
        // close deadline (pings have stopped): a second timer would be
        // space every idle websocket's task keeps.
        let start = keepalive
            .as_ref()
            .map_or_else(Instant::now, Keepalive::next_wake);
        let timer = tokio::time::sleep_until(start);
        tokio::pin!(timer);
        let mut was_reading = true;
        loop {
            let inbox = &self.session.inbox;
            let reading = inbox.has_room();
            if reading
                && !was_reading
                && let Some(keepalive) = keepalive.as_mut()
            {
                keepalive.reading_again(Instant::now());
            }
            was_reading = reading;
            tokio::select! {
                biased;
                item = self.outgoing.recv(), if !closing => {
                    let Some(first) = item else { return };
                    match write(&mut self.outgoing, socket, first).await {
                        Ok(true) => await_close(&mut closing, timer.as_mut()),
                        Ok(false) => {}
                        Err(_) => return,
                    }
                }
                msg = socket.next(), if reading => match msg {
                    Some(Ok(Message::Text(text))) => inbox.push(Received::Text(text)),
                    Some(Ok(Message::Binary(bytes))) => inbox.push(Received::Binary(bytes)),
                    Some(Ok(Message::Close(frame))) => {
                        let (code, reason) = match frame {
                            Some(f) => (u16::from(f.code), f.reason.as_str().to_owned()),
                            None => (1005, String::new()),
                        };
                        inbox.push(Received::Closed { code, reason });
                        // tungstenite queued the answering close frame;
                        // reading on sends it and then ends the stream.
                        if !closing {
                            await_close(&mut closing, timer.as_mut());
                        }
                    }
                    Some(Ok(Message::Pong(_))) => {
                        if let Some(keepalive) = keepalive.as_mut() {
                            keepalive.pong();
                        }
                    }
                    Some(Ok(_)) => {} // a ping: answered by tungstenite
                    Some(Err(WsError::Capacity(CapacityError::MessageTooLong { .. }))) => {
                        inbox.close(1009, "message too big");
                        let _ = send_close(socket, CloseCode::Size, "message too big").await;
                        await_close(&mut closing, timer.as_mut());
                    }
                    Some(Err(WsError::Protocol(_) | WsError::Utf8(_))) => {
                        inbox.close(1002, "protocol error");
                        let _ = send_close(socket, CloseCode::Protocol, "protocol error").await;
                        await_close(&mut closing, timer.as_mut());
                    }
                    Some(Err(_)) | None => return,
                },
                () = inbox.room_freed(), if !reading => {}
                // After the read: a pong already in the socket is read
                // before its deadline is judged.
                () = &mut timer, if closing || (reading && keepalive.is_some()) => {
                    if closing {
                        return;
                    }
                    let Some(keepalive) = keepalive.as_mut() else { continue };
                    match keepalive.tick(Instant::now()) {
                        Due::Ping => {
                            if socket.send(Message::Ping(Bytes::new())).await.is_err() {
                                return;
                            }
                        }
                        Due::TimedOut => {
                            let (code, reason) = PING_TIMEOUT;
                            inbox.close(code, reason);
                            // As the websockets library does, the connection
                            // is dropped without waiting for the client's
                            // close frame: it is presumed gone. The bound is
                            // for a client that also stopped reading.
                            let close = send_close(socket, CloseCode::Error, reason);
                            // Boxed: a rare path, and the task is as large
                            // as its largest await.
                            let _ = Box::pin(tokio::time::timeout(CLOSE_TIMEOUT, close)).await;
                            return;
                        }
                        Due::Nothing => {}
                    }
                    timer.as_mut().reset(keepalive.next_wake());
                }
                () = &mut drained, if !closing => {
                    let _ = send_close(socket, CloseCode::Away, "server shutting down").await;
                    inbox.close(GOING_AWAY, "server shutting down");
                    await_close(&mut closing, timer.as_mut());
                }
            }
        }
    }
}

/// Writes `first` and whatever else is queued, then flushes once.
/// Returns whether a close frame went out.
///
/// Polled by hand: `feed` and `flush` futures in an async fn, with the
/// copies of the message it keeps, made this the task's largest await,
/// and an idle websocket's task is as large as that (200 bytes more).
fn write<'a>(
    outgoing: &'a mut Outgoing,
    socket: &'a mut Socket,
    first: Queued<Message>,
) -> impl Future<Output = Result<bool, WsError>> + 'a {
    let mut next = Some(first);
    let mut closed = false;
    std::future::poll_fn(move |cx| {
        while next.is_some() {
            ready!(socket.poll_ready_unpin(cx))?;
            let (msg, charge) = next.take().expect("checked by the loop");
            closed = matches!(msg, Message::Close(_));
            socket.start_send_unpin(msg)?;
            // The bytes are in tungstenite's buffer now: the app may queue more.
            drop(charge);
            if closed {
                break;
            }
            next = outgoing.try_recv();
        }
        socket.poll_flush_unpin(cx).map_ok(|()| closed)
    })
}

async fn send_close(socket: &mut Socket, code: CloseCode, reason: &str) -> Result<(), WsError> {
    let frame = CloseFrame {
        code,
        reason: Utf8Bytes::from(reason),
    };
    socket.send(Message::Close(Some(frame))).await
}

/// Starts the wait for the client's close frame, on the task's one timer.
fn await_close(closing: &mut bool, timer: Pin<&mut Sleep>) {
    *closing = true;
    timer.reset(Instant::now() + CLOSE_TIMEOUT);
}
