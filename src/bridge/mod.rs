//! The GIL boundary between tokio and the Python event loop.
//!
//! Rust async code never touches the interpreter. It hands work to the
//! event-loop thread as [`Job`]s through a [`Bridge`], and it holds Python
//! objects only inside [`PyObj`], whose drop is safe on any thread.
//! Nothing here knows which interface (ASGI, WSGI, RSGI) is calling.

mod awaitable;
mod bytes;
mod outbox;
mod pairs;
mod pool;
mod pyobj;
mod queue;
mod runner;
mod send;

pub use awaitable::{ClientDisconnected, Done, Failed, Ready, Waiting};
pub use bytes::body_bytes;
pub use outbox::{Delivery, Outbox};
pub use pairs::each_str_pair;
pub use pool::PythonPool;
pub use pyobj::{PyObj, deferred_release_count, release_deferred};
pub use queue::{Bridge, Job};
pub use runner::AppRunner;
pub use send::{is_done, resolve, send_or_wait, wait_to_send};
