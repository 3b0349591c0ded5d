//! Where the edge answers: the ready pods behind the chart's edge Service, followed by a watch of
//! that Service's EndpointSlices. Each project namespace's `oksa-edge` Service gets a copy (see
//! `model::project::waker_objects`): a route may only name a Service of its own namespace.

use futures::StreamExt;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Api, Client};
use tracing::{info, warn};

use crate::model::edge_service::{EdgeEndpoints, EdgeService, from_slices};

/// Follows the edge Service's endpoints into `current`, calling `changed` after each change.
pub async fn follow(
    client: Client,
    service: EdgeService,
    current: tokio::sync::watch::Sender<Option<EdgeEndpoints>>,
    changed: impl Fn() + Send,
) {
    let api = Api::<EndpointSlice>::namespaced(client, &service.namespace);
    let selector = format!("kubernetes.io/service-name={}", service.name);
    let (store, writer) = reflector::store();
    let mut events = std::pin::pin!(
        watcher(api, watcher::Config::default().labels(&selector))
            .default_backoff()
            .reflect(writer)
    );
    info!(namespace = %service.namespace, service = %service.name, "following the edge's endpoints");
    while let Some(event) = events.next().await {
        if let Err(error) = event {
            warn!(%error, "watching the edge's endpoints");
            continue;
        }
        let endpoints = from_slices(store.state().iter().map(|s| s.as_ref()));
        let differs = current.send_if_modified(|now| {
            let differs = *now != endpoints;
            *now = endpoints.clone();
            differs
        });
        if differs {
            info!(?endpoints, "the edge's endpoints changed");
            changed();
        }
    }
}
