//! [`HttpCall`]: the state of one RSGI HTTP request, shared by the tokio
//! task waiting for the response and the protocol objects the app holds.
//!
//! The call is the one owner of that state: it alone locks it, and
//! each thing that can happen to a request (a response, a streamed chunk,
//! a body read and its continuation, the client leaving, the app ending)
//! is a method here. The protocol objects only turn Python values into
//! these calls, and their results into awaitables or exceptions.

use crate::sync::Mutex;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use hyper::{Response, StatusCode};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use tokio::sync::OwnedSemaphorePermit;

use super::RsgiApp;
use super::body::{BodyWaiter, Gathered, Got, Read, Step, gather, read_now};
use crate::bridge::{
    Backlog, Lifetime, PyObj, Sent, abort_stream, client_disconnected, is_done, queue, resolve,
    settle,
};
use crate::http::{
    FileRange, Reply, RequestBody, ResponseBody, StreamItem, StreamSender, error_response,
    send_file,
};

pub(crate) struct HttpCall {
    app: Arc<RsgiApp>,
    body: Arc<RequestBody>,
    state: Mutex<State>,
}

struct State {
    /// Present until a `response_*` method was called.
    reply: Option<Reply>,
    /// The streamed body's sender while `response_stream` is open.
    stream: Option<StreamSender>,
    body_waiter: Option<BodyWaiter>,
    disconnect_waiters: Vec<PyObj>,
    life: Lifetime,
}

impl State {
    /// Takes the reply channel: each request gets exactly one response.
    fn take_reply(&mut self) -> Result<Reply, Refusal> {
        if self.life.finished {
            return Err(Refusal::Finished);
        }
        self.reply.take().ok_or(Refusal::Responded)
    }
}

/// Why the call refused what the app asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The app already returned.
    Finished,
    /// A `response_*` method was already called.
    Responded,
    /// Another read of the request body is still pending.
    BodyBusy,
    /// A chunk sent with no streamed response open.
    StreamClosed,
    /// `response_file_range` with its end before its start.
    EndBeforeStart,
    /// The client went away.
    ClientGone,
}

impl From<Refusal> for PyErr {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::Finished => PyRuntimeError::new_err("the RSGI request is already finished"),
            Refusal::Responded => {
                PyRuntimeError::new_err("a response was already sent for this request")
            }
            Refusal::BodyBusy => PyRuntimeError::new_err("the request body is already being read"),
            Refusal::StreamClosed => PyRuntimeError::new_err("the response stream is closed"),
            Refusal::EndBeforeStart => {
                PyValueError::new_err("response_file_range: end is before start")
            }
            Refusal::ClientGone => client_disconnected(),
        }
    }
}

/// Bytes `start` (inclusive) to `end` (exclusive) of a file.
pub(crate) fn file_range(start: u64, end: u64) -> Result<FileRange, Refusal> {
    if end < start {
        return Err(Refusal::EndBeforeStart);
    }
    Ok(FileRange { start, end })
}

impl HttpCall {
    pub(crate) fn new(
        app: Arc<RsgiApp>,
        body: Arc<RequestBody>,
        reply: Reply,
        permit: OwnedSemaphorePermit,
    ) -> Self {
        Self {
            app,
            body,
            state: Mutex::new(State {
                reply: Some(reply),
                stream: None,
                body_waiter: None,
                disconnect_waiters: Vec::new(),
                life: Lifetime::new(permit),
            }),
        }
    }

    pub(crate) fn keep_task(&self, task: Bound<'_, PyAny>) {
        self.state.lock().life.keep_task(task);
    }

    /// The awaitable that is already done.
    pub(crate) fn done(&self, py: Python<'_>) -> Py<PyAny> {
        self.app.done.get().clone_ref(py)
    }

    /// A new future on the app's event loop.
    fn new_future<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.app.create_future.bind(py).call0()
    }

    fn take_reply(&self) -> Result<Reply, Refusal> {
        self.state.lock().take_reply()
    }

    /// Sends a complete response.
    pub(crate) fn respond(
        &self,
        py: Python<'_>,
        response: Response<ResponseBody>,
    ) -> Result<(), Refusal> {
        let reply = self.take_reply()?;
        self.app.bridge.deliver(
            py,
            Box::new(move || {
                let _ = reply.send(response);
            }),
        );
        Ok(())
    }

    /// Sends (part of) a file from Rust; the app's memory never holds it.
    pub(crate) fn send_file(
        self: &Arc<Self>,
        file: PathBuf,
        range: Option<FileRange>,
        head: Response<()>,
    ) -> Result<(), Refusal> {
        let reply = self.take_reply()?;
        let gone = Arc::clone(self);
        self.app.bridge.spawn(send_file(
            file,
            range,
            head,
            reply,
            Box::new(move || gone.client_gone()),
        ));
        Ok(())
    }

    /// Sends `head` with a streamed body, fed by [`HttpCall::stream_send`]
    /// until the app returns.
    pub(crate) fn open_stream(self: &Arc<Self>, head: Response<()>) -> Result<(), Refusal> {
        let (reply, response) = {
            let mut state = self.state.lock();
            let reply = state.take_reply()?;
            let gone = Arc::clone(self);
            let (tx, body) = ResponseBody::channel(Some(Box::new(move || gone.client_gone())));
            state.stream = Some(tx);
            (reply, head.map(|()| body))
        };
        // Sent without the lock: a response the client is no longer there
        // to take is dropped here, and its body reports that to
        // `client_gone`, which locks.
        reply.send(response).map_err(|_| Refusal::ClientGone)
    }

    /// Loop thread: queues a chunk of the streamed body.
    pub(crate) fn stream_send(&self, data: Bytes) -> Result<Sent, Refusal> {
        let state = self.state.lock();
        if state.life.disconnected {
            return Err(Refusal::ClientGone);
        }
        let Some(tx) = &state.stream else {
            return Err(Refusal::StreamClosed);
        };
        if data.is_empty() {
            return Ok(Sent::Queued);
        }
        // Queued under the lock; the wait for room happens without it.
        queue(tx, StreamItem::Data(data)).ok_or(Refusal::ClientGone)
    }

    /// Loop thread: a future resolved once the chunk is queued.
    pub(crate) fn wait_for_room(&self, py: Python<'_>, backlog: Backlog) -> PyResult<Py<PyAny>> {
        backlog.wait(py, &self.app.bridge, &self.app.create_future)
    }

    /// Loop thread: `await protocol()`, the whole body at once, or a future
    /// that gets it when it has all arrived.
    pub(crate) fn read_whole<'py>(self: &Arc<Self>, py: Python<'py>) -> PyResult<Got<'py>> {
        let mut state = self.state.lock();
        if state.body_waiter.is_some() {
            return Err(Refusal::BodyBusy.into());
        }
        let mut acc = BytesMut::new();
        match gather(&self.body, state.life.disconnected, &mut acc, || {
            self.waker()
        }) {
            Gathered::Complete => return Ok(Got::Bytes(acc.freeze())),
            Gathered::Gone => return Err(Refusal::ClientGone.into()),
            Gathered::Partial => {}
        }
        let future = self.new_future(py)?;
        state.body_waiter = Some(BodyWaiter::Whole(PyObj::from_bound(future.clone()), acc));
        Ok(Got::Later(future))
    }

    /// Loop thread: the next piece of the body (`None` at its end), or a
    /// future that gets it.
    pub(crate) fn read_chunk<'py>(self: &Arc<Self>, py: Python<'py>) -> PyResult<Option<Got<'py>>> {
        let mut state = self.state.lock();
        if state.body_waiter.is_some() {
            return Err(Refusal::BodyBusy.into());
        }
        match read_now(&self.body, state.life.disconnected, || self.waker()) {
            Read::Chunk(chunk) => Ok(Some(Got::Bytes(chunk))),
            Read::End => Ok(None),
            Read::Gone => Err(Refusal::ClientGone.into()),
            Read::Wait => {
                let future = self.new_future(py)?;
                state.body_waiter = Some(BodyWaiter::Chunk(PyObj::from_bound(future.clone())));
                Ok(Some(Got::Later(future)))
            }
        }
    }

    /// What runs when the body has more for a read that had to wait.
    fn waker(self: &Arc<Self>) -> impl FnOnce() + Send + 'static {
        let call = Arc::clone(self);
        move || call.body_ready()
    }

    /// Loop thread: a pending body read may go on (data arrived, or the
    /// client left).
    fn continue_read(self: &Arc<Self>, py: Python<'_>, waiter: BodyWaiter) {
        if is_done(waiter.future().bind(py)) {
            return;
        }
        let mut state = self.state.lock();
        match waiter.advance(&self.body, state.life.disconnected, || self.waker()) {
            Step::Wait(waiter) => {
                let other = state.body_waiter.replace(waiter);
                drop(state);
                drop(other);
            }
            Step::Settle(future, outcome) => {
                drop(state);
                settle(
                    future.bind(py),
                    outcome.map(|bytes| PyBytes::new(py, &bytes)),
                );
            }
        }
    }

    /// Loop thread: a future for `client_disconnect()`, or `None` when the
    /// client is already gone (or the app done).
    pub(crate) fn wait_disconnect<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let mut state = self.state.lock();
        if state.life.disconnected || state.life.finished {
            return Ok(None);
        }
        let future = self.new_future(py)?;
        state
            .disconnect_waiters
            .push(PyObj::from_bound(future.clone()));
        Ok(Some(future))
    }

    /// Any thread: the client went away.
    /// The status the server refused the request body with (400, 408,
    /// 413), if it did: the app's troubles since are the client's doing.
    pub(crate) fn body_refusal(&self) -> Option<u16> {
        self.body.refusal().map(|status| status.as_u16())
    }

    pub(crate) fn client_gone(self: &Arc<Self>) {
        let (waiters, body_waiter) = {
            let mut state = self.state.lock();
            state.life.disconnected = true;
            (
                std::mem::take(&mut state.disconnect_waiters),
                state.body_waiter.take(),
            )
        };
        self.body.close();
        if !waiters.is_empty() || body_waiter.is_some() {
            let call = Arc::clone(self);
            self.app.bridge.submit(Box::new(move |py| {
                for waiter in waiters {
                    resolve(waiter.bind(py), py.None());
                }
                if let Some(waiter) = body_waiter {
                    call.continue_read(py, waiter);
                }
            }));
        }
    }

    /// Any thread: the body has more for a pending read.
    pub(crate) fn body_ready(self: &Arc<Self>) {
        let waiter = self.state.lock().body_waiter.take();
        if let Some(waiter) = waiter {
            let call = Arc::clone(self);
            self.app
                .bridge
                .submit(Box::new(move |py| call.continue_read(py, waiter)));
        }
    }

    /// The app returned (`failed` false) or raised. A response it did not
    /// send is a 500; returns true when that happened with the client
    /// still there (a problem to log).
    pub(crate) fn finish(&self, py: Python<'_>, failed: bool) -> bool {
        let (missing, waiters, task, body_waiter) = {
            let mut state = self.state.lock();
            let task = state.life.end();
            // Not answering a client that has gone is no fault of the app.
            let missing = match state.reply.take() {
                Some(reply) => {
                    let _ = reply.send(error_response(StatusCode::INTERNAL_SERVER_ERROR));
                    !state.life.disconnected
                }
                None => false,
            };
            // Dropping the last sender ends a streamed body; a failed app
            // cuts it short instead, so the client sees it incomplete.
            if let Some(tx) = state.stream.take()
                && failed
            {
                abort_stream(&self.app.bridge, tx);
            }
            (
                missing,
                std::mem::take(&mut state.disconnect_waiters),
                task,
                state.body_waiter.take(),
            )
        };
        // Python objects are released after the lock: their finalizers may
        // call back into this request.
        drop((task, body_waiter));
        self.body.close();
        for waiter in waiters {
            resolve(waiter.bind(py), py.None());
        }
        missing
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;
    use pyo3::exceptions::PyStopAsyncIteration;

    use crate::bridge::ClientDisconnected;
    use crate::bridge::testing::TestLoop;
    use crate::ws::testing::{TestApp, with_app};

    type Fixture<'py> = TestApp<'py, RsgiApp>;

    fn with_fixture(test: impl FnOnce(&Fixture<'_>)) {
        let make = |l: &TestLoop<'_>| {
            RsgiApp::new(
                l.py,
                l.py.None(),
                l.py.None(),
                &l.event_loop,
                l.bridge.clone(),
            )
            .unwrap()
        };
        with_app(make, test);
    }

    fn bytes_now(got: Got<'_>) -> Bytes {
        match got {
            Got::Bytes(bytes) => bytes,
            Got::Later(_) => panic!("the read had to wait"),
        }
    }

    fn later(got: Got<'_>) -> Bound<'_, PyAny> {
        match got {
            Got::Later(future) => future,
            Got::Bytes(bytes) => panic!("the read did not wait: {bytes:?}"),
        }
    }

    fn result<'py>(future: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        assert!(is_done(future), "the future is still pending");
        future.call_method0("result")
    }

    fn stream_head() -> Response<()> {
        Response::new(())
    }

    #[test]
    fn a_response_is_taken_once() {
        with_fixture(|f| {
            let (call, mut answer) = f.call(RequestBody::empty());
            let ok = Response::new(ResponseBody::full(Bytes::from_static(b"hi")));
            assert_eq!(call.respond(f.py, ok), Ok(()));
            let again = Response::new(ResponseBody::empty());
            assert_eq!(call.respond(f.py, again), Err(Refusal::Responded));
            assert_eq!(call.open_stream(stream_head()), Err(Refusal::Responded));
            assert_eq!(answer.try_recv().unwrap().status(), StatusCode::OK);
            assert!(!call.finish(f.py, false));
            let late = Response::new(ResponseBody::empty());
            assert_eq!(call.respond(f.py, late), Err(Refusal::Finished));
        });
    }

    #[test]
    fn finish_without_a_response_answers_500() {
        with_fixture(|f| {
            let (call, mut answer) = f.call(RequestBody::empty());
            assert_eq!(f.limiter.available_permits(), 0);
            assert!(call.finish(f.py, false));
            let response = answer.try_recv().unwrap();
            assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
            // The request no longer counts against the back-pressure limit.
            assert_eq!(f.limiter.available_permits(), 1);
        });
    }

    #[test]
    fn a_failed_app_aborts_its_stream_and_a_returning_one_ends_it() {
        with_fixture(|f| {
            for failed in [true, false] {
                let (call, mut answer) = f.call(RequestBody::empty());
                call.open_stream(stream_head()).unwrap();
                let body = answer.try_recv().unwrap().into_body();
                let sent = call.stream_send(Bytes::from_static(b"a"));
                assert!(matches!(sent, Ok(Sent::Queued)));
                assert!(!call.finish(f.py, failed));
                let sent = call.stream_send(Bytes::from_static(b"b"));
                assert!(matches!(sent, Err(Refusal::StreamClosed)));
                let collected = f.runtime.block_on(body.collect());
                if failed {
                    assert!(collected.is_err());
                } else {
                    assert_eq!(&collected.unwrap().to_bytes()[..], b"a");
                }
            }
        });
    }

    #[test]
    fn client_gone_wakes_disconnect_waiters_and_fails_sends() {
        with_fixture(|f| {
            let (call, mut answer) = f.call(RequestBody::empty());
            call.open_stream(stream_head()).unwrap();
            let _body = answer.try_recv().unwrap();
            let waiter = call.wait_disconnect(f.py).unwrap().unwrap();
            call.client_gone();
            // Resolved on the loop thread, through the bridge.
            assert!(!is_done(&waiter));
            f.settle();
            assert!(result(&waiter).unwrap().is_none());
            let sent = call.stream_send(Bytes::from_static(b"a"));
            assert!(matches!(sent, Err(Refusal::ClientGone)));
            assert!(call.wait_disconnect(f.py).unwrap().is_none());
        });
    }

    #[test]
    fn an_abandoned_stream_means_the_client_is_gone() {
        with_fixture(|f| {
            let (call, mut answer) = f.call(RequestBody::empty());
            call.open_stream(stream_head()).unwrap();
            // What hyper does when the client leaves mid-body.
            drop(answer.try_recv().unwrap());
            let sent = call.stream_send(Bytes::from_static(b"a"));
            assert!(matches!(sent, Err(Refusal::ClientGone)));
        });
    }

    #[test]
    fn body_chunks_come_in_order_then_the_end() {
        with_fixture(|f| {
            let (body, mut client) = f.streamed_body();
            let (call, _answer) = f.call(body);
            f.feed(&mut client, b"2\r\nab\r\n");
            let first = call.read_chunk(f.py).unwrap().unwrap();
            assert_eq!(&bytes_now(first)[..], b"ab");
            let second = later(call.read_chunk(f.py).unwrap().unwrap());
            let busy = call.read_chunk(f.py).unwrap_err();
            assert_eq!(
                busy.to_string(),
                "RuntimeError: the request body is already being read"
            );
            f.feed(&mut client, b"2\r\ncd\r\n");
            let second: Vec<u8> = result(&second).unwrap().extract().unwrap();
            assert_eq!(second, b"cd");
            let end = later(call.read_chunk(f.py).unwrap().unwrap());
            f.feed(&mut client, b"0\r\n\r\n");
            let err = result(&end).unwrap_err();
            assert!(err.is_instance_of::<PyStopAsyncIteration>(f.py));
            assert!(call.read_chunk(f.py).unwrap().is_none());
        });
    }

    #[test]
    fn a_whole_body_read_gathers_what_arrives_later() {
        with_fixture(|f| {
            let (body, mut client) = f.streamed_body();
            let (call, _answer) = f.call(body);
            f.feed(&mut client, b"2\r\nab\r\n");
            let whole = later(call.read_whole(f.py).unwrap());
            f.feed(&mut client, b"2\r\ncd\r\n");
            assert!(!is_done(&whole));
            f.feed(&mut client, b"0\r\n\r\n");
            let whole: Vec<u8> = result(&whole).unwrap().extract().unwrap();
            assert_eq!(whole, b"abcd");
        });
    }

    #[test]
    fn a_pending_read_fails_when_the_client_leaves() {
        with_fixture(|f| {
            let (body, _client) = f.streamed_body();
            let (call, _answer) = f.call(body);
            let chunk = later(call.read_chunk(f.py).unwrap().unwrap());
            call.client_gone();
            f.settle();
            let err = result(&chunk).unwrap_err();
            assert!(err.is_instance_of::<ClientDisconnected>(f.py));
            let err = call.read_whole(f.py).err().unwrap();
            assert!(err.is_instance_of::<ClientDisconnected>(f.py));
        });
    }

    #[test]
    fn refusals_raise_what_apps_expect() {
        Python::initialize();
        Python::attach(|py| {
            let err = PyErr::from(Refusal::Responded);
            assert!(err.is_instance_of::<PyRuntimeError>(py));
            assert_eq!(
                err.to_string(),
                "RuntimeError: a response was already sent for this request"
            );
            let err = PyErr::from(file_range(5, 4).unwrap_err());
            assert!(err.is_instance_of::<PyValueError>(py));
            assert!(file_range(4, 4).is_ok());
            let err = PyErr::from(Refusal::ClientGone);
            assert!(err.is_instance_of::<ClientDisconnected>(py));
        });
    }
}
