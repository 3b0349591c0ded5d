//! Where a branch's Services answer: the ready endpoints of their EndpointSlices, indexed by
//! (namespace, Service) → port name → addresses. Pure; `caches` keeps it current.
//!
//! The edge goes to the pods itself, as ingress controllers do, rather than through the
//! Service's cluster IP: no kube-proxy hop, and a pod that failed to connect is skipped at once.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::ResourceExt;

pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

#[derive(Default, Debug)]
pub struct Backends {
    services: HashMap<(String, String), HashMap<String, Vec<SocketAddr>>>,
}

impl Backends {
    pub fn build<'a>(slices: impl IntoIterator<Item = &'a Arc<EndpointSlice>>) -> Backends {
        let mut services: HashMap<(String, String), HashMap<String, Vec<SocketAddr>>> =
            HashMap::new();
        for slice in slices {
            let (Some(namespace), Some(service)) =
                (slice.namespace(), slice.labels().get(SERVICE_NAME_LABEL))
            else {
                continue;
            };
            if !matches!(slice.address_type.as_str(), "IPv4" | "IPv6") {
                continue;
            }
            let ready: Vec<IpAddr> = slice
                .endpoints
                .iter()
                .flatten()
                // No `ready` at all means ready; terminating endpoints say false.
                .filter(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true))
                .flat_map(|e| e.addresses.iter().filter_map(|a| a.parse().ok()))
                .collect();
            let ports = services.entry((namespace, service.clone())).or_default();
            for port in slice.ports.iter().flatten() {
                let (Some(number), name) = (port.port, port.name.clone().unwrap_or_default())
                else {
                    continue;
                };
                let Ok(number) = u16::try_from(number) else {
                    continue;
                };
                let addresses = ports.entry(name).or_default();
                addresses.extend(ready.iter().map(|ip| SocketAddr::new(*ip, number)));
            }
        }
        for ports in services.values_mut() {
            for addresses in ports.values_mut() {
                addresses.sort();
                addresses.dedup();
            }
        }
        Backends { services }
    }

    /// The ready addresses of `service`'s port `port_name` in `namespace`.
    pub fn addresses(&self, namespace: &str, service: &str, port_name: &str) -> &[SocketAddr] {
        self.services
            .get(&(namespace.to_string(), service.to_string()))
            .and_then(|ports| ports.get(port_name))
            .map_or(&[], Vec::as_slice)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slice(name: &str, service: &str, endpoints: serde_json::Value) -> Arc<EndpointSlice> {
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": name, "namespace": "shop",
                             "labels": {SERVICE_NAME_LABEL: service}},
                "addressType": "IPv4",
                "endpoints": endpoints,
                "ports": [{"name": "port-8080", "port": 8080}, {"name": "admin", "port": 9000}],
            }))
            .unwrap(),
        )
    }

    #[test]
    fn only_ready_endpoints_of_every_slice_of_the_service() {
        let slices = [
            slice(
                "a",
                "main-web",
                serde_json::json!([
                    {"addresses": ["10.0.0.1"], "conditions": {"ready": true}},
                    {"addresses": ["10.0.0.2"], "conditions": {"ready": false}},
                    {"addresses": ["10.0.0.3"]},
                ]),
            ),
            slice(
                "b",
                "main-web",
                serde_json::json!([{"addresses": ["10.0.0.4"]}]),
            ),
            slice(
                "c",
                "other-web",
                serde_json::json!([{"addresses": ["10.0.0.9"]}]),
            ),
        ];
        let backends = Backends::build(&slices);
        let addresses: Vec<String> = backends
            .addresses("shop", "main-web", "port-8080")
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            addresses,
            ["10.0.0.1:8080", "10.0.0.3:8080", "10.0.0.4:8080"]
        );
        assert_eq!(
            backends.addresses("shop", "main-web", "admin")[0].to_string(),
            "10.0.0.1:9000"
        );
        assert!(backends.addresses("shop", "main-web", "nope").is_empty());
        assert!(backends.addresses("blog", "main-web", "admin").is_empty());
    }
}
