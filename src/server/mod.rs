//! Listening, accepting, serving connections with hyper, and stopping.
//! Nothing here knows which interface serves the requests: it is handed a
//! [`Handler`](crate::http::Handler).

mod accept;
mod http1;
mod options;
mod preamble;
mod registry;
mod runtime;
mod sniff;
mod timeouts;

pub(crate) use accept::{Listener, serve};
pub(crate) use options::{Http2Tuning, HttpMode, HttpOptions, Limits};
pub(crate) use runtime::IoRuntime;
pub(crate) use timeouts::Timeouts;
