//! The applier: brings the children of one owner to what the owner declares. What to do with
//! each child is decided by `plan` (pure, shared with `oksa deploy --dry-run`); this module
//! carries it out.
//!
//! For each declared child the plan decides skip-or-apply from two facts:
//! - what Oksa last applied, kept on the child as a hash of the declaration (`fingerprint`): any
//!   change of the declaration, including a field Oksa no longer declares, is applied, and
//!   server-side apply removes what is no longer declared;
//! - drift (`drift`): someone else's edit of a declared field (a `kubectl scale`) is put back.
//!
//! When neither holds, nothing is sent: a resync with nothing to change writes nothing.
//!
//! It never writes over an object that is not its owner's (same name, no controller reference
//! to the owner): that child is refused, with a message naming it, and so is a child the API
//! server rejects. Refusals are values, not errors, so the owner's status can report them for
//! the current generation. Children that are no longer declared are pruned, and only when they
//! are the owner's.

mod drift;
pub mod failed;
mod fair_gate;
pub mod fingerprint;
pub mod plan;
mod refusal;
mod tally;

use std::collections::HashSet;
use std::fmt::Debug;
use std::sync::Arc;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, Preconditions};
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

pub use crate::model::refusal::{Refusal, RefusalReason};
pub use failed::Failed;
pub use fair_gate::FairGate;
pub use plan::{Belonging, Leftover, Owner, Step};
pub use refusal::{describe, is_refusal};
pub use tally::Tally;

use crate::compact::Compact;
use crate::labels::FIELD_MANAGER;
use crate::watch::Cache;

/// The state of one declared child after the applier has dealt with it.
pub type Synced<K> = Result<Arc<K>, Refusal>;

/// Applies the children of one owner. One per reconcile.
pub struct Applier<'a> {
    client: &'a Client,
    owner: &'a Owner,
    tally: &'a Tally<'a>,
    /// The turns of new Services, shared by every reconcile (see `fair_gate`).
    service_creations: &'a FairGate,
}

impl<'a> Applier<'a> {
    pub fn new(
        client: &'a Client,
        owner: &'a Owner,
        tally: &'a Tally<'a>,
        service_creations: &'a FairGate,
    ) -> Self {
        Applier {
            client,
            owner,
            tally,
            service_creations,
        }
    }

    pub fn owner(&self) -> &Owner {
        self.owner
    }

    /// The writes of this reconcile, for writes made beside the applier.
    pub fn tally(&self) -> &Tally<'a> {
        self.tally
    }

    /// The live object of that name: from the cache, or, when the cache does not have it, from
    /// the API server (the caches only hold objects with Oksa's label, and a new object may not be
    /// cached yet), so that an object someone else made is never mistaken for a free name.
    pub async fn live<K>(
        &self,
        store: &Cache<Compact<K>>,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Value>, Failed>
    where
        K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + Serialize
            + Debug,
    {
        let kind = K::kind(&());
        if let Some(cached) = store.named(namespace, name) {
            return cached
                .json()
                .map(Some)
                .map_err(failed::decoding("read", &kind, name));
        }
        let api = Api::<K>::namespaced(self.client.clone(), namespace);
        match api
            .get_opt(name)
            .await
            .map_err(failed::on("read", &kind, name))?
        {
            Some(object) => serde_json::to_value(object)
                .map(Some)
                .map_err(failed::decoding("read", &kind, name)),
            None => Ok(None),
        }
    }

    /// Applies `declared` over `live` unless it is already in place. Refuses an object that is
    /// not the owner's, and reports the API server's refusal of the object as declared.
    pub async fn apply<K>(&self, declared: &K, live: Option<&Value>) -> Result<Synced<K>, Failed>
    where
        K: Resource<DynamicType = ()> + Clone + Serialize + DeserializeOwned + Debug,
    {
        let kind = K::kind(&()).to_string();
        let name = declared.name_any();
        let stamped =
            plan::Stamped::of(declared).map_err(failed::decoding("apply", &kind, &name))?;
        match (plan::step(self.owner, &stamped, live), live) {
            (Step::Refuse(whose), _) => {
                return Ok(Err(Refusal {
                    message: format!(
                        "{kind} {name} already exists and belongs to {whose}; Oksa does not take over an object it did not create for this {}",
                        self.owner.reference.kind
                    ),
                    kind,
                    name,
                    reason: RefusalReason::NotOwned,
                }));
            }
            (Step::Skip, Some(live)) => {
                self.tally.skipped(&kind, &name);
                return serde_json::from_value(live.clone())
                    .map(|object| Ok(Arc::new(object)))
                    .map_err(failed::decoding("read", &kind, &name));
            }
            _ => {}
        }
        let body = stamped.body;
        // Untyped, so that one applier serves namespaced and cluster-scoped kinds alike.
        let resource = ApiResource::erase::<K>(&());
        let api: Api<DynamicObject> = match declared.namespace() {
            Some(namespace) => Api::namespaced_with(self.client.clone(), &namespace, &resource),
            None => Api::all_with(self.client.clone(), &resource),
        };
        let params = PatchParams::apply(FIELD_MANAGER).force();
        // A new Service waits for its project's turn: the API server allocates ClusterIPs one
        // at a time (see `fair_gate`).
        let _turn = match live {
            None if kind == "Service" => {
                Some(self.service_creations.enter(&self.owner.namespace).await)
            }
            _ => None,
        };
        match api.patch(&name, &params, &Patch::Apply(&body)).await {
            Ok(applied) => {
                self.tally.wrote(&kind, &name, "apply");
                let applied = serde_json::to_value(applied)
                    .and_then(serde_json::from_value)
                    .map_err(failed::decoding("apply", &kind, &name))?;
                Ok(Ok(Arc::new(applied)))
            }
            Err(kube::Error::Api(status)) if is_refusal(&status) => Ok(Err(Refusal {
                message: format!(
                    "{kind} {name} was refused by the API server: {}",
                    status.message.trim()
                ),
                kind,
                name,
                reason: RefusalReason::Rejected,
            })),
            Err(error) => Err(failed::on("apply", &kind, &name)(error)),
        }
    }

    /// Brings one kind of child in line with the declaration: applies each declared object (see
    /// `apply`, concurrently: they are independent), then prunes the owner's objects of that kind
    /// (in its scope: see `Owner::scopes`) that are no longer declared (see `plan::leftover`).
    /// Returns each declared object's state, in order.
    pub async fn sync<K>(
        &self,
        store: &Cache<Compact<K>>,
        declared: Vec<K>,
    ) -> Result<Vec<Synced<K>>, Failed>
    where
        K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
            + Clone
            + Serialize
            + DeserializeOwned
            + Debug,
    {
        let synced = futures::future::try_join_all(declared.iter().map(|object| async move {
            let namespace = object.namespace().unwrap_or_default();
            let live = self.live(store, &namespace, &object.name_any()).await?;
            self.apply(object, live.as_ref()).await
        }))
        .await?;
        // The owner's children of this kind that it no longer declares; by their labels first,
        // which costs nothing, then by their whole metadata.
        let kind = K::kind(&());
        let namespace = &self.owner.namespace;
        let wanted: HashSet<String> = declared
            .iter()
            .filter(|o| o.meta().namespace.as_ref() == Some(namespace))
            .map(|o| o.name_any())
            .collect();
        let candidates = store
            .in_namespace(namespace)
            .into_iter()
            .filter(|o| self.owner.scopes(o.namespace(), o.labels()))
            .filter(|o| !wanted.contains(o.name()));
        for candidate in candidates {
            let meta =
                candidate
                    .full_meta()
                    .map_err(failed::decoding("read", &kind, candidate.name()))?;
            if plan::leftover(self.owner, &kind, &meta) == Some(Leftover::Prune) {
                self.delete::<K>(namespace, &meta).await?;
            }
        }
        Ok(synced)
    }

    /// Deletes one object, guarded by its UID so that a re-created object of the same name is
    /// never hit. An object already gone counts as deleted.
    pub async fn delete<K>(&self, namespace: &str, meta: &ObjectMeta) -> Result<(), Failed>
    where
        K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + Debug,
    {
        let api = Api::<K>::namespaced(self.client.clone(), namespace);
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: meta.uid.clone(),
                resource_version: None,
            }),
            ..DeleteParams::background()
        };
        let name = meta.name.as_deref().unwrap_or_default();
        match api.delete(name, &params).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.is_not_found() => {}
            Err(error) => return Err(failed::on("prune", &K::kind(&()), name)(error)),
        }
        self.tally.wrote(
            &K::kind(&()),
            meta.name.as_deref().unwrap_or_default(),
            "delete",
        );
        Ok(())
    }
}
