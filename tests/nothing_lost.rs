//! Nothing Oksa does, or is deleted through, loses what a team keeps:
//! - a `retain: true` claim survives every way of deleting its BranchRelease (foreground,
//!   background, orphan), with the operator running or stopped;
//! - a foreground delete of a Project leaves its namespace and the retained data in it, with the
//!   operator stopped, and once it runs the Project waits (`DeletionBlocked`) until a person has
//!   deleted the kept claims;
//! - in the report-only expiry mode, an expired branch is said to be one that would be deleted,
//!   and is not.
//!
//! One test, in phases: the operator (a real `oksa run`, with a report-only expiry policy) is
//! stopped and started again in the middle.

mod support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, PersistentVolumeClaim};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{DeleteParams, ListParams, PropagationPolicy};
use kube::{Api, ResourceExt};
use oksa::api::{LifecycleState, Project};
use serde_json::json;
use support::eventually;
use support::fixtures::{TestProject, condition, web_component};
use support::process::OksaProcess;

const LONG: Duration = Duration::from_secs(90);
const MODES: [(&str, PropagationPolicy); 3] = [
    ("foreground", PropagationPolicy::Foreground),
    ("background", PropagationPolicy::Background),
    ("orphan", PropagationPolicy::Orphan),
];

fn start_operator() -> OksaProcess {
    let policy = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("report-only.yaml");
    std::fs::write(&policy, "expiry: {mode: Report}\n").unwrap();
    OksaProcess::start(&["--policy", policy.to_str().unwrap()], "oksa-nothing-lost")
}

/// Branch `name` with a retained volume `keep` and a plain one `scratch`.
fn branch_with_volumes(name: &str) -> serde_json::Value {
    let mut web = web_component("web", "nginx:1.27");
    web["containers"][0]["volumeMounts"] = json!([
        {"volume": "keep", "mountPath": "/keep"},
        {"volume": "scratch", "mountPath": "/scratch"},
    ]);
    json!({"branch": name, "components": [web], "volumes": [
        {"name": "keep", "size": "1Gi", "retain": true},
        {"name": "scratch", "size": "1Gi"},
    ]})
}

async fn delete_release(project: &TestProject, name: &str, propagation: PropagationPolicy) {
    let params = DeleteParams {
        propagation_policy: Some(propagation),
        ..DeleteParams::default()
    };
    project.releases().delete(name, &params).await.unwrap();
}

/// The claim exists, carries no owner reference and is labelled detached.
async fn kept_detached(project: &TestProject, claim: &str) {
    let claims = project.namespaced::<PersistentVolumeClaim>();
    let kept = eventually(LONG, &format!("claim {claim} kept, detached"), || async {
        let claim = claims.get_opt(claim).await.ok()??;
        claim
            .labels()
            .contains_key("oksa.dev/detached")
            .then_some(claim)
    })
    .await;
    assert!(
        kept.metadata.deletion_timestamp.is_none(),
        "{claim} is being deleted"
    );
    assert!(
        kept.owner_references().is_empty(),
        "{claim}: {:?}",
        kept.owner_references()
    );
}

async fn gone<K>(api: &Api<K>, name: &str)
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
    K::DynamicType: Default,
{
    support::wait_deleted(api, name, LONG).await;
}

#[tokio::test]
async fn retained_data_survives_every_deletion_and_report_only_expiry_deletes_nothing() {
    let mut operator = start_operator();
    let project = TestProject::create("nothing-lost", json!({})).await;

    // 1. The operator running: every propagation policy keeps the retained claim.
    for (mode, propagation) in MODES {
        project.create_ready(mode, branch_with_volumes(mode)).await;
        delete_release(&project, mode, propagation).await;
        gone(&project.releases(), mode).await;
        kept_detached(&project, &format!("{mode}-keep")).await;
        if mode != "orphan" {
            gone(
                &project.namespaced::<PersistentVolumeClaim>(),
                &format!("{mode}-scratch"),
            )
            .await;
        }
        println!("{mode} delete, operator running: {mode}-keep kept");
    }
    // What an orphaning delete left running is a person's to remove (its pods hold the claims).
    project
        .namespaced::<Deployment>()
        .delete("orphan-web", &DeleteParams::background())
        .await
        .unwrap();

    // 2. The operator stopped: the deletions wait for its finalizer, and the garbage collector
    // (which does run) never reaches a retained claim.
    let stopped: Vec<String> = MODES.iter().map(|(m, _)| format!("stopped-{m}")).collect();
    for name in &stopped {
        project.create_ready(name, branch_with_volumes(name)).await;
    }
    operator.kill();
    for (name, (_, propagation)) in stopped.iter().zip(MODES) {
        delete_release(&project, name, propagation).await;
    }
    // The collector deletes the foreground one's owned claim: it has acted.
    gone(
        &project.namespaced::<PersistentVolumeClaim>(),
        "stopped-foreground-scratch",
    )
    .await;
    let claims = project.namespaced::<PersistentVolumeClaim>();
    for name in &stopped {
        let claim = claims.get(&format!("{name}-keep")).await.unwrap();
        assert!(claim.metadata.deletion_timestamp.is_none(), "{name}-keep");
    }

    // A foreground delete of the Project, the operator still stopped: the collector removes what
    // the Project owns (its NetworkPolicy…), never its namespace.
    let projects = project.api();
    projects
        .delete(&project.name, &DeleteParams::foreground())
        .await
        .unwrap();
    gone(&project.namespaced::<NetworkPolicy>(), "oksa-isolation").await;
    let namespace = Api::<Namespace>::all(project.client.clone())
        .get(&project.namespace)
        .await
        .unwrap();
    assert!(
        namespace.metadata.deletion_timestamp.is_none(),
        "the namespace is being deleted with the operator stopped"
    );

    // The operator back: each deletion finishes keeping its claim, and the Project waits.
    operator = start_operator();
    for name in &stopped {
        gone(&project.releases(), name).await;
        kept_detached(&project, &format!("{name}-keep")).await;
    }
    let blocked = support::wait_for(
        &projects,
        &project.name,
        LONG,
        "DeletionBlocked",
        |p: Option<&Project>| {
            p.and_then(|p| p.status.as_ref()).is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.reason == "DeletionBlocked")
            })
        },
    )
    .await;
    let message = blocked
        .status
        .unwrap()
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .unwrap()
        .message;
    assert!(message.contains("stopped-foreground-keep"), "{message}");
    // A person deletes the kept claims: then the namespace and the Project go.
    claims
        .delete_collection(&DeleteParams::default(), &ListParams::default())
        .await
        .unwrap();
    gone(&projects, &project.name).await;
    gone(
        &Api::<Namespace>::all(project.client.clone()),
        &project.namespace,
    )
    .await;

    // 3. Report-only expiry: the branch that would go is named, and stays.
    let reported = TestProject::create(
        "report-only",
        json!({"defaults": {"lifecycle": {"expireAfter": "6s"}}}),
    )
    .await;
    reported
        .create_ready("idle", support::fixtures::web_branch("idle", "nginx:1.27"))
        .await;
    let release = reported
        .wait_release("idle", "WouldBeDeleted", |s| {
            condition(s, "ExpiringSoon").is_some_and(|c| c.1 == "WouldBeDeleted")
        })
        .await;
    let status = release.status.unwrap();
    assert_eq!(
        status.lifecycle.unwrap().state,
        LifecycleState::Awake,
        "report-only: nothing changes"
    );
    let reasons = reported.event_reasons("idle").await;
    assert!(reasons.iter().any(|r| r == "WouldExpire"), "{reasons:?}");
    let would = operator.counter("oksa_expiry_total", "deleted").await;
    assert!(would >= 1.0, "oksa_expiry_total would_delete: {would}");
    // WouldBeDeleted is set by the very decision that deletes in the Delete mode.
    assert!(reported.releases().get_opt("idle").await.unwrap().is_some());
    reported.cleanup().await;
}
