//! The forge in the loop, at run time: each connected Project's forge is listed periodically and
//! whenever a signed webhook asks (`sync`), what it says is gone expires through the lifecycle
//! (`model::branch_release::lifecycle`), and each branch's verdict is reported back (`report`).
//! Reconciles never wait for a forge: they read what the last sync learned and leave reports in
//! a queue.

mod credentials;
mod report;
mod sync;
pub mod webhook;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::runtime::reflector::{ObjectRef, Store};

use crate::api::{BranchRelease, BranchReleaseStatus, ForgeStatus, Project};
use crate::model::branch_release::lifecycle::{Gone, parse_duration};
use crate::model::forge::gone::Listing;

pub use credentials::Credentials;

/// How the operator's process connects the forge runtime: where credentials Secrets are, and
/// where to publish the runtime for the webhook receiver (see `webhook::serve`).
#[derive(Default)]
pub struct Setup {
    pub secrets_namespace: Option<String>,
    pub publish: Option<tokio::sync::watch::Sender<Option<Arc<Forges>>>>,
}

/// How long the warning stands before a branch gone from the forge goes, unless the Project says.
const DEFAULT_CLEANUP_AFTER: Duration = Duration::from_secs(600);
/// How often a forge is listed, unless the Project says.
const DEFAULT_SYNC_EVERY: Duration = Duration::from_secs(300);
const SHORTEST_SYNC_EVERY: Duration = Duration::from_secs(10);

/// Whether a Project's forge answers and can be trusted, for its `ForgeConnected` condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    pub connected: bool,
    pub reason: &'static str,
    pub message: String,
}

/// What the forge runtime knows, shared by the syncer, the reporter, the webhook receiver and
/// the reconciles.
pub struct Forges {
    client: kube::Client,
    projects: Store<Project>,
    releases: crate::watch::Cache<BranchRelease>,
    metrics: crate::metrics::Metrics,
    /// Where the credentials Secrets are (Oksa's own namespace).
    secrets_namespace: Option<String>,
    state: Mutex<State>,
    /// A project's name: sync it now (a webhook, a new forge setting).
    sync_now: tokio::sync::mpsc::UnboundedSender<String>,
    /// Reports waiting (see `report`), and the bell that wakes their worker.
    reports_waiting: tokio::sync::Notify,
    release_triggers: futures::channel::mpsc::UnboundedSender<ObjectRef<BranchRelease>>,
    project_triggers: futures::channel::mpsc::UnboundedSender<ObjectRef<Project>>,
}

#[derive(Default)]
struct State {
    /// Per project.
    projects: HashMap<String, ProjectState>,
    /// Per BranchRelease (`namespace/name`): what the forge says is gone, and since when.
    gone: HashMap<String, (String, Timestamp)>,
    /// Per BranchRelease: what was last reported, for its status.
    reported: HashMap<String, ForgeStatus>,
    /// Per BranchRelease: what is to be reported (see `report`).
    waiting: HashMap<String, report::Pending>,
}

#[derive(Default)]
struct ProjectState {
    credentials: Option<Credentials>,
    health: Option<Health>,
    /// The last successful sync's; there is one once the forge was listed since this operator
    /// started, and only then is what it says of gone branches proven, not only remembered.
    listing: Option<Listing>,
    last_sync: Option<std::time::Instant>,
    /// The Project's forge as last synced: a change (another url, repository, Secret) syncs now.
    synced_spec: Option<crate::api::Forge>,
}

/// What a reconcile learns of its branch from the forge.
pub struct Facts {
    pub gone: Option<Gone>,
    /// The gone fact was proven by a sync of this operator (not only remembered in status): only
    /// then may it delete.
    pub proven: bool,
}

pub use crate::model::index::release_key as key_of;

impl Forges {
    /// The runtime, and the receiver of its sync requests (for `run`).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        client: kube::Client,
        projects: Store<Project>,
        releases: crate::watch::Cache<BranchRelease>,
        metrics: crate::metrics::Metrics,
        secrets_namespace: Option<String>,
        release_triggers: futures::channel::mpsc::UnboundedSender<ObjectRef<BranchRelease>>,
        project_triggers: futures::channel::mpsc::UnboundedSender<ObjectRef<Project>>,
    ) -> (Arc<Forges>, tokio::sync::mpsc::UnboundedReceiver<String>) {
        let (sync_now, requests) = tokio::sync::mpsc::unbounded_channel();
        let forges = Arc::new(Forges {
            client,
            projects,
            releases,
            metrics,
            secrets_namespace,
            state: Mutex::default(),
            sync_now,
            reports_waiting: tokio::sync::Notify::new(),
            release_triggers,
            project_triggers,
        });
        (forges, requests)
    }

    /// Runs the syncer and the reporter until dropped by shutdown.
    pub async fn run(self: Arc<Self>, requests: tokio::sync::mpsc::UnboundedReceiver<String>) {
        futures::join!(sync::run(self.clone(), requests), report::run(self.clone()));
    }

    /// Asks for a sync of `project` now.
    pub fn sync_soon(&self, project: &str) {
        let _ = self.sync_now.send(project.to_string());
    }

    /// The forge's facts about a branch, for its lifecycle decision.
    pub fn facts(&self, release: &BranchRelease, project: &Project) -> Facts {
        let Some(forge) = &project.spec.forge else {
            return Facts {
                gone: None,
                proven: true,
            };
        };
        if forge.cleanup.as_ref().is_some_and(|c| c.disabled) {
            return Facts {
                gone: None,
                proven: true,
            };
        }
        let warning = forge
            .cleanup
            .as_ref()
            .and_then(|c| c.after.as_deref())
            .and_then(parse_duration)
            .unwrap_or(DEFAULT_CLEANUP_AFTER);
        let state = self.state.lock().expect("forge state");
        let synced = state
            .projects
            .get(&project.name_any())
            .is_some_and(|p| p.listing.is_some());
        if synced {
            let gone = state.gone.get(&key_of(release)).map(|(why, since)| Gone {
                why: why.clone(),
                since: *since,
                warning,
            });
            return Facts { gone, proven: true };
        }
        // Not listed yet since this start: what status remembers stands (so the warning does not
        // flap), but proves nothing until the forge says it again.
        let remembered = release
            .status
            .as_ref()
            .and_then(|s| s.forge.as_ref())
            .and_then(|f| Some((f.gone.clone()?, f.gone_since.as_ref()?.0)));
        Facts {
            gone: remembered.map(|(why, since)| Gone {
                why,
                since,
                warning,
            }),
            proven: false,
        }
    }

    /// The branch's `status.forge`: what was reported, its pull request, whether it is gone.
    pub fn status_of(&self, release: &BranchRelease, project: &Project) -> Option<ForgeStatus> {
        project.spec.forge.as_ref()?;
        let previous = release.status.as_ref().and_then(|s| s.forge.clone());
        let key = key_of(release);
        let state = self.state.lock().expect("forge state");
        let mut status = state
            .reported
            .get(&key)
            .cloned()
            .or(previous.clone())
            .unwrap_or_default();
        let project_state = state.projects.get(&project.name_any());
        match project_state.and_then(|p| p.listing.as_ref()) {
            Some(listing) => {
                status.pull_request = listing.open_pull_request(&release.spec.branch);
                let gone = state.gone.get(&key);
                status.gone = gone.map(|(why, _)| why.clone());
                status.gone_since = gone.map(|(_, since)| Time(*since));
            }
            None => {
                let previous = previous.unwrap_or_default();
                status.pull_request = previous.pull_request;
                status.gone = previous.gone;
                status.gone_since = previous.gone_since;
            }
        }
        Some(status)
    }

    /// A Project's `ForgeConnected` condition, once its forge was tried.
    pub fn health(&self, project: &str) -> Option<Health> {
        self.state
            .lock()
            .expect("forge state")
            .projects
            .get(project)
            .and_then(|p| p.health.clone())
    }

    /// Offers the branch's new status for reporting (see `report::offer`). Never waits.
    pub fn offer(&self, release: &BranchRelease, project: &Project, status: &BranchReleaseStatus) {
        report::offer(self, release, project, status);
    }

    /// Forgets a BranchRelease that is gone from the cluster.
    pub fn forget(&self, key: &str) {
        let mut state = self.state.lock().expect("forge state");
        state.gone.remove(key);
        state.reported.remove(key);
        state.waiting.remove(key);
    }

    /// Forgets a Project that is gone (its credentials, its listing); its branches are forgotten
    /// one by one as they go.
    pub fn forget_project(&self, project: &str) {
        self.state
            .lock()
            .expect("forge state")
            .projects
            .remove(project);
    }

    fn set_health(&self, project: &str, health: Health) {
        let changed = {
            let mut state = self.state.lock().expect("forge state");
            let entry = state.projects.entry(project.to_string()).or_default();
            let changed = entry.health.as_ref() != Some(&health);
            entry.health = Some(health);
            changed
        };
        if changed {
            let _ = self
                .project_triggers
                .unbounded_send(ObjectRef::new(project));
        }
    }

    /// Counts what a sync or a report spent, and how it ended.
    fn count(
        &self,
        project: &str,
        purpose: &'static str,
        spent: &crate::forge::Spent,
        error: Option<&crate::forge::ForgeError>,
    ) {
        let outcomes = [
            ("ok", spent.ok()),
            ("not_modified", spent.not_modified),
            // An error before any request (credentials) counts once too.
            (
                error.map_or("ok", |e| e.kind()),
                error.map_or(0, |_| spent.failed.max(1)),
            ),
        ];
        for (outcome, by) in outcomes.into_iter().filter(|(_, by)| *by > 0) {
            self.metrics
                .forge_requests
                .get_or_create(&crate::metrics::ForgeLabels {
                    project: project.to_string(),
                    purpose,
                    outcome,
                })
                .inc_by(by);
        }
    }

    /// What was last reported for a branch: this run's record, else its status'.
    fn last_reported(&self, key: &str, release: &ObjectRef<BranchRelease>) -> ForgeStatus {
        let recorded = self
            .state
            .lock()
            .expect("forge state")
            .reported
            .get(key)
            .cloned();
        recorded
            .or_else(|| {
                self.releases
                    .get(release)
                    .and_then(|r| r.status.as_ref().and_then(|s| s.forge.clone()))
            })
            .unwrap_or_default()
    }
}
