//! [`ResponseBody`]: what hyper writes after the response head.
//!
//! A response is either complete when the head is sent (`Full`, the fast
//! path: one frame, exact length) or streamed through a bounded channel
//! whose sending half the interface holds ([`StreamSender`]). When hyper
//! drops a stream before its end (the client went away), the interface is
//! told through the `on_abandon` callback.
//!
//! Small chunks that are already waiting when hyper asks for the next one
//! go out joined as one frame ([`StreamBody::join_waiting`]): an app that
//! streams a hundred 1 KiB pieces otherwise costs hyper a hundred chunk
//! headers and a `writev` per sixteen of them. Only chunks already queued
//! are joined, so no chunk waits for another and a slow stream (server-sent
//! events) still goes out piece by piece.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use hyper::{HeaderMap, Response, StatusCode};

use super::stream::{Queued, StreamReceiver, StreamSender};

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
    rx: StreamReceiver,
    /// Taken from the channel while joining but not joinable: the next
    /// frame. Its charge is kept until hyper takes it.
    next: Option<Queued>,
    ended: bool,
    on_abandon: Option<Abandon>,
}

/// Chunks at least this big go out on their own: copying them would cost
/// more than their frame does (and a `bytes` this big is shared with
/// Python, not copied, on its way here).
const JOIN_BELOW: usize = 16 * 1024;
/// The most a joined frame holds.
const JOINED_AT_MOST: usize = 64 * 1024;

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
            next: None,
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
            Self::Stream(stream) => stream.poll_next(cx),
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

impl StreamBody {
    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyAborted>>> {
        // The frame's charge against the byte budget is released as hyper
        // takes it (dropped at the end of this call).
        let next = match self.next.take() {
            Some(queued) => Some(queued),
            None => ready!(self.rx.poll_recv(cx)),
        };
        let Some((item, _charge)) = next else {
            self.ended = true;
            return Poll::Ready(None);
        };
        Poll::Ready(Some(match item {
            StreamItem::Data(bytes) => Ok(Frame::data(self.join_waiting(bytes))),
            StreamItem::Trailers(map) => {
                self.ended = true;
                Ok(Frame::trailers(map))
            }
            StreamItem::Abort => {
                self.ended = true;
                Err(BodyAborted)
            }
        }))
    }

    /// `first`, followed in one buffer by the small chunks queued behind
    /// it; the first item that does not fit is kept for the next frame.
    fn join_waiting(&mut self, first: Bytes) -> Bytes {
        if first.len() >= JOIN_BELOW {
            return first;
        }
        let mut joined: Option<BytesMut> = None;
        while let Some(queued) = self.rx.try_recv() {
            let len = joined.as_ref().map_or(first.len(), BytesMut::len);
            match &queued.0 {
                StreamItem::Data(bytes)
                    if bytes.len() < JOIN_BELOW && len + bytes.len() <= JOINED_AT_MOST =>
                {
                    let buf = joined.get_or_insert_with(|| {
                        let want = (len + bytes.len()) * 4;
                        let mut buf = BytesMut::with_capacity(want.min(JOINED_AT_MOST));
                        buf.extend_from_slice(&first);
                        buf
                    });
                    buf.extend_from_slice(bytes);
                }
                _ => {
                    self.next = Some(queued);
                    break;
                }
            }
        }
        joined.map_or(first, BytesMut::freeze)
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

    async fn send(tx: &StreamSender, bytes: Bytes) {
        tx.send(StreamItem::Data(bytes)).await.unwrap();
    }

    async fn send_trailers(tx: &StreamSender) {
        let mut trailers = HeaderMap::new();
        trailers.insert("x-sum", HeaderValue::from_static("1"));
        tx.send(StreamItem::Trailers(trailers)).await.unwrap();
    }

    #[tokio::test]
    async fn stream_ends_with_trailers() {
        let (tx, body) = ResponseBody::channel(None);
        send(&tx, Bytes::from_static(b"a")).await;
        send_trailers(&tx).await;
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
    async fn small_waiting_chunks_go_out_as_one_frame() {
        let (tx, mut body) = ResponseBody::channel(None);
        for piece in [&b"ab"[..], b"cd", b"ef"] {
            send(&tx, Bytes::from_static(piece)).await;
        }
        let big = Bytes::from(vec![b'x'; JOIN_BELOW]);
        send(&tx, big.clone()).await;
        send(&tx, Bytes::from_static(b"gh")).await;
        send_trailers(&tx).await;
        drop(tx);
        let mut frames = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.unwrap();
            frames.push(match frame.into_data() {
                Ok(data) => data,
                Err(frame) => {
                    assert!(frame.is_trailers());
                    Bytes::from_static(b"<trailers>")
                }
            });
        }
        // A big chunk is not copied, and nothing is taken past it.
        assert_eq!(
            frames,
            [
                Bytes::from_static(b"abcdef"),
                big,
                Bytes::from_static(b"gh"),
                Bytes::from_static(b"<trailers>"),
            ]
        );
    }

    #[tokio::test]
    async fn a_joined_frame_stops_at_its_limit_and_frees_its_charges() {
        let (tx, mut body) = ResponseBody::channel(None);
        let piece = Bytes::from(vec![b'y'; 1000]);
        let count = JOINED_AT_MOST / 1000 + 5;
        for _ in 0..count {
            send(&tx, piece.clone()).await;
        }
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(first.len(), JOINED_AT_MOST / 1000 * 1000);
        // Joined chunks no longer count against the budget; the one kept
        // for the next frame still does.
        let ResponseBody::Stream(stream) = &body else {
            unreachable!()
        };
        assert!(stream.next.is_some());
        assert_eq!(tx.queued_bytes(), (count - JOINED_AT_MOST / 1000) * 1000);
        drop(tx);
        let rest = body.collect().await.unwrap().to_bytes();
        assert_eq!(rest.len(), 5 * 1000);
    }

    #[tokio::test]
    async fn abort_is_an_error_frame() {
        let (tx, body) = ResponseBody::channel(None);
        tx.send(StreamItem::Abort).await.unwrap();
        assert!(body.collect().await.is_err());
    }
}
