//! The language-model analyst: an OpenAI-compatible chat-completions client
//! (OpenAI, vLLM, llama.cpp's server, Ollama's `/v1`, LM Studio, gateways)
//! or Anthropic's Messages API, behind the same [`Analyst`] seam as the
//! built-in analyst, which stays the fallback.
//!
//! It writes the seed's four analyses: an incident's anomaly analysis and
//! recovery plan (asked for together, so that an incident costs one
//! answer), a capacity plan's narrative and a service's dependency
//! analysis. One analysis, in order:
//! 1. The evidence is redacted into pseudonyms (stable per incident or
//!    service) and fenced as data ([`warden_analyst::prompt::item`]).
//! 2. It goes down a tower stack ([`layers`]): a TTL cache per analysis
//!    (`analyst.cache_ttl`, 300 s) with single flight; a batcher that puts
//!    the analyses arriving within `analyst.batch_window` into one request
//!    with per-item answers; the rate limit and hourly token budget, which
//!    refuse rather than wait; the provider ([`provider`]), over the HTTP
//!    stack (retries of 429/5xx/timeouts honouring `Retry-After` within a
//!    retry budget, concurrency limit, per-attempt timeout).
//! 3. The answer is validated ([`warden_analyst::answer`]); one repair
//!    request, alone; then the built-in analyst, and the fallback is
//!    journaled with its reason.
//! 4. Pseudonyms in the answer are mapped back for the operator (never
//!    secrets). Plan steps still go through the closed `Action` enum, the
//!    known-service check and the gates in the loop, and capacity
//!    proposals are warden's own: nothing a model says widens what the
//!    configuration allows.
//!
//! The API key comes from `api_key_env` or `api_key_file`; it is sent only
//! in the authorization header and never appears in errors, the journal or
//! the API.

pub mod layers;
pub mod provider;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tower::ServiceExt;
use warden_analyst::prompt;
use warden_analyst::redact::{Pseudonyms, Redactor};
use warden_analyst::{
    Analyst, AnalystError, Answer, Answered, BoxFuture, Builtin, Exchange, Request, answer,
};
use warden_config::{AnalystConfig, Provider as Kind};

use layers::{
    AttemptError, Batch, BatchLayer, Budget, BudgetLayer, Cache, CacheLayer, Spent, Stats, Work,
};
use provider::{CallError, Provider};

/// Scopes (incidents, services) whose pseudonym tables are kept (the
/// oldest go first).
const MAX_SCOPES: usize = 1000;
/// Cached answers kept at most.
const MAX_CACHED: usize = 10_000;

/// Why the model analyst cannot start.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SetupError {
    #[error("analyst.provider is builtin: no model to call")]
    Builtin,
    #[error("{0}")]
    Pattern(String),
    #[error("analyst.api_key_file {path}: {reason}")]
    KeyFile { path: String, reason: String },
}

type Stack = Cache<Batch<Budget<Provider>>>;

#[derive(Default)]
struct Scopes {
    tables: HashMap<String, Pseudonyms>,
    order: VecDeque<String>,
}

/// The model analyst.
pub struct LlmAnalyst {
    cfg: AnalystConfig,
    redactor: Redactor,
    scopes: Mutex<Scopes>,
    stats: Arc<Stats>,
    spent: Arc<Mutex<Spent>>,
    stack: Stack,
}

impl LlmAnalyst {
    /// From the `analyst` section; the key is read now.
    pub fn new(cfg: &AnalystConfig) -> Result<Self, SetupError> {
        if cfg.provider == Kind::Builtin {
            return Err(SetupError::Builtin);
        }
        let redactor = Redactor::new(&cfg.redact_user_ids, &cfg.redact_patterns)
            .map_err(|e| SetupError::Pattern(e.to_string()))?;
        let key = match (&cfg.api_key_file, &cfg.api_key_env) {
            (Some(path), _) => {
                let text = std::fs::read_to_string(path).map_err(|e| SetupError::KeyFile {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                })?;
                text.lines().next().map(|l| l.trim().to_string())
            }
            (None, Some(var)) => std::env::var(var).ok().map(|k| k.trim().to_string()),
            (None, None) => None,
        }
        .filter(|k| !k.is_empty());
        let stats = Arc::new(Stats::default());
        let spent = Arc::new(Mutex::new(Spent::default()));
        let stack = tower::ServiceBuilder::new()
            .layer(CacheLayer {
                ttl: Duration::from_millis(cfg.cache_ttl.millis().max(0) as u64),
                max_entries: MAX_CACHED,
                identity: format!(
                    "{}|{}|{}",
                    cfg.provider.as_str(),
                    cfg.endpoint,
                    cfg.model_name
                ),
                stats: stats.clone(),
            })
            .layer(BatchLayer {
                window: Duration::from_millis(cfg.batch_window.millis().max(0) as u64),
                max: cfg.max_batch,
                max_chars: usize::try_from(cfg.max_batch_tokens.saturating_mul(4))
                    .unwrap_or(usize::MAX),
                max_tokens: cfg.max_tokens,
                stats: stats.clone(),
            })
            .layer(BudgetLayer {
                requests_per_minute: cfg.requests_per_minute,
                tokens_per_hour: cfg.tokens_per_hour,
                spent: spent.clone(),
                stats: stats.clone(),
            })
            .service(Provider::new(cfg, key));
        Ok(Self {
            cfg: cfg.clone(),
            redactor,
            scopes: Mutex::new(Scopes::default()),
            stats,
            spent,
            stack,
        })
    }

    fn scopes(&self) -> std::sync::MutexGuard<'_, Scopes> {
        self.scopes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The scope's pseudonym table (created on first use).
    fn pseudonyms(&self, scope: &str) -> Pseudonyms {
        let mut st = self.scopes();
        if !st.tables.contains_key(scope) {
            st.order.push_back(scope.to_string());
            st.tables.insert(scope.to_string(), Pseudonyms::default());
            while st.order.len() > MAX_SCOPES {
                if let Some(old) = st.order.pop_front() {
                    st.tables.remove(&old);
                }
            }
        }
        st.tables[scope].clone()
    }

    fn keep_pseudonyms(&self, scope: &str, p: Pseudonyms) {
        if let Some(slot) = self.scopes().tables.get_mut(scope) {
            *slot = p;
        }
    }

    async fn answer_inner(&self, request: &Request) -> Answered {
        let kind = request.kind();
        let scope = request.scope();
        let mut p = self.pseudonyms(&scope);
        let item = prompt::item(request, &self.redactor, &mut p);
        self.keep_pseudonyms(&scope, p.clone());
        let item_kind = item.kind;
        let (done, cached) = match self.stack.clone().oneshot(Work { item }).await {
            Ok(x) => x,
            Err(e) => {
                let exchange = Exchange {
                    kind: item_kind.into(),
                    prompt: String::new(),
                    answer: String::new(),
                    tokens_in: 0,
                    tokens_out: 0,
                    cached: false,
                    latency_ms: 0,
                    batch: 0,
                    error: Some(e.to_string()),
                };
                let reason = match e {
                    CallError::Refused(r) => r,
                    e => e.to_string(),
                };
                return self.fallback(request, vec![exchange], reason);
            }
        };
        let exchanges: Vec<Exchange> = done
            .attempts
            .iter()
            .map(|a| Exchange {
                kind: item_kind.into(),
                prompt: a.prompt.clone(),
                answer: a.text.clone(),
                tokens_in: if cached { 0 } else { a.reply.tokens_in },
                tokens_out: if cached { 0 } else { a.reply.tokens_out },
                cached,
                latency_ms: if cached { 0 } else { a.reply.latency_ms },
                batch: done.batch,
                error: a.error.as_ref().map(ToString::to_string),
            })
            .collect();
        match answer::part(done.text(), item_kind, kind) {
            Ok(a) => Answered {
                answer: restore(a, &p),
                exchanges,
                fallback: None,
            },
            Err(e) => {
                let last = done.attempts.last().and_then(|a| a.error.as_ref());
                let reason = match (done.attempts.len(), last) {
                    (_, Some(AttemptError::Call(call))) => call.to_string(),
                    (2, _) => format!("the answer failed validation twice: {e}"),
                    _ => format!("the answer failed validation: {e}"),
                };
                self.fallback(request, exchanges, reason)
            }
        }
    }

    fn fallback(&self, request: &Request, exchanges: Vec<Exchange>, reason: String) -> Answered {
        self.stats.fallbacks.fetch_add(1, Ordering::Relaxed);
        Answered {
            answer: builtin_answer(request),
            exchanges,
            fallback: Some(reason),
        }
    }
}

/// The built-in analyst's answer to `request`; a plan it cannot make is
/// an empty plan that says why.
fn builtin_answer(request: &Request) -> Answer {
    warden_analyst::builtin::answer(request).unwrap_or_else(|e| {
        Answer::RecoveryPlan(warden_analyst::RecoveryPlan {
            steps: vec![],
            rationale: format!("no plan: {e}"),
        })
    })
}

/// Maps pseudonyms in an accepted answer back (never secrets).
fn restore(a: Answer, p: &Pseudonyms) -> Answer {
    let mut v = serde_json::to_value(&a).unwrap_or(Value::Null);
    p.restore_value(&mut v);
    serde_json::from_value(v).unwrap_or(a)
}

impl Analyst for LlmAnalyst {
    fn name(&self) -> String {
        format!("{}:{}", self.cfg.provider.as_str(), self.cfg.model_name)
    }

    fn analyze<'a>(&'a self, request: &'a Request) -> BoxFuture<'a, Result<Answer, AnalystError>> {
        Box::pin(async move { Ok(self.answer_inner(request).await.answer) })
    }

    fn answer<'a>(&'a self, request: &'a Request) -> BoxFuture<'a, Result<Answered, AnalystError>> {
        Box::pin(async move { Ok(self.answer_inner(request).await) })
    }

    fn metrics(&self) -> Vec<(String, f64)> {
        let s = &self.stats;
        let used = self
            .spent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .tokens_last_hour();
        let c = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64;
        let mut out = vec![
            ("warden_llm_calls_total".into(), c(&s.calls)),
            ("warden_llm_failed_calls_total".into(), c(&s.failed_calls)),
            ("warden_llm_refused_calls_total".into(), c(&s.refused_calls)),
            ("warden_llm_cache_hits_total".into(), c(&s.cache_hits)),
            ("warden_llm_fallbacks_total".into(), c(&s.fallbacks)),
            ("warden_llm_repairs_total".into(), c(&s.repairs)),
            ("warden_llm_tokens_in_total".into(), c(&s.tokens_in)),
            ("warden_llm_tokens_out_total".into(), c(&s.tokens_out)),
            (
                "warden_llm_budget_tokens_left".into(),
                self.cfg.tokens_per_hour.saturating_sub(used) as f64,
            ),
        ];
        out.extend(s.latency.series("warden_llm_latency_seconds"));
        out.extend(s.batch_size.series("warden_llm_batch_size"));
        out
    }
}

/// The analyst the configuration asks for: the model analyst, or the
/// built-in one.
pub fn from_config(cfg: &AnalystConfig) -> Result<Arc<dyn Analyst>, SetupError> {
    match cfg.provider {
        Kind::Builtin => Ok(Arc::new(Builtin)),
        _ => Ok(Arc::new(LlmAnalyst::new(cfg)?)),
    }
}
