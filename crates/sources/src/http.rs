//! The outbound HTTP client stack.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full, Limited};
use hyper::Request;
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tower::limit::ConcurrencyLimit;
use tower::timeout::Timeout;
use tower::{Service, ServiceExt};

/// Largest response body read.
pub const MAX_RESPONSE_BYTES: usize = 64 << 20;

/// Why a request failed, after retries.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HttpError {
    #[error("bad URL {0:?}")]
    Url(String),
    #[error("{url}: {message}")]
    Transport { url: String, message: String },
    #[error("{url}: timed out after {ms} ms")]
    Timeout { url: String, ms: u64 },
    #[error("{url}: HTTP {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
        /// The server's `Retry-After`, in milliseconds (delta-seconds form).
        retry_after_ms: Option<u64>,
    },
    #[error("{url}: response larger than {MAX_RESPONSE_BYTES} bytes")]
    TooLarge { url: String },
}

impl HttpError {
    fn retryable(&self) -> bool {
        match self {
            HttpError::Transport { .. } | HttpError::Timeout { .. } => true,
            HttpError::Status { status, .. } => *status >= 500 || *status == 429,
            HttpError::Url(_) | HttpError::TooLarge { .. } => false,
        }
    }
}

/// A token bucket of retries: each request deposits 0.1, each retry costs
/// 1, with a floor refilled at `min_per_sec`.
#[derive(Debug)]
struct Budget {
    tokens: f64,
    last: Instant,
    min_per_sec: f64,
}

impl Budget {
    fn deposit(&mut self) {
        self.refill();
        self.tokens = (self.tokens + 0.1).min(100.0);
    }

    fn refill(&mut self) {
        let now = Instant::now();
        let dt = now.duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + dt * self.min_per_sec).min(100.0);
    }

    fn withdraw(&mut self) -> bool {
        self.refill();
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

type Inner = ConcurrencyLimit<Timeout<Client<HttpConnector, Full<Bytes>>>>;

/// The client: concurrency limit, timeout, retries within a budget.
struct Post<'a> {
    body: Bytes,
    headers: &'a [(&'a str, &'a str)],
}

pub struct HttpClient {
    inner: Inner,
    timeout: Duration,
    retries: u32,
    budget: Mutex<Budget>,
    bearer: Option<String>,
}

impl HttpClient {
    pub fn new(
        timeout: Duration,
        max_concurrency: usize,
        retries: u32,
        bearer: Option<String>,
    ) -> Self {
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let inner = tower::ServiceBuilder::new()
            .concurrency_limit(max_concurrency.max(1))
            .timeout(timeout)
            .service(client);
        Self {
            inner,
            timeout,
            retries,
            budget: Mutex::new(Budget {
                tokens: 10.0,
                last: Instant::now(),
                min_per_sec: 1.0,
            }),
            bearer,
        }
    }

    async fn once(&self, url: &str, post: Option<&Post<'_>>) -> Result<Bytes, HttpError> {
        let uri: hyper::Uri = url.parse().map_err(|_| HttpError::Url(url.to_string()))?;
        let mut req = match post {
            Some(p) => {
                let mut r = Request::post(uri);
                for (k, v) in p.headers {
                    r = r.header(*k, *v);
                }
                r
            }
            None => Request::get(uri),
        };
        if let Some(t) = &self.bearer {
            req = req.header(hyper::header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let req = req
            .body(Full::new(post.map(|p| p.body.clone()).unwrap_or_default()))
            .map_err(|e| HttpError::Url(format!("{url}: {e}")))?;
        let mut svc = self.inner.clone();
        let resp = svc
            .ready()
            .await
            .map_err(|e| self.transport(url, e))?
            .call(req)
            .await
            .map_err(|e| self.transport(url, e))?;
        let status = resp.status();
        let retry_after_ms = resp
            .headers()
            .get(hyper::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|s| s.saturating_mul(1000));
        let body = Limited::new(resp.into_body(), MAX_RESPONSE_BYTES)
            .collect()
            .await
            .map_err(|_| HttpError::TooLarge {
                url: url.to_string(),
            })?
            .to_bytes();
        if !status.is_success() {
            return Err(HttpError::Status {
                url: url.to_string(),
                status: status.as_u16(),
                body: String::from_utf8_lossy(&body).chars().take(300).collect(),
                retry_after_ms,
            });
        }
        Ok(body)
    }

    fn transport(&self, url: &str, e: tower::BoxError) -> HttpError {
        if e.is::<tower::timeout::error::Elapsed>() {
            HttpError::Timeout {
                url: url.to_string(),
                ms: self.timeout.as_millis() as u64,
            }
        } else {
            HttpError::Transport {
                url: url.to_string(),
                message: e.to_string(),
            }
        }
    }

    /// GET `url`; retries retryable failures with backoff (100 ms, doubling)
    /// while the budget allows.
    pub async fn get(&self, url: &str) -> Result<Bytes, HttpError> {
        self.request(url, None).await
    }

    /// POST a JSON body to `url`, with the same retries.
    pub async fn post_json(&self, url: &str, body: Vec<u8>) -> Result<Bytes, HttpError> {
        self.post(
            url,
            Bytes::from(body),
            &[("content-type", "application/json")],
        )
        .await
    }

    /// POST `body` with `headers` to `url`, with the same retries.
    pub async fn post(
        &self,
        url: &str,
        body: Bytes,
        headers: &[(&str, &str)],
    ) -> Result<Bytes, HttpError> {
        self.request(url, Some(Post { body, headers })).await
    }

    async fn request(&self, url: &str, post: Option<Post<'_>>) -> Result<Bytes, HttpError> {
        self.budget
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .deposit();
        let mut attempt = 0;
        loop {
            match self.once(url, post.as_ref()).await {
                Ok(b) => return Ok(b),
                Err(e) => {
                    let allowed = attempt < self.retries
                        && e.retryable()
                        && self
                            .budget
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .withdraw();
                    if !allowed {
                        return Err(e);
                    }
                    // The server's Retry-After when it gave one (at most
                    // 30 s), else exponential backoff.
                    let wait = match &e {
                        HttpError::Status {
                            retry_after_ms: Some(ms),
                            ..
                        } => (*ms).min(30_000),
                        _ => 100 << attempt,
                    };
                    tokio::time::sleep(Duration::from_millis(wait)).await;
                    attempt += 1;
                }
            }
        }
    }
}
