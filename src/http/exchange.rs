//! The Rust half of one request/response exchange, the same for every
//! interface: admission under the back-pressure limit, the request body
//! reader, and the channel the response head comes back through.

use std::sync::Arc;
use std::time::Duration;

use hyper::body::{Body as _, Incoming};
use hyper::header::{COOKIE, HeaderValue, RETRY_AFTER};
use hyper::http::request::Parts;
use hyper::{Request, Response, StatusCode, Version};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError, oneshot};

use super::metrics;
use super::{BodyLimits, OnBodyRead, RequestBody, ResponseBody, error_response, refusal};

/// Where the interface sends the response head (with its body).
pub(crate) type Reply = oneshot::Sender<Response<ResponseBody>>;

/// A request admitted for the app: its head and body, the permit that
/// counts it against `--backpressure`, and the reply channel.
pub(crate) struct Admitted {
    pub(crate) head: Parts,
    pub(crate) body: Arc<RequestBody>,
    pub(crate) permit: OwnedSemaphorePermit,
    pub(crate) reply: Reply,
}

/// The `--backpressure` places of a worker's interface, and how long a
/// request may wait for one (`--backpressure-timeout`).
pub(crate) struct Backpressure {
    places: Arc<Semaphore>,
    wait: Duration,
}

impl Backpressure {
    pub(crate) fn new(places: usize, wait: Duration) -> Self {
        Self {
            places: Arc::new(Semaphore::new(places.max(1))),
            wait,
        }
    }

    /// A place, at once or once one is free; `None` when none came free
    /// within the wait. (The places are never closed; were they, the
    /// answer would be the same.)
    async fn place(&self) -> Option<OwnedSemaphorePermit> {
        match Arc::clone(&self.places).try_acquire_owned() {
            Ok(permit) => return Some(permit),
            Err(TryAcquireError::Closed) => return None,
            Err(TryAcquireError::NoPermits) => metrics::backpressure_wait(),
        }
        let waited = tokio::time::timeout(self.wait, Arc::clone(&self.places).acquire_owned());
        match waited.await {
            Ok(permit) => permit.ok(),
            Err(_elapsed) => {
                metrics::backpressure_timeout();
                None
            }
        }
    }
}

/// The answer to a request that found no place: 503, and when to retry
/// (the wait it was allowed is over, so the app is saturated now, not for
/// long as a rule).
fn overloaded() -> Response<ResponseBody> {
    let mut response = error_response(StatusCode::SERVICE_UNAVAILABLE);
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// Waits for a place under the back-pressure limit (in Rust, not in
/// Python), then starts reading the body if there is one.
pub(crate) async fn admit(
    backpressure: &Backpressure,
    req: Request<Incoming>,
) -> Result<(Admitted, Pending), Response<ResponseBody>> {
    let Some(permit) = backpressure.place().await else {
        return Err(overloaded());
    };
    let (mut head, incoming) = req.into_parts();
    join_cookies(&mut head);
    let (body, streamed) = if incoming.is_end_stream() {
        (RequestBody::empty(), None)
    } else {
        let limits = head.extensions.get::<BodyLimits>().copied();
        let on_read = head.extensions.remove::<OnBodyRead>();
        let body = RequestBody::spawn(incoming, limits.unwrap_or_default(), on_read);
        (Arc::clone(&body), Some(body))
    };
    let (reply, response) = oneshot::channel();
    let version = head.version;
    let admitted = Admitted {
        head,
        body,
        permit,
        reply,
    };
    Ok((
        admitted,
        Pending {
            response,
            streamed,
            version,
        },
    ))
}

/// HTTP/2 lets a client split `Cookie` into several fields (browsers do,
/// for header compression); RFC 9113 (8.2.3) asks that they be joined with
/// `; ` before an application sees them, as HTTP/1.1 sends them, or apps
/// that read one `cookie` header lose the rest.
fn join_cookies(head: &mut Parts) {
    let mut cookies = head.headers.get_all(COOKIE).iter();
    if head.version != Version::HTTP_2 || cookies.nth(1).is_none() {
        return;
    }
    let values: Vec<&[u8]> = head
        .headers
        .get_all(COOKIE)
        .iter()
        .map(HeaderValue::as_bytes)
        .collect();
    if let Ok(joined) = HeaderValue::from_bytes(&values.join(&b"; "[..])) {
        head.headers.insert(COOKIE, joined);
    }
}

pub(crate) struct Pending {
    response: oneshot::Receiver<Response<ResponseBody>>,
    /// The body being read, for a request that has one.
    streamed: Option<Arc<RequestBody>>,
    version: Version,
}

impl Pending {
    /// Waits for the response head. If hyper drops this future first (the
    /// client left before the head was ready), `on_gone` runs. So it does
    /// when the request body is refused first: the client is answered with
    /// the refusal, and for the app the client is gone.
    pub(crate) async fn wait(self, on_gone: impl FnOnce()) -> Response<ResponseBody> {
        struct Guard<F: FnOnce()>(Option<F>);
        impl<F: FnOnce()> Drop for Guard<F> {
            fn drop(&mut self) {
                if let Some(on_gone) = self.0.take() {
                    on_gone();
                }
            }
        }
        let mut guard = Guard(Some(on_gone));
        let response = match self.streamed {
            None => self.response.await,
            // The refusal first: the app, told its client is gone, may
            // answer 500 at once, but the refusal was recorded before.
            Some(body) => tokio::select! {
                biased;
                status = body.refused() => return refusal(status, self.version),
                response = self.response => response,
            },
        };
        guard.0 = None;
        response.unwrap_or_else(|_| error_response(StatusCode::INTERNAL_SERVER_ERROR))
    }
}

/// One whole exchange as an interface's handler runs it: admit `req`, let
/// `start` hand it to the app (returning what to do if the client leaves
/// before the head is ready, or the error status to answer at once), and
/// wait for the head.
pub(crate) async fn exchange<G: FnOnce()>(
    backpressure: &Backpressure,
    req: Request<Incoming>,
    start: impl FnOnce(Admitted) -> Result<G, StatusCode>,
) -> Response<ResponseBody> {
    let (admitted, pending) = match admit(backpressure, req).await {
        Ok(admitted) => admitted,
        Err(refused) => return refused,
    };
    match start(admitted) {
        Ok(on_gone) => pending.wait(on_gone).await,
        Err(status) => error_response(status),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run<F: std::future::Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
            .block_on(future)
    }

    #[test]
    fn with_no_wait_a_request_gets_a_free_place_or_none_at_once() {
        run(async {
            let backpressure = Backpressure::new(1, Duration::ZERO);
            let held = backpressure.place().await.expect("a free place");
            assert!(backpressure.place().await.is_none());
            drop(held);
            assert!(backpressure.place().await.is_some());
        });
    }

    #[test]
    fn a_place_freed_during_the_wait_is_taken_and_none_after_it() {
        run(async {
            let backpressure = Backpressure::new(1, Duration::from_secs(30));
            let held = backpressure.place().await.unwrap();
            let release = async {
                tokio::time::sleep(Duration::from_millis(10)).await;
                drop(held);
            };
            let (place, ()) = tokio::join!(backpressure.place(), release);
            assert!(place.is_some());

            let short = Backpressure::new(1, Duration::from_millis(20));
            let _held = short.place().await.unwrap();
            assert!(short.place().await.is_none());
        });
    }
}

#[cfg(test)]
mod proptests {
    use hyper::header::HeaderName;
    use proptest::prelude::*;
    use proptest::test_runner::Config;

    use super::*;
    use crate::http::testing::{header_name, header_value};

    fn head(http2: bool, headers: &[(String, Vec<u8>)]) -> Parts {
        let version = if http2 {
            Version::HTTP_2
        } else {
            Version::HTTP_11
        };
        let mut request = Request::builder().version(version);
        for (name, value) in headers {
            request = request.header(name.as_str(), value.as_slice());
        }
        request.body(()).unwrap().into_parts().0
    }

    fn listed(head: &Parts) -> Vec<(HeaderName, Vec<u8>)> {
        head.headers
            .iter()
            .map(|(n, v)| (n.clone(), v.as_bytes().to_vec()))
            .collect()
    }

    proptest! {
        #![proptest_config(Config { failure_persistence: None, ..Config::default() })]

        /// Over HTTP/2 the `Cookie` fields become one, their values joined
        /// with `; ` in the order sent, at the first one's place; every
        /// other header, and every header of other versions, is left as
        /// it came.
        #[test]
        fn http2_cookies_are_joined(
            http2 in any::<bool>(),
            headers in prop::collection::vec(prop_oneof![
                3 => (header_name(), header_value()),
                1 => (Just("cookie".to_owned()), header_value()),
            ], 0..10),
        ) {
            let before = head(http2, &headers);
            let mut after = head(http2, &headers);
            join_cookies(&mut after);
            let cookies: Vec<&[u8]> = before.headers.get_all(COOKIE).iter().map(HeaderValue::as_bytes).collect();
            if !http2 || cookies.len() < 2 {
                prop_assert_eq!(listed(&after), listed(&before));
                return Ok(());
            }
            let joined = cookies.join(&b"; "[..]);
            let mut expected = Vec::new();
            for (name, value) in listed(&before) {
                if name != COOKIE {
                    expected.push((name, value));
                } else if !expected.iter().any(|(n, _)| *n == COOKIE) {
                    expected.push((name, joined.clone()));
                }
            }
            prop_assert_eq!(listed(&after), expected);
        }
    }
}
