//! For unit tests of the async interfaces' per-request state: an app on
//! a [`TestLoop`] and the requests it is given.

use std::ops::Deref;
use std::sync::Arc;

use hyper::Response;
use pyo3::Python;
use tokio::sync::{Semaphore, oneshot};

use super::AsyncApp;
use crate::bridge::testing::TestLoop;
use crate::http::{RequestBody, ResponseBody};

/// Where a request's response arrives.
pub(crate) type Answer = oneshot::Receiver<Response<ResponseBody>>;

pub(crate) struct TestApp<'py, A> {
    test_loop: TestLoop<'py>,
    pub(crate) app: Arc<A>,
    /// The `--backpressure` places (one).
    pub(crate) limiter: Arc<Semaphore>,
}

impl<'py, A> Deref for TestApp<'py, A> {
    type Target = TestLoop<'py>;

    fn deref(&self) -> &TestLoop<'py> {
        &self.test_loop
    }
}

impl<A: AsyncApp> TestApp<'_, A> {
    /// One request with `body`, admitted as the handler admits it.
    pub(crate) fn call(&self, body: Arc<RequestBody>) -> (Arc<A::Call>, Answer) {
        let (reply, answer) = oneshot::channel();
        let permit = Arc::clone(&self.limiter).try_acquire_owned().unwrap();
        (self.app.new_call(body, reply, permit), answer)
    }
}

/// Runs `test` with the app `make` builds on a fresh [`TestLoop`].
pub(crate) fn with_app<A: AsyncApp>(
    make: impl FnOnce(&TestLoop<'_>) -> A,
    test: impl FnOnce(&TestApp<'_, A>),
) {
    Python::initialize();
    Python::attach(|py| {
        let test_loop = TestLoop::new(py);
        let app = Arc::new(make(&test_loop));
        let fixture = TestApp {
            test_loop,
            app,
            limiter: Arc::new(Semaphore::new(1)),
        };
        test(&fixture);
    });
}
