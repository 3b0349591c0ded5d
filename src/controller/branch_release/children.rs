//! Applies a BranchRelease's whole child set: every kind in its phase, each pruned in the owner's
//! scope, claims through their own rules (`claims`). What to do with each object is the applier's
//! `plan`; this file only orders the writes.

use std::sync::Arc;

use futures::TryFutureExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;

use super::claims;
use crate::api::{BranchRelease, Project};
use crate::apply::Applier;
use crate::controller::context::Context;
use crate::controller::error::{Error, Result};
use crate::model::branch_release::build::{Release, ReleaseObjects, Rendering};
use crate::model::branch_release::diagnose::Problem;
use crate::model::branch_release::jobs::{self, JobState};
use crate::model::branch_release::outcome::{self, VolumeState};
use crate::model::branch_release::reference::{self, Source};
use crate::model::branch_release::status::JobObservation;
use crate::model::refusal::Refusal;
use crate::naming;

/// The child set as applied.
pub struct Children {
    /// Per component, in order: its Deployment as applied or cached (None: refused).
    pub deployments: Vec<Option<Arc<Deployment>>>,
    /// Per volume, in order.
    pub claims: Vec<VolumeState>,
    /// Every child not written as declared, and why.
    pub refusals: Vec<Refusal>,
    /// Claims of volumes no longer declared, kept with their data.
    pub detached: Vec<String>,
    /// The deploy jobs of their current runs.
    pub jobs: Vec<JobObservation>,
}

impl Children {
    /// Whether to look again soon: a refused child may be in the way of an object no watch sees
    /// (it lacks Oksa's label), and a volume waiting for its reference data waits for another
    /// branch's claim.
    pub fn look_again_soon(&self) -> bool {
        !self.refusals.is_empty()
            || self
                .claims
                .iter()
                .any(|c| matches!(c.origin, Some(reference::Origin::Waiting(_))))
    }

    /// What the status is composed from.
    pub fn applied<'a>(
        &'a self,
        release_name: &'a str,
        url: Option<String>,
        rendering: Rendering,
        problems: Vec<Option<Problem>>,
    ) -> outcome::Applied<'a> {
        outcome::Applied {
            release_name,
            url,
            rendering,
            deployments: &self.deployments,
            problems,
            claims: &self.claims,
            refusals: self.refusals.clone(),
            detached_volumes: self.detached.clone(),
            jobs: self.jobs.clone(),
        }
    }
}

/// Applies `objects`, the branch's rendering of `model`. The kinds are independent of each other
/// (pods simply wait for their claims), so they are written concurrently, and a reconcile costs
/// about one round trip instead of one per object, except when the branch falls asleep
/// (`routes_first`): then the routes lead to the edge before the workloads stop, so no request
/// meets a branch with nothing behind its URL. The deploy jobs come last: an `AfterRollout` one
/// starts only once the components it follows are ready (see `apply_jobs`). `claims_guard`
/// completes before any claim is written (see `claims::sync`); the other kinds do not wait for it.
pub async fn apply(
    ctx: &Context,
    applier: &Applier<'_>,
    model: &Release<'_>,
    objects: ReleaseObjects,
    routes_first: bool,
    clone: Option<&str>,
    claims_guard: impl Future<Output = Result<()>>,
) -> Result<Children> {
    let (release, project) = (model.branch_release, model.project);
    let stores = &ctx.stores;
    // A Gateway asked for in a cluster without Gateway API: refused with the reason, not tried.
    let (http_route, missing_gateway_api) = match objects.http_route {
        Some(route) if !ctx.gateway_api => (None, Some(outcome::gateway_api_missing(&route))),
        route => (route, None),
    };
    let routes = async {
        tokio::try_join!(
            applier
                .sync(&stores.ingresses, objects.ingress.into_iter().collect())
                .err_into::<Error>(),
            applier
                .sync(&stores.http_routes, http_route.into_iter().collect())
                .err_into::<Error>(),
        )
    };
    let workloads = async {
        tokio::try_join!(
            claims::sync(ctx, applier, release, project, objects.claims, claims_guard),
            applier
                .sync(&stores.deployments, objects.deployments)
                .err_into::<Error>(),
            applier
                .sync(&stores.services, objects.services)
                .err_into::<Error>(),
            applier
                .sync(&stores.autoscalers, objects.autoscalers)
                .err_into::<Error>(),
        )
    };
    let ((ingress, http_route), (claims, deployments, services, autoscalers)) = if routes_first {
        let routes = routes.await?;
        (routes, workloads.await?)
    } else {
        tokio::try_join!(routes, workloads)?
    };
    let detached = claims::detach_undeclared(ctx, applier, release).await?;
    let refusals = outcome::refused(&deployments)
        .chain(outcome::refused(&services))
        .chain(outcome::refused(&ingress))
        .chain(outcome::refused(&autoscalers))
        .chain(outcome::route_refusals(&http_route))
        .chain(missing_gateway_api)
        .collect();
    let deployments: Vec<Option<Arc<Deployment>>> =
        deployments.into_iter().map(Result::ok).collect();
    // Deploy jobs start once the components are ready, never while asleep or held.
    let rolled_out =
        !model.rendering.at_zero() && outcome::rolled_out(release, &deployments, model.rendering);
    let jobs = apply_jobs(ctx, applier, model, rolled_out, clone).await?;
    Ok(Children {
        deployments,
        claims,
        refusals,
        detached,
        jobs,
    })
}

/// Applies the deploy jobs of their current runs (see `jobs`): existing ones stay, `AfterClone`
/// ones start once there is a clone (`clone`), `AfterRollout` ones once `rolled_out`; other runs'
/// Jobs go. Returns how each job with a run stands.
async fn apply_jobs(
    ctx: &Context,
    applier: &Applier<'_>,
    release: &Release<'_>,
    rolled_out: bool,
    clone: Option<&str>,
) -> Result<Vec<JobObservation>> {
    let not_started = if release.rendering.asleep {
        JobState::Deferred
    } else {
        JobState::Waiting
    };
    let store = &ctx.stores.jobs;
    let namespace = applier.owner().namespace.as_str();
    let exists = |name: &str| store.named(namespace, name).is_some();
    let declared = jobs::declared(release, rolled_out, clone, exists);
    let synced = applier.sync(store, declared).await?;
    Ok(release
        .branch_release
        .spec
        .jobs
        .iter()
        .filter_map(|job| {
            let run = jobs::run_of(release.branch_release, job, clone)?;
            let job_name = naming::job_name(&release.name, &job.name, &run);
            let found = synced.iter().find(|s| match s {
                Ok(found) => found.metadata.name.as_deref() == Some(job_name.as_str()),
                Err(refusal) => refusal.name == job_name,
            });
            let state = match found {
                Some(Err(refusal)) => JobState::Failed {
                    exit_code: None,
                    message: refusal.message.clone(),
                },
                Some(Ok(found)) => {
                    // The Job controller labels its pods with the Job's name.
                    let pods = ctx.stores.pods_labelled(
                        namespace,
                        "batch.kubernetes.io/job-name",
                        &job_name,
                    );
                    jobs::state(Some(found), &pods)
                }
                None => not_started.clone(),
            };
            Some(JobObservation {
                name: job.name.clone(),
                job_name,
                state,
            })
        })
        .collect())
}

/// The key of the branch's clones and whether its components are held for their data (see
/// `jobs::held`), from the claims and Jobs in the cache.
pub fn data_hold(
    ctx: &Context,
    release: &BranchRelease,
    project: &Project,
    release_name: &str,
) -> (Option<String>, bool) {
    let namespace = release.metadata.namespace.clone().unwrap_or_default();
    let mut missing = false;
    let mut cloned = Vec::new();
    for volume in &release.spec.volumes {
        if reference::source(release, project, &volume.name) == Source::Own {
            continue;
        }
        let claim_name = naming::volume_claim_name(release_name, &volume.name);
        let claim = ctx
            .stores
            .claims
            .named(&namespace, &claim_name)
            .and_then(|cached| cached.object().ok());
        match claim {
            // Being deleted (a person asked for a fresh clone): it can only go once no pod uses
            // it, so the components wait at zero until it is gone and cloned again.
            None => missing = true,
            Some(claim) if claim.metadata.deletion_timestamp.is_some() => missing = true,
            Some(claim) => {
                if claim.spec.and_then(|s| s.data_source).is_some() {
                    cloned.push(claim.metadata.uid.unwrap_or_default());
                }
            }
        }
    }
    let clone = jobs::clone_key(cloned.iter().map(String::as_str));
    let succeeded = |job_name: &str| {
        ctx.stores
            .jobs
            .named(&namespace, job_name)
            .and_then(|job| job.object().ok())
            .is_some_and(|job| jobs::state::<Pod>(Some(&job), &[]) == JobState::Succeeded)
    };
    let held = jobs::held(release, release_name, missing, clone.as_deref(), succeeded);
    (clone, held)
}
