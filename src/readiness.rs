//! Whether the operator can act, and if not, why: `/readyz` says which watch caches have not had
//! their first full list (a missing permission shows up here as the cache that never fills,
//! named), and whether the API server answers at all (see `api_probe`).

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Debug)]
pub struct Readiness {
    /// Caches still waiting for their first list; None before the controllers started.
    waiting: Mutex<Option<BTreeSet<&'static str>>>,
    /// A standby of leader election: ready to take over, reconciling nothing until then.
    standby: AtomicBool,
    /// Why the API server cannot be used right now (its last probe failed); None while it answers.
    api_unreachable: Mutex<Option<String>>,
}

impl Default for Readiness {
    fn default() -> Self {
        Readiness {
            waiting: Mutex::new(None),
            standby: AtomicBool::new(false),
            api_unreachable: Mutex::new(None),
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

    /// The outcome of the latest probe of the API server: Err says why it could not be used.
    pub fn api_probed(&self, outcome: Result<(), String>) {
        *self.api_unreachable.lock().expect("readiness") = outcome.err();
    }

    pub fn is_ready(&self) -> bool {
        if self.api_unreachable.lock().expect("readiness").is_some() {
            // Neither a leader nor a standby can do anything without the API server.
            return false;
        }
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
        if let Some(why) = self.api_unreachable.lock().expect("readiness").as_ref() {
            return format!("the API server cannot be used: {why}");
        }
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

    #[test]
    fn an_unreachable_api_server_makes_it_unready_until_it_answers_again() {
        let readiness = Readiness::default();
        readiness.waiting_for(["projects"]);
        readiness.synced("projects");
        readiness.api_probed(Err("no answer within 5s".into()));
        assert!(!readiness.is_ready());
        assert_eq!(
            readiness.describe(),
            "the API server cannot be used: no answer within 5s"
        );
        readiness.standby(true);
        assert!(!readiness.is_ready(), "a standby cannot take over either");
        readiness.standby(false);
        readiness.api_probed(Ok(()));
        assert!(readiness.is_ready());
        assert_eq!(readiness.describe(), "ready");
    }
}
