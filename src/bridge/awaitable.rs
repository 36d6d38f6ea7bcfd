//! Awaitables that complete without a trip through the event loop.
//!
//! Most `send` calls of an ASGI app finish at once (the bytes go into a
//! channel), so they return [`Done`], which finishes on its first step and
//! costs no future, no callback and no exception object. A value that is
//! already known is returned through [`Ready`], and a value that is not
//! through [`Waiting`], around an asyncio future.
//!
//! All three have the coroutine protocol (`send`, `throw`, `close`) and
//! the Python package registers them as `collections.abc.Coroutine`, so
//! that, as with Uvicorn's coroutine functions, `create_task(receive())`
//! and `run_coroutine_threadsafe(send(...), loop)` work.

use pyo3::create_exception;
use pyo3::exceptions::{PyOSError, PyStopIteration};
use pyo3::intern;
use pyo3::prelude::*;

create_exception!(
    _diorite,
    ClientDisconnected,
    PyOSError,
    "The client closed the connection before the response was sent."
);

/// The error every interface raises to an app whose client has gone.
pub(crate) fn client_disconnected() -> PyErr {
    ClientDisconnected::new_err("client disconnected")
}

/// The `#[pymethods]` of an awaitable that is its own iterator, with the
/// given methods. A `finished` one (it completes on its first step) also
/// gets the `throw` and `close` of a coroutine that has nothing to clean up.
macro_rules! coroutine {
    ($name:ident, waiting; $($methods:tt)*) => {
        #[pymethods]
        impl $name {
            fn __await__(slf: Py<Self>) -> Py<Self> {
                slf
            }

            fn __iter__(slf: Py<Self>) -> Py<Self> {
                slf
            }

            $($methods)*
        }
    };
    ($name:ident, finished; $($methods:tt)*) => {
        coroutine! {
            $name, waiting;
            $($methods)*

            #[pyo3(signature = (exc, value = None, _traceback = None))]
            fn throw(
                &self,
                exc: &Bound<'_, PyAny>,
                value: Option<&Bound<'_, PyAny>>,
                _traceback: Option<&Bound<'_, PyAny>>,
            ) -> PyResult<()> {
                Err(thrown(exc, value))
            }

            fn close(&self) {}
        }
    };
}

/// An awaitable that is already finished and yields `None`.
#[pyclass(frozen, module = "diorite._diorite")]
pub(crate) struct Done;

coroutine! {
    Done, finished;
    fn __next__(&self) -> Option<()> {
        None
    }

    fn send(&self, _value: &Bound<'_, PyAny>) -> PyResult<()> {
        Err(PyStopIteration::new_err(()))
    }

}

/// An awaitable that is already finished and yields a value.
#[pyclass(frozen, module = "diorite._diorite")]
pub(crate) struct Ready {
    value: Py<PyAny>,
}

impl Ready {
    pub(crate) fn new(value: Py<PyAny>) -> Self {
        Self { value }
    }
}

coroutine! {
    Ready, finished;
    fn __next__(&self, py: Python<'_>) -> PyResult<()> {
        Err(PyStopIteration::new_err((self.value.clone_ref(py),)))
    }

    fn send(&self, py: Python<'_>, _value: &Bound<'_, PyAny>) -> PyResult<()> {
        self.__next__(py)
    }

}

/// An awaitable for a result an asyncio future will get: what
/// `await future` does, in an object that is also a coroutine.
#[pyclass(frozen, module = "diorite._diorite")]
pub(crate) struct Waiting {
    future: Py<PyAny>,
}

impl Waiting {
    pub(crate) fn new(future: Py<PyAny>) -> Self {
        Self { future }
    }
}

coroutine! {
    Waiting, waiting;
    /// Yields the future (flagged, as `Future.__await__` does, so the task
    /// waits for it) until it is done, then finishes with its result.
    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let future = self.future.bind(py);
        if super::is_done(future) {
            let result = future.call_method0(intern!(py, "result"))?;
            return Err(PyStopIteration::new_err((result.unbind(),)));
        }
        future.setattr(intern!(py, "_asyncio_future_blocking"), true)?;
        Ok(future.clone())
    }

    fn send<'py>(&self, py: Python<'py>, _value: &Bound<'_, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        self.__next__(py)
    }

    /// A cancelled task throws into its coroutine: the future is cancelled
    /// too, and the exception goes on up.
    #[pyo3(signature = (exc, value = None, _traceback = None))]
    fn throw(
        &self,
        py: Python<'_>,
        exc: &Bound<'_, PyAny>,
        value: Option<&Bound<'_, PyAny>>,
        _traceback: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let _ = self.future.bind(py).call_method0(intern!(py, "cancel"));
        Err(thrown(exc, value))
    }

    fn close(&self, py: Python<'_>) {
        let _ = self.future.bind(py).call_method0(intern!(py, "cancel"));
    }
}

/// An awaitable that raises `error` when awaited. Sends that fail return
/// one instead of raising at the call, so that, as with a coroutine, the
/// error surfaces where the result is awaited (`run_coroutine_threadsafe`
/// on another thread hands it to that thread's `result()`).
#[pyclass(frozen, module = "diorite._diorite")]
pub(crate) struct Failed {
    error: Py<PyAny>,
}

impl Failed {
    /// `Ok(awaitable)` for a call's outcome: the value, or a `Failed`.
    pub(crate) fn lazily(py: Python<'_>, outcome: PyResult<Py<PyAny>>) -> PyResult<Py<PyAny>> {
        match outcome {
            Ok(value) => Ok(value),
            Err(err) => Ok(Py::new(
                py,
                Failed {
                    error: err.into_value(py).into_any(),
                },
            )?
            .into_any()),
        }
    }
}

coroutine! {
    Failed, finished;
    fn __next__(&self, py: Python<'_>) -> PyResult<()> {
        Err(PyErr::from_value(self.error.bind(py).clone()))
    }

    fn send(&self, py: Python<'_>, _value: &Bound<'_, PyAny>) -> PyResult<()> {
        self.__next__(py)
    }

}

/// The exception `throw(exc[, value])` raises: `exc` itself when it is an
/// exception, else `exc(value)`.
fn thrown(exc: &Bound<'_, PyAny>, value: Option<&Bound<'_, PyAny>>) -> PyErr {
    match value {
        Some(value) if !value.is_none() && exc.is_instance_of::<pyo3::types::PyType>() => {
            match exc.call1((value,)) {
                Ok(instance) => PyErr::from_value(instance),
                Err(err) => err,
            }
        }
        _ => PyErr::from_value(exc.clone()),
    }
}

#[cfg(test)]
mod tests {
    use pyo3::types::PyDict;

    use super::*;

    /// Runs `code` with `aw` bound to the awaitable; `code` sets `result`.
    fn drive<'py>(
        py: Python<'py>,
        aw: Bound<'py, PyAny>,
        code: &std::ffi::CStr,
    ) -> Bound<'py, PyAny> {
        let locals = PyDict::new(py);
        locals.set_item("aw", aw).unwrap();
        py.run(code, None, Some(&locals)).unwrap();
        locals.get_item("result").unwrap().unwrap()
    }

    /// What `await aw` gives when `aw` finishes on its first step.
    const FIRST_STEP: &std::ffi::CStr = c"
it = aw.__await__()
try:
    next(it)
    result = 'suspended'
except StopIteration as stop:
    result = ('value', stop.value)
except Exception as exc:
    result = ('raised', type(exc).__name__, str(exc))
";

    #[test]
    fn done_and_ready_finish_on_their_first_step() {
        Python::initialize();
        Python::attach(|py| {
            let done = Py::new(py, Done).unwrap().into_bound(py).into_any();
            let result = drive(py, done, FIRST_STEP);
            assert_eq!(result.str().unwrap(), "('value', None)");
            let ready = Py::new(
                py,
                Ready::new(42i32.into_pyobject(py).unwrap().into_any().unbind()),
            )
            .unwrap()
            .into_bound(py)
            .into_any();
            assert_eq!(drive(py, ready, FIRST_STEP).str().unwrap(), "('value', 42)");
        });
    }

    #[test]
    fn failed_raises_where_it_is_awaited() {
        Python::initialize();
        Python::attach(|py| {
            let outcome: PyResult<Py<PyAny>> = Err(client_disconnected());
            let failed = Failed::lazily(py, outcome).unwrap().into_bound(py);
            assert_eq!(
                drive(py, failed, FIRST_STEP).str().unwrap(),
                "('raised', 'ClientDisconnected', 'client disconnected')"
            );
        });
    }

    /// A loop that is never run (futures only need one to exist), a future
    /// of it, and a [`Waiting`] around that future.
    fn waiting_on_a_new_future(
        py: Python<'_>,
    ) -> (Bound<'_, PyAny>, Bound<'_, PyAny>, Bound<'_, PyAny>) {
        let event_loop = crate::bridge::testing::unstarted_loop(py);
        let future = event_loop.call_method0("create_future").unwrap();
        let waiting = Py::new(py, Waiting::new(future.clone().unbind()))
            .unwrap()
            .into_bound(py)
            .into_any();
        (event_loop, future, waiting)
    }

    #[test]
    fn waiting_yields_its_future_until_done_then_gives_the_result() {
        Python::initialize();
        Python::attach(|py| {
            let (event_loop, _future, waiting) = waiting_on_a_new_future(py);
            let result = drive(
                py,
                waiting,
                c"
it = aw.__await__()
yielded = next(it)
blocking = yielded._asyncio_future_blocking
yielded.set_result('answer')
try:
    it.send(None)
except StopIteration as stop:
    result = (blocking, stop.value)
",
            );
            assert_eq!(result.str().unwrap(), "(True, 'answer')");
            event_loop.call_method0("close").unwrap();
        });
    }

    #[test]
    fn throwing_into_waiting_cancels_its_future() {
        Python::initialize();
        Python::attach(|py| {
            let (event_loop, future, waiting) = waiting_on_a_new_future(py);
            let result = drive(
                py,
                waiting,
                c"
import asyncio
it = aw.__await__()
next(it)
try:
    it.throw(asyncio.CancelledError())
    result = 'swallowed'
except asyncio.CancelledError:
    result = 'raised'
",
            );
            assert_eq!(result.str().unwrap(), "raised");
            assert!(
                future
                    .call_method0("cancelled")
                    .unwrap()
                    .is_truthy()
                    .unwrap()
            );
            event_loop.call_method0("close").unwrap();
        });
    }
}
