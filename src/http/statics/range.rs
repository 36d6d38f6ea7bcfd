//! The `Range` header of a static file request (RFC 9110, 14.1-14.2).
//!
//! One byte range is served as asked; a header with several ranges is
//! ignored and the whole file served, which RFC 9110 allows, and which
//! spares a multipart body no browser or download tool needs. A header
//! that does not parse is ignored too, as the RFC says.

use super::super::FileRange;

/// What a `Range` header asks of a file of `size` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ranged {
    /// Send the whole file (no header, several ranges, or one unreadable).
    Whole,
    /// Send this part, with 206.
    Part(FileRange),
    /// Nothing of the file is in the range: 416.
    Unsatisfiable,
}

pub(crate) fn parse(header: &str, size: u64) -> Ranged {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return Ranged::Whole;
    };
    if spec.contains(',') {
        return Ranged::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Ranged::Whole;
    };
    let number = |text: &str| {
        let text = text.trim();
        // `u64::from_str` takes a `+` sign, which a range may not have.
        (!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()))
            .then(|| text.parse::<u64>().ok())
            .flatten()
    };
    if first.trim().is_empty() {
        // `-n`: the last n bytes.
        return match number(last) {
            Some(0) => Ranged::Unsatisfiable,
            Some(n) if size > 0 => Ranged::Part(FileRange {
                start: size.saturating_sub(n),
                end: size,
            }),
            Some(_) => Ranged::Unsatisfiable,
            None => Ranged::Whole,
        };
    }
    let Some(start) = number(first) else {
        return Ranged::Whole;
    };
    let end = if last.trim().is_empty() {
        size
    } else {
        match number(last) {
            Some(last) if last >= start => last.saturating_add(1).min(size),
            _ => return Ranged::Whole,
        }
    };
    if start >= size {
        return Ranged::Unsatisfiable;
    }
    Ranged::Part(FileRange { start, end })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(start: u64, end: u64) -> Ranged {
        Ranged::Part(FileRange { start, end })
    }

    #[test]
    fn single_ranges_of_every_form() {
        assert_eq!(parse("bytes=0-9", 100), part(0, 10));
        assert_eq!(parse("bytes=10-19", 100), part(10, 20));
        assert_eq!(parse("bytes=90-", 100), part(90, 100));
        assert_eq!(parse("bytes=-5", 100), part(95, 100));
        assert_eq!(parse("bytes=-500", 100), part(0, 100));
        assert_eq!(parse("bytes=50-5000", 100), part(50, 100));
        assert_eq!(parse("bytes=99-99", 100), part(99, 100));
    }

    #[test]
    fn ranges_outside_the_file_are_unsatisfiable() {
        assert_eq!(parse("bytes=100-", 100), Ranged::Unsatisfiable);
        assert_eq!(parse("bytes=200-300", 100), Ranged::Unsatisfiable);
        assert_eq!(parse("bytes=-0", 100), Ranged::Unsatisfiable);
        assert_eq!(parse("bytes=0-", 0), Ranged::Unsatisfiable);
        assert_eq!(parse("bytes=-5", 0), Ranged::Unsatisfiable);
    }

    #[test]
    fn several_or_unreadable_ranges_mean_the_whole_file() {
        for header in [
            "bytes=0-1,5-6",
            "bytes=5-1",
            "bytes=x-",
            "bytes=+1-2",
            "bytes=-",
            "items=0-1",
            "bytes 0-1",
        ] {
            assert_eq!(parse(header, 100), Ranged::Whole, "{header}");
        }
    }
}
