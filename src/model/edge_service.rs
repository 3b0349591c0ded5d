//! The edge as the operator knows it: its Service (`--edge-service namespace/name`) and the
//! ready pods behind it, read from that Service's EndpointSlices. Pure; the runtime follows them
//! (`controller::edge_endpoints`).

use std::net::IpAddr;

use k8s_openapi::api::discovery::v1::EndpointSlice;

/// The edge's Service, as `namespace/name`.
#[derive(Debug, Clone, PartialEq)]
pub struct EdgeService {
    pub namespace: String,
    pub name: String,
}

impl std::str::FromStr for EdgeService {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.split_once('/') {
            Some((namespace, name)) if !namespace.is_empty() && !name.is_empty() => {
                Ok(EdgeService {
                    namespace: namespace.to_string(),
                    name: name.to_string(),
                })
            }
            _ => Err(format!("{text:?} is not namespace/name")),
        }
    }
}

/// The ready edge pods' addresses (one family, sorted) and the port they answer on.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EdgeEndpoints {
    pub addresses: Vec<IpAddr>,
    pub port: u16,
}

/// The endpoints of the Service's slices: ready (or, without conditions, assumed ready) and
/// not terminating, of the family of the first one. None until a slice names a port.
pub fn from_slices<'a>(
    slices: impl IntoIterator<Item = &'a EndpointSlice>,
) -> Option<EdgeEndpoints> {
    let mut port = None;
    let mut addresses: Vec<IpAddr> = Vec::new();
    for slice in slices {
        let slice_port = slice
            .ports
            .iter()
            .flatten()
            .find_map(|p| p.port)
            .and_then(|p| u16::try_from(p).ok());
        if slice_port.is_none() {
            continue;
        }
        port = port.or(slice_port);
        for endpoint in slice.endpoints.iter().flatten() {
            let conditions = endpoint.conditions.clone().unwrap_or_default();
            if conditions.ready == Some(false) || conditions.terminating == Some(true) {
                continue;
            }
            addresses.extend(
                endpoint
                    .addresses
                    .iter()
                    .filter_map(|a| a.parse::<IpAddr>().ok()),
            );
        }
    }
    let port = port?;
    if let Some(first) = addresses.first().copied() {
        addresses.retain(|a| a.is_ipv4() == first.is_ipv4());
    }
    addresses.sort();
    addresses.dedup();
    Some(EdgeEndpoints { addresses, port })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slice(endpoints: serde_json::Value) -> EndpointSlice {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "edge-abc"}, "addressType": "IPv4",
            "endpoints": endpoints,
            "ports": [{"name": "http", "port": 8081, "protocol": "TCP"}],
        }))
        .unwrap()
    }

    #[test]
    fn only_ready_edge_pods_are_led_to() {
        let slices = [
            slice(serde_json::json!([
                {"addresses": ["10.0.0.2"], "conditions": {"ready": true}},
                {"addresses": ["10.0.0.1"], "conditions": {"ready": true}},
                {"addresses": ["10.0.0.3"], "conditions": {"ready": false}},
                {"addresses": ["10.0.0.4"], "conditions": {"ready": true, "terminating": true}},
            ])),
            slice(serde_json::json!([{"addresses": ["10.0.0.1"]}])),
        ];
        let endpoints = from_slices(&slices).unwrap();
        assert_eq!(endpoints.port, 8081);
        assert_eq!(
            endpoints.addresses,
            [
                "10.0.0.1".parse::<IpAddr>().unwrap(),
                "10.0.0.2".parse().unwrap()
            ]
        );
        assert_eq!(from_slices(&[]), None);
        assert_eq!(
            "oksa-system/oksa-edge".parse(),
            Ok(EdgeService {
                namespace: "oksa-system".into(),
                name: "oksa-edge".into()
            })
        );
        assert!("oksa-edge".parse::<EdgeService>().is_err());
    }
}
