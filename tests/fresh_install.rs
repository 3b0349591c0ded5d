//! The first minutes of a cluster that has never seen Oksa: the CRDs, a Project and its first
//! branch applied at once (what a GitOps sync or a CI job does). The controller-manager's quota
//! monitor learns of a new CRD only later; a quota that counted BranchReleases refused every
//! branch of the namespace until its next full resync (minutes). The branch limit is Oksa's own
//! now, so the branch is created at once and becomes Ready.
//!
//! On the local plane the CRDs are deleted first, so the plane has truly never seen them (its own
//! test binary: nothing else runs meanwhile). Against a cluster given by KUBECONFIG nothing is
//! deleted; the test then shows only the same sequence on a cluster that knows the CRDs.

mod support;

use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, ResourceQuota};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::{Api, ResourceExt};
use oksa::api::{BranchRelease, Phase, Project};
use serde_json::json;
use support::fixtures::{TestProject, web_branch};

/// Removes every Project and BranchRelease left by earlier runs, then the CRDs themselves, and the
/// Projects' namespaces: Oksa never adopts a namespace of a Project that is gone, so a later run on
/// this plane (the demo's `shop`) would otherwise find its namespace taken.
async fn forget_the_crds(client: &kube::Client) {
    let no_finalizers = json!({"metadata": {"finalizers": null}});
    let projects = Api::<Project>::all(client.clone());
    let releases = Api::<BranchRelease>::all(client.clone());
    if let Ok(list) = releases.list(&ListParams::default()).await {
        for release in list {
            let api = Api::<BranchRelease>::namespaced(
                client.clone(),
                &release.namespace().unwrap_or_default(),
            );
            let _ = api
                .patch(
                    &release.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&no_finalizers),
                )
                .await;
        }
    }
    if let Ok(list) = projects.list(&ListParams::default()).await {
        for project in list {
            let _ = projects
                .patch(
                    &project.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&no_finalizers),
                )
                .await;
        }
    }
    let crds = Api::<CustomResourceDefinition>::all(client.clone());
    for name in ["branchreleases.oksa.dev", "projects.oksa.dev"] {
        let _ = crds.delete(name, &DeleteParams::default()).await;
    }
    for name in ["branchreleases.oksa.dev", "projects.oksa.dev"] {
        support::wait_deleted(&crds, name, Duration::from_secs(120)).await;
    }
    let namespaces = Api::<Namespace>::all(client.clone());
    let managed = ListParams::default().labels("app.kubernetes.io/managed-by=oksa");
    if let Ok(list) = namespaces.list(&managed).await {
        for namespace in list {
            let _ = namespaces
                .delete(&namespace.name_any(), &DeleteParams::default())
                .await;
        }
    }
}

#[tokio::test]
async fn a_branch_applied_with_its_project_on_a_new_cluster_is_admitted_and_ready() {
    let client = support::client().await;
    if support::plane().tools.is_some() {
        forget_the_crds(&client).await;
    }
    // Installs the CRDs and starts the operator; then the Project, then its branch, at once.
    let project = TestProject::create(
        "fresh",
        json!({"quota": {"cpu": "4", "memory": "8Gi", "maxBranches": 3}}),
    )
    .await;
    let created = project
        .apply_release("main", web_branch("main", "nginx"))
        .await;
    assert!(
        created.is_ok(),
        "the first branch was refused: {}",
        oksa::apply::describe(&created.unwrap_err())
    );
    project
        .wait_release("main", "Ready", |s| s.phase == Some(Phase::Ready))
        .await;
    let quota = project
        .namespaced::<ResourceQuota>()
        .get("oksa-quota")
        .await
        .unwrap();
    assert!(
        !quota
            .spec
            .unwrap()
            .hard
            .unwrap()
            .keys()
            .any(|k| k.starts_with("count/")),
        "branches are counted by Oksa, not by the quota"
    );
    project.cleanup().await;
}
