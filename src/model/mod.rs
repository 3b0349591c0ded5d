//! The pure model: what Oksa decides, from objects to objects, with no client and no runtime.
//! Per kind: validate → decide → render → compose the status; and the indexes over the caches
//! (which branches a change concerns). Everything here is unit-tested by feeding it objects; the
//! layering test (`tests/layering.rs`) keeps I/O out.

pub mod branch_release;
pub mod edge_service;
pub mod forge;
pub mod index;
pub mod project;
pub mod refusal;
