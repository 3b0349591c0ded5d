//! `Compact<K>`: how Oksa caches the objects it manages. Typed metadata (what the caches are keyed
//! and filtered by) plus the rest of the object as its JSON text.
//!
//! A Deployment deserialized into k8s-openapi's structs takes about 10 KB, because every optional
//! part of a pod template is laid out inline whether it is set or not; its JSON text takes about
//! 2.3 KB. With thousands of children cached, that difference is most of the operator's memory.
//! Reconciles only need a few objects at a time, so they are turned back into `K` (or into JSON
//! for the no-op comparison) when read, which costs microseconds.

mod labels;
mod pod;

use std::fmt;
use std::marker::PhantomData;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

pub use labels::Labels;

/// `meta()` has no labels and no annotations: read the labels with `labels()` (which shadows
/// `ResourceExt::labels`) or `full_meta()`.
pub struct Compact<K> {
    metadata: ObjectMeta,
    labels: Labels,
    /// The object's other top-level fields (spec, status…) as JSON, without `apiVersion`/`kind`.
    body: Box<str>,
    kind: PhantomData<fn() -> K>,
}

/// Where the body keeps `metadata.annotations` (a name no Kubernetes kind uses at the top).
const ANNOTATIONS: &str = "oksa:annotations";

/// Top-level fields of a kind that Oksa never reads from its cache: dropped when cached.
fn unread_fields(kind: &str) -> &'static [&'static str] {
    match kind {
        // A pod is diagnosed from its status and labels; its spec is most of it.
        "Pod" => &["spec", ANNOTATIONS],
        _ => &[],
    }
}

impl<K: Resource<DynamicType = ()>> Compact<K> {
    /// Compacts the JSON of a `K`. `managedFields` (often half an object, never read) are dropped.
    pub fn from_json(object: Value) -> Result<Self, serde_json::Error> {
        let mut fields = match object {
            Value::Object(fields) => fields,
            other => {
                return Err(serde_json::Error::custom(format!(
                    "expected an object, got {other}"
                )));
            }
        };
        let mut metadata: ObjectMeta = fields
            .remove("metadata")
            .map(serde_json::from_value)
            .transpose()?
            .unwrap_or_default();
        metadata.managed_fields = None;
        let labels = metadata
            .labels
            .take()
            .map(|labels| Labels::from_map(&labels))
            .unwrap_or_default();
        // Annotations are only ever compared, never looked up: as text they cost a few bytes
        // instead of a map node (~700 bytes) per object.
        if let Some(annotations) = metadata.annotations.take() {
            fields.insert(ANNOTATIONS.into(), serde_json::to_value(annotations)?);
        }
        fields.remove("apiVersion");
        fields.remove("kind");
        let kind = K::kind(&());
        for field in unread_fields(&kind) {
            fields.remove(*field);
        }
        if kind == "Pod" {
            pod::slim(&mut metadata, &mut fields);
        }
        Ok(Compact {
            metadata,
            labels,
            body: serde_json::to_string(&fields)?.into_boxed_str(),
            kind: PhantomData,
        })
    }

    /// The object as JSON, as the API server would return it (minus what was dropped).
    pub fn json(&self) -> Result<Value, serde_json::Error> {
        let mut fields: Map<String, Value> = serde_json::from_str(&self.body)?;
        let mut metadata = serde_json::to_value(self.full_meta())?;
        if let Some(annotations) = fields.remove(ANNOTATIONS) {
            metadata["annotations"] = annotations;
        }
        fields.insert("apiVersion".into(), K::api_version(&()).into());
        fields.insert("kind".into(), K::kind(&()).into());
        fields.insert("metadata".into(), metadata);
        Ok(Value::Object(fields))
    }

    /// The object's labels.
    pub fn labels(&self) -> &Labels {
        &self.labels
    }

    /// The object's metadata with its labels (not its annotations): for what judges an object
    /// by its metadata, as `apply::Owner::belonging` does.
    pub fn full_meta(&self) -> ObjectMeta {
        ObjectMeta {
            labels: (!self.labels.is_empty()).then(|| self.labels.to_map()),
            ..self.metadata.clone()
        }
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

impl<K> Clone for Compact<K> {
    fn clone(&self) -> Self {
        Compact {
            metadata: self.metadata.clone(),
            labels: self.labels.clone(),
            body: self.body.clone(),
            kind: PhantomData,
        }
    }
}

impl<K: Resource<DynamicType = ()>> fmt::Debug for Compact<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(&format!("Compact<{}>", K::kind(&())))
            .field("metadata", &self.metadata)
            .field("labels", &self.labels)
            .field("body", &self.body)
            .finish()
    }
}

impl<'de, K: Resource<DynamicType = ()>> Deserialize<'de> for Compact<K> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Compact::from_json(Value::deserialize(deserializer)?).map_err(D::Error::custom)
    }
}

impl<K: Resource<DynamicType = ()>> Resource for Compact<K> {
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
    use kube::ResourceExt;
    use serde_json::json;

    fn deployment() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "main-web", "namespace": "shop", "labels": {"app": "web"},
                "annotations": {"oksa.dev/branch": "main"},
                "managedFields": [{"manager": "oksa", "operation": "Apply"}]},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                "template": {"spec": {"containers": [{"name": "web", "image": "nginx"}]}}},
            "status": {"readyReplicas": 1}
        })
    }

    #[test]
    fn round_trips_everything_but_managed_fields() {
        let cached: Compact<Deployment> = serde_json::from_value(deployment()).unwrap();
        assert_eq!(cached.name_any(), "main-web");
        assert_eq!(cached.labels().get("app"), Some("web"));
        assert_eq!(cached.meta().labels, None, "kept as text");
        assert!(cached.annotations().is_empty(), "kept in the body");
        let mut expected = deployment();
        expected["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("managedFields");
        assert_eq!(cached.json().unwrap(), expected);
        let object = cached.object().unwrap();
        assert_eq!(object.spec.replicas, Some(2));
        assert_eq!(object.status.unwrap().ready_replicas, Some(1));
    }

    #[test]
    fn pods_are_cached_without_their_spec() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "web", "image": "nginx"}]},
            "status": {"phase": "Running"}});
        let cached: Compact<Pod> = serde_json::from_value(pod).unwrap();
        let object = cached.object().unwrap();
        assert!(object.spec.is_none());
        assert_eq!(object.status.unwrap().phase.as_deref(), Some("Running"));
    }

    #[test]
    fn is_a_fraction_of_the_typed_size() {
        let typed: Deployment = serde_json::from_value(deployment()).unwrap();
        let cached: Compact<Deployment> = serde_json::from_value(deployment()).unwrap();
        let compact_size = std::mem::size_of_val(&cached) + cached.body.len();
        assert!(
            compact_size * 2 < std::mem::size_of_val(&typed),
            "{compact_size} vs {}",
            std::mem::size_of_val(&typed)
        );
    }
}
