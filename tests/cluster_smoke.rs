//! Proves the local control plane is a real cluster: pods are scheduled onto fake nodes and become
//! Ready, claims bind and grow (and refuse to shrink), and garbage collection works. On the local
//! plane also: a claim cloned from another starts with its data, and Jobs complete, or fail (for
//! fault images) with an exit code and the log's last lines, as a kubelet reports them.

mod support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::batch::v1::Job;
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

async fn folder_of(ns: &TestNamespace, claim: &str) -> std::path::PathBuf {
    support::claim_folder(&ns.client, &ns.name, claim)
        .await
        .expect("the local plane's volume folder")
}

#[tokio::test]
async fn a_cloned_claim_starts_with_its_sources_data_and_jobs_complete_or_fail() {
    if support::plane().state.is_none() {
        println!(
            "skipped: cloning is checked on the local plane's provisioner, jobs with its kwok stages"
        );
        return;
    }
    let ns = TestNamespace::create("clone").await;
    let claims = ns.api::<PersistentVolumeClaim>();
    let claim = |name: &str, size: &str, source: Option<&str>| {
        serde_json::from_value::<PersistentVolumeClaim>(json!({
            "metadata": {"name": name},
            "spec": {"accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": size}},
                "dataSource": source.map(|s| json!({"kind": "PersistentVolumeClaim", "name": s}))}
        }))
        .unwrap()
    };
    claims
        .create(&PostParams::default(), &claim("main-db", "1Gi", None))
        .await
        .unwrap();
    let source = folder_of(&ns, "main-db").await;
    std::fs::create_dir_all(source.join("tables")).unwrap();
    std::fs::write(source.join("tables/users"), "alice\nbob\n").unwrap();

    claims
        .create(
            &PostParams::default(),
            &claim("feature-db", "2Gi", Some("main-db")),
        )
        .await
        .unwrap();
    let clone = folder_of(&ns, "feature-db").await;
    assert_ne!(clone, source);
    assert_eq!(
        std::fs::read_to_string(clone.join("tables/users")).unwrap(),
        "alice\nbob\n"
    );
    // A copy, not the same folder: the branch's writes stay its own.
    std::fs::write(clone.join("tables/users"), "carol\n").unwrap();
    assert_eq!(
        std::fs::read_to_string(source.join("tables/users")).unwrap(),
        "alice\nbob\n"
    );
    // A clone smaller than its source is refused, and stays Pending with the reason in an Event.
    claims
        .create(
            &PostParams::default(),
            &claim("small-db", "512Mi", Some("feature-db")),
        )
        .await
        .unwrap();
    let events = ns.api::<k8s_openapi::api::core::v1::Event>();
    eventually(
        TIMEOUT,
        "the smaller clone refused with the reason",
        || async {
            let listed = events
                .list(&ListParams::default().fields("involvedObject.name=small-db"))
                .await
                .ok()?;
            listed
                .items
                .iter()
                .any(|e| {
                    e.message
                        .as_deref()
                        .unwrap_or_default()
                        .contains("less than its source")
                })
                .then_some(())
        },
    )
    .await;

    let jobs = ns.api::<Job>();
    let job = |name: &str, image: &str| {
        serde_json::from_value::<Job>(json!({
            "metadata": {"name": name},
            "spec": {"backoffLimit": 0, "template": {"spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "migrate", "image": image,
                    "terminationMessagePolicy": "FallbackToLogsOnError"}]}}}
        }))
        .unwrap()
    };
    jobs.create(&PostParams::default(), &job("migrate", "drupal:11"))
        .await
        .unwrap();
    jobs.create(
        &PostParams::default(),
        &job("broken", "fault.oksa.test/job-fails"),
    )
    .await
    .unwrap();
    let finished = |condition: &'static str| {
        move |j: Option<&Job>| {
            j.and_then(|j| j.status.as_ref()).is_some_and(|s| {
                s.conditions
                    .iter()
                    .flatten()
                    .any(|c| c.type_ == condition && c.status == "True")
            })
        }
    };
    wait_for(&jobs, "migrate", TIMEOUT, "Complete", finished("Complete")).await;
    wait_for(&jobs, "broken", TIMEOUT, "Failed", finished("Failed")).await;
    let failed = ns
        .api::<Pod>()
        .list(&ListParams::default().labels("job-name=broken"))
        .await
        .unwrap();
    let terminated = failed.items[0]
        .status
        .as_ref()
        .unwrap()
        .container_statuses
        .as_ref()
        .unwrap()[0]
        .state
        .as_ref()
        .unwrap()
        .terminated
        .clone()
        .unwrap();
    assert_eq!(terminated.exit_code, 1);
    assert!(
        terminated
            .message
            .unwrap_or_default()
            .contains("already exists"),
        "the log's last lines"
    );
    ns.cleanup().await;
}
