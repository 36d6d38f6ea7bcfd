//! Tests of the forwarding-header reader, with property tests of the
//! `Forwarded` parser.

use proptest::prelude::*;

use super::*;

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            hyper::header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    map
}

fn local() -> Trusted {
    Trusted::parse(&["127.0.0.1", "10.0.0.0/8", "::1"]).unwrap()
}

fn sock(text: &str) -> Option<SocketAddr> {
    Some(text.parse().unwrap())
}

#[test]
fn no_forwarding_headers_is_none() {
    let map = headers(&[
        ("host", "a"),
        ("x-forwarded", "x"),
        ("forwarded-for", "1.2.3.4"),
    ]);
    assert_eq!(read(&map, &local()), None);
}

#[test]
fn the_client_is_the_rightmost_untrusted_hop() {
    let cases = [
        ("203.0.113.7", "203.0.113.7:0"),
        ("198.51.100.1, 203.0.113.7, 10.0.0.2", "203.0.113.7:0"),
        ("203.0.113.7:4711", "203.0.113.7:4711"),
        ("[2001:db8::1]:4711, 10.0.0.9", "[2001:db8::1]:4711"),
        ("2001:db8::1", "[2001:db8::1]:0"),
        // All trusted: the left-most.
        ("10.0.0.1, 127.0.0.1", "10.0.0.1:0"),
    ];
    for (xff, client) in cases {
        let got = read(&headers(&[("x-forwarded-for", xff)]), &local()).unwrap();
        assert_eq!(got.client, sock(client), "{xff}");
    }
    // Repeated headers are one list, in order.
    let map = headers(&[
        ("x-forwarded-for", "203.0.113.7"),
        ("x-forwarded-for", "10.0.0.1"),
    ]);
    assert_eq!(read(&map, &local()).unwrap().client, sock("203.0.113.7:0"));
    // An untrusted hop that is not an address: the client stays unknown,
    // even with good-looking addresses further left (anyone wrote those).
    let map = headers(&[("x-forwarded-for", "203.0.113.7, unknown, 10.0.0.1")]);
    assert_eq!(read(&map, &local()).unwrap().client, None);
}

#[test]
fn scheme_host_port_and_prefix() {
    let map = headers(&[
        ("host", "internal:8000"),
        ("x-forwarded-proto", "http, HTTPS"),
        ("x-forwarded-host", "example.com"),
        ("x-forwarded-port", "8443"),
        ("x-forwarded-prefix", "/app/"),
    ]);
    let got = read(&map, &local()).unwrap();
    assert_eq!(got.scheme, Some("https"));
    assert_eq!(got.host.unwrap(), "example.com:8443");
    assert_eq!(got.prefix.as_deref(), Some("/app"));
    // The port alone replaces the request's own.
    let map = headers(&[("host", "[::1]:8000"), ("x-forwarded-port", "443")]);
    assert_eq!(read(&map, &local()).unwrap().host.unwrap(), "[::1]:443");
    let map = headers(&[("host", "a.example"), ("x-forwarded-proto", "wss")]);
    assert_eq!(read(&map, &local()).unwrap().scheme, Some("https"));
    // Nonsense is ignored, value by value.
    let map = headers(&[
        ("x-forwarded-proto", "gopher"),
        ("x-forwarded-host", "user@evil.example"),
        ("x-forwarded-port", "99999"),
        ("x-forwarded-prefix", "app"),
    ]);
    assert_eq!(read(&map, &local()).unwrap(), Forwarding::default());
    let map = headers(&[("x-forwarded-prefix", "/")]);
    assert_eq!(read(&map, &local()).unwrap().prefix.as_deref(), Some(""));
}

#[test]
fn forwarded_wins_over_x_forwarded() {
    let map = headers(&[
        ("x-forwarded-for", "198.51.100.1"),
        ("x-forwarded-proto", "http"),
        (
            "forwarded",
            r#"for=192.0.2.60;proto=https;host="shop.example:443", for="[2001:db8:cafe::17]:4711""#,
        ),
        ("forwarded", "for=10.0.0.3;by=10.0.0.4"),
    ]);
    let got = read(&map, &local()).unwrap();
    assert_eq!(got.client, sock("[2001:db8:cafe::17]:4711"));
    assert_eq!(got.scheme, Some("https"));
    assert_eq!(got.host.unwrap(), "shop.example:443");
    // A malformed `Forwarded` is ignored whole: X-Forwarded-* count.
    let map = headers(&[
        ("x-forwarded-for", "198.51.100.1"),
        ("forwarded", "for=1.2.3.4;for=5.6.7.8"),
    ]);
    assert_eq!(read(&map, &local()).unwrap().client, sock("198.51.100.1:0"));
    let map = headers(&[("forwarded", "for=_hidden, for=10.0.0.1")]);
    assert_eq!(read(&map, &local()).unwrap().client, None);
}

#[test]
fn forwarded_syntax() {
    let parse = |text: &str| parse_forwarded(&[&HeaderValue::from_str(text).unwrap()]);
    let one = |f: &str| Element {
        for_: Some(f.into()),
        ..Element::default()
    };
    assert_eq!(parse("for=a, ,for=b").unwrap(), vec![one("a"), one("b")]);
    assert_eq!(parse(r#"For="a\"b";x=y"#).unwrap(), vec![one("a\"b")]);
    assert_eq!(parse("").unwrap(), vec![]);
    for bad in [
        "for",
        "for=",
        "for=a b",
        r#"for="open"#,
        "=a",
        "for=a;;proto=\"x\"y",
        "for=a,proto",
    ] {
        assert_eq!(parse(bad), None, "{bad}");
    }
}

fn value() -> impl Strategy<Value = String> {
    // Printable ASCII, quotes and backslashes included.
    "[ -~]{0,20}"
}

fn quoted(value: &str) -> String {
    let mut out = String::from("\"");
    for c in value.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

proptest! {
    #[test]
    fn parsing_anything_never_panics(text in "[ -~\t]{0,60}") {
        if let Ok(value) = HeaderValue::from_str(&text) {
            let _ = parse_forwarded(&[&value]);
            let _ = read(&HeaderMap::from_iter([(hyper::header::FORWARDED, value.clone())]), &local());
            let name = hyper::header::HeaderName::from_static("x-forwarded-for");
            let _ = read(&HeaderMap::from_iter([(name, value)]), &local());
        }
    }

    #[test]
    fn elements_survive_a_round_trip(
        elements in proptest::collection::vec(
            (proptest::option::of(value()), proptest::option::of(value()), proptest::option::of(value())),
            1..5,
        )
    ) {
        let mut text = Vec::new();
        let mut expected = Vec::new();
        for (for_, proto, host) in elements {
            let mut pairs = Vec::new();
            for (key, value) in [("for", &for_), ("proto", &proto), ("host", &host)] {
                if let Some(value) = value {
                    pairs.push(format!("{key}={}", quoted(value)));
                }
            }
            if pairs.is_empty() {
                pairs.push("by=x".into());
            }
            text.push(pairs.join(";"));
            expected.push(Element { for_, proto, host });
        }
        let text = text.join(", ");
        let parsed = parse_forwarded(&[&HeaderValue::from_str(&text).unwrap()]);
        prop_assert_eq!(parsed, Some(expected));
    }
}
