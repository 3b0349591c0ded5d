//! Faults, practised: the operator is killed (`kill -9`, no chance to clean up) ten times at
//! random moments while 20 branches with volumes roll out. Afterwards every branch is Ready with
//! exactly its children (no duplicates), no claim was ever recreated (same UIDs throughout), and a
//! restart after convergence writes nothing. The figures are printed.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, ResourceQuota, Service};
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::ListParams;
use kube::{Api, ResourceExt};
use oksa::api::Phase;
use rand::Rng;
use serde_json::json;
use support::eventually;
use support::fixtures::{TestProject, web_component};
use support::process::OksaProcess;

const BRANCHES: usize = 20;
const KILLS: usize = 10;

/// Records the UID of every claim seen; returns the claims seen with a second UID.
async fn claims_recreated(
    claims: &Api<PersistentVolumeClaim>,
    seen: &mut BTreeMap<String, String>,
) -> Vec<String> {
    let mut recreated = Vec::new();
    for claim in claims.list(&ListParams::default()).await.unwrap() {
        let uid = claim.uid().unwrap_or_default();
        let first = seen.entry(claim.name_any()).or_insert_with(|| uid.clone());
        if *first != uid {
            recreated.push(claim.name_any());
        }
    }
    recreated
}

#[tokio::test]
async fn killed_ten_times_during_a_rollout_it_converges_without_duplicates_or_lost_volumes() {
    let mut operator = OksaProcess::start(&[], "oksa-kills-0");
    let project = TestProject::create("kills", json!({})).await;
    let started = Instant::now();
    for i in 0..BRANCHES {
        let mut web = web_component("web", "nginx");
        web["containers"][0]["volumeMounts"] = json!([{"volume": "data", "mountPath": "/data"}]);
        let spec = json!({"branch": format!("b{i}"), "components": [web],
            "volumes": [{"name": "data", "size": "1Gi"}]});
        project.create_release(&format!("b{i}"), spec).await;
    }

    let claims = project.namespaced::<PersistentVolumeClaim>();
    let mut uids = BTreeMap::new();
    let mut recreated = Vec::new();
    let releases = project.releases();
    let ready_now = || async {
        let list = releases.list(&ListParams::default()).await.unwrap();
        list.items
            .iter()
            .filter(|r| {
                r.status.as_ref().is_some_and(|s| {
                    s.phase == Some(Phase::Ready) && s.observed_generation == r.metadata.generation
                })
            })
            .count()
    };
    // How many branches were Ready at each kill: the kills land during the rollout.
    let mut ready_at_kill = Vec::new();
    for kill in 1..=KILLS {
        // Random moments, a start-up included: the operator needs about half a second to list.
        let pause = rand::rng().random_range(100..700);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        operator.kill();
        ready_at_kill.push(ready_now().await);
        recreated.extend(claims_recreated(&claims, &mut uids).await);
        operator = OksaProcess::start(&[], &format!("oksa-kills-{kill}"));
    }
    let last_kill = Instant::now();

    eventually(Duration::from_secs(180), "every branch Ready", || async {
        (ready_now().await == BRANCHES).then_some(())
    })
    .await;
    let converged = last_kill.elapsed();
    recreated.extend(claims_recreated(&claims, &mut uids).await);
    assert!(recreated.is_empty(), "claims recreated: {recreated:?}");

    // Exactly the declared children: one of each per branch, each owned by its branch.
    let count_owned = |owners: Vec<Vec<String>>| {
        let mut by_owner = BTreeMap::<String, usize>::new();
        for owner in owners.into_iter().flatten() {
            *by_owner.entry(owner).or_default() += 1;
        }
        by_owner
    };
    let owners_of =
        |refs: Vec<Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference>>| {
            refs.into_iter()
                .map(|r| r.into_iter().map(|o| o.name).collect())
                .collect::<Vec<Vec<String>>>()
        };
    let deployments = project
        .namespaced::<Deployment>()
        .list(&Default::default())
        .await
        .unwrap();
    // The branches' Services (the namespace also has the waker's, the Project's).
    let services = project
        .namespaced::<Service>()
        .list(&ListParams::default().labels("oksa.dev/release"))
        .await
        .unwrap();
    let ingresses = project
        .namespaced::<Ingress>()
        .list(&Default::default())
        .await
        .unwrap();
    let claim_list = claims.list(&Default::default()).await.unwrap();
    for (kind, owners) in [
        (
            "Deployment",
            owners_of(
                deployments
                    .iter()
                    .map(|o| o.owner_references().to_vec())
                    .collect(),
            ),
        ),
        (
            "Service",
            owners_of(
                services
                    .iter()
                    .map(|o| o.owner_references().to_vec())
                    .collect(),
            ),
        ),
        (
            "Ingress",
            owners_of(
                ingresses
                    .iter()
                    .map(|o| o.owner_references().to_vec())
                    .collect(),
            ),
        ),
        (
            "PersistentVolumeClaim",
            owners_of(
                claim_list
                    .iter()
                    .map(|o| o.owner_references().to_vec())
                    .collect(),
            ),
        ),
    ] {
        let by_owner = count_owned(owners);
        assert_eq!(by_owner.len(), BRANCHES, "{kind}: {by_owner:?}");
        assert!(
            by_owner.values().all(|n| *n == 1),
            "{kind}: duplicates {by_owner:?}"
        );
    }

    // Converged means the Project says so too: its status counts every branch Ready and shows the
    // quota's current usage (those summaries may be held a moment, see `coalesce`).
    let quotas = project.namespaced::<ResourceQuota>();
    eventually(
        Duration::from_secs(60),
        "the Project's status to show 20/20 and the quota's usage",
        || async {
            let status = project.api().get(&project.name).await.ok()?.status?;
            // No quota asked for, no ResourceQuota.
            let used: Option<BTreeMap<String, String>> = quotas
                .get_opt("oksa-quota")
                .await
                .ok()?
                .and_then(|q| q.status)
                .map(|s| {
                    s.used
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(k, v)| (k, v.0))
                        .collect()
                });
            (status.branches?.summary == format!("{BRANCHES}/{BRANCHES}")
                && status.quota.map(|q| q.used) == used)
                .then_some(())
        },
    )
    .await;
    // A restart after convergence finds everything in place and writes nothing.
    operator.kill();
    let operator = OksaProcess::start(&[], "oksa-kills-restart");
    eventually(
        Duration::from_secs(60),
        "every branch reconciled again",
        || async {
            let reconciles = operator.counter("oksa_reconciles_total", "project").await;
            (reconciles >= BRANCHES as f64).then_some(())
        },
    )
    .await;
    let writes = operator
        .counter("oksa_child_writes_total", "skipped")
        .await
        .abs();
    println!(
        "{KILLS} kills during the rollout of {BRANCHES} branches with volumes (Ready at each kill: \
         {ready_at_kill:?}): all Ready {converged:.1?} after the last kill ({:.1?} in all), {} claims \
         kept their first UIDs, a restart after convergence wrote {writes}",
        started.elapsed(),
        uids.len()
    );
    assert_eq!(writes, 0.0, "a restart after convergence wrote");
    project.cleanup().await;
}
