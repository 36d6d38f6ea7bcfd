//! [`Registry`]: the open connections of one server, for
//! `--limit-connections`. At the limit, a new connection takes the place
//! of the oldest idle one; with none idle, it is refused at accept, so a
//! flood of idle connections never keeps a fresh client out and a busy
//! server says no at once rather than letting clients time out.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::timeouts::Activity;
use crate::sync::Mutex;

#[derive(Debug)]
pub(crate) struct Registry {
    limit: Option<usize>,
    open: Mutex<Open>,
}

#[derive(Debug, Default)]
struct Open {
    /// By order of acceptance: the first idle one is the oldest.
    by_age: BTreeMap<u64, Arc<Activity>>,
    accepted: u64,
}

/// A connection's place in the registry, given up when dropped.
#[derive(Debug)]
pub(crate) struct Place {
    registry: Arc<Registry>,
    key: u64,
}

impl Drop for Place {
    fn drop(&mut self) {
        self.registry.open.lock().by_age.remove(&self.key);
    }
}

impl Registry {
    pub(crate) fn new(limit: Option<usize>) -> Arc<Self> {
        Arc::new(Self {
            limit,
            open: Mutex::new(Open::default()),
        })
    }

    /// A place for a new connection with `activity`, or `None` to refuse
    /// it. Without a limit nothing is recorded.
    pub(crate) fn admit(self: &Arc<Self>, activity: &Arc<Activity>) -> Option<Option<Place>> {
        let Some(limit) = self.limit else {
            return Some(None);
        };
        let mut open = self.open.lock();
        if open.by_age.len() >= limit {
            // The evicted connection leaves the registry when it closes,
            // a moment later: until then there is one more than the limit.
            let oldest_idle = open.by_age.values().find(|other| other.evictable())?;
            oldest_idle.evict();
        }
        open.accepted += 1;
        let key = open.accepted;
        open.by_age.insert(key, Arc::clone(activity));
        Some(Some(Place {
            registry: Arc::clone(self),
            key,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::timeouts::InFlight;

    /// A request without a body in flight on `activity`'s connection.
    fn in_flight(activity: &Arc<Activity>) -> InFlight {
        let mut req = hyper::Request::new(http_body_util::Empty::<bytes::Bytes>::new());
        InFlight::new(activity, &mut req)
    }

    #[test]
    fn the_oldest_idle_connection_makes_room() {
        let registry = Registry::new(Some(2));
        let (first, second) = (Arc::new(Activity::default()), Arc::new(Activity::default()));
        let _first = registry.admit(&first).unwrap();
        let _second = registry.admit(&second).unwrap();
        // Both busy: the third is refused.
        let busy = (in_flight(&first), in_flight(&second));
        assert!(registry.admit(&Arc::new(Activity::default())).is_none());
        // The second one idle: it gives way, the first is left alone.
        drop(busy.1);
        let third = registry.admit(&Arc::new(Activity::default()));
        assert!(third.is_some());
        assert!(second.is_evicted() && !first.is_evicted());
    }

    #[test]
    fn a_closed_connection_gives_its_place_back() {
        let registry = Registry::new(Some(1));
        let first = Arc::new(Activity::default());
        let place = registry.admit(&first).unwrap();
        let _busy = in_flight(&first);
        assert!(registry.admit(&Arc::new(Activity::default())).is_none());
        drop(place);
        assert!(registry.admit(&Arc::new(Activity::default())).is_some());
    }
}
