//! Oksa: every git branch of every project gets its own running environment.

pub mod api;
pub mod api_probe;
pub mod apply;
pub mod cli;
pub mod compact;
pub mod controller;
pub mod crd;
pub mod demo;
pub mod deploy;
pub mod gateway_api;
pub mod keepalive;
pub mod labels;
pub mod leader;
pub mod metrics;
pub mod naming;
pub mod policy;
pub mod quantity;
pub mod readiness;
pub mod run;
pub mod server;
pub mod status;
pub mod table;
pub mod telemetry;
pub mod usage;
pub mod waker;

#[cfg(test)]
mod test_fixtures;
