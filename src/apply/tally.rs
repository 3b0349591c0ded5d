//! Counting the writes of one reconcile.

use std::sync::atomic::{AtomicU32, Ordering};

use crate::metrics::Metrics;

/// Counts the writes of one reconcile (and reports each to the metrics), so the reconcile knows
/// whether it changed anything.
pub struct Tally<'a> {
    metrics: &'a Metrics,
    writes: AtomicU32,
}

impl<'a> Tally<'a> {
    pub fn new(metrics: &'a Metrics) -> Self {
        Tally {
            metrics,
            writes: AtomicU32::new(0),
        }
    }

    pub fn wrote(&self, kind: &str, name: &str, verb: &'static str) {
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.metrics.wrote(kind, name, verb);
    }

    pub fn skipped(&self, kind: &str, name: &str) {
        self.metrics.wrote(kind, name, "skipped");
    }

    pub fn writes(&self) -> u32 {
        self.writes.load(Ordering::Relaxed)
    }
}
