//! Websockets (RFC 6455) for the async interfaces: the upgrade handshake,
//! the [`Session`] the app's objects share, the [`Pump`] task that moves
//! frames, and the Python-facing halves of `receive` and `send` that ASGI
//! and RSGI wrap in their own message shapes. Framing, fragment reassembly
//! and ping/pong are tungstenite's.

mod calls;
mod handshake;
mod inbox;
mod pump;
mod session;

pub(crate) use calls::{WebsocketApp, receive, refused, send};
pub(crate) use handshake::{Config, is_upgrade, subprotocols};
pub(crate) use inbox::Received;
pub(crate) use session::{Refused, Session, serve};
pub(crate) use tokio_tungstenite::tungstenite::Message;
