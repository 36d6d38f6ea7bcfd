//! [`AppRunner`]: how the event-loop thread starts one app call as a task.

use pyo3::call::PyCallArgs;
use pyo3::prelude::*;
use tokio::sync::OwnedSemaphorePermit;

use super::PyObj;
use crate::log::{self, Logger};

/// The task running one app call, kept alive until the call ends (asyncio
/// itself holds tasks only weakly). Owned by the call's state machine,
/// under its lock.
#[derive(Debug, Default)]
pub(crate) struct TaskSlot {
    task: Option<PyObj>,
    ended: bool,
}

impl TaskSlot {
    /// Keeps `task`, unless the call already ended (an app that finished
    /// within its first step).
    pub(crate) fn keep(&mut self, task: Bound<'_, PyAny>) {
        if !self.ended {
            self.task = Some(PyObj::from_bound(task));
        }
    }

    /// The call ended. Returns the task, for the caller to drop once it
    /// has let go of its lock: the task's finalizers may call back in.
    #[must_use = "drop the task after releasing the lock"]
    pub(crate) fn end(&mut self) -> Option<PyObj> {
        self.ended = true;
        self.task.take()
    }
}

/// What the state of every HTTP request holds from its admission to the
/// end of the app's call, whatever the interface: whether the client or
/// the app is done, the app's task, and the `--backpressure` place.
#[derive(Debug)]
pub(crate) struct Lifetime {
    /// The client went away.
    pub(crate) disconnected: bool,
    /// The app's call returned or raised.
    pub(crate) finished: bool,
    task: TaskSlot,
    permit: Option<OwnedSemaphorePermit>,
}

impl Lifetime {
    pub(crate) fn new(permit: OwnedSemaphorePermit) -> Self {
        Self {
            disconnected: false,
            finished: false,
            task: TaskSlot::default(),
            permit: Some(permit),
        }
    }

    pub(crate) fn keep_task(&mut self, task: Bound<'_, PyAny>) {
        self.task.keep(task);
    }

    /// The app's call ended: its place under `--backpressure` is free.
    /// Returns the task, to drop once the caller let go of its lock.
    #[must_use = "drop the task after releasing the lock"]
    pub(crate) fn end(&mut self) -> Option<PyObj> {
        self.finished = true;
        self.permit = None;
        self.task.end()
    }
}

pub(crate) struct AppRunner {
    /// The interface's Python wrapper around the app (`run_http`,
    /// `run_rsgi`): called with the call's arguments, gives the coroutine.
    runner: PyObj,
    /// Makes a task of a coroutine (`loop.create_task` or an eager task).
    spawn: PyObj,
}

impl AppRunner {
    pub(crate) fn new(runner: Py<PyAny>, spawn: Py<PyAny>) -> Self {
        Self {
            runner: PyObj::new(runner),
            spawn: PyObj::new(spawn),
        }
    }

    /// `spawn(runner(*args))`: the task running this call.
    pub(crate) fn start<'py>(
        &self,
        py: Python<'py>,
        args: impl PyCallArgs<'py>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let coro = self.runner.bind(py).call1(args)?;
        self.spawn.bind(py).call1((coro,))
    }

    /// Starts a call on the arguments `args` builds and hands its task to
    /// `keep`. If that fails, the app never ran: the error is logged with
    /// `what` ("the ASGI app") and `failed` ends the call.
    pub(crate) fn launch<'py, A: PyCallArgs<'py>>(
        &self,
        py: Python<'py>,
        what: &str,
        args: impl FnOnce() -> PyResult<A>,
        keep: impl FnOnce(Bound<'py, PyAny>),
        failed: impl FnOnce(),
    ) {
        match args().and_then(|args| self.start(py, args)) {
            Ok(task) => keep(task),
            Err(err) => {
                let message = format!("{what} could not be started");
                log::error(py, Logger::App, &message, Some(err));
                failed();
            }
        }
    }
}
