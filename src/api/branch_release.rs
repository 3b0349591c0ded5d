use k8s_openapi::api::core::v1::{EnvVar, Probe, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// The running environment of one git branch of a Project: a Deployment and a Service per
/// component, an Ingress at `<release-name>.<project domain>`, and a PersistentVolumeClaim per
/// volume. Oksa writes readiness, the URL and the reasons for any failure to `status`.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "oksa.dev",
    version = "v1alpha1",
    kind = "BranchRelease",
    namespaced,
    status = "BranchReleaseStatus",
    shortname = "br",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas"
    ),
    category = "oksa",
    printcolumn = r#"{"name":"Branch","type":"string","jsonPath":".spec.branch"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.readyComponents","description":"ready/total components"}"#,
    printcolumn = r#"{"name":"URL","type":"string","jsonPath":".status.url"}"#,
    printcolumn = r#"{"name":"Sleeps","type":"date","jsonPath":".status.lifecycle.sleepsAt","priority":1}"#,
    printcolumn = r#"{"name":"Commit","type":"string","jsonPath":".status.deployedCommit","priority":1}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(
    "self.components.all(c, c.containers.all(k, !has(k.volumeMounts) || k.volumeMounts.all(m, has(self.volumes) && self.volumes.exists(v, v.name == m.volume))))"
).message("every volumeMount must name a volume declared in spec.volumes").field_path(".components"))]
#[x_kube(validation = Rule::new(
    "!has(self.routes) || self.routes.all(r, self.components.exists(c, c.name == r.component))"
).message("every route must name a component declared in spec.components").field_path(".routes"))]
#[x_kube(validation = Rule::new(
    "!has(self.jobs) || self.jobs.all(j, self.jobs.exists_one(k, k.name == j.name) && (!has(j.volumeMounts) || j.volumeMounts.all(m, has(self.volumes) && self.volumes.exists(v, v.name == m.volume))))"
).message("every job needs a name of its own, and its volumeMounts must name volumes declared in spec.volumes").field_path(".jobs"))]
pub struct BranchReleaseSpec {
    /// Name of the Project this branch belongs to. The BranchRelease must live in that
    /// Project's namespace. Immutable.
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("project is immutable"))]
    pub project: String,

    /// The git branch, exactly as git names it (slashes, capitals and unicode allowed). Oksa
    /// derives a stable DNS name from it. Immutable.
    #[schemars(length(min = 1, max = 255))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("branch is immutable"))]
    pub branch: String,

    /// Git commit being deployed; reported back as `status.deployedCommit` once Ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub commit: Option<String>,

    /// The processes of the environment. Each component is a Deployment, and a Service when
    /// any of its containers has ports.
    #[schemars(length(min = 1, max = 20))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub components: Vec<Component>,

    /// HTTP routes of the Ingress, from a path to a component. Without routes, `/` goes to the
    /// first component that has a port.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50))]
    pub routes: Vec<Route>,

    /// Persistent volumes. A volume is never deleted or recreated by an update: growing is
    /// applied in place, other changes are refused with a Degraded condition.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub volumes: Vec<Volume>,

    /// Extra hosts for this branch's Ingress. Each must be inside the Project's domain.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20))]
    pub hosts: Vec<Host>,

    /// `0` puts the branch to sleep until it is scaled up again, whatever is deployed meanwhile
    /// (`kubectl scale branchrelease NAME --replicas=0`); any other number wakes it. Components
    /// keep their own `replicas`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1000))]
    pub replicas: Option<i32>,

    /// Sleep and expiry, overriding the Project's `defaults.lifecycle` field by field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<crate::api::Lifecycle>,

    /// Who may open this branch's URL, replacing its Project's `protection` (the production
    /// branch is public unless it sets this); `public: true` opens it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protection: Option<crate::api::Protection>,

    /// Steps each deploy runs once the components are ready (database updates, a configuration
    /// import): one Job per deployed spec; the branch is Ready once they succeeded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    pub jobs: Vec<crate::api::DeployJob>,

    /// Where this branch's reference data comes from, instead of its Project's
    /// `referenceData.branch`; `disabled: true` starts its volumes empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_data: Option<crate::api::BranchReferenceData>,
}

/// A DNS host name, e.g. `shop.example.com`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub struct Host(
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub String,
);

/// One process of the environment: a Deployment of identical pods and a Service in front.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!(has(self.replicas) && has(self.autoscaling))")
    .message("choose replicas or autoscaling, not both"))]
pub struct Component {
    /// Component name, unique in the BranchRelease; part of its Deployment's and Service's names.
    #[schemars(
        length(min = 1, max = 20),
        regex(pattern = r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,

    /// Number of pods (default 1). 0 stops the component but keeps its Service and volumes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub replicas: Option<i32>,

    /// Let a HorizontalPodAutoscaler choose the number of pods, from their CPU use. Oksa then
    /// stops declaring the Deployment's `replicas`, so the two never fight; asleep, the
    /// autoscaler is removed and the pods go to zero, and waking brings it back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<Autoscaling>,

    /// Mount the namespace's `default` ServiceAccount token into the pods. Off unless asked for:
    /// most applications never call the Kubernetes API, and a token they do not need is one an
    /// attacker can use.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub automount_service_account_token: bool,

    /// Containers of each pod. They share the pod's network and its volumes (e.g. nginx in
    /// front of php-fpm).
    #[schemars(length(min = 1, max = 10))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub containers: Vec<Container>,
}

/// The bounds and target of a component's HorizontalPodAutoscaler.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.maxReplicas >= self.minReplicas")
    .message("maxReplicas must be at least minReplicas"))]
pub struct Autoscaling {
    /// Fewest pods while awake.
    #[schemars(range(min = 1, max = 100))]
    pub min_replicas: i32,
    /// Most pods.
    #[schemars(range(min = 1, max = 100))]
    pub max_replicas: i32,
    /// Average CPU use to aim for, in percent of the pods' CPU request (default 80).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub target_cpu_utilization: Option<i32>,
}

/// One container of a component's pods.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(
    "!has(self.env) || self.env.all(e, size(e.name) > 0)"
).message("every env entry needs a name").field_path(".env"))]
#[x_kube(validation = Rule::new(
    "!has(self.readinessProbe) || has(self.readinessProbe.exec) || has(self.readinessProbe.httpGet) || has(self.readinessProbe.tcpSocket) || has(self.readinessProbe.grpc)"
).message("a probe needs one of exec, httpGet, tcpSocket or grpc").field_path(".readinessProbe"))]
#[x_kube(validation = Rule::new(
    "!has(self.livenessProbe) || has(self.livenessProbe.exec) || has(self.livenessProbe.httpGet) || has(self.livenessProbe.tcpSocket) || has(self.livenessProbe.grpc)"
).message("a probe needs one of exec, httpGet, tcpSocket or grpc").field_path(".livenessProbe"))]
pub struct Container {
    /// Container name, unique in the component.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,

    /// Image reference, e.g. `registry.example.com/shop/web:3f2a1c`.
    #[schemars(length(min = 1, max = 1024))]
    pub image: String,

    /// Overrides the image's entrypoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,

    /// Arguments to the entrypoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,

    /// Ports the container listens on; each becomes a port of the component's Service. Each
    /// number once (a Deployment keys its ports by number).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["containerPort".into()]))]
    pub ports: Vec<Port>,

    /// Environment variables (same shape as a Pod's `env`), each name once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 200))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub env: Vec<EnvVar>,

    // Boxed, here and in the probes: every cached BranchRelease holds its containers, and
    // inline an absent probe would still take its full size (~330 bytes) in each.
    /// CPU and memory requests and limits (default: the Project's `defaults.resources`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Box<ResourceRequirements>>,

    /// Readiness probe. Default: a TCP check of the first port, when the container has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readiness_probe: Option<Box<Probe>>,

    /// Liveness probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub liveness_probe: Option<Box<Probe>>,

    /// Volumes of the BranchRelease mounted into this container, each path once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["mountPath".into()]))]
    pub volume_mounts: Vec<VolumeMount>,
}

/// A port a container listens on.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Port {
    /// Port name (default: `port-<number>`): up to 15 lowercase letters, digits and single
    /// dashes, with at least one letter (an IANA service name, as Kubernetes requires).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 15),
        regex(pattern = r"^([a-z0-9]+-)*[a-z0-9]*[a-z][a-z0-9]*(-[a-z0-9]+)*$")
    )]
    pub name: Option<String>,
    /// Port number in the container; the Service exposes the same number.
    #[schemars(range(min = 1, max = 65535))]
    pub container_port: i32,
}

/// Where a volume appears in a container.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VolumeMount {
    /// Name of a volume in `spec.volumes`.
    #[schemars(length(min = 1, max = 20))]
    pub volume: String,
    /// Absolute path in the container.
    #[schemars(length(min = 1, max = 1024), regex(pattern = r"^/"))]
    pub mount_path: String,
    /// Sub-path of the volume to mount instead of its root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub sub_path: Option<String>,
    /// Mount read-only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
}

/// An HTTP route of the branch's Ingress.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Route {
    /// Path prefix, e.g. `/` or `/api`.
    #[schemars(length(min = 1, max = 1024), regex(pattern = r"^/"))]
    pub path: String,
    /// Component that serves the path.
    #[schemars(length(min = 1, max = 20))]
    pub component: String,
    /// Port of the component (default: its first port).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i32>,
}

/// A PersistentVolumeClaim of the branch, mountable by its components.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Volume {
    /// Volume name, unique in the BranchRelease.
    #[schemars(
        length(min = 1, max = 20),
        regex(pattern = r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,
    /// Requested size, e.g. `1Gi`. Can grow (applied in place); a smaller size is refused.
    #[schemars(
        length(min = 1, max = 32),
        regex(pattern = r"^[0-9]+(\.[0-9]+)?([KMGTPE]i?|k)?$")
    )]
    pub size: String,
    /// StorageClass (default: the Project's default, then the cluster's). Fixed once created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub storage_class_name: Option<String>,
    /// Access mode (default `ReadWriteOnce`). Fixed once created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_mode: Option<AccessMode>,
    /// Keep the volume and its data when the BranchRelease is deleted; a BranchRelease created
    /// again for the same branch picks it up.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub retain: bool,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum AccessMode {
    ReadWriteOnce,
    ReadWriteOncePod,
    ReadOnlyMany,
    ReadWriteMany,
}

impl AccessMode {
    pub fn as_str(self) -> &'static str {
        match self {
            AccessMode::ReadWriteOnce => "ReadWriteOnce",
            AccessMode::ReadWriteOncePod => "ReadWriteOncePod",
            AccessMode::ReadOnlyMany => "ReadOnlyMany",
            AccessMode::ReadWriteMany => "ReadWriteMany",
        }
    }
}

/// Coarse state of a branch, for humans and `kubectl get`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum Phase {
    /// Waiting for something outside this BranchRelease (its Project).
    Pending,
    /// Children are being created or rolled out.
    Progressing,
    /// Every component is ready and every volume bound.
    Ready,
    /// Running, but something is wrong (a failing component, a refused volume change).
    Degraded,
    /// The spec cannot be deployed as written (see the Ready condition's message).
    Invalid,
    /// Asleep: workloads at zero, routes to the waker (see `status.lifecycle`).
    Sleeping,
    /// Unused for too long, and asleep until deployed again (see `status.lifecycle`).
    Expired,
}

/// Observed state of a BranchRelease, written by Oksa.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BranchReleaseStatus {
    /// Generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// DNS-safe name derived from the branch; prefix of every child's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_name: Option<String>,
    /// Where the branch is served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// `Ready`, `Progressing` and `Degraded`, with reasons a user can act on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// `ready/total` components, for `kubectl get branchreleases`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_components: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<ComponentStatus>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<VolumeStatus>,
    /// Claims of volumes that left the spec (removed or renamed). They keep their data, carry
    /// the label `oksa.dev/detached=true`, and are listed here until a person deletes them
    /// (`kubectl delete pvc NAME`); declaring the volume again takes its claim back.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub detached_volumes: Vec<String>,
    /// The jobs of the current deploy (see `spec.jobs`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub jobs: Vec<crate::api::JobStatus>,
    /// Commit that was last Ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployed_commit: Option<String>,
    /// When Oksa first saw the current generation of the spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progressing_since: Option<Time>,
    /// Seconds from that spec change to Ready, for the last rollout that became Ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds_to_ready: Option<f64>,
    /// 0 while asleep, 1 while awake (the scale subresource's view).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// CPU and memory the branch requests while awake (pods × their requests, as rendered);
    /// asleep, it requests none of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested: Option<crate::api::Requested>,
    /// Awake or asleep, why, the last activity, and when it will sleep or expire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<crate::api::LifecycleStatus>,
    /// What Oksa reported to the Project's forge, and whether the forge says the branch is gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forge: Option<crate::api::ForgeStatus>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComponentStatus {
    pub name: String,
    /// Pods wanted.
    pub replicas: i32,
    /// Pods ready.
    pub ready_replicas: i32,
    /// Pods running the current spec.
    pub updated_replicas: i32,
    /// Images of the component's containers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<String>,
    /// Why the component is not ready, when Oksa can tell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VolumeStatus {
    pub name: String,
    /// Name of the PersistentVolumeClaim.
    pub claim_name: String,
    /// Claim phase: Pending, Bound or Lost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Size the volume has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<String>,
    /// Why a change to the volume was refused, or why it waits for its reference data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The claim the volume's data was cloned from (reference data), when it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloned_from: Option<String>,
    /// When it was cloned (its claim's creation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloned_at: Option<Time>,
}
