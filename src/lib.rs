//! Oksa: every git branch of every project gets its own running environment.

pub mod api;
pub mod api_probe;
pub mod apply;
pub mod cli;
pub mod clock;
pub mod compact;
pub mod controller;
pub mod crd;
pub mod data_reset;
pub mod demo;
pub mod deploy;
pub mod edge;
pub mod forge;
pub mod gateway_api;
pub mod heap;
pub mod keepalive;
pub mod labels;
pub mod leader;
pub mod metrics;
pub mod model;
pub mod naming;
pub mod policy;
pub mod quantity;
pub mod readiness;
pub mod routing;
pub mod run;
pub mod server;
pub mod status;
pub mod table;
pub mod telemetry;
pub mod usage;
pub mod watch;

#[cfg(test)]
mod test_fixtures;

// The allocator of every binary built on this library (the operator, the benchmark, the tests),
// so that what is measured is what ships. See BENCHMARKS.md for how it was chosen.
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's settings, read at its start (`_RJEM_MALLOC_CONF` in the environment overrides
/// them). One arena: the operator's few threads hardly contend, and memory freed by one is
/// reused by all. Unused pages go back to the system after a second instead of ten, and at once
/// rather than through a second ("muzzy") stage: the resting footprint matters more here than
/// the system calls saved.
#[cfg(feature = "jemalloc")]
#[unsafe(export_name = "_rjem_malloc_conf")]
static JEMALLOC_CONF: JemallocConf =
    JemallocConf(c"narenas:1,dirty_decay_ms:1000,muzzy_decay_ms:0".as_ptr());

/// A C string for jemalloc to read; a raw pointer is not `Sync` by itself.
#[cfg(feature = "jemalloc")]
#[repr(transparent)]
struct JemallocConf(*const std::ffi::c_char);

// SAFETY: it points at a string literal, never written.
#[cfg(feature = "jemalloc")]
unsafe impl Sync for JemallocConf {}
