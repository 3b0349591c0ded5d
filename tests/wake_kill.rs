//! Faults, practised on the lifecycle: the operator is killed (`kill -9`) in the middle of a
//! wake, after it started the workloads and before it switched the routes back. The next
//! operator finishes the wake: the branch ends Awake, its pods wanted, its route on its
//! component again. (Status holds the whole lifecycle state, so nothing is lost with the
//! process.)

mod support;

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::networking::v1::Ingress;
use oksa::api::LifecycleState;
use serde_json::json;
use support::eventually;
use support::fixtures::{TestProject, keepalive, web_branch};
use support::process::OksaProcess;

const LONG: Duration = Duration::from_secs(90);

async fn lifecycle_state(project: &TestProject) -> Option<LifecycleState> {
    let release = project.releases().get("main").await.ok()?;
    Some(release.status?.lifecycle?.state)
}

#[tokio::test]
async fn killed_mid_wake_the_next_operator_finishes_the_wake() {
    let mut operator = OksaProcess::start(&[], "oksa-wake-kill-0");
    let project = TestProject::create(
        "wake-kill",
        json!({"defaults": {"lifecycle": {"sleepAfter": "5s"}}}),
    )
    .await;
    project
        .create_ready("main", web_branch("main", "nginx:1.27"))
        .await;
    // A wake takes a fraction of a second here (kwok pods are Ready at once): catch one in the
    // act, trying again (it falls asleep after 5 s) if it finished before it was seen.
    let mut caught = false;
    for attempt in 0..5 {
        eventually(LONG, "asleep", || async {
            (lifecycle_state(&project).await == Some(LifecycleState::Sleeping)).then_some(())
        })
        .await;
        keepalive(&project, "main");
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(10) {
            match lifecycle_state(&project).await {
                Some(LifecycleState::Waking) => {
                    operator.kill();
                    caught = true;
                    break;
                }
                Some(LifecycleState::Awake) => break,
                _ => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
        if caught {
            println!("killed mid-wake on attempt {}", attempt + 1);
            break;
        }
    }
    assert!(caught, "never saw the branch Waking");

    let _operator = OksaProcess::start(&[], "oksa-wake-kill-1");
    eventually(LONG, "awake again", || async {
        (lifecycle_state(&project).await == Some(LifecycleState::Awake)).then_some(())
    })
    .await;
    let ingresses = project.namespaced::<Ingress>();
    eventually(
        Duration::from_secs(10),
        "the route back on main-web",
        || async {
            let ingress = ingresses.get("main").await.ok()?;
            let rules = ingress.spec?.rules?;
            let service = rules[0].http.as_ref()?.paths[0].backend.service.clone()?;
            (service.name == "main-web").then_some(())
        },
    )
    .await;
    let deployment = project
        .namespaced::<Deployment>()
        .get("main-web")
        .await
        .unwrap();
    assert_eq!(deployment.spec.replicas, Some(1));
    project.cleanup().await;
}
