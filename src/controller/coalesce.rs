//! Status updates that only report progress are written at most once per window.
//!
//! A Project's status counts its branches and copies its quota usage; a BranchRelease's counts
//! its ready and updated replicas. While a thousand branches roll out, those change many thousand
//! times, and writing each change competed with the cluster's own work. A change of nothing but
//! those now waits until the window has passed since the last write of that status, and is then
//! written with whatever else changed meanwhile. Anything else (a condition's verdict, the phase,
//! a new generation) is written at once.
//!
//! The window grows with the number of rollouts in flight (objects whose last written status says
//! they are still rolling out, or that hold an update, whichever is more): `WINDOW` times that
//! number, up to `LONGEST_WINDOW`. So the progress of all rollouts together costs about one write
//! every `WINDOW`, however many there are: a lone rollout (or a branch being woken, its waiting
//! page watched live) shows its counts every few seconds, while in a burst of a thousand, whose
//! status writes would compete with the cluster's own work, a rollout costs its milestones only
//! (the first status of a generation, then Ready or a failure: two writes). Counting only the
//! objects that hold an update was not enough: few hold one at any moment even in a burst, so the
//! window stayed short and a thousand redeploys at 5,000 branches cost three writes each.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use prometheus_client::metrics::gauge::Gauge;

/// Which object a status belongs to (keyed like the controllers' failure counts).
pub type Key = super::object_key::ObjectKey;

/// The shortest time between two progress-only writes of one status while it alone holds one.
pub const WINDOW: Duration = Duration::from_secs(5);

/// The longest: progress is shown at least this often, however busy the operator is.
pub const LONGEST_WINDOW: Duration = Duration::from_secs(300);

/// The window when `holding` objects hold an update back.
pub fn window(holding: usize) -> Duration {
    WINDOW
        .saturating_mul(u32::try_from(holding.max(1)).unwrap_or(u32::MAX))
        .min(LONGEST_WINDOW)
}

#[derive(Default)]
pub struct Coalescer {
    /// When each object's status was last written (see `LastWrite`).
    last_write: Mutex<HashMap<Key, LastWrite>>,
    /// Objects with an update held back, not yet written.
    held: Mutex<HashSet<Key>>,
    /// Objects whose last written status says they are rolling out.
    rolling_out: Mutex<HashSet<Key>>,
    /// How many there are (`oksa_status_updates_held`): zero once everything is written, which
    /// is how a benchmark or a test knows that status is final without waiting out a window.
    held_gauge: Gauge,
}

struct LastWrite {
    at: Instant,
    /// The object's version in the cache when the write changed it (see `behind_own_write`).
    over: Option<String>,
}

impl Coalescer {
    pub fn new(held_gauge: Gauge) -> Self {
        Coalescer {
            held_gauge,
            ..Default::default()
        }
    }

    /// How long a summary-only write of `key`'s status must wait (None: write it now): the
    /// window for as many holders as there are with this one, since its last write. A wait
    /// counts the update as held.
    pub fn wait_before(&self, key: &Key, now: Instant) -> Option<Duration> {
        let last = self.last_write.lock().expect("coalescer").get(key)?.at;
        let since = now.saturating_duration_since(last);
        let rolling_out = self.rolling_out.lock().expect("coalescer").len();
        let mut held = self.held.lock().expect("coalescer");
        let holding = held.len() + usize::from(!held.contains(key));
        let wait = window(holding.max(rolling_out))
            .checked_sub(since)
            .filter(|w| !w.is_zero())?;
        if held.insert(key.clone()) {
            self.held_gauge.inc();
        }
        Some(wait)
    }

    /// True while the cache still holds the version of `key` that its last status write changed:
    /// a status computed from that version is older than the one written, and writing would
    /// only repeat it (under load the watch lags behind the writes: at 1,000 branches a third of
    /// the status writes were such repeats). The written version's watch event brings another
    /// reconcile.
    pub fn behind_own_write(&self, key: &Key, cached_version: Option<&str>) -> bool {
        let last_write = self.last_write.lock().expect("coalescer");
        let over = last_write.get(key).and_then(|w| w.over.as_deref());
        over.is_some() && over == cached_version
    }

    /// `key`'s status was written at `now` over the cached version `cached`, giving version
    /// `written`; `rolling_out` when that status says a rollout is still in flight.
    pub fn wrote(
        &self,
        key: &Key,
        now: Instant,
        (cached, written): (Option<&str>, Option<&str>),
        rolling_out: bool,
    ) {
        // A write that changed nothing leaves nothing for the cache to catch up with.
        let over = cached
            .filter(|cached| Some(*cached) != written)
            .map(str::to_string);
        self.last_write
            .lock()
            .expect("coalescer")
            .insert(key.clone(), LastWrite { at: now, over });
        let mut in_flight = self.rolling_out.lock().expect("coalescer");
        if rolling_out {
            in_flight.insert(key.clone());
        } else {
            in_flight.remove(key);
        }
        drop(in_flight);
        self.settled(key);
    }

    /// `key`'s status needs no write (any held update became moot).
    pub fn settled(&self, key: &Key) {
        if self.held.lock().expect("coalescer").remove(key) {
            self.held_gauge.dec();
        }
    }

    /// The object is gone.
    pub fn forget(&self, key: &Key) {
        self.last_write.lock().expect("coalescer").remove(key);
        self.rolling_out.lock().expect("coalescer").remove(key);
        self.settled(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> Key {
        Key::named::<crate::api::Project>(None, name)
    }

    #[test]
    fn a_summary_waits_out_the_window_since_the_last_write_only() {
        let coalescer = Coalescer::default();
        let start = Instant::now();
        let (shop, other) = (key("shop"), key("other"));
        assert_eq!(coalescer.wait_before(&shop, start), None, "never written");
        coalescer.wrote(&shop, start, (None, None), false);
        assert_eq!(
            coalescer.wait_before(&shop, start + Duration::from_millis(500)),
            Some(WINDOW - Duration::from_millis(500))
        );
        assert_eq!(coalescer.wait_before(&shop, start + WINDOW), None);
        assert_eq!(coalescer.wait_before(&other, start), None);
        coalescer.forget(&shop);
        assert_eq!(coalescer.wait_before(&shop, start), None);
    }

    #[test]
    fn the_window_grows_with_the_objects_holding_an_update_up_to_the_longest() {
        assert_eq!(window(0), WINDOW);
        assert_eq!(window(1), WINDOW);
        assert_eq!(window(3), WINDOW * 3);
        assert_eq!(window(1_000), LONGEST_WINDOW);
        // A burst: a thousand rollouts each wrote their first status, then report progress.
        let coalescer = Coalescer::default();
        let start = Instant::now();
        let keys: Vec<Key> = (0..1_000).map(|i| key(&format!("b-{i}"))).collect();
        keys.iter()
            .for_each(|k| coalescer.wrote(k, start, (None, None), false));
        let later = start + Duration::from_secs(1);
        let waits: Vec<_> = keys
            .iter()
            .map(|k| coalescer.wait_before(k, later))
            .collect();
        assert_eq!(
            waits[0],
            Some(WINDOW - Duration::from_secs(1)),
            "alone so far"
        );
        assert_eq!(
            waits[999],
            Some(LONGEST_WINDOW - Duration::from_secs(1)),
            "one of a thousand"
        );
        // A minute on, the first one's wait has grown with the others: it is not written yet.
        let minute = start + Duration::from_secs(60);
        assert!(coalescer.wait_before(&keys[0], minute).is_some());
    }

    #[test]
    fn rollouts_in_flight_lengthen_the_window_though_few_hold_an_update() {
        let coalescer = Coalescer::default();
        let start = Instant::now();
        let keys: Vec<Key> = (0..1_000).map(|i| key(&format!("b-{i}"))).collect();
        keys.iter()
            .for_each(|k| coalescer.wrote(k, start, (None, None), true));
        // A minute on, the first rollout to report progress is the only one holding an update.
        let minute = start + Duration::from_secs(60);
        assert_eq!(
            coalescer.wait_before(&keys[0], minute),
            Some(LONGEST_WINDOW - Duration::from_secs(60))
        );
        // Once the others are written Ready, it is alone again: its progress shows.
        keys[1..]
            .iter()
            .for_each(|k| coalescer.wrote(k, minute, (None, None), false));
        assert_eq!(coalescer.wait_before(&keys[0], minute), None);
        coalescer.forget(&keys[0]);
        assert!(coalescer.rolling_out.lock().unwrap().is_empty());
    }

    #[test]
    fn a_cache_that_has_not_seen_the_last_write_is_behind_it() {
        let coalescer = Coalescer::default();
        let shop = key("shop");
        assert!(
            !coalescer.behind_own_write(&shop, Some("7")),
            "never written"
        );
        coalescer.wrote(&shop, Instant::now(), (Some("7"), Some("8")), true);
        assert!(coalescer.behind_own_write(&shop, Some("7")));
        assert!(!coalescer.behind_own_write(&shop, Some("9")), "caught up");
        coalescer.wrote(&shop, Instant::now(), (Some("9"), Some("9")), true);
        assert!(
            !coalescer.behind_own_write(&shop, Some("9")),
            "a write that changed nothing leaves nothing to wait for"
        );
    }

    #[test]
    fn held_updates_are_counted_until_written_settled_or_forgotten() {
        let coalescer = Coalescer::default();
        let start = Instant::now();
        let (a, b) = (key("a"), key("b"));
        let soon = start + Duration::from_millis(10);
        coalescer.wrote(&a, start, (None, None), false);
        coalescer.wrote(&b, start, (None, None), false);
        coalescer.wait_before(&a, soon);
        coalescer.wait_before(&a, soon);
        coalescer.wait_before(&b, soon);
        assert_eq!(coalescer.held_gauge.get(), 2, "a held twice counts once");
        coalescer.wrote(&a, soon, (None, None), false);
        assert_eq!(coalescer.held_gauge.get(), 1);
        coalescer.settled(&b);
        coalescer.settled(&b);
        assert_eq!(coalescer.held_gauge.get(), 0);
        coalescer.wait_before(&b, soon);
        coalescer.forget(&b);
        assert_eq!(coalescer.held_gauge.get(), 0);
    }
}
