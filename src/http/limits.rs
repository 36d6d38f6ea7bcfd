//! [`RequestLimits`]: what one request may hold, checked as soon as hyper
//! has parsed its head, before any interface sees it. (The header block as
//! a whole and the number of fields are bounded by hyper itself while it
//! parses; see `server::accept`.)

use std::time::Duration;

use hyper::header::{CONNECTION, HeaderValue};
use hyper::{Request, Response, StatusCode, Version};

use super::{ResponseBody, error_response};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RequestLimits {
    /// Longest request line (method, target, version); `None`: no limit
    /// beyond the header block's.
    pub(crate) request_line: Option<usize>,
    /// Longest header field line (`name: value`); `None`: no limit beyond
    /// the header block's.
    pub(crate) field_size: Option<usize>,
    /// Largest request body; `None`: no limit.
    pub(crate) max_body_size: Option<u64>,
    /// Longest wait for the next piece of a request body; `None`: none.
    pub(crate) body_read_timeout: Option<Duration>,
}

/// How a request body reader is bounded: carried to it in the request's
/// extensions, and only on requests that have a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct BodyLimits {
    pub(crate) max_size: Option<u64>,
    pub(crate) read_timeout: Option<Duration>,
}

impl RequestLimits {
    /// hyper's own bounds only, as before these options existed.
    pub(crate) const NONE: Self = Self {
        request_line: None,
        field_size: None,
        max_body_size: None,
        body_read_timeout: None,
    };

    /// The answer for a request over a limit, or the request, with its
    /// body's limits attached when it has a body.
    // The request goes on by value on the hot path; boxing the rare
    // refusal would buy nothing.
    #[allow(clippy::result_large_err)]
    pub(crate) fn admit<B: hyper::body::Body>(
        &self,
        mut req: Request<B>,
    ) -> Result<Request<B>, Response<ResponseBody>> {
        if let Some(status) = self.refusal(&req) {
            return Err(refusal(status, req.version()));
        }
        let body = BodyLimits {
            max_size: self.max_body_size,
            read_timeout: self.body_read_timeout,
        };
        if !req.body().is_end_stream() && body != BodyLimits::default() {
            req.extensions_mut().insert(body);
        }
        Ok(req)
    }

    fn refusal<B: hyper::body::Body>(&self, req: &Request<B>) -> Option<StatusCode> {
        if let Some(limit) = self.request_line {
            // As sent: `METHOD SP target SP HTTP/1.1`.
            let target = match req.uri().path_and_query() {
                Some(pq) if req.uri().scheme().is_none() => pq.as_str().len(),
                _ => req.uri().to_string().len(),
            };
            if req.method().as_str().len() + target + 10 > limit {
                return Some(StatusCode::URI_TOO_LONG);
            }
        }
        if let Some(limit) = self.field_size {
            let over = req
                .headers()
                .iter()
                .any(|(name, value)| name.as_str().len() + 2 + value.len() > limit);
            if over {
                return Some(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
            }
        }
        if let Some(limit) = self.max_body_size
            && req.body().size_hint().lower() > limit
        {
            return Some(StatusCode::PAYLOAD_TOO_LARGE);
        }
        None
    }
}

/// The answer to a request refused over a limit (its head, or its body
/// as it streams). An HTTP/1 connection closes after it: the rest of what
/// the client sent cannot be trusted to frame a next request (HTTP/2
/// frames its streams itself).
pub(crate) fn refusal(status: StatusCode, version: Version) -> Response<ResponseBody> {
    let mut response = error_response(status);
    if version < Version::HTTP_2 {
        response
            .headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

#[cfg(test)]
mod tests {
    use http_body_util::Full;

    use super::*;

    fn request(
        target: &str,
        headers: &[(&str, &str)],
        body: &'static [u8],
    ) -> Request<Full<&'static [u8]>> {
        let mut builder = Request::builder().method("POST").uri(target);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(Full::new(body)).unwrap()
    }

    fn status(limits: &RequestLimits, req: Request<Full<&'static [u8]>>) -> Option<StatusCode> {
        limits.admit(req).err().map(|response| response.status())
    }

    #[test]
    fn each_limit_has_its_status_and_is_inclusive() {
        // "POST " + target + " HTTP/1.1" is 14 bytes around the target.
        let limits = RequestLimits {
            request_line: Some(19),
            field_size: Some(10),
            max_body_size: Some(3),
            body_read_timeout: None,
        };
        assert_eq!(status(&limits, request("/abcd", &[], b"")), None);
        assert_eq!(
            status(&limits, request("/abcde", &[], b"")),
            Some(StatusCode::URI_TOO_LONG)
        );
        assert_eq!(
            status(&limits, request("/", &[("ab", "123456")], b"")),
            None
        );
        assert_eq!(
            status(&limits, request("/", &[("ab", "1234567")], b"")),
            Some(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)
        );
        assert_eq!(status(&limits, request("/", &[], b"abc")), None);
        assert_eq!(
            status(&limits, request("/", &[], b"abcd")),
            Some(StatusCode::PAYLOAD_TOO_LARGE)
        );
        assert_eq!(
            RequestLimits::NONE
                .admit(request(&"/x".repeat(99), &[], b"abcd"))
                .err()
                .map(|r| r.status()),
            None
        );
    }

    #[test]
    fn only_requests_with_a_body_carry_its_limits() {
        let limits = RequestLimits {
            max_body_size: Some(10),
            ..RequestLimits::NONE
        };
        let admitted = limits.admit(request("/", &[], b"abc")).ok().unwrap();
        assert_eq!(
            admitted.extensions().get::<BodyLimits>(),
            Some(&BodyLimits {
                max_size: Some(10),
                read_timeout: None
            })
        );
        let admitted = limits.admit(request("/", &[], b"")).ok().unwrap();
        assert_eq!(admitted.extensions().get::<BodyLimits>(), None);
    }

    #[test]
    fn a_refusal_closes_an_http1_connection() {
        let limits = RequestLimits {
            max_body_size: Some(1),
            ..RequestLimits::NONE
        };
        let refused = limits.admit(request("/", &[], b"ab")).err().unwrap();
        assert_eq!(refused.headers()[CONNECTION], "close");
    }
}
