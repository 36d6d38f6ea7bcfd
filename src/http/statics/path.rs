//! From the part of a request path below a static route to a relative file
//! path that cannot leave the mount.
//!
//! Every segment is percent-decoded once and then judged as a file name:
//! a name is never split again after decoding, so `%2f` and `%5c` cannot
//! make new segments and `%2e%2e` is the same `..` as the raw one. What is
//! left can only name something below the mount; symlinks are the
//! caller's concern (it compares canonical paths).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// Why a request path names no file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// A `%` not followed by two hex digits: answered 400, as the request
    /// is malformed rather than naming a missing file.
    BadEncoding,
    /// A segment that could climb out of the mount or is not a plain file
    /// name (`..`, `.`, an encoded separator, NUL, bytes that are not
    /// UTF-8, an empty segment in the middle): answered 404, as if the
    /// file were not there, so a probe learns nothing.
    Unsafe,
}

/// The relative path `rest` names, and whether it ended with `/` (a
/// directory was asked for). `rest` is the raw (still percent-encoded)
/// path after the route prefix: empty or starting with `/`.
pub(crate) fn relative_path(rest: &str) -> Result<(PathBuf, bool), Refused> {
    let mut path = PathBuf::new();
    let trimmed = rest.strip_prefix('/').unwrap_or(rest);
    let trailing_slash = trimmed.is_empty() || trimmed.ends_with('/');
    let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
    if trimmed.is_empty() {
        return Ok((path, trailing_slash));
    }
    for raw in trimmed.split('/') {
        let name = decode(raw)?;
        if !is_plain_name(&name) {
            return Err(Refused::Unsafe);
        }
        path.push(OsStr::from_bytes(&name));
    }
    Ok((path, trailing_slash))
}

/// Percent-decodes one segment; a stray `%` is malformed.
fn decode(raw: &str) -> Result<Vec<u8>, Refused> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or(Refused::BadEncoding)?;
            let hex = std::str::from_utf8(hex).map_err(|_| Refused::BadEncoding)?;
            // `from_str_radix` takes a sign: `%+1` must not decode.
            if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(Refused::BadEncoding);
            }
            out.push(u8::from_str_radix(hex, 16).map_err(|_| Refused::BadEncoding)?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Ok(out)
}

/// A name that stays in its directory: not empty, not `.` or `..`, no
/// separator of any OS, no NUL, valid UTF-8 (which also refuses overlong
/// encodings such as `%c0%ae`, a `.` to a lax decoder).
pub(crate) fn is_plain_name(name: &[u8]) -> bool {
    !name.is_empty()
        && name != b"."
        && name != b".."
        && !name.iter().any(|b| matches!(b, b'/' | b'\\' | 0))
        && std::str::from_utf8(name).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(rest: &str) -> (String, bool) {
        let (path, dir) = relative_path(rest).unwrap();
        (path.to_str().unwrap().to_owned(), dir)
    }

    #[test]
    fn plain_paths_decode_to_relative_ones() {
        assert_eq!(ok(""), (String::new(), true));
        assert_eq!(ok("/"), (String::new(), true));
        assert_eq!(ok("/a.css"), ("a.css".into(), false));
        assert_eq!(ok("/dir/"), ("dir".into(), true));
        assert_eq!(ok("/a%20b/c%2Ed"), ("a b/c.d".into(), false));
        // Decoded once only: a double-encoded dot is a literal name.
        assert_eq!(ok("/%252e%252e"), ("%2e%2e".into(), false));
        assert_eq!(ok("/..;/x"), ("..;/x".into(), false));
        assert_eq!(ok("/caf%C3%A9"), ("café".into(), false));
    }

    #[test]
    fn segments_that_could_escape_are_refused() {
        for rest in [
            "/..",
            "/../x",
            "/a/../../x",
            "/%2e%2e/x",
            "/%2E%2e/x",
            "/.%2e/x",
            "/%2e./x",
            "/./x",
            "/..%2fx",
            "/a%2f..%2f..%2fx",
            "/..%5cx",
            "/..\\x",
            "/a%00.txt",
            "//etc/passwd",
            "/a//b",
            "/%c0%ae%c0%ae/x",
            "/%ff",
        ] {
            assert_eq!(relative_path(rest), Err(Refused::Unsafe), "{rest}");
        }
    }

    #[test]
    fn malformed_percent_encoding_is_refused_as_such() {
        for rest in ["/%", "/%2", "/%zz", "/a%+1", "/%%41"] {
            assert_eq!(relative_path(rest), Err(Refused::BadEncoding), "{rest}");
        }
    }
}
