//! A worker's counters (`--metrics`): plain `u64` atomics in a block of
//! shared memory the supervisor maps too, so a scrape reads every worker
//! without asking it anything (a worker whose event loop hangs is still
//! read), and counting costs one relaxed atomic add, no lock and no Python.
//!
//! The block is process-wide: a worker process runs one server, and the
//! places that count (accept loop, socket wrapper, back-pressure
//! admission, response bodies) share no per-server object; threading a
//! handle through each would touch every interface for nothing. Off, every
//! call is one load of a null pointer.
//!
//! The layout (slot names, buckets, labels) is given to Python by
//! [`layout`]; Python never guesses an offset.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hyper::Method;

/// Upper bounds of the latency histogram, in seconds (a last bucket, +Inf,
/// follows).
pub(crate) const BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Methods with a label of their own; any other is `OTHER`.
pub(crate) const METHODS: [&str; 8] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "OTHER",
];
pub(crate) const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Single slots, by index.
pub(crate) const SLOTS: [&str; 15] = [
    "magic",
    "heartbeat_ms",
    "connections_open",
    "connections_total",
    "in_flight",
    "websockets_open",
    "websockets_total",
    "bytes_in",
    "bytes_out",
    "backpressure_waits",
    "duration_sum_us",
    "pid",
    "interface",
    "requests_rejected",
    "backpressure_timeouts",
];
/// The `interface` slot holds an index in this list, plus one.
pub(crate) const INTERFACES: [&str; 3] = ["asgi", "rsgi", "wsgi"];
const MAGIC: usize = 0;
const HEARTBEAT: usize = 1;
const CONNECTIONS_OPEN: usize = 2;
const CONNECTIONS_TOTAL: usize = 3;
const IN_FLIGHT: usize = 4;
const WEBSOCKETS_OPEN: usize = 5;
const WEBSOCKETS_TOTAL: usize = 6;
const BYTES_IN: usize = 7;
const BYTES_OUT: usize = 8;
const BACKPRESSURE_WAITS: usize = 9;
const DURATION_SUM_US: usize = 10;
const PID: usize = 11;
const INTERFACE: usize = 12;
const REQUESTS_REJECTED: usize = 13;
const BACKPRESSURE_TIMEOUTS: usize = 14;
/// Histogram buckets (not cumulative), then requests by method and class.
const HISTOGRAM: usize = SLOTS.len();
const REQUESTS: usize = HISTOGRAM + BUCKETS.len() + 1;
pub(crate) const LEN: usize = REQUESTS + METHODS.len() * CLASSES.len();
/// Tells a block written by this layout from a stale or foreign one.
const MAGIC_VALUE: u64 = 0x6469_6f72_6d65_7403;

/// The mapped block.
struct Block {
    slots: NonNull<AtomicU64>,
}

// SAFETY: the block is only touched through atomics.
unsafe impl Send for Block {}
unsafe impl Sync for Block {}

impl Block {
    fn slot(&self, index: usize) -> &AtomicU64 {
        debug_assert!(index < LEN);
        // SAFETY: `index < LEN`, and the mapping is never unmapped.
        unsafe { &*self.slots.as_ptr().add(index) }
    }
}

static CURRENT: AtomicPtr<Block> = AtomicPtr::new(std::ptr::null_mut());

fn current() -> Option<&'static Block> {
    // SAFETY: a published block is leaked, never freed.
    unsafe { CURRENT.load(Ordering::Acquire).as_ref() }
}

/// Maps `file` (at least `LEN * 8` bytes) and counts into it from now on,
/// for a server of `interface` (one of [`INTERFACES`], else unnamed).
/// A block installed before is left mapped (an embedding program that
/// starts a second server leaks one page).
pub(crate) fn install(file: &File, interface: &str) -> std::io::Result<()> {
    let size = LEN * 8;
    if file.metadata()?.len() < size as u64 {
        file.set_len(size as u64)?;
    }
    // SAFETY: a shared read-write mapping of a file we hold open; the
    // mapping outlives the descriptor and is never unmapped.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            0,
        )
    };
    if ptr == libc::MAP_FAILED {
        return Err(std::io::Error::last_os_error());
    }
    let slots = NonNull::new(ptr.cast::<AtomicU64>()).ok_or_else(std::io::Error::last_os_error)?;
    let block = Box::leak(Box::new(Block { slots }));
    block
        .slot(PID)
        .store(u64::from(std::process::id()), Ordering::Relaxed);
    let code = INTERFACES
        .iter()
        .position(|i| *i == interface)
        .map_or(0, |i| i + 1);
    block.slot(INTERFACE).store(code as u64, Ordering::Relaxed);
    block.slot(MAGIC).store(MAGIC_VALUE, Ordering::Release);
    CURRENT.store(block, Ordering::Release);
    Ok(())
}

fn add(index: usize, n: u64) {
    if let Some(block) = current() {
        block.slot(index).fetch_add(n, Ordering::Relaxed);
    }
}

fn sub(index: usize) {
    if let Some(block) = current() {
        block.slot(index).fetch_sub(1, Ordering::Relaxed);
    }
}

/// The event loop is alive at `ms` (CLOCK_MONOTONIC milliseconds).
pub(crate) fn beat(ms: u64) {
    if let Some(block) = current() {
        block.slot(HEARTBEAT).store(ms, Ordering::Relaxed);
    }
}

pub(crate) fn bytes_in(n: usize) {
    add(BYTES_IN, n as u64);
}

pub(crate) fn bytes_out(n: usize) {
    add(BYTES_OUT, n as u64);
}

pub(crate) fn backpressure_wait() {
    add(BACKPRESSURE_WAITS, 1);
}

pub(crate) fn backpressure_timeout() {
    add(BACKPRESSURE_TIMEOUTS, 1);
}

pub(crate) fn request_rejected() {
    add(REQUESTS_REJECTED, 1);
}

/// Whether anything is counted: callers skip taking the time otherwise.
pub(crate) fn on() -> bool {
    current().is_some()
}

/// Something counted as open while this lives, and in a total once: an
/// accepted connection, or an upgraded connection's websocket.
#[derive(Debug)]
pub(crate) struct Open {
    gauge: usize,
}

impl Open {
    pub(crate) fn connection() -> Option<Self> {
        Self::counted(CONNECTIONS_OPEN, CONNECTIONS_TOTAL)
    }

    pub(crate) fn websocket() -> Option<Self> {
        Self::counted(WEBSOCKETS_OPEN, WEBSOCKETS_TOTAL)
    }

    fn counted(gauge: usize, total: usize) -> Option<Self> {
        on().then(|| {
            add(gauge, 1);
            add(total, 1);
            Self { gauge }
        })
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        sub(self.gauge);
    }
}

/// One request, in flight from creation; counted by method, status class
/// and duration when dropped (its response has ended, or was dropped).
#[derive(Debug)]
pub(crate) struct RequestTimer {
    started: Instant,
    method: u8,
    status: u16,
}

impl RequestTimer {
    pub(crate) fn start(method: &Method) -> Option<Self> {
        if !on() {
            return None;
        }
        add(IN_FLIGHT, 1);
        let method = match *method {
            Method::GET => 0,
            Method::HEAD => 1,
            Method::POST => 2,
            Method::PUT => 3,
            Method::DELETE => 4,
            Method::PATCH => 5,
            Method::OPTIONS => 6,
            _ => 7,
        };
        Some(Self {
            started: Instant::now(),
            method,
            status: 500,
        })
    }

    pub(crate) fn status(&mut self, status: u16) {
        self.status = status;
    }
}

fn bucket(elapsed: Duration) -> usize {
    let seconds = elapsed.as_secs_f64();
    BUCKETS
        .iter()
        .position(|bound| seconds <= *bound)
        .unwrap_or(BUCKETS.len())
}

impl Drop for RequestTimer {
    fn drop(&mut self) {
        let elapsed = self.started.elapsed();
        let class = usize::from(self.status / 100).clamp(1, 5) - 1;
        add(
            REQUESTS + usize::from(self.method) * CLASSES.len() + class,
            1,
        );
        add(HISTOGRAM + bucket(elapsed), 1);
        add(
            DURATION_SUM_US,
            u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
        );
        sub(IN_FLIGHT);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_fall_in_the_first_bucket_that_holds_them() {
        assert_eq!(bucket(Duration::from_micros(50)), 0);
        assert_eq!(bucket(Duration::from_millis(1)), 0);
        assert_eq!(bucket(Duration::from_millis(2)), 1);
        assert_eq!(bucket(Duration::from_secs(10)), BUCKETS.len() - 1);
        assert_eq!(bucket(Duration::from_secs(11)), BUCKETS.len());
    }
}
