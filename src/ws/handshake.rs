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

/// The refusal (`400`) for a handshake without exactly one
/// `Sec-WebSocket-Key` that is the base64 of 16 bytes, which RFC 6455
/// (section 4.2.1) requires of the client. `None` when the key is right.
pub(crate) fn invalid_key(request: &HeaderMap) -> Option<Response<ResponseBody>> {
    let mut keys = request.get_all(header::SEC_WEBSOCKET_KEY).iter();
    if let (Some(key), None) = (keys.next(), keys.next())
        && is_nonce(key.as_bytes())
    {
        return None;
    }
    let mut refused = Response::new(ResponseBody::full(bytes::Bytes::from_static(
        b"Sec-WebSocket-Key must be one base64-encoded 16-byte value",
    )));
    *refused.status_mut() = StatusCode::BAD_REQUEST;
    Some(refused)
}

/// Whether `key` is 16 bytes in base64: 22 characters and `==`. (Like
/// Python's `b64decode`, the unused low bits of the last character are
/// not checked.)
fn is_nonce(key: &[u8]) -> bool {
    key.len() == 24
        && key.ends_with(b"==")
        && key[..22]
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

/// The `101 Switching Protocols` response for a request whose
/// `Sec-WebSocket-Key` is `key`.
pub(crate) fn accept_response(
    key: Option<&[u8]>,
    subprotocol: Option<&str>,
    extra: HeaderMap,
) -> Result<Response<ResponseBody>, &'static str> {
    let key = key.ok_or("the request has no Sec-WebSocket-Key")?;
    let mut response = Response::new(ResponseBody::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    *headers = extra;
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    let accept = HeaderValue::from_str(&derive_accept_key(key)).map_err(|_| "bad accept key")?;
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
        let response = accept_response(
            head.headers
                .get(header::SEC_WEBSOCKET_KEY)
                .map(HeaderValue::as_bytes),
            Some("chat"),
            HeaderMap::new(),
        )
        .unwrap();
        assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
        // The example from RFC 6455, section 1.3.
        assert_eq!(
            response.headers()["sec-websocket-accept"],
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        assert_eq!(response.headers()["sec-websocket-protocol"], "chat");
    }
}

#[cfg(test)]
mod proptests {
    use hyper::header::HeaderName;
    use proptest::prelude::*;
    use proptest::test_runner::{Config as RunConfig, TestCaseError, TestRunner};
    use pyo3::prelude::*;
    use pyo3::types::{IntoPyDict, PyBytes};

    use super::*;
    use crate::http::testing::header_value;

    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    fn base64(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for chunk in bytes.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]);
                } else {
                    out.push(b'=');
                }
            }
        }
        out
    }

    /// Keys: right ones, ones whose unused bits are set, and ones a byte
    /// or a padding character off.
    fn key() -> impl Strategy<Value = Vec<u8>> {
        let nonce = any::<[u8; 16]>().prop_map(|b| base64(&b));
        prop_oneof![
            3 => nonce.clone(),
            1 => (nonce.clone(), 0usize..4).prop_map(|(mut k, bits)| {
                let last = ALPHABET.iter().position(|&c| c == k[21]).unwrap();
                k[21] = ALPHABET[(last & !3) | bits];
                k
            }),
            1 => (nonce, any::<prop::sample::Index>(), header_value()).prop_map(|(mut k, at, bytes)| {
                let at = at.index(k.len());
                k.splice(at..at + 1, bytes);
                k
            }),
            1 => any::<[u8; 15]>().prop_map(|b| base64(&b)),
            1 => any::<[u8; 17]>().prop_map(|b| base64(&b)),
            1 => header_value(),
        ]
    }

    fn handshake_header() -> impl Strategy<Value = (&'static str, Vec<u8>)> {
        let words = |w: &'static [&'static str]| {
            prop::sample::select(w).prop_map(|s| s.as_bytes().to_vec())
        };
        prop_oneof![
            2 => (Just("Upgrade"), prop_oneof![words(&["websocket", "WebSocket", "h2c, websocket", "websockets"]), header_value()]),
            2 => (Just("Connection"), prop_oneof![words(&["Upgrade", "keep-alive, upgrade", "upgrade2", "close"]), header_value()]),
            3 => (Just("Sec-WebSocket-Key"), key()),
            2 => (Just("Sec-WebSocket-Version"), prop_oneof![words(&["13", "8", " 13", "13, 8", "013"]), header_value()]),
            1 => (Just("Sec-WebSocket-Protocol"), header_value()),
            1 => (Just("Sec-WebSocket-Extensions"), header_value()),
        ]
    }

    fn handshake() -> impl Strategy<Value = Request<()>> {
        let method = prop::sample::select(vec![Method::GET, Method::POST, Method::HEAD]);
        let version =
            prop::sample::select(vec![Version::HTTP_11, Version::HTTP_10, Version::HTTP_2]);
        (
            method,
            version,
            prop::collection::vec(handshake_header(), 0..8),
        )
            .prop_map(|(method, version, headers)| {
                let mut request = Request::builder()
                    .method(method)
                    .version(version)
                    .uri("/ws");
                for (name, value) in headers {
                    request = request.header(name, HeaderValue::from_bytes(&value).unwrap());
                }
                request.body(()).unwrap()
            })
    }

    /// RFC 6455's rule for a header listing tokens, for `Upgrade` and
    /// `Connection`: some value (text) has `token` among its comma-separated
    /// items, in any case.
    fn lists(request: &Request<()>, name: &str, token: &str) -> bool {
        request.headers().get_all(name).iter().any(|value| {
            let bytes = value.as_bytes();
            bytes
                .iter()
                .all(|&b| b == b'\t' || (0x20..0x7f).contains(&b))
                && bytes
                    .split(|&b| b == b',')
                    .any(|item| item.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
        })
    }

    /// Whether Python's strict base64 decoder reads `key` as 16 bytes
    /// (`strict_mode` is Python 3.11's).
    fn decodes_to_16_bytes(py: Python<'_>, key: &[u8]) -> bool {
        let decoded = py.import("binascii").unwrap().call_method(
            "a2b_base64",
            (PyBytes::new(py, key),),
            Some(&[("strict_mode", true)].into_py_dict(py).unwrap()),
        );
        decoded.is_ok_and(|d| d.len().unwrap() == 16)
    }

    /// `Sec-WebSocket-Accept` as RFC 6455 (section 4.2.2) defines it,
    /// computed by Python's hashlib and base64.
    fn accept_key(py: Python<'_>, key: &[u8]) -> String {
        let mut input = key.to_vec();
        input.extend_from_slice(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
        let digest = py
            .import("hashlib")
            .unwrap()
            .call_method1("sha1", (PyBytes::new(py, &input),))
            .unwrap()
            .call_method0("digest")
            .unwrap();
        let encoded = py
            .import("base64")
            .unwrap()
            .call_method1("b64encode", (digest,))
            .unwrap();
        String::from_utf8(encoded.extract::<Vec<u8>>().unwrap()).unwrap()
    }

    fn check(py: Python<'_>, request: Request<()>) -> Result<(), TestCaseError> {
        let headers = request.headers();
        let keys: Vec<&[u8]> = headers
            .get_all("sec-websocket-key")
            .iter()
            .map(HeaderValue::as_bytes)
            .collect();
        let upgrade = request.method() == Method::GET
            && request.version() == Version::HTTP_11
            && lists(&request, "upgrade", "websocket")
            && lists(&request, "connection", "upgrade")
            && !keys.is_empty();
        prop_assert_eq!(is_upgrade(&request), upgrade);

        let version = headers
            .get("sec-websocket-version")
            .map(HeaderValue::as_bytes);
        match unsupported_version(headers) {
            None => prop_assert_eq!(version, Some(&b"13"[..])),
            Some(refused) => {
                prop_assert_ne!(version, Some(&b"13"[..]));
                prop_assert_eq!(refused.status(), StatusCode::UPGRADE_REQUIRED);
                prop_assert_eq!(&refused.headers()["sec-websocket-version"], "13");
            }
        }

        let right_key = keys.len() == 1 && decodes_to_16_bytes(py, keys[0]);
        match invalid_key(headers) {
            None => prop_assert!(right_key, "accepted {:?}", keys),
            Some(refused) => {
                prop_assert!(!right_key, "refused {:?}", keys);
                prop_assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
            }
        }

        let protocol = headers
            .get("sec-websocket-protocol")
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        let mut extra = HeaderMap::new();
        extra.insert(
            HeaderName::from_static("x-extra"),
            HeaderValue::from_static("1"),
        );
        let key = headers
            .get(header::SEC_WEBSOCKET_KEY)
            .map(HeaderValue::as_bytes);
        match accept_response(key, protocol.as_deref(), extra) {
            Err(_) if keys.is_empty() => {}
            Err(_) => {
                let protocol = protocol.as_deref().unwrap_or("");
                prop_assert!(HeaderValue::from_str(protocol).is_err());
            }
            Ok(response) => {
                prop_assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
                let head = response.headers();
                prop_assert_eq!(&head["upgrade"], "websocket");
                prop_assert_eq!(&head["connection"], "Upgrade");
                prop_assert_eq!(&head["x-extra"], "1");
                // No extension is ever agreed to, whatever the client offers.
                prop_assert!(!head.contains_key("sec-websocket-extensions"));
                let accept = head["sec-websocket-accept"].to_str().unwrap();
                prop_assert_eq!(accept, accept_key(py, keys[0]));
                // An app's subprotocol goes out as its UTF-8 bytes.
                prop_assert_eq!(
                    head.get("sec-websocket-protocol")
                        .map(HeaderValue::as_bytes),
                    protocol.as_deref().map(str::as_bytes)
                );
            }
        }
        Ok(())
    }

    /// Handshakes with arbitrary method, HTTP version and handshake header
    /// values (any bytes hyper accepts) are recognised, refused (426 for a
    /// version other than 13, 400 for a key other than one base64-encoded
    /// 16-byte value) and answered (`Sec-WebSocket-Accept` as RFC 6455
    /// computes it) as the RFC says, and never panic.
    #[test]
    fn handshakes_follow_rfc_6455() {
        Python::initialize();
        Python::attach(|py| {
            // The oracle needs `binascii`'s strict mode (Python 3.11+);
            // `make test` builds `.venv` from the default python3 (3.11).
            if !py.version_info().ge(&(3, 11)) {
                return;
            }
            let config = RunConfig {
                failure_persistence: None,
                ..RunConfig::default()
            };
            let result = TestRunner::new(config).run(&handshake(), |request| check(py, request));
            if let Err(err) = result {
                panic!("{err}");
            }
        });
    }
}
