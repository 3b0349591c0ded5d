//! The edge: `oksa edge`, the front door of branch URLs. Every branch that may sleep or is
//! protected is routed through it, always: it asks for a login where the branch is protected,
//! passes requests on to an awake branch's pods (counting them as the activity that keeps it
//! awake), and answers for a sleeping or waking one (the waiting page, the wake on a person's
//! request, a short hold for scripts).
//!
//! It runs as its own Deployment, every replica serving (no leader): the operator's Lease renewal
//! never shares a runtime with requests from the internet, and a failover of the operator leaves
//! the edge's endpoints as they are. Each project namespace's `oksa-edge` Service leads to the
//! ready edge pods: the operator mirrors the endpoints of the chart's edge Service into it (a route
//! may only name a Service of its own namespace).
//!
//! It answers only at hosts Oksa validated (see `index`), and holds its own watch caches.

pub mod activity;
pub mod answer;
pub mod backends;
pub mod caches;
pub mod cap;
pub mod index;
pub mod limits;
pub mod page;
pub mod protect;
pub mod proxy;
pub mod request;
pub mod server;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use kube::Client;
use tokio::sync::Semaphore;
use tracing::info;

use crate::readiness::Readiness;

/// A branch whose request was recorded this recently is not patched again (page reloads,
/// assets loading in parallel, many clients at once).
const RECORD_AT_MOST_EVERY: Duration = Duration::from_secs(10);

/// How the edge is run (`oksa edge`'s flags).
#[derive(Debug, Clone)]
pub struct EdgeConfig {
    /// Anonymous wakes per project per hour before the page asks for a click; clicks have a cap
    /// of the same size.
    pub cap_per_hour: u32,
    pub connections: server::ConnectionLimits,
    /// Requests per second of one client, and its burst.
    pub per_client_per_second: u32,
    pub per_client_burst: u32,
    /// Clients held at once while their branch wakes.
    pub max_held: usize,
    /// Proxies whose `X-Forwarded-For` names the client (the ingress controllers).
    pub trusted_proxies: Vec<crate::api::Cidr>,
}

impl Default for EdgeConfig {
    fn default() -> Self {
        EdgeConfig {
            cap_per_hour: 30,
            connections: server::ConnectionLimits::default(),
            per_client_per_second: 20,
            per_client_burst: 60,
            max_held: 512,
            trusted_proxies: limits::DEFAULT_TRUSTED_PROXIES
                .split(',')
                .filter_map(|n| protect::network(n).ok())
                .collect(),
        }
    }
}

/// Serves branch traffic on `listener` until `shutdown`; `ready` says when the caches are listed.
pub async fn run(
    client: Client,
    listener: tokio::net::TcpListener,
    config: EdgeConfig,
    ready: Arc<Readiness>,
    shutdown: impl Future<Output = ()> + Send,
) {
    let caches = caches::Caches::start(&client, ready);
    let edge = Arc::new(answer::Edge {
        caches,
        activity: activity::Activity::new(client.clone(), RECORD_AT_MOST_EVERY),
        traffic: activity::Activity::new(client, activity::MOST_EVERY),
        cap: cap::WakeCap::new(config.cap_per_hour),
        button_cap: cap::WakeCap::new(config.cap_per_hour),
        rate: limits::RateLimit::new(config.per_client_per_second, config.per_client_burst),
        holds: Semaphore::new(config.max_held),
        guard: protect::Guard::default(),
        proxy: proxy::Proxy::default(),
        trusted_proxies: config.trusted_proxies,
    });
    info!(listen = ?listener.local_addr().ok(), "serving the edge");
    let handle = move |request, peer: SocketAddr| answer::answer(edge.clone(), request, peer);
    server::serve(listener, config.connections, handle, shutdown).await;
}
