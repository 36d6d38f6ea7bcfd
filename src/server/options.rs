//! How connections are served: the HTTP versions, hyper's builders tuned
//! from the options, and the limits and features every connection of a
//! listener shares ([`HttpOptions`]).

use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::timeouts::Timeouts;
use crate::http::{Proxies, RequestLimits, StaticFiles};
use crate::log::access::AccessLog;
use crate::tls::Tls;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HttpMode {
    Auto,
    Http1,
    Http2,
}

#[derive(Debug, Clone)]
pub(crate) struct HttpOptions {
    pub(crate) mode: HttpMode,
    pub(crate) keep_alive: bool,
    /// HTTP/1: hold responses back while more pipelined requests are
    /// already buffered, and write them together.
    pub(crate) pipeline_flush: bool,
    pub(crate) h2_max_concurrent_streams: u32,
    /// `None` leaves hyper's defaults.
    pub(crate) h2: Option<Http2Tuning>,
    pub(crate) limits: Limits,
    /// TCP connections speak TLS when set.
    pub(crate) tls: Option<Arc<Tls>>,
    /// Routes answered from disk, before the handler (none: empty).
    pub(crate) statics: StaticFiles,
    /// Where requests are logged (`--access-log`); `None`: not at all.
    pub(crate) access: Option<Arc<AccessLog>>,
    /// Which proxies are believed, and what they may tell.
    pub(crate) proxies: Arc<Proxies>,
}

/// What a client may send, and how slowly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// HTTP/1: hyper's read (and write) buffer, so also the largest request
    /// head: one that does not fit is answered 431. `None`: hyper's ~400 KB.
    pub(crate) buffer_size: Option<usize>,
    /// HTTP/1: most header fields in a request (431 over it); `None`:
    /// hyper's 100.
    pub(crate) max_headers: Option<usize>,
    /// HTTP/1: longest wait for a request head, counted from the moment
    /// the connection waits for one (idle time included); `None`: none.
    pub(crate) header_read_timeout: Option<Duration>,
    /// HTTP/2: largest decoded header list (SETTINGS_MAX_HEADER_LIST_SIZE),
    /// also the bound on a header block split over CONTINUATION frames.
    pub(crate) h2_max_header_list_size: Option<u32>,
    /// Most connections open at once; `None`: no limit.
    pub(crate) max_connections: Option<usize>,
    pub(crate) timeouts: Timeouts,
    pub(crate) request: RequestLimits,
}

impl Limits {
    /// hyper's defaults, as before these options existed.
    pub(crate) const HYPER: Self = Self {
        buffer_size: None,
        max_headers: None,
        header_read_timeout: Some(Duration::from_secs(30)),
        h2_max_header_list_size: None,
        max_connections: None,
        timeouts: Timeouts {
            keep_alive: None,
            write: None,
        },
        request: RequestLimits::NONE,
    };
}

/// HTTP/2 flow control, frames and keep-alive pings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Http2Tuning {
    /// On, hyper sizes both windows by measuring the connection (BDP pings)
    /// and the two window sizes below are not used.
    pub(crate) adaptive_window: bool,
    pub(crate) initial_connection_window_size: u32,
    pub(crate) initial_stream_window_size: u32,
    /// `None`: no keep-alive pings.
    pub(crate) keep_alive_interval: Option<Duration>,
    pub(crate) keep_alive_timeout: Duration,
    pub(crate) max_frame_size: u32,
    pub(crate) max_send_buffer_size: u32,
}

/// Largest flow-control window (RFC 9113, 6.9.1).
const MAX_WINDOW_SIZE: u32 = (1 << 31) - 1;
/// Bounds of SETTINGS_MAX_FRAME_SIZE (RFC 9113, 6.5.2).
const FRAME_SIZES: std::ops::RangeInclusive<u32> = (1 << 14)..=(1 << 24) - 1;

impl Http2Tuning {
    /// The first setting HTTP/2 does not allow, with its value: h2 would
    /// panic on it when a connection starts.
    pub(crate) fn out_of_range(&self) -> Option<(&'static str, u32)> {
        let windows = 1..=MAX_WINDOW_SIZE;
        [
            (
                "initial_connection_window_size",
                self.initial_connection_window_size,
                &windows,
            ),
            (
                "initial_stream_window_size",
                self.initial_stream_window_size,
                &windows,
            ),
            ("max_frame_size", self.max_frame_size, &FRAME_SIZES),
            (
                "max_send_buffer_size",
                self.max_send_buffer_size,
                &(1..=u32::MAX),
            ),
        ]
        .into_iter()
        .find(|(_, value, allowed)| !allowed.contains(value))
        .map(|(name, value, _)| (name, value))
    }
}

/// hyper's own builders serve every mode (`--http auto` picks one per
/// connection, see `sniff`); hyper-util's automatic builder would ignore a
/// version restriction once upgrades are enabled.
pub(super) fn http1_builder(opts: &HttpOptions) -> hyper::server::conn::http1::Builder {
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .keep_alive(opts.keep_alive)
        .pipeline_flush(opts.pipeline_flush)
        .half_close(false)
        .header_read_timeout(opts.limits.header_read_timeout);
    if let Some(size) = opts.limits.buffer_size {
        builder.max_buf_size(size);
    }
    // Set only when asked: hyper then allocates the header array per
    // request instead of keeping it on the stack.
    if let Some(fields) = opts.limits.max_headers {
        builder.max_headers(fields);
    }
    builder
}

pub(super) fn http2_builder(
    opts: &HttpOptions,
) -> hyper::server::conn::http2::Builder<TokioExecutor> {
    let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .max_concurrent_streams(opts.h2_max_concurrent_streams);
    if let Some(size) = opts.limits.h2_max_header_list_size {
        builder.max_header_list_size(size);
    }
    // The windows come before `adaptive_window`: setting a window turns
    // adaptive flow control off, and turning it on resets the windows.
    if let Some(tuning) = &opts.h2 {
        builder
            .initial_connection_window_size(tuning.initial_connection_window_size)
            .initial_stream_window_size(tuning.initial_stream_window_size)
            .adaptive_window(tuning.adaptive_window)
            .keep_alive_interval(tuning.keep_alive_interval)
            .keep_alive_timeout(tuning.keep_alive_timeout)
            .max_frame_size(tuning.max_frame_size)
            .max_send_buf_size(tuning.max_send_buffer_size as usize);
    }
    builder
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http2_settings_outside_what_http2_allows_are_named() {
        let fine = Http2Tuning {
            adaptive_window: false,
            initial_connection_window_size: MAX_WINDOW_SIZE,
            initial_stream_window_size: 1,
            keep_alive_interval: None,
            keep_alive_timeout: Duration::from_secs(20),
            max_frame_size: 16_384,
            max_send_buffer_size: 1,
        };
        assert_eq!(fine.out_of_range(), None);
        let cases = [
            (
                Http2Tuning {
                    initial_connection_window_size: 1 << 31,
                    ..fine
                },
                ("initial_connection_window_size", 1 << 31),
            ),
            (
                Http2Tuning {
                    initial_stream_window_size: 0,
                    ..fine
                },
                ("initial_stream_window_size", 0),
            ),
            (
                Http2Tuning {
                    max_frame_size: 16_383,
                    ..fine
                },
                ("max_frame_size", 16_383),
            ),
            (
                Http2Tuning {
                    max_frame_size: 1 << 24,
                    ..fine
                },
                ("max_frame_size", 1 << 24),
            ),
            (
                Http2Tuning {
                    max_send_buffer_size: 0,
                    ..fine
                },
                ("max_send_buffer_size", 0),
            ),
        ];
        for (tuning, expected) in cases {
            assert_eq!(tuning.out_of_range(), Some(expected));
        }
    }
}
