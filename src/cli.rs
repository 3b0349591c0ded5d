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

/// The edge (`oksa edge`): the front door of sleeping branches' URLs.
#[derive(clap::Args, Debug, Clone)]
pub struct EdgeArgs {
    /// Address the edge serves branch traffic on.
    #[arg(long, env = "OKSA_EDGE_LISTEN", default_value = "0.0.0.0:8081")]
    pub listen: SocketAddr,
    /// Address of its /metrics, /healthz and /readyz.
    #[arg(long, env = "OKSA_LISTEN", default_value = "0.0.0.0:8080")]
    pub health_listen: SocketAddr,
    /// Log as text (for a terminal) or JSON lines (for a log collector).
    #[arg(long, env = "OKSA_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Anonymous wakes per project per hour; past it the waiting page asks for a click (and
    /// clicks have a cap of the same size).
    #[arg(long, env = "OKSA_WAKE_CAP_PER_HOUR", default_value_t = 30)]
    pub wake_cap_per_hour: u32,
    /// Open connections at most; past it, new ones are closed at once.
    #[arg(long, env = "OKSA_EDGE_MAX_CONNECTIONS", default_value_t = 4096)]
    pub max_connections: usize,
    /// Seconds a client has to send a request's headers.
    #[arg(long, env = "OKSA_EDGE_HEADER_TIMEOUT", default_value_t = 10)]
    pub header_timeout: u64,
    /// Requests per second of one client (by the address the ingress controller forwards).
    #[arg(long, env = "OKSA_EDGE_CLIENT_RATE", default_value_t = 20)]
    pub client_rate: u32,
    /// Requests one client may send at once above its rate.
    #[arg(long, env = "OKSA_EDGE_CLIENT_BURST", default_value_t = 60)]
    pub client_burst: u32,
    /// Clients held at once while their branch wakes.
    #[arg(long, env = "OKSA_EDGE_MAX_HELD", default_value_t = 512)]
    pub max_held: usize,
    /// Networks of the proxies in front of the edge (the ingress controllers), comma-separated:
    /// only their X-Forwarded-For names the client, for allowCIDRs and the per-client limits.
    #[arg(
        long,
        env = "OKSA_EDGE_TRUSTED_PROXIES",
        value_delimiter = ',',
        default_value = crate::edge::limits::DEFAULT_TRUSTED_PROXIES,
        value_parser = crate::edge::protect::network
    )]
    pub trusted_proxies: Vec<crate::api::Cidr>,
}

impl EdgeArgs {
    pub fn config(&self) -> crate::edge::EdgeConfig {
        crate::edge::EdgeConfig {
            cap_per_hour: self.wake_cap_per_hour,
            connections: crate::edge::server::ConnectionLimits {
                max_connections: self.max_connections,
                header_read_timeout: std::time::Duration::from_secs(self.header_timeout.max(1)),
                ..Default::default()
            },
            per_client_per_second: self.client_rate,
            per_client_burst: self.client_burst,
            max_held: self.max_held,
            trusted_proxies: self.trusted_proxies.clone(),
        }
    }
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
        /// The edge's Service (`namespace/name`): each project namespace's `oksa-edge` Service
        /// leads to its ready pods. Without it, sleeping branches wake only on a deploy, a
        /// keep-alive or a scale-up. The chart sets it.
        #[arg(long, env = "OKSA_EDGE_SERVICE")]
        edge_service: Option<crate::model::edge_service::EdgeService>,
        /// Receive forge webhooks (`POST /forge/<project>`) on this address; the chart sets it and
        /// exposes it as its own Service, apart from the metrics.
        #[arg(long, env = "OKSA_FORGE_WEBHOOK_LISTEN")]
        forge_webhook_listen: Option<SocketAddr>,
        /// The namespace of the forge credentials Secrets that Projects name (Oksa's own; the
        /// chart grants `get` on Secrets there and nowhere else).
        #[arg(long, env = "POD_NAMESPACE")]
        forge_secrets_namespace: Option<String>,
        /// BranchReleases reconciled at once. Each keeps a few requests in flight, so this
        /// bounds Oksa's share of the API server; the queue gives idle projects the next turn.
        #[arg(long, env = "OKSA_RELEASE_WORKERS",
              default_value_t = crate::controller::RELEASE_WORKERS as u16,
              value_parser = clap::value_parser!(u16).range(1..=1024))]
        release_workers: u16,
    },
    /// Serve the edge: the front door of sleeping branches' URLs (the waiting page, the wake on a
    /// person's request). Run apart from the operator, as many replicas as wanted.
    Edge(EdgeArgs),
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
    /// stayed Degraded for --fail-after seconds, or a deploy job failed); 4 not Ready within
    /// --timeout. On 2-4 the reasons from status and the recent Warning events are printed to
    /// stderr.
    Deploy(crate::deploy::DeployArgs),
    /// Record activity on a branch so it neither sleeps nor expires for a while (its
    /// `sleepAfter`), without changing its spec.
    Keepalive(crate::keepalive::KeepaliveArgs),
    /// A branch's data: `oksa data reset` clones its reference data again.
    Data(crate::data_reset::DataArgs),
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
