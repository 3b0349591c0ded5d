//! From what a reconcile applied to what it reports and when it looks again: the refusals
//! gathered, the observation assembled, the status composed and the requeue chosen. Pure; the
//! driver (`controller::branch_release::reconcile`) calls these in order.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use super::build::Rendering;
use super::diagnose::Problem;
use super::lifecycle::{self, Decision, Settings};
use super::reference::Origin;
use super::status::{self, ComponentObservation, JobObservation, Observation, VolumeObservation};
use crate::api::{BranchRelease, BranchReleaseStatus, Component, Phase};
use crate::gateway_api::HTTPRoute;
use crate::model::refusal::{Refusal, RefusalReason};
use crate::naming;

/// The pods a component should run now: what Oksa renders, or, where its autoscaler decides,
/// what the autoscaler last set on the Deployment.
pub fn wanted_replicas(
    rendering: Rendering,
    component: &Component,
    deployment: Option<&Deployment>,
) -> i32 {
    rendering
        .replicas(component)
        .or_else(|| deployment.and_then(|d| d.spec.replicas))
        .unwrap_or(1)
}

/// The pods a component runs while awake: its `replicas`, or for an autoscaled one what its
/// autoscaler last chose (its minimum while asleep).
pub fn awake_replicas(component: &Component, deployment: &Deployment) -> i32 {
    match &component.autoscaling {
        Some(autoscaling) => deployment
            .spec
            .replicas
            .filter(|r| *r > 0)
            .unwrap_or(autoscaling.min_replicas),
        None => component.replicas.unwrap_or(1),
    }
}

/// Whether every component runs what it should, ready: the rollout of this generation is done,
/// and its deploy jobs may start.
pub fn rolled_out(
    release: &BranchRelease,
    deployments: &[Option<Arc<Deployment>>],
    rendering: Rendering,
) -> bool {
    release
        .spec
        .components
        .iter()
        .zip(deployments)
        .all(|(component, deployment)| {
            deployment.as_deref().is_some_and(|d| {
                status::component_ready(d, wanted_replicas(rendering, component, Some(d)))
            })
        })
}

/// The refusals among one kind's applied children.
pub fn refused<K>(synced: &[Result<Arc<K>, Refusal>]) -> impl Iterator<Item = Refusal> + '_ {
    synced.iter().filter_map(|s| s.as_ref().err().cloned())
}

/// The refusals of the HTTPRoute: not written, or written and not accepted by its Gateway.
pub fn route_refusals(synced: &[Result<Arc<HTTPRoute>, Refusal>]) -> Vec<Refusal> {
    synced
        .iter()
        .filter_map(|r| match r {
            Err(refusal) => Some(refusal.clone()),
            Ok(route) => route.refused_by().map(|message| Refusal {
                kind: "HTTPRoute".into(),
                name: route.name_any(),
                reason: RefusalReason::NotAccepted,
                message,
            }),
        })
        .collect()
}

/// The refusal of an HTTPRoute in a cluster that does not serve HTTPRoutes.
pub fn gateway_api_missing(route: &HTTPRoute) -> Refusal {
    Refusal {
        kind: "HTTPRoute".into(),
        name: route.name_any(),
        reason: RefusalReason::Rejected,
        message: format!(
            "HTTPRoute {} is not created: the Project routes through a Gateway, and this cluster \
             does not serve Gateway API (httproutes.{}); install its CRDs and restart Oksa",
            route.name_any(),
            crate::gateway_api::GROUP
        ),
    }
}

/// A volume's claim as a reconcile left it.
#[derive(Debug, Clone, Default)]
pub struct VolumeState {
    /// The claim as it now is; None while it is not created.
    pub claim: Option<Arc<PersistentVolumeClaim>>,
    /// Why it is not as declared, if it is not.
    pub refusal: Option<String>,
    /// Where its data came from, for reference data.
    pub origin: Option<Origin>,
    /// Why it is still Pending, when the cluster said (see `diagnose::pending_claim`).
    pub pending: Option<String>,
}

/// What one reconcile wrote and found, as the status is composed from it.
pub struct Applied<'a> {
    pub release_name: &'a str,
    pub url: Option<String>,
    pub rendering: Rendering,
    /// Per component, in order: its Deployment as applied or cached (None: refused).
    pub deployments: &'a [Option<Arc<Deployment>>],
    /// Per component, why it is not ready (diagnosed only once nothing was written).
    pub problems: Vec<Option<Problem>>,
    /// Per volume, in order.
    pub claims: &'a [VolumeState],
    pub refusals: Vec<Refusal>,
    pub detached_volumes: Vec<String>,
    /// The jobs of the current deploy (and clone).
    pub jobs: Vec<JobObservation>,
}

/// The status a reconcile reports: what it observed, what the branch requests, and its
/// lifecycle settled. `now` is the instant the lifecycle decided with: a new generation's
/// `progressingSince` is the deploy's activity, and two clocks a second apart would make the next
/// reconcile see a newer deploy and rewrite the status at once instead of coalescing it.
pub fn compose(
    release: &BranchRelease,
    applied: Applied,
    decision: &Decision,
    settings: &Settings,
    now: Timestamp,
) -> BranchReleaseStatus {
    let spec = &release.spec;
    let observation = Observation {
        release_name: applied.release_name.to_string(),
        url: applied.url,
        components: spec
            .components
            .iter()
            .zip(applied.deployments)
            .zip(applied.problems)
            .map(|((component, deployment), problem)| ComponentObservation {
                name: component.name.clone(),
                replicas: wanted_replicas(applied.rendering, component, deployment.as_deref()),
                images: component
                    .containers
                    .iter()
                    .map(|c| c.image.clone())
                    .collect(),
                deployment: deployment.as_deref(),
                problem,
            })
            .collect(),
        volumes: spec
            .volumes
            .iter()
            .zip(applied.claims)
            .map(|(volume, state)| VolumeObservation {
                name: volume.name.clone(),
                claim_name: naming::volume_claim_name(applied.release_name, &volume.name),
                claim: state.claim.as_deref(),
                refusal: state.refusal.clone(),
                origin: state.origin.clone(),
                pending: state.pending.clone(),
            })
            .collect(),
        refusals: applied.refusals,
        detached_volumes: applied.detached_volumes,
        jobs: applied.jobs,
    };
    let mut composed = status::observed(release, &observation, now);
    composed.requested = Some(super::cost::requested(
        spec.components
            .iter()
            .zip(applied.deployments)
            .filter_map(|(component, deployment)| {
                let deployment = deployment.as_deref()?;
                Some((deployment, awake_replicas(component, deployment)))
            }),
    ));
    let previous_conditions = release
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    lifecycle::settle(&mut composed, decision, settings, &previous_conditions, now);
    composed
}

/// When a BranchRelease whose pods run but are not ready is looked at again. A failing readiness
/// probe changes neither the pod nor the Deployment; only the kubelet's Warning events tell it.
/// So it is looked for again: soon after a change (3 s), then less and less often (up to 30 s),
/// so that a thousand slow starts do not become a thousand pollers competing with them.
pub fn not_ready_recheck(status: &BranchReleaseStatus, now: Timestamp) -> Duration {
    let waited = status
        .progressing_since
        .as_ref()
        .map(|since| (now.as_millisecond() - since.0.as_millisecond()).max(0) as f64 / 1000.0)
        .unwrap_or(0.0);
    Duration::from_secs_f64((3.0 + waited / 4.0).min(30.0))
}

/// What decides when a reconciled BranchRelease is looked at again.
pub struct Outlook<'a> {
    pub status: &'a BranchReleaseStatus,
    /// Some child was refused, or waits for what no watch announces (a reference claim).
    pub refused: bool,
    /// A pod runs but is not ready: only a recheck will see its probe pass.
    pub awaiting_probe: bool,
    /// Lifecycle deadlines that come with no event (sleep, expiry, its warning, a wake's
    /// timeout, a free slot of the expiry budget).
    pub deadlines: &'a [Option<Timestamp>],
    /// A progress report held back: due after this wait.
    pub held: Option<Duration>,
    pub now: Timestamp,
}

/// How long until the BranchRelease is looked at again.
pub fn requeue(outlook: &Outlook) -> Duration {
    let ready = matches!(
        outlook.status.phase,
        Some(Phase::Ready | Phase::Sleeping | Phase::Expired)
    );
    let next = if ready {
        Duration::from_secs(600)
    } else if outlook.refused {
        Duration::from_secs(15)
    } else if outlook.awaiting_probe {
        not_ready_recheck(outlook.status, outlook.now)
    } else {
        // Changes of the children and their pods trigger reconciles; this is only a safety net.
        Duration::from_secs(120)
    };
    let deadline = outlook.deadlines.iter().flatten().min();
    let next = deadline.map_or(next, |at| {
        let until = at.duration_since(outlook.now);
        next.min(Duration::try_from(until).unwrap_or_default() + Duration::from_millis(100))
    });
    outlook.held.map_or(next, |wait| wait.min(next))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn component(yaml: &str) -> Component {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    fn deployment(replicas: Option<i32>) -> Deployment {
        serde_json::from_value(serde_json::json!({"spec": {"replicas": replicas,
            "selector": {}, "template": {}}}))
        .unwrap()
    }

    #[test]
    fn an_autoscaled_component_runs_what_its_autoscaler_chose() {
        let fixed = component("{name: web, replicas: 3, containers: []}");
        let scaled =
            component("{name: web, containers: [], autoscaling: {minReplicas: 2, maxReplicas: 9}}");
        let awake = Rendering::default();
        let asleep = Rendering {
            asleep: true,
            ..Default::default()
        };
        assert_eq!(wanted_replicas(awake, &fixed, None), 3);
        assert_eq!(wanted_replicas(asleep, &fixed, None), 0);
        assert_eq!(
            wanted_replicas(awake, &scaled, Some(&deployment(Some(5)))),
            5
        );
        assert_eq!(wanted_replicas(awake, &scaled, None), 1);
        assert_eq!(awake_replicas(&fixed, &deployment(Some(0))), 3);
        assert_eq!(awake_replicas(&scaled, &deployment(Some(5))), 5);
        // Asleep, its Deployment is at zero: awake it would run at least its minimum.
        assert_eq!(awake_replicas(&scaled, &deployment(Some(0))), 2);
    }

    fn status(phase: Phase, progressing_for: i64, now: Timestamp) -> BranchReleaseStatus {
        BranchReleaseStatus {
            phase: Some(phase),
            progressing_since: Some(Time(
                now - k8s_openapi::jiff::SignedDuration::from_secs(progressing_for),
            )),
            ..Default::default()
        }
    }

    #[test]
    fn a_branch_is_looked_at_again_by_how_settled_it_is_and_its_next_deadline() {
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let outlook = |status, refused, awaiting_probe, deadlines, held| {
            requeue(&Outlook {
                status,
                refused,
                awaiting_probe,
                deadlines,
                held,
                now,
            })
        };
        let ready = status(Phase::Ready, 0, now);
        assert_eq!(
            outlook(&ready, false, false, &[], None),
            Duration::from_secs(600)
        );
        let rolling = status(Phase::Progressing, 40, now);
        assert_eq!(
            outlook(&rolling, true, false, &[], None),
            Duration::from_secs(15)
        );
        // A probe awaited: 3 s plus a quarter of the time waited so far (40 s → 13 s).
        assert_eq!(
            outlook(&rolling, false, true, &[], None),
            Duration::from_secs(13)
        );
        assert_eq!(
            outlook(&rolling, false, false, &[], None),
            Duration::from_secs(120)
        );
        // A deadline in 30 s comes first; a held write sooner still.
        let soon = [
            None,
            Some(now + k8s_openapi::jiff::SignedDuration::from_secs(30)),
        ];
        assert_eq!(
            outlook(&ready, false, false, &soon, None),
            Duration::from_millis(30_100)
        );
        assert_eq!(
            outlook(&ready, false, false, &soon, Some(Duration::from_secs(5))),
            Duration::from_secs(5)
        );
    }
}
