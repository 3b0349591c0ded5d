//! Activity as a BranchRelease records it: two annotations a keep-alive (`oksa keepalive`) and the
//! edge write, so activity is recorded without touching the spec (no new generation, no GitOps
//! diff). One patch for both writers.

use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

/// When the branch was last used, RFC 3339, whole seconds.
pub const LAST_ACTIVITY: &str = "oksa.dev/last-activity";
/// Who saw that use (see `activity_source`).
pub const LAST_ACTIVITY_SOURCE: &str = "oksa.dev/last-activity-source";

/// `at` without its fraction of a second. Status times are stored to the second (`metav1.Time`),
/// so anything computed finer would differ from what was read back and be written again on every
/// reconcile, each write triggering the next.
pub fn whole_seconds(at: Timestamp) -> Timestamp {
    Timestamp::from_second(at.as_second()).unwrap_or(at)
}

/// The merge patch that records activity at `at` (to the second) seen by `source`.
pub fn patch(at: Timestamp, source: &str) -> Value {
    json!({"metadata": {"annotations": {
        LAST_ACTIVITY: whole_seconds(at).to_string(),
        LAST_ACTIVITY_SOURCE: source,
    }}})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activity_is_recorded_to_the_second_in_annotations_only() {
        let at: Timestamp = "2026-12-06T10:00:00.750Z".parse().unwrap();
        let patch = patch(at, "KeepAlive");
        assert_eq!(
            patch,
            json!({"metadata": {"annotations": {
                "oksa.dev/last-activity": "2026-12-06T10:00:00Z",
                "oksa.dev/last-activity-source": "KeepAlive",
            }}})
        );
    }
}
