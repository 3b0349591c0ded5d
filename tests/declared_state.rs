//! What is declared is what runs: a field Oksa stops declaring leaves the child, text is compared
//! as text, names never collide, an object Oksa did not create is never taken over, a spec the
//! API server refuses is reported for the generation that asked for it, and a project's branch
//! limit holds without the API server's quota.

mod support;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::Ingress;
use kube::ResourceExt;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use oksa::api::Phase;
use serde_json::json;
use support::eventually;
use support::fixtures::{TIMEOUT, TestProject, condition, web_branch, web_component};

fn env(deployment: &Deployment) -> Vec<(String, Option<String>)> {
    deployment.spec.template.spec.as_ref().unwrap().containers[0]
        .env
        .iter()
        .flatten()
        .map(|e| (e.name.clone(), e.value.clone()))
        .collect()
}

#[tokio::test]
async fn fields_oksa_stops_declaring_leave_the_children() {
    let project = TestProject::create(
        "removals",
        json!({"ingress": {"clusterIssuer": "letsencrypt"}}),
    )
    .await;
    let mut web = web_component("web", "nginx");
    web["containers"][0]["env"] = json!([
        {"name": "VERSION", "value": "1.1"},
        {"name": "GONE", "value": "soon"}
    ]);
    web["containers"][0]["command"] = json!(["nginx", "-g", "daemon off;"]);
    project
        .create_ready("main", json!({"branch": "main", "components": [web]}))
        .await;
    let ingresses = project.namespaced::<Ingress>();
    let ingress = ingresses.get("main").await.unwrap();
    assert!(ingress.spec.as_ref().unwrap().tls.is_some());
    assert!(
        ingress
            .annotations()
            .contains_key("cert-manager.io/cluster-issuer")
    );

    // 1.1 → 1.10 is a change (not the same quantity); a removed variable and command go.
    let mut web = web_component("web", "nginx");
    web["containers"][0]["env"] = json!([{"name": "VERSION", "value": "1.10"}]);
    project
        .apply_release("main", json!({"branch": "main", "components": [web]}))
        .await
        .unwrap();
    project
        .wait_release("main", "Ready", |s| s.phase == Some(Phase::Ready))
        .await;
    let deployment = project
        .namespaced::<Deployment>()
        .get("main-web")
        .await
        .unwrap();
    assert_eq!(
        env(&deployment),
        [("VERSION".to_string(), Some("1.10".to_string()))]
    );
    let container = &deployment.spec.template.spec.unwrap().containers[0];
    assert!(container.command.is_none(), "{:?}", container.command);

    // TLS turned off on the Project: the Ingress loses tls and the issuer, the URL says http.
    project
        .api()
        .patch(
            &project.name,
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"ingress": null}})),
        )
        .await
        .unwrap();
    project
        .wait_release("main", "served over http", |s| {
            s.url.as_deref().is_some_and(|u| u.starts_with("http://"))
        })
        .await;
    let ingress = eventually(TIMEOUT, "the Ingress without TLS", || async {
        let ingress = ingresses.get("main").await.ok()?;
        ingress.spec.as_ref()?.tls.is_none().then_some(ingress)
    })
    .await;
    assert!(
        !ingress
            .annotations()
            .contains_key("cert-manager.io/cluster-issuer"),
        "{:?}",
        ingress.annotations()
    );
    project.cleanup().await;
}

#[tokio::test]
async fn a_younger_branch_cannot_take_the_names_of_an_older_ones_children() {
    let project = TestProject::create("names", json!({})).await;
    // `api` + component `v2-web` and `api-v2` + component `web`: both `api-v2-web`.
    project
        .create_ready(
            "api",
            json!({"branch": "api", "components": [web_component("v2-web", "nginx")]}),
        )
        .await;
    let deployments = project.namespaced::<Deployment>();
    let before = deployments.get("api-v2-web").await.unwrap();

    project
        .create_release("api-v2", web_branch("api-v2", "nginx:2"))
        .await;
    let refused = project
        .wait_release("api-v2", "refused", |s| s.phase == Some(Phase::Invalid))
        .await;
    let (ready, reason, message) = condition(&refused.status.unwrap(), "Ready").unwrap();
    assert_eq!((ready.as_str(), reason.as_str()), ("False", "NameTaken"));
    assert!(
        message.contains("Deployment api-v2-web") && message.contains("BranchRelease api's"),
        "{message}"
    );
    let after = deployments.get("api-v2-web").await.unwrap();
    assert_eq!(after.uid(), before.uid());
    assert_eq!(after.owner_references()[0].name, "api");
    assert_eq!(
        after.spec.template.spec.unwrap().containers[0].image,
        Some("nginx".to_string()),
        "the older branch's Deployment is untouched"
    );

    // Renaming the component resolves it, without waiting for a recheck.
    project
        .apply_release(
            "api-v2",
            json!({"branch": "api-v2", "components": [web_component("site", "nginx:2")]}),
        )
        .await
        .unwrap();
    project
        .wait_release("api-v2", "Ready", |s| s.phase == Some(Phase::Ready))
        .await;
    project.cleanup().await;
}

#[tokio::test]
async fn an_object_oksa_did_not_create_is_never_taken_over() {
    let project = TestProject::create("foreign", json!({})).await;
    let services = project.namespaced::<Service>();
    let hand_made: Service = serde_json::from_value(json!({
        "metadata": {"name": "main-web", "labels": {"made-by": "hand"}},
        "spec": {"selector": {"app": "mine"}, "ports": [{"port": 9999}]},
    }))
    .unwrap();
    let hand_made = services
        .create(&PostParams::default(), &hand_made)
        .await
        .unwrap();

    project
        .create_release("main", web_branch("main", "nginx"))
        .await;
    let refused = project
        .wait_release("main", "refused", |s| {
            condition(s, "Ready").is_some_and(|(_, reason, _)| reason == "ObjectNotOwned")
        })
        .await;
    let status = refused.status.unwrap();
    let (_, _, message) = condition(&status, "Ready").unwrap();
    assert!(message.contains("Service main-web"), "{message}");
    assert_eq!(
        condition(&status, "Degraded").unwrap().0,
        "True",
        "{status:?}"
    );
    let untouched = services.get("main-web").await.unwrap();
    assert_eq!(untouched.resource_version(), hand_made.resource_version());
    assert!(untouched.owner_references().is_empty());

    // Once it is gone, the branch gets its own.
    services
        .delete("main-web", &DeleteParams::default())
        .await
        .unwrap();
    project
        .wait_release("main", "Ready", |s| s.phase == Some(Phase::Ready))
        .await;
    let ours = services.get("main-web").await.unwrap();
    assert_eq!(ours.owner_references()[0].name, "main");
    project.cleanup().await;
}

#[tokio::test]
async fn a_spec_the_api_server_refuses_is_reported_for_its_generation() {
    let project = TestProject::create("rejected", json!({})).await;
    let web = web_component("web", "nginx");
    project
        .create_release("main", json!({"branch": "main", "components": [web]}))
        .await;
    project
        .wait_release("main", "Ready", |s| s.phase == Some(Phase::Ready))
        .await;

    // Passes the CRD, refused by the Deployment's validation: requests above limits.
    let mut web = web_component("web", "nginx:2");
    web["containers"][0]["resources"] = json!({"requests": {"cpu": "2"}, "limits": {"cpu": "1"}});
    let applied = project
        .apply_release("main", json!({"branch": "main", "components": [web]}))
        .await
        .unwrap();
    let refused = project
        .wait_release("main", "refused for this generation", |s| {
            condition(s, "Ready").is_some_and(|(_, reason, _)| reason == "SpecRejected")
        })
        .await;
    let status = refused.status.unwrap();
    assert_eq!(status.observed_generation, applied.metadata.generation);
    assert_eq!(status.phase, Some(Phase::Degraded));
    let (ready, _, message) = condition(&status, "Ready").unwrap();
    assert_eq!(ready, "False");
    assert!(
        message.contains("Deployment main-web") && message.contains("less than or equal to"),
        "{message}"
    );
    assert!(
        !message.contains("Status {"),
        "one readable line: {message}"
    );
    let (degraded, reason, _) = condition(&status, "Degraded").unwrap();
    assert_eq!(
        (degraded.as_str(), reason.as_str()),
        ("True", "SpecRejected")
    );
    let running = project
        .namespaced::<Deployment>()
        .get("main-web")
        .await
        .unwrap();
    assert_eq!(
        running.spec.template.spec.unwrap().containers[0].image,
        Some("nginx".to_string()),
        "what ran before keeps running"
    );
    project.cleanup().await;
}

#[tokio::test]
async fn branches_beyond_the_limit_wait_for_a_free_place() {
    let project = TestProject::create("limit", json!({"quota": {"maxBranches": 1}})).await;
    let spec = |branch: &str| web_branch(branch, "nginx");
    project.create_ready("first", spec("first")).await;
    // Created through the API without any refusal: the limit is Oksa's, not a quota's.
    project.create_release("second", spec("second")).await;
    let waiting = project
        .wait_release("second", "waiting", |s| s.phase == Some(Phase::Pending))
        .await;
    let (_, reason, message) = condition(&waiting.status.unwrap(), "Ready").unwrap();
    assert_eq!(reason, "BranchLimitReached");
    assert!(message.contains("allows 1 branches"), "{message}");
    assert!(
        project
            .namespaced::<Deployment>()
            .get_opt("second-web")
            .await
            .unwrap()
            .is_none()
    );

    project
        .releases()
        .delete("first", &DeleteParams::default())
        .await
        .unwrap();
    project
        .wait_release("second", "Ready once first is gone", |s| {
            s.phase == Some(Phase::Ready)
        })
        .await;
    project.cleanup().await;
}
