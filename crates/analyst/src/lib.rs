//! The analyst: explains an incident and proposes a recovery plan.
//!
//! [`Analyst`] is the seam where a language model plugs in; [`Builtin`] is
//! the deterministic analyst that needs no model and is the default and the
//! fallback. Requests carry evidence that warden computed (the ranking, the
//! anomalies, recent changes); answers have the seed's JSON shapes:
//! anomaly analysis `{status, anomalies, root_causes, recommendations}` and
//! recovery plan `{steps: [{action, target, params}]}`.
//!
//! An analyst proposes; it never decides. Its plan steps are parsed into the
//! closed `Action` enum and go through the gates like any other proposal.

pub mod answer;
pub mod builtin;
pub mod capacity;
pub mod prompt;
pub mod redact;

use std::future::Future;
use std::pin::Pin;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use warden_model::{Anomaly, Candidate, Change, IncidentId, Metric, PlanStep, ServiceName};

pub use builtin::Builtin;

/// The current state of one service, as evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceState {
    pub service: ServiceName,
    /// Latest value and baseline (rolling median) per metric.
    pub metrics: Vec<MetricState>,
}

/// One metric's latest value against its baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricState {
    pub metric: Metric,
    pub value: f64,
    pub baseline: f64,
}

impl ServiceState {
    /// The latest value and baseline of `m`.
    pub fn get(&self, m: Metric) -> Option<&MetricState> {
        self.metrics.iter().find(|x| x.metric == m)
    }
}

/// Evidence for one incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentContext {
    pub incident: IncidentId,
    pub anomalies: Vec<Anomaly>,
    /// Ranked root-cause candidates, best first.
    pub ranking: Vec<Candidate>,
    /// Changes to the incident's services in the lookback window.
    pub changes: Vec<Change>,
    /// State of the incident's services and of the top candidate.
    pub services: Vec<ServiceState>,
    /// Every service warden knows (plans may only target these).
    pub known_services: Vec<ServiceName>,
    /// When the first signal began (RFC 3339).
    pub onset: warden_model::Timestamp,
    /// What the gates will allow, so that plans stay inside it.
    pub limits: PlanLimits,
    /// Recent warning, error and alert log lines of the incident's services
    /// (untrusted text; redacted before it reaches a model).
    #[serde(default)]
    pub logs: Vec<String>,
}

/// The configured bounds a plan must respect (the gates enforce them
/// anyway; telling the analyst avoids proposals that are bound to be
/// refused).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanLimits {
    pub max_replicas: u32,
    pub max_scale_factor: f64,
}

impl Default for PlanLimits {
    fn default() -> Self {
        Self {
            max_replicas: 20,
            max_scale_factor: 4.0,
        }
    }
}

/// Evidence for the dependency analysis of one service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DependencyContext {
    pub service: ServiceName,
    /// The registration's description (untrusted text).
    pub description: String,
    /// What the service calls, one line per dependency with what warden
    /// knows of it (declared, observed, rate, errors, latency).
    pub calls: Vec<String>,
    /// The services that call it.
    pub called_by: Vec<String>,
    /// The risks warden found that involve the service.
    pub risks: Vec<RiskFact>,
}

/// One dependency risk, as evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RiskFact {
    pub kind: String,
    pub severity: String,
    pub detail: String,
    pub suggestion: String,
}

/// The seed's analyses that warden asks for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "context", rename_all = "snake_case")]
pub enum Request {
    /// Seed: analyze_metrics_with_llm → `{status, anomalies, root_causes, recommendations}`.
    AnomalyAnalysis(IncidentContext),
    /// Seed: analyze_fault_pattern → `{steps}`.
    RecoveryPlan(IncidentContext),
    /// Seed: the capacity plan's `{warning_signals, scale_timing,
    /// optimizations}`, written from a plan's forecast. Its proposals are
    /// warden's, from the numbers, never the analyst's.
    CapacityPlan(warden_model::CapacityPlan),
    /// Seed: analyze_service_dependencies → `{dependencies, risks, suggestions}`.
    DependencyAnalysis(DependencyContext),
}

impl Request {
    /// snake_case name of the analysis.
    pub fn kind(&self) -> &'static str {
        match self {
            Request::AnomalyAnalysis(_) => "anomaly_analysis",
            Request::RecoveryPlan(_) => "recovery_plan",
            Request::CapacityPlan(_) => "capacity_plan",
            Request::DependencyAnalysis(_) => "dependency_analysis",
        }
    }

    /// What the request is about (an incident id, `capacity:<service>`,
    /// `dependencies:<service>`): pseudonyms are stable within a scope.
    pub fn scope(&self) -> String {
        match self {
            Request::AnomalyAnalysis(c) | Request::RecoveryPlan(c) => c.incident.0.clone(),
            Request::CapacityPlan(p) => format!("capacity:{}", p.service),
            Request::DependencyAnalysis(d) => format!("dependencies:{}", d.service),
        }
    }
}

/// One anomaly in an analysis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AnomalyItem {
    pub service: String,
    pub metric: String,
    pub description: String,
}

/// One root cause in an analysis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RootCauseItem {
    pub service: String,
    pub metric: String,
    /// 0..1.
    pub confidence: f64,
    pub evidence: Vec<String>,
}

/// Seed: `{status, anomalies, root_causes, recommendations}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AnomalyAnalysis {
    /// `critical`, `warning` or `ok`.
    pub status: String,
    pub anomalies: Vec<AnomalyItem>,
    pub root_causes: Vec<RootCauseItem>,
    pub recommendations: Vec<String>,
}

/// Seed: `{steps: [{action, target, params}]}`, with the reasoning.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RecoveryPlan {
    pub steps: Vec<PlanStep>,
    pub rationale: String,
}

/// Seed: the capacity plan's narrative `{warning_signals, scale_timing,
/// optimizations}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CapacityAdvice {
    pub warning_signals: Vec<String>,
    pub scale_timing: String,
    pub optimizations: Vec<String>,
}

/// Seed: `{dependencies, risks, suggestions}` of one service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DependencyAnalysis {
    pub dependencies: Vec<String>,
    pub risks: Vec<String>,
    pub suggestions: Vec<String>,
}

/// An analyst's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "answer", rename_all = "snake_case")]
pub enum Answer {
    AnomalyAnalysis(AnomalyAnalysis),
    RecoveryPlan(RecoveryPlan),
    CapacityPlan(CapacityAdvice),
    DependencyAnalysis(DependencyAnalysis),
}

impl Answer {
    /// The answer as JSON in the seed's shape.
    pub fn body(&self) -> serde_json::Value {
        match self {
            Answer::AnomalyAnalysis(a) => serde_json::to_value(a),
            Answer::RecoveryPlan(p) => serde_json::to_value(p),
            Answer::CapacityPlan(c) => serde_json::to_value(c),
            Answer::DependencyAnalysis(d) => serde_json::to_value(d),
        }
        .unwrap_or(serde_json::Value::Null)
    }
}

/// Why an analysis failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AnalystError {
    #[error("no evidence to analyse: {0}")]
    NoEvidence(String),
}

/// A boxed future, so that analysts can be used as trait objects.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One exchange with a model, for the journal.
#[derive(Debug, Clone, PartialEq)]
pub struct Exchange {
    pub kind: String,
    /// The request as sent (system and user messages, after redaction).
    pub prompt: String,
    /// The model's text as received (pseudonyms not mapped back).
    pub answer: String,
    pub tokens_in: u64,
    pub tokens_out: u64,
    pub cached: bool,
    pub latency_ms: u64,
    /// Analyses answered by the request (1 unless batched).
    pub batch: usize,
    pub error: Option<String>,
}

/// An answer with what it took.
#[derive(Debug, Clone, PartialEq)]
pub struct Answered {
    pub answer: Answer,
    /// Model exchanges made (or served from the cache) for it.
    pub exchanges: Vec<Exchange>,
    /// Set when the built-in analyst answered instead: why.
    pub fallback: Option<String>,
}

/// Something that explains incidents and proposes plans.
pub trait Analyst: Send + Sync {
    /// Short name for the journal (`builtin`, `openai:gpt-4o`, …).
    fn name(&self) -> String;

    /// Answers one request.
    fn analyze<'a>(&'a self, request: &'a Request) -> BoxFuture<'a, Result<Answer, AnalystError>>;

    /// Answers one request with its model exchanges and any fallback, for
    /// the journal. The default wraps [`analyze`](Self::analyze).
    fn answer<'a>(&'a self, request: &'a Request) -> BoxFuture<'a, Result<Answered, AnalystError>> {
        Box::pin(async move {
            self.analyze(request).await.map(|answer| Answered {
                answer,
                exchanges: Vec::new(),
                fallback: None,
            })
        })
    }

    /// The analyst's own counters for `/metrics` (name, value).
    fn metrics(&self) -> Vec<(String, f64)> {
        Vec::new()
    }
}
