//! What a branch's environment says to its forge: a commit status for the commit it runs (its
//! verdict only, so it is written when the verdict changes, not at every reconcile) and a
//! pull-request comment for people (URL, state, asleep or awake, expiry, protection).

use sha2::{Digest, Sha256};

use crate::api::conditions::{self, STALLED};
use crate::api::{BranchRelease, BranchReleaseStatus, LifecycleState, Phase, Project};

/// The commit status of one branch's environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitStatus {
    pub commit: String,
    /// `pending`, `success` or `failure`.
    pub state: &'static str,
    /// At most 140 characters (GitHub's limit).
    pub description: String,
    pub target_url: Option<String>,
    /// `oksa/<release name>`: one status per environment, whatever else reports on the commit.
    pub context: String,
}

/// The commit status `status` deserves, once it describes the current spec and the spec names a
/// commit (a hex SHA: a tag or a branch name cannot carry a status).
pub fn commit_status(
    release: &BranchRelease,
    status: &BranchReleaseStatus,
) -> Option<CommitStatus> {
    let commit = release.spec.commit.as_deref()?;
    if !is_sha(commit) || status.observed_generation != release.metadata.generation {
        return None;
    }
    let ready_message = conditions::find(&status.conditions, conditions::READY)
        .map(|c| c.message.clone())
        .unwrap_or_default();
    let stalled = conditions::find(&status.conditions, STALLED)
        .filter(|c| c.status == "True")
        .map(|c| c.message.clone());
    let (state, description) = match status.phase? {
        Phase::Ready | Phase::Sleeping | Phase::Expired => (
            "success",
            match &status.url {
                Some(url) => format!("Ready at {url}"),
                None => "Ready".to_string(),
            },
        ),
        Phase::Invalid => ("failure", ready_message),
        Phase::Degraded if stalled.is_some() => ("failure", stalled.unwrap_or_default()),
        Phase::Progressing | Phase::Degraded | Phase::Pending => (
            "pending",
            match ready_message.is_empty() {
                true => "rolling out".to_string(),
                false => ready_message,
            },
        ),
    };
    Some(CommitStatus {
        commit: commit.to_string(),
        state,
        description: cut(&description, 140),
        target_url: status.url.clone(),
        context: format!(
            "oksa/{}",
            status.release_name.as_deref().unwrap_or("branch")
        ),
    })
}

fn is_sha(text: &str) -> bool {
    (7..=64).contains(&text.len()) && text.chars().all(|c| c.is_ascii_hexdigit())
}

fn cut(text: &str, most: usize) -> String {
    if text.chars().count() <= most {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(most - 1).collect();
    cut.push('…');
    cut
}

/// The hidden first line that marks Oksa's comment for this environment, so it is found again
/// (and never another one written) after its id was lost.
pub fn comment_marker(project: &str, release_name: &str) -> String {
    format!("<!-- oksa:{project}/{release_name} -->")
}

/// The pull-request comment: what a developer wants to know without `kubectl`.
pub fn comment(release: &BranchRelease, status: &BranchReleaseStatus, project: &Project) -> String {
    let release_name = status.release_name.as_deref().unwrap_or_default();
    let mut lines = vec![
        comment_marker(&release.spec.project, release_name),
        format!("### Oksa: `{}`", release.spec.branch),
        String::new(),
    ];
    let state = match status.phase {
        Some(Phase::Ready) => "✅ Ready".to_string(),
        Some(Phase::Sleeping) => "💤 Asleep: the first request wakes it".to_string(),
        Some(Phase::Expired) => "⌛ Expired: asleep until deployed again".to_string(),
        Some(Phase::Progressing) | Some(Phase::Pending) | None => "⏳ Rolling out".to_string(),
        Some(Phase::Degraded) | Some(Phase::Invalid) => format!(
            "❌ {}",
            conditions::find(&status.conditions, conditions::READY)
                .map(|c| c.message.as_str())
                .unwrap_or("not ready")
        ),
    };
    lines.push(format!("| | |\n|---|---|\n| State | {state} |"));
    if let Some(url) = &status.url {
        lines.push(format!("| URL | {url} |"));
    }
    if let Some(commit) = status.deployed_commit.as_deref() {
        lines.push(format!("| Commit | `{commit}` |"));
    }
    if let Some(lifecycle) = &status.lifecycle {
        if lifecycle.state == LifecycleState::Awake
            && let Some(at) = &lifecycle.sleeps_at
        {
            lines.push(format!("| Sleeps | at {} unless used before |", at.0));
        }
        if let Some(at) = &lifecycle.expires_at {
            lines.push(format!(
                "| Expires | {} (a deploy, a request or `oksa keepalive` postpones it) |",
                at.0
            ));
        }
    }
    if let Some(protection) = crate::routing::protection(release, project) {
        // Markdown would take `<token>` for an HTML tag and hide it.
        let ways = crate::routing::ways_in(protection).join("; or ");
        lines.push(format!(
            "| Access | protected: {} |",
            ways.replace('<', "&lt;")
        ));
    }
    lines.join("\n")
}

/// A short digest of a comment's text, kept in status to tell whether it changed.
pub fn digest(text: &str) -> String {
    let hash = Sha256::digest(text.as_bytes());
    hash.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::conditions::Desired;
    use crate::test_fixtures::{project_from_yaml, release_from_yaml};

    fn release(branch: &str) -> BranchRelease {
        release_from_yaml(&format!(
            "spec: {{project: shop, branch: {branch}, components: [{{name: web, containers: [{{name: web, image: nginx}}]}}]}}"
        ))
    }

    fn project(_name: &str) -> Project {
        project_from_yaml("spec: {domain: shop.example.com}")
    }

    fn status_of(
        release: &BranchRelease,
        phase: Phase,
        ready: (bool, &str, &str),
    ) -> BranchReleaseStatus {
        let conditions = conditions::merge(
            &[],
            &[Desired::new(conditions::READY, ready.0, ready.1, ready.2)],
            release.metadata.generation,
            Default::default(),
        );
        BranchReleaseStatus {
            observed_generation: release.metadata.generation,
            phase: Some(phase),
            release_name: Some("feature-a".into()),
            url: Some("http://feature-a.shop.example.com".into()),
            conditions,
            ..Default::default()
        }
    }

    #[test]
    fn the_verdict_follows_the_phase_and_names_the_url_or_the_reason() {
        let mut release = release("feature/a");
        release.spec.commit = Some("0123456789abcdef0123456789abcdef01234567".into());
        release.metadata.generation = Some(2);
        let ready = commit_status(
            &release,
            &status_of(&release, Phase::Ready, (true, "Ready", "")),
        )
        .unwrap();
        assert_eq!(ready.state, "success");
        assert_eq!(
            ready.description,
            "Ready at http://feature-a.shop.example.com"
        );
        assert_eq!(ready.context, "oksa/feature-a");
        let rolling = commit_status(
            &release,
            &status_of(
                &release,
                Phase::Progressing,
                (false, "RollingOut", "web: 0/1 ready"),
            ),
        )
        .unwrap();
        assert_eq!(
            (rolling.state, rolling.description.as_str()),
            ("pending", "web: 0/1 ready")
        );
        let invalid = commit_status(
            &release,
            &status_of(
                &release,
                Phase::Invalid,
                (false, "Invalid", &"x".repeat(300)),
            ),
        )
        .unwrap();
        assert_eq!(invalid.state, "failure");
        assert_eq!(invalid.description.chars().count(), 140);
        // A status of an older generation says nothing about this commit.
        let mut old = status_of(&release, Phase::Ready, (true, "Ready", ""));
        old.observed_generation = Some(1);
        assert_eq!(commit_status(&release, &old), None);
        // Nor can a branch name carry a status.
        release.spec.commit = Some("main".into());
        assert_eq!(
            commit_status(
                &release,
                &status_of(&release, Phase::Ready, (true, "Ready", ""))
            ),
            None
        );
    }

    #[test]
    fn the_comment_is_marked_and_says_how_to_get_in() {
        let release = release("feature/a");
        let mut project = project("shop");
        project.spec.protection = Some(crate::api::Protection {
            allow_cidrs: vec![crate::api::Cidr("10.0.0.0/8".into())],
            ..Default::default()
        });
        let text = comment(
            &release,
            &status_of(&release, Phase::Sleeping, (true, "Ready", "")),
            &project,
        );
        assert!(
            text.starts_with(&comment_marker("shop", "feature-a")),
            "{text}"
        );
        assert!(text.contains("Asleep"), "{text}");
        assert!(text.contains("http://feature-a.shop.example.com"), "{text}");
        assert!(text.contains("come from 10.0.0.0/8"), "{text}");
        assert_ne!(digest(&text), digest(&text.replace("Asleep", "Ready")));
    }
}
