//! The applier: brings the children of one owner to what the owner declares.
//!
//! For each declared child it decides skip-or-apply from two facts:
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
pub mod fingerprint;
mod refusal;
mod tally;

use std::collections::{BTreeMap, HashSet};
use std::fmt::Debug;
use std::sync::Arc;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, Preconditions};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

pub use refusal::{Refusal, RefusalReason, describe, is_refusal};
pub use tally::Tally;

use crate::compact::Compact;
use crate::labels::FIELD_MANAGER;

/// The owner of a set of children.
#[derive(Clone, Debug)]
pub struct Owner {
    /// The controller reference every child carries.
    pub reference: OwnerReference,
    /// Labels every child of this owner carries. A child with these labels and no controller
    /// reference at all was the owner's before (a retained or detached volume, an object of an
    /// older Oksa) and is taken back; anything else without the reference is refused.
    pub labels: BTreeMap<String, String>,
}

/// Who a live object belongs to, as far as this owner is concerned.
#[derive(Debug, PartialEq, Eq)]
pub enum Belonging {
    Ours,
    /// No controller reference, but the owner's labels: it was ours and is taken back.
    Adoptable,
    /// Someone else's: names who, when known.
    Foreign(String),
}

impl Owner {
    pub fn belonging(&self, meta: &ObjectMeta) -> Belonging {
        let controller = meta
            .owner_references
            .iter()
            .flatten()
            .find(|r| r.controller == Some(true));
        match controller {
            Some(owner) if owner.uid == self.reference.uid => Belonging::Ours,
            Some(owner) => Belonging::Foreign(format!("{} {}", owner.kind, owner.name)),
            None => {
                let labels = meta.labels.as_ref();
                let carries =
                    |key: &String, value: &String| labels.and_then(|l| l.get(key)) == Some(value);
                if !self.labels.is_empty() && self.labels.iter().all(|(k, v)| carries(k, v)) {
                    Belonging::Adoptable
                } else {
                    Belonging::Foreign("nobody Oksa knows (it was not created by Oksa)".into())
                }
            }
        }
    }
}

/// The state of one declared child after the applier has dealt with it.
pub type Synced<K> = Result<Arc<K>, Refusal>;

/// Applies the children of one owner. One per reconcile.
pub struct Applier<'a> {
    client: &'a Client,
    owner: &'a Owner,
    tally: &'a Tally<'a>,
}

impl<'a> Applier<'a> {
    pub fn new(client: &'a Client, owner: &'a Owner, tally: &'a Tally<'a>) -> Self {
        Applier {
            client,
            owner,
            tally,
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
        store: &Store<Compact<K>>,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Value>, kube::Error>
    where
        K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + Serialize
            + Debug,
    {
        let key = ObjectRef::new(name).within(namespace);
        if let Some(cached) = store.get(&key) {
            return cached.json().map(Some).map_err(kube::Error::SerdeError);
        }
        let api = Api::<K>::namespaced(self.client.clone(), namespace);
        match api.get_opt(name).await? {
            Some(object) => serde_json::to_value(object)
                .map(Some)
                .map_err(kube::Error::SerdeError),
            None => Ok(None),
        }
    }

    /// Applies `declared` over `live` unless it is already in place. Refuses an object that is
    /// not the owner's, and reports the API server's refusal of the object as declared.
    pub async fn apply<K>(
        &self,
        declared: &K,
        live: Option<&Value>,
    ) -> Result<Synced<K>, kube::Error>
    where
        K: Resource<DynamicType = ()> + Clone + Serialize + DeserializeOwned + Debug,
    {
        let kind = K::kind(&()).to_string();
        let name = declared.name_any();
        let belonging = live.map(|live| self.owner.belonging_of_json(live));
        if let Some(Belonging::Foreign(whose)) = belonging {
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
        let mut body = serde_json::to_value(declared).map_err(kube::Error::SerdeError)?;
        let hash = fingerprint::stamp(&mut body);
        // A child declared without an owner reference (a retained claim) is the owner's by its
        // labels alone.
        let declared_unowned = declared.owner_references().is_empty();
        let in_place = belonging == Some(Belonging::Ours)
            || (declared_unowned && belonging == Some(Belonging::Adoptable));
        if let Some(live) = live
            && in_place
            && fingerprint::on(live) == Some(hash.as_str())
            && drift::holds(&body, live)
        {
            self.tally.skipped(&kind, &name);
            return serde_json::from_value(live.clone())
                .map(|object| Ok(Arc::new(object)))
                .map_err(kube::Error::SerdeError);
        }
        // Untyped, so that one applier serves namespaced and cluster-scoped kinds alike.
        let resource = ApiResource::erase::<K>(&());
        let api: Api<DynamicObject> = match declared.namespace() {
            Some(namespace) => Api::namespaced_with(self.client.clone(), &namespace, &resource),
            None => Api::all_with(self.client.clone(), &resource),
        };
        let params = PatchParams::apply(FIELD_MANAGER).force();
        match api.patch(&name, &params, &Patch::Apply(&body)).await {
            Ok(applied) => {
                self.tally.wrote(&kind, &name, "apply");
                let applied = serde_json::to_value(applied)
                    .and_then(serde_json::from_value)
                    .map_err(kube::Error::SerdeError)?;
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
            Err(error) => Err(error),
        }
    }

    /// Brings one kind of child in line with the declaration: applies each declared object (see
    /// `apply`, concurrently: they are independent), then prunes the owner's objects of that kind
    /// that are no longer declared. Returns each declared object's state, in order.
    pub async fn sync<K>(
        &self,
        store: &Store<Compact<K>>,
        declared: Vec<K>,
        belongs: impl Fn(&Compact<K>) -> bool,
    ) -> Result<Vec<Synced<K>>, kube::Error>
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
        let wanted: HashSet<(Option<String>, String)> = declared
            .iter()
            .map(|o| (o.namespace(), o.name_any()))
            .collect();
        // Filtered in place: the store holds every branch's children, this owner's are a few.
        let stale: Vec<_> = store
            .state_filter(|o| belongs(o))
            .into_iter()
            .filter(|o| !wanted.contains(&(o.namespace(), o.name_any())))
            .filter(|o| self.owner.belonging(&o.full_meta()) == Belonging::Ours)
            .collect();
        for object in stale {
            self.delete::<K>(&object.namespace().unwrap_or_default(), object.meta())
                .await?;
        }
        Ok(synced)
    }

    /// Deletes one object, guarded by its UID so that a re-created object of the same name is
    /// never hit. An object already gone counts as deleted.
    pub async fn delete<K>(&self, namespace: &str, meta: &ObjectMeta) -> Result<(), kube::Error>
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
        match api
            .delete(meta.name.as_deref().unwrap_or_default(), &params)
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.is_not_found() => {}
            Err(error) => return Err(error),
        }
        self.tally.wrote(
            &K::kind(&()),
            meta.name.as_deref().unwrap_or_default(),
            "delete",
        );
        Ok(())
    }
}

impl Owner {
    /// `belonging` of an object as JSON; metadata that cannot be read is no proof of anything.
    fn belonging_of_json(&self, live: &Value) -> Belonging {
        match serde_json::from_value::<ObjectMeta>(live["metadata"].clone()) {
            Ok(meta) => self.belonging(&meta),
            Err(_) => Belonging::Foreign("an unreadable owner".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels;
    use serde_json::json;

    fn owner() -> Owner {
        Owner {
            reference: OwnerReference {
                api_version: "oksa.dev/v1alpha1".into(),
                kind: "BranchRelease".into(),
                name: "main".into(),
                uid: "uid-main".into(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            },
            labels: labels::release_labels("shop", "main"),
        }
    }

    fn meta(value: serde_json::Value) -> ObjectMeta {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn only_the_controller_reference_of_this_owner_makes_a_child_ours() {
        let owner = owner();
        let ours = meta(
            json!({"ownerReferences": [{"apiVersion": "oksa.dev/v1alpha1",
            "kind": "BranchRelease", "name": "main", "uid": "uid-main", "controller": true}]}),
        );
        assert_eq!(owner.belonging(&ours), Belonging::Ours);
        let sibling = meta(
            json!({"ownerReferences": [{"apiVersion": "oksa.dev/v1alpha1",
            "kind": "BranchRelease", "name": "api", "uid": "uid-api", "controller": true}],
            "labels": labels::release_labels("shop", "main")}),
        );
        assert_eq!(
            owner.belonging(&sibling),
            Belonging::Foreign("BranchRelease api".into())
        );
        let hand_made = meta(json!({"labels": {"app": "web"}}));
        assert!(matches!(owner.belonging(&hand_made), Belonging::Foreign(_)));
        let detached = meta(json!({"labels": labels::release_labels("shop", "main")}));
        assert_eq!(owner.belonging(&detached), Belonging::Adoptable);
    }
}
