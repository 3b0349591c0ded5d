//! BranchRelease → the running environment of one branch.

pub mod build;
mod claims;
pub mod cost;
pub mod diagnose;
pub mod lifecycle;
pub mod reconcile;
pub mod schedule;
pub mod status;
pub mod validate;
pub mod volumes;
