//! A team uses Oksa with the role its Project grants: a CI ServiceAccount bound to `edit` in the
//! project's namespace, and nothing else, deploys a branch to Ready, redeploys it and deletes it.
//! The chart's roles aggregated into `view`/`edit`/`admin` are what make that possible.

mod support;

use std::io::Write;
use std::process::{Command, Stdio};

use k8s_openapi::api::authorization::v1::SelfSubjectAccessReview;
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client};
use oksa::api::BranchRelease;
use serde_json::json;
use support::fixtures::{TIMEOUT, TestProject};
use support::identity::{client_from, service_account_kubeconfig};
use support::{tool, wait_deleted};

const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/oksa");

/// Applies the chart's user roles (only those: the rest of the chart is the operator's).
fn apply_user_roles() {
    let rendered = tool("helm")
        .args([
            "template",
            "oksa",
            CHART,
            "--show-only",
            "templates/user-roles.yaml",
        ])
        .output()
        .expect("running helm template");
    assert!(rendered.status.success(), "{rendered:?}");
    let mut kubectl = tool("kubectl")
        .args(["apply", "--server-side", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running kubectl");
    kubectl
        .stdin
        .take()
        .unwrap()
        .write_all(&rendered.stdout)
        .unwrap();
    let applied = kubectl.wait_with_output().unwrap();
    assert!(applied.status.success(), "{applied:?}");
}

async fn can(client: &Client, verb: &str, resource: &str, namespace: &str) -> bool {
    let review: SelfSubjectAccessReview = serde_json::from_value(json!({
        "spec": {"resourceAttributes": {"verb": verb, "group": "oksa.dev",
            "resource": resource, "namespace": namespace}}
    }))
    .unwrap();
    Api::<SelfSubjectAccessReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
        .unwrap()
        .status
        .unwrap()
        .allowed
}

fn deploy(kubeconfig: &std::path::Path, project: &str, image: &str) -> (Option<i32>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_oksa"))
        .args(["deploy", "--project", project, "--branch", "feature/team"])
        .args(["--image", &format!("web={image}"), "--port", "web=8080"])
        .args(["--timeout", "60"])
        .env("KUBECONFIG", kubeconfig)
        .output()
        .expect("running oksa deploy");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code(), text)
}

#[tokio::test]
async fn a_ci_account_with_edit_in_the_namespace_deploys_redeploys_and_deletes() {
    apply_user_roles();
    let project = TestProject::create("team", json!({})).await;
    let admin = project.client.clone();
    let accounts = Api::<ServiceAccount>::namespaced(admin.clone(), &project.namespace);
    let account: ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": "ci"}})).unwrap();
    accounts
        .create(&PostParams::default(), &account)
        .await
        .unwrap();
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "ci-edit"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
        "subjects": [{"kind": "ServiceAccount", "name": "ci", "namespace": project.namespace}],
    }))
    .unwrap();
    project
        .namespaced::<RoleBinding>()
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();

    let kubeconfig = service_account_kubeconfig(&admin, &project.namespace, "ci").await;
    let ci = client_from(&kubeconfig).await;
    // The controller-manager aggregates the chart's rules into `edit` shortly after they exist.
    support::eventually(TIMEOUT, "edit to include branchreleases", || async {
        can(&ci, "patch", "branchreleases", &project.namespace)
            .await
            .then_some(())
    })
    .await;
    assert!(
        !can(&ci, "patch", "branchreleases/status", &project.namespace).await,
        "status is Oksa's alone"
    );
    assert!(
        !can(&ci, "get", "projects", "").await,
        "Projects are the platform's"
    );

    let (code, output) = deploy(&kubeconfig, &project.name, "shop/web:1");
    assert_eq!(code, Some(0), "{output}");
    let (code, output) = deploy(&kubeconfig, &project.name, "shop/web:2");
    assert_eq!(code, Some(0), "{output}");
    let releases = Api::<BranchRelease>::namespaced(ci.clone(), &project.namespace);
    let deployed = releases.list(&Default::default()).await.unwrap();
    assert_eq!(deployed.items.len(), 1);
    let name = kube::ResourceExt::name_any(&deployed.items[0]);
    assert_eq!(
        deployed.items[0].status.as_ref().unwrap().components[0].images,
        ["shop/web:2"]
    );
    // The documented way to put a branch to sleep by hand works with `edit` alone.
    let scaled = Command::new(
        support::plane()
            .tools
            .as_ref()
            .map_or("kubectl".into(), |t| t.join("kubectl")),
    )
    .args([
        "scale",
        "-n",
        &project.namespace,
        &format!("branchrelease/{name}"),
        "--replicas=0",
    ])
    .env("KUBECONFIG", &kubeconfig)
    .output()
    .expect("running kubectl scale");
    assert!(
        scaled.status.success(),
        "kubectl scale as the CI account: {}",
        String::from_utf8_lossy(&scaled.stderr)
    );
    project
        .wait_release(&name, "asleep by hand", |s| {
            s.lifecycle
                .as_ref()
                .is_some_and(|l| l.reason.as_deref() == Some(oksa::api::sleep_reason::MANUAL))
        })
        .await;
    releases
        .delete(&name, &DeleteParams::default())
        .await
        .unwrap();
    wait_deleted(&project.releases(), &name, TIMEOUT).await;
    project.cleanup().await;
}
