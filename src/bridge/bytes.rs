//! Python `bytes` handed to hyper without copying.

use bytes::Bytes;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes};

use super::PyObj;

/// Bodies at least this large are shared with hyper instead of copied.
const SHARE_THRESHOLD: usize = 16 * 1024;

/// Keeps a `bytes` object alive while hyper writes it. `bytes` are
/// immutable, so the pointer stays valid as long as the reference does;
/// the reference is released through [`PyObj`], safe on any thread.
///
/// PyO3's `PyBackedBytes` does the same without `unsafe`, but it holds a
/// plain `Py<PyBytes>`: hyper drops a written body on its I/O thread, and
/// there that drop would need PyO3's reference pool, which the strict
/// build (rule 7 in docs/architecture.md) turns off.
struct SharedBytes {
    ptr: *const u8,
    len: usize,
    _owner: PyObj,
}

// SAFETY: the buffer is immutable and owned by `_owner`, whose drop is
// safe on any thread.
unsafe impl Send for SharedBytes {}
unsafe impl Sync for SharedBytes {}

impl AsRef<[u8]> for SharedBytes {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: see the type's comment.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

/// Converts `bytes`, `bytearray` or `memoryview` content to [`Bytes`].
pub(crate) fn body_bytes(obj: &Bound<'_, PyAny>) -> PyResult<Bytes> {
    if let Ok(b) = obj.cast::<PyBytes>() {
        let data = b.as_bytes();
        if data.len() < SHARE_THRESHOLD {
            return Ok(Bytes::copy_from_slice(data));
        }
        let shared = SharedBytes {
            ptr: data.as_ptr(),
            len: data.len(),
            _owner: PyObj::from_bound(b.clone().into_any()),
        };
        return Ok(Bytes::from_owner(shared));
    }
    if let Ok(b) = obj.cast::<PyByteArray>() {
        return Ok(Bytes::from(b.to_vec()));
    }
    if obj.is_instance_of::<pyo3::types::PyMemoryView>() {
        let b = obj.call_method0("tobytes")?;
        return body_bytes(&b);
    }
    Err(PyTypeError::new_err(format!(
        "response body must be bytes, not {}",
        obj.get_type().name()?
    )))
}
