//! The benchmark's command line.

use std::path::PathBuf;

#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "oksa-bench",
    about = "Benchmark Oksa against helm-per-branch and the API server's limit"
)]
pub struct Args {
    #[command(subcommand)]
    pub mode: Option<Mode>,
    /// Projects to create.
    #[arg(long, default_value_t = 20)]
    pub projects: usize,
    /// Branches per project.
    #[arg(long, default_value_t = 50)]
    pub branches: usize,
    /// Branches created one at a time before the burst (the low-load latency).
    #[arg(long, default_value_t = 50)]
    pub solo_branches: usize,
    /// Branches of the burst (and of the limit) given a new image at once, after the resync.
    #[arg(long, default_value_t = 1000)]
    pub redeploy_branches: usize,
    /// Branches deployed by the helm baseline (one `helm upgrade --install --wait` each).
    #[arg(long, default_value_t = 50)]
    pub helm_branches: usize,
    /// Requests in flight when creating BranchReleases (Oksa) and objects (the limit).
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// The operator binary to measure (default: `oksa` next to this binary).
    #[arg(long)]
    pub oksa: Option<PathBuf>,
    /// The helm binary (default: from the local plane's tools, else PATH).
    #[arg(long)]
    pub helm: Option<PathBuf>,
    /// Where the raw figures go.
    #[arg(long, default_value = "target/bench/results.json")]
    pub output: PathBuf,
    /// Leave Oksa's projects and branches in place (no cleanup), to look at them or to measure
    /// an operator against them.
    #[arg(long)]
    pub keep: bool,
    /// Run only the Oksa phases, not the helm baseline and the limit.
    #[arg(long)]
    pub oksa_only: bool,
    /// Run only the limit (objects created directly, no operator): at 5,000 branches it takes
    /// about as long as Oksa's phases, so it can be run apart, on its own fresh plane.
    #[arg(long, conflicts_with = "oksa_only")]
    pub limit_only: bool,
    /// Seconds to wait for everything to be Ready in each phase.
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
}

/// Other measurements than the branches'.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Mode {
    /// The edge: added latency and throughput against Traefik straight to the same server, a
    /// flood while the operator works, and `kill -9` of one of two replicas under load.
    Edge(EdgeArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct EdgeArgs {
    /// Seconds of each latency and throughput run.
    #[arg(long, default_value_t = 15)]
    pub seconds: u64,
    /// Requests per second of the latency runs (a moderate load), over 4 connections.
    #[arg(long, default_value_t = 200)]
    pub rate: u32,
    /// Connections of the throughput runs (each sends its next request when the last is answered).
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// Seconds of the flood.
    #[arg(long, default_value_t = 60)]
    pub flood_seconds: u64,
    /// Connections of the flood, through Traefik.
    #[arg(long, default_value_t = 300)]
    pub flood_connections: usize,
    /// Slow clients during the flood, straight at the edge: each sends its headers a byte every
    /// two seconds.
    #[arg(long, default_value_t = 100)]
    pub slow_clients: usize,
    /// Image changes timed to their Deployment, on the quiet plane and again during the flood.
    #[arg(long, default_value_t = 5)]
    pub changes: usize,
    /// Where the raw figures go.
    #[arg(long, default_value = "target/bench/edge.json")]
    pub output: PathBuf,
}
