//! The answer to a request under a static route: method, path, file,
//! conditions, range, then the head and the body.

use std::sync::Arc;

use super::super::{FileRange, ResponseBody, StreamItem, StreamSender, error_response};
use super::Mount;
use super::cache::Key;
use super::encoding::{self, Coding};
use super::path::{Refused, relative_path};
use super::range::{self, Ranged};
use super::resolve::{self, Resolved, Which, read_at};
use bytes::Bytes;
use hyper::header::{
    ACCEPT_ENCODING, ACCEPT_RANGES, ALLOW, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_LENGTH,
    CONTENT_RANGE, CONTENT_TYPE, ETAG, HeaderMap, HeaderValue, LAST_MODIFIED, RANGE, VARY,
};
use hyper::{Method, Request, Response, StatusCode};
/// Bodies up to this size are read at once into the response; larger
/// ones stream (see [`pump`]).
const READ_AT_ONCE: u64 = 64 * 1024;

/// The reads of a larger body.
const CHUNK: u64 = 256 * 1024;

impl Mount {
    /// Answers `req`, which [`super::StaticFiles::find`] gave to this mount.
    pub(crate) async fn serve<B>(&self, req: &Request<B>) -> Response<ResponseBody> {
        let head_only = match *req.method() {
            Method::GET => false,
            Method::HEAD => true,
            _ => {
                let mut response = error_response(StatusCode::METHOD_NOT_ALLOWED);
                let allow = HeaderValue::from_static("GET, HEAD");
                response.headers_mut().insert(ALLOW, allow);
                return response;
            }
        };
        let rest = self.rest(req.uri().path()).unwrap_or_default();
        let (relative, dir_asked) = match relative_path(rest) {
            Ok(found) => found,
            Err(Refused::BadEncoding) => return error_response(StatusCode::BAD_REQUEST),
            Err(Refused::Unsafe) => return error_response(StatusCode::NOT_FOUND),
        };
        let headers = req.headers();
        // A range is of the identity file: ranges of a compressed variant
        // are of no use to a client that must decompress from the start.
        let accept = match headers.get(RANGE) {
            Some(_) => "",
            None => headers
                .get(ACCEPT_ENCODING)
                .and_then(|v| v.to_str().ok())
                .unwrap_or(""),
        };
        let take = |coding| encoding::accepts(accept, coding);
        match self.lookup((relative, dir_asked), take) {
            Ok((resolved, which, coding)) => {
                self.respond(resolved, which, coding, headers, head_only)
                    .await
            }
            Err(status) => error_response(status),
        }
    }

    /// The file `key` names and the variant to send: as found by a recent
    /// lookup while the variant is unchanged, else looked up now.
    fn lookup(
        &self,
        key: Key,
        take: impl Fn(Coding) -> bool,
    ) -> Result<(Arc<Resolved>, Which, Option<Coding>), StatusCode> {
        if let Some(resolved) = self.files.get(&key) {
            let (which, coding) = resolved.choose(&take)?;
            if resolved.variant(which).unchanged() {
                return Ok((resolved, which, coding));
            }
            self.files.remove(&key);
        }
        let resolved = Arc::new(resolve::find(self, &key.0, key.1)?);
        self.files.insert(key, Arc::clone(&resolved));
        let (which, coding) = resolved.choose(&take)?;
        Ok((resolved, which, coding))
    }

    async fn respond(
        &self,
        resolved: Arc<Resolved>,
        which: Which,
        coding: Option<Coding>,
        headers: &HeaderMap,
        head_only: bool,
    ) -> Response<ResponseBody> {
        let variant = resolved.variant(which);
        let size = variant.len;
        let validators = &variant.validators;
        let mut head = Response::new(());
        let out = head.headers_mut();
        out.insert(ETAG, variant.etag.clone());
        out.insert(LAST_MODIFIED, variant.last_modified.clone());
        if let Some(cache_control) = &self.cache_control {
            out.insert(CACHE_CONTROL, cache_control.clone());
        }
        if resolved.has_siblings() {
            out.insert(VARY, HeaderValue::from_static("Accept-Encoding"));
        }
        if validators.precondition_failed(headers) {
            return error_response(StatusCode::PRECONDITION_FAILED);
        }
        if validators.not_modified(headers) {
            *head.status_mut() = StatusCode::NOT_MODIFIED;
            return head.map(|()| ResponseBody::empty());
        }
        out.insert(CONTENT_TYPE, resolved.content_type.clone());
        out.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        if let Some(coding) = coding {
            out.insert(CONTENT_ENCODING, HeaderValue::from_static(coding.token()));
        }
        let asked = headers
            .get(RANGE)
            .filter(|_| coding.is_none() && validators.range_applies(headers))
            .and_then(|v| v.to_str().ok());
        let part = match asked.map_or(Ranged::Whole, |text| range::parse(text, size)) {
            Ranged::Whole => FileRange {
                start: 0,
                end: size,
            },
            Ranged::Part(part) => {
                *head.status_mut() = StatusCode::PARTIAL_CONTENT;
                let text = format!("bytes {}-{}/{size}", part.start, part.end - 1);
                head.headers_mut().insert(CONTENT_RANGE, header(text));
                part
            }
            Ranged::Unsatisfiable => {
                let mut response = error_response(StatusCode::RANGE_NOT_SATISFIABLE);
                let text = format!("bytes */{size}");
                response.headers_mut().insert(CONTENT_RANGE, header(text));
                return response;
            }
        };
        let len = part.end - part.start;
        head.headers_mut()
            .insert(CONTENT_LENGTH, HeaderValue::from(len));
        if head_only || len == 0 {
            return head.map(|()| ResponseBody::empty());
        }
        if let Some(contents) = variant.contents(&self.files) {
            let body = contents.slice(part.start as usize..part.end as usize);
            return head.map(|()| ResponseBody::full(body));
        }
        if len <= READ_AT_ONCE {
            return match read_at(&variant.file, part.start, len as usize) {
                Ok(buf) if buf.len() as u64 == len => {
                    head.map(|()| ResponseBody::full(Bytes::from(buf)))
                }
                _ => error_response(StatusCode::INTERNAL_SERVER_ERROR),
            };
        }
        let (tx, body) = ResponseBody::channel(None);
        tokio::spawn(pump(resolved, which, part, tx));
        head.map(|()| body)
    }
}

/// Reads `part` of the variant into a streamed body, a chunk at a time,
/// while the client takes it: `send` waits once the body holds its budget,
/// so a slow client holds at most that much of the file in memory.
///
/// The reads are made here, on the I/O thread, like the lookups: from the
/// page cache a 256 KiB `pread` costs less than handing it to tokio's
/// blocking pool (what `send_open_file` does) and waking this thread again,
/// which on a busy one-core worker halved the rate of 1 MiB responses.
async fn pump(resolved: Arc<Resolved>, which: Which, part: FileRange, tx: StreamSender) {
    let file = &resolved.variant(which).file;
    let mut at = part.start;
    while at < part.end {
        let want = (part.end - at).min(CHUNK) as usize;
        match read_at(file, at, want) {
            Ok(buf) if !buf.is_empty() => {
                at += buf.len() as u64;
                if tx.send(StreamItem::Data(Bytes::from(buf))).await.is_err() {
                    return;
                }
            }
            _ => {
                // The file shrank or failed under us: cut the response
                // short rather than send fewer bytes than announced.
                let _ = tx.send(StreamItem::Abort).await;
                return;
            }
        }
    }
}

/// Text this module made: ASCII, so a valid header value.
fn header(text: String) -> HeaderValue {
    HeaderValue::try_from(text).expect("made of visible ASCII")
}
