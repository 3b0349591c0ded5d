//! Volumes keep their data: they grow in place, refuse to shrink or change class, and a retained
//! volume outlives its BranchRelease and is picked up again by the next one for the branch.

mod support;

use k8s_openapi::api::core::v1::{Namespace, PersistentVolumeClaim};
use kube::api::DeleteParams;
use kube::{Api, ResourceExt};
use oksa::api::Phase;
use serde_json::json;
use support::fixtures::{TIMEOUT, TestProject, condition, web_branch, web_component};
use support::wait_deleted;

fn with_volume(size: &str, extra: serde_json::Value) -> serde_json::Value {
    let mut volume = json!({"name": "files", "size": size});
    volume
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().cloned().unwrap_or_default());
    let mut web = web_component("web", "nginx");
    web["containers"][0]["volumeMounts"] = json!([{"volume": "files", "mountPath": "/data"}]);
    json!({"branch": "main", "components": [web], "volumes": [volume]})
}

/// A project whose branch `main` is Ready with volume `files` (1Gi): the project, its claims
/// and the claim as first created.
async fn ready_with_volume(
    prefix: &str,
) -> (
    TestProject,
    Api<PersistentVolumeClaim>,
    PersistentVolumeClaim,
) {
    let project = TestProject::create(prefix, json!({})).await;
    project
        .create_ready("main", with_volume("1Gi", json!({})))
        .await;
    let claims = project.namespaced::<PersistentVolumeClaim>();
    let original = claims.get("main-files").await.unwrap();
    (project, claims, original)
}

/// Deletes branch `main` and waits until it and its Deployment are gone.
async fn delete_main_and_wait(project: &TestProject) {
    project
        .releases()
        .delete("main", &DeleteParams::background())
        .await
        .unwrap();
    wait_deleted(&project.releases(), "main", TIMEOUT).await;
    wait_deleted(
        &project.namespaced::<k8s_openapi::api::apps::v1::Deployment>(),
        "main-web",
        TIMEOUT,
    )
    .await;
}

fn capacity(claim: &PersistentVolumeClaim) -> Option<String> {
    claim
        .status
        .as_ref()?
        .capacity
        .as_ref()?
        .get("storage")
        .map(|q| q.0.clone())
}

#[tokio::test]
async fn a_volume_grows_in_place_and_refuses_to_shrink_or_change_class() {
    let (project, claims, original) = ready_with_volume("vol").await;

    project
        .apply_release("main", with_volume("2Gi", json!({})))
        .await
        .unwrap();
    let grown = project
        .wait_release("main", "capacity 2Gi", |s| {
            s.phase == Some(Phase::Ready) && s.volumes[0].capacity.as_deref() == Some("2Gi")
        })
        .await;
    assert_eq!(
        grown.status.unwrap().volumes[0].phase.as_deref(),
        Some("Bound")
    );
    let claim = claims.get("main-files").await.unwrap();
    assert_eq!(claim.uid(), original.uid(), "grown in place, not recreated");

    // Shrinking: refused before it is tried, environment untouched.
    project
        .apply_release("main", with_volume("1Gi", json!({})))
        .await
        .unwrap();
    let refused = project
        .wait_release("main", "Degraded", |s| s.phase == Some(Phase::Degraded))
        .await;
    let status = refused.status.unwrap();
    let (degraded, reason, message) = condition(&status, "Degraded").unwrap();
    assert_eq!(
        (degraded.as_str(), reason.as_str()),
        ("True", "VolumeChangeRefused")
    );
    assert!(
        message.contains("shrinking from 2Gi to 1Gi was refused"),
        "{message}"
    );
    assert_eq!(
        condition(&status, "Ready").unwrap().0,
        "True",
        "the environment keeps running"
    );
    assert!(status.volumes[0].message.is_some());
    let claim = claims.get("main-files").await.unwrap();
    assert_eq!(
        (claim.uid(), capacity(&claim).as_deref()),
        (original.uid(), Some("2Gi"))
    );

    // Changing the storage class: refused too.
    project
        .apply_release(
            "main",
            with_volume("2Gi", json!({"storageClassName": "fast"})),
        )
        .await
        .unwrap();
    let refused = project
        .wait_release("main", "class change refused", |s| {
            condition(s, "Degraded").is_some_and(|(_, _, m)| m.contains("from standard to fast"))
        })
        .await;
    assert_eq!(refused.status.unwrap().phase, Some(Phase::Degraded));

    // Back to a valid spec: no longer degraded.
    project
        .apply_release("main", with_volume("2Gi", json!({})))
        .await
        .unwrap();
    project
        .wait_release("main", "Ready", |s| s.phase == Some(Phase::Ready))
        .await;
    assert_eq!(
        claims.get("main-files").await.unwrap().uid(),
        original.uid()
    );
    project.cleanup().await;
}

#[tokio::test]
async fn a_retained_volume_survives_deletion_and_is_picked_up_again() {
    let project = TestProject::create("retain", json!({})).await;
    project
        .create_ready("main", with_volume("1Gi", json!({"retain": true})))
        .await;
    let claims = project.namespaced::<PersistentVolumeClaim>();
    let original = claims.get("main-files").await.unwrap();
    assert!(
        original.owner_references().is_empty(),
        "no owner reference: no garbage collection can reach a retained claim"
    );
    assert_eq!(original.labels()["oksa.dev/release"], "main");

    delete_main_and_wait(&project).await;
    let kept = claims.get("main-files").await.unwrap();
    assert_eq!(kept.uid(), original.uid());
    assert!(kept.metadata.deletion_timestamp.is_none());
    assert!(kept.owner_references().is_empty());
    assert_eq!(kept.labels()["oksa.dev/detached"], "true");

    project
        .create_release("main-again", with_volume("1Gi", json!({"retain": true})))
        .await;
    let ready = project
        .wait_release("main-again", "Ready", |s| s.phase == Some(Phase::Ready))
        .await;
    assert_eq!(ready.status.unwrap().volumes[0].claim_name, "main-files");
    assert_eq!(
        claims.get("main-files").await.unwrap().uid(),
        original.uid(),
        "the same claim, with its data"
    );

    // Not retained any more: the claim belongs to the BranchRelease again and goes with it.
    project
        .apply_release("main-again", with_volume("1Gi", json!({})))
        .await
        .unwrap();
    let claim = support::eventually(TIMEOUT, "the claim owned by main-again", || async {
        let claim = claims.get("main-files").await.ok()?;
        let owner = claim.owner_references().first()?.name.clone();
        (owner == "main-again").then_some(claim)
    })
    .await;
    assert!(!claim.labels().contains_key("oksa.dev/detached"));
    project.cleanup().await;
}

#[tokio::test]
async fn a_volume_removed_from_the_spec_is_detached_not_deleted() {
    let (project, claims, original) = ready_with_volume("detach").await;

    // The volume leaves the spec (removed, or renamed): its claim and data stay.
    let without = web_branch("main", "nginx");
    project.apply_release("main", without).await.unwrap();
    let detached = project
        .wait_release("main", "Ready, the claim detached", |s| {
            s.phase == Some(Phase::Ready) && !s.detached_volumes.is_empty()
        })
        .await;
    assert_eq!(detached.status.unwrap().detached_volumes, ["main-files"]);
    let claim = claims.get("main-files").await.unwrap();
    assert_eq!(claim.uid(), original.uid());
    assert!(
        claim.owner_references().is_empty(),
        "kept if the branch goes"
    );
    assert_eq!(claim.labels()["oksa.dev/detached"], "true");
    let events = project
        .namespaced::<k8s_openapi::api::core::v1::Event>()
        .list(&kube::api::ListParams::default())
        .await
        .unwrap();
    assert!(
        events
            .items
            .iter()
            .any(|e| e.reason.as_deref() == Some("VolumeDetached")),
        "an Event says what was kept"
    );

    // Declared again under the same name: the same claim, attached again.
    project
        .apply_release("main", with_volume("1Gi", json!({})))
        .await
        .unwrap();
    project
        .wait_release("main", "Ready, the claim attached", |s| {
            s.phase == Some(Phase::Ready) && s.detached_volumes.is_empty()
        })
        .await;
    let claim = claims.get("main-files").await.unwrap();
    assert_eq!(claim.uid(), original.uid());
    assert_eq!(claim.owner_references()[0].name, "main");
    assert!(!claim.labels().contains_key("oksa.dev/detached"));
    project.cleanup().await;
}

#[tokio::test]
async fn retain_holds_however_soon_the_branch_is_deleted_and_the_project_waits_for_it() {
    let (project, claims, original) = ready_with_volume("late-retain").await;

    // Retained and deleted at once: no reconcile needs to run in between.
    project
        .apply_release("main", with_volume("1Gi", json!({"retain": true})))
        .await
        .unwrap();
    delete_main_and_wait(&project).await;
    let kept = claims.get("main-files").await.unwrap();
    assert_eq!(kept.uid(), original.uid());
    assert!(kept.metadata.deletion_timestamp.is_none());

    // Deleting the Project would delete the namespace, and the claim with it: it waits, and says so.
    project
        .api()
        .delete(&project.name, &DeleteParams::background())
        .await
        .unwrap();
    let blocked = project
        .wait_status("deletion blocked", |s| {
            s.conditions
                .iter()
                .any(|c| c.reason == "DeletionBlocked" && c.message.contains("main-files"))
        })
        .await;
    assert!(blocked.metadata.deletion_timestamp.is_some());
    let namespace = Api::<Namespace>::all(project.client.clone())
        .get(&project.namespace)
        .await
        .unwrap();
    assert!(namespace.metadata.deletion_timestamp.is_none());
    assert!(claims.get("main-files").await.is_ok());

    // Once a person deleted the claim, the Project and its namespace go.
    claims
        .delete("main-files", &DeleteParams::default())
        .await
        .unwrap();
    wait_deleted(&project.api(), &project.name, TIMEOUT).await;
}

/// Branch `branch` with volume `db` (`size`) mounted by its web component, running `image`.
fn with_db(branch: &str, size: &str, image: &str, extra: serde_json::Value) -> serde_json::Value {
    let mut web = web_component("web", image);
    web["containers"][0]["volumeMounts"] = json!([{"volume": "db", "mountPath": "/db"}]);
    let mut spec = json!({"branch": branch, "components": [web],
        "volumes": [{"name": "db", "size": size}]});
    spec.as_object_mut()
        .unwrap()
        .extend(extra.as_object().cloned().unwrap_or_default());
    spec
}

#[tokio::test]
async fn a_new_branch_starts_with_a_clone_of_the_reference_data_once() {
    let project = TestProject::create(
        "reference",
        json!({"referenceData": {"branch": "main", "volumes": ["db"]}}),
    )
    .await;
    let claims = project.namespaced::<PersistentVolumeClaim>();

    // A branch created before its source: it waits, and says why.
    project
        .create_release("early", with_db("early", "1Gi", "nginx", json!({})))
        .await;
    let waiting = project
        .wait_release("early", "waiting for its reference data", |s| {
            condition(s, "ReferenceData").is_some_and(|(status, reason, _)| {
                status == "False" && reason == "WaitingForSource"
            })
        })
        .await;
    let (_, _, why) = condition(waiting.status.as_ref().unwrap(), "ReferenceData").unwrap();
    assert!(
        why.contains("claim main-db of branch main does not exist yet"),
        "{why}"
    );
    assert!(claims.get_opt("early-db").await.unwrap().is_none());
    // Its components wait at zero, rather than pods failing to find the claim.
    assert_eq!(project.replicas("early-web").await, Some(0));
    assert_eq!(
        waiting.status.as_ref().unwrap().phase,
        Some(Phase::Progressing)
    );

    // The reference branch keeps its own data; a test writes into it.
    project
        .create_ready("main", with_db("main", "1Gi", "nginx", json!({})))
        .await;
    let main_db = claims.get("main-db").await.unwrap();
    assert!(main_db.spec.as_ref().unwrap().data_source.is_none());
    let source = support::claim_folder(&project.client, &project.namespace, "main-db").await;
    if let Some(source) = &source {
        std::fs::write(
            source.join("users.sql"),
            "INSERT INTO users VALUES ('alice');\n",
        )
        .unwrap();
    }

    // The waiting branch goes on by itself once the source is there; a new one clones at once.
    for branch in ["early", "feature"] {
        if branch == "feature" {
            project
                .create_release(branch, with_db(branch, "2Gi", "nginx", json!({})))
                .await;
        }
        let ready = project
            .wait_release(branch, "Ready with its reference data", |s| {
                s.phase == Some(Phase::Ready)
                    && condition(s, "ReferenceData").is_some_and(|(status, _, _)| status == "True")
            })
            .await;
        let volume = &ready.status.unwrap().volumes[0];
        assert_eq!(volume.cloned_from.as_deref(), Some("main-db"), "{volume:?}");
        assert!(volume.cloned_at.is_some());
        let claim = claims.get(&format!("{branch}-db")).await.unwrap();
        assert_eq!(
            claim.spec.unwrap().data_source.unwrap().name,
            "main-db",
            "{branch}"
        );
    }
    let feature_db = claims.get("feature-db").await.unwrap();
    let clone = support::claim_folder(&project.client, &project.namespace, "feature-db").await;
    if let Some(clone) = &clone {
        assert_eq!(
            std::fs::read_to_string(clone.join("users.sql")).unwrap(),
            "INSERT INTO users VALUES ('alice');\n"
        );
        // The branch's own changes to its data.
        std::fs::write(clone.join("users.sql"), "-- mine\n").unwrap();
    }

    // Asleep and awake again: the same claim, never a second clone.
    let scale = |replicas: serde_json::Value| {
        let releases = project.releases();
        async move {
            releases
                .patch(
                    "feature",
                    &kube::api::PatchParams::default(),
                    &kube::api::Patch::Merge(json!({"spec": {"replicas": replicas}})),
                )
                .await
                .unwrap();
        }
    };
    scale(json!(0)).await;
    project
        .wait_release("feature", "asleep", |s| s.phase == Some(Phase::Sleeping))
        .await;
    scale(serde_json::Value::Null).await;
    project
        .wait_release("feature", "awake", |s| s.phase == Some(Phase::Ready))
        .await;
    assert_eq!(
        claims.get("feature-db").await.unwrap().uid(),
        feature_db.uid()
    );

    // `oksa status` says where the data came from.
    let table = project.oksa_status();
    assert!(
        table.contains("feature: volume db cloned from main-db"),
        "{table}"
    );

    // A redeploy never clones again: the same claim, the branch's own data.
    project
        .apply_release(
            "feature",
            with_db("feature", "2Gi", "nginx:1.28", json!({})),
        )
        .await
        .unwrap();
    project
        .wait_release("feature", "Ready with the new image", |s| {
            s.phase == Some(Phase::Ready) && s.components[0].images == ["nginx:1.28"]
        })
        .await;
    assert_eq!(
        claims.get("feature-db").await.unwrap().uid(),
        feature_db.uid()
    );
    if let Some(clone) = &clone {
        assert_eq!(
            std::fs::read_to_string(clone.join("users.sql")).unwrap(),
            "-- mine\n"
        );
    }

    // `oksa data reset`: asked for, the branch's copy goes and a fresh clone replaces it.
    let reset = |yes: bool| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_oksa"));
        command
            .args([
                "data",
                "reset",
                "--project",
                &project.name,
                "--branch",
                "feature",
            ])
            .env("KUBECONFIG", support::kubeconfig_path());
        if yes {
            command.arg("--yes");
        }
        command.output().unwrap()
    };
    let unconfirmed = reset(false);
    assert_eq!(unconfirmed.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unconfirmed.stderr).contains("feature-db (from main-db)"));
    assert_eq!(
        claims.get("feature-db").await.unwrap().uid(),
        feature_db.uid()
    );
    let output = reset(true);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let again = project
        .wait_release("feature", "Ready on a fresh clone", |s| {
            s.phase == Some(Phase::Ready)
                && s.replicas != Some(0)
                && condition(s, "ReferenceData").is_some_and(|(status, _, _)| status == "True")
        })
        .await;
    assert_eq!(
        again.spec.replicas, None,
        "the branch's replicas as they were"
    );
    let fresh = claims.get("feature-db").await.unwrap();
    assert_ne!(fresh.uid(), feature_db.uid());
    if source.is_some() {
        let clone = support::claim_folder(&project.client, &project.namespace, "feature-db")
            .await
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(clone.join("users.sql")).unwrap(),
            "INSERT INTO users VALUES ('alice');\n"
        );
    }

    // Deleting the claim by hand does the same: the branch lets go of it and clones afresh.
    claims
        .delete("feature-db", &DeleteParams::background())
        .await
        .unwrap();
    let fresh_uid = fresh.uid();
    support::eventually(
        support::fixtures::TIMEOUT,
        "a new clone of feature-db",
        || async {
            let claim = claims.get_opt("feature-db").await.ok()??;
            let bound = claim.status.as_ref()?.phase.as_deref() == Some("Bound");
            (bound && claim.uid() != fresh_uid).then_some(())
        },
    )
    .await;
    project
        .wait_release(
            "feature",
            "Ready on the clone made after a hand delete",
            |s| {
                s.phase == Some(Phase::Ready)
                    && condition(s, "ReferenceData").is_some_and(|(status, _, _)| status == "True")
            },
        )
        .await;

    // A branch that opts out starts empty, and says nothing of reference data.
    let own = project
        .create_ready(
            "own",
            with_db(
                "own",
                "1Gi",
                "nginx",
                json!({"referenceData": {"disabled": true}}),
            ),
        )
        .await;
    assert!(condition(own.status.as_ref().unwrap(), "ReferenceData").is_none());
    let own_db = claims.get("own-db").await.unwrap();
    assert!(own_db.spec.unwrap().data_source.is_none());
    project.cleanup().await;
}

#[tokio::test]
async fn a_storage_class_that_cannot_clone_is_named_in_the_branchs_status() {
    if support::plane().state.is_none() {
        println!("skipped: the class that cannot clone is one of the local plane's provisioner");
        return;
    }
    let project = TestProject::create(
        "no-clone",
        json!({"referenceData": {"branch": "main", "volumes": ["db"]}}),
    )
    .await;
    let class_name = format!("{}-no-clone", project.name);
    let class: k8s_openapi::api::storage::v1::StorageClass = serde_json::from_value(json!({
        "metadata": {"name": class_name, "labels": {"oksa.dev/test": "true"}},
        "provisioner": "oksa.dev/local-hostpath",
        "parameters": {"clone": "false"},
        "allowVolumeExpansion": true,
    }))
    .unwrap();
    let classes = Api::<k8s_openapi::api::storage::v1::StorageClass>::all(project.client.clone());
    classes.create(&Default::default(), &class).await.unwrap();
    project
        .create_ready("main", with_db("main", "1Gi", "nginx", json!({})))
        .await;
    let mut feature = with_db("feature", "1Gi", "nginx", json!({}));
    feature["volumes"][0]["storageClassName"] = json!(class_name);
    project.create_release("feature", feature).await;
    let stuck = project
        .wait_release("feature", "the reason its clone is stuck", |s| {
            condition(s, "ReferenceData")
                .is_some_and(|(_, _, message)| message.contains("cannot clone"))
        })
        .await;
    let status = stuck.status.unwrap();
    let (ready, reason, message) = condition(&status, "ReferenceData").unwrap();
    assert_eq!((ready.as_str(), reason.as_str()), ("False", "Cloning"));
    assert_eq!(
        message,
        format!(
            "volume db is being cloned from main-db: storage class {class_name} cannot clone volumes"
        )
    );
    assert_eq!(status.phase, Some(Phase::Progressing));
    project.cleanup().await;
    let _ = classes.delete(&class_name, &DeleteParams::default()).await;
}
