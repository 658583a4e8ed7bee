//! The HTTP API and the dashboard.
//!
//! JSON endpoints under the seed's three prefixes (`/api/discovery`,
//! `/api/monitoring`, `/api/recovery`, configurable) plus catalog, graph,
//! incidents and journal. Every request needs a bearer token (or the
//! dashboard's HttpOnly cookie) unless anonymous access is configured;
//! tokens carry a role: viewer reads, operator also registers and approves,
//! admin does everything. `/healthz` and `/readyz` need no token.
//!
//! This crate owns request parsing, validation and authorization. It reads
//! the store and the live picture; it never runs the loop.

// Handlers return early with a ready HTTP response as the error; it is built
// once per failing request, so its size does not matter.
#![allow(clippy::result_large_err)]

mod auth;
mod dashboard;
pub mod ingest;
pub mod otlp;
mod routes;

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use warden_config::Config;
use warden_model::{Anomaly, Graph, Service, ServiceName, Timestamp};
use warden_store::Store;

pub use auth::{Principal, TokenTable};
pub use routes::{otlp_router, router};

/// The live picture the loop maintains and the API serves.
#[derive(Debug, Default)]
pub struct Live {
    pub services: BTreeMap<ServiceName, Service>,
    pub graph: Graph,
    /// Anomalies currently active.
    pub anomalies: Vec<Anomaly>,
    /// Whether the loop has started and its sources are healthy.
    pub ready: bool,
    /// Health per source (`simulator`, `registration`, …).
    pub sources: BTreeMap<String, bool>,
    /// The latest capacity plan per service.
    pub capacity: BTreeMap<ServiceName, warden_model::CapacityPlan>,
    /// The latest dependency analysis per service (`{analyst, at,
    /// analysis: {dependencies, risks, suggestions}}`).
    pub dependency_analyses: BTreeMap<ServiceName, serde_json::Value>,
    /// Samples received over HTTP (remote write), waiting for the loop.
    pub inbox: Vec<warden_model::Sample>,
    /// Alerts received (Alertmanager's webhook), waiting for the loop.
    pub alert_inbox: Vec<warden_model::AlertSignal>,
    /// Dependency edges pulled from a tracing backend (caller, callee,
    /// calls over its lookback), waiting for the loop.
    pub edge_inbox: Vec<(ServiceName, ServiceName, u64)>,
    /// Samples accepted per source, and dropped per reason (for /metrics).
    pub ingested: BTreeMap<String, u64>,
    pub dropped: BTreeMap<String, u64>,
    /// Spans received (OTLP), waiting for the loop.
    pub span_inbox: Vec<warden_model::Span>,
    /// Spans accepted per source, and dropped per reason (for /metrics).
    pub ingested_spans: BTreeMap<String, u64>,
    pub dropped_spans: BTreeMap<String, u64>,
    /// Spans the loop holds waiting for their parent or child, and those it
    /// gave up on (no other half within the join window).
    pub spans_pending: u64,
    pub spans_expired: u64,
    /// The analyst's own counters (model calls, cache hits, tokens, …).
    pub analyst_metrics: Vec<(String, f64)>,
    /// The simulated mesh's metrics in Prometheus text format, when the
    /// simulator exports them (`GET /sim/metrics`).
    pub exposition: Option<String>,
    /// Active (service, metric) series per remote-write tenant.
    pub tenant_series: BTreeMap<String, ingest::TenantSeries>,
}

impl Live {
    /// Adds or replaces a catalog entry and its declared dependencies.
    pub fn add_service(&mut self, svc: Service) {
        self.graph.add_node(&svc.name);
        for d in &svc.dependencies {
            self.graph.declare(&svc.name, d);
        }
        self.services.insert(svc.name.clone(), svc);
    }
}

/// Shared handle to the live picture.
pub type SharedLive = Arc<RwLock<Live>>;

/// Everything a request handler needs.
#[derive(Clone)]
pub struct ApiState {
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub live: SharedLive,
    pub tokens: Arc<TokenTable>,
    /// The clock for records the API writes (wall time in `serve`, the
    /// simulation's clock in `demo`).
    pub clock: Arc<dyn Fn() -> Timestamp + Send + Sync>,
}

/// Reads the live picture, recovering from a poisoned lock.
pub fn read_live(live: &SharedLive) -> std::sync::RwLockReadGuard<'_, Live> {
    live.read().unwrap_or_else(|p| p.into_inner())
}

/// Writes the live picture, recovering from a poisoned lock.
pub fn write_live(live: &SharedLive) -> std::sync::RwLockWriteGuard<'_, Live> {
    live.write().unwrap_or_else(|p| p.into_inner())
}
