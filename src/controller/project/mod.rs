//! Project → namespace with access, quota, defaults and isolation.

pub mod build;
pub mod reconcile;
pub mod status;
pub mod validate;
pub mod waker_objects;
