//! The part of Gateway API's `HTTPRoute` (gateway.networking.k8s.io/v1) that Oksa declares and
//! reads. Its CRDs are the platform's (installed from the Gateway API release), so these types
//! generate no schema. The `gateway-api` crate would have all of it, but it is built on an older
//! kube and k8s-openapi than Oksa's.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use serde::{Deserialize, Serialize};

/// The API group of Gateway API.
pub const GROUP: &str = "gateway.networking.k8s.io";

#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "gateway.networking.k8s.io",
    version = "v1",
    kind = "HTTPRoute",
    plural = "httproutes",
    namespaced,
    status = "HttpRouteStatus",
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteSpec {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parent_refs: Vec<ParentReference>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hostnames: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<HttpRouteRule>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ParentReference {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteRule {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<HttpRouteMatch>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backend_refs: Vec<BackendRef>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteMatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathMatch>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PathMatch {
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BackendRef {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
}

/// What the Gateways say of the route: per parent, `Accepted` and `ResolvedRefs`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteStatus {
    #[serde(default)]
    pub parents: Vec<RouteParentStatus>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RouteParentStatus {
    pub parent_ref: ParentReference,
    #[serde(default)]
    pub controller_name: String,
    #[serde(default)]
    pub conditions: Vec<Condition>,
}

impl HTTPRoute {
    /// Why a Gateway this route is attached to does not accept it (its `Accepted=False`
    /// condition), if one says so. A route no Gateway has looked at yet is not refused.
    pub fn refused_by(&self) -> Option<String> {
        let status = self.status.as_ref()?;
        status.parents.iter().find_map(|parent| {
            let accepted = parent.conditions.iter().find(|c| c.type_ == "Accepted")?;
            (accepted.status == "False").then(|| {
                let gateway = match &parent.parent_ref.namespace {
                    Some(namespace) => format!("{namespace}/{}", parent.parent_ref.name),
                    None => parent.parent_ref.name.clone(),
                };
                format!(
                    "Gateway {gateway} does not accept HTTPRoute {} ({}): {}",
                    self.metadata.name.as_deref().unwrap_or_default(),
                    accepted.reason,
                    accepted.message
                )
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn route(conditions: serde_json::Value) -> HTTPRoute {
        serde_json::from_value(json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": "main"}, "spec": {},
            "status": {"parents": [{"parentRef": {"name": "shared", "namespace": "gw"},
                "controllerName": "traefik.io/gateway-controller", "conditions": conditions}]},
        }))
        .unwrap()
    }

    fn condition(status: &str, reason: &str, message: &str) -> serde_json::Value {
        json!({"type": "Accepted", "status": status, "reason": reason, "message": message,
            "lastTransitionTime": "2026-01-01T00:00:00Z"})
    }

    #[test]
    fn a_route_is_refused_only_when_a_gateway_says_so() {
        let refused = route(json!([condition(
            "False",
            "NotAllowedByListeners",
            "no listener"
        )]));
        assert_eq!(
            refused.refused_by().unwrap(),
            "Gateway gw/shared does not accept HTTPRoute main (NotAllowedByListeners): no listener"
        );
        assert!(
            route(json!([condition("True", "Accepted", "")]))
                .refused_by()
                .is_none()
        );
        assert!(route(json!([])).refused_by().is_none(), "not looked at yet");
    }
}
