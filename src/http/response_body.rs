//! [`ResponseBody`]: what hyper writes after the response head.
//!
//! A response is either complete when the head is sent (`Full`, the fast
//! path: one frame, exact length) or streamed through a bounded channel
//! whose sending half the interface holds ([`StreamSender`]). When hyper
//! drops a stream before its end (the client went away), the interface is
//! told through the `on_abandon` callback.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use hyper::{HeaderMap, Response, StatusCode};
use tokio::sync::mpsc;

use super::stream::{Queued, StreamSender};

pub(crate) enum StreamItem {
    Data(Bytes),
    Trailers(HeaderMap),
    /// End the response abnormally: hyper closes the connection instead of
    /// finishing the body, so the client sees a truncated response.
    Abort,
}

type Abandon = Box<dyn FnOnce() + Send>;

pub(crate) enum ResponseBody {
    Full(Option<Bytes>),
    Stream(StreamBody),
}

pub(crate) struct StreamBody {
    rx: mpsc::UnboundedReceiver<Queued>,
    ended: bool,
    on_abandon: Option<Abandon>,
}

/// The error hyper sees when a streamed response was aborted.
#[derive(Debug)]
pub(crate) struct BodyAborted;

impl fmt::Display for BodyAborted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("response body aborted by the application")
    }
}

impl std::error::Error for BodyAborted {}

impl ResponseBody {
    pub(crate) fn full(bytes: Bytes) -> Self {
        Self::Full(Some(bytes))
    }

    pub(crate) fn empty() -> Self {
        Self::Full(None)
    }

    /// A streamed body and the sender that feeds it.
    pub(crate) fn channel(on_abandon: Option<Abandon>) -> (StreamSender, Self) {
        let (tx, rx) = StreamSender::new();
        let body = StreamBody {
            rx,
            ended: false,
            on_abandon,
        };
        (tx, Self::Stream(body))
    }
}

impl Drop for StreamBody {
    fn drop(&mut self) {
        if !self.ended
            && let Some(on_abandon) = self.on_abandon.take()
        {
            on_abandon();
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BodyAborted;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyAborted>>> {
        match self.get_mut() {
            Self::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            // The frame's charge against the byte budget is released as
            // hyper takes it (dropped by the `map` below).
            Self::Stream(stream) => {
                match stream.rx.poll_recv(cx).map(|q| q.map(|(item, _)| item)) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(Some(StreamItem::Data(bytes))) => {
                        Poll::Ready(Some(Ok(Frame::data(bytes))))
                    }
                    Poll::Ready(Some(StreamItem::Trailers(map))) => {
                        stream.ended = true;
                        Poll::Ready(Some(Ok(Frame::trailers(map))))
                    }
                    Poll::Ready(Some(StreamItem::Abort)) => {
                        stream.ended = true;
                        Poll::Ready(Some(Err(BodyAborted)))
                    }
                    Poll::Ready(None) => {
                        stream.ended = true;
                        Poll::Ready(None)
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Full(bytes) => bytes.as_ref().is_none_or(|b| b.is_empty()),
            Self::Stream(stream) => stream.ended,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Self::Stream(_) => SizeHint::default(),
        }
    }
}

/// A plain-text response for errors the server answers itself.
pub(crate) fn error_response(status: StatusCode) -> Response<ResponseBody> {
    let text = status.canonical_reason().unwrap_or("Error");
    let mut response = Response::new(ResponseBody::full(Bytes::from(text)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(CONTENT_LENGTH, HeaderValue::from(text.len()));
    // The server answers 503 only while it stops (or its app side is gone):
    // a client or load balancer should try again, elsewhere or shortly.
    if status == StatusCode::SERVICE_UNAVAILABLE {
        headers.insert(RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use http_body_util::BodyExt;

    use super::*;

    #[tokio::test]
    async fn full_body_has_exact_length() {
        let body = ResponseBody::full(Bytes::from_static(b"hello"));
        assert_eq!(body.size_hint().exact(), Some(5));
        let collected = body.collect().await.unwrap().to_bytes();
        assert_eq!(&collected[..], b"hello");
    }

    #[tokio::test]
    async fn stream_ends_with_trailers() {
        let (tx, body) = ResponseBody::channel(None);
        tx.send(StreamItem::Data(Bytes::from_static(b"a")))
            .await
            .unwrap();
        let mut trailers = HeaderMap::new();
        trailers.insert("x-sum", HeaderValue::from_static("1"));
        tx.send(StreamItem::Trailers(trailers)).await.unwrap();
        drop(tx);
        let collected = body.collect().await.unwrap();
        assert_eq!(collected.trailers().unwrap()["x-sum"], "1");
        assert_eq!(&collected.to_bytes()[..], b"a");
    }

    #[tokio::test]
    async fn dropping_an_unfinished_stream_reports_abandonment() {
        let abandoned = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&abandoned);
        let (tx, body) =
            ResponseBody::channel(Some(Box::new(move || flag.store(true, Ordering::SeqCst))));
        tx.send(StreamItem::Data(Bytes::from_static(b"a")))
            .await
            .unwrap();
        drop(body);
        assert!(abandoned.load(Ordering::SeqCst));
        assert!(tx.is_closed());
    }

    #[tokio::test]
    async fn abort_is_an_error_frame() {
        let (tx, body) = ResponseBody::channel(None);
        tx.send(StreamItem::Abort).await.unwrap();
        assert!(body.collect().await.is_err());
    }
}
