//! Facts about one accepted connection, shared by all of its requests.

use std::net::SocketAddr;

#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// The peer; `None` where the transport has no address (a Unix socket).
    pub client: Option<SocketAddr>,
    /// The local address the connection was accepted on.
    pub server: Option<SocketAddr>,
    /// `"http"` or `"https"`.
    pub scheme: &'static str,
}
