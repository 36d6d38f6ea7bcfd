//! [`Exchange`]: the state of one RSGI HTTP request, shared by the tokio
//! task waiting for the response and the protocol objects the app holds.
//!
//! The exchange is the one owner of that state: it alone locks it, and
//! each thing that can happen to a request (a response, a streamed chunk,
//! a body read and its continuation, the client leaving, the app ending)
//! is a method here. The protocol objects only turn Python values into
//! these calls, and their results into awaitables or exceptions.

use crate::sync::Mutex;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use hyper::{Response, StatusCode};
use pyo3::exceptions::{PyRuntimeError, PyStopAsyncIteration, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use tokio::sync::OwnedSemaphorePermit;
use tokio::sync::mpsc::error::TrySendError;

use super::RsgiApp;
use crate::bridge::{
    PyObj, TaskSlot, abort_stream, client_disconnected, is_done, reject, resolve, wait_to_send,
};
use crate::http::{
    FileRange, Reply, RequestBody, ResponseBody, StreamItem, StreamSender, Take, error_response,
    send_file,
};

pub(crate) struct Exchange {
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
    disconnected: bool,
    finished: bool,
    task: TaskSlot,
    permit: Option<OwnedSemaphorePermit>,
}

/// A pending read of the request body.
enum BodyWaiter {
    /// `await protocol()`: the whole body, gathered here as it arrives.
    Whole(PyObj, BytesMut),
    /// `async for chunk in protocol`: the next piece.
    Chunk(PyObj),
}

impl State {
    /// Takes the reply channel: each request gets exactly one response.
    fn take_reply(&mut self) -> Result<Reply, Refusal> {
        if self.finished {
            return Err(Refusal::Finished);
        }
        self.reply.take().ok_or(Refusal::Responded)
    }
}

impl BodyWaiter {
    fn future(&self) -> &PyObj {
        match self {
            Self::Whole(future, _) | Self::Chunk(future) => future,
        }
    }
}

/// Why the exchange refused what the app asked for.
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

/// What [`Exchange::stream_send`] did with a chunk.
pub(crate) enum Sent {
    /// Queued (or empty): the app need not wait.
    Queued,
    /// The client is behind: [`Exchange::wait_for_room`] queues it later.
    Full(Backlog),
}

/// A chunk waiting for room in the stream.
pub(crate) struct Backlog {
    tx: StreamSender,
    item: StreamItem,
}

/// What a body read has for the app.
pub(crate) enum Got<'py> {
    Bytes(Bytes),
    /// A future the bytes (or the error) will come through.
    Later(Bound<'py, PyAny>),
}

/// What the body has right now, with the exchange locked so that a wake-up
/// registered here cannot be missed.
enum Read {
    Chunk(Bytes),
    End,
    Gone,
    Wait,
}

impl Exchange {
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
                disconnected: false,
                finished: false,
                task: TaskSlot::default(),
                permit: Some(permit),
            }),
        }
    }

    pub(crate) fn keep_task(&self, task: Bound<'_, PyAny>) {
        self.state.lock().task.keep(task);
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

    /// Loop thread: sends a complete response.
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

    /// Sends `head` with a streamed body, fed by [`Exchange::stream_send`]
    /// until the app returns.
    pub(crate) fn open_stream(self: &Arc<Self>, head: Response<()>) -> Result<(), Refusal> {
        let reply = {
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
        let (reply, response) = reply;
        reply.send(response).map_err(|_| Refusal::ClientGone)
    }

    /// Loop thread: queues a chunk of the streamed body.
    pub(crate) fn stream_send(&self, data: Bytes) -> Result<Sent, Refusal> {
        let state = self.state.lock();
        if state.disconnected {
            return Err(Refusal::ClientGone);
        }
        let Some(tx) = &state.stream else {
            return Err(Refusal::StreamClosed);
        };
        if data.is_empty() {
            return Ok(Sent::Queued);
        }
        // Queued under the lock when there is room (the common case, no
        // clone of the sender); the wait for room happens without it.
        match tx.try_send(StreamItem::Data(data)) {
            Ok(()) => Ok(Sent::Queued),
            Err(TrySendError::Closed(_)) => Err(Refusal::ClientGone),
            Err(TrySendError::Full(item)) => Ok(Sent::Full(Backlog {
                tx: tx.clone(),
                item,
            })),
        }
    }

    /// Loop thread: a future resolved once the chunk is queued.
    pub(crate) fn wait_for_room(&self, py: Python<'_>, backlog: Backlog) -> PyResult<Py<PyAny>> {
        let Backlog { tx, item } = backlog;
        wait_to_send(py, &self.app.bridge, &self.app.create_future, tx, item)
    }

    /// Loop thread: `await protocol()`, the whole body at once, or a future
    /// that gets it when it has all arrived.
    pub(crate) fn read_whole<'py>(self: &Arc<Self>, py: Python<'py>) -> PyResult<Got<'py>> {
        let mut state = self.state.lock();
        if state.body_waiter.is_some() {
            return Err(Refusal::BodyBusy.into());
        }
        let mut acc = BytesMut::new();
        if self.gather(state.disconnected, &mut acc)? {
            return Ok(Got::Bytes(acc.freeze()));
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
        match self.read_now(state.disconnected) {
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

    fn read_now(self: &Arc<Self>, disconnected: bool) -> Read {
        if disconnected {
            return Read::Gone;
        }
        let waker = Arc::clone(self);
        match self.body.take(move || waker.body_ready()) {
            Take::Data { body, .. } if !body.is_empty() => Read::Chunk(body),
            // An empty last piece only says "end".
            Take::Data { .. } | Take::Finished => {
                if self.body.is_complete() {
                    Read::End
                } else {
                    Read::Wait
                }
            }
            Take::Failed => Read::Gone,
            Take::Pending => Read::Wait,
        }
    }

    /// Gathers what is there into `acc`; true once the body is complete.
    fn gather(self: &Arc<Self>, disconnected: bool, acc: &mut BytesMut) -> Result<bool, Refusal> {
        loop {
            match self.read_now(disconnected) {
                Read::Chunk(chunk) => acc.extend_from_slice(&chunk),
                Read::End => return Ok(true),
                Read::Wait => return Ok(false),
                Read::Gone => return Err(Refusal::ClientGone),
            }
        }
    }

    /// Loop thread: a pending body read may go on (data arrived, or the
    /// client left).
    fn continue_read(self: &Arc<Self>, py: Python<'_>, waiter: BodyWaiter) {
        if is_done(waiter.future().bind(py)) {
            return;
        }
        let mut state = self.state.lock();
        let disconnected = state.disconnected;
        let (future, outcome) = match waiter {
            BodyWaiter::Whole(future, mut acc) => match self.gather(disconnected, &mut acc) {
                Ok(false) => {
                    let other = state.body_waiter.replace(BodyWaiter::Whole(future, acc));
                    drop(state);
                    drop(other);
                    return;
                }
                Ok(true) => (future, Ok(acc.freeze())),
                Err(refusal) => (future, Err(refusal.into())),
            },
            BodyWaiter::Chunk(future) => match self.read_now(disconnected) {
                Read::Wait => {
                    let other = state.body_waiter.replace(BodyWaiter::Chunk(future));
                    drop(state);
                    drop(other);
                    return;
                }
                Read::Chunk(chunk) => (future, Ok(chunk)),
                Read::End => (future, Err(PyStopAsyncIteration::new_err(()))),
                Read::Gone => (future, Err(Refusal::ClientGone.into())),
            },
        };
        drop(state);
        match outcome {
            Ok(bytes) => resolve(future.bind(py), PyBytes::new(py, &bytes)),
            Err(err) => reject(future.bind(py), err),
        }
    }

    /// Loop thread: a future for `client_disconnect()`, or `None` when the
    /// client is already gone (or the app done).
    pub(crate) fn wait_disconnect<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let mut state = self.state.lock();
        if state.disconnected || state.finished {
            return Ok(None);
        }
        let future = self.new_future(py)?;
        state
            .disconnect_waiters
            .push(PyObj::from_bound(future.clone()));
        Ok(Some(future))
    }

    /// Any thread: the client went away.
    pub(crate) fn client_gone(self: &Arc<Self>) {
        let (waiters, body_waiter) = {
            let mut state = self.state.lock();
            state.disconnected = true;
            (
                std::mem::take(&mut state.disconnect_waiters),
                state.body_waiter.take(),
            )
        };
        self.body.close();
        if !waiters.is_empty() || body_waiter.is_some() {
            let exchange = Arc::clone(self);
            self.app.bridge.submit(Box::new(move |py| {
                for waiter in waiters {
                    resolve(waiter.bind(py), py.None());
                }
                if let Some(waiter) = body_waiter {
                    exchange.continue_read(py, waiter);
                }
            }));
        }
    }

    /// Any thread: the body has more for a pending read.
    pub(crate) fn body_ready(self: &Arc<Self>) {
        let waiter = self.state.lock().body_waiter.take();
        if let Some(waiter) = waiter {
            let exchange = Arc::clone(self);
            self.app
                .bridge
                .submit(Box::new(move |py| exchange.continue_read(py, waiter)));
        }
    }

    /// The app returned (`failed` false) or raised. Returns true when it
    /// had not sent a response, which is then a 500.
    pub(crate) fn finish(&self, py: Python<'_>, failed: bool) -> bool {
        let (missing, waiters, task, body_waiter) = {
            let mut state = self.state.lock();
            state.finished = true;
            state.permit = None;
            let missing = match state.reply.take() {
                Some(reply) => {
                    let _ = reply.send(error_response(StatusCode::INTERNAL_SERVER_ERROR));
                    true
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
                state.task.end(),
                state.body_waiter.take(),
            )
        };
        // Python objects are released after the lock: their finalizers may
        // call back into this exchange.
        drop((task, body_waiter));
        self.body.close();
        for waiter in waiters {
            resolve(waiter.bind(py), py.None());
        }
        missing
    }
}
