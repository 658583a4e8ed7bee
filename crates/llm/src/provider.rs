//! The innermost service of the stack: one request to the model's API,
//! OpenAI-compatible chat completions or Anthropic Messages.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tower::Service;
use warden_analyst::BoxFuture;
use warden_analyst::prompt::SYSTEM_PROMPT;
use warden_config::{AnalystConfig, Provider as Kind};
use warden_sources::{HttpClient, HttpError};

/// One request to a model: the conversation after the fixed system prompt,
/// and the schema its answer must match.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub messages: Vec<(&'static str, String)>,
    pub schema: Value,
    pub max_tokens: u32,
}

impl Call {
    /// The request as sent, for the journal (the system prompt and every
    /// message; already redacted).
    pub fn transcript(&self) -> String {
        std::iter::once(format!("system: {SYSTEM_PROMPT}"))
            .chain(self.messages.iter().map(|(r, t)| format!("{r}: {t}")))
            .collect::<Vec<_>>()
            .join("\n\n")
    }
}

/// A model's raw reply.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reply {
    pub text: String,
    pub tokens_in: u64,
    pub tokens_out: u64,
    pub latency_ms: u64,
}

/// Why no reply.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CallError {
    /// The rate limit or the token budget said no; no call was made.
    #[error("{0}")]
    Refused(String),
    /// The call failed (after the HTTP stack's retries), or its answer is
    /// not a chat answer.
    #[error("model call failed: {0}")]
    Failed(String),
}

struct Inner {
    cfg: AnalystConfig,
    client: HttpClient,
    key: Option<String>,
    /// Which `response_format` the server takes: 0 OpenAI's `json_schema`,
    /// 1 llama.cpp-python's `json_object` with a schema, 2 none (the schema
    /// is in the prompt either way). Moves down when a server refuses one.
    format: AtomicU8,
}

/// The model's API. Its HTTP client is the shared outbound stack (retries
/// honouring `Retry-After`, concurrency limit, per-attempt timeout).
#[derive(Clone)]
pub struct Provider(Arc<Inner>);

impl Provider {
    pub fn new(cfg: &AnalystConfig, key: Option<String>) -> Self {
        // Anthropic takes its key in x-api-key; OpenAI-compatible servers
        // as a bearer token.
        let bearer = match cfg.provider {
            Kind::Openai => key.clone(),
            _ => None,
        };
        Self(Arc::new(Inner {
            client: HttpClient::new(
                Duration::from_millis(cfg.timeout.millis().max(1) as u64),
                cfg.max_concurrency,
                cfg.retries,
                bearer,
            ),
            cfg: cfg.clone(),
            key,
            format: AtomicU8::new(if cfg.structured_output { 0 } else { 2 }),
        }))
    }
}

impl Service<Call> for Provider {
    type Response = Reply;
    type Error = CallError;
    type Future = BoxFuture<'static, Result<Reply, CallError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), CallError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, call: Call) -> Self::Future {
        let inner = self.0.clone();
        Box::pin(async move {
            let started = Instant::now();
            let (text, tokens_in, tokens_out) = match inner.cfg.provider {
                Kind::Anthropic => inner.anthropic(&call).await,
                _ => inner.openai(&call).await,
            }
            .map_err(|e| CallError::Failed(inner.scrub(e)))?;
            Ok(Reply {
                text,
                tokens_in,
                tokens_out,
                latency_ms: started.elapsed().as_millis() as u64,
            })
        })
    }
}

impl Inner {
    /// An error's text without the API key, should a server echo it back
    /// (errors reach the journal and the logs).
    fn scrub(&self, text: String) -> String {
        match &self.key {
            Some(k) if k.len() >= 4 && text.contains(k.as_str()) => {
                text.replace(k.as_str(), "[API_KEY]")
            }
            _ => text,
        }
    }

    async fn openai(&self, call: &Call) -> Result<(String, u64, u64), String> {
        let url = format!(
            "{}/chat/completions",
            self.cfg.endpoint.trim_end_matches('/')
        );
        let mut msgs = vec![json!({"role": "system", "content": SYSTEM_PROMPT})];
        msgs.extend(
            call.messages
                .iter()
                .map(|(role, content)| json!({"role": role, "content": content})),
        );
        let mut body = json!({
            "model": self.cfg.model_name,
            "messages": msgs,
            "temperature": self.cfg.temperature,
            "max_tokens": call.max_tokens,
        });
        let v = loop {
            let level = self.format.load(Ordering::Relaxed);
            match level {
                0 => {
                    body["response_format"] = json!({
                        "type": "json_schema",
                        "json_schema": {"name": "warden_answer", "schema": call.schema, "strict": false},
                    });
                }
                1 => {
                    body["response_format"] = json!({"type": "json_object", "schema": call.schema})
                }
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

    async fn anthropic(&self, call: &Call) -> Result<(String, u64, u64), String> {
        let url = format!("{}/v1/messages", self.cfg.endpoint.trim_end_matches('/'));
        let body = json!({
            "model": self.cfg.model_name,
            "system": SYSTEM_PROMPT,
            "messages": call.messages
                .iter()
                .map(|(role, content)| json!({"role": role, "content": content}))
                .collect::<Vec<_>>(),
            "temperature": self.cfg.temperature,
            "max_tokens": call.max_tokens,
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
}
