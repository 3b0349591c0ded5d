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

/// The condition saying whether the branch sleeps, and why.
pub const ASLEEP: &str = "Asleep";
/// True some time before the branch expires (with a Warning event), so someone can keep it.
pub const EXPIRING: &str = "ExpiringSoon";

/// Annotations a keep-alive (`oksa keepalive`) and the waker write on a BranchRelease: activity
/// recorded without touching its spec (so without a new generation or a GitOps diff).
pub const LAST_ACTIVITY: &str = "oksa.dev/last-activity";
pub const LAST_ACTIVITY_SOURCE: &str = "oksa.dev/last-activity-source";

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

/// `at` without its fraction of a second. Status times are stored to the second (`metav1.Time`),
/// so anything computed finer would differ from what was read back and be written again on every
/// reconcile, each write triggering the next.
pub fn whole_seconds(at: Timestamp) -> Timestamp {
    Timestamp::from_second(at.as_second()).unwrap_or(at)
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
}

impl Settings {
    pub fn of(release: &BranchRelease, project: &Project) -> Settings {
        let own = release.spec.lifecycle.clone().unwrap_or_default();
        let defaults = project
            .spec
            .defaults
            .as_ref()
            .and_then(|d| d.lifecycle.clone())
            .unwrap_or_default();
        let pick = |field: fn(&Lifecycle) -> Option<&String>| {
            field(&own)
                .or(field(&defaults))
                .and_then(|t| parse_duration(t))
        };
        let production = project.spec.production_branch.as_deref() == Some(&release.spec.branch);
        Settings {
            sleep_after: pick(|l| l.sleep_after.as_ref()),
            never_sleep: own
                .never_sleep
                .or(defaults.never_sleep)
                .unwrap_or(production),
            expire_after: pick(|l| l.expire_after.as_ref()),
            max_age: pick(|l| l.max_age.as_ref()),
            on_expiry: own
                .on_expiry
                .or(defaults.on_expiry)
                .unwrap_or(ExpiryAction::Delete),
            pinned_until: own
                .pinned_until
                .clone()
                .or(defaults.pinned_until.clone())
                .map(|t| t.0),
            wake_timeout: pick(|l| l.wake_timeout.as_ref()).unwrap_or(DEFAULT_WAKE_TIMEOUT),
            schedule: own
                .awake_schedule
                .as_ref()
                .or(defaults.awake_schedule.as_ref())
                .and_then(|s| super::schedule::Schedule::parse(s).ok()),
        }
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
    /// Every route leads to the waker.
    pub routes_to_waker: bool,
    /// Expired and no GitOps tool manages it: delete the BranchRelease.
    pub delete: bool,
    /// When the expiry warning starts (it is on when this is in the past).
    pub warn_from: Option<Timestamp>,
    /// When the decision may change with no event to say so (a deadline), if ever.
    pub next_change: Option<Timestamp>,
}

/// The inputs of a decision besides settings and activity.
pub struct Facts<'a> {
    /// Scaled to zero through the scale subresource.
    pub scaled_to_zero: bool,
    /// Argo CD or Flux manages the BranchRelease (see `managed_by_gitops`).
    pub gitops_managed: bool,
    pub created: Timestamp,
    pub previous: Option<&'a LifecycleStatus>,
    pub now: Timestamp,
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
    let expires_at = [
        settings.expire_after.map(|d| after(last, d)),
        settings.max_age.map(|d| after(facts.created, d)),
    ]
    .into_iter()
    .flatten()
    .min()
    // A pin postpones expiry until it ends.
    .map(|at| settings.pinned_until.map_or(at, |pin| at.max(pin)));
    let expired = expires_at.is_some_and(|at| at <= now);
    let keep_expired = facts.gitops_managed || settings.on_expiry == ExpiryAction::Sleep;

    let previous = facts.previous;
    let (state, reason) = if facts.scaled_to_zero {
        (LifecycleState::Sleeping, Some(sleep_reason::MANUAL))
    } else if expired {
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
    let warn_from = match (settings.expire_after, expires_at) {
        // A fifth of the unused time before expiry, at most a day.
        (Some(expire_after), Some(at)) => {
            let lead = (expire_after / 5).min(Duration::from_secs(86_400));
            at.checked_sub(SignedDuration::try_from(lead).unwrap_or_default())
                .ok()
        }
        (None, Some(at)) => Some(at),
        _ => None,
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
            history: previous.map(|p| p.history.clone()).unwrap_or_default(),
        },
        asleep,
        routes_to_waker: state != LifecycleState::Awake,
        delete: expired && !keep_expired && !facts.scaled_to_zero,
        warn_from,
        next_change,
    }
}

/// Whether a GitOps tool manages the BranchRelease: Argo CD's tracking annotation, Flux's
/// labels, or a field manager of theirs. Such a BranchRelease is never deleted by expiry: the
/// tool would create it again, or report drift for ever.
pub fn managed_by_gitops(release: &BranchRelease) -> bool {
    const ANNOTATIONS: [&str; 1] = ["argocd.argoproj.io/tracking-id"];
    const LABELS: [&str; 3] = [
        "kustomize.toolkit.fluxcd.io/name",
        "helm.toolkit.fluxcd.io/name",
        "argocd.argoproj.io/instance",
    ];
    const MANAGERS: [&str; 4] = [
        "argocd-controller",
        "argocd-application-controller",
        "kustomize-controller",
        "helm-controller",
    ];
    ANNOTATIONS
        .iter()
        .any(|a| release.annotations().contains_key(*a))
        || LABELS.iter().any(|l| release.labels().contains_key(*l))
        || release
            .managed_fields()
            .iter()
            .filter_map(|f| f.manager.as_deref())
            .any(|m| MANAGERS.contains(&m))
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
                    sleep_reason::EXPIRED => {
                        "expired: unused too long; a deploy or a request wakes it".into()
                    }
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
    let expiring = match (&lifecycle.expires_at, decision.warn_from) {
        (Some(at), Some(from)) if from <= now && lifecycle.state != LifecycleState::Expired => {
            Desired::new(
                EXPIRING,
                true,
                "Unused",
                format!(
                    "expires at {} unless used before (a deploy, a request, `oksa keepalive`)",
                    at.0
                ),
            )
        }
        _ => Desired::new(EXPIRING, false, "InUse", ""),
    };
    status
        .conditions
        .retain(|c| c.type_ != ASLEEP && c.type_ != EXPIRING);
    status.conditions.extend(conditions::merge(
        previous_conditions,
        &[asleep_condition, expiring],
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
            created: at(0),
            previous,
            now: at(now),
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
            created: utc("2026-11-30T00:00:00Z"),
            previous: None,
            now: utc(now),
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
        assert!(!awake.asleep && !awake.routes_to_waker);
        assert_eq!(
            awake.next_change,
            Some(at(60)),
            "looks again when it is due"
        );
        let asleep = decide(&settings(), &activity(0), &facts(60, Some(&awake.status)));
        assert_eq!(asleep.status.state, LifecycleState::Sleeping);
        assert_eq!(asleep.status.reason.as_deref(), Some(sleep_reason::IDLE));
        assert!(asleep.asleep && asleep.routes_to_waker);
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
        assert!(waking.routes_to_waker, "routes wait for Ready");
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
        assert!(!awake.routes_to_waker, "then the routes switch back");
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

    #[test]
    fn expiry_deletes_a_plain_branch_marks_a_gitops_one_and_a_pin_postpones_it() {
        let warned = decide(&settings(), &activity(0), &facts(850, None));
        assert_eq!(warned.warn_from, Some(at(800)));
        let plain = decide(&settings(), &activity(0), &facts(1000, None));
        assert!(plain.delete);
        let mut gitops = facts(1000, None);
        gitops.gitops_managed = true;
        let marked = decide(&settings(), &activity(0), &gitops);
        assert!(!marked.delete && marked.asleep);
        assert_eq!(marked.status.state, LifecycleState::Expired);

        let mut pinned = settings();
        pinned.pinned_until = Some(at(5000));
        let held = decide(&pinned, &activity(0), &facts(1000, None));
        assert!(!held.delete);
        assert_eq!(held.status.expires_at, Some(Time(at(5000))));
    }

    #[test]
    fn gitops_tools_are_recognised_by_their_marks() {
        let mut release = BranchRelease::new("main", Default::default());
        assert!(!managed_by_gitops(&release));
        release
            .labels_mut()
            .insert("kustomize.toolkit.fluxcd.io/name".into(), "apps".into());
        assert!(managed_by_gitops(&release));
    }
}
