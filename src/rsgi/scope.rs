//! The RSGI scope object and its header mapping.
//!
//! Both read the request head that hyper parsed; nothing is converted to
//! Python until the app asks for it.

use std::sync::Arc;

use hyper::Version;
use hyper::header::{HeaderMap, HeaderValue};
use hyper::http::request::Parts;
use percent_encoding::percent_decode;
use pyo3::exceptions::PyKeyError;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyString};

use super::RSGI_VERSION;
use crate::http::{ConnInfo, unshared};

#[pyclass(frozen, module = "diorite._diorite")]
pub(crate) struct Scope {
    /// `"http"` or `"ws"`.
    proto: &'static str,
    head: Arc<Parts>,
    conn: Arc<ConnInfo>,
}

impl Scope {
    pub(crate) fn new(head: Parts, conn: Arc<ConnInfo>) -> Self {
        Self {
            proto: "http",
            head: Arc::new(head),
            conn,
        }
    }

    /// A websocket's scope, which the app usually keeps for as long as the
    /// websocket is open: it keeps a copy of the head, as the head's own
    /// values share hyper's read buffer (8 KiB or more) and would hold it.
    pub(crate) fn websocket(head: Parts, conn: Arc<ConnInfo>) -> Self {
        Self {
            proto: "ws",
            head: Arc::new(owned(&head)),
            conn,
        }
    }
}

/// `head`'s method, target, version and headers, in memory of their own
/// (its extensions are left out: the scope never reads them).
fn owned(head: &Parts) -> Parts {
    let (mut copy, ()) = hyper::Request::new(()).into_parts();
    copy.method = head.method.clone();
    copy.uri = hyper::Uri::try_from(head.uri.to_string()).unwrap_or_else(|_| head.uri.clone());
    copy.version = head.version;
    copy.headers = head
        .headers
        .iter()
        .map(|(name, value)| (name.clone(), unshared(value)))
        .collect();
    copy
}

fn address(addr: Option<std::net::SocketAddr>) -> String {
    addr.map(|a| a.to_string()).unwrap_or_default()
}

#[pymethods]
impl Scope {
    #[getter]
    fn proto(&self) -> &'static str {
        self.proto
    }

    #[getter]
    fn rsgi_version(&self) -> &'static str {
        RSGI_VERSION
    }

    #[getter]
    fn http_version(&self) -> &'static str {
        match self.head.version {
            Version::HTTP_09 | Version::HTTP_10 => "1",
            Version::HTTP_2 => "2",
            Version::HTTP_3 => "3",
            _ => "1.1",
        }
    }

    #[getter]
    fn server(&self) -> String {
        address(self.conn.server)
    }

    #[getter]
    fn client(&self) -> String {
        address(self.conn.client)
    }

    #[getter]
    fn scheme(&self) -> &'static str {
        self.conn.scheme
    }

    #[getter]
    fn method(&self) -> &str {
        self.head.method.as_str()
    }

    #[getter]
    fn path(&self) -> String {
        percent_decode(self.head.uri.path().as_bytes())
            .decode_utf8_lossy()
            .into_owned()
    }

    #[getter]
    fn query_string(&self) -> &str {
        self.head.uri.query().unwrap_or("")
    }

    #[getter]
    fn authority(&self) -> Option<&str> {
        self.head.uri.authority().map(|a| a.as_str())
    }

    #[getter]
    fn headers(&self) -> Headers {
        Headers {
            head: Arc::clone(&self.head),
        }
    }

    fn __repr__(&self) -> String {
        format!(
            "<rsgi Scope {} {} HTTP/{}>",
            self.head.method,
            self.head.uri,
            self.http_version()
        )
    }
}

/// A read-only mapping of lower-case header names to values. Repeated
/// headers keep every value: `get` and `[]` give the first, `get_all` all.
#[pyclass(frozen, mapping, module = "diorite._diorite")]
pub(crate) struct Headers {
    head: Arc<Parts>,
}

impl Headers {
    fn map(&self) -> &HeaderMap {
        &self.head.headers
    }
}

/// Header values as text; bytes outside ASCII are read as latin-1, so no
/// value is lost or refused.
fn text(value: &HeaderValue) -> String {
    match value.to_str() {
        Ok(s) => s.to_owned(),
        Err(_) => value.as_bytes().iter().map(|&b| char::from(b)).collect(),
    }
}

#[pymethods]
impl Headers {
    fn __getitem__(&self, key: &str) -> PyResult<String> {
        self.map()
            .get(key.to_ascii_lowercase())
            .map(text)
            .ok_or_else(|| PyKeyError::new_err(key.to_owned()))
    }

    fn __contains__(&self, key: &str) -> bool {
        self.map().contains_key(key.to_ascii_lowercase())
    }

    fn __len__(&self) -> usize {
        self.map().keys_len()
    }

    fn __iter__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let keys = PyList::new(py, self.map().keys().map(|k| k.as_str()))?;
        Ok(keys.try_iter()?.into_any().unbind())
    }

    #[pyo3(signature = (key, default = None))]
    fn get(&self, py: Python<'_>, key: &str, default: Option<Py<PyAny>>) -> Py<PyAny> {
        match self.map().get(key.to_ascii_lowercase()) {
            Some(value) => PyString::new(py, &text(value)).into_any().unbind(),
            None => default.unwrap_or_else(|| py.None()),
        }
    }

    fn get_all(&self, key: &str) -> Vec<String> {
        self.map()
            .get_all(key.to_ascii_lowercase())
            .iter()
            .map(text)
            .collect()
    }

    fn keys(&self) -> Vec<&str> {
        self.map().keys().map(|k| k.as_str()).collect()
    }

    fn values(&self) -> Vec<String> {
        self.map().values().map(text).collect()
    }

    fn items(&self) -> Vec<(&str, String)> {
        self.map()
            .iter()
            .map(|(k, v)| (k.as_str(), text(v)))
            .collect()
    }

    fn __repr__(&self) -> String {
        format!("Headers({:?})", self.items())
    }
}

#[cfg(test)]
mod proptests {
    use proptest::prelude::*;
    use pyo3::types::PyBytes;

    use super::*;
    use crate::http::testing::{check_requests, conn_info, latin1, py_ok};

    /// Keys that are no header name; looking them up finds nothing.
    const NOT_NAMES: &[&str] = &["", "é", "a b", "\0", "host\n", "x:y", "Ω-header"];

    /// Any request hyper accepts makes a scope with its method, `path`
    /// percent-decoded as UTF-8 (U+FFFD for invalid bytes), `query_string`
    /// as sent, `authority` HTTP/2's `:authority` (or an absolute target's),
    /// and headers whose names are in lower case and whose values are the
    /// bytes sent read as latin-1, looked up in any case.
    #[test]
    fn scope_holds_the_request_as_sent() {
        Python::initialize();
        Python::attach(|py| {
            let unquote = py
                .import("urllib.parse")
                .unwrap()
                .getattr("unquote_to_bytes")
                .unwrap();
            check_requests(|raw, head| {
                let scope = Scope::new(head, Arc::new(conn_info()));
                prop_assert_eq!(scope.method(), raw.method.as_str());
                let path = unquote.call1((PyBytes::new(py, raw.path()),)).unwrap();
                let path = path.call_method1("decode", ("utf-8", "replace")).unwrap();
                prop_assert_eq!(scope.path(), path.extract::<String>().unwrap());
                prop_assert_eq!(scope.query_string().as_bytes(), raw.query());
                prop_assert_eq!(scope.client(), "127.0.0.1:50000");
                let version = if raw.http10 && raw.http2.is_none() {
                    "1"
                } else {
                    raw.version()
                };
                prop_assert_eq!(scope.http_version(), version);
                let absolute = raw.target.starts_with(b"http://example.test");
                let authority = raw.http2.as_deref().or(absolute.then_some("example.test"));
                prop_assert_eq!(scope.authority(), authority);
                let _ = scope.__repr__();

                let headers = scope.headers();
                let grouped = raw.grouped_headers();
                let names: Vec<&str> = grouped.iter().map(|(n, _)| n.as_str()).collect();
                prop_assert_eq!(headers.keys(), names.clone());
                prop_assert_eq!(headers.__len__(), names.len());
                let items: Vec<(String, String)> = grouped
                    .iter()
                    .flat_map(|(n, vs)| vs.iter().map(move |v| (n.clone(), latin1(v))))
                    .collect();
                let got: Vec<(String, String)> = headers
                    .items()
                    .into_iter()
                    .map(|(n, v)| (n.to_owned(), v))
                    .collect();
                prop_assert_eq!(got, items);
                for (name, values) in &grouped {
                    let values: Vec<String> = values.iter().map(|v| latin1(v)).collect();
                    let upper = name.to_ascii_uppercase();
                    prop_assert_eq!(headers.get_all(&upper), values.clone());
                    prop_assert_eq!(py_ok(headers.__getitem__(&upper))?, values[0].clone());
                    prop_assert!(headers.__contains__(&upper));
                    let got = headers.get(py, name, None);
                    prop_assert_eq!(got.extract::<String>(py).unwrap(), values[0].clone());
                }
                for key in NOT_NAMES {
                    prop_assert!(headers.__getitem__(key).is_err());
                    prop_assert!(!headers.__contains__(key));
                    prop_assert!(headers.get(py, key, None).is_none(py));
                }
                Ok(())
            });
        });
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use hyper::header::HeaderName;

    use super::*;

    #[test]
    fn a_websocket_scope_keeps_none_of_the_read_buffer() {
        let read = Bytes::copy_from_slice(b"/chat?room=1 abc def");
        let mut head = hyper::Request::new(()).into_parts().0;
        head.uri = hyper::Uri::from_maybe_shared(read.slice(..12)).unwrap();
        let name = HeaderName::from_static("x-one");
        head.headers.append(
            &name,
            HeaderValue::from_maybe_shared(read.slice(13..16)).unwrap(),
        );
        head.headers.append(
            &name,
            HeaderValue::from_maybe_shared(read.slice(17..)).unwrap(),
        );
        let copy = owned(&head);
        drop(head);
        assert!(read.is_unique(), "the copy still shares the read buffer");
        assert_eq!(copy.uri, "/chat?room=1");
        let values: Vec<_> = copy.headers.get_all(&name).iter().collect();
        assert_eq!(values, ["abc", "def"]);
    }
}
