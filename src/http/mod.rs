//! HTTP pieces shared by every interface: the connection facts a scope is
//! built from, the request body as it arrives, and the response body that
//! hyper writes out. Nothing here knows about Python.

mod channel;
mod conn;
mod exchange;
mod file;
mod forwarded;
mod handler;
mod head;
mod limits;
pub(crate) mod metrics;
mod request_body;
mod response_body;
mod statics;
mod stream;
#[cfg(test)]
pub(crate) mod testing;
mod trust;
mod upgrade;

pub(crate) use conn::{COMMON_REQUEST_HEADERS, ConnInfo, ServerTasks, TlsInfo};
pub(crate) use exchange::{Admitted, Backpressure, Reply, exchange};
pub(crate) use file::{FileRange, send_file, send_open_file};
pub(crate) use forwarded::{read as read_forwarded, under_root};
pub(crate) use handler::Handler;
pub(crate) use head::{HeadError, append_header, latin1_bytes, response_head, unshared};
pub(crate) use limits::{BodyLimits, RequestLimits, refusal};
pub(crate) use request_body::{BodyRead, OnBodyRead, RequestBody, Take};
pub(crate) use response_body::{ResponseBody, StreamItem, error_response};
pub(crate) use statics::{MountSettings, StaticError, StaticFiles};
#[cfg(test)]
pub(crate) use stream::BUDGET;
pub(crate) use stream::{Queued, StreamReceiver, StreamSender, Weighed};
pub(crate) use trust::{Proxies, Trusted};
pub(crate) use upgrade::{Handover, Upgraded};
