//! Whether the operator can act yet, and if not, what it is waiting for: `/readyz` says which
//! watch caches have not had their first full list (a missing permission shows up here as the
//! cache that never fills, named).

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Debug)]
pub struct Readiness {
    /// Caches still waiting for their first list; None before the controllers started.
    waiting: Mutex<Option<BTreeSet<&'static str>>>,
    /// A standby of leader election: ready to take over, reconciling nothing until then.
    standby: AtomicBool,
}

impl Default for Readiness {
    fn default() -> Self {
        Readiness {
            waiting: Mutex::new(None),
            standby: AtomicBool::new(false),
        }
    }
}

impl Readiness {
    /// The controllers started and wait for these caches.
    pub fn waiting_for(&self, caches: impl IntoIterator<Item = &'static str>) {
        *self.waiting.lock().expect("readiness") = Some(caches.into_iter().collect());
    }

    /// One cache has its first full list.
    pub fn synced(&self, cache: &'static str) {
        if let Some(waiting) = self.waiting.lock().expect("readiness").as_mut() {
            waiting.remove(cache);
        }
    }

    /// Marks this process a standby (or no longer one). A standby counts as ready: it has
    /// nothing to sync until it leads, and a rolling update must not wait for it to lead.
    pub fn standby(&self, standby: bool) {
        self.standby.store(standby, Ordering::SeqCst);
    }

    pub fn is_ready(&self) -> bool {
        if self.standby.load(Ordering::SeqCst) {
            return true;
        }
        self.waiting
            .lock()
            .expect("readiness")
            .as_ref()
            .is_some_and(BTreeSet::is_empty)
    }

    /// One line for `/readyz`.
    pub fn describe(&self) -> String {
        if self.standby.load(Ordering::SeqCst) {
            return "ready: standby, another operator holds the lease".into();
        }
        match self.waiting.lock().expect("readiness").as_ref() {
            None => "starting: the controllers have not started yet".into(),
            Some(waiting) if waiting.is_empty() => "ready".into(),
            Some(waiting) => format!(
                "waiting for the first list of: {} (see the warnings in the log if this lasts)",
                waiting.iter().copied().collect::<Vec<_>>().join(", ")
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_what_it_still_waits_for() {
        let readiness = Readiness::default();
        assert!(!readiness.is_ready());
        readiness.waiting_for(["deployments", "projects"]);
        readiness.synced("projects");
        assert!(!readiness.is_ready());
        assert!(readiness.describe().contains("deployments"));
        readiness.synced("deployments");
        assert!(readiness.is_ready());
        assert_eq!(readiness.describe(), "ready");
    }

    #[test]
    fn a_standby_is_ready_and_says_so() {
        let readiness = Readiness::default();
        readiness.standby(true);
        assert!(readiness.is_ready());
        assert!(readiness.describe().contains("standby"));
        readiness.standby(false);
        assert!(!readiness.is_ready(), "leading: its caches must fill first");
    }
}
