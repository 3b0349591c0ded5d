//! Writing children with server-side apply, but only when they differ from what is declared.
//!
//! Every reconcile builds the full desired state. Sending it all every time would be correct
//! (server-side apply of an unchanged object does not persist anything) but it still costs an API
//! request per child per reconcile. So before applying, the desired object is compared with the live
//! one from the watch cache: when every field Oksa declares already has the declared value, nothing
//! is sent. Fields Oksa does not declare (defaults, other managers' fields) are ignored, so
//! someone's `kubectl scale` is put back while an annotation added by someone else stays theirs.

use serde_json::Value;

use crate::quantity;

/// True when every field of `desired` is present in `live` with the same value.
///
/// Arrays must have the same length and match element by element. Strings that are both
/// quantities compare by value (`1Gi` == `1024Mi`), because the API server rewrites quantities to
/// their canonical form. An empty array or object in `desired` matches an absent field, because
/// the API server drops empty fields.
pub fn is_subset(desired: &Value, live: &Value) -> bool {
    match (desired, live) {
        (Value::Object(want), Value::Object(have)) => {
            want.iter().all(|(key, value)| match have.get(key) {
                Some(live_value) => is_subset(value, live_value),
                None => is_empty(value),
            })
        }
        (Value::Array(want), Value::Array(have)) => {
            want.len() == have.len() && want.iter().zip(have).all(|(w, h)| is_subset(w, h))
        }
        (Value::String(want), Value::String(have)) => {
            want == have || quantity::compare(want, have) == Some(std::cmp::Ordering::Equal)
        }
        (Value::Number(want), Value::String(have)) | (Value::String(have), Value::Number(want)) => {
            want.to_string() == *have
        }
        (Value::Null, _) => true,
        (want, have) => want == have || (is_empty(want) && have.is_null()),
    }
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Array(items) => items.is_empty(),
        Value::Object(fields) => fields.is_empty(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_added_by_the_server_do_not_count_as_a_change() {
        let desired = json!({"spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "web"}]}}}});
        let live = json!({"spec": {"replicas": 2, "revisionHistoryLimit": 10,
            "template": {"spec": {"containers": [{"name": "web", "imagePullPolicy": "Always"}]}}},
            "status": {"readyReplicas": 2}});
        assert!(is_subset(&desired, &live));
    }

    #[test]
    fn someone_elses_edit_of_a_declared_field_is_a_change() {
        let desired = json!({"spec": {"replicas": 2}});
        assert!(!is_subset(&desired, &json!({"spec": {"replicas": 5}})));
        assert!(!is_subset(&desired, &json!({"spec": {}})));
    }

    #[test]
    fn lists_must_match_in_length_and_order() {
        let desired = json!({"ports": [{"port": 80}, {"port": 443}]});
        assert!(!is_subset(&desired, &json!({"ports": [{"port": 80}]})));
        assert!(!is_subset(
            &desired,
            &json!({"ports": [{"port": 443}, {"port": 80}]})
        ));
        assert!(is_subset(
            &desired,
            &json!({"ports": [{"port": 80, "protocol": "TCP"}, {"port": 443}]})
        ));
    }

    #[test]
    fn quantities_compare_by_value() {
        assert!(is_subset(
            &json!({"storage": "1024Mi"}),
            &json!({"storage": "1Gi"})
        ));
        assert!(is_subset(&json!({"cpu": "0.5"}), &json!({"cpu": "500m"})));
        assert!(!is_subset(
            &json!({"storage": "2Gi"}),
            &json!({"storage": "1Gi"})
        ));
        assert!(!is_subset(
            &json!({"image": "nginx:1"}),
            &json!({"image": "nginx:2"})
        ));
    }

    #[test]
    fn empty_fields_match_absent_ones() {
        assert!(is_subset(
            &json!({"metadata": {"annotations": {}}, "env": []}),
            &json!({"metadata": {}})
        ));
    }
}

/// Writing children: server-side apply when they differ, deletion of the ones that left the spec.
pub mod write {
    use std::collections::HashSet;
    use std::fmt::Debug;
    use std::sync::Arc;

    use kube::runtime::reflector::{ObjectRef, Store};

    use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
    use kube::{Api, Resource, ResourceExt};
    use serde::Serialize;
    use serde::de::DeserializeOwned;

    use serde_json::Value;

    use super::is_subset;
    use crate::compact::Compact;
    use crate::labels::FIELD_MANAGER;
    use crate::metrics::Metrics;

    /// Counts the writes of one reconcile (and reports each to the metrics), so the reconcile
    /// knows whether it changed anything.
    pub struct Tally<'a> {
        metrics: &'a Metrics,
        writes: std::sync::atomic::AtomicU32,
    }

    impl<'a> Tally<'a> {
        pub fn new(metrics: &'a Metrics) -> Self {
            Tally {
                metrics,
                writes: Default::default(),
            }
        }

        pub fn wrote(&self, kind: &str, verb: &'static str) {
            self.writes
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.metrics.wrote(kind, verb);
        }

        pub fn skipped(&self, kind: &str) {
            self.metrics.wrote(kind, "skipped");
        }

        pub fn writes(&self) -> u32 {
            self.writes.load(std::sync::atomic::Ordering::Relaxed)
        }
    }

    /// Applies `desired` unless `live` (the cached object, as JSON) already has every declared
    /// field. Returns the object the API server answered with, or None when nothing was sent.
    pub async fn apply_if_changed<K>(
        api: &Api<K>,
        desired: &K,
        live: Option<&Value>,
        tally: &Tally<'_>,
    ) -> Result<Option<K>, kube::Error>
    where
        K: Resource<DynamicType = ()> + Clone + Serialize + DeserializeOwned + Debug,
    {
        let desired_json = serde_json::to_value(desired).map_err(kube::Error::SerdeError)?;
        let kind = K::kind(&());
        if live.is_some_and(|live| is_subset(&desired_json, live)) {
            tally.skipped(&kind);
            return Ok(None);
        }
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let applied = api
            .patch(&desired.name_any(), &params, &Patch::Apply(&desired_json))
            .await?;
        tally.wrote(&kind, "apply");
        Ok(Some(applied))
    }

    /// Brings one kind of child in line with the spec: applies each desired object that differs
    /// from the cache, and deletes the cached objects for which `belongs` holds but that are no
    /// longer desired. Returns the current state of each desired object (as applied, or as cached
    /// when nothing needed writing), in the order of `desired`.
    pub async fn sync_children<K>(
        client: &kube::Client,
        store: &Store<Compact<K>>,
        desired: Vec<K>,
        belongs: impl Fn(&Compact<K>) -> bool,
        tally: &Tally<'_>,
    ) -> Result<Vec<Arc<K>>, kube::Error>
    where
        K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + Serialize
            + DeserializeOwned
            + Debug,
    {
        // The objects of one kind are independent: apply them concurrently.
        let current = futures::future::try_join_all(desired.iter().map(|object| {
            let namespace = object.namespace().unwrap_or_default();
            let key = ObjectRef::new(&object.name_any()).within(&namespace);
            let live = store.get(&key).map(|cached| cached.json());
            let api = Api::<K>::namespaced(client.clone(), &namespace);
            async move {
                Ok::<_, kube::Error>(Arc::new(
                    match (
                        apply_if_changed(&api, object, live.as_ref(), tally).await?,
                        live,
                    ) {
                        (Some(applied), _) => applied,
                        (None, Some(live)) => {
                            serde_json::from_value(live).map_err(kube::Error::SerdeError)?
                        }
                        // Not sent means it matched a cached object, so there is one; keep it total anyway.
                        (None, None) => object.clone(),
                    },
                ))
            }
        }))
        .await?;
        let wanted: HashSet<(Option<String>, String)> = desired
            .iter()
            .map(|o| (o.namespace(), o.name_any()))
            .collect();
        let mut stale: Vec<_> = store
            .state()
            .into_iter()
            .filter(|o| belongs(o) && !wanted.contains(&(o.namespace(), o.name_any())))
            .collect();
        // Group deletions by namespace only for the Api handle; order does not matter.
        stale.sort_by_key(|o| o.namespace());
        for object in stale {
            let api = Api::<K>::namespaced(client.clone(), &object.namespace().unwrap_or_default());
            delete_all(&api, vec![object], tally).await?;
        }
        Ok(current)
    }

    /// Deletes each object, guarded by its UID so a re-created object of the same name is never
    /// hit. An object already gone counts as deleted.
    pub async fn delete_all<K, Cached>(
        api: &Api<K>,
        stale: Vec<Arc<Cached>>,
        tally: &Tally<'_>,
    ) -> Result<usize, kube::Error>
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
        Cached: Resource,
    {
        let mut deleted = 0;
        for object in stale {
            let params = DeleteParams {
                preconditions: Some(Preconditions {
                    uid: object.uid(),
                    resource_version: None,
                }),
                ..DeleteParams::background()
            };
            match api.delete(&object.name_any(), &params).await {
                Ok(_) => {}
                Err(kube::Error::Api(status)) if status.is_not_found() => {}
                Err(error) => return Err(error),
            }
            tally.wrote(&K::kind(&()), "delete");
            deleted += 1;
        }
        Ok(deleted)
    }
}
