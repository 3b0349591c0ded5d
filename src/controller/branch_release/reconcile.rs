//! The BranchRelease driver: view → finalize → validate → decide → render → apply → observe →
//! status → requeue, each step one call into the model (`crate::model::branch_release`), the
//! applier or the status writer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::controller::Action;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Event, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::ListParams;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Resource, ResourceExt};
use tracing::{debug, instrument};

use super::{children, claims};
use crate::api::{BranchRelease, BranchReleaseStatus};
use crate::apply::{Applier, Owner, Tally};
use crate::controller::context::Context;
use crate::controller::error::{Error, Result};
use crate::controller::status_writer::{self, Written};
use crate::controller::{events, finalizer};
use crate::labels;
use crate::model::branch_release::build::{self, Release, Rendering};
use crate::model::branch_release::diagnose::{self, Problem};
use crate::model::branch_release::milestones::milestones;
use crate::model::branch_release::{lifecycle, outcome, status, validate};
use crate::naming;

pub const CONTROLLER: &str = "branchrelease";

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
    if release.metadata.deletion_timestamp.is_some() {
        return finalize(ctx, &release, &namespace).await;
    }
    // Its namespace is going away (its Project was deleted): writing a status or events now
    // would only be noise (every branch would report ProjectNotFound on its way out).
    if namespace_terminating(ctx, &namespace) {
        return Ok(Action::await_change());
    }
    let project = ctx
        .stores
        .projects
        .get(&ObjectRef::new(&release.spec.project));
    let siblings = ctx.stores.releases.in_namespace(&namespace);
    let project = match validate::check(&release, project.as_deref(), &siblings) {
        Ok(project) => project,
        Err(blocked) => return report_blocked(ctx, &release, &blocked).await,
    };

    // Asleep or awake: decided before rendering, since it shapes what is rendered. Time is the
    // API server's: deadlines are judged against the timestamps it wrote.
    let now = crate::clock::now();
    let (settings, decision) = decide(ctx, &release, project, now);
    let budget_free_at = match take_expiry_slot(ctx, &release, &decision, now) {
        ExpirySlot::Delete => {
            // Its claims, if any, are detached on the way out only with the finalizer on.
            ensure_volumes_finalizer(ctx, &release, &namespace).await?;
            return expire(ctx, &release).await;
        }
        ExpirySlot::Deferred(free_at) => Some(free_at),
        ExpirySlot::None => None,
    };
    let release_name = naming::release_name(&release.spec.branch);
    let (clone, held) = children::data_hold(ctx, &release, project, &release_name);
    let (owner, model) = render(
        ctx,
        &release,
        project,
        &release_name,
        &settings,
        &decision,
        held,
    )?;
    let mut objects = build::build(&model);
    let url = objects.url.take();

    let tally = Tally::new(&ctx.metrics);
    let applier = Applier::new(&ctx.client, &owner, &tally, &ctx.service_creations);
    let routes_first = decision.edge_answers;
    let mut children = children::apply(
        ctx,
        &applier,
        &model,
        objects,
        routes_first,
        clone.as_deref(),
        ensure_volumes_finalizer(ctx, &release, &namespace),
    )
    .await?;
    // Right after a write, pods are expected not to be ready yet, so diagnosing waits for a
    // reconcile that wrote nothing.
    let (problems, awaiting_probe) = if tally.writes() == 0 {
        claims::explain_pending(ctx, &namespace, &mut children.claims).await?;
        diagnose_unready(
            ctx,
            &release,
            &namespace,
            &children.deployments,
            model.rendering,
        )
        .await?
    } else {
        (vec![None; release.spec.components.len()], false)
    };
    let look_again_soon = children.look_again_soon();
    let applied = children.applied(&release_name, url, model.rendering, problems);
    let mut new_status = outcome::compose(&release, applied, &decision, &settings, now);
    new_status.forge = ctx.forges.status_of(&release, project);
    ctx.forges.offer(&release, project, &new_status);
    let written = status_writer::write(ctx, release.as_ref(), &new_status).await?;
    announce(ctx, &release, &written, &new_status).await;
    Ok(Action::requeue(outcome::requeue(&outcome::Outlook {
        status: &new_status,
        refused: look_again_soon,
        awaiting_probe,
        deadlines: &[decision.next_change, budget_free_at],
        held: written.held(),
        now: crate::clock::now(),
    })))
}

/// What the branch is to be now (asleep or awake, held for its data, through the edge or not),
/// and the owner its children carry.
fn render<'a>(
    ctx: &Context,
    release: &'a BranchRelease,
    project: &'a crate::api::Project,
    release_name: &str,
    settings: &lifecycle::Settings,
    decision: &lifecycle::Decision,
    held: bool,
) -> Result<(Owner, Release<'a>)> {
    let rendering = Rendering {
        asleep: decision.asleep,
        held,
        routes_to_edge: crate::routing::through_edge(
            !decision.edge_answers,
            crate::routing::protection(release, project).is_some(),
            settings.may_sleep(),
            ctx.edge_deployed,
        ),
    };
    let owner = Owner {
        reference: release
            .controller_owner_ref(&())
            .ok_or(Error::MissingField("BranchRelease", "metadata.uid"))?,
        labels: labels::release_labels(&release.spec.project, release_name),
        namespace: release.namespace().unwrap_or_default(),
    };
    let model = Release {
        branch_release: release,
        project,
        name: release_name.to_string(),
        owner: owner.reference.clone(),
        rendering,
    };
    Ok((owner, model))
}

/// A BranchRelease being deleted: the garbage collector removes the children; retained volumes
/// are detached first.
async fn finalize(ctx: &Context, release: &BranchRelease, namespace: &str) -> Result<Action> {
    if finalizer::has(release, labels::VOLUMES_FINALIZER) {
        let unreadable = release.annotations().contains_key(labels::UNREADABLE);
        claims::finalize(ctx, release, namespace, unreadable).await?;
        let api = Api::<BranchRelease>::namespaced(ctx.client.clone(), namespace);
        finalizer::remove(&api, release, labels::VOLUMES_FINALIZER).await?;
    }
    Ok(Action::await_change())
}

fn namespace_terminating(ctx: &Context, namespace: &str) -> bool {
    ctx.stores
        .namespaces
        .get(&ObjectRef::new(namespace))
        .is_some_and(|ns| ns.metadata.deletion_timestamp.is_some())
}

/// Reports why a BranchRelease is not deployed. Blocked is a verdict, never progress: it is
/// never held. A change of this BranchRelease or its Project triggers a reconcile; the slow
/// recheck covers what does not (a conflicting sibling that went away).
async fn report_blocked(
    ctx: &Context,
    release: &BranchRelease,
    blocked: &validate::Blocked,
) -> Result<Action> {
    debug!(reason = blocked.reason, "not deployed");
    let mut new_status = status::blocked(release, blocked, Timestamp::now());
    new_status.forge = release.status.as_ref().and_then(|s| s.forge.clone());
    let written = status_writer::write(ctx, release, &new_status).await?;
    announce(ctx, release, &written, &new_status).await;
    Ok(Action::requeue(Duration::from_secs(60)))
}

/// Before any claim is written (`claims::sync` waits for it), so that no deletion can outrun the
/// detaching of retained ones.
async fn ensure_volumes_finalizer(
    ctx: &Context,
    release: &BranchRelease,
    namespace: &str,
) -> Result<()> {
    if release.spec.volumes.is_empty() {
        return Ok(());
    }
    let api = Api::<BranchRelease>::namespaced(ctx.client.clone(), namespace);
    if finalizer::add(&api, release, labels::VOLUMES_FINALIZER).await? {
        ctx.metrics
            .wrote("BranchRelease", &release.name_any(), "finalizer");
    }
    Ok(())
}

/// The branch's lifecycle settings and what they decide now.
fn decide(
    ctx: &Context,
    release: &BranchRelease,
    project: &crate::api::Project,
    now: Timestamp,
) -> (lifecycle::Settings, lifecycle::Decision) {
    let activity = lifecycle::last_activity(release, now);
    let settings =
        lifecycle::Settings::of(release, project, &ctx.policy.branch_lifecycle, activity.at);
    let previous = release.status.as_ref().and_then(|s| s.lifecycle.as_ref());
    let forge = ctx.forges.facts(release, project);
    let mut decision = lifecycle::decide(
        &settings,
        &activity,
        &lifecycle::Facts {
            scaled_to_zero: release.spec.replicas == Some(0),
            gitops_managed: lifecycle::managed_by_gitops(release, &ctx.policy.gitops),
            report_only: ctx.policy.expiry.mode == crate::policy::ExpiryMode::Report,
            created: release
                .metadata
                .creation_timestamp
                .as_ref()
                .map_or(now, |t| t.0),
            previous,
            now,
            gone: forge.gone.as_ref(),
        },
    );
    // Gone only as status remembers it, not yet said again by the forge since this start: no
    // deletion on that alone (the branch may have come back meanwhile). The first sync
    // reconciles every branch of the project.
    if decision.delete && !forge.proven && decision.gone_from_forge.is_some() {
        decision.delete = false;
    }
    (settings, decision)
}

enum ExpirySlot {
    /// Not expiring.
    None,
    /// Expired, and the project's hourly budget has room: delete it.
    Delete,
    /// Expired, past the budget: it waits (Expired, asleep) for this free slot.
    Deferred(Timestamp),
}

fn take_expiry_slot(
    ctx: &Context,
    release: &BranchRelease,
    decision: &lifecycle::Decision,
    now: Timestamp,
) -> ExpirySlot {
    let project = &release.spec.project;
    let branch_key = crate::model::index::release_key(release);
    if !decision.delete {
        ctx.expiry_budget.forget(project, &branch_key);
        return ExpirySlot::None;
    }
    match ctx.expiry_budget.take(project, &branch_key, now) {
        Ok(()) => ExpirySlot::Delete,
        Err(free_at) => {
            ctx.metrics
                .expiry
                .get_or_create(&crate::metrics::ExpiryLabels {
                    project: project.clone(),
                    action: "deferred",
                })
                .inc();
            ExpirySlot::Deferred(free_at)
        }
    }
}

/// The events a written status deserves (see `milestones`).
async fn announce(
    ctx: &Context,
    release: &BranchRelease,
    written: &Written<BranchReleaseStatus>,
    new_status: &BranchReleaseStatus,
) {
    let Written::Changed { old } = written else {
        return;
    };
    for (note, warning, reason) in milestones(old, new_status) {
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
}

/// Deletes a BranchRelease that expired and that no GitOps tool manages, with a Warning event
/// first. Its volumes follow their `retain` setting, as with any deletion.
async fn expire(ctx: &Context, release: &BranchRelease) -> Result<Action> {
    let api = Api::<BranchRelease>::namespaced(
        ctx.client.clone(),
        &release.namespace().unwrap_or_default(),
    );
    let activity = lifecycle::last_activity(release, crate::clock::now());
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

/// Why each unready component is not ready, from its pods in the cache. Warning events are
/// listed only when a pod runs but is not ready: a failing readiness probe shows nowhere else.
/// Returns the problems (one per component) and whether a probe is awaited.
async fn diagnose_unready(
    ctx: &Context,
    release: &BranchRelease,
    namespace: &str,
    deployments: &[Option<Arc<Deployment>>],
    rendering: Rendering,
) -> Result<(Vec<Option<Problem>>, bool)> {
    let release_name = naming::release_name(&release.spec.branch);
    let spec = &release.spec;
    let mut problems: Vec<Option<Problem>> = vec![None; spec.components.len()];
    let unready: Vec<(usize, &Deployment)> = deployments
        .iter()
        .enumerate()
        .filter_map(|(i, d)| d.as_deref().map(|d| (i, d)))
        .filter(|(i, d)| {
            !status::component_ready(
                d,
                outcome::wanted_replicas(rendering, &spec.components[*i], Some(d)),
            )
        })
        .collect();
    if unready.is_empty() {
        return Ok((problems, false));
    }
    let pods = ctx
        .stores
        .pods_labelled(namespace, labels::RELEASE, &release_name);
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
