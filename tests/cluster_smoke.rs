//! Proves the local control plane is a real cluster: pods are scheduled onto fake nodes and become
//! Ready, claims bind and grow (and refuse to shrink), and garbage collection works.

mod support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Service};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use support::{TestNamespace, eventually, wait_for};

const TIMEOUT: Duration = Duration::from_secs(60);

#[tokio::test]
async fn deployments_become_ready_and_claims_bind_grow_and_refuse_to_shrink() {
    let ns = TestNamespace::create("smoke").await;
    let claims = ns.api::<PersistentVolumeClaim>();
    let deployments = ns.api::<Deployment>();
    let pods = ns.api::<Pod>();

    let claim = serde_json::from_value(json!({
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
    }))
    .unwrap();
    claims.create(&PostParams::default(), &claim).await.unwrap();
    let deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [{"name": "web", "image": "nginx:1.27", "ports": [{"containerPort": 80}]}],
                    "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]
                }
            }
        }
    }))
    .unwrap();
    deployments
        .create(&PostParams::default(), &deployment)
        .await
        .unwrap();
    let service = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}
    }))
    .unwrap();
    ns.api::<Service>()
        .create(&PostParams::default(), &service)
        .await
        .unwrap();

    wait_for(
        &deployments,
        "web",
        TIMEOUT,
        "Available with 2 ready replicas",
        |d: Option<&Deployment>| {
            d.and_then(|d| d.status.as_ref()).is_some_and(|s| {
                s.ready_replicas == Some(2)
                    && s.conditions.iter().flatten().any(|c| {
                        c.type_.as_deref() == Some("Available")
                            && c.status.as_deref() == Some("True")
                    })
            })
        },
    )
    .await;
    let running = pods
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap();
    assert_eq!(running.items.len(), 2);
    for pod in &running.items {
        let spec = pod.spec.as_ref().unwrap();
        assert!(
            spec.node_name
                .as_deref()
                .unwrap_or_default()
                .starts_with("kwok-node-"),
            "scheduled onto a fake node"
        );
    }
    wait_for(
        &claims,
        "data",
        TIMEOUT,
        "Bound",
        |c: Option<&PersistentVolumeClaim>| {
            c.and_then(|c| c.status.as_ref())
                .is_some_and(|s| s.phase.as_deref() == Some("Bound"))
        },
    )
    .await;

    // Growing is accepted and the provisioner's resizer reports the new capacity.
    let grow = json!({"spec": {"resources": {"requests": {"storage": "2Gi"}}}});
    claims
        .patch("data", &PatchParams::default(), &Patch::Merge(&grow))
        .await
        .unwrap();
    wait_for(
        &claims,
        "data",
        TIMEOUT,
        "capacity 2Gi",
        |c: Option<&PersistentVolumeClaim>| {
            c.and_then(|c| c.status.as_ref())
                .and_then(|s| s.capacity.as_ref())
                .is_some_and(|capacity| capacity.get("storage").is_some_and(|q| q.0 == "2Gi"))
        },
    )
    .await;

    // Shrinking is refused by the API server itself.
    let shrink = json!({"spec": {"resources": {"requests": {"storage": "1Gi"}}}});
    let error = claims
        .patch("data", &PatchParams::default(), &Patch::Merge(&shrink))
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("less than"),
        "unexpected error: {error}"
    );

    // Deleting the Deployment garbage-collects its ReplicaSet and pods.
    deployments
        .delete("web", &DeleteParams::background())
        .await
        .unwrap();
    let replica_sets = ns.api::<ReplicaSet>();
    eventually(TIMEOUT, "ReplicaSets and pods collected", || async {
        let sets = replica_sets.list(&ListParams::default()).await.ok()?;
        let left = pods
            .list(&ListParams::default().labels("app=web"))
            .await
            .ok()?;
        (sets.items.is_empty() && left.items.is_empty()).then_some(())
    })
    .await;
    ns.cleanup().await;
}
