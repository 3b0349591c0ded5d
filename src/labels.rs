//! The labels and annotations Oksa puts on everything it creates, and its field manager name.

use std::collections::BTreeMap;

/// Server-side apply field manager of every write Oksa makes.
pub const FIELD_MANAGER: &str = "oksa";

pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY_VALUE: &str = "oksa";
/// Selects every object Oksa manages; its watches are restricted to it.
pub const MANAGED_SELECTOR: &str = "app.kubernetes.io/managed-by=oksa";

/// Marks an EndpointSlice whose endpoints Oksa writes itself (the waker's): the EndpointSlice
/// controller leaves it alone.
pub const ENDPOINT_SLICE_MANAGER: &str = "endpointslice.kubernetes.io/managed-by";
pub const ENDPOINT_SLICE_MANAGER_VALUE: &str = "oksa.dev";
/// Selects the EndpointSlices Oksa writes, and not those the EndpointSlice controller makes for
/// a branch's Services: it copies a Service's labels, Oksa's `managed-by` included, onto them.
pub const OWN_ENDPOINT_SLICES_SELECTOR: &str =
    "app.kubernetes.io/managed-by=oksa,endpointslice.kubernetes.io/managed-by=oksa.dev";

pub const PROJECT: &str = "oksa.dev/project";
pub const RELEASE: &str = "oksa.dev/release";
pub const COMPONENT: &str = "oksa.dev/component";
pub const VOLUME: &str = "oksa.dev/volume";
/// Marks a claim that outlives its BranchRelease.
pub const RETAIN: &str = "oksa.dev/retain";
/// Marks a claim that is no longer any BranchRelease's (its volume left the spec, or its
/// retained BranchRelease was deleted): kept with its data until a person deletes it.
pub const DETACHED: &str = "oksa.dev/detached";
/// On a BranchRelease with volumes: Oksa reads the final spec before its children go, so that a
/// `retain: true` volume keeps its data however late the operator gets to the deletion.
pub const VOLUMES_FINALIZER: &str = "oksa.dev/volumes";
/// On a Project: its namespace is not deleted while it holds retained or detached volumes.
pub const PROJECT_FINALIZER: &str = "oksa.dev/retained-volumes";
/// Set, in the operator's memory only, on the stand-in of an object it could not read (see
/// `watch::lenient`): never written to the cluster.
pub const UNREADABLE: &str = "oksa.dev/unreadable";
/// On a namespace Oksa created for a Project: that Project's UID, the proof that Oksa may act on
/// it (it never adopts a namespace it did not create for that very Project).
pub const PROJECT_UID: &str = "oksa.dev/project-uid";
/// The raw git branch (any characters), as an annotation.
pub const BRANCH_ANNOTATION: &str = "oksa.dev/branch";

/// Labels of every object of a project.
pub fn project_labels(project: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY.to_string(), MANAGED_BY_VALUE.to_string()),
        (PROJECT.to_string(), project.to_string()),
    ])
}

/// Labels of every object of one branch.
pub fn release_labels(project: &str, release: &str) -> BTreeMap<String, String> {
    let mut labels = project_labels(project);
    labels.insert(RELEASE.to_string(), release.to_string());
    labels.insert(
        "app.kubernetes.io/instance".to_string(),
        release.to_string(),
    );
    labels
}

/// The (immutable) pod selector of a component's Deployment and Service.
pub fn component_selector(release: &str, component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (RELEASE.to_string(), release.to_string()),
        (COMPONENT.to_string(), component.to_string()),
    ])
}
