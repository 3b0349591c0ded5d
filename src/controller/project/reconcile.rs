//! The Project reconcile: validate → build → apply → status. A thin driver around the pure
//! functions of this folder.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Resource, ResourceExt};
use serde_json::json;
use tracing::{info, instrument};

use super::build::{self, ProjectObjects};
use super::status::{self, Outcome};
use super::validate::{self, NamespaceVerdict};
use crate::api::conditions::{self, READY};
use crate::api::{Phase, Project, ProjectStatus};
use crate::apply::write::{Tally, apply_if_changed, sync_children};
use crate::controller::context::Context;
use crate::controller::error::{Error, Result};
use crate::controller::events;
use crate::labels::{self, FIELD_MANAGER};

pub const CONTROLLER: &str = "project";

#[instrument(skip_all, fields(project = %project.name_any()))]
pub async fn reconcile(project: Arc<Project>, ctx: Arc<Context>) -> Result<Action> {
    let started = Instant::now();
    let result = reconcile_project(&project, &ctx).await;
    ctx.metrics.reconciled(CONTROLLER, started.elapsed());
    result
}

async fn reconcile_project(project: &Project, ctx: &Context) -> Result<Action> {
    let namespace_name = project.namespace_name();
    let namespaces = Api::<Namespace>::all(ctx.client.clone());
    // A namespace the cache shows as created by Oksa for this very Project is trusted. Anything
    // else (absent, or not ours) is read from the API: the decision not to adopt someone else's
    // namespace must not rest on a cache that could miss a namespace created a moment ago.
    let cached = ctx
        .stores
        .namespaces
        .get(&ObjectRef::new(&namespace_name))
        .filter(|ns| validate::owned_by(project, &ns.metadata))
        .map(|ns| Namespace {
            metadata: ns.metadata.clone(),
            ..Namespace::default()
        });
    let existing = match cached {
        Some(namespace) => Some(namespace),
        None => namespaces.get_opt(&namespace_name).await?,
    };

    let outcome = match validate::check_namespace(project, existing.as_ref()) {
        NamespaceVerdict::Refused(refusal) => Outcome::Refused(refusal),
        NamespaceVerdict::Terminating => Outcome::Terminating,
        NamespaceVerdict::Ours => {
            let others = ctx.stores.projects.state();
            match validate::check_domain(project, others.iter().map(|p| p.as_ref())) {
                Some(refusal) => Outcome::Refused(refusal),
                None => {
                    let owner = project
                        .controller_owner_ref(&())
                        .ok_or(Error::MissingField("Project", "metadata.uid"))?;
                    apply_namespace(ctx, &namespaces, build::build(project, owner), existing)
                        .await?;
                    Outcome::Ready
                }
            }
        }
    };

    let quota = ctx
        .stores
        .quotas
        .get(&ObjectRef::new(build::QUOTA_NAME).within(&namespace_name))
        .map(|cached| cached.object());
    let new_status = status::compute(
        project,
        &outcome,
        count_branches(ctx, &namespace_name),
        quota.as_ref(),
        Timestamp::now(),
    );
    write_status(ctx, project, new_status).await?;

    Ok(match outcome {
        Outcome::Ready => Action::requeue(Duration::from_secs(600)),
        Outcome::Terminating => Action::requeue(Duration::from_secs(2)),
        // Nothing to retry until the spec or the world changes; a slow recheck notices a conflicting
        // namespace that went away.
        Outcome::Refused(_) => Action::requeue(Duration::from_secs(300)),
    })
}

async fn apply_namespace(
    ctx: &Context,
    namespaces: &Api<Namespace>,
    objects: ProjectObjects,
    existing: Option<Namespace>,
) -> Result<()> {
    let name = objects.namespace.name_any();
    let tally = Tally::new(&ctx.metrics);
    match existing {
        // Create, never apply, a namespace that does not exist yet: if someone else creates it
        // in the meantime, creating fails instead of silently taking it over.
        None => {
            let params = PostParams {
                field_manager: Some(FIELD_MANAGER.into()),
                ..PostParams::default()
            };
            namespaces.create(&params, &objects.namespace).await?;
            tally.wrote("Namespace", "create");
            info!(namespace = %name, "created namespace");
        }
        Some(live) => {
            let live = serde_json::to_value(&live).map_err(kube::Error::SerdeError)?;
            apply_if_changed(namespaces, &objects.namespace, Some(&live), &tally).await?;
        }
    }
    let project = objects.namespace.labels()[labels::PROJECT].clone();
    let in_namespace =
        |object_namespace: Option<String>,
         object_labels: &std::collections::BTreeMap<String, String>| {
            object_namespace.as_deref() == Some(name.as_str())
                && object_labels.get(labels::PROJECT) == Some(&project)
        };
    let client = ctx.client.clone();
    let stores = &ctx.stores;
    let metrics = &tally;
    sync_children(
        &client,
        &stores.role_bindings,
        objects.role_bindings,
        |o| in_namespace(o.namespace(), o.labels()),
        metrics,
    )
    .await?;
    sync_children(
        &client,
        &stores.quotas,
        objects.quota.into_iter().collect(),
        |o| in_namespace(o.namespace(), o.labels()),
        metrics,
    )
    .await?;
    sync_children(
        &client,
        &stores.limit_ranges,
        objects.limit_range.into_iter().collect(),
        |o| in_namespace(o.namespace(), o.labels()),
        metrics,
    )
    .await?;
    sync_children(
        &client,
        &stores.network_policies,
        vec![objects.network_policy],
        |o| in_namespace(o.namespace(), o.labels()),
        metrics,
    )
    .await?;
    Ok(())
}

/// Branches of the project, from the BranchRelease cache.
fn count_branches(ctx: &Context, namespace: &str) -> crate::api::BranchCounts {
    let releases: Vec<_> = ctx
        .stores
        .releases
        .state()
        .into_iter()
        .filter(|r| r.namespace().as_deref() == Some(namespace))
        .collect();
    let ready = releases
        .iter()
        .filter(|r| r.status.as_ref().and_then(|s| s.phase) == Some(Phase::Ready))
        .count();
    status::branch_counts(releases.len() as i32, ready as i32)
}

/// Writes the status only when it changed, and records an event when the Ready condition flips
/// or changes its reason.
async fn write_status(ctx: &Context, project: &Project, new_status: ProjectStatus) -> Result<()> {
    let old_status = project.status.clone().unwrap_or_default();
    if old_status == new_status {
        return Ok(());
    }
    let api = Api::<Project>::all(ctx.client.clone());
    let patch = json!({"apiVersion": "oksa.dev/v1alpha1", "kind": "Project", "status": new_status});
    api.patch_status(
        &project.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    ctx.metrics.wrote("Project", "status");

    let old_ready = conditions::find(&old_status.conditions, READY);
    let new_ready = conditions::find(&new_status.conditions, READY);
    if let Some(new_ready) = new_ready
        && old_ready.map(|c| (&c.status, &c.reason)) != Some((&new_ready.status, &new_ready.reason))
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
    Ok(())
}
