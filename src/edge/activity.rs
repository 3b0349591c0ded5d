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
use serde_json::json;
use tracing::{info, warn};

use crate::api::BranchRelease;
use crate::controller::branch_release::lifecycle::{
    LAST_ACTIVITY, LAST_ACTIVITY_SOURCE, whole_seconds,
};

const MAX_REMEMBERED: usize = 50_000;

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

    /// Takes the branch's slot if it is free at `now`: true means this caller writes.
    pub fn take_slot(&self, key: &ObjectRef<BranchRelease>, now: Instant) -> bool {
        let mut written = self.written.lock().expect("activity");
        if written
            .get(key)
            .is_some_and(|at| now.duration_since(*at) < self.every)
        {
            return false;
        }
        if written.len() >= MAX_REMEMBERED {
            let every = self.every;
            written.retain(|_, at| now.duration_since(*at) < every);
        }
        written.insert(key.clone(), now);
        true
    }

    /// Records a request on `key`'s branch, unless one was recorded within `every`.
    pub async fn record(&self, key: &ObjectRef<BranchRelease>, source: &str) {
        if !self.take_slot(key, Instant::now()) {
            return;
        }
        let now = whole_seconds(Timestamp::now());
        let api = Api::<BranchRelease>::namespaced(
            self.client.clone(),
            key.namespace.as_deref().unwrap_or_default(),
        );
        let patch = json!({"metadata": {"annotations": {
            LAST_ACTIVITY: now.to_string(),
            LAST_ACTIVITY_SOURCE: source,
        }}});
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

    #[tokio::test]
    async fn one_slot_per_branch_per_period_however_many_ask() {
        let client =
            Client::try_from(kube::Config::new("http://127.0.0.1:9".parse().unwrap())).unwrap();
        let activity = Activity::new(client, Duration::from_secs(60));
        let main = ObjectRef::<BranchRelease>::new("main").within("shop");
        let other = ObjectRef::<BranchRelease>::new("other").within("shop");
        let start = Instant::now();
        let taken = (0..100)
            .filter(|_| activity.take_slot(&main, start))
            .count();
        assert_eq!(taken, 1);
        assert!(activity.take_slot(&other, start));
        assert!(!activity.take_slot(&main, start + Duration::from_secs(59)));
        assert!(activity.take_slot(&main, start + Duration::from_secs(60)));
    }
}
