//! The waker: what the routes of a sleeping branch lead to. It wakes the branch on a person's
//! request (recording the activity on the BranchRelease; the reconcile does the rest), answers a
//! browser at once with a waiting page, holds other clients a few seconds, and never wakes for a
//! crawler, a health check or a `HEAD`.
//!
//! It runs in the operator (the leader: it needs the caches), reached through the `oksa-waker`
//! Service of each project namespace, whose endpoint is `--waker-address`.

pub mod cap;
pub mod page;
pub mod request;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::{
    ACCEPT, CACHE_CONTROL, CONTENT_TYPE, HOST, LOCATION, RETRY_AFTER, USER_AGENT,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;
use tracing::{info, warn};

use crate::api::{BranchRelease, LifecycleState};
use crate::controller::Context;
use crate::controller::branch_release::lifecycle::{LAST_ACTIVITY, LAST_ACTIVITY_SOURCE};
use crate::naming;
use cap::WakeCap;
use request::Intent;

/// How long a client that is not a browser is held while its branch wakes, before a 503.
const HOLD: Duration = Duration::from_secs(10);
/// A branch whose activity was recorded this recently is not patched again (page reloads,
/// assets loading in parallel).
const RECORD_AT_MOST_EVERY: Duration = Duration::from_secs(10);

/// How the operator serves its waker.
pub struct Waker {
    pub listener: tokio::net::TcpListener,
    /// Where the routes reach it: the operator pod's IP and the port (never loopback: the API
    /// server refuses such endpoints).
    pub address: SocketAddr,
    /// Anonymous wakes per project per hour before the page asks for a click.
    pub cap_per_hour: u32,
}

#[derive(Clone)]
struct Shared {
    ctx: Arc<Context>,
    cap: Arc<WakeCap>,
}

pub async fn serve(
    waker: Waker,
    ctx: Arc<Context>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let shared = Shared {
        ctx,
        cap: Arc::new(WakeCap::new(waker.cap_per_hour)),
    };
    let app = Router::new().fallback(answer).with_state(shared);
    let bound = waker.listener.local_addr().ok();
    info!(listen = ?bound, address = %waker.address, "serving the waker");
    if let Err(error) = axum::serve(waker.listener, app)
        .with_graceful_shutdown(shutdown)
        .await
    {
        warn!(%error, "the waker stopped");
    }
}

/// The BranchRelease served at `host`, from the caches.
fn release_at(ctx: &Context, host: &str) -> Option<Arc<BranchRelease>> {
    let host = host.split(':').next().unwrap_or(host).to_ascii_lowercase();
    ctx.stores.releases.state().into_iter().find(|release| {
        ctx.stores
            .projects
            .get(&kube::runtime::reflector::ObjectRef::new(
                &release.spec.project,
            ))
            .is_some_and(|project| {
                let name = naming::release_name(&release.spec.branch);
                naming::hosts(release, &project, &name).contains(&host)
            })
    })
}

fn header(headers: &HeaderMap, name: axum::http::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

async fn answer(State(shared): State<Shared>, request: Request) -> Response {
    let headers = request.headers();
    let Some(release) = header(headers, HOST).and_then(|h| release_at(&shared.ctx, h)) else {
        return (StatusCode::NOT_FOUND, "no branch is served at this host\n").into_response();
    };
    let path = request.uri().path().to_string();
    let path_and_query = request
        .uri()
        .path_and_query()
        .map_or("/".to_string(), |p| p.to_string());
    let intent = request::classify(
        request.method().as_str(),
        &path,
        header(headers, USER_AGENT),
        header(headers, ACCEPT),
    );
    let ctx = &shared.ctx;
    match intent {
        Intent::Robots => robots(),
        Intent::Status => status(&release),
        Intent::Look { browser } => waiting(&release, browser, page::Headline::Waking),
        Intent::WakeButton => {
            wake(ctx, &release).await;
            see_other("/")
        }
        Intent::Wake { browser } => {
            let state = state_of(&release);
            if page::asleep_on_purpose(&release) {
                return waiting(&release, browser, page::Headline::ScaledToZero);
            }
            if matches!(state, LifecycleState::Sleeping | LifecycleState::Expired) {
                if !shared.cap.allow(&release.spec.project, Instant::now()) {
                    return waiting(&release, browser, page::Headline::AskToWake);
                }
                wake(ctx, &release).await;
            }
            if browser {
                waiting(&release, true, page::Headline::Waking)
            } else {
                hold(ctx, &release, &path_and_query).await
            }
        }
    }
}

fn state_of(release: &BranchRelease) -> LifecycleState {
    release
        .status
        .as_ref()
        .and_then(|s| s.lifecycle.as_ref())
        .map_or(LifecycleState::Awake, |l| l.state)
}

/// Records a request as the branch's activity: the reconcile sees it and wakes the branch.
async fn wake(ctx: &Context, release: &BranchRelease) {
    // Whole seconds, as status keeps it.
    let now = crate::controller::branch_release::lifecycle::whole_seconds(Timestamp::now());
    let recent = release
        .annotations()
        .get(LAST_ACTIVITY)
        .and_then(|t| t.parse::<Timestamp>().ok())
        .is_some_and(|at| {
            now.duration_since(at)
                .try_into()
                .is_ok_and(|d: Duration| d < RECORD_AT_MOST_EVERY)
        });
    if recent {
        return;
    }
    let api = Api::<BranchRelease>::namespaced(
        ctx.client.clone(),
        &release.namespace().unwrap_or_default(),
    );
    let patch = json!({"metadata": {"annotations": {
        LAST_ACTIVITY: now.to_string(),
        LAST_ACTIVITY_SOURCE: crate::api::activity_source::REQUEST,
    }}});
    match api
        .patch(
            &release.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => {
            info!(branchrelease = %release.name_any(), "woken by a request");
            ctx.metrics
                .wrote("BranchRelease", &release.name_any(), "wake");
        }
        Err(error) => warn!(%error, branchrelease = %release.name_any(), "could not record a wake"),
    }
}

/// Holds a client that is not a browser until the branch is awake (then sends it back to the
/// same URL, which now leads to the application) or `HOLD` has passed (then 503).
async fn hold(ctx: &Context, release: &BranchRelease, path_and_query: &str) -> Response {
    let key = kube::runtime::reflector::ObjectRef::from_obj(release);
    let started = Instant::now();
    while started.elapsed() < HOLD {
        let current = ctx.stores.releases.get(&key);
        if current.as_deref().map(state_of) == Some(LifecycleState::Awake) {
            return Response::builder()
                .status(StatusCode::TEMPORARY_REDIRECT)
                .header(LOCATION, path_and_query)
                .header(CACHE_CONTROL, "no-store")
                .body(Body::empty())
                .expect("a redirect");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let current = ctx.stores.releases.get(&key);
    waiting(
        current.as_deref().unwrap_or(release),
        false,
        page::Headline::Waking,
    )
}

/// 503 with the waiting page (a browser) or a line of text; never cached, never indexed.
fn waiting(release: &BranchRelease, browser: bool, headline: page::Headline) -> Response {
    let (content_type, body) = if browser {
        ("text/html; charset=utf-8", page::html(release, headline))
    } else {
        (
            "text/plain; charset=utf-8",
            format!(
                "{} is {}; try again in a few seconds\n",
                release.spec.branch,
                match headline {
                    page::Headline::ScaledToZero => "scaled to zero",
                    page::Headline::AskToWake => "asleep (open it in a browser to wake it)",
                    page::Headline::Waking => "waking up",
                }
            ),
        )
    };
    let mut response = uncached(StatusCode::SERVICE_UNAVAILABLE, content_type, body);
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from_static("5"));
    response
}

/// An answer of the waker's own (the page, the progress): never cached, never indexed.
fn uncached(status: StatusCode, content_type: &'static str, body: String) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        "x-robots-tag",
        HeaderValue::from_static("noindex, nofollow"),
    );
    response
}

fn status(release: &BranchRelease) -> Response {
    let body = serde_json::to_string(&page::progress(release)).unwrap_or_default();
    uncached(StatusCode::OK, "application/json", body)
}

fn robots() -> Response {
    let mut response = (StatusCode::OK, "User-agent: *\nDisallow: /\n").into_response();
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    response
}

fn see_other(location: &'static str) -> Response {
    Response::builder()
        .status(StatusCode::SEE_OTHER)
        .header(LOCATION, location)
        .body(Body::empty())
        .expect("a redirect")
}
