//! One access record, and how it becomes a line: rendered here for the
//! plain case (see [`line`]), or a dict of atoms for a `LogRecord`.

use std::net::IpAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hyper::header::{HeaderName, HeaderValue};
use hyper::{Method, Version};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

use super::line::{self, Atom, Conversion, Part, Value};

/// The status logged for a request whose client left before its response
/// was complete (nginx's "client closed request").
pub(crate) const CLIENT_GONE: u16 = 499;

/// What one request leaves in the log.
#[derive(Debug)]
pub(super) struct Record {
    pub(super) client: Option<IpAddr>,
    pub(super) scheme: &'static str,
    pub(super) method: Method,
    /// The request target, copied: a clone of the `Uri` (or of a header
    /// value) would share hyper's read buffer, which then could not be
    /// reused for the connection's next request until the batch is logged.
    pub(super) target: Box<str>,
    /// Where the path ends in `target` (a `?` follows when there is more).
    pub(super) path_len: usize,
    pub(super) version: Version,
    pub(super) headers: Vec<Option<HeaderValue>>,
    /// When the request arrived; its wall-clock time is worked out when the
    /// batch is logged (see [`Clock`]), one clock read per batch.
    pub(super) started: Instant,
    pub(super) duration: Duration,
    /// 0 until the response head is known.
    pub(super) status: u16,
    /// Body bytes handed to the connection.
    pub(super) size: u64,
    pub(super) complete: bool,
}

/// The format's pieces, or `None` when one of them is beyond [`line`].
pub(super) fn split(
    given: Vec<(String, String, String, i64)>,
    headers: &[&str],
) -> Option<Vec<Part>> {
    let mut parts = Vec::with_capacity(given.len() * 2);
    for (text, key, conversion, precision) in given {
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        if !key.is_empty() {
            let atom = Atom::parse(&key, headers)?;
            parts.push(Part::Atom(atom, Conversion::parse(&conversion, precision)?));
        }
    }
    Some(parts)
}

/// The dict keys of the configured headers: Granian's `header{name}` and
/// Gunicorn's `{name}i`.
pub(super) struct Keys<'py> {
    headers: Vec<(Bound<'py, PyString>, Bound<'py, PyString>)>,
}

impl<'py> Keys<'py> {
    pub(super) fn new(py: Python<'py>, names: &[HeaderName]) -> Self {
        let headers = names
            .iter()
            .map(|name| {
                (
                    PyString::new(py, &format!("header{{{}}}", name.as_str())),
                    PyString::new(py, &format!("{{{}}}i", name.as_str())),
                )
            })
            .collect();
        Self { headers }
    }
}

/// The `time` atom, formatted once per second.
#[derive(Default)]
pub(super) struct Clock {
    /// The wall clock and the monotonic clock read together, when the
    /// batch started to be logged ([`Clock::tick`]).
    now: Option<(SystemTime, Instant)>,
    second: Option<u64>,
    text: String,
}

impl Clock {
    /// Reads both clocks, for the batch about to be logged.
    pub(super) fn tick(&mut self) {
        self.now = Some((SystemTime::now(), Instant::now()));
    }

    /// The wall-clock time of `started`, as local time,
    /// `YYYY-MM-DD HH:MM:SS +zzzz` (Granian's `time`). Python's `strftime`
    /// knows the time zone; it is asked once per second of the batch.
    fn text(&mut self, py: Python<'_>, started: Instant) -> PyResult<&str> {
        let (wall, mono) = *self
            .now
            .get_or_insert_with(|| (SystemTime::now(), Instant::now()));
        let at = wall
            .checked_sub(mono.saturating_duration_since(started))
            .unwrap_or(wall);
        let second = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if self.second != Some(second) {
            let time = py.import("time")?;
            let local = time.call_method1("localtime", (second,))?;
            let text = time.call_method1("strftime", ("%Y-%m-%d %H:%M:%S %z", local))?;
            self.text = text.extract()?;
            self.second = Some(second);
        }
        Ok(&self.text)
    }
}

impl Record {
    fn path(&self) -> &str {
        &self.target[..self.path_len]
    }

    fn query(&self) -> &str {
        self.target.get(self.path_len + 1..).unwrap_or("")
    }

    fn status(&self) -> u16 {
        if self.complete {
            self.status
        } else {
            CLIENT_GONE
        }
    }

    /// Appends the line `parts` make of this record.
    pub(super) fn render(
        &self,
        py: Python<'_>,
        parts: &[Part],
        clock: &mut Clock,
        line: &mut String,
    ) -> PyResult<()> {
        for part in parts {
            let (atom, conversion) = match part {
                Part::Text(text) => {
                    line.push_str(text);
                    continue;
                }
                Part::Atom(atom, conversion) => (*atom, *conversion),
            };
            let header;
            let value = match atom {
                Atom::Addr => match self.client {
                    Some(ip) => {
                        // Written in place: no string per record.
                        line::push_ip(line, ip);
                        continue;
                    }
                    None => Value::Str("-"),
                },
                Atom::Time => Value::Str(clock.text(py, self.started)?),
                Atom::DtMs => {
                    line::push_millis(line, self.duration, conversion);
                    continue;
                }
                Atom::Status => Value::Int(self.status().into()),
                Atom::Path => Value::Str(self.path()),
                Atom::QueryString => Value::Str(self.query()),
                Atom::Method => Value::Str(self.method.as_str()),
                Atom::Scheme => Value::Str(self.scheme),
                Atom::Protocol => Value::Str(protocol(self.version)),
                Atom::Size => Value::Int(self.size),
                Atom::Header(n) => match self.headers.get(n).and_then(|v| v.as_ref()) {
                    Some(value) => {
                        header = String::from_utf8_lossy(value.as_bytes());
                        Value::Str(&header)
                    }
                    None => Value::Str("-"),
                },
            };
            line::push(line, value, conversion);
        }
        Ok(())
    }

    pub(super) fn atoms<'py>(
        &self,
        py: Python<'py>,
        keys: &Keys<'py>,
        clock: &mut Clock,
    ) -> PyResult<Bound<'py, PyDict>> {
        let atoms = PyDict::new(py);
        let addr = match self.client {
            Some(ip) => ip.to_string(),
            None => "-".to_owned(),
        };
        let status = self.status();
        atoms.set_item("addr", addr)?;
        atoms.set_item("time", clock.text(py, self.started)?)?;
        atoms.set_item("dt_ms", self.duration.as_secs_f64() * 1000.0)?;
        atoms.set_item("status", status)?;
        atoms.set_item("path", self.path())?;
        atoms.set_item("query_string", self.query())?;
        atoms.set_item("method", self.method.as_str())?;
        atoms.set_item("scheme", self.scheme)?;
        atoms.set_item("protocol", protocol(self.version))?;
        atoms.set_item("rbl", self.size)?;
        atoms.set_item("size", self.size)?;
        for ((granian, gunicorn), value) in keys.headers.iter().zip(&self.headers) {
            let value = match value {
                Some(value) => String::from_utf8_lossy(value.as_bytes()).into_owned(),
                None => "-".to_owned(),
            };
            atoms.set_item(granian, &value)?;
            atoms.set_item(gunicorn, value)?;
        }
        Ok(atoms)
    }
}

fn protocol(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_11 => "HTTP/1.1",
        Version::HTTP_2 => "HTTP/2",
        Version::HTTP_3 => "HTTP/3",
        _ => "HTTP",
    }
}
