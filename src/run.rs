//! `oksa run`: the operator process.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::runtime::wait::{await_condition, conditions};
use kube::{Api, Client};
use tracing::{info, warn};

const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

use crate::metrics::Metrics;

/// Why the operator could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(
        "cannot connect to Kubernetes (is KUBECONFIG or the in-cluster service account set?): {0}"
    )]
    Connect(#[source] kube::Error),
    #[error("cannot install the CRDs: {0}")]
    InstallCrds(#[source] kube::Error),
    #[error("cannot serve metrics on {0}: {1}")]
    Listen(SocketAddr, #[source] std::io::Error),
    #[error("{0}")]
    Policy(String),
    #[error("leader election failed: {0}")]
    LeaderElection(#[source] kube_lease_manager::LeaseManagerError),
    #[error(
        "lost the lease {}: another operator leads now; exiting",
        crate::leader::LEASE_NAME
    )]
    LostLease,
}

/// What `oksa run` is started with.
pub struct Options<'a> {
    pub listen: SocketAddr,
    pub install_crds: bool,
    pub policy: Option<&'a std::path::Path>,
    pub election: Option<crate::leader::Election>,
    pub edge_service: Option<crate::model::edge_service::EdgeService>,
    pub forge_webhook_listen: Option<SocketAddr>,
    pub forge_secrets_namespace: Option<String>,
    /// BranchReleases reconciled at once.
    pub release_workers: usize,
}

pub async fn run(options: Options<'_>) -> Result<(), StartError> {
    let Options {
        listen,
        install_crds,
        policy,
        election,
        edge_service,
        forge_webhook_listen,
        forge_secrets_namespace,
        release_workers,
    } = options;
    let policy = match policy {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| format!("reading the policy {}: {e}", path.display()))
            .and_then(|text| crate::policy::Policy::parse(&text, path))
            .map_err(StartError::Policy)?,
        None => crate::policy::Policy::default(),
    };
    let client = Client::try_default().await.map_err(StartError::Connect)?;
    let metrics = Metrics::default();
    let ready = Arc::new(crate::readiness::Readiness::default());
    let shutdown = shutdown_signal().shared();

    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| StartError::Listen(listen, e))?;
    let server = crate::server::serve(listener, metrics.clone(), ready.clone(), shutdown.clone());
    let server = tokio::spawn(server);
    // Every replica receives webhooks; only the leader's runtime acts on them (a standby answers
    // 503 until it leads).
    let (forge_publish, forge_published) = tokio::sync::watch::channel(None);
    if let Some(address) = forge_webhook_listen {
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .map_err(|e| StartError::Listen(address, e))?;
        tokio::spawn(crate::controller::forge::webhook::serve(
            listener,
            forge_published,
            metrics.clone(),
            shutdown.clone(),
        ));
    }
    let forge_setup = crate::controller::forge::Setup {
        secrets_namespace: forge_secrets_namespace,
        publish: Some(forge_publish),
    };
    if edge_service.is_none() {
        info!(
            "no --edge-service: sleeping branches wake only on a deploy, a keep-alive or a scale-up"
        );
    }

    let setup = crate::controller::Setup {
        policy,
        edge: edge_service,
        forge: forge_setup,
        release_workers,
    };

    if install_crds {
        crate::crd::install(&client)
            .await
            .map_err(StartError::InstallCrds)?;
    } else {
        wait_for_crds(&client).await;
    }
    // From here on /readyz also says whether the API server answers (the probe reads Projects,
    // so it starts once their CRD is there).
    tokio::spawn(crate::api_probe::run(client.clone(), ready.clone()));
    // With leader election, only the holder of the Lease reconciles; a standby is ready (its
    // /readyz says so) and waits.
    let mut leadership = match election {
        Some(election) => {
            let mut leadership = election
                .start(client.clone())
                .await
                .map_err(StartError::LeaderElection)?;
            ready.standby(true);
            tokio::select! {
                () = leadership.acquired() => {}
                () = shutdown.clone() => return finish(server, listen).await,
            }
            ready.standby(false);
            Some(leadership)
        }
        None => None,
    };
    let lost = async {
        match leadership.as_mut() {
            Some(leadership) => leadership.lost().await,
            None => std::future::pending().await,
        }
    };
    // Running reconciles get a bounded grace period after the signal, well inside Kubernetes'
    // terminationGracePeriodSeconds (30 s in the chart): everything is level-triggered, so an
    // interrupted reconcile is simply redone by the next operator.
    let grace = async {
        shutdown.clone().await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
        warn!("reconciles still running after {SHUTDOWN_GRACE:?}; exiting anyway");
    };
    tokio::select! {
        () = crate::controller::run(client, metrics, ready, setup, shutdown.clone()) => {}
        () = grace => {}
        // Another operator may be writing already: stop now, not after a grace period.
        () = lost => return Err(StartError::LostLease),
    }
    finish(server, listen).await
}

/// `oksa edge`: serves branch traffic until SIGTERM, then drains open connections.
pub async fn edge(args: crate::cli::EdgeArgs) -> Result<(), StartError> {
    let client = Client::try_default().await.map_err(StartError::Connect)?;
    let ready = Arc::new(crate::readiness::Readiness::default());
    let shutdown = shutdown_signal().shared();
    let health = tokio::net::TcpListener::bind(args.health_listen)
        .await
        .map_err(|e| StartError::Listen(args.health_listen, e))?;
    let traffic = shared_listener(args.listen).map_err(|e| StartError::Listen(args.listen, e))?;
    let server = tokio::spawn(crate::server::serve(
        health,
        Metrics::default(),
        ready.clone(),
        shutdown.clone(),
    ));
    tokio::spawn(crate::api_probe::run(client.clone(), ready.clone()));
    crate::edge::run(client, traffic, args.config(), ready, shutdown).await;
    finish(server, args.health_listen).await
}

/// A listener other processes may bind too (SO_REUSEPORT): the kernel spreads new connections
/// across every edge process on the port, so a new edge can start serving before the old one has
/// drained, outside Kubernetes as in a pod; the benchmark runs two replicas on one address this way.
fn shared_listener(address: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = match address {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    #[cfg(unix)]
    socket.set_reuseport(true)?;
    socket.bind(address)?;
    socket.listen(1024)
}

async fn finish(
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    listen: SocketAddr,
) -> Result<(), StartError> {
    match server.await {
        Ok(Err(error)) => Err(StartError::Listen(listen, error)),
        _ => Ok(()),
    }
}

/// Waits until both CRDs are established, so the operator started by Helm before (or together
/// with) its CRDs does not crash-loop.
async fn wait_for_crds(client: &Client) {
    let api = Api::<CustomResourceDefinition>::all(client.clone());
    for name in ["projects.oksa.dev", "branchreleases.oksa.dev"] {
        loop {
            let established = await_condition(api.clone(), name, conditions::is_crd_established());
            match tokio::time::timeout(Duration::from_secs(30), established).await {
                Ok(Ok(_)) => break,
                _ => info!(
                    crd = name,
                    "waiting for the CRD to be installed and established"
                ),
            }
        }
    }
}

/// Completes on SIGTERM (Kubernetes stopping the pod) or Ctrl-C. The handlers are installed
/// here, at once, not when the future is first polled: a SIGTERM during start-up must not kill the
/// process with the default action.
fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let term = async {
                match term.as_mut() {
                    Some(term) => {
                        term.recv().await;
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = ctrl_c => {}
                _ = term => {}
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        info!("shutting down: finishing running reconciles");
    }
}
