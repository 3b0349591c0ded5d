//! Phase 3: the limit. The same objects created directly by a tight client loop, no operator: how
//! fast this API server accepts them on this machine, and how fast the cluster makes them Ready.
//! Then the same redeploy as Oksa's: a new image for the `api` Deployment, patched directly.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Service};
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde::Serialize;

use super::readiness::{Expect, Readiness};
use super::stats::{Summary, summarize};
use super::{wait, workload};

#[derive(Debug, Default, Serialize)]
pub struct LimitResult {
    pub branches: usize,
    /// Per branch, the six create calls.
    pub per_branch: Summary,
    /// From the first create to the last create answered.
    pub wall_s: f64,
    /// Per branch, from its first create to Ready (as Oksa's status decides it).
    pub apply_to_ready: Summary,
    pub wall_to_all_ready_s: f64,
    /// Branches given a new image (one Deployment patched), and each one's time to rolled out.
    pub redeploy_branches: usize,
    pub redeploy_to_ready: Summary,
    pub redeploy_wall_s: f64,
}

async fn create_branch(
    client: Client,
    namespace: String,
    branch: String,
) -> Result<f64, kube::Error> {
    let t0 = Instant::now();
    let objects = workload::children(&namespace, &branch);
    let params = PostParams::default();
    for claim in &objects.claims {
        Api::<PersistentVolumeClaim>::namespaced(client.clone(), &namespace)
            .create(&params, claim)
            .await?;
    }
    for deployment in &objects.deployments {
        Api::<Deployment>::namespaced(client.clone(), &namespace)
            .create(&params, deployment)
            .await?;
    }
    for service in &objects.services {
        Api::<Service>::namespaced(client.clone(), &namespace)
            .create(&params, service)
            .await?;
    }
    if let Some(ingress) = &objects.ingress {
        Api::<Ingress>::namespaced(client.clone(), &namespace)
            .create(&params, ingress)
            .await?;
    }
    Ok(t0.elapsed().as_secs_f64() * 1000.0)
}

/// A new image, as a client without Oksa ships it: the Deployment's container patched.
async fn redeploy_branch(
    client: Client,
    namespace: String,
    branch: String,
) -> Result<(String, String, i64), kube::Error> {
    let objects = workload::children_with(&namespace, &branch, workload::REDEPLOYED_API_IMAGE);
    let changed = objects
        .deployments
        .iter()
        .find(|d| {
            let image = d
                .spec
                .template
                .spec
                .as_ref()
                .map(|s| s.containers[0].image.as_deref());
            image == Some(Some(workload::REDEPLOYED_API_IMAGE))
        })
        .expect("the workload has an api Deployment");
    let name = changed.metadata.name.clone().unwrap_or_default();
    let patch = serde_json::json!({"spec": {"template": {"spec": {"containers": [
        {"name": "api", "image": workload::REDEPLOYED_API_IMAGE}
    ]}}}});
    let patched = Api::<Deployment>::namespaced(client, &namespace)
        .patch(&name, &PatchParams::default(), &Patch::Strategic(patch))
        .await?;
    let release = oksa::naming::release_name(&branch);
    Ok((release, name, patched.metadata.generation.unwrap_or(0)))
}

pub async fn run(
    client: &Client,
    branches: usize,
    redeploys: usize,
    concurrency: usize,
    run_id: &str,
    timeout: Duration,
) -> Result<LimitResult, String> {
    let namespace = format!("bench-{run_id}-limit");
    let namespaces = workload::create_namespace(client, &namespace).await?;
    let readiness = Readiness::watch(
        client,
        &namespace,
        Expect {
            deployments: 2,
            claims: 1,
        },
    );
    let written: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let started = Instant::now();
    let results: Vec<Result<f64, kube::Error>> = futures::stream::iter(0..branches)
        .map(|i| {
            let branch = format!("l-{i}");
            written
                .lock()
                .unwrap()
                .insert(oksa::naming::release_name(&branch), Instant::now());
            create_branch(client.clone(), namespace.clone(), branch)
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let wall_s = started.elapsed().as_secs_f64();
    let durations = results
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    let written = std::mem::take(&mut *written.lock().unwrap());
    let ready = wait::all(
        "Ready (limit)",
        &written,
        |release| readiness.ready_at(release),
        started,
        timeout,
    )
    .await?;

    let redeploys = redeploys.min(branches);
    let rewritten: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let redeploy_started = Instant::now();
    let results: Vec<Result<(), kube::Error>> = futures::stream::iter(0..redeploys)
        .map(|i| {
            let (client, namespace) = (client.clone(), namespace.clone());
            let (readiness, rewritten) = (readiness.clone(), rewritten.clone());
            async move {
                let t0 = Instant::now();
                let (release, deployment, generation) =
                    redeploy_branch(client, namespace, format!("l-{i}")).await?;
                readiness.rewritten(&release, &deployment, generation);
                rewritten.lock().unwrap().insert(release, t0);
                Ok(())
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    results
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    let rewritten = std::mem::take(&mut *rewritten.lock().unwrap());
    let redeployed = wait::all(
        "rolled out (limit)",
        &rewritten,
        |release| readiness.ready_at(release),
        redeploy_started,
        timeout,
    )
    .await?;

    let _ = namespaces
        .delete(&namespace, &DeleteParams::background())
        .await;
    Ok(LimitResult {
        branches,
        per_branch: summarize(durations),
        wall_s,
        apply_to_ready: ready.per_branch,
        wall_to_all_ready_s: ready.wall_s,
        redeploy_branches: redeploys,
        redeploy_to_ready: redeployed.per_branch,
        redeploy_wall_s: redeployed.wall_s,
    })
}
