//! The mesh: services, their call graph, load, metrics, spans, logs, and how
//! faults and actions change them.

use std::collections::BTreeMap;

use serde::Serialize;
use warden_model::{Action, Change, ChangeKind, Metric, Rng, Sample, ServiceName, Span, Timestamp};

use crate::{Fault, Scenario};

/// One service of the simulated topology.
struct Spec {
    name: &'static str,
    description: &'static str,
    endpoints: &'static [&'static str],
    replicas: u32,
    /// Own processing time per request at idle, ms.
    service_time_ms: f64,
    /// CPU per request per second, as a fraction of one replica's limit.
    cpu_per_rps: f64,
    /// CPU used with no traffic, fraction of the limit.
    base_cpu: f64,
    /// Memory used, fraction of the limit.
    base_mem: f64,
    /// Failure share of own requests.
    base_error: f64,
}

/// caller → callee, calls per caller request, synchronous.
const EDGES: &[(&str, &str, f64, bool)] = &[
    ("api-gateway", "user-service", 0.6, true),
    ("api-gateway", "order-service", 0.3, true),
    ("api-gateway", "inventory-service", 0.4, true),
    ("user-service", "auth-service", 1.0, true),
    ("user-service", "database-service", 1.0, true),
    ("order-service", "payment-service", 0.8, true),
    ("order-service", "inventory-service", 1.0, true),
    ("order-service", "database-service", 1.0, true),
    ("order-service", "notification-service", 0.5, false),
    ("payment-service", "database-service", 1.0, true),
    ("inventory-service", "database-service", 1.0, true),
];

const SPECS: &[Spec] = &[
    Spec {
        name: "api-gateway",
        description: "edge gateway: routing, auth checks, rate limits",
        endpoints: &["/api/*"],
        replicas: 3,
        service_time_ms: 4.0,
        cpu_per_rps: 0.004,
        base_cpu: 0.05,
        base_mem: 0.42,
        base_error: 0.001,
    },
    Spec {
        name: "user-service",
        description: "user management",
        endpoints: &["/api/users", "/api/profile"],
        replicas: 2,
        service_time_ms: 12.0,
        cpu_per_rps: 0.005,
        base_cpu: 0.05,
        base_mem: 0.55,
        base_error: 0.002,
    },
    Spec {
        name: "auth-service",
        description: "authentication and tokens",
        endpoints: &["/api/auth/login", "/api/auth/verify"],
        replicas: 2,
        service_time_ms: 8.0,
        cpu_per_rps: 0.004,
        base_cpu: 0.05,
        base_mem: 0.38,
        base_error: 0.001,
    },
    Spec {
        name: "database-service",
        description: "data access layer in front of the primary database",
        endpoints: &["/query"],
        replicas: 3,
        service_time_ms: 6.0,
        cpu_per_rps: 0.0025,
        base_cpu: 0.08,
        base_mem: 0.61,
        base_error: 0.001,
    },
    Spec {
        name: "order-service",
        description: "orders and checkout",
        endpoints: &["/api/orders"],
        replicas: 2,
        service_time_ms: 20.0,
        cpu_per_rps: 0.008,
        base_cpu: 0.05,
        base_mem: 0.47,
        base_error: 0.002,
    },
    Spec {
        name: "payment-service",
        description: "card payments through the payment provider",
        endpoints: &["/api/payments"],
        replicas: 2,
        service_time_ms: 35.0,
        cpu_per_rps: 0.01,
        base_cpu: 0.05,
        base_mem: 0.44,
        base_error: 0.003,
    },
    Spec {
        name: "inventory-service",
        description: "stock levels and reservations",
        endpoints: &["/api/inventory"],
        replicas: 2,
        service_time_ms: 10.0,
        cpu_per_rps: 0.004,
        base_cpu: 0.05,
        base_mem: 0.40,
        base_error: 0.001,
    },
    Spec {
        name: "notification-service",
        description: "e-mail and push notifications (async)",
        endpoints: &["/api/notify"],
        replicas: 2,
        service_time_ms: 15.0,
        cpu_per_rps: 0.01,
        base_cpu: 0.05,
        base_mem: 0.36,
        base_error: 0.002,
    },
];

/// Requests per second entering the gateway at the daily mean.
const BASE_RPS: f64 = 200.0;
/// Traces sampled per simulated second.
const TRACES_PER_S: f64 = 2.0;
/// Config key whose change injects latency, and its extra ms per request.
const SLOW_KEY: &str = "feature.sync_audit_log";
const SLOW_EXTRA_MS: f64 = 240.0;

/// One service's response under load. Its own time `service_ms` queues
/// at utilisation `util` (× 1 / (1 − util), util capped at 0.97), plus
/// `extra_ms`; load beyond capacity is shed as failures on top of
/// `own_error`. Then each callee, as (calls per request, synchronous,
/// latency ms, failure share): a synchronous call adds the callee's latency
/// per call, and callee failures propagate through synchronous calls mostly
/// (0.9) and through asynchronous ones barely (0.05). Returns (own ms,
/// latency ms, failure share).
pub(crate) fn respond(
    service_ms: f64,
    util: f64,
    extra_ms: f64,
    mut own_error: f64,
    callees: impl Iterator<Item = (f64, bool, f64, f64)>,
) -> (f64, f64, f64) {
    let own_ms = service_ms / (1.0 - util.min(0.97)) + extra_ms;
    if util > 1.0 {
        own_error += (util - 1.0) / util;
    }
    let mut latency = own_ms;
    let mut ok = 1.0 - own_error.min(1.0);
    for (calls, sync, callee_ms, callee_error) in callees {
        if sync {
            latency += calls * callee_ms;
        }
        let p: f64 = if sync { 0.9 } else { 0.05 };
        ok *= (1.0 - p * callee_error).powf(calls.min(1.0));
    }
    (own_ms, latency, (1.0 - ok).clamp(0.0, 1.0))
}

/// The service list and call graph of the simulated mesh:
/// `(name, description, endpoints, dependencies)`.
pub fn topology() -> Vec<(ServiceName, String, Vec<String>, Vec<ServiceName>)> {
    SPECS
        .iter()
        .map(|s| {
            let deps = EDGES
                .iter()
                .filter(|e| e.0 == s.name)
                .map(|e| name(e.1))
                .collect();
            (
                name(s.name),
                s.description.to_string(),
                s.endpoints.iter().map(|e| e.to_string()).collect(),
                deps,
            )
        })
        .collect()
}

fn name(s: &str) -> ServiceName {
    ServiceName::parse(s).unwrap_or_else(|e| unreachable!("built-in name {s}: {e}"))
}

/// A log or alert line. `level` is `info`, `warn`, `error` or `alert`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogLine {
    pub ts: Timestamp,
    pub service: ServiceName,
    pub level: &'static str,
    pub message: String,
}

/// An action the mesh cannot apply; names the value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SimError {
    #[error("unknown service {0:?}")]
    UnknownService(String),
    #[error("{0}")]
    Refused(String),
}

/// Ground truth of one service, for tests and the demo summary.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceState {
    pub replicas: u32,
    pub revision: u64,
    pub config: BTreeMap<String, String>,
    pub restarts: u64,
}

/// Ground truth of the whole mesh.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MeshSnapshot {
    pub services: BTreeMap<ServiceName, ServiceState>,
    pub fault_active: bool,
}

struct Svc {
    spec: &'static Spec,
    name: ServiceName,
    replicas: u32,
    revision: u64,
    /// Revisions ever deployed, oldest first (for rollback).
    history: Vec<u64>,
    config: BTreeMap<String, String>,
    restarts: u64,
    /// Leaked memory, fraction of the limit.
    leaked: f64,
    // Derived each step:
    rps: f64,
    util: f64,
    ready: f64,
    own_ms: f64,
    latency_ms: f64,
    error: f64,
    last_log_s: f64,
}

/// The simulated mesh. Deterministic given its seed and the calls made on it.
pub struct Mesh {
    rng: Rng,
    now_s: f64,
    svcs: Vec<Svc>,
    /// (caller index, callee index, ratio, synchronous)
    edges: Vec<(usize, usize, f64, bool)>,
    /// Indices with callees before callers.
    bottom_up: Vec<usize>,
    fault: Option<Fault>,
    bad_revision: Option<(usize, u64, Scenario)>,
    spans: Vec<Span>,
    logs: Vec<LogLine>,
    changes: Vec<Change>,
    next_id: u64,
    trace_credit: f64,
}

/// Most spans or log lines buffered before the oldest are dropped.
const MAX_BUFFER: usize = 100_000;

impl Mesh {
    /// A healthy mesh at time `start`.
    pub fn new(seed: u64, start: Timestamp) -> Self {
        let svcs: Vec<Svc> = SPECS
            .iter()
            .map(|spec| {
                let mut config = BTreeMap::new();
                config.insert(SLOW_KEY.to_string(), "false".to_string());
                config.insert("pool.max_connections".to_string(), "50".to_string());
                Svc {
                    spec,
                    name: name(spec.name),
                    replicas: spec.replicas,
                    revision: 41,
                    history: vec![40, 41],
                    config,
                    restarts: 0,
                    leaked: 0.0,
                    rps: 0.0,
                    util: 0.0,
                    ready: f64::from(spec.replicas),
                    own_ms: spec.service_time_ms,
                    latency_ms: spec.service_time_ms,
                    error: spec.base_error,
                    last_log_s: 0.0,
                }
            })
            .collect();
        let idx = |n: &str| {
            SPECS
                .iter()
                .position(|s| s.name == n)
                .unwrap_or_else(|| unreachable!("edge to {n}"))
        };
        let edges: Vec<_> = EDGES
            .iter()
            .map(|e| (idx(e.0), idx(e.1), e.2, e.3))
            .collect();
        // Callees before callers: repeatedly take services whose callees are placed.
        let mut bottom_up = Vec::new();
        while bottom_up.len() < svcs.len() {
            for i in 0..svcs.len() {
                if !bottom_up.contains(&i)
                    && edges
                        .iter()
                        .filter(|e| e.0 == i)
                        .all(|e| bottom_up.contains(&e.1))
                {
                    bottom_up.push(i);
                }
            }
        }
        let mut mesh = Self {
            rng: Rng::new(seed),
            now_s: start.secs_f64(),
            svcs,
            edges,
            bottom_up,
            fault: None,
            bad_revision: None,
            spans: Vec::new(),
            logs: Vec::new(),
            changes: Vec::new(),
            next_id: 1,
            trace_credit: 0.0,
        };
        mesh.recompute();
        mesh
    }

    /// Current simulated time.
    pub fn now(&self) -> Timestamp {
        Timestamp::from_secs_f64(self.now_s)
    }

    /// Service names in topology order.
    pub fn service_names(&self) -> Vec<ServiceName> {
        self.svcs.iter().map(|s| s.name.clone()).collect()
    }

    /// The active fault, if any.
    pub fn fault(&self) -> Option<&Fault> {
        self.fault.as_ref()
    }

    /// Ground truth, for tests and summaries.
    pub fn snapshot(&self) -> MeshSnapshot {
        MeshSnapshot {
            services: self
                .svcs
                .iter()
                .map(|s| {
                    (
                        s.name.clone(),
                        ServiceState {
                            replicas: s.replicas,
                            revision: s.revision,
                            config: s.config.clone(),
                            restarts: s.restarts,
                        },
                    )
                })
                .collect(),
            fault_active: self.fault.is_some(),
        }
    }

    /// Advances the mesh to `t` in steps of at most one second.
    pub fn advance_to(&mut self, t: Timestamp) {
        let target = t.secs_f64();
        while self.now_s < target - 1e-9 {
            let dt = (target - self.now_s).min(1.0);
            self.step(dt);
        }
    }

    fn step(&mut self, dt: f64) {
        self.now_s += dt;
        if let Some(f) = &self.fault
            && f.scenario == Scenario::MemoryLeak
        {
            let i = self.index(&f.target.clone()).unwrap_or(0);
            // ~2.4% of the limit per minute: noticeable within two minutes,
            // out of memory after about twenty.
            self.svcs[i].leaked += 0.0004 * dt;
            if self.svcs[i].spec.base_mem + self.svcs[i].leaked >= 0.98 {
                // The kernel's OOM killer restarts the replicas.
                self.svcs[i].leaked = 0.0;
                self.svcs[i].restarts += u64::from(self.svcs[i].replicas);
                self.fault = None;
                self.log(
                    i,
                    "error",
                    "container killed: OOMKilled (exit code 137)".into(),
                );
            }
        }
        self.recompute();
        self.emit_traces(dt);
        self.emit_logs();
    }

    fn index(&self, s: &ServiceName) -> Option<usize> {
        self.svcs.iter().position(|x| &x.name == s)
    }

    fn diurnal(&self) -> f64 {
        let tod = self.now_s.rem_euclid(86_400.0);
        1.0 + 0.3 * (std::f64::consts::TAU * (tod - 9.0 * 3600.0) / 86_400.0).sin()
    }

    /// Recomputes load, utilisation, latency and errors from the current state.
    fn recompute(&mut self) {
        let load = BASE_RPS * self.diurnal();
        for s in &mut self.svcs {
            s.rps = 0.0;
        }
        self.svcs[0].rps = load;
        // Top-down for traffic: reverse of bottom_up.
        for &i in self.bottom_up.clone().iter().rev() {
            let rps = self.svcs[i].rps;
            for e in self.edges.clone().iter().filter(|e| e.0 == i) {
                self.svcs[e.1].rps += rps * e.2;
            }
        }
        let fault = self.fault.clone();
        for &i in &self.bottom_up.clone() {
            let is_target = fault
                .as_ref()
                .is_some_and(|f| f.target == self.svcs[i].name);
            let scenario = fault.as_ref().map(|f| f.scenario);
            let s = &self.svcs[i];
            let mut ready = f64::from(s.replicas);
            let mut own_error = s.spec.base_error;
            let mut extra_ms = 0.0;
            let mut hog = 0.0;
            if let Some((bi, rev, sc)) = self.bad_revision
                && bi == i
                && s.revision == rev
            {
                match sc {
                    Scenario::ErrorBurst => own_error += 0.22,
                    Scenario::CrashLoop => {
                        ready = (ready * 0.34).max(0.5);
                        own_error += 0.30;
                    }
                    _ => {}
                }
            }
            if s.config.get(SLOW_KEY).is_some_and(|v| v == "true") {
                extra_ms += SLOW_EXTRA_MS;
            }
            if is_target {
                match scenario {
                    Some(Scenario::CpuHog) => hog = 0.63 * f64::from(s.spec.replicas),
                    Some(Scenario::DependencyOutage) => {
                        extra_ms += 90.0;
                        own_error += 0.12;
                    }
                    _ => {}
                }
            }
            let util = (s.rps / ready) * s.spec.cpu_per_rps + s.spec.base_cpu + hog / ready;
            let callees = self.edges.iter().filter(|e| e.0 == i).map(|e| {
                let callee = &self.svcs[e.1];
                (e.2, e.3, callee.latency_ms, callee.error)
            });
            let (own_ms, latency, error) =
                respond(s.spec.service_time_ms, util, extra_ms, own_error, callees);
            let s = &mut self.svcs[i];
            s.ready = ready;
            s.util = util;
            s.own_ms = own_ms;
            s.latency_ms = latency;
            s.error = error;
        }
    }

    /// Current metric samples of every service, with measurement noise.
    pub fn scrape(&mut self) -> Vec<Sample> {
        let ts = self.now();
        let mut out = Vec::with_capacity(self.svcs.len() * Metric::ALL.len());
        for i in 0..self.svcs.len() {
            let n = [
                self.rng.normal(),
                self.rng.normal(),
                self.rng.normal(),
                self.rng.normal(),
                self.rng.normal(),
                self.rng.normal(),
            ];
            let s = &self.svcs[i];
            let jitter = (0.06 * n[1]).exp();
            let p50 = s.latency_ms * jitter;
            let vals = [
                (
                    Metric::CpuUsage,
                    (s.util.min(1.0) + 0.012 * n[0]).clamp(0.0, 1.0),
                ),
                (
                    Metric::MemoryUsage,
                    (s.spec.base_mem + s.leaked + 0.004 * n[2]).clamp(0.0, 1.0),
                ),
                (Metric::RequestLatencyP50, p50),
                (Metric::RequestLatencyP95, p50 * (1.9 + 0.05 * n[3])),
                (Metric::RequestLatencyP99, p50 * (3.2 + 0.12 * n[3])),
                (
                    Metric::ErrorRate,
                    (s.error * (1.0 + 0.25 * n[4])).clamp(0.0, 1.0),
                ),
                (Metric::RequestRate, (s.rps * (1.0 + 0.03 * n[5])).max(0.0)),
                (Metric::Replicas, s.ready.round()),
            ];
            for (metric, value) in vals {
                out.push(Sample {
                    service: s.name.clone(),
                    metric,
                    ts,
                    value,
                });
            }
        }
        out
    }

    fn emit_traces(&mut self, dt: f64) {
        self.trace_credit += TRACES_PER_S * dt;
        while self.trace_credit >= 1.0 {
            self.trace_credit -= 1.0;
            let trace_id = self.rng.next_u64();
            let start = self.now();
            self.span(trace_id, None, 0, start);
        }
        if self.spans.len() > MAX_BUFFER {
            let drop = self.spans.len() - MAX_BUFFER;
            self.spans.drain(..drop);
        }
    }

    /// Emits the span of service `i` and its children; returns (ms, error).
    fn span(
        &mut self,
        trace_id: u64,
        parent: Option<u64>,
        i: usize,
        start: Timestamp,
    ) -> (f64, bool) {
        let span_id = self.next_id;
        self.next_id += 1;
        let own = self.svcs[i].own_ms * (0.2 * self.rng.normal()).exp();
        let own_err = self.rng.uniform() < self.svcs[i].error.min(1.0) * 0.5;
        let mut dur = own;
        let mut err = own_err;
        for (_, callee, ratio, sync) in self.edges.clone().into_iter().filter(|e| e.0 == i) {
            if self.rng.uniform() < ratio.min(1.0) {
                let (d, e) = self.span(trace_id, Some(span_id), callee, start.plus_ms(dur as i64));
                if sync {
                    dur += d;
                    err |= e && self.rng.uniform() < 0.9;
                }
            }
        }
        let op = self.svcs[i].spec.endpoints.first().copied().unwrap_or("/");
        self.spans.push(Span {
            trace_id,
            span_id,
            parent_span_id: parent,
            service: self.svcs[i].name.clone(),
            operation: format!("GET {op}"),
            start,
            duration_ms: dur,
            error: err,
        });
        (dur, err)
    }

    fn log(&mut self, i: usize, level: &'static str, message: String) {
        let ts = self.now();
        self.logs.push(LogLine {
            ts,
            service: self.svcs[i].name.clone(),
            level,
            message,
        });
        if self.logs.len() > MAX_BUFFER {
            let drop = self.logs.len() - MAX_BUFFER;
            self.logs.drain(..drop);
        }
    }

    /// Log and alert lines. Some carry synthetic sensitive values (an API
    /// key, an e-mail address, a client IP, a bearer token) so that
    /// redaction has something to do.
    fn emit_logs(&mut self) {
        for i in 0..self.svcs.len() {
            if self.now_s - self.svcs[i].last_log_s < 10.0 {
                continue;
            }
            self.svcs[i].last_log_s = self.now_s;
            let name = self.svcs[i].name.to_string();
            let error = self.svcs[i].error;
            let msg = match name.as_str() {
                "auth-service" => "login ok user=alice@example.com client_ip=203.0.113.42".to_string(),
                "payment-service" => "charge accepted provider=acme api_key=sk_live_4eC39HqLyjWDarjtT1zdp7dc".to_string(),
                "api-gateway" => "GET /api/orders 200 from 198.51.100.23 Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyLTQyIn0.c2lnbmF0dXJl".to_string(),
                _ => format!("handled {:.0} requests in 10s", self.svcs[i].rps * 10.0),
            };
            self.log(i, "info", msg);
            if error > 0.05 {
                let msg = format!(
                    "upstream request failed ({:.0}% of requests); customer bob.smith@example.org at 192.0.2.77 affected",
                    error * 100.0
                );
                self.log(i, "error", msg);
                let alert = format!(
                    "alert HighErrorRate service={name} error_rate={error:.3} runbook=https://runbooks.example.com/errors token=ghp_R4nd0mT0k3nV4lu3F0rT3st1ng"
                );
                self.log(i, "alert", alert);
            }
            if self.svcs[i].ready < f64::from(self.svcs[i].replicas) {
                self.log(
                    i,
                    "warn",
                    "Back-off restarting failed container (CrashLoopBackOff)".into(),
                );
            }
        }
    }

    /// Takes the spans finished since the last call.
    pub fn drain_spans(&mut self) -> Vec<Span> {
        std::mem::take(&mut self.spans)
    }

    /// Takes the log and alert lines emitted since the last call.
    pub fn drain_logs(&mut self) -> Vec<LogLine> {
        std::mem::take(&mut self.logs)
    }

    /// Takes the changes (deploys, config, scale, restarts) since the last call.
    pub fn drain_changes(&mut self) -> Vec<Change> {
        std::mem::take(&mut self.changes)
    }

    fn change(&mut self, i: usize, actor: &str, kind: ChangeKind) {
        let ts = self.now();
        self.changes.push(Change {
            ts,
            service: self.svcs[i].name.clone(),
            actor: actor.to_string(),
            kind,
        });
    }

    /// Injects a fault on `target`. Faults that arrive with a change (a bad
    /// release, a config edit) emit that change like a deployment system
    /// would.
    pub fn inject(&mut self, scenario: Scenario, target: &ServiceName) -> Result<Fault, SimError> {
        let i = self
            .index(target)
            .ok_or_else(|| SimError::UnknownService(target.to_string()))?;
        match scenario {
            Scenario::ErrorBurst | Scenario::CrashLoop => {
                let from = self.svcs[i].revision;
                let to = from + 1;
                self.svcs[i].revision = to;
                self.svcs[i].history.push(to);
                self.bad_revision = Some((i, to, scenario));
                self.change(
                    i,
                    "deploy-pipeline",
                    ChangeKind::Deploy {
                        from_revision: from,
                        to_revision: to,
                    },
                );
            }
            Scenario::LatencyInjection => {
                let old = self.svcs[i]
                    .config
                    .insert(SLOW_KEY.into(), "true".into())
                    .unwrap_or_default();
                self.change(
                    i,
                    "deploy-pipeline",
                    ChangeKind::Config {
                        key: SLOW_KEY.into(),
                        old,
                        new: "true".into(),
                    },
                );
            }
            Scenario::CpuHog | Scenario::MemoryLeak | Scenario::DependencyOutage => {}
        }
        let fault = Fault {
            scenario,
            target: target.clone(),
            started_at_s: self.now_s,
        };
        self.fault = Some(fault.clone());
        self.recompute();
        Ok(fault)
    }

    /// Applies a remediation action; returns a description of the change.
    /// The fault clears when the action fits it.
    pub fn apply(&mut self, action: &Action) -> Result<String, SimError> {
        let Some(target) = action.target() else {
            return Ok("nothing to do".into());
        };
        let i = self
            .index(target)
            .ok_or_else(|| SimError::UnknownService(target.to_string()))?;
        let out = match action {
            Action::ScaleUp { replicas, .. } | Action::ScaleDown { replicas, .. } => {
                let from = self.svcs[i].replicas;
                self.svcs[i].replicas = *replicas;
                self.change(
                    i,
                    "warden",
                    ChangeKind::Scale {
                        from,
                        to: *replicas,
                    },
                );
                format!("replicas {from} → {replicas}")
            }
            Action::Restart { .. } => {
                self.svcs[i].restarts += u64::from(self.svcs[i].replicas);
                self.svcs[i].leaked = 0.0;
                self.change(i, "warden", ChangeKind::Restart);
                if self.fault.as_ref().is_some_and(|f| {
                    &f.target == target
                        && matches!(
                            f.scenario,
                            Scenario::MemoryLeak | Scenario::DependencyOutage
                        )
                }) {
                    self.fault = None;
                }
                format!("restarted {} replicas", self.svcs[i].replicas)
            }
            Action::ConfigUpdate { key, value, .. } => {
                let old = self.svcs[i]
                    .config
                    .insert(key.clone(), value.clone())
                    .unwrap_or_default();
                self.change(
                    i,
                    "warden",
                    ChangeKind::Config {
                        key: key.clone(),
                        old: old.clone(),
                        new: value.clone(),
                    },
                );
                format!("config {key}: {old:?} → {value:?}")
            }
            Action::Rollback { revision, .. } => {
                let cur = self.svcs[i].revision;
                let to = match revision {
                    Some(r) if self.svcs[i].history.contains(r) => *r,
                    Some(r) => {
                        return Err(SimError::Refused(format!(
                            "revision {r} of {target} was never deployed"
                        )));
                    }
                    None => {
                        let h = &self.svcs[i].history;
                        let pos = h.iter().rposition(|r| *r == cur).unwrap_or(0);
                        if pos == 0 {
                            return Err(SimError::Refused(format!(
                                "{target} has no revision before {cur}"
                            )));
                        }
                        h[pos - 1]
                    }
                };
                self.svcs[i].revision = to;
                self.change(
                    i,
                    "warden",
                    ChangeKind::Deploy {
                        from_revision: cur,
                        to_revision: to,
                    },
                );
                format!("revision {cur} → {to}")
            }
            Action::None { .. } => "nothing to do".into(),
        };
        self.settle_fault(i);
        self.recompute();
        Ok(out)
    }

    /// Clears the active fault when the state of its target no longer
    /// produces it.
    fn settle_fault(&mut self, i: usize) {
        let Some(f) = &self.fault else { return };
        if f.target != self.svcs[i].name {
            return;
        }
        let s = &self.svcs[i];
        let cleared = match f.scenario {
            Scenario::CpuHog => {
                let hog = 0.63 * f64::from(s.spec.replicas);
                let util = (s.rps / f64::from(s.replicas)) * s.spec.cpu_per_rps
                    + s.spec.base_cpu
                    + hog / f64::from(s.replicas);
                util < 0.6
            }
            Scenario::LatencyInjection => s.config.get(SLOW_KEY).is_some_and(|v| v != "true"),
            Scenario::ErrorBurst | Scenario::CrashLoop => self
                .bad_revision
                .is_none_or(|(_, rev, _)| s.revision != rev),
            Scenario::MemoryLeak | Scenario::DependencyOutage => false,
        };
        if cleared {
            self.fault = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> Timestamp {
        Timestamp::parse_rfc3339("2026-01-05T09:00:00Z").expect("time")
    }

    fn value(samples: &[Sample], svc: &str, m: Metric) -> f64 {
        samples
            .iter()
            .find(|s| s.service.as_str() == svc && s.metric == m)
            .map(|s| s.value)
            .expect("sample")
    }

    #[test]
    fn healthy_mesh_has_plausible_metrics() {
        let mut m = Mesh::new(1, t0());
        m.advance_to(t0().plus_secs(60));
        let s = m.scrape();
        assert_eq!(s.len(), 8 * Metric::ALL.len());
        for svc in m.service_names() {
            let cpu = value(&s, svc.as_str(), Metric::CpuUsage);
            assert!((0.1..0.6).contains(&cpu), "{svc} cpu {cpu}");
            assert!(value(&s, svc.as_str(), Metric::ErrorRate) < 0.02);
        }
        let gw = value(&s, "api-gateway", Metric::RequestLatencyP50);
        let db = value(&s, "database-service", Metric::RequestLatencyP50);
        assert!(gw > db, "gateway latency includes downstream calls");
        assert!(!m.drain_spans().is_empty());
        assert!(!m.drain_logs().is_empty());
    }

    #[test]
    fn same_seed_same_samples() {
        let run = |seed| {
            let mut m = Mesh::new(seed, t0());
            m.advance_to(t0().plus_secs(30));
            m.scrape().into_iter().map(|s| s.value).collect::<Vec<_>>()
        };
        assert_eq!(run(3), run(3));
        assert_ne!(run(3), run(4));
    }

    #[test]
    fn dependency_outage_shows_upstream_and_restart_clears_it() {
        let mut m = Mesh::new(1, t0());
        let db = name("database-service");
        m.inject(Scenario::DependencyOutage, &db).expect("inject");
        m.advance_to(t0().plus_secs(30));
        let s = m.scrape();
        assert!(value(&s, "database-service", Metric::ErrorRate) > 0.06);
        assert!(
            value(&s, "user-service", Metric::ErrorRate) > 0.05,
            "symptom upstream"
        );
        assert!(value(&s, "api-gateway", Metric::RequestLatencyP50) > 150.0);
        m.apply(&Action::Restart {
            target: name("user-service"),
        })
        .expect("restart");
        assert!(m.fault().is_some(), "restarting a victim does not help");
        m.apply(&Action::Restart { target: db }).expect("restart");
        assert!(m.fault().is_none());
    }

    #[test]
    fn each_scenario_is_cleared_only_by_its_fitting_action() {
        for sc in Scenario::ALL {
            let mut m = Mesh::new(9, t0());
            let target = sc.pick_target(9, &m.service_names());
            m.inject(sc, &target).expect("inject");
            m.advance_to(t0().plus_secs(20));
            // A wrong action leaves the fault in place.
            let wrong = match sc.fix() {
                warden_model::ActionKind::Restart => Action::ScaleUp {
                    target: target.clone(),
                    replicas: 4,
                },
                _ => Action::Restart {
                    target: target.clone(),
                },
            };
            m.apply(&wrong).expect("applies");
            assert!(m.fault().is_some(), "{sc}: {wrong} must not clear it");
            let fix = match sc.fix() {
                warden_model::ActionKind::ScaleUp => Action::ScaleUp {
                    target: target.clone(),
                    replicas: 8,
                },
                warden_model::ActionKind::Restart => Action::Restart {
                    target: target.clone(),
                },
                warden_model::ActionKind::ConfigUpdate => Action::ConfigUpdate {
                    target: target.clone(),
                    key: SLOW_KEY.into(),
                    value: "false".into(),
                },
                _ => Action::Rollback {
                    target: target.clone(),
                    revision: None,
                },
            };
            m.apply(&fix).expect("applies");
            assert!(m.fault().is_none(), "{sc}: {fix} clears it");
        }
    }

    #[test]
    fn targets_are_picked_deterministically_from_the_seed() {
        let names = Mesh::new(0, t0()).service_names();
        for sc in Scenario::ALL {
            assert_eq!(sc.pick_target(5, &names), sc.pick_target(5, &names));
        }
        assert_eq!(
            Scenario::DependencyOutage.pick_target(5, &names).as_str(),
            "database-service"
        );
        let picks: std::collections::BTreeSet<_> = (0..20)
            .map(|s| Scenario::CpuHog.pick_target(s, &names))
            .collect();
        assert!(picks.len() > 3, "seeds spread targets");
    }
}
