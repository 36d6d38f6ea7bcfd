//! Websockets (RFC 6455) for the async interfaces: the upgrade handshake,
//! the [`Session`] the app's objects share, the frame task that moves
//! frames, and the Python-facing halves of `receive` and `send` that ASGI
//! and RSGI wrap in their own message shapes. Framing, fragment reassembly
//! and answering the client's pings are tungstenite's; the server's own
//! keep-alive pings are the frame task's.
//!
//! [`AsyncHandler`] is the whole hyper-facing handler of ASGI and RSGI:
//! plain requests go to the interface's [`AsyncApp`], upgrades to a
//! session here.
//!
//! Within the folder the files use each other one way: `handler` uses
//! `upgrade`, which starts a `session` and its `frame_task` (whose pings
//! `keepalive` schedules, and which reads through `read_ahead`); `calls`
//! (the app's side) uses `app` and `session`; `session` knows neither.

mod app;
mod calls;
mod frame_task;
mod handler;
mod handshake;
mod inbox;
mod keepalive;
mod read_ahead;
mod session;
#[cfg(test)]
pub(crate) mod testing;
mod upgrade;

pub(crate) use app::WebsocketApp;
pub(crate) use calls::{receive, refused, send};
pub(crate) use handler::{AsyncApp, AsyncHandler};
pub(crate) use handshake::{Config, subprotocols};
pub(crate) use inbox::Received;
pub(crate) use session::{Refused, Session};
pub(crate) use tokio_tungstenite::tungstenite::Message;
