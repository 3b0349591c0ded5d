//! What a BranchRelease may and may not do: hosts, namespaces, projects, branch names.

mod support;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{ListParams, Patch, PatchParams};
use oksa::api::{BranchRelease, Phase};
use serde_json::json;
use support::fixtures::{TestProject, condition, phase, release_object, web_branch, web_component};

async fn deployments_of(project: &TestProject) -> usize {
    project
        .namespaced::<Deployment>()
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .len()
}

#[tokio::test]
async fn a_host_outside_the_projects_domain_is_refused_and_nothing_is_deployed() {
    let project = TestProject::create("hosts", json!({})).await;
    let mut spec = web_branch("main", "nginx");
    spec["hosts"] = json!(["shop.other-team.example"]);
    project.create_release("main", spec).await;
    let seen = project
        .wait_release("main", "refused", |s| s.phase == Some(Phase::Invalid))
        .await;
    let (status, reason, message) = condition(seen.status.as_ref().unwrap(), "Ready").unwrap();
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "HostOutsideDomain")
    );
    assert!(
        message.contains("shop.other-team.example") && message.contains(&project.domain),
        "{message}"
    );
    assert_eq!(deployments_of(&project).await, 0);

    // Fixing the spec deploys it, with the extra host on the Ingress.
    let mut spec = web_branch("main", "nginx");
    spec["hosts"] = json!([format!("shop.{}", project.domain)]);
    project.apply_release("main", spec).await.unwrap();
    project
        .wait_release("main", "Ready", |s| s.phase == Some(Phase::Ready))
        .await;
    let ingress = project.namespaced::<Ingress>().get("main").await.unwrap();
    let hosts: Vec<_> = ingress
        .spec
        .unwrap()
        .rules
        .unwrap()
        .into_iter()
        .filter_map(|r| r.host)
        .collect();
    assert_eq!(
        hosts,
        [
            format!("main.{}", project.domain),
            format!("shop.{}", project.domain)
        ]
    );
    project.cleanup().await;
}

#[tokio::test]
async fn a_release_cannot_act_on_another_project() {
    let mine = TestProject::create("mine", json!({})).await;
    let other = TestProject::create("other", json!({})).await;
    // In my namespace, naming the other project.
    let spec = json!({"project": other.name, "branch": "main", "components": [web_component("web", "nginx")]});
    mine.releases()
        .patch(
            "sneaky",
            &PatchParams::apply("test-user"),
            &Patch::Apply(&release_object("sneaky", spec)),
        )
        .await
        .unwrap();
    let seen = support::wait_for(
        &mine.releases(),
        "sneaky",
        support::fixtures::TIMEOUT,
        "refused",
        |r: Option<&BranchRelease>| {
            r.and_then(|r| r.status.as_ref())
                .is_some_and(|s| s.phase == Some(Phase::Invalid))
        },
    )
    .await;
    let (_, reason, message) = condition(seen.status.as_ref().unwrap(), "Ready").unwrap();
    assert_eq!(reason, "WrongNamespace");
    assert!(message.contains(&other.namespace), "{message}");
    assert_eq!(deployments_of(&mine).await, 0);
    assert_eq!(deployments_of(&other).await, 0);
    mine.cleanup().await;
    other.cleanup().await;
}

#[tokio::test]
async fn a_release_of_a_missing_project_waits_with_a_clear_condition() {
    let project = TestProject::create("waits", json!({})).await;
    let spec = json!({"project": "not-created-yet", "branch": "main", "components": [web_component("web", "nginx")]});
    project
        .releases()
        .patch(
            "early",
            &PatchParams::apply("test-user"),
            &Patch::Apply(&release_object("early", spec)),
        )
        .await
        .unwrap();
    let seen = support::wait_for(
        &project.releases(),
        "early",
        support::fixtures::TIMEOUT,
        "pending",
        |r: Option<&BranchRelease>| {
            r.and_then(|r| r.status.as_ref())
                .is_some_and(|s| s.phase == Some(Phase::Pending))
        },
    )
    .await;
    let (_, reason, message) = condition(seen.status.as_ref().unwrap(), "Ready").unwrap();
    assert_eq!(reason, "ProjectNotFound");
    assert!(message.contains("not-created-yet"), "{message}");
    project.cleanup().await;
}

#[tokio::test]
async fn a_change_to_the_project_reaches_its_branches() {
    let project = TestProject::create("follow", json!({})).await;
    project
        .create_ready("main", web_branch("main", "nginx"))
        .await;

    let patch = json!({"spec": {"ingress": {"className": "nginx", "tlsSecretName": "wildcard"}}});
    project
        .api()
        .patch(
            &project.name,
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .unwrap();
    let seen = project
        .wait_release("main", "https URL", |s| {
            s.url.as_deref().is_some_and(|u| u.starts_with("https://"))
        })
        .await;
    assert_eq!(
        seen.status.unwrap().url.unwrap(),
        format!("https://main.{}", project.domain)
    );
    let ingress = project
        .namespaced::<Ingress>()
        .get("main")
        .await
        .unwrap()
        .spec
        .unwrap();
    assert_eq!(ingress.ingress_class_name.as_deref(), Some("nginx"));
    assert_eq!(
        ingress.tls.unwrap()[0].secret_name.as_deref(),
        Some("wildcard")
    );
    project.cleanup().await;
}

#[tokio::test]
async fn branch_names_become_distinct_valid_hosts() {
    let project = TestProject::create("names", json!({})).await;
    let long = "feature/".to_string() + &"very-long-branch-name-".repeat(9);
    let branches = [
        ("slash", "feature/Login_page".to_string()),
        ("dash", "feature/login-page".to_string()),
        ("unicode", "fix/ünïcödé-ブランチ".to_string()),
        ("long-a", format!("{long}a")),
        ("long-b", format!("{long}b")),
        ("clean", "release-2".to_string()),
    ];
    assert!(branches[3].1.len() > 200);
    for (name, branch) in &branches {
        project
            .create_release(name, web_branch(branch, "nginx"))
            .await;
    }
    let mut hosts = Vec::new();
    for (name, branch) in &branches {
        let seen = project
            .wait_release(name, "Ready", |s| s.phase == Some(Phase::Ready))
            .await;
        let status = seen.status.unwrap();
        let release = status.release_name.unwrap();
        assert!(release.len() <= 40, "{branch} -> {release}");
        let ingress = project.namespaced::<Ingress>().get(&release).await.unwrap();
        hosts.push(
            ingress.spec.unwrap().rules.unwrap()[0]
                .host
                .clone()
                .unwrap(),
        );
    }
    let mut unique = hosts.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), hosts.len(), "hosts collide: {hosts:?}");
    assert!(
        hosts[1].starts_with("feature-login-page-"),
        "an altered name gets a hash: {}",
        hosts[1]
    );
    assert_eq!(
        hosts[5],
        format!("release-2.{}", project.domain),
        "a clean name is kept"
    );
    project.cleanup().await;
}

#[tokio::test]
async fn a_branch_is_deployed_once_per_project() {
    let project = TestProject::create("twice", json!({})).await;
    project
        .create_ready("first", web_branch("main", "nginx"))
        .await;
    project
        .create_release("second", web_branch("main", "nginx"))
        .await;
    let seen = project
        .wait_release("second", "refused", |s| s.phase == Some(Phase::Invalid))
        .await;
    let status = seen.status.unwrap();
    assert_eq!(
        condition(&status, "Ready").unwrap().1,
        "BranchAlreadyDeployed",
        "{}",
        phase(&status)
    );
    project.cleanup().await;
}
