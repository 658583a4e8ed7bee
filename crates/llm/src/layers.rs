//! The layers of the model stack, outermost first:
//!
//! ```text
//! Cache     per analysis: TTL (analyst.cache_ttl) and single flight
//! Batch     analyses arriving within analyst.batch_window share a request
//! Budget    requests per minute and tokens per rolling hour, else refused
//! Provider  the model's API (over the HTTP stack: retry, limit, timeout)
//! ```
//!
//! The cache is outside the batcher, so that an answer is cached per
//! analysis whichever batch it came in; the budget is inside it, so that a
//! batch costs one request.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::{OnceCell, oneshot};
use tower::{Layer, Service, ServiceExt};
use warden_analyst::BoxFuture;
use warden_analyst::prompt::{self, Item, SYSTEM_PROMPT};

use crate::provider::{Call, CallError, Reply};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A Prometheus histogram with fixed upper bounds (and +Inf).
pub struct Histogram {
    bounds: &'static [f64],
    /// Observations per bucket (not cumulative), the last one +Inf.
    counts: Vec<AtomicU64>,
    /// The sum of observations, in thousandths.
    sum_milli: AtomicU64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_milli: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, v: f64) {
        let i = self
            .bounds
            .iter()
            .position(|b| v <= *b)
            .unwrap_or(self.bounds.len());
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.sum_milli
            .fetch_add((v.max(0.0) * 1000.0).round() as u64, Ordering::Relaxed);
    }

    /// The series of family `name`: cumulative `_bucket`s, `_sum`, `_count`.
    pub fn series(&self, name: &str) -> Vec<(String, f64)> {
        let mut out = Vec::new();
        let mut cumulative = 0.0;
        for (i, count) in self.counts.iter().enumerate() {
            cumulative += count.load(Ordering::Relaxed) as f64;
            let le = self
                .bounds
                .get(i)
                .map_or_else(|| "+Inf".to_string(), |b| b.to_string());
            out.push((format!("{name}_bucket{{le=\"{le}\"}}"), cumulative));
        }
        out.push((
            format!("{name}_sum"),
            self.sum_milli.load(Ordering::Relaxed) as f64 / 1000.0,
        ));
        out.push((format!("{name}_count"), cumulative));
        out
    }
}

/// Counters shared by the layers, for `/metrics`.
pub struct Stats {
    pub calls: AtomicU64,
    pub failed_calls: AtomicU64,
    pub refused_calls: AtomicU64,
    pub cache_hits: AtomicU64,
    pub fallbacks: AtomicU64,
    pub repairs: AtomicU64,
    pub tokens_in: AtomicU64,
    pub tokens_out: AtomicU64,
    /// Seconds per answered request.
    pub latency: Histogram,
    /// Analyses per request.
    pub batch_size: Histogram,
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            calls: AtomicU64::new(0),
            failed_calls: AtomicU64::new(0),
            refused_calls: AtomicU64::new(0),
            cache_hits: AtomicU64::new(0),
            fallbacks: AtomicU64::new(0),
            repairs: AtomicU64::new(0),
            tokens_in: AtomicU64::new(0),
            tokens_out: AtomicU64::new(0),
            latency: Histogram::new(&[0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0]),
            batch_size: Histogram::new(&[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0]),
        }
    }
}

// ---------------------------------------------------------------- budget

/// Calls of the last minute and tokens of the last hour.
#[derive(Default)]
pub struct Spent {
    tokens: VecDeque<(Instant, u64)>,
    requests: VecDeque<Instant>,
}

impl Spent {
    fn expire(&mut self, now: Instant) {
        while self
            .tokens
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > Duration::from_secs(3600))
        {
            self.tokens.pop_front();
        }
        while self
            .requests
            .front()
            .is_some_and(|t| now.duration_since(*t) > Duration::from_secs(60))
        {
            self.requests.pop_front();
        }
    }

    /// Tokens spent in the last hour.
    pub fn tokens_last_hour(&mut self) -> u64 {
        self.expire(Instant::now());
        self.tokens.iter().map(|(_, n)| n).sum()
    }
}

/// Refuses calls beyond `requests_per_minute` or `tokens_per_hour`.
#[derive(Clone)]
pub struct BudgetLayer {
    pub requests_per_minute: u32,
    pub tokens_per_hour: u64,
    pub spent: Arc<Mutex<Spent>>,
    pub stats: Arc<Stats>,
}

impl<S> Layer<S> for BudgetLayer {
    type Service = Budget<S>;
    fn layer(&self, inner: S) -> Budget<S> {
        Budget {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Budget<S> {
    inner: S,
    layer: BudgetLayer,
}

impl BudgetLayer {
    fn admit(&self) -> Result<(), String> {
        let mut st = lock(&self.spent);
        let now = Instant::now();
        st.expire(now);
        let used: u64 = st.tokens.iter().map(|(_, n)| n).sum();
        if used >= self.tokens_per_hour {
            return Err(format!(
                "token budget exhausted: {used} tokens in the last hour (analyst.tokens_per_hour {})",
                self.tokens_per_hour
            ));
        }
        if st.requests.len() as u64 >= u64::from(self.requests_per_minute) {
            return Err(format!(
                "rate limit: {} requests in the last minute (analyst.requests_per_minute {})",
                st.requests.len(),
                self.requests_per_minute
            ));
        }
        st.requests.push_back(now);
        Ok(())
    }
}

impl<S> Service<Call> for Budget<S>
where
    S: Service<Call, Response = Reply, Error = CallError>,
    S::Future: Send + 'static,
{
    type Response = Reply;
    type Error = CallError;
    type Future = BoxFuture<'static, Result<Reply, CallError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), CallError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, call: Call) -> Self::Future {
        let layer = self.layer.clone();
        if let Err(reason) = layer.admit() {
            layer.stats.refused_calls.fetch_add(1, Ordering::Relaxed);
            return Box::pin(std::future::ready(Err(CallError::Refused(reason))));
        }
        layer.stats.calls.fetch_add(1, Ordering::Relaxed);
        let fut = self.inner.call(call);
        Box::pin(async move {
            let r = fut.await;
            let s = &layer.stats;
            match &r {
                Ok(reply) => {
                    lock(&layer.spent)
                        .tokens
                        .push_back((Instant::now(), reply.tokens_in + reply.tokens_out));
                    s.tokens_in.fetch_add(reply.tokens_in, Ordering::Relaxed);
                    s.tokens_out.fetch_add(reply.tokens_out, Ordering::Relaxed);
                    s.latency.observe(reply.latency_ms as f64 / 1000.0);
                }
                Err(_) => {
                    s.failed_calls.fetch_add(1, Ordering::Relaxed);
                }
            }
            r
        })
    }
}

// ---------------------------------------------------------------- batch

/// One analysis for the model.
#[derive(Debug, Clone, PartialEq)]
pub struct Work {
    pub item: Item,
}

/// One request an analysis took part in, for the journal.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    /// The whole request as sent.
    pub prompt: String,
    /// The analysis's own answer (its part of a batched answer).
    pub text: String,
    /// The whole request's cost (zero when it failed).
    pub reply: Reply,
    /// Why the request failed or the answer was refused.
    pub error: Option<AttemptError>,
}

/// Why an attempt did not give an accepted answer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AttemptError {
    /// The request itself failed.
    #[error(transparent)]
    Call(CallError),
    /// The answer failed validation: the problems.
    #[error("{0}")]
    Invalid(String),
}

/// The answer to one analysis: the request and, when its answer failed
/// validation, the one repair request.
#[derive(Debug, Clone, PartialEq)]
pub struct Done {
    pub attempts: Vec<Attempt>,
    /// Analyses in the request.
    pub batch: usize,
}

impl Done {
    /// The final answer's text.
    pub fn text(&self) -> &str {
        self.attempts.last().map_or("", |a| a.text.as_str())
    }
}

/// Gathers the analyses that arrive within `window` into one request of
/// at most `max` items and about `max_chars` characters.
#[derive(Clone)]
pub struct BatchLayer {
    pub window: Duration,
    pub max: usize,
    pub max_chars: usize,
    /// The answer's `max_tokens` per analysis.
    pub max_tokens: u32,
    pub stats: Arc<Stats>,
}

type Waiting = (Work, oneshot::Sender<Result<Done, CallError>>);

#[derive(Default)]
struct Open {
    /// Bumped when a batch is sent, so that a stale timer sends nothing.
    generation: u64,
    items: Vec<Waiting>,
    chars: usize,
}

impl Open {
    fn take(&mut self) -> Vec<Waiting> {
        self.generation += 1;
        self.chars = 0;
        std::mem::take(&mut self.items)
    }
}

impl<S> Layer<S> for BatchLayer {
    type Service = Batch<S>;
    fn layer(&self, inner: S) -> Batch<S> {
        Batch {
            inner,
            layer: self.clone(),
            open: Arc::new(Mutex::new(Open::default())),
        }
    }
}

#[derive(Clone)]
pub struct Batch<S> {
    inner: S,
    layer: BatchLayer,
    open: Arc<Mutex<Open>>,
}

fn size(w: &Work) -> usize {
    w.item.evidence.len() + w.item.task.len() + w.item.schema.to_string().len()
}

impl<S> Batch<S>
where
    S: Service<Call, Response = Reply, Error = CallError> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    /// Sends `items` as one request and hands each its part. Parts that
    /// fail validation get one repair request, for all of them together:
    /// a batch costs at most two calls.
    async fn send(inner: S, layer: BatchLayer, items: Vec<Waiting>) {
        let n = items.len();
        if n == 0 {
            return;
        }
        layer.stats.batch_size.observe(n as f64);
        let key = |i: usize| format!("item_{}", i + 1);
        let refs: Vec<&Item> = items.iter().map(|(w, _)| &w.item).collect();
        let (user, schema) = prompt::message(&refs);
        let mut call = Call {
            messages: vec![("user", user)],
            schema,
            max_tokens: layer.max_tokens.saturating_mul(n as u32),
        };
        let mut attempts: Vec<Vec<Attempt>> = vec![Vec::new(); n];
        let mut failing: Vec<usize> = (0..n).collect();
        for round in 0..2 {
            let prompt = call.transcript();
            let r = inner.clone().oneshot(call.clone()).await;
            let reply = match r {
                Ok(reply) => reply,
                // No answer at all: the callers fall back (and a refusal
                // or failure is not cached).
                Err(e) if round == 0 => {
                    for (_, tx) in items {
                        let _ = tx.send(Err(e.clone()));
                    }
                    return;
                }
                // The repair failed: the failing parts keep their rejected
                // answers, and the callers fall back, journaling why.
                Err(e) => {
                    for i in &failing {
                        attempts[*i].push(Attempt {
                            prompt: prompt.clone(),
                            text: String::new(),
                            reply: Reply::default(),
                            error: Some(AttemptError::Call(e.clone())),
                        });
                    }
                    break;
                }
            };
            let parts: Option<Value> = (n > 1)
                .then(|| {
                    warden_analyst::answer::extract_json(&reply.text)
                        .and_then(|j| serde_json::from_str(j).ok())
                })
                .flatten();
            let mut problems = Vec::new();
            let mut still = Vec::new();
            for &i in &failing {
                let text = if n == 1 {
                    reply.text.clone()
                } else {
                    parts
                        .as_ref()
                        .and_then(|v| v.get(key(i)))
                        .map(Value::to_string)
                        .unwrap_or_else(|| format!("(no {} in the answer)", key(i)))
                };
                let p = warden_analyst::answer::problems(&text, items[i].0.item.kind);
                if !p.is_empty() {
                    still.push(i);
                    problems.push(if n == 1 {
                        p.join("; ")
                    } else {
                        format!("{}: {}", key(i), p.join("; "))
                    });
                }
                attempts[i].push(Attempt {
                    prompt: prompt.clone(),
                    text,
                    reply: reply.clone(),
                    error: (!p.is_empty()).then(|| AttemptError::Invalid(p.join("; "))),
                });
            }
            if still.is_empty() || round == 1 {
                break;
            }
            layer.stats.repairs.fetch_add(1, Ordering::Relaxed);
            failing = still;
            call.messages.push(("assistant", reply.text.clone()));
            call.messages
                .push(("user", prompt::repair(&problems.join("; "))));
        }
        for ((_, tx), attempts) in items.into_iter().zip(attempts) {
            let _ = tx.send(Ok(Done { attempts, batch: n }));
        }
    }
}

impl<S> Service<Work> for Batch<S>
where
    S: Service<Call, Response = Reply, Error = CallError> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Done;
    type Error = CallError;
    type Future = BoxFuture<'static, Result<Done, CallError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), CallError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, work: Work) -> Self::Future {
        let (tx, rx) = oneshot::channel();
        let layer = self.layer.clone();
        let mut ready = Vec::new();
        if layer.window.is_zero() || layer.max <= 1 {
            ready.push(vec![(work, tx)]);
        } else {
            let mut open = lock(&self.open);
            let sz = size(&work);
            // An item that would overflow the open batch sends it first.
            if !open.items.is_empty() && open.chars + sz > layer.max_chars {
                ready.push(open.take());
            }
            let first = open.items.is_empty();
            open.items.push((work, tx));
            open.chars += sz;
            if open.items.len() >= layer.max || open.chars >= layer.max_chars {
                ready.push(open.take());
            } else if first {
                let (generation, shared) = (open.generation, self.open.clone());
                let (inner, layer) = (self.inner.clone(), layer.clone());
                tokio::spawn(async move {
                    tokio::time::sleep(layer.window).await;
                    let items = {
                        let mut open = lock(&shared);
                        if open.generation != generation {
                            return;
                        }
                        open.take()
                    };
                    Self::send(inner, layer, items).await;
                });
            }
        }
        for items in ready {
            tokio::spawn(Self::send(self.inner.clone(), layer.clone(), items));
        }
        Box::pin(async move {
            rx.await
                .unwrap_or_else(|_| Err(CallError::Failed("the batch was dropped".into())))
        })
    }
}

// ---------------------------------------------------------------- cache

type Cell = Arc<OnceCell<Result<Done, CallError>>>;

/// Answers per analysis for `ttl`; concurrent identical analyses share
/// one answer (single flight). Failed and refused calls are not kept; an
/// answer that failed validation is (asking again would cost calls for
/// the same answer).
#[derive(Clone)]
pub struct CacheLayer {
    pub ttl: Duration,
    pub max_entries: usize,
    /// Provider, endpoint and model: a different model is a different key.
    pub identity: String,
    pub stats: Arc<Stats>,
}

impl<S> Layer<S> for CacheLayer {
    type Service = Cache<S>;
    fn layer(&self, inner: S) -> Cache<S> {
        Cache {
            inner,
            layer: self.clone(),
            entries: Arc::new(Mutex::new(HashMap::new())),
        }
    }
}

#[derive(Clone)]
pub struct Cache<S> {
    inner: S,
    layer: CacheLayer,
    entries: Arc<Mutex<HashMap<u64, (Instant, Cell)>>>,
}

impl<S> Cache<S> {
    fn key(&self, w: &Work) -> u64 {
        let schema = w.item.schema.to_string();
        warden_model::hash::fnv1a64_parts(&[
            &self.layer.identity,
            SYSTEM_PROMPT,
            w.item.kind,
            w.item.task,
            &schema,
            &w.item.evidence,
        ])
    }
}

impl<S> Service<Work> for Cache<S>
where
    S: Service<Work, Response = Done, Error = CallError> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    /// The answer, and whether it came from the cache.
    type Response = (Done, bool);
    type Error = CallError;
    type Future = BoxFuture<'static, Result<(Done, bool), CallError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), CallError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, work: Work) -> Self::Future {
        let key = self.key(&work);
        let ttl = self.layer.ttl;
        let cell = {
            let mut entries = lock(&self.entries);
            let now = Instant::now();
            match entries.get(&key) {
                Some((at, cell)) if now.duration_since(*at) < ttl => cell.clone(),
                _ => {
                    if entries.len() >= self.layer.max_entries {
                        entries.retain(|_, (at, _)| now.duration_since(*at) < ttl);
                    }
                    let cell: Cell = Arc::new(OnceCell::new());
                    entries.insert(key, (now, cell.clone()));
                    cell
                }
            }
        };
        let (inner, entries, stats) = (
            self.inner.clone(),
            self.entries.clone(),
            self.layer.stats.clone(),
        );
        Box::pin(async move {
            let mut made = false;
            let r = cell
                .get_or_init(|| {
                    made = true;
                    inner.oneshot(work)
                })
                .await
                .clone();
            if r.is_err() {
                lock(&entries).remove(&key);
            }
            if !made {
                stats.cache_hits.fetch_add(1, Ordering::Relaxed);
            }
            r.map(|d| (d, !made))
        })
    }
}
