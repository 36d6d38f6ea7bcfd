//! Facts about one accepted connection, shared by all of its requests.

use std::any::Any;
use std::net::SocketAddr;
use std::sync::OnceLock;

pub struct ConnInfo {
    /// The peer; `None` where the transport has no address (a Unix socket).
    pub client: Option<SocketAddr>,
    /// The local address the connection was accepted on.
    pub server: Option<SocketAddr>,
    /// `"http"` or `"https"`.
    pub scheme: &'static str,
    /// Per-connection values an interface derives once and reuses for
    /// every request on the connection (ASGI keeps its address tuples).
    pub interface_cache: OnceLock<Box<dyn Any + Send + Sync>>,
}

impl ConnInfo {
    pub fn new(
        client: Option<SocketAddr>,
        server: Option<SocketAddr>,
        scheme: &'static str,
    ) -> Self {
        Self {
            client,
            server,
            scheme,
            interface_cache: OnceLock::new(),
        }
    }
}
