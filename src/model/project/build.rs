//! Project → the objects of its namespace. Pure: no API calls.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    LimitRange, LimitRangeItem, LimitRangeSpec, Namespace, ResourceQuota, ResourceQuotaSpec,
};
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicySpec,
};
use k8s_openapi::api::rbac::v1::{RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};

use crate::api::{AccessRole, PodSecurityLevel, Project, SubjectKind};
use crate::labels;

pub const QUOTA_NAME: &str = "oksa-quota";
pub const LIMIT_RANGE_NAME: &str = "oksa-defaults";
pub const NETWORK_POLICY_NAME: &str = "oksa-isolation";

/// Everything a Project declares in Kubernetes.
#[derive(Debug, Clone)]
pub struct ProjectObjects {
    pub namespace: Namespace,
    /// One RoleBinding per role that has subjects, named `oksa-<role>`.
    pub role_bindings: Vec<RoleBinding>,
    pub quota: Option<ResourceQuota>,
    pub limit_range: Option<LimitRange>,
    pub network_policy: NetworkPolicy,
}

pub fn role_binding_name(role: AccessRole) -> String {
    format!("oksa-{}", role.cluster_role())
}

pub fn build(project: &Project, owner: OwnerReference) -> ProjectObjects {
    let name = kube::ResourceExt::name_any(project);
    let namespace = project.namespace_name();
    // Every object carries the Project as its controller: what proves it is Oksa's for this
    // Project (see `apply::Owner`). A cluster-scoped owner of namespaced objects is allowed.
    let meta = |object_name: &str| ObjectMeta {
        name: Some(object_name.to_string()),
        namespace: Some(namespace.clone()),
        labels: Some(labels::project_labels(&name)),
        owner_references: Some(vec![owner.clone()]),
        ..ObjectMeta::default()
    };

    let mut namespace_labels = labels::project_labels(&name);
    let level = match project
        .spec
        .pod_security
        .unwrap_or(PodSecurityLevel::Baseline)
    {
        PodSecurityLevel::Privileged => "privileged",
        PodSecurityLevel::Baseline => "baseline",
        PodSecurityLevel::Restricted => "restricted",
    };
    for (key, value) in [
        ("enforce", level),
        ("enforce-version", "latest"),
        ("warn", "restricted"),
        ("warn-version", "latest"),
    ] {
        namespace_labels.insert(
            format!("pod-security.kubernetes.io/{key}"),
            value.to_string(),
        );
    }
    let namespace_object = Namespace {
        metadata: ObjectMeta {
            name: Some(namespace.clone()),
            labels: Some(namespace_labels),
            // The Project's UID proves, later, that Oksa created this namespace for this very
            // Project. No owner reference: the garbage collector must never delete a namespace
            // (and the retained data in it) on its own, as a foreground delete of the Project
            // would; the Project's finalizer deletes it once nothing kept is left in it.
            annotations: Some(std::collections::BTreeMap::from([(
                labels::PROJECT_UID.to_string(),
                owner.uid.clone(),
            )])),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };

    let role_bindings = AccessRole::ALL
        .into_iter()
        .filter_map(|role| {
            let subjects: Vec<Subject> = project
                .spec
                .access
                .iter()
                .filter(|rule| rule.role == role)
                .map(|rule| match rule.kind {
                    SubjectKind::ServiceAccount => Subject {
                        kind: "ServiceAccount".into(),
                        name: rule.name.clone(),
                        namespace: Some(
                            rule.namespace.clone().unwrap_or_else(|| namespace.clone()),
                        ),
                        api_group: None,
                    },
                    SubjectKind::User | SubjectKind::Group => Subject {
                        kind: if rule.kind == SubjectKind::User {
                            "User"
                        } else {
                            "Group"
                        }
                        .into(),
                        name: rule.name.clone(),
                        namespace: None,
                        api_group: Some("rbac.authorization.k8s.io".into()),
                    },
                })
                .collect();
            (!subjects.is_empty()).then(|| RoleBinding {
                metadata: meta(&role_binding_name(role)),
                role_ref: RoleRef {
                    api_group: Some("rbac.authorization.k8s.io".into()),
                    kind: "ClusterRole".into(),
                    name: role.cluster_role().into(),
                },
                subjects: Some(subjects),
            })
        })
        .collect();

    let quota = project.spec.quota.as_ref().and_then(|quota| {
        let mut hard = BTreeMap::new();
        let mut set = |key: &str, value: Option<String>| {
            if let Some(value) = value {
                hard.insert(key.to_string(), Quantity(value));
            }
        };
        set("requests.cpu", quota.cpu.clone());
        set("requests.memory", quota.memory.clone());
        set("requests.storage", quota.storage.clone());
        // `maxBranches` is not a quota key (`count/branchreleases.oksa.dev`): Oksa enforces it
        // (see branch_release::validate). A quota that counts a custom resource refuses every
        // create of that resource until the controller-manager's quota monitor has caught up
        // with the CRD, which after a fresh install takes up to its full resync (minutes).
        (!hard.is_empty()).then(|| ResourceQuota {
            metadata: meta(QUOTA_NAME),
            spec: Some(ResourceQuotaSpec {
                hard: Some(hard),
                ..ResourceQuotaSpec::default()
            }),
            ..ResourceQuota::default()
        })
    });

    let limit_range = limit_range(project).map(|item| LimitRange {
        metadata: meta(LIMIT_RANGE_NAME),
        spec: Some(LimitRangeSpec { limits: vec![item] }),
    });

    let mut allowed = vec![NetworkPolicyPeer {
        pod_selector: Some(LabelSelector::default()),
        ..NetworkPolicyPeer::default()
    }];
    if let Some(controller) = project.spec.controller_namespace().map(str::to_string) {
        allowed.push(NetworkPolicyPeer {
            namespace_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([(
                    "kubernetes.io/metadata.name".to_string(),
                    controller,
                )])),
                ..LabelSelector::default()
            }),
            ..NetworkPolicyPeer::default()
        });
    }
    let network_policy = NetworkPolicy {
        metadata: meta(NETWORK_POLICY_NAME),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector::default()),
            policy_types: Some(vec!["Ingress".into()]),
            ingress: Some(vec![NetworkPolicyIngressRule {
                from: Some(allowed),
                ports: None,
            }]),
            egress: None,
        }),
    };

    ProjectObjects {
        namespace: namespace_object,
        role_bindings,
        quota,
        limit_range,
        network_policy,
    }
}

/// Container defaults of the namespace. With a CPU or memory quota every pod must request CPU and
/// memory or the API server refuses it, so a quota without explicit defaults still gets modest
/// ones (100m CPU, 128Mi memory) rather than pods that can never start.
fn limit_range(project: &Project) -> Option<LimitRangeItem> {
    let defaults = project
        .spec
        .defaults
        .as_ref()
        .and_then(|d| d.resources.clone());
    let quota_needs_requests = project
        .spec
        .quota
        .as_ref()
        .is_some_and(|q| q.cpu.is_some() || q.memory.is_some());
    if defaults.is_none() && !quota_needs_requests {
        return None;
    }
    let defaults = defaults.unwrap_or_default();
    let default_request = defaults.requests.clone().or_else(|| {
        Some(BTreeMap::from([
            ("cpu".to_string(), Quantity("100m".into())),
            ("memory".to_string(), Quantity("128Mi".into())),
        ]))
    });
    Some(LimitRangeItem {
        type_: "Container".into(),
        default: defaults.limits,
        default_request,
        ..LimitRangeItem::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fixtures::project_from_yaml;

    fn owner() -> OwnerReference {
        OwnerReference {
            api_version: "oksa.dev/v1alpha1".into(),
            kind: "Project".into(),
            name: "shop".into(),
            uid: "u-1".into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }
    }

    #[test]
    fn a_minimal_project_gets_an_isolated_owned_namespace() {
        let project = project_from_yaml("name: shop\nspec: {domain: shop.example.com}");
        let objects = build(&project, owner());
        let ns = &objects.namespace;
        assert_eq!(ns.metadata.name.as_deref(), Some("shop"));
        assert_eq!(ns.metadata.owner_references, None);
        assert_eq!(
            ns.metadata.annotations.as_ref().unwrap()[labels::PROJECT_UID],
            "u-1"
        );
        let ns_labels = ns.metadata.labels.as_ref().unwrap();
        assert_eq!(ns_labels["pod-security.kubernetes.io/enforce"], "baseline");
        assert_eq!(ns_labels[labels::PROJECT], "shop");
        assert!(objects.role_bindings.is_empty());
        assert!(objects.quota.is_none());
        assert!(objects.limit_range.is_none());
        let policy = objects.network_policy.spec.unwrap();
        assert_eq!(policy.ingress.unwrap()[0].from.as_ref().unwrap().len(), 1);
    }

    #[test]
    fn access_rules_become_one_binding_per_role() {
        let project = project_from_yaml(
            r#"
name: shop
spec:
  domain: shop.example.com
  namespace: shop-team
  access:
  - {kind: Group, name: shop-devs, role: edit}
  - {kind: User, name: alice, role: admin}
  - {kind: ServiceAccount, name: ci, role: edit}
  - {kind: ServiceAccount, name: argo, namespace: argocd, role: edit}
"#,
        );
        let objects = build(&project, owner());
        let names: Vec<_> = objects
            .role_bindings
            .iter()
            .map(|b| b.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(names, ["oksa-edit", "oksa-admin"]);
        let edit = &objects.role_bindings[0];
        assert_eq!(edit.role_ref.name, "edit");
        assert_eq!(edit.metadata.namespace.as_deref(), Some("shop-team"));
        let subjects = edit.subjects.as_ref().unwrap();
        assert_eq!(subjects.len(), 3);
        assert_eq!(subjects[1].namespace.as_deref(), Some("shop-team"));
        assert_eq!(subjects[2].namespace.as_deref(), Some("argocd"));
        assert_eq!(
            subjects[0].api_group.as_deref(),
            Some("rbac.authorization.k8s.io")
        );
    }

    #[test]
    fn quota_and_defaults_become_a_resource_quota_and_limit_range() {
        let project = project_from_yaml(
            r#"
name: shop
spec:
  domain: shop.example.com
  quota: {cpu: "8", memory: 16Gi, storage: 100Gi, maxBranches: 25}
  ingress: {controllerNamespace: ingress-nginx}
"#,
        );
        let objects = build(&project, owner());
        let hard = objects.quota.unwrap().spec.unwrap().hard.unwrap();
        assert_eq!(hard["requests.cpu"].0, "8");
        assert!(
            !hard.keys().any(|k| k.starts_with("count/")),
            "branches are counted by Oksa, not by the quota: {hard:?}"
        );
        let limits = objects.limit_range.unwrap().spec.unwrap().limits;
        assert_eq!(limits[0].default_request.as_ref().unwrap()["cpu"].0, "100m");
        let from = objects.network_policy.spec.unwrap().ingress.unwrap()[0]
            .from
            .clone()
            .unwrap();
        assert_eq!(from.len(), 2);
    }
}
