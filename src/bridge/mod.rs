//! The GIL boundary between tokio and the Python event loop.
//!
//! Rust async code never touches the interpreter. It hands work to the
//! event-loop thread as [`Job`]s through a [`Bridge`], and it holds Python
//! objects only inside [`PyObj`], whose drop is safe on any thread.
//! Nothing here knows which interface (ASGI, WSGI, RSGI) is calling.

mod awaitable;
mod bytes;
mod errors;
mod future;
mod outbox;
mod pairs;
mod pool;
mod pyobj;
mod queue;
mod runner;
mod send;
#[cfg(test)]
pub(crate) mod testing;

pub(crate) use awaitable::{ClientDisconnected, Done, Failed, Ready, Waiting, client_disconnected};
pub(crate) use bytes::body_bytes;
pub(crate) use future::{is_done, reject, resolve, settle};
pub(crate) use outbox::{Delivery, Outbox};
pub(crate) use pairs::each_str_pair;
pub(crate) use pool::PythonPool;
pub(crate) use pyobj::{PyObj, deferred_release_count};
pub(crate) use queue::{Bridge, Job};
pub(crate) use runner::{AppRunner, Lifetime, TaskSlot};
pub(crate) use send::{Backlog, Sent, abort_stream, queue, send_or_wait};
