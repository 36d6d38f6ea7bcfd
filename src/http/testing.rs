//! For property tests of the code that turns a request head into Python
//! values: requests made of arbitrary bytes, parsed by a real hyper HTTP/1
//! connection, so every case is one hyper would hand the server.
//!
//! The number of cases per property is proptest's: 256, or
//! `PROPTEST_CASES` from the environment (docs/testing.md).

use std::cell::Cell;
use std::convert::Infallible;
use std::fmt;
use std::net::SocketAddr;
use std::ops::RangeInclusive;

use hyper::body::Incoming;
use hyper::http::request::Parts;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use tokio::io::AsyncWriteExt;
use tokio::runtime::Runtime;
use tokio::sync::oneshot;

use super::{ConnInfo, ResponseBody, ServerTasks};
use crate::sync::Mutex;

/// A request as the client wrote it.
#[derive(Clone)]
pub(crate) struct RawRequest {
    pub(crate) method: String,
    /// The request target, as sent.
    pub(crate) target: Vec<u8>,
    pub(crate) http10: bool,
    pub(crate) headers: Vec<(String, Vec<u8>)>,
    /// Sent over HTTP/2 with this `:authority` (and `target` as its
    /// `:path`) instead.
    pub(crate) http2: Option<String>,
}

impl fmt::Debug for RawRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(authority) = &self.http2 {
            write!(f, "HTTP/2 :authority {authority:?} ")?;
        }
        f.write_str(&String::from_utf8_lossy(&escape(&self.bytes())))
    }
}

fn escape(bytes: &[u8]) -> Vec<u8> {
    bytes.iter().flat_map(|&b| b.escape_ascii()).collect()
}

impl RawRequest {
    pub(crate) fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(self.method.as_bytes());
        out.push(b' ');
        out.extend_from_slice(&self.target);
        out.extend_from_slice(if self.http10 {
            b" HTTP/1.0\r\n"
        } else {
            b" HTTP/1.1\r\n"
        });
        for (name, value) in &self.headers {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out
    }

    /// The HTTP version as the scopes name it: `1.0`, `1.1` or `2`.
    pub(crate) fn version(&self) -> &'static str {
        match (&self.http2, self.http10) {
            (Some(_), _) => "2",
            (None, true) => "1.0",
            (None, false) => "1.1",
        }
    }

    /// HTTP/2's `:authority` when no `Host` header was sent: the host
    /// the scopes give.
    pub(crate) fn host_from_authority(&self) -> Option<&str> {
        let host_sent = self
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("host"));
        self.http2.as_deref().filter(|_| !host_sent)
    }

    /// The origin-form part of the target, without a fragment (which
    /// never reaches the server).
    fn sent_target(&self) -> &[u8] {
        let target = self.target.strip_prefix(AUTHORITY).unwrap_or(&self.target);
        let end = target.iter().position(|&b| b == b'#');
        &target[..end.unwrap_or(target.len())]
    }

    /// The path as sent (`raw_path`): the origin-form target up to `?`.
    pub(crate) fn path(&self) -> &[u8] {
        let target = self.sent_target();
        let end = target.iter().position(|&b| b == b'?');
        &target[..end.unwrap_or(target.len())]
    }

    /// The query string as sent, without its `?`.
    pub(crate) fn query(&self) -> &[u8] {
        let target = self.sent_target();
        match target.iter().position(|&b| b == b'?') {
            Some(i) => &target[i + 1..],
            None => b"",
        }
    }

    /// The headers as hyper reads them: names in lower case, values
    /// without the whitespace around them, in the order sent; a repeated
    /// `Content-Length` (hyper refuses a different one) is kept once.
    pub(crate) fn sent_headers(&self) -> Vec<(String, Vec<u8>)> {
        let mut headers: Vec<(String, Vec<u8>)> = Vec::new();
        for (name, value) in &self.headers {
            let name = name.to_ascii_lowercase();
            if name == "content-length" && headers.iter().any(|(n, _)| *n == name) {
                continue;
            }
            headers.push((name, value.trim_ascii().to_vec()));
        }
        headers
    }

    /// [`RawRequest::sent_headers`] in `HeaderMap` order: grouped by name
    /// in the order each name first appeared, values in the order sent.
    pub(crate) fn grouped_headers(&self) -> Vec<(String, Vec<Vec<u8>>)> {
        let mut groups: Vec<(String, Vec<Vec<u8>>)> = Vec::new();
        for (name, value) in self.sent_headers() {
            match groups.iter_mut().find(|(n, _)| *n == name) {
                Some((_, values)) => values.push(value),
                None => groups.push((name, vec![value])),
            }
        }
        groups
    }
}

/// Text from bytes, one character per byte.
pub(crate) fn latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

/// The start of an absolute-form target.
const AUTHORITY: &[u8] = b"http://example.test";

/// Every character but ASCII (made directly: a filter's rejections would
/// run out in a long run).
const NOT_ASCII: &[RangeInclusive<char>] = &['\u{80}'..='\u{d7ff}', '\u{e000}'..='\u{10ffff}'];

const TCHAR: &str = "[!#$%&'*+.^_`|~0-9A-Za-z-]";

/// HTTP tokens (method and header name characters) of 1 to `max` bytes.
fn tokens(max: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("{TCHAR}{{1,{max}}}")).unwrap()
}

fn method() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec!["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH"])
            .prop_map(str::to_owned),
        1 => tokens(12),
    ]
}

/// One piece of a path or query: ordinary characters, percent escapes of
/// any byte (so invalid UTF-8 after decoding), broken escapes, raw UTF-8.
fn target_piece() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        6 => "[A-Za-z0-9._~!$&'()*+,;=:@/-]{1,6}".prop_map(String::into_bytes),
        4 => (any::<u8>(), any::<bool>()).prop_map(|(b, upper)| if upper {
            format!("%{b:02X}").into_bytes()
        } else {
            format!("%{b:02x}").into_bytes()
        }),
        1 => prop::sample::select(vec!["%", "%g1", "%4", "%%", "%%41"]).prop_map(|s| s.as_bytes().to_vec()),
        2 => proptest::char::ranges(NOT_ASCII.into()).prop_map(|c| c.to_string().into_bytes()),
        1 => prop::sample::select(vec!["?", "#", "\"", "{", "}", "|", "^", "[", "]"])
            .prop_map(|s| s.as_bytes().to_vec()),
    ]
}

fn target() -> impl Strategy<Value = Vec<u8>> {
    let pieces = || prop::collection::vec(target_piece(), 0..8).prop_map(|p| p.concat());
    (pieces(), prop::option::of(pieces()), any::<u8>()).prop_map(|(path, query, form)| {
        let mut target = match form {
            0..=9 => AUTHORITY.to_vec(),
            10 => return b"*".to_vec(),
            _ => Vec::new(),
        };
        target.push(b'/');
        target.extend(path);
        if let Some(query) = query {
            target.push(b'?');
            target.extend(query);
        }
        target
    })
}

/// Header names: some the server treats specially, in any case, and any
/// token.
pub(crate) fn header_name() -> impl Strategy<Value = String> {
    let known = prop::sample::select(vec![
        "Host",
        "Content-Type",
        "Content-Length",
        "Cookie",
        "Accept",
        "X-Forwarded-For",
        "X_Forwarded_For",
        "Connection",
        "Upgrade",
        "Sec-WebSocket-Key",
        "Sec-WebSocket-Version",
        "Sec-WebSocket-Protocol",
        "Sec-WebSocket-Extensions",
    ]);
    prop_oneof![
        1 => (known, any::<u64>()).prop_map(|(name, case)| mixed_case(name, case)),
        1 => tokens(20),
    ]
}

fn mixed_case(name: &str, bits: u64) -> String {
    name.chars()
        .enumerate()
        .map(|(i, c)| {
            if bits >> (i % 64) & 1 == 1 {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect()
}

/// Header values: visible ASCII, spaces and tabs, obs-text (latin-1).
pub(crate) fn header_value() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![
        8 => 0x21u8..0x7f,
        2 => prop::sample::select(vec![b' ', b'\t', b',', b';']),
        3 => 0x80u8..=0xff,
    ];
    prop_oneof![
        4 => prop::collection::vec(byte, 0..24),
        1 => prop::sample::select(vec!["websocket", "upgrade", "Upgrade, keep-alive", "13", "chat, v2"])
            .prop_map(|s| s.as_bytes().to_vec()),
    ]
}

/// A request; a few in a hundred have a byte hyper refuses (a control
/// byte, or one the request target may not hold) somewhere.
pub(crate) fn request() -> impl Strategy<Value = RawRequest> {
    let spoiler = prop::sample::select(vec![0x00u8, 0x7f, 0x0b, b'\r', 0x80, 0xff, b'<', b'`']);
    (
        method(),
        target(),
        any::<u8>(),
        prop::collection::vec((header_name(), header_value()), 0..10),
        prop::option::weighted(0.03, (spoiler, any::<prop::sample::Index>())),
    )
        .prop_map(|(method, target, version, headers, spoil)| {
            let mut raw = RawRequest {
                method,
                target,
                http10: version < 16,
                headers,
                http2: None,
            };
            if let Some((byte, at)) = spoil {
                let place = match raw.headers.len() {
                    0 => &mut raw.target,
                    n => &mut raw.headers[at.index(n)].1,
                };
                place.insert(at.index(place.len() + 1), byte);
            }
            raw
        })
}

/// `:authority` values: host names, ports, IPv6 literals, user info, and
/// bytes the http crate refuses.
fn authority() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z0-9.-]{1,16}(:[0-9]{0,5})?",
        1 => prop::sample::select(vec!["[::1]:8443", "[::1]", "user@host:1", "h%41", "a b", "é.test"])
            .prop_map(str::to_owned),
    ]
}

/// A request over HTTP/2: as [`request`] makes them, with an
/// `:authority` and an origin-form `:path`.
fn http2_request() -> impl Strategy<Value = RawRequest> {
    (request(), authority()).prop_map(|(mut raw, authority)| {
        let target = raw.target.strip_prefix(AUTHORITY).unwrap_or(&raw.target);
        raw.target = if target == b"*" {
            b"/".to_vec()
        } else {
            target.to_vec()
        };
        raw.http2 = Some(authority);
        raw
    })
}

/// The head an HTTP/2 request makes: hyper's h2 server hands the
/// pseudo-headers and fields to the http crate's types, as here.
fn http2_head(raw: &RawRequest, authority: &str) -> Option<Parts> {
    let mut uri = format!("http://{authority}").into_bytes();
    uri.extend_from_slice(&raw.target);
    let mut request = Request::builder()
        .method(hyper::Method::from_bytes(raw.method.as_bytes()).ok()?)
        .version(hyper::Version::HTTP_2)
        .uri(hyper::Uri::try_from(uri).ok()?);
    for (name, value) in raw.sent_headers() {
        let name = hyper::header::HeaderName::from_bytes(name.as_bytes()).ok()?;
        let value = hyper::header::HeaderValue::from_bytes(&value).ok()?;
        request = request.header(name, value);
    }
    Some(request.body(()).ok()?.into_parts().0)
}

/// Parses request heads with hyper's HTTP/1 server.
pub(crate) struct Parser {
    runtime: Runtime,
}

impl Parser {
    pub(crate) fn new() -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        Self { runtime }
    }

    /// The head hyper made of `raw`, or `None` when hyper refused it.
    pub(crate) fn parse(&self, raw: &[u8]) -> Option<Parts> {
        self.runtime.block_on(async {
            let (mut client, server) = tokio::io::duplex(64 * 1024);
            let (tx, rx) = oneshot::channel();
            let tx = Mutex::new(Some(tx));
            let service = service_fn(move |req: Request<Incoming>| {
                if let Some(tx) = tx.lock().take() {
                    let _ = tx.send(req.into_parts().0);
                }
                std::future::pending::<Result<Response<ResponseBody>, Infallible>>()
            });
            let conn = http1::Builder::new().serve_connection(TokioIo::new(server), service);
            client.write_all(raw).await.unwrap();
            tokio::select! {
                head = rx => head.ok(),
                // The connection ends first only when hyper refused the head.
                _ = conn => None,
            }
        })
    }
}

/// A connection from 127.0.0.1:50000 to 127.0.0.1:8000.
pub(crate) fn conn_info() -> ConnInfo {
    let client: SocketAddr = "127.0.0.1:50000".parse().unwrap();
    let server: SocketAddr = "127.0.0.1:8000".parse().unwrap();
    ConnInfo::new(Some(client), Some(server), None, ServerTasks::default())
}

/// Runs `check` on arbitrary requests that hyper accepted, with the head
/// it made of each (a quarter of them over HTTP/2). Fails if too few were accepted for the run to mean
/// anything.
pub(crate) fn check_requests(check: impl Fn(&RawRequest, Parts) -> Result<(), TestCaseError>) {
    let parser = Parser::new();
    let accepted = Cell::new(0u32);
    let config = Config {
        failure_persistence: None,
        ..Config::default()
    };
    let cases = config.cases;
    let mut runner = TestRunner::new(config);
    let requests = prop_oneof![3 => request(), 1 => http2_request()];
    let result = runner.run(&requests, |raw| {
        let head = match &raw.http2 {
            Some(authority) => http2_head(&raw, authority),
            None => parser.parse(&raw.bytes()),
        };
        match head {
            Some(head) => {
                accepted.set(accepted.get() + 1);
                check(&raw, head)
            }
            None => Ok(()),
        }
    });
    if let Err(err) = result {
        panic!("{err}");
    }
    assert!(
        accepted.get() >= cases / 4,
        "hyper accepted only {} of {cases} requests",
        accepted.get()
    );
}

/// `prop_assert!` for `PyResult`s: a Python error fails the case.
pub(crate) fn py_ok<T, E: fmt::Display>(result: Result<T, E>) -> Result<T, TestCaseError> {
    result.map_err(|e| TestCaseError::fail(e.to_string()))
}
