//! Project → namespace with access, quota, defaults and isolation, as pure functions.

pub mod build;
pub mod status;
pub mod validate;
pub mod waker_objects;
