//! The unit of work: one branch with 2 components (each a Deployment and a Service), 1 Ingress
//! and 1 volume. The same six objects for Oksa, helm and the limit: they come from Oksa's own
//! builder, so all three create exactly the same thing.

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use serde_json::json;

use oksa::api::{BranchRelease, BranchReleaseSpec, Project};
use oksa::model::branch_release::build::{self, ReleaseObjects};

pub const CHILDREN_PER_BRANCH: usize = 6;

/// The image of the `api` component when a branch is created, and the one a redeploy brings.
pub const API_IMAGE: &str = "shop/api:1";
pub const REDEPLOYED_API_IMAGE: &str = "shop/api:2";

pub fn branch_spec(project: &str, branch: &str) -> BranchReleaseSpec {
    branch_spec_with(project, branch, API_IMAGE)
}

/// The branch's spec with `api_image` as the `api` component's image: what a CI job that built
/// a new commit applies.
pub fn branch_spec_with(project: &str, branch: &str, api_image: &str) -> BranchReleaseSpec {
    serde_json::from_value(json!({
        "project": project,
        "branch": branch,
        "commit": "bench",
        "components": [
            {"name": "web", "containers": [{"name": "web", "image": "nginx:1.27", "ports": [{"containerPort": 8080}],
                "volumeMounts": [{"volume": "data", "mountPath": "/data"}]}]},
            {"name": "api", "containers": [{"name": "api", "image": api_image, "ports": [{"containerPort": 9090}]}]},
        ],
        "routes": [{"path": "/", "component": "web"}, {"path": "/api", "component": "api"}],
        "volumes": [{"name": "data", "size": "1Gi"}],
    }))
    .expect("a valid workload")
}

pub fn project(name: &str) -> Project {
    serde_json::from_value(json!({
        "apiVersion": "oksa.dev/v1alpha1", "kind": "Project",
        "metadata": {"name": name, "labels": {"oksa.dev/bench": "true"}},
        "spec": {"domain": format!("{name}.bench.test")},
    }))
    .expect("a valid project")
}

/// The six children of a branch, without owner (for the limit and helm phases).
pub fn children(namespace: &str, branch: &str) -> ReleaseObjects {
    children_with(namespace, branch, API_IMAGE)
}

/// The six children of a branch whose `api` component runs `api_image`.
pub fn children_with(namespace: &str, branch: &str, api_image: &str) -> ReleaseObjects {
    let project = project("bench");
    let mut release = BranchRelease::new("bench", branch_spec_with("bench", branch, api_image));
    release.metadata.namespace = Some(namespace.to_string());
    let name = oksa::naming::release_name(branch);
    let owner = OwnerReference::default();
    let mut objects = build::build(&build::Release {
        branch_release: &release,
        project: &project,
        name,
        owner,
        rendering: build::Rendering::default(),
    });
    for meta in objects
        .deployments
        .iter_mut()
        .map(|o| &mut o.metadata)
        .chain(objects.services.iter_mut().map(|o| &mut o.metadata))
        .chain(objects.ingress.iter_mut().map(|o| &mut o.metadata))
        .chain(objects.claims.iter_mut().map(|o| &mut o.metadata))
    {
        meta.owner_references = None;
    }
    objects
}

/// A namespace for a phase that runs without Oksa (helm, the limit). Returns the namespaces API
/// to delete it with when the phase is done.
pub async fn create_namespace(
    client: &kube::Client,
    name: &str,
) -> Result<kube::Api<Namespace>, String> {
    let namespaces = kube::Api::<Namespace>::all(client.clone());
    let object: Namespace =
        serde_json::from_value(json!({"metadata": {"name": name}})).expect("a namespace");
    namespaces
        .create(&kube::api::PostParams::default(), &object)
        .await
        .map_err(|e| e.to_string())?;
    Ok(namespaces)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_branch_is_six_objects() {
        let objects = children("ns", "b-1");
        let count = objects.deployments.len()
            + objects.services.len()
            + objects.ingress.iter().count()
            + objects.claims.len();
        assert_eq!(count, CHILDREN_PER_BRANCH);
        assert!(objects.deployments[0].metadata.owner_references.is_none());
    }
}
