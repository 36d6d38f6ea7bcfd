//! The files of a mount found lately, kept open for [`VALID`], as nginx's
//! `open_file_cache` keeps them: a request for a file looked up less than
//! that long ago makes no lookup (the path walk with an `lstat` per
//! component, one per sibling, `open`, `close`), only one `fstat` of the
//! open file, which sees a file rewritten in place at once.
//!
//! What the window can hide, for at most [`VALID`]: a file deleted or
//! replaced by another (renamed over it) is still sent as it was when
//! opened, a sibling added or removed is not seen, a changed permission or
//! symlink is not seen. Containment holds throughout: what is sent was
//! opened when it was judged to lie in the mount.
//!
//! Files up to [`KEEP_MAX`] also keep their contents, read once, within a
//! budget per mount: a file rewritten in place is then seen (by its size
//! or modification time) at once, except one rewritten with the same size
//! within the file system's timestamp granularity, seen within [`VALID`].
//!
//! Misses are not kept (a missing file is looked up every time), and at
//! most [`CAPACITY`] paths are, each holding its descriptors; expired
//! entries are dropped (closing them) at most [`VALID`] after they expire.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::sync::Mutex;

/// How long a lookup is trusted.
pub(crate) const VALID: Duration = Duration::from_secs(1);

/// Paths kept per mount at most (each with up to three descriptors: the
/// file and two siblings); beyond, lookups are not kept.
const CAPACITY: usize = 256;

/// Files up to this size have their contents kept too, once a response
/// sent them whole or in part: then a request makes no `pread` either, and
/// a larger one costs one copy of the bytes (into the socket) instead of
/// two, every response sharing the same buffer.
pub(crate) const KEEP_MAX: u64 = 1024 * 1024;

/// Bytes of contents kept per mount at most; beyond, files are read for
/// each request. The copies are each worker's own (the page cache is
/// shared, these are not), so the budget stays small: with 8 workers, a
/// mount costs at most 128 MiB more.
const KEEP_BUDGET: usize = 16 * 1024 * 1024;

/// The request's file name below the mount, and whether it ended in `/`.
pub(crate) type Key = (PathBuf, bool);

#[derive(Debug)]
pub(crate) struct OpenFiles<T> {
    inner: Mutex<Inner<T>>,
    kept: Arc<AtomicUsize>,
}

/// A file's contents, counted against its mount's budget while they live.
#[derive(Debug)]
pub(crate) struct Kept {
    pub(crate) bytes: Bytes,
    budget: Arc<AtomicUsize>,
}

impl Drop for Kept {
    fn drop(&mut self) {
        self.budget.fetch_sub(self.bytes.len(), Ordering::Relaxed);
    }
}

#[derive(Debug)]
struct Inner<T> {
    entries: HashMap<Key, (Instant, Arc<T>)>,
    swept: Instant,
}

impl<T> OpenFiles<T> {
    pub(crate) fn new() -> Self {
        Self {
            inner: Mutex::new(Inner {
                entries: HashMap::new(),
                swept: Instant::now(),
            }),
            kept: Arc::default(),
        }
    }

    /// Keeps `bytes` read by `read` (a file's whole contents, `len` bytes)
    /// when the budget has room for them.
    pub(crate) fn keep(&self, len: u64, read: impl FnOnce() -> Option<Bytes>) -> Option<Kept> {
        let len = usize::try_from(len)
            .ok()
            .filter(|&n| n as u64 <= KEEP_MAX)?;
        // Counted before the read, so that reads on several threads cannot
        // together pass the budget.
        if self.kept.fetch_add(len, Ordering::Relaxed) + len > KEEP_BUDGET {
            self.kept.fetch_sub(len, Ordering::Relaxed);
            return None;
        }
        match read().filter(|bytes| bytes.len() == len) {
            Some(bytes) => Some(Kept {
                bytes,
                budget: Arc::clone(&self.kept),
            }),
            None => {
                self.kept.fetch_sub(len, Ordering::Relaxed);
                None
            }
        }
    }

    /// What `key` resolved to less than [`VALID`] ago.
    pub(crate) fn get(&self, key: &Key) -> Option<Arc<T>> {
        let now = Instant::now();
        let mut inner = self.inner.lock();
        let dropped = inner.sweep(now);
        let found = inner
            .entries
            .get(key)
            .filter(|(at, _)| now.duration_since(*at) < VALID)
            .map(|(_, resolved)| Arc::clone(resolved));
        drop(inner);
        // Closed outside the lock.
        drop(dropped);
        found
    }

    /// Keeps `resolved`, looked up just now, for `key`.
    pub(crate) fn insert(&self, key: Key, resolved: Arc<T>) {
        let now = Instant::now();
        let mut inner = self.inner.lock();
        let dropped = inner.sweep(now);
        let replaced = if inner.entries.len() < CAPACITY || inner.entries.contains_key(&key) {
            inner.entries.insert(key, (now, resolved))
        } else {
            None
        };
        drop(inner);
        drop((dropped, replaced));
    }

    /// Forgets `key` (its file changed).
    pub(crate) fn remove(&self, key: &Key) {
        let removed = self.inner.lock().entries.remove(key);
        drop(removed);
    }
}

impl<T> Inner<T> {
    /// Takes out the expired entries, at most once per [`VALID`].
    fn sweep(&mut self, now: Instant) -> Vec<Arc<T>> {
        if now.duration_since(self.swept) < VALID {
            return Vec::new();
        }
        self.swept = now;
        let mut expired = Vec::new();
        self.entries.retain(|_, (at, resolved)| {
            let keep = now.duration_since(*at) < VALID;
            if !keep {
                expired.push(Arc::clone(resolved));
            }
            keep
        });
        expired
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_contents_count_against_the_budget_while_they_live() {
        let files = OpenFiles::<()>::new();
        let mib = KEEP_MAX as usize;
        let read = || Some(Bytes::from(vec![7; mib]));
        let held: Vec<Kept> = (0..KEEP_BUDGET / mib)
            .map(|_| files.keep(KEEP_MAX, read).expect("within the budget"))
            .collect();
        assert!(files.keep(KEEP_MAX, read).is_none(), "the budget is spent");
        drop(held);
        assert_eq!(files.kept.load(Ordering::Relaxed), 0);
        assert!(files.keep(KEEP_MAX, read).is_some());
        // Too big, or read short: not kept, nothing counted.
        assert!(files.keep(KEEP_MAX + 1, || unreachable!()).is_none());
        assert!(
            files
                .keep(10, || Some(Bytes::from_static(b"short")))
                .is_none()
        );
        assert_eq!(files.kept.load(Ordering::Relaxed), 0);
    }
}
