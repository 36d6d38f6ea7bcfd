//! [`Exchange`]: the state of one RSGI request, shared by the tokio task
//! waiting for the response and the protocol objects the app holds.

use crate::sync::{Mutex, MutexGuard};
use std::sync::Arc;

use bytes::BytesMut;
use hyper::StatusCode;
use pyo3::prelude::*;
use tokio::sync::OwnedSemaphorePermit;

use super::RsgiApp;
use crate::bridge::{PyObj, TaskSlot, abort_stream, resolve};
use crate::http::{Reply, RequestBody, StreamSender, error_response};

pub(crate) struct Exchange {
    pub(crate) app: Arc<RsgiApp>,
    pub(crate) body: Arc<RequestBody>,
    state: Mutex<State>,
}

/// A pending read of the request body.
pub(crate) enum BodyWaiter {
    /// `await protocol()`: the whole body, gathered here as it arrives.
    Whole(PyObj, BytesMut),
    /// `async for chunk in protocol`: the next piece.
    Chunk(PyObj),
}

pub(crate) struct State {
    /// Present until a `response_*` method was called.
    pub(crate) reply: Option<Reply>,
    /// The streamed body's sender while `response_stream` is open.
    pub(crate) stream: Option<StreamSender>,
    pub(crate) body_waiter: Option<BodyWaiter>,
    disconnect_waiters: Vec<PyObj>,
    pub(crate) disconnected: bool,
    pub(crate) finished: bool,
    task: TaskSlot,
    permit: Option<OwnedSemaphorePermit>,
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

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock()
    }

    pub(crate) fn keep_task(&self, task: Bound<'_, PyAny>) {
        self.lock().task.keep(task);
    }

    /// Loop thread: a future for `client_disconnect()`, or `None` when the
    /// client is already gone.
    pub(crate) fn wait_disconnect<'py>(
        &self,
        future: Bound<'py, PyAny>,
    ) -> Option<Bound<'py, PyAny>> {
        let mut state = self.lock();
        if state.disconnected || state.finished {
            return None;
        }
        state
            .disconnect_waiters
            .push(PyObj::from_bound(future.clone()));
        Some(future)
    }

    /// Any thread: the client went away.
    pub(crate) fn client_gone(self: &Arc<Self>) {
        let (waiters, body_waiter) = {
            let mut state = self.lock();
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
                    super::protocol::continue_body(py, &exchange, waiter);
                }
            }));
        }
    }

    /// Any thread: the body has more for a pending read.
    pub(crate) fn body_ready(self: &Arc<Self>) {
        let waiter = self.lock().body_waiter.take();
        if let Some(waiter) = waiter {
            let exchange = Arc::clone(self);
            self.app.bridge.submit(Box::new(move |py| {
                super::protocol::continue_body(py, &exchange, waiter)
            }));
        }
    }

    /// The app returned (`failed` false) or raised. Returns true when it
    /// had not sent a response, which is then a 500.
    pub(crate) fn finish(&self, py: Python<'_>, failed: bool) -> bool {
        let (missing, waiters, task, body_waiter) = {
            let mut state = self.lock();
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
