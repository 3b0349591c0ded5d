//! Watch streams that keep the caches in `Stores` current and trigger reconciles.

use std::fmt::Debug;

use futures::Stream;
use kube::runtime::reflector::store::Writer;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;

use crate::labels::MANAGED_SELECTOR;

/// Watches every object of kind K that Oksa manages (by label, in all namespaces), caches it
/// without `managedFields` (half of a typical object, never read here), and yields each object
/// that changed or was deleted.
pub fn managed<K>(
    client: &Client,
    writer: Writer<K>,
) -> impl Stream<Item = Result<K, watcher::Error>> + Send + 'static
where
    K: Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
{
    let config = watcher::Config::default()
        .labels(MANAGED_SELECTOR)
        .any_semantic();
    watcher(Api::<K>::all(client.clone()), config)
        .default_backoff()
        .modify(|object| object.meta_mut().managed_fields = None)
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
