//! The BranchRelease driver (`reconcile.rs`) and the volumes' I/O (`claims.rs`); the pure parts
//! (validate, lifecycle, build, status) are in `crate::model::branch_release`.

mod children;
mod claims;
pub mod reconcile;
