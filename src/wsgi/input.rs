//! `wsgi.input`: a file-like reader over the request body as it arrives.
//!
//! Reads block the calling pool thread (with the interpreter released)
//! until the tokio side has more of the body; nothing is read ahead beyond
//! the body buffer's bound, so an upload never sits whole in memory.

use crate::sync::{Mutex, MutexGuard};
use std::sync::Arc;
use std::sync::mpsc::sync_channel;

use bytes::{Bytes, BytesMut};
use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::http::{RequestBody, Take};

#[pyclass(frozen, module = "diorite._diorite")]
pub(crate) struct Input {
    body: Arc<RequestBody>,
    state: Mutex<Buffered>,
}

#[derive(Default)]
struct Buffered {
    pending: BytesMut,
    eof: bool,
}

impl Input {
    pub(crate) fn new(body: Arc<RequestBody>) -> Self {
        Self {
            body,
            state: Mutex::new(Buffered::default()),
        }
    }

    /// The next piece of the body, waiting for it if needed; `None` at the
    /// end.
    fn fetch(&self, py: Python<'_>) -> PyResult<Option<Bytes>> {
        loop {
            let (wake, woken) = sync_channel::<()>(1);
            match self.body.take(move || {
                let _ = wake.try_send(());
            }) {
                Take::Data { body, more } => {
                    if body.is_empty() && !more {
                        return Ok(None);
                    }
                    return Ok(Some(body));
                }
                Take::Finished => return Ok(None),
                Take::Failed => {
                    return Err(PyOSError::new_err(
                        "the request body could not be read: client disconnected",
                    ));
                }
                Take::Pending => {
                    // Sleeping without the interpreter: other threads run.
                    py.detach(move || {
                        let _ = woken.recv();
                    });
                }
            }
        }
    }

    /// Buffers until `pending` holds `want` bytes (or a newline when
    /// `line`), or the body ends.
    fn fill(
        &self,
        py: Python<'_>,
        state: &mut Buffered,
        want: Option<usize>,
        line: bool,
    ) -> PyResult<()> {
        loop {
            if let Some(want) = want
                && state.pending.len() >= want
            {
                return Ok(());
            }
            if line && state.pending.contains(&b'\n') {
                return Ok(());
            }
            if state.eof {
                return Ok(());
            }
            match self.fetch(py)? {
                Some(chunk) => state.pending.extend_from_slice(&chunk),
                None => state.eof = true,
            }
        }
    }

    /// The buffer, locked. A thread waiting for the lock releases the
    /// interpreter meanwhile: the holder may be waiting, detached, for the
    /// body, and must be able to re-attach when it arrives.
    fn lock(&self, py: Python<'_>) -> MutexGuard<'_, Buffered> {
        loop {
            match self.state.try_lock() {
                Some(guard) => return guard,
                None => py.detach(|| {
                    drop(self.state.lock());
                }),
            }
        }
    }
}

fn limit(size: Option<isize>) -> Option<usize> {
    size.and_then(|s| usize::try_from(s).ok())
}

#[pymethods]
impl Input {
    /// `read(size=-1)`: up to `size` bytes, or everything left.
    #[pyo3(signature = (size = None))]
    fn read<'py>(&self, py: Python<'py>, size: Option<isize>) -> PyResult<Bound<'py, PyBytes>> {
        let mut state = self.lock(py);
        let want = limit(size);
        self.fill(py, &mut state, want, false)?;
        let n = want.map_or(state.pending.len(), |w| w.min(state.pending.len()));
        let out = state.pending.split_to(n);
        Ok(PyBytes::new(py, &out))
    }

    /// `readline(size=-1)`: up to and including the next newline.
    #[pyo3(signature = (size = None))]
    fn readline<'py>(&self, py: Python<'py>, size: Option<isize>) -> PyResult<Bound<'py, PyBytes>> {
        let mut state = self.lock(py);
        let want = limit(size);
        self.fill(py, &mut state, want, true)?;
        let mut n = match state.pending.iter().position(|&b| b == b'\n') {
            Some(i) => i + 1,
            None => state.pending.len(),
        };
        if let Some(want) = want {
            n = n.min(want);
        }
        let out = state.pending.split_to(n);
        Ok(PyBytes::new(py, &out))
    }

    /// `readlines(hint=-1)`: lines until `hint` bytes were read or the end.
    #[pyo3(signature = (hint = None))]
    fn readlines<'py>(
        &self,
        py: Python<'py>,
        hint: Option<isize>,
    ) -> PyResult<Vec<Bound<'py, PyBytes>>> {
        let hint = limit(hint).filter(|&h| h > 0);
        let mut lines = Vec::new();
        let mut total = 0;
        loop {
            let line = self.readline(py, None)?;
            let len = line.as_bytes().len();
            if len == 0 {
                break;
            }
            total += len;
            lines.push(line);
            if hint.is_some_and(|h| total >= h) {
                break;
            }
        }
        Ok(lines)
    }

    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let line = self.readline(py, None)?;
        Ok((!line.as_bytes().is_empty()).then_some(line))
    }
}
