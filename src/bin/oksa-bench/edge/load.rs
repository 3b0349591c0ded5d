//! The load: HTTP/1.1 keep-alive connections, each sending its next request when the last is
//! answered (closed loop), optionally paced to a rate. Every answer is timed from the request
//! sent to its whole body read.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::body::Body;
use hyper_util::rt::TokioIo;
use serde::Serialize;

use crate::stats::{Summary, summarize};

/// Where the load goes: an address and the Host it names. GETs, or POSTs with a short body (which
/// no proxy retries on another connection).
#[derive(Debug, Clone)]
pub struct Target {
    pub address: SocketAddr,
    pub host: String,
    pub post: bool,
}

/// What a run got back.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Outcome {
    /// Answers with a 2xx code, timed.
    pub latency: Summary,
    pub ok: u64,
    /// Answers with another code, by code.
    pub other_codes: std::collections::BTreeMap<u16, u64>,
    /// Connections refused, and requests whose connection broke before the answer.
    pub failed: u64,
    pub seconds: f64,
    pub per_second: f64,
}

/// Requests now waiting for their answer, across the runs that share it.
#[derive(Debug, Default)]
pub struct InFlight(AtomicUsize);

impl InFlight {
    pub fn now(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

/// Runs `connections` connections at `target` for `duration`; each paced to `per_connection`
/// requests a second when given.
pub async fn run(
    target: &Target,
    connections: usize,
    duration: Duration,
    per_connection: Option<f64>,
    in_flight: Arc<InFlight>,
) -> Outcome {
    let started = Instant::now();
    let deadline = started + duration;
    let workers: Vec<_> = (0..connections)
        .map(|_| {
            let target = target.clone();
            let in_flight = in_flight.clone();
            tokio::spawn(
                async move { connection(target, deadline, per_connection, in_flight).await },
            )
        })
        .collect();
    let mut tally = Tally::default();
    for worker in workers {
        if let Ok(part) = worker.await {
            tally.add(part);
        }
    }
    tally.outcome(started.elapsed())
}

#[derive(Debug, Default)]
struct Tally {
    latencies_ms: Vec<f64>,
    other_codes: std::collections::BTreeMap<u16, u64>,
    failed: u64,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.latencies_ms.extend(other.latencies_ms);
        for (code, count) in other.other_codes {
            *self.other_codes.entry(code).or_default() += count;
        }
        self.failed += other.failed;
    }

    fn outcome(self, elapsed: Duration) -> Outcome {
        let ok = self.latencies_ms.len() as u64;
        let seconds = elapsed.as_secs_f64();
        Outcome {
            latency: summarize(self.latencies_ms),
            ok,
            other_codes: self.other_codes,
            failed: self.failed,
            seconds,
            per_second: ok as f64 / seconds.max(f64::EPSILON),
        }
    }
}

/// One connection's loop: reconnects after a failure (after a short pause, so a refusing
/// address does not spin).
async fn connection(
    target: Target,
    deadline: Instant,
    per_connection: Option<f64>,
    in_flight: Arc<InFlight>,
) -> Tally {
    let mut tally = Tally::default();
    let mut pace = per_connection.map(|rate| {
        let mut interval = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        interval
    });
    let mut sender: Option<Sender> = None;
    while Instant::now() < deadline {
        if let Some(pace) = pace.as_mut() {
            pace.tick().await;
        }
        // A connection the server closed between requests is no failure: open another.
        let ready = match sender.take().filter(|s| !s.is_closed()) {
            Some(ready) => Some(ready),
            None => open(target.address).await,
        };
        let Some(mut ready) = ready else {
            tally.failed += 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        let (method, body) = match target.post {
            true => (hyper::Method::POST, Body::from("order=1")),
            false => (hyper::Method::GET, Body::empty()),
        };
        let request = hyper::Request::builder()
            .method(method)
            .uri("/")
            .header("host", &target.host)
            .body(body)
            .expect("a request");
        let sent = Instant::now();
        in_flight.0.fetch_add(1, Ordering::Relaxed);
        let answer = async {
            let response = ready.send_request(request).await.ok()?;
            let code = response.status().as_u16();
            let body = Body::new(response.into_body());
            axum::body::to_bytes(body, 1 << 20).await.ok()?;
            Some(code)
        }
        .await;
        in_flight.0.fetch_sub(1, Ordering::Relaxed);
        match answer {
            Some(code) if (200..300).contains(&code) => {
                tally
                    .latencies_ms
                    .push(sent.elapsed().as_secs_f64() * 1000.0);
                sender = Some(ready);
            }
            Some(code) => {
                *tally.other_codes.entry(code).or_default() += 1;
                sender = Some(ready);
            }
            None => tally.failed += 1,
        }
    }
    tally
}

type Sender = hyper::client::conn::http1::SendRequest<Body>;

async fn open(address: SocketAddr) -> Option<Sender> {
    let stream = tokio::time::timeout(
        Duration::from_secs(3),
        tokio::net::TcpStream::connect(address),
    )
    .await
    .ok()?
    .ok()?;
    stream.set_nodelay(true).ok()?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .ok()?;
    tokio::spawn(connection);
    Some(sender)
}
