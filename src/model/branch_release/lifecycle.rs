//! Sleep, wake and expiry of a branch. Pure: from its settings, its activity and its previous
//! state to what it should be now. "Asleep" is only another rendering of the same children
//! (workloads at zero, routes to the waker): nothing is saved anywhere, nothing a GitOps tool
//! owns is edited.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::ResourceExt;

use crate::api::conditions::{self, Desired};
use crate::api::{
    BranchRelease, BranchReleaseStatus, ExpiryAction, Lifecycle, LifecycleState, LifecycleStatus,
    Phase, Project, activity_source, sleep_reason,
};
use crate::policy::{GitopsMarks, LifecycleBounds};

pub use crate::api::activity::{LAST_ACTIVITY, LAST_ACTIVITY_SOURCE, whole_seconds};
pub use crate::api::conditions::{ASLEEP, BOUNDED, EXPIRING, GONE_FROM_FORGE, WOULD_BE_DELETED};

const DEFAULT_WAKE_TIMEOUT: Duration = Duration::from_secs(300);
/// How long a branch woken outside its awake hours stays up without activity, when it has no
/// `sleepAfter` of its own.
const DEFAULT_OFF_HOURS_IDLE: Duration = Duration::from_secs(3600);

/// Parses `90s`, `30m`, `8h`, `7d` (the CRD's pattern); None for anything else.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let unit = text.chars().last()?;
    let number: u64 = text[..text.len() - unit.len_utf8()].parse().ok()?;
    let seconds = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => return None,
    };
    Some(Duration::from_secs(number * seconds))
}

/// A branch's lifecycle settings: its own, else its Project's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub sleep_after: Option<Duration>,
    pub never_sleep: bool,
    pub expire_after: Option<Duration>,
    pub max_age: Option<Duration>,
    pub on_expiry: ExpiryAction,
    pub pinned_until: Option<Timestamp>,
    pub wake_timeout: Duration,
    /// Awake hours (already checked by `validate`: one that does not parse is dropped here).
    pub schedule: Option<super::schedule::Schedule>,
    /// What of the branch's own settings was held to the platform's bounds, said for people.
    pub held_to_bounds: Vec<String>,
}

impl Settings {
    /// Whether the branch may fall asleep by itself (idle or outside its awake hours).
    pub fn may_sleep(&self) -> bool {
        !self.never_sleep && (self.sleep_after.is_some() || self.schedule.is_some())
    }

    /// The branch's own settings (held to the platform's `bounds`), else its Project's
    /// defaults. The production branch takes no expiry from the defaults: it expires only when
    /// its own BranchRelease asks for it. `last_activity` is what a pin's bound counts from.
    pub fn of(
        release: &BranchRelease,
        project: &Project,
        bounds: &LifecycleBounds,
        last_activity: Timestamp,
    ) -> Settings {
        let own = release.spec.lifecycle.clone().unwrap_or_default();
        let defaults = project
            .spec
            .defaults
            .as_ref()
            .and_then(|d| d.lifecycle.clone())
            .unwrap_or_default();
        let production = project.spec.production_branch.as_deref() == Some(&release.spec.branch);
        let mut held = Vec::new();
        let mut pick = |field: fn(&Lifecycle) -> Option<&String>,
                        name: &str,
                        longest: &Option<String>,
                        from_defaults: bool| {
            let bound = longest.as_deref().and_then(parse_duration);
            match field(&own).and_then(|t| parse_duration(t)) {
                Some(asked) => match bound.filter(|b| asked > *b) {
                    Some(bound) => {
                        held.push(format!(
                            "{name} {} is held to {} (policy.branchLifecycle)",
                            field(&own).map(String::as_str).unwrap_or_default(),
                            show(bound)
                        ));
                        Some(bound)
                    }
                    None => Some(asked),
                },
                None if from_defaults => field(&defaults).and_then(|t| parse_duration(t)),
                None => None,
            }
        };
        let sleep_after = pick(
            |l| l.sleep_after.as_ref(),
            "sleepAfter",
            &bounds.longest_sleep_after,
            true,
        );
        let expire_after = pick(
            |l| l.expire_after.as_ref(),
            "expireAfter",
            &bounds.longest_expire_after,
            !production,
        );
        let max_age = pick(
            |l| l.max_age.as_ref(),
            "maxAge",
            &bounds.longest_max_age,
            !production,
        );
        let wake_timeout = pick(|l| l.wake_timeout.as_ref(), "wakeTimeout", &None, true)
            .unwrap_or(DEFAULT_WAKE_TIMEOUT);
        let never_sleep = match own.never_sleep {
            Some(true) if !bounds.never_sleep => {
                held.push(
                    "neverSleep is not allowed to branches (policy.branchLifecycle.neverSleep)"
                        .into(),
                );
                defaults.never_sleep.unwrap_or(production)
            }
            Some(own) => own,
            None => defaults.never_sleep.unwrap_or(production),
        };
        let pin_bound = bounds
            .longest_pin
            .as_deref()
            .and_then(parse_duration)
            .map(|longest| after(whole_seconds(last_activity), longest));
        let pinned_until = match (own.pinned_until.as_ref().map(|t| t.0), pin_bound) {
            (Some(pin), Some(bound)) if pin > bound => {
                held.push(format!(
                    "pinnedUntil {pin} is held to {bound} ({} after the last activity, \
                     policy.branchLifecycle.longestPin)",
                    bounds.longest_pin.as_deref().unwrap_or_default()
                ));
                Some(bound)
            }
            (Some(pin), _) => Some(pin),
            (None, _) => defaults.pinned_until.as_ref().map(|t| t.0),
        };
        Settings {
            sleep_after,
            never_sleep,
            expire_after,
            max_age,
            on_expiry: own
                .on_expiry
                .or(defaults.on_expiry)
                .unwrap_or(ExpiryAction::Delete),
            pinned_until,
            wake_timeout,
            schedule: own
                .awake_schedule
                .as_ref()
                .or(defaults.awake_schedule.as_ref())
                .and_then(|s| super::schedule::Schedule::parse(s).ok()),
            held_to_bounds: held,
        }
    }

    /// How long the expiry warning stands before a branch may expire: a fifth of its
    /// `expireAfter` (else of its `maxAge`), at most a day.
    pub fn warning_window(&self) -> Duration {
        self.expire_after
            .or(self.max_age)
            .map_or(Duration::ZERO, |d| d / 5)
            .min(Duration::from_secs(86_400))
    }
}

/// A duration as the CRD writes them (`7d`, `8h`, `30m`, `90s`).
fn show(duration: Duration) -> String {
    let seconds = duration.as_secs();
    match seconds {
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// The latest activity that keeps a branch awake, and its source.
#[derive(Debug, Clone, PartialEq)]
pub struct Activity {
    pub at: Timestamp,
    pub source: String,
}

/// The branch's latest activity: its creation, its last deploy (a new generation, first seen
/// now or when `progressingSince` was set), or what a keep-alive or the waker recorded.
pub fn last_activity(release: &BranchRelease, now: Timestamp) -> Activity {
    let now = whole_seconds(now);
    let previous = release.status.clone().unwrap_or_default();
    let created = release
        .metadata
        .creation_timestamp
        .as_ref()
        .map_or(now, |t| t.0);
    let deployed = if previous.observed_generation != release.metadata.generation {
        Some(now)
    } else {
        previous.progressing_since.map(|t| t.0)
    };
    let recorded = release
        .annotations()
        .get(LAST_ACTIVITY)
        .and_then(|t| t.parse::<Timestamp>().ok())
        // A clock ahead of ours must not keep a branch awake for ever.
        .map(|t| t.min(now));
    let recorded_source = release
        .annotations()
        .get(LAST_ACTIVITY_SOURCE)
        .cloned()
        .unwrap_or_else(|| activity_source::KEEP_ALIVE.to_string());
    [
        Some((created, activity_source::CREATED.to_string())),
        deployed.map(|t| (t, activity_source::DEPLOY.to_string())),
        recorded.map(|t| (t, recorded_source)),
    ]
    .into_iter()
    .flatten()
    .max_by_key(|(at, _)| *at)
    .map(|(at, source)| Activity {
        at: whole_seconds(at),
        source,
    })
    .expect("creation is always there")
}

/// What the branch is now, and how to render it.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub status: LifecycleStatus,
    /// Workloads at zero.
    pub asleep: bool,
    /// Asleep or waking: the edge answers for the branch.
    pub edge_answers: bool,
    /// Expired, its warning stood for its window, and no declarative tool manages it: delete
    /// the BranchRelease (within the project's hourly budget).
    pub delete: bool,
    /// As `delete`, in the report-only expiry mode: said, not done.
    pub would_delete: bool,
    /// When the decision may change with no event to say so (a deadline), if ever.
    pub next_change: Option<Timestamp>,
    /// Why it expires, when the forge says its branch is gone (and that comes first).
    pub gone_from_forge: Option<String>,
}

/// The forge says the branch is gone (see `model::forge::gone`).
#[derive(Debug, Clone, PartialEq)]
pub struct Gone {
    pub why: String,
    /// Since when Oksa knows.
    pub since: Timestamp,
    /// How long the warning stands (the Project's `forge.cleanup.after`).
    pub warning: Duration,
}

/// The inputs of a decision besides settings and activity.
pub struct Facts<'a> {
    /// Scaled to zero through the scale subresource.
    pub scaled_to_zero: bool,
    /// A declarative tool manages the BranchRelease (see `managed_by_gitops`).
    pub gitops_managed: bool,
    /// The platform's expiry mode only reports (`policy.expiry.mode: Report`).
    pub report_only: bool,
    pub created: Timestamp,
    pub previous: Option<&'a LifecycleStatus>,
    pub now: Timestamp,
    /// Set while the forge says the branch is gone.
    pub gone: Option<&'a Gone>,
}

fn after(at: Timestamp, duration: Duration) -> Timestamp {
    at.checked_add(SignedDuration::try_from(duration).unwrap_or(SignedDuration::MAX))
        .unwrap_or(Timestamp::MAX)
}

pub fn decide(settings: &Settings, activity: &Activity, facts: &Facts) -> Decision {
    let now = whole_seconds(facts.now);
    let last = whole_seconds(activity.at);
    // Awake hours: inside them the branch stays awake; outside, it sleeps unless something
    // happened since they closed, and then idles out after `sleepAfter` (an hour by default).
    let schedule = settings.schedule.as_ref().filter(|_| !settings.never_sleep);
    let in_hours = schedule.is_some_and(|s| s.contains(now));
    let off_hours_sleep = schedule.filter(|_| !in_hours).and_then(|s| {
        s.last_close(now)
            .filter(|closed| last <= *closed)
            .map(|_| ())
    });
    let sleeps_at = if in_hours {
        schedule.and_then(|s| s.next_change(now))
    } else {
        settings
            .sleep_after
            .or(schedule.map(|_| DEFAULT_OFF_HOURS_IDLE))
            .filter(|_| !settings.never_sleep)
            .map(|d| after(last, d))
    };
    // When it is due: unused for `expireAfter`, or older than `maxAge`; a pin postpones it.
    let due = [
        settings.expire_after.map(|d| after(last, d)),
        settings.max_age.map(|d| after(facts.created, d)),
    ]
    .into_iter()
    .flatten()
    .min()
    .map(|at| settings.pinned_until.map_or(at, |pin| at.max(pin)));
    // Gone in the forge: due once its own warning has stood from when Oksa learned it (a pin
    // still postpones it). Whichever comes first, idle expiry or this, is the one warned of.
    let gone = facts.gone.map(|g| {
        let at = after(whole_seconds(g.since), g.warning);
        (settings.pinned_until.map_or(at, |pin| at.max(pin)), g)
    });
    let (due, window, gone) = match (due, gone) {
        (Some(idle), Some((forge, _))) if idle <= forge => {
            (Some(idle), settings.warning_window(), None)
        }
        (_, Some((forge, g))) => (Some(forge), g.warning, Some(g)),
        (due, None) => (due, settings.warning_window(), None),
    };
    // The warning is a precondition: a branch expires only once its warning has stood for the
    // whole window, however late it was given (a changed default, an operator down for a day).
    let window = SignedDuration::try_from(window).unwrap_or_default();
    let warn_from = due.and_then(|at| at.checked_sub(window).ok());
    let previous = facts.previous;
    let expiry_warned_at = warn_from.filter(|from| *from <= now).map(|from| {
        previous
            .and_then(|p| p.expiry_warned_at.as_ref())
            .map(|t| t.0)
            // A warning given before this due date's window began was for an earlier one.
            .filter(|warned| *warned >= from && *warned <= now)
            .unwrap_or(now)
    });
    let expires_at = due.map(|at| {
        let stood = expiry_warned_at
            .unwrap_or(now)
            .checked_add(window)
            .unwrap_or(Timestamp::MAX);
        at.max(stood)
    });
    let expired = expires_at.is_some_and(|at| at <= now);
    let keep_expired = facts.gitops_managed || settings.on_expiry == ExpiryAction::Sleep;
    // Only reported, never done: the branch stays as it would be without expiry.
    let would_delete = expired && !keep_expired && !facts.scaled_to_zero && facts.report_only;

    let (state, reason) = if facts.scaled_to_zero {
        (LifecycleState::Sleeping, Some(sleep_reason::MANUAL))
    } else if expired && !would_delete {
        (LifecycleState::Expired, Some(sleep_reason::EXPIRED))
    } else if off_hours_sleep.is_some() {
        (LifecycleState::Sleeping, Some(sleep_reason::SCHEDULE))
    } else if !in_hours && sleeps_at.is_some_and(|at| at <= now) {
        (LifecycleState::Sleeping, Some(sleep_reason::IDLE))
    } else {
        match previous {
            // A failed wake is retried only on activity that came after it.
            Some(p)
                if p.state == LifecycleState::Sleeping
                    && p.reason.as_deref() == Some(sleep_reason::WAKE_FAILED)
                    && last <= p.since.0 =>
            {
                (LifecycleState::Sleeping, Some(sleep_reason::WAKE_FAILED))
            }
            Some(p)
                if matches!(
                    p.state,
                    LifecycleState::Sleeping | LifecycleState::Expired | LifecycleState::Waking
                ) =>
            {
                (LifecycleState::Waking, None)
            }
            _ => (LifecycleState::Awake, None),
        }
    };
    let since = match previous {
        Some(p) if p.state == state && p.reason.as_deref() == reason => p.since.0,
        _ => now,
    };
    let wake_deadline =
        (state == LifecycleState::Waking).then(|| after(since, settings.wake_timeout));
    let schedule_change = schedule.and_then(|s| s.next_change(now));
    let next_change = [
        sleeps_at,
        expires_at,
        warn_from,
        wake_deadline,
        schedule_change,
    ]
    .into_iter()
    .flatten()
    .filter(|at| *at > now)
    .min();
    let asleep = matches!(state, LifecycleState::Sleeping | LifecycleState::Expired);
    Decision {
        status: LifecycleStatus {
            state,
            reason: reason.map(str::to_string),
            since: Time(since),
            last_activity: Time(last),
            last_activity_source: activity.source.clone(),
            sleeps_at: sleeps_at.map(Time),
            expires_at: expires_at.map(Time),
            expiry_warned_at: expiry_warned_at.map(Time),
            history: previous.map(|p| p.history.clone()).unwrap_or_default(),
        },
        asleep,
        edge_answers: state != LifecycleState::Awake,
        delete: expired && !keep_expired && !facts.scaled_to_zero && !facts.report_only,
        would_delete,
        next_change,
        gone_from_forge: gone.map(|g| g.why.clone()),
    }
}

/// The marks declarative tools leave on what they apply, as they really write them. A
/// BranchRelease with any of them is never deleted by expiry: the tool would create it again
/// (empty, its retained data left behind), or report drift for ever. Labels and annotations are
/// `key` (any value) or `key=value`.
pub const BUILT_IN_MARKS: BuiltInMarks = BuiltInMarks {
    labels: &[
        // Flux: kustomize-controller and helm-controller.
        "kustomize.toolkit.fluxcd.io/name",
        "helm.toolkit.fluxcd.io/name",
        // Argo CD: its default tracking label (2.x: `app.kubernetes.io/instance`; the label
        // key is configurable, and the older default was `argocd.argoproj.io/instance`).
        "app.kubernetes.io/instance",
        "argocd.argoproj.io/instance",
        // Helm (`helm install`/`upgrade`, Helm 3 and 4).
        "app.kubernetes.io/managed-by=Helm",
        // kapp (Carvel).
        "kapp.k14s.io/app",
        "kapp.k14s.io/association",
        // Fleet (Rancher): its object sets.
        "objectset.rio.cattle.io/hash",
    ],
    annotations: &[
        // Argo CD's annotation (and annotation+label) tracking.
        "argocd.argoproj.io/tracking-id",
        // Helm's ownership annotations.
        "meta.helm.sh/release-name",
        "kapp.k14s.io/identity",
        "objectset.rio.cattle.io/id",
    ],
    managers: &[
        "argocd-controller",
        "argocd-application-controller",
        "kustomize-controller",
        "helm-controller",
        // Helm 4's server-side apply, and Helm 3's client-side apply.
        "helm",
        "kapp",
        "fleet-agent",
    ],
};

pub struct BuiltInMarks {
    pub labels: &'static [&'static str],
    pub annotations: &'static [&'static str],
    pub managers: &'static [&'static str],
}

/// Whether `key` or `key=value` matches an entry of `map`.
fn marked(map: &std::collections::BTreeMap<String, String>, mark: &str) -> bool {
    match mark.split_once('=') {
        Some((key, value)) => map.get(key).is_some_and(|v| v == value),
        None => map.contains_key(mark),
    }
}

/// Whether a declarative tool manages the BranchRelease: one of the built-in marks or the
/// platform's (`policy.gitops`) in its labels, annotations or field managers. The watch keeps
/// the field managers' names (not their fields) for this.
pub fn managed_by_gitops(release: &BranchRelease, extra: &GitopsMarks) -> bool {
    let labels = release.labels();
    let annotations = release.annotations();
    let by_label = BUILT_IN_MARKS
        .labels
        .iter()
        .copied()
        .chain(extra.labels.iter().map(String::as_str))
        .any(|mark| marked(labels, mark));
    let by_annotation = BUILT_IN_MARKS
        .annotations
        .iter()
        .copied()
        .chain(extra.annotations.iter().map(String::as_str))
        .any(|mark| marked(annotations, mark));
    let by_manager = release
        .managed_fields()
        .iter()
        .filter_map(|f| f.manager.as_deref())
        .any(|m| BUILT_IN_MARKS.managers.contains(&m) || extra.managers.iter().any(|e| e == m));
    by_label || by_annotation || by_manager
}

/// Puts the lifecycle into a status computed for the rendering `decision` chose, once the
/// reconcile saw whether every component is ready: a wake ends when they are (Awake, and the
/// next reconcile switches the routes back), or gives up after the wake timeout (asleep again,
/// naming what did not start).
pub fn settle(
    status: &mut BranchReleaseStatus,
    decision: &Decision,
    settings: &Settings,
    previous_conditions: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
    now: Timestamp,
) {
    let now = whole_seconds(now);
    let mut lifecycle = decision.status.clone();
    let all_ready = status.phase == Some(Phase::Ready);
    let mut wake_failure = None;
    if lifecycle.state == LifecycleState::Waking {
        if all_ready {
            lifecycle.state = LifecycleState::Awake;
            lifecycle.since = Time(now);
        } else if after(lifecycle.since.0, settings.wake_timeout) <= now {
            let not_ready = conditions::find(&status.conditions, conditions::READY)
                .map(|c| c.message.clone())
                .unwrap_or_default();
            wake_failure = Some(format!(
                "the wake gave up after {}s: {not_ready}",
                settings.wake_timeout.as_secs()
            ));
            lifecycle.state = LifecycleState::Sleeping;
            lifecycle.reason = Some(sleep_reason::WAKE_FAILED.into());
            lifecycle.since = Time(now);
        }
    }
    let asleep = matches!(
        lifecycle.state,
        LifecycleState::Sleeping | LifecycleState::Expired
    );
    let asleep_condition = match (&lifecycle.reason, lifecycle.state) {
        (Some(reason), _) if asleep => {
            let message = wake_failure
                .clone()
                .unwrap_or_else(|| match reason.as_str() {
                    sleep_reason::MANUAL => {
                        "scaled to zero; scale to 1 to wake it (deploys do not)".into()
                    }
                    sleep_reason::EXPIRED => match &decision.gone_from_forge {
                        Some(why) => format!("expired: {why}"),
                        None => "expired: unused too long; a deploy or a request wakes it".into(),
                    },
                    sleep_reason::SCHEDULE => {
                        "outside its awake hours; the first request wakes it".into()
                    }
                    sleep_reason::WAKE_FAILED => previous_conditions
                        .iter()
                        .find(|c| c.type_ == ASLEEP)
                        .map(|c| c.message.clone())
                        .unwrap_or_default(),
                    _ => format!(
                        "idle since {}; the first request wakes it",
                        lifecycle.last_activity.0
                    ),
                });
            Desired::new(ASLEEP, true, reason, message)
        }
        (_, LifecycleState::Waking) => Desired::new(
            ASLEEP,
            false,
            "Waking",
            "starting again; routes lead to the waker until every component is ready",
        ),
        _ => Desired::new(ASLEEP, false, "Awake", ""),
    };
    let expiring = match (&lifecycle.expires_at, &lifecycle.expiry_warned_at) {
        (Some(at), Some(_)) if decision.would_delete => Desired::new(
            EXPIRING,
            true,
            WOULD_BE_DELETED,
            format!(
                "expired at {}: it would be deleted, but the platform's expiry mode only reports \
                 (policy.expiry.mode: Report)",
                at.0
            ),
        ),
        (Some(at), Some(_)) if lifecycle.state != LifecycleState::Expired => {
            match &decision.gone_from_forge {
                Some(why) => Desired::new(
                    EXPIRING,
                    true,
                    GONE_FROM_FORGE,
                    format!(
                        "{why}: this environment goes at {} unless the branch comes back",
                        at.0
                    ),
                ),
                None => Desired::new(
                    EXPIRING,
                    true,
                    "Unused",
                    format!(
                        "expires at {} unless used before (a deploy, a request, `oksa keepalive`)",
                        at.0
                    ),
                ),
            }
        }
        _ => Desired::new(EXPIRING, false, "InUse", ""),
    };
    let bounded = if settings.held_to_bounds.is_empty() {
        Desired::new(BOUNDED, false, "WithinBounds", "")
    } else {
        Desired::new(
            BOUNDED,
            true,
            "HeldToPolicy",
            settings.held_to_bounds.join("; "),
        )
    };
    status
        .conditions
        .retain(|c| c.type_ != ASLEEP && c.type_ != EXPIRING && c.type_ != BOUNDED);
    status.conditions.extend(conditions::merge(
        previous_conditions,
        &[asleep_condition, expiring, bounded],
        status.observed_generation,
        now,
    ));
    // Only a settled sleep is Sleeping: a sleeping branch that is Degraded or still scaling
    // down says so.
    if asleep && status.phase == Some(Phase::Ready) {
        status.phase = Some(match lifecycle.state {
            LifecycleState::Expired => Phase::Expired,
            _ => Phase::Sleeping,
        });
    }
    status.replicas = Some(if asleep { 0 } else { 1 });
    lifecycle.history = super::cost::record(&lifecycle.history, asleep, now);
    status.lifecycle = Some(lifecycle);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + seconds).unwrap()
    }

    fn settings() -> Settings {
        Settings {
            sleep_after: Some(Duration::from_secs(60)),
            never_sleep: false,
            expire_after: Some(Duration::from_secs(1000)),
            max_age: None,
            on_expiry: ExpiryAction::Delete,
            pinned_until: None,
            wake_timeout: Duration::from_secs(30),
            schedule: None,
            held_to_bounds: Vec::new(),
        }
    }

    fn activity(seconds: i64) -> Activity {
        Activity {
            at: at(seconds),
            source: activity_source::DEPLOY.into(),
        }
    }

    fn facts(now: i64, previous: Option<&LifecycleStatus>) -> Facts<'_> {
        Facts {
            scaled_to_zero: false,
            gitops_managed: false,
            report_only: false,
            created: at(0),
            previous,
            now: at(now),
            gone: None,
        }
    }

    #[test]
    fn a_status_read_back_decides_the_same_so_it_is_not_written_again() {
        // The waker records activity to the nanosecond; status keeps whole seconds.
        let fine = Activity {
            at: at(10)
                .checked_add(SignedDuration::from_nanos(284_606_162))
                .unwrap(),
            source: activity_source::REQUEST.into(),
        };
        let mut clock = facts(20, None);
        clock.now = at(20)
            .checked_add(SignedDuration::from_millis(700))
            .unwrap();
        let first = decide(&settings(), &fine, &clock);
        let stored: LifecycleStatus =
            serde_json::from_value(serde_json::to_value(&first.status).unwrap()).unwrap();
        let mut later = facts(21, Some(&stored));
        later.now = at(21)
            .checked_add(SignedDuration::from_millis(300))
            .unwrap();
        let again = decide(&settings(), &fine, &later);
        assert_eq!(again.status, stored);
    }

    #[test]
    fn awake_hours_hold_it_awake_and_outside_them_it_sleeps_until_used() {
        let mut office = settings();
        office.sleep_after = None;
        office.expire_after = None;
        office.schedule = Some(
            super::super::schedule::Schedule::parse(&crate::api::AwakeSchedule {
                days: Vec::new(),
                from: "08:00".into(),
                to: "18:00".into(),
                time_zone: None,
            })
            .unwrap(),
        );
        let utc = |text: &str| text.parse::<Timestamp>().unwrap();
        let clock = |now: &str| Facts {
            scaled_to_zero: false,
            gitops_managed: false,
            report_only: false,
            created: utc("2026-11-30T00:00:00Z"),
            previous: None,
            now: utc(now),
            gone: None,
        };
        let deployed = Activity {
            at: utc("2026-11-30T07:00:00Z"),
            source: activity_source::DEPLOY.into(),
        };
        // Monday 09:00: awake, sleeping at 18:00.
        let monday = decide(&office, &deployed, &clock("2026-11-30T09:00:00Z"));
        assert!(!monday.asleep);
        assert_eq!(
            monday.status.sleeps_at,
            Some(Time(utc("2026-11-30T18:00:00Z")))
        );
        // Monday 20:00, nothing since 18:00: asleep, reason Schedule; looks again at 08:00.
        let evening = decide(&office, &deployed, &clock("2026-11-30T20:00:00Z"));
        assert_eq!(
            evening.status.reason.as_deref(),
            Some(sleep_reason::SCHEDULE)
        );
        assert_eq!(evening.next_change, Some(utc("2026-12-01T08:00:00Z")));
        // A request at 21:00 wakes it; an hour later it sleeps again, for being idle.
        let request = Activity {
            at: utc("2026-11-30T21:00:00Z"),
            source: activity_source::REQUEST.into(),
        };
        let woken = decide(&office, &request, &clock("2026-11-30T21:00:05Z"));
        assert!(!woken.asleep);
        let idle = decide(&office, &request, &clock("2026-11-30T22:00:00Z"));
        assert_eq!(idle.status.reason.as_deref(), Some(sleep_reason::IDLE));
        // Tuesday 08:00: awake again.
        assert!(!decide(&office, &request, &clock("2026-12-01T08:00:00Z")).asleep);
    }

    #[test]
    fn durations_have_a_number_and_a_unit() {
        assert_eq!(parse_duration("90s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_duration("7d"), Some(Duration::from_secs(604_800)));
        assert_eq!(parse_duration("5"), None);
        assert_eq!(parse_duration("m"), None);
        assert_eq!(parse_duration("3w"), None);
    }

    #[test]
    fn idle_for_sleep_after_it_sleeps_with_routes_to_the_waker() {
        let awake = decide(&settings(), &activity(0), &facts(59, None));
        assert_eq!(awake.status.state, LifecycleState::Awake);
        assert!(!awake.asleep && !awake.edge_answers);
        assert_eq!(
            awake.next_change,
            Some(at(60)),
            "looks again when it is due"
        );
        let asleep = decide(&settings(), &activity(0), &facts(60, Some(&awake.status)));
        assert_eq!(asleep.status.state, LifecycleState::Sleeping);
        assert_eq!(asleep.status.reason.as_deref(), Some(sleep_reason::IDLE));
        assert!(asleep.asleep && asleep.edge_answers);
        assert_eq!(asleep.status.since, Time(at(60)));
    }

    #[test]
    fn activity_wakes_it_and_routes_wait_for_readiness() {
        let asleep = decide(&settings(), &activity(0), &facts(100, None));
        let waking = decide(
            &settings(),
            &activity(100),
            &facts(101, Some(&asleep.status)),
        );
        assert_eq!(waking.status.state, LifecycleState::Waking);
        assert!(!waking.asleep, "workloads start");
        assert!(waking.edge_answers, "routes wait for Ready");
        assert_eq!(waking.next_change, Some(at(131)), "the wake timeout");

        let mut status = BranchReleaseStatus {
            phase: Some(Phase::Ready),
            ..Default::default()
        };
        settle(&mut status, &waking, &settings(), &[], at(102));
        let lifecycle = status.lifecycle.unwrap();
        assert_eq!(lifecycle.state, LifecycleState::Awake);
        assert_eq!(status.replicas, Some(1));
        let awake = decide(&settings(), &activity(100), &facts(103, Some(&lifecycle)));
        assert!(!awake.edge_answers, "then the routes switch back");
    }

    #[test]
    fn a_wake_that_times_out_sleeps_again_naming_what_did_not_start_until_new_activity() {
        let asleep = decide(&settings(), &activity(0), &facts(100, None));
        let waking = decide(
            &settings(),
            &activity(100),
            &facts(101, Some(&asleep.status)),
        );
        let mut status = BranchReleaseStatus {
            phase: Some(Phase::Progressing),
            conditions: conditions::merge(
                &[],
                &[Desired::new(
                    conditions::READY,
                    false,
                    "ComponentsNotReady",
                    "web: 0/1 ready: ImagePullBackOff",
                )],
                None,
                at(0),
            ),
            ..Default::default()
        };
        settle(&mut status, &waking, &settings(), &[], at(131));
        let lifecycle = status.lifecycle.clone().unwrap();
        assert_eq!(lifecycle.reason.as_deref(), Some(sleep_reason::WAKE_FAILED));
        assert_eq!(status.replicas, Some(0));
        let asleep = conditions::find(&status.conditions, ASLEEP).unwrap();
        assert!(
            asleep.message.contains("web: 0/1 ready"),
            "{}",
            asleep.message
        );

        let still = decide(&settings(), &activity(100), &facts(140, Some(&lifecycle)));
        assert!(still.asleep, "the same activity does not retry");
        let retry = decide(&settings(), &activity(150), &facts(151, Some(&lifecycle)));
        assert_eq!(retry.status.state, LifecycleState::Waking);
    }

    #[test]
    fn scaled_to_zero_it_sleeps_whatever_the_activity() {
        let mut facts = facts(10, None);
        facts.scaled_to_zero = true;
        let decision = decide(&settings(), &activity(9), &facts);
        assert_eq!(
            decision.status.reason.as_deref(),
            Some(sleep_reason::MANUAL)
        );
        assert!(decision.asleep && !decision.delete);
    }

    #[test]
    fn the_production_branch_never_sleeps_unless_told() {
        let mut never = settings();
        never.never_sleep = true;
        never.expire_after = None;
        let decision = decide(&never, &activity(0), &facts(10_000 - 1, None));
        assert_eq!(decision.status.sleeps_at, None);
        assert!(!decision.asleep);
    }

    /// Decides at each of `times` in turn, each time from the status the last one wrote.
    fn follow(settings: &Settings, activity: &Activity, times: &[i64], gitops: bool) -> Decision {
        let mut previous: Option<LifecycleStatus> = None;
        let mut last = None;
        for now in times {
            let mut clock = facts(*now, previous.as_ref());
            clock.gitops_managed = gitops;
            let decision = decide(settings, activity, &clock);
            previous = Some(decision.status.clone());
            last = Some(decision);
        }
        last.unwrap()
    }

    #[test]
    fn expiry_deletes_a_warned_plain_branch_marks_a_gitops_one_and_a_pin_postpones_it() {
        // expireAfter 1000 s: warned from 800 s; first warned at 850 s, so deleted at 1050 s.
        let warned = follow(&settings(), &activity(0), &[850], false);
        assert_eq!(warned.status.expiry_warned_at, Some(Time(at(850))));
        assert!(!warned.delete);
        assert_eq!(warned.status.expires_at, Some(Time(at(1050))));
        let early = follow(&settings(), &activity(0), &[850, 1049], false);
        assert!(!early.delete);
        let plain = follow(&settings(), &activity(0), &[850, 1050], false);
        assert!(plain.delete);
        let marked = follow(&settings(), &activity(0), &[850, 1050], true);
        assert!(!marked.delete && marked.asleep);
        assert_eq!(marked.status.state, LifecycleState::Expired);

        let mut pinned = settings();
        pinned.pinned_until = Some(at(5000));
        let held = follow(&pinned, &activity(0), &[850, 1000], false);
        assert!(!held.delete);
        assert_eq!(held.status.expires_at, Some(Time(at(5000))));
    }

    #[test]
    fn a_branch_gone_from_the_forge_is_warned_at_once_and_goes_after_its_own_window() {
        let gone = Gone {
            why: "branch `feature/a` was deleted in the forge".into(),
            since: at(100),
            warning: Duration::from_secs(60),
        };
        let decide_at = |times: &[i64], gitops: bool, pin: Option<i64>| {
            let mut settings = settings();
            settings.pinned_until = pin.map(at);
            let mut previous: Option<LifecycleStatus> = None;
            let mut last = None;
            for now in times {
                let mut clock = facts(*now, previous.as_ref());
                clock.gitops_managed = gitops;
                clock.gone = Some(&gone);
                let decision = decide(&settings, &activity(90), &clock);
                previous = Some(decision.status.clone());
                last = Some(decision);
            }
            last.unwrap()
        };
        let warned = decide_at(&[100], false, None);
        assert_eq!(warned.status.expiry_warned_at, Some(Time(at(100))));
        assert_eq!(warned.status.expires_at, Some(Time(at(160))));
        assert_eq!(warned.gone_from_forge.as_deref(), Some(gone.why.as_str()));
        assert!(!warned.delete && !warned.asleep);
        assert!(!decide_at(&[100, 159], false, None).delete);
        assert!(decide_at(&[100, 160], false, None).delete);
        // GitOps-managed: kept, asleep, Expired. Pinned: not before the pin.
        let kept = decide_at(&[100, 160], true, None);
        assert!(!kept.delete && kept.asleep);
        assert_eq!(kept.status.state, LifecycleState::Expired);
        assert!(!decide_at(&[100, 160], false, Some(500)).delete);
        // The idle expiry (1000 s after 90 s) comes later: the forge's is the one said.
        let mut settings = settings();
        settings.expire_after = Some(Duration::from_secs(20));
        let mut clock = facts(100, None);
        clock.gone = Some(&gone);
        let idle_first = decide(&settings, &activity(90), &clock);
        assert_eq!(
            idle_first.gone_from_forge, None,
            "idle expiry at 110 s comes first"
        );
    }

    #[test]
    fn a_branch_first_seen_past_its_limit_is_warned_and_waits_the_whole_window() {
        // Its operator was down: first looked at 5000 s, long past the 1000 s limit.
        let first = follow(&settings(), &activity(0), &[5000], false);
        assert!(!first.delete, "warned, not deleted");
        assert_ne!(first.status.state, LifecycleState::Expired);
        assert_eq!(first.status.expiry_warned_at, Some(Time(at(5000))));
        assert_eq!(
            first.status.expires_at,
            Some(Time(at(5200))),
            "the 200 s window"
        );
        assert_eq!(first.next_change, Some(at(5200)));
        let early = follow(&settings(), &activity(0), &[5000, 5199], false);
        assert!(!early.delete);
        let due = follow(&settings(), &activity(0), &[5000, 5200], false);
        assert!(due.delete);
        // Activity in between withdraws the warning; a later one starts a window of its own.
        let used = follow(&settings(), &activity(5100), &[5000, 5150], false);
        assert_eq!(used.status.expiry_warned_at, None);
        assert!(!used.delete);
    }

    #[test]
    fn in_report_only_mode_an_expired_branch_is_said_to_go_and_stays_as_it_is() {
        let mut previous = None;
        let mut decision = None;
        for now in [850, 1000] {
            let mut clock = facts(now, previous.as_ref());
            clock.report_only = true;
            let decided = decide(&settings(), &activity(900), &clock);
            previous = Some(decided.status.clone());
            decision = Some(decided);
        }
        let decision = decision.unwrap();
        assert!(!decision.delete);
        assert!(!decision.would_delete, "activity at 900 s: not yet");
        let mut clock = facts(1900, previous.as_ref());
        clock.report_only = true;
        let warned = decide(&settings(), &activity(900), &clock);
        let mut clock = facts(2100, Some(&warned.status));
        clock.report_only = true;
        let expired = decide(&settings(), &activity(900), &clock);
        assert!(expired.would_delete && !expired.delete);
        assert_ne!(expired.status.state, LifecycleState::Expired);
    }

    fn release_with(lifecycle: serde_json::Value, branch: &str) -> BranchRelease {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "oksa.dev/v1alpha1", "kind": "BranchRelease",
            "metadata": {"name": "b", "namespace": "shop"},
            "spec": {"project": "shop", "branch": branch, "components": [], "lifecycle": lifecycle}
        }))
        .unwrap()
    }

    fn project_with(defaults: serde_json::Value) -> Project {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "oksa.dev/v1alpha1", "kind": "Project", "metadata": {"name": "shop"},
            "spec": {"domain": "shop.example.com", "productionBranch": "main",
                     "defaults": {"lifecycle": defaults}}
        }))
        .unwrap()
    }

    #[test]
    fn the_production_branch_takes_no_expiry_from_the_defaults_only_its_own() {
        let project = project_with(serde_json::json!({"expireAfter": "14d", "maxAge": "90d"}));
        let bounds = LifecycleBounds::default();
        let main = Settings::of(
            &release_with(serde_json::json!({}), "main"),
            &project,
            &bounds,
            at(0),
        );
        assert_eq!((main.expire_after, main.max_age), (None, None));
        let feature = Settings::of(
            &release_with(serde_json::json!({}), "feat"),
            &project,
            &bounds,
            at(0),
        );
        assert_eq!(feature.expire_after, Some(Duration::from_secs(14 * 86_400)));
        let asked = Settings::of(
            &release_with(serde_json::json!({"maxAge": "365d"}), "main"),
            &project,
            &bounds,
            at(0),
        );
        assert_eq!(asked.max_age, Some(Duration::from_secs(365 * 86_400)));
    }

    #[test]
    fn a_branch_is_held_to_the_platforms_bounds_and_says_so() {
        let project = project_with(serde_json::json!({"sleepAfter": "1h"}));
        let bounds = LifecycleBounds {
            longest_pin: Some("1d".into()),
            longest_sleep_after: Some("8h".into()),
            longest_expire_after: Some("30d".into()),
            longest_max_age: None,
            never_sleep: false,
        };
        let release = release_with(
            serde_json::json!({"pinnedUntil": "2099-01-01T00:00:00Z", "sleepAfter": "999d",
                               "expireAfter": "31d", "maxAge": "999d", "neverSleep": true}),
            "feat",
        );
        let settings = Settings::of(&release, &project, &bounds, at(0));
        assert_eq!(settings.pinned_until, Some(at(86_400)));
        assert_eq!(settings.sleep_after, Some(Duration::from_secs(8 * 3600)));
        assert_eq!(
            settings.expire_after,
            Some(Duration::from_secs(30 * 86_400))
        );
        assert_eq!(
            settings.max_age,
            Some(Duration::from_secs(999 * 86_400)),
            "unbounded"
        );
        assert!(!settings.never_sleep);
        assert_eq!(
            settings.held_to_bounds.len(),
            4,
            "{:?}",
            settings.held_to_bounds
        );
        let within = Settings::of(
            &release_with(serde_json::json!({}), "feat"),
            &project,
            &bounds,
            at(0),
        );
        assert!(within.held_to_bounds.is_empty());
    }

    #[test]
    fn gitops_tools_are_recognised_by_their_marks() {
        let none = GitopsMarks::default();
        let plain = BranchRelease::new("main", Default::default());
        assert!(!managed_by_gitops(&plain, &none));
        let with_label = |key: &str, value: &str| {
            let mut release = plain.clone();
            release.labels_mut().insert(key.into(), value.into());
            release
        };
        assert!(managed_by_gitops(
            &with_label("kustomize.toolkit.fluxcd.io/name", "apps"),
            &none
        ));
        assert!(managed_by_gitops(
            &with_label("app.kubernetes.io/instance", "shop"),
            &none
        ));
        assert!(managed_by_gitops(
            &with_label("app.kubernetes.io/managed-by", "Helm"),
            &none
        ));
        assert!(!managed_by_gitops(
            &with_label("app.kubernetes.io/managed-by", "me"),
            &none
        ));
        let mut helm = plain.clone();
        helm.annotations_mut()
            .insert("meta.helm.sh/release-name".into(), "branches".into());
        assert!(managed_by_gitops(&helm, &none));
        let mut applied = plain.clone();
        applied.metadata.managed_fields = Some(vec![
            k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry {
                manager: Some("argocd-controller".into()),
                ..Default::default()
            },
        ]);
        assert!(managed_by_gitops(&applied, &none));
        let platform = GitopsMarks {
            labels: vec!["platform.example/owner=gitops".into()],
            ..Default::default()
        };
        let marked = with_label("platform.example/owner", "gitops");
        assert!(!managed_by_gitops(&marked, &none));
        assert!(managed_by_gitops(&marked, &platform));
    }
}
