//! Passes a request on to an awake branch: along the route its path matches (see
//! `routing::route_for`), to a ready endpoint of that component's Service, round-robin.
//!
//! Bodies stream both ways, never held in memory. `Host` stays as the client sent it;
//! `X-Forwarded-For` gets the client's address, `-Proto` and `-Host` are kept from the ingress
//! controller or set. Hop-by-hop headers stop here, except an upgrade (WebSocket), which is passed
//! on and then joined byte for byte. A pod that refuses or does not answer the connection is
//! skipped for a while; a request without a body tries the next one at once.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::header::{CONNECTION, CONTENT_LENGTH, HOST, TRANSFER_ENCODING, UPGRADE};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode, Uri};
use axum::response::IntoResponse;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tracing::debug;

/// How long a connection to a pod may take before the pod counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long an unreachable pod is skipped.
const SKIP_FOR: Duration = Duration::from_secs(15);
/// Pods tried for one request without a body.
const TRIES: usize = 3;

/// Headers of one connection, never passed on (RFC 9110, 7.6.1).
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "upgrade",
];

pub struct Proxy {
    client: Client<HttpConnector, Body>,
    turn: AtomicUsize,
    unreachable: Mutex<HashMap<SocketAddr, Instant>>,
}

impl Default for Proxy {
    fn default() -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        connector.set_nodelay(true);
        Proxy {
            client: Client::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(60))
                .build(connector),
            turn: AtomicUsize::new(0),
            unreachable: Mutex::default(),
        }
    }
}

/// What the edge adds of its own to a proxied request.
pub struct Forwarding<'a> {
    /// Who connected to the edge (the ingress controller, or the client itself).
    pub peer: std::net::IpAddr,
    /// Headers to leave out besides hop-by-hop ones (a login the edge consumed).
    pub strip: &'a [HeaderName],
}

impl Proxy {
    /// Sends `request` to one of `addresses` and returns its answer; 502 when none can be
    /// reached, 503 when there is none.
    pub async fn pass(
        &self,
        mut request: Request<Incoming>,
        addresses: &[SocketAddr],
        forwarding: Forwarding<'_>,
    ) -> Response<Body> {
        if addresses.is_empty() {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                "no ready pod serves this path\n",
            )
                .into_response();
        }
        let upgrade = upgrade_asked(request.headers());
        let client_upgrade = upgrade.is_some().then(|| hyper::upgrade::on(&mut request));
        let (parts, body) = request.into_parts();
        let headers = forwarded_headers(&parts, upgrade.as_ref(), &forwarding);
        let retryable = !has_body(&parts.headers) && upgrade.is_none();
        let mut body = Some(Body::new(body));
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let mut last_error = String::new();
        for address in self.choose(addresses, if retryable { TRIES } else { 1 }) {
            let Ok(uri) = format!("http://{address}{path}").parse::<Uri>() else {
                return (StatusCode::BAD_REQUEST, "bad path\n").into_response();
            };
            let mut outgoing = Request::new(body.take().unwrap_or_else(Body::empty));
            *outgoing.method_mut() = parts.method.clone();
            *outgoing.uri_mut() = uri;
            *outgoing.headers_mut() = headers.clone();
            match self.client.request(outgoing).await {
                Ok(mut response) => {
                    if response.status() == StatusCode::SWITCHING_PROTOCOLS
                        && let Some(client_upgrade) = client_upgrade
                    {
                        join_upgrades(client_upgrade, hyper::upgrade::on(&mut response));
                    }
                    return response.map(Body::new);
                }
                Err(error) => {
                    if error.is_connect() {
                        self.unreachable
                            .lock()
                            .expect("unreachable")
                            .insert(address, Instant::now());
                    }
                    debug!(%address, %error, "the pod did not answer");
                    last_error = error.to_string();
                }
            }
        }
        (
            StatusCode::BAD_GATEWAY,
            format!("the branch did not answer ({last_error})\n"),
        )
            .into_response()
    }

    /// Up to `count` addresses to try, in turn, the recently unreachable ones last.
    fn choose(&self, addresses: &[SocketAddr], count: usize) -> Vec<SocketAddr> {
        let start = self.turn.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let mut unreachable = self.unreachable.lock().expect("unreachable");
        unreachable.retain(|_, at| now.duration_since(*at) < SKIP_FOR);
        let mut order: Vec<SocketAddr> = (0..addresses.len())
            .map(|i| addresses[(start + i) % addresses.len()])
            .collect();
        order.sort_by_key(|a| unreachable.contains_key(a));
        order.truncate(count.max(1));
        order
    }
}

/// The protocol a client asks to switch to (`Connection: upgrade` and `Upgrade: …`).
fn upgrade_asked(headers: &HeaderMap) -> Option<HeaderValue> {
    let asks = headers.get_all(CONNECTION).iter().any(|v| {
        v.to_str().is_ok_and(|v| {
            v.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
        })
    });
    asks.then(|| headers.get(UPGRADE).cloned()).flatten()
}

fn has_body(headers: &HeaderMap) -> bool {
    headers.contains_key(TRANSFER_ENCODING)
        || headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() != "0")
}

/// The client's headers as the pod gets them.
fn forwarded_headers(
    parts: &axum::http::request::Parts,
    upgrade: Option<&HeaderValue>,
    forwarding: &Forwarding,
) -> HeaderMap {
    let listed_in_connection: Vec<String> = parts
        .headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .collect();
    let mut headers = HeaderMap::with_capacity(parts.headers.len() + 3);
    for (name, value) in &parts.headers {
        let hop = HOP_BY_HOP.contains(&name.as_str())
            || listed_in_connection.iter().any(|t| t == name.as_str());
        if !hop && !forwarding.strip.contains(name) {
            headers.append(name.clone(), value.clone());
        }
    }
    // HTTP/2 clients name the host in the request line only.
    if !headers.contains_key(HOST)
        && let Some(authority) = parts.uri.authority()
        && let Ok(value) = HeaderValue::from_str(authority.as_str())
    {
        headers.insert(HOST, value);
    }
    // Each proxy appends who connected to it, as the ingress controller did before.
    let peer = forwarding.peer.to_canonical().to_string();
    let forwarded_for = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(list) if !list.trim().is_empty() => format!("{list}, {peer}"),
        _ => peer,
    };
    if let Ok(value) = HeaderValue::from_str(&forwarded_for) {
        headers.insert("x-forwarded-for", value);
    }
    if !headers.contains_key("x-forwarded-proto") {
        headers.insert("x-forwarded-proto", HeaderValue::from_static("http"));
    }
    if !headers.contains_key("x-forwarded-host")
        && let Some(host) = headers.get(HOST).cloned()
    {
        headers.insert("x-forwarded-host", host);
    }
    if let Some(protocol) = upgrade {
        headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(UPGRADE, protocol.clone());
    }
    headers
}

/// Joins the client's and the pod's upgraded connections until either closes.
fn join_upgrades(client: hyper::upgrade::OnUpgrade, pod: hyper::upgrade::OnUpgrade) {
    tokio::spawn(async move {
        let (Ok(client), Ok(pod)) = tokio::join!(client, pod) else {
            return;
        };
        let (mut client, mut pod) = (TokioIo::new(client), TokioIo::new(pod));
        let _ = tokio::io::copy_bidirectional(&mut client, &mut pod).await;
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(headers: &[(&'static str, &'static str)]) -> axum::http::request::Parts {
        let mut request = Request::builder().uri("/x?y=1");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.body(()).unwrap().into_parts().0
    }

    #[test]
    fn hop_by_hop_and_consumed_headers_stop_and_forwarding_is_said() {
        let parts = parts(&[
            ("host", "main.shop.example.com"),
            ("connection", "keep-alive, x-secret-hop"),
            ("x-secret-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("authorization", "Basic abc"),
            ("x-oksa-bypass", "token"),
            ("accept", "text/html"),
        ]);
        let strip = [
            axum::http::header::AUTHORIZATION,
            HeaderName::from_static("x-oksa-bypass"),
        ];
        let headers = forwarded_headers(
            &parts,
            None,
            &Forwarding {
                peer: "198.51.100.7".parse().unwrap(),
                strip: &strip,
            },
        );
        let names: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        assert_eq!(
            names,
            [
                "host",
                "accept",
                "x-forwarded-for",
                "x-forwarded-proto",
                "x-forwarded-host"
            ]
        );
        assert_eq!(headers["x-forwarded-for"], "198.51.100.7");
        assert_eq!(headers["x-forwarded-host"], "main.shop.example.com");
    }

    #[test]
    fn the_ingress_controllers_forwarding_is_kept_and_an_upgrade_passes() {
        let parts = parts(&[
            ("host", "main.shop.example.com"),
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
            ("x-forwarded-for", "203.0.113.9"),
            ("x-forwarded-proto", "https"),
        ]);
        let upgrade = upgrade_asked(&parts.headers);
        assert_eq!(upgrade.as_ref().unwrap(), "websocket");
        let headers = forwarded_headers(
            &parts,
            upgrade.as_ref(),
            &Forwarding {
                peer: "10.0.0.5".parse().unwrap(),
                strip: &[],
            },
        );
        assert_eq!(headers["x-forwarded-for"], "203.0.113.9, 10.0.0.5");
        assert_eq!(headers["x-forwarded-proto"], "https");
        assert_eq!(headers[CONNECTION], "upgrade");
        assert_eq!(headers[UPGRADE], "websocket");
    }

    #[test]
    fn unreachable_pods_come_last_and_the_turn_moves_on() {
        let proxy = Proxy::default();
        let addresses: Vec<SocketAddr> = ["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        let first = proxy.choose(&addresses, 1)[0];
        let second = proxy.choose(&addresses, 1)[0];
        assert_ne!(first, second, "round robin");
        proxy
            .unreachable
            .lock()
            .unwrap()
            .insert(addresses[0], Instant::now());
        for _ in 0..3 {
            let order = proxy.choose(&addresses, 3);
            assert_eq!(order.len(), 3);
            assert_eq!(order[2], addresses[0]);
        }
    }
}
