//! Facts about one accepted connection, shared by all of its requests.

use std::any::Any;
use std::net::SocketAddr;
use std::sync::OnceLock;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The server's hold on work that outlives a request: connections and
/// upgraded websockets are tracked so a graceful stop waits for them, and
/// all of them watch `draining` to learn that the stop has begun.
#[derive(Clone, Default)]
pub(crate) struct ServerTasks {
    pub(crate) tracker: TaskTracker,
    pub(crate) draining: CancellationToken,
}

pub(crate) struct ConnInfo {
    /// The peer; `None` where the transport has no address (a Unix socket).
    pub(crate) client: Option<SocketAddr>,
    /// The local address the connection was accepted on.
    pub(crate) server: Option<SocketAddr>,
    /// `"http"` or `"https"`.
    pub(crate) scheme: &'static str,
    /// Per-connection values an interface derives once and reuses for
    /// every request on the connection (ASGI keeps its address tuples).
    pub(crate) interface_cache: OnceLock<Box<dyn Any + Send + Sync>>,
    pub(crate) tasks: ServerTasks,
}

impl ConnInfo {
    pub(crate) fn new(
        client: Option<SocketAddr>,
        server: Option<SocketAddr>,
        scheme: &'static str,
        tasks: ServerTasks,
    ) -> Self {
        Self {
            client,
            server,
            scheme,
            interface_cache: OnceLock::new(),
            tasks,
        }
    }
}

/// Request header names common enough for interfaces to keep their
/// Python form ready-made.
pub(crate) const COMMON_REQUEST_HEADERS: &[hyper::header::HeaderName] = &[
    hyper::header::ACCEPT,
    hyper::header::ACCEPT_ENCODING,
    hyper::header::ACCEPT_LANGUAGE,
    hyper::header::AUTHORIZATION,
    hyper::header::CACHE_CONTROL,
    hyper::header::CONNECTION,
    hyper::header::CONTENT_LENGTH,
    hyper::header::CONTENT_TYPE,
    hyper::header::COOKIE,
    hyper::header::HOST,
    hyper::header::IF_MODIFIED_SINCE,
    hyper::header::IF_NONE_MATCH,
    hyper::header::ORIGIN,
    hyper::header::PRAGMA,
    hyper::header::RANGE,
    hyper::header::REFERER,
    hyper::header::TE,
    hyper::header::TRANSFER_ENCODING,
    hyper::header::UPGRADE,
    hyper::header::USER_AGENT,
    hyper::header::SEC_WEBSOCKET_KEY,
    hyper::header::SEC_WEBSOCKET_VERSION,
    hyper::header::SEC_WEBSOCKET_PROTOCOL,
    hyper::header::SEC_WEBSOCKET_EXTENSIONS,
];
