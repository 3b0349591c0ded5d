//! Watch streams that keep the caches current (the controller's `Stores`, the edge's) and trigger
//! reconciles. Kube plumbing shared by the runtime and the edge.

mod cache;
mod lenient;

pub use cache::{Cache, CacheWriter, Keyed, OwnWriter, cache};

use std::fmt::Debug;

use futures::{Stream, StreamExt, TryStreamExt};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, ObjectMeta};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;

use crate::compact::{Compact, Dictionary, Wire};
use crate::labels::MANAGED_SELECTOR;
use kube::core::PartialObjectMeta;
use lenient::{Lenient, Placeholder};

/// Objects per page of a watch's list. Each page's body is held whole while it is parsed, and at
/// start-up every watch lists at once: at kube's default of 500 the bodies were the operator's
/// largest allocation (6.6 MB of its 33 MB heap at 1,000 branches).
const LIST_PAGE_SIZE: u32 = 100;

/// The configuration every watch starts from.
pub fn config() -> watcher::Config {
    watcher::Config::default().page_size(LIST_PAGE_SIZE)
}

/// Watches every object of kind K that Oksa manages (by label, in all namespaces), caches it
/// compacted, and yields the metadata of each object that changed or was deleted (see
/// `Wire::trigger_meta`).
pub fn managed<K>(
    client: &Client,
    writer: OwnWriter<Compact<K>>,
) -> impl Stream<Item = Result<PartialObjectMeta<K>, watcher::Error>> + Send + 'static
where
    K: Resource<DynamicType = ()> + Send + Sync + 'static,
{
    selected(client, writer, MANAGED_SELECTOR)
}

/// Like `managed`, for the objects of kind K that `selector` picks out of those.
pub fn selected<K>(
    client: &Client,
    mut writer: OwnWriter<Compact<K>>,
    selector: &str,
) -> impl Stream<Item = Result<PartialObjectMeta<K>, watcher::Error>> + Send + 'static
where
    K: Resource<DynamicType = ()> + Send + Sync + 'static,
{
    let config = config().labels(selector).any_semantic();
    // The cache's own dictionary, set by the first body this watch packs (`compact::packed`).
    let dictionary = Dictionary::default();
    watcher(Api::<Wire<K>>::all(client.clone()), config)
        .default_backoff()
        .map_ok(move |event| {
            // The cache takes the object; the event goes on with what the triggers read.
            let (cached, passed) = split(event, &dictionary);
            writer.apply_owned(cached);
            passed
        })
        .touched_objects()
}

/// A watch event as the cache keeps it, and as the triggers see it.
fn split<K: Resource<DynamicType = ()>>(
    event: watcher::Event<Wire<K>>,
    dictionary: &Dictionary,
) -> (
    watcher::Event<Compact<K>>,
    watcher::Event<PartialObjectMeta<K>>,
) {
    let both = |wire: Wire<K>| (wire.trigger_meta(), Compact::from_wire(wire, dictionary));
    match event {
        watcher::Event::Apply(wire) => {
            let (meta, compact) = both(wire);
            (watcher::Event::Apply(compact), watcher::Event::Apply(meta))
        }
        watcher::Event::Delete(wire) => {
            let (meta, compact) = both(wire);
            (
                watcher::Event::Delete(compact),
                watcher::Event::Delete(meta),
            )
        }
        watcher::Event::InitApply(wire) => {
            let (meta, compact) = both(wire);
            (
                watcher::Event::InitApply(compact),
                watcher::Event::InitApply(meta),
            )
        }
        watcher::Event::Init => (watcher::Event::Init, watcher::Event::Init),
        watcher::Event::InitDone => (watcher::Event::InitDone, watcher::Event::InitDone),
    }
}

/// One of Oksa's own kinds, as its watches need it.
pub trait OwnKind:
    Resource<DynamicType = ()> + Placeholder + Clone + Debug + DeserializeOwned + Send + Sync + 'static
{
}

impl<K> OwnKind for K where
    K: Resource<DynamicType = ()>
        + Placeholder
        + Clone
        + Debug
        + DeserializeOwned
        + Send
        + Sync
        + 'static
{
}

/// Watches every object of kind K (Oksa's own resources), caching its `managedFields` as the
/// managers' names alone: their field sets, kept as JSON trees, are about 10 KB of every
/// BranchRelease and never read, while the names tell which tools apply it (expiry never
/// deletes what a declarative tool manages). An object
/// that cannot be read as a K is passed to `on_unreadable` and left out (see `Lenient`).
pub fn all<K>(
    client: &Client,
    writer: impl Into<CacheWriter<K>>,
    on_unreadable: impl Fn(&ObjectMeta, &str) + Send + 'static,
) -> impl Stream<Item = Result<K, watcher::Error>> + Send + 'static
where
    K: OwnKind,
{
    all_observed(client, writer, || {}, |_| {}, on_unreadable)
}

/// Like `all`, and also reports to `on_listed` each time a full list has been cached, and to
/// `on_change` every object that was listed, changed or deleted.
pub fn all_observed<K>(
    client: &Client,
    writer: impl Into<CacheWriter<K>>,
    on_listed: impl Fn() + Send + 'static,
    on_change: impl Fn(&K) + Send + 'static,
    on_unreadable: impl Fn(&ObjectMeta, &str) + Send + 'static,
) -> impl Stream<Item = Result<K, watcher::Error>> + Send + 'static
where
    K: OwnKind,
{
    let events = watcher(
        Api::<Lenient<K>>::all(client.clone()),
        config().any_semantic(),
    )
    .default_backoff()
    .try_filter_map(move |event| futures::future::ready(Ok(readable(event, &on_unreadable))))
    .modify(|object| managers_only(object.meta_mut()));
    writer
        .into()
        .reflect(events)
        .inspect(move |event| match event {
            Ok(watcher::Event::InitDone) => on_listed(),
            Ok(
                watcher::Event::Apply(object)
                | watcher::Event::InitApply(object)
                | watcher::Event::Delete(object),
            ) => on_change(object),
            _ => {}
        })
        .applied_objects()
}

/// Keeps of `managedFields` only each manager's name, once.
fn managers_only(meta: &mut ObjectMeta) {
    let Some(entries) = meta.managed_fields.take() else {
        return;
    };
    let mut names: Vec<String> = entries.into_iter().filter_map(|e| e.manager).collect();
    names.sort();
    names.dedup();
    meta.managed_fields = Some(
        names
            .into_iter()
            .map(|manager| ManagedFieldsEntry {
                manager: Some(manager),
                ..ManagedFieldsEntry::default()
            })
            .collect(),
    );
}

/// The event as it concerns the readable objects. An object that cannot be read is reported,
/// and becomes the deletion of a placeholder: whatever readable version of it was cached goes,
/// so no reconcile acts on a spec that is no longer the object's. In a (re)list it is left out.
fn readable<K: Placeholder>(
    event: watcher::Event<Lenient<K>>,
    on_unreadable: &impl Fn(&ObjectMeta, &str),
) -> Option<watcher::Event<K>> {
    // Err: a placeholder to drop from the cache; Ok: a readable object, or the stand-in of an
    // unreadable one whose deletion Oksa must finish (see `Placeholder::deletable_stand_in`).
    let take = |lenient: Lenient<K>| match lenient.object {
        Ok(object) => Ok(object),
        Err(reason) => {
            on_unreadable(&lenient.metadata, &reason);
            K::deletable_stand_in(&lenient.metadata).ok_or_else(|| K::placeholder(lenient.metadata))
        }
    };
    Some(match event {
        watcher::Event::Apply(object) => match take(object) {
            Ok(object) => watcher::Event::Apply(object),
            Err(placeholder) => watcher::Event::Delete(placeholder),
        },
        // In a (re)list, an object left out is one the cache does not keep after InitDone.
        watcher::Event::InitApply(object) => watcher::Event::InitApply(take(object).ok()?),
        watcher::Event::Delete(object) => {
            let metadata = object.metadata;
            watcher::Event::Delete(object.object.unwrap_or_else(|_| K::placeholder(metadata)))
        }
        watcher::Event::Init => watcher::Event::Init,
        watcher::Event::InitDone => watcher::Event::InitDone,
    })
}
