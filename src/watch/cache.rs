//! The watch caches: the objects of one kind by namespace and name, kept current by a watch.
//!
//! kube's reflector `Store` answers "this object" and "every object", keyed by an `ObjectRef`
//! that holds four strings per object and needs the object's typed `ObjectMeta`. Reconciles
//! mostly ask for a namespace's objects: a branch's siblings, the children a reconcile may prune,
//! the pods that explain a component. Scanning every cached object for those made each
//! reconcile's cost grow with the whole fleet (issue 23: at 1,000 branches a tenth of the
//! operator's CPU went to comparing namespace strings). Here the objects are held by namespace,
//! then by name, so both questions are lookups, and a cached object needs nothing but its name
//! and namespace (the children are cached without typed metadata: see `compact`).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use futures::{Stream, StreamExt};
use kube::Resource;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::reflector::store::Writer;
use kube::runtime::watcher;
use tokio::sync::watch;

use crate::compact::Compact;

/// What a cache files an object under.
pub trait Keyed {
    /// "" for a cluster-scoped object.
    fn cache_namespace(&self) -> &str;
    fn cache_name(&self) -> &str;
}

impl<K: Resource> Keyed for K {
    fn cache_namespace(&self) -> &str {
        self.meta().namespace.as_deref().unwrap_or("")
    }

    fn cache_name(&self) -> &str {
        self.meta().name.as_deref().unwrap_or("")
    }
}

impl<K> Keyed for Compact<K> {
    fn cache_namespace(&self) -> &str {
        self.namespace().unwrap_or("")
    }

    fn cache_name(&self) -> &str {
        self.name()
    }
}

type Objects<K> = HashMap<Box<str>, HashMap<Box<str>, Arc<K>>>;

struct State<K> {
    live: Objects<K>,
    /// A (re)list being gathered: it replaces `live` once complete, so a relist never shows a
    /// half-empty cache.
    relisting: Option<Objects<K>>,
    len: usize,
}

/// The objects of one kind that a watch has seen, by namespace and name.
pub struct Cache<K> {
    state: Arc<RwLock<State<K>>>,
    ready: watch::Receiver<bool>,
}

impl<K> Clone for Cache<K> {
    fn clone(&self) -> Self {
        Cache {
            state: self.state.clone(),
            ready: self.ready.clone(),
        }
    }
}

/// Where a watch writes: a `Cache`, or a kube `Store` (through its `Writer`).
pub enum CacheWriter<K: Resource<DynamicType = ()> + Clone + 'static> {
    Own(OwnWriter<K>),
    Kube(Writer<K>),
}

/// Fills a `Cache`.
pub struct OwnWriter<K> {
    state: Arc<RwLock<State<K>>>,
    ready: watch::Sender<bool>,
}

/// A new cache and the writer its watch fills it through.
pub fn cache<K>() -> (Cache<K>, OwnWriter<K>) {
    let state = Arc::new(RwLock::new(State {
        live: HashMap::new(),
        relisting: None,
        len: 0,
    }));
    let (ready_tx, ready) = watch::channel(false);
    (
        Cache {
            state: state.clone(),
            ready,
        },
        OwnWriter {
            state,
            ready: ready_tx,
        },
    )
}

impl<K: Resource<DynamicType = ()> + Clone + 'static> From<Writer<K>> for CacheWriter<K> {
    fn from(writer: Writer<K>) -> Self {
        CacheWriter::Kube(writer)
    }
}

impl<K: Resource<DynamicType = ()> + Clone + 'static> From<OwnWriter<K>> for CacheWriter<K> {
    fn from(writer: OwnWriter<K>) -> Self {
        CacheWriter::Own(writer)
    }
}

impl<K: Resource<DynamicType = ()> + Clone + Send + Sync + 'static> CacheWriter<K> {
    /// Applies each event of `events` to the cache, then passes it on, so a reconcile triggered
    /// by an event finds the object cached.
    pub fn reflect<S>(self, events: S) -> impl Stream<Item = S::Item> + Send + 'static
    where
        S: Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
    {
        let mut writer = self;
        events.inspect(move |event| {
            if let Ok(event) = event {
                match &mut writer {
                    CacheWriter::Own(own) => own.apply(event),
                    CacheWriter::Kube(kube) => kube.apply_watcher_event(event),
                }
            }
        })
    }
}

impl<K: Keyed> OwnWriter<K> {
    /// Applies one watch event. Objects are taken by value: the cache shares them, unchanged.
    pub fn apply_owned(&mut self, event: watcher::Event<K>) {
        let mut state = self.state.write().expect("cache");
        match event {
            watcher::Event::Apply(object) => {
                if insert(&mut state.live, object) {
                    state.len += 1;
                }
            }
            watcher::Event::Delete(object) => {
                if remove(&mut state.live, &object) {
                    state.len -= 1;
                }
            }
            watcher::Event::Init => state.relisting = Some(HashMap::new()),
            watcher::Event::InitApply(object) => {
                insert(state.relisting.get_or_insert_default(), object);
            }
            watcher::Event::InitDone => {
                state.live = state.relisting.take().unwrap_or_default();
                state.len = state.live.values().map(HashMap::len).sum();
                drop(state);
                self.ready.send_replace(true);
            }
        }
    }
}

impl<K: Keyed + Clone> OwnWriter<K> {
    /// `apply_owned` for a borrowed event.
    pub fn apply(&mut self, event: &watcher::Event<K>) {
        self.apply_owned(event.clone());
    }
}

/// Files `object`; true when it is new.
fn insert<K: Keyed>(objects: &mut Objects<K>, object: K) -> bool {
    let namespace = object.cache_namespace();
    let names = match objects.get_mut(namespace) {
        Some(names) => names,
        None => objects.entry(namespace.into()).or_default(),
    };
    let name: Box<str> = object.cache_name().into();
    names.insert(name, Arc::new(object)).is_none()
}

/// Removes `object`; true when it was there. An emptied namespace leaves nothing behind.
fn remove<K: Keyed>(objects: &mut Objects<K>, object: &K) -> bool {
    let namespace = object.cache_namespace();
    let Some(names) = objects.get_mut(namespace) else {
        return false;
    };
    let removed = names.remove(object.cache_name()).is_some();
    if names.is_empty() {
        objects.remove(namespace);
    }
    removed
}

impl<K> Cache<K> {
    /// The object named `name` in `namespace` ("" for a cluster-scoped one).
    pub fn named(&self, namespace: &str, name: &str) -> Option<Arc<K>> {
        let state = self.state.read().expect("cache");
        state.live.get(namespace)?.get(name).cloned()
    }

    /// The cached objects of `namespace`.
    pub fn in_namespace(&self, namespace: &str) -> Vec<Arc<K>> {
        let state = self.state.read().expect("cache");
        state
            .live
            .get(namespace)
            .map(|names| names.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Every cached object.
    pub fn state(&self) -> Vec<Arc<K>> {
        let state = self.state.read().expect("cache");
        state
            .live
            .values()
            .flat_map(|names| names.values().cloned())
            .collect()
    }

    /// The cached objects that `keep` accepts.
    pub fn state_filter(&self, keep: impl Fn(&K) -> bool) -> Vec<Arc<K>> {
        let state = self.state.read().expect("cache");
        state
            .live
            .values()
            .flat_map(|names| names.values())
            .filter(|object| keep(object))
            .cloned()
            .collect()
    }

    pub fn len(&self) -> usize {
        self.state.read().expect("cache").len
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Waits until the watch's first full list is cached, or its writer is gone (then nothing
    /// will ever be listed: shutting down, or a kind the cluster does not serve). Any number of
    /// tasks may wait.
    pub async fn wait_until_ready(&self) {
        let mut ready = self.ready.clone();
        let _ = ready.wait_for(|ready| *ready).await;
    }
}

impl<K: Resource<DynamicType = ()>> Cache<K> {
    /// The object `key` names.
    pub fn get(&self, key: &ObjectRef<K>) -> Option<Arc<K>> {
        self.named(key.namespace.as_deref().unwrap_or(""), &key.name)
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

    fn names(cache: &Cache<ConfigMap>, namespace: &str) -> Vec<String> {
        let mut names: Vec<String> = cache
            .in_namespace(namespace)
            .iter()
            .map(|m| m.metadata.name.clone().unwrap())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn objects_are_found_by_their_namespace_until_deleted() {
        let (cache, mut writer) = cache::<ConfigMap>();
        writer.apply(&watcher::Event::Apply(map("a", "x")));
        writer.apply(&watcher::Event::Apply(map("a", "y")));
        writer.apply(&watcher::Event::Apply(map("a", "x")));
        writer.apply(&watcher::Event::Apply(map("b", "x")));
        assert_eq!(names(&cache, "a"), ["x", "y"]);
        assert_eq!(names(&cache, "b"), ["x"]);
        assert!(cache.in_namespace("c").is_empty());
        assert_eq!(cache.len(), 3);
        assert!(cache.named("a", "y").is_some());
        assert!(cache.get(&ObjectRef::new("x").within("b")).is_some());

        writer.apply(&watcher::Event::Delete(map("a", "x")));
        writer.apply(&watcher::Event::Delete(map("b", "x")));
        writer.apply(&watcher::Event::Delete(map("b", "never-there")));
        assert_eq!(names(&cache, "a"), ["y"]);
        assert_eq!(cache.len(), 1);
        // An emptied namespace leaves nothing behind.
        assert!(!cache.state.read().unwrap().live.contains_key("b"));
    }

    #[tokio::test]
    async fn a_relist_replaces_the_objects_only_when_it_is_complete() {
        let (cache, mut writer) = cache::<ConfigMap>();
        writer.apply(&watcher::Event::Apply(map("a", "gone")));
        writer.apply(&watcher::Event::<ConfigMap>::Init);
        writer.apply(&watcher::Event::InitApply(map("a", "kept")));
        // Until the list is complete, the old objects answer, and the cache is not ready.
        assert_eq!(names(&cache, "a"), ["gone"]);
        assert!(!*cache.ready.borrow());
        writer.apply(&watcher::Event::<ConfigMap>::InitDone);
        assert_eq!(names(&cache, "a"), ["kept"]);
        assert_eq!(cache.len(), 1);
        // Every waiter is woken, however many.
        let waiters = futures::future::join_all((0..3).map(|_| cache.wait_until_ready()));
        tokio::time::timeout(std::time::Duration::from_secs(5), waiters)
            .await
            .expect("ready");
    }
}
