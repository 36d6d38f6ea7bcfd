//! The answer to a request under a static route: method, path, file,
//! conditions, range, then the head and the body.

use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::time::UNIX_EPOCH;

use super::super::{FileRange, ResponseBody, StreamItem, StreamSender, error_response};
use super::Mount;
use super::conditional::Validators;
use super::encoding::{self, Coding};
use super::path::{Refused, relative_path};
use super::range::{self, Ranged};
use super::resolve::{self, Found};
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
        match resolve::find(self, &relative, dir_asked, take) {
            Ok(found) => self.respond(found, headers, head_only).await,
            Err(status) => error_response(status),
        }
    }

    async fn respond(
        &self,
        found: Found,
        headers: &HeaderMap,
        head_only: bool,
    ) -> Response<ResponseBody> {
        let size = found.meta.len();
        let modified = found.meta.modified().unwrap_or(UNIX_EPOCH);
        let validators = Validators::new(size, modified, found.coding.map(Coding::token));
        let mut head = Response::new(());
        let out = head.headers_mut();
        out.insert(ETAG, header(validators.etag.clone()));
        out.insert(LAST_MODIFIED, validators.last_modified());
        if let Some(cache_control) = &self.cache_control {
            out.insert(CACHE_CONTROL, cache_control.clone());
        }
        if found.has_siblings {
            out.insert(VARY, HeaderValue::from_static("Accept-Encoding"));
        }
        if validators.not_modified(headers) {
            *head.status_mut() = StatusCode::NOT_MODIFIED;
            return head.map(|()| ResponseBody::empty());
        }
        out.insert(CONTENT_TYPE, content_type(&found.name));
        out.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        if let Some(coding) = found.coding {
            out.insert(CONTENT_ENCODING, HeaderValue::from_static(coding.token()));
        }
        let asked = headers
            .get(RANGE)
            .filter(|_| found.coding.is_none() && validators.range_applies(headers))
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
        if len <= READ_AT_ONCE {
            let mut buf = vec![0; len as usize];
            return match found.file.read_exact_at(&mut buf, part.start) {
                Ok(()) => head.map(|()| ResponseBody::full(Bytes::from(buf))),
                Err(_) => error_response(StatusCode::INTERNAL_SERVER_ERROR),
            };
        }
        let (tx, body) = ResponseBody::channel(None);
        tokio::spawn(pump(found.file, part, tx));
        head.map(|()| body)
    }
}

/// Reads `part` of `file` into a streamed body, a chunk at a time, while
/// the client takes it: `send` waits once the body holds its budget, so a
/// slow client holds at most that much of the file in memory.
///
/// The reads are made here, on the I/O thread, like the lookups: from the
/// page cache a 256 KiB `pread` costs less than handing it to tokio's
/// blocking pool (what `send_open_file` does) and waking this thread again,
/// which on a busy one-core worker halved the rate of 1 MiB responses.
async fn pump(mut file: std::fs::File, part: FileRange, tx: StreamSender) {
    if file.seek(SeekFrom::Start(part.start)).is_err() {
        let _ = tx.send(StreamItem::Abort).await;
        return;
    }
    let mut left = part.end - part.start;
    while left > 0 {
        // `read_to_end` reads into the spare capacity without zeroing it
        // first (a third pass over every byte, with the read and the write).
        let want = left.min(CHUNK);
        let mut buf = Vec::with_capacity(want as usize);
        match (&mut file).take(want).read_to_end(&mut buf) {
            Ok(0) | Err(_) => {
                // The file shrank or failed under us: cut the response
                // short rather than send fewer bytes than announced.
                let _ = tx.send(StreamItem::Abort).await;
                return;
            }
            Ok(n) => {
                left = left.saturating_sub(n as u64);
                if tx.send(StreamItem::Data(Bytes::from(buf))).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// The type of the file `name`, from its extension (unknown:
/// `application/octet-stream`), with `charset=utf-8` for text, as nginx's
/// `charset utf-8` adds it (text and JavaScript).
fn content_type(name: &std::path::Path) -> HeaderValue {
    let mime = mime_guess::from_path(name)
        .first_raw()
        .unwrap_or("application/octet-stream");
    if mime.starts_with("text/") || mime == "application/javascript" {
        header(format!("{mime}; charset=utf-8"))
    } else {
        HeaderValue::from_static(mime)
    }
}

/// Text this module made: ASCII, so a valid header value.
fn header(text: String) -> HeaderValue {
    HeaderValue::try_from(text).expect("made of visible ASCII")
}
