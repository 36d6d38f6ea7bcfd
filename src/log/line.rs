//! An access line rendered in Rust, for the common case: a format whose
//! conversions are all plain (`%(atom)s`, `%(atom)d`, `%(atom).3f`) and a
//! `diorite.access` logger that only writes the message (the default).
//! The Python side splits the format (`diorite.logs.access_parts`) and
//! tells, per batch, whether the logger is still that plain; anything else
//! goes through `logging` record by record.

use std::fmt::Write;
use std::net::IpAddr;
use std::time::Duration;

/// One piece of a split format.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Part {
    Text(String),
    Atom(Atom, Conversion),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Atom {
    Addr,
    Time,
    DtMs,
    Status,
    Path,
    QueryString,
    Method,
    Scheme,
    Protocol,
    Size,
    /// The n-th configured request header.
    Header(usize),
}

/// `s`, `d` (or `i`) and `f` with a precision: what `%` does with them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Conversion {
    Str,
    Int,
    Fixed(usize),
}

/// An atom's value.
#[derive(Debug)]
pub(crate) enum Value<'a> {
    Str(&'a str),
    Int(u64),
    Float(f64),
}

impl Atom {
    /// The atom a format key names; `headers` are the configured header
    /// names (lower case), which keys give as `header{name}`.
    pub(crate) fn parse(key: &str, headers: &[&str]) -> Option<Self> {
        Some(match key {
            "addr" => Self::Addr,
            "time" => Self::Time,
            "dt_ms" => Self::DtMs,
            "status" => Self::Status,
            "path" => Self::Path,
            "query_string" => Self::QueryString,
            "method" => Self::Method,
            "scheme" => Self::Scheme,
            "protocol" => Self::Protocol,
            "size" | "rbl" => Self::Size,
            _ => {
                let name = key.strip_prefix("header{")?.strip_suffix('}')?;
                Self::Header(headers.iter().position(|h| *h == name)?)
            }
        })
    }
}

impl Conversion {
    pub(crate) fn parse(conversion: &str, precision: i64) -> Option<Self> {
        match (conversion, precision) {
            ("s", -1) => Some(Self::Str),
            ("d" | "i", -1) => Some(Self::Int),
            ("f", -1) => Some(Self::Fixed(6)),
            ("f", p) if (0..=20).contains(&p) => Some(Self::Fixed(p as usize)),
            _ => None,
        }
    }
}

/// Appends `value` as `%` would convert it (the format was checked with
/// values of the same types at start-up).
pub(crate) fn push(line: &mut String, value: Value<'_>, conversion: Conversion) {
    let _ = match (value, conversion) {
        (Value::Str(text), _) => {
            line.push_str(text);
            Ok(())
        }
        (Value::Int(n), Conversion::Str | Conversion::Int) => {
            line.push_str(itoa::Buffer::new().format(n));
            Ok(())
        }
        (Value::Int(n), Conversion::Fixed(p)) => write!(line, "{:.p$}", n as f64),
        // Python's `str(float)` keeps a `.0`, as Debug does.
        (Value::Float(x), Conversion::Str) => write!(line, "{x:?}"),
        (Value::Float(x), Conversion::Int) => write!(line, "{}", x.trunc() as i64),
        (Value::Float(x), Conversion::Fixed(p)) => write!(line, "{x:.p$}"),
    };
}

/// Appends `ip` as its `Display` does (the `addr` atom of the `logging`
/// path), IPv4 through `itoa`: `fmt` pads and checks widths per octet.
pub(crate) fn push_ip(line: &mut String, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            let mut digits = itoa::Buffer::new();
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    line.push('.');
                }
                line.push_str(digits.format(octet));
            }
        }
        IpAddr::V6(v6) => {
            let _ = write!(line, "{v6}");
        }
    }
}

/// Appends `duration` in milliseconds as `push` would a float of it, with
/// integer arithmetic where that gives the same digits: up to 6 decimals
/// (whole nanoseconds), under a day (so the float's error stays far below
/// a nanosecond) and not exactly halfway between two last digits (where
/// the float's own rounding decides).
pub(crate) fn push_millis(line: &mut String, duration: Duration, conversion: Conversion) {
    const DAY_NS: u64 = 86_400 * 1_000_000_000;
    if let Conversion::Fixed(places) = conversion
        && places <= 6
        && let Ok(ns) = u64::try_from(duration.as_nanos())
        && ns < DAY_NS
    {
        let quantum = 10u64.pow(6 - places as u32);
        let (mut units, rest) = (ns / quantum, ns % quantum);
        if 2 * rest != quantum {
            if 2 * rest > quantum {
                units += 1;
            }
            let mut digits = itoa::Buffer::new();
            if places == 0 {
                line.push_str(digits.format(units));
            } else {
                let scale = 10u64.pow(places as u32);
                line.push_str(digits.format(units / scale));
                line.push('.');
                let fraction = digits.format(units % scale);
                line.extend(std::iter::repeat_n('0', places - fraction.len()));
                line.push_str(fraction);
            }
            return;
        }
    }
    push(
        line,
        Value::Float(duration.as_secs_f64() * 1000.0),
        conversion,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_as_display_writes_them() {
        for ip in [
            "0.0.0.0",
            "10.20.255.7",
            "127.0.0.1",
            "::1",
            "2001:db8::ff00:42:8329",
        ] {
            let mut line = String::new();
            push_ip(&mut line, ip.parse().unwrap());
            assert_eq!(line, ip);
        }
    }

    #[test]
    fn milliseconds_match_the_float_path() {
        let mut samples: Vec<u64> = vec![0, 1, 499, 500, 501, 999, 1_000, 1_500, 2_500, 12_345_678];
        // A spread of values, ties included (multiples of 5 at every scale).
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            samples.push(x % 10_000_000_000);
            samples.push((x % 2_000_000) * 5);
        }
        for ns in samples {
            let duration = Duration::from_nanos(ns);
            for places in 0..=8 {
                let conversion = Conversion::Fixed(places);
                let (mut fast, mut float) = (String::new(), String::new());
                push_millis(&mut fast, duration, conversion);
                push(
                    &mut float,
                    Value::Float(duration.as_secs_f64() * 1000.0),
                    conversion,
                );
                assert_eq!(fast, float, "{ns} ns, {places} places");
            }
        }
    }

    #[test]
    fn conversions_match_pythons_percent() {
        let cases = [
            (Value::Float(1.23456), Conversion::Fixed(3), "1.235"),
            (Value::Float(2.0), Conversion::Str, "2.0"),
            (Value::Float(2.9), Conversion::Int, "2"),
            (Value::Int(200), Conversion::Int, "200"),
            (Value::Int(200), Conversion::Fixed(1), "200.0"),
            (Value::Str("GET"), Conversion::Str, "GET"),
        ];
        for (value, conversion, expected) in cases {
            let mut line = String::new();
            push(&mut line, value, conversion);
            assert_eq!(line, expected);
        }
    }

    #[test]
    fn keys() {
        assert_eq!(Atom::parse("rbl", &[]), Some(Atom::Size));
        assert_eq!(Atom::parse("header{b}", &["a", "b"]), Some(Atom::Header(1)));
        assert_eq!(Atom::parse("header{c}", &["a"]), None);
        assert_eq!(Conversion::parse("f", 3), Some(Conversion::Fixed(3)));
        assert_eq!(Conversion::parse("r", -1), None);
    }
}
