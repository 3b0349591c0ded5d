//! The custom resources Oksa serves (group `oksa.dev`, version `v1alpha1`) and their contract
//! (conditions, annotations, the activity patch). Types, no decisions: these structs are the source
//! of truth for the CRD YAML in `crds/` and for `kubectl explain`.

pub mod activity;
mod branch_release;
pub mod conditions;
mod forge;
mod jobs;
mod lifecycle;
mod project;
mod protection;
mod reference_data;

pub use branch_release::*;
pub use forge::*;
pub use jobs::*;
pub use lifecycle::*;
pub use project::*;
pub use protection::*;
pub use reference_data::*;

/// The API group of every Oksa resource.
pub const GROUP: &str = "oksa.dev";
