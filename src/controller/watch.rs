//! Watch streams that keep the caches in `Stores` current and trigger reconciles.

use std::fmt::Debug;

use futures::Stream;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::reflector::store::Writer;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;

use crate::compact::Compact;
use crate::labels::MANAGED_SELECTOR;

/// Watches every object of kind K that Oksa manages (by label, in all namespaces), caches it
/// compacted, and yields each object that changed or was deleted.
pub fn managed<K>(
    client: &Client,
    writer: Writer<Compact<K>>,
) -> impl Stream<Item = Result<Compact<K>, watcher::Error>> + Send + 'static
where
    K: Resource<DynamicType = ()> + Send + Sync + 'static,
{
    let config = watcher::Config::default()
        .labels(MANAGED_SELECTOR)
        .any_semantic();
    watcher(Api::<Compact<K>>::all(client.clone()), config)
        .default_backoff()
        .reflect(writer)
        .touched_objects()
}

/// Watches the pods of Oksa's components for what diagnosing them needs: their labels (to find
/// their component) and status. `Compact` drops their spec; annotations go too.
pub fn pods(
    client: &Client,
    writer: Writer<Compact<Pod>>,
) -> impl Stream<Item = Result<Compact<Pod>, watcher::Error>> + Send + 'static {
    let config = watcher::Config::default()
        .labels(MANAGED_SELECTOR)
        .any_semantic();
    watcher(Api::<Compact<Pod>>::all(client.clone()), config)
        .default_backoff()
        .modify(|pod| pod.meta_mut().annotations = None)
        .reflect(writer)
        .touched_objects()
}

/// Watches every object of kind K (Oksa's own resources), caching it like `managed`.
pub fn all<K>(
    client: &Client,
    writer: Writer<K>,
) -> impl Stream<Item = Result<K, watcher::Error>> + Send + 'static
where
    K: Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
{
    watcher(
        Api::<K>::all(client.clone()),
        watcher::Config::default().any_semantic(),
    )
    .default_backoff()
    .modify(|object| object.meta_mut().managed_fields = None)
    .reflect(writer)
    .applied_objects()
}
