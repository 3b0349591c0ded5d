//! `Compact<K>`: how Oksa caches the objects it manages. The name, the namespace and the labels
//! (what the caches are keyed and filtered by), and the rest of the object as its JSON text,
//! packed (see `packed`).
//!
//! A Deployment deserialized into k8s-openapi's structs takes about 10 KB, because every optional
//! part of a pod template is laid out inline whether it is set or not; its JSON text takes about
//! 2.3 KB, and packed against the first Deployment cached about 350 bytes. Even typed metadata
//! alone (k8s-openapi's `ObjectMeta`, 360 bytes inline before its strings) was a third of a
//! cached Service. With thousands of children cached, that difference is most of the operator's
//! memory. Reconciles only need a few objects at a time, so they are turned back into `K` (or
//! into JSON for the no-op comparison) when read, which costs microseconds.
//!
//! Watches read objects as `Wire<K>` (typed metadata, the rest as JSON): what their triggers
//! need. The cache keeps the `Compact<K>` made of it.

mod labels;
mod packed;
mod pod;

use std::fmt;
use std::marker::PhantomData;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use kube::core::{PartialObjectMeta, PartialObjectMetaExt};
use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

pub use labels::Labels;
pub use packed::Dictionary;
use packed::Packed;

pub struct Compact<K> {
    name: Box<str>,
    namespace: Option<Box<str>>,
    labels: Labels,
    /// The object's other fields as JSON, without `apiVersion`/`kind`: its other metadata under
    /// `metadata` (annotations, owners, UID…), then spec, status…
    body: Packed,
    kind: PhantomData<fn() -> K>,
}

/// Top-level fields of a kind that Oksa never reads from its cache: dropped when cached.
fn unread_fields(kind: &str) -> &'static [&'static str] {
    match kind {
        // A pod is diagnosed from its status and labels; its spec is most of it.
        "Pod" => &["spec"],
        _ => &[],
    }
}

impl<K: Resource<DynamicType = ()>> Compact<K> {
    /// Compacts an object as read from the API server, its body packed against `dictionary`
    /// (its cache's). `managedFields` (often half an object, never read) are dropped.
    pub fn from_wire(wire: Wire<K>, dictionary: &Dictionary) -> Self {
        let Wire {
            mut metadata,
            mut fields,
            ..
        } = wire;
        metadata.managed_fields = None;
        let name = metadata.name.take().unwrap_or_default().into_boxed_str();
        let namespace = metadata.namespace.take().map(String::into_boxed_str);
        let labels = metadata
            .labels
            .take()
            .map(|labels| Labels::from_map(&labels))
            .unwrap_or_default();
        fields.remove("apiVersion");
        fields.remove("kind");
        let kind = K::kind(&());
        for field in unread_fields(&kind) {
            fields.remove(*field);
        }
        if kind == "Pod" {
            metadata.annotations = None;
            pod::slim(&mut metadata, &mut fields);
        }
        // ObjectMeta and a map of JSON values always serialize.
        let metadata = serde_json::to_value(metadata).unwrap_or_default();
        let mut body = Map::with_capacity(fields.len() + 1);
        body.insert("metadata".into(), metadata);
        body.extend(fields);
        let text = serde_json::to_string(&body).unwrap_or_default();
        Compact {
            name,
            namespace,
            labels,
            body: Packed::new(dictionary, &text),
            kind: PhantomData,
        }
    }

    /// Compacts the JSON of a `K`.
    pub fn from_json(object: Value, dictionary: &Dictionary) -> Result<Self, serde_json::Error> {
        Ok(Compact::from_wire(
            serde_json::from_value(object)?,
            dictionary,
        ))
    }

    /// The object as JSON, as the API server would return it (minus what was dropped).
    pub fn json(&self) -> Result<Value, serde_json::Error> {
        let body = self.body.text().map_err(serde_json::Error::custom)?;
        let mut fields: Map<String, Value> = serde_json::from_str(&body)?;
        let mut metadata = match fields.remove("metadata") {
            Some(Value::Object(metadata)) => metadata,
            _ => Map::new(),
        };
        metadata.insert("name".into(), Value::from(&*self.name));
        if let Some(namespace) = &self.namespace {
            metadata.insert("namespace".into(), Value::from(&**namespace));
        }
        if !self.labels.is_empty() {
            metadata.insert("labels".into(), serde_json::to_value(self.labels.to_map())?);
        }
        fields.insert("apiVersion".into(), K::api_version(&()).into());
        fields.insert("kind".into(), K::kind(&()).into());
        fields.insert("metadata".into(), Value::Object(metadata));
        Ok(Value::Object(fields))
    }

    /// The object's whole metadata (but `managedFields`): for what judges an object by it, as
    /// `apply::Owner::belonging` does.
    pub fn full_meta(&self) -> Result<ObjectMeta, serde_json::Error> {
        let mut json = self.json()?;
        serde_json::from_value(json["metadata"].take())
    }

    /// The object itself. Fails only when the API server sent an object its own schema does
    /// not describe: callers report that object rather than stop.
    pub fn object(&self) -> Result<K, serde_json::Error>
    where
        K: DeserializeOwned,
    {
        serde_json::from_value(self.json()?)
    }
}

impl<K> Compact<K> {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    /// The object's labels.
    pub fn labels(&self) -> &Labels {
        &self.labels
    }
}

impl<K> Clone for Compact<K> {
    fn clone(&self) -> Self {
        Compact {
            name: self.name.clone(),
            namespace: self.namespace.clone(),
            labels: self.labels.clone(),
            body: self.body.clone(),
            kind: PhantomData,
        }
    }
}

impl<K: Resource<DynamicType = ()>> fmt::Debug for Compact<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(&format!("Compact<{}>", K::kind(&())))
            .field("name", &self.name)
            .field("namespace", &self.namespace)
            .field("labels", &self.labels)
            .field("body", &self.body)
            .finish()
    }
}

/// An object as a watch reads it: typed metadata, the rest as JSON, until it is compacted.
pub struct Wire<K> {
    metadata: ObjectMeta,
    fields: Map<String, Value>,
    kind: PhantomData<fn() -> K>,
}

impl<K: Resource<DynamicType = ()>> Wire<K> {
    /// What the watch's triggers are given: the metadata that names the object and its owners.
    pub fn trigger_meta(&self) -> PartialObjectMeta<K> {
        let meta = &self.metadata;
        ObjectMeta {
            name: meta.name.clone(),
            namespace: meta.namespace.clone(),
            labels: meta.labels.clone(),
            owner_references: meta.owner_references.clone(),
            ..ObjectMeta::default()
        }
        .into_response_partial()
    }
}

impl<K> Clone for Wire<K> {
    fn clone(&self) -> Self {
        Wire {
            metadata: self.metadata.clone(),
            fields: self.fields.clone(),
            kind: PhantomData,
        }
    }
}

impl<K: Resource<DynamicType = ()>> fmt::Debug for Wire<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(&format!("Wire<{}>", K::kind(&())))
            .field("metadata", &self.metadata)
            .field("fields", &self.fields)
            .finish()
    }
}

impl<'de, K> Deserialize<'de> for Wire<K> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut fields = match Value::deserialize(deserializer)? {
            Value::Object(fields) => fields,
            other => return Err(D::Error::custom(format!("expected an object, got {other}"))),
        };
        let metadata = fields
            .remove("metadata")
            .map(serde_json::from_value)
            .transpose()
            .map_err(D::Error::custom)?
            .unwrap_or_default();
        Ok(Wire {
            metadata,
            fields,
            kind: PhantomData,
        })
    }
}

impl<K: Resource<DynamicType = ()>> Resource for Wire<K> {
    type DynamicType = ();
    type Scope = K::Scope;

    fn kind(dt: &()) -> std::borrow::Cow<'_, str> {
        K::kind(dt)
    }

    fn group(dt: &()) -> std::borrow::Cow<'_, str> {
        K::group(dt)
    }

    fn version(dt: &()) -> std::borrow::Cow<'_, str> {
        K::version(dt)
    }

    fn plural(dt: &()) -> std::borrow::Cow<'_, str> {
        K::plural(dt)
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::Pod;
    use serde_json::json;

    fn deployment() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "main-web", "namespace": "shop", "labels": {"app": "web"},
                "uid": "uid-1", "annotations": {"oksa.dev/branch": "main"},
                "ownerReferences": [{"apiVersion": "oksa.dev/v1alpha1", "kind": "BranchRelease",
                    "name": "main", "uid": "uid-main", "controller": true}],
                "managedFields": [{"manager": "oksa", "operation": "Apply"}]},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                "template": {"spec": {"containers": [{"name": "web", "image": "nginx"}]}}},
            "status": {"readyReplicas": 1}
        })
    }

    #[test]
    fn round_trips_everything_but_managed_fields() {
        let cached =
            Compact::<Deployment>::from_json(deployment(), &Dictionary::default()).unwrap();
        assert_eq!(cached.name(), "main-web");
        assert_eq!(cached.namespace(), Some("shop"));
        assert_eq!(cached.labels().get("app"), Some("web"));
        let mut expected = deployment();
        expected["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("managedFields");
        assert_eq!(cached.json().unwrap(), expected);
        let meta = cached.full_meta().unwrap();
        assert_eq!(meta.uid.as_deref(), Some("uid-1"));
        assert_eq!(meta.owner_references.unwrap()[0].name, "main");
        let object = cached.object().unwrap();
        assert_eq!(object.spec.replicas, Some(2));
        assert_eq!(object.status.unwrap().ready_replicas, Some(1));
    }

    #[test]
    fn triggers_see_names_labels_and_owners() {
        let wire: Wire<Deployment> = serde_json::from_value(deployment()).unwrap();
        let meta = wire.trigger_meta();
        assert_eq!(meta.metadata.name.as_deref(), Some("main-web"));
        assert_eq!(meta.metadata.namespace.as_deref(), Some("shop"));
        assert_eq!(meta.metadata.labels.unwrap()["app"], "web");
        assert_eq!(meta.metadata.owner_references.unwrap()[0].uid, "uid-main");
    }

    #[test]
    fn pods_are_cached_without_their_spec() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "web", "image": "nginx"}]},
            "status": {"phase": "Running"}});
        let cached = Compact::<Pod>::from_json(pod, &Dictionary::default()).unwrap();
        let object = cached.object().unwrap();
        assert!(object.spec.is_none());
        assert_eq!(object.status.unwrap().phase.as_deref(), Some("Running"));
    }

    #[test]
    fn is_a_fraction_of_the_typed_size() {
        let typed: Deployment = serde_json::from_value(deployment()).unwrap();
        // The second of a cache: the first is its dictionary.
        let dictionary = Dictionary::default();
        Compact::<Deployment>::from_json(deployment(), &dictionary).unwrap();
        let mut second = deployment();
        second["metadata"]["name"] = json!("feature-web");
        second["metadata"]["uid"] = json!("uid-2");
        let cached = Compact::<Deployment>::from_json(second, &dictionary).unwrap();
        let compact_size = std::mem::size_of_val(&cached) + cached.body.len();
        assert!(
            compact_size * 2 < std::mem::size_of_val(&typed),
            "{compact_size} vs {}",
            std::mem::size_of_val(&typed)
        );
    }
}
