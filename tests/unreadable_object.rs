//! One tenant's object that Oksa cannot read never stops the operator for the others.
//!
//! The CRD now bounds every number, so such an object can only come from before: this test
//! serves the CRD as an older Oksa did (no bounds on probe ports), stores a BranchRelease with a
//! port no integer type holds, serves the current CRD again, and only then starts the operator
//! (as after an upgrade or a restart). Its own test binary: it changes the cluster's CRD, and the
//! operator must start after the bad object exists.

mod support;

use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, PersistentVolumeClaim};
use kube::Api;
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams,
};
use oksa::api::BranchRelease;
use serde_json::{Value, json};
use support::fixtures::{TestProject, web_branch};
use support::{TestNamespace, eventually};

/// The BranchRelease CRD without any bound on the probes' tcpSocket ports.
fn older_crd() -> Value {
    let [_, releases] = oksa::crd::definitions();
    let mut crd = serde_json::to_value(releases).unwrap();
    let container = &mut crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
        ["properties"]["components"]["items"]["properties"]["containers"]["items"]["properties"];
    for probe in ["readinessProbe", "livenessProbe"] {
        let port = container[probe]["properties"]["tcpSocket"]["properties"]["port"]
            .as_object_mut()
            .unwrap();
        for bound in ["minimum", "maximum", "maxLength", "pattern"] {
            port.remove(bound);
        }
    }
    crd
}

#[tokio::test]
async fn an_unreadable_branch_release_is_reported_and_the_others_are_reconciled() {
    let client = support::client().await;
    oksa::crd::install(&client).await.unwrap();
    let crds = Api::<DynamicObject>::all_with(
        client.clone(),
        &ApiResource::erase::<
            k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
        >(&()),
    );
    crds.patch(
        "branchreleases.oksa.dev",
        &PatchParams::apply("oksa").force(),
        &Patch::Apply(older_crd()),
    )
    .await
    .unwrap();

    let namespace = TestNamespace::create("unreadable").await;
    let raw = Api::<DynamicObject>::namespaced_with(
        client.clone(),
        &namespace.name,
        &ApiResource::erase::<BranchRelease>(&()),
    );
    let mut container = json!({"name": "web", "image": "nginx"});
    container["readinessProbe"] = json!({"tcpSocket": {"port": 4294967296u64}});
    // It carries Oksa's volumes finalizer, as a BranchRelease with volumes does.
    let broken: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "oksa.dev/v1alpha1", "kind": "BranchRelease",
        "metadata": {"name": "broken", "finalizers": ["oksa.dev/volumes"]},
        "spec": {"project": "nobody", "branch": "main",
            "components": [{"name": "web", "containers": [container]}]},
    }))
    .unwrap();
    // The API server takes a moment to serve a changed schema.
    eventually(
        Duration::from_secs(30),
        "the older CRD to store the object",
        || {
            let raw = raw.clone();
            let broken = broken.clone();
            async move { raw.create(&PostParams::default(), &broken).await.ok() }
        },
    )
    .await;

    // The operator starts (installing the current CRD) with the unreadable object stored.
    let project = TestProject::create("readable", json!({})).await;
    project
        .create_ready("main", web_branch("main", "nginx"))
        .await;

    // The unreadable one is named, with the reason, where its owner looks.
    let events = namespace.api::<Event>();
    let event = eventually(Duration::from_secs(30), "an Unreadable event", || async {
        let list = events
            .list(&ListParams::default().fields("involvedObject.name=broken"))
            .await
            .ok()?;
        list.items
            .into_iter()
            .find(|e| e.reason.as_deref() == Some("Unreadable"))
    })
    .await;
    let note = event.message.unwrap_or_default();
    assert!(note.contains("cannot read"), "{note}");

    // Deleting it finishes: Oksa cannot read it, so it keeps every claim it owns, detached.
    let stored = raw.get("broken").await.unwrap();
    let claim: PersistentVolumeClaim = serde_json::from_value(json!({
        "metadata": {"name": "broken-data",
            "labels": {"app.kubernetes.io/managed-by": "oksa"},
            "ownerReferences": [{"apiVersion": "oksa.dev/v1alpha1", "kind": "BranchRelease",
                "name": "broken", "uid": stored.metadata.uid, "controller": true}]},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }))
    .unwrap();
    let claims = namespace.api::<PersistentVolumeClaim>();
    claims.create(&PostParams::default(), &claim).await.unwrap();
    raw.delete("broken", &DeleteParams::default())
        .await
        .unwrap();
    eventually(
        Duration::from_secs(30),
        "the unreadable object deleted",
        || async { raw.get_opt("broken").await.ok()?.is_none().then_some(()) },
    )
    .await;
    let kept = claims.get("broken-data").await.unwrap();
    assert!(kept.metadata.deletion_timestamp.is_none());
    assert!(
        kept.metadata
            .owner_references
            .unwrap_or_default()
            .is_empty()
    );
    assert_eq!(
        kept.metadata
            .labels
            .unwrap()
            .get("oksa.dev/detached")
            .map(String::as_str),
        Some("true")
    );
    namespace.cleanup().await;
    project.cleanup().await;
}
