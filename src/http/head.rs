//! Response heads from what apps give: a status number and header pairs.
//! Errors ([`HeadError`]) are meant for the app's log; the bridge turns
//! them into `ValueError`s.

use std::borrow::Cow;
use std::fmt;

use hyper::header::{HeaderName, HeaderValue};
use hyper::{HeaderMap, Response, StatusCode};

/// What an app got wrong in a response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HeadError {
    /// Not a valid header name (the name as text, lossily).
    Name(String),
    /// A value with bytes HTTP does not allow (control characters).
    Value(HeaderName),
    /// Not a status code from 100 to 999.
    Status(u16),
}

impl fmt::Display for HeadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeadError::Name(name) => write!(f, "invalid header name {name:?}"),
            HeadError::Value(name) => write!(f, "invalid value for header '{name}'"),
            HeadError::Status(status) => write!(f, "invalid HTTP status code {status}"),
        }
    }
}

impl std::error::Error for HeadError {}

/// Appends one header, checking the name and value as HTTP requires.
pub(crate) fn append_header(
    map: &mut HeaderMap,
    name: &[u8],
    value: &[u8],
) -> Result<(), HeadError> {
    let name = HeaderName::from_bytes(name)
        .map_err(|_| HeadError::Name(String::from_utf8_lossy(name).into_owned()))?;
    let value = HeaderValue::from_bytes(value).map_err(|_| HeadError::Value(name.clone()))?;
    map.append(name, value);
    Ok(())
}

/// `text` as latin-1 bytes (the encoding HTTP header text has in WSGI,
/// and that ASGI frameworks assume when they pass `str`), borrowed when it
/// is ASCII. `None` when a character is outside latin-1.
pub(crate) fn latin1_bytes(text: &str) -> Option<Cow<'_, [u8]>> {
    if text.is_ascii() {
        return Some(Cow::Borrowed(text.as_bytes()));
    }
    text.chars()
        .map(|c| u8::try_from(u32::from(c)).ok())
        .collect::<Option<Vec<u8>>>()
        .map(Cow::Owned)
}

/// `value` in memory of its own. A request's header values share hyper's
/// read buffer (8 KiB or more), so one kept past the request, by an open
/// websocket say, would keep all of it.
pub(crate) fn unshared(value: &HeaderValue) -> HeaderValue {
    let bytes = bytes::Bytes::copy_from_slice(value.as_bytes());
    // Valid, as `value` was; the clone (sharing) is only a fallback.
    let mut own = HeaderValue::from_maybe_shared(bytes).unwrap_or_else(|_| value.clone());
    own.set_sensitive(value.is_sensitive());
    own
}

/// A head with `status` and `headers`.
pub(crate) fn response_head(status: u16, headers: HeaderMap) -> Result<Response<()>, HeadError> {
    let status = StatusCode::from_u16(status).map_err(|_| HeadError::Status(status))?;
    let mut response = Response::new(());
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_names_and_statuses_are_refused() {
        let mut map = HeaderMap::new();
        let bad_name = append_header(&mut map, b"bad name", b"v").unwrap_err();
        assert_eq!(bad_name.to_string(), "invalid header name \"bad name\"");
        let bad_value = append_header(&mut map, b"x-ok", b"bad\nvalue").unwrap_err();
        assert_eq!(bad_value.to_string(), "invalid value for header 'x-ok'");
        assert!(append_header(&mut map, b"X-Ok", b"fine").is_ok());
        assert_eq!(map["x-ok"], "fine");
        assert_eq!(
            response_head(99, HeaderMap::new()).unwrap_err(),
            HeadError::Status(99)
        );
        assert_eq!(
            response_head(204, map).unwrap().status(),
            StatusCode::NO_CONTENT
        );
    }

    #[test]
    fn an_unshared_value_is_a_copy_with_its_sensitivity() {
        let read = bytes::Bytes::copy_from_slice(b"secret token");
        let mut value = HeaderValue::from_maybe_shared(read.slice(..6)).unwrap();
        value.set_sensitive(true);
        let own = unshared(&value);
        assert_eq!(own, "secret");
        assert!(own.is_sensitive());
        assert_ne!(own.as_bytes().as_ptr(), value.as_bytes().as_ptr());
    }

    #[test]
    fn latin1_text_becomes_one_byte_a_character() {
        assert!(matches!(
            latin1_bytes("plain"),
            Some(Cow::Borrowed(b"plain"))
        ));
        assert_eq!(latin1_bytes("café").unwrap().as_ref(), b"caf\xe9");
        assert!(latin1_bytes("€").is_none());
    }
}
