//! The forge in the loop: a Project connected to its git forge (Gitea, Forgejo, GitHub). Oksa
//! learns there which branches and pull requests are gone (webhooks, and a periodic list as the
//! safety net) and reports each branch's state back (a commit status, one pull-request comment).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// The annotation on a credentials Secret listing the Projects that may use it (`shop,blog`, or
/// `*`): a Project naming a Secret that does not list it is refused, so one team cannot borrow
/// another's forge token by naming its Secret.
pub const FORGE_PROJECTS_ANNOTATION: &str = "oksa.dev/forge-projects";
/// The key of the API token in a credentials Secret.
pub const FORGE_TOKEN_KEY: &str = "token";
/// The optional key of a credentials Secret that pins the forge's address: the token is then sent
/// to that forge only, whatever a Project's `url` says.
pub const FORGE_URL_KEY: &str = "url";
/// The key of the webhook secret (the HMAC key of signed webhooks) in a credentials Secret.
pub const FORGE_WEBHOOK_SECRET_KEY: &str = "webhookSecret";

/// A Project's forge connection.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("self.provider == 'github' || has(self.url)")
    .message("url is required for a Gitea or Forgejo forge (its address, e.g. https://git.example.com)"))]
pub struct Forge {
    /// `gitea` (Gitea and Forgejo) or `github`.
    pub provider: ForgeProvider,
    /// The forge's address, e.g. `https://git.example.com` (default for `github`:
    /// `https://api.github.com`; GitHub Enterprise: `https://HOST/api/v3`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 500), regex(pattern = r"^https?://[^\s/]+(/[^\s]*)?$"))]
    pub url: Option<String>,
    /// The repository, `owner/name`.
    #[schemars(
        length(min = 3, max = 200),
        regex(pattern = r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
    )]
    pub repository: String,
    /// Secret in Oksa's own namespace with the forge's API `token` and the `webhookSecret` that
    /// signs its webhooks (and, best, the forge's `url`, so the token goes nowhere else). The
    /// platform creates it and lists the Projects that may use it in its
    /// `oksa.dev/forge-projects` annotation. Oksa reads no other Secret.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub credentials_secret: String,
    /// What goes when it is gone in the forge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cleanup: Option<ForgeCleanup>,
    /// What Oksa reports back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<ForgeReport>,
    /// How often the forge's branches and pull requests are listed, to catch what a webhook
    /// missed (default `5m`, at least `10s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]{1,6}[smh]$"))]
    pub sync_every: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ForgeProvider {
    Gitea,
    Github,
}

/// Cleanup from the forge. A branch deleted there, or whose pull request was merged or closed
/// after its environment was created, expires through the same path as an idle one: warned,
/// within the project's hourly deletion budget, a GitOps-managed one kept asleep as `Expired`,
/// volumes per their `retain`. The production branch and the repository's default branch never
/// go this way.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ForgeCleanup {
    /// Turn cleanup from the forge off (default: on).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disabled: bool,
    /// How long the warning stands before the environment goes (default `10m`): time to restore
    /// a branch deleted by mistake, which withdraws it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]{1,6}[smhd]$"))]
    pub after: Option<String>,
    /// Branches the forge never takes away, as exact names or prefixes ending in `*`
    /// (`develop`, `release/*`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50), inner(length(min = 1, max = 255)))]
    pub keep: Vec<String>,
}

/// Reports to the forge. Both on by default.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ForgeReport {
    /// No commit statuses (default: a status `oksa/<release>` on each branch's commit: pending
    /// while it rolls out, success with its URL, failure with the reason).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_commit_status: bool,
    /// No pull-request comment (default: one comment on the branch's open pull request, kept up
    /// to date: URL, state, asleep or awake, expiry, how to reach a protected URL).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_pull_request_comment: bool,
}

/// What Oksa last reported to the forge for a branch (so that a restart reports nothing again).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ForgeStatus {
    /// The commit of the last commit status posted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// Its state: `pending`, `success` or `failure`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// The branch's open pull request, as the forge last said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_request: Option<i64>,
    /// Oksa's comment, and the pull request it is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commented_on: Option<i64>,
    /// A digest of the comment's text as last written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment_digest: Option<String>,
    /// When the last report was written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reported_at: Option<Time>,
    /// Set while the forge says this branch is gone (deleted, or its pull request merged or
    /// closed): why, and since when Oksa knows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gone: Option<String>,
    /// Since when Oksa knows it is gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gone_since: Option<Time>,
}
