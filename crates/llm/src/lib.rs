//! The language-model analyst: an OpenAI-compatible chat-completions client
//! (OpenAI, vLLM, llama.cpp's server, Ollama's `/v1`, LM Studio, gateways)
//! or Anthropic's Messages API, behind the same [`Analyst`] seam as the
//! built-in analyst, which stays the fallback.
//!
//! One request, in order:
//! 1. The evidence is redacted into pseudonyms (per incident) and fenced as
//!    data ([`warden_analyst::prompt`]). Both analyses of an incident are
//!    asked for in one combined request (anomaly analysis and recovery
//!    plan), so an incident costs one model call.
//! 2. The TTL cache (`analyst.cache_ttl`, 300 s by default) is keyed by the
//!    redacted prompt; concurrent identical requests share one call
//!    (single flight).
//! 3. The rate limit (requests per minute) and the token budget (per
//!    rolling hour) are checked; when exhausted the built-in analyst
//!    answers, and the fallback is journaled.
//! 4. The call goes through the outbound stack (concurrency limit, timeout,
//!    retries of 429/5xx that honour `Retry-After`).
//! 5. The answer is validated ([`warden_analyst::answer`]); one repair
//!    request for the failing part; then the built-in analyst.
//! 6. Pseudonyms in the answer are mapped back for the operator (never
//!    secrets). Plan steps still go through the closed `Action` enum, the
//!    known-service check and the gates in the loop: nothing a model says
//!    widens what the configuration allows.
//!
//! The API key comes from `api_key_env` or `api_key_file`; it is sent only
//! in the authorization header and never appears in errors, the journal or
//! the API.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::OnceCell;
use warden_analyst::prompt::{self, SYSTEM_PROMPT};
use warden_analyst::redact::{Pseudonyms, Redactor};
use warden_analyst::{
    Analyst, AnalystError, Answer, Answered, BoxFuture, Builtin, Exchange, Request, answer,
};
use warden_config::{AnalystConfig, Provider};
use warden_model::IncidentId;
use warden_sources::{HttpClient, HttpError};

/// Incidents whose pseudonym tables are kept (the oldest go first).
const MAX_INCIDENTS: usize = 1000;
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

/// A model's raw reply.
#[derive(Debug, Clone, PartialEq)]
struct Reply {
    text: String,
    tokens_in: u64,
    tokens_out: u64,
    latency_ms: u64,
}

type Shared = Arc<OnceCell<Result<Reply, String>>>;

#[derive(Default)]
struct State {
    pseudonyms: HashMap<IncidentId, Pseudonyms>,
    order: VecDeque<IncidentId>,
    /// (when, tokens) of calls in the last hour.
    tokens: VecDeque<(Instant, u64)>,
    /// Calls in the last minute.
    requests: VecDeque<Instant>,
    cache: HashMap<u64, (Instant, Shared)>,
}

/// Counters for `/metrics`.
#[derive(Default)]
struct Stats {
    calls: AtomicU64,
    failed_calls: AtomicU64,
    cache_hits: AtomicU64,
    fallbacks: AtomicU64,
    repairs: AtomicU64,
    tokens_in: AtomicU64,
    tokens_out: AtomicU64,
    latency_ms: AtomicU64,
    batched_items: AtomicU64,
}

/// The model analyst.
pub struct LlmAnalyst {
    cfg: AnalystConfig,
    client: HttpClient,
    key: Option<String>,
    redactor: Redactor,
    state: Mutex<State>,
    stats: Stats,
    /// Which `response_format` the server takes: 0 OpenAI's `json_schema`,
    /// 1 llama.cpp-python's `json_object` with a schema, 2 none (the schema
    /// is in the prompt either way). Moves down when a server refuses one.
    format: AtomicU8,
}

fn fnv(parts: &[&str]) -> u64 {
    warden_model::hash::fnv1a64_parts(parts)
}

impl LlmAnalyst {
    /// From the `analyst` section; the key is read now.
    pub fn new(cfg: &AnalystConfig) -> Result<Self, SetupError> {
        if cfg.provider == Provider::Builtin {
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
        // Anthropic takes its key in x-api-key; OpenAI-compatible servers
        // as a bearer token.
        let bearer = match cfg.provider {
            Provider::Openai => key.clone(),
            _ => None,
        };
        Ok(Self {
            client: HttpClient::new(
                Duration::from_millis(cfg.timeout.millis().max(1) as u64),
                cfg.max_concurrency,
                cfg.retries,
                bearer,
            ),
            cfg: cfg.clone(),
            key,
            redactor,
            state: Mutex::new(State::default()),
            stats: Stats::default(),
            format: AtomicU8::new(if cfg.structured_output { 0 } else { 2 }),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The incident's pseudonym table (created on first use).
    fn pseudonyms(&self, id: &IncidentId) -> Pseudonyms {
        let mut st = self.state();
        if !st.pseudonyms.contains_key(id) {
            st.order.push_back(id.clone());
            st.pseudonyms.insert(id.clone(), Pseudonyms::default());
            while st.order.len() > MAX_INCIDENTS {
                if let Some(old) = st.order.pop_front() {
                    st.pseudonyms.remove(&old);
                }
            }
        }
        st.pseudonyms[id].clone()
    }

    fn keep_pseudonyms(&self, id: &IncidentId, p: Pseudonyms) {
        if let Some(slot) = self.state().pseudonyms.get_mut(id) {
            *slot = p;
        }
    }

    /// Whether a call may be made now; otherwise why not.
    fn admit(&self) -> Result<(), String> {
        let mut st = self.state();
        let now = Instant::now();
        while st
            .tokens
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > Duration::from_secs(3600))
        {
            st.tokens.pop_front();
        }
        while st
            .requests
            .front()
            .is_some_and(|t| now.duration_since(*t) > Duration::from_secs(60))
        {
            st.requests.pop_front();
        }
        let used: u64 = st.tokens.iter().map(|(_, n)| n).sum();
        if used >= self.cfg.tokens_per_hour {
            return Err(format!(
                "token budget exhausted: {used} tokens in the last hour (analyst.tokens_per_hour {})",
                self.cfg.tokens_per_hour
            ));
        }
        if st.requests.len() as u64 >= u64::from(self.cfg.requests_per_minute) {
            return Err(format!(
                "rate limit: {} requests in the last minute (analyst.requests_per_minute {})",
                st.requests.len(),
                self.cfg.requests_per_minute
            ));
        }
        st.requests.push_back(now);
        Ok(())
    }

    fn spent(&self, r: &Reply) {
        self.state()
            .tokens
            .push_back((Instant::now(), r.tokens_in + r.tokens_out));
        self.stats
            .tokens_in
            .fetch_add(r.tokens_in, Ordering::Relaxed);
        self.stats
            .tokens_out
            .fetch_add(r.tokens_out, Ordering::Relaxed);
        self.stats
            .latency_ms
            .fetch_add(r.latency_ms, Ordering::Relaxed);
    }

    /// One request to the provider.
    async fn call(
        &self,
        system: &str,
        messages: &[(&str, String)],
        schema: &Value,
    ) -> Result<Reply, String> {
        self.admit()?;
        self.stats.calls.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let result = match self.cfg.provider {
            Provider::Anthropic => self.anthropic(system, messages).await,
            _ => self.openai(system, messages, schema).await,
        };
        match result {
            Ok((text, tokens_in, tokens_out)) => {
                let r = Reply {
                    text,
                    tokens_in,
                    tokens_out,
                    latency_ms: started.elapsed().as_millis() as u64,
                };
                self.spent(&r);
                Ok(r)
            }
            Err(e) => {
                self.stats.failed_calls.fetch_add(1, Ordering::Relaxed);
                Err(e)
            }
        }
    }

    async fn openai(
        &self,
        system: &str,
        messages: &[(&str, String)],
        schema: &Value,
    ) -> Result<(String, u64, u64), String> {
        let url = format!(
            "{}/chat/completions",
            self.cfg.endpoint.trim_end_matches('/')
        );
        let mut msgs = vec![json!({"role": "system", "content": system})];
        msgs.extend(
            messages
                .iter()
                .map(|(role, content)| json!({"role": role, "content": content})),
        );
        let mut body = json!({
            "model": self.cfg.model_name,
            "messages": msgs,
            "temperature": self.cfg.temperature,
            "max_tokens": self.cfg.max_tokens,
        });
        let v = loop {
            let level = self.format.load(Ordering::Relaxed);
            match level {
                0 => {
                    body["response_format"] = json!({
                        "type": "json_schema",
                        "json_schema": {"name": "warden_answer", "schema": schema, "strict": false},
                    });
                }
                1 => body["response_format"] = json!({"type": "json_object", "schema": schema}),
                _ => {
                    if let Some(o) = body.as_object_mut() {
                        o.remove("response_format");
                    }
                }
            }
            match self.post(&url, &body, &[]).await {
                // A server that does not take this response_format (some
                // answer 500): try the next form, and keep it from now on.
                Err(HttpError::Status {
                    status: 400 | 422 | 500,
                    body: ref b,
                    ..
                }) if level < 2 && b.contains("response_format") => {
                    let _ = self.format.compare_exchange(
                        level,
                        level + 1,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    );
                }
                other => break other,
            }
        }
        .map_err(|e| e.to_string())?;
        let text = v["choices"][0]["message"]["content"]
            .as_str()
            .ok_or_else(|| "the answer has no choices[0].message.content".to_string())?
            .to_string();
        Ok((
            text,
            v["usage"]["prompt_tokens"].as_u64().unwrap_or(0),
            v["usage"]["completion_tokens"].as_u64().unwrap_or(0),
        ))
    }

    async fn anthropic(
        &self,
        system: &str,
        messages: &[(&str, String)],
    ) -> Result<(String, u64, u64), String> {
        let url = format!("{}/v1/messages", self.cfg.endpoint.trim_end_matches('/'));
        let body = json!({
            "model": self.cfg.model_name,
            "system": system,
            "messages": messages
                .iter()
                .map(|(role, content)| json!({"role": role, "content": content}))
                .collect::<Vec<_>>(),
            "temperature": self.cfg.temperature,
            "max_tokens": self.cfg.max_tokens,
        });
        let key = self.key.clone().unwrap_or_default();
        let v = self
            .post(
                &url,
                &body,
                &[
                    ("x-api-key", key.as_str()),
                    ("anthropic-version", "2023-06-01"),
                ],
            )
            .await
            .map_err(|e| e.to_string())?;
        let text: String = v["content"]
            .as_array()
            .map(|blocks| {
                blocks
                    .iter()
                    .filter(|b| b["type"] == "text")
                    .filter_map(|b| b["text"].as_str())
                    .collect()
            })
            .ok_or_else(|| "the answer has no content blocks".to_string())?;
        Ok((
            text,
            v["usage"]["input_tokens"].as_u64().unwrap_or(0),
            v["usage"]["output_tokens"].as_u64().unwrap_or(0),
        ))
    }

    async fn post(
        &self,
        url: &str,
        body: &Value,
        extra: &[(&str, &str)],
    ) -> Result<Value, HttpError> {
        let mut headers = vec![("content-type", "application/json")];
        headers.extend_from_slice(extra);
        let bytes = self
            .client
            .post(
                url,
                serde_json::to_vec(body).unwrap_or_default().into(),
                &headers,
            )
            .await?;
        serde_json::from_slice(&bytes).map_err(|e| HttpError::Transport {
            url: url.to_string(),
            message: format!("the answer is not JSON: {e}"),
        })
    }

    /// The reply to `user`, from the cache or one shared call.
    async fn cached_call(
        &self,
        messages: &[(&str, String)],
        schema: &Value,
    ) -> (Result<Reply, String>, bool) {
        let mut parts: Vec<&str> = vec![
            self.cfg.provider.as_str(),
            &self.cfg.endpoint,
            &self.cfg.model_name,
            SYSTEM_PROMPT,
        ];
        for (role, text) in messages {
            parts.push(role);
            parts.push(text);
        }
        let key = fnv(&parts);
        let ttl = Duration::from_millis(self.cfg.cache_ttl.millis().max(0) as u64);
        let cell = {
            let mut st = self.state();
            let now = Instant::now();
            match st.cache.get(&key) {
                Some((at, cell)) if now.duration_since(*at) < ttl => cell.clone(),
                _ => {
                    if st.cache.len() >= MAX_CACHED {
                        st.cache.retain(|_, (at, _)| now.duration_since(*at) < ttl);
                    }
                    let cell: Shared = Arc::new(OnceCell::new());
                    st.cache.insert(key, (now, cell.clone()));
                    cell
                }
            }
        };
        let mut made = false;
        let r = cell
            .get_or_init(|| {
                made = true;
                async { self.call(SYSTEM_PROMPT, messages, schema).await }
            })
            .await
            .clone();
        if r.is_err() {
            // Failures are not cached.
            self.state().cache.remove(&key);
        }
        let hit = !made;
        if hit {
            self.stats.cache_hits.fetch_add(1, Ordering::Relaxed);
        }
        (r, hit)
    }

    async fn answer_inner(&self, request: &Request) -> Answered {
        let kind = request.kind();
        let (Request::AnomalyAnalysis(c) | Request::RecoveryPlan(c)) = request;
        let mut p = self.pseudonyms(&c.incident);
        let combined = prompt::build_combined(c, &self.redactor, &mut p);
        let (user, schema) = (combined.user, combined.schema);
        self.keep_pseudonyms(&c.incident, p.clone());
        self.stats.batched_items.fetch_add(1, Ordering::Relaxed);
        let mut exchanges = Vec::new();
        let mut messages = vec![("user", user)];
        // The combined request, then at most one combined repair: both
        // analyses of an incident share them (and the cache), so an
        // incident costs at most two calls.
        for attempt in 0..2 {
            let (reply, cached) = self.cached_call(&messages, &schema).await;
            let prompt_text = std::iter::once(format!("system: {SYSTEM_PROMPT}"))
                .chain(
                    messages
                        .iter()
                        .map(|(role, text)| format!("{role}: {text}")),
                )
                .collect::<Vec<_>>()
                .join("\n\n");
            let r = match reply {
                Ok(r) => r,
                Err(e) => {
                    exchanges.push(Exchange {
                        kind: "combined".into(),
                        prompt: prompt_text,
                        answer: String::new(),
                        tokens_in: 0,
                        tokens_out: 0,
                        cached: false,
                        latency_ms: 0,
                        error: Some(e.clone()),
                    });
                    return self.fallback(request, exchanges, format!("model call failed: {e}"));
                }
            };
            if attempt > 0 && !cached {
                self.stats.repairs.fetch_add(1, Ordering::Relaxed);
            }
            let parsed = part(&r.text, kind);
            // Problems of both parts, so that the repair request is the same
            // whichever analysis asks for it.
            let problems: Vec<String> = ["anomaly_analysis", "recovery_plan"]
                .iter()
                .filter_map(|k| part(&r.text, k).err().map(|e| format!("{k}: {e}")))
                .collect();
            exchanges.push(Exchange {
                kind: "combined".into(),
                prompt: prompt_text,
                answer: r.text.clone(),
                tokens_in: if cached { 0 } else { r.tokens_in },
                tokens_out: if cached { 0 } else { r.tokens_out },
                cached,
                latency_ms: if cached { 0 } else { r.latency_ms },
                error: parsed.as_ref().err().map(|e| e.to_string()),
            });
            match parsed {
                Ok(a) => return self.finish(a, &p, exchanges),
                Err(e) if attempt > 0 => {
                    return self.fallback(
                        request,
                        exchanges,
                        format!("the answer failed validation twice: {e}"),
                    );
                }
                Err(_) => {
                    messages.push(("assistant", r.text.clone()));
                    messages.push(("user", prompt::repair(&problems.join("; "))));
                }
            }
        }
        self.fallback(request, exchanges, "no valid answer".into())
    }

    /// Maps pseudonyms back in the accepted answer.
    fn finish(&self, a: Answer, p: &Pseudonyms, exchanges: Vec<Exchange>) -> Answered {
        let restored = match &a {
            Answer::AnomalyAnalysis(x) => {
                let mut v = serde_json::to_value(x).unwrap_or(Value::Null);
                p.restore_value(&mut v);
                serde_json::from_value(v).map(Answer::AnomalyAnalysis).ok()
            }
            Answer::RecoveryPlan(x) => {
                let mut v = serde_json::to_value(x).unwrap_or(Value::Null);
                p.restore_value(&mut v);
                serde_json::from_value(v).map(Answer::RecoveryPlan).ok()
            }
        };
        Answered {
            answer: restored.unwrap_or(a),
            exchanges,
            fallback: None,
        }
    }

    fn fallback(&self, request: &Request, exchanges: Vec<Exchange>, reason: String) -> Answered {
        self.stats.fallbacks.fetch_add(1, Ordering::Relaxed);
        let answer = match request {
            Request::AnomalyAnalysis(c) => {
                Answer::AnomalyAnalysis(warden_analyst::builtin::analyse(c))
            }
            Request::RecoveryPlan(c) => match warden_analyst::builtin::plan(c) {
                Ok(p) => Answer::RecoveryPlan(p),
                Err(e) => Answer::RecoveryPlan(warden_analyst::RecoveryPlan {
                    steps: vec![],
                    rationale: format!("no plan: {e}"),
                }),
            },
        };
        Answered {
            answer,
            exchanges,
            fallback: Some(reason),
        }
    }
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
        let used: u64 = self.state().tokens.iter().map(|(_, n)| n).sum();
        let c = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64;
        vec![
            ("warden_llm_calls_total".into(), c(&s.calls)),
            ("warden_llm_failed_calls_total".into(), c(&s.failed_calls)),
            ("warden_llm_cache_hits_total".into(), c(&s.cache_hits)),
            ("warden_llm_fallbacks_total".into(), c(&s.fallbacks)),
            ("warden_llm_repairs_total".into(), c(&s.repairs)),
            ("warden_llm_tokens_in_total".into(), c(&s.tokens_in)),
            ("warden_llm_tokens_out_total".into(), c(&s.tokens_out)),
            ("warden_llm_latency_ms_total".into(), c(&s.latency_ms)),
            ("warden_llm_batched_items_total".into(), c(&s.batched_items)),
            (
                "warden_llm_budget_tokens_left".into(),
                self.cfg.tokens_per_hour.saturating_sub(used) as f64,
            ),
        ]
    }
}

/// The part of a combined answer for `kind`, parsed and checked.
fn part(text: &str, kind: &str) -> Result<Answer, answer::AnswerError> {
    let v: Value = answer::extract_json(text)
        .and_then(|j| serde_json::from_str(j).ok())
        .ok_or(answer::AnswerError::NoJson)?;
    match v.get(kind) {
        Some(x) => answer::parse(kind, &x.to_string()),
        None => Err(answer::AnswerError::Schema(format!(
            "no \"{kind}\" object in the answer"
        ))),
    }
}

/// The analyst the configuration asks for: the model analyst, or the
/// built-in one.
pub fn from_config(cfg: &AnalystConfig) -> Result<Arc<dyn Analyst>, SetupError> {
    match cfg.provider {
        Provider::Builtin => Ok(Arc::new(Builtin)),
        _ => Ok(Arc::new(LlmAnalyst::new(cfg)?)),
    }
}
