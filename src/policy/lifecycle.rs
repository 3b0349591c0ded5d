//! The platform's rules for what Oksa does on its own to branches (expiry), and for how far a
//! team may stretch a branch's lifecycle past its Project's defaults. Pure.

use serde::{Deserialize, Serialize};

/// What expiry may do without a person.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct ExpiryPolicy {
    /// `Delete`: an expired branch is deleted (after its warning has stood for its window, and
    /// unless a declarative tool manages it). `Report`: nothing is deleted; each branch that
    /// would be says so (condition `ExpiringSoon` with reason `WouldBeDeleted`, a `WouldExpire`
    /// event, the `oksa_expiry_would_delete` gauge), so a platform can try a policy first.
    pub mode: ExpiryMode,
    /// At most this many expiry deletions per project in any hour; past it the Project's
    /// `ExpiryLimited` condition says so and the rest wait.
    pub max_deletions_per_hour: u32,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpiryMode {
    Delete,
    Report,
}

impl Default for ExpiryPolicy {
    fn default() -> Self {
        ExpiryPolicy {
            mode: ExpiryMode::Delete,
            max_deletions_per_hour: 5,
        }
    }
}

/// The longest a BranchRelease's own lifecycle settings may be (its Project's defaults are the
/// platform's and are not bounded). A branch that asks for more is held to the bound, with a
/// `LifecycleBounded` condition naming it: the branch is still deployed.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct LifecycleBounds {
    /// `pinnedUntil` counts at most this long after the branch's last activity.
    pub longest_pin: Option<String>,
    pub longest_sleep_after: Option<String>,
    pub longest_expire_after: Option<String>,
    pub longest_max_age: Option<String>,
    /// Whether a BranchRelease may set `neverSleep: true` itself.
    pub never_sleep: bool,
}

impl Default for LifecycleBounds {
    fn default() -> Self {
        LifecycleBounds {
            longest_pin: Some("30d".into()),
            longest_sleep_after: Some("7d".into()),
            longest_expire_after: Some("90d".into()),
            longest_max_age: Some("365d".into()),
            never_sleep: true,
        }
    }
}

/// Marks of declarative tools, besides the built-in ones (`lifecycle::BUILT_IN_MARKS`), that
/// make a BranchRelease one expiry never deletes. A label or annotation is `key` (any value) or
/// `key=value`; a manager is a field manager's name.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct GitopsMarks {
    pub labels: Vec<String>,
    pub annotations: Vec<String>,
    pub managers: Vec<String>,
}

impl LifecycleBounds {
    /// The bounds whose duration does not parse (`90s`, `30m`, `8h`, `7d`).
    pub fn invalid(&self) -> Vec<String> {
        [
            ("longestPin", &self.longest_pin),
            ("longestSleepAfter", &self.longest_sleep_after),
            ("longestExpireAfter", &self.longest_expire_after),
            ("longestMaxAge", &self.longest_max_age),
        ]
        .into_iter()
        .filter_map(|(name, value)| {
            let value = value.as_deref()?;
            crate::model::branch_release::lifecycle::parse_duration(value)
                .is_none()
                .then(|| format!("branchLifecycle.{name}: {value:?} is not a duration like 7d"))
        })
        .collect()
    }
}
