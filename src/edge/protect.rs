//! Who passes the edge into a protected branch (see `api::Protection`): a client of an allowed
//! network, a request with a bypass token, or a person with a valid login.
//!
//! A bcrypt check costs tens of milliseconds of CPU on purpose, so a login that passed is
//! remembered (by a hash of the credentials and the user's line: changing the password forgets
//! it) and checks run a few at a time on the blocking pool. Failed logins and wrong tokens spend
//! a client's small allowance; with none left it gets 429 and no check at all. Nothing of a
//! credential is logged or kept in clear.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use base64::Engine;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use super::limits::RateLimit;
use crate::api::{BYPASS_HEADER, Cidr, Protection};

/// How long a login that passed is remembered.
const REMEMBER: Duration = Duration::from_secs(600);
/// Logins remembered at most; past it, expired ones go, and if that frees nothing, all.
const MAX_REMEMBERED: usize = 10_000;
/// Failed logins or wrong tokens a client may make in a burst, then one per `FAILURE_REFILL`.
const FAILURE_BURST: u32 = 10;
const FAILURE_REFILL_PER_SECOND: f64 = 1.0 / 6.0;
/// bcrypt checks at once (the rest wait): a flood of logins cannot take every core.
const CHECKS_AT_ONCE: usize = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// An allowed network or a bypass token.
    Pass,
    /// A valid login (its Authorization header is the edge's, not passed on).
    LoggedIn,
    /// 401: log in (the browser asks).
    Ask,
    /// 429: too many failed attempts from this client lately.
    TooManyFailures,
}

pub struct Guard {
    remembered: Mutex<HashMap<[u8; 32], Instant>>,
    failures: RateLimit,
    checks: Semaphore,
}

impl Default for Guard {
    fn default() -> Self {
        Guard {
            remembered: Mutex::default(),
            failures: RateLimit::with_rate(FAILURE_REFILL_PER_SECOND, FAILURE_BURST),
            checks: Semaphore::new(CHECKS_AT_ONCE),
        }
    }
}

impl Guard {
    pub async fn check(
        &self,
        protection: &Protection,
        client: IpAddr,
        headers: &HeaderMap,
    ) -> Verdict {
        if in_networks(client, &protection.allow_cidrs) {
            return Verdict::Pass;
        }
        let now = Instant::now();
        if let Some(token) = headers.get(BYPASS_HEADER) {
            if !self.failures.has_token(client, now) {
                return Verdict::TooManyFailures;
            }
            if token_matches(token.as_bytes(), protection) {
                return Verdict::Pass;
            }
            self.failures.allow(client, now);
            return Verdict::Ask;
        }
        let Some((user, password)) = headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(basic_credentials)
        else {
            return Verdict::Ask;
        };
        let Some(line) = protection
            .users
            .iter()
            .filter_map(|l| l.split())
            .find(|(name, _)| *name == user)
        else {
            self.failures.allow(client, now);
            return self.ask_or_stop(client);
        };
        let key = remember_key(line.1, &user, &password);
        if self.remembered(&key, now) {
            return Verdict::LoggedIn;
        }
        if !self.failures.has_token(client, now) {
            return Verdict::TooManyFailures;
        }
        let hash = line.1.to_string();
        let Ok(_turn) = self.checks.acquire().await else {
            return Verdict::Ask;
        };
        let valid = tokio::task::spawn_blocking(move || {
            bcrypt::verify(password.as_bytes(), &hash).unwrap_or(false)
        })
        .await
        .unwrap_or(false);
        if valid {
            self.remember(key, Instant::now());
            Verdict::LoggedIn
        } else {
            self.failures.allow(client, Instant::now());
            self.ask_or_stop(client)
        }
    }

    fn ask_or_stop(&self, client: IpAddr) -> Verdict {
        if self.failures.has_token(client, Instant::now()) {
            Verdict::Ask
        } else {
            Verdict::TooManyFailures
        }
    }

    fn remembered(&self, key: &[u8; 32], now: Instant) -> bool {
        let remembered = self.remembered.lock().expect("logins");
        remembered
            .get(key)
            .is_some_and(|at| now.duration_since(*at) < REMEMBER)
    }

    fn remember(&self, key: [u8; 32], now: Instant) {
        let mut remembered = self.remembered.lock().expect("logins");
        if remembered.len() >= MAX_REMEMBERED {
            remembered.retain(|_, at| now.duration_since(*at) < REMEMBER);
            if remembered.len() >= MAX_REMEMBERED {
                remembered.clear();
            }
        }
        remembered.insert(key, now);
    }
}

/// (user, password) of a `Basic` Authorization header.
pub fn basic_credentials(header: &str) -> Option<(String, String)> {
    let (scheme, encoded) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

fn remember_key(hash: &str, user: &str, password: &str) -> [u8; 32] {
    let mut digest = Sha256::new();
    for part in [hash, user, password] {
        digest.update((part.len() as u64).to_be_bytes());
        digest.update(part.as_bytes());
    }
    digest.finalize().into()
}

/// Whether the token's SHA-256 is one of the protection's (compared in full, whatever matches
/// first: the time taken says nothing of how close a guess came).
pub fn token_matches(token: &[u8], protection: &Protection) -> bool {
    let hex: String = Sha256::digest(token)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    protection
        .bypass_token_sha256
        .iter()
        .fold(false, |found, known| {
            let same = known.0.len() == hex.len()
                && known
                    .0
                    .bytes()
                    .zip(hex.bytes())
                    .fold(0u8, |diff, (a, b)| diff | (a ^ b))
                    == 0;
            found | same
        })
}

/// Whether `client` is inside one of `networks` (a network that does not parse matches
/// nothing: the CRD's pattern is looser than an address).
pub fn in_networks(client: IpAddr, networks: &[Cidr]) -> bool {
    let client = client.to_canonical();
    networks.iter().any(|network| contains(&network.0, client))
}

/// `text` as a network, or why it is none (for settings, where a typo must stop the start).
pub fn network(text: &str) -> Result<Cidr, String> {
    match parse_network(text.trim()) {
        Some(_) => Ok(Cidr(text.trim().to_string())),
        None => Err(format!(
            "{text:?} is not a network in CIDR notation (10.0.0.0/8, fc00::/7)"
        )),
    }
}

fn parse_network(network: &str) -> Option<(IpAddr, u32)> {
    let (address, length) = network.split_once('/')?;
    let address = address.parse::<IpAddr>().ok()?.to_canonical();
    let length = length.parse::<u32>().ok()?;
    let most = if address.is_ipv4() { 32 } else { 128 };
    (length <= most).then_some((address, length))
}

fn contains(network: &str, client: IpAddr) -> bool {
    let Some((address, length)) = parse_network(network) else {
        return false;
    };
    match (address, client) {
        (IpAddr::V4(net), IpAddr::V4(ip)) if length <= 32 => {
            let mask = u32::MAX.checked_shl(32 - length).unwrap_or(0);
            u32::from(net) & mask == u32::from(ip) & mask
        }
        (IpAddr::V6(net), IpAddr::V6(ip)) if length <= 128 => {
            let mask = u128::MAX.checked_shl(128 - length).unwrap_or(0);
            u128::from(net) & mask == u128::from(ip) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{HtpasswdLine, TokenHash};
    use axum::http::HeaderValue;

    fn networks(list: &[&str]) -> Vec<Cidr> {
        list.iter().map(|n| Cidr(n.to_string())).collect()
    }

    #[test]
    fn networks_match_by_prefix_in_both_families() {
        let list = networks(&["203.0.113.0/24", "2001:db8::/32", "10.1.2.3/32", "bad/8"]);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(in_networks(ip("203.0.113.77"), &list));
        assert!(!in_networks(ip("203.0.114.1"), &list));
        assert!(in_networks(ip("10.1.2.3"), &list));
        assert!(!in_networks(ip("10.1.2.4"), &list));
        assert!(in_networks(ip("2001:db8:1::5"), &list));
        assert!(in_networks(ip("::ffff:203.0.113.5"), &list), "mapped IPv4");
        assert!(in_networks(ip("8.8.8.8"), &networks(&["0.0.0.0/0"])));
        assert!(!in_networks(ip("8.8.8.8"), &networks(&["8.8.8.8/33"])));
    }

    #[test]
    fn basic_credentials_are_read_and_other_schemes_are_not() {
        // "ada:s3cret:with:colons"
        let header = "Basic YWRhOnMzY3JldDp3aXRoOmNvbG9ucw==";
        assert_eq!(
            basic_credentials(header),
            Some(("ada".into(), "s3cret:with:colons".into()))
        );
        assert_eq!(basic_credentials("Bearer abc"), None);
        assert_eq!(basic_credentials("Basic !!!"), None);
    }

    fn protection() -> Protection {
        Protection {
            users: vec![HtpasswdLine(format!(
                "ada:{}",
                bcrypt::hash("s3cret", 4).unwrap()
            ))],
            bypass_token_sha256: vec![TokenHash(
                // Some other token's.
                "7f4b6b5e0f8b3c7b1a73c8b1d5b2b0e1c0f1f8b1f9e2a7a3c6e5d4b3a2918070".into(),
            )],
            ..Protection::default()
        }
    }

    #[tokio::test]
    async fn a_login_passes_once_checked_and_failures_run_out() {
        let guard = Guard::default();
        let protection = protection();
        let client: IpAddr = "198.51.100.7".parse().unwrap();
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
            headers
        };
        let basic = |user: &str, password: &str| {
            with(&format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
            ))
        };
        assert_eq!(
            guard.check(&protection, client, &HeaderMap::new()).await,
            Verdict::Ask
        );
        assert_eq!(
            guard
                .check(&protection, client, &basic("ada", "s3cret"))
                .await,
            Verdict::LoggedIn
        );
        for _ in 0..FAILURE_BURST - 1 {
            assert_eq!(
                guard
                    .check(&protection, client, &basic("ada", "wrong"))
                    .await,
                Verdict::Ask
            );
        }
        assert_eq!(
            guard
                .check(&protection, client, &basic("ada", "wrong"))
                .await,
            Verdict::TooManyFailures
        );
        assert_eq!(
            guard
                .check(&protection, client, &basic("ada", "s3cret"))
                .await,
            Verdict::LoggedIn,
            "a login checked before needs no new check"
        );
        let other: IpAddr = "198.51.100.8".parse().unwrap();
        assert_eq!(
            guard.check(&protection, other, &basic("eve", "x")).await,
            Verdict::Ask
        );
    }

    #[test]
    fn a_token_passes_only_by_its_whole_hash() {
        let mut protection = protection();
        let hex: String = Sha256::digest(b"ci-token")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert!(!token_matches(b"ci-token", &protection));
        protection.bypass_token_sha256.push(TokenHash(hex));
        assert!(token_matches(b"ci-token", &protection));
        assert!(!token_matches(b"ci-token ", &protection));
        assert!(!token_matches(b"", &protection));
    }
}
