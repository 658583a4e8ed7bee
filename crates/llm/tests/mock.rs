//! The model analyst against a mock server on 127.0.0.1 that speaks the
//! OpenAI chat-completions and Anthropic Messages protocols: request shape,
//! constrained output, errors, Retry-After, malformed answers, timeouts,
//! the cache, the budget and redaction. The mock records every request so
//! the tests can inspect exactly what left the process.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use warden_analyst::{Analyst, Answer, IncidentContext, PlanLimits, Request};
use warden_config::{AnalystConfig, Duration as CfgDuration, Provider};
use warden_llm::LlmAnalyst;
use warden_model::{Candidate, IncidentId, ServiceName, Timestamp};

/// One scripted reply: status, Retry-After, body, delay.
#[derive(Clone)]
struct Scripted(u16, Option<u64>, Value, u64);

#[derive(Clone, Default)]
struct Mock {
    seen: Arc<Mutex<Vec<(HeaderMap, Value, Instant)>>>,
    script: Arc<Mutex<VecDeque<Scripted>>>,
}

impl Mock {
    fn requests(&self) -> Vec<(HeaderMap, Value, Instant)> {
        self.seen.lock().expect("lock").clone()
    }
    fn push(&self, r: Scripted) {
        self.script.lock().expect("lock").push_back(r);
    }
}

async fn reply(State(m): State<Mock>, headers: HeaderMap, body: String) -> Response {
    let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    m.seen
        .lock()
        .expect("lock")
        .push((headers, v, Instant::now()));
    let next = m.script.lock().expect("lock").pop_front();
    let Some(Scripted(status, retry, body, delay)) = next else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "script exhausted").into_response();
    };
    tokio::time::sleep(Duration::from_millis(delay)).await;
    let mut r = (
        StatusCode::from_u16(status).expect("status"),
        body.to_string(),
    )
        .into_response();
    if let Some(s) = retry {
        r.headers_mut()
            .insert("retry-after", s.to_string().parse().expect("header"));
    }
    r
}

async fn start() -> (Mock, String) {
    let m = Mock::default();
    let app = axum::Router::new()
        .route("/v1/chat/completions", post(reply))
        .route("/v1/messages", post(reply))
        .with_state(m.clone());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    (m, format!("http://{addr}"))
}

fn config(endpoint: &str, provider: Provider) -> AnalystConfig {
    config_with_key(endpoint, provider, "sk-test-abcdefghijklmnop")
}

/// The key comes from a file (api_key_file), as an operator would keep it.
fn config_with_key(endpoint: &str, provider: Provider, key: &str) -> AnalystConfig {
    let dir = tempfile::tempdir().expect("tempdir").keep();
    let path = dir.join("key");
    std::fs::write(&path, format!("{key}\n")).expect("key file");
    AnalystConfig {
        provider,
        endpoint: endpoint.into(),
        model_name: "test-model".into(),
        api_key_env: None,
        api_key_file: Some(path),
        timeout: CfgDuration::from_secs(2),
        retries: 2,
        ..AnalystConfig::default()
    }
}

fn n(s: &str) -> ServiceName {
    ServiceName::parse(s).expect("name")
}

/// Evidence with planted sensitive values.
fn context(id: &str) -> IncidentContext {
    IncidentContext {
        incident: IncidentId(id.into()),
        anomalies: vec![],
        ranking: vec![Candidate {
            service: "payment-service".into(),
            metric: "error_rate".into(),
            score: 3.0,
            evidence: vec![
                "owner alice@example.com paged".into(),
                "DATABASE_URL=postgres://pay:Sup3rS3cret@10.20.30.40/pay".into(),
                "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlX2hlcmU"
                    .into(),
            ],
        }],
        changes: vec![],
        services: vec![],
        known_services: vec![n("payment-service"), n("database-service")],
        onset: Timestamp::from_secs(1_000),
        limits: PlanLimits::default(),
        logs: vec![
            "error payment-service: card declined for carol@example.net from 198.51.100.23".into(),
        ],
    }
}

const PLANTED: [&str; 4] = [
    "alice@example.com",
    "Sup3rS3cret",
    "10.20.30.40",
    "eyJhbGciOiJIUzI1NiJ9",
];

fn combined_answer() -> String {
    json!({
        "anomaly_analysis": {
            "status": "critical",
            "anomalies": [{"service": "payment-service", "metric": "error_rate", "description": "errors up; ask [EMAIL_1]"}],
            "root_causes": [{"service": "payment-service", "metric": "error_rate", "confidence": 0.8, "evidence": ["errors at [IP_1]"]}],
            "recommendations": ["roll back payment-service"],
        },
        "recovery_plan": {
            "steps": [{"action": "rollback", "target": "payment-service", "params": {}}],
            "rationale": "the error burst follows a release",
        },
    })
    .to_string()
}

fn openai_ok(content: &str) -> Value {
    json!({
        "id": "x", "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 120, "completion_tokens": 40, "total_tokens": 160},
    })
}

#[tokio::test]
async fn one_call_per_incident_cached_redacted_and_mapped_back() {
    let (mock, url) = start().await;
    mock.push(Scripted(200, None, openai_ok(&combined_answer()), 0));
    let a = LlmAnalyst::new(&config(&format!("{url}/v1"), Provider::Openai)).expect("analyst");
    let ctx = context("INC-00000001");
    let first = a
        .answer(&Request::AnomalyAnalysis(ctx.clone()))
        .await
        .expect("answer");
    assert_eq!(first.fallback, None);
    let Answer::AnomalyAnalysis(analysis) = &first.answer else {
        panic!("an analysis");
    };
    // Pseudonyms are mapped back for the operator (numbered in the order
    // the evidence is read: its keys sorted, so the log line comes first).
    assert_eq!(
        analysis.anomalies[0].description,
        "errors up; ask carol@example.net"
    );
    assert_eq!(
        analysis.root_causes[0].evidence[0],
        "errors at 198.51.100.23"
    );
    // The plan of the same incident comes from the same (cached) call.
    let second = a
        .answer(&Request::RecoveryPlan(ctx.clone()))
        .await
        .expect("answer");
    assert!(second.exchanges[0].cached);
    let Answer::RecoveryPlan(plan) = &second.answer else {
        panic!("a plan");
    };
    assert_eq!(plan.steps[0].action, "rollback");
    // Asking again within the TTL makes no call either.
    let third = a
        .answer(&Request::AnomalyAnalysis(ctx))
        .await
        .expect("answer");
    assert!(third.exchanges[0].cached);
    let seen = mock.requests();
    assert_eq!(seen.len(), 1, "one model call for the incident");
    let (headers, body, _) = &seen[0];
    assert_eq!(headers["authorization"], "Bearer sk-test-abcdefghijklmnop");
    assert_eq!(body["model"], "test-model");
    assert_eq!(body["temperature"], 0.3);
    assert_eq!(body["max_tokens"], 1000);
    assert_eq!(body["messages"][0]["role"], "system");
    assert_eq!(
        body["messages"][0]["content"],
        warden_analyst::prompt::SYSTEM_PROMPT
    );
    assert_eq!(body["response_format"]["type"], "json_schema");
    assert!(
        body["response_format"]["json_schema"]["schema"]["properties"]["recovery_plan"].is_object()
    );
    let text = body.to_string();
    for p in PLANTED {
        assert!(!text.contains(p), "{p} reached the model");
    }
    // The key is in no exchange the journal will hold.
    for x in first.exchanges.iter().chain(&second.exchanges) {
        assert!(!x.prompt.contains("sk-test-abcdefghijklmnop"));
    }
    let m: std::collections::BTreeMap<String, f64> = a.metrics().into_iter().collect();
    assert_eq!(m["warden_llm_calls_total"], 1.0);
    assert_eq!(m["warden_llm_cache_hits_total"], 2.0);
    assert_eq!(m["warden_llm_tokens_in_total"], 120.0);
}

#[tokio::test]
async fn servers_without_response_format_get_the_schema_in_the_prompt() {
    let (mock, url) = start().await;
    mock.push(Scripted(
        400,
        None,
        json!({"error": {"message": "Unrecognized request argument: response_format"}}),
        0,
    ));
    mock.push(Scripted(200, None, openai_ok(&combined_answer()), 0));
    let a = LlmAnalyst::new(&config(&format!("{url}/v1"), Provider::Openai)).expect("analyst");
    let r = a
        .answer(&Request::AnomalyAnalysis(context("INC-00000002")))
        .await
        .expect("answer");
    assert_eq!(r.fallback, None);
    let seen = mock.requests();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].1["response_format"]["type"], "json_schema");
    // llama.cpp-python's form of constrained output comes next.
    assert_eq!(seen[1].1["response_format"]["type"], "json_object");
    assert!(seen[1].1["response_format"]["schema"].is_object());
}

#[tokio::test]
async fn rate_limits_are_retried_after_the_servers_retry_after() {
    let (mock, url) = start().await;
    mock.push(Scripted(
        429,
        Some(1),
        json!({"error": {"message": "slow down"}}),
        0,
    ));
    mock.push(Scripted(200, None, openai_ok(&combined_answer()), 0));
    let a = LlmAnalyst::new(&config(&format!("{url}/v1"), Provider::Openai)).expect("analyst");
    let r = a
        .answer(&Request::AnomalyAnalysis(context("INC-00000003")))
        .await
        .expect("answer");
    assert_eq!(r.fallback, None);
    let seen = mock.requests();
    assert_eq!(seen.len(), 2);
    let waited = seen[1].2.duration_since(seen[0].2);
    assert!(waited >= Duration::from_millis(950), "{waited:?}");
}

#[tokio::test]
async fn malformed_answers_get_one_repair_then_the_builtin_analyst() {
    let (mock, url) = start().await;
    mock.push(Scripted(
        200,
        None,
        openai_ok("I think the database is sad."),
        0,
    ));
    mock.push(Scripted(
        200,
        None,
        openai_ok(
            "{\"anomaly_analysis\": {\"status\": \"very bad\", \"anomalies\": [], \"root_causes\": [], \"recommendations\": []}}",
        ),
        0,
    ));
    let a = LlmAnalyst::new(&config(&format!("{url}/v1"), Provider::Openai)).expect("analyst");
    let r = a
        .answer(&Request::AnomalyAnalysis(context("INC-00000004")))
        .await
        .expect("answer");
    let reason = r.fallback.expect("fell back");
    assert!(reason.contains("very bad"), "{reason}");
    assert_eq!(r.exchanges.len(), 2);
    // The repair request carries the rejected answer and the reason.
    let seen = mock.requests();
    let msgs = seen[1].1["messages"].as_array().expect("messages");
    assert_eq!(msgs[2]["role"], "assistant");
    assert!(
        msgs[3]["content"]
            .as_str()
            .expect("text")
            .contains("rejected")
    );
    // The built-in analyst answered in the seed's shape.
    assert!(matches!(r.answer, Answer::AnomalyAnalysis(_)));
}

#[tokio::test]
async fn timeouts_and_server_errors_fall_back_without_caching_the_failure() {
    let (mock, url) = start().await;
    let mut cfg = config(&format!("{url}/v1"), Provider::Openai);
    cfg.retries = 0;
    cfg.timeout = CfgDuration::from_millis(300);
    mock.push(Scripted(200, None, openai_ok(&combined_answer()), 2000));
    let a = LlmAnalyst::new(&cfg).expect("analyst");
    let r = a
        .answer(&Request::AnomalyAnalysis(context("INC-00000005")))
        .await
        .expect("answer");
    assert!(r.fallback.expect("fell back").contains("timed out"));
    // Not cached: the next request calls again.
    mock.push(Scripted(200, None, openai_ok(&combined_answer()), 0));
    let r = a
        .answer(&Request::AnomalyAnalysis(context("INC-00000005")))
        .await
        .expect("answer");
    assert_eq!(r.fallback, None);
    assert_eq!(mock.requests().len(), 2);
}

#[tokio::test]
async fn an_exhausted_token_budget_means_the_builtin_analyst() {
    let (mock, url) = start().await;
    let mut cfg = config(&format!("{url}/v1"), Provider::Openai);
    cfg.tokens_per_hour = 100; // the first answer spends 160
    mock.push(Scripted(200, None, openai_ok(&combined_answer()), 0));
    let a = LlmAnalyst::new(&cfg).expect("analyst");
    let r = a
        .answer(&Request::AnomalyAnalysis(context("INC-00000006")))
        .await
        .expect("answer");
    assert_eq!(r.fallback, None);
    let r = a
        .answer(&Request::AnomalyAnalysis(context("INC-00000007")))
        .await
        .expect("answer");
    assert!(r.fallback.expect("fell back").contains("token budget"));
    assert_eq!(mock.requests().len(), 1);
}

#[tokio::test]
async fn anthropic_messages_are_spoken_too() {
    let (mock, url) = start().await;
    mock.push(Scripted(
        200,
        None,
        json!({
            "id": "msg_1", "type": "message", "role": "assistant",
            "content": [{"type": "text", "text": combined_answer()}],
            "usage": {"input_tokens": 90, "output_tokens": 30},
        }),
        0,
    ));
    let a = LlmAnalyst::new(&config_with_key(
        &url,
        Provider::Anthropic,
        "sk-ant-test-abcdefghijklmnop",
    ))
    .expect("analyst");
    let r = a
        .answer(&Request::RecoveryPlan(context("INC-00000008")))
        .await
        .expect("answer");
    assert_eq!(r.fallback, None);
    let seen = mock.requests();
    let (headers, body, _) = &seen[0];
    assert_eq!(headers["x-api-key"], "sk-ant-test-abcdefghijklmnop");
    assert_eq!(headers["anthropic-version"], "2023-06-01");
    assert!(headers.get("authorization").is_none());
    assert_eq!(body["system"], warden_analyst::prompt::SYSTEM_PROMPT);
    assert_eq!(body["messages"][0]["role"], "user");
    assert_eq!(body["max_tokens"], 1000);
}

#[tokio::test]
async fn concurrent_identical_requests_share_one_call() {
    let (mock, url) = start().await;
    mock.push(Scripted(200, None, openai_ok(&combined_answer()), 300));
    let a = Arc::new(
        LlmAnalyst::new(&config(&format!("{url}/v1"), Provider::Openai)).expect("analyst"),
    );
    let ctx = context("INC-00000009");
    let (ra, rb) = (
        Request::AnomalyAnalysis(ctx.clone()),
        Request::RecoveryPlan(ctx),
    );
    let (x, y) = tokio::join!(a.answer(&ra), a.answer(&rb));
    assert_eq!(x.expect("answer").fallback, None);
    assert_eq!(y.expect("answer").fallback, None);
    assert_eq!(mock.requests().len(), 1);
}
