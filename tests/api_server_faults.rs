//! Faults, practised: the API server frozen (SIGSTOP) for 30 s, then etcd stopped and started
//! again. The operator (leader election on, as the chart runs it) keeps running through both,
//! its `/readyz` says when it cannot work and why, and a change made afterwards reaches its
//! Deployment within 30 s. The figures are printed.
//!
//! It stops processes of the local plane, so against a cluster given by `KUBECONFIG` it only says
//! that it did not run.

mod support;

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use serde_json::json;
use support::TestNamespace;
use support::fixtures::{TestProject, web_branch};
use support::plane_process::{PlaneProcess, Thaw};
use support::process::OksaProcess;

const FREEZE: Duration = Duration::from_secs(30);
/// A change made once the plane is back must reach its Deployment within this.
const CATCH_UP: Duration = Duration::from_secs(30);

/// Polls `/readyz` until its status code is (`true`) or is not (`false`) 200; returns the time
/// it took and the body, or None after `timeout`.
async fn readiness_becomes(
    operator: &OksaProcess,
    ready: bool,
    timeout: Duration,
) -> Option<(Duration, String)> {
    let started = Instant::now();
    while started.elapsed() < timeout {
        let (code, body) = support::http_get(operator.port, "/readyz").await;
        if code != 0 && (code == 200) == ready {
            return Some((started.elapsed(), body));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// Applies a new image to the branch and returns how long until its Deployment runs it.
async fn change_reaches_the_deployment(project: &TestProject, image: &str) -> Duration {
    let started = Instant::now();
    project
        .apply_release("main", web_branch("main", image))
        .await
        .expect("applying the change");
    let deployments = project.namespaced::<Deployment>();
    support::eventually(CATCH_UP, &format!("main-web running {image}"), || async {
        let deployment = deployments.get("main-web").await.ok()?;
        let pod = deployment.spec.template.spec?;
        (pod.containers[0].image.as_deref() == Some(image)).then_some(())
    })
    .await;
    started.elapsed()
}

#[tokio::test]
async fn a_frozen_api_server_and_a_restarted_etcd_are_ridden_out() {
    let Some(state) = support::plane().state.clone() else {
        eprintln!("not run: it stops processes of the local plane, and KUBECONFIG names another");
        return;
    };
    let leases = TestNamespace::create("api-faults").await;
    let mut operator = OksaProcess::start(
        &[
            "--leader-election-namespace",
            &leases.name,
            "--identity",
            "api-faults",
        ],
        "oksa-api-faults",
    );
    readiness_becomes(&operator, true, Duration::from_secs(60))
        .await
        .expect("the operator becomes ready");
    let project = TestProject::create("api-faults", json!({})).await;
    project
        .create_ready("main", web_branch("main", "nginx:1.27"))
        .await;

    // 1. The API server frozen for 30 s: requests neither fail nor answer.
    let apiserver = PlaneProcess::new(&state, "kube-apiserver");
    apiserver.signal("STOP");
    let thaw = Thaw(&apiserver);
    let frozen = Instant::now();
    let unready = readiness_becomes(&operator, false, FREEZE).await;
    let mut alive_throughout = true;
    while frozen.elapsed() < FREEZE {
        alive_throughout &= operator.child.try_wait().unwrap().is_none()
            && support::http_get(operator.port, "/healthz").await.0 == 200;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    drop(thaw);
    let ready_again = readiness_becomes(&operator, true, Duration::from_secs(60)).await;
    let (unready_after, unready_says) = unready.expect("/readyz turned 503 while frozen");
    assert!(
        unready_says.contains("the API server cannot be used"),
        "{unready_says}"
    );
    assert!(alive_throughout, "the operator exited or /healthz failed");
    let (ready_after_thaw, _) = ready_again.expect("/readyz turned 200 again after the thaw");
    let first_change = change_reaches_the_deployment(&project, "nginx:1.28").await;

    // 2. etcd stopped until the operator notices, then started again on the same data.
    let etcd = PlaneProcess::new(&state, "etcd");
    let stopped = Instant::now();
    let command_line = etcd.stop();
    let etcd_unready = readiness_becomes(&operator, false, Duration::from_secs(30)).await;
    etcd.start(&command_line);
    let etcd_down = stopped.elapsed();
    let etcd_ready_again = readiness_becomes(&operator, true, Duration::from_secs(60)).await;
    let (etcd_unready_after, etcd_unready_says) =
        etcd_unready.expect("/readyz turned 503 while etcd was down");
    assert!(
        etcd_unready_says.contains("the API server cannot be used"),
        "{etcd_unready_says}"
    );
    let (etcd_ready_after, _) = etcd_ready_again.expect("/readyz turned 200 after etcd came back");
    let second_change = change_reaches_the_deployment(&project, "nginx:1.29").await;
    project
        .wait_release("main", "Ready on nginx:1.29", |s| {
            s.phase == Some(oksa::api::Phase::Ready)
        })
        .await;
    assert!(
        operator.child.try_wait().unwrap().is_none(),
        "the operator exited"
    );

    eprintln!(
        "API server frozen {:.0}s: /readyz 503 after {:.1}s ({}), 200 again {:.1}s after the thaw; \
         a change then reached its Deployment in {:.1}s",
        FREEZE.as_secs_f64(),
        unready_after.as_secs_f64(),
        unready_says.lines().last().unwrap_or_default(),
        ready_after_thaw.as_secs_f64(),
        first_change.as_secs_f64(),
    );
    eprintln!(
        "etcd down {:.1}s: /readyz 503 after {:.1}s, 200 again {:.1}s after its restart; a change \
         then reached its Deployment in {:.1}s",
        etcd_down.as_secs_f64(),
        etcd_unready_after.as_secs_f64(),
        etcd_ready_after.as_secs_f64(),
        second_change.as_secs_f64(),
    );
    operator.kill();
    project.cleanup().await;
    leases.cleanup().await;
}
