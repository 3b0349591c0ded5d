//! Listing each connected Project's forge: on a timer (`forge.syncEvery`) and whenever a webhook
//! asks. What it proves gone is written to the shared state and the branches concerned are
//! reconciled; nothing is deleted here.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;
use tracing::{debug, info, warn};

use super::{DEFAULT_SYNC_EVERY, Forges, Health, SHORTEST_SYNC_EVERY, key_of};
use crate::api::{Forge, Project};
use crate::forge::{ForgeError, Spent};
use crate::model::branch_release::lifecycle::parse_duration;
use crate::model::forge::gone::{self, Candidate, Listing, Rules};
use crate::model::forge::provider::{self, Urls};

pub(super) async fn run(
    forges: Arc<Forges>,
    mut requests: tokio::sync::mpsc::UnboundedReceiver<String>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut asked: BTreeSet<String> = BTreeSet::new();
    loop {
        tokio::select! {
            request = requests.recv() => match request {
                Some(project) => { asked.insert(project); }
                None => return,
            },
            _ = tick.tick() => {}
        }
        while let Ok(project) = requests.try_recv() {
            asked.insert(project);
        }
        let due: Vec<Arc<Project>> = forges
            .projects
            .state()
            .into_iter()
            .filter(|p| p.spec.forge.is_some())
            .filter(|p| asked.contains(&p.name_any()) || forges.sync_due(p))
            .collect();
        asked.clear();
        for project in due {
            sync(&forges, &project).await;
        }
    }
}

impl Forges {
    fn sync_due(&self, project: &Project) -> bool {
        let every = project
            .spec
            .forge
            .as_ref()
            .and_then(|f| f.sync_every.as_deref())
            .and_then(parse_duration)
            .unwrap_or(DEFAULT_SYNC_EVERY)
            .max(SHORTEST_SYNC_EVERY);
        let state = self.state.lock().expect("forge state");
        let Some(known) = state.projects.get(&project.name_any()) else {
            return true;
        };
        if known.synced_spec != project.spec.forge {
            return true;
        }
        // A forge that failed is tried again soon, whatever the interval.
        let every = match &known.health {
            Some(health) if !health.connected => SHORTEST_SYNC_EVERY,
            _ => every,
        };
        known.last_sync.is_none_or(|at| at.elapsed() >= every)
    }
}

async fn sync(forges: &Forges, project: &Project) {
    let Some(forge) = &project.spec.forge else {
        return;
    };
    let name = project.name_any();
    {
        let mut state = forges.state.lock().expect("forge state");
        let entry = state.projects.entry(name.clone()).or_default();
        entry.last_sync = Some(Instant::now());
        entry.synced_spec = Some(forge.clone());
    }
    let credentials = match forges.credentials(&name, forge).await {
        Ok(credentials) => credentials,
        Err(missing) => {
            forges.set_health(
                &name,
                Health {
                    connected: false,
                    reason: missing.reason,
                    message: missing.message,
                },
            );
            return;
        }
    };
    let mut spent = Spent::default();
    let listed = list(&credentials.client, forge, &mut spent).await;
    forges.count(&name, "sync", &spent, listed.as_ref().err());
    let listing = match listed {
        Ok(listing) => listing,
        Err(error) => {
            warn!(project = %name, %error, "forge sync failed; nothing cleaned up");
            forges.set_health(
                &name,
                Health {
                    connected: false,
                    reason: health_reason(&error),
                    message: error.to_string(),
                },
            );
            return;
        }
    };
    let releases: Vec<_> = forges
        .releases
        .in_namespace(&project.namespace_name())
        .into_iter()
        .filter(|r| r.spec.project == name)
        .collect();
    let candidates: Vec<Candidate> = releases
        .iter()
        .map(|r| Candidate {
            key: key_of(r),
            branch: &r.spec.branch,
            created: r
                .metadata
                .creation_timestamp
                .as_ref()
                .map_or(Timestamp::now(), |t| t.0),
        })
        .collect();
    let cleanup = forge.cleanup.clone().unwrap_or_default();
    let judged = if cleanup.disabled {
        gone::Judgement::default()
    } else {
        gone::judge(
            &listing,
            &candidates,
            &Rules {
                production_branch: project.spec.production_branch.as_deref(),
                keep: &cleanup.keep,
            },
        )
    };
    let remembered: HashMap<String, Timestamp> = releases
        .iter()
        .filter_map(|r| {
            let since = r.status.as_ref()?.forge.as_ref()?.gone_since.as_ref()?.0;
            Some((key_of(r), since))
        })
        .collect();
    let now = crate::clock::now();
    let keys: BTreeSet<String> = candidates.iter().map(|c| c.key.clone()).collect();
    let mut changed = Vec::new();
    {
        let mut state = forges.state.lock().expect("forge state");
        for key in &keys {
            let before = state.gone.get(key).map(|(why, _)| why.clone());
            match judged.gone.get(key) {
                Some(why) => {
                    let since = state
                        .gone
                        .get(key)
                        .map(|(_, since)| *since)
                        .or_else(|| remembered.get(key).copied())
                        .unwrap_or(now);
                    state.gone.insert(key.clone(), (why.clone(), since));
                }
                None => {
                    state.gone.remove(key);
                }
            }
            let after = state.gone.get(key).map(|(why, _)| why.clone());
            let pull_request_changed = state
                .projects
                .get(&name)
                .and_then(|p| p.listing.as_ref())
                .map(|l| l.open_pull_request(branch_of(&candidates, key)))
                != Some(listing.open_pull_request(branch_of(&candidates, key)));
            if before != after || pull_request_changed {
                changed.push(key.clone());
            }
        }
        let entry = state.projects.entry(name.clone()).or_default();
        // The first sync since start proves (or withdraws) what status remembered: every branch
        // of the project looks again.
        if entry.listing.is_none() {
            changed = keys.iter().cloned().collect();
        }
        entry.listing = Some(listing.clone());
    }
    for key in &changed {
        if let Some((namespace, release)) = key.split_once('/') {
            let _ = forges
                .release_triggers
                .unbounded_send(ObjectRef::new(release).within(namespace));
        }
    }
    let open = listing.pull_requests.iter().filter(|p| p.open).count();
    debug!(project = %name, branches = listing.branches.len(), open, gone = judged.gone.len(), "forge synced");
    if !judged.gone.is_empty() {
        info!(project = %name, gone = ?judged.gone.values().collect::<Vec<_>>(), "the forge says these branches are gone");
    }
    forges.set_health(
        &name,
        match judged.held {
            Some(held) => Health {
                connected: false,
                reason: "CleanupHeld",
                message: held,
            },
            None => Health {
                connected: true,
                reason: "Synced",
                message: format!(
                    "{} ({}): {} branches, {open} open pull requests; {} of this project's branches \
                     gone there",
                    forge.repository,
                    provider_name(forge),
                    listing.branches.len(),
                    judged.gone.len()
                ),
            },
        },
    );
}

fn branch_of<'a>(candidates: &'a [Candidate], key: &str) -> &'a str {
    candidates
        .iter()
        .find(|c| c.key == key)
        .map_or("", |c| c.branch)
}

fn provider_name(forge: &Forge) -> &'static str {
    match forge.provider {
        crate::api::ForgeProvider::Gitea => "gitea",
        crate::api::ForgeProvider::Github => "github",
    }
}

fn health_reason(error: &ForgeError) -> &'static str {
    match error.kind() {
        "unauthorized" => "Unauthorized",
        "not_found" => "RepositoryNotFound",
        "rate_limited" => "RateLimited",
        _ => "Unreachable",
    }
}

/// The repository's default branch, every branch, the open pull requests and the most recently
/// closed ones.
async fn list(
    client: &crate::forge::ForgeClient,
    forge: &Forge,
    spent: &mut Spent,
) -> Result<Listing, ForgeError> {
    let urls = Urls::of(forge);
    let decode =
        |what: &str, e: serde_json::Error| ForgeError::Decode(what.to_string(), e.to_string());
    let (repository, _) = client.get(&urls.repository(), spent).await?;
    let default_branch =
        provider::parse_default_branch(&repository).map_err(|e| decode("the repository", e))?;
    let mut branches = BTreeSet::new();
    for page in client.list(&urls.branches(), spent).await? {
        branches.extend(provider::parse_branches(&page).map_err(|e| decode("the branches", e))?);
    }
    let mut pull_requests = Vec::new();
    for page in client.list(&urls.open_pull_requests(), spent).await? {
        pull_requests.extend(
            provider::parse_pull_requests(&page).map_err(|e| decode("the pull requests", e))?,
        );
    }
    let (closed, _) = client
        .get(&urls.recently_closed_pull_requests(), spent)
        .await?;
    pull_requests.extend(
        provider::parse_pull_requests(&closed).map_err(|e| decode("the pull requests", e))?,
    );
    Ok(Listing {
        default_branch,
        branches,
        pull_requests,
    })
}
