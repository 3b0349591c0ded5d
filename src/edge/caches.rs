//! What the edge knows: every BranchRelease and Project, cached from watches of its own, and the
//! host index built from them (see `index`). The index is rebuilt after changes, at most every
//! `REBUILD_AT_MOST_EVERY`, never per request: a flood costs a hash lookup a request.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::StreamExt;
use kube::Client;
use kube::runtime::reflector::{self, ObjectRef, Store};
use tokio::sync::Notify;
use tracing::{info, warn};

use super::index::HostIndex;
use crate::api::{BranchRelease, Project};
use crate::controller::watch;
use crate::readiness::Readiness;

const REBUILD_AT_MOST_EVERY: Duration = Duration::from_millis(100);

#[derive(Clone)]
pub struct Caches {
    pub releases: Store<BranchRelease>,
    pub projects: Store<Project>,
    index: Arc<RwLock<Arc<HostIndex>>>,
}

impl Caches {
    /// The branch answering at `host`, as cached now.
    pub fn release_at(&self, host: &str) -> Option<Arc<BranchRelease>> {
        let index = self.index.read().expect("host index").clone();
        index.lookup(host).and_then(|key| self.releases.get(key))
    }

    /// The cached BranchRelease behind `key`, as it is now.
    pub fn release(&self, key: &ObjectRef<BranchRelease>) -> Option<Arc<BranchRelease>> {
        self.releases.get(key)
    }

    /// Starts the watches and the index's rebuilds; `ready` learns when both caches are listed.
    pub fn start(client: &Client, ready: Arc<Readiness>) -> Caches {
        let (releases, releases_writer) = reflector::store();
        let (projects, projects_writer) = reflector::store();
        let changed = Arc::new(Notify::new());
        let caches = Caches {
            releases,
            projects,
            index: Arc::default(),
        };
        ready.waiting_for(["branchreleases", "projects"]);
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
        tokio::spawn(watch_releases.for_each(|_| async {}));
        tokio::spawn(watch_projects.for_each(|_| async {}));
        let rebuilt = caches.clone();
        tokio::spawn(async move {
            loop {
                changed.notified().await;
                // Changes that come together make one rebuild.
                tokio::time::sleep(REBUILD_AT_MOST_EVERY).await;
                let index = HostIndex::build(&rebuilt.releases.state(), &rebuilt.projects.state());
                let hosts = index.len();
                *rebuilt.index.write().expect("host index") = Arc::new(index);
                tracing::debug!(hosts, "host index rebuilt");
            }
        });
        info!("edge caches started");
        caches
    }
}
