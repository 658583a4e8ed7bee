//! The HTTP API through its router (no socket): auth, roles, validation,
//! and that bad input changes nothing.

use std::sync::{Arc, RwLock};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;
use warden_api::{ApiState, Live, TokenTable, router, write_live};
use warden_config::{Config, Role, TokenConfig, token_sha256};
use warden_model::{Action, IncidentId, ServiceName, Timestamp};
use warden_store::{Approval, ApprovalState, JournalQuery, SqliteStore, Store};

const ADMIN: &str = "admin-secret";
const OPERATOR: &str = "operator-secret";
const VIEWER: &str = "viewer-secret";

fn state() -> (ApiState, Arc<SqliteStore>) {
    let mut config = Config::default();
    config.api.max_body_bytes = 4096;
    config.api.tokens = vec![
        TokenConfig {
            name: "ops".into(),
            role: Role::Operator,
            sha256: token_sha256(OPERATOR),
        },
        TokenConfig {
            name: "reader".into(),
            role: Role::Viewer,
            sha256: token_sha256(VIEWER),
        },
    ];
    let store = Arc::new(SqliteStore::in_memory().expect("store"));
    let tokens = TokenTable::from_config(&config.api, Some(ADMIN));
    let s = ApiState {
        config: Arc::new(config),
        store: store.clone(),
        live: Arc::new(RwLock::new(Live::default())),
        tokens: Arc::new(tokens),
        clock: Arc::new(|| Timestamp::from_secs(1_700_000_000)),
    };
    (s, store)
}

async fn call(
    s: &ApiState,
    method: &str,
    uri: &str,
    token: Option<&str>,
    body: Option<Vec<u8>>,
) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    if body.is_some() {
        req = req.header(header::CONTENT_TYPE, "application/json");
    }
    let req = req
        .body(body.map(Body::from).unwrap_or_else(Body::empty))
        .expect("request");
    let resp = router(s.clone()).oneshot(req).await.expect("response");
    let status = resp.status();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    let v = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, v)
}

fn seed_service() -> Vec<u8> {
    serde_json::to_vec(&json!({
        "name": "user-service",
        "description": "用户管理服务",
        "endpoints": ["/api/users", "/api/profile"],
        "dependencies": ["auth-service", "database-service"]
    }))
    .expect("json")
}

#[tokio::test]
async fn health_endpoints_need_no_token() {
    let (s, _) = state();
    assert_eq!(
        call(&s, "GET", "/healthz", None, None).await.0,
        StatusCode::OK
    );
    assert_eq!(
        call(&s, "GET", "/readyz", None, None).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    s.live.write().expect("lock").ready = true;
    assert_eq!(
        call(&s, "GET", "/readyz", None, None).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn no_or_wrong_token_is_401_everywhere_else() {
    let (s, _) = state();
    for uri in [
        "/api/services",
        "/api/graph",
        "/api/incidents",
        "/api/journal",
        "/api/monitoring/anomalies",
        "/api/recovery/actions",
        "/api/capacity",
    ] {
        assert_eq!(
            call(&s, "GET", uri, None, None).await.0,
            StatusCode::UNAUTHORIZED,
            "{uri}"
        );
        assert_eq!(
            call(&s, "GET", uri, Some("nope"), None).await.0,
            StatusCode::UNAUTHORIZED,
            "{uri}"
        );
        assert_eq!(
            call(&s, "GET", uri, Some(VIEWER), None).await.0,
            StatusCode::OK,
            "{uri}"
        );
    }
}

#[tokio::test]
async fn the_seed_registration_is_stored_and_journaled() {
    let (s, store) = state();
    let (code, v) = call(
        &s,
        "POST",
        "/api/discovery/register",
        Some(OPERATOR),
        Some(seed_service()),
    )
    .await;
    assert_eq!(code, StatusCode::CREATED, "{v}");
    assert_eq!(v["service"]["name"], "user-service");
    let (code, v) = call(&s, "GET", "/api/services/user-service", Some(VIEWER), None).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(v["callees"], json!(["auth-service", "database-service"]));
    assert_eq!(store.services().expect("services").len(), 1);
    let j = store.journal(&JournalQuery::default()).expect("journal");
    assert_eq!(j.len(), 1);
    assert_eq!(j[0].event.kind(), "service_registered");
    let (code, _) = call(
        &s,
        "POST",
        "/api/discovery/register",
        Some(ADMIN),
        Some(seed_service()),
    )
    .await;
    assert_eq!(code, StatusCode::OK, "re-registering updates");
    let (_, g) = call(&s, "GET", "/api/graph", Some(VIEWER), None).await;
    assert_eq!(g["edges"].as_array().map(Vec::len), Some(2));
    // Two more services on the same database make it a single point of
    // failure with high fan-in.
    for name in ["order-service", "payment-service"] {
        let body = serde_json::to_vec(&json!({"name": name, "dependencies": ["database-service"]}))
            .expect("json");
        assert_eq!(
            call(
                &s,
                "POST",
                "/api/discovery/register",
                Some(OPERATOR),
                Some(body)
            )
            .await
            .0,
            StatusCode::CREATED
        );
    }
    let (code, r) = call(&s, "GET", "/api/graph/risks", Some(VIEWER), None).await;
    assert_eq!(code, StatusCode::OK);
    let kinds: Vec<(&str, &str)> = r["risks"]
        .as_array()
        .expect("risks")
        .iter()
        .map(|x| {
            (
                x["kind"].as_str().unwrap_or_default(),
                x["services"][0].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert!(kinds.contains(&("high_fan_in", "database-service")), "{r}");
    assert!(r["suggestions"].as_array().is_some_and(|v| !v.is_empty()));
    assert!(r["dependencies"].as_array().is_some_and(|v| v.len() == 4));
    // The analyst's per-service analyses, once the loop has written them.
    assert_eq!(r["analyses"], serde_json::json!({}));
    write_live(&s.live).dependency_analyses.insert(
        warden_model::ServiceName::parse("database-service").expect("name"),
        serde_json::json!({"analyst": "builtin", "analysis": {"suggestions": ["add a replica"]}}),
    );
    let (_, r) = call(&s, "GET", "/api/graph/risks", Some(VIEWER), None).await;
    assert_eq!(
        r["analyses"]["database-service"]["analysis"]["suggestions"][0],
        "add a replica"
    );
}

#[tokio::test]
async fn a_viewer_cannot_register_or_approve() {
    let (s, store) = state();
    let (code, v) = call(
        &s,
        "POST",
        "/api/discovery/register",
        Some(VIEWER),
        Some(seed_service()),
    )
    .await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    assert!(
        v["error"].as_str().unwrap_or_default().contains("viewer"),
        "{v}"
    );
    assert!(store.services().expect("services").is_empty());
    let (code, _) = call(
        &s,
        "POST",
        "/api/incidents/INC-00000001/approve",
        Some(VIEWER),
        None,
    )
    .await;
    assert_eq!(code, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn bad_registrations_are_400_naming_the_field_and_store_nothing() {
    let (s, store) = state();
    let cases: [(Vec<u8>, &str); 6] = [
        (b"{not json".to_vec(), "invalid registration"),
        (br#"{"name": "ok", "colour": "red"}"#.to_vec(), "colour"),
        (br#"{"description": "no name"}"#.to_vec(), "name"),
        (br#"{"name": "has space"}"#.to_vec(), "has space"),
        (
            br#"{"name": "a", "endpoints": ["users"]}"#.to_vec(),
            "endpoints[0]",
        ),
        (
            br#"{"name": "a", "dependencies": [42]}"#.to_vec(),
            "invalid type",
        ),
    ];
    for (body, needle) in cases {
        let (code, v) = call(
            &s,
            "POST",
            "/api/discovery/register",
            Some(OPERATOR),
            Some(body),
        )
        .await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{v}");
        assert!(
            v["error"].as_str().unwrap_or_default().contains(needle),
            "{v} should mention {needle}"
        );
    }
    let (code, _) = call(
        &s,
        "POST",
        "/api/discovery/register",
        Some(OPERATOR),
        Some(vec![b' '; 10_000]),
    )
    .await;
    assert_eq!(code, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(store.services().expect("services").is_empty());
    assert!(
        store
            .journal(&JournalQuery::default())
            .expect("journal")
            .is_empty()
    );
}

#[tokio::test]
async fn approval_flow_and_its_errors() {
    let (s, store) = state();
    let id = IncidentId("INC-0000abcd".into());
    let (code, _) = call(
        &s,
        "POST",
        "/api/incidents/INC-0000abcd/approve",
        Some(OPERATOR),
        None,
    )
    .await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    let (code, v) = call(
        &s,
        "POST",
        "/api/incidents/not-an-id/approve",
        Some(OPERATOR),
        None,
    )
    .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert!(
        v["error"]
            .as_str()
            .unwrap_or_default()
            .contains("not-an-id")
    );
    store
        .upsert_incident(&warden_model::Incident {
            id: id.clone(),
            title: "t".into(),
            status: warden_model::IncidentStatus::AwaitingApproval,
            opened_at: Timestamp::from_secs(1),
            updated_at: Timestamp::from_secs(1),
            resolved_at: None,
            services: vec![],
            signals: vec![],
            ranking: vec![],
        })
        .expect("incident");
    let (code, _) = call(
        &s,
        "POST",
        "/api/incidents/INC-0000abcd/approve",
        Some(OPERATOR),
        None,
    )
    .await;
    assert_eq!(code, StatusCode::CONFLICT, "nothing pending yet");
    store
        .request_approval(&Approval {
            incident: id.clone(),
            action: Action::Restart {
                target: ServiceName::parse("a").expect("name"),
            },
            state: ApprovalState::Pending,
            by: None,
            requested_at: Timestamp::from_secs(2),
            decided_at: None,
        })
        .expect("request");
    let (code, v) = call(
        &s,
        "POST",
        "/api/incidents/INC-0000abcd/approve",
        Some(OPERATOR),
        None,
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{v}");
    assert_eq!(v["approval"]["by"], "ops");
    let (code, v) = call(&s, "GET", "/api/incidents/INC-0000abcd", Some(VIEWER), None).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(v["incident"]["status"], "awaiting_approval");
}

#[tokio::test]
async fn the_dashboard_asks_for_a_token_then_uses_the_cookie() {
    let (s, _) = state();
    let req = Request::get("/")
        .header(header::ACCEPT, "text/html")
        .body(Body::empty())
        .expect("req");
    let resp = router(s.clone()).oneshot(req).await.expect("resp");
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        resp.headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok()),
        Some("/login")
    );
    let req = Request::post("/login")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(format!("token={VIEWER}")))
        .expect("req");
    let resp = router(s.clone()).oneshot(req).await.expect("resp");
    let cookie = resp
        .headers()
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap_or_default().to_string();
    let req = Request::get("/")
        .header(header::COOKIE, pair)
        .body(Body::empty())
        .expect("req");
    let resp = router(s).oneshot(req).await.expect("resp");
    assert_eq!(resp.status(), StatusCode::OK);
    let html = resp.into_body().collect().await.expect("body").to_bytes();
    assert!(String::from_utf8_lossy(&html).contains("<h2>Services</h2>"));
}

#[tokio::test]
async fn query_parameters_are_validated() {
    let (s, _) = state();
    for uri in [
        "/api/journal?limit=0",
        "/api/journal?limit=abc",
        "/api/journal?incident=x",
        "/api/journal?kind=DROP",
        "/api/journal?bogus=1",
        "/api/incidents?limit=999999",
    ] {
        let (code, v) = call(&s, "GET", uri, Some(VIEWER), None).await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{uri}: {v}");
    }
}

#[tokio::test]
async fn capacity_plans_are_served_per_service() {
    let (s, _) = state();
    let (code, v) = call(&s, "GET", "/api/capacity", Some(VIEWER), None).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(v["plans"], json!([]));
    let name = warden_model::ServiceName::parse("user-service").expect("name");
    let plan = warden_model::CapacityPlan {
        service: name.clone(),
        generated_at: Timestamp::from_secs(1_700_000_000),
        horizon_days: 30.0,
        resources: vec![],
        replicas: None,
        predictions: Default::default(),
        warning_signals: vec!["memory reaches 90% of its limit <b>soon</b>".into()],
        scale_timing: "act on memory before tomorrow".into(),
        optimizations: vec![],
        analyst: "builtin".into(),
        proposals: vec![],
    };
    s.live.write().expect("lock").capacity.insert(name, plan);
    let (code, v) = call(&s, "GET", "/api/capacity", Some(VIEWER), None).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(v["plans"][0]["service"], "user-service");
    let (code, v) = call(&s, "GET", "/api/capacity/user-service", Some(VIEWER), None).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(v["scale_timing"], "act on memory before tomorrow");
    assert_eq!(
        v["warning_signals"][0],
        "memory reaches 90% of its limit <b>soon</b>"
    );
    // The dashboard lists it, escaped.
    let req = Request::get("/")
        .header(header::AUTHORIZATION, format!("Bearer {VIEWER}"))
        .body(Body::empty())
        .expect("req");
    let resp = router(s.clone()).oneshot(req).await.expect("resp");
    assert_eq!(resp.status(), StatusCode::OK);
    let html = resp.into_body().collect().await.expect("body").to_bytes();
    let html = String::from_utf8_lossy(&html);
    assert!(html.contains("<h2>Capacity</h2>"), "{html}");
    assert!(
        html.contains("&lt;b&gt;soon&lt;/b&gt;") && !html.contains("<b>soon"),
        "{html}"
    );
    let (code, v) = call(&s, "GET", "/api/capacity/ghost", Some(VIEWER), None).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert!(v.to_string().contains("ghost"), "{v}");
}

/// One series for a remote-write body: labels, then (value, timestamp ms).
type Series<'a> = (&'a [(&'a str, &'a str)], &'a [(f64, i64)]);

fn write_body(series: &[Series<'_>]) -> Vec<u8> {
    use prost::Message;
    use warden_api::ingest::{Label, PromSample, TimeSeries, WriteRequest};
    let req = WriteRequest {
        timeseries: series
            .iter()
            .map(|(labels, samples)| TimeSeries {
                labels: labels
                    .iter()
                    .map(|(n, v)| Label {
                        name: (*n).into(),
                        value: (*v).into(),
                    })
                    .collect(),
                samples: samples
                    .iter()
                    .map(|(value, timestamp)| PromSample {
                        value: *value,
                        timestamp: *timestamp,
                    })
                    .collect(),
            })
            .collect(),
    };
    snap::raw::Encoder::new()
        .compress_vec(&req.encode_to_vec())
        .expect("snappy")
}

async fn post_write(
    s: &ApiState,
    token: &str,
    body: Vec<u8>,
    encoding: &str,
) -> (StatusCode, Value) {
    let req = Request::post("/api/v1/write")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_ENCODING, encoding)
        .header(header::CONTENT_TYPE, "application/x-protobuf")
        .body(Body::from(body))
        .expect("request");
    let resp = router(s.clone()).oneshot(req).await.expect("response");
    let status = resp.status();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    let v = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, v)
}

/// The receiver as Prometheus calls it (snappy block format, protobuf
/// WriteRequest, bearer token); a real Prometheus is the integration test of
/// the integrations issue.
#[tokio::test]
async fn remote_write_samples_reach_the_inbox_and_bad_bodies_are_refused() {
    let (s, _) = state();
    let body = write_body(&[
        (
            &[
                ("__name__", "cpu_usage"),
                ("service", "checkout"),
                ("pod", "a"),
            ],
            &[(0.42, 1_700_000_000_000), (f64::NAN, 1_700_000_015_000)],
        ),
        (
            &[("__name__", "error_rate"), ("service", "checkout")],
            &[(0.01, 1_700_000_000_000)],
        ),
        (
            &[("__name__", "go_goroutines"), ("service", "checkout")],
            &[(12.0, 1_700_000_000_000)],
        ),
        (&[("__name__", "memory_usage")], &[(0.5, 1_700_000_000_000)]),
    ]);
    // Writing data needs an operator.
    assert_eq!(
        post_write(&s, VIEWER, body.clone(), "snappy").await.0,
        StatusCode::FORBIDDEN
    );
    let (code, v) = post_write(&s, OPERATOR, body, "snappy").await;
    assert_eq!(code, StatusCode::NO_CONTENT, "{v}");
    {
        let live = s.live.read().expect("lock");
        assert_eq!(live.inbox.len(), 2);
        assert_eq!(live.inbox[0].service.as_str(), "checkout");
        assert_eq!(live.inbox[0].metric, warden_model::Metric::CpuUsage);
        assert_eq!(live.inbox[0].ts, Timestamp(1_700_000_000_000));
        assert_eq!(live.ingested.get("remote_write"), Some(&2));
        assert_eq!(live.dropped.get("unknown_metric"), Some(&1));
        assert_eq!(live.dropped.get("no_service_label"), Some(&1));
        assert_eq!(live.dropped.get("not_finite"), Some(&1));
    }
    // warden's own metrics, in OpenMetrics text, with an analyst's
    // counters and histogram as the model analyst reports them.
    write_live(&s.live).analyst_metrics = vec![
        ("warden_llm_calls_total".into(), 3.0),
        ("warden_llm_batch_size_bucket{le=\"1\"}".into(), 1.0),
        ("warden_llm_batch_size_bucket{le=\"+Inf\"}".into(), 2.0),
        ("warden_llm_batch_size_sum".into(), 5.0),
        ("warden_llm_batch_size_count".into(), 2.0),
        ("warden_llm_budget_tokens_left".into(), 100.0),
    ];
    let req = Request::get("/metrics")
        .header(header::AUTHORIZATION, format!("Bearer {VIEWER}"))
        .body(Body::empty())
        .expect("req");
    let resp = router(s.clone()).oneshot(req).await.expect("resp");
    assert_eq!(resp.status(), StatusCode::OK);
    let text = resp.into_body().collect().await.expect("body").to_bytes();
    let text = String::from_utf8_lossy(&text);
    assert!(
        text.contains("warden_ingested_samples_total{source=\"remote_write\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("warden_dropped_samples_total{reason=\"unknown_metric\"} 1"),
        "{text}"
    );
    for family in [
        "# TYPE warden_llm_calls counter\nwarden_llm_calls_total 3\n",
        "# TYPE warden_llm_batch_size histogram\nwarden_llm_batch_size_bucket{le=\"1\"} 1\n\
         warden_llm_batch_size_bucket{le=\"+Inf\"} 2\nwarden_llm_batch_size_sum 5\n\
         warden_llm_batch_size_count 2\n",
        "# TYPE warden_llm_budget_tokens_left gauge\nwarden_llm_budget_tokens_left 100\n",
    ] {
        assert!(text.contains(family), "{family} in {text}");
    }
    assert!(text.ends_with("# EOF\n"));
    // Refusals name the problem and change nothing.
    let (code, v) = post_write(&s, OPERATOR, b"not snappy at all".to_vec(), "snappy").await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert!(v.to_string().contains("snappy"), "{v}");
    let (code, v) = post_write(&s, OPERATOR, write_body(&[]), "gzip").await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert!(v.to_string().contains("gzip"), "{v}");
    let garbage = snap::raw::Encoder::new()
        .compress_vec(&[0xff; 16])
        .expect("snappy");
    let (code, v) = post_write(&s, OPERATOR, garbage, "snappy").await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert!(v.to_string().contains("protobuf"), "{v}");
    let many: Vec<Series<'_>> =
        vec![(&[("__name__", "cpu_usage"), ("service", "x")], &[(0.1, 1)]); 10_001];
    let (code, v) = post_write(&s, OPERATOR, write_body(&many), "snappy").await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert!(v.to_string().contains("10001 series"), "{v}");
    let labels: Vec<(String, String)> = (0..70).map(|i| (format!("l{i}"), "v".into())).collect();
    let refs: Vec<(&str, &str)> = labels
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let (code, v) = post_write(&s, OPERATOR, write_body(&[(&refs, &[(1.0, 1)])]), "snappy").await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert!(v.to_string().contains("70 labels"), "{v}");
    // Larger than the default API body limit (4096 here) is fine...
    let big: Vec<Series<'_>> = vec![
        (
            &[("__name__", "cpu_usage"), ("service", "y")],
            &[(0.1, 1), (0.2, 2)]
        );
        2000
    ];
    let body = write_body(&big);
    assert!(body.len() > 4096);
    assert_eq!(
        post_write(&s, OPERATOR, body, "snappy").await.0,
        StatusCode::NO_CONTENT
    );
    // ...past the receiver's own limit is 413.
    let mut cfg = (*s.config).clone();
    cfg.integrations.remote_write.max_body_bytes = 1000;
    let small = ApiState {
        config: std::sync::Arc::new(cfg),
        ..s.clone()
    };
    let (code, _) = post_write(&small, OPERATOR, write_body(&big), "snappy").await;
    assert_eq!(code, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(s.live.read().expect("lock").inbox.len(), 2 + 4000);
}

#[tokio::test]
async fn alertmanager_webhook_alerts_reach_the_inbox_and_bad_payloads_are_refused() {
    let (s, _) = state();
    let payload = json!({
        "version": "4",
        "groupKey": "{}:{alertname=\"CheckoutLatencyHigh\"}",
        "status": "firing",
        "receiver": "warden",
        "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": [
            {"status": "firing", "labels": {"alertname": "CheckoutLatencyHigh", "service": "checkout"},
             "annotations": {"summary": "p95 above 2 s"}, "startsAt": "2026-01-05T09:00:00Z",
             "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "", "fingerprint": "abc"},
            {"status": "resolved", "labels": {"alertname": "DiskFull", "service": "db", "metric": "memory_usage"},
             "annotations": {}, "startsAt": "2026-01-05T08:00:00Z"},
            {"status": "firing", "labels": {"alertname": "Orphan"}, "annotations": {},
             "startsAt": "2026-01-05T09:00:00Z"}
        ]
    });
    let body = serde_json::to_vec(&payload).expect("json");
    let (code, _) = call(
        &s,
        "POST",
        "/api/alertmanager/webhook",
        Some(VIEWER),
        Some(body.clone()),
    )
    .await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    let (code, v) = call(
        &s,
        "POST",
        "/api/alertmanager/webhook",
        Some(OPERATOR),
        Some(body),
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{v}");
    {
        let live = s.live.read().expect("lock");
        assert_eq!(live.alert_inbox.len(), 2);
        let a = &live.alert_inbox[0];
        assert!(a.firing && a.service.as_str() == "checkout" && a.name == "CheckoutLatencyHigh");
        assert_eq!(a.metric, warden_model::Metric::RequestLatencyP95);
        assert_eq!(a.summary, "p95 above 2 s");
        let b = &live.alert_inbox[1];
        assert!(!b.firing && b.metric == warden_model::Metric::MemoryUsage);
        assert_eq!(live.dropped.get("alert_without_service"), Some(&1));
    }
    for (bad, needle) in [
        (json!({"version": "3", "alerts": []}), "version"),
        (
            json!({"version": "4", "alerts": [{"status": "maybe", "labels": {"service": "x"}, "startsAt": "2026-01-05T09:00:00Z"}]}),
            "maybe",
        ),
        (
            json!({"version": "4", "alerts": [{"status": "firing", "labels": {"service": "x"}, "startsAt": "yesterday"}]}),
            "yesterday",
        ),
        (json!({"alerts": "nope"}), "webhook payload"),
    ] {
        let (code, v) = call(
            &s,
            "POST",
            "/api/alertmanager/webhook",
            Some(OPERATOR),
            Some(serde_json::to_vec(&bad).expect("json")),
        )
        .await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{bad}");
        assert!(v.to_string().contains(needle), "{v}");
    }
    assert_eq!(
        s.live.read().expect("lock").alert_inbox.len(),
        2,
        "refusals change nothing"
    );
}

/// Per-tenant limits: the tenant is the token's name; a request that would
/// take a tenant past its active-series limit is refused whole, and a
/// million-label series is refused naming its label count.
#[tokio::test]
async fn remote_write_tenant_limits_refuse_whole_requests() {
    let (s, _) = state();
    let mut cfg = (*s.config).clone();
    cfg.integrations.remote_write.max_active_series = 3;
    cfg.integrations.remote_write.tenants.insert(
        "admin".into(),
        warden_config::TenantLimits {
            max_active_series: Some(100),
            ..Default::default()
        },
    );
    let s = ApiState {
        config: Arc::new(cfg),
        ..s
    };
    let series = |svc: &'static str| -> Series<'static> {
        let labels: &'static [(&'static str, &'static str)] =
            Box::leak(Box::new([("__name__", "cpu_usage"), ("service", svc)]));
        (labels, &[(0.5, 1_700_000_000_000)])
    };
    let ok = write_body(&[series("a"), series("b"), series("c")]);
    assert_eq!(
        post_write(&s, OPERATOR, ok.clone(), "snappy").await.0,
        StatusCode::NO_CONTENT
    );
    // Writing the same series again is fine; a fourth is not, and the
    // request's other samples are not kept either.
    assert_eq!(
        post_write(&s, OPERATOR, ok, "snappy").await.0,
        StatusCode::NO_CONTENT
    );
    let (code, v) = post_write(
        &s,
        OPERATOR,
        write_body(&[series("a"), series("d")]),
        "snappy",
    )
    .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    let msg = v.to_string();
    assert!(
        msg.contains("\\\"ops\\\"") && msg.contains("at most 3"),
        "{msg}"
    );
    assert_eq!(s.live.read().expect("lock").inbox.len(), 6);
    // Another tenant has its own count and its own limit.
    assert_eq!(
        post_write(&s, ADMIN, write_body(&[series("d"), series("e")]), "snappy")
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    // A label bomb: one series with a million labels.
    let labels: Vec<(String, String)> = (0..1_000_000)
        .map(|i| (format!("l{i}"), "v".into()))
        .collect();
    let refs: Vec<(&str, &str)> = labels
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let (code, v) = post_write(&s, ADMIN, write_body(&[(&refs, &[(1.0, 1)])]), "snappy").await;
    assert!(code.is_client_error(), "{code}");
    assert!(v.to_string().contains("1000000 labels"), "{v}");
    // A label value that is not UTF-8 fails the protobuf string check.
    let mut raw = {
        use prost::Message;
        warden_api::ingest::WriteRequest {
            timeseries: vec![warden_api::ingest::TimeSeries {
                labels: vec![warden_api::ingest::Label {
                    name: "service".into(),
                    value: "zzzz".into(),
                }],
                samples: vec![],
            }],
        }
        .encode_to_vec()
    };
    let at = raw.windows(4).position(|w| w == b"zzzz").expect("value");
    raw[at] = 0xc3;
    raw[at + 1] = 0x28;
    let body = snap::raw::Encoder::new()
        .compress_vec(&raw)
        .expect("snappy");
    let (code, v) = post_write(&s, ADMIN, body, "snappy").await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert!(
        v.to_string().contains("UTF-8") || v.to_string().contains("utf-8"),
        "{v}"
    );
    assert_eq!(s.live.read().expect("lock").inbox.len(), 8);
}

fn otlp_body(service: &str, spans: &[(u8, u8, Option<u8>)]) -> Vec<u8> {
    use prost::Message;
    use warden_api::otlp::*;
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![KeyValue {
                    key: "service.name".into(),
                    value: Some(AnyValue {
                        string_value: Some(service.into()),
                    }),
                }],
            }),
            scope_spans: vec![ScopeSpans {
                spans: spans
                    .iter()
                    .map(|&(trace, id, parent)| OtlpSpan {
                        trace_id: [[trace; 8], [7; 8]].concat(),
                        span_id: vec![id; 8],
                        parent_span_id: parent.map(|p| vec![p; 8]).unwrap_or_default(),
                        name: "call".into(),
                        kind: 2,
                        start_time_unix_nano: 1_700_000_000_000_000_000,
                        end_time_unix_nano: 1_700_000_000_010_000_000,
                        status: None,
                    })
                    .collect(),
            }],
        }],
    }
    .encode_to_vec()
}

async fn send(
    s: &ApiState,
    req: Request<Body>,
) -> (
    StatusCode,
    axum::http::HeaderMap,
    Vec<u8>,
    Option<axum::http::HeaderMap>,
) {
    let resp = router(s.clone()).oneshot(req).await.expect("response");
    let status = resp.status();
    let headers = resp.headers().clone();
    let collected = resp.into_body().collect().await.expect("body");
    let trailers = collected.trailers().cloned();
    (status, headers, collected.to_bytes().to_vec(), trailers)
}

fn otlp_enabled() -> ApiState {
    let (s, _) = state();
    let mut cfg = (*s.config).clone();
    cfg.integrations.otlp.enabled = true;
    cfg.integrations.otlp.max_body_bytes = 64 << 10;
    ApiState {
        config: Arc::new(cfg),
        ..s
    }
}

/// OTLP/HTTP as the OpenTelemetry SDKs send it: binary protobuf, optionally
/// gzip; answers are protobuf (`ExportTraceServiceResponse`, or a
/// `google.rpc.Status` for errors).
#[tokio::test]
async fn otlp_http_spans_reach_the_inbox_and_bad_bodies_are_refused() {
    use prost::Message;
    use warden_api::otlp::{ExportTraceServiceResponse, RpcStatus};
    let s = otlp_enabled();
    let post = |token: &str, ctype: &str, encoding: Option<&str>, body: Vec<u8>| {
        let mut r = Request::post("/v1/traces")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::CONTENT_TYPE, ctype);
        if let Some(e) = encoding {
            r = r.header(header::CONTENT_ENCODING, e);
        }
        r.body(Body::from(body)).expect("request")
    };
    let body = otlp_body("checkout", &[(1, 1, None), (1, 2, Some(1))]);
    let (code, _, _, _) = send(
        &s,
        post(VIEWER, "application/x-protobuf", None, body.clone()),
    )
    .await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    let (code, h, bytes, _) = send(&s, post(OPERATOR, "application/x-protobuf", None, body)).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(h[header::CONTENT_TYPE], "application/x-protobuf");
    let answer = ExportTraceServiceResponse::decode(bytes.as_slice()).expect("response");
    assert_eq!(answer.partial_success, None);
    // gzip, with one span rejected: partial success names it.
    let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(
        &mut z,
        &otlp_body("payment", &[(1, 3, Some(2)), (1, 0, None)]),
    )
    .expect("gzip");
    let gz = z.finish().expect("gzip");
    let (code, _, bytes, _) = send(
        &s,
        post(OPERATOR, "application/x-protobuf", Some("gzip"), gz),
    )
    .await;
    assert_eq!(code, StatusCode::OK);
    let partial = ExportTraceServiceResponse::decode(bytes.as_slice())
        .expect("response")
        .partial_success
        .expect("partial");
    assert_eq!(partial.rejected_spans, 1);
    assert!(
        partial.error_message.contains("span_id"),
        "{}",
        partial.error_message
    );
    {
        let live = s.live.read().expect("lock");
        assert_eq!(live.span_inbox.len(), 3);
        assert_eq!(live.ingested_spans.get("otlp_http"), Some(&3));
        assert_eq!(live.dropped_spans.get("invalid"), Some(&1));
    }
    // Refusals: JSON, unknown compression, garbage, gzip bombs, too large.
    for (ctype, enc, body, want, needle) in [
        (
            "application/json",
            None,
            b"{}".to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "application/json",
        ),
        (
            "application/x-protobuf",
            Some("br"),
            vec![1],
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "\"br\"",
        ),
        (
            "application/x-protobuf",
            None,
            vec![0xff; 32],
            StatusCode::BAD_REQUEST,
            "protobuf",
        ),
        (
            "application/x-protobuf",
            Some("gzip"),
            b"nope".to_vec(),
            StatusCode::BAD_REQUEST,
            "gzip",
        ),
        (
            "application/x-protobuf",
            None,
            vec![0; 70 << 10],
            StatusCode::PAYLOAD_TOO_LARGE,
            "at most",
        ),
    ] {
        let (code, _, bytes, _) = send(&s, post(OPERATOR, ctype, enc, body)).await;
        assert_eq!(code, want, "{ctype} {enc:?}");
        let status = RpcStatus::decode(bytes.as_slice()).expect("google.rpc.Status");
        assert!(status.message.contains(needle), "{}", status.message);
    }
    let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut z, &vec![0u8; 40 << 20]).expect("gzip");
    let bomb = z.finish().expect("gzip");
    assert!(bomb.len() < 64 << 10);
    let (code, _, _, _) = send(
        &s,
        post(OPERATOR, "application/x-protobuf", Some("gzip"), bomb),
    )
    .await;
    assert_eq!(code, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(s.live.read().expect("lock").span_inbox.len(), 3);
    // Disabled: 404 saying how to turn it on.
    let (plain, _) = state();
    let (code, _, bytes, _) = send(
        &plain,
        post(OPERATOR, "application/x-protobuf", None, vec![]),
    )
    .await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert!(String::from_utf8_lossy(&bytes).contains("integrations.otlp.enabled"));
}

/// OTLP/gRPC's unary Export as a gRPC client frames it (5-byte prefix,
/// optional gzip with grpc-encoding), answered with a framed
/// `ExportTraceServiceResponse` and `grpc-status` in the trailers, or a
/// Trailers-Only error.
#[tokio::test]
async fn otlp_grpc_export_is_answered_with_grpc_status() {
    use prost::Message;
    use warden_api::otlp::{ExportTraceServiceResponse, GRPC_PATH};
    let s = otlp_enabled();
    let frame = |compressed: bool, msg: &[u8]| {
        let mut f = vec![u8::from(compressed)];
        f.extend_from_slice(&(msg.len() as u32).to_be_bytes());
        f.extend_from_slice(msg);
        f
    };
    let post = |encoding: Option<&str>, body: Vec<u8>| {
        let mut r = Request::post(GRPC_PATH)
            .header(header::AUTHORIZATION, format!("Bearer {OPERATOR}"))
            .header(header::CONTENT_TYPE, "application/grpc")
            .header("te", "trailers");
        if let Some(e) = encoding {
            r = r.header("grpc-encoding", e);
        }
        r.body(Body::from(body)).expect("request")
    };
    let msg = otlp_body("frontend", &[(2, 1, None), (2, 9, Some(8))]);
    let (code, h, bytes, trailers) = send(&s, post(None, frame(false, &msg))).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(h[header::CONTENT_TYPE], "application/grpc");
    let trailers = trailers.expect("trailers");
    assert_eq!(trailers["grpc-status"], "0");
    assert_eq!(bytes[0], 0);
    let answer = ExportTraceServiceResponse::decode(&bytes[5..]).expect("response");
    assert_eq!(answer.partial_success, None);
    let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut z, &otlp_body("cart", &[(2, 8, Some(1))])).expect("gzip");
    let (_, _, _, trailers) = send(
        &s,
        post(Some("gzip"), frame(true, &z.finish().expect("gz"))),
    )
    .await;
    assert_eq!(trailers.expect("trailers")["grpc-status"], "0");
    assert_eq!(s.live.read().expect("lock").span_inbox.len(), 3);
    // Errors are Trailers-Only: status and message in the headers.
    for (enc, body, want) in [
        (None, vec![0, 0, 0], "3"),
        (None, frame(false, &[0xff; 8]), "3"),
        (Some("snappy"), frame(true, &msg), "12"),
        (None, frame(false, &vec![0; 70 << 10]), "8"),
    ] {
        let (code, h, bytes, _) = send(&s, post(enc, body)).await;
        assert_eq!(code, StatusCode::OK);
        assert_eq!(h["grpc-status"], want, "{:?}", h.get("grpc-message"));
        assert!(!h["grpc-message"].is_empty());
        assert!(bytes.is_empty());
    }
    assert_eq!(s.live.read().expect("lock").span_inbox.len(), 3);
}

/// Backpressure: while the loop's queue is full, remote-write and OTLP
/// requests are refused before decoding with the statuses their senders
/// retry (503 with Retry-After; gRPC UNAVAILABLE), and nothing is stored.
#[tokio::test]
async fn full_queues_answer_retry_later_and_store_nothing() {
    use warden_api::otlp::GRPC_PATH;
    let (s, _) = state();
    let mut cfg = (*s.config).clone();
    cfg.integrations.remote_write.max_pending = 2;
    cfg.integrations.otlp.enabled = true;
    cfg.integrations.otlp.max_pending_spans = 2;
    let s = ApiState {
        config: Arc::new(cfg),
        ..s
    };
    let three: Vec<Series<'_>> = vec![(
        &[("__name__", "cpu_usage"), ("service", "a")],
        &[(0.1, 1), (0.2, 2), (0.3, 3)],
    )];
    // Below the mark a request is taken whole, even past it...
    assert_eq!(
        post_write(&s, OPERATOR, write_body(&three), "snappy")
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    // ...then the next waits.
    let req = Request::post("/api/v1/write")
        .header(header::AUTHORIZATION, format!("Bearer {OPERATOR}"))
        .header(header::CONTENT_ENCODING, "snappy")
        .body(Body::from(write_body(&three)))
        .expect("request");
    let resp = router(s.clone()).oneshot(req).await.expect("response");
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(resp.headers()[header::RETRY_AFTER], "1");
    assert_eq!(s.live.read().expect("lock").inbox.len(), 3);

    let spans = otlp_body("a", &[(1, 1, None), (1, 2, Some(1))]);
    let http = |body: Vec<u8>| {
        Request::post("/v1/traces")
            .header(header::AUTHORIZATION, format!("Bearer {OPERATOR}"))
            .header(header::CONTENT_TYPE, "application/x-protobuf")
            .body(Body::from(body))
            .expect("request")
    };
    assert_eq!(send(&s, http(spans.clone())).await.0, StatusCode::OK);
    let (code, h, _, _) = send(&s, http(spans.clone())).await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(h[header::RETRY_AFTER], "1");
    let mut framed = vec![0];
    framed.extend_from_slice(&(spans.len() as u32).to_be_bytes());
    framed.extend_from_slice(&spans);
    let req = Request::post(GRPC_PATH)
        .header(header::AUTHORIZATION, format!("Bearer {OPERATOR}"))
        .header(header::CONTENT_TYPE, "application/grpc")
        .body(Body::from(framed))
        .expect("request");
    let (_, h, _, _) = send(&s, req).await;
    assert_eq!(h["grpc-status"], "14");
    assert_eq!(s.live.read().expect("lock").span_inbox.len(), 2);
}
