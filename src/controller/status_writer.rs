//! The one way Oksa writes the status of its own kinds: only when it changed, by server-side apply
//! of the status alone (so nobody's spec fields are touched), never over its own newer write, and
//! with changes that only report progress coalesced (see `coalesce`).

use std::fmt::Debug;
use std::time::{Duration, Instant};

use kube::api::{Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::coalesce::Coalescer;
use super::context::Context;
use super::error::Result;
use crate::api::{BranchRelease, BranchReleaseStatus, Phase, Project, ProjectStatus};
use crate::labels::FIELD_MANAGER;

/// A kind whose status Oksa writes.
pub trait OwnStatus:
    Resource<DynamicType = ()> + Clone + Debug + Serialize + DeserializeOwned + Send + Sync
{
    type Status: Clone + Default + PartialEq + Serialize + Send + Sync;

    fn current_status(&self) -> Option<&Self::Status>;
    /// The API of this object's kind where it lives (its namespace, or the cluster).
    fn api_of(&self, client: kube::Client) -> Api<Self>;
    /// The coalescer of this kind's status writes.
    fn coalescer(ctx: &Context) -> &Coalescer;
    /// Whether the change only reports progress (counts, summaries): it may wait its window.
    fn only_progress(old: &Self::Status, new: &Self::Status) -> bool;
    /// Whether a status says a rollout is in flight (it widens everyone's window).
    fn rolling_out(status: &Self::Status) -> bool;
}

impl OwnStatus for BranchRelease {
    type Status = BranchReleaseStatus;

    fn current_status(&self) -> Option<&BranchReleaseStatus> {
        self.status.as_ref()
    }
    fn api_of(&self, client: kube::Client) -> Api<Self> {
        Api::namespaced(client, &self.namespace().unwrap_or_default())
    }
    fn coalescer(ctx: &Context) -> &Coalescer {
        &ctx.release_progress
    }
    fn only_progress(old: &BranchReleaseStatus, new: &BranchReleaseStatus) -> bool {
        crate::model::branch_release::status::only_progress_changed(old, new)
    }
    fn rolling_out(status: &BranchReleaseStatus) -> bool {
        status.phase == Some(Phase::Progressing)
    }
}

impl OwnStatus for Project {
    type Status = ProjectStatus;

    fn current_status(&self) -> Option<&ProjectStatus> {
        self.status.as_ref()
    }
    fn api_of(&self, client: kube::Client) -> Api<Self> {
        Api::all(client)
    }
    fn coalescer(ctx: &Context) -> &Coalescer {
        &ctx.project_summaries
    }
    fn only_progress(old: &ProjectStatus, new: &ProjectStatus) -> bool {
        crate::model::project::status::only_summaries_changed(old, new)
    }
    // A Project's summaries do not roll out: only those holding an update set its window.
    fn rolling_out(_: &ProjectStatus) -> bool {
        false
    }
}

/// What became of a status.
#[derive(Debug)]
pub enum Written<S> {
    /// Already so (or the cache is still behind Oksa's own newer write): nothing sent.
    Unchanged,
    /// Only progress changed, and its window has not passed: written after this wait.
    Held(Duration),
    /// Written; this was the status before, for the events a change deserves.
    Changed { old: S },
}

impl<S> Written<S> {
    /// How long until a held update is due.
    pub fn held(&self) -> Option<Duration> {
        match self {
            Written::Held(wait) => Some(*wait),
            _ => None,
        }
    }
}

/// Writes `new` as `object`'s status, unless it is unchanged or held (see `Written`).
pub async fn write<K: OwnStatus>(
    ctx: &Context,
    object: &K,
    new: &K::Status,
) -> Result<Written<K::Status>> {
    let coalescer = K::coalescer(ctx);
    let key = super::object_key::ObjectKey::of(object);
    let cached_version = object.meta().resource_version.as_deref();
    if coalescer.behind_own_write(&key, cached_version) {
        return Ok(Written::Unchanged);
    }
    let old = object.current_status().cloned().unwrap_or_default();
    if old == *new {
        coalescer.settled(&key);
        return Ok(Written::Unchanged);
    }
    if K::only_progress(&old, new)
        && let Some(wait) = coalescer.wait_before(&key, Instant::now())
    {
        return Ok(Written::Held(wait));
    }
    let patch = json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": new,
    });
    let written = object
        .api_of(ctx.client.clone())
        .patch_status(
            &object.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await?;
    ctx.metrics.wrote(&K::kind(&()), &key.to_string(), "status");
    let versions = (cached_version, written.meta().resource_version.as_deref());
    coalescer.wrote(&key, Instant::now(), versions, K::rolling_out(new));
    Ok(Written::Changed { old })
}
