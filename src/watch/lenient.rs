//! `Lenient<K>`: an object as a watch receives it, readable as a `K` or not.
//!
//! A typed list fails whole when one item does not deserialize: one tenant's object that Oksa's
//! types cannot read (stored under an older, looser CRD, or by a newer Oksa) would stop every
//! watch of its kind, and after a restart nothing would be reconciled for anyone. Watches read
//! `Lenient<K>` instead, which keeps an unreadable object's metadata and the reason, so that
//! object alone is reported and left out, and every other one is served.

use std::borrow::Cow;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

#[derive(Clone, Debug)]
pub struct Lenient<K> {
    pub metadata: ObjectMeta,
    /// The object, or why it could not be read as a `K`.
    pub object: Result<K, String>,
}

impl<'de, K: DeserializeOwned> Deserialize<'de> for Lenient<K> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        let metadata: ObjectMeta =
            serde_json::from_value(value["metadata"].clone()).map_err(serde::de::Error::custom)?;
        let object = serde_json::from_value(value).map_err(|e| e.to_string());
        Ok(Lenient { metadata, object })
    }
}

impl<K: Resource<DynamicType = ()>> Resource for Lenient<K> {
    type DynamicType = ();
    type Scope = K::Scope;

    fn kind(dt: &()) -> Cow<'_, str> {
        K::kind(dt)
    }

    fn group(dt: &()) -> Cow<'_, str> {
        K::group(dt)
    }

    fn version(dt: &()) -> Cow<'_, str> {
        K::version(dt)
    }

    fn plural(dt: &()) -> Cow<'_, str> {
        K::plural(dt)
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// An object that stands for one that could not be read: only its metadata is real. Used to drop
/// a stale, readable version of it from a cache.
pub trait Placeholder: Sized {
    fn placeholder(metadata: ObjectMeta) -> Self;

    /// A stand-in that lets Oksa finish the deletion of an object it cannot read (its finalizer
    /// would otherwise hold it for ever), when there is one to finish. Marked `UNREADABLE`, so
    /// the finalizer acts only on what the metadata proves.
    fn deletable_stand_in(_metadata: &ObjectMeta) -> Option<Self> {
        None
    }
}

impl Placeholder for crate::api::BranchRelease {
    fn placeholder(metadata: ObjectMeta) -> Self {
        crate::api::BranchRelease {
            metadata,
            spec: Default::default(),
            status: None,
        }
    }

    fn deletable_stand_in(metadata: &ObjectMeta) -> Option<Self> {
        let ours = metadata
            .finalizers
            .iter()
            .flatten()
            .any(|f| f == crate::labels::VOLUMES_FINALIZER);
        if metadata.deletion_timestamp.is_none() || !ours {
            return None;
        }
        let mut metadata = metadata.clone();
        metadata
            .annotations
            .get_or_insert_default()
            .insert(crate::labels::UNREADABLE.into(), "true".into());
        Some(Self::placeholder(metadata))
    }
}

impl Placeholder for crate::api::Project {
    fn placeholder(metadata: ObjectMeta) -> Self {
        crate::api::Project {
            metadata,
            spec: Default::default(),
            status: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::BranchRelease;
    use serde_json::json;

    #[test]
    fn an_unreadable_object_keeps_its_name_and_the_reason() {
        let good = json!({"apiVersion": "oksa.dev/v1alpha1", "kind": "BranchRelease",
            "metadata": {"name": "main", "namespace": "shop"},
            "spec": {"project": "shop", "branch": "main",
                "components": [{"name": "web", "containers": [{"name": "web", "image": "nginx"}]}]}});
        let mut bad = good.clone();
        bad["metadata"]["name"] = json!("broken");
        bad["spec"]["components"][0]["containers"][0]["readinessProbe"] =
            json!({"tcpSocket": {"port": 4294967296u64}});
        let list: Vec<Lenient<BranchRelease>> = serde_json::from_value(json!([good, bad])).unwrap();
        assert!(list[0].object.is_ok());
        assert_eq!(list[1].metadata.name.as_deref(), Some("broken"));
        assert!(list[1].object.is_err());
    }
}
