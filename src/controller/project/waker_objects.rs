//! The waker's Service in a project's namespace: the routes of a sleeping branch lead to it, and
//! its one endpoint is the operator's waker. Pure.
//!
//! A Service without a selector and an EndpointSlice Oksa writes itself: the operator runs in
//! another namespace, and a route may only name a Service of its own namespace.

use std::net::SocketAddr;

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::compact::Labels;
use crate::labels;
use crate::naming::{WAKER_PORT, WAKER_SERVICE};

const PORT_NAME: &str = "http";

pub struct WakerObjects {
    pub service: Service,
    /// None when the operator has no waker address: the routes of sleeping branches then lead
    /// nowhere, and only a deploy, a keep-alive or a scale-up wakes them.
    pub endpoints: Option<EndpointSlice>,
}

pub fn build(
    project: &str,
    namespace: &str,
    owner: &OwnerReference,
    waker: Option<SocketAddr>,
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
        metadata: meta(WAKER_SERVICE, &[]),
        spec: Some(ServiceSpec {
            ports: Some(vec![ServicePort {
                name: Some(PORT_NAME.into()),
                port: WAKER_PORT,
                protocol: Some("TCP".into()),
                target_port: waker.map(|a| IntOrString::Int(i32::from(a.port()))),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        status: None,
    };
    let endpoints = waker.map(|address| EndpointSlice {
        metadata: meta(
            WAKER_SERVICE,
            &[
                ("kubernetes.io/service-name", WAKER_SERVICE),
                // Keeps the EndpointSlice controller's hands off it.
                (
                    labels::ENDPOINT_SLICE_MANAGER,
                    labels::ENDPOINT_SLICE_MANAGER_VALUE,
                ),
            ],
        ),
        address_type: if address.is_ipv4() { "IPv4" } else { "IPv6" }.into(),
        endpoints: Some(vec![Endpoint {
            addresses: vec![address.ip().to_string()],
            conditions: Some(EndpointConditions {
                ready: Some(true),
                ..EndpointConditions::default()
            }),
            ..Endpoint::default()
        }]),
        ports: Some(vec![EndpointPort {
            name: Some(PORT_NAME.into()),
            port: Some(i32::from(address.port())),
            protocol: Some("TCP".into()),
            ..EndpointPort::default()
        }]),
    });
    WakerObjects { service, endpoints }
}

/// True for the objects `build` makes (the waker's Service and EndpointSlice of a namespace),
/// not a branch's.
pub fn is_waker_object(name: &str, object_labels: &Labels) -> bool {
    name == WAKER_SERVICE && !object_labels.contains_key(labels::RELEASE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_endpoint_is_the_operators_waker() {
        let objects = build(
            "shop",
            "shop",
            &OwnerReference::default(),
            Some("10.1.2.3:8081".parse().unwrap()),
        );
        let slice = objects.endpoints.unwrap();
        assert_eq!(slice.endpoints.unwrap()[0].addresses, vec!["10.1.2.3"]);
        assert_eq!(slice.ports.unwrap()[0].port, Some(8081));
        assert_eq!(
            slice.metadata.labels.unwrap()["kubernetes.io/service-name"],
            WAKER_SERVICE
        );
        let port = &objects.service.spec.unwrap().ports.unwrap()[0];
        assert_eq!(port.port, WAKER_PORT);
        assert!(
            build("shop", "shop", &OwnerReference::default(), None)
                .endpoints
                .is_none()
        );
    }
}
