//! The stage: the local plane's Traefik, an edge Service leading to the edge processes, and a
//! project with three branches whose Services lead to the benchmark's own server. The plane's
//! pods are kwok's and serve nothing: the branches run the plane's never-Ready image, so that
//! their pods' (unreachable) addresses are not among the Services' ready endpoints, and only the
//! server is.
//! - `main`, production: public and never asleep, so Traefik goes straight to its Service;
//! - `feature`: may sleep (after an hour), so Traefik goes through the edge;
//! - `guarded`: asks for a login, through the edge.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::{Value, json};

use oksa::api::{BranchRelease, Project};

const MANAGER: &str = "oksa-bench";

/// The plane's state folder (next to its kubeconfig): Traefik's address and PID are there.
pub struct Plane {
    pub traefik: SocketAddr,
    pub traefik_pid: Option<u32>,
}

impl Plane {
    pub fn local() -> Result<Plane, String> {
        let traefik = oksa::demo::protected::local_traefik().ok_or(
            "the edge benchmark needs the local plane's Traefik (run it without KUBECONFIG)",
        )?;
        let state = std::env::var_os("KUBECONFIG")
            .map(PathBuf::from)
            .and_then(|k| k.parent().map(PathBuf::from))
            .unwrap_or_default();
        let traefik_pid = std::fs::read_to_string(state.join("pids/traefik.pid"))
            .ok()
            .and_then(|p| p.trim().parse().ok());
        Ok(Plane {
            traefik,
            traefik_pid,
        })
    }
}

/// An IPv4 address of this machine that is not loopback.
pub fn machine_address() -> Result<String, String> {
    oksa::demo::protected::machine_address()
        .ok_or_else(|| "this machine has no IPv4 address but loopback".to_string())
}

async fn apply<K>(api: &Api<K>, name: &str, object: Value) -> Result<K, String>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.patch(
        name,
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(object),
    )
    .await
    .map_err(|e| format!("applying {name}: {e}"))
}

/// The benchmark's edge Service in `namespace`, leading to `address:port`; returns it as
/// `namespace/name`.
pub async fn edge_service(
    client: &Client,
    namespace: &str,
    address: &str,
    port: u16,
) -> Result<String, String> {
    let service = oksa::demo::protected::publish_edge(client, namespace, address, port)
        .await
        .map_err(|e| format!("the edge's Service: {e}"))?;
    Ok(format!("{}/{}", service.namespace, service.name))
}

pub const USER: &str = "ada";
pub const PASSWORD: &str = "s3cret";

/// An image whose kwok pods run but are never Ready (see tests/cluster/kwok/fault-stages.yaml).
pub const NEVER_READY: &str = "fault.oksa.test/not-ready-bench";

/// The project and its three branches.
pub async fn project(client: &Client, name: &str, timeout: Duration) -> Result<String, String> {
    let domain = format!("{name}.bench.test");
    apply(
        &Api::<Project>::all(client.clone()),
        name,
        json!({"apiVersion": "oksa.dev/v1alpha1", "kind": "Project",
            "metadata": {"name": name, "labels": {"oksa.dev/bench": "true"}},
            "spec": {"domain": domain, "productionBranch": "main"}}),
    )
    .await?;
    let releases = Api::<BranchRelease>::namespaced(client.clone(), name);
    let hash = bcrypt::hash(PASSWORD, 4).map_err(|e| e.to_string())?;
    for (branch, extra) in [
        ("main", json!({})),
        ("feature", json!({"lifecycle": {"sleepAfter": "1h"}})),
        (
            "guarded",
            json!({"protection": {"users": [format!("{USER}:{hash}")]}}),
        ),
    ] {
        let mut spec = json!({"project": name, "branch": branch,
            "components": [{"name": "web", "containers": [{"name": "web",
                "image": format!("{NEVER_READY}:1"), "ports": [{"containerPort": 8080}]}]}]});
        spec.as_object_mut()
            .unwrap()
            .extend(extra.as_object().cloned().unwrap_or_default());
        let object = json!({"apiVersion": "oksa.dev/v1alpha1", "kind": "BranchRelease",
            "metadata": {"name": branch, "namespace": name}, "spec": spec});
        retry_until_namespace(timeout, || apply(&releases, branch, object.clone())).await?;
    }
    Ok(domain)
}

/// Retries `attempt` while the project's namespace is not there yet.
async fn retry_until_namespace<F, Fut, T>(timeout: Duration, attempt: F) -> Result<T, String>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let started = Instant::now();
    loop {
        match attempt().await {
            Err(error) if error.contains("not found") && started.elapsed() < timeout => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            other => return other,
        }
    }
}

/// Deletes the project (its namespace goes with it) and the edge's namespace.
pub async fn clean_up(client: &Client, project: &str, edge_namespace: &str) {
    let _ = Api::<Project>::all(client.clone())
        .delete(project, &DeleteParams::default())
        .await;
    let _ = Api::<Namespace>::all(client.clone())
        .delete(edge_namespace, &DeleteParams::default())
        .await;
}
