//! The benchmark's command line.

use std::path::PathBuf;

#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "oksa-bench",
    about = "Benchmark Oksa against helm-per-branch and the API server's limit"
)]
pub struct Args {
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
    /// Seconds to wait for everything to be Ready in each phase.
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
}
