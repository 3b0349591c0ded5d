//! Two operators, one leader: only the holder of the Lease writes, and when it dies (`kill -9`,
//! no chance to release the Lease) the standby takes over and a change reaches the cluster
//! within 20 s. The failover time is printed. Of three operators started at the same moment,
//! again and again, never two lead.

mod support;

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use serde_json::json;
use support::fixtures::{TestProject, web_branch};
use support::process::OksaProcess;
use support::{TestNamespace, eventually};

/// The tests of this binary each run operators of their own, which must not act together.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Of three contenders for one free Lease, started at the same instant (in one process, so
/// nearly so), never two lead: each takes it under a field manager of its own, so the second
/// apply conflicts. Twenty rounds, each watched for a second after the first takes it.
#[tokio::test]
async fn of_three_contenders_started_at_once_only_one_ever_leads() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let client = support::client().await;
    let mut twice = Vec::new();
    for round in 0..20 {
        let lease_namespace = TestNamespace::create("oksa-race").await;
        let elections: Vec<oksa::leader::Election> = (0..3)
            .map(|i| oksa::leader::Election {
                namespace: lease_namespace.name.clone(),
                identity: format!("race-{round}-{i}"),
            })
            .collect();
        let leaderships: Vec<_> =
            futures::future::join_all(elections.iter().map(|e| e.start(client.clone())))
                .await
                .into_iter()
                .map(|l| l.expect("competing for the lease"))
                .collect();
        eventually(Duration::from_secs(20), "a leader", || async {
            leaderships.iter().any(|l| l.leading()).then_some(())
        })
        .await;
        let watched = Instant::now();
        while watched.elapsed() < Duration::from_secs(1) {
            let leading = leaderships.iter().filter(|l| l.leading()).count();
            if leading > 1 {
                twice.push(format!("round {round}: {leading} lead at once"));
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        drop(leaderships);
        lease_namespace.cleanup().await;
    }
    assert!(twice.is_empty(), "{twice:?}");
}

#[tokio::test]
async fn only_the_leader_writes_and_a_standby_takes_over_when_it_dies() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let lease_namespace = TestNamespace::create("oksa-ha").await;
    let mut operators = vec![
        OksaProcess::start(
            &[
                "--leader-election-namespace",
                &lease_namespace.name,
                "--identity",
                "first",
            ],
            "oksa-ha-first",
        ),
        OksaProcess::start(
            &[
                "--leader-election-namespace",
                &lease_namespace.name,
                "--identity",
                "second",
            ],
            "oksa-ha-second",
        ),
    ];
    // One leads (its caches synced), the other stands by; both are ready.
    let leader = eventually(
        Duration::from_secs(60),
        "a leader and a standby",
        || async {
            let states = [
                operators[0].readiness().await,
                operators[1].readiness().await,
            ];
            let leads = |r: &str| r.contains("ready") && !r.contains("standby");
            match (leads(&states[0]), leads(&states[1])) {
                (true, false) if states[1].contains("standby") => Some(0),
                (false, true) if states[0].contains("standby") => Some(1),
                _ => None,
            }
        },
    )
    .await;

    let project = TestProject::create("ha", json!({})).await;
    project
        .create_ready("main", web_branch("main", "nginx:1"))
        .await;
    assert!(operators[leader].writes().await > 0.0);
    assert_eq!(
        operators[1 - leader].writes().await,
        0.0,
        "the standby wrote"
    );

    // The leader dies without releasing the Lease; a change made right after must still land.
    let mut dead = operators.remove(leader);
    let standby = operators.remove(0);
    dead.kill();
    let killed = Instant::now();
    project
        .apply_release("main", web_branch("main", "nginx:2"))
        .await
        .unwrap();
    let deployments = project.namespaced::<Deployment>();
    eventually(
        Duration::from_secs(20),
        "the change applied by the new leader",
        || async {
            let deployment = deployments.get("main-web").await.ok()?;
            let image = deployment.spec.template.spec?.containers[0].image.clone()?;
            (image == "nginx:2").then_some(())
        },
    )
    .await;
    let failover = killed.elapsed();
    println!(
        "failover: the change reached its Deployment {failover:.1?} after kill -9 of the leader"
    );
    assert!(standby.writes().await > 0.0);
    assert!(!standby.readiness().await.contains("standby"));
    project.cleanup().await;
    lease_namespace.cleanup().await;
}
