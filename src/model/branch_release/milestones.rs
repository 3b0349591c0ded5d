//! The events a change of a BranchRelease's status deserves: the milestones a user follows in
//! `kubectl describe` and `kubectl get events` (deploying, ready, degraded, asleep, expiring).

use crate::api::conditions::{self, DEGRADED, READY};
use crate::api::{BranchReleaseStatus, Phase};
use crate::model::branch_release::lifecycle;

/// The events a status change deserves: (message, is a warning, reason).
pub fn milestones(
    old: &BranchReleaseStatus,
    new: &BranchReleaseStatus,
) -> Vec<(String, bool, String)> {
    let mut found = Vec::new();
    let transition = |type_: &str| {
        let before = conditions::find(&old.conditions, type_);
        let after = conditions::find(&new.conditions, type_)?;
        let changed =
            before.map(|b| (&b.status, &b.reason)) != Some((&after.status, &after.reason));
        changed.then_some(after)
    };
    if new.observed_generation != old.observed_generation
        && new.phase != Some(Phase::Pending)
        && new.phase != Some(Phase::Invalid)
    {
        found.push((
            format!(
                "deploying generation {}",
                new.observed_generation.unwrap_or(0)
            ),
            false,
            "Deploying".into(),
        ));
    }
    if let Some(ready) = transition(READY) {
        if ready.status == "True" {
            let took = new
                .seconds_to_ready
                .map(|s| format!(" in {s:.1}s"))
                .unwrap_or_default();
            found.push((format!("{}{took}", ready.message), false, "Ready".into()));
        } else if matches!(new.phase, Some(Phase::Pending) | Some(Phase::Invalid)) {
            found.push((ready.message.clone(), true, ready.reason.clone()));
        }
    }
    if let Some(degraded) = transition(DEGRADED)
        && degraded.status == "True"
    {
        found.push((degraded.message.clone(), true, degraded.reason.clone()));
    }
    if let Some(asleep) = transition(lifecycle::ASLEEP) {
        let failed = asleep.reason == crate::api::sleep_reason::WAKE_FAILED;
        let reason = match (asleep.status.as_str(), asleep.reason.as_str()) {
            ("True", _) => "Sleeping".to_string(),
            (_, "Waking") => "Waking".to_string(),
            _ => "Awake".to_string(),
        };
        // The first status of a new branch says Awake: no event for that.
        if old.lifecycle.is_some() {
            let message = if asleep.message.is_empty() {
                "awake".to_string()
            } else {
                format!("{}: {}", asleep.reason, asleep.message)
            };
            found.push((message, failed, reason));
        }
    }
    if let Some(expiring) = transition(lifecycle::EXPIRING)
        && expiring.status == "True"
    {
        let reason = if expiring.reason == lifecycle::WOULD_BE_DELETED {
            "WouldExpire"
        } else {
            "ExpiringSoon"
        };
        found.push((expiring.message.clone(), true, reason.into()));
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn status(
        phase: Phase,
        generation: i64,
        ready: Option<(bool, &str, &str)>,
    ) -> BranchReleaseStatus {
        BranchReleaseStatus {
            phase: Some(phase),
            observed_generation: Some(generation),
            conditions: ready
                .map(|(status, reason, message)| {
                    conditions::merge(
                        &[],
                        &[conditions::Desired::new(READY, status, reason, message)],
                        Some(generation),
                        Timestamp::UNIX_EPOCH,
                    )
                })
                .unwrap_or_default(),
            ..Default::default()
        }
    }

    fn reasons(found: Vec<(String, bool, String)>) -> Vec<(String, bool)> {
        found
            .into_iter()
            .map(|(_, warning, reason)| (reason, warning))
            .collect()
    }

    #[test]
    fn a_new_generation_deploys_and_becoming_ready_is_told_once() {
        let before = BranchReleaseStatus::default();
        let progressing = status(
            Phase::Progressing,
            1,
            Some((false, "Progressing", "starting")),
        );
        assert_eq!(
            reasons(milestones(&before, &progressing)),
            [("Deploying".to_string(), false)]
        );
        let mut ready = status(
            Phase::Ready,
            1,
            Some((true, "Ready", "all components ready")),
        );
        ready.seconds_to_ready = Some(4.3);
        let found = milestones(&progressing, &ready);
        assert_eq!(
            found,
            [(
                "all components ready in 4.3s".to_string(),
                false,
                "Ready".to_string()
            )]
        );
        // Nothing changed that a user follows: no event.
        assert!(milestones(&ready, &ready).is_empty());
    }

    #[test]
    fn a_blocked_branch_is_warned_about_with_its_reason_and_not_deployed() {
        let before = BranchReleaseStatus::default();
        let blocked = status(
            Phase::Invalid,
            1,
            Some((false, "HostTaken", "host taken by api")),
        );
        assert_eq!(
            milestones(&before, &blocked),
            [(
                "host taken by api".to_string(),
                true,
                "HostTaken".to_string()
            )]
        );
    }
}
