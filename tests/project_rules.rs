//! A Project becomes a namespace with access, quota and isolation, and never takes a namespace
//! that is not its own.

mod support;

use k8s_openapi::api::core::v1::{LimitRange, Namespace, ResourceQuota};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::ListParams;
use kube::{Api, ResourceExt};
use oksa::api::{Phase, Project};
use serde_json::json;
use support::TestNamespace;
use support::fixtures::{TestProject, web_branch};

fn ready_reason(project: &Project) -> (String, String, String) {
    let condition = project
        .status
        .as_ref()
        .unwrap()
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    (
        condition.status.clone(),
        condition.reason.clone(),
        condition.message.clone(),
    )
}

#[tokio::test]
async fn a_project_gets_a_namespace_with_access_quota_and_isolation() {
    let project = TestProject::create(
        "team",
        json!({
            "access": [
                {"kind": "Group", "name": "shop-devs", "role": "edit"},
                {"kind": "User", "name": "alice", "role": "admin"},
                {"kind": "ServiceAccount", "name": "ci", "role": "edit"},
            ],
            "quota": {"cpu": "4", "memory": "8Gi", "storage": "10Gi", "maxBranches": 2},
            "ingress": {"controllerNamespace": "ingress-nginx"},
            "podSecurity": "baseline",
        }),
    )
    .await;
    let namespace = Api::<Namespace>::all(project.client.clone())
        .get(&project.namespace)
        .await
        .unwrap();
    assert_eq!(
        namespace.labels()["pod-security.kubernetes.io/enforce"],
        "baseline"
    );
    // Proven Oksa's for this Project by its UID; no owner reference, so the garbage collector
    // never deletes it (with retained data in it) on its own.
    let uid = project
        .api()
        .get(&project.name)
        .await
        .unwrap()
        .metadata
        .uid
        .unwrap();
    assert_eq!(namespace.annotations()["oksa.dev/project-uid"], uid);
    assert!(namespace.owner_references().is_empty());

    let bindings = project
        .namespaced::<RoleBinding>()
        .list(&ListParams::default())
        .await
        .unwrap();
    let mut names: Vec<_> = bindings.iter().map(|b| b.name_any()).collect();
    names.sort();
    assert_eq!(names, ["oksa-admin", "oksa-edit"]);
    let edit = bindings
        .iter()
        .find(|b| b.name_any() == "oksa-edit")
        .unwrap();
    assert_eq!(edit.role_ref.name, "edit");
    assert_eq!(edit.subjects.as_ref().unwrap().len(), 2);

    let quota = project
        .namespaced::<ResourceQuota>()
        .get("oksa-quota")
        .await
        .unwrap();
    let hard = quota.spec.unwrap().hard.unwrap();
    // maxBranches is Oksa's to enforce (see declared_state.rs), not the quota's.
    assert!(
        !hard.contains_key("count/branchreleases.oksa.dev"),
        "{hard:?}"
    );
    assert_eq!(hard["requests.storage"].0, "10Gi");
    let limits = project
        .namespaced::<LimitRange>()
        .get("oksa-defaults")
        .await
        .unwrap();
    assert!(
        limits.spec.unwrap().limits[0].default_request.is_some(),
        "pods pass the quota without resources"
    );
    let policy = project
        .namespaced::<NetworkPolicy>()
        .get("oksa-isolation")
        .await
        .unwrap();
    assert_eq!(
        policy.spec.unwrap().ingress.unwrap()[0]
            .from
            .as_ref()
            .unwrap()
            .len(),
        2
    );

    // The quota's numbers come back in the Project's status (the quota controller fills them).
    project
        .wait_status("quota usage reported", |s| {
            s.quota
                .as_ref()
                .is_some_and(|q| q.hard.contains_key("requests.cpu"))
        })
        .await;

    // Access rules changed: the binding of a role nobody has any more is removed.
    let patch =
        json!({"spec": {"access": [{"kind": "Group", "name": "shop-devs", "role": "view"}]}});
    project
        .api()
        .patch(
            &project.name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
        .unwrap();
    support::eventually(
        support::fixtures::TIMEOUT,
        "only oksa-view left",
        || async {
            let names: Vec<_> = project
                .namespaced::<RoleBinding>()
                .list(&ListParams::default())
                .await
                .ok()?
                .iter()
                .map(|b| b.name_any())
                .collect();
            (names == ["oksa-view"]).then_some(())
        },
    )
    .await;

    // Two branches fit the limit; a third is stored but waits (Oksa's limit, see declared_state.rs).
    for (i, branch) in ["a", "b"].iter().enumerate() {
        let spec = web_branch(branch, "nginx");
        project.create_release(&format!("r{i}"), spec).await;
    }
    project.create_release("r2", web_branch("c", "nginx")).await;
    project
        .wait_release("r2", "waiting for a place", |s| {
            s.conditions
                .iter()
                .any(|c| c.reason == "BranchLimitReached")
        })
        .await;
    project
        .wait_status("branch counts", |s| {
            s.branches
                .as_ref()
                .is_some_and(|b| b.total == 3 && b.ready == 2)
        })
        .await;
    project.cleanup().await;
}

#[tokio::test]
async fn a_project_cannot_take_a_system_namespace() {
    let project = TestProject::create_unready("evil", json!({"namespace": "kube-system"})).await;
    let seen = project
        .wait_status("refused", |s| !s.conditions.is_empty())
        .await;
    let (status, reason, message) = ready_reason(&seen);
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "NamespaceReserved")
    );
    assert!(message.contains("kube-system"), "{message}");
    assert_eq!(seen.status.unwrap().namespace, None);
    let bindings = Api::<RoleBinding>::namespaced(project.client.clone(), "kube-system")
        .list(&ListParams::default().labels("app.kubernetes.io/managed-by=oksa"))
        .await
        .unwrap();
    assert!(bindings.items.is_empty(), "nothing written to kube-system");
    project.cleanup().await;
}

#[tokio::test]
async fn a_project_never_adopts_an_existing_namespace() {
    let existing = TestNamespace::create("theirs").await;
    let project = TestProject::create_unready("adopt", json!({"namespace": existing.name})).await;
    let seen = project
        .wait_status("refused", |s| !s.conditions.is_empty())
        .await;
    let (_, reason, message) = ready_reason(&seen);
    assert_eq!(reason, "NamespaceConflict");
    assert!(message.contains("was not created by Oksa"), "{message}");
    let namespace = Api::<Namespace>::all(project.client.clone())
        .get(&existing.name)
        .await
        .unwrap();
    assert!(
        namespace.owner_references().is_empty(),
        "the namespace was not taken over"
    );
    assert!(!namespace.labels().contains_key("oksa.dev/project"));
    let policies = existing
        .api::<NetworkPolicy>()
        .list(&ListParams::default())
        .await
        .unwrap();
    assert!(
        policies.items.is_empty(),
        "nothing written into the namespace"
    );
    project.cleanup().await;
    existing.cleanup().await;
}

#[tokio::test]
async fn a_project_cannot_take_another_projects_namespace_or_domain() {
    let first = TestProject::create("first", json!({})).await;
    let thief = TestProject::create_unready("thief", json!({"namespace": first.namespace})).await;
    let seen = thief
        .wait_status("refused", |s| !s.conditions.is_empty())
        .await;
    let (_, reason, message) = ready_reason(&seen);
    assert_eq!(reason, "NamespaceConflict");
    assert!(
        message.contains(&format!("belongs to Project {}", first.name)),
        "{message}"
    );

    // A domain inside another project's domain would let it serve that project's hosts.
    let overlapping = TestProject::create_unready(
        "overlap",
        json!({"domain": format!("shop.{}", first.domain)}),
    )
    .await;
    let seen = overlapping
        .wait_status("refused", |s| !s.conditions.is_empty())
        .await;
    assert_eq!(ready_reason(&seen).1, "DomainConflict");

    // The first project is unaffected and deploys branches.
    first
        .create_release("main", web_branch("main", "nginx"))
        .await;
    first
        .wait_release("main", "Ready", |s| s.phase == Some(Phase::Ready))
        .await;
    for project in [first, thief, overlapping] {
        project.cleanup().await;
    }
}

#[tokio::test]
async fn pods_fit_the_pod_security_level_of_their_namespace() {
    // A restricted project's branch runs: its pods pass `restricted` as rendered.
    let project = TestProject::create("restricted", json!({"podSecurity": "restricted"})).await;
    project
        .create_release("main", web_branch("main", "nginx"))
        .await;
    project
        .wait_release("main", "Ready", |s| {
            s.phase == Some(oksa::api::Phase::Ready)
        })
        .await;
    let pods = project
        .namespaced::<k8s_openapi::api::core::v1::Pod>()
        .list(&ListParams::default().labels("oksa.dev/release=main"))
        .await
        .unwrap();
    let spec = pods.items[0].spec.as_ref().unwrap();
    assert_eq!(spec.automount_service_account_token, Some(false));
    project.cleanup().await;

    // In any Oksa namespace (baseline by default), a privileged pod made by hand is refused.
    let project = TestProject::create("baseline", json!({})).await;
    let privileged: k8s_openapi::api::core::v1::Pod = serde_json::from_value(json!({
        "metadata": {"name": "root"},
        "spec": {"containers": [{"name": "c", "image": "busybox",
            "securityContext": {"privileged": true}}]},
    }))
    .unwrap();
    let refused = project
        .namespaced::<k8s_openapi::api::core::v1::Pod>()
        .create(&Default::default(), &privileged)
        .await
        .unwrap_err();
    let message = oksa::apply::describe(&refused);
    assert!(
        message.contains("violates PodSecurity") && message.contains("privileged"),
        "{message}"
    );
    project.cleanup().await;
}

#[tokio::test]
async fn a_project_outside_the_platforms_policy_is_refused_and_nothing_is_written() {
    for (prefix, extra, rule) in [
        (
            "priv",
            json!({"podSecurity": "privileged"}),
            "policy.podSecurity",
        ),
        (
            "anyone",
            json!({"access": [{"kind": "Group", "name": "system:authenticated", "role": "admin"}]}),
            "policy.forbiddenSubjects",
        ),
        (
            "snippet",
            json!({"ingress": {"annotations": {"nginx.ingress.kubernetes.io/server-snippet": "return 200;"}}}),
            "policy.ingressAnnotations",
        ),
    ] {
        let project = TestProject::create_unready(prefix, extra).await;
        let seen = project
            .wait_status("refused", |s| !s.conditions.is_empty())
            .await;
        let (status, reason, message) = ready_reason(&seen);
        assert_eq!(
            (status.as_str(), reason.as_str()),
            ("False", "PolicyViolation")
        );
        assert!(message.contains(rule), "{message}");
        assert_eq!(seen.status.unwrap().namespace, None);
        let namespace = Api::<Namespace>::all(project.client.clone())
            .get_opt(&project.namespace)
            .await
            .unwrap();
        assert!(
            namespace.is_none(),
            "nothing is written for a refused Project"
        );
        project.cleanup().await;
    }
}
