//! What the edge knows: every BranchRelease and Project, and the EndpointSlices of Oksa's
//! Services, cached from watches of its own; the host index (see `index`) and the backends (see
//! `backends`) built from them. Each is rebuilt after changes, at most every
//! `REBUILD_AT_MOST_EVERY`, never per request: a flood costs a few hash lookups a request.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::StreamExt;
use kube::Client;
use kube::runtime::reflector::{self, ObjectRef, Store};
use tokio::sync::Notify;
use tracing::{info, warn};

use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::runtime::{WatchStreamExt, watcher};

use super::backends::Backends;
use super::index::HostIndex;
use crate::api::{BranchRelease, Project};
use crate::readiness::Readiness;
use crate::watch;

const REBUILD_AT_MOST_EVERY: Duration = Duration::from_millis(100);

#[derive(Clone)]
pub struct Caches {
    pub releases: Store<BranchRelease>,
    pub projects: Store<Project>,
    index: Arc<RwLock<Arc<HostIndex>>>,
    backends: Arc<RwLock<Arc<Backends>>>,
}

/// The EndpointSlices of Oksa's Services (the endpoint controller copies a Service's labels).
const BRANCH_SLICES: &str = "kubernetes.io/service-name,oksa.dev/release";

impl Caches {
    /// The branch answering at `host`, as cached now.
    pub fn release_at(&self, host: &str) -> Option<Arc<BranchRelease>> {
        let index = self.index.read().expect("host index").clone();
        index.lookup(host).and_then(|key| self.releases.get(key))
    }

    /// Where the branches' Services answer, as cached now.
    pub fn backends(&self) -> Arc<Backends> {
        self.backends.read().expect("backends").clone()
    }

    /// The cached Project `name`.
    pub fn project(&self, name: &str) -> Option<Arc<Project>> {
        self.projects.get(&ObjectRef::new(name))
    }

    /// The cached BranchRelease behind `key`, as it is now.
    pub fn release(&self, key: &ObjectRef<BranchRelease>) -> Option<Arc<BranchRelease>> {
        self.releases.get(key)
    }

    /// Starts the watches and the index's rebuilds; `ready` learns when both caches are listed.
    pub fn start(client: &Client, ready: Arc<Readiness>) -> Caches {
        let (releases, releases_writer) = reflector::store();
        let (projects, projects_writer) = reflector::store();
        let (slices, slices_writer) = reflector::store::<EndpointSlice>();
        let changed = Arc::new(Notify::new());
        let slices_changed = Arc::new(Notify::new());
        let caches = Caches {
            releases,
            projects,
            index: Arc::default(),
            backends: Arc::default(),
        };
        ready.waiting_for(["branchreleases", "projects", "endpointslices"]);
        let unreadable = |kind: &'static str| {
            move |meta: &kube::api::ObjectMeta, reason: &str| {
                warn!(kind, name = meta.name.as_deref().unwrap_or(""),
                      namespace = meta.namespace.as_deref().unwrap_or(""), %reason,
                      "cannot read this object; the edge answers nothing for it");
            }
        };
        let watch_releases = {
            let changed = changed.clone();
            let ready = ready.clone();
            watch::all_observed::<BranchRelease>(
                client,
                releases_writer,
                move || ready.synced("branchreleases"),
                move |_| changed.notify_one(),
                unreadable("BranchRelease"),
            )
        };
        let watch_projects = {
            let changed = changed.clone();
            let ready = ready.clone();
            watch::all_observed::<Project>(
                client,
                projects_writer,
                move || ready.synced("projects"),
                move |_| changed.notify_one(),
                unreadable("Project"),
            )
        };
        let watch_slices = {
            let changed = slices_changed.clone();
            let ready = ready.clone();
            watcher(
                Api::<EndpointSlice>::all(client.clone()),
                watch::config().labels(BRANCH_SLICES),
            )
            .default_backoff()
            .modify(|slice| slice.metadata.managed_fields = None)
            .reflect(slices_writer)
            .inspect(move |event| match event {
                Ok(watcher::Event::InitDone) => ready.synced("endpointslices"),
                Ok(watcher::Event::Apply(_) | watcher::Event::Delete(_)) => changed.notify_one(),
                Ok(watcher::Event::InitApply(_)) => changed.notify_one(),
                _ => {}
            })
        };
        tokio::spawn(watch_releases.for_each(|_| async {}));
        tokio::spawn(watch_projects.for_each(|_| async {}));
        tokio::spawn(watch_slices.for_each(|_| async {}));
        let (releases, projects) = (caches.releases.clone(), caches.projects.clone());
        rebuild_on(changed, caches.index.clone(), move |previous| {
            HostIndex::build(&releases.state(), &projects.state(), previous)
        });
        rebuild_on(slices_changed, caches.backends.clone(), move |_| {
            Backends::build(&slices.state())
        });
        info!("edge caches started");
        caches
    }
}

/// Rebuilds `target` with `build` (given the value it replaces) after each change, changes
/// that come together once.
fn rebuild_on<T: Send + Sync + 'static>(
    changed: Arc<Notify>,
    target: Arc<RwLock<Arc<T>>>,
    build: impl Fn(&T) -> T + Send + 'static,
) {
    tokio::spawn(async move {
        loop {
            changed.notified().await;
            tokio::time::sleep(REBUILD_AT_MOST_EVERY).await;
            let previous = target.read().expect("edge index").clone();
            let next = Arc::new(build(&previous));
            *target.write().expect("edge index") = next;
        }
    });
}
