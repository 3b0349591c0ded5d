//! The platform's install-time rules for Projects. Pure.
//!
//! Projects are cluster-scoped and written by platform admins or their GitOps repository, but a
//! Project is also a request for power: a namespace, RoleBindings, a Pod Security level, Ingress
//! annotations, a hole in the network isolation. The policy, set once at install (chart values →
//! a file given to `oksa run --policy`), bounds what any Project may ask for. A Project outside it
//! is refused with the rule in its Ready condition, and nothing is written for it.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::api::{AccessRole, PodSecurityLevel, Project, SubjectKind};

mod lifecycle;
pub use lifecycle::{ExpiryMode, ExpiryPolicy, GitopsMarks, LifecycleBounds};

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct Policy {
    /// Pod Security levels a Project may ask for.
    pub pod_security: Vec<PodSecurityLevel>,
    /// Namespaces no Project may own, besides `default` and `kube-*` (always refused). A name
    /// ending in `*` is a prefix.
    pub reserved_namespaces: Vec<String>,
    /// Every Project namespace must start with this (empty: any name).
    pub namespace_prefix: String,
    /// Roles an access rule may grant.
    pub roles: Vec<AccessRole>,
    /// User and group names an access rule may not name (`*` at the end: a prefix).
    pub forbidden_subjects: Vec<String>,
    /// Whether an access rule may name a ServiceAccount of another namespace.
    pub foreign_service_accounts: bool,
    /// Ingress annotations a Project may set (`*` at the end: a prefix).
    pub ingress_annotations: Vec<String>,
    /// Namespaces a Project may name as its ingress controller's (the NetworkPolicy admits
    /// traffic from there). `*` alone: any.
    pub controller_namespaces: Vec<String>,
    /// What expiry may do on its own.
    pub expiry: ExpiryPolicy,
    /// How far a BranchRelease may stretch its lifecycle past its Project's defaults.
    pub branch_lifecycle: LifecycleBounds,
    /// Declarative tools whose BranchReleases expiry never deletes, besides the built-in ones.
    pub gitops: GitopsMarks,
}

impl Default for Policy {
    fn default() -> Self {
        let strings = |items: &[&str]| items.iter().map(|s| s.to_string()).collect();
        Policy {
            pod_security: vec![PodSecurityLevel::Baseline, PodSecurityLevel::Restricted],
            // What platforms install for themselves: a Project must not be the first to claim it.
            reserved_namespaces: strings(&[
                "oksa-system",
                "cert-manager",
                "monitoring",
                "logging",
                "ingress-nginx",
                "traefik",
                "flux-system",
                "argocd",
                "gatekeeper-system",
                "istio-system",
                "openshift*",
            ]),
            namespace_prefix: String::new(),
            roles: AccessRole::ALL.to_vec(),
            // system:authenticated, system:anonymous, system:masters, system:serviceaccounts…
            forbidden_subjects: strings(&["system:*"]),
            foreign_service_accounts: false,
            ingress_annotations: strings(&[
                "cert-manager.io/*",
                "nginx.ingress.kubernetes.io/proxy-body-size",
                "nginx.ingress.kubernetes.io/proxy-read-timeout",
                "nginx.ingress.kubernetes.io/proxy-send-timeout",
                "nginx.ingress.kubernetes.io/ssl-redirect",
                "nginx.ingress.kubernetes.io/force-ssl-redirect",
                "traefik.ingress.kubernetes.io/router.entrypoints",
                "traefik.ingress.kubernetes.io/router.tls",
            ]),
            controller_namespaces: strings(&["ingress-nginx", "traefik", "kube-system"]),
            expiry: ExpiryPolicy::default(),
            branch_lifecycle: LifecycleBounds::default(),
            gitops: GitopsMarks::default(),
        }
    }
}

/// Why a Project is outside the policy: one rule, named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub message: String,
}

fn matches(pattern: &str, value: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => value.starts_with(prefix),
        None => pattern == value,
    }
}

fn violation(rule: &str, what: String) -> Violation {
    Violation {
        message: format!(
            "{what}, which the operator's policy does not allow ({rule}, set by the platform at install)"
        ),
    }
}

fn level_name(level: PodSecurityLevel) -> &'static str {
    match level {
        PodSecurityLevel::Privileged => "privileged",
        PodSecurityLevel::Baseline => "baseline",
        PodSecurityLevel::Restricted => "restricted",
    }
}

impl Policy {
    /// Reads a policy (YAML) from `origin` (a file's name, for the message); fields it leaves
    /// out keep their defaults.
    pub fn parse(text: &str, origin: &Path) -> Result<Policy, String> {
        let origin = origin.display();
        let policy: Policy = serde_yaml_ng::from_str(text)
            .map_err(|e| format!("the policy {origin} is not valid: {e}"))?;
        match policy.branch_lifecycle.invalid().first() {
            Some(problem) => Err(format!("the policy {origin} is not valid: {problem}")),
            None => Ok(policy),
        }
    }

    /// The first rule the Project breaks, if any.
    pub fn check(&self, project: &Project) -> Result<(), Violation> {
        let spec = &project.spec;
        let level = spec.pod_security.unwrap_or(PodSecurityLevel::Baseline);
        if !self.pod_security.contains(&level) {
            let allowed: Vec<_> = self.pod_security.iter().map(|l| level_name(*l)).collect();
            return Err(violation(
                "policy.podSecurity",
                format!(
                    "podSecurity is {} (allowed: {})",
                    level_name(level),
                    allowed.join(", ")
                ),
            ));
        }
        let namespace = project.namespace_name();
        if let Some(reserved) = self
            .reserved_namespaces
            .iter()
            .find(|p| matches(p, &namespace))
        {
            return Err(violation(
                "policy.reservedNamespaces",
                format!("namespace {namespace} is reserved for the platform ({reserved})"),
            ));
        }
        if !namespace.starts_with(&self.namespace_prefix) {
            return Err(violation(
                "policy.namespacePrefix",
                format!(
                    "namespace {namespace} does not start with {:?}",
                    self.namespace_prefix
                ),
            ));
        }
        for rule in &spec.access {
            if !self.roles.contains(&rule.role) {
                return Err(violation(
                    "policy.roles",
                    format!(
                        "access grants {} to {}",
                        rule.role.cluster_role(),
                        rule.name
                    ),
                ));
            }
            match rule.kind {
                SubjectKind::User | SubjectKind::Group => {
                    if let Some(pattern) = self
                        .forbidden_subjects
                        .iter()
                        .find(|p| matches(p, &rule.name))
                    {
                        return Err(violation(
                            "policy.forbiddenSubjects",
                            format!("access names {} (matches {pattern})", rule.name),
                        ));
                    }
                }
                SubjectKind::ServiceAccount => {
                    let other = rule.namespace.as_ref().filter(|n| **n != namespace);
                    if let (Some(other), false) = (other, self.foreign_service_accounts) {
                        return Err(violation(
                            "policy.foreignServiceAccounts",
                            format!(
                                "access names ServiceAccount {} of namespace {other}, another namespace",
                                rule.name
                            ),
                        ));
                    }
                }
            }
        }
        if let Some(ingress) = &spec.ingress {
            for key in ingress.annotations.keys() {
                if !self.ingress_annotations.iter().any(|p| matches(p, key)) {
                    return Err(violation(
                        "policy.ingressAnnotations",
                        format!("ingress sets annotation {key}"),
                    ));
                }
            }
        }
        if let Some(controller) = spec.controller_namespace()
            && !self
                .controller_namespaces
                .iter()
                .any(|p| p == "*" || matches(p, controller))
        {
            let field = if spec.gateway.is_some() {
                "gateway"
            } else {
                "ingress"
            };
            return Err(violation(
                "policy.controllerNamespaces",
                format!(
                    "{field}.controllerNamespace is {controller}, which would open the project's pods to it"
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fixtures::project_from_yaml;

    fn refused(spec: &str) -> String {
        let project = project_from_yaml(&format!("name: shop\nspec: {{domain: e.com, {spec}}}"));
        Policy::default().check(&project).unwrap_err().message
    }

    #[test]
    fn an_ordinary_project_passes() {
        let project = project_from_yaml(
            r#"
name: shop
spec:
  domain: shop.example.com
  podSecurity: restricted
  access:
  - {kind: Group, name: shop-devs, role: edit}
  - {kind: ServiceAccount, name: ci, role: edit}
  ingress: {controllerNamespace: ingress-nginx, annotations: {cert-manager.io/duration: 2160h}}
"#,
        );
        assert_eq!(Policy::default().check(&project), Ok(()));
    }

    #[test]
    fn each_rule_names_itself() {
        assert!(refused("podSecurity: privileged").contains("policy.podSecurity"));
        assert!(refused("namespace: cert-manager").contains("reserved for the platform"));
        assert!(
            refused("access: [{kind: Group, name: 'system:authenticated', role: admin}]")
                .contains("system:authenticated")
        );
        assert!(
            refused("access: [{kind: ServiceAccount, name: x, namespace: other, role: view}]")
                .contains("policy.foreignServiceAccounts")
        );
        assert!(
            refused(
                "ingress: {annotations: {nginx.ingress.kubernetes.io/server-snippet: 'return 200;'}}"
            )
            .contains("server-snippet")
        );
        assert!(
            refused("ingress: {controllerNamespace: other-team}")
                .contains("policy.controllerNamespaces")
        );
    }

    #[test]
    fn a_file_changes_only_what_it_names() {
        let policy: Policy =
            serde_yaml_ng::from_str("podSecurity: [privileged]\nnamespacePrefix: team-").unwrap();
        assert_eq!(policy.pod_security, [PodSecurityLevel::Privileged]);
        assert_eq!(policy.roles, Policy::default().roles);
        let project =
            project_from_yaml("name: shop\nspec: {domain: e.com, podSecurity: privileged}");
        assert!(
            policy
                .check(&project)
                .unwrap_err()
                .message
                .contains("namespacePrefix")
        );
        assert!(serde_yaml_ng::from_str::<Policy>("podSecurty: [baseline]").is_err());
    }
}
