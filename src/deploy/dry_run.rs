//! `oksa deploy --dry-run`: everything a deploy checks, and what it would change, with nothing
//! written. The API server checks the BranchRelease (schema and validation rules) through its
//! server-side dry run; Oksa's own rules are the model's (`validate::check`, `volumes::plan`);
//! the changes are its rendering (`build::build`) against the live children, decided by the
//! applier's own `plan`.

use std::fmt::Debug;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Service};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::{NamespaceResourceScope, jiff};
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;

use super::exit;
use super::preview::{self, Declared, Live};
use crate::api::{BranchRelease, Phase, Project};
use crate::apply::{Owner, describe};
use crate::gateway_api::HTTPRoute;
use crate::model::branch_release::build::{self, Release};
use crate::model::branch_release::validate;
use crate::model::branch_release::volumes::{self, ClaimPlan};
use crate::{labels, naming};

pub async fn run(client: &Client, namespace: &str, release: &BranchRelease) -> Result<u8, String> {
    let name = release.name_any();
    let api = Api::<BranchRelease>::namespaced(client.clone(), namespace);
    let current = api
        .get_opt(&name)
        .await
        .map_err(|e| format!("reading BranchRelease {name}: {}", describe(&e)))?;
    let mut candidate = api
        .patch(
            &name,
            &PatchParams::apply("oksa-deploy").force().dry_run(),
            &Patch::Apply(release),
        )
        .await
        .map_err(|e| format!("the cluster refused BranchRelease {name}: {}", describe(&e)))?;
    println!("dry run of BranchRelease {namespace}/{name} (nothing is written):");
    println!("  the API server accepts it (schema and validation rules)");
    if current.is_none() {
        // A new BranchRelease comes after every existing one: they keep what both ask for.
        candidate.metadata.creation_timestamp = Some(Time(jiff::Timestamp::now()));
    }

    let project = match Api::<Project>::all(client.clone())
        .get_opt(&candidate.spec.project)
        .await
    {
        Ok(project) => project,
        Err(kube::Error::Api(status)) if status.is_forbidden() => {
            println!(
                "  Oksa's own checks and the list of changes need to read Project {} (cluster-scoped), \
                 which these credentials may not: not checked",
                candidate.spec.project
            );
            return Ok(exit::READY);
        }
        Err(error) => return Err(format!("reading Project: {}", describe(&error))),
    };
    let siblings: Vec<Arc<BranchRelease>> = api
        .list(&ListParams::default())
        .await
        .map_err(|e| format!("listing BranchReleases: {}", describe(&e)))?
        .items
        .into_iter()
        .filter(|r| r.name_any() != name)
        .map(Arc::new)
        .collect();
    let project = match validate::check(&candidate, project.as_ref(), &siblings) {
        Err(blocked) if blocked.phase == Phase::Invalid => {
            eprintln!(
                "  refused by Oksa ({}): {}",
                blocked.reason, blocked.message
            );
            return Ok(exit::REFUSED);
        }
        Err(blocked) => {
            println!(
                "  Oksa would not deploy it yet ({}): {}",
                blocked.reason, blocked.message
            );
            return Ok(exit::READY);
        }
        Ok(project) => project,
    };
    println!("  Oksa accepts it (domain, hosts, names, branch limit)");

    let model = |release| -> Option<Release> {
        Some(Release {
            branch_release: release,
            project,
            name: naming::release_name(&release.spec.branch),
            owner: release.controller_owner_ref(&())?,
            // A sleeping branch stays asleep through a deploy it is scaled to zero for, and
            // otherwise wakes: the preview shows what it reports now.
            rendering: build::Rendering::reported(release, project),
        })
    };
    let candidate_model = model(&candidate).ok_or("the API server's answer has no uid")?;
    let next = build::build(&candidate_model);
    let previous = current.as_ref().and_then(model).map(|m| build::build(&m));
    let release_name = naming::release_name(&candidate.spec.branch);
    let owner = Owner {
        reference: candidate
            .controller_owner_ref(&())
            .ok_or("the API server's answer has no uid")?,
        labels: labels::release_labels(&candidate.spec.project, &release_name),
        namespace: namespace.to_string(),
    };
    let mut declared = preview::declared(&next);
    // Its deploy jobs: a Job that exists for this very spec runs nothing again.
    declared.extend(preview::rollout_jobs(&candidate_model));
    let live = [
        live_children::<Deployment>(client, namespace, &owner, &declared).await?,
        live_children::<HorizontalPodAutoscaler>(client, namespace, &owner, &declared).await?,
        live_children::<Service>(client, namespace, &owner, &declared).await?,
        live_children::<Ingress>(client, namespace, &owner, &declared).await?,
        live_children::<HTTPRoute>(client, namespace, &owner, &declared).await?,
        live_children::<PersistentVolumeClaim>(client, namespace, &owner, &declared).await?,
        live_children::<Job>(client, namespace, &owner, &declared).await?,
    ]
    .concat();

    // The volume rules: what Kubernetes cannot change about a claim is refused before it is tried.
    let claims = Api::<PersistentVolumeClaim>::namespaced(client.clone(), namespace);
    let mut refused = Vec::new();
    for (volume, mut desired) in candidate.spec.volumes.iter().zip(next.claims.clone()) {
        let claim_name = desired.name_any();
        let existing = claims
            .get_opt(&claim_name)
            .await
            .map_err(|e| format!("reading claim {claim_name}: {}", describe(&e)))?;
        if let ClaimPlan::Refuse(why) = volumes::plan(volume, &mut desired, existing.as_ref()) {
            refused.push((claim_name, why));
        }
    }

    let changes = preview::changes(
        &owner,
        previous.as_ref().map(preview::declared).as_deref(),
        &declared,
        &live,
        &refused,
    );
    for change in &changes {
        println!("  {}", preview::describe(change));
    }
    if preview::refused(&changes) {
        eprintln!("  the deploy would be refused for the objects marked refused");
        return Ok(exit::REFUSED);
    }
    Ok(exit::READY)
}

/// The live objects of kind `K` that matter: those carrying the release's labels (they may be
/// pruned) and those with a declared name (they may be someone else's).
async fn live_children<K>(
    client: &Client,
    namespace: &str,
    owner: &Owner,
    declared: &[Declared],
) -> Result<Vec<Live>, String>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + serde::Serialize
        + Debug,
{
    let kind = K::kind(&()).to_string();
    let api = Api::<K>::namespaced(client.clone(), namespace);
    let mut objects = match api
        .list(&ListParams::default().labels(&owner.selector()))
        .await
    {
        Ok(list) => list.items,
        // A kind this cluster does not serve (Gateway API not installed): none of it exists.
        Err(kube::Error::Api(status)) if status.is_not_found() => return Ok(Vec::new()),
        Err(error) => return Err(format!("listing {kind}s: {}", describe(&error))),
    };
    for wanted in declared.iter().filter(|d| d.kind == kind) {
        if objects.iter().any(|o| o.name_any() == wanted.name) {
            continue;
        }
        if let Some(object) = api
            .get_opt(&wanted.name)
            .await
            .map_err(|e| format!("reading {kind} {}: {}", wanted.name, describe(&e)))?
        {
            objects.push(object);
        }
    }
    objects
        .iter()
        .map(|object| {
            Ok(Live {
                kind: kind.clone(),
                name: object.name_any(),
                object: serde_json::to_value(object).map_err(|e| format!("reading {kind}: {e}"))?,
            })
        })
        .collect()
}
