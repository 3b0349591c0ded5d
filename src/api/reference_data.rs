//! Reference data: a new branch's volumes start as copies of another branch's (production's
//! database and files, for example), the way Silta gives every branch a copy of the reference
//! environment. Cloned once, when the branch's claim is created; never again by a redeploy, a
//! wake or a restart.

use serde::{Deserialize, Serialize};

/// On a Project: which branch's volumes are the reference, and which of them.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReferenceData {
    /// The git branch whose volumes are copied (usually production's).
    #[schemars(length(min = 1, max = 253))]
    pub branch: String,
    /// Names of the volumes that are reference data. A branch's volume of one of these names
    /// starts as a clone of the reference branch's volume of the same name (a
    /// PersistentVolumeClaim `dataSource` in the project's namespace; the storage class must
    /// support cloning).
    #[schemars(length(min = 1), inner(length(min = 1, max = 20)))]
    pub volumes: Vec<String>,
    /// What a new branch gets when the reference volume cannot be cloned yet (it does not exist,
    /// is not bound, or is larger than the branch's volume): `Wait` (default) creates nothing
    /// until it can; `Empty` starts the volume empty. Either way a condition says so.
    #[serde(default)]
    pub when_missing: WhenMissing,
}

#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema,
)]
pub enum WhenMissing {
    #[default]
    Wait,
    Empty,
}

/// On a BranchRelease: another source than the Project's, or none.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BranchReferenceData {
    /// Clone from this branch instead of the Project's reference branch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub branch: Option<String>,
    /// Start every volume empty.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disabled: bool,
}
