//! When a branch sleeps, wakes and expires: the settings (a Project's defaults, a BranchRelease's
//! overrides) and what status reports. The rules themselves live in
//! `model::branch_release::lifecycle`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// Sleep and expiry settings. Durations are a number and a unit: `90s`, `30m`, `8h`, `7d`. On a Project (`spec.defaults.lifecycle`) they are the defaults of
/// its branches; on a BranchRelease each field set overrides the Project's.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Lifecycle {
    /// Put the branch to sleep after this long without activity (a deploy, a request reaching
    /// the waker, a keep-alive), e.g. `2h`. Its workloads go to zero; volumes, Services and the
    /// URL stay, and the first request wakes it. Unset: it never sleeps for being idle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]{1,6}[smhd]$"))]
    pub sleep_after: Option<String>,

    /// Never put the branch to sleep for being idle. Default: true for the Project's
    /// production branch, false for the others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub never_sleep: Option<bool>,

    /// The branch expires after this long without activity, e.g. `14d`. Unset: never for that.
    /// The production branch takes no expiry from its Project's defaults: only its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]{1,6}[smhd]$"))]
    pub expire_after: Option<String>,

    /// The branch also expires once this old, active or not, e.g. `90d`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]{1,6}[smhd]$"))]
    pub max_age: Option<String>,

    /// What expiry does to a BranchRelease no GitOps tool manages: `Delete` it (default; its
    /// volumes follow their `retain` setting) or put it to `Sleep` as `Expired`. One that Argo CD
    /// or Flux manages is never deleted (the tool would create it again): it always sleeps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_expiry: Option<ExpiryAction>,

    /// No expiry before this time: a pin, e.g. for a demo next week. RFC 3339 with a `T` and
    /// an offset (`2026-12-24T00:00:00Z`). On a BranchRelease it counts at most the platform's
    /// longest pin (`policy.branchLifecycle.longestPin`) past the last activity.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_time"
    )]
    #[schemars(regex(
        pattern = r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$"
    ))]
    pub pinned_until: Option<Time>,

    /// Hours the branch is kept awake (office hours, say). Outside them it sleeps, reason
    /// `Schedule`, until a request or another activity wakes it; then `sleepAfter` applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub awake_schedule: Option<AwakeSchedule>,

    /// How long a wake may take before it is given up (default `5m`): the branch goes back to
    /// sleep and its status names the component that did not start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]{1,6}[smhd]$"))]
    pub wake_timeout: Option<String>,
}

/// A time as stored. The CRD's pattern admits only what this parses, but a value stored under an
/// older CRD must not make the whole object unreadable (it would drop out of Oksa's view, and its
/// deletion hang on Oksa's finalizer): one that does not parse counts as unset.
fn lenient_time<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Time>, D::Error> {
    let text: Option<String> = Option::deserialize(deserializer)?;
    Ok(text.and_then(|t| t.parse().ok().map(Time)))
}

/// Days and hours of the day a branch is kept awake, in a time zone.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.from < self.to")
    .message("from must come before to (a window within one day)"))]
pub struct AwakeSchedule {
    /// Days of the week (default Monday to Friday).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 7))]
    pub days: Vec<Weekday>,
    /// Start of the awake hours, `HH:MM`.
    #[schemars(regex(pattern = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"))]
    pub from: String,
    /// End of the awake hours, `HH:MM` (up to `24:00`).
    #[schemars(regex(pattern = r"^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$"))]
    pub to: String,
    /// IANA time zone, e.g. `Europe/Helsinki` (default `UTC`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub time_zone: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum Weekday {
    Monday,
    Tuesday,
    Wednesday,
    Thursday,
    Friday,
    Saturday,
    Sunday,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum ExpiryAction {
    Delete,
    Sleep,
}

/// Whether the branch runs.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum LifecycleState {
    /// Its workloads run and its routes lead to them.
    Awake,
    /// Its workloads are at zero and its routes lead to the waker.
    Sleeping,
    /// Its workloads start again; its routes lead to the waker until every component is Ready.
    Waking,
    /// Unused for too long: asleep until it is deployed again (or woken by a request).
    Expired,
}

/// Why a branch sleeps.
pub mod sleep_reason {
    /// No activity for `sleepAfter`.
    pub const IDLE: &str = "Idle";
    /// Scaled to zero (`kubectl scale branchrelease NAME --replicas=0`).
    pub const MANUAL: &str = "Manual";
    /// The last wake did not finish within `wakeTimeout`.
    pub const WAKE_FAILED: &str = "WakeFailed";
    /// Unused for `expireAfter`, or older than `maxAge`.
    pub const EXPIRED: &str = "Expired";
    /// Outside its `awakeSchedule`.
    pub const SCHEDULE: &str = "Schedule";
}

/// What started the last activity.
pub mod activity_source {
    pub const CREATED: &str = "Created";
    pub const DEPLOY: &str = "Deploy";
    pub const REQUEST: &str = "Request";
    pub const KEEP_ALIVE: &str = "KeepAlive";
}

/// The lifecycle part of a BranchRelease's status.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LifecycleStatus {
    pub state: LifecycleState,
    /// Why it sleeps (Idle, Manual, WakeFailed, Expired); None while awake.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When the current state began.
    pub since: Time,
    /// The last activity that keeps the branch awake, and what it was (Created, Deploy,
    /// Request, KeepAlive).
    pub last_activity: Time,
    pub last_activity_source: String,
    /// When it will sleep for being idle, unless there is activity before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sleeps_at: Option<Time>,
    /// When it will expire, unless there is activity before. Never earlier than its warning
    /// (`expiryWarnedAt`) plus the warning window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Time>,
    /// When the `ExpiringSoon` warning (condition and Warning event) was first given for the
    /// coming expiry. A branch is deleted only once the warning has stood for its whole window
    /// (a fifth of `expireAfter`, else of `maxAge`, at most a day).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry_warned_at: Option<Time>,
    /// When it fell asleep and woke over the last week (the time awake and asleep, and what
    /// sleeping saved, are computed from it: `oksa status`, the metrics).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1000))]
    pub history: Vec<SleepTransition>,
}

/// The branch fell asleep (or woke) at this moment.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SleepTransition {
    pub asleep: bool,
    pub at: Time,
}

/// CPU and memory, as Kubernetes quantities.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Requested {
    pub cpu: String,
    pub memory: String,
}
