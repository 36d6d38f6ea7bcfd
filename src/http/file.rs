//! Sending a file from disk as a response body, without Python.

use std::path::PathBuf;

use bytes::BytesMut;
use hyper::header::{CONTENT_LENGTH, HeaderValue};
use hyper::{Response, StatusCode};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::oneshot;

use super::{ResponseBody, StreamItem, error_response};

const CHUNK: usize = 256 * 1024;

/// Bytes `start` (inclusive) to `end` (exclusive) of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileRange {
    pub(crate) start: u64,
    pub(crate) end: u64,
}

/// Opens `path`, answers with `head` (adding a length if it has none) and
/// streams the file, or the part `range` names (clamped to the file's
/// size). A missing file is answered with 404.
pub(crate) async fn send_file(
    path: PathBuf,
    range: Option<FileRange>,
    head: Response<()>,
    reply: oneshot::Sender<Response<ResponseBody>>,
    on_abandon: Box<dyn FnOnce() + Send>,
) {
    let opened = async {
        let file = tokio::fs::File::open(&path).await?;
        let len = file.metadata().await?.len();
        Ok::<_, std::io::Error>((file, len))
    }
    .await;
    let (file, size) = match opened {
        Ok(opened) => opened,
        Err(err) => {
            let status = if err.kind() == std::io::ErrorKind::NotFound {
                StatusCode::NOT_FOUND
            } else {
                StatusCode::INTERNAL_SERVER_ERROR
            };
            let _ = reply.send(error_response(status));
            return;
        }
    };
    let (start, end) = match range {
        Some(FileRange { start, end }) => (start.min(size), end.min(size)),
        None => (0, size),
    };
    send_open_file(file, start, end - start, head, reply, on_abandon).await;
}

/// Streams `len` bytes of an open file from `start`, answering with `head`
/// (adding a length if it has none).
pub(crate) async fn send_open_file(
    mut file: tokio::fs::File,
    start: u64,
    len: u64,
    head: Response<()>,
    reply: oneshot::Sender<Response<ResponseBody>>,
    on_abandon: Box<dyn FnOnce() + Send>,
) {
    if file.seek(std::io::SeekFrom::Start(start)).await.is_err() {
        let _ = reply.send(error_response(StatusCode::INTERNAL_SERVER_ERROR));
        return;
    }
    let mut file = file.take(len);
    let (tx, body) = ResponseBody::channel(Some(on_abandon));
    let mut response = head.map(|()| body);
    response
        .headers_mut()
        .entry(CONTENT_LENGTH)
        .or_insert_with(|| HeaderValue::from(len));
    if reply.send(response).is_err() {
        return;
    }
    loop {
        let mut buf = BytesMut::with_capacity(CHUNK);
        match file.read_buf(&mut buf).await {
            Ok(0) => return,
            Ok(_) => {
                if tx.send(StreamItem::Data(buf.freeze())).await.is_err() {
                    return;
                }
            }
            Err(_) => {
                let _ = tx.send(StreamItem::Abort).await;
                return;
            }
        }
    }
}
