//! The API server's clock, as the operator's "now" for what it does on its own (expiry).
//!
//! Lifecycle deadlines are judged against timestamps the API server wrote (creation, status
//! times). A leader whose clock runs ahead would see every branch expire early; so Oksa reads
//! the API server's `Date` (one request every 30 s) and keeps the difference.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Client;
use tracing::{info, warn};

/// How often the API server's clock is read.
const EVERY: Duration = Duration::from_secs(30);
/// A difference smaller than this is the `Date` header's one-second resolution, not skew.
const NOISE_MS: i64 = 1500;

/// The API server's time minus ours, in milliseconds (0 until measured).
static OFFSET_MS: AtomicI64 = AtomicI64::new(0);

/// Now, by the API server's clock (as last measured).
pub fn now() -> Timestamp {
    let offset = SignedDuration::from_millis(OFFSET_MS.load(Ordering::Relaxed));
    Timestamp::now()
        .saturating_add(offset)
        .unwrap_or(Timestamp::MAX)
}

/// The measured difference, for logs and tests.
pub fn offset() -> SignedDuration {
    SignedDuration::from_millis(OFFSET_MS.load(Ordering::Relaxed))
}

/// The offset one `Date` header shows: the server's second, taken at its middle, against the
/// middle of the request on our clock. Differences within the header's resolution count as none.
pub fn offset_of(server_date: Timestamp, sent: Timestamp, took: Duration) -> i64 {
    let ours = sent.as_millisecond() + took.as_millis() as i64 / 2;
    let theirs = server_date.as_millisecond() + 500;
    let offset = theirs - ours;
    if offset.abs() < NOISE_MS { 0 } else { offset }
}

/// Measures until the process stops.
pub async fn run(client: Client) {
    let mut logged = 0;
    loop {
        match measure(&client).await {
            Ok(offset) => {
                OFFSET_MS.store(offset, Ordering::Relaxed);
                if offset != logged {
                    info!(
                        offset_ms = offset,
                        "the API server's clock differs from ours; expiry uses the API server's"
                    );
                    logged = offset;
                }
            }
            Err(why) => warn!(%why, "could not read the API server's clock"),
        }
        tokio::time::sleep(EVERY).await;
    }
}

async fn measure(client: &Client) -> Result<i64, String> {
    let request = http::Request::get("/version")
        .body(kube::client::Body::empty())
        .map_err(|e| e.to_string())?;
    let sent = Timestamp::now();
    let started = Instant::now();
    let response = client.send(request).await.map_err(|e| e.to_string())?;
    let took = started.elapsed();
    let date = response
        .headers()
        .get(http::header::DATE)
        .and_then(|d| d.to_str().ok())
        .ok_or("no Date header")?;
    let server = parse_http_date(date).ok_or_else(|| format!("unreadable Date {date:?}"))?;
    Ok(offset_of(server, sent, took))
}

/// An HTTP date (`Sun, 06 Dec 2026 06:04:57 GMT`, RFC 9110's preferred form).
pub fn parse_http_date(text: &str) -> Option<Timestamp> {
    k8s_openapi::jiff::fmt::rfc2822::parse(text)
        .ok()
        .map(|zoned| zoned.timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_ahead_is_measured_and_a_second_of_resolution_is_not_skew() {
        let ours: Timestamp = "2026-12-06T06:00:00Z".parse().unwrap();
        let date = parse_http_date("Sun, 06 Dec 2026 06:00:30 GMT").unwrap();
        let offset = offset_of(date, ours, Duration::from_millis(20));
        assert!((30_000..31_000).contains(&offset), "{offset}");
        let same = parse_http_date("Sun, 06 Dec 2026 06:00:00 GMT").unwrap();
        assert_eq!(offset_of(same, ours, Duration::from_millis(20)), 0);
        assert!(parse_http_date("yesterday").is_none());
    }
}
