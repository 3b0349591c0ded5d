//! Who may open a branch's URL: basic auth, client networks that skip it, and tokens for
//! machines. On a Project (`spec.protection`) it guards every branch but production; on a
//! BranchRelease it replaces the Project's for that branch (production included), or opens it
//! with `public: true`. The edge enforces it (`edge::protect`).
//!
//! Only hashes are written here (bcrypt for passwords, SHA-256 for tokens), so a GitOps
//! repository can hold a Project or a BranchRelease as it is: nothing in it lets anyone in. A
//! Secret would need a second object in step, and read access for the edge to every Secret of
//! every project namespace.

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// Header that carries a bypass token (CI, end-to-end tests, webhooks).
pub const BYPASS_HEADER: &str = "x-oksa-bypass";

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new(
    "self.public ? (size(self.users) + size(self.allowCIDRs) + size(self.bypassTokenSha256) == 0) : (size(self.users) + size(self.allowCIDRs) + size(self.bypassTokenSha256) > 0)"
).message("protection needs users, allowCIDRs or bypassTokenSha256; or public: true and none of them"))]
pub struct Protection {
    /// The branch is open to everyone, whatever its Project says (on a BranchRelease).
    #[serde(default)]
    pub public: bool,

    /// Who may log in with basic auth: htpasswd lines with a bcrypt hash, as
    /// `htpasswd -nbB USER PASSWORD` prints them (`user:$2y$10$…`). Never a password.
    #[serde(default)]
    #[schemars(length(max = 50))]
    pub users: Vec<HtpasswdLine>,

    /// Client networks that need no login (CIDRs such as `203.0.113.0/24`, an office or a
    /// VPN). The client is the address the ingress controller saw (the last `X-Forwarded-For`).
    #[serde(default, rename = "allowCIDRs")]
    #[schemars(length(max = 50))]
    pub allow_cidrs: Vec<Cidr>,

    /// SHA-256 (hex) of tokens that let a request through when sent in the `X-Oksa-Bypass`
    /// header: for CI, end-to-end tests and webhooks. `printf %s "$TOKEN" | sha256sum`.
    #[serde(default)]
    #[schemars(length(max = 20))]
    pub bypass_token_sha256: Vec<TokenHash>,
}

/// `user:bcrypt-hash`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub struct HtpasswdLine(
    #[schemars(regex(pattern = r"^[^:\s]{1,64}:\$2[abxy]?\$[0-9]{2}\$[./A-Za-z0-9]{53}$"))]
    pub  String,
);

/// An IPv4 or IPv6 network in CIDR notation.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub struct Cidr(
    #[schemars(
        length(min = 3, max = 43),
        regex(pattern = r"^[0-9a-fA-F:.]+/[0-9]{1,3}$")
    )]
    pub String,
);

/// 64 hex digits.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub struct TokenHash(#[schemars(regex(pattern = r"^[0-9a-f]{64}$"))] pub String);

impl HtpasswdLine {
    /// (user, hash).
    pub fn split(&self) -> Option<(&str, &str)> {
        self.0.split_once(':')
    }
}
