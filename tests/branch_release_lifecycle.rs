//! A branch from creation to deletion, as a user sees it.

mod support;

use std::time::Duration;

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{DeleteParams, ListParams};
use kube::{Api, ResourceExt};
use oksa::api::Phase;
use serde_json::json;
use support::fixtures::{TIMEOUT, TestProject, condition, web_component};
use support::{eventually, wait_deleted};

fn shop_spec(branch: &str) -> serde_json::Value {
    json!({
        "branch": branch,
        "commit": "3f2a1c9",
        "components": [
            {"name": "web", "replicas": 2, "containers": [
                {"name": "nginx", "image": "nginx:1.27", "ports": [{"containerPort": 80}],
                 "volumeMounts": [{"volume": "files", "mountPath": "/var/www/files"}]},
                {"name": "php", "image": "php:8.3-fpm",
                 "volumeMounts": [{"volume": "files", "mountPath": "/var/www/files"}]}
            ]},
            web_component("api", "shop/api:1"),
        ],
        "routes": [{"path": "/", "component": "web"}, {"path": "/api", "component": "api"}],
        "volumes": [{"name": "files", "size": "1Gi"}],
    })
}

#[tokio::test]
async fn a_branch_gets_its_environment_and_becomes_ready() {
    let project = TestProject::create("life", json!({})).await;
    project
        .create_release("feature-login", shop_spec("feature/Login"))
        .await;

    let ready = project
        .wait_release("feature-login", "Ready", |s| s.phase == Some(Phase::Ready))
        .await;
    let status = ready.status.unwrap();
    let release = status.release_name.clone().unwrap();
    assert!(
        release.starts_with("feature-login-"),
        "release name {release}"
    );
    assert_eq!(
        status.url.as_deref(),
        Some(format!("http://{release}.{}", project.domain).as_str())
    );
    assert_eq!(status.ready_components.as_deref(), Some("2/2"));
    assert_eq!(status.deployed_commit.as_deref(), Some("3f2a1c9"));
    assert!(status.seconds_to_ready.is_some());
    assert_eq!(condition(&status, "Ready").unwrap().1, "AllComponentsReady");
    assert_eq!(condition(&status, "Degraded").unwrap().0, "False");
    let web = status.components.iter().find(|c| c.name == "web").unwrap();
    assert_eq!((web.replicas, web.ready_replicas), (2, 2));
    assert_eq!(web.images, ["nginx:1.27", "php:8.3-fpm"]);
    assert_eq!(status.volumes[0].phase.as_deref(), Some("Bound"));
    assert_eq!(status.volumes[0].capacity.as_deref(), Some("1Gi"));

    // Children: names, labels, owners, hosts.
    let deployment = project
        .namespaced::<Deployment>()
        .get(&format!("{release}-web"))
        .await
        .unwrap();
    let labels = deployment.labels();
    assert_eq!(labels["app.kubernetes.io/managed-by"], "oksa");
    assert_eq!(labels["oksa.dev/project"], project.name);
    assert_eq!(labels["oksa.dev/release"], release);
    assert_eq!(deployment.annotations()["oksa.dev/branch"], "feature/Login");
    assert_eq!(deployment.owner_references()[0].kind, "BranchRelease");
    assert_eq!(deployment.owner_references()[0].name, "feature-login");
    let pod_spec = deployment.spec.template.spec.unwrap();
    assert_eq!(pod_spec.containers.len(), 2, "nginx and php share the pod");
    assert_eq!(
        deployment.spec.strategy.unwrap().type_.as_deref(),
        Some("Recreate"),
        "a ReadWriteOnce volume"
    );
    let service = project
        .namespaced::<Service>()
        .get(&format!("{release}-web"))
        .await
        .unwrap();
    assert_eq!(service.spec.unwrap().ports.unwrap()[0].port, 80);
    assert!(
        project
            .namespaced::<Service>()
            .get_opt(&format!("{release}-api"))
            .await
            .unwrap()
            .is_some()
    );
    let ingress = project.namespaced::<Ingress>().get(&release).await.unwrap();
    let rules = ingress.spec.unwrap().rules.unwrap();
    assert_eq!(
        rules[0].host.as_deref(),
        Some(format!("{release}.{}", project.domain).as_str())
    );
    let paths = &rules[0].http.as_ref().unwrap().paths;
    assert_eq!(paths.len(), 2);
    assert_eq!(
        paths[1].backend.service.as_ref().unwrap().name,
        format!("{release}-api")
    );
    let claim = project
        .namespaced::<PersistentVolumeClaim>()
        .get(&format!("{release}-files"))
        .await
        .unwrap();
    assert_eq!(claim.owner_references()[0].name, "feature-login");

    // The EndpointSlices of its Services carry Oksa's labels (the EndpointSlice controller copies
    // a Service's), yet the operator does not cache them: only the waker's, one a namespace.
    let slices = eventually(TIMEOUT, "the Services' EndpointSlices", || async {
        let listed = project
            .namespaced::<EndpointSlice>()
            .list(&ListParams::default().labels(&format!("oksa.dev/release={release}")))
            .await
            .ok()?;
        (listed.items.len() == 2).then_some(listed.items)
    })
    .await;
    assert_eq!(slices[0].labels()["app.kubernetes.io/managed-by"], "oksa");
    if support::operator::metrics_readable("at most one cached EndpointSlice per namespace") {
        let (cached_slices, namespaces) = eventually(
            TIMEOUT,
            "the gauges counting this branch's pods",
            || async {
                let text = support::operator::metrics_text()?;
                let gauge = |kind: &str| {
                    let series = format!("oksa_managed_objects{{kind=\"{kind}\"}} ");
                    text.lines()
                        .find_map(|l| l.strip_prefix(series.as_str())?.parse::<i64>().ok())
                };
                (gauge("Pod")? >= 3).then_some((gauge("EndpointSlice")?, gauge("Namespace")?))
            },
        )
        .await;
        assert!(
            cached_slices <= namespaces,
            "{cached_slices} EndpointSlices cached for {namespaces} namespaces"
        );
    }

    // Deleting the BranchRelease removes every child (the volume is not retained).
    project
        .releases()
        .delete("feature-login", &DeleteParams::background())
        .await
        .unwrap();
    wait_deleted(
        &project.namespaced::<Deployment>(),
        &format!("{release}-web"),
        TIMEOUT,
    )
    .await;
    wait_deleted(&project.namespaced::<Ingress>(), &release, TIMEOUT).await;
    wait_deleted(
        &project.namespaced::<PersistentVolumeClaim>(),
        &format!("{release}-files"),
        TIMEOUT,
    )
    .await;
    project.cleanup().await;
}

#[tokio::test]
async fn a_resync_with_nothing_changed_writes_nothing_and_someone_elses_edit_is_put_back() {
    let project = TestProject::create("resync", json!({})).await;
    project.create_ready("main", shop_spec("main")).await;

    let versions = || async {
        let mut versions = BTreeMap::new();
        let params = ListParams::default().labels("oksa.dev/release=main");
        for d in project
            .namespaced::<Deployment>()
            .list(&params)
            .await
            .unwrap()
        {
            versions.insert(
                format!("Deployment/{}", d.name_any()),
                d.resource_version().unwrap(),
            );
        }
        for s in project.namespaced::<Service>().list(&params).await.unwrap() {
            versions.insert(
                format!("Service/{}", s.name_any()),
                s.resource_version().unwrap(),
            );
        }
        for i in project.namespaced::<Ingress>().list(&params).await.unwrap() {
            versions.insert(
                format!("Ingress/{}", i.name_any()),
                i.resource_version().unwrap(),
            );
        }
        for c in project
            .namespaced::<PersistentVolumeClaim>()
            .list(&params)
            .await
            .unwrap()
        {
            versions.insert(
                format!("PVC/{}", c.name_any()),
                c.resource_version().unwrap(),
            );
        }
        let release = project.releases().get("main").await.unwrap();
        versions.insert(
            "BranchRelease/main".into(),
            release.resource_version().unwrap(),
        );
        versions
    };
    let before = versions().await;
    assert_eq!(before.len(), 7);

    // Force a resync: a change to the BranchRelease's metadata (not its spec) triggers a full
    // reconcile of an unchanged spec.
    let touch = json!({"metadata": {"annotations": {"test/resync": "1"}}});
    let touched = project
        .releases()
        .patch(
            "main",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&touch),
        )
        .await
        .unwrap();
    // Wait until the operator has certainly seen it: a later edit of a declared field of a
    // Service (one that changes nothing the status reports) is put back.
    let services = project.namespaced::<Service>();
    let relabel = json!({"metadata": {"labels": {"app.kubernetes.io/name": "edited"}}});
    services
        .patch(
            "main-web",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&relabel),
        )
        .await
        .unwrap();
    eventually(TIMEOUT, "the Service's label put back", || async {
        let s = services.get("main-web").await.ok()?;
        (s.labels().get("app.kubernetes.io/name").map(String::as_str) == Some("web")).then_some(())
    })
    .await;

    let mut before = before;
    let mut after = versions().await;
    // The BranchRelease was last written by the test's own touch: Oksa wrote no status since.
    assert_eq!(
        after.remove("BranchRelease/main"),
        touched.resource_version(),
        "Oksa wrote the BranchRelease although nothing changed"
    );
    before.remove("BranchRelease/main");
    // The edited Service was written by the test and put back by Oksa; every other child must be
    // exactly as it was (the operator's own write counters are checked by bench_quick).
    before.remove("Service/main-web");
    after.remove("Service/main-web");
    assert_eq!(touched.annotations()["test/resync"], "1");
    assert_eq!(
        before, after,
        "a reconcile with nothing to change wrote something"
    );

    // Someone's `kubectl scale` is put back to the declared 2 replicas.
    let scale = json!({"spec": {"replicas": 5}});
    let deployments = project.namespaced::<Deployment>();
    deployments
        .patch(
            "main-web",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&scale),
        )
        .await
        .unwrap();
    eventually(TIMEOUT, "kubectl scale put back to 2 replicas", || async {
        let d = deployments.get("main-web").await.ok()?;
        (d.spec.replicas == Some(2)).then_some(())
    })
    .await;
    project
        .wait_release("main", "Ready again", |s| s.phase == Some(Phase::Ready))
        .await;
    project.cleanup().await;
}

#[tokio::test]
async fn a_component_removed_from_the_spec_is_pruned() {
    let project = TestProject::create("prune", json!({})).await;
    project.create_ready("main", shop_spec("main")).await;

    let mut spec = shop_spec("main");
    spec["components"] = json!([spec["components"][0].clone()]);
    spec["routes"] = json!([{"path": "/", "component": "web"}]);
    project.apply_release("main", spec).await.unwrap();
    project
        .wait_release("main", "Ready with one component", |s| {
            s.phase == Some(Phase::Ready) && s.components.len() == 1
        })
        .await;
    wait_deleted(&project.namespaced::<Deployment>(), "main-api", TIMEOUT).await;
    wait_deleted(&project.namespaced::<Service>(), "main-api", TIMEOUT).await;
    let ingress = project.namespaced::<Ingress>().get("main").await.unwrap();
    assert_eq!(
        ingress.spec.unwrap().rules.unwrap()[0]
            .http
            .as_ref()
            .unwrap()
            .paths
            .len(),
        1
    );
    assert!(
        project
            .namespaced::<Deployment>()
            .get_opt("main-web")
            .await
            .unwrap()
            .is_some()
    );
    project.cleanup().await;
}

#[tokio::test]
async fn deleting_the_project_deletes_its_namespace_and_branches() {
    let project = TestProject::create("gone", json!({})).await;
    project.create_ready("main", shop_spec("main")).await;
    let namespaces = Api::<k8s_openapi::api::core::v1::Namespace>::all(project.client.clone());
    let namespace = project.namespace.clone();
    project
        .api()
        .delete(&project.name, &DeleteParams::background())
        .await
        .unwrap();
    // Gone for real, not only terminating: the namespace, its branches and their children.
    wait_deleted(&namespaces, &namespace, Duration::from_secs(120)).await;
    wait_deleted(&project.api(), &project.name, TIMEOUT).await;
}
