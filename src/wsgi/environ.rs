//! Building the PEP 3333 environ.

use std::borrow::Cow;
use std::collections::HashMap;

use hyper::Version;
use hyper::header::{self, HeaderMap, HeaderName};
use hyper::http::request::Parts;
use percent_encoding::percent_decode;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

use crate::bridge::PyObj;
use crate::http::{COMMON_REQUEST_HEADERS, ConnInfo, under_root};

/// Builds environs from a template holding the constant keys (`wsgi.*`,
/// `SCRIPT_NAME`) that Python prepared at start-up.
pub(crate) struct EnvironBuilder {
    template: PyObj,
    /// `HTTP_*` keys of common headers, made once.
    cgi_names: HashMap<HeaderName, PyObj<PyString>>,
    /// The template's `SCRIPT_NAME` (`--root-path`), taken off `PATH_INFO`.
    script_name: String,
}

/// `REMOTE_ADDR` and `REMOTE_PORT`, made once per connection.
struct Remote {
    addr: PyObj,
    port: PyObj,
}

/// Text from bytes, one character per byte (PEP 3333's "bytes as latin-1").
/// ASCII, the usual case, is borrowed as it is.
fn latin1(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(text) if text.is_ascii() => Cow::Borrowed(text),
        _ => Cow::Owned(bytes.iter().map(|&b| char::from(b)).collect()),
    }
}

/// `Host` without its port, and the port (if any). An empty port (RFC
/// 3986 allows `host:`) is the default one; a port that is not digits
/// leaves the whole value as the name.
fn split_host(host: &str) -> (&str, Option<&str>) {
    let split = if host.starts_with('[') {
        // [v6]:port
        host.rfind("]:").map(|i| (&host[..=i], &host[i + 2..]))
    } else {
        host.rsplit_once(':')
    };
    match split {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => {
            (name, Some(port).filter(|p| !p.is_empty()))
        }
        _ => (host, None),
    }
}

/// The CGI-style name of a request header: `HTTP_` and upper case, with
/// dashes as underscores.
fn cgi_name(name: &str) -> String {
    let mut key = String::with_capacity(5 + name.len());
    key.push_str("HTTP_");
    key.extend(name.chars().map(|c| {
        if c == '-' {
            '_'
        } else {
            c.to_ascii_uppercase()
        }
    }));
    key
}

/// The connection's `REMOTE_*` values, cached on it.
fn remote<'a>(py: Python<'_>, conn: &'a ConnInfo) -> Option<&'a Remote> {
    let client = conn.client?;
    let cached = conn.interface_cache.get_or_init(|| {
        Box::new(Remote {
            addr: PyObj::from_bound(PyString::new(py, &client.ip().to_string()).into_any()),
            port: PyObj::from_bound(PyString::new(py, &client.port().to_string()).into_any()),
        })
    });
    cached.downcast_ref::<Remote>()
}

/// Values of a repeated header joined as PEP 3333 asks (cookies with `; `).
fn joined<'h>(headers: &'h HeaderMap, name: &header::HeaderName) -> Cow<'h, str> {
    let mut values = headers.get_all(name).iter();
    if let (Some(only), None) = (values.next(), values.next()) {
        return latin1(only.as_bytes());
    }
    let separator = if name == header::COOKIE { "; " } else { ", " };
    let mut out = String::new();
    for (i, value) in headers.get_all(name).iter().enumerate() {
        if i > 0 {
            out.push_str(separator);
        }
        out.push_str(&latin1(value.as_bytes()));
    }
    Cow::Owned(out)
}

impl EnvironBuilder {
    pub(crate) fn new(py: Python<'_>, template: Py<PyAny>) -> PyResult<Self> {
        let script_name = match template
            .bind(py)
            .cast::<PyDict>()?
            .get_item("SCRIPT_NAME")?
        {
            Some(root) => root.extract::<String>()?,
            None => String::new(),
        };
        let cgi_names = COMMON_REQUEST_HEADERS
            .iter()
            .map(|name| {
                (
                    name.clone(),
                    PyObj::from_bound(PyString::intern(py, &cgi_name(name.as_str()))),
                )
            })
            .collect();
        Ok(Self {
            template: PyObj::new(template),
            cgi_names,
            script_name,
        })
    }

    pub(crate) fn build<'py>(
        &self,
        py: Python<'py>,
        head: &Parts,
        conn: &ConnInfo,
        input: Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let env = self.template.bind(py).cast::<PyDict>()?.copy()?;
        env.set_item(pyo3::intern!(py, "REQUEST_METHOD"), head.method.as_str())?;
        let path = percent_decode(head.uri.path().as_bytes()).collect::<Vec<u8>>();
        let path = latin1(&path);
        let root = match &conn.prefix {
            Some(prefix) => {
                env.set_item(pyo3::intern!(py, "SCRIPT_NAME"), prefix.as_ref())?;
                prefix.as_ref()
            }
            None => self.script_name.as_str(),
        };
        // A path under the root path loses it; one that is not (the proxy
        // already took the prefix off) is the app's path as it is.
        let path_info = match path.strip_prefix(root) {
            Some(rest) if !root.is_empty() && under_root(&path, root) => rest,
            _ => &path,
        };
        env.set_item(pyo3::intern!(py, "PATH_INFO"), path_info)?;
        if conn.forwarded {
            env.set_item(pyo3::intern!(py, "wsgi.url_scheme"), conn.scheme)?;
            if conn.scheme == "https" {
                env.set_item(pyo3::intern!(py, "HTTPS"), "on")?;
            } else if env.contains(pyo3::intern!(py, "HTTPS"))? {
                env.del_item(pyo3::intern!(py, "HTTPS"))?;
            }
        }
        // Raw UTF-8 in the query (hyper lets it through) is bytes too.
        let query = head.uri.query().unwrap_or("");
        env.set_item(
            pyo3::intern!(py, "QUERY_STRING"),
            &*latin1(query.as_bytes()),
        )?;
        let protocol = match head.version {
            Version::HTTP_09 => "HTTP/0.9",
            Version::HTTP_10 => "HTTP/1.0",
            Version::HTTP_2 => "HTTP/2",
            Version::HTTP_3 => "HTTP/3",
            _ => "HTTP/1.1",
        };
        env.set_item(pyo3::intern!(py, "SERVER_PROTOCOL"), protocol)?;

        let host = head
            .headers
            .get(header::HOST)
            .map(|h| latin1(h.as_bytes()))
            .or_else(|| head.uri.authority().map(|a| Cow::Borrowed(a.as_str())));
        let default_port = if conn.scheme == "https" { "443" } else { "80" };
        let (name_key, port_key) = (
            pyo3::intern!(py, "SERVER_NAME"),
            pyo3::intern!(py, "SERVER_PORT"),
        );
        match &host {
            Some(host) => {
                let (name, port) = split_host(host);
                env.set_item(name_key, name)?;
                env.set_item(port_key, port.unwrap_or(default_port))?;
            }
            None => match conn.server {
                Some(addr) => {
                    env.set_item(name_key, addr.ip().to_string())?;
                    env.set_item(port_key, addr.port().to_string())?;
                }
                None => {
                    env.set_item(name_key, "localhost")?;
                    env.set_item(port_key, default_port)?;
                }
            },
        }
        if let Some(remote) = remote(py, conn) {
            env.set_item(pyo3::intern!(py, "REMOTE_ADDR"), remote.addr.bind(py))?;
            env.set_item(pyo3::intern!(py, "REMOTE_PORT"), remote.port.bind(py))?;
        }
        if head.version == Version::HTTP_2
            && !head.headers.contains_key(header::HOST)
            && let Some(authority) = head.uri.authority()
        {
            env.set_item(pyo3::intern!(py, "HTTP_HOST"), authority.as_str())?;
        }
        for name in head.headers.keys() {
            let value = joined(&head.headers, name);
            let value = &*value;
            if name == header::CONTENT_TYPE {
                env.set_item(pyo3::intern!(py, "CONTENT_TYPE"), value)?;
            } else if name == header::CONTENT_LENGTH {
                env.set_item(pyo3::intern!(py, "CONTENT_LENGTH"), value)?;
            } else if let Some(key) = self.cgi_names.get(name) {
                env.set_item(key.bind(py), value)?;
            } else if name.as_str().contains('_') {
                // `X_Forwarded_For` would become HTTP_X_FORWARDED_FOR too,
                // and could pass for the header a trusted proxy sets:
                // dropped, as Gunicorn does by default.
                continue;
            } else {
                env.set_item(PyString::new(py, &cgi_name(name.as_str())), value)?;
            }
        }
        env.set_item(pyo3::intern!(py, "wsgi.input"), input)?;
        Ok(env)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_port_are_split() {
        assert_eq!(
            split_host("example.com:8080"),
            ("example.com", Some("8080"))
        );
        assert_eq!(split_host("example.com"), ("example.com", None));
        assert_eq!(split_host("[::1]:9000"), ("[::1]", Some("9000")));
        assert_eq!(split_host("[::1]"), ("[::1]", None));
        assert_eq!(split_host("example.com:"), ("example.com", None));
        assert_eq!(split_host("[::1]:"), ("[::1]", None));
        assert_eq!(split_host("[::1]:x"), ("[::1]:x", None));
    }

    #[test]
    fn header_names_become_cgi_keys() {
        assert_eq!(cgi_name("x-forwarded-for"), "HTTP_X_FORWARDED_FOR");
    }

    #[test]
    fn latin1_keeps_every_byte() {
        assert_eq!(latin1(&[0x63, 0xe9]), "cé");
    }
}

#[cfg(test)]
mod proptests {
    use proptest::prelude::*;
    use pyo3::types::PyBytes;

    use super::*;
    use crate::http::testing::{RawRequest, check_requests, conn_info, latin1, py_ok};

    /// The CGI keys PEP 3333 asks for the request's headers: `HTTP_*`
    /// (upper case, dashes as underscores) except `CONTENT_TYPE` and
    /// `CONTENT_LENGTH`, repeated headers joined with `, ` (cookies with
    /// `; `), every byte read as latin-1. Names with an underscore are
    /// left out (they could pass for the dashed name).
    fn cgi_headers(raw: &RawRequest) -> Vec<(String, String)> {
        let mut keys: Vec<(String, String)> = Vec::new();
        if let Some(host) = raw.host_from_authority() {
            keys.push(("HTTP_HOST".to_owned(), host.to_owned()));
        }
        for (name, values) in raw.grouped_headers() {
            if name.contains('_') {
                continue;
            }
            let key = match name.as_str() {
                "content-type" => "CONTENT_TYPE".to_owned(),
                "content-length" => "CONTENT_LENGTH".to_owned(),
                _ => format!("HTTP_{}", name.to_ascii_uppercase().replace('-', "_")),
            };
            let separator = if name == "cookie" { "; " } else { ", " };
            let values: Vec<String> = values.iter().map(|v| latin1(v)).collect();
            let value = values.join(separator);
            match keys.iter_mut().find(|(k, _)| *k == key) {
                Some((_, old)) => *old = value,
                None => keys.push((key, value)),
            }
        }
        keys
    }

    /// Any request hyper accepts makes an environ whose CGI values are all
    /// `str` of latin-1 characters (PEP 3333's native strings), with
    /// `PATH_INFO` the percent-decoded path read as latin-1,
    /// `QUERY_STRING` the query as sent, read as latin-1, and the headers
    /// as [`cgi_headers`] says.
    #[test]
    fn environ_holds_the_request_as_pep_3333_asks() {
        Python::initialize();
        Python::attach(|py| {
            let template = PyDict::new(py);
            template.set_item("SCRIPT_NAME", "").unwrap();
            template.set_item("wsgi.url_scheme", "http").unwrap();
            let builder = EnvironBuilder::new(py, template.into_any().unbind()).unwrap();
            let unquote = py
                .import("urllib.parse")
                .unwrap()
                .getattr("unquote_to_bytes")
                .unwrap();
            check_requests(|raw, head| {
                let conn = conn_info();
                let env = py_ok(builder.build(py, &head, &conn, py.None().into_bound(py)))?;
                let text = |key: &str| -> Result<String, TestCaseError> {
                    let value = py_ok(env.get_item(key))?;
                    let value = value.ok_or_else(|| TestCaseError::fail(format!("no {key}")))?;
                    py_ok(value.extract::<String>())
                };
                for (key, value) in env.iter() {
                    let key = key.extract::<String>().unwrap();
                    if !key.contains('.') {
                        let value = py_ok(value.cast::<PyString>())?;
                        prop_assert!(
                            value.call_method1("encode", ("latin-1",)).is_ok(),
                            "{key} = {value} is not latin-1"
                        );
                    }
                }
                prop_assert_eq!(&text("REQUEST_METHOD")?, &raw.method);
                let path = unquote.call1((PyBytes::new(py, raw.path()),)).unwrap();
                let path = path.call_method1("decode", ("latin-1",)).unwrap();
                prop_assert_eq!(text("PATH_INFO")?, path.extract::<String>().unwrap());
                prop_assert_eq!(text("QUERY_STRING")?, latin1(raw.query()));
                let protocol = format!("HTTP/{}", raw.version());
                prop_assert_eq!(text("SERVER_PROTOCOL")?, protocol);
                prop_assert_eq!(text("REMOTE_ADDR")?, "127.0.0.1");
                prop_assert_eq!(text("REMOTE_PORT")?, "50000");

                let (name, port) = (text("SERVER_NAME")?, text("SERVER_PORT")?);
                // From `Host`, else the target's authority, else the
                // listening address; the port always digits.
                let host = raw.sent_headers().into_iter().find(|(n, _)| n == "host");
                let host = host.map(|(_, host)| latin1(&host));
                match host.or_else(|| head.uri.authority().map(|a| a.as_str().to_owned())) {
                    Some(host) => {
                        let with_port = format!("{}:{}", name, port);
                        let default_port =
                            port == "80" && [name.clone(), format!("{name}:")].contains(&host);
                        prop_assert!(host == with_port || default_port, "Host {:?}", host);
                    }
                    None => prop_assert_eq!((name.as_str(), port.as_str()), ("127.0.0.1", "8000")),
                }
                prop_assert!(!port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()));

                let expected = cgi_headers(raw);
                let cgi_keys = env
                    .keys()
                    .iter()
                    .map(|k| k.extract::<String>().unwrap())
                    .filter(|k| k.starts_with("HTTP_") || k.starts_with("CONTENT_"))
                    .count();
                prop_assert_eq!(cgi_keys, expected.len());
                for (key, value) in &expected {
                    prop_assert_eq!(&text(key)?, value, "{}", key);
                }
                Ok(())
            });
        });
    }
}
