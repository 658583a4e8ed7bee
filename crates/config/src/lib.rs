//! `warden.yaml`: the configuration schema, its defaults and its validation.
//!
//! The struct definitions are the reference documentation: their doc comments
//! become the JSON schema (`warden config schema`) and `example.yaml`
//! (`warden config example`) shows every section. Unknown keys are errors
//! that name the key; values are range-checked in [`Config::validate`].
//!
//! This crate parses and checks; it must not open sockets or start anything.

mod duration;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use warden_model::{ActionKind, ServiceName};

pub use duration::Duration;

/// The commented example configuration (`warden config example`).
pub const EXAMPLE_YAML: &str = include_str!("../example.yaml");

/// Largest configuration file accepted, bytes.
pub const MAX_CONFIG_BYTES: usize = 1 << 20;

/// The whole `warden.yaml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Name shown on the dashboard and in notifications (seed: platform_name).
    pub platform_name: String,
    /// Version of this configuration, free text (seed: version).
    pub version: String,
    /// The seed's three services: discovery, monitoring, recovery.
    pub services: ServicesConfig,
    /// How anomalies are grouped into incidents.
    pub correlation: CorrelationConfig,
    /// Predictive maintenance: forecasts, exhaustion, capacity plans.
    pub capacity: CapacityConfig,
    /// Who writes root-cause reports and recovery plans.
    pub analyst: AnalystConfig,
    /// External systems (seed: integrations).
    pub integrations: IntegrationsConfig,
    /// How warden itself is deployed (seed: deployment); informational for
    /// the Helm chart.
    pub deployment: DeploymentConfig,
    /// The HTTP API and its authentication.
    pub api: ApiConfig,
    /// Where state is kept.
    pub store: StoreConfig,
    /// Services declared in config (a discovery source).
    pub static_services: Vec<StaticService>,
    /// The simulated mesh as a source (for trying `serve` without a cluster).
    pub simulator: SimulatorConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            platform_name: "AI-Driven Service Governance".into(),
            version: "1.0.0".into(),
            services: ServicesConfig::default(),
            correlation: CorrelationConfig::default(),
            capacity: CapacityConfig::default(),
            analyst: AnalystConfig::default(),
            integrations: IntegrationsConfig::default(),
            deployment: DeploymentConfig::default(),
            api: ApiConfig::default(),
            store: StoreConfig::default(),
            static_services: Vec::new(),
            simulator: SimulatorConfig::default(),
        }
    }
}

/// The simulated mesh as a source.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SimulatorConfig {
    /// Run the simulated 8-service mesh inside warden and watch it.
    pub enabled: bool,
    /// Seed of the simulation.
    pub seed: u64,
    /// Serve the mesh's metrics in Prometheus text format at
    /// `GET /sim/metrics` instead of feeding them to the loop, so that a
    /// Prometheus scrapes them and they come back through remote write or
    /// the PromQL pull (as a real service's would).
    pub export_metrics: bool,
    /// Inject this fault (cpu-hog, memory-leak, latency-injection,
    /// error-burst, crash-loop, dependency-outage) `fault_after` after
    /// `serve` starts.
    pub fault: Option<String>,
    pub fault_after: Option<Duration>,
}

/// The seed's `services` section: one block per governance service.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ServicesConfig {
    pub discovery: DiscoveryConfig,
    pub monitoring: MonitoringConfig,
    pub recovery: RecoveryConfig,
}

/// Service discovery (seed: service-discovery, endpoint /api/discovery).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct DiscoveryConfig {
    pub enabled: bool,
    /// API path prefix.
    pub endpoint: String,
    /// Most services the catalog accepts (registration beyond it is refused).
    pub max_services: usize,
}

impl Default for DiscoveryConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            endpoint: "/api/discovery".into(),
            max_services: 10_000,
        }
    }
}

/// Detection algorithm for the live loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DetectionAlgorithm {
    /// Isolation Forest over each service's four features, confirmed by the
    /// robust univariate detector (the seed's algorithm).
    IsolationForest,
    /// The robust univariate detector alone.
    Robust,
}

/// Monitoring and anomaly detection (seed: monitoring, endpoint /api/monitoring).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct MonitoringConfig {
    pub enabled: bool,
    /// API path prefix.
    pub endpoint: String,
    /// How often the loop runs (the seed's 60 s).
    pub interval: Duration,
    /// Seed: anomaly_detection_algorithm.
    pub anomaly_detection_algorithm: DetectionAlgorithm,
    /// Expected share of anomalies in training data; sets the Isolation
    /// Forest threshold (seed: 0.1). Range (0, 0.5].
    pub contamination: f64,
    /// Seed for every random choice of the detectors.
    pub seed: u64,
    /// How much history each series keeps for its baseline.
    pub window: Duration,
    /// Samples a series needs before it is judged.
    pub min_history: usize,
    /// Robust z-score (distance from the rolling median in MAD units) above
    /// which a sample is anomalous.
    pub z_threshold: f64,
    /// Consecutive anomalous samples needed to raise an anomaly.
    pub confirm_samples: usize,
}

impl Default for MonitoringConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            endpoint: "/api/monitoring".into(),
            interval: Duration::from_secs(60),
            anomaly_detection_algorithm: DetectionAlgorithm::IsolationForest,
            contamination: 0.1,
            seed: 42,
            window: Duration::from_secs(3600),
            min_history: 30,
            z_threshold: 6.0,
            confirm_samples: 2,
        }
    }
}

/// How remediation runs. `observe` only records; `dry-run` (the default)
/// plans and records what it would do; `approve` waits for an operator;
/// `auto` executes what the gates allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    Observe,
    DryRun,
    Approve,
    Auto,
}

impl Mode {
    /// kebab-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Observe => "observe",
            Mode::DryRun => "dry-run",
            Mode::Approve => "approve",
            Mode::Auto => "auto",
        }
    }

    /// Parses the kebab-case name.
    pub fn parse(s: &str) -> Option<Mode> {
        [Mode::Observe, Mode::DryRun, Mode::Approve, Mode::Auto]
            .into_iter()
            .find(|m| m.as_str() == s)
    }
}

/// One allowlist rule: these actions on these services may run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AllowRule {
    /// A service name, or `*` for every service.
    pub service: String,
    /// Allowed action kinds.
    pub actions: Vec<ActionKind>,
}

impl AllowRule {
    /// Whether the rule covers `service` and `kind`.
    pub fn allows(&self, service: &ServiceName, kind: ActionKind) -> bool {
        (self.service == "*" || self.service == service.as_str()) && self.actions.contains(&kind)
    }
}

/// Fault recovery (seed: recovery, endpoint /api/recovery).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RecoveryConfig {
    pub enabled: bool,
    /// API path prefix.
    pub endpoint: String,
    /// Seed: auto_repair_enabled. When false, nothing is ever executed,
    /// whatever `mode` says.
    pub auto_repair_enabled: bool,
    /// observe | dry-run | approve | auto. Default dry-run.
    pub mode: Mode,
    /// Which actions may run on which services. Empty: nothing may run.
    pub allow: Vec<AllowRule>,
    /// No second action on the same service within this time.
    pub cooldown: Duration,
    /// At most this many executed actions per rolling hour, all services.
    pub max_actions_per_hour: u32,
    /// Scale actions may not go above this many replicas.
    pub max_replicas: u32,
    /// Scale actions may not change the replica count by more than this
    /// factor at once (blast radius).
    pub max_scale_factor: f64,
    /// How long an executed action's effect is watched before it is judged.
    pub verify_window: Duration,
}

impl Default for RecoveryConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            endpoint: "/api/recovery".into(),
            auto_repair_enabled: true,
            mode: Mode::DryRun,
            allow: Vec::new(),
            cooldown: Duration::from_secs(600),
            max_actions_per_hour: 6,
            max_replicas: 20,
            max_scale_factor: 4.0,
            verify_window: Duration::from_secs(180),
        }
    }
}

/// Alertmanager-style grouping of signals into incidents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct CorrelationConfig {
    /// How long a new incident collects signals before it is diagnosed.
    pub group_wait: Duration,
    /// A signal joins an open incident whose last signal is at most this old
    /// (and whose services are connected to it in the dependency graph).
    pub group_interval: Duration,
    /// An incident with no active signal for this long is resolved.
    pub resolve_timeout: Duration,
}

impl Default for CorrelationConfig {
    fn default() -> Self {
        Self {
            group_wait: Duration::from_secs(30),
            group_interval: Duration::from_secs(300),
            resolve_timeout: Duration::from_secs(300),
        }
    }
}

/// Predictive maintenance (the seed's capacity planning).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct CapacityConfig {
    /// Whether the loop forecasts and plans capacity.
    pub enabled: bool,
    /// How often every service is re-forecast.
    pub interval: Duration,
    /// How far ahead (the seed: 30 days).
    pub horizon: Duration,
    /// History kept per series (as 5-minute means).
    pub history: Duration,
    /// CPU use (fraction of the allocation) at which a service is exhausted.
    pub cpu_limit: f64,
    /// Memory use (fraction of the limit) at which a service is exhausted.
    pub memory_limit: f64,
    /// Headroom over the observed p95 / p99 when sizing requests / limits.
    pub headroom: f64,
    /// Target CPU utilisation per replica for autoscaling proposals.
    pub target_utilization: f64,
    /// The most replicas a proposal may ask for.
    pub max_replicas: u32,
}

impl Default for CapacityConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval: Duration::from_secs(3600),
            horizon: Duration::from_secs(30 * 86_400),
            history: Duration::from_secs(30 * 86_400),
            cpu_limit: 0.9,
            memory_limit: 0.9,
            headroom: 0.2,
            target_utilization: 0.6,
            max_replicas: 20,
        }
    }
}

/// Analyst provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    /// The built-in deterministic analyst (no model, no network).
    Builtin,
    /// An OpenAI-compatible chat-completions server (OpenAI, vLLM,
    /// llama.cpp's server, Ollama's /v1, LM Studio, most gateways).
    Openai,
    /// Anthropic's Messages API.
    Anthropic,
}

impl Provider {
    /// snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Builtin => "builtin",
            Provider::Openai => "openai",
            Provider::Anthropic => "anthropic",
        }
    }
}

/// Who explains and plans (seed: model_config).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct AnalystConfig {
    pub provider: Provider,
    /// Seed: model_name.
    pub model_name: String,
    /// Seed: temperature, 0..2.
    pub temperature: f64,
    /// Seed: max_tokens.
    pub max_tokens: u32,
    /// How long an answer is reused for the same request (seed: 300 s).
    pub cache_ttl: Duration,
    /// Base URL of the model API: an OpenAI-compatible server's `/v1` base
    /// (`http://127.0.0.1:8081/v1`), or Anthropic's (`https://api.anthropic.com`).
    pub endpoint: String,
    /// Environment variable holding the API key (never logged or journaled).
    pub api_key_env: Option<String>,
    /// File holding the API key (first line), instead of the environment.
    pub api_key_file: Option<PathBuf>,
    /// Per request.
    pub timeout: Duration,
    /// Retries of 429 and 5xx (honouring Retry-After) and timeouts.
    pub retries: u32,
    /// Model requests in flight at once.
    pub max_concurrency: usize,
    /// Model requests per minute; beyond, the built-in analyst answers.
    pub requests_per_minute: u32,
    /// Tokens (prompt + completion) per rolling hour; beyond, the built-in
    /// analyst answers.
    pub tokens_per_hour: u64,
    /// Ask for JSON-schema constrained output (OpenAI-compatible servers
    /// that support `response_format: json_schema`); the schema is in the
    /// prompt either way.
    pub structured_output: bool,
    /// Extra patterns (regular expressions) of user identifiers, replaced
    /// by pseudonyms before anything reaches the model.
    pub redact_user_ids: Vec<String>,
    /// Extra patterns of secrets, replaced likewise (never mapped back).
    pub redact_patterns: Vec<String>,
    /// Analyses that arrive within this window go to the model in one
    /// request with per-item answers (0 s: no batching).
    pub batch_window: Duration,
    /// Most analyses in one batched request.
    pub max_batch: usize,
    /// Most prompt tokens in one batched request (estimated at 4
    /// characters a token), so that a batch fits the model's context; an
    /// analysis larger than this still goes alone.
    pub max_batch_tokens: u64,
    /// Which analyses the model writes (`incidents`: anomaly analysis and
    /// recovery plan; `capacity`: the capacity plan's narrative;
    /// `dependencies`: the dependency analysis). The others come from the
    /// built-in analyst.
    pub model_for: Vec<ModelUse>,
}

/// An analysis the model can be asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ModelUse {
    Incidents,
    Capacity,
    Dependencies,
}

impl Default for AnalystConfig {
    fn default() -> Self {
        Self {
            provider: Provider::Builtin,
            model_name: "gpt-4-turbo".into(),
            temperature: 0.3,
            max_tokens: 1000,
            cache_ttl: Duration::from_secs(300),
            endpoint: "http://127.0.0.1:8081/v1".into(),
            api_key_env: Some("WARDEN_LLM_API_KEY".into()),
            api_key_file: None,
            timeout: Duration::from_secs(60),
            retries: 2,
            max_concurrency: 2,
            requests_per_minute: 60,
            tokens_per_hour: 200_000,
            structured_output: true,
            redact_user_ids: Vec::new(),
            redact_patterns: Vec::new(),
            batch_window: Duration::from_millis(200),
            max_batch: 4,
            max_batch_tokens: 6000,
            model_for: vec![
                ModelUse::Incidents,
                ModelUse::Capacity,
                ModelUse::Dependencies,
            ],
        }
    }
}

/// One external system.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Integration {
    /// Whether warden talks to it.
    #[serde(default)]
    pub enabled: bool,
    /// Base URL.
    pub endpoint: String,
}

/// Seed: integrations (kubernetes, prometheus, jaeger).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct IntegrationsConfig {
    pub kubernetes: Integration,
    pub prometheus: PrometheusConfig,
    pub jaeger: JaegerConfig,
    /// The Prometheus remote-write receiver (`POST /api/v1/write`).
    pub remote_write: RemoteWriteConfig,
    /// Pushing incidents to Alertmanager, and its silences as a gate.
    pub alertmanager: AlertmanagerConfig,
    /// OpenTelemetry trace receivers (OTLP over gRPC and HTTP/protobuf).
    pub otlp: OtlpConfig,
}

/// OTLP trace receivers. Spans build the dependency graph: a span whose
/// parent belongs to another service is a call from that service, with the
/// span's duration and status. Parents and children often arrive in
/// different requests (each service exports its own spans), so spans wait
/// up to `join_window` for their other half, at most `max_pending_spans` of
/// them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct OtlpConfig {
    /// Accept spans: `POST /v1/traces` on the API's port, plus the
    /// listeners below.
    pub enabled: bool,
    /// OTLP/gRPC listener (`TraceService/Export`); empty for none.
    pub grpc_listen: String,
    /// OTLP/HTTP listener (`POST /v1/traces`); empty for none.
    pub http_listen: String,
    /// Largest (compressed) request body; 413 / RESOURCE_EXHAUSTED above.
    pub max_body_bytes: usize,
    /// Largest body after gzip is undone.
    pub max_decoded_bytes: usize,
    /// Most spans in one request.
    pub max_spans: usize,
    /// How long a span waits for its parent or child to arrive.
    pub join_window: Duration,
    /// Most spans waiting to be joined; the oldest go first.
    pub max_pending_spans: usize,
}

impl Default for OtlpConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            grpc_listen: "127.0.0.1:4317".into(),
            http_listen: "127.0.0.1:4318".into(),
            max_body_bytes: 4 << 20,
            max_decoded_bytes: 32 << 20,
            max_spans: 100_000,
            join_window: Duration::from_secs(30),
            max_pending_spans: 200_000,
        }
    }
}

/// Limits one tenant (an API token's name; `anonymous` without auth) gets
/// at the remote-write receiver instead of the defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct TenantLimits {
    pub max_series: Option<usize>,
    pub max_labels: Option<usize>,
    pub max_active_series: Option<usize>,
}

/// Pulling the service dependency graph from a Jaeger query service
/// (`GET /api/dependencies`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct JaegerConfig {
    pub enabled: bool,
    /// Base URL of the query service (`http://host:16686`); plain HTTP.
    pub endpoint: String,
    /// How often the graph is pulled.
    pub interval: Duration,
    /// The window Jaeger counts calls over.
    pub lookback: Duration,
    pub timeout: Duration,
}

impl Default for JaegerConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            endpoint: "http://jaeger:16686".into(),
            interval: Duration::from_secs(60),
            lookback: Duration::from_secs(3600),
            timeout: Duration::from_secs(10),
        }
    }
}

/// Alertmanager out: warden's incidents become alerts (`POST
/// /api/v2/alerts`) so existing routing, silences and receivers apply, and
/// an active silence matching an action's incident closes the gate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct AlertmanagerConfig {
    pub enabled: bool,
    /// Base URL (`http://host:9093`); plain HTTP.
    pub endpoint: String,
    /// Push open incidents (every loop tick) and resolutions.
    pub push_incidents: bool,
    /// Check active silences before an action runs.
    pub check_silences: bool,
    /// When the silences cannot be read: false closes the gate (the action
    /// waits), true lets it through.
    pub fail_open: bool,
    /// warden's own URL, for the incident link in the alert.
    pub warden_url: String,
    /// A runbook link put on every alert, if any.
    pub runbook_url: Option<String>,
    pub timeout: Duration,
}

impl Default for AlertmanagerConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            endpoint: "http://alertmanager:9093".into(),
            push_incidents: true,
            check_silences: true,
            fail_open: false,
            warden_url: "http://127.0.0.1:8080".into(),
            runbook_url: None,
            timeout: Duration::from_secs(5),
        }
    }
}

/// Pulling from a Prometheus-compatible server (Prometheus, VictoriaMetrics,
/// Thanos, Mimir) with instant queries, one per warden metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct PrometheusConfig {
    pub enabled: bool,
    /// Base URL (`http://host:9090`); plain HTTP.
    pub endpoint: String,
    /// How often the queries run.
    pub interval: Duration,
    /// Per request.
    pub timeout: Duration,
    /// Retries of a failed query (5xx, timeouts, connection errors), each
    /// only while the retry budget (a tenth of recent requests) allows.
    pub retries: u32,
    /// Queries in flight at once.
    pub max_concurrency: usize,
    /// The label of each result that names the service.
    pub service_label: String,
    /// Environment variable holding a bearer token, if the server needs one.
    pub bearer_token_env: Option<String>,
    /// warden metric → PromQL. Each result series must carry the service
    /// label; its value becomes the metric's sample for that service. The
    /// defaults fit cAdvisor / kube-state-metrics container metrics and HTTP
    /// server histograms.
    pub queries: BTreeMap<String, String>,
}

impl Default for PrometheusConfig {
    fn default() -> Self {
        let q = |m: &str, e: &str| (m.to_string(), e.to_string());
        Self {
            enabled: false,
            endpoint: "http://prometheus:9090".into(),
            interval: Duration::from_secs(15),
            timeout: Duration::from_secs(10),
            retries: 2,
            max_concurrency: 4,
            service_label: "service".into(),
            bearer_token_env: None,
            queries: [
                q("cpu_usage", "sum by (service) (rate(container_cpu_usage_seconds_total[1m])) / sum by (service) (kube_pod_container_resource_limits{resource=\"cpu\"})"),
                q("memory_usage", "sum by (service) (container_memory_working_set_bytes) / sum by (service) (kube_pod_container_resource_limits{resource=\"memory\"})"),
                q("request_latency_p95", "1000 * histogram_quantile(0.95, sum by (service, le) (rate(http_server_request_duration_seconds_bucket[1m])))"),
                q("error_rate", "sum by (service) (rate(http_server_requests_total{status=~\"5..\"}[1m])) / sum by (service) (rate(http_server_requests_total[1m]))"),
                q("request_rate", "sum by (service) (rate(http_server_requests_total[1m]))"),
            ]
            .into_iter()
            .collect(),
        }
    }
}

/// Prometheus remote-write 1.0 receiver: snappy-compressed protobuf
/// `WriteRequest`s whose series become samples of the loop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RemoteWriteConfig {
    pub enabled: bool,
    /// Largest compressed body accepted (413 above).
    pub max_body_bytes: usize,
    /// Largest decompressed body accepted (413 above).
    pub max_decoded_bytes: usize,
    /// Most series in one request (400 above).
    pub max_series: usize,
    /// Most labels on one series (400 above).
    pub max_labels: usize,
    /// The label that names the service.
    pub service_label: String,
    /// Samples waiting for the loop beyond this are dropped (and counted).
    pub max_pending: usize,
    /// Most distinct (service, metric) series one tenant may keep active;
    /// a request adding series past it is refused whole (400).
    pub max_active_series: usize,
    /// A series not written for this long stops counting as active.
    pub active_series_ttl: Duration,
    /// Per-tenant overrides of `max_series`, `max_labels` and
    /// `max_active_series`, by token name.
    pub tenants: BTreeMap<String, TenantLimits>,
}

impl RemoteWriteConfig {
    /// The limits `tenant` gets: (max_series, max_labels, max_active_series).
    pub fn limits_for(&self, tenant: &str) -> (usize, usize, usize) {
        let t = self.tenants.get(tenant);
        (
            t.and_then(|t| t.max_series).unwrap_or(self.max_series),
            t.and_then(|t| t.max_labels).unwrap_or(self.max_labels),
            t.and_then(|t| t.max_active_series)
                .unwrap_or(self.max_active_series),
        )
    }
}

impl Default for RemoteWriteConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            max_body_bytes: 8 << 20,
            max_decoded_bytes: 64 << 20,
            max_series: 10_000,
            max_labels: 64,
            service_label: "service".into(),
            max_pending: 1_000_000,
            max_active_series: 100_000,
            active_series_ttl: Duration::from_secs(3600),
            tenants: BTreeMap::new(),
        }
    }
}

impl Default for IntegrationsConfig {
    fn default() -> Self {
        let off = |e: &str| Integration {
            enabled: false,
            endpoint: e.into(),
        };
        Self {
            kubernetes: off("https://k8s-api-server:6443"),
            prometheus: PrometheusConfig::default(),
            jaeger: JaegerConfig::default(),
            remote_write: RemoteWriteConfig::default(),
            alertmanager: AlertmanagerConfig::default(),
            otlp: OtlpConfig::default(),
        }
    }
}

/// CPU and memory quantities in Kubernetes notation (`500m`, `4Gi`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    pub cpu: String,
    pub memory: String,
}

/// Seed: deployment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct DeploymentConfig {
    pub replicas: u32,
    pub resource_limits: Resources,
    pub resource_requests: Resources,
}

impl Default for DeploymentConfig {
    fn default() -> Self {
        Self {
            replicas: 3,
            resource_limits: Resources {
                cpu: "2".into(),
                memory: "4Gi".into(),
            },
            resource_requests: Resources {
                cpu: "500m".into(),
                memory: "1Gi".into(),
            },
        }
    }
}

/// API roles, from least to most privileged.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Read everything.
    Viewer,
    /// Also register services and approve or reject actions.
    Operator,
    /// Everything.
    Admin,
}

impl Role {
    /// snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

/// One API token, stored as the SHA-256 of the token text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Who holds the token (appears in the journal for approvals).
    pub name: String,
    pub role: Role,
    /// Lowercase hex SHA-256 of the token (`printf %s TOKEN | sha256sum`).
    pub sha256: String,
}

/// The HTTP API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Address to listen on.
    pub listen: String,
    /// Allow requests without a token (as viewer). An explicit choice; off by
    /// default.
    pub anonymous: bool,
    /// Accepted tokens. The admin token may also come from the
    /// WARDEN_ADMIN_TOKEN environment variable.
    pub tokens: Vec<TokenConfig>,
    /// Largest request body accepted, bytes.
    pub max_body_bytes: usize,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            anonymous: false,
            tokens: Vec::new(),
            max_body_bytes: 1 << 20,
        }
    }
}

/// Persistent state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// Directory of the embedded SQLite database.
    pub data_dir: PathBuf,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./warden-data"),
        }
    }
}

/// A service declared in config (the registration API's shape).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StaticService {
    pub name: ServiceName,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub endpoints: Vec<String>,
    #[serde(default)]
    pub dependencies: Vec<ServiceName>,
}

/// A configuration problem, naming the key and the value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    #[error("{path}: {key} = {value}: {expected}")]
    Invalid {
        path: String,
        key: String,
        value: String,
        expected: String,
    },
}

impl Config {
    /// Parses YAML text (`path` names the source in errors) and validates it.
    pub fn from_yaml(text: &str, path: &str) -> Result<Self, ConfigError> {
        if text.len() > MAX_CONFIG_BYTES {
            return Err(ConfigError::Parse {
                path: path.into(),
                message: format!(
                    "file is {} bytes; at most {MAX_CONFIG_BYTES} accepted",
                    text.len()
                ),
            });
        }
        let cfg: Config = if text.trim().is_empty() {
            Config::default()
        } else {
            serde_saphyr::from_str(text).map_err(|e| ConfigError::Parse {
                path: path.into(),
                message: one_line_message(&e.to_string(), text),
            })?
        };
        cfg.validate(path)?;
        Ok(cfg)
    }

    /// Reads and validates a file.
    pub fn load(path: &std::path::Path) -> Result<Self, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Parse {
            path: shown.clone(),
            message: e.to_string(),
        })?;
        Self::from_yaml(&text, &shown)
    }

    /// Checks ranges and cross-field rules; the error names the key.
    pub fn validate(&self, path: &str) -> Result<(), ConfigError> {
        let bad = |key: &str, value: String, expected: &str| {
            Err(ConfigError::Invalid {
                path: path.into(),
                key: key.into(),
                value,
                expected: expected.into(),
            })
        };
        let pc = &self.integrations.prometheus;
        if pc.enabled {
            if !pc.endpoint.starts_with("http://") {
                return bad(
                    "integrations.prometheus.endpoint",
                    pc.endpoint.clone(),
                    "expected an http:// URL",
                );
            }
            if pc.max_concurrency == 0 || pc.max_concurrency > 64 {
                return bad(
                    "integrations.prometheus.max_concurrency",
                    pc.max_concurrency.to_string(),
                    "expected 1..=64",
                );
            }
            if pc.retries > 10 {
                return bad(
                    "integrations.prometheus.retries",
                    pc.retries.to_string(),
                    "expected 0..=10",
                );
            }
            if pc.interval.millis() < 1000 || pc.timeout.millis() < 100 {
                return bad(
                    "integrations.prometheus.interval",
                    format!("{} (timeout {})", pc.interval, pc.timeout),
                    "expected an interval of at least 1s and a timeout of at least 100ms",
                );
            }
            if let Some(m) = pc
                .queries
                .keys()
                .find(|m| warden_model::Metric::parse(m).is_none())
            {
                return bad(
                    &format!("integrations.prometheus.queries.{m}"),
                    m.clone(),
                    "expected a warden metric name (cpu_usage, memory_usage, request_latency_p50/p95/p99, error_rate, request_rate, replicas)",
                );
            }
        }
        let jg = &self.integrations.jaeger;
        if jg.enabled && !jg.endpoint.starts_with("http://") {
            return bad(
                "integrations.jaeger.endpoint",
                jg.endpoint.clone(),
                "expected an http:// URL",
            );
        }
        let am = &self.integrations.alertmanager;
        if am.enabled && !am.endpoint.starts_with("http://") {
            return bad(
                "integrations.alertmanager.endpoint",
                am.endpoint.clone(),
                "expected an http:// URL",
            );
        }
        let ot = &self.integrations.otlp;
        if ot.enabled {
            for (key, v) in [
                ("integrations.otlp.grpc_listen", &ot.grpc_listen),
                ("integrations.otlp.http_listen", &ot.http_listen),
            ] {
                if !v.is_empty() && v.parse::<SocketAddr>().is_err() {
                    return bad(
                        key,
                        format!("{v:?}"),
                        "expected host:port (e.g. 127.0.0.1:4317) or empty for none",
                    );
                }
            }
            if !ot.grpc_listen.is_empty() && ot.grpc_listen == ot.http_listen {
                return bad(
                    "integrations.otlp.http_listen",
                    format!("{:?}", ot.http_listen),
                    "expected an address other than grpc_listen",
                );
            }
            for (key, v, lo, hi) in [
                (
                    "integrations.otlp.max_body_bytes",
                    ot.max_body_bytes,
                    1024,
                    256 << 20,
                ),
                (
                    "integrations.otlp.max_decoded_bytes",
                    ot.max_decoded_bytes,
                    1024,
                    1 << 30,
                ),
                ("integrations.otlp.max_spans", ot.max_spans, 1, 10_000_000),
                (
                    "integrations.otlp.max_pending_spans",
                    ot.max_pending_spans,
                    1,
                    100_000_000,
                ),
            ] {
                if !(lo..=hi).contains(&v) {
                    return bad(key, v.to_string(), &format!("expected {lo}..={hi}"));
                }
            }
        }
        let rw = &self.integrations.remote_write;
        for tenant in std::iter::once("").chain(rw.tenants.keys().map(String::as_str)) {
            let (series, labels, active) = rw.limits_for(tenant);
            let key = |k: &str| {
                if tenant.is_empty() {
                    format!("integrations.remote_write.{k}")
                } else {
                    format!("integrations.remote_write.tenants.{tenant}.{k}")
                }
            };
            for (k, v) in [
                ("max_series", series),
                ("max_labels", labels),
                ("max_active_series", active),
            ] {
                if v == 0 || v > 100_000_000 {
                    return bad(&key(k), v.to_string(), "expected 1..=100000000");
                }
            }
        }
        let c = &self.capacity;
        for (key, v) in [
            ("capacity.cpu_limit", c.cpu_limit),
            ("capacity.memory_limit", c.memory_limit),
            ("capacity.target_utilization", c.target_utilization),
        ] {
            if !(v > 0.0 && v <= 1.0) {
                return bad(key, v.to_string(), "expected a fraction in (0, 1]");
            }
        }
        if !(0.0..=10.0).contains(&c.headroom) {
            return bad(
                "capacity.headroom",
                c.headroom.to_string(),
                "expected a fraction in [0, 10]",
            );
        }
        if c.max_replicas == 0 || c.max_replicas > 10_000 {
            return bad(
                "capacity.max_replicas",
                c.max_replicas.to_string(),
                "expected 1..=10000",
            );
        }
        if c.interval.millis() < 60_000 {
            return bad(
                "capacity.interval",
                c.interval.to_string(),
                "expected at least 1m",
            );
        }
        if !(3_600_000..=365 * 86_400_000).contains(&c.horizon.millis()) {
            return bad(
                "capacity.horizon",
                c.horizon.to_string(),
                "expected 1h to 365d",
            );
        }
        if c.history.millis() < 3_600_000 {
            return bad(
                "capacity.history",
                c.history.to_string(),
                "expected at least 1h",
            );
        }
        let m = &self.services.monitoring;
        if !(m.contamination > 0.0 && m.contamination <= 0.5) {
            return bad(
                "services.monitoring.contamination",
                m.contamination.to_string(),
                "expected a number in (0, 0.5]",
            );
        }
        if m.interval.millis() < 1000 {
            return bad(
                "services.monitoring.interval",
                m.interval.to_string(),
                "expected at least 1s",
            );
        }
        if m.window.millis() < m.interval.millis() {
            return bad(
                "services.monitoring.window",
                m.window.to_string(),
                "expected at least the interval",
            );
        }
        if !(m.z_threshold.is_finite() && m.z_threshold > 0.0) {
            return bad(
                "services.monitoring.z_threshold",
                m.z_threshold.to_string(),
                "expected a positive number",
            );
        }
        if m.confirm_samples == 0 || m.confirm_samples > 100 {
            return bad(
                "services.monitoring.confirm_samples",
                m.confirm_samples.to_string(),
                "expected 1..=100",
            );
        }
        if m.min_history < 8 {
            return bad(
                "services.monitoring.min_history",
                m.min_history.to_string(),
                "expected at least 8",
            );
        }
        let r = &self.services.recovery;
        if r.max_replicas == 0 || r.max_replicas > warden_model::action::MAX_REPLICAS {
            return bad(
                "services.recovery.max_replicas",
                r.max_replicas.to_string(),
                "expected 1..=1000",
            );
        }
        if !(r.max_scale_factor.is_finite() && r.max_scale_factor >= 1.0) {
            return bad(
                "services.recovery.max_scale_factor",
                r.max_scale_factor.to_string(),
                "expected a number >= 1",
            );
        }
        if r.verify_window.millis() <= 0 {
            return bad(
                "services.recovery.verify_window",
                r.verify_window.to_string(),
                "expected a positive duration",
            );
        }
        for (i, rule) in r.allow.iter().enumerate() {
            if rule.service != "*" && ServiceName::parse(&rule.service).is_err() {
                return bad(
                    &format!("services.recovery.allow[{i}].service"),
                    format!("{:?}", rule.service),
                    "expected a service name or \"*\"",
                );
            }
        }
        let a = &self.analyst;
        if !(0.0..=2.0).contains(&a.temperature) {
            return bad(
                "analyst.temperature",
                a.temperature.to_string(),
                "expected a number in [0, 2]",
            );
        }
        if a.provider != Provider::Builtin
            && !(a.endpoint.starts_with("http://") || a.endpoint.starts_with("https://"))
        {
            return bad(
                "analyst.endpoint",
                format!("{:?}", a.endpoint),
                "expected an http:// or https:// URL",
            );
        }
        for (key, v, lo, hi) in [
            ("analyst.max_concurrency", a.max_concurrency as u64, 1, 64),
            (
                "analyst.requests_per_minute",
                u64::from(a.requests_per_minute),
                1,
                100_000,
            ),
            (
                "analyst.tokens_per_hour",
                a.tokens_per_hour,
                1,
                1_000_000_000,
            ),
            ("analyst.retries", u64::from(a.retries), 0, 10),
            ("analyst.max_batch", a.max_batch as u64, 1, 64),
            (
                "analyst.max_batch_tokens",
                a.max_batch_tokens,
                100,
                10_000_000,
            ),
            (
                "analyst.batch_window (ms)",
                a.batch_window.millis().max(0) as u64,
                0,
                60_000,
            ),
        ] {
            if !(lo..=hi).contains(&v) {
                return bad(key, v.to_string(), &format!("expected {lo}..={hi}"));
            }
        }
        for (key, list) in [
            ("analyst.redact_user_ids", &a.redact_user_ids),
            ("analyst.redact_patterns", &a.redact_patterns),
        ] {
            for p in list {
                if let Err(e) = regex::Regex::new(p) {
                    return bad(key, format!("{p:?}"), &format!("a regular expression: {e}"));
                }
            }
        }
        if a.max_tokens == 0 || a.max_tokens > 200_000 {
            return bad(
                "analyst.max_tokens",
                a.max_tokens.to_string(),
                "expected 1..=200000",
            );
        }
        if self.api.listen.parse::<SocketAddr>().is_err() {
            return bad(
                "api.listen",
                format!("{:?}", self.api.listen),
                "expected host:port, e.g. 127.0.0.1:8080",
            );
        }
        if self.api.max_body_bytes < 1024 || self.api.max_body_bytes > 64 << 20 {
            return bad(
                "api.max_body_bytes",
                self.api.max_body_bytes.to_string(),
                "expected 1024..=67108864",
            );
        }
        for (i, t) in self.api.tokens.iter().enumerate() {
            if t.sha256.len() != 64
                || !t
                    .sha256
                    .bytes()
                    .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
            {
                return bad(
                    &format!("api.tokens[{i}].sha256"),
                    format!("{:?}", t.sha256),
                    "expected 64 lowercase hex digits (sha256 of the token)",
                );
            }
            if t.name.is_empty() {
                return bad(
                    &format!("api.tokens[{i}].name"),
                    "\"\"".into(),
                    "expected a non-empty name",
                );
            }
        }
        for (section, path_key) in [
            (
                "services.discovery.endpoint",
                &self.services.discovery.endpoint,
            ),
            (
                "services.monitoring.endpoint",
                &self.services.monitoring.endpoint,
            ),
            (
                "services.recovery.endpoint",
                &self.services.recovery.endpoint,
            ),
        ] {
            if !path_key.starts_with("/api/") {
                return bad(
                    section,
                    format!("{path_key:?}"),
                    "expected a path under /api/",
                );
            }
        }
        Ok(())
    }

    /// The JSON schema of this file (`warden config schema`).
    pub fn json_schema() -> serde_json::Value {
        serde_json::to_value(schemars::schema_for!(Config)).unwrap_or_default()
    }
}

/// The parser's first message line without its `error: ` prefix, followed by
/// the offending source line (the parser's own excerpt spans several lines).
fn one_line_message(message: &str, text: &str) -> String {
    let first = message.lines().next().unwrap_or(message);
    let first = first.strip_prefix("error: ").unwrap_or(first);
    let line_no = first
        .strip_prefix("line ")
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse::<usize>().ok());
    match line_no.and_then(|n| text.lines().nth(n.saturating_sub(1))) {
        Some(src) if !src.trim().is_empty() => {
            let src: String = src.trim().chars().take(120).collect();
            format!("{first} (at `{src}`)")
        }
        _ => first.to_string(),
    }
}

/// Lowercase hex SHA-256 of a token, as stored in `api.tokens[].sha256`.
pub fn token_sha256(token: &str) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(token.as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_safe_defaults() {
        let c = Config::from_yaml("", "warden.yaml").expect("valid");
        assert_eq!(c.services.recovery.mode, Mode::DryRun);
        assert!(c.services.recovery.allow.is_empty());
        assert!(!c.api.anonymous);
        assert_eq!(c.services.monitoring.interval.millis(), 60_000);
        assert_eq!(c.analyst.cache_ttl.millis(), 300_000);
        assert!((c.services.monitoring.contamination - 0.1).abs() < 1e-12);
    }

    #[test]
    fn example_parses_and_documents_every_section() {
        let c = Config::from_yaml(EXAMPLE_YAML, "example.yaml").expect("example is valid");
        assert_eq!(c.platform_name, "AI-Driven Service Governance");
        let schema = Config::json_schema();
        let props = schema["properties"].as_object().expect("properties");
        for key in props.keys() {
            assert!(
                EXAMPLE_YAML.contains(&format!("\n{key}:")),
                "example lacks section {key}"
            );
        }
    }

    #[test]
    fn unknown_key_is_an_error_naming_it() {
        let e = Config::from_yaml("services:\n  monitoring:\n    intervall: 30s\n", "w.yaml")
            .expect_err("typo must fail");
        assert!(e.to_string().contains("intervall"), "{e}");
        assert!(e.to_string().starts_with("w.yaml"), "{e}");
    }

    #[test]
    fn out_of_range_values_are_errors_naming_key_and_value() {
        let cases = [
            (
                "services:\n  monitoring:\n    contamination: 0.9\n",
                "contamination",
                "0.9",
            ),
            (
                "services:\n  monitoring:\n    interval: 10ms\n",
                "interval",
                "10ms",
            ),
            ("services:\n  recovery:\n    mode: yolo\n", "mode", "yolo"),
            ("analyst:\n  temperature: 3\n", "temperature", "3"),
            ("api:\n  listen: nowhere\n", "api.listen", "nowhere"),
            (
                "integrations:\n  otlp:\n    enabled: true\n    grpc_listen: ':4317'\n",
                "integrations.otlp.grpc_listen",
                ":4317",
            ),
            (
                "integrations:\n  otlp:\n    enabled: true\n    max_spans: 0\n",
                "integrations.otlp.max_spans",
                "0",
            ),
            (
                "integrations:\n  remote_write:\n    tenants:\n      eu: {max_active_series: 0}\n",
                "integrations.remote_write.tenants.eu.max_active_series",
                "0",
            ),
            (
                "api:\n  tokens:\n    - {name: a, role: admin, sha256: abc}\n",
                "sha256",
                "abc",
            ),
            (
                "services:\n  monitoring:\n    interval: soon\n",
                "interval",
                "soon",
            ),
        ];
        for (yaml, key, value) in cases {
            let e = Config::from_yaml(yaml, "w.yaml")
                .expect_err(yaml)
                .to_string();
            assert!(
                e.contains(key) && e.contains(value),
                "{e} should name {key} and {value}"
            );
        }
    }

    #[test]
    fn allow_rules_match_service_and_kind() {
        let rule = AllowRule {
            service: "*".into(),
            actions: vec![ActionKind::Restart],
        };
        let svc = ServiceName::parse("a").expect("name");
        assert!(rule.allows(&svc, ActionKind::Restart));
        assert!(!rule.allows(&svc, ActionKind::ScaleUp));
        let only_b = AllowRule {
            service: "b".into(),
            actions: vec![ActionKind::Restart],
        };
        assert!(!only_b.allows(&svc, ActionKind::Restart));
    }

    #[test]
    fn token_hash_is_sha256_hex() {
        assert_eq!(
            token_sha256("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
