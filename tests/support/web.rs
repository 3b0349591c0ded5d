//! Plain HTTP for tests that go through the plane's Traefik: a small server on this machine, an
//! EndpointSlice that leads to it, and raw requests with the headers a test chooses.
//!
//! The plane's pods are kwok's, and their addresses lead nowhere; the API server refuses loopback
//! addresses in endpoints. So a Service that must answer gets an EndpointSlice of the test's own,
//! pointing at a server of the test on the machine's address.

use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub use oksa::demo::protected::machine_address;

/// Serves `body` to every request on a free port of every address; returns the port.
pub async fn serve(body: &'static str) -> u16 {
    spawn_server(move |mut stream| async move {
        read_head(&mut stream).await;
        answer_ok(&mut stream, body).await;
    })
    .await
}

/// Serves, to every request, `name` and then the request's head as received (the headers a
/// proxy passed on); returns the port.
pub async fn serve_echo(name: &'static str) -> u16 {
    spawn_server(move |mut stream| async move {
        let head = read_head(&mut stream).await;
        answer_ok(&mut stream, &format!("{name}\n{head}")).await;
    })
    .await
}

/// Switches every request to the protocol it asks for (a WebSocket handshake, without its key
/// arithmetic: the proxy in between does not check it) and then echoes every byte; returns the
/// port.
pub async fn serve_upgrade_echo() -> u16 {
    spawn_server(|mut stream| async move {
        let head = read_head(&mut stream).await;
        if !head.to_ascii_lowercase().contains("upgrade: websocket") {
            let _ = stream
                .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                .await;
            return;
        }
        let _ = stream
            .write_all(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
            )
            .await;
        let (mut reader, mut writer) = stream.split();
        let _ = tokio::io::copy(&mut reader, &mut writer).await;
    })
    .await
}

/// Runs `connection` for every connection on a free port of every address; returns the port.
async fn spawn_server<F, Fut>(connection: F) -> u16
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(connection(stream));
        }
    });
    port
}

async fn answer_ok(stream: &mut tokio::net::TcpStream, body: &str) {
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
}

/// Reads a request's head (up to the blank line), byte by byte: nothing after it is consumed.
async fn read_head(stream: &mut tokio::net::TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 16_384 {
        match stream.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// An EndpointSlice for Service `service` with one ready endpoint at `address:port`, under the
/// Service's port name `port_name`.
pub fn endpoints(service: &str, port_name: &str, address: &str, port: u16) -> EndpointSlice {
    serde_json::from_value(json!({
        "metadata": {"name": format!("{service}-test"), "labels": {
            "kubernetes.io/service-name": service,
            "endpointslice.kubernetes.io/managed-by": "oksa-tests",
            // As the endpoint controller copies it from an Oksa Service: the edge watches these.
            "oksa.dev/release": service}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [address], "conditions": {"ready": true}}],
        "ports": [{"name": port_name, "port": port, "protocol": "TCP"}],
    }))
    .unwrap()
}

/// An HTTP/1.0 response: status code, headers (names lowercased) and body.
#[derive(Debug, Default)]
pub struct Answer {
    pub code: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sends `method path` to `address` (host:port) with the Host header and these extra headers.
/// Code 0 when nothing answers.
pub async fn request(
    address: &str,
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Answer {
    // A request that hangs (an address that leads nowhere) counts as no answer.
    request_within(
        std::time::Duration::from_secs(5),
        address,
        method,
        host,
        path,
        headers,
    )
    .await
}

/// As `request`, waiting up to `limit` for the answer (a client held while its branch wakes).
pub async fn request_within(
    limit: std::time::Duration,
    address: &str,
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Answer {
    tokio::time::timeout(limit, send(address, method, host, path, headers))
        .await
        .unwrap_or_default()
}

async fn send(
    address: &str,
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Answer {
    let Ok(mut stream) = tokio::net::TcpStream::connect(address).await else {
        return Answer::default();
    };
    let mut request = format!("{method} {path} HTTP/1.0\r\nHost: {host}\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("Content-Length: 0\r\n\r\n");
    let mut response = String::new();
    if stream.write_all(request.as_bytes()).await.is_err()
        || stream.read_to_string(&mut response).await.is_err()
    {
        return Answer::default();
    }
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let mut lines = head.lines();
    let code = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Answer {
        code,
        headers,
        body: body.to_string(),
    }
}
