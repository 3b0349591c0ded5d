//! The branch's server: answers every request with a short body, on keep-alive connections, on a
//! free port of every address, on a thread and runtime of its own (so the load's tasks do not
//! delay its answers).

use std::convert::Infallible;

use axum::body::Body;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

pub const BODY: &str = "hello from the branch\n";

/// Starts the server; returns its port.
pub fn start() -> std::io::Result<u16> {
    let listener = std::net::TcpListener::bind("0.0.0.0:0")?;
    listener.set_nonblocking(true)?;
    let port = listener.local_addr()?.port();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for the upstream server");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("the listener");
            while let Ok((stream, _)) = listener.accept().await {
                let _ = stream.set_nodelay(true);
                tokio::spawn(async move {
                    let answer = service_fn(|_request| async {
                        Ok::<_, Infallible>(hyper::Response::new(Body::from(BODY)))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), answer)
                        .await;
                });
            }
        });
    });
    Ok(port)
}
