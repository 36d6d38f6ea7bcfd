//! Facts about one accepted connection, shared by all of its requests.

use std::any::Any;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::forwarded::Forwarding;

/// The server's hold on work that outlives a request: connections and
/// upgraded websockets are tracked so a graceful stop waits for them, and
/// all of them watch `draining` to learn that the stop has begun.
#[derive(Clone, Default)]
pub(crate) struct ServerTasks {
    pub(crate) tracker: TaskTracker,
    pub(crate) draining: CancellationToken,
}

/// What a finished TLS handshake settled, as the ASGI `tls` extension
/// reports it.
#[derive(Debug, Clone)]
pub(crate) struct TlsInfo {
    /// The TLS version's code point (0x0304 is TLS 1.3).
    pub(crate) version: u16,
    /// The IANA code of the cipher suite.
    pub(crate) cipher_suite: u16,
    /// The server's certificate, PEM.
    pub(crate) server_cert: Arc<str>,
    /// The client's certificate chain, PEM, leaf first; empty when the
    /// client sent none.
    pub(crate) client_chain: Vec<String>,
}

pub(crate) struct ConnInfo {
    /// The peer; `None` where the transport has no address (a Unix socket).
    pub(crate) client: Option<SocketAddr>,
    /// The local address the connection was accepted on.
    pub(crate) server: Option<SocketAddr>,
    /// `"http"` or `"https"`.
    pub(crate) scheme: &'static str,
    /// `Some` on a TLS connection.
    pub(crate) tls: Option<TlsInfo>,
    /// Set on a request whose trusted proxy's headers changed `client`
    /// or `scheme`: interfaces then take the scheme from here rather
    /// than from their per-worker template.
    pub(crate) forwarded: bool,
    /// The proxy's `X-Forwarded-Prefix`, in place of the configured root
    /// path.
    pub(crate) prefix: Option<Arc<str>>,
    /// Per-connection values an interface derives once and reuses for
    /// every request on the connection (ASGI keeps its address tuples).
    pub(crate) interface_cache: OnceLock<Box<dyn Any + Send + Sync>>,
    pub(crate) tasks: ServerTasks,
}

impl ConnInfo {
    pub(crate) fn new(
        client: Option<SocketAddr>,
        server: Option<SocketAddr>,
        tls: Option<TlsInfo>,
        tasks: ServerTasks,
    ) -> Self {
        Self {
            client,
            server,
            scheme: if tls.is_some() { "https" } else { "http" },
            tls,
            forwarded: false,
            prefix: None,
            interface_cache: OnceLock::new(),
            tasks,
        }
    }

    /// This connection as one request's forwarding headers describe it.
    pub(crate) fn forwarded_by(&self, forwarding: &Forwarding) -> Self {
        Self {
            client: forwarding.client.or(self.client),
            server: self.server,
            scheme: forwarding.scheme.unwrap_or(self.scheme),
            tls: self.tls.clone(),
            forwarded: true,
            prefix: forwarding.prefix.clone().or_else(|| self.prefix.clone()),
            interface_cache: OnceLock::new(),
            tasks: self.tasks.clone(),
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
