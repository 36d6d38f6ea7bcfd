//! Awaitables that complete without a trip through the event loop.
//!
//! Most `send` calls of an ASGI app finish at once (the bytes go into a
//! channel), so they return [`Done`], which finishes on its first step and
//! costs no future, no callback and no exception object. A value that is
//! already known is returned through [`Ready`].

use pyo3::create_exception;
use pyo3::exceptions::{PyOSError, PyStopIteration};
use pyo3::prelude::*;

create_exception!(
    _diorite,
    ClientDisconnected,
    PyOSError,
    "The client closed the connection before the response was sent."
);

/// An awaitable that is already finished and yields `None`.
#[pyclass(frozen, module = "diorite._diorite")]
pub struct Done;

#[pymethods]
impl Done {
    fn __await__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__(&self) -> Option<()> {
        None
    }

    fn send(&self, _value: &Bound<'_, PyAny>) -> PyResult<()> {
        Err(PyStopIteration::new_err(()))
    }

    fn close(&self) {}
}

/// An awaitable that is already finished and yields a value.
#[pyclass(frozen, module = "diorite._diorite")]
pub struct Ready {
    value: Py<PyAny>,
}

impl Ready {
    pub fn new(value: Py<PyAny>) -> Self {
        Self { value }
    }
}

#[pymethods]
impl Ready {
    fn __await__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<()> {
        Err(PyStopIteration::new_err((self.value.clone_ref(py),)))
    }

    fn send(&self, py: Python<'_>, _value: &Bound<'_, PyAny>) -> PyResult<()> {
        self.__next__(py)
    }

    fn close(&self) {}
}
