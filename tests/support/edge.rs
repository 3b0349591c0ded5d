//! The edge under test: `oksa::edge::run` on a thread and runtime of its own (as apart from the
//! operator as a thread can be), on a free port of every address, and a Service of its own whose
//! EndpointSlice leads to this machine's address (the plane's Traefik reaches it there; the API
//! server refuses loopback endpoints). The operator follows that Service as the chart's operator
//! follows the chart's edge Service.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::{Api, ResourceExt};
use oksa::model::edge_service::EdgeService;
use serde_json::json;

/// Seconds the test edge gives a client to send its headers (the chart's default is 10).
pub const HEADER_TIMEOUT_SECONDS: u64 = 3;

/// The namespace of every test binary's edge Service (one Service each, `edge-<pid>`).
const NAMESPACE: &str = "oksa-test-edge";

/// Starts this binary's edge with a wake cap of `cap_per_hour`; None when this machine has no
/// address the plane can reach.
pub async fn ensure_running(cap_per_hour: u32) -> Option<EdgeService> {
    let address = super::web::machine_address()?;
    let trusted = address.clone();
    let std_listener = std::net::TcpListener::bind("0.0.0.0:0").ok()?;
    std_listener.set_nonblocking(true).ok()?;
    let port = std_listener.local_addr().ok()?.port();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let client = super::client().await;
            let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
            // Traefik reaches the edge from this machine's address, and only its
            // X-Forwarded-For names the client (a request from loopback is anyone's).
            let trusted_proxies = vec![oksa::api::Cidr(format!("{trusted}/32"))];
            let config = oksa::edge::EdgeConfig {
                trusted_proxies,
                cap_per_hour,
                // Tests send bursts from one address.
                per_client_per_second: 1000,
                per_client_burst: 1000,
                connections: oksa::edge::server::ConnectionLimits {
                    header_read_timeout: std::time::Duration::from_secs(HEADER_TIMEOUT_SECONDS),
                    ..Default::default()
                },
                ..oksa::edge::EdgeConfig::default()
            };
            let ready = Arc::new(oksa::readiness::Readiness::default());
            oksa::edge::run(client, listener, config, ready, std::future::pending()).await;
        });
    });
    let service = EdgeService {
        namespace: NAMESPACE.to_string(),
        name: format!("edge-{}", std::process::id()),
    };
    publish(&service, &address, port).await;
    Some(service)
}

/// The edge's Service and its one endpoint, as the EndpointSlice controller would write them for
/// the chart's edge pods.
async fn publish(service: &EdgeService, address: &str, port: u16) {
    let client = super::client().await;
    let apply = PatchParams::apply("oksa-tests").force();
    Api::<Namespace>::all(client.clone())
        .patch(
            NAMESPACE,
            &apply,
            &Patch::Apply(json!({"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": NAMESPACE, "labels": {super::TEST_LABEL: "true"}}})),
        )
        .await
        .expect("the test edge's namespace");
    let services = Api::<Service>::namespaced(client.clone(), NAMESPACE);
    forget_old_edges(&services).await;
    services
        .patch(
            &service.name,
            &apply,
            &Patch::Apply(json!({"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": service.name},
                "spec": {"ports": [{"name": "http", "port": 80, "targetPort": port}]}})),
        )
        .await
        .expect("the test edge's Service");
    let mut slice = super::web::endpoints(&service.name, "http", address, port);
    slice.metadata.name = Some(service.name.clone());
    slice.metadata.managed_fields = None;
    let mut slice = serde_json::to_value(&slice).unwrap();
    slice["apiVersion"] = json!("discovery.k8s.io/v1");
    slice["kind"] = json!("EndpointSlice");
    Api::<EndpointSlice>::namespaced(client, NAMESPACE)
        .patch(&service.name, &apply, &Patch::Apply(slice))
        .await
        .expect("the test edge's EndpointSlice");
}

/// Earlier runs' edge Services (their processes are gone): removed after two hours.
async fn forget_old_edges(services: &Api<Service>) {
    let Ok(list) = services.list(&ListParams::default()).await else {
        return;
    };
    let now = k8s_openapi::jiff::Timestamp::now();
    for old in list.items {
        let age = old
            .creation_timestamp()
            .map(|t| now.duration_since(t.0).as_secs());
        if age.is_some_and(|seconds| seconds > 2 * 3600) {
            let _ = services
                .delete(&old.name_any(), &DeleteParams::default())
                .await;
        }
    }
}

/// The edge's address as a project's routes reach it: from the EndpointSlice of the `oksa-edge`
/// Service Oksa keeps in the project's namespace.
pub async fn address_in(project: &super::fixtures::TestProject) -> String {
    let slices = project.namespaced::<EndpointSlice>();
    super::eventually(
        std::time::Duration::from_secs(90),
        "the edge's endpoint",
        || async {
            let slice = slices.get(oksa::naming::EDGE_SERVICE).await.ok()?;
            let ip = slice.endpoints?.first()?.addresses.first()?.clone();
            let port = slice.ports?.first()?.port?;
            Some(format!("{ip}:{port}"))
        },
    )
    .await
}
