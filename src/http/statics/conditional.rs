//! Validators of a file (`ETag`, `Last-Modified`) and the conditional
//! request headers judged against them (RFC 9110, section 13).
//!
//! The ETag is strong, made from the file's size and modification time in
//! nanoseconds (nginx makes its strong ETag the same way, from seconds):
//! a file rewritten in place changes one or the other, and a strong one
//! lets `If-Range` use it.

use std::time::{SystemTime, UNIX_EPOCH};

use hyper::HeaderMap;
use hyper::header::{
    HeaderValue, IF_MATCH, IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_RANGE, IF_UNMODIFIED_SINCE,
};

/// What a response's validators are made from.
#[derive(Debug, Clone)]
pub(crate) struct Validators {
    /// With its quotes: `"1a2b-5f3c"`.
    pub(crate) etag: String,
    pub(crate) modified: SystemTime,
}

impl Validators {
    /// `coding` tells a precompressed variant's tag from the identity
    /// file's, as two representations must not share a strong ETag.
    pub(crate) fn new(size: u64, modified: SystemTime, coding: Option<&str>) -> Self {
        let nanos = modified
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let etag = match coding {
            Some(coding) => format!("\"{size:x}-{nanos:x}-{coding}\""),
            None => format!("\"{size:x}-{nanos:x}\""),
        };
        // HTTP dates have whole seconds: comparisons with them must too.
        let modified = UNIX_EPOCH
            + std::time::Duration::from_secs(
                modified
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs()),
            );
        Self { etag, modified }
    }

    pub(crate) fn last_modified(&self) -> HeaderValue {
        HeaderValue::try_from(httpdate::fmt_http_date(self.modified))
            .expect("an HTTP date is a valid header value")
    }

    /// Whether the request is answered `412 Precondition Failed`: an
    /// `If-Match` that does not hold this file's tag (strong comparison:
    /// a `W/` tag never matches; `*` matches, the file exists), or, only
    /// when there is no `If-Match`, an `If-Unmodified-Since` older than
    /// the file. Judged first (RFC 9110, 13.2.2): a client that asks for
    /// a part of the version it has must not get a newer one.
    pub(crate) fn precondition_failed(&self, headers: &HeaderMap) -> bool {
        if headers.contains_key(IF_MATCH) {
            return !headers
                .get_all(IF_MATCH)
                .iter()
                .any(|value| self.matches_any(value, Comparison::Strong));
        }
        headers
            .get(IF_UNMODIFIED_SINCE)
            .and_then(|value| value.to_str().ok())
            .and_then(|text| httpdate::parse_http_date(text).ok())
            .is_some_and(|since| self.modified > since)
    }

    /// Whether a GET or HEAD is answered `304 Not Modified`: an
    /// `If-None-Match` that matches (weak comparison, `*` matching any
    /// file), or, only when there is no `If-None-Match`, an
    /// `If-Modified-Since` not older than the file. An unreadable date is
    /// ignored, as RFC 9110 says.
    pub(crate) fn not_modified(&self, headers: &HeaderMap) -> bool {
        if headers.contains_key(IF_NONE_MATCH) {
            return headers
                .get_all(IF_NONE_MATCH)
                .iter()
                .any(|value| self.matches_any(value, Comparison::Weak));
        }
        headers
            .get(IF_MODIFIED_SINCE)
            .and_then(|value| value.to_str().ok())
            .and_then(|text| httpdate::parse_http_date(text).ok())
            .is_some_and(|since| self.modified <= since)
    }

    /// Whether a `Range` is honoured under `If-Range`: none given, or it
    /// names this very file, by strong ETag or by its exact date.
    pub(crate) fn range_applies(&self, headers: &HeaderMap) -> bool {
        let Some(value) = headers.get(IF_RANGE) else {
            return true;
        };
        let Ok(text) = value.to_str() else {
            return false;
        };
        let text = text.trim();
        if text.starts_with('"') || text.starts_with("W/") {
            // A weak tag never matches in If-Range (strong comparison).
            return text == self.etag;
        }
        httpdate::parse_http_date(text).is_ok_and(|date| date == self.modified)
    }

    /// Whether a list of entity tags (or `*`) holds this file's tag.
    fn matches_any(&self, value: &HeaderValue, comparison: Comparison) -> bool {
        let Ok(text) = value.to_str() else {
            return false;
        };
        text.split(',').map(str::trim).any(|tag| {
            if tag == "*" {
                return true;
            }
            match comparison {
                Comparison::Weak => tag.strip_prefix("W/").unwrap_or(tag) == self.etag,
                Comparison::Strong => tag == self.etag,
            }
        })
    }
}

/// How entity tags are compared (RFC 9110, 8.8.3.2): weakly, `W/`
/// prefixes ignored, for `If-None-Match`; strongly, a weak tag matching
/// nothing, for `If-Match`.
#[derive(Debug, Clone, Copy)]
enum Comparison {
    Weak,
    Strong,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn file() -> Validators {
        Validators::new(1000, UNIX_EPOCH + Duration::new(1_700_000_000, 5), None)
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn the_etag_changes_with_size_time_and_coding() {
        let base = file();
        assert!(base.etag.starts_with('"') && base.etag.ends_with('"'));
        let later = Validators::new(1000, UNIX_EPOCH + Duration::new(1_700_000_000, 6), None);
        let bigger = Validators::new(1001, UNIX_EPOCH + Duration::new(1_700_000_000, 5), None);
        let br = Validators::new(
            1000,
            UNIX_EPOCH + Duration::new(1_700_000_000, 5),
            Some("br"),
        );
        for other in [later, bigger, br] {
            assert_ne!(other.etag, base.etag);
        }
        assert_eq!(
            base.last_modified().to_str().unwrap(),
            "Tue, 14 Nov 2023 22:13:20 GMT"
        );
    }

    #[test]
    fn if_none_match_compares_weakly_and_wins_over_the_date() {
        let f = file();
        let tag = f.etag.clone();
        assert!(f.not_modified(&headers(&[("if-none-match", &tag)])));
        assert!(f.not_modified(&headers(&[("if-none-match", &format!("W/{tag}"))])));
        assert!(f.not_modified(&headers(&[("if-none-match", &format!("\"x\", {tag}"))])));
        assert!(f.not_modified(&headers(&[("if-none-match", "*")])));
        assert!(!f.not_modified(&headers(&[("if-none-match", "\"x\"")])));
        // A mismatching tag is not overruled by a date that would match.
        let date = "Wed, 15 Nov 2023 00:00:00 GMT";
        assert!(!f.not_modified(&headers(&[
            ("if-none-match", "\"x\""),
            ("if-modified-since", date)
        ])));
    }

    #[test]
    fn if_modified_since_matches_dates_not_older_than_the_file() {
        let f = file();
        let at = "Tue, 14 Nov 2023 22:13:20 GMT";
        let before = "Tue, 14 Nov 2023 22:13:19 GMT";
        assert!(f.not_modified(&headers(&[("if-modified-since", at)])));
        assert!(!f.not_modified(&headers(&[("if-modified-since", before)])));
        assert!(!f.not_modified(&headers(&[("if-modified-since", "yesterday")])));
        assert!(!f.not_modified(&HeaderMap::new()));
    }

    #[test]
    fn if_match_compares_strongly_and_wins_over_the_date() {
        let f = file();
        let tag = f.etag.clone();
        assert!(!f.precondition_failed(&HeaderMap::new()));
        assert!(!f.precondition_failed(&headers(&[("if-match", &tag)])));
        assert!(!f.precondition_failed(&headers(&[("if-match", "*")])));
        assert!(!f.precondition_failed(&headers(&[("if-match", &format!("\"x\", {tag}"))])));
        assert!(f.precondition_failed(&headers(&[("if-match", &format!("W/{tag}"))])));
        assert!(f.precondition_failed(&headers(&[("if-match", "\"x\"")])));
        // A matching tag is not overruled by a date that would fail.
        let old = "Mon, 13 Nov 2023 00:00:00 GMT";
        assert!(!f.precondition_failed(&headers(&[
            ("if-match", &tag),
            ("if-unmodified-since", old)
        ])));
    }

    #[test]
    fn if_unmodified_since_fails_for_dates_older_than_the_file() {
        let f = file();
        let at = "Tue, 14 Nov 2023 22:13:20 GMT";
        let before = "Tue, 14 Nov 2023 22:13:19 GMT";
        assert!(!f.precondition_failed(&headers(&[("if-unmodified-since", at)])));
        assert!(f.precondition_failed(&headers(&[("if-unmodified-since", before)])));
        assert!(!f.precondition_failed(&headers(&[("if-unmodified-since", "yesterday")])));
    }

    #[test]
    fn if_range_needs_the_strong_tag_or_the_exact_date() {
        let f = file();
        let tag = f.etag.clone();
        assert!(f.range_applies(&HeaderMap::new()));
        assert!(f.range_applies(&headers(&[("if-range", &tag)])));
        assert!(!f.range_applies(&headers(&[("if-range", &format!("W/{tag}"))])));
        assert!(!f.range_applies(&headers(&[("if-range", "\"other\"")])));
        assert!(f.range_applies(&headers(&[("if-range", "Tue, 14 Nov 2023 22:13:20 GMT")])));
        assert!(!f.range_applies(&headers(&[("if-range", "Tue, 14 Nov 2023 22:13:21 GMT")])));
    }
}
