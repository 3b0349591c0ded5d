//! Oksa: every git branch of every project gets its own running environment.

pub mod api;
pub mod apply;
pub mod crd;
pub mod labels;
pub mod naming;
pub mod quantity;

#[cfg(test)]
mod test_fixtures;
