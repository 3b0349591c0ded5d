//! How a branch's traffic is laid out, shared by the operator (which writes its routes) and the
//! edge (which proxies along them): the routes from a path to a component's port, who may pass,
//! and whether the branch's URL leads through the edge. Pure.

use crate::api::{BranchRelease, Component, Project, Protection};
use crate::naming;

/// One route: requests under `path` go to `component`'s Service, port `port` (named `port_name`
/// on the Service, as its EndpointSlices name it too).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub path: String,
    pub component: String,
    pub port: i32,
    pub port_name: String,
}

/// The branch's routes as declared; without any, `/` to the first component with a port. A
/// route to a component or port that does not exist is left out.
pub fn routes(release: &BranchRelease) -> Vec<Route> {
    let components = &release.spec.components;
    let port_of = |component: &str, number: Option<i32>| {
        components
            .iter()
            .find(|c| c.name == component)
            .and_then(|c| {
                c.containers
                    .iter()
                    .flat_map(|k| &k.ports)
                    .find(|p| number.is_none_or(|n| p.container_port == n))
            })
            .map(|p| (p.container_port, naming::port_name(p)))
    };
    let declared = &release.spec.routes;
    if declared.is_empty() {
        return components
            .iter()
            .find_map(|c: &Component| {
                port_of(&c.name, None).map(|(port, port_name)| Route {
                    path: "/".into(),
                    component: c.name.clone(),
                    port,
                    port_name,
                })
            })
            .into_iter()
            .collect();
    }
    declared
        .iter()
        .filter_map(|r| {
            let (port, port_name) = port_of(&r.component, r.port).or_else(|| {
                // A port number the containers do not declare still reaches the Service's
                // first port, as the Ingress did before the edge.
                r.port.map(|n| (n, format!("port-{n}")))
            })?;
            Some(Route {
                path: r.path.clone(),
                component: r.component.clone(),
                port,
                port_name,
            })
        })
        .collect()
}

/// The route serving `path`: the longest route path that is a prefix of it by whole segments
/// (an Ingress `Prefix` match: `/api` serves `/api` and `/api/x`, not `/apix`).
pub fn route_for<'a>(routes: &'a [Route], path: &str) -> Option<&'a Route> {
    routes
        .iter()
        .filter(|r| {
            let prefix = r.path.trim_end_matches('/');
            prefix.is_empty()
                || path == prefix
                || path
                    .strip_prefix(prefix)
                    .is_some_and(|rest| rest.starts_with('/'))
        })
        .max_by_key(|r| r.path.trim_end_matches('/').len())
}

/// Who may open the branch: its own `protection`, else (production excepted) its Project's;
/// None when it is public.
pub fn protection<'a>(release: &'a BranchRelease, project: &'a Project) -> Option<&'a Protection> {
    let production = project.spec.production_branch.as_deref() == Some(&release.spec.branch);
    match &release.spec.protection {
        Some(own) => Some(own),
        None if production => None,
        None => project.spec.protection.as_ref(),
    }
    .filter(|p| !p.public)
}

/// The ways past a branch's protection, for people and CI: what it accepts, never a secret.
pub fn ways_in(protection: &Protection) -> Vec<String> {
    let mut ways = Vec::new();
    if !protection.bypass_token_sha256.is_empty() {
        ways.push(format!(
            "send header {}: <token> (a token whose SHA-256 is in bypassTokenSha256)",
            crate::api::BYPASS_HEADER
        ));
    }
    if !protection.users.is_empty() {
        ways.push("log in with basic auth as one of its users".to_string());
    }
    if !protection.allow_cidrs.is_empty() {
        let networks: Vec<&str> = protection
            .allow_cidrs
            .iter()
            .map(|c| c.0.as_str())
            .collect();
        ways.push(format!("come from {}", networks.join(", ")));
    }
    ways
}

/// Whether the branch's routes lead to the edge rather than straight to its Services. Asleep or
/// waking, always (the edge answers for it). Protected, always: without an edge nobody passes,
/// rather than everybody. Awake and able to sleep, when there is an edge: it counts the requests
/// that keep the branch awake. Otherwise straight: nothing is added to the path.
pub fn through_edge(awake: bool, protected: bool, may_sleep: bool, edge_deployed: bool) -> bool {
    !awake || protected || (may_sleep && edge_deployed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn release(spec: serde_json::Value) -> BranchRelease {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "oksa.dev/v1alpha1", "kind": "BranchRelease",
            "metadata": {"name": "x", "namespace": "shop"},
            "spec": spec,
        }))
        .unwrap()
    }

    fn two_components() -> serde_json::Value {
        serde_json::json!([
            {"name": "worker", "containers": [{"name": "w", "image": "busybox"}]},
            {"name": "web", "containers": [{"name": "web", "image": "nginx",
                "ports": [{"containerPort": 8080}, {"name": "admin", "containerPort": 9000}]}]},
            {"name": "api", "containers": [{"name": "api", "image": "api",
                "ports": [{"containerPort": 3000}]}]},
        ])
    }

    #[test]
    fn without_routes_slash_goes_to_the_first_component_with_a_port() {
        let release = release(serde_json::json!({
            "project": "shop", "branch": "main", "components": two_components()}));
        assert_eq!(
            routes(&release),
            vec![Route {
                path: "/".into(),
                component: "web".into(),
                port: 8080,
                port_name: "port-8080".into()
            }]
        );
    }

    #[test]
    fn declared_routes_name_their_ports_and_match_by_whole_segments() {
        let release = release(serde_json::json!({
        "project": "shop", "branch": "main", "components": two_components(),
        "routes": [
            {"path": "/", "component": "web"},
            {"path": "/api", "component": "api"},
            {"path": "/admin/", "component": "web", "port": 9000},
            {"path": "/gone", "component": "nothing"},
        ]}));
        let routes = routes(&release);
        assert_eq!(routes.len(), 3, "{routes:?}");
        let at = |path: &str| route_for(&routes, path).map(|r| (r.component.as_str(), r.port));
        assert_eq!(at("/"), Some(("web", 8080)));
        assert_eq!(at("/api"), Some(("api", 3000)));
        assert_eq!(at("/api/items"), Some(("api", 3000)));
        assert_eq!(at("/apix"), Some(("web", 8080)));
        assert_eq!(at("/admin/users"), Some(("web", 9000)));
        assert_eq!(route_for(&routes, "/admin").unwrap().port_name, "admin");
    }

    #[test]
    fn production_is_public_unless_it_asks_and_a_branch_may_open_itself() {
        let project: Project = serde_json::from_value(serde_json::json!({
            "apiVersion": "oksa.dev/v1alpha1", "kind": "Project", "metadata": {"name": "shop"},
            "spec": {"domain": "shop.example.com", "productionBranch": "main",
                     "protection": {"allowCIDRs": ["10.0.0.0/8"]}}}))
        .unwrap();
        let branch = |name: &str, protection: serde_json::Value| {
            let mut spec = serde_json::json!({"project": "shop", "branch": name,
                "components": two_components()});
            if !protection.is_null() {
                spec["protection"] = protection;
            }
            release(spec)
        };
        let feature = branch("feature", serde_json::Value::Null);
        assert!(protection(&feature, &project).is_some());
        let main = branch("main", serde_json::Value::Null);
        assert!(protection(&main, &project).is_none());
        let guarded_main = branch("main", serde_json::json!({"allowCIDRs": ["192.0.2.0/24"]}));
        assert_eq!(
            protection(&guarded_main, &project).unwrap().allow_cidrs[0].0,
            "192.0.2.0/24"
        );
        let open = branch("open", serde_json::json!({"public": true}));
        assert!(protection(&open, &project).is_none());
    }

    #[test]
    fn the_edge_is_in_the_path_only_where_it_does_something() {
        assert!(through_edge(false, false, false, false), "asleep");
        assert!(
            through_edge(true, true, false, false),
            "protected, even with no edge"
        );
        assert!(
            through_edge(true, false, true, true),
            "may sleep: counts requests"
        );
        assert!(
            !through_edge(true, false, true, false),
            "no edge to count them"
        );
        assert!(
            !through_edge(true, false, false, true),
            "never sleeps, public"
        );
    }
}
