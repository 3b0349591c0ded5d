//! The edge's Service in a project's namespace: the routes of a sleeping branch lead to it, and
//! its endpoints are the ready edge pods (see `edge_endpoints`). Pure.
//!
//! A Service without a selector and an EndpointSlice Oksa writes itself: the edge runs in
//! another namespace, and a route may only name a Service of its own namespace.

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::compact::Labels;
use crate::labels;
use crate::model::edge_service::EdgeEndpoints;
use crate::naming::{EDGE_PORT, EDGE_SERVICE, LEGACY_WAKER_SERVICE};

const PORT_NAME: &str = "http";

pub struct WakerObjects {
    pub service: Service,
    /// None when Oksa runs without an edge: the routes of sleeping branches then lead nowhere,
    /// and only a deploy, a keep-alive or a scale-up wakes them.
    pub endpoints: Option<EndpointSlice>,
}

pub fn build(
    project: &str,
    namespace: &str,
    owner: &OwnerReference,
    edge: Option<&EdgeEndpoints>,
) -> WakerObjects {
    let meta = |name: &str, extra: &[(&str, &str)]| {
        let mut object_labels = labels::project_labels(project);
        object_labels.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(namespace.to_string()),
            labels: Some(object_labels),
            owner_references: Some(vec![owner.clone()]),
            ..ObjectMeta::default()
        }
    };
    let service = Service {
        metadata: meta(EDGE_SERVICE, &[]),
        spec: Some(ServiceSpec {
            ports: Some(vec![ServicePort {
                name: Some(PORT_NAME.into()),
                port: EDGE_PORT,
                protocol: Some("TCP".into()),
                target_port: edge.map(|e| IntOrString::Int(i32::from(e.port))),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        status: None,
    };
    let endpoints = edge.map(|edge| EndpointSlice {
        metadata: meta(
            EDGE_SERVICE,
            &[
                ("kubernetes.io/service-name", EDGE_SERVICE),
                // Keeps the EndpointSlice controller's hands off it.
                (
                    labels::ENDPOINT_SLICE_MANAGER,
                    labels::ENDPOINT_SLICE_MANAGER_VALUE,
                ),
            ],
        ),
        address_type: match edge.addresses.first() {
            Some(std::net::IpAddr::V6(_)) => "IPv6",
            _ => "IPv4",
        }
        .into(),
        // One endpoint per address: Service proxies and ingress controllers balance over them.
        endpoints: Some(
            edge.addresses
                .iter()
                .map(|address| Endpoint {
                    addresses: vec![address.to_string()],
                    conditions: Some(EndpointConditions {
                        ready: Some(true),
                        ..EndpointConditions::default()
                    }),
                    ..Endpoint::default()
                })
                .collect(),
        ),
        ports: Some(vec![EndpointPort {
            name: Some(PORT_NAME.into()),
            port: Some(i32::from(edge.port)),
            protocol: Some("TCP".into()),
            ..EndpointPort::default()
        }]),
    });
    WakerObjects { service, endpoints }
}

/// True for the objects `build` makes (the edge's Service and EndpointSlice of a namespace), and
/// those of their older name, not a branch's.
pub fn is_waker_object(name: &str, object_labels: &Labels) -> bool {
    (name == EDGE_SERVICE || name == LEGACY_WAKER_SERVICE)
        && !object_labels.contains_key(labels::RELEASE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_endpoints_are_the_ready_edge_pods() {
        let edge = EdgeEndpoints {
            addresses: vec!["10.1.2.3".parse().unwrap(), "10.1.2.4".parse().unwrap()],
            port: 8081,
        };
        let objects = build("shop", "shop", &OwnerReference::default(), Some(&edge));
        let slice = objects.endpoints.unwrap();
        let endpoints = slice.endpoints.unwrap();
        assert_eq!(endpoints[0].addresses, vec!["10.1.2.3"]);
        assert_eq!(endpoints[1].addresses, vec!["10.1.2.4"]);
        assert_eq!(slice.ports.unwrap()[0].port, Some(8081));
        assert_eq!(
            slice.metadata.labels.unwrap()["kubernetes.io/service-name"],
            EDGE_SERVICE
        );
        let port = &objects.service.spec.unwrap().ports.unwrap()[0];
        assert_eq!(port.port, EDGE_PORT);
        assert!(
            build("shop", "shop", &OwnerReference::default(), None)
                .endpoints
                .is_none()
        );
    }
}
