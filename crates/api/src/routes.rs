//! Routes and handlers.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router, middleware};
use serde::Deserialize;
use serde_json::{Value, json};
use warden_config::Role;
use warden_model::{IncidentId, JournalEntry, JournalEvent, Registration, ServiceName};
use warden_store::{DecideError, JournalQuery};

use crate::auth::{Principal, require_role, require_token};
use crate::{ApiState, dashboard, read_live, write_live};

/// A JSON error body `{"error": message}` with `status`.
pub fn error_json(status: StatusCode, message: &str) -> (StatusCode, Json<Value>) {
    (status, Json(json!({ "error": message })))
}

fn internal(e: impl std::fmt::Display) -> Response {
    tracing::error!("api: {e}");
    error_json(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()).into_response()
}

/// The full router: API, dashboard, health.
pub fn router(state: ApiState) -> Router {
    let c = &state.config.services;
    let api = Router::new()
        .route("/api/services", get(services))
        .route("/api/services/{name}", get(service))
        .route(
            &format!("{}/register", c.discovery.endpoint),
            post(register),
        )
        .route("/api/graph", get(graph))
        .route("/api/graph/risks", get(risks))
        .route(
            &format!("{}/anomalies", c.monitoring.endpoint),
            get(anomalies),
        )
        .route(
            "/api/v1/write",
            post(crate::ingest::remote_write).layer(DefaultBodyLimit::max(
                state.config.integrations.remote_write.max_body_bytes,
            )),
        )
        .route("/metrics", get(crate::ingest::metrics))
        .route("/sim/metrics", get(sim_metrics))
        .route(
            "/api/alertmanager/webhook",
            post(crate::ingest::alertmanager_webhook),
        )
        .route("/v1/traces", post(crate::otlp::http_traces))
        .route(crate::otlp::GRPC_PATH, post(crate::otlp::grpc_export))
        .route("/api/capacity", get(capacity))
        .route("/api/capacity/{name}", get(capacity_of))
        .route("/api/incidents", get(incidents))
        .route("/api/incidents/{id}", get(incident))
        .route("/api/incidents/{id}/approve", post(approve))
        .route("/api/incidents/{id}/reject", post(reject))
        .route(&format!("{}/actions", c.recovery.endpoint), get(actions))
        .route("/api/journal", get(journal))
        .route("/", get(dashboard::index))
        .route("/incidents/{id}", get(dashboard::incident_page))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .merge(api)
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/login", get(dashboard::login_form).post(dashboard::login))
        .route("/logout", post(dashboard::logout))
        .fallback(|| async { error_json(StatusCode::NOT_FOUND, "no such endpoint") })
        .layer(DefaultBodyLimit::max(state.config.api.max_body_bytes))
        .with_state(state)
}

/// The OTLP receivers alone (with the same token auth), for their own
/// listeners (`integrations.otlp.grpc_listen` / `http_listen`).
pub fn otlp_router(state: ApiState) -> Router {
    Router::new()
        .route("/v1/traces", post(crate::otlp::http_traces))
        .route(crate::otlp::GRPC_PATH, post(crate::otlp::grpc_export))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token))
        .fallback(|| async { error_json(StatusCode::NOT_FOUND, "no such endpoint") })
        .with_state(state)
}

/// The simulated mesh's metrics for a Prometheus to scrape.
async fn sim_metrics(State(s): State<ApiState>) -> Response {
    match &read_live(&s.live).exposition {
        Some(text) => (
            [(
                axum::http::header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text.clone(),
        )
            .into_response(),
        None => error_json(
            StatusCode::NOT_FOUND,
            "the simulator does not export metrics (simulator.enabled and simulator.export_metrics)",
        )
        .into_response(),
    }
}

async fn readyz(State(s): State<ApiState>) -> Response {
    let live = read_live(&s.live);
    let body = json!({ "ready": live.ready, "sources": live.sources });
    // Ready when the loop runs and every source answered last time.
    let code = if live.ready && live.sources.values().all(|ok| *ok) {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body)).into_response()
}

async fn services(State(s): State<ApiState>) -> Response {
    let live = read_live(&s.live);
    let anomalous: std::collections::BTreeSet<&ServiceName> =
        live.anomalies.iter().map(|a| &a.service).collect();
    let list: Vec<Value> = live
        .services
        .values()
        .map(|svc| {
            let mut v = serde_json::to_value(svc).unwrap_or(Value::Null);
            v["status"] = json!(if anomalous.contains(&svc.name) {
                "anomalous"
            } else {
                "healthy"
            });
            v
        })
        .collect();
    Json(json!({ "services": list })).into_response()
}

async fn service(State(s): State<ApiState>, Path(name): Path<String>) -> Response {
    let Ok(name) = ServiceName::parse(&name) else {
        return error_json(
            StatusCode::BAD_REQUEST,
            &format!("invalid service name {name:?}"),
        )
        .into_response();
    };
    let live = read_live(&s.live);
    let Some(svc) = live.services.get(&name) else {
        return error_json(StatusCode::NOT_FOUND, &format!("no service {name}")).into_response();
    };
    let callers: Vec<&ServiceName> = live.graph.callers(&name).collect();
    let callees: Vec<&ServiceName> = live.graph.callees(&name).collect();
    let anomalies: Vec<_> = live
        .anomalies
        .iter()
        .filter(|a| a.service == name)
        .collect();
    Json(json!({ "service": svc, "callers": callers, "callees": callees, "anomalies": anomalies }))
        .into_response()
}

async fn register(
    State(s): State<ApiState>,
    Extension(p): Extension<Principal>,
    body: Bytes,
) -> Response {
    if let Err(r) = require_role(&p, Role::Operator, "register services") {
        return r;
    }
    let reg: Registration = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error_json(
                StatusCode::BAD_REQUEST,
                &format!("invalid registration: {e}"),
            )
            .into_response();
        }
    };
    let now = (s.clock)();
    let svc = match reg.validate("registration", now) {
        Ok(v) => v,
        Err(e) => {
            return error_json(
                StatusCode::BAD_REQUEST,
                &format!("invalid registration: {e}"),
            )
            .into_response();
        }
    };
    let (exists, count) = {
        let live = read_live(&s.live);
        (live.services.contains_key(&svc.name), live.services.len())
    };
    let max = s.config.services.discovery.max_services;
    if !exists && count >= max {
        return error_json(
            StatusCode::CONFLICT,
            &format!("catalog holds {count} services; services.discovery.max_services is {max}"),
        )
        .into_response();
    }
    if let Err(e) = s.store.upsert_service(&svc) {
        return internal(e);
    }
    let mut entry = [JournalEntry {
        seq: 0,
        ts: now,
        incident: None,
        event: JournalEvent::ServiceRegistered {
            service: svc.name.clone(),
            source: format!("registration by {}", p.name),
            dependencies: svc.dependencies.clone(),
        },
    }];
    if let Err(e) = s.store.append(&mut entry) {
        return internal(e);
    }
    write_live(&s.live).add_service(svc.clone());
    let code = if exists {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    (
        code,
        Json(json!({ "service": svc, "journal_seq": entry[0].seq })),
    )
        .into_response()
}

async fn graph(State(s): State<ApiState>) -> Response {
    let live = read_live(&s.live);
    let nodes: Vec<&ServiceName> = live.graph.nodes().collect();
    Json(json!({ "nodes": nodes, "edges": live.graph.edge_views() })).into_response()
}

/// The seed's dependency analysis `{dependencies, risks, suggestions}`
/// computed from the live graph, with the analyst's latest per-service
/// analyses under `analyses`.
async fn risks(State(s): State<ApiState>) -> Response {
    let live = read_live(&s.live);
    let nodes: Vec<String> = live.graph.nodes().map(|n| n.to_string()).collect();
    let edges = warden_rca::risk::EdgeInfo::of(&live.graph);
    let risks = warden_rca::risk::analyze(&nodes, &edges, &warden_rca::risk::RiskParams::default());
    let mut suggestions: Vec<&str> = Vec::new();
    for r in &risks {
        if !suggestions.contains(&r.suggestion.as_str()) {
            suggestions.push(&r.suggestion);
        }
    }
    Json(json!({
        "dependencies": live.graph.edge_views(),
        "risks": risks,
        "suggestions": suggestions,
        "analyses": live.dependency_analyses,
    }))
    .into_response()
}

async fn anomalies(State(s): State<ApiState>) -> Response {
    let live = read_live(&s.live);
    Json(json!({ "anomalies": live.anomalies })).into_response()
}

async fn capacity(State(s): State<ApiState>) -> Response {
    let live = read_live(&s.live);
    let plans: Vec<_> = live.capacity.values().collect();
    Json(json!({ "plans": plans })).into_response()
}

async fn capacity_of(State(s): State<ApiState>, Path(name): Path<String>) -> Response {
    let live = read_live(&s.live);
    match live.capacity.iter().find(|(k, _)| k.as_str() == name) {
        Some((_, plan)) => Json(json!(plan)).into_response(),
        None => error_json(
            StatusCode::NOT_FOUND,
            &format!("no capacity plan for service {name:?} (unknown, or not enough history yet)"),
        )
        .into_response(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    limit: Option<usize>,
}

async fn incidents(
    State(s): State<ApiState>,
    q: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let limit = match q {
        Ok(Query(p)) => p.limit.unwrap_or(100),
        Err(e) => return error_json(StatusCode::BAD_REQUEST, &e.body_text()).into_response(),
    };
    if !(1..=10_000).contains(&limit) {
        return error_json(
            StatusCode::BAD_REQUEST,
            &format!("limit {limit} is outside 1..=10000"),
        )
        .into_response();
    }
    match s.store.incidents(limit) {
        Ok(list) => Json(json!({ "incidents": list })).into_response(),
        Err(e) => internal(e),
    }
}

fn parse_id(id: &str) -> Result<IncidentId, Response> {
    IncidentId::parse(id).ok_or_else(|| {
        error_json(
            StatusCode::BAD_REQUEST,
            &format!("invalid incident id {id:?}: expected INC- and 8 hex digits"),
        )
        .into_response()
    })
}

async fn incident(State(s): State<ApiState>, Path(id): Path<String>) -> Response {
    let id = match parse_id(&id) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let inc = match s.store.incident(&id) {
        Ok(Some(i)) => i,
        Ok(None) => {
            return error_json(StatusCode::NOT_FOUND, &format!("no incident {id}")).into_response();
        }
        Err(e) => return internal(e),
    };
    match s.store.journal(&JournalQuery {
        incident: Some(id),
        limit: 10_000,
        ..Default::default()
    }) {
        Ok(j) => Json(json!({ "incident": inc, "journal": j })).into_response(),
        Err(e) => internal(e),
    }
}

async fn decide(s: ApiState, p: Principal, id: String, approve: bool) -> Response {
    let verb = if approve { "approve" } else { "reject" };
    if let Err(r) = require_role(&p, Role::Operator, &format!("{verb} actions")) {
        return r;
    }
    let id = match parse_id(&id) {
        Ok(i) => i,
        Err(r) => return r,
    };
    match s.store.incident(&id) {
        Ok(Some(_)) => {}
        Ok(None) => {
            return error_json(StatusCode::NOT_FOUND, &format!("no incident {id}")).into_response();
        }
        Err(e) => return internal(e),
    }
    match s.store.decide_approval(&id, approve, &p.name, (s.clock)()) {
        Ok(a) => Json(json!({ "approval": a })).into_response(),
        Err(DecideError::NotPending(_)) => error_json(
            StatusCode::CONFLICT,
            &format!("incident {id} has no action awaiting approval"),
        )
        .into_response(),
        Err(DecideError::Store(e)) => internal(e),
    }
}

async fn approve(
    State(s): State<ApiState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> Response {
    decide(s, p, id, true).await
}

async fn reject(
    State(s): State<ApiState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> Response {
    decide(s, p, id, false).await
}

/// Journal kinds that describe remediation actions.
pub const ACTION_KINDS: [&str; 6] = [
    "action_executed",
    "action_dry_run",
    "approval_requested",
    "action_undone",
    "action_failed",
    "approval_decided",
];

async fn actions(State(s): State<ApiState>) -> Response {
    let q = JournalQuery {
        kinds: ACTION_KINDS.iter().map(|k| k.to_string()).collect(),
        limit: 1000,
        ..Default::default()
    };
    match s.store.journal(&q) {
        Ok(list) => Json(json!({ "actions": list })).into_response(),
        Err(e) => internal(e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JournalParams {
    incident: Option<String>,
    after: Option<u64>,
    limit: Option<usize>,
    kind: Option<String>,
}

async fn journal(
    State(s): State<ApiState>,
    q: Result<Query<JournalParams>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let p = match q {
        Ok(Query(p)) => p,
        Err(e) => return error_json(StatusCode::BAD_REQUEST, &e.body_text()).into_response(),
    };
    let incident = match p.incident.as_deref().map(parse_id).transpose() {
        Ok(i) => i,
        Err(r) => return r,
    };
    let limit = p.limit.unwrap_or(1000);
    if !(1..=10_000).contains(&limit) {
        return error_json(
            StatusCode::BAD_REQUEST,
            &format!("limit {limit} is outside 1..=10000"),
        )
        .into_response();
    }
    let kinds: Vec<String> = p
        .kind
        .iter()
        .flat_map(|k| k.split(','))
        .map(str::to_string)
        .collect();
    if let Some(bad) = kinds
        .iter()
        .find(|k| k.is_empty() || !k.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
    {
        return error_json(StatusCode::BAD_REQUEST, &format!("invalid kind {bad:?}"))
            .into_response();
    }
    match s.store.journal(&JournalQuery {
        incident,
        after_seq: p.after,
        kinds,
        limit,
    }) {
        Ok(list) => {
            let counts: BTreeMap<&str, usize> = list.iter().fold(BTreeMap::new(), |mut m, e| {
                *m.entry(e.event.kind()).or_default() += 1;
                m
            });
            Json(json!({ "entries": list, "counts": counts })).into_response()
        }
        Err(e) => internal(e),
    }
}
