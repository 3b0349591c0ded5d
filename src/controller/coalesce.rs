//! Status updates that only report progress are written at most once per window.
//!
//! A Project's status counts its branches and copies its quota usage; a BranchRelease's counts
//! its ready and updated replicas. While a thousand branches roll out, those change many thousand
//! times, and writing each change competed with the cluster's own work. A change of nothing but
//! those now waits until `WINDOW` has passed since the last write of that status, and is then
//! written with whatever else changed meanwhile. Anything else (a condition's verdict, the phase,
//! a new generation) is written at once.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kube::api::DynamicObject;
use kube::runtime::reflector::ObjectRef;

/// Which object a status belongs to (keyed like the controllers' failure counts).
pub type Key = ObjectRef<DynamicObject>;

/// The shortest time between two summary-only writes of one status.
pub const WINDOW: Duration = Duration::from_secs(5);

#[derive(Default)]
pub struct Coalescer {
    /// When each object's status was last written.
    last_write: Mutex<HashMap<Key, Instant>>,
}

impl Coalescer {
    /// How long a summary-only write of `key`'s status must wait (None: write it now).
    pub fn wait_before(&self, key: &Key, now: Instant) -> Option<Duration> {
        let last = *self.last_write.lock().expect("coalescer").get(key)?;
        let since = now.saturating_duration_since(last);
        (since < WINDOW).then(|| WINDOW - since)
    }

    /// `key`'s status was written at `now`.
    pub fn wrote(&self, key: &Key, now: Instant) {
        self.last_write
            .lock()
            .expect("coalescer")
            .insert(key.clone(), now);
    }

    /// The object is gone.
    pub fn forget(&self, key: &Key) {
        self.last_write.lock().expect("coalescer").remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_summary_waits_out_the_window_since_the_last_write_only() {
        let coalescer = Coalescer::default();
        let start = Instant::now();
        let key = |name: &str| ObjectRef::<crate::api::Project>::new(name).erase();
        let (shop, other) = (key("shop"), key("other"));
        assert_eq!(coalescer.wait_before(&shop, start), None, "never written");
        coalescer.wrote(&shop, start);
        assert_eq!(
            coalescer.wait_before(&shop, start + Duration::from_millis(500)),
            Some(Duration::from_millis(4500))
        );
        assert_eq!(coalescer.wait_before(&shop, start + WINDOW), None);
        assert_eq!(coalescer.wait_before(&other, start), None);
        coalescer.forget(&shop);
        assert_eq!(coalescer.wait_before(&shop, start), None);
    }
}
