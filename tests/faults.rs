//! A component that cannot run says why, in the status and in events, and recovers when fixed.
//! The local plane's kwok stages (tests/cluster/kwok/fault-stages.yaml) give images under
//! fault.oksa.test/ the states a real kubelet reports for those faults.

mod support;

use k8s_openapi::api::core::v1::Event;
use kube::api::ListParams;
use oksa::api::Phase;
use serde_json::json;
use support::fixtures::{TIMEOUT, TestProject, condition, web_component};

async fn expect_degraded(image: &str, reason: &str, message_part: &str) {
    let project = TestProject::create("fault", json!({})).await;
    let spec = json!({"branch": "main", "components": [
        web_component("web", "nginx:1.27"),
        {"name": "app", "containers": [
            {"name": "server", "image": image, "ports": [{"containerPort": 8080}]},
            {"name": "sidecar", "image": "busybox"},
        ]},
    ]});
    project.create_release("main", spec.clone()).await;
    let seen = project
        .wait_release("main", reason, |s| {
            s.phase == Some(Phase::Degraded) && s.ready_components.as_deref() == Some("1/2")
        })
        .await;
    let status = seen.status.unwrap();
    let (degraded, found_reason, message) = condition(&status, "Degraded").unwrap();
    assert_eq!((degraded.as_str(), found_reason.as_str()), ("True", reason));
    assert!(message.contains(message_part), "{message}");
    let (ready, _, ready_message) = condition(&status, "Ready").unwrap();
    assert_eq!(ready, "False");
    assert!(ready_message.contains("app: 0/1 ready"), "{ready_message}");
    assert_eq!(status.ready_components.as_deref(), Some("1/2"));
    let app = status.components.iter().find(|c| c.name == "app").unwrap();
    assert!(
        app.message
            .as_deref()
            .unwrap_or_default()
            .contains(message_part)
    );

    // A Warning event on the BranchRelease tells the same story (published right after the
    // status write, so it is waited for, not read once).
    let events = project.namespaced::<Event>();
    support::eventually(TIMEOUT, &format!("a Warning {reason} event"), || async {
        let list = events
            .list(&ListParams::default().fields("involvedObject.name=main"))
            .await
            .ok()?;
        list.items
            .iter()
            .any(|e| e.type_.as_deref() == Some("Warning") && e.reason.as_deref() == Some(reason))
            .then_some(())
    })
    .await;

    // Fixing the image heals it.
    let mut fixed = spec;
    fixed["components"][1]["containers"][0]["image"] = json!("shop/app:2");
    project.apply_release("main", fixed).await.unwrap();
    let healed = project
        .wait_release("main", "Ready", |s| s.phase == Some(Phase::Ready))
        .await;
    assert_eq!(
        condition(healed.status.as_ref().unwrap(), "Degraded")
            .unwrap()
            .0,
        "False"
    );
    project.cleanup().await;
}

#[tokio::test]
async fn an_image_that_cannot_be_pulled_is_reported() {
    expect_degraded(
        "fault.oksa.test/pull-error:v9",
        "ImagePullFailed",
        "cannot pull image fault.oksa.test/pull-error:v9",
    )
    .await;
}

#[tokio::test]
async fn a_crash_loop_is_reported_with_its_exit_code() {
    expect_degraded(
        "fault.oksa.test/crash-loop:1",
        "CrashLooping",
        "container server keeps crashing (exit code 1, Error",
    )
    .await;
}

#[tokio::test]
async fn a_failing_readiness_probe_is_reported() {
    expect_degraded(
        "fault.oksa.test/not-ready:1",
        "ProbeFailing",
        "Readiness probe failed: dial tcp 10.0.0.9:8080: connect: connection refused",
    )
    .await;
}
