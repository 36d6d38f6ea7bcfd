//! [`AppRunner`]: how the event-loop thread starts one app call as a task.

use pyo3::call::PyCallArgs;
use pyo3::prelude::*;

use super::PyObj;

pub struct AppRunner {
    /// The interface's Python wrapper around the app (`run_http`,
    /// `run_rsgi`): called with the call's arguments, gives the coroutine.
    runner: PyObj,
    /// Makes a task of a coroutine (`loop.create_task` or an eager task).
    spawn: PyObj,
}

impl AppRunner {
    pub fn new(runner: Py<PyAny>, spawn: Py<PyAny>) -> Self {
        Self {
            runner: PyObj::new(runner),
            spawn: PyObj::new(spawn),
        }
    }

    /// `spawn(runner(*args))`: the task running this call.
    pub fn start<'py>(
        &self,
        py: Python<'py>,
        args: impl PyCallArgs<'py>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let coro = self.runner.bind(py).call1(args)?;
        self.spawn.bind(py).call1((coro,))
    }
}
