//! BranchRelease → the running environment of one branch.

pub mod build;
pub mod diagnose;
pub mod reconcile;
pub mod status;
pub mod validate;
pub mod volumes;
