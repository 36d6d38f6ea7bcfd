//! Building the ASGI `http` scope.
//!
//! The keys that never change per worker (`type`, `asgi`, `scheme`,
//! `root_path`, `extensions`) live in a template dict that Python built at
//! start-up; each request copies it (one C-level dict copy) and sets the
//! rest with interned keys.

use std::net::{IpAddr, SocketAddr};

use std::collections::HashMap;

use hyper::Version;
use hyper::header::HeaderName;
use hyper::http::request::Parts;
use percent_encoding::percent_decode;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};

use crate::bridge::PyObj;
use crate::http::{COMMON_REQUEST_HEADERS, ConnInfo, TlsInfo, under_root};
use crate::sync::Mutex;

pub(crate) struct ScopeBuilder {
    template: PyObj,
    /// The websocket scope's constant keys (`None` with `--no-ws`).
    ws_template: Option<PyObj>,
    state: Option<PyObj>,
    keys: Keys,
    methods: Vec<(hyper::Method, PyObj<PyString>)>,
    versions: [PyObj<PyString>; 4],
    /// Request header names as `bytes`, made once (immutable after start).
    header_names: HashMap<HeaderName, PyObj<PyBytes>>,
    /// The template's `root_path` (`--root-path`), which `path` includes.
    root_path: String,
    /// The last connection's `server` tuple. Nearly every connection comes
    /// to the same listening address, so they share one instead of each
    /// keeping its own tuple, string and int (160 bytes an idle websocket
    /// held for its life).
    server: Last<SocketAddr>,
    /// The last connection's client host string, shared likewise by the
    /// next connection from the same address (every one through a proxy).
    client_host: Last<IpAddr>,
}

struct Keys {
    http_version: PyObj<PyString>,
    method: PyObj<PyString>,
    path: PyObj<PyString>,
    raw_path: PyObj<PyString>,
    query_string: PyObj<PyString>,
    headers: PyObj<PyString>,
    client: PyObj<PyString>,
    server: PyObj<PyString>,
    state: PyObj<PyString>,
    subprotocols: PyObj<PyString>,
    extensions: PyObj<PyString>,
    scheme: PyObj<PyString>,
    root_path: PyObj<PyString>,
}

impl ScopeBuilder {
    pub(crate) fn new(
        py: Python<'_>,
        template: Py<PyAny>,
        ws_template: Option<Py<PyAny>>,
        state: Option<Py<PyAny>>,
    ) -> PyResult<Self> {
        let root_path = match template.bind(py).cast::<PyDict>()?.get_item("root_path")? {
            Some(root) => root.extract::<String>()?,
            None => String::new(),
        };
        if let Some(ws) = &ws_template {
            ws.bind(py).cast::<PyDict>()?;
        }
        let s = |text: &str| PyObj::from_bound(PyString::intern(py, text));
        let methods = ["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH"]
            .iter()
            .map(|m| {
                (
                    hyper::Method::from_bytes(m.as_bytes()).expect("standard method"),
                    s(m),
                )
            })
            .collect();
        Ok(Self {
            template: PyObj::new(template),
            ws_template: ws_template.map(PyObj::new),
            state: state.map(PyObj::new),
            keys: Keys {
                http_version: s("http_version"),
                method: s("method"),
                path: s("path"),
                raw_path: s("raw_path"),
                query_string: s("query_string"),
                headers: s("headers"),
                client: s("client"),
                server: s("server"),
                state: s("state"),
                subprotocols: s("subprotocols"),
                extensions: s("extensions"),
                scheme: s("scheme"),
                root_path: s("root_path"),
            },
            methods,
            versions: [s("1.0"), s("1.1"), s("2"), s("3")],
            header_names: COMMON_REQUEST_HEADERS
                .iter()
                .map(|name| {
                    (
                        name.clone(),
                        PyObj::from_bound(PyBytes::new(py, name.as_str().as_bytes())),
                    )
                })
                .collect(),
            root_path,
            server: Last::default(),
            client_host: Last::default(),
        })
    }

    pub(crate) fn build<'py>(
        &self,
        py: Python<'py>,
        head: &Parts,
        conn: &ConnInfo,
    ) -> PyResult<Bound<'py, PyDict>> {
        let scope = self.template.bind(py).cast::<PyDict>()?.copy()?;
        let k = &self.keys;
        match self.methods.iter().find(|(m, _)| *m == head.method) {
            Some((_, name)) => scope.set_item(k.method.bind(py), name.bind(py))?,
            None => scope.set_item(k.method.bind(py), head.method.as_str())?,
        }
        self.fill(py, &scope, head, conn, false)?;
        Ok(scope)
    }

    /// The `websocket` scope: the request's keys without `method`, plus
    /// the subprotocols the client offered.
    pub(crate) fn build_websocket<'py>(
        &self,
        py: Python<'py>,
        head: &Parts,
        conn: &ConnInfo,
    ) -> PyResult<Bound<'py, PyDict>> {
        let template = self
            .ws_template
            .as_ref()
            .ok_or_else(|| pyo3::exceptions::PyRuntimeError::new_err("websockets are off"))?;
        let scope = template.bind(py).cast::<PyDict>()?.copy()?;
        self.fill(py, &scope, head, conn, true)?;
        let offered = crate::ws::subprotocols(head);
        scope.set_item(self.keys.subprotocols.bind(py), PyList::new(py, offered)?)?;
        Ok(scope)
    }

    /// The keys both scopes share.
    fn fill(
        &self,
        py: Python<'_>,
        scope: &Bound<'_, PyDict>,
        head: &Parts,
        conn: &ConnInfo,
        websocket: bool,
    ) -> PyResult<()> {
        let k = &self.keys;
        let version = match head.version {
            Version::HTTP_10 | Version::HTTP_09 => &self.versions[0],
            Version::HTTP_2 => &self.versions[2],
            Version::HTTP_3 => &self.versions[3],
            _ => &self.versions[1],
        };
        scope.set_item(k.http_version.bind(py), version.bind(py))?;
        let raw_path = head.uri.path();
        let path = percent_decode(raw_path.as_bytes()).decode_utf8_lossy();
        let root = match &conn.prefix {
            Some(prefix) => {
                scope.set_item(k.root_path.bind(py), prefix.as_ref())?;
                prefix.as_ref()
            }
            None => self.root_path.as_str(),
        };
        if root.is_empty() || under_root(&path, root) {
            scope.set_item(k.path.bind(py), path.as_ref())?;
            scope.set_item(k.raw_path.bind(py), PyBytes::new(py, raw_path.as_bytes()))?;
        } else {
            // The proxy took the prefix off: `path` includes `root_path`
            // (the ASGI spec), so it goes back on.
            scope.set_item(k.path.bind(py), format!("{root}{path}"))?;
            let raw = [root.as_bytes(), raw_path.as_bytes()].concat();
            scope.set_item(k.raw_path.bind(py), PyBytes::new(py, &raw))?;
        }
        if conn.forwarded {
            let scheme = match (websocket, conn.scheme) {
                (true, "https") => "wss",
                (true, _) => "ws",
                (false, scheme) => scheme,
            };
            scope.set_item(k.scheme.bind(py), scheme)?;
        }
        let query = head.uri.query().unwrap_or("");
        scope.set_item(k.query_string.bind(py), PyBytes::new(py, query.as_bytes()))?;
        scope.set_item(k.headers.bind(py), self.headers(py, head)?)?;
        let (client, server, extensions) = self.connection(py, conn, scope)?;
        scope.set_item(k.client.bind(py), client)?;
        scope.set_item(k.server.bind(py), server)?;
        if let Some(extensions) = extensions {
            scope.set_item(k.extensions.bind(py), extensions)?;
        }
        if let Some(state) = &self.state {
            scope.set_item(k.state.bind(py), state.bind(py).cast::<PyDict>()?.copy()?)?;
        }
        Ok(())
    }
}

impl ScopeBuilder {
    /// `client` and `server` tuples and, on a TLS connection, the
    /// `extensions` dict with `tls`, made once per connection. `scope` is
    /// the template's copy, whose `extensions` are shared by every scope
    /// (so a connection's scopes sharing theirs is no new sharing).
    #[allow(clippy::type_complexity)]
    fn connection<'py>(
        &self,
        py: Python<'py>,
        conn: &ConnInfo,
        scope: &Bound<'py, PyDict>,
    ) -> PyResult<(
        Bound<'py, PyAny>,
        Bound<'py, PyAny>,
        Option<Bound<'py, PyAny>>,
    )> {
        if let Some(cached) = conn
            .interface_cache
            .get()
            .and_then(|c| c.downcast_ref::<Connection>())
        {
            return Ok((
                cached.client.bind(py).clone(),
                cached.server.bind(py).clone(),
                cached.extensions.as_ref().map(|e| e.bind(py).clone()),
            ));
        }
        let client = self.client(py, conn.client)?;
        let server = self.server(py, conn.server)?;
        let extensions = conn
            .tls
            .as_ref()
            .map(|tls| {
                let extensions = match scope.get_item(self.keys.extensions.bind(py))? {
                    Some(shared) => shared.cast::<PyDict>()?.copy()?,
                    None => PyDict::new(py),
                };
                extensions.set_item("tls", tls_extension(py, tls)?)?;
                Ok::<_, PyErr>(extensions.into_any())
            })
            .transpose()?;
        let _ = conn.interface_cache.set(Box::new(Connection {
            client: PyObj::from_bound(client.clone()),
            server: PyObj::from_bound(server.clone()),
            extensions: extensions.clone().map(PyObj::from_bound),
        }));
        Ok((client, server, extensions))
    }

    fn client<'py>(
        &self,
        py: Python<'py>,
        addr: Option<SocketAddr>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let Some(addr) = addr else {
            return address(py, None);
        };
        let host = self.client_host.get(py, addr.ip(), || {
            Ok(PyString::new(py, &addr.ip().to_string()).into_any())
        })?;
        Ok((host, addr.port()).into_pyobject(py)?.into_any())
    }

    fn server<'py>(
        &self,
        py: Python<'py>,
        addr: Option<SocketAddr>,
    ) -> PyResult<Bound<'py, PyAny>> {
        match addr {
            Some(addr) => self.server.get(py, addr, || address(py, Some(addr))),
            None => address(py, None),
        }
    }

    fn headers<'py>(&self, py: Python<'py>, head: &Parts) -> PyResult<Bound<'py, PyList>> {
        let list = PyList::empty(py);
        // HTTP/2 carries the host in `:authority`; ASGI apps look for `host`.
        if head.version == Version::HTTP_2
            && !head.headers.contains_key(hyper::header::HOST)
            && let Some(authority) = head.uri.authority()
        {
            list.append((
                PyBytes::new(py, b"host"),
                PyBytes::new(py, authority.as_str().as_bytes()),
            ))?;
        }
        for (name, value) in &head.headers {
            let name = match self.header_names.get(name) {
                Some(cached) => cached.bind(py).clone(),
                None => PyBytes::new(py, name.as_str().as_bytes()),
            };
            list.append(PyTuple::new(
                py,
                [name, PyBytes::new(py, value.as_bytes())],
            )?)?;
        }
        Ok(list)
    }
}

/// The value made for the last key asked for, handed out again while the
/// key stays the same.
struct Last<K>(Mutex<Option<(K, PyObj)>>);

impl<K> Default for Last<K> {
    fn default() -> Self {
        Self(Mutex::new(None))
    }
}

impl<K: PartialEq + Copy> Last<K> {
    fn get<'py>(
        &self,
        py: Python<'py>,
        key: K,
        make: impl FnOnce() -> PyResult<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let mut last = self.0.lock();
        if let Some((at, value)) = last.as_ref()
            && *at == key
        {
            return Ok(value.bind(py).clone());
        }
        let value = make()?;
        *last = Some((key, PyObj::from_bound(value.clone())));
        Ok(value)
    }
}

/// What a scope takes from its connection, cached on the connection.
struct Connection {
    client: PyObj,
    server: PyObj,
    /// The `extensions` dict with `tls` (TLS connections only).
    extensions: Option<PyObj>,
}

/// The asgiref `tls` extension. The client certificate's name is left out
/// (it is optional): giving it would mean parsing X.509 here.
fn tls_extension<'py>(py: Python<'py>, tls: &TlsInfo) -> PyResult<Bound<'py, PyAny>> {
    let extension = PyDict::new(py);
    extension.set_item("server_cert", tls.server_cert.as_ref())?;
    extension.set_item("client_cert_chain", PyList::new(py, &tls.client_chain)?)?;
    extension.set_item("client_cert_error", py.None())?;
    extension.set_item("tls_version", tls.version)?;
    extension.set_item("cipher_suite", tls.cipher_suite)?;
    Ok(extension.into_any())
}

fn address(py: Python<'_>, addr: Option<SocketAddr>) -> PyResult<Bound<'_, PyAny>> {
    match addr {
        Some(addr) => Ok((addr.ip().to_string(), addr.port())
            .into_pyobject(py)?
            .into_any()),
        None => Ok(py.None().into_bound(py)),
    }
}

#[cfg(test)]
mod proptests {
    use proptest::prelude::*;
    use pyo3::types::PyDict;

    use super::*;
    use crate::http::testing::{RawRequest, check_requests, conn_info, py_ok};

    fn builder(py: Python<'_>) -> ScopeBuilder {
        let template = PyDict::new(py);
        template.set_item("type", "http").unwrap();
        let ws_template = PyDict::new(py);
        ws_template.set_item("type", "websocket").unwrap();
        let (template, ws_template) = (template.into_any().unbind(), ws_template.into_any());
        ScopeBuilder::new(py, template, Some(ws_template.unbind()), None).unwrap()
    }

    /// The decoding the ASGI spec asks of `path` (percent-decoded, then
    /// UTF-8), done by Python as Uvicorn does it: invalid UTF-8 becomes
    /// U+FFFD.
    fn decoded_path<'py>(py: Python<'py>, raw: &RawRequest) -> Bound<'py, PyAny> {
        py.import("urllib.parse")
            .unwrap()
            .call_method1("unquote_to_bytes", (PyBytes::new(py, raw.path()),))
            .unwrap()
            .call_method1("decode", ("utf-8", "replace"))
            .unwrap()
    }

    /// The keys both scopes share hold the request exactly as sent.
    fn check_common(
        py: Python<'_>,
        scope: &Bound<'_, PyDict>,
        raw: &RawRequest,
    ) -> Result<(), TestCaseError> {
        let item = |key: &str| py_ok(scope.get_item(key)).map(|v| v.expect(key));
        let version = item("http_version")?.extract::<String>().unwrap();
        prop_assert_eq!(version, raw.version());
        let path = item("path")?;
        prop_assert!(path.is_instance_of::<PyString>());
        prop_assert!(py_ok(path.eq(decoded_path(py, raw)))?, "path {path}");
        let raw_path = item("raw_path")?;
        prop_assert_eq!(raw_path.cast::<PyBytes>().unwrap().as_bytes(), raw.path());
        let query = item("query_string")?;
        prop_assert_eq!(query.cast::<PyBytes>().unwrap().as_bytes(), raw.query());

        let host = raw.host_from_authority();
        let expected: Vec<(String, Vec<u8>)> = host
            .map(|host| ("host".to_owned(), host.as_bytes().to_vec()))
            .into_iter()
            .chain(
                raw.grouped_headers()
                    .into_iter()
                    .flat_map(|(name, values)| values.into_iter().map(move |v| (name.clone(), v))),
            )
            .collect();
        let headers = item("headers")?;
        let headers = headers.cast::<PyList>().unwrap();
        prop_assert_eq!(headers.len(), expected.len());
        for (pair, (name, value)) in headers.iter().zip(&expected) {
            let pair = pair.cast::<PyTuple>().unwrap();
            prop_assert_eq!(pair.len(), 2);
            let sent_name = pair.get_item(0).unwrap();
            prop_assert_eq!(
                sent_name.cast::<PyBytes>().unwrap().as_bytes(),
                name.as_bytes()
            );
            let sent_value = pair.get_item(1).unwrap();
            prop_assert_eq!(sent_value.cast::<PyBytes>().unwrap().as_bytes(), &value[..]);
        }
        let client = item("client")?.extract::<(String, u16)>();
        prop_assert_eq!(client.unwrap(), ("127.0.0.1".to_owned(), 50000));
        Ok(())
    }

    /// Any request hyper accepts makes an `http` scope with the request's
    /// method, `path` percent-decoded as UTF-8 (U+FFFD for invalid bytes),
    /// `raw_path` and `query_string` as sent, and every header with its
    /// name in lower case and its value's exact bytes (grouped by name as
    /// hyper keeps them, each name's values in the order sent), after a
    /// `host` made from HTTP/2's `:authority` when no `Host` was sent.
    #[test]
    fn http_scope_holds_the_request_as_sent() {
        Python::initialize();
        Python::attach(|py| {
            let builder = builder(py);
            check_requests(|raw, head| {
                let conn = conn_info();
                let scope = py_ok(builder.build(py, &head, &conn))?;
                let method = py_ok(scope.get_item("method"))?.unwrap();
                prop_assert_eq!(&method.extract::<String>().unwrap(), &raw.method);
                prop_assert_eq!(scope.get_item("type").unwrap().unwrap().to_string(), "http");
                check_common(py, &scope, raw)
            });
        });
    }

    /// The `websocket` scope has the same keys, no `method`, and the
    /// subprotocols of every `Sec-WebSocket-Protocol` value that is text,
    /// split on commas, trimmed, empty ones left out.
    #[test]
    fn websocket_scope_holds_the_request_as_sent() {
        Python::initialize();
        Python::attach(|py| {
            let builder = builder(py);
            check_requests(|raw, head| {
                let conn = conn_info();
                let scope = py_ok(builder.build_websocket(py, &head, &conn))?;
                prop_assert!(!scope.contains("method").unwrap());
                check_common(py, &scope, raw)?;
                let offered: Vec<String> = raw
                    .sent_headers()
                    .into_iter()
                    .filter(|(name, value)| {
                        name == "sec-websocket-protocol"
                            && value
                                .iter()
                                .all(|&b| b == b'\t' || (0x20..0x7f).contains(&b))
                    })
                    .flat_map(|(_, value)| {
                        String::from_utf8(value)
                            .unwrap()
                            .split(',')
                            .map(|p| p.trim_matches([' ', '\t']).to_owned())
                            .filter(|p| !p.is_empty())
                            .collect::<Vec<_>>()
                    })
                    .collect();
                let subprotocols = scope.get_item("subprotocols").unwrap().unwrap();
                prop_assert_eq!(subprotocols.extract::<Vec<String>>().unwrap(), offered);
                Ok(())
            });
        });
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use pyo3::types::PyTuple;

    use super::*;
    use crate::http::{ConnInfo, ServerTasks};

    /// Connections share the last one's `server` tuple and client host
    /// string while the address is the same; a different one gets its own,
    /// with the right values.
    #[test]
    fn addresses_are_shared_only_while_they_are_the_same() {
        Python::initialize();
        Python::attach(|py| {
            let template = PyDict::new(py);
            template.set_item("type", "http").unwrap();
            let builder = ScopeBuilder::new(py, template.into_any().unbind(), None, None).unwrap();
            let (head, ()) = hyper::Request::builder()
                .uri("/")
                .body(())
                .unwrap()
                .into_parts();
            fn addresses<'py>(
                scope: &Bound<'py, PyDict>,
            ) -> (Bound<'py, PyTuple>, Bound<'py, PyTuple>) {
                let item = |key| {
                    let value = scope.get_item(key).unwrap().unwrap();
                    value.cast_into::<PyTuple>().unwrap()
                };
                (item("client"), item("server"))
            }
            let scope = |client: &str, server: &str| {
                let client: SocketAddr = client.parse().unwrap();
                let server: SocketAddr = server.parse().unwrap();
                let conn = ConnInfo::new(Some(client), Some(server), None, ServerTasks::default());
                builder.build(py, &head, &conn).unwrap()
            };
            let first = scope("127.0.0.1:50000", "127.0.0.1:8000");
            let second = scope("127.0.0.1:50001", "127.0.0.1:8000");
            let other = scope("10.0.0.2:40000", "127.0.0.1:9000");
            let (c1, s1) = addresses(&first);
            let (c2, s2) = addresses(&second);
            let (c3, s3) = addresses(&other);
            assert!(s1.is(&s2));
            assert!(c1.get_item(0).unwrap().is(c2.get_item(0).unwrap()));
            assert_eq!(
                c2.extract::<(String, u16)>().unwrap(),
                ("127.0.0.1".into(), 50001)
            );
            assert_eq!(
                c3.extract::<(String, u16)>().unwrap(),
                ("10.0.0.2".into(), 40000)
            );
            assert_eq!(
                s3.extract::<(String, u16)>().unwrap(),
                ("127.0.0.1".into(), 9000)
            );
            assert!(!s3.is(&s1));
        });
    }
}
