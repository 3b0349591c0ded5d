//! The webhook receiver: `POST /forge/<project>`. A delivery counts only when it is signed with
//! the Project's webhook secret (`X-Hub-Signature-256`, GitHub's and Gitea's header) and names
//! the Project's repository; then it asks for a sync, and the sync decides from the forge's own
//! lists. Served by every replica; only the leader acts, and a standby answers 503 so that the
//! forge shows the delivery as failed (the periodic sync still catches what it said).

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use kube::runtime::reflector::ObjectRef;
use tracing::{info, warn};

use super::Forges;
use crate::metrics::{Metrics, WebhookLabels};
use crate::model::forge::webhook::{self, Delivery};

/// Pull-request payloads run to a few hundred KiB; nothing relevant is larger.
const LARGEST_DELIVERY: usize = 5 * 1024 * 1024;

#[derive(Clone)]
struct Shared {
    forges: tokio::sync::watch::Receiver<Option<Arc<Forges>>>,
    metrics: Metrics,
}

/// Serves the receiver on `listener` until `shutdown`. `forges` is set once this replica leads.
pub async fn serve(
    listener: tokio::net::TcpListener,
    forges: tokio::sync::watch::Receiver<Option<Arc<Forges>>>,
    metrics: Metrics,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/forge/{project}", post(receive))
        .layer(DefaultBodyLimit::max(LARGEST_DELIVERY))
        .with_state(Shared { forges, metrics });
    let address = listener.local_addr()?;
    info!(%address, "receiving forge webhooks at POST /forge/<project>");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

async fn receive(
    State(shared): State<Shared>,
    Path(project): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, &'static str) {
    let (status, result, text) = judge(&shared, &project, &headers, &body).await;
    shared
        .metrics
        .forge_webhooks
        .get_or_create(&WebhookLabels { result })
        .inc();
    if result == "bad_signature" {
        warn!(%project, "a forge webhook with a missing or wrong signature was refused");
    }
    (status, text)
}

async fn judge(
    shared: &Shared,
    project_name: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> (StatusCode, &'static str, &'static str) {
    let Some(forges) = shared.forges.borrow().clone() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "not_leader",
            "this replica does not lead; the forge should deliver again\n",
        );
    };
    let project = forges.projects.get(&ObjectRef::new(project_name));
    let Some((project, forge)) = project.and_then(|p| {
        let forge = p.spec.forge.clone()?;
        Some((p, forge))
    }) else {
        return (
            StatusCode::NOT_FOUND,
            "unknown_project",
            "no such Project with a forge\n",
        );
    };
    let secret = match forges.credentials(project_name, &forge).await {
        Ok(credentials) => credentials.webhook_secret,
        Err(_) => None,
    };
    let Some(secret) = secret else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "unreadable",
            "this Project's webhook secret cannot be read; see its ForgeConnected condition\n",
        );
    };
    let signature = headers
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !webhook::signed(&secret, body, signature) {
        return (
            StatusCode::UNAUTHORIZED,
            "bad_signature",
            "signature missing or wrong\n",
        );
    }
    let event = headers
        .get("x-github-event")
        .or_else(|| headers.get("x-gitea-event"))
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    match webhook::read(event, body) {
        Ok(Delivery::Sync { repository }) if repository.eq_ignore_ascii_case(&forge.repository) => {
            forges.sync_soon(&kube::ResourceExt::name_any(project.as_ref()));
            (StatusCode::ACCEPTED, "sync", "syncing\n")
        }
        Ok(_) => (StatusCode::OK, "ignored", "ignored\n"),
        Err(_) => (
            StatusCode::BAD_REQUEST,
            "unreadable",
            "not a JSON delivery\n",
        ),
    }
}
