//! The CRD YAML served to the cluster, generated from the Rust types in `api`.

use kube::CustomResourceExt;

use crate::api::{BranchRelease, Project};

/// Every CRD Oksa serves, as (file name in `crds/`, YAML document).
pub fn documents() -> Vec<(&'static str, String)> {
    vec![
        ("projects.oksa.dev.yaml", to_yaml(&Project::crd())),
        (
            "branchreleases.oksa.dev.yaml",
            to_yaml(&BranchRelease::crd()),
        ),
    ]
}

fn to_yaml(
    crd: &k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
) -> String {
    let yaml = serde_yaml_ng::to_string(crd).expect("a CRD always serializes");
    format!("# Generated from src/api by `oksa crd --write crds`; do not edit.\n{yaml}")
}
