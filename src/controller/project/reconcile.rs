//! The Project driver: view → finalize → validate → render → apply → status → requeue, around
//! the pure functions of `crate::model::project`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::controller::Action;
use k8s_openapi::api::core::v1::{Namespace, PersistentVolumeClaim};
use k8s_openapi::jiff::Timestamp;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Resource, ResourceExt};
use serde_json::json;
use tracing::{info, instrument};

use crate::api::Project;
use crate::api::conditions::{self, READY};
use crate::apply::{Applier, Owner, Refusal, Tally};
use crate::controller::context::Context;
use crate::controller::error::{Error, Result};
use crate::controller::status_writer::{self, Written};
use crate::controller::{events, finalizer};
use crate::labels::{self, FIELD_MANAGER};
use crate::model::project::build::{self, ProjectObjects};
use crate::model::project::status::{self, Outcome};
use crate::model::project::validate::{self, NamespaceVerdict};
use crate::model::project::waker_objects;

pub const CONTROLLER: &str = "project";

#[instrument(skip_all, fields(project = %project.name_any()))]
pub async fn reconcile(project: Arc<Project>, ctx: Arc<Context>) -> Result<Action> {
    let started = Instant::now();
    let result = reconcile_project(project, &ctx).await;
    ctx.metrics.reconciled(CONTROLLER, started.elapsed());
    result
}

async fn reconcile_project(project: Arc<Project>, ctx: &Context) -> Result<Action> {
    // The turn may have come long after the trigger: work on the newest version cached.
    let project = ctx
        .stores
        .projects
        .get(&ObjectRef::from_obj(project.as_ref()))
        .unwrap_or(project);
    let namespace_name = project.namespace_name();
    if project.metadata.deletion_timestamp.is_some() {
        return finalize(ctx, &project, &namespace_name).await;
    }
    let existing = existing_namespace(ctx, &project, &namespace_name).await?;
    let outcome = match verdict(ctx, &project, existing.as_ref()) {
        NamespaceVerdict::Refused(refusal) => Outcome::Refused(refusal),
        NamespaceVerdict::Terminating => Outcome::Terminating,
        NamespaceVerdict::Ours => provide(ctx, &project, existing).await?,
    };
    let held = write_status(ctx, &project, &outcome, &namespace_name).await?;
    // A held summary is written once its window has passed.
    let recheck = status::recheck(&outcome);
    Ok(Action::requeue(
        held.map_or(recheck, |wait| wait.min(recheck)),
    ))
}

/// The Project's namespace as it is. A namespace the cache shows as created by Oksa for this very
/// Project is trusted. Anything else (absent, or not ours) is read from the API: the decision not
/// to adopt someone else's namespace must not rest on a cache that could miss a namespace created
/// a moment ago.
async fn existing_namespace(
    ctx: &Context,
    project: &Project,
    name: &str,
) -> Result<Option<Namespace>> {
    let cached = ctx
        .stores
        .namespaces
        .get(&ObjectRef::new(name))
        .filter(|ns| validate::owned_by(project, &ns.metadata))
        .map(|ns| Namespace {
            metadata: ns.metadata.clone(),
            ..Namespace::default()
        });
    match cached {
        Some(namespace) => Ok(Some(namespace)),
        None => Ok(Api::<Namespace>::all(ctx.client.clone())
            .get_opt(name)
            .await?),
    }
}

/// Whether the Project may have its namespace: the platform's policy, the namespace's owner, and
/// the domain no other Project holds.
fn verdict(ctx: &Context, project: &Project, existing: Option<&Namespace>) -> NamespaceVerdict {
    if let Err(violation) = ctx.policy.check(project) {
        return NamespaceVerdict::Refused(validate::Refusal {
            reason: "PolicyViolation",
            message: violation.message,
        });
    }
    match validate::check_namespace(project, existing) {
        NamespaceVerdict::Ours => {
            let others = ctx.stores.projects.state();
            match validate::check_domain(project, others.iter().map(|p| p.as_ref())) {
                Some(refusal) => NamespaceVerdict::Refused(refusal),
                None => NamespaceVerdict::Ours,
            }
        }
        verdict => verdict,
    }
}

/// Provides the namespace and everything in it.
async fn provide(ctx: &Context, project: &Project, existing: Option<Namespace>) -> Result<Outcome> {
    // Before the namespace exists, so that its deletion always passes here.
    let projects = Api::<Project>::all(ctx.client.clone());
    if finalizer::add(&projects, project, labels::PROJECT_FINALIZER).await? {
        ctx.metrics
            .wrote("Project", &project.name_any(), "finalizer");
    }
    let owner = Owner {
        reference: project
            .controller_owner_ref(&())
            .ok_or(Error::MissingField("Project", "metadata.uid"))?,
        labels: labels::project_labels(&project.name_any()),
        namespace: project.namespace_name(),
    };
    let objects = build::build(project, owner.reference.clone());
    let refusals = apply_namespace(ctx, &owner, objects, existing).await?;
    Ok(if refusals.is_empty() {
        Outcome::Ready
    } else {
        Outcome::ChildrenRefused(refusals)
    })
}

/// A Project being deleted: its finalizer deletes its namespace (and everything in it), unless
/// it holds volumes kept on purpose, `retain: true` or detached ones. Then the deletion waits,
/// and says so, until a person has deleted those claims: their data is never lost silently. The
/// namespace has no owner reference, so nothing but this finalizer deletes it.
async fn finalize(ctx: &Context, project: &Project, namespace: &str) -> Result<Action> {
    let projects = &Api::<Project>::all(ctx.client.clone());
    if !finalizer::has(project, labels::PROJECT_FINALIZER) {
        return Ok(Action::await_change());
    }
    let owns_namespace = ctx
        .stores
        .namespaces
        .get(&ObjectRef::new(namespace))
        .is_some_and(|ns| validate::owned_by(project, &ns.metadata));
    let mut kept = Vec::new();
    if owns_namespace {
        // From the API, not the cache: this decision must not miss a claim.
        let claims = Api::<PersistentVolumeClaim>::namespaced(ctx.client.clone(), namespace)
            .list_metadata(&ListParams::default().labels(labels::MANAGED_SELECTOR))
            .await?;
        kept = claims
            .items
            .iter()
            // A claim someone is already deleting is not kept: it goes whatever the Project does.
            .filter(|c| c.metadata.deletion_timestamp.is_none())
            .filter(|c| {
                let labels = c.labels();
                labels.get(labels::RETAIN).map(String::as_str) == Some("true")
                    || labels.contains_key(labels::DETACHED)
            })
            .map(|c| c.name_any())
            .collect();
        kept.sort();
    }
    if kept.is_empty() {
        if owns_namespace {
            delete_namespace(ctx, namespace).await?;
        }
        finalizer::remove(projects, project, labels::PROJECT_FINALIZER).await?;
        return Ok(Action::await_change());
    }
    let outcome = Outcome::DeletionBlocked(kept);
    let held = write_status(ctx, project, &outcome, namespace).await?;
    let recheck = Duration::from_secs(10);
    Ok(Action::requeue(
        held.map_or(recheck, |wait| wait.min(recheck)),
    ))
}

/// Deletes the Project's namespace (nothing kept is left in it), guarded by the UID that was
/// checked, so a namespace created again meanwhile is never hit.
async fn delete_namespace(ctx: &Context, namespace: &str) -> Result<()> {
    let namespaces = Api::<Namespace>::all(ctx.client.clone());
    let Some(live) = namespaces.get_opt(namespace).await? else {
        return Ok(());
    };
    let params = kube::api::DeleteParams {
        preconditions: Some(kube::api::Preconditions {
            uid: live.uid(),
            resource_version: None,
        }),
        ..Default::default()
    };
    match namespaces.delete(namespace, &params).await {
        Ok(_) => {
            ctx.metrics.wrote("Namespace", namespace, "delete");
            info!(%namespace, "deleted the namespace of a deleted Project");
            Ok(())
        }
        Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => Ok(()),
        Err(error) => Err(error.into()),
    }
}

/// Applies the namespace and its objects. Returns the objects that could not be written.
async fn apply_namespace(
    ctx: &Context,
    owner: &Owner,
    objects: ProjectObjects,
    existing: Option<Namespace>,
) -> Result<Vec<Refusal>> {
    let name = objects.namespace.name_any();
    let tally = Tally::new(&ctx.metrics);
    let applier = Applier::new(&ctx.client, owner, &tally, &ctx.service_creations);
    match existing {
        // Create, never apply, a namespace that does not exist yet: if someone else creates it
        // in the meantime, creating fails instead of silently taking it over.
        None => {
            let params = PostParams {
                field_manager: Some(FIELD_MANAGER.into()),
                ..PostParams::default()
            };
            Api::<Namespace>::all(ctx.client.clone())
                .create(&params, &objects.namespace)
                .await?;
            tally.wrote("Namespace", &name, "create");
            info!(namespace = %name, "created namespace");
        }
        Some(live) => {
            if !live.owner_references().is_empty() {
                release_namespace_from_collector(ctx, &live).await?;
                tally.wrote("Namespace", &name, "unown");
            }
            let live = serde_json::to_value(&live).map_err(kube::Error::SerdeError)?;
            if let Err(refusal) = applier.apply(&objects.namespace, Some(&live)).await? {
                return Ok(vec![refusal]);
            }
        }
    }
    let project = owner.labels[labels::PROJECT].clone();
    let stores = &ctx.stores;
    let edge = ctx.edge.borrow().clone();
    let waker = waker_objects::build(&project, &name, &owner.reference, edge.as_ref());
    let (waker_service, waker_endpoints) = tokio::try_join!(
        applier.sync(&stores.services, vec![waker.service]),
        applier.sync(
            &stores.endpoint_slices,
            waker.endpoints.into_iter().collect()
        ),
    )?;
    let (role_bindings, quota, limit_range, network_policy) = tokio::try_join!(
        applier.sync(&stores.role_bindings, objects.role_bindings),
        applier.sync(&stores.quotas, objects.quota.into_iter().collect()),
        applier.sync(
            &stores.limit_ranges,
            objects.limit_range.into_iter().collect()
        ),
        applier.sync(&stores.network_policies, vec![objects.network_policy]),
    )?;
    Ok(role_bindings
        .into_iter()
        .filter_map(Result::err)
        .chain(quota.into_iter().filter_map(Result::err))
        .chain(limit_range.into_iter().filter_map(Result::err))
        .chain(network_policy.into_iter().filter_map(Result::err))
        .chain(waker_service.into_iter().filter_map(Result::err))
        .chain(waker_endpoints.into_iter().filter_map(Result::err))
        .collect())
}

/// Removes the owner reference an older Oksa put on a Project's namespace: with it, a
/// foreground delete of the Project let the garbage collector delete the namespace, and the
/// retained data in it, before Oksa's finalizer could say no. A merge patch guarded by the
/// resourceVersion it read: the reference was written by a create, so no apply removes it.
async fn release_namespace_from_collector(ctx: &Context, live: &Namespace) -> Result<()> {
    let body = json!({"metadata": {
        "resourceVersion": live.resource_version(),
        "ownerReferences": null,
    }});
    Api::<Namespace>::all(ctx.client.clone())
        .patch(
            &live.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&body),
        )
        .await?;
    Ok(())
}

/// Branches of the project, from the BranchRelease cache.
fn count_branches(ctx: &Context, namespace: &str) -> crate::api::BranchCounts {
    let releases = ctx.stores.releases.in_namespace(namespace);
    status::count(&releases)
}

/// Writes the status (see `status_writer`), and records an event when the Ready condition flips
/// or changes its reason. Returns how long a held change of its summaries waits.
async fn write_status(
    ctx: &Context,
    project: &Project,
    outcome: &Outcome,
    namespace: &str,
) -> Result<Option<Duration>> {
    let quota = ctx
        .stores
        .quotas
        .named(namespace, build::QUOTA_NAME)
        .and_then(|cached| cached.object().ok());
    let mut new_status = status::compute(
        project,
        outcome,
        count_branches(ctx, namespace),
        quota.as_ref(),
        Timestamp::now(),
    );
    let previous_conditions = project
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    let forge = status::forge_condition(
        project,
        ctx.forges
            .health(&project.name_any())
            .map(|h| (h.connected, h.reason, h.message)),
    );
    new_status.conditions.extend(conditions::merge(
        &previous_conditions,
        &[
            status::usage_condition(ctx.metrics_api),
            status::expiry_condition(
                &ctx.expiry_budget.waiting(&project.name_any()),
                ctx.expiry_budget.per_hour(),
            ),
        ]
        .into_iter()
        .chain(forge)
        .collect::<Vec<_>>(),
        new_status.observed_generation,
        Timestamp::now(),
    ));
    let written = status_writer::write(ctx, project, &new_status).await?;
    if let Written::Changed { old } = &written {
        let old_ready = conditions::find(&old.conditions, READY);
        let new_ready = conditions::find(&new_status.conditions, READY);
        if let Some(new_ready) = new_ready
            && old_ready.map(|c| (&c.status, &c.reason))
                != Some((&new_ready.status, &new_ready.reason))
        {
            let warning = new_ready.status != "True";
            events::publish(
                ctx,
                project,
                warning,
                &new_ready.reason,
                new_ready.message.clone(),
            )
            .await;
        }
    }
    Ok(written.held())
}
