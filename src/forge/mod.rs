//! Talking to a forge over HTTPS: paged lists with conditional requests (an unchanged list costs
//! GitHub no rate), JSON writes, and the forge's own rate limit respected. What to ask and how to
//! read the answers is `model::forge::provider`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use http::{HeaderValue, Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::api::ForgeProvider;
use crate::model::forge::provider;

/// Why a forge request failed.
#[derive(Debug, thiserror::Error)]
pub enum ForgeError {
    #[error("cannot reach the forge: {0}")]
    Unreachable(String),
    #[error("the forge refused {method} {path}: HTTP {status}: {message}")]
    Refused {
        method: Method,
        path: String,
        status: u16,
        message: String,
    },
    #[error("the forge's rate limit is used up until {0:?} from now")]
    RateLimited(Duration),
    #[error("cannot read the forge's answer to {0}: {1}")]
    Decode(String, String),
}

impl ForgeError {
    /// A short word for metrics and conditions.
    pub fn kind(&self) -> &'static str {
        match self {
            ForgeError::Unreachable(_) => "unreachable",
            ForgeError::Refused {
                status: 401 | 403, ..
            } => "unauthorized",
            ForgeError::Refused { status: 404, .. } => "not_found",
            ForgeError::Refused { .. } => "refused",
            ForgeError::RateLimited(_) => "rate_limited",
            ForgeError::Decode(..) => "decode",
        }
    }
}

/// Requests per forge request: each one waits at most this long.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Pages of one list at most (5,000 branches at GitHub's 100 a page).
const MOST_PAGES: usize = 50;
/// Below this many requests left, only writes go out until the limit resets.
const RATE_RESERVE: u64 = 100;

type Https = hyper_rustls::HttpsConnector<HttpConnector>;

/// One forge connection (its token), shared by a project's syncs and reports.
pub struct ForgeClient {
    http: HttpClient<Https, Full<Bytes>>,
    provider: ForgeProvider,
    authorization: String,
    /// URL → (ETag, body) of the last full answer, for `If-None-Match`.
    cached: Mutex<HashMap<String, (String, Bytes)>>,
    /// When the forge said its rate limit resets, once it is low.
    rate_low_until: Mutex<Option<Instant>>,
}

/// What one request cost.
#[derive(Debug, Default, Clone, Copy)]
pub struct Spent {
    pub requests: u64,
    /// Answered from the cache (`304 Not Modified`): free on GitHub.
    pub not_modified: u64,
    /// Unanswered, refused or unreadable.
    pub failed: u64,
}

impl Spent {
    /// Answered as asked (neither from the cache nor failed).
    pub fn ok(&self) -> u64 {
        self.requests - self.not_modified - self.failed
    }

    fn count<T>(&mut self, result: Result<T, ForgeError>) -> Result<T, ForgeError> {
        if result.is_err() {
            self.failed += 1;
        }
        result
    }
}

impl ForgeClient {
    pub fn new(provider: ForgeProvider, token: &str) -> Result<ForgeClient, ForgeError> {
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()
            .map_err(|e| ForgeError::Unreachable(format!("no root certificates: {e}")))?
            .https_or_http()
            .enable_http1()
            .build();
        Ok(ForgeClient {
            http: HttpClient::builder(TokioExecutor::new()).build(https),
            provider,
            authorization: provider::auth_header(provider, token),
            cached: Mutex::default(),
            rate_low_until: Mutex::default(),
        })
    }

    /// Every page of a list, each page's body.
    pub async fn list(&self, url: &str, spent: &mut Spent) -> Result<Vec<Bytes>, ForgeError> {
        self.check_rate(false)?;
        let mut pages = Vec::new();
        let mut next = Some(url.to_string());
        while let Some(url) = next.take() {
            if pages.len() >= MOST_PAGES {
                break;
            }
            let (body, link) = self.get(&url, spent).await?;
            pages.push(body);
            next = link.as_deref().and_then(provider::next_page);
        }
        Ok(pages)
    }

    /// One page (or object): its body and its `Link` header.
    pub async fn get(
        &self,
        url: &str,
        spent: &mut Spent,
    ) -> Result<(Bytes, Option<String>), ForgeError> {
        let cached = self.cached.lock().expect("forge cache").get(url).cloned();
        let mut request = self.request(Method::GET, url);
        if let Some((etag, _)) = &cached
            && let Ok(value) = HeaderValue::from_str(etag)
        {
            request = request.header(header::IF_NONE_MATCH, value);
        }
        let request = request
            .body(Full::default())
            .map_err(|e| ForgeError::Unreachable(e.to_string()))?;
        let sent = self.send(request, spent).await;
        let (status, headers, body) = spent.count(sent)?;
        let link = headers
            .get(header::LINK)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        if status == StatusCode::NOT_MODIFIED
            && let Some((_, body)) = cached
        {
            spent.not_modified += 1;
            return Ok((body, link));
        }
        spent.count(check(&Method::GET, url, status, &body))?;
        if let Some(etag) = headers.get(header::ETAG).and_then(|v| v.to_str().ok()) {
            self.cached
                .lock()
                .expect("forge cache")
                .insert(url.to_string(), (etag.to_string(), body.clone()));
        }
        Ok((body, link))
    }

    /// A JSON write (POST or PATCH); the answer's body.
    pub async fn write(
        &self,
        method: Method,
        url: &str,
        json: &serde_json::Value,
        spent: &mut Spent,
    ) -> Result<Bytes, ForgeError> {
        self.check_rate(true)?;
        let request = self
            .request(method.clone(), url)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(json.to_string())))
            .map_err(|e| ForgeError::Unreachable(e.to_string()))?;
        let sent = self.send(request, spent).await;
        let (status, _, body) = spent.count(sent)?;
        spent.count(check(&method, url, status, &body))?;
        Ok(body)
    }

    fn request(&self, method: Method, url: &str) -> http::request::Builder {
        Request::builder()
            .method(method)
            .uri(url)
            .header(header::AUTHORIZATION, &self.authorization)
            .header(header::ACCEPT, "application/json")
            .header(header::USER_AGENT, "oksa")
    }

    async fn send(
        &self,
        request: Request<Full<Bytes>>,
        spent: &mut Spent,
    ) -> Result<(StatusCode, http::HeaderMap, Bytes), ForgeError> {
        spent.requests += 1;
        let response = tokio::time::timeout(TIMEOUT, self.http.request(request))
            .await
            .map_err(|_| ForgeError::Unreachable(format!("no answer within {TIMEOUT:?}")))?
            .map_err(|e| ForgeError::Unreachable(error_chain(&e)))?;
        let (parts, body) = response.into_parts();
        self.note_rate(&parts.headers);
        let body = tokio::time::timeout(TIMEOUT, body.collect())
            .await
            .map_err(|_| ForgeError::Unreachable("the answer stalled".into()))?
            .map_err(|e| ForgeError::Unreachable(e.to_string()))?
            .to_bytes();
        Ok((parts.status, parts.headers, body))
    }

    /// GitHub says how many requests are left and when the count resets; Gitea has no such
    /// limit by default. Below the reserve, reads wait for the reset (writes, the reports
    /// people see, still go).
    fn note_rate(&self, headers: &http::HeaderMap) {
        let number = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
        };
        let (Some(remaining), Some(reset)) =
            (number("x-ratelimit-remaining"), number("x-ratelimit-reset"))
        else {
            return;
        };
        let mut low = self.rate_low_until.lock().expect("forge rate");
        *low = (remaining < RATE_RESERVE).then(|| {
            let now_unix = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs();
            Instant::now() + Duration::from_secs(reset.saturating_sub(now_unix))
        });
    }

    fn check_rate(&self, write: bool) -> Result<(), ForgeError> {
        let low = *self.rate_low_until.lock().expect("forge rate");
        match low {
            Some(until) if !write && until > Instant::now() => {
                Err(ForgeError::RateLimited(until - Instant::now()))
            }
            _ => Ok(()),
        }
    }

    pub fn provider(&self) -> ForgeProvider {
        self.provider
    }
}

fn check(method: &Method, url: &str, status: StatusCode, body: &Bytes) -> Result<(), ForgeError> {
    if status.is_success() {
        return Ok(());
    }
    let message: String = String::from_utf8_lossy(body).chars().take(200).collect();
    Err(ForgeError::Refused {
        method: method.clone(),
        path: url.split('?').next().unwrap_or(url).to_string(),
        status: status.as_u16(),
        message,
    })
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
