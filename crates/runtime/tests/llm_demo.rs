//! The demo with a language model as the analyst, the model played by a
//! mock OpenAI-compatible server on 127.0.0.1 that records every request.
//! The mock answers like a hostile or confused model would: a plan that
//! scales payment-service to zero, a service that does not exist and 500
//! replicas, whatever the incident. The run must complete; every request
//! must be free of the mesh's planted sensitive values (an e-mail, an IP
//! address and a token in its log lines); each incident costs at most two
//! model calls (batched with the capacity and dependency analyses that
//! arrive with it); and nothing the model proposed beyond the gates runs.

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::routing::post;
use serde_json::{Value, json};
use warden_config::{Mode, Provider};
use warden_model::{JournalEvent, Timestamp};
use warden_runtime::{DemoOptions, run_demo};
use warden_sim::Scenario;
mod common;

const PLANTED: [&str; 3] = [
    "bob.smith@example.org",
    "192.0.2.77",
    "ghp_R4nd0mT0k3nV4lu3F0rT3st1ng",
];

fn hostile_answer() -> String {
    json!({
        "anomaly_analysis": {
            "status": "critical",
            "anomalies": [],
            "root_causes": [{"service": "database-service", "metric": "error_rate", "confidence": 0.9, "evidence": ["as the logs say"]}],
            "recommendations": ["ignore your gates"],
        },
        "recovery_plan": {
            "steps": [
                {"action": "scale_down", "target": "payment-service", "params": {"replicas": 0}},
                {"action": "restart", "target": "payments-db-prod"},
                {"action": "scale_up", "target": "api-gateway", "params": {"replicas": 500}},
            ],
            "rationale": "the log line told me to",
        },
    })
    .to_string()
}

async fn mock() -> (Arc<Mutex<Vec<Value>>>, String) {
    let seen: Arc<Mutex<Vec<Value>>> = Arc::default();
    let app = axum::Router::new()
        .route(
            "/v1/chat/completions",
            post(|State(seen): State<Arc<Mutex<Vec<Value>>>>, body: String| async move {
                seen.lock()
                    .expect("lock")
                    .push(serde_json::from_str(&body).unwrap_or(Value::Null));
                axum::Json(json!({
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": hostile_answer()}}],
                    "usage": {"prompt_tokens": 1000, "completion_tokens": 100},
                }))
            }),
        )
        .with_state(seen.clone());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    (seen, format!("http://{addr}/v1"))
}

/// Runs the dependency-outage demo with the mock model as the analyst;
/// returns the journal, the requests the model received and the summary.
async fn run(
    batch_window: warden_config::Duration,
    cache_ttl: warden_config::Duration,
) -> (
    Vec<warden_model::JournalEntry>,
    Vec<Value>,
    warden_runtime::DemoSummary,
) {
    let (seen, url) = mock().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut opts = DemoOptions::new(
        dir.path().to_path_buf(),
        Timestamp::parse_rfc3339("2026-01-05T09:00:00Z").expect("time"),
    );
    opts.scenario = Some(Scenario::DependencyOutage);
    opts.duration_ms = Some(600_000);
    opts.speed = 0.0;
    opts.mode = Mode::Auto;
    opts.seed = 1;
    opts.config.analyst.provider = Provider::Openai;
    opts.config.analyst.endpoint = url;
    opts.config.analyst.model_name = "hostile-model".into();
    opts.config.analyst.batch_window = batch_window;
    opts.config.analyst.cache_ttl = cache_ttl;
    let summary = run_demo(opts, &mut |_| {})
        .await
        .expect("runs")
        .expect("summary");
    let journal = common::journal(dir.path());
    let requests = seen.lock().expect("lock").clone();
    (journal, requests, summary)
}

/// Without batching and the cache, every analysis costs its own calls:
/// the numbers docs/BENCHMARKS.md compares with the default run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_batching_or_cache_each_analysis_is_its_own_call() {
    let zero = warden_config::Duration::from_secs(0);
    let (journal, requests, _) = run(zero, zero).await;
    let analyses = journal
        .iter()
        .filter(|e| matches!(e.event, JournalEvent::Analysis { .. }))
        .count();
    let batched = requests
        .iter()
        .filter(|r| r.to_string().contains("item_1"))
        .count();
    eprintln!(
        "no batching, no cache: analyses {analyses}, model calls {}",
        requests.len()
    );
    assert_eq!(batched, 0, "no batched request");
    // Each incident's two analyses are two calls now, and each capacity
    // and dependency analysis its own call and repair.
    assert!(
        requests.len() >= analyses,
        "{} calls for {analyses} analyses",
        requests.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_analyst_is_redacted_batched_and_kept_inside_the_gates() {
    let (journal, requests, summary) = run(
        warden_config::AnalystConfig::default().batch_window,
        warden_config::AnalystConfig::default().cache_ttl,
    )
    .await;
    let incidents = journal
        .iter()
        .filter(|e| matches!(e.event, JournalEvent::IncidentOpened { .. }))
        .count();
    let analyses = journal
        .iter()
        .filter(|e| matches!(e.event, JournalEvent::Analysis { .. }))
        .count();
    // The requests that carried an incident (alone or in a batch with
    // capacity and dependency analyses). Without the cache, the combined
    // request and batching every analysis would be a call;
    // docs/BENCHMARKS.md quotes these numbers.
    let user = |r: &Value| {
        r["messages"][1]["content"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    let incident_calls = requests
        .iter()
        .filter(|r| user(r).contains("for the incident described by the data"))
        .count();
    let by_kind = |k: &str| {
        journal
            .iter()
            .filter(|e| matches!(&e.event, JournalEvent::Analysis { kind, .. } if kind == k))
            .count()
    };
    eprintln!(
        "incidents {incidents}, analyses {analyses} (incident {}, capacity {}, dependency {}), \
         model calls {} ({incident_calls} with an incident, {} with capacity plans, {} with \
         dependency analyses)",
        by_kind("anomaly_analysis") + by_kind("recovery_plan"),
        journal
            .iter()
            .filter(|e| matches!(e.event, JournalEvent::CapacityPlanned { .. }))
            .count(),
        by_kind("dependency_analysis"),
        requests.len(),
        requests
            .iter()
            .filter(|r| user(r).contains("capacity forecast"))
            .count(),
        requests
            .iter()
            .filter(|r| user(r).contains("analyse the dependencies"))
            .count(),
    );
    assert!(incidents >= 1);
    assert!(
        incident_calls >= 1 && incident_calls <= 2 * incidents,
        "{incident_calls} model calls for {incidents} incidents"
    );
    // The dependency analyses went to the model too; the hostile answer
    // fits no schema, so the built-in analyst wrote them, journaled.
    assert!(by_kind("dependency_analysis") >= 1);
    assert!(
        requests
            .iter()
            .any(|r| user(r).contains("analyse the dependencies"))
    );
    assert!(journal.iter().any(|e| matches!(
        &e.event,
        JournalEvent::AnalystFallback { kind, .. } if kind == "dependency_analysis"
    )));
    // The planted values were in the evidence (the logs) and were
    // redacted: pseudonyms went out instead.
    let bodies: String = requests.iter().map(|r| r.to_string()).collect();
    for p in PLANTED {
        assert!(!bodies.contains(p), "{p} reached the model");
    }
    assert!(
        bodies.contains("[EMAIL_1]"),
        "the logs reached the prompt redacted"
    );
    // Every exchange is journaled with its incident, and nothing the model
    // proposed ran: the unknown service is dropped, the others refused.
    assert!(journal.iter().any(|e| matches!(
        &e.event,
        JournalEvent::ModelExchange { prompt, .. } if e.incident.is_some() && prompt.contains("[EMAIL_1]")
    )));
    assert!(
        journal
            .iter()
            .all(|e| !matches!(e.event, JournalEvent::ActionExecuted { .. })),
        "nothing executed"
    );
    assert!(journal.iter().any(|e| matches!(
        &e.event,
        JournalEvent::PlanStepRejected { step, .. } if step.target == "payments-db-prod"
    )));
    let denied: Vec<&str> = journal
        .iter()
        .filter_map(|e| match &e.event {
            JournalEvent::GateDecision {
                gate,
                decision: warden_model::Decision::Deny { .. },
                ..
            } => Some(gate.as_str()),
            _ => None,
        })
        .collect();
    assert!(denied.contains(&"blast_radius"), "{denied:?}");
    assert_eq!(summary.mesh_after_injection, summary.mesh_at_end);
}
