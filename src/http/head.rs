//! Response heads from what apps give: a status number and header pairs.
//! Errors are messages meant for the app's log.

use std::borrow::Cow;

use hyper::header::{HeaderName, HeaderValue};
use hyper::{HeaderMap, Response, StatusCode};

/// Appends one header, checking the name and value as HTTP requires.
pub(crate) fn append_header(map: &mut HeaderMap, name: &[u8], value: &[u8]) -> Result<(), String> {
    let name = HeaderName::from_bytes(name)
        .map_err(|_| format!("invalid header name {:?}", String::from_utf8_lossy(name)))?;
    let value =
        HeaderValue::from_bytes(value).map_err(|_| format!("invalid value for header '{name}'"))?;
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

/// A head with `status` and `headers`.
pub(crate) fn response_head(status: u16, headers: HeaderMap) -> Result<Response<()>, String> {
    let status =
        StatusCode::from_u16(status).map_err(|_| format!("invalid HTTP status code {status}"))?;
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
        assert!(append_header(&mut map, b"bad name", b"v").is_err());
        assert!(append_header(&mut map, b"x-ok", b"bad\nvalue").is_err());
        assert!(append_header(&mut map, b"X-Ok", b"fine").is_ok());
        assert_eq!(map["x-ok"], "fine");
        assert!(response_head(99, HeaderMap::new()).is_err());
        assert_eq!(
            response_head(204, map).unwrap().status(),
            StatusCode::NO_CONTENT
        );
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
