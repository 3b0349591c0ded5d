//! The demo's protected URL: the edge in the demo's process, as the chart runs it in pods, and a
//! branch of `examples/` asked for through the plane's Traefik without a login and with one.
//!
//! Only on the local plane: its Traefik is on this machine and reaches the edge at this
//! machine's address. The plane's pods are kwok's and serve nothing, so a small server of the
//! demo answers for the branch's component.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::api::{BranchRelease, Project};
use crate::model::edge_service::EdgeService;

use super::DemoError;

/// The demo user of `examples/project.yaml` (its bcrypt hash is in the Project).
pub const USER: &str = "demo";
pub const PASSWORD: &str = "oksa-demo";

const NAMESPACE: &str = "oksa-demo";
const MANAGER: &str = "oksa-demo";

/// The local plane's Traefik, when the cluster is the local plane (its state folder holds the
/// kubeconfig and Traefik's address).
pub fn local_traefik() -> Option<SocketAddr> {
    let kubeconfig = PathBuf::from(std::env::var_os("KUBECONFIG")?);
    let url = std::fs::read_to_string(kubeconfig.parent()?.join("gateway-url")).ok()?;
    url.trim().trim_start_matches("http://").parse().ok()
}

/// Starts the edge in this process and its Service, leading to this machine's address.
pub async fn start_edge(client: &Client) -> Result<Option<EdgeService>, DemoError> {
    let Some(address) = machine_address() else {
        return Ok(None);
    };
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0")
        .await
        .map_err(|e| DemoError::ControlPlane(format!("a port for the edge: {e}")))?;
    let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
    let config = crate::edge::EdgeConfig {
        // Traefik reaches the edge from this machine's address.
        trusted_proxies: vec![crate::api::Cidr(format!("{address}/32"))],
        ..Default::default()
    };
    let edge_client = client.clone();
    tokio::spawn(async move {
        let ready = Arc::new(crate::readiness::Readiness::default());
        crate::edge::run(edge_client, listener, config, ready, std::future::pending()).await;
    });
    Ok(Some(publish_edge(client, NAMESPACE, &address, port).await?))
}

/// The edge's Service `namespace/oksa-edge` (the namespace created when missing), leading to
/// `address:port` as the chart's edge Service leads to its pods.
pub async fn publish_edge(
    client: &Client,
    namespace: &str,
    address: &str,
    port: u16,
) -> Result<EdgeService, kube::Error> {
    let params = PatchParams::apply(MANAGER).force();
    Api::<Namespace>::all(client.clone())
        .patch(
            namespace,
            &params,
            &Patch::Apply(json!({"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": namespace}})),
        )
        .await?;
    let service = EdgeService {
        namespace: namespace.to_string(),
        name: "oksa-edge".to_string(),
    };
    Api::<Service>::namespaced(client.clone(), namespace)
        .patch(
            &service.name,
            &params,
            &Patch::Apply(json!({"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": service.name},
                "spec": {"ports": [{"name": "http", "port": 80, "targetPort": port}]}})),
        )
        .await?;
    lead(client, namespace, &service.name, "http", address, port).await?;
    Ok(service)
}

/// Leads `service` to `address:port` with an EndpointSlice, as the endpoint controller would for
/// pods there (labelled as it copies an Oksa Service's labels: the edge follows those).
pub async fn lead(
    client: &Client,
    namespace: &str,
    service: &str,
    port_name: &str,
    address: &str,
    port: u16,
) -> Result<(), kube::Error> {
    let name = format!("{service}-{MANAGER}");
    let slice = json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": name, "labels": {
            "kubernetes.io/service-name": service,
            "endpointslice.kubernetes.io/managed-by": MANAGER,
            "oksa.dev/release": service}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [address], "conditions": {"ready": true}}],
        "ports": [{"name": port_name, "port": port, "protocol": "TCP"}]});
    Api::<EndpointSlice>::namespaced(client.clone(), namespace)
        .patch(
            &name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(slice),
        )
        .await?;
    Ok(())
}

/// Asks for a protected branch through Traefik, without a login and with the demo's, and says
/// what came back. The branch's first route is answered by a small server of the demo.
pub async fn show(
    client: &Client,
    traefik: SocketAddr,
    release: &BranchRelease,
    project: &Project,
) -> Result<(), DemoError> {
    let (Some(route), Some(address)) = (
        crate::routing::routes(release).into_iter().next(),
        machine_address(),
    ) else {
        return Ok(());
    };
    let name = crate::naming::release_name(&release.spec.branch);
    let host = crate::naming::host(&name, &project.spec.domain);
    let namespace = release.namespace().unwrap_or_default();
    let service = crate::naming::component_object_name(&name, &route.component);
    let port = stand_in(&release.spec.branch)
        .await
        .map_err(|e| DemoError::ControlPlane(format!("the demo's stand-in server: {e}")))?;
    lead(
        client,
        &namespace,
        &service,
        &route.port_name,
        &address,
        port,
    )
    .await?;
    println!(
        "\nA protected URL: {} is not production, so the Project's protection applies \
         (basic auth; the hash is in examples/project.yaml).",
        release.spec.branch
    );
    let login = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("{USER}:{PASSWORD}")
        )
    );
    for (what, authorization, wanted) in [
        ("without a login", None, 401),
        ("with -u demo:oksa-demo", Some(login.as_str()), 200),
    ] {
        // The route reaches Traefik a moment after the branch is Ready: ask again meanwhile.
        let started = std::time::Instant::now();
        let mut code = 0;
        while started.elapsed() < std::time::Duration::from_secs(60) {
            code = status(traefik, &host, authorization).await.unwrap_or(0);
            if code == wanted {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
        println!("  curl -H 'Host: {host}' http://{traefik}/ {what}: {code}");
    }
    Ok(())
}

/// A server that answers every request with a line naming the branch; returns its port.
async fn stand_in(branch: &str) -> std::io::Result<u16> {
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await?;
    let port = listener.local_addr()?.port();
    let body = format!("the branch {branch} (a stand-in of the demo)\n");
    let app = axum::Router::new().fallback(move || {
        let body = body.clone();
        async move { body }
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(port)
}

/// The status code of `GET /` at `host` through `address` (the demo's and the benchmark's probe).
pub async fn status(address: SocketAddr, host: &str, authorization: Option<&str>) -> Option<u16> {
    let mut stream = tokio::net::TcpStream::connect(address).await.ok()?;
    let mut request = format!("GET / HTTP/1.0\r\nHost: {host}\r\nUser-Agent: oksa-demo\r\n");
    if let Some(authorization) = authorization {
        request += &format!("Authorization: {authorization}\r\n");
    }
    request += "\r\n";
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut head = [0u8; 12];
    tokio::time::timeout(
        std::time::Duration::from_secs(5),
        stream.read_exact(&mut head),
    )
    .await
    .ok()?
    .ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

/// An IPv4 address of this machine that is not loopback (the API server refuses loopback
/// endpoints), from `hostname -I`.
pub fn machine_address() -> Option<String> {
    let output = std::process::Command::new("hostname")
        .arg("-I")
        .output()
        .ok()?;
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .find(|a| {
            a.parse::<std::net::Ipv4Addr>()
                .is_ok_and(|ip| !ip.is_loopback())
        })
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_example_project_lets_the_demo_user_in() {
        let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
        let (projects, _) = super::super::load_examples(&folder).unwrap();
        let users = &projects[0].spec.protection.as_ref().unwrap().users;
        let (user, hash) = users[0].split().unwrap();
        assert_eq!(user, super::USER);
        assert!(bcrypt::verify(super::PASSWORD, hash).unwrap());
    }
}
