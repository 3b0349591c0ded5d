//! What a flood may not break, watched while it runs: the operator's Lease, a protected host's
//! login, and how fast a change reaches its Deployment. And the slow clients that ride along.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serde::Serialize;
use serde_json::json;
use tokio::io::AsyncWriteExt;

use oksa::api::BranchRelease;

use crate::stats::{Summary, summarize};

/// Times `count` image changes of branch `main`, `gap` apart, each from the patch to its
/// Deployment carrying the new image; `round` makes the images new each time.
pub async fn changes(
    client: &Client,
    namespace: &str,
    count: usize,
    gap: Duration,
    round: &str,
    timeout: Duration,
) -> Result<Summary, String> {
    let releases = Api::<BranchRelease>::namespaced(client.clone(), namespace);
    let deployments = Api::<Deployment>::namespaced(client.clone(), namespace);
    let mut took = Vec::new();
    for i in 0..count {
        tokio::time::sleep(gap).await;
        let image = format!("{}:{round}{i}", super::setup::NEVER_READY);
        let patch = json!({"spec": {"components": [{"name": "web", "containers": [{"name": "web",
            "image": image, "ports": [{"containerPort": 8080}]}]}]}});
        let started = Instant::now();
        releases
            .patch("main", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|e| format!("changing main's image: {e}"))?;
        loop {
            let current = deployments
                .get("main-web")
                .await
                .ok()
                .and_then(|d| d.spec.template.spec?.containers.first()?.image.clone());
            if current.as_deref() == Some(image.as_str()) {
                took.push(started.elapsed().as_secs_f64() * 1000.0);
                break;
            }
            if started.elapsed() > timeout {
                return Err(format!("{image} did not reach main-web within {timeout:?}"));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
    Ok(summarize(took))
}

/// The operator's Lease as seen once a second: who held it, and the longest time its renewal
/// stood still.
#[derive(Debug, Default, Clone, Serialize)]
pub struct LeaseWatch {
    pub looks: u64,
    pub holder_changes: u64,
    pub longest_without_renewal_s: f64,
}

pub async fn watch_lease(client: &Client, namespace: &str, duration: Duration) -> LeaseWatch {
    let leases = Api::<Lease>::namespaced(client.clone(), namespace);
    let started = Instant::now();
    let mut watch = LeaseWatch::default();
    let (mut holder, mut renewed, mut renewed_seen) = (None, None, Instant::now());
    while started.elapsed() < duration {
        if let Ok(lease) = leases.get(oksa::leader::LEASE_NAME).await {
            let spec = lease.spec.unwrap_or_default();
            watch.looks += 1;
            if holder.is_some() && holder != spec.holder_identity {
                watch.holder_changes += 1;
            }
            holder = spec.holder_identity;
            let renew = spec.renew_time.map(|t| t.0);
            if renew != renewed {
                renewed = renew;
                renewed_seen = Instant::now();
            }
        }
        watch.longest_without_renewal_s = watch
            .longest_without_renewal_s
            .max(renewed_seen.elapsed().as_secs_f64());
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    watch
}

/// A protected host asked without a login once a second: what it answered.
#[derive(Debug, Default, Clone, Serialize)]
pub struct GuardWatch {
    pub asked: u64,
    pub login_asked: u64,
    /// Let through without a login: must stay 0.
    pub passed: u64,
    /// No answer within 5 s, or another code.
    pub other: u64,
}

pub async fn watch_guard(traefik: SocketAddr, host: &str, duration: Duration) -> GuardWatch {
    let started = Instant::now();
    let mut watch = GuardWatch::default();
    while started.elapsed() < duration {
        watch.asked += 1;
        let asked = oksa::demo::protected::status(traefik, host, None);
        match tokio::time::timeout(Duration::from_secs(5), asked).await {
            Ok(Some(401)) => watch.login_asked += 1,
            Ok(Some(code)) if (200..400).contains(&code) => watch.passed += 1,
            _ => watch.other += 1,
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    watch
}

/// Slow clients: each sends a request line and then a byte of header every two seconds,
/// reconnecting when cut off, until the end.
#[derive(Debug, Default, Clone, Serialize)]
pub struct SlowClients {
    pub clients: usize,
    pub connections: u64,
    /// Connections the edge closed before their headers were complete.
    pub cut_off: u64,
}

pub async fn slow_clients(edge: SocketAddr, clients: usize, duration: Duration) -> SlowClients {
    let deadline = Instant::now() + duration;
    let tasks: Vec<_> = (0..clients)
        .map(|_| tokio::spawn(slow_client(edge, deadline)))
        .collect();
    let mut total = SlowClients {
        clients,
        ..Default::default()
    };
    for task in tasks {
        if let Ok((connections, cut_off)) = task.await {
            total.connections += connections;
            total.cut_off += cut_off;
        }
    }
    total
}

async fn slow_client(edge: SocketAddr, deadline: Instant) -> (u64, u64) {
    let (mut connections, mut cut_off) = (0, 0);
    while Instant::now() < deadline {
        let Ok(mut stream) = tokio::net::TcpStream::connect(edge).await else {
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        };
        connections += 1;
        if stream
            .write_all(b"GET / HTTP/1.1\r\nHost: slow.bench.test\r\nX-Slow: ")
            .await
            .is_err()
        {
            cut_off += 1;
            continue;
        }
        loop {
            if Instant::now() >= deadline {
                return (connections, cut_off);
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
            if stream.write_all(b"x").await.is_err() || closed(&mut stream).await {
                cut_off += 1;
                break;
            }
        }
    }
    (connections, cut_off)
}

/// Whether the peer closed the connection (or answered, which for a slow client also ends it).
async fn closed(stream: &mut tokio::net::TcpStream) -> bool {
    let mut byte = [0u8; 1];
    matches!(
        tokio::time::timeout(Duration::from_millis(1), stream.peek(&mut byte)).await,
        Ok(Ok(_) | Err(_))
    )
}
