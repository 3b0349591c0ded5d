//! Reporting to the forge: a reconcile offers its branch's new status; when the verdict (commit
//! status) or the comment's text changed from what was last reported, it waits here, latest
//! first-in per branch, for one worker that writes it, retries with backoff while the forge is
//! down, and then reconciles the branch so its status records what was reported.

use std::time::{Duration, Instant};

use http::Method;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;
use serde_json::json;
use tracing::{debug, warn};

use super::{Forges, Health, key_of};
use crate::api::{BranchRelease, BranchReleaseStatus, Forge, Project};
use crate::forge::{ForgeError, Spent};
use crate::model::forge::provider::{self, Urls};
use crate::model::forge::report::{self, CommitStatus};

/// Longest wait between two tries while the forge fails.
const LONGEST_BACKOFF: Duration = Duration::from_secs(60);

/// What waits to be reported for one branch.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Pending {
    project: String,
    namespace: String,
    name: String,
    commit: Option<CommitStatus>,
    comment: Option<Comment>,
    tries: u32,
    next_try: Option<Instant>,
}

#[derive(Debug, Clone, PartialEq)]
struct Comment {
    pull_request: i64,
    marker: String,
    body: String,
    digest: String,
}

impl Pending {
    fn same_report(&self, other: &Pending) -> bool {
        self.commit == other.commit && self.comment == other.comment
    }
}

pub(super) fn offer(
    forges: &Forges,
    release: &BranchRelease,
    project: &Project,
    status: &BranchReleaseStatus,
) {
    let Some(forge) = &project.spec.forge else {
        return;
    };
    let settings = forge.report.clone().unwrap_or_default();
    let key = key_of(release);
    let reported = status.forge.clone().unwrap_or_default();
    let commit = report::commit_status(release, status)
        .filter(|_| !settings.no_commit_status)
        .filter(|c| {
            reported.commit.as_deref() != Some(&c.commit)
                || reported.state.as_deref() != Some(c.state)
        });
    let comment = reported
        .pull_request
        .filter(|_| !settings.no_pull_request_comment)
        .filter(|_| status.release_name.is_some())
        .map(|pull_request| {
            let body = report::comment(release, status, project);
            Comment {
                pull_request,
                marker: report::comment_marker(
                    &release.spec.project,
                    status.release_name.as_deref().unwrap_or_default(),
                ),
                digest: report::digest(&body),
                body,
            }
        })
        .filter(|c| {
            reported.comment_digest.as_deref() != Some(&c.digest)
                || reported.commented_on != Some(c.pull_request)
        });
    let mut state = forges.state.lock().expect("forge state");
    if commit.is_none() && comment.is_none() {
        state.waiting.remove(&key);
        return;
    }
    let pending = Pending {
        project: project.name_any(),
        namespace: release.namespace().unwrap_or_default(),
        name: release.name_any(),
        commit,
        comment,
        tries: 0,
        next_try: None,
    };
    match state.waiting.get(&key) {
        Some(waiting) if waiting.same_report(&pending) => {}
        _ => {
            state.waiting.insert(key, pending);
            drop(state);
            forges.reports_waiting.notify_one();
        }
    }
}

pub(super) async fn run(forges: std::sync::Arc<Forges>) {
    loop {
        let next = {
            let state = forges.state.lock().expect("forge state");
            state
                .waiting
                .iter()
                .map(|(key, p)| (p.next_try, key.clone()))
                .min()
        };
        match next {
            Some((next_try, key)) if next_try.is_none_or(|at| at <= Instant::now()) => {
                deliver(&forges, &key).await;
            }
            Some((Some(at), _)) => {
                let wait = at.saturating_duration_since(Instant::now());
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = forges.reports_waiting.notified() => {}
                }
            }
            _ => forges.reports_waiting.notified().await,
        }
    }
}

async fn deliver(forges: &Forges, key: &str) {
    let Some(pending) = forges
        .state
        .lock()
        .expect("forge state")
        .waiting
        .get(key)
        .cloned()
    else {
        return;
    };
    let project = forges.projects.get(&ObjectRef::new(&pending.project));
    let Some(forge) = project.as_ref().and_then(|p| p.spec.forge.clone()) else {
        forges
            .state
            .lock()
            .expect("forge state")
            .waiting
            .remove(key);
        return;
    };
    let mut spent = Spent::default();
    let release = ObjectRef::<BranchRelease>::new(&pending.name).within(&pending.namespace);
    let result = write(forges, &forge, &pending, key, &release, &mut spent).await;
    forges.count(&pending.project, "report", &spent, result.as_ref().err());
    match result {
        Ok(done) => {
            let mut reported = forges.last_reported(key, &release);
            if let Some(commit) = &pending.commit {
                reported.commit = Some(commit.commit.clone());
                reported.state = Some(commit.state.to_string());
            }
            if let (Some(comment), Some(id)) = (&pending.comment, done) {
                reported.comment_id = Some(id);
                reported.commented_on = Some(comment.pull_request);
                reported.comment_digest = Some(comment.digest.clone());
            }
            reported.reported_at = Some(Time(crate::clock::now()));
            let mut state = forges.state.lock().expect("forge state");
            state.reported.insert(key.to_string(), reported);
            // Unless a newer report arrived meanwhile.
            if state
                .waiting
                .get(key)
                .is_some_and(|w| w.same_report(&pending))
            {
                state.waiting.remove(key);
            }
            drop(state);
            debug!(branch = key, "reported to the forge");
            // The forge answers again: a sync says so on the Project.
            if forges
                .health(&pending.project)
                .is_some_and(|h| h.reason == "ReportFailed")
            {
                forges.sync_soon(&pending.project);
            }
            let _ = forges.release_triggers.unbounded_send(release);
        }
        Err(error) => {
            let tries = pending.tries + 1;
            let backoff =
                (Duration::from_secs(5) * 2u32.saturating_pow(tries - 1)).min(LONGEST_BACKOFF);
            warn!(branch = key, %error, retry_in = ?backoff, "cannot report to the forge");
            if let Some(waiting) = forges
                .state
                .lock()
                .expect("forge state")
                .waiting
                .get_mut(key)
            {
                waiting.tries = tries;
                waiting.next_try = Some(Instant::now() + backoff);
            }
            forges.set_health(
                &pending.project,
                Health {
                    connected: false,
                    reason: "ReportFailed",
                    message: format!("reports wait and are retried: {error}"),
                },
            );
        }
    }
}

/// Writes the commit status and the comment; the comment's id when one was written.
async fn write(
    forges: &Forges,
    forge: &Forge,
    pending: &Pending,
    key: &str,
    release: &ObjectRef<BranchRelease>,
    spent: &mut Spent,
) -> Result<Option<i64>, ForgeError> {
    let credentials = forges
        .credentials(&pending.project, forge)
        .await
        .map_err(|missing| ForgeError::Unreachable(missing.message))?;
    let client = &credentials.client;
    let urls = Urls::of(forge);
    if let Some(commit) = &pending.commit {
        let mut body = json!({
            "state": commit.state,
            "description": commit.description,
            "context": commit.context,
        });
        if let Some(url) = &commit.target_url {
            body["target_url"] = json!(url);
        }
        client
            .write(
                Method::POST,
                &urls.commit_status(&commit.commit),
                &body,
                spent,
            )
            .await?;
    }
    let Some(comment) = &pending.comment else {
        return Ok(None);
    };
    let body = json!({ "body": comment.body });
    let known = forges.last_reported(key, release);
    // The comment written before, else one found by its marker (its id lost), else a new one.
    let mut id = known
        .comment_id
        .filter(|_| known.commented_on == Some(comment.pull_request));
    if id.is_none() {
        for page in client
            .list(&urls.pull_request_comments(comment.pull_request), spent)
            .await?
        {
            let found = provider::parse_comments(&page)
                .map_err(|e| ForgeError::Decode("the comments".into(), e.to_string()))?
                .into_iter()
                .find(|c| c.body.starts_with(&comment.marker));
            if let Some(found) = found {
                id = Some(found.id);
                break;
            }
        }
    }
    if let Some(existing) = id {
        match client
            .write(Method::PATCH, &urls.comment(existing), &body, spent)
            .await
        {
            Ok(_) => return Ok(Some(existing)),
            // Deleted by someone: write a new one.
            Err(ForgeError::Refused { status: 404, .. }) => {}
            Err(error) => return Err(error),
        }
    }
    let created = client
        .write(
            Method::POST,
            &urls.new_comment(comment.pull_request),
            &body,
            spent,
        )
        .await?;
    let created = provider::parse_comment(&created)
        .map_err(|e| ForgeError::Decode("the new comment".into(), e.to_string()))?;
    Ok(Some(created.id))
}
