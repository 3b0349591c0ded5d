//! Jobs per deploy: the application's own steps a deploy runs (database updates, a configuration
//! import: `drush deploy`, `rails db:migrate`), as Kubernetes Jobs.

use k8s_openapi::api::core::v1::{EnvVar, ResourceRequirements};
use serde::{Deserialize, Serialize};

use super::VolumeMount;

/// A step each deploy runs once its components are ready: one Job per deployed spec (a retry, a
/// re-apply of the same spec, or scaling the branch to sleep and back never runs it twice), and
/// the branch is Ready only once it succeeded. A failed job leaves the branch Degraded and Stalled
/// with its exit code and the last lines of its log; it is not retried (a migration that failed
/// halfway should be looked at, not run again): a new deploy runs it again.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeployJob {
    /// Job name, unique in the BranchRelease.
    #[schemars(
        length(min = 1, max = 20),
        regex(pattern = r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,
    /// Container image, usually the one a component runs.
    #[schemars(length(min = 1, max = 512))]
    pub image: String,
    /// Entrypoint (default: the image's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub command: Option<Vec<String>>,
    /// Arguments to the entrypoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub args: Option<Vec<String>>,
    /// Environment variables.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 128))]
    pub env: Vec<EnvVar>,
    /// Volumes of the BranchRelease the job mounts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub volume_mounts: Vec<VolumeMount>,
    /// CPU and memory (default: the Project's defaults).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Box<ResourceRequirements>>,
    /// When it runs: `AfterRollout` (default), once per deployed spec after the components are
    /// ready; `AfterClone`, once per clone of the branch's reference data, before any component
    /// starts (to sanitise a copy of production's data before the branch serves it).
    #[serde(default)]
    pub when: JobWhen,
    /// Seconds the job may run before it counts as failed (default 1800).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 86400))]
    pub timeout_seconds: Option<i64>,
}

#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema,
)]
pub enum JobWhen {
    #[default]
    AfterRollout,
    AfterClone,
}

/// The job of the current deploy (or clone), as it went.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobStatus {
    pub name: String,
    /// The Kubernetes Job (its name carries a key of the deployed spec, or of the clone for
    /// `AfterClone`).
    pub job_name: String,
    /// `Waiting` (for the components to be ready), `Running`, `Succeeded` or `Failed`.
    pub phase: String,
    /// The exit code of a failed job's container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Why it failed: the last lines of its log, when the cluster reports them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}
