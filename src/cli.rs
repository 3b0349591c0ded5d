//! The `oksa` command line.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::telemetry::LogFormat;

#[derive(Parser, Debug)]
#[command(
    name = "oksa",
    version,
    about = "Every git branch of every project gets its own running environment."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The waker: what the routes of a sleeping branch lead to.
#[derive(clap::Args, Debug, Clone)]
pub struct WakerArgs {
    /// Address the waker listens on.
    #[arg(long, env = "OKSA_WAKER_LISTEN", default_value = "0.0.0.0:8081")]
    pub waker_listen: SocketAddr,
    /// IP the routes reach the waker at (the chart passes the pod's IP). Without it there is no
    /// waker: sleeping branches wake only on a deploy, a keep-alive or a scale-up.
    #[arg(long, env = "OKSA_WAKER_IP")]
    pub waker_ip: Option<std::net::IpAddr>,
    /// Anonymous wakes per project per hour; past it the waiting page asks for a click.
    #[arg(long, env = "OKSA_WAKE_CAP_PER_HOUR", default_value_t = 30)]
    pub wake_cap_per_hour: u32,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the operator: reconcile Projects and BranchReleases until SIGTERM or Ctrl-C.
    Run {
        /// Address of /metrics, /healthz and /readyz.
        #[arg(long, env = "OKSA_LISTEN", default_value = "0.0.0.0:8080")]
        listen: SocketAddr,
        /// Log as text (for a terminal) or JSON lines (for a log collector).
        #[arg(long, env = "OKSA_LOG_FORMAT", value_enum, default_value = "text")]
        log_format: LogFormat,
        /// Apply the CRDs at start-up instead of waiting for them to be installed (by Helm).
        #[arg(long, env = "OKSA_INSTALL_CRDS")]
        install_crds: bool,
        /// The platform's rules for Projects (YAML, see `policy` in the chart's values); without
        /// it, the defaults: baseline or restricted pods, no system subjects or namespaces, a
        /// short list of Ingress annotations and controller namespaces.
        #[arg(long, env = "OKSA_POLICY")]
        policy: Option<PathBuf>,
        /// Reconcile only while holding a Lease in this namespace (run several for high
        /// availability: the others wait as standbys). The chart sets it to its namespace.
        #[arg(long, env = "OKSA_LEADER_ELECTION_NAMESPACE")]
        leader_election_namespace: Option<String>,
        /// Who this process is in the Lease (default: $POD_NAME, else the host name and PID).
        #[arg(long, env = "POD_NAME")]
        identity: Option<String>,
        #[command(flatten)]
        waker: WakerArgs,
    },
    /// Try Oksa on this machine: start the local control plane (unless KUBECONFIG is set), run
    /// the operator, apply examples/ and show the branches until every one is Ready.
    Demo {
        /// Exit once every branch is Ready (for CI) instead of running until Ctrl-C.
        #[arg(long)]
        exit_when_ready: bool,
        /// Give up (exit code 1) when the branches are not all Ready after this many seconds.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
    },
    /// Deploy a branch from CI and wait until it is Ready.
    ///
    /// Exit codes: 0 Ready; 1 error (arguments, file, connection, request refused by the API
    /// server); 2 refused by Oksa (phase Invalid: fix the spec); 3 rollout failed (a component
    /// stayed Degraded for --fail-after seconds); 4 not Ready within --timeout. On 2-4 the reasons
    /// from status and the recent Warning events are printed to stderr.
    Deploy(crate::deploy::DeployArgs),
    /// Record activity on a branch so it neither sleeps nor expires for a while (its
    /// `sleepAfter`), without changing its spec.
    Keepalive(crate::keepalive::KeepaliveArgs),
    /// Show the branches of one project (or of all projects) as a table.
    Status {
        /// Project name; all projects when omitted.
        project: Option<String>,
    },
    /// Print the CRDs as YAML, or write them to a folder (`--write crds`).
    Crd {
        #[arg(long)]
        write: Option<PathBuf>,
    },
}
