//! BranchRelease → the running environment of one branch, as pure functions: validate, decide
//! (lifecycle), render (build), compose the status.

pub mod build;
pub mod cost;
pub mod diagnose;
pub mod jobs;
pub mod lifecycle;
pub mod milestones;
pub mod outcome;
pub mod reference;
pub mod schedule;
pub mod status;
pub mod validate;
pub mod volumes;
