//! The edge's listener, hardened: a bound on open connections (past it, new ones are closed at
//! once instead of queueing in memory), a time limit on reading a request's headers (slow
//! clients are cut off), a bound on HTTP/2 streams per connection, and graceful draining at
//! shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioExecutor;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::sync::Semaphore;
use tracing::{info, warn};

/// Requests at once on one HTTP/2 connection.
const MAX_STREAMS: u32 = 100;

/// The connection limits (the per-client request rate is `limits::RateLimit`'s).
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    /// How long connections may finish their requests after the shutdown signal.
    pub drain: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_connections: 4096,
            header_read_timeout: Duration::from_secs(10),
            drain: Duration::from_secs(10),
        }
    }
}

/// Serves `handle` on `listener` until `shutdown`, then lets open connections drain.
pub async fn serve<H, F>(
    listener: tokio::net::TcpListener,
    limits: ConnectionLimits,
    handle: H,
    shutdown: impl Future<Output = ()> + Send,
) where
    H: Fn(hyper::Request<Incoming>, SocketAddr) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = hyper::Response<Body>> + Send + 'static,
{
    let open = Arc::new(Semaphore::new(limits.max_connections));
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: wait a moment rather than spin.
                    warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = open.clone().try_acquire_owned() else {
            // Full: closing at once costs nothing; keeping it would cost memory.
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let handle = handle.clone();
        let timeout = limits.header_read_timeout;
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let answer = handle(request, peer);
                async move { Ok::<_, Infallible>(answer.await) }
            });
            // HTTP/1.1 with upgrades (WebSocket), or HTTP/2 when the client speaks it.
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(timeout);
            builder
                .http2()
                .timer(TokioTimer::new())
                .keep_alive_interval(Some(timeout))
                .keep_alive_timeout(timeout)
                .max_concurrent_streams(MAX_STREAMS);
            let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            if let Err(error) = connection.await {
                tracing::debug!(%error, %peer, "connection ended with an error");
            }
            drop(permit);
        });
    }
    info!("the edge stopped accepting; draining open connections");
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(limits.drain, open.acquire_many(all)).await;
}
