//! Phase 3: the limit. The same objects created directly by a tight client loop, no operator: how
//! fast this API server accepts them on this machine.

use std::time::Instant;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Service};
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client};
use serde::Serialize;

use super::stats::{Summary, summarize};
use super::workload;

#[derive(Debug, Default, Serialize)]
pub struct LimitResult {
    pub branches: usize,
    pub per_branch: Summary,
    pub wall_s: f64,
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

pub async fn run(
    client: &Client,
    branches: usize,
    concurrency: usize,
    run_id: &str,
) -> Result<LimitResult, String> {
    let namespace = format!("bench-{run_id}-limit");
    let namespaces = workload::create_namespace(client, &namespace).await?;
    let started = Instant::now();
    let results: Vec<Result<f64, kube::Error>> = futures::stream::iter(0..branches)
        .map(|i| create_branch(client.clone(), namespace.clone(), format!("l-{i}")))
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let wall_s = started.elapsed().as_secs_f64();
    let durations = results
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    let _ = namespaces
        .delete(&namespace, &DeleteParams::background())
        .await;
    Ok(LimitResult {
        branches,
        per_branch: summarize(durations),
        wall_s,
    })
}
