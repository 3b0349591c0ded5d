//! Applies a BranchRelease's whole child set: every kind in its phase, each pruned in the owner's
//! scope, claims through their own rules (`claims`). What to do with each object is the applier's
//! `plan`; this file only orders the writes.

use std::sync::Arc;

use futures::TryFutureExt;
use k8s_openapi::api::apps::v1::Deployment;

use super::claims;
use crate::api::{BranchRelease, Project};
use crate::apply::Applier;
use crate::controller::context::Context;
use crate::controller::error::{Error, Result};
use crate::model::branch_release::build::ReleaseObjects;
use crate::model::branch_release::outcome::{self, VolumeState};
use crate::model::refusal::Refusal;

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
}

/// Applies `objects`. The kinds are independent of each other (pods simply wait for their
/// claims), so they are written concurrently, and a reconcile costs about one round trip instead
/// of one per object, except when the branch falls asleep (`routes_first`): then the routes lead
/// to the edge before the workloads stop, so no request meets a branch with nothing behind its
/// URL.
pub async fn apply(
    ctx: &Context,
    applier: &Applier<'_>,
    release: &BranchRelease,
    project: &Project,
    objects: ReleaseObjects,
    routes_first: bool,
) -> Result<Children> {
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
            claims::sync(ctx, applier, release, project, objects.claims),
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
    Ok(Children {
        deployments: deployments.into_iter().map(Result::ok).collect(),
        claims,
        refusals,
        detached,
    })
}
