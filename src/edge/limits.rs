//! How much one client may ask of the edge: a token bucket per client address, in bounded memory.
//!
//! Behind the ingress controller every connection comes from it, so the client is the last
//! address of `X-Forwarded-For` (the one the controller appended); a client that reaches the edge
//! directly is its peer address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

/// Clients remembered at most; past it, full buckets (idle clients) are forgotten first, and if
/// that frees nothing the oldest half goes.
const MAX_CLIENTS: usize = 100_000;

/// The client a request comes from.
pub fn client_of(peer: IpAddr, forwarded_for: Option<&str>) -> IpAddr {
    forwarded_for
        .and_then(|list| list.rsplit(',').next())
        .and_then(|last| last.trim().parse().ok())
        .unwrap_or(peer)
}

pub struct RateLimit {
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RateLimit {
    pub fn new(per_second: u32, burst: u32) -> RateLimit {
        RateLimit::with_rate(f64::from(per_second), burst)
    }

    /// A rate below one a second (failed logins: a few a minute).
    pub fn with_rate(per_second: f64, burst: u32) -> RateLimit {
        RateLimit {
            per_second,
            burst: f64::from(burst.max(1)),
            buckets: Mutex::default(),
        }
    }

    /// Whether `client` has a token left at `now`, without taking it.
    pub fn has_token(&self, client: IpAddr, now: Instant) -> bool {
        let buckets = self.buckets.lock().expect("rate limit");
        buckets.get(&client).is_none_or(|bucket| {
            bucket.tokens + now.duration_since(bucket.at).as_secs_f64() * self.per_second >= 1.0
        })
    }

    /// Takes one request's token from `client`'s bucket at `now`: false when it has none left.
    pub fn allow(&self, client: IpAddr, now: Instant) -> bool {
        let mut buckets = self.buckets.lock().expect("rate limit");
        if buckets.len() >= MAX_CLIENTS && !buckets.contains_key(&client) {
            self.forget_idle(&mut buckets, now);
        }
        let (per_second, burst) = (self.per_second, self.burst);
        let bucket = buckets.entry(client).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let refill = now.duration_since(bucket.at).as_secs_f64() * per_second;
        bucket.tokens = (bucket.tokens + refill).min(burst);
        bucket.at = now;
        if bucket.tokens < 1.0 {
            return false;
        }
        bucket.tokens -= 1.0;
        true
    }

    fn forget_idle(&self, buckets: &mut HashMap<IpAddr, Bucket>, now: Instant) {
        let (per_second, burst) = (self.per_second, self.burst);
        buckets
            .retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * per_second < burst);
        if buckets.len() >= MAX_CLIENTS {
            let mut ages: Vec<Instant> = buckets.values().map(|b| b.at).collect();
            ages.sort_unstable();
            let cut = ages[ages.len() / 2];
            buckets.retain(|_, b| b.at > cut);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_client_is_the_address_the_proxy_appended() {
        let peer: IpAddr = "10.0.0.9".parse().unwrap();
        assert_eq!(client_of(peer, None), peer);
        assert_eq!(
            client_of(peer, Some("1.2.3.4, 203.0.113.7")),
            "203.0.113.7".parse::<IpAddr>().unwrap(),
            "a client may write the first addresses, not the last"
        );
        assert_eq!(client_of(peer, Some("garbage")), peer);
    }

    #[test]
    fn a_client_gets_its_burst_then_its_rate_and_others_are_not_affected() {
        let limit = RateLimit::new(10, 5);
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        let start = Instant::now();
        assert_eq!((0..20).filter(|_| limit.allow(a, start)).count(), 5);
        assert!(limit.allow(b, start));
        assert!(!limit.allow(a, start + Duration::from_millis(50)));
        assert!(
            limit.allow(a, start + Duration::from_millis(100)),
            "one token per 100 ms"
        );
    }
}
