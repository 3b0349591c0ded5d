//! The BranchRelease reconcile: validate → build → apply → status. A thin driver around the pure
//! functions of this folder.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::TryFutureExt;
use k8s_openapi::api::core::v1::{Event, PersistentVolumeClaim, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Resource, ResourceExt};
use serde_json::json;
use tracing::{debug, instrument};

use super::build::{self, Release};
use super::diagnose::{self, Problem};
use super::status::{self, ComponentObservation, Observation, VolumeObservation};
use super::validate;
use super::volumes::{self, ClaimPlan};
use crate::api::conditions::{self, DEGRADED, READY};
use crate::api::{BranchRelease, BranchReleaseStatus, Phase};
use crate::apply::write::{Tally, apply_if_changed, delete_all, sync_children};
use crate::controller::context::Context;
use crate::controller::error::{Error, Result};
use crate::controller::events;
use crate::labels::{self, FIELD_MANAGER};
use crate::naming;

pub const CONTROLLER: &str = "branchrelease";

/// When a BranchRelease whose pods run but are not ready is looked at again. A failing readiness
/// probe changes neither the pod nor the Deployment; only the kubelet's Warning events tell it.
/// So it is looked for again: soon after a change (3 s), then less and less often (up to 30 s),
/// so that a thousand slow starts do not become a thousand pollers competing with them.
fn not_ready_recheck(status: &BranchReleaseStatus, now: Timestamp) -> Duration {
    let waited = status
        .progressing_since
        .as_ref()
        .map(|since| (now.as_millisecond() - since.0.as_millisecond()).max(0) as f64 / 1000.0)
        .unwrap_or(0.0);
    Duration::from_secs_f64((3.0 + waited / 4.0).min(30.0))
}

#[instrument(skip_all, fields(namespace = %release.namespace().unwrap_or_default(), branchrelease = %release.name_any()))]
pub async fn reconcile(release: Arc<BranchRelease>, ctx: Arc<Context>) -> Result<Action> {
    let started = Instant::now();
    let result = reconcile_release(&release, &ctx).await;
    ctx.metrics.reconciled(CONTROLLER, started.elapsed());
    result
}

async fn reconcile_release(release: &BranchRelease, ctx: &Context) -> Result<Action> {
    // Being deleted (its namespace going away with its Project, say): the garbage collector
    // removes the children; writing a status or events now would only be noise.
    if release.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let namespace = release
        .namespace()
        .ok_or(Error::MissingField("BranchRelease", "metadata.namespace"))?;
    // Its namespace is going away (its Project was deleted): the same. Without this, every
    // branch of a deleted Project would report ProjectNotFound on its way out.
    let namespace_terminating = ctx
        .stores
        .namespaces
        .get(&ObjectRef::new(&namespace))
        .is_some_and(|ns| ns.metadata.deletion_timestamp.is_some());
    if namespace_terminating {
        return Ok(Action::await_change());
    }
    let project = ctx
        .stores
        .projects
        .get(&ObjectRef::new(&release.spec.project));
    let siblings: Vec<_> = ctx
        .stores
        .releases
        .state()
        .into_iter()
        .filter(|r| r.namespace().as_deref() == Some(namespace.as_str()))
        .collect();

    let project = match validate::check(release, project.as_deref(), &siblings) {
        Ok(project) => project,
        Err(blocked) => {
            debug!(reason = blocked.reason, "not deployed");
            write_status(
                ctx,
                release,
                status::blocked(release, &blocked, Timestamp::now()),
            )
            .await?;
            // A change of this BranchRelease or its Project triggers a reconcile; the slow recheck
            // covers what does not (a conflicting sibling that went away).
            return Ok(Action::requeue(Duration::from_secs(60)));
        }
    };

    let release_name = naming::release_name(&release.spec.branch);
    let owner = release
        .controller_owner_ref(&())
        .ok_or(Error::MissingField("BranchRelease", "metadata.uid"))?;
    let objects = build::build(&Release {
        branch_release: release,
        project,
        name: release_name.clone(),
        owner,
    });
    let tally = Tally::new(&ctx.metrics);

    let belongs = |object_namespace: Option<String>,
                   object_labels: &std::collections::BTreeMap<String, String>| {
        object_namespace.as_deref() == Some(namespace.as_str())
            && object_labels.get(labels::RELEASE) == Some(&release_name)
            && object_labels.get(labels::PROJECT) == Some(&release.spec.project)
    };

    // The kinds are independent of each other (pods simply wait for their claims): write them
    // concurrently, so a reconcile costs about one round trip instead of one per object.
    let client = &ctx.client;
    let (claims, deployments, _, _) = tokio::try_join!(
        sync_claims(ctx, &tally, release, &namespace, objects.claims),
        sync_children(
            client,
            &ctx.stores.deployments,
            objects.deployments,
            |o| belongs(o.namespace(), o.labels()),
            &tally,
        )
        .err_into::<Error>(),
        sync_children(
            client,
            &ctx.stores.services,
            objects.services,
            |o| belongs(o.namespace(), o.labels()),
            &tally,
        )
        .err_into::<Error>(),
        sync_children(
            client,
            &ctx.stores.ingresses,
            objects.ingress.into_iter().collect(),
            |o| belongs(o.namespace(), o.labels()),
            &tally,
        )
        .err_into::<Error>(),
    )?;
    prune_claims(ctx, &tally, release, &namespace, &release_name, &belongs).await?;

    // Observe. Right after a write, pods are expected not to be ready yet, so diagnosing waits
    // for a reconcile that wrote nothing. Pods come from the cache; Warning events are listed only
    // when a pod runs but is not ready, the one failure whose reason (the probe's message) is
    // found in events alone.
    let spec = &release.spec;
    let settled = tally.writes() == 0;
    let mut problems: Vec<Option<Problem>> = vec![None; spec.components.len()];
    let mut awaiting_probe = false;
    let unready: Vec<usize> = (0..spec.components.len())
        .filter(|&i| {
            !status::component_ready(&deployments[i], spec.components[i].replicas.unwrap_or(1))
        })
        .collect();
    if settled && !unready.is_empty() {
        let pods = release_pods(ctx, &namespace, &release_name);
        let unready_pods: Vec<(usize, Vec<Arc<Pod>>)> = unready
            .iter()
            .map(|&i| {
                let component = &spec.components[i].name;
                let of_component = pods
                    .iter()
                    .filter(|p| p.labels().get(labels::COMPONENT) == Some(component))
                    .cloned()
                    .collect();
                (i, of_component)
            })
            .collect();
        awaiting_probe = unready_pods
            .iter()
            .flat_map(|(_, pods)| pods)
            .any(|pod| diagnose::running_unready(pod));
        let warnings = if awaiting_probe {
            Api::<Event>::namespaced(ctx.client.clone(), &namespace)
                .list(&ListParams::default().fields("involvedObject.kind=Pod,type=Warning"))
                .await?
                .items
        } else {
            Vec::new()
        };
        for (i, pods) in unready_pods {
            problems[i] = diagnose::diagnose(&deployments[i], &pods, &warnings);
        }
    }

    let observation = Observation {
        release_name: release_name.clone(),
        url: objects.url,
        components: spec
            .components
            .iter()
            .zip(&deployments)
            .zip(problems)
            .map(|((component, deployment), problem)| ComponentObservation {
                name: component.name.clone(),
                replicas: component.replicas.unwrap_or(1),
                images: component
                    .containers
                    .iter()
                    .map(|c| c.image.clone())
                    .collect(),
                deployment: Some(deployment.as_ref()),
                problem,
            })
            .collect(),
        volumes: spec
            .volumes
            .iter()
            .zip(&claims)
            .map(|(volume, (claim, refusal))| VolumeObservation {
                name: volume.name.clone(),
                claim_name: naming::volume_claim_name(&release_name, &volume.name),
                claim: claim.as_deref(),
                refusal: refusal.clone(),
            })
            .collect(),
    };
    let new_status = status::observed(release, &observation, Timestamp::now());
    let ready = new_status.phase == Some(Phase::Ready);
    let recheck = not_ready_recheck(&new_status, Timestamp::now());
    write_status(ctx, release, new_status).await?;
    Ok(Action::requeue(if ready {
        Duration::from_secs(600)
    } else if awaiting_probe {
        recheck
    } else {
        // Changes of the children and their pods trigger reconciles; this is only a safety net.
        Duration::from_secs(120)
    }))
}

/// The cached pods of one release, all components.
fn release_pods(ctx: &Context, namespace: &str, release_name: &str) -> Vec<Arc<Pod>> {
    ctx.stores
        .pods
        .state()
        .into_iter()
        .filter(|p| {
            p.namespace().as_deref() == Some(namespace)
                && p.labels().get(labels::RELEASE).map(String::as_str) == Some(release_name)
        })
        .map(|p| Arc::new(p.object()))
        .collect()
}

type ClaimState = (Option<Arc<PersistentVolumeClaim>>, Option<String>);

/// Creates, grows or refuses each volume's claim. Returns, per volume, the claim as it now is
/// and the refusal, if any.
async fn sync_claims(
    ctx: &Context,
    tally: &Tally<'_>,
    release: &BranchRelease,
    namespace: &str,
    desired: Vec<PersistentVolumeClaim>,
) -> Result<Vec<ClaimState>> {
    let api = Api::<PersistentVolumeClaim>::namespaced(ctx.client.clone(), namespace);
    let mut states = Vec::with_capacity(desired.len());
    for (volume, mut claim) in release.spec.volumes.iter().zip(desired) {
        let name = claim.name_any();
        let mut live = ctx
            .stores
            .claims
            .get(&ObjectRef::new(&name).within(namespace))
            .map(|cached| Arc::new(cached.object()));
        let mut plan = volumes::plan(volume, &mut claim, live.as_deref());
        if plan == ClaimPlan::Create {
            // Create, never apply, a claim Oksa does not know: if a claim of that name exists
            // (someone else's, or ours not yet in the cache), creating fails and we look at it.
            let params = PostParams {
                field_manager: Some(FIELD_MANAGER.into()),
                ..PostParams::default()
            };
            match api.create(&params, &claim).await {
                Ok(created) => {
                    tally.wrote("PersistentVolumeClaim", "create");
                    states.push((Some(Arc::new(created)), None));
                    continue;
                }
                Err(kube::Error::Api(status)) if status.is_already_exists() => {
                    live = api.get_opt(&name).await?.map(Arc::new);
                    plan = volumes::plan(volume, &mut claim, live.as_deref());
                }
                Err(kube::Error::Api(status)) if status.code == 403 || status.code == 422 => {
                    states.push((
                        None,
                        Some(format!(
                            "volume {}: creating it was refused: {}",
                            volume.name, status.message
                        )),
                    ));
                    continue;
                }
                Err(error) => return Err(error.into()),
            }
        }
        states.push(match plan {
            ClaimPlan::Refuse(message) => (live, Some(message)),
            ClaimPlan::Create | ClaimPlan::Apply => {
                let live_json = live
                    .as_deref()
                    .map(serde_json::to_value)
                    .transpose()
                    .map_err(kube::Error::SerdeError)?;
                match apply_if_changed(&api, &claim, live_json.as_ref(), tally).await {
                    Ok(Some(applied)) => (Some(Arc::new(applied)), None),
                    Ok(None) => (live, None),
                    // The API server has the last word on volumes (e.g. a class that cannot expand).
                    Err(kube::Error::Api(status)) if status.code == 403 || status.code == 422 => (
                        live,
                        Some(format!(
                            "volume {}: the change was refused: {}",
                            volume.name, status.message
                        )),
                    ),
                    Err(error) => return Err(error.into()),
                }
            }
        });
    }
    Ok(states)
}

/// Deletes claims of volumes that left the spec, except retained ones: those keep their data
/// until someone deletes them by hand.
async fn prune_claims(
    ctx: &Context,
    tally: &Tally<'_>,
    release: &BranchRelease,
    namespace: &str,
    release_name: &str,
    belongs: &impl Fn(Option<String>, &std::collections::BTreeMap<String, String>) -> bool,
) -> Result<()> {
    let wanted: Vec<String> = release
        .spec
        .volumes
        .iter()
        .map(|v| naming::volume_claim_name(release_name, &v.name))
        .collect();
    let stale: Vec<_> = ctx
        .stores
        .claims
        .state()
        .into_iter()
        .filter(|c| belongs(c.namespace(), c.labels()))
        .filter(|c| !wanted.contains(&c.name_any()))
        .filter(|c| c.labels().get(labels::RETAIN).map(String::as_str) != Some("true"))
        .collect();
    if !stale.is_empty() {
        let api = Api::<PersistentVolumeClaim>::namespaced(ctx.client.clone(), namespace);
        delete_all(&api, stale, tally).await?;
    }
    Ok(())
}

/// Writes the status only when it changed, with an event for each milestone the user follows.
async fn write_status(
    ctx: &Context,
    release: &BranchRelease,
    new_status: BranchReleaseStatus,
) -> Result<()> {
    let old_status = release.status.clone().unwrap_or_default();
    if old_status == new_status {
        return Ok(());
    }
    let api = Api::<BranchRelease>::namespaced(
        ctx.client.clone(),
        &release.namespace().unwrap_or_default(),
    );
    let patch =
        json!({"apiVersion": "oksa.dev/v1alpha1", "kind": "BranchRelease", "status": new_status});
    api.patch_status(
        &release.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    ctx.metrics.wrote("BranchRelease", "status");

    for (note, warning, reason) in milestones(&old_status, &new_status) {
        events::publish(ctx, release, warning, &reason, note).await;
    }
    Ok(())
}

/// The events a status change deserves: (message, is a warning, reason).
fn milestones(old: &BranchReleaseStatus, new: &BranchReleaseStatus) -> Vec<(String, bool, String)> {
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
    found
}
