//! Checks that decide whether Oksa may act for a Project at all. Pure.

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;

use crate::api::Project;
use crate::naming::host_in_domain;

/// Namespaces no Project may ever have, whoever created them.
const SYSTEM_NAMESPACES: [&str; 4] = ["default", "kube-system", "kube-public", "kube-node-lease"];

/// Why Oksa will not touch a Project's namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub reason: &'static str,
    pub message: String,
}

/// What Oksa may do with the namespace.
#[derive(Debug, PartialEq, Eq)]
pub enum NamespaceVerdict {
    /// Absent, or created by Oksa for this very Project: apply.
    Ours,
    /// Ours, but being deleted (the Project was re-created in the meantime): wait.
    Terminating,
    Refused(Refusal),
}

/// Oksa never adopts a namespace it did not create for this Project: the proof is this
/// Project's UID in the namespace's `oksa.dev/project-uid` annotation (an owner reference, for
/// namespaces of an older Oksa), which cannot be matched by another Project of the same name (a
/// re-created Project has a new UID).
pub fn check_namespace(project: &Project, existing: Option<&Namespace>) -> NamespaceVerdict {
    let name = project.namespace_name();
    if SYSTEM_NAMESPACES.contains(&name.as_str()) || name.starts_with("kube-") {
        return NamespaceVerdict::Refused(Refusal {
            reason: "NamespaceReserved",
            message: format!(
                "namespace {name} is reserved for the cluster; choose another spec.namespace"
            ),
        });
    }
    let Some(existing) = existing else {
        return NamespaceVerdict::Ours;
    };
    if !owned_by(project, &existing.metadata) {
        let owner = existing
            .labels()
            .get(crate::labels::PROJECT)
            .filter(|_| {
                existing
                    .annotations()
                    .contains_key(crate::labels::PROJECT_UID)
            })
            .cloned()
            .or_else(|| {
                existing
                    .owner_references()
                    .iter()
                    .find(|o| o.kind == "Project")
                    .map(|o| o.name.clone())
            })
            .map(|name| format!(" (it belongs to Project {name})"))
            .unwrap_or_default();
        return NamespaceVerdict::Refused(Refusal {
            reason: "NamespaceConflict",
            message: format!(
                "namespace {name} already exists and was not created by Oksa for this Project{owner}; \
                 Oksa never adopts an existing namespace: choose another spec.namespace or delete the namespace"
            ),
        });
    }
    if existing.metadata.deletion_timestamp.is_some() {
        return NamespaceVerdict::Terminating;
    }
    NamespaceVerdict::Ours
}

/// True when the object carries an owner reference to this very Project (its UID).
pub fn owned_by(project: &Project, metadata: &ObjectMeta) -> bool {
    let uid = project.uid().unwrap_or_default();
    let annotated = metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(crate::labels::PROJECT_UID))
        .is_some_and(|u| *u == uid);
    // Namespaces created by an older Oksa carry an owner reference instead.
    let referenced = metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.kind == "Project" && o.uid == uid);
    !uid.is_empty() && (annotated || referenced)
}

/// Two Projects must not share hosts: a domain equal to, inside, or around an older Project's
/// domain would let one team serve the other's hosts.
pub fn check_domain<'a>(
    project: &Project,
    others: impl IntoIterator<Item = &'a Project>,
) -> Option<Refusal> {
    let domain = &project.spec.domain;
    let mine = (project.creation_timestamp(), project.name_any());
    others
        .into_iter()
        .filter(|other| other.uid() != project.uid())
        .filter(|other| (other.creation_timestamp(), other.name_any()) < mine)
        .find(|other| host_in_domain(domain, &other.spec.domain) || host_in_domain(&other.spec.domain, domain))
        .map(|other| Refusal {
            reason: "DomainConflict",
            message: format!(
                "domain {domain} overlaps domain {} of Project {}; each project needs a domain of its own",
                other.spec.domain,
                other.name_any()
            ),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fixtures::project_from_yaml;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

    fn namespace_owned_by(uid: Option<&str>) -> Namespace {
        Namespace {
            metadata: ObjectMeta {
                name: Some("shop".into()),
                owner_references: uid.map(|uid| {
                    vec![OwnerReference {
                        kind: "Project".into(),
                        name: "shop".into(),
                        uid: uid.into(),
                        ..Default::default()
                    }]
                }),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn system_namespaces_are_refused() {
        let project =
            project_from_yaml("name: evil\nspec: {domain: e.com, namespace: kube-system}");
        assert!(
            matches!(check_namespace(&project, None), NamespaceVerdict::Refused(r) if r.reason == "NamespaceReserved")
        );
    }

    #[test]
    fn only_a_namespace_owned_by_this_project_uid_is_ours() {
        let project = project_from_yaml("name: shop\nuid: u-1\nspec: {domain: e.com}");
        assert_eq!(check_namespace(&project, None), NamespaceVerdict::Ours);
        assert_eq!(
            check_namespace(&project, Some(&namespace_owned_by(Some("u-1")))),
            NamespaceVerdict::Ours
        );
        let foreign = check_namespace(&project, Some(&namespace_owned_by(None)));
        assert!(matches!(foreign, NamespaceVerdict::Refused(r) if r.reason == "NamespaceConflict"));
        let other_project = check_namespace(&project, Some(&namespace_owned_by(Some("u-2"))));
        assert!(
            matches!(other_project, NamespaceVerdict::Refused(r) if r.message.contains("belongs to Project shop"))
        );
    }

    #[test]
    fn overlapping_domains_are_refused_for_the_younger_project() {
        let older = project_from_yaml("name: a\nuid: u-a\nspec: {domain: example.com}");
        let younger = project_from_yaml("name: b\nuid: u-b\nspec: {domain: shop.example.com}");
        let unrelated = project_from_yaml("name: c\nuid: u-c\nspec: {domain: example.org}");
        // Same creation time in fixtures: the name breaks the tie.
        assert!(check_domain(&younger, [&older, &unrelated]).is_some());
        assert!(check_domain(&older, [&younger, &unrelated]).is_none());
        assert!(check_domain(&unrelated, [&older, &younger]).is_none());
    }
}
