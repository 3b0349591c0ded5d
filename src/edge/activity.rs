//! Records a request as a branch's activity (the annotations `oksa.dev/last-activity` and
//! `-source`): the operator sees it and wakes the branch, or keeps it awake.
//!
//! One write per branch per `every`, however many requests arrive at once: the slot is taken
//! before the write is sent, so concurrent requests never each patch (the cache would show the
//! first write only later). The memory is bounded: past `MAX_REMEMBERED` branches, those whose
//! slot has passed are forgotten.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Client};
use tracing::{info, warn};

use crate::api::BranchRelease;

const MAX_REMEMBERED: usize = 50_000;
/// Requests an awake branch serves are written at most this often (see `traffic_interval`).
pub const MOST_EVERY: Duration = Duration::from_secs(60);

/// How often the requests an awake branch serves are written as its activity: about once a
/// minute, more often when it would sleep sooner (a third of its `sleepAfter`, as its status
/// tells it), so that a branch in use never falls asleep between two writes.
pub fn traffic_interval(release: &BranchRelease) -> Duration {
    release
        .status
        .as_ref()
        .and_then(|s| s.lifecycle.as_ref())
        .and_then(|l| {
            let idle = l.sleeps_at.as_ref()?.0.duration_since(l.last_activity.0);
            Duration::try_from(idle).ok()
        })
        .map_or(MOST_EVERY, |idle| {
            (idle / 3).clamp(Duration::from_secs(1), MOST_EVERY)
        })
}

pub struct Activity {
    client: Client,
    every: Duration,
    written: Mutex<HashMap<ObjectRef<BranchRelease>, Instant>>,
}

impl Activity {
    pub fn new(client: Client, every: Duration) -> Activity {
        Activity {
            client,
            every,
            written: Mutex::default(),
        }
    }

    /// Takes the branch's slot if none was taken within `every` of `now`: true means this
    /// caller writes.
    pub fn take_slot(&self, key: &ObjectRef<BranchRelease>, now: Instant, every: Duration) -> bool {
        let mut written = self.written.lock().expect("activity");
        if written
            .get(key)
            .is_some_and(|at| now.duration_since(*at) < every)
        {
            return false;
        }
        if written.len() >= MAX_REMEMBERED {
            written.retain(|_, at| now.duration_since(*at) < MOST_EVERY);
        }
        written.insert(key.clone(), now);
        true
    }

    /// Records a request on `key`'s branch, unless one was recorded within `every`.
    pub async fn record(&self, key: &ObjectRef<BranchRelease>, source: &str) {
        if self.take_slot(key, Instant::now(), self.every) {
            self.write(key, source).await;
        }
    }

    /// Writes the activity of a slot the caller took (see `take_slot`); a failed write frees
    /// the slot for the next request.
    pub async fn write(&self, key: &ObjectRef<BranchRelease>, source: &str) {
        let api = Api::<BranchRelease>::namespaced(
            self.client.clone(),
            key.namespace.as_deref().unwrap_or_default(),
        );
        let patch = crate::api::activity::patch(Timestamp::now(), source);
        match api
            .patch(&key.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {
                info!(branchrelease = %key.name, namespace = ?key.namespace, "recorded a request")
            }
            Err(error) => {
                warn!(%error, branchrelease = %key.name, "could not record a request");
                // Let the next request try again.
                self.written.lock().expect("activity").remove(key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn one_slot_per_branch_per_period_however_many_ask() {
        let client =
            Client::try_from(kube::Config::new("http://127.0.0.1:9".parse().unwrap())).unwrap();
        let activity = Activity::new(client, Duration::from_secs(60));
        let main = ObjectRef::<BranchRelease>::new("main").within("shop");
        let other = ObjectRef::<BranchRelease>::new("other").within("shop");
        let start = Instant::now();
        let every = Duration::from_secs(60);
        let taken = (0..100)
            .filter(|_| activity.take_slot(&main, start, every))
            .count();
        assert_eq!(taken, 1);
        assert!(activity.take_slot(&other, start, every));
        assert!(!activity.take_slot(&main, start + Duration::from_secs(59), every));
        assert!(activity.take_slot(&main, start + Duration::from_secs(60), every));
    }

    #[test]
    fn traffic_is_written_often_enough_to_keep_a_branch_awake() {
        let release = |sleep_after_seconds: i64| -> BranchRelease {
            let last = Timestamp::from_second(1_800_000_000).unwrap();
            let sleeps = Timestamp::from_second(1_800_000_000 + sleep_after_seconds).unwrap();
            serde_json::from_value(json!({
                "apiVersion": "oksa.dev/v1alpha1", "kind": "BranchRelease",
                "metadata": {"name": "main", "namespace": "shop"},
                "spec": {"project": "shop", "branch": "main", "components": []},
                "status": {"lifecycle": {"state": "Awake", "since": last.to_string(),
                    "lastActivity": last.to_string(), "lastActivitySource": "Request",
                    "sleepsAt": sleeps.to_string()}},
            }))
            .unwrap()
        };
        assert_eq!(traffic_interval(&release(7200)), MOST_EVERY);
        assert_eq!(traffic_interval(&release(15)), Duration::from_secs(5));
        assert_eq!(traffic_interval(&release(1)), Duration::from_secs(1));
    }
}
