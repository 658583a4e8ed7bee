//! The outbound HTTP client: a tower stack of retry (with a budget, and
//! honouring `Retry-After`), concurrency limit and per-attempt timeout over
//! hyper, in the manner of linkerd2-proxy's clients.
//!
//! ```text
//! Retry<RetryPolicy>          429 / 5xx / transport errors, within a budget
//!   ConcurrencyLimit          permits are held per attempt, not across backoff
//!     Timeout                 per attempt
//!       Fetch                 one request; status and size checked
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::Request;
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tower::limit::ConcurrencyLimit;
use tower::retry::Retry;
use tower::retry::budget::{Budget, TpsBudget};
use tower::timeout::Timeout;
use tower::{BoxError, Service, ServiceExt};

/// Largest response body read.
pub const MAX_RESPONSE_BYTES: usize = 64 << 20;

/// Longest wait a server's `Retry-After` can impose before a retry.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

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

/// One outbound request; cheap to clone, so that it can be retried.
#[derive(Debug, Clone)]
pub struct Outbound {
    url: Arc<str>,
    /// `None` for a GET.
    body: Option<Bytes>,
    headers: Arc<[(String, String)]>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// The innermost service: one request, its status and body size checked.
#[derive(Clone)]
struct Fetch {
    client: Client<HttpConnector, Full<Bytes>>,
    bearer: Option<Arc<str>>,
}

impl Service<Outbound> for Fetch {
    type Response = Bytes;
    type Error = HttpError;
    type Future = BoxFuture<Result<Bytes, HttpError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), HttpError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, out: Outbound) -> Self::Future {
        let client = self.client.clone();
        let bearer = self.bearer.clone();
        Box::pin(async move {
            let url = out.url.to_string();
            let uri: hyper::Uri = url.parse().map_err(|_| HttpError::Url(url.clone()))?;
            let mut req = match out.body {
                Some(_) => Request::post(uri),
                None => Request::get(uri),
            };
            for (k, v) in out.headers.iter() {
                req = req.header(k.as_str(), v.as_str());
            }
            if let Some(t) = &bearer {
                req = req.header(hyper::header::AUTHORIZATION, format!("Bearer {t}"));
            }
            let req = req
                .body(Full::new(out.body.unwrap_or_default()))
                .map_err(|e| HttpError::Url(format!("{url}: {e}")))?;
            let resp = client
                .request(req)
                .await
                .map_err(|e| HttpError::Transport {
                    url: url.clone(),
                    message: e.to_string(),
                })?;
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
                .map_err(|_| HttpError::TooLarge { url: url.clone() })?
                .to_bytes();
            if !status.is_success() {
                return Err(HttpError::Status {
                    url,
                    status: status.as_u16(),
                    body: String::from_utf8_lossy(&body).chars().take(300).collect(),
                    retry_after_ms,
                });
            }
            Ok(body)
        })
    }
}

/// Retries retryable failures (429, 5xx, transport errors, timeouts) up to
/// `max` times while the shared budget allows: the server's `Retry-After`
/// when it gave one (at most [`MAX_RETRY_AFTER`]), else 100 ms doubling.
#[derive(Clone)]
struct RetryPolicy {
    attempt: u32,
    max: u32,
    budget: Arc<TpsBudget>,
}

impl tower::retry::Policy<Outbound, Bytes, BoxError> for RetryPolicy {
    type Future = tokio::time::Sleep;

    fn retry(
        &mut self,
        _: &mut Outbound,
        result: &mut Result<Bytes, BoxError>,
    ) -> Option<Self::Future> {
        if self.attempt == 0 {
            self.budget.deposit();
        }
        let Err(e) = result else {
            return None;
        };
        let retryable = e
            .downcast_ref::<HttpError>()
            .is_none_or(HttpError::retryable);
        if !retryable || self.attempt >= self.max || !self.budget.withdraw() {
            return None;
        }
        let wait = match e.downcast_ref::<HttpError>() {
            Some(HttpError::Status {
                retry_after_ms: Some(ms),
                ..
            }) => Duration::from_millis(*ms).min(MAX_RETRY_AFTER),
            _ => Duration::from_millis(100 << self.attempt.min(8)),
        };
        self.attempt += 1;
        Some(tokio::time::sleep(wait))
    }

    fn clone_request(&mut self, req: &Outbound) -> Option<Outbound> {
        Some(req.clone())
    }
}

type Stack = Retry<RetryPolicy, ConcurrencyLimit<Timeout<Fetch>>>;

/// The client.
pub struct HttpClient {
    stack: Stack,
    timeout: Duration,
}

impl HttpClient {
    /// `timeout` per attempt, at most `max_concurrency` requests in flight,
    /// up to `retries` retries per request; `bearer` is sent as the
    /// authorization of every request.
    pub fn new(
        timeout: Duration,
        max_concurrency: usize,
        retries: u32,
        bearer: Option<String>,
    ) -> Self {
        let fetch = Fetch {
            client: Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>(),
            bearer: bearer.map(Arc::from),
        };
        // Retries may add 20% to the load, with 1 retry a second always
        // allowed (over a 10 s window).
        let budget = Arc::new(TpsBudget::new(Duration::from_secs(10), 1, 0.2));
        let stack = tower::ServiceBuilder::new()
            .retry(RetryPolicy {
                attempt: 0,
                max: retries,
                budget,
            })
            .concurrency_limit(max_concurrency.max(1))
            .timeout(timeout)
            .service(fetch);
        Self { stack, timeout }
    }

    /// GET `url`.
    pub async fn get(&self, url: &str) -> Result<Bytes, HttpError> {
        self.request(url, None, &[]).await
    }

    /// POST a JSON body to `url`.
    pub async fn post_json(&self, url: &str, body: Vec<u8>) -> Result<Bytes, HttpError> {
        self.post(
            url,
            Bytes::from(body),
            &[("content-type", "application/json")],
        )
        .await
    }

    /// POST `body` with `headers` to `url`.
    pub async fn post(
        &self,
        url: &str,
        body: Bytes,
        headers: &[(&str, &str)],
    ) -> Result<Bytes, HttpError> {
        self.request(url, Some(body), headers).await
    }

    async fn request(
        &self,
        url: &str,
        body: Option<Bytes>,
        headers: &[(&str, &str)],
    ) -> Result<Bytes, HttpError> {
        let out = Outbound {
            url: Arc::from(url),
            body,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        let r = self.stack.clone().oneshot(out).await;
        r.map_err(|e| match e.downcast::<HttpError>() {
            Ok(h) => *h,
            Err(e) if e.is::<tower::timeout::error::Elapsed>() => HttpError::Timeout {
                url: url.to_string(),
                ms: self.timeout.as_millis() as u64,
            },
            Err(e) => HttpError::Transport {
                url: url.to_string(),
                message: e.to_string(),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A server on 127.0.0.1 answering every request with `status`
    /// (`Retry-After: 0`), counting the requests.
    async fn server(status: u16) -> (String, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let hits = Arc::new(AtomicUsize::new(0));
        let counted = hits.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let counted = counted.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let _ = s.read(&mut buf).await;
                    counted.fetch_add(1, Ordering::SeqCst);
                    let resp = format!(
                        "HTTP/1.1 {status} X\r\nretry-after: 0\r\ncontent-length: 2\r\nconnection: close\r\n\r\nno"
                    );
                    let _ = s.write_all(resp.as_bytes()).await;
                });
            }
        });
        (format!("http://{addr}/"), hits)
    }

    #[tokio::test]
    async fn retryable_statuses_are_retried_up_to_the_limit_and_others_are_not() {
        let client = HttpClient::new(Duration::from_secs(5), 2, 2, None);
        let (url, hits) = server(503).await;
        let e = client.get(&url).await.expect_err("503");
        assert!(
            matches!(
                e,
                HttpError::Status {
                    status: 503,
                    retry_after_ms: Some(0),
                    ..
                }
            ),
            "{e}"
        );
        assert_eq!(hits.load(Ordering::SeqCst), 3, "one try and two retries");
        let (url, hits) = server(404).await;
        assert!(client.post_json(&url, b"{}".to_vec()).await.is_err());
        assert_eq!(hits.load(Ordering::SeqCst), 1, "404 is not retried");
    }

    #[tokio::test]
    async fn a_bad_url_is_named() {
        let client = HttpClient::new(Duration::from_secs(1), 1, 0, None);
        let e = client.get("not a url").await.expect_err("bad url");
        assert_eq!(e, HttpError::Url("not a url".into()));
    }
}
