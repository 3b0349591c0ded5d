//! The status table of `oksa status` and the demo: one line per branch. Pure.

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use crate::api::BranchRelease;

/// What the pods of each branch use: (CPU millicores, memory millibytes) by (namespace, release
/// name), from `metrics.k8s.io`.
pub type Usage = std::collections::BTreeMap<(String, String), (i128, i128)>;

/// Renders branches as an aligned text table, sorted by branch.
pub fn render(releases: &[BranchRelease], now: Timestamp) -> String {
    render_with_usage(releases, now, None)
}

/// `render`, with what the branches use where it is known.
pub fn render_with_usage(
    releases: &[BranchRelease],
    now: Timestamp,
    usage: Option<&Usage>,
) -> String {
    let used = |r: &BranchRelease| -> String {
        let key = (
            r.namespace().unwrap_or_default(),
            crate::naming::release_name(&r.spec.branch),
        );
        match usage.and_then(|u| u.get(&key)) {
            Some((cpu, memory)) => format!(
                "{} / {}",
                crate::quantity::format_cpu(*cpu),
                crate::quantity::format_memory(*memory)
            ),
            None => "-".into(),
        }
    };
    let mut rows: Vec<[String; 10]> = releases
        .iter()
        .map(|r| {
            let status = r.status.clone().unwrap_or_default();
            [
                r.spec.branch.clone(),
                status
                    .phase
                    .map(|p| format!("{p:?}"))
                    .unwrap_or_else(|| "Unknown".into()),
                status
                    .ready_components
                    .clone()
                    .unwrap_or_else(|| "-".into()),
                status.url.clone().unwrap_or_else(|| "-".into()),
                r.creation_timestamp()
                    .map(|t| age(now, t.0))
                    .unwrap_or_else(|| "-".into()),
                status
                    .requested
                    .as_ref()
                    .map(|q| format!("{} / {}", q.cpu, q.memory))
                    .unwrap_or_else(|| "-".into()),
                used(r),
                awake_bar(&status, now),
                saved(&status, now),
                status
                    .deployed_commit
                    .or_else(|| r.spec.commit.clone())
                    .unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    rows.sort();
    let header = [
        "BRANCH",
        "PHASE",
        "READY",
        "URL",
        "AGE",
        "REQUESTED",
        "USED",
        "AWAKE (7D)",
        "SAVED (7D)",
        "COMMIT",
    ]
    .map(String::from);
    let mut widths = header.clone().map(|h| h.chars().count());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    std::iter::once(header)
        .chain(rows)
        .map(|row| {
            let cells: Vec<String> = row
                .iter()
                .zip(widths)
                .map(|(cell, width)| format!("{cell:<width$}"))
                .collect();
            cells.join("  ").trim_end().to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The share of the last week the branch was awake, as a bar a person reads at a glance:
/// `███░░░░░░░  30%`.
fn awake_bar(status: &crate::api::BranchReleaseStatus, now: Timestamp) -> String {
    let Some(lifecycle) = status.lifecycle.as_ref() else {
        return "-".into();
    };
    let (awake, asleep) = crate::model::branch_release::cost::week(&lifecycle.history, now);
    if awake + asleep <= 0.0 {
        return "-".into();
    }
    let share = awake / (awake + asleep);
    let filled = (share * 10.0).round() as usize;
    format!(
        "{}{} {:>3.0}%",
        "█".repeat(filled),
        "░".repeat(10 - filled),
        share * 100.0
    )
}

/// CPU-hours not requested over the last week because the branch slept.
fn saved(status: &crate::api::BranchReleaseStatus, now: Timestamp) -> String {
    let (Some(lifecycle), Some(requested)) = (status.lifecycle.as_ref(), status.requested.as_ref())
    else {
        return "-".into();
    };
    let (_, asleep) = crate::model::branch_release::cost::week(&lifecycle.history, now);
    let cores =
        crate::quantity::Quantity::parse(&requested.cpu).map_or(0.0, |q| q.milli() as f64 / 1000.0);
    format!("{:.1} CPU·h", cores * asleep / 3600.0)
}

/// Why each branch that is not Ready is not, one line each (for failures and timeouts).
pub fn reasons(releases: &[BranchRelease]) -> Vec<String> {
    releases
        .iter()
        .filter_map(|r| {
            let status = r.status.as_ref()?;
            let ready =
                crate::api::conditions::find(&status.conditions, crate::api::conditions::READY)?;
            (ready.status != "True")
                .then(|| format!("{}: {} ({})", r.spec.branch, ready.message, ready.reason))
        })
        .collect()
}

/// Where each branch's data came from and how its deploy jobs went, one line each, for the
/// lines under the table: `feature/a: volume db cloned from main-db 3h ago`.
pub fn data_lines(releases: &[BranchRelease], now: Timestamp) -> Vec<String> {
    let mut lines = Vec::new();
    for release in releases {
        let Some(status) = release.status.as_ref() else {
            continue;
        };
        let branch = &release.spec.branch;
        for volume in &status.volumes {
            match (&volume.cloned_from, &volume.message) {
                (Some(from), _) => {
                    let when = volume
                        .cloned_at
                        .as_ref()
                        .map(|at| format!(" {} ago", age(now, at.0)))
                        .unwrap_or_default();
                    lines.push(format!(
                        "{branch}: volume {} cloned from {from}{when}",
                        volume.name
                    ));
                }
                (None, Some(message)) => lines.push(format!("{branch}: {message}")),
                _ => {}
            }
        }
        for job in status.jobs.iter().filter(|j| j.phase != "Succeeded") {
            let code = job
                .exit_code
                .map(|c| format!(" (exit code {c})"))
                .unwrap_or_default();
            lines.push(format!("{branch}: job {} {}{code}", job.name, job.phase));
        }
    }
    lines
}

/// What each branch's forge said and was told, one line each: `feature/a: pull request #4,
/// commit status success on 0123abc`, or why the forge says it is gone.
pub fn forge_lines(releases: &[BranchRelease]) -> Vec<String> {
    let mut lines = Vec::new();
    for release in releases {
        let Some(forge) = release.status.as_ref().and_then(|s| s.forge.as_ref()) else {
            continue;
        };
        let branch = &release.spec.branch;
        if let Some(gone) = &forge.gone {
            lines.push(format!("{branch}: gone from the forge: {gone}"));
            continue;
        }
        let mut said = Vec::new();
        if let Some(number) = forge.pull_request {
            said.push(format!("pull request #{number}"));
        }
        if let (Some(state), Some(commit)) = (&forge.state, &forge.commit) {
            let short: String = commit.chars().take(7).collect();
            said.push(format!("commit status {state} on {short}"));
        }
        if !said.is_empty() {
            lines.push(format!("{branch}: {}", said.join(", ")));
        }
    }
    lines
}

/// `kubectl`-style age: 42s, 5m, 3h, 2d.
pub fn age(now: Timestamp, then: Timestamp) -> String {
    let seconds = (now.as_second() - then.as_second()).max(0);
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fixtures::release_from_yaml;

    #[test]
    fn a_table_with_one_line_per_branch() {
        let mut ready =
            release_from_yaml("spec: {project: p, branch: main, commit: abc, components: []}");
        ready.status = Some(crate::api::BranchReleaseStatus {
            phase: Some(crate::api::Phase::Ready),
            ready_components: Some("2/2".into()),
            url: Some("http://main.example.com".into()),
            ..Default::default()
        });
        let pending = release_from_yaml("spec: {project: p, branch: feature/x, components: []}");
        let table = render(&[ready, pending], Timestamp::UNIX_EPOCH);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("BRANCH     PHASE"), "{table}");
        assert!(lines[1].starts_with("feature/x  Unknown"), "{table}");
        assert!(
            lines[2].contains("Ready")
                && lines[2].contains("http://main.example.com")
                && lines[2].ends_with("abc"),
            "{table}"
        );
    }

    #[test]
    fn requested_awake_share_and_savings_read_at_a_glance() {
        use crate::api::{LifecycleState, LifecycleStatus, Requested, SleepTransition};
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
        let t = |s: i64| Time(Timestamp::from_second(1_800_000_000 + s).unwrap());
        let mut release = release_from_yaml("spec: {project: p, branch: main, components: []}");
        release.status = Some(crate::api::BranchReleaseStatus {
            requested: Some(Requested {
                cpu: "500m".into(),
                memory: "256Mi".into(),
            }),
            lifecycle: Some(LifecycleStatus {
                state: LifecycleState::Sleeping,
                reason: None,
                since: t(0),
                last_activity: t(0),
                last_activity_source: "Deploy".into(),
                sleeps_at: None,
                expires_at: None,
                expiry_warned_at: None,
                // Awake 3 h, then asleep 7 h.
                history: vec![
                    SleepTransition {
                        asleep: false,
                        at: t(0),
                    },
                    SleepTransition {
                        asleep: true,
                        at: t(3 * 3600),
                    },
                ],
            }),
            ..Default::default()
        });
        release.metadata.namespace = Some("shop".into());
        let usage = Usage::from([(
            ("shop".to_string(), "main".to_string()),
            (12, 30 * 1024 * 1024 * 1000),
        )]);
        let table = render_with_usage(&[release], t(10 * 3600).0, Some(&usage));
        let line = table.lines().nth(1).unwrap();
        assert!(line.contains("12m / 30Mi"), "{table}");
        assert!(line.contains("500m / 256Mi"), "{table}");
        assert!(line.contains("███░░░░░░░  30%"), "{table}");
        assert!(line.contains("3.5 CPU·h"), "{table}");
    }

    #[test]
    fn ages_read_like_kubectl() {
        let t = |s| Timestamp::from_second(s).unwrap();
        assert_eq!(age(t(100), t(58)), "42s");
        assert_eq!(age(t(1000), t(0)), "16m");
        assert_eq!(age(t(90_000), t(0)), "25h");
        assert_eq!(age(t(900_000), t(0)), "10d");
    }

    #[test]
    fn forge_lines_say_what_the_forge_was_told_or_why_the_branch_goes() {
        let mut reported = crate::test_fixtures::release_from_yaml(
            "spec: {project: shop, branch: feature/a, components: []}",
        );
        reported.status = Some(crate::api::BranchReleaseStatus {
            forge: Some(crate::api::ForgeStatus {
                commit: Some("0123456789abcdef".into()),
                state: Some("success".into()),
                pull_request: Some(4),
                ..Default::default()
            }),
            ..Default::default()
        });
        let mut gone = reported.clone();
        gone.spec.branch = "feature/b".into();
        gone.status.as_mut().unwrap().forge.as_mut().unwrap().gone =
            Some("branch `feature/b` was deleted in the forge".into());
        assert_eq!(
            forge_lines(&[reported, gone]),
            vec![
                "feature/a: pull request #4, commit status success on 0123456",
                "feature/b: gone from the forge: branch `feature/b` was deleted in the forge",
            ]
        );
    }

    #[test]
    fn data_lines_say_where_a_branchs_data_came_from_and_which_job_is_not_done() {
        let mut release =
            release_from_yaml("spec: {project: shop, branch: feature/a, components: []}");
        release.status = Some(
            serde_json::from_value(serde_json::json!({
                "volumes": [
                    {"name": "db", "claimName": "feature-a-db", "clonedFrom": "main-db",
                     "clonedAt": "2026-12-06T07:00:00Z"},
                    {"name": "files", "claimName": "feature-a-files",
                     "message": "volume files waits for its reference data: claim main-files of branch main does not exist yet"},
                ],
                "jobs": [
                    {"name": "sanitize", "jobName": "x", "phase": "Succeeded"},
                    {"name": "migrate", "jobName": "y", "phase": "Failed", "exitCode": 1},
                ],
            }))
            .unwrap(),
        );
        let now: Timestamp = "2026-12-06T10:00:00Z".parse().unwrap();
        assert_eq!(
            data_lines(&[release], now),
            [
                "feature/a: volume db cloned from main-db 3h ago",
                "feature/a: volume files waits for its reference data: claim main-files of branch main does not exist yet",
                "feature/a: job migrate Failed (exit code 1)",
            ]
        );
    }
}
