//! A BranchRelease's status from what the reconcile observed. Pure.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::diagnose::Problem;
use super::jobs::{self, JobState};
use super::reference::Origin;
use super::validate::Blocked;
use crate::api::conditions::{
    self, DEGRADED, Desired, JOB_FAILED, PROGRESSING, READY, RECONCILING, REFERENCE_DATA, STALLED,
    WAITING_FOR_SOURCE,
};
use crate::api::{BranchRelease, BranchReleaseStatus, ComponentStatus, Phase, VolumeStatus};
use crate::model::refusal::Refusal;

/// What a reconcile saw of one component.
pub struct ComponentObservation<'a> {
    pub name: String,
    pub replicas: i32,
    pub images: Vec<String>,
    /// The Deployment as last applied or cached; None when it could not be created.
    pub deployment: Option<&'a Deployment>,
    pub problem: Option<Problem>,
}

/// What a reconcile saw of one volume.
pub struct VolumeObservation<'a> {
    pub name: String,
    pub claim_name: String,
    pub claim: Option<&'a PersistentVolumeClaim>,
    /// Why a change to it was refused.
    pub refusal: Option<String>,
    /// Where its data came from, for reference data (see `reference`).
    pub origin: Option<Origin>,
    /// Why it is still Pending, when the cluster said.
    pub pending: Option<String>,
}

pub struct Observation<'a> {
    pub release_name: String,
    pub url: Option<String>,
    pub components: Vec<ComponentObservation<'a>>,
    pub volumes: Vec<VolumeObservation<'a>>,
    /// Children that could not be written as declared (someone else's object in the way, or
    /// refused by the API server): the current generation is not what runs.
    pub refusals: Vec<Refusal>,
    /// Claims of volumes no longer in the spec, kept with their data.
    pub detached_volumes: Vec<String>,
    /// The jobs of the current deploy (and clone).
    pub jobs: Vec<JobObservation>,
}

/// What a reconcile saw of one deploy job.
#[derive(Debug, Clone)]
pub struct JobObservation {
    pub name: String,
    pub job_name: String,
    pub state: JobState,
}

/// True when the Deployment runs exactly `replicas` up-to-date, ready pods of its current spec.
pub fn component_ready(deployment: &Deployment, replicas: i32) -> bool {
    let Some(status) = deployment.status.as_ref() else {
        return replicas == 0 && deployment.metadata.generation.is_some();
    };
    let observed = status.observed_generation.unwrap_or(0)
        >= deployment.metadata.generation.unwrap_or(i64::MAX);
    observed
        && status.updated_replicas.unwrap_or(0) == replicas
        && status.ready_replicas.unwrap_or(0) == replicas
        && status.available_replicas.unwrap_or(0) == replicas
        && status.replicas.unwrap_or(0) == replicas
}

fn claim_phase(claim: Option<&PersistentVolumeClaim>) -> Option<String> {
    claim
        .and_then(|c| c.status.as_ref())
        .and_then(|s| s.phase.clone())
}

fn refusal_text(refusals: &[Refusal]) -> String {
    refusals
        .iter()
        .map(|r| r.message.as_str())
        .collect::<Vec<_>>()
        .join("; ")
}

/// True when `new` only reports more progress of the rollout `old` reports: both Progressing
/// for the same generation, with the same verdicts (each condition's status and reason), URL,
/// commit and detached volumes; only counts and messages differ. Such an update may wait a moment
/// (see `controller::coalesce`); the milestones (Ready, Degraded, a new generation) never do.
pub fn only_progress_changed(old: &BranchReleaseStatus, new: &BranchReleaseStatus) -> bool {
    let verdicts = |status: &BranchReleaseStatus| {
        let mut verdicts: Vec<(String, String, String)> = status
            .conditions
            .iter()
            .map(|c| (c.type_.clone(), c.status.clone(), c.reason.clone()))
            .collect();
        verdicts.sort();
        verdicts
    };
    old != new
        && old.phase == Some(Phase::Progressing)
        && new.phase == Some(Phase::Progressing)
        && old.observed_generation == new.observed_generation
        && old.url == new.url
        && old.deployed_commit == new.deployed_commit
        && old.detached_volumes == new.detached_volumes
        && old.lifecycle == new.lifecycle
        && verdicts(old) == verdicts(new)
}

/// Status of a BranchRelease that was not deployed.
pub fn blocked(release: &BranchRelease, blocked: &Blocked, now: Timestamp) -> BranchReleaseStatus {
    let previous = release.status.clone().unwrap_or_default();
    let generation = release.metadata.generation;
    // Pending waits for something that will come (its Project); Invalid needs a change.
    let waiting = blocked.phase == Phase::Pending;
    let desired = [
        Desired::new(READY, false, blocked.reason, blocked.message.clone()),
        Desired::new(
            PROGRESSING,
            false,
            blocked.reason,
            "nothing is deployed until this is resolved",
        ),
        Desired::new(DEGRADED, false, "AsExpected", ""),
        Desired::new(
            RECONCILING,
            waiting,
            blocked.reason,
            blocked.message.clone(),
        ),
        Desired::new(STALLED, !waiting, blocked.reason, blocked.message.clone()),
    ];
    BranchReleaseStatus {
        observed_generation: generation,
        phase: Some(blocked.phase),
        release_name: Some(crate::naming::release_name(&release.spec.branch)),
        conditions: conditions::merge(&previous.conditions, &desired, generation, now),
        // What ran before stays reported: it still runs, untouched.
        ..previous
    }
}

/// `ReferenceData`, for a branch with reference data: True once every such volume was cloned
/// (its claim bound), else why not: waiting for its source, being cloned (with the cluster's
/// reason when it is stuck: a storage class that cannot clone), or started empty.
fn reference_condition(volumes: &[VolumeObservation]) -> Option<Desired> {
    let with_origin: Vec<(&VolumeObservation, &Origin)> = volumes
        .iter()
        .filter_map(|v| Some((v, v.origin.as_ref()?)))
        .collect();
    if with_origin.is_empty() {
        return None;
    }
    let mut waiting = Vec::new();
    let mut cloning = Vec::new();
    let mut empty = Vec::new();
    let mut cloned = Vec::new();
    for (volume, origin) in with_origin {
        match origin {
            Origin::Waiting(why) => waiting.push(why.clone()),
            Origin::StartedEmpty(why) => empty.push(why.clone()),
            Origin::Cloned { from, .. }
                if claim_phase(volume.claim).as_deref() != Some("Bound") =>
            {
                cloning.push(match &volume.pending {
                    Some(why) => {
                        format!("volume {} is being cloned from {from}: {why}", volume.name)
                    }
                    None => format!("volume {} is being cloned from {from}", volume.name),
                })
            }
            Origin::Cloned { from, .. } => cloned.push(format!("{} from {from}", volume.name)),
        }
    }
    Some(if !waiting.is_empty() {
        Desired::new(
            REFERENCE_DATA,
            false,
            WAITING_FOR_SOURCE,
            waiting.join("; "),
        )
    } else if !cloning.is_empty() {
        Desired::new(REFERENCE_DATA, false, "Cloning", cloning.join("; "))
    } else if !empty.is_empty() {
        Desired::new(REFERENCE_DATA, false, "StartedEmpty", empty.join("; "))
    } else {
        Desired::new(
            REFERENCE_DATA,
            true,
            "Cloned",
            format!("cloned: {}", cloned.join(", ")),
        )
    })
}

/// Status of a deployed BranchRelease.
pub fn observed(
    release: &BranchRelease,
    observation: &Observation,
    now: Timestamp,
) -> BranchReleaseStatus {
    let previous = release.status.clone().unwrap_or_default();
    let generation = release.metadata.generation;

    let components: Vec<ComponentStatus> = observation
        .components
        .iter()
        .map(|c| {
            let status = c
                .deployment
                .and_then(|d| d.status.clone())
                .unwrap_or_default();
            let ready = c.deployment.is_some_and(|d| component_ready(d, c.replicas));
            ComponentStatus {
                name: c.name.clone(),
                replicas: c.replicas,
                ready_replicas: status.ready_replicas.unwrap_or(0),
                updated_replicas: status.updated_replicas.unwrap_or(0),
                images: c.images.clone(),
                message: if ready {
                    None
                } else {
                    c.problem.as_ref().map(|p| p.message.clone())
                },
            }
        })
        .collect();
    let volumes: Vec<VolumeStatus> = observation
        .volumes
        .iter()
        .map(|v| VolumeStatus {
            name: v.name.clone(),
            claim_name: v.claim_name.clone(),
            phase: claim_phase(v.claim),
            capacity: v
                .claim
                .and_then(|c| c.status.as_ref())
                .and_then(|s| s.capacity.as_ref())
                .and_then(|c| c.get("storage"))
                .map(|q| q.0.clone()),
            message: v.refusal.clone().or_else(|| match &v.origin {
                Some(Origin::Waiting(why) | Origin::StartedEmpty(why)) => Some(why.clone()),
                _ => None,
            }),
            cloned_from: match &v.origin {
                Some(Origin::Cloned { from, .. }) => Some(from.clone()),
                _ => None,
            },
            cloned_at: match &v.origin {
                Some(Origin::Cloned { at, .. }) => at.clone(),
                _ => None,
            },
        })
        .collect();

    let not_ready: Vec<String> = observation
        .components
        .iter()
        .filter(|c| !c.deployment.is_some_and(|d| component_ready(d, c.replicas)))
        .map(|c| {
            let ready = c
                .deployment
                .and_then(|d| d.status.as_ref())
                .and_then(|s| s.ready_replicas)
                .unwrap_or(0);
            match &c.problem {
                Some(p) => format!("{}: {}/{} ready: {}", c.name, ready, c.replicas, p.message),
                None => format!("{}: {}/{} ready", c.name, ready, c.replicas),
            }
        })
        .collect();
    let unbound: Vec<String> = observation
        .volumes
        .iter()
        .filter(|v| claim_phase(v.claim).as_deref() != Some("Bound"))
        .map(|v| match (&v.origin, claim_phase(v.claim)) {
            (Some(Origin::Waiting(why)), None) => why.clone(),
            (_, Some(phase)) if v.pending.is_some() => format!(
                "volume {} is {phase}: {}",
                v.name,
                v.pending.as_deref().unwrap_or_default()
            ),
            (_, phase) => format!(
                "volume {} is {}",
                v.name,
                phase.unwrap_or_else(|| "not created".into())
            ),
        })
        .collect();
    let problems: Vec<&Problem> = observation
        .components
        .iter()
        .filter_map(|c| c.problem.as_ref())
        .collect();
    let refusals: Vec<&String> = observation
        .volumes
        .iter()
        .filter_map(|v| v.refusal.as_ref())
        .collect();

    let volume_refusals = refusals
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join("; ");
    let child_refusals = &observation.refusals;
    let job_failures: Vec<String> = observation
        .jobs
        .iter()
        .filter_map(|j| match &j.state {
            JobState::Failed { exit_code, message } => Some(match exit_code {
                Some(code) => format!("job {} failed (exit code {code}): {message}", j.name),
                None => format!("job {} failed: {message}", j.name),
            }),
            _ => None,
        })
        .collect();
    let job_waits: Vec<String> = observation
        .jobs
        .iter()
        .filter_map(|j| match j.state {
            JobState::Waiting => Some(format!("job {} waits for the components", j.name)),
            JobState::Running => Some(format!("job {} is running", j.name)),
            _ => None,
        })
        .collect();
    let ready = not_ready.is_empty()
        && unbound.is_empty()
        && child_refusals.is_empty()
        && job_failures.is_empty()
        && job_waits.is_empty();
    let degraded = !problems.is_empty()
        || !refusals.is_empty()
        || !child_refusals.is_empty()
        || !job_failures.is_empty();
    let total = observation.components.len();
    let ready_count = total - not_ready.len();

    let ready_condition = if ready {
        let message = observation
            .url
            .as_ref()
            .map(|u| format!("all components ready at {u}"))
            .unwrap_or("all components ready".into());
        Desired::new(READY, true, "AllComponentsReady", message)
    } else if let Some(first) = child_refusals.first() {
        Desired::new(
            READY,
            false,
            first.reason.as_str(),
            refusal_text(child_refusals),
        )
    } else if !job_failures.is_empty() {
        Desired::new(READY, false, JOB_FAILED, job_failures.join("; "))
    } else if !not_ready.is_empty() {
        Desired::new(READY, false, "ComponentsNotReady", not_ready.join("; "))
    } else if !unbound.is_empty() {
        Desired::new(READY, false, "VolumesNotBound", unbound.join("; "))
    } else {
        Desired::new(READY, false, "JobsRunning", job_waits.join("; "))
    };
    let progressing_condition = if ready {
        Desired::new(PROGRESSING, false, "RolloutComplete", "")
    } else if !problems.is_empty() || !child_refusals.is_empty() || !job_failures.is_empty() {
        Desired::new(
            PROGRESSING,
            false,
            "RolloutStuck",
            "the rollout cannot finish until the Degraded problem is fixed",
        )
    } else {
        Desired::new(
            PROGRESSING,
            true,
            "RollingOut",
            [not_ready.clone(), unbound, job_waits].concat().join("; "),
        )
    };
    let degraded_condition = if let Some(first) = child_refusals.first() {
        Desired::new(
            DEGRADED,
            true,
            first.reason.as_str(),
            refusal_text(child_refusals),
        )
    } else if !job_failures.is_empty() {
        Desired::new(DEGRADED, true, JOB_FAILED, job_failures.join("; "))
    } else if let Some(problem) = problems.first() {
        let mut messages: Vec<String> = problems.iter().map(|p| p.message.clone()).collect();
        messages.extend(refusals.iter().map(|r| r.to_string()));
        Desired::new(DEGRADED, true, problem.reason, messages.join("; "))
    } else if !refusals.is_empty() {
        Desired::new(
            DEGRADED,
            true,
            "VolumeChangeRefused",
            volume_refusals.clone(),
        )
    } else {
        Desired::new(DEGRADED, false, "AsExpected", "")
    };

    // kstatus: Stalled when it cannot go on without a change, Reconciling while it goes on.
    let stalled = if let Some(first) = child_refusals.first() {
        Some((first.reason.as_str(), refusal_text(child_refusals)))
    } else if !job_failures.is_empty() {
        Some((JOB_FAILED, job_failures.join("; ")))
    } else if let Some(problem) = problems.iter().find(|p| p.stalls()) {
        Some((problem.reason, problem.message.clone()))
    } else if !refusals.is_empty() {
        Some(("VolumeChangeRefused", volume_refusals))
    } else {
        None
    };
    let (reconciling_condition, stalled_condition) = match &stalled {
        Some((reason, message)) => (
            Desired::new(RECONCILING, false, "Stalled", ""),
            Desired::new(STALLED, true, reason, message.clone()),
        ),
        None if ready => (
            Desired::new(RECONCILING, false, "RolloutComplete", ""),
            Desired::new(STALLED, false, "AsExpected", ""),
        ),
        None => (
            Desired::new(
                RECONCILING,
                true,
                "RollingOut",
                progressing_condition.message.clone(),
            ),
            Desired::new(STALLED, false, "AsExpected", ""),
        ),
    };

    let new_generation = previous.observed_generation != generation;
    let progressing_since = if new_generation || previous.progressing_since.is_none() {
        Some(Time(now))
    } else {
        previous.progressing_since.clone()
    };
    let was_ready_for_this_generation =
        !new_generation && conditions::is_true(&previous.conditions, READY);
    let seconds_to_ready = match (&progressing_since, ready) {
        (Some(since), true) if !was_ready_for_this_generation => {
            Some(((now.as_millisecond() - since.0.as_millisecond()) as f64 / 1000.0).max(0.0))
        }
        (_, true) => previous.seconds_to_ready,
        (_, false) => previous.seconds_to_ready,
    };

    BranchReleaseStatus {
        observed_generation: generation,
        phase: Some(if degraded {
            Phase::Degraded
        } else if ready {
            Phase::Ready
        } else {
            Phase::Progressing
        }),
        release_name: Some(observation.release_name.clone()),
        url: observation.url.clone(),
        conditions: conditions::merge(
            &previous.conditions,
            &[
                ready_condition,
                progressing_condition,
                degraded_condition,
                reconciling_condition,
                stalled_condition,
            ]
            .into_iter()
            .chain(reference_condition(&observation.volumes))
            .collect::<Vec<_>>(),
            generation,
            now,
        ),
        ready_components: Some(format!("{ready_count}/{total}")),
        components,
        volumes,
        detached_volumes: observation.detached_volumes.clone(),
        jobs: observation
            .jobs
            .iter()
            .map(|j| jobs::status(&j.name, &j.job_name, &j.state))
            .collect(),
        deployed_commit: if ready {
            release.spec.commit.clone().or(previous.deployed_commit)
        } else {
            previous.deployed_commit
        },
        progressing_since,
        seconds_to_ready,
        // Set by the reconcile (see `cost`) and the lifecycle (see `lifecycle::settle`).
        requested: previous.requested,
        replicas: previous.replicas,
        lifecycle: previous.lifecycle,
        // Set by the reconcile, from what the forge runtime knows.
        forge: previous.forge,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fixtures::release_from_yaml;
    use serde_json::json;

    fn release(generation: i64) -> BranchRelease {
        release_from_yaml(&format!(
            "generation: {generation}\nspec: {{project: shop, branch: main, commit: c1, components: [{{name: web, containers: [{{name: web, image: nginx}}]}}]}}"
        ))
    }

    fn deployment(ready: i32) -> Deployment {
        serde_json::from_value(json!({"metadata": {"name": "main-web", "generation": 1}, "spec": {"selector": {}, "template": {}},
            "status": {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "readyReplicas": ready, "availableReplicas": ready}}))
        .unwrap()
    }

    fn claim(phase: &str) -> PersistentVolumeClaim {
        serde_json::from_value(json!({"metadata": {"name": "main-files"}, "status": {"phase": phase, "capacity": {"storage": "1Gi"}}})).unwrap()
    }

    fn observe<'a>(
        d: &'a Deployment,
        c: &'a PersistentVolumeClaim,
        problem: Option<Problem>,
        refusal: Option<String>,
    ) -> Observation<'a> {
        Observation {
            release_name: "main".into(),
            url: Some("http://main.example.com".into()),
            components: vec![ComponentObservation {
                name: "web".into(),
                replicas: 1,
                images: vec!["nginx".into()],
                deployment: Some(d),
                problem,
            }],
            volumes: vec![VolumeObservation {
                name: "files".into(),
                claim_name: "main-files".into(),
                claim: Some(c),
                refusal,
                origin: None,
                pending: None,
            }],
            refusals: vec![],
            detached_volumes: vec![],
            jobs: vec![],
        }
    }

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(seconds).unwrap()
    }

    #[test]
    fn progressing_then_ready_with_time_to_ready_and_commit() {
        let (unready, pending) = (deployment(0), claim("Pending"));
        let first = observed(
            &release(1),
            &observe(&unready, &pending, None, None),
            at(100),
        );
        assert_eq!(first.phase, Some(Phase::Progressing));
        assert!(conditions::is_true(&first.conditions, PROGRESSING));
        assert_eq!(first.ready_components.as_deref(), Some("0/1"));
        assert_eq!(first.deployed_commit, None);

        let mut release = release(1);
        release.status = Some(first);
        let (ready, bound) = (deployment(1), claim("Bound"));
        let second = observed(&release, &observe(&ready, &bound, None, None), at(104));
        assert_eq!(second.phase, Some(Phase::Ready));
        assert_eq!(second.seconds_to_ready, Some(4.0));
        assert_eq!(second.deployed_commit.as_deref(), Some("c1"));
        assert_eq!(second.volumes[0].capacity.as_deref(), Some("1Gi"));

        // Nothing changed: the same status, so nothing is written.
        release.status = Some(second.clone());
        assert_eq!(
            observed(&release, &observe(&ready, &bound, None, None), at(200)),
            second
        );
    }

    #[test]
    fn more_progress_of_one_rollout_may_wait_but_a_milestone_never_does() {
        let (unready, pending, bound) = (deployment(0), claim("Pending"), claim("Bound"));
        let first = observed(
            &release(1),
            &observe(&unready, &pending, None, None),
            at(100),
        );
        let mut release = release(1);
        release.status = Some(first.clone());
        // The volume got bound, the component is still starting: progress only.
        let bound_now = observed(&release, &observe(&unready, &bound, None, None), at(101));
        assert_ne!(bound_now, first);
        assert!(only_progress_changed(&first, &bound_now));
        // Ready is a milestone.
        let ready = deployment(1);
        let done = observed(&release, &observe(&ready, &bound, None, None), at(102));
        assert!(!only_progress_changed(&first, &done));
        // So is a problem (Degraded turns True), and the first status of a generation.
        let problem = Problem {
            reason: "ImagePullFailed",
            message: "cannot pull".into(),
        };
        let failing = observed(
            &release,
            &observe(&unready, &pending, Some(problem), None),
            at(102),
        );
        assert!(!only_progress_changed(&first, &failing));
        assert!(!only_progress_changed(
            &BranchReleaseStatus::default(),
            &first
        ));
    }

    #[test]
    fn a_refused_volume_change_degrades_a_running_environment() {
        let (ready, bound) = (deployment(1), claim("Bound"));
        let status = observed(
            &release(1),
            &observe(
                &ready,
                &bound,
                None,
                Some("volume files: shrinking refused".into()),
            ),
            at(1),
        );
        assert_eq!(status.phase, Some(Phase::Degraded));
        assert!(conditions::is_true(&status.conditions, READY));
        let degraded = conditions::find(&status.conditions, DEGRADED).unwrap();
        assert_eq!(
            (degraded.status.as_str(), degraded.reason.as_str()),
            ("True", "VolumeChangeRefused")
        );
    }

    #[test]
    fn a_refused_child_makes_the_new_generation_not_ready_whatever_still_runs() {
        let (ready, bound) = (deployment(1), claim("Bound"));
        let mut observation = observe(&ready, &bound, None, None);
        observation.refusals.push(Refusal {
            kind: "Deployment".into(),
            name: "main-web".into(),
            reason: crate::model::refusal::RefusalReason::Rejected,
            message: "Deployment main-web was refused by the API server: spec.template.spec.containers[0].ports[0].name: Invalid value".into(),
        });
        let status = observed(&release(2), &observation, at(1));
        assert_eq!(status.observed_generation, Some(2));
        assert_eq!(status.phase, Some(Phase::Degraded));
        let ready = conditions::find(&status.conditions, READY).unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "SpecRejected")
        );
        assert!(ready.message.contains("ports[0].name"), "{}", ready.message);
        assert_eq!(ready.observed_generation, Some(2));
        assert!(conditions::is_true(&status.conditions, DEGRADED));
    }

    #[test]
    fn a_component_problem_names_the_component() {
        let (unready, bound) = (deployment(0), claim("Bound"));
        let problem = Problem {
            reason: "ImagePullFailed",
            message: "container web: cannot pull image".into(),
        };
        let status = observed(
            &release(1),
            &observe(&unready, &bound, Some(problem), None),
            at(1),
        );
        let ready = conditions::find(&status.conditions, READY).unwrap();
        assert_eq!(
            ready.message,
            "web: 0/1 ready: container web: cannot pull image"
        );
        assert_eq!(
            conditions::find(&status.conditions, DEGRADED)
                .unwrap()
                .reason,
            "ImagePullFailed"
        );
        assert_eq!(
            conditions::find(&status.conditions, PROGRESSING)
                .unwrap()
                .reason,
            "RolloutStuck"
        );
    }
}
