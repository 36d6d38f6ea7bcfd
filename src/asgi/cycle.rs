//! [`Cycle`]: the state of one request/response exchange, shared by the
//! tokio task that waits for the response and the `receive`/`send`
//! objects the app holds on the event-loop thread.

use crate::sync::{Mutex, MutexGuard};
use std::sync::Arc;

use hyper::{Response, StatusCode};
use pyo3::prelude::*;
use tokio::sync::OwnedSemaphorePermit;

use super::AsgiApp;
use crate::bridge::{PyObj, TaskSlot, abort_stream};
use crate::http::{Reply, RequestBody, StreamSender, error_response};

pub(crate) struct Cycle {
    pub(crate) app: Arc<AsgiApp>,
    pub(crate) body: Arc<RequestBody>,
    state: Mutex<State>,
}

pub(crate) struct State {
    pub(crate) phase: Phase,
    /// The future a pending `receive()` returned.
    pub(crate) receive_waiter: Option<PyObj>,
    pub(crate) disconnected: bool,
    /// Set when the app's coroutine has returned or raised.
    pub(crate) finished: bool,
    task: TaskSlot,
    permit: Option<OwnedSemaphorePermit>,
}

pub(crate) enum Phase {
    /// Waiting for `http.response.start`.
    Waiting(Reply),
    /// The head is known but not yet handed to hyper.
    Started {
        reply: Reply,
        response: Response<()>,
        trailers: bool,
    },
    /// The head went to hyper; the body follows through `tx`.
    Streaming { tx: StreamSender, trailers: bool },
    /// Nothing more will be sent.
    Complete,
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

    /// The client is gone: any thread. Wakes a pending `receive()` so the
    /// app sees `http.disconnect`.
    pub(crate) fn client_gone(self: &Arc<Self>) {
        let waiter = {
            let mut state = self.lock();
            state.disconnected = true;
            state.receive_waiter.take()
        };
        self.body.close();
        if let Some(waiter) = waiter {
            self.wake_receiver(waiter);
        }
    }

    /// Any thread: the body has data (or the exchange ended), so the
    /// pending `receive()` future can be resolved on the loop thread.
    pub(crate) fn body_ready(self: &Arc<Self>) {
        let waiter = self.lock().receive_waiter.take();
        if let Some(waiter) = waiter {
            self.wake_receiver(waiter);
        }
    }

    fn wake_receiver(self: &Arc<Self>, waiter: PyObj) {
        let cycle = Arc::clone(self);
        self.app.bridge.submit(Box::new(move |py| {
            super::protocol::resolve_receive(py, &cycle, waiter)
        }));
    }

    /// Marks the response complete and wakes a `receive()` that waits for
    /// the disconnect which now follows.
    pub(crate) fn complete(self: &Arc<Self>, state: &mut State) -> Option<PyObj> {
        state.phase = Phase::Complete;
        state.receive_waiter.take()
    }

    /// The app returned. Returns a problem to log, if any.
    pub(crate) fn finish(self: &Arc<Self>) -> Option<&'static str> {
        let (problem, released) = {
            let mut state = self.lock();
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
            (problem, self.release(&mut state))
        };
        let (task, waiter) = released;
        drop(task);
        if let Some(waiter) = waiter {
            self.wake_receiver(waiter);
        }
        problem
    }

    /// The app raised (or could not be started): answer 500 if nothing was
    /// sent yet, else cut the response short.
    pub(crate) fn abort(self: &Arc<Self>) {
        let released = {
            let mut state = self.lock();
            match std::mem::replace(&mut state.phase, Phase::Complete) {
                Phase::Complete => {}
                Phase::Waiting(reply) | Phase::Started { reply, .. } => {
                    let _ = reply.send(error_response(StatusCode::INTERNAL_SERVER_ERROR));
                }
                Phase::Streaming { tx, .. } => abort_stream(&self.app.bridge, tx),
            }
            self.release(&mut state)
        };
        let (task, waiter) = released;
        drop(task);
        if let Some(waiter) = waiter {
            self.wake_receiver(waiter);
        }
    }

    /// Ends the exchange for the app. Returns the task (to be dropped after
    /// the lock: its finalizers may call back in) and a pending receive.
    fn release(&self, state: &mut State) -> (Option<PyObj>, Option<PyObj>) {
        state.finished = true;
        state.permit = None;
        self.body.close();
        (state.task.end(), state.receive_waiter.take())
    }
}
