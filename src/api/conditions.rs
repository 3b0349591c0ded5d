//! Standard `metav1.Condition` helpers shared by both resources' status.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

pub const READY: &str = "Ready";
pub const PROGRESSING: &str = "Progressing";
pub const DEGRADED: &str = "Degraded";
/// kstatus (Helm 4's `--wait`, Flux health checks, kpt): work is in flight; InProgress.
pub const RECONCILING: &str = "Reconciling";
/// kstatus: it cannot proceed without a change (of the spec, or of what is in its way); Failed.
pub const STALLED: &str = "Stalled";

/// Whether the branch's reference data was cloned (only on branches that have some).
pub const REFERENCE_DATA: &str = "ReferenceData";
/// The reason of `ReferenceData` while a volume waits for the claim it is to clone.
pub const WAITING_FOR_SOURCE: &str = "WaitingForSource";
/// The reason of `Ready`, `Degraded` and `Stalled` when a deploy job failed.
pub const JOB_FAILED: &str = "JobFailed";
/// The condition saying whether the branch sleeps, and why.
pub const ASLEEP: &str = "Asleep";
/// True some time before the branch expires (with a Warning event), so someone can keep it. A
/// branch expires only once this has stood for its warning window.
pub const EXPIRING: &str = "ExpiringSoon";
/// The reason of `ExpiringSoon` in the report-only expiry mode, once the branch would go.
pub const WOULD_BE_DELETED: &str = "WouldBeDeleted";
/// The reason of `ExpiringSoon` when the forge says the branch is gone (deleted, or its pull
/// request merged or closed).
pub const GONE_FROM_FORGE: &str = "GoneFromForge";
/// The Project's condition saying whether its forge answers and is trusted.
pub const FORGE_CONNECTED: &str = "ForgeConnected";
/// True when some of the branch's own lifecycle settings were held to the platform's bounds.
pub const BOUNDED: &str = "LifecycleBounded";

/// A condition as a reconcile computes it, before timestamps: the part that decides whether the
/// status changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Desired {
    pub type_: &'static str,
    pub status: bool,
    pub reason: String,
    pub message: String,
}

impl Desired {
    pub fn new(
        type_: &'static str,
        status: bool,
        reason: &str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            type_,
            status,
            reason: reason.to_string(),
            message: message.into(),
        }
    }
}

/// Turns desired conditions into `metav1.Condition`s. `lastTransitionTime` only moves when the
/// status flips: otherwise it is carried over from `previous`, so rewriting a reason or message does
/// not pretend the condition just changed.
pub fn merge(
    previous: &[Condition],
    desired: &[Desired],
    generation: Option<i64>,
    now: Timestamp,
) -> Vec<Condition> {
    desired
        .iter()
        .map(|d| {
            let status = if d.status { "True" } else { "False" };
            let last_transition_time = previous
                .iter()
                .find(|p| p.type_ == d.type_ && p.status == status)
                .map(|p| p.last_transition_time.clone())
                .unwrap_or(Time(now));
            Condition {
                type_: d.type_.to_string(),
                status: status.to_string(),
                reason: d.reason.clone(),
                message: d.message.clone(),
                observed_generation: generation,
                last_transition_time,
            }
        })
        .collect()
}

/// Finds a condition by type.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// True when the condition of that type exists with status "True".
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    find(conditions, type_).is_some_and(|c| c.status == "True")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(seconds).unwrap()
    }

    #[test]
    fn transition_time_moves_only_when_status_flips() {
        let first = merge(
            &[],
            &[Desired::new(READY, false, "Waiting", "a")],
            Some(1),
            at(10),
        );
        assert_eq!(first[0].last_transition_time, Time(at(10)));

        let same_status = merge(
            &first,
            &[Desired::new(READY, false, "Other", "b")],
            Some(2),
            at(20),
        );
        assert_eq!(same_status[0].last_transition_time, Time(at(10)));
        assert_eq!(same_status[0].reason, "Other");
        assert_eq!(same_status[0].observed_generation, Some(2));

        let flipped = merge(
            &same_status,
            &[Desired::new(READY, true, "Ready", "c")],
            Some(2),
            at(30),
        );
        assert_eq!(flipped[0].last_transition_time, Time(at(30)));
        assert!(is_true(&flipped, READY));
    }
}
