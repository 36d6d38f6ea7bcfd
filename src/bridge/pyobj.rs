//! [`PyObj`]: a Python object owned by Rust code that may be dropped on any
//! thread.
//!
//! Rule 1 of docs/architecture.md ("The GIL boundary"): a `Py<T>` dropped
//! on a tokio thread is how shipped servers crashed with "Cannot drop
//! pointer into Python heap without the GIL being held". A `PyObj` dropped
//! by a thread that is attached to the interpreter releases its reference
//! at once; one dropped elsewhere parks the reference in a queue that the
//! event-loop thread (or a WSGI pool thread) empties on its next turn.
//! `PyObj` deliberately does not implement `Clone`: copies are made with
//! `get().clone_ref(py)`, which needs the interpreter token (rule 2).

use crate::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use pyo3::prelude::*;

static DEFERRED: Mutex<Vec<Py<PyAny>>> = Mutex::new(Vec::new());
static DEFERRED_TOTAL: AtomicU64 = AtomicU64::new(0);

pub(crate) struct PyObj<T = PyAny>(Option<Py<T>>);

impl<T> std::fmt::Debug for PyObj<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PyObj")
    }
}

impl<T> PyObj<T> {
    pub(crate) fn new(obj: Py<T>) -> Self {
        Self(Some(obj))
    }

    pub(crate) fn from_bound(obj: Bound<'_, T>) -> Self {
        Self(Some(obj.unbind()))
    }

    pub(crate) fn bind<'py>(&self, py: Python<'py>) -> &Bound<'py, T> {
        self.get().bind(py)
    }

    pub(crate) fn get(&self) -> &Py<T> {
        // Only `into_inner` and `drop` empty the slot, and both consume `self`.
        self.0
            .as_ref()
            .expect("PyObj is only emptied when consumed")
    }

    /// Gives the reference back to code that holds the interpreter.
    pub(crate) fn into_bound(mut self, py: Python<'_>) -> Bound<'_, T> {
        let obj = self.0.take().expect("PyObj is only emptied when consumed");
        obj.into_bound(py)
    }
}

impl<T> Drop for PyObj<T> {
    fn drop(&mut self) {
        let Some(obj) = self.0.take() else { return };
        // SAFETY: PyGILState_Check only reads the calling thread's state.
        if unsafe { pyo3::ffi::PyGILState_Check() } == 1 {
            drop(obj);
        } else {
            DEFERRED_TOTAL.fetch_add(1, Ordering::Relaxed);
            DEFERRED.lock().push(obj.into_any());
        }
    }
}

/// Releases the references parked by drops on unattached threads.
pub(crate) fn release_deferred(_py: Python<'_>) {
    let parked = {
        let mut guard = DEFERRED.lock();
        if guard.is_empty() {
            return;
        }
        std::mem::take(&mut *guard)
    };
    // Dropped here, on a thread attached to the interpreter.
    drop(parked);
}

/// How many references have ever been parked for a later release; the tests
/// use it to prove that the off-thread drop path is exercised and survives.
#[pyfunction]
pub(crate) fn deferred_release_count() -> u64 {
    DEFERRED_TOTAL.load(Ordering::Relaxed)
}
