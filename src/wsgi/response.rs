//! Calling the app and sending what it returns: a complete body in one
//! piece when it is known, a file from Rust for `wsgi.file_wrapper`, and
//! otherwise a stream iterated only while the client keeps up.

use std::io::Seek;
use std::os::fd::BorrowedFd;
use std::sync::Arc;

use bytes::Bytes;
use hyper::StatusCode;
use hyper::header::CONTENT_LENGTH;
use pyo3::prelude::*;
use pyo3::types::{PyIterator, PyList, PyTuple};
use tokio::sync::OwnedSemaphorePermit;
use tokio::sync::mpsc::error::TrySendError;

use super::WsgiApp;
use super::input::Input;
use super::start::{ResponseState, StartResponse};
use crate::bridge::{Delivery, PyObj, body_bytes};
use crate::http::{Admitted, ConnInfo, RequestBody, StreamItem, error_response, send_open_file};
use crate::log::{self, Logger};

/// `wsgi.file_wrapper`: wraps a file-like object. Returned from the app, a
/// wrapper around a real file is sent by Rust straight from the file;
/// anything else is read `blksize` bytes at a time.
#[pyclass(frozen, module = "diorite._diorite")]
pub(crate) struct FileWrapper {
    filelike: Py<PyAny>,
    blksize: usize,
}

#[pymethods]
impl FileWrapper {
    #[new]
    #[pyo3(signature = (filelike, blksize = 8192))]
    fn new(filelike: Py<PyAny>, blksize: usize) -> Self {
        Self {
            filelike,
            blksize: blksize.max(1),
        }
    }

    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let data = self
            .filelike
            .bind(py)
            .call_method1("read", (self.blksize,))?;
        Ok((data.len()? > 0).then_some(data))
    }

    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let filelike = self.filelike.bind(py);
        if filelike.hasattr("close")? {
            filelike.call_method0("close")?;
        }
        Ok(())
    }
}

impl FileWrapper {
    /// A duplicate of the wrapped file's descriptor with its current offset
    /// and the bytes left, when it is a regular file.
    fn open_file(&self, py: Python<'_>) -> Option<(std::fs::File, u64, u64)> {
        let fd: i32 = self
            .filelike
            .bind(py)
            .call_method0("fileno")
            .ok()?
            .extract()
            .ok()?;
        // SAFETY: the descriptor belongs to the file object the app handed
        // us, which is alive (and attached) for the length of this call;
        // only the duplicate, owned from here on, outlives it.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        // Close-on-exec, and closed by `File`'s drop on every early return.
        let mut file = std::fs::File::from(borrowed.try_clone_to_owned().ok()?);
        let meta = file.metadata().ok()?;
        if !meta.is_file() {
            return None;
        }
        // A duplicate shares the original's offset: where the app left it.
        let offset = file.stream_position().ok()?;
        Some((file, offset, meta.len().saturating_sub(offset)))
    }
}

/// One response being produced: the app's iterable and where its bytes go.
struct BodyProducer {
    app: Arc<WsgiApp>,
    state: Arc<ResponseState>,
    iter: PyObj,
    result: PyObj,
    body: Arc<RequestBody>,
    _permit: OwnedSemaphorePermit,
}

/// Runs on a pool thread: calls the app and starts sending its response.
pub(crate) fn call_app(py: Python<'_>, app: Arc<WsgiApp>, admitted: Admitted, conn: &ConnInfo) {
    let Admitted {
        head,
        body,
        permit,
        reply,
    } = admitted;
    let state = ResponseState::new(reply);
    let called = (|| -> PyResult<Bound<'_, PyAny>> {
        let input = Py::new(py, Input::new(Arc::clone(&body)))?;
        let environ = app
            .environ
            .build(py, &head, conn, input.into_bound(py).into_any())?;
        let start_response = Py::new(py, StartResponse::new(Arc::clone(&state)))?;
        app.app.bind(py).call1((environ, start_response))
    })();
    let result = match called {
        Ok(result) => result,
        Err(err) => {
            match body.refusal() {
                // The app failed reading a body the server refused: the
                // client's doing, so a debug line, not an app error.
                Some(status) => {
                    let client = conn
                        .client
                        .map_or_else(|| "unix socket".to_owned(), |addr| addr.to_string());
                    let message = format!(
                        "request body refused with {} ({} {} from {client}); the app then raised",
                        status.as_u16(),
                        head.method,
                        head.uri.path()
                    );
                    log::debug(py, Logger::App, &message, Some(err));
                }
                None => log::error(py, Logger::App, "Exception in WSGI application", Some(err)),
            }
            fail(&state);
            body.close();
            return;
        }
    };
    if let Ok(wrapper) = result.cast::<FileWrapper>()
        && send_wrapped_file(&app, &state, wrapper.get(), py)
    {
        close(py, &result);
        body.close();
        return;
    }
    let iter = match result.try_iter() {
        Ok(iter) => iter,
        Err(err) => {
            let kind = result
                .get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_default();
            log::error(
                py,
                Logger::App,
                &format!("WSGI application returned a non-iterable {kind}"),
                Some(err),
            );
            fail(&state);
            close(py, &result);
            body.close();
            return;
        }
    };
    let pump = BodyProducer {
        app,
        state,
        iter: PyObj::from_bound(iter.into_any()),
        result: PyObj::from_bound(result),
        body,
        _permit: permit,
    };
    pump.run(py);
}

/// Sends a wrapped regular file from Rust. False when the wrapper holds
/// something else (or the app has not started the response yet).
fn send_wrapped_file(
    app: &WsgiApp,
    state: &ResponseState,
    wrapper: &FileWrapper,
    py: Python<'_>,
) -> bool {
    let mut inner = state.lock();
    if inner.head.is_none() || inner.headers_sent() {
        return false;
    }
    let Some((file, offset, left)) = wrapper.open_file(py) else {
        return false;
    };
    let head = inner.head.take().expect("checked above");
    let reply = inner.reply.take().expect("checked above");
    // An app-given length wins (it may send part of the file).
    let len = head
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        .map_or(left, |n| n.min(left));
    let file = tokio::fs::File::from_std(file);
    app.io.spawn(send_open_file(
        file,
        offset,
        len,
        head,
        reply,
        Box::new(|| ()),
    ));
    true
}

/// Answers 500 when nothing was sent yet; cuts a started stream short.
fn fail(state: &ResponseState) {
    let mut inner = state.lock();
    inner.head = None;
    if let Some(reply) = inner.reply.take() {
        let _ = reply.send(error_response(StatusCode::INTERNAL_SERVER_ERROR));
    } else if let Some(tx) = inner.stream.take() {
        let _ = tx.try_send(StreamItem::Abort);
    }
}

/// PEP 3333: the server calls `close()` on the result, whatever happened.
fn close(py: Python<'_>, result: &Bound<'_, PyAny>) {
    // The common plain list has no `close` (and looking for it would cost
    // an AttributeError).
    if result.is_exact_instance_of::<PyList>() || result.is_exact_instance_of::<PyTuple>() {
        return;
    }
    let closed = result
        .getattr_opt(pyo3::intern!(py, "close"))
        .and_then(|close| match close {
            Some(close) => close.call0().map(drop),
            None => Ok(()),
        });
    if let Err(err) = closed {
        log::error(
            py,
            Logger::App,
            "Exception in the close() of a WSGI response",
            Some(err),
        );
    }
}

/// What the next step of the iteration found.
enum Step {
    Chunk(Bytes),
    End,
}

impl BodyProducer {
    fn next(&self, py: Python<'_>) -> PyResult<Step> {
        // `iter` came from `iter()`. `PyIter_Next` ends without raising
        // StopIteration.
        let mut iter = self.iter.bind(py).cast::<PyIterator>()?.clone();
        match iter.next() {
            Some(chunk) => Ok(Step::Chunk(body_bytes(&chunk?)?)),
            None => Ok(Step::End),
        }
    }

    /// Iterates while the client can take more. Ends the response (and
    /// calls `close()`), or parks until the client drains.
    fn run(self, py: Python<'_>) {
        loop {
            let streaming = self.state.lock().headers_sent();
            let step = match self.next(py) {
                Ok(step) => step,
                Err(err) => return self.finish(py, Some(("Exception in WSGI application", err))),
            };
            match step {
                Step::End if !streaming => {
                    let sent = self.state.lock().send_full(Bytes::new());
                    return self.sent_full(py, sent);
                }
                Step::End => {
                    // Dropping every sender ends the chunked body.
                    self.state.lock().stream = None;
                    return self.finish(py, None);
                }
                Step::Chunk(chunk) if chunk.is_empty() => continue,
                Step::Chunk(chunk) => {
                    let tx = {
                        let mut inner = self.state.lock();
                        if !streaming && whole_body(&inner, &chunk) {
                            let sent = inner.send_full(chunk);
                            drop(inner);
                            return self.sent_full(py, sent);
                        }
                        match inner.stream() {
                            Ok(tx) => tx,
                            Err(problem) => {
                                drop(inner);
                                return self.finish_with(py, problem);
                            }
                        }
                    };
                    match tx.try_send(StreamItem::Data(chunk)) {
                        Ok(()) => {}
                        Err(TrySendError::Closed(_)) => return self.finish(py, None),
                        Err(TrySendError::Full(item)) => return self.park(tx, item),
                    }
                }
            }
        }
    }

    /// The client is behind: the pool thread goes back to the pool, and a
    /// tokio task resumes the iteration on a pool thread once the chunk
    /// fits.
    fn park(self, tx: crate::http::StreamSender, item: StreamItem) {
        let io = self.app.io.clone();
        io.spawn(async move {
            // Sent or refused (client gone), the iteration goes on: the
            // next step sees a closed stream and finishes (calling close()).
            let _ = tx.send(item).await;
            let app = Arc::clone(&self.app);
            app.run_on_pool(move |py| self.run(py));
        });
    }

    /// The whole response is ready: it goes to the I/O thread, sharing a
    /// wake-up with any others still on their way.
    fn sent_full(self, py: Python<'_>, sent: Result<Delivery, &str>) {
        match sent {
            Ok(delivery) => {
                self.app.outbox.post(delivery);
                self.finish(py, None);
            }
            Err(problem) => self.finish_with(py, problem),
        }
    }

    fn finish_with(self, py: Python<'_>, problem: &str) {
        log::error(py, Logger::App, problem, None);
        fail(&self.state);
        self.finish(py, None);
    }

    fn finish(self, py: Python<'_>, error: Option<(&str, PyErr)>) {
        if let Some((message, err)) = error {
            log::error(py, Logger::App, message, Some(err));
            fail(&self.state);
        }
        close(py, self.result.bind(py));
        self.body.close();
    }
}

/// True when the app declared a length and this first chunk is all of it.
fn whole_body(inner: &super::start::Inner, chunk: &Bytes) -> bool {
    inner
        .head
        .as_ref()
        .and_then(|h| h.headers().get(CONTENT_LENGTH))
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
        .is_some_and(|n| n == chunk.len())
}
