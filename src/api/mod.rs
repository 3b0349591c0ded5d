//! The custom resources Oksa serves (group `oksa.dev`, version `v1alpha1`). Types only, no logic:
//! these structs are the source of truth for the CRD YAML in `crds/` and for `kubectl explain`.

pub mod activity;
mod branch_release;
pub mod conditions;
mod lifecycle;
mod project;
mod protection;

pub use branch_release::*;
pub use lifecycle::*;
pub use project::*;
pub use protection::*;

/// The API group of every Oksa resource.
pub const GROUP: &str = "oksa.dev";
