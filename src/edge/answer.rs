//! What the edge answers a request: first who may pass (a protected branch), then, for an
//! awake branch, the branch itself (see `proxy`), counted as activity; for a sleeping or waking
//! one, the waiting page, the progress poll, the wake button, `robots.txt`, and a short hold for
//! clients that are not browsers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::header::{
    ACCEPT, AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, HOST, LOCATION, RETRY_AFTER, USER_AGENT,
    WWW_AUTHENTICATE,
};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use kube::runtime::reflector::ObjectRef;
use tokio::sync::Semaphore;

use super::activity::Activity;
use super::caches::Caches;
use super::cap::WakeCap;
use super::limits::{RateLimit, client_of};
use super::page;
use super::protect::{Guard, Verdict};
use super::proxy::{Forwarding, Proxy};
use super::request::{self, Intent};
use crate::api::{BYPASS_HEADER, BranchRelease, LifecycleState};
use crate::{naming, routing};

/// How long a client that is not a browser is held while its branch wakes, before a 503.
const HOLD: Duration = Duration::from_secs(10);

pub struct Edge {
    pub caches: Caches,
    /// Wakes asked for by requests.
    pub activity: Activity,
    /// Requests an awake branch served: a slot of their own, so that they never hold back a
    /// wake that comes right after the branch fell asleep.
    pub traffic: Activity,
    /// Wakes by a request, per project per hour.
    pub cap: WakeCap,
    /// Wakes by the page's button (past `cap`), per project per hour: the button is capped too.
    pub button_cap: WakeCap,
    pub rate: RateLimit,
    /// Clients held at once; past it, a held client gets its 503 at once.
    pub holds: Semaphore,
    pub guard: Guard,
    pub proxy: Proxy,
    /// Proxies whose `X-Forwarded-For` names the client (see `limits::client_of`).
    pub trusted_proxies: Vec<crate::api::Cidr>,
}

pub async fn answer(edge: Arc<Edge>, request: Request<Incoming>, peer: SocketAddr) -> Response {
    let headers = request.headers();
    let client = client_of(
        peer.ip(),
        header(headers, "x-forwarded-for"),
        &edge.trusted_proxies,
    );
    if !edge.rate.allow(client, Instant::now()) {
        return too_many("too many requests\n", "1");
    }
    // HTTP/2 names the host in the request line.
    let host = header(headers, HOST.as_str())
        .or_else(|| request.uri().authority().map(|a| a.as_str()))
        .unwrap_or_default()
        .to_string();
    let Some((release, project)) = edge.caches.release_at(&host).and_then(|release| {
        let project = edge.caches.project(&release.spec.project)?;
        Some((release, project))
    }) else {
        return (StatusCode::NOT_FOUND, "no branch is served at this host\n").into_response();
    };
    let mut strip = vec![HeaderName::from_static(BYPASS_HEADER)];
    if let Some(protection) = routing::protection(&release, &project) {
        match edge.guard.check(protection, client, headers).await {
            Verdict::Pass => {}
            Verdict::LoggedIn => strip.push(AUTHORIZATION),
            Verdict::Ask => return log_in(&release),
            Verdict::TooManyFailures => {
                return too_many("too many failed logins; wait a minute\n", "10");
            }
        }
    }
    let key = ObjectRef::from_obj(release.as_ref());
    let path = request.uri().path().to_string();
    let location = relative_location(request.uri().path_and_query().map_or("/", |p| p.as_str()));
    let intent = request::classify(
        request.method().as_str(),
        &path,
        header(headers, USER_AGENT.as_str()),
        header(headers, ACCEPT.as_str()),
    );
    if state_of(&release) == LifecycleState::Awake && !path.starts_with(request::OWN_PATHS) {
        if matches!(intent, Intent::Wake { .. }) {
            // Real use keeps the branch awake; bots, monitors and HEADs do not. The slot is
            // taken here, so only the request that writes costs a task.
            let every = super::activity::traffic_interval(&release);
            if edge.traffic.take_slot(&key, Instant::now(), every) {
                let edge = edge.clone();
                tokio::spawn(async move {
                    edge.traffic
                        .write(&key, crate::api::activity_source::REQUEST)
                        .await;
                });
            }
        }
        return pass(&edge, &release, request, peer, &strip).await;
    }
    match intent {
        Intent::Robots => robots(),
        Intent::Status => status(&release),
        Intent::Look { browser } => waiting(&release, browser, page::Headline::Waking),
        Intent::WakeButton => {
            if !same_origin(headers, &host) {
                return (
                    StatusCode::FORBIDDEN,
                    "the wake button works from its page only\n",
                )
                    .into_response();
            }
            if !edge.button_cap.allow(&release.spec.project, Instant::now()) {
                return waiting(&release, true, page::Headline::AskToWake);
            }
            edge.activity
                .record(&key, crate::api::activity_source::REQUEST)
                .await;
            see_other("/")
        }
        Intent::Wake { browser } => {
            if page::asleep_on_purpose(&release) {
                return waiting(&release, browser, page::Headline::ScaledToZero);
            }
            if matches!(
                state_of(&release),
                LifecycleState::Sleeping | LifecycleState::Expired
            ) {
                if !edge.cap.allow(&release.spec.project, Instant::now()) {
                    return waiting(&release, browser, page::Headline::AskToWake);
                }
                edge.activity
                    .record(&key, crate::api::activity_source::REQUEST)
                    .await;
            }
            if browser {
                waiting(&release, true, page::Headline::Waking)
            } else {
                hold(&edge, &key, &release, &location).await
            }
        }
    }
}

/// To the pods of the component whose route the path matches.
async fn pass(
    edge: &Edge,
    release: &BranchRelease,
    request: Request<Incoming>,
    peer: SocketAddr,
    strip: &[HeaderName],
) -> Response {
    let routes = routing::routes(release);
    let Some(route) = routing::route_for(&routes, request.uri().path()) else {
        return (
            StatusCode::NOT_FOUND,
            "no route of this branch serves this path\n",
        )
            .into_response();
    };
    let service = naming::component_object_name(
        &naming::release_name(&release.spec.branch),
        &route.component,
    );
    let backends = edge.caches.backends();
    let addresses = backends.addresses(
        release.metadata.namespace.as_deref().unwrap_or_default(),
        &service,
        &route.port_name,
    );
    edge.proxy
        .pass(
            request,
            addresses,
            Forwarding {
                peer: peer.ip(),
                strip,
            },
        )
        .await
}

/// 401 with the browser's login prompt.
fn log_in(release: &BranchRelease) -> Response {
    let mut response = uncached(
        StatusCode::UNAUTHORIZED,
        "text/plain; charset=utf-8",
        "this branch is protected: log in, or send its bypass token\n".to_string(),
    );
    let realm = format!(
        "Basic realm=\"{} (Oksa)\", charset=\"UTF-8\"",
        release.spec.branch.replace(['"', '\\'], "")
    );
    if let Ok(value) = HeaderValue::from_str(&realm) {
        response.headers_mut().insert(WWW_AUTHENTICATE, value);
    }
    response
}

fn too_many(message: &'static str, retry_after: &'static str) -> Response {
    let mut response = (StatusCode::TOO_MANY_REQUESTS, message).into_response();
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from_static(retry_after));
    response
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn state_of(release: &BranchRelease) -> LifecycleState {
    release
        .status
        .as_ref()
        .and_then(|s| s.lifecycle.as_ref())
        .map_or(LifecycleState::Awake, |l| l.state)
}

/// The request's own path and query as a redirect that stays on this host: `//elsewhere/` or
/// `/\elsewhere/` would send a browser to another site.
pub fn relative_location(path_and_query: &str) -> String {
    format!("/{}", path_and_query.trim_start_matches(['/', '\\']))
}

/// Sent by the page of this very host: a browser says so in `Sec-Fetch-Site` or `Origin`, which
/// another site's page cannot forge.
pub fn same_origin(headers: &HeaderMap, host: &str) -> bool {
    if let Some(site) = header(headers, "sec-fetch-site") {
        return site == "same-origin";
    }
    header(headers, "origin")
        .and_then(|origin| origin.split_once("://"))
        .is_some_and(|(_, origin_host)| {
            super::index::normalize(origin_host) == super::index::normalize(host)
                && port_of(origin_host) == port_of(host)
        })
}

fn port_of(host: &str) -> Option<&str> {
    host.rsplit_once(':')
        .map(|(_, port)| port)
        .filter(|p| p.chars().all(|c| c.is_ascii_digit()))
}

/// Holds a client that is not a browser until the branch is awake (then sends it back to the
/// same URL, which now leads to the application) or `HOLD` has passed (then 503). Past the
/// limit of held clients, the 503 comes at once.
async fn hold(
    edge: &Edge,
    key: &ObjectRef<BranchRelease>,
    release: &BranchRelease,
    location: &str,
) -> Response {
    let Ok(_held) = edge.holds.try_acquire() else {
        return waiting(release, false, page::Headline::Waking);
    };
    let started = Instant::now();
    while started.elapsed() < HOLD {
        let current = edge.caches.release(key);
        if current.as_deref().map(state_of) == Some(LifecycleState::Awake) {
            return Response::builder()
                .status(StatusCode::TEMPORARY_REDIRECT)
                .header(LOCATION, location)
                .header(CACHE_CONTROL, "no-store")
                .body(Body::empty())
                .expect("a redirect");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let current = edge.caches.release(key);
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

/// An answer of the edge's own (the page, the progress): never cached, never indexed.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_stay_on_the_host() {
        assert_eq!(relative_location("/a?b=1"), "/a?b=1");
        assert_eq!(
            relative_location("//elsewhere.example/x"),
            "/elsewhere.example/x"
        );
        assert_eq!(
            relative_location("/\\elsewhere.example/"),
            "/elsewhere.example/"
        );
        assert_eq!(relative_location(""), "/");
    }

    #[test]
    fn the_button_counts_only_from_its_own_page() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut map = HeaderMap::new();
            for (name, value) in pairs {
                map.insert(*name, HeaderValue::from_static(value));
            }
            map
        };
        let host = "main.shop.example.com";
        assert!(same_origin(
            &headers(&[("sec-fetch-site", "same-origin")]),
            host
        ));
        assert!(!same_origin(
            &headers(&[("sec-fetch-site", "cross-site")]),
            host
        ));
        assert!(same_origin(
            &headers(&[("origin", "https://main.shop.example.com")]),
            host
        ));
        assert!(!same_origin(
            &headers(&[("origin", "https://evil.example")]),
            host
        ));
        assert!(!same_origin(
            &headers(&[("origin", "https://main.shop.example.com.evil.example")]),
            host
        ));
        assert!(!same_origin(&headers(&[]), host), "no proof, no wake");
    }
}
