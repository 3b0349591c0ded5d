use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// One application. Oksa gives it a namespace with access for its team, a resource budget,
/// network isolation and defaults for its branches; each branch is a BranchRelease in that
/// namespace.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "oksa.dev",
    version = "v1alpha1",
    kind = "Project",
    status = "ProjectStatus",
    shortname = "proj",
    category = "oksa",
    printcolumn = r#"{"name":"Namespace","type":"string","jsonPath":".status.namespace"}"#,
    printcolumn = r#"{"name":"Domain","type":"string","jsonPath":".spec.domain"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.branches.summary","description":"ready/total branches"}"#,
    printcolumn = r#"{"name":"Status","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("has(self.namespace) == has(oldSelf.namespace)")
    .message("namespace is immutable: a Project keeps the namespace it was created with"))]
#[x_kube(validation = kube::core::Rule::new("!(has(self.ingress) && has(self.gateway))")
    .message("choose one way to route the branches: ingress or gateway, not both"))]
pub struct ProjectSpec {
    /// Namespace Oksa creates for this project (default: the Project's name). Oksa never adopts
    /// a namespace that already exists and was not created by it for this Project. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    #[x_kube(validation = kube::core::Rule::new("self == oldSelf")
        .message("namespace is immutable: a Project keeps the namespace it was created with"))]
    pub namespace: Option<String>,

    /// DNS domain of the project's branches: branch `feature/login` is served at
    /// `<release-name>.<domain>`. Every host of every branch must be inside this domain.
    #[schemars(
        length(min = 1, max = 200),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub domain: String,

    /// Git branch that is production: its BranchRelease is also served at the bare `domain`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub production_branch: Option<String>,

    /// How branches are exposed: ingress class, TLS and extra annotations for every Ingress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<ProjectIngress>,

    /// Route the branches through a Gateway API Gateway instead: each branch gets an HTTPRoute
    /// attached to this Gateway, which terminates TLS. Excludes `ingress`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<ProjectGateway>,

    /// Who may work in the project's namespace. Each rule becomes a RoleBinding subject for the
    /// built-in `view`, `edit` or `admin` ClusterRole.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub access: Vec<AccessRule>,

    /// Resource budget of the whole project (all branches together), enforced by a ResourceQuota.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<ProjectQuota>,

    /// Defaults for the project's branches, resolved at reconcile time (never written back).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub defaults: Option<BranchDefaults>,

    /// Pod Security Standard enforced in the namespace: `privileged`, `baseline` (default) or
    /// `restricted`. Oksa also warns on anything below `restricted`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_security: Option<PodSecurityLevel>,

    /// Who may open the branches' URLs (basic auth, networks that skip it, tokens for CI):
    /// every branch but production, unless a BranchRelease sets its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protection: Option<crate::api::Protection>,

    /// Volumes a new branch starts with as copies of a reference branch's (its database, its
    /// files), cloned once when the branch's volume is created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_data: Option<crate::api::ReferenceData>,

    /// The project's git forge: branches deleted and pull requests closed there take their
    /// environments with them, and each branch's state is reported back (commit status, one
    /// pull-request comment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forge: Option<crate::api::Forge>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PodSecurityLevel {
    Privileged,
    Baseline,
    Restricted,
}

/// Ingress settings shared by all branches of a project.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new(
    "[has(self.tlsSecretName), has(self.clusterIssuer), has(self.issuer)].filter(x, x).size() <= 1"
).message("choose at most one of tlsSecretName, clusterIssuer and issuer"))]
pub struct ProjectIngress {
    /// IngressClass of every branch's Ingress (default: the cluster's default class).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub class_name: Option<String>,

    /// Secret in the project's namespace holding a certificate for `*.<domain>`; every branch
    /// serves TLS with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub tls_secret_name: Option<String>,

    /// cert-manager ClusterIssuer that issues a certificate for each branch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub cluster_issuer: Option<String>,

    /// cert-manager Issuer (in the project's namespace) that issues a certificate for each branch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub issuer: Option<String>,

    /// Extra annotations on every Ingress (for example the ingress controller's settings).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,

    /// Namespace of the ingress controller. When set, the project's NetworkPolicy admits traffic
    /// from it; otherwise only pods of the project's own namespace can reach its branches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63))]
    pub controller_namespace: Option<String>,
}

/// The Gateway (Gateway API) that routes a project's branches. The platform runs it and decides,
/// with its listeners' `allowedRoutes`, which namespaces may attach routes to it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProjectGateway {
    /// Name of the Gateway.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub name: String,

    /// Namespace of the Gateway (default: the project's namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub namespace: Option<String>,

    /// One listener of the Gateway to attach to (default: every listener that accepts the
    /// routes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub section_name: Option<String>,

    /// The Gateway serves these hosts over HTTPS (its listener holds the certificate): the
    /// branches' URLs are `https://`.
    #[serde(default)]
    pub https: bool,

    /// Namespace of the Gateway's proxy pods. When set, the project's NetworkPolicy admits
    /// traffic from it; otherwise only pods of the project's own namespace can reach its
    /// branches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63))]
    pub controller_namespace: Option<String>,
}

impl ProjectSpec {
    /// The namespace of whatever routes traffic to the branches (ingress controller or Gateway
    /// proxy), when the Project names it.
    pub fn controller_namespace(&self) -> Option<&str> {
        self.ingress
            .as_ref()
            .and_then(|i| i.controller_namespace.as_deref())
            .or_else(|| {
                self.gateway
                    .as_ref()
                    .and_then(|g| g.controller_namespace.as_deref())
            })
    }
}

/// One subject that gets a role in the project's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccessRule {
    /// Kind of subject: `User`, `Group` or `ServiceAccount`.
    pub kind: SubjectKind,
    /// Name of the user, group or ServiceAccount.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// For a ServiceAccount: its namespace (default: the project's namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63))]
    pub namespace: Option<String>,
    /// Built-in ClusterRole granted in the namespace: `view`, `edit` or `admin`.
    pub role: AccessRole,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum SubjectKind {
    User,
    Group,
    ServiceAccount,
}

#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum AccessRole {
    View,
    Edit,
    Admin,
}

impl AccessRole {
    pub const ALL: [AccessRole; 3] = [AccessRole::View, AccessRole::Edit, AccessRole::Admin];

    /// Name of the built-in ClusterRole.
    pub fn cluster_role(self) -> &'static str {
        match self {
            AccessRole::View => "view",
            AccessRole::Edit => "edit",
            AccessRole::Admin => "admin",
        }
    }
}

/// Budget of a project, for all its branches together.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProjectQuota {
    /// Total CPU requests (ResourceQuota `requests.cpu`), e.g. `8` or `8000m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+(\.[0-9]+)?m?$"))]
    pub cpu: Option<String>,
    /// Total memory requests (ResourceQuota `requests.memory`), e.g. `16Gi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+(\.[0-9]+)?([KMGTPE]i?|k)?$"))]
    pub memory: Option<String>,
    /// Total requested volume storage (ResourceQuota `requests.storage`), e.g. `100Gi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+(\.[0-9]+)?([KMGTPE]i?|k)?$"))]
    pub storage: Option<String>,
    /// Most BranchReleases the project may have at once. Enforced by Oksa: the oldest branches
    /// are deployed, any further one stays `Pending` (reason `BranchLimitReached`) until a branch
    /// is deleted or the limit raised.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 10000))]
    pub max_branches: Option<i32>,
}

/// Defaults applied to every branch of the project where the branch does not say otherwise.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BranchDefaults {
    /// Resources of a container that declares none. Also the LimitRange default of the
    /// namespace, so that pods pass the ResourceQuota.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// StorageClass of a volume that names none, when it is created (an existing volume keeps
    /// its class).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub storage_class_name: Option<String>,
    /// Secrets (in the project's namespace) used to pull every branch's images.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20))]
    pub image_pull_secrets: Vec<String>,

    /// When branches sleep and expire; each BranchRelease may override any field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<crate::api::Lifecycle>,
}

/// Observed state of a Project, written by Oksa.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProjectStatus {
    /// Generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Namespace of the project, once Oksa owns it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// `Ready`: the namespace and everything in it match the spec. A refused namespace or
    /// domain says why here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// How many of the project's branches there are, and how many are Ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branches: Option<BranchCounts>,
    /// Resources used against the quota, from the ResourceQuota's status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<QuotaUsage>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BranchCounts {
    pub total: i32,
    /// Ready, asleep ones included (asleep is healthy).
    pub ready: i32,
    /// Asleep or expired.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub asleep: i32,
    /// `ready/total` (and how many sleep), for `kubectl get projects`.
    pub summary: String,
    /// What all branches request while awake.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested: Option<crate::api::Requested>,
    /// What the awake ones request now: the difference is what sleeping saves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running: Option<crate::api::Requested>,
}

fn is_zero(n: &i32) -> bool {
    *n == 0
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct QuotaUsage {
    /// Limits in force, by ResourceQuota resource name.
    #[serde(default)]
    pub hard: BTreeMap<String, String>,
    /// Current use, by ResourceQuota resource name.
    #[serde(default)]
    pub used: BTreeMap<String, String>,
}

impl Project {
    /// The namespace this Project owns: `spec.namespace`, or the Project's own name.
    pub fn namespace_name(&self) -> String {
        self.spec
            .namespace
            .clone()
            .unwrap_or_else(|| kube::ResourceExt::name_any(self))
    }
}
