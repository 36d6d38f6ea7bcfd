//! What a trusted proxy says about a request: RFC 7239 `Forwarded` and the
//! de facto `X-Forwarded-For`, `-Proto`, `-Host`, `-Port` and `-Prefix`.
//!
//! Only called for requests from a trusted peer. The client is the
//! right-most hop that is not itself trusted (nginx's
//! `real_ip_recursive on`): every trusted proxy appends the address it
//! saw, so hops further left than the first untrusted one could have been
//! written by anybody.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use hyper::header::{HeaderMap, HeaderValue};
use percent_encoding::percent_decode_str;

use super::trust::Trusted;

/// What the forwarding headers of one request change.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Forwarding {
    /// The client, when a hop list named one (port 0 when it gave none).
    pub(crate) client: Option<SocketAddr>,
    /// `"http"` or `"https"`.
    pub(crate) scheme: Option<&'static str>,
    /// The `Host` the client asked for (with the forwarded port).
    pub(crate) host: Option<HeaderValue>,
    /// The path the proxy mounts the app at, without a trailing `/`.
    pub(crate) prefix: Option<Arc<str>>,
}

/// The forwarding headers a request carries, in the order they came.
#[derive(Default)]
struct Found<'h> {
    forwarded: Vec<&'h HeaderValue>,
    for_: Vec<&'h HeaderValue>,
    proto: Vec<&'h HeaderValue>,
    host: Vec<&'h HeaderValue>,
    port: Vec<&'h HeaderValue>,
    prefix: Vec<&'h HeaderValue>,
}

/// Reads the forwarding headers; `None` when there are none (one pass
/// over the header names, nothing allocated).
pub(crate) fn read(headers: &HeaderMap, trusted: &Trusted) -> Option<Forwarding> {
    let mut found = Found::default();
    let mut any = false;
    for (name, value) in headers {
        let list = match name.as_str() {
            "forwarded" => &mut found.forwarded,
            "x-forwarded-for" => &mut found.for_,
            "x-forwarded-proto" => &mut found.proto,
            "x-forwarded-host" => &mut found.host,
            "x-forwarded-port" => &mut found.port,
            "x-forwarded-prefix" => &mut found.prefix,
            _ => continue,
        };
        list.push(value);
        any = true;
    }
    if !any {
        return None;
    }
    let mut out = Forwarding::default();
    // `Forwarded`, when present and well formed, says it all; a malformed
    // one is ignored as a whole.
    let elements = (!found.forwarded.is_empty())
        .then(|| parse_forwarded(&found.forwarded))
        .flatten();
    let host = match &elements {
        Some(elements) => {
            out.client = client(elements.iter().map(|e| e.for_.as_deref()), trusted);
            out.scheme = elements
                .iter()
                .rev()
                .find_map(|e| e.proto.as_deref().and_then(scheme));
            elements.iter().rev().find_map(|e| e.host.clone())
        }
        None => {
            let hops = items(&found.for_);
            out.client = client(hops.iter().map(|hop| Some(*hop)), trusted);
            out.scheme = last(&found.proto).and_then(scheme);
            last(&found.host).map(str::to_owned)
        }
    };
    let port = last(&found.port).and_then(|p| p.parse::<u16>().ok());
    out.host = authority(host.as_deref(), port, headers);
    out.prefix = last(&found.prefix).and_then(prefix);
    Some(out)
}

/// Every comma-separated item of the values, trimmed, in order.
fn items<'h>(values: &[&'h HeaderValue]) -> Vec<&'h str> {
    values
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .collect()
}

/// The right-most item: what the nearest proxy said.
fn last<'h>(values: &[&'h HeaderValue]) -> Option<&'h str> {
    items(values).pop()
}

/// The right-most untrusted hop; the left-most one when all are trusted;
/// `None` when that hop is not an address (`unknown`, an obfuscated
/// name, a missing `for=`): then the connection's own peer stays.
fn client<'a>(
    hops: impl DoubleEndedIterator<Item = Option<&'a str>>,
    trusted: &Trusted,
) -> Option<SocketAddr> {
    let mut leftmost = None;
    for hop in hops.rev() {
        let addr = hop.and_then(address)?;
        if !trusted.contains(addr.ip()) {
            return Some(addr);
        }
        leftmost = Some(addr);
    }
    leftmost
}

/// `1.2.3.4`, `1.2.3.4:5678`, `::1`, `[::1]` or `[::1]:5678`.
fn address(hop: &str) -> Option<SocketAddr> {
    if let Ok(addr) = hop.parse::<SocketAddr>() {
        return Some(addr);
    }
    let ip = hop
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(hop);
    ip.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, 0))
}

fn scheme(proto: &str) -> Option<&'static str> {
    match proto.to_ascii_lowercase().as_str() {
        "http" | "ws" => Some("http"),
        "https" | "wss" => Some("https"),
        _ => None,
    }
}

/// The `Host` to put on the request: the forwarded host (or the request's
/// own) with the forwarded port, if any, in place of its port.
fn authority(host: Option<&str>, port: Option<u16>, headers: &HeaderMap) -> Option<HeaderValue> {
    let host = match host {
        Some(host) => host,
        None if port.is_some() => headers.get(hyper::header::HOST)?.to_str().ok()?,
        None => return None,
    };
    let value = match port {
        Some(port) => format!("{}:{port}", strip_port(host)),
        None => host.to_owned(),
    };
    // Nothing but a host and port: no user info, path or spaces.
    let parsed = value.parse::<hyper::http::uri::Authority>().ok()?;
    if parsed.as_str().contains('@') || parsed.host().is_empty() {
        return None;
    }
    HeaderValue::from_str(&value).ok()
}

fn strip_port(host: &str) -> &str {
    match host.rfind(':') {
        Some(i)
            if !host[i..].contains(']') && (host.starts_with('[') || !host[..i].contains(':')) =>
        {
            &host[..i]
        }
        _ => host,
    }
}

/// `/app/` becomes `/app`, `/` the empty prefix; a value that is not a
/// path is ignored.
fn prefix(value: &str) -> Option<Arc<str>> {
    if !value.starts_with('/') || value.contains(['?', '#']) {
        return None;
    }
    let decoded = percent_decode_str(value.trim_end_matches('/'))
        .decode_utf8()
        .ok()?;
    Some(Arc::from(decoded.as_ref()))
}

/// Whether `path` is `root` or below it (a whole segment: `/app` is not
/// under `/ap`).
pub(crate) fn under_root(path: &str, root: &str) -> bool {
    path.strip_prefix(root)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// One element of a `Forwarded` header: what one proxy saw.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Element {
    pub(crate) for_: Option<String>,
    pub(crate) proto: Option<String>,
    pub(crate) host: Option<String>,
}

/// Parses `Forwarded` values (RFC 7239, section 4) into their elements,
/// in order; `None` when any of it is malformed.
pub(crate) fn parse_forwarded(values: &[&HeaderValue]) -> Option<Vec<Element>> {
    let mut elements = Vec::new();
    for value in values {
        parse_into(value.to_str().ok()?, &mut elements)?;
    }
    Some(elements)
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn parse_into(text: &str, out: &mut Vec<Element>) -> Option<()> {
    let bytes = text.as_bytes();
    let mut i = 0;
    let mut element = Element::default();
    let mut pairs = 0;
    let skip_ows = |i: &mut usize| {
        while *i < bytes.len() && (bytes[*i] == b' ' || bytes[*i] == b'\t') {
            *i += 1;
        }
    };
    loop {
        skip_ows(&mut i);
        match bytes.get(i) {
            None | Some(b',') => {
                // Empty list items (`a, , b`) are allowed and mean nothing.
                if pairs > 0 {
                    out.push(std::mem::take(&mut element));
                    pairs = 0;
                }
                if i >= bytes.len() {
                    return Some(());
                }
                i += 1;
                continue;
            }
            Some(b';') => {
                i += 1;
                continue;
            }
            Some(_) => {}
        }
        let start = i;
        while i < bytes.len() && is_tchar(bytes[i]) {
            i += 1;
        }
        let key = text[start..i].to_ascii_lowercase();
        if key.is_empty() || bytes.get(i) != Some(&b'=') {
            return None;
        }
        i += 1;
        let value = if bytes.get(i) == Some(&b'"') {
            i += 1;
            let mut value = String::new();
            loop {
                match *bytes.get(i)? {
                    b'"' => break,
                    b'\\' => i += 1,
                    _ => {}
                }
                // A whole character: `i` stays on character boundaries.
                let c = text.get(i..)?.chars().next()?;
                value.push(c);
                i += c.len_utf8();
            }
            i += 1;
            value
        } else {
            // A token; `[`, `]` and `:` are allowed too, as some proxies
            // leave IPv6 addresses and ports unquoted.
            let start = i;
            while i < bytes.len() && (is_tchar(bytes[i]) || b"[]:".contains(&bytes[i])) {
                i += 1;
            }
            if start == i {
                return None;
            }
            text[start..i].to_owned()
        };
        let slot = match key.as_str() {
            "for" => Some(&mut element.for_),
            "proto" => Some(&mut element.proto),
            "host" => Some(&mut element.host),
            _ => None,
        };
        if let Some(slot) = slot {
            // RFC 7239, 4: a parameter MUST NOT occur twice in an element.
            if slot.replace(value).is_some() {
                return None;
            }
        }
        pairs += 1;
        skip_ows(&mut i);
        if !matches!(bytes.get(i), None | Some(b',' | b';')) {
            return None;
        }
    }
}

#[cfg(test)]
#[path = "forwarded_tests.rs"]
mod tests;
