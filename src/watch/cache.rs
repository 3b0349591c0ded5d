//! A watch cache that also answers "the objects of this namespace".
//!
//! kube's reflector `Store` answers "this object" and "every object". Reconciles mostly ask for a
//! namespace's: a branch's siblings, the children a reconcile may prune, the pods that explain a
//! component. Scanning every cached object for those made each reconcile's cost grow with the
//! whole fleet, so a burst grew with the square of the branches (issue 23: at 1,000 branches a
//! tenth of the operator's CPU went to comparing namespace strings). `Cache` is kube's `Store` with
//! the names of its objects indexed by namespace, kept current by the same watch events.

use std::collections::{HashMap, HashSet};
use std::ops::Deref;
use std::sync::{Arc, RwLock};

use futures::{Stream, StreamExt};
use kube::Resource;
use kube::runtime::reflector::store::Writer;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};

/// A reflector `Store` with the names of its objects by namespace.
pub struct Cache<K: Resource<DynamicType = ()> + Clone + 'static> {
    store: Store<K>,
    index: Arc<RwLock<Names>>,
}

impl<K: Resource<DynamicType = ()> + Clone + 'static> Clone for Cache<K> {
    fn clone(&self) -> Self {
        Cache {
            store: self.store.clone(),
            index: self.index.clone(),
        }
    }
}

/// Where a watch writes: kube's `Writer` and, for a `Cache`, its index.
pub struct CacheWriter<K: Resource<DynamicType = ()> + Clone + 'static> {
    writer: Writer<K>,
    index: Option<Arc<RwLock<Names>>>,
}

/// A new cache and the writer its watch fills it through.
pub fn cache<K>() -> (Cache<K>, CacheWriter<K>)
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    let (store, writer) = kube::runtime::reflector::store();
    let index = Arc::new(RwLock::new(Names::default()));
    (
        Cache {
            store,
            index: index.clone(),
        },
        CacheWriter {
            writer,
            index: Some(index),
        },
    )
}

/// A plain `Store`'s writer, unindexed.
impl<K: Resource<DynamicType = ()> + Clone + 'static> From<Writer<K>> for CacheWriter<K> {
    fn from(writer: Writer<K>) -> Self {
        CacheWriter {
            writer,
            index: None,
        }
    }
}

impl<K> CacheWriter<K>
where
    K: Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
{
    /// Applies each event of `events` to the store, then to the index, and passes it on. The
    /// index follows the store, so a reconcile triggered by an event finds the object in both.
    pub fn reflect<S>(self, events: S) -> impl Stream<Item = S::Item> + Send + 'static
    where
        S: Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
    {
        let index = self.index;
        events.reflect(self.writer).inspect(move |event| {
            if let (Some(index), Ok(event)) = (&index, event) {
                index.write().expect("namespace index").apply(event);
            }
        })
    }
}

impl<K: Resource<DynamicType = ()> + Clone + 'static> Deref for Cache<K> {
    type Target = Store<K>;

    fn deref(&self) -> &Store<K> {
        &self.store
    }
}

impl<K: Resource<DynamicType = ()> + Clone + 'static> Cache<K> {
    /// The kube `Store` underneath (a `Controller` takes one).
    pub fn store(&self) -> Store<K> {
        self.store.clone()
    }

    /// The cached objects of `namespace`.
    pub fn in_namespace(&self, namespace: &str) -> Vec<Arc<K>> {
        let names = self.index.read().expect("namespace index").of(namespace);
        names
            .iter()
            .filter_map(|name| self.store.get(&ObjectRef::new(name).within(namespace)))
            .collect()
    }
}

/// The names of the cached objects by namespace (cluster-scoped objects under ""). Mirrors how
/// kube's `Writer` treats a (re)list: the new list is gathered apart and replaces the old at its
/// end, so a relist never shows a half-empty index.
#[derive(Debug, Default)]
struct Names {
    live: HashMap<String, HashSet<String>>,
    relisting: Option<HashMap<String, HashSet<String>>>,
}

impl Names {
    fn apply<K: Resource>(&mut self, event: &watcher::Event<K>) {
        match event {
            watcher::Event::Apply(object) => add(&mut self.live, object.meta()),
            watcher::Event::Delete(object) => remove(&mut self.live, object.meta()),
            watcher::Event::Init => self.relisting = Some(HashMap::new()),
            watcher::Event::InitApply(object) => {
                add(self.relisting.get_or_insert_default(), object.meta())
            }
            watcher::Event::InitDone => self.live = self.relisting.take().unwrap_or_default(),
        }
    }

    fn of(&self, namespace: &str) -> Vec<String> {
        self.live
            .get(namespace)
            .map(|names| names.iter().cloned().collect())
            .unwrap_or_default()
    }
}

fn add(
    names: &mut HashMap<String, HashSet<String>>,
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) {
    let namespace = meta.namespace.as_deref().unwrap_or("");
    let Some(name) = &meta.name else {
        return;
    };
    match names.get_mut(namespace) {
        Some(set) => {
            set.insert(name.clone());
        }
        None => {
            names.insert(namespace.to_string(), HashSet::from([name.clone()]));
        }
    }
}

fn remove(
    names: &mut HashMap<String, HashSet<String>>,
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) {
    let namespace = meta.namespace.as_deref().unwrap_or("");
    let Some(set) = names.get_mut(namespace) else {
        return;
    };
    if let Some(name) = &meta.name {
        set.remove(name);
    }
    if set.is_empty() {
        names.remove(namespace);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::ObjectMeta;

    fn map(namespace: &str, name: &str) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                namespace: Some(namespace.into()),
                name: Some(name.into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn sorted(names: &Names, namespace: &str) -> Vec<String> {
        let mut of = names.of(namespace);
        of.sort();
        of
    }

    #[test]
    fn objects_are_found_by_their_namespace_until_deleted() {
        let mut names = Names::default();
        names.apply(&watcher::Event::Apply(map("a", "x")));
        names.apply(&watcher::Event::Apply(map("a", "y")));
        names.apply(&watcher::Event::Apply(map("a", "x")));
        names.apply(&watcher::Event::Apply(map("b", "x")));
        assert_eq!(sorted(&names, "a"), ["x", "y"]);
        assert_eq!(sorted(&names, "b"), ["x"]);
        assert!(names.of("c").is_empty());

        names.apply(&watcher::Event::Delete(map("a", "x")));
        names.apply(&watcher::Event::Delete(map("b", "x")));
        assert_eq!(sorted(&names, "a"), ["y"]);
        // An emptied namespace leaves nothing behind.
        assert!(!names.live.contains_key("b"));
    }

    #[test]
    fn a_relist_replaces_the_index_only_when_it_is_complete() {
        let mut names = Names::default();
        names.apply(&watcher::Event::Apply(map("a", "gone")));
        names.apply(&watcher::Event::<ConfigMap>::Init);
        names.apply(&watcher::Event::InitApply(map("a", "kept")));
        // Until the list is complete, the old index answers.
        assert_eq!(sorted(&names, "a"), ["gone"]);
        names.apply(&watcher::Event::<ConfigMap>::InitDone);
        assert_eq!(sorted(&names, "a"), ["kept"]);
    }
}
