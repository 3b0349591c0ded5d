//! At most so many expiry deletions per project in any hour (`policy.expiry.maxDeletionsPerHour`):
//! a mistake (a wrong default, a clock gone wrong) costs a few branches, not a project. Past the
//! budget the branches wait, Expired and asleep, and the Project says so (`ExpiryLimited`).
//!
//! Held in memory: a restarted operator starts with a full budget, and still deletes nothing
//! that was not warned for a whole window first (see `lifecycle::decide`).

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Mutex;

use k8s_openapi::jiff::{SignedDuration, Timestamp};

const HOUR: SignedDuration = SignedDuration::from_secs(3600);

#[derive(Default)]
struct Ledger {
    /// When each deletion of the last hour was made, oldest first.
    spent: VecDeque<Timestamp>,
    /// The branches (namespace/name) waiting for the budget.
    waiting: BTreeSet<String>,
}

pub struct ExpiryBudget {
    per_hour: u32,
    projects: Mutex<HashMap<String, Ledger>>,
}

impl ExpiryBudget {
    pub fn new(per_hour: u32) -> Self {
        ExpiryBudget {
            per_hour,
            projects: Mutex::default(),
        }
    }

    /// Takes one deletion for `branch` of `project` at `now`, or says when the next one is free.
    pub fn take(&self, project: &str, branch: &str, now: Timestamp) -> Result<(), Timestamp> {
        let mut projects = self.projects.lock().unwrap();
        let ledger = projects.entry(project.to_string()).or_default();
        while ledger
            .spent
            .front()
            .is_some_and(|at| at.saturating_add(HOUR).unwrap_or(Timestamp::MAX) <= now)
        {
            ledger.spent.pop_front();
        }
        if ledger.spent.len() < self.per_hour as usize {
            ledger.spent.push_back(now);
            ledger.waiting.remove(branch);
            return Ok(());
        }
        ledger.waiting.insert(branch.to_string());
        // With a budget of 0 nothing is ever free: look again in an hour.
        let oldest = ledger.spent.front().copied().unwrap_or(now);
        Err(oldest.saturating_add(HOUR).unwrap_or(Timestamp::MAX))
    }

    /// `branch` no longer waits (it was used, or is gone).
    pub fn forget(&self, project: &str, branch: &str) {
        if let Some(ledger) = self.projects.lock().unwrap().get_mut(project) {
            ledger.waiting.remove(branch);
        }
    }

    /// The branches of `project` waiting for the budget.
    pub fn waiting(&self, project: &str) -> Vec<String> {
        self.projects
            .lock()
            .unwrap()
            .get(project)
            .map(|l| l.waiting.iter().cloned().collect())
            .unwrap_or_default()
    }

    pub fn per_hour(&self) -> u32 {
        self.per_hour
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + seconds).unwrap()
    }

    #[test]
    fn past_the_budget_branches_wait_for_the_hour_and_projects_do_not_share_it() {
        let budget = ExpiryBudget::new(2);
        assert_eq!(budget.take("shop", "shop/a", at(0)), Ok(()));
        assert_eq!(budget.take("shop", "shop/b", at(10)), Ok(()));
        assert_eq!(budget.take("shop", "shop/c", at(20)), Err(at(3600)));
        assert_eq!(budget.waiting("shop"), ["shop/c"]);
        assert_eq!(budget.take("blog", "blog/a", at(20)), Ok(()), "per project");
        assert_eq!(budget.take("shop", "shop/c", at(3600)), Ok(()));
        assert!(budget.waiting("shop").is_empty());
        budget.forget("shop", "shop/c");
    }
}
