//! [`Cycle`]: the state of one ASGI HTTP request/response exchange, shared
//! by the tokio task that waits for the response and the `receive`/`send`
//! objects the app holds on the event-loop thread.
//!
//! The cycle is the one owner of that state: it alone locks it, and each
//! thing that can happen to a request (the response head, a body part, the
//! trailers, a file, a `receive()` and its continuation, the client
//! leaving, the app ending) is a method here. The protocol objects only
//! turn Python messages into these calls, and their results into
//! awaitables or exceptions.

use crate::sync::Mutex;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use hyper::{HeaderMap, Response, StatusCode};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use tokio::sync::OwnedSemaphorePermit;

use super::AsgiApp;
use crate::bridge::{
    Backlog, Lifetime, PyObj, Sent, abort_stream, client_disconnected, is_done, queue, reject,
    resolve,
};
use crate::http::{
    Reply, RequestBody, ResponseBody, StreamItem, StreamSender, Take, error_response, send_file,
};

pub(crate) struct Cycle {
    app: Arc<AsgiApp>,
    body: Arc<RequestBody>,
    state: Mutex<State>,
}

struct State {
    phase: Phase,
    /// The future a pending `receive()` returned.
    receive_waiter: Option<PyObj>,
    life: Lifetime,
}

enum Phase {
    /// Waiting for `http.response.start`.
    Waiting(Reply),
    /// The head is known but not yet handed to hyper.
    Started {
        reply: Reply,
        head: Response<()>,
        trailers: bool,
    },
    /// The head went to hyper; the body follows through `tx`.
    Streaming { tx: StreamSender, trailers: bool },
    /// Nothing more will be sent.
    Complete,
}

/// Why the cycle refused a message the app sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    StartTwice,
    BodyBeforeStart,
    /// Trailers without `trailers: True`, or before the last body part.
    TrailersOutOfPlace,
    /// `more_trailers`: hyper sends one trailer block.
    MoreTrailers,
    PathsendBeforeStart,
    /// A message (its type) after the response was complete.
    AfterComplete(&'static str),
    ClientGone,
}

impl From<Refusal> for PyErr {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::StartTwice => PyRuntimeError::new_err("'http.response.start' sent twice"),
            Refusal::BodyBeforeStart => {
                PyRuntimeError::new_err("'http.response.body' sent before 'http.response.start'")
            }
            Refusal::TrailersOutOfPlace => PyRuntimeError::new_err(
                "'http.response.trailers' needs 'trailers': True in the start message and a final body message first",
            ),
            Refusal::MoreTrailers => {
                PyValueError::new_err("'more_trailers' is not supported; send all trailers at once")
            }
            Refusal::PathsendBeforeStart => PyRuntimeError::new_err(
                "'http.response.pathsend' must follow 'http.response.start'",
            ),
            Refusal::AfterComplete(what) => PyRuntimeError::new_err(format!(
                "unexpected ASGI message '{what}' after the response was complete"
            )),
            Refusal::ClientGone => client_disconnected(),
        }
    }
}

/// What `receive()` gets.
pub(crate) enum Got<'py> {
    /// The message, known now.
    Now(Bound<'py, PyDict>),
    /// A future a later arrival (or the disconnect) resolves.
    Later(Bound<'py, PyAny>),
}

impl Cycle {
    pub(crate) fn new(
        app: Arc<AsgiApp>,
        body: Arc<RequestBody>,
        reply: Reply,
        permit: OwnedSemaphorePermit,
    ) -> Self {
        Self {
            app,
            body,
            state: Mutex::new(State {
                phase: Phase::Waiting(reply),
                receive_waiter: None,
                life: Lifetime::new(permit),
            }),
        }
    }

    /// The worker's app state, for the message strings and the shared
    /// finished awaitable.
    pub(crate) fn app(&self) -> &AsgiApp {
        &self.app
    }

    pub(crate) fn keep_task(&self, task: Bound<'_, PyAny>) {
        self.state.lock().life.keep_task(task);
    }

    /// The refusal for `what` once the response is complete: a client
    /// that left is the likelier reason, and the one the app can handle.
    fn after_complete(state: &State, what: &'static str) -> Refusal {
        if state.life.disconnected {
            Refusal::ClientGone
        } else {
            Refusal::AfterComplete(what)
        }
    }

    /// `http.response.start`: keeps the head until the first body part,
    /// so a one-part response goes to hyper in one hand-off.
    pub(crate) fn start_head(&self, head: Response<()>, trailers: bool) -> Result<(), Refusal> {
        let mut state = self.state.lock();
        match std::mem::replace(&mut state.phase, Phase::Complete) {
            Phase::Waiting(reply) => {
                state.phase = Phase::Started {
                    reply,
                    head,
                    trailers,
                };
                Ok(())
            }
            Phase::Complete => Err(Self::after_complete(&state, "http.response.start")),
            other => {
                state.phase = other;
                Err(Refusal::StartTwice)
            }
        }
    }

    /// `http.response.body`: one part of the body, `more` to follow.
    pub(crate) fn body(
        self: &Arc<Self>,
        py: Python<'_>,
        body: Bytes,
        more: bool,
    ) -> Result<Sent, Refusal> {
        let mut state = self.state.lock();
        let (tx, trailers) = match std::mem::replace(&mut state.phase, Phase::Complete) {
            Phase::Started {
                reply,
                head,
                trailers: false,
            } if !more => {
                // The fast path: the whole response in one hand-off.
                let response = head.map(|()| ResponseBody::full(body));
                self.app.bridge.deliver(
                    py,
                    Box::new(move || {
                        let _ = reply.send(response);
                    }),
                );
                let waiter = state.receive_waiter.take();
                drop(state);
                self.continue_receive_now(py, waiter);
                return Ok(Sent::Queued);
            }
            Phase::Started {
                reply,
                head,
                trailers,
            } => {
                let gone = Arc::clone(self);
                let (tx, stream) =
                    ResponseBody::channel(Some(Box::new(move || gone.client_gone())));
                if let Err(unsent) = reply.send(head.map(|()| stream)) {
                    // The client left before the head went out. Dropping the
                    // body runs its abandon hook, which takes this lock.
                    drop(state);
                    drop(unsent);
                    return Err(Refusal::ClientGone);
                }
                (tx, trailers)
            }
            Phase::Streaming { tx, trailers } => (tx, trailers),
            Phase::Waiting(reply) => {
                state.phase = Phase::Waiting(reply);
                return Err(Refusal::BodyBeforeStart);
            }
            Phase::Complete => return Err(Self::after_complete(&state, "http.response.body")),
        };
        // Queued under the lock; a wait for room happens without it.
        let sent = if body.is_empty() {
            Sent::Queued
        } else {
            queue(&tx, StreamItem::Data(body)).ok_or(Refusal::ClientGone)?
        };
        if more || trailers {
            state.phase = Phase::Streaming { tx, trailers };
        } else {
            // Dropping the last sender ends the body once it is drained; a
            // `receive()` waiting for the disconnect that follows goes on.
            let waiter = state.receive_waiter.take();
            drop(state);
            self.continue_receive_now(py, waiter);
        }
        Ok(sent)
    }

    /// `http.response.trailers`, after the last body part.
    pub(crate) fn trailers(
        self: &Arc<Self>,
        py: Python<'_>,
        headers: HeaderMap,
        more: bool,
    ) -> Result<Sent, Refusal> {
        let mut state = self.state.lock();
        match std::mem::replace(&mut state.phase, Phase::Complete) {
            Phase::Streaming { tx, trailers: true } if !more => {
                let sent = queue(&tx, StreamItem::Trailers(headers)).ok_or(Refusal::ClientGone)?;
                let waiter = state.receive_waiter.take();
                drop(state);
                self.continue_receive_now(py, waiter);
                Ok(sent)
            }
            Phase::Complete => Err(Self::after_complete(&state, "http.response.trailers")),
            other => {
                let trailers_open = matches!(other, Phase::Streaming { trailers: true, .. });
                state.phase = other;
                Err(if trailers_open {
                    Refusal::MoreTrailers
                } else {
                    Refusal::TrailersOutOfPlace
                })
            }
        }
    }

    /// `http.response.pathsend`: the file goes out from Rust.
    pub(crate) fn pathsend(self: &Arc<Self>, path: PathBuf) -> Result<(), Refusal> {
        let mut state = self.state.lock();
        match std::mem::replace(&mut state.phase, Phase::Complete) {
            Phase::Started { reply, head, .. } => {
                let gone = Arc::clone(self);
                self.app.bridge.spawn(send_file(
                    path,
                    None,
                    head,
                    reply,
                    Box::new(move || gone.client_gone()),
                ));
                Ok(())
            }
            Phase::Complete => Err(Self::after_complete(&state, "http.response.pathsend")),
            other => {
                state.phase = other;
                Err(Refusal::PathsendBeforeStart)
            }
        }
    }

    /// Loop thread: a future resolved once a body part that found the
    /// client behind is queued.
    pub(crate) fn wait_for_room(&self, py: Python<'_>, backlog: Backlog) -> PyResult<Py<PyAny>> {
        backlog.wait(py, &self.app.bridge, &self.app.create_future)
    }

    /// Loop thread: `receive()`, answered now when the next message is
    /// known, else with a future that [`Cycle::body_ready`] or
    /// [`Cycle::client_gone`] later resolves.
    pub(crate) fn receive<'py>(self: &Arc<Self>, py: Python<'py>) -> PyResult<Got<'py>> {
        let mut state = self.state.lock();
        if let Some(msg) = self.next_message(py, &mut state)? {
            return Ok(Got::Now(msg));
        }
        let future = self.app.create_future.bind(py).call0()?;
        state.receive_waiter = Some(PyObj::from_bound(future.clone()));
        Ok(Got::Later(future))
    }

    /// What the next `receive()` returns, if it is known now. With the
    /// lock held, a body that is not ready registers the wake-up before the
    /// caller stores its future, so no arrival is missed.
    fn next_message<'py>(
        self: &Arc<Self>,
        py: Python<'py>,
        state: &mut State,
    ) -> PyResult<Option<Bound<'py, PyDict>>> {
        let messages = &self.app.messages;
        if state.life.disconnected || matches!(state.phase, Phase::Complete) {
            return messages.disconnect(py).map(Some);
        }
        let waker = Arc::clone(self);
        match self.body.take(move || waker.body_ready()) {
            Take::Data { body, more } => messages.request(py, &body, more).map(Some),
            Take::Failed => {
                // A body the server refused (413 while streaming, say) after
                // the response began: as for a client that left, the app's
                // next send fails and the response is cut off, so the
                // client sees it reset rather than complete.
                if self.body.refusal().is_some() {
                    state.life.disconnected = true;
                    if matches!(state.phase, Phase::Streaming { .. })
                        && let Phase::Streaming { tx, .. } =
                            std::mem::replace(&mut state.phase, Phase::Complete)
                    {
                        abort_stream(&self.app.bridge, tx);
                    }
                }
                messages.disconnect(py).map(Some)
            }
            // After the whole body, `receive()` waits for the disconnect.
            Take::Pending | Take::Finished => Ok(None),
        }
    }

    /// Loop thread: a waiting `receive()` may now be answered.
    fn continue_receive(self: &Arc<Self>, py: Python<'_>, waiter: PyObj) {
        let future = waiter.into_bound(py);
        // A cancelled receive must not swallow a piece of the body.
        if is_done(&future) {
            return;
        }
        let mut state = self.state.lock();
        match self.next_message(py, &mut state) {
            Ok(Some(msg)) => {
                drop(state);
                resolve(&future, msg);
            }
            Ok(None) => state.receive_waiter = Some(PyObj::from_bound(future)),
            Err(err) => {
                drop(state);
                reject(&future, err);
            }
        }
    }

    fn continue_receive_now(self: &Arc<Self>, py: Python<'_>, waiter: Option<PyObj>) {
        if let Some(waiter) = waiter {
            self.continue_receive(py, waiter);
        }
    }

    /// Any thread: has the loop thread go on with a waiting `receive()`.
    fn wake_receiver(self: &Arc<Self>, waiter: Option<PyObj>) {
        if let Some(waiter) = waiter {
            let cycle = Arc::clone(self);
            self.app
                .bridge
                .submit(Box::new(move |py| cycle.continue_receive(py, waiter)));
        }
    }

    /// The status the server refused the request body with (400, 408,
    /// 413), if it did: the app's troubles since are the client's doing.
    pub(crate) fn body_refusal(&self) -> Option<u16> {
        self.body.refusal().map(|status| status.as_u16())
    }

    /// Any thread: the client is gone. A pending `receive()` then gets
    /// `http.disconnect`.
    pub(crate) fn client_gone(self: &Arc<Self>) {
        let waiter = {
            let mut state = self.state.lock();
            state.life.disconnected = true;
            state.receive_waiter.take()
        };
        self.body.close();
        self.wake_receiver(waiter);
    }

    /// Any thread: the body has data (or ended) for a pending `receive()`.
    fn body_ready(self: &Arc<Self>) {
        let waiter = self.state.lock().receive_waiter.take();
        self.wake_receiver(waiter);
    }

    /// The app returned (`failed` false) or raised (or could not be
    /// started). A response it never started is a 500; one it left
    /// unfinished is cut short, so the client sees it incomplete. Returns
    /// the problem to log for an app that returned while its client was
    /// still there, if any.
    pub(crate) fn finish(self: &Arc<Self>, failed: bool) -> Option<&'static str> {
        let (problem, task, waiter) = {
            let mut state = self.state.lock();
            // An app that stops answering a client that has gone did
            // nothing wrong: not worth a line in the log.
            let gone = state.life.disconnected;
            let problem = match std::mem::replace(&mut state.phase, Phase::Complete) {
                Phase::Complete => None,
                Phase::Waiting(reply) | Phase::Started { reply, .. } => {
                    let _ = reply.send(error_response(StatusCode::INTERNAL_SERVER_ERROR));
                    Some("ASGI callable returned without sending a complete response head and body")
                }
                Phase::Streaming { tx, .. } => {
                    abort_stream(&self.app.bridge, tx);
                    Some("ASGI callable returned without completing the response")
                }
            };
            (
                problem.filter(|_| !gone),
                state.life.end(),
                state.receive_waiter.take(),
            )
        };
        // Python objects are released after the lock: their finalizers may
        // call back into this cycle.
        drop(task);
        self.body.close();
        self.wake_receiver(waiter);
        problem.filter(|_| !failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bridge::testing::TestLoop;
    use crate::ws::testing::{TestApp, with_app};

    type Fixture<'py> = TestApp<'py, AsgiApp>;

    fn with_fixture(test: impl FnOnce(&Fixture<'_>)) {
        let make = |l: &TestLoop<'_>| {
            let (py, template) = (l.py, PyDict::new(l.py).into_any().unbind());
            let bridge = l.bridge.clone();
            AsgiApp::new(
                py,
                py.None(),
                py.None(),
                &l.event_loop,
                template,
                None,
                None,
                bridge,
            )
            .unwrap()
        };
        with_app(make, test);
    }

    fn message_type(msg: &Bound<'_, PyAny>) -> String {
        msg.get_item("type").unwrap().extract().unwrap()
    }

    fn later(got: Got<'_>) -> Bound<'_, PyAny> {
        match got {
            Got::Later(future) => future,
            Got::Now(msg) => panic!("receive did not wait: {msg}"),
        }
    }

    fn queued(sent: Result<Sent, Refusal>) {
        assert!(matches!(sent, Ok(Sent::Queued)), "not queued");
    }

    #[test]
    fn a_one_part_response_goes_out_whole_and_frees_the_place() {
        with_fixture(|f| {
            let (cycle, mut answer) = f.call(RequestBody::empty());
            cycle.start_head(Response::new(()), false).unwrap();
            assert_eq!(
                cycle.start_head(Response::new(()), false),
                Err(Refusal::StartTwice)
            );
            queued(cycle.body(f.py, Bytes::from_static(b"hi"), false));
            f.settle();
            assert_eq!(answer.try_recv().unwrap().status(), StatusCode::OK);
            assert_eq!(
                cycle.body(f.py, Bytes::new(), false).err(),
                Some(Refusal::AfterComplete("http.response.body"))
            );
            assert_eq!(cycle.finish(false), None);
            assert_eq!(f.limiter.available_permits(), 1);
        });
    }

    #[test]
    fn messages_out_of_order_are_refused_and_change_nothing() {
        with_fixture(|f| {
            let (cycle, mut answer) = f.call(RequestBody::empty());
            assert_eq!(
                cycle.body(f.py, Bytes::new(), false).err(),
                Some(Refusal::BodyBeforeStart)
            );
            assert_eq!(
                cycle.pathsend(PathBuf::from("/nonexistent")),
                Err(Refusal::PathsendBeforeStart)
            );
            assert_eq!(
                cycle.trailers(f.py, HeaderMap::new(), false).err(),
                Some(Refusal::TrailersOutOfPlace)
            );
            // Still waiting for the head: a start is accepted.
            cycle.start_head(Response::new(()), true).unwrap();
            queued(cycle.body(f.py, Bytes::from_static(b"a"), false));
            assert_eq!(
                cycle.trailers(f.py, HeaderMap::new(), true).err(),
                Some(Refusal::MoreTrailers)
            );
            queued(cycle.trailers(f.py, HeaderMap::new(), false));
            assert!(answer.try_recv().is_ok());
            assert_eq!(cycle.finish(false), None);
        });
    }

    #[test]
    fn an_app_that_returns_early_gets_500_or_a_cut_stream() {
        with_fixture(|f| {
            let (cycle, mut answer) = f.call(RequestBody::empty());
            assert!(cycle.finish(false).unwrap().contains("response head"));
            assert_eq!(
                answer.try_recv().unwrap().status(),
                StatusCode::INTERNAL_SERVER_ERROR
            );

            let (cycle, mut answer) = f.call(RequestBody::empty());
            cycle.start_head(Response::new(()), false).unwrap();
            queued(cycle.body(f.py, Bytes::from_static(b"part"), true));
            // Held: a dropped body means the client left.
            let response = answer.try_recv().unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            assert!(cycle.finish(false).unwrap().contains("completing"));
            drop(response);

            // A client that left: the app owes it nothing.
            let (cycle, _answer) = f.call(RequestBody::empty());
            cycle.client_gone();
            assert_eq!(cycle.finish(false), None);

            // An app that raised is logged by the runner, not here.
            let (cycle, mut answer) = f.call(RequestBody::empty());
            assert_eq!(cycle.finish(true), None);
            assert_eq!(
                answer.try_recv().unwrap().status(),
                StatusCode::INTERNAL_SERVER_ERROR
            );
        });
    }

    #[test]
    fn receive_gets_the_body_then_waits_for_the_disconnect() {
        with_fixture(|f| {
            let (cycle, _answer) = f.call(RequestBody::empty());
            let Got::Now(msg) = cycle.receive(f.py).unwrap() else {
                panic!("an empty body is known at once");
            };
            assert_eq!(message_type(&msg), "http.request");
            let waiting = later(cycle.receive(f.py).unwrap());
            cycle.start_head(Response::new(()), false).unwrap();
            queued(cycle.body(f.py, Bytes::new(), false));
            assert!(is_done(&waiting), "completing the response ends the wait");
            let msg = waiting.call_method0("result").unwrap();
            assert_eq!(message_type(&msg), "http.disconnect");
        });
    }

    #[test]
    fn a_client_that_leaves_wakes_receive_and_refuses_sends() {
        with_fixture(|f| {
            let (cycle, answer) = f.call(RequestBody::empty());
            let Got::Now(_) = cycle.receive(f.py).unwrap() else {
                panic!("an empty body is known at once");
            };
            let waiting = later(cycle.receive(f.py).unwrap());
            cycle.client_gone();
            f.settle();
            let msg = waiting.call_method0("result").unwrap();
            assert_eq!(message_type(&msg), "http.disconnect");
            drop(answer);
            cycle.start_head(Response::new(()), false).unwrap();
            assert_eq!(
                cycle.body(f.py, Bytes::from_static(b"x"), true).err(),
                Some(Refusal::ClientGone)
            );
            assert_eq!(
                cycle.body(f.py, Bytes::new(), false).err(),
                Some(Refusal::ClientGone)
            );
        });
    }

    #[test]
    fn a_cancelled_receive_is_left_alone() {
        with_fixture(|f| {
            let (cycle, _answer) = f.call(RequestBody::empty());
            let Got::Now(_) = cycle.receive(f.py).unwrap() else {
                panic!("an empty body is known at once");
            };
            let waiting = later(cycle.receive(f.py).unwrap());
            waiting.call_method0("cancel").unwrap();
            cycle.client_gone();
            f.settle();
            assert!(
                waiting
                    .call_method0("cancelled")
                    .unwrap()
                    .is_truthy()
                    .unwrap()
            );
        });
    }

    #[test]
    fn receive_takes_a_streamed_body_in_order() {
        with_fixture(|f| {
            let (body, mut client) = f.streamed_body();
            let (cycle, _answer) = f.call(body);
            f.feed(&mut client, b"2\r\nab\r\n");
            let Got::Now(msg) = cycle.receive(f.py).unwrap() else {
                panic!("the first part arrived already");
            };
            assert_eq!(message_type(&msg), "http.request");
            let msg = msg.into_any();
            let part: Vec<u8> = msg.get_item("body").unwrap().extract().unwrap();
            assert_eq!(part, b"ab");
            assert!(msg.get_item("more_body").unwrap().is_truthy().unwrap());
            let waiting = later(cycle.receive(f.py).unwrap());
            f.feed(&mut client, b"0\r\n\r\n");
            let msg = waiting.call_method0("result").unwrap();
            assert_eq!(message_type(&msg), "http.request");
            assert!(!msg.get_item("more_body").unwrap().is_truthy().unwrap());
        });
    }

    #[test]
    fn refusals_raise_what_apps_expect() {
        Python::initialize();
        Python::attach(|py| {
            let err: PyErr = Refusal::ClientGone.into();
            assert!(err.is_instance_of::<crate::bridge::ClientDisconnected>(py));
            let err: PyErr = Refusal::MoreTrailers.into();
            assert!(err.is_instance_of::<PyValueError>(py));
            let err: PyErr = Refusal::AfterComplete("http.response.body").into();
            assert!(err.to_string().contains("'http.response.body' after"));
        });
    }
}
