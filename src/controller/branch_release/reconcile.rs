//! The BranchRelease reconcile: validate → build → apply → status. A thin driver around the pure
//! functions of this folder.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::TryFutureExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Event, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Resource, ResourceExt};
use serde_json::json;
use tracing::{debug, instrument};

use super::build::{self, Release, Rendering};
use super::claims;
use super::diagnose::{self, Problem};
use super::lifecycle;
use super::status::{self, ComponentObservation, Observation, VolumeObservation};
use super::validate;
use crate::api::conditions::{self, DEGRADED, READY};
use crate::api::{BranchRelease, BranchReleaseStatus, Phase};
use crate::apply::{Applier, Owner, Refusal, RefusalReason, Tally};
use crate::compact::Labels;
use crate::controller::context::Context;
use crate::controller::error::{Error, Result};
use crate::controller::{events, finalizer};
use crate::gateway_api::HTTPRoute;
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
    let result = reconcile_release(release, &ctx).await;
    ctx.metrics.reconciled(CONTROLLER, started.elapsed());
    result
}

async fn reconcile_release(release: Arc<BranchRelease>, ctx: &Context) -> Result<Action> {
    // The turn may have come long after the trigger: work on the newest version cached.
    let release = ctx
        .stores
        .releases
        .get(&ObjectRef::from_obj(release.as_ref()))
        .unwrap_or(release);
    let namespace = release
        .namespace()
        .ok_or(Error::MissingField("BranchRelease", "metadata.namespace"))?;
    let api = Api::<BranchRelease>::namespaced(ctx.client.clone(), &namespace);
    if release.metadata.deletion_timestamp.is_some() {
        // The garbage collector removes the children; retained volumes are detached first.
        if finalizer::has(release.as_ref(), labels::VOLUMES_FINALIZER) {
            let unreadable = release.annotations().contains_key(labels::UNREADABLE);
            claims::finalize(ctx, &release, &namespace, unreadable).await?;
            finalizer::remove(&api, release.as_ref(), labels::VOLUMES_FINALIZER).await?;
        }
        return Ok(Action::await_change());
    }
    // Its namespace is going away (its Project was deleted): writing a status or events now
    // would only be noise (every branch would report ProjectNotFound on its way out).
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
    let siblings = ctx
        .stores
        .releases
        .state_filter(|r| r.metadata.namespace.as_deref() == Some(namespace.as_str()));

    let project = match validate::check(&release, project.as_deref(), &siblings) {
        Ok(project) => project,
        Err(blocked) => {
            debug!(reason = blocked.reason, "not deployed");
            // Blocked is a verdict, never progress: it is never held.
            write_status(
                ctx,
                &release,
                status::blocked(&release, &blocked, Timestamp::now()),
            )
            .await?;
            // A change of this BranchRelease or its Project triggers a reconcile; the slow recheck
            // covers what does not (a conflicting sibling that went away).
            return Ok(Action::requeue(Duration::from_secs(60)));
        }
    };
    // Before any claim exists, so that no deletion can outrun the detaching of retained ones.
    if !release.spec.volumes.is_empty()
        && finalizer::add(&api, release.as_ref(), labels::VOLUMES_FINALIZER).await?
    {
        ctx.metrics
            .wrote("BranchRelease", &release.name_any(), "finalizer");
    }

    // Asleep or awake: decided before rendering, since it shapes what is rendered. Time is the
    // API server's: deadlines are judged against the timestamps it wrote.
    let now = crate::clock::now();
    let activity = lifecycle::last_activity(&release, now);
    let settings =
        lifecycle::Settings::of(&release, project, &ctx.policy.branch_lifecycle, activity.at);
    let previous_lifecycle = release.status.as_ref().and_then(|s| s.lifecycle.clone());
    let decision = lifecycle::decide(
        &settings,
        &activity,
        &lifecycle::Facts {
            scaled_to_zero: release.spec.replicas == Some(0),
            gitops_managed: lifecycle::managed_by_gitops(&release, &ctx.policy.gitops),
            report_only: ctx.policy.expiry.mode == crate::policy::ExpiryMode::Report,
            created: release
                .metadata
                .creation_timestamp
                .as_ref()
                .map_or(now, |t| t.0),
            previous: previous_lifecycle.as_ref(),
            now,
        },
    );
    let branch_key = format!("{namespace}/{}", release.name_any());
    // Past the project's hourly budget, an expired branch waits (Expired, asleep) for a slot.
    let mut budget_free_at = None;
    if decision.delete {
        match ctx
            .expiry_budget
            .take(&release.spec.project, &branch_key, now)
        {
            Ok(()) => return expire(ctx, &api, &release, &activity).await,
            Err(free_at) => {
                ctx.metrics
                    .expiry
                    .get_or_create(&crate::metrics::ExpiryLabels {
                        project: release.spec.project.clone(),
                        action: "deferred",
                    })
                    .inc();
                budget_free_at = Some(free_at);
            }
        }
    } else {
        ctx.expiry_budget.forget(&release.spec.project, &branch_key);
    }
    let rendering = Rendering {
        asleep: decision.asleep,
        routes_to_edge: crate::routing::through_edge(
            !decision.edge_answers,
            crate::routing::protection(&release, project).is_some(),
            settings.may_sleep(),
            ctx.edge_deployed,
        ),
    };

    let release_name = naming::release_name(&release.spec.branch);
    let owner = Owner {
        reference: release
            .controller_owner_ref(&())
            .ok_or(Error::MissingField("BranchRelease", "metadata.uid"))?,
        labels: labels::release_labels(&release.spec.project, &release_name),
    };
    let objects = build::build(&Release {
        branch_release: &release,
        project,
        name: release_name.clone(),
        owner: owner.reference.clone(),
        rendering,
    });
    let tally = Tally::new(&ctx.metrics);
    let applier = Applier::new(&ctx.client, &owner, &tally);
    let belongs = |object_namespace: Option<String>, object_labels: &Labels| {
        object_namespace.as_deref() == Some(namespace.as_str())
            && object_labels.get(labels::RELEASE) == Some(release_name.as_str())
    };

    // The kinds are independent of each other (pods simply wait for their claims): write them
    // concurrently, so a reconcile costs about one round trip instead of one per object.
    let stores = &ctx.stores;
    // A Gateway asked for in a cluster without Gateway API: refused with the reason, not tried.
    let (http_route, missing_gateway_api) = match objects.http_route {
        Some(route) if !ctx.gateway_api => (None, Some(gateway_api_missing(&route))),
        route => (route, None),
    };
    let routes = async {
        tokio::try_join!(
            applier
                .sync(
                    &stores.ingresses,
                    objects.ingress.into_iter().collect(),
                    |o| belongs(o.namespace(), o.labels()),
                )
                .err_into::<Error>(),
            applier
                .sync(&stores.http_routes, http_route.into_iter().collect(), |o| {
                    belongs(o.namespace(), o.labels())
                })
                .err_into::<Error>(),
        )
    };
    let workloads = async {
        tokio::try_join!(
            claims::sync(ctx, &applier, &release, &namespace, objects.claims),
            applier
                .sync(&stores.deployments, objects.deployments, |o| {
                    belongs(o.namespace(), o.labels())
                })
                .err_into::<Error>(),
            applier
                .sync(&stores.services, objects.services, |o| {
                    belongs(o.namespace(), o.labels())
                })
                .err_into::<Error>(),
            applier
                .sync(&stores.autoscalers, objects.autoscalers, |o| {
                    belongs(o.namespace(), o.labels())
                })
                .err_into::<Error>(),
        )
    };
    // Falling asleep, the routes lead to the waker before the workloads stop: no request meets
    // a branch with nothing behind its URL.
    let ((ingress, http_route), (claims, deployments, services, autoscalers)) =
        if decision.edge_answers {
            let routes = routes.await?;
            (routes, workloads.await?)
        } else {
            tokio::try_join!(routes, workloads)?
        };
    let detached =
        claims::detach_undeclared(ctx, &applier, &release, &namespace, &release_name).await?;
    let refusals: Vec<Refusal> = deployments
        .iter()
        .filter_map(|d| d.as_ref().err().cloned())
        .chain(services.iter().filter_map(|s| s.as_ref().err().cloned()))
        .chain(ingress.iter().filter_map(|i| i.as_ref().err().cloned()))
        .chain(autoscalers.iter().filter_map(|a| a.as_ref().err().cloned()))
        .chain(http_route.iter().filter_map(|r| match r {
            Err(refusal) => Some(refusal.clone()),
            Ok(route) => route.refused_by().map(|message| Refusal {
                kind: "HTTPRoute".into(),
                name: route.name_any(),
                reason: RefusalReason::NotAccepted,
                message,
            }),
        }))
        .chain(missing_gateway_api)
        .collect();
    let deployments: Vec<Option<Arc<Deployment>>> =
        deployments.into_iter().map(Result::ok).collect();

    // Observe. Right after a write, pods are expected not to be ready yet, so diagnosing waits
    // for a reconcile that wrote nothing.
    let settled = tally.writes() == 0;
    let (problems, awaiting_probe) = if settled {
        diagnose_unready(
            ctx,
            &release,
            &namespace,
            &release_name,
            &deployments,
            rendering,
        )
        .await?
    } else {
        (vec![None; release.spec.components.len()], false)
    };

    let spec = &release.spec;
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
                replicas: wanted_replicas(rendering, component, deployment.as_deref()),
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
            .zip(&claims)
            .map(|(volume, (claim, refusal))| VolumeObservation {
                name: volume.name.clone(),
                claim_name: naming::volume_claim_name(&release_name, &volume.name),
                claim: claim.as_deref(),
                refusal: refusal.clone(),
            })
            .collect(),
        refusals,
        detached_volumes: detached,
    };
    let refused = !observation.refusals.is_empty();
    // The same instant the lifecycle decided with: a new generation's `progressingSince` is the
    // deploy's activity, and two clocks a second apart would make the next reconcile see a newer
    // deploy and rewrite the status at once instead of coalescing it.
    let mut new_status = status::observed(&release, &observation, now);
    new_status.requested = Some(super::cost::requested(
        spec.components
            .iter()
            .zip(&deployments)
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
    lifecycle::settle(
        &mut new_status,
        &decision,
        &settings,
        &previous_conditions,
        crate::clock::now(),
    );
    let ready = matches!(
        new_status.phase,
        Some(Phase::Ready | Phase::Sleeping | Phase::Expired)
    );
    let recheck = not_ready_recheck(&new_status, Timestamp::now());
    let held = write_status(ctx, &release, new_status).await?;
    let next = if ready {
        Duration::from_secs(600)
    } else if refused {
        // An object in the way may be one no watch sees (it lacks Oksa's label): look again soon.
        Duration::from_secs(15)
    } else if awaiting_probe {
        recheck
    } else {
        // Changes of the children and their pods trigger reconciles; this is only a safety net.
        Duration::from_secs(120)
    };
    // A lifecycle deadline (sleep, expiry, its warning, a wake's timeout, a free slot of the
    // expiry budget) comes with no event.
    let deadline = [decision.next_change, budget_free_at]
        .into_iter()
        .flatten()
        .min();
    let next = deadline.map_or(next, |at| {
        let until = at.duration_since(crate::clock::now());
        next.min(Duration::try_from(until).unwrap_or_default() + Duration::from_millis(100))
    });
    // A held progress report is written once its window has passed.
    Ok(Action::requeue(held.map_or(next, |wait| wait.min(next))))
}

/// The pods a component should run now: what Oksa renders, or, where its autoscaler decides,
/// what the autoscaler last set on the Deployment.
fn wanted_replicas(
    rendering: Rendering,
    component: &crate::api::Component,
    deployment: Option<&Deployment>,
) -> i32 {
    rendering
        .replicas(component)
        .or_else(|| deployment.and_then(|d| d.spec.replicas))
        .unwrap_or(1)
}

/// The pods a component runs while awake: its `replicas`, or for an autoscaled one what its
/// autoscaler last chose (its minimum while asleep).
fn awake_replicas(component: &crate::api::Component, deployment: &Deployment) -> i32 {
    match &component.autoscaling {
        Some(autoscaling) => deployment
            .spec
            .replicas
            .filter(|r| *r > 0)
            .unwrap_or(autoscaling.min_replicas),
        None => component.replicas.unwrap_or(1),
    }
}

/// Deletes a BranchRelease that expired and that no GitOps tool manages, with a Warning event
/// first. Its volumes follow their `retain` setting, as with any deletion.
async fn expire(
    ctx: &Context,
    api: &Api<BranchRelease>,
    release: &BranchRelease,
    activity: &lifecycle::Activity,
) -> Result<Action> {
    let message = format!(
        "expired: unused since {} ({}); deleting it",
        activity.at, activity.source
    );
    events::publish(ctx, release, true, "Expired", message).await;
    let params = kube::api::DeleteParams {
        // Only this very object: one created again meanwhile under the same name is new.
        preconditions: Some(kube::api::Preconditions {
            uid: release.uid(),
            resource_version: None,
        }),
        ..Default::default()
    };
    match api.delete(&release.name_any(), &params).await {
        Ok(_) => {
            ctx.metrics
                .expiry
                .get_or_create(&crate::metrics::ExpiryLabels {
                    project: release.spec.project.clone(),
                    action: "deleted",
                })
                .inc();
        }
        Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => {}
        Err(error) => return Err(error.into()),
    }
    ctx.metrics
        .wrote("BranchRelease", &release.name_any(), "expired");
    Ok(Action::await_change())
}

/// The refusal of an HTTPRoute in a cluster that does not serve HTTPRoutes.
fn gateway_api_missing(route: &HTTPRoute) -> Refusal {
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

/// Why each unready component is not ready, from its pods in the cache. Warning events are
/// listed only when a pod runs but is not ready: a failing readiness probe shows nowhere else.
/// Returns the problems (one per component) and whether a probe is awaited.
async fn diagnose_unready(
    ctx: &Context,
    release: &BranchRelease,
    namespace: &str,
    release_name: &str,
    deployments: &[Option<Arc<Deployment>>],
    rendering: Rendering,
) -> Result<(Vec<Option<Problem>>, bool)> {
    let spec = &release.spec;
    let mut problems: Vec<Option<Problem>> = vec![None; spec.components.len()];
    let unready: Vec<(usize, &Deployment)> = deployments
        .iter()
        .enumerate()
        .filter_map(|(i, d)| d.as_deref().map(|d| (i, d)))
        .filter(|(i, d)| {
            !status::component_ready(d, wanted_replicas(rendering, &spec.components[*i], Some(d)))
        })
        .collect();
    if unready.is_empty() {
        return Ok((problems, false));
    }
    let pods = release_pods(ctx, namespace, release_name);
    let of_component = |component: &str| -> Vec<Arc<Pod>> {
        pods.iter()
            .filter(|p| p.labels().get(labels::COMPONENT).map(String::as_str) == Some(component))
            .cloned()
            .collect()
    };
    let unready_pods: Vec<(usize, &Deployment, Vec<Arc<Pod>>)> = unready
        .into_iter()
        .map(|(i, d)| (i, d, of_component(&spec.components[i].name)))
        .collect();
    let awaiting_probe = unready_pods
        .iter()
        .flat_map(|(_, _, pods)| pods)
        .any(|pod| diagnose::running_unready(pod));
    let warnings = if awaiting_probe {
        Api::<Event>::namespaced(ctx.client.clone(), namespace)
            // The newest few hundred are plenty to explain a probe; a namespace's whole history is not.
            .list(
                &ListParams::default()
                    .fields("involvedObject.kind=Pod,type=Warning")
                    .limit(500),
            )
            .await?
            .items
    } else {
        Vec::new()
    };
    for (i, deployment, pods) in unready_pods {
        problems[i] = diagnose::diagnose(deployment, &pods, &warnings);
    }
    Ok((problems, awaiting_probe))
}

/// The cached pods of one release, all components. A pod that cannot be read is skipped: it
/// only helps to explain, and its owner's status still counts it.
fn release_pods(ctx: &Context, namespace: &str, release_name: &str) -> Vec<Arc<Pod>> {
    ctx.stores
        .pods
        .state_filter(|p| {
            p.meta().namespace.as_deref() == Some(namespace)
                && p.labels().get(labels::RELEASE) == Some(release_name)
        })
        .into_iter()
        .filter_map(|p| p.object().ok().map(Arc::new))
        .collect()
}

/// Writes the status only when it changed, with an event for each milestone the user follows. An
/// update that only reports progress may have to wait (see `coalesce`): then nothing is written,
/// and the time to wait is returned.
async fn write_status(
    ctx: &Context,
    release: &BranchRelease,
    new_status: BranchReleaseStatus,
) -> Result<Option<Duration>> {
    let key = ObjectRef::from_obj(release).erase();
    let cached_version = release.metadata.resource_version.as_deref();
    if ctx.release_progress.behind_own_write(&key, cached_version) {
        return Ok(None);
    }
    let old_status = release.status.clone().unwrap_or_default();
    if old_status == new_status {
        ctx.release_progress.settled(&key);
        return Ok(None);
    }
    if status::only_progress_changed(&old_status, &new_status)
        && let Some(wait) = ctx.release_progress.wait_before(&key, Instant::now())
    {
        return Ok(Some(wait));
    }
    let api = Api::<BranchRelease>::namespaced(
        ctx.client.clone(),
        &release.namespace().unwrap_or_default(),
    );
    let patch =
        json!({"apiVersion": "oksa.dev/v1alpha1", "kind": "BranchRelease", "status": new_status});
    let written = api
        .patch_status(
            &release.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await?;
    ctx.metrics
        .wrote("BranchRelease", &key.to_string(), "status");
    let versions = (cached_version, written.metadata.resource_version.as_deref());
    let rolling_out = new_status.phase == Some(Phase::Progressing);
    ctx.release_progress
        .wrote(&key, Instant::now(), versions, rolling_out);

    for (note, warning, reason) in milestones(&old_status, &new_status) {
        if reason == "WouldExpire" {
            ctx.metrics
                .expiry
                .get_or_create(&crate::metrics::ExpiryLabels {
                    project: release.spec.project.clone(),
                    action: "would_delete",
                })
                .inc();
        }
        events::publish(ctx, release, warning, &reason, note).await;
    }
    Ok(None)
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
