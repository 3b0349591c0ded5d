//! How much one client may ask of the edge: a token bucket per client address, in bounded memory.
//! And who the client is.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

use crate::api::Cidr;
use crate::edge::protect::in_networks;

/// Clients remembered at most; past it, full buckets (idle clients) are forgotten first, and if
/// that frees nothing the oldest half goes.
const MAX_CLIENTS: usize = 100_000;

/// The proxies trusted to name the client by default: the private networks, where an ingress
/// controller in the cluster has its pods' addresses, and loopback (a sidecar in the edge's pod).
pub const DEFAULT_TRUSTED_PROXIES: &str =
    "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,100.64.0.0/10,127.0.0.0/8,fc00::/7,::1/128";

/// The client a request comes from. Its peer, unless the peer is a trusted proxy (the ingress
/// controller): then `X-Forwarded-For` read from the right, where each proxy appended the address
/// it saw, up to the first address that is not a trusted proxy itself (a load balancer in front
/// of the controller appends too). Anyone else's `X-Forwarded-For` is ignored: a pod that reaches
/// the edge directly cannot pass for an allowed network.
pub fn client_of(peer: IpAddr, forwarded_for: Option<&str>, trusted: &[Cidr]) -> IpAddr {
    let peer = peer.to_canonical();
    if !in_networks(peer, trusted) {
        return peer;
    }
    let mut client = peer;
    for hop in forwarded_for.unwrap_or_default().rsplit(',') {
        let Ok(address) = hop.trim().parse::<IpAddr>() else {
            break;
        };
        client = address.to_canonical();
        if !in_networks(client, trusted) {
            break;
        }
    }
    client
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

    fn trusted() -> Vec<Cidr> {
        DEFAULT_TRUSTED_PROXIES
            .split(',')
            .map(|n| crate::edge::protect::network(n).unwrap())
            .collect()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn behind_a_trusted_proxy_the_client_is_the_address_it_appended() {
        let controller = ip("10.0.0.9");
        assert_eq!(client_of(controller, None, &trusted()), controller);
        assert_eq!(
            client_of(controller, Some("1.2.3.4, 203.0.113.7"), &trusted()),
            ip("203.0.113.7"),
            "a client may write the first addresses, not the last"
        );
        assert_eq!(
            client_of(
                controller,
                Some("1.2.3.4, 203.0.113.7, 10.1.0.3"),
                &trusted()
            ),
            ip("203.0.113.7"),
            "a load balancer of the cluster before the controller appended too"
        );
        assert_eq!(
            client_of(controller, Some("garbage"), &trusted()),
            controller
        );
        assert_eq!(
            client_of(ip("::ffff:10.0.0.9"), Some("203.0.113.7"), &trusted()),
            ip("203.0.113.7")
        );
    }

    #[test]
    fn anyone_else_is_the_client_whatever_it_forwards() {
        let outside = ip("203.0.113.50");
        assert_eq!(client_of(outside, Some("10.9.9.9"), &trusted()), outside);
        assert_eq!(
            client_of(ip("10.0.0.9"), Some("10.9.9.9"), &[]),
            ip("10.0.0.9"),
            "no proxy trusted: the peer"
        );
        assert!(crate::edge::protect::network("10.0.0.0/33").is_err());
        assert!(crate::edge::protect::network("office").is_err());
        assert!(crate::edge::protect::network("fc00::/7").is_ok());
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
