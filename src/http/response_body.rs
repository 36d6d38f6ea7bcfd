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
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use hyper::{HeaderMap, Response, StatusCode};
use tokio::sync::mpsc;

/// Frames buffered between the app and the socket before `send` waits.
pub const STREAM_CAPACITY: usize = 8;

pub enum StreamItem {
    Data(Bytes),
    Trailers(HeaderMap),
    /// End the response abnormally: hyper closes the connection instead of
    /// finishing the body, so the client sees a truncated response.
    Abort,
}

pub type StreamSender = mpsc::Sender<StreamItem>;
type Abandon = Box<dyn FnOnce() + Send>;

pub enum ResponseBody {
    Full(Option<Bytes>),
    Stream(StreamBody),
}

pub struct StreamBody {
    rx: mpsc::Receiver<StreamItem>,
    ended: bool,
    on_abandon: Option<Abandon>,
}

/// The error hyper sees when a streamed response was aborted.
#[derive(Debug)]
pub struct BodyAborted;

impl fmt::Display for BodyAborted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("response body aborted by the application")
    }
}

impl std::error::Error for BodyAborted {}

impl ResponseBody {
    pub fn full(bytes: Bytes) -> Self {
        Self::Full(Some(bytes))
    }

    pub fn empty() -> Self {
        Self::Full(None)
    }

    /// A streamed body and the sender that feeds it.
    pub fn channel(on_abandon: Option<Abandon>) -> (StreamSender, Self) {
        let (tx, rx) = mpsc::channel(STREAM_CAPACITY);
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
            Self::Stream(stream) => match stream.rx.poll_recv(cx) {
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
            },
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
pub fn error_response(status: StatusCode) -> Response<ResponseBody> {
    let text = status.canonical_reason().unwrap_or("Error");
    let mut response = Response::new(ResponseBody::full(Bytes::from(text)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(CONTENT_LENGTH, HeaderValue::from(text.len()));
    response
}
