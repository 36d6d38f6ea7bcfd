//! An access line rendered in Rust, for the common case: a format whose
//! conversions are all plain (`%(atom)s`, `%(atom)d`, `%(atom).3f`) and a
//! `diorite.access` logger that only writes the message (the default).
//! The Python side splits the format (`diorite.logs.access_parts`) and
//! tells, per batch, whether the logger is still that plain; anything else
//! goes through `logging` record by record.

use std::fmt::Write;

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
        (Value::Int(n), Conversion::Str | Conversion::Int) => write!(line, "{n}"),
        (Value::Int(n), Conversion::Fixed(p)) => write!(line, "{:.p$}", n as f64),
        // Python's `str(float)` keeps a `.0`, as Debug does.
        (Value::Float(x), Conversion::Str) => write!(line, "{x:?}"),
        (Value::Float(x), Conversion::Int) => write!(line, "{}", x.trunc() as i64),
        (Value::Float(x), Conversion::Fixed(p)) => write!(line, "{x:.p$}"),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

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
