//! Expiry deletes only what it may prove is safe: never the production branch unless that
//! branch asks; never a BranchRelease a declarative tool applied (Helm for real, Argo CD's
//! labels and field manager as it writes them, the platform's own marks); only after the
//! warning has stood for its window; at most the platform's budget per project and hour. And a
//! branch's own lifecycle settings are held to the platform's bounds.
//!
//! The operator of this binary runs with a policy of its own: one expiry deletion per project
//! and hour, bounds of an hour, no `neverSleep` for branches, one extra GitOps mark.

mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Patch, PatchParams};
use oksa::api::{BranchRelease, LifecycleState, Phase};
use serde_json::json;
use support::eventually;
use support::fixtures::{TestProject, condition, release_object, web_branch};

const LONG: Duration = Duration::from_secs(120);
const PLATFORM_MARK: &str = "platform.example/managed";

fn policy() -> oksa::policy::Policy {
    let mut policy = oksa::policy::Policy::default();
    policy.expiry.max_deletions_per_hour = 1;
    policy.branch_lifecycle = oksa::policy::LifecycleBounds {
        longest_pin: Some("1h".into()),
        longest_sleep_after: Some("1h".into()),
        longest_expire_after: Some("1h".into()),
        longest_max_age: Some("1h".into()),
        never_sleep: false,
    };
    policy.gitops.labels = vec![format!("{PLATFORM_MARK}=yes")];
    policy
}

async fn create_project(prefix: &str, spec: serde_json::Value) -> TestProject {
    support::operator::set_policy(policy());
    TestProject::create(prefix, spec).await
}

fn state(release: &BranchRelease) -> Option<LifecycleState> {
    release.status.as_ref()?.lifecycle.as_ref().map(|l| l.state)
}

/// Sets the Project's branch defaults, as a platform team editing it would.
async fn set_defaults(project: &TestProject, lifecycle: serde_json::Value) {
    project
        .api()
        .patch(
            &project.name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"defaults": {"lifecycle": lifecycle}}})),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn expiry_waits_out_its_warning_spares_production_and_keeps_to_its_budget() {
    let project = create_project("expiry-safe", json!({"productionBranch": "main"})).await;
    for branch in ["main", "a", "b", "c"] {
        project
            .create_ready(branch, web_branch(branch, "nginx:1.27"))
            .await;
    }
    // A platform change makes every branch past its limit at once: maxAge 5s (they are older),
    // expireAfter 50s (so a warning window of 10 s).
    let changed = Instant::now();
    set_defaults(&project, json!({"maxAge": "5s", "expireAfter": "50s"})).await;

    // Follow the branches: when each was first warned, and when it went.
    let releases = project.releases();
    let mut warned_at: HashMap<String, Timestamp> = HashMap::new();
    let mut gone_at: HashMap<String, Timestamp> = HashMap::new();
    let deadline = Instant::now() + LONG;
    loop {
        for name in ["a", "b", "c"] {
            match releases.get_opt(name).await.unwrap() {
                Some(release) => {
                    let warned = release
                        .status
                        .as_ref()
                        .and_then(|s| s.lifecycle.as_ref())
                        .and_then(|l| l.expiry_warned_at.as_ref());
                    if let Some(at) = warned {
                        warned_at.entry(name.to_string()).or_insert(at.0);
                    }
                }
                None => {
                    gone_at
                        .entry(name.to_string())
                        .or_insert_with(Timestamp::now);
                }
            }
        }
        let expired = futures::future::join_all(
            ["a", "b", "c"].map(|n| async { releases.get_opt(n).await.ok().flatten() }),
        )
        .await
        .into_iter()
        .flatten()
        .filter(|r| state(r) == Some(LifecycleState::Expired))
        .count();
        if gone_at.len() == 1 && expired == 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "one of a, b, c deleted and two Expired within {LONG:?}: gone {gone_at:?}, warned {warned_at:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let (deleted, at) = gone_at.iter().next().unwrap();
    let warned = warned_at
        .get(deleted)
        .unwrap_or_else(|| panic!("{deleted} was deleted without ever being warned"));
    let stood = at.duration_since(*warned).as_secs_f64();
    println!(
        "{deleted}: deleted {stood:.1} s after its warning ({:.1?} after the change)",
        changed.elapsed()
    );
    // Status times are whole seconds: allow one.
    assert!(
        stood >= 9.0,
        "{deleted} was deleted {stood:.1} s after its warning, before the 10 s window"
    );
    let reasons = project.event_reasons(deleted).await;
    assert!(
        reasons.iter().any(|r| r == "ExpiringSoon") && reasons.iter().any(|r| r == "Expired"),
        "{reasons:?}"
    );

    // The other two wait for the budget, asleep, and the Project says so.
    let limited = project
        .wait_status("ExpiryLimited", |s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == "ExpiryLimited" && c.status == "True")
        })
        .await;
    let message = &limited
        .status
        .unwrap()
        .conditions
        .into_iter()
        .find(|c| c.type_ == "ExpiryLimited")
        .unwrap()
        .message;
    assert!(
        message.contains("2 expired branches wait") && message.contains("maxDeletionsPerHour"),
        "{message}"
    );

    // The production branch is not even warned: the Project's defaults are not its own.
    let main = releases.get("main").await.unwrap();
    let lifecycle = main.status.as_ref().unwrap().lifecycle.clone().unwrap();
    assert_eq!(lifecycle.state, LifecycleState::Awake);
    assert_eq!(lifecycle.expires_at, None);
    assert_eq!(
        condition(main.status.as_ref().unwrap(), "ExpiringSoon").map(|c| c.0),
        Some("False".into())
    );
    project.cleanup().await;
}

/// A chart holding one BranchRelease, installed with the plane's Helm.
fn helm_install(project: &TestProject, name: &str) {
    let chart =
        std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(support::unique("br-chart"));
    std::fs::create_dir_all(chart.join("templates")).unwrap();
    std::fs::write(
        chart.join("Chart.yaml"),
        "apiVersion: v2\nname: branch\nversion: 0.1.0\n",
    )
    .unwrap();
    let mut spec = web_branch(name, "nginx:1.27");
    spec["project"] = json!(project.name);
    let manifest = json!({"apiVersion": "oksa.dev/v1alpha1", "kind": "BranchRelease",
        "metadata": {"name": name}, "spec": spec});
    std::fs::write(
        chart.join("templates/branch.yaml"),
        serde_yaml_ng::to_string(&manifest).unwrap(),
    )
    .unwrap();
    support::succeed(support::tool("helm").args([
        "install",
        &support::unique("branch"),
        chart.to_str().unwrap(),
        "--namespace",
        &project.namespace,
    ]));
}

/// Applies a BranchRelease server-side as `manager`, with `labels`.
async fn apply_as(project: &TestProject, name: &str, manager: &str, labels: serde_json::Value) {
    let mut spec = web_branch(name, "nginx:1.27");
    spec["project"] = json!(project.name);
    let mut release = release_object(name, spec);
    release.metadata.labels = serde_json::from_value(labels).unwrap();
    project
        .releases()
        .patch(name, &PatchParams::apply(manager), &Patch::Apply(&release))
        .await
        .unwrap();
}

#[tokio::test]
async fn expiry_never_deletes_what_a_declarative_tool_applied() {
    let project = create_project("expiry-gitops", json!({})).await;
    set_defaults(&project, json!({"expireAfter": "10s"})).await;
    helm_install(&project, "helm");
    // Argo CD 2.x: its default tracking label, applied server-side by its controller.
    apply_as(
        &project,
        "argocd",
        "argocd-controller",
        json!({"app.kubernetes.io/instance": "shop-branches"}),
    )
    .await;
    // Argo CD's field manager alone: the cached BranchRelease must keep the managers' names.
    apply_as(&project, "argocd-manager", "argocd-controller", json!({})).await;
    apply_as(
        &project,
        "platform",
        "deployer",
        json!({PLATFORM_MARK: "yes"}),
    )
    .await;
    apply_as(&project, "plain", "deployer", json!({})).await;

    let releases = project.releases();
    support::wait_deleted(&releases, "plain", LONG).await;
    for name in ["helm", "argocd", "argocd-manager", "platform"] {
        let release = eventually(LONG, &format!("{name} Expired, not deleted"), || async {
            let release = releases.get_opt(name).await.ok()??;
            (release.status.as_ref()?.phase == Some(Phase::Expired)).then_some(release)
        })
        .await;
        assert!(release.metadata.deletion_timestamp.is_none(), "{name}");
    }
    let helm = releases.get("helm").await.unwrap();
    assert_eq!(
        helm.labels()
            .get("app.kubernetes.io/managed-by")
            .map(String::as_str),
        Some("Helm"),
        "installed by Helm"
    );
    project.cleanup().await;
}

#[tokio::test]
async fn a_branch_asking_past_the_platforms_bounds_is_held_to_them() {
    let project = create_project("bounds", json!({})).await;
    set_defaults(&project, json!({"sleepAfter": "30m"})).await;
    let mut spec = web_branch("forever", "nginx:1.27");
    spec["lifecycle"] = json!({"pinnedUntil": "2099-01-01T00:00:00Z", "expireAfter": "999999d",
        "sleepAfter": "999d", "neverSleep": true});
    project.create_release("forever", spec).await;
    let release = project
        .wait_release("forever", "LifecycleBounded", |s| {
            condition(s, "LifecycleBounded").is_some_and(|c| c.0 == "True")
        })
        .await;
    let status = release.status.unwrap();
    let (_, reason, message) = condition(&status, "LifecycleBounded").unwrap();
    assert_eq!(reason, "HeldToPolicy");
    for held in ["pinnedUntil", "expireAfter", "sleepAfter", "neverSleep"] {
        assert!(message.contains(held), "{held} in {message}");
    }
    let lifecycle = status.lifecycle.unwrap();
    let an_hour_on = Timestamp::now() + k8s_openapi::jiff::SignedDuration::from_mins(61);
    let sleeps_at = lifecycle
        .sleeps_at
        .expect("it sleeps: neverSleep is not allowed");
    assert!(sleeps_at.0 <= an_hour_on, "sleeps at {}", sleeps_at.0);
    let expires_at = lifecycle.expires_at.expect("it expires");
    assert!(expires_at.0 <= an_hour_on, "expires at {}", expires_at.0);
    // Within the bounds, nothing is said.
    project
        .apply_release("forever", web_branch("forever", "nginx:1.27"))
        .await
        .unwrap();
    project
        .wait_release("forever", "back within bounds", |s| {
            condition(s, "LifecycleBounded").is_some_and(|c| c.0 == "False")
        })
        .await;
    project.cleanup().await;
}
