//! The Project driver; the pure parts (validate, build, status) are in `crate::model::project`.

pub mod reconcile;
