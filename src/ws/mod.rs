//! Websockets (RFC 6455) for the async interfaces: the upgrade handshake,
//! the [`Session`] the app's objects share, the frame task that moves
//! frames, and the Python-facing halves of `receive` and `send` that ASGI
//! and RSGI wrap in their own message shapes. Framing, fragment reassembly
//! and ping/pong are tungstenite's.
//!
//! Within the folder the files use each other one way: `upgrade` (the
//! request) starts a `session` and its `frame_task`; `calls` (the app's
//! side) uses `app` and `session`; `session` knows neither.

mod app;
mod calls;
mod frame_task;
mod handshake;
mod inbox;
mod session;
mod upgrade;

pub(crate) use app::WebsocketApp;
pub(crate) use calls::{receive, refused, send};
pub(crate) use handshake::{Config, is_upgrade, subprotocols};
pub(crate) use inbox::Received;
pub(crate) use session::{Refused, Session};
pub(crate) use tokio_tungstenite::tungstenite::Message;
pub(crate) use upgrade::serve;
