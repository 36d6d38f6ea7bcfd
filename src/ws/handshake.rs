//! The HTTP side of a websocket: recognising an RFC 6455 upgrade request
//! and writing the `101 Switching Protocols` answer (or a refusal).

use std::time::Duration;

use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::http::request::Parts;
use hyper::{Method, Request, Response, StatusCode, Version};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use crate::http::ResponseBody;

/// Websocket settings from the command line.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Config {
    /// Largest message (after reassembling fragments) a client may send;
    /// a larger one closes the connection with 1009.
    pub(crate) max_message_size: usize,
    /// How often the server pings an open websocket; `None`: never.
    pub(crate) ping_interval: Option<Duration>,
    /// How long a ping may go unanswered before the connection is closed
    /// with 1011; `None`: no limit.
    pub(crate) ping_timeout: Option<Duration>,
}

/// Whether `req` asks for a websocket: an HTTP/1.1 GET with
/// `Upgrade: websocket`, `Connection: upgrade` and a key. (Websockets over
/// HTTP/2, RFC 8441, are not offered: the server never announces
/// `SETTINGS_ENABLE_CONNECT_PROTOCOL`.)
pub(crate) fn is_upgrade<B>(req: &Request<B>) -> bool {
    let headers = req.headers();
    req.method() == Method::GET
        && req.version() == Version::HTTP_11
        && has_token(headers, header::UPGRADE, "websocket")
        && has_token(headers, header::CONNECTION, "upgrade")
        && headers.contains_key(header::SEC_WEBSOCKET_KEY)
}

fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|value| {
        value.to_str().is_ok_and(|v| {
            v.split(',')
                .any(|part| part.trim().eq_ignore_ascii_case(token))
        })
    })
}

/// The subprotocols the client offered, in its order of preference.
pub(crate) fn subprotocols(head: &Parts) -> Vec<String> {
    head.headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The refusal for a handshake with a version other than 13: `426` with
/// the version the server speaks, as RFC 6455 asks. `None` when the
/// version is right.
pub(crate) fn unsupported_version(request: &HeaderMap) -> Option<Response<ResponseBody>> {
    if request
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_some_and(|v| v.as_bytes() == b"13")
    {
        return None;
    }
    let mut refused = Response::new(ResponseBody::full(bytes::Bytes::from_static(
        b"Unsupported websocket version; this server speaks version 13",
    )));
    *refused.status_mut() = StatusCode::UPGRADE_REQUIRED;
    refused.headers_mut().insert(
        header::SEC_WEBSOCKET_VERSION,
        HeaderValue::from_static("13"),
    );
    Some(refused)
}

/// The `101 Switching Protocols` response for a request whose
/// `Sec-WebSocket-Key` is in `request`.
pub(crate) fn accept_response(
    request: &HeaderMap,
    subprotocol: Option<&str>,
    extra: HeaderMap,
) -> Result<Response<ResponseBody>, &'static str> {
    let key = request
        .get(header::SEC_WEBSOCKET_KEY)
        .ok_or("the request has no Sec-WebSocket-Key")?;
    let mut response = Response::new(ResponseBody::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    *headers = extra;
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    let accept =
        HeaderValue::from_str(&derive_accept_key(key.as_bytes())).map_err(|_| "bad accept key")?;
    headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    if let Some(protocol) = subprotocol {
        let value = HeaderValue::from_str(protocol).map_err(|_| "invalid subprotocol name")?;
        headers.insert(header::SEC_WEBSOCKET_PROTOCOL, value);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upgrade_request(connection: &str) -> Request<()> {
        Request::builder()
            .uri("/ws")
            .header("upgrade", "WebSocket")
            .header("connection", connection)
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-protocol", "chat, superchat")
            .header("sec-websocket-protocol", "v3")
            .body(())
            .unwrap()
    }

    #[test]
    fn recognises_upgrades_among_connection_tokens() {
        assert!(is_upgrade(&upgrade_request("keep-alive, Upgrade")));
        assert!(!is_upgrade(&upgrade_request("keep-alive")));
    }

    #[test]
    fn accept_key_and_subprotocols_follow_rfc_6455() {
        let (head, ()) = upgrade_request("upgrade").into_parts();
        assert_eq!(subprotocols(&head), ["chat", "superchat", "v3"]);
        let response = accept_response(&head.headers, Some("chat"), HeaderMap::new()).unwrap();
        assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
        // The example from RFC 6455, section 1.3.
        assert_eq!(
            response.headers()["sec-websocket-accept"],
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        assert_eq!(response.headers()["sec-websocket-protocol"], "chat");
    }
}
