//! The volumes of a BranchRelease in the cluster: their claims are created, grown, refused,
//! detached and released here. What to do with one claim is decided by `volumes::plan` (pure);
//! this is the I/O around it.
//!
//! Data is never lost by an update: a volume that leaves the spec (removed or renamed) has its
//! claim *detached* (no owner, labelled `oksa.dev/detached`) instead of deleted, and reported in
//! status until a person deletes it; a volume declared again under the same name takes it back.
//! A `retain: true` claim carries no owner reference, so no deletion of its BranchRelease lets
//! garbage collection reach it; on deletion the finalizer labels it detached, from the spec as
//! it was when it was deleted.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Event, PersistentVolumeClaim};
use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::api::{BranchRelease, Project};
use crate::apply::{Applier, Belonging, Leftover, Refusal, plan};
use crate::controller::context::Context;
use crate::controller::error::Result;
use crate::controller::events;
use crate::labels;
use crate::model::branch_release::diagnose;
use crate::model::branch_release::outcome::VolumeState;
use crate::model::branch_release::reference::{self, Origin, Source, Start};
use crate::model::branch_release::volumes::{self, ClaimPlan};
use crate::naming;

/// Creates, grows or refuses each volume's claim, in the order of `spec.volumes`. A new claim of
/// reference data is created as a clone of its source (see `reference`), or waits for it.
/// `guard` (the volumes finalizer, see `reconcile`) completes before any claim is written: the
/// claims are read meanwhile, which spares a new branch one round trip to its claims.
pub async fn sync(
    ctx: &Context,
    applier: &Applier<'_>,
    release: &BranchRelease,
    project: &Project,
    declared: Vec<PersistentVolumeClaim>,
    guard: impl Future<Output = Result<()>>,
) -> Result<Vec<VolumeState>> {
    let namespace = applier.owner().namespace.as_str();
    let names: Vec<String> = declared.iter().map(ResourceExt::name_any).collect();
    let reads = futures::future::try_join_all(
        names
            .iter()
            .map(|name| applier.live(&ctx.stores.claims, namespace, name)),
    );
    // Also when no claim is written: a finalizer removed by hand is put back.
    let (guarded, lives) = futures::join!(guard, reads);
    guarded?;
    let lives = lives?;
    let when_missing = project
        .spec
        .reference_data
        .as_ref()
        .map(|r| r.when_missing)
        .unwrap_or_default();
    let mut states = Vec::with_capacity(declared.len());
    for ((volume, mut claim), live_json) in release.spec.volumes.iter().zip(declared).zip(lives) {
        let live = read_claim(live_json.clone())?;
        let source = reference::source(release, project, &volume.name);
        if live.is_none() {
            let source_claim = match &source {
                Source::Clone { claim, .. } => {
                    read_claim(applier.live(&ctx.stores.claims, namespace, claim).await?)?
                }
                Source::Own => None,
            };
            match reference::start(volume, &source, when_missing, source_claim.as_deref()) {
                Start::Wait(why) => {
                    states.push(VolumeState {
                        origin: Some(Origin::Waiting(why)),
                        ..VolumeState::default()
                    });
                    continue;
                }
                Start::Clone(from) => {
                    claim.spec.get_or_insert_default().data_source =
                        Some(reference::data_source(&from));
                }
                Start::EmptyInstead(why) => {
                    events::publish(ctx, release, true, "ReferenceDataMissing", why).await;
                }
                Start::Empty => {}
            }
        }
        if let Some(live) = &live
            && applier.owner().belonging(&live.metadata) == Belonging::Adoptable
            && live.labels().contains_key(labels::DETACHED)
        {
            // A detached claim of this branch is declared again: it is the volume's again.
            set_detached(ctx, live, false).await?;
            applier
                .tally()
                .wrote("PersistentVolumeClaim", &live.name_any(), "attach");
        }
        let (current, refusal) = match volumes::plan(volume, &mut claim, live.as_deref()) {
            ClaimPlan::Refuse(message) => (live, Some(message)),
            ClaimPlan::Create | ClaimPlan::Apply => {
                match applier.apply(&claim, live_json.as_ref()).await? {
                    Ok(current) => (Some(current), None),
                    Err(Refusal { message, .. }) => {
                        (live, Some(format!("volume {}: {message}", volume.name)))
                    }
                }
            }
        };
        let origin = current
            .as_deref()
            .and_then(|c| reference::origin(&volume.name, &source, c));
        states.push(VolumeState {
            claim: current,
            refusal,
            origin,
            pending: None,
        });
    }
    Ok(states)
}

/// Says why each Pending claim is pending, from the namespace's Warning events about claims
/// (listed only when one is Pending).
pub async fn explain_pending(
    ctx: &Context,
    namespace: &str,
    states: &mut [VolumeState],
) -> Result<()> {
    let pending = |state: &VolumeState| {
        state
            .claim
            .as_ref()
            .and_then(|c| c.status.as_ref())
            .and_then(|s| s.phase.as_deref())
            == Some("Pending")
    };
    if !states.iter().any(pending) {
        return Ok(());
    }
    let events = Api::<Event>::namespaced(ctx.client.clone(), namespace)
        .list(
            &kube::api::ListParams::default()
                .fields("involvedObject.kind=PersistentVolumeClaim,type=Warning")
                .limit(200),
        )
        .await?
        .items;
    for state in states.iter_mut().filter(|s| pending(s)) {
        let name = state
            .claim
            .as_ref()
            .map(|c| c.name_any())
            .unwrap_or_default();
        state.pending = diagnose::pending_claim(&name, &events);
    }
    Ok(())
}

/// A claim from its JSON (see `Applier::live`).
fn read_claim(json: Option<serde_json::Value>) -> Result<Option<Arc<PersistentVolumeClaim>>> {
    Ok(json
        .map(serde_json::from_value)
        .transpose()
        .map_err(kube::Error::SerdeError)?
        .map(Arc::new))
}

/// Detaches the claims of this branch whose volume left the spec (see `plan::leftover`), and
/// returns the names of every detached claim of this branch (detached now or before), for status.
pub async fn detach_undeclared(
    ctx: &Context,
    applier: &Applier<'_>,
    release: &BranchRelease,
) -> Result<Vec<String>> {
    let owner = applier.owner();
    let release_name = naming::release_name(&release.spec.branch);
    let wanted: Vec<String> = release
        .spec
        .volumes
        .iter()
        .map(|v| naming::volume_claim_name(&release_name, &v.name))
        .collect();
    let mut detached = Vec::new();
    let in_scope = ctx
        .stores
        .claims
        .in_namespace(&owner.namespace)
        .into_iter()
        .filter(|c| owner.scopes(c.namespace(), c.labels()));
    for cached in in_scope {
        let name = cached.name().to_string();
        if wanted.contains(&name) {
            continue;
        }
        let meta = cached.full_meta().map_err(kube::Error::SerdeError)?;
        match plan::leftover(owner, "PersistentVolumeClaim", &meta) {
            Some(Leftover::Detach) => {
                let claim = cached.object().map_err(kube::Error::SerdeError)?;
                set_detached(ctx, &claim, true).await?;
                applier
                    .tally()
                    .wrote("PersistentVolumeClaim", &claim.name_any(), "detach");
                // A retained claim (no owner reference) was kept on purpose: no news.
                if owner.belonging(&meta) == Belonging::Ours {
                    let note = format!(
                        "volume of claim {name} is no longer in the spec: the claim and its data are kept, \
                         detached (label {}=true), until someone deletes it; declaring the volume again takes it back",
                        labels::DETACHED
                    );
                    events::publish(ctx, release, false, "VolumeDetached", note).await;
                }
                detached.push(name);
            }
            Some(Leftover::Detached) => detached.push(name),
            Some(Leftover::Prune) | None => {}
        }
    }
    detached.sort();
    Ok(detached)
}

/// Before a BranchRelease with volumes goes: labels its claims of `retain: true` volumes (of the
/// final spec) detached, so they are listed as kept until a person deletes them. Retained claims
/// carry no owner reference, so garbage collection never reaches them; one still owned (created
/// before its volume was marked `retain`) loses its owner here, before garbage collection could
/// take it. A BranchRelease Oksa cannot read (`unreadable`) keeps every claim it owns: what
/// cannot be read cannot prove that a claim may go.
pub async fn finalize(
    ctx: &Context,
    release: &BranchRelease,
    namespace: &str,
    unreadable: bool,
) -> Result<()> {
    let api = Api::<PersistentVolumeClaim>::namespaced(ctx.client.clone(), namespace);
    let uid = release.metadata.uid.as_deref();
    let owned_by_it = |claim: &PersistentVolumeClaim| {
        claim
            .owner_references()
            .iter()
            .any(|r| Some(r.uid.as_str()) == uid)
    };
    // Read from the API, not the cache: this decision must not miss a claim.
    let kept: Vec<(PersistentVolumeClaim, String)> = if unreadable {
        api.list(&kube::api::ListParams::default().labels(labels::MANAGED_SELECTOR))
            .await?
            .items
            .into_iter()
            .filter(|claim| owned_by_it(claim))
            .map(|claim| {
                let note = format!(
                    "BranchRelease {} could not be read when it was deleted: claim {} and its data \
                     are kept, detached, until a person deletes it",
                    release.name_any(),
                    claim.name_any()
                );
                (claim, note)
            })
            .collect()
    } else {
        let release_name = naming::release_name(&release.spec.branch);
        let mut kept = Vec::new();
        for volume in release.spec.volumes.iter().filter(|v| v.retain) {
            let name = naming::volume_claim_name(&release_name, &volume.name);
            let Some(claim) = api.get_opt(&name).await? else {
                continue;
            };
            let ownerless_of_this_branch = claim.owner_references().is_empty()
                && claim.labels().get(labels::RELEASE) == Some(&release_name);
            if owned_by_it(&claim) || ownerless_of_this_branch {
                let note = format!(
                    "volume {} is retained: claim {name} and its data are kept, detached, for the \
                     next BranchRelease of this branch",
                    volume.name
                );
                kept.push((claim, note));
            }
        }
        kept
    };
    for (claim, note) in kept {
        if claim.labels().contains_key(labels::DETACHED) && claim.owner_references().is_empty() {
            continue;
        }
        set_detached(ctx, &claim, true).await?;
        ctx.metrics
            .wrote("PersistentVolumeClaim", &claim.name_any(), "detach");
        events::publish(ctx, release, false, "VolumeRetained", note).await;
    }
    Ok(())
}

/// Detaches a claim from every owner (labelled, so it can be found) or attaches it back (the
/// label goes; the next apply sets the owner). A merge patch, guarded by the resourceVersion it
/// read, and not server-side apply: the owner reference of a claim created by an older Oksa is
/// not in Oksa's applied set, and must go all the same.
async fn set_detached(ctx: &Context, claim: &PersistentVolumeClaim, detached: bool) -> Result<()> {
    let api = Api::<PersistentVolumeClaim>::namespaced(
        ctx.client.clone(),
        &claim.namespace().unwrap_or_default(),
    );
    let body = if detached {
        json!({"metadata": {
            "resourceVersion": claim.resource_version(),
            "ownerReferences": null,
            "labels": {labels::DETACHED: "true"},
        }})
    } else {
        json!({"metadata": {
            "resourceVersion": claim.resource_version(),
            "labels": {labels::DETACHED: null},
        }})
    };
    api.patch(
        &claim.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&body),
    )
    .await?;
    Ok(())
}
