//! Unit-test helpers: resources from short YAML, the way a user writes them.

use serde_json::Value;

use crate::api::{BranchRelease, Project};

/// A Project from YAML holding `name`, `spec` and optionally `uid`/`status`.
pub fn project_from_yaml(yaml: &str) -> Project {
    let mut value: Value = serde_yaml_ng::from_str(yaml).expect("fixture YAML");
    let object = value.as_object_mut().unwrap();
    let metadata = serde_json::json!({
        "name": object.remove("name").unwrap_or("shop".into()),
        "uid": object.remove("uid").unwrap_or("uid-project".into()),
        "generation": 1,
    });
    object.insert("metadata".into(), metadata);
    object.insert("apiVersion".into(), "oksa.dev/v1alpha1".into());
    object.insert("kind".into(), "Project".into());
    serde_json::from_value(value).expect("fixture is a Project")
}

/// A BranchRelease from YAML holding `name`, `namespace` and `spec`.
pub fn release_from_yaml(yaml: &str) -> BranchRelease {
    let mut value: Value = serde_yaml_ng::from_str(yaml).expect("fixture YAML");
    let object = value.as_object_mut().unwrap();
    let metadata = serde_json::json!({
        "name": object.remove("name").unwrap_or("main".into()),
        "namespace": object.remove("namespace").unwrap_or("shop".into()),
        "uid": "uid-release",
        "generation": object.remove("generation").unwrap_or(1.into()),
    });
    object.insert("metadata".into(), metadata);
    object.insert("apiVersion".into(), "oksa.dev/v1alpha1".into());
    object.insert("kind".into(), "BranchRelease".into());
    serde_json::from_value(value).expect("fixture is a BranchRelease")
}
