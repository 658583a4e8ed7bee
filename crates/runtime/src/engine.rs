//! The governance loop.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use warden_analyst::{
    Analyst, Answer, Answered, IncidentContext, MetricState, Request, ServiceState,
};
use warden_api::{SharedLive, read_live, write_live};

use crate::capacity::{CapacityState, signature as capacity_signature};
use warden_config::{Config, DetectionAlgorithm, ModelUse};
use warden_correlate::{CorrelateParams, Correlator, IncidentChange, Signal};
use warden_detect::{
    Direction, Ensemble, EnsembleParams, EnsembleScore, IsolationForest, IsolationForestParams,
    RobustDetector, RobustParams, RobustScore,
};
use warden_forecast::{PlanParams, build_plan};
use warden_model::{
    Action, Anomaly, Candidate, Change, Incident, IncidentId, IncidentStatus, JournalEntry,
    JournalEvent, Metric, Sample, Service, ServiceName, Span, SpanJoiner, Timestamp,
};
use warden_model::{AlertSignal, CapacityPlan};
use warden_remediate::{
    ActionRecord, Executor, GateContext, Gates, Outcome, SignalHealth, Verification, VerifyOutcome,
};
use warden_store::{Approval, ApprovalState, JournalQuery, Store, StoreError};

/// What the engine is built from.
pub struct EngineParts {
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub live: SharedLive,
    pub analyst: Arc<dyn Analyst>,
    pub executor: Arc<dyn Executor>,
}

/// Rows of the four detection features kept per service for the forest.
const FOREST_ROWS: usize = 512;
/// Rows between refits of a service's forest.
const REFIT_EVERY: usize = 240;
/// Data time between refits at least: at scrape intervals of 15 s and more,
/// `REFIT_EVERY` rows take an hour or longer anyway; at higher sample rates
/// refitting more often would only cost CPU.
const REFIT_MIN_MS: i64 = 3_600_000;
/// Batches at least this large have their detectors run on all cores.
const PARALLEL_MIN_SAMPLES: usize = 20_000;
/// Log lines kept, and at most this many in an analyst's context.
const MAX_LOGS: usize = 2000;
const MAX_CONTEXT_LOGS: usize = 30;
/// Changes kept as evidence.
const MAX_CHANGES: usize = 2000;

struct Forest {
    rows: VecDeque<[f64; 4]>,
    model: Option<IsolationForest>,
    since_fit: usize,
    /// Data time of the last fit.
    fitted_at: Option<Timestamp>,
}

struct Active {
    anomaly: Anomaly,
    incident: Option<IncidentId>,
}

/// The loop's state. See the crate docs for one iteration.
pub struct Engine {
    cfg: Arc<Config>,
    store: Arc<dyn Store>,
    live: SharedLive,
    analyst: Arc<dyn Analyst>,
    executor: Arc<dyn Executor>,
    gates: Gates,
    detectors: BTreeMap<(ServiceName, Metric), SeriesDetectors>,
    forests: BTreeMap<ServiceName, Forest>,
    active: BTreeMap<String, Active>,
    correlator: Correlator,
    incidents: BTreeMap<IncidentId, Incident>,
    changes: VecDeque<Change>,
    /// Recent warning/error/alert log lines: (time, service, "level: text").
    logs: VecDeque<(Timestamp, ServiceName, String)>,
    history: Vec<ActionRecord>,
    verifications: Vec<Verification>,
    pending: Vec<JournalEntry>,
    dirty: BTreeSet<IncidentId>,
    capacity: CapacityState,
    /// When the dependency analysis last ran, and the structure it saw per
    /// service (a service is analysed again when that changes).
    deps_last_run: Option<Timestamp>,
    deps_seen: BTreeMap<ServiceName, u64>,
    alertmanager: Option<Arc<warden_sources::Alertmanager>>,
    /// Joins spans with their parents across exports (OTLP, the simulator).
    spans: SpanJoiner,
    now: Timestamp,
}

/// Most services whose dependencies are analysed in one run (the rest
/// wait for the next).
const MAX_DEPENDENCY_ANALYSES: usize = 20;

/// Asks `analyst` all `requests` at once (so that a model analyst can
/// batch them); the answers in the order of the requests.
async fn ask_all(
    analyst: &Arc<dyn Analyst>,
    requests: Vec<Request>,
) -> Vec<Result<Answered, warden_analyst::AnalystError>> {
    let n = requests.len();
    let mut asked = tokio::task::JoinSet::new();
    for (i, r) in requests.into_iter().enumerate() {
        let analyst = analyst.clone();
        asked.spawn(async move { (i, analyst.answer(&r).await) });
    }
    let mut out: Vec<Option<_>> = (0..n).map(|_| None).collect();
    while let Some(done) = asked.join_next().await {
        match done {
            Ok((i, a)) => out[i] = Some(a),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => {}
        }
    }
    out.into_iter()
        .map(|a| {
            a.unwrap_or_else(|| {
                Err(warden_analyst::AnalystError::NoEvidence(
                    "the analysis was cancelled".into(),
                ))
            })
        })
        .collect()
}

/// Per-metric detector settings: direction and the smallest change worth an
/// alert (absolute, relative to the baseline).
/// The univariate detectors of one series: the robust detector gates
/// direction, effect size and persistence; the streaming ensemble scores
/// each sample in [0, 1] and, when it is confident, confirms a departure on
/// its first sample instead of waiting for `confirm_samples`.
struct SeriesDetectors {
    robust: RobustDetector,
    ensemble: Ensemble,
    /// The ensemble's strongest score in the current departure.
    peak: Option<EnsembleScore>,
    /// Whether the series has an anomaly in `Engine::active`.
    active: bool,
}

fn robust_params(cfg: &Config, m: Metric) -> RobustParams {
    let mon = &cfg.services.monitoring;
    let (direction, min_abs, min_rel) = match m {
        Metric::CpuUsage => (Direction::Up, 0.05, 0.0),
        Metric::MemoryUsage => (Direction::Up, 0.02, 0.0),
        Metric::RequestLatencyP50 | Metric::RequestLatencyP95 | Metric::RequestLatencyP99 => {
            (Direction::Up, 5.0, 0.25)
        }
        Metric::ErrorRate => (Direction::Up, 0.01, 0.0),
        Metric::RequestRate => (Direction::Both, 0.0, 0.3),
        Metric::Replicas => (Direction::Down, 0.5, 0.0),
    };
    RobustParams {
        window_ms: mon.window.millis(),
        max_points: 4096,
        min_history: mon.min_history,
        z_threshold: mon.z_threshold,
        confirm: mon.confirm_samples,
        min_abs_delta: min_abs,
        min_rel_delta: min_rel,
        direction,
    }
}

fn fmt_value(m: Metric, v: f64) -> String {
    match m {
        Metric::CpuUsage | Metric::MemoryUsage | Metric::ErrorRate => format!("{:.1}%", v * 100.0),
        Metric::RequestLatencyP50 | Metric::RequestLatencyP95 | Metric::RequestLatencyP99 => {
            format!("{v:.0} ms")
        }
        Metric::RequestRate => format!("{v:.1} req/s"),
        Metric::Replicas => format!("{v:.0}"),
    }
}

impl Engine {
    /// Builds the engine and restores what the store holds: the catalog,
    /// open incidents and executed actions (for cooldowns).
    pub fn new(parts: EngineParts) -> Result<Self, StoreError> {
        let EngineParts {
            config,
            store,
            live,
            analyst,
            executor,
        } = parts;
        let gates = Gates::from_config(&config.services.recovery);
        let correlator = Correlator::new(CorrelateParams::from_config(&config.correlation));
        let mut engine = Self {
            spans: SpanJoiner::new(
                config.integrations.otlp.join_window.millis(),
                config.integrations.otlp.max_pending_spans,
            ),
            cfg: config,
            store,
            live,
            analyst,
            executor,
            gates,
            detectors: BTreeMap::new(),
            forests: BTreeMap::new(),
            active: BTreeMap::new(),
            correlator,
            incidents: BTreeMap::new(),
            changes: VecDeque::new(),
            logs: VecDeque::new(),
            history: Vec::new(),
            verifications: Vec::new(),
            pending: Vec::new(),
            dirty: BTreeSet::new(),
            capacity: CapacityState::default(),
            deps_last_run: None,
            deps_seen: BTreeMap::new(),
            alertmanager: None,
            now: Timestamp(0),
        };
        let am = &engine.cfg.integrations.alertmanager;
        if am.enabled {
            engine.alertmanager = Some(Arc::new(warden_sources::Alertmanager::new(am.clone())));
        }
        engine.restore()?;
        Ok(engine)
    }

    fn restore(&mut self) -> Result<(), StoreError> {
        let services = self.store.services()?;
        {
            let mut live = write_live(&self.live);
            for s in services {
                live.add_service(s);
            }
        }
        for e in self.store.journal(&JournalQuery {
            kinds: vec!["action_executed".into()],
            limit: 1000,
            ..Default::default()
        })? {
            if let JournalEvent::ActionExecuted { receipt } = e.event {
                self.history.push(ActionRecord {
                    ts: receipt.executed_at,
                    incident: e.incident,
                    action: receipt.action,
                });
            }
        }
        for mut inc in self.store.incidents(1000)? {
            if inc.status.is_closed() {
                continue;
            }
            if inc.status == IncidentStatus::Verifying {
                // The verification window was lost with the process; say so.
                inc.status = IncidentStatus::Escalated;
                let reason = "verification was interrupted by a restart; check the service by hand"
                    .to_string();
                self.journal(
                    inc.updated_at,
                    Some(&inc.id),
                    JournalEvent::IncidentEscalated { reason },
                );
                self.dirty.insert(inc.id.clone());
            }
            self.correlator.restore(
                inc.id.clone(),
                inc.opened_at,
                &inc.services,
                &inc.signals,
                inc.updated_at,
            );
            self.incidents.insert(inc.id.clone(), inc);
        }
        self.flush()?;
        Ok(())
    }

    /// The simulated or wall time of the last tick or ingest.
    pub fn now(&self) -> Timestamp {
        self.now
    }

    fn journal(&mut self, ts: Timestamp, incident: Option<&IncidentId>, event: JournalEvent) {
        self.pending.push(JournalEntry {
            seq: 0,
            ts,
            incident: incident.cloned(),
            event,
        });
    }

    /// Adds a service to the catalog (discovery source) and journals it.
    /// Returns the journal records written.
    pub fn register(&mut self, svc: Service) -> Result<Vec<JournalEntry>, StoreError> {
        self.store.upsert_service(&svc)?;
        write_live(&self.live).add_service(svc.clone());
        let ev = JournalEvent::ServiceRegistered {
            service: svc.name.clone(),
            source: svc.source.clone(),
            dependencies: svc.dependencies.clone(),
        };
        self.journal(svc.registered_at, None, ev);
        self.flush()
    }

    /// Journals an event that happened outside the loop (e.g. the
    /// simulator's fault injection).
    pub fn note(
        &mut self,
        ts: Timestamp,
        event: JournalEvent,
    ) -> Result<Vec<JournalEntry>, StoreError> {
        self.journal(ts, None, event);
        self.flush()
    }

    fn ensure_known(&mut self, name: &ServiceName, source: &str, ts: Timestamp) {
        let (known, count) = {
            let live = read_live(&self.live);
            (live.services.contains_key(name), live.services.len())
        };
        if known || count >= self.cfg.services.discovery.max_services {
            return;
        }
        let svc = Service {
            name: name.clone(),
            description: String::new(),
            endpoints: vec![],
            dependencies: vec![],
            source: source.into(),
            registered_at: ts,
        };
        if let Err(e) = self.store.upsert_service(&svc) {
            tracing::warn!("catalog: {e}");
            return;
        }
        let ev = JournalEvent::ServiceRegistered {
            service: name.clone(),
            source: source.into(),
            dependencies: vec![],
        };
        self.journal(ts, None, ev);
        write_live(&self.live).add_service(svc);
    }

    /// Feeds metric samples to the detectors, service by service (in name
    /// order) and, within a service, oldest first; samples of a service
    /// with the same timestamp form one row.
    ///
    /// Two phases: the per-series detectors (robust and ensemble) see every
    /// sample first — series are independent, so large batches are spread
    /// over the cores, each series on one thread in time order, with the
    /// same results as one thread — then the decisions (anomalies, the
    /// forest, the catalog) run in order on this thread.
    pub fn ingest_samples(&mut self, samples: &[Sample]) {
        let mut by_service: HashMap<&ServiceName, Vec<u32>> = HashMap::new();
        for (i, s) in samples.iter().enumerate() {
            by_service.entry(&s.service).or_default().push(i as u32);
        }
        let mut grouped: Vec<(&ServiceName, Vec<u32>)> = by_service.into_iter().collect();
        grouped.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut services: Vec<(&ServiceName, Vec<u32>)> = Vec::with_capacity(grouped.len());
        for (svc, mut idx) in grouped {
            // Stable: equal timestamps keep their arrival order.
            idx.sort_by_key(|&i| samples[i as usize].ts);
            self.ensure_known(svc, "metrics", samples[idx[0] as usize].ts);
            if read_live(&self.live).services.contains_key(svc) {
                services.push((svc, idx));
            }
        }
        // Detectors for series seen for the first time.
        for (svc, idx) in &services {
            let mut seen = [false; 8];
            for &i in idx {
                let m = samples[i as usize].metric;
                if std::mem::replace(&mut seen[m.index()], true) {
                    continue;
                }
                let key = ((*svc).clone(), m);
                if !self.detectors.contains_key(&key) {
                    let det = SeriesDetectors {
                        robust: RobustDetector::new(robust_params(&self.cfg, m)),
                        ensemble: Ensemble::new(EnsembleParams::default()),
                        peak: None,
                        active: false,
                    };
                    self.detectors.insert(key, det);
                }
            }
        }
        let scores = self.score_series(samples, &services);
        let mut group: Vec<&Sample> = Vec::with_capacity(Metric::ALL.len());
        let mut group_scores: Vec<(RobustScore, EnsembleScore)> = Vec::new();
        for ((svc, idx), scores) in services.iter().zip(scores) {
            let svc = (*svc).clone();
            let mut k = 0;
            while k < idx.len() {
                let ts = samples[idx[k] as usize].ts;
                group.clear();
                group_scores.clear();
                while k < idx.len() && samples[idx[k] as usize].ts == ts {
                    group.push(&samples[idx[k] as usize]);
                    group_scores.push(scores[k]);
                    k += 1;
                }
                self.now = self.now.max(ts);
                self.observe_group(&svc, ts, &group, &group_scores);
            }
        }
    }

    /// Phase one of [`ingest_samples`](Self::ingest_samples): every
    /// sample through its series' detectors, per service in `idx` order.
    fn score_series(
        &mut self,
        samples: &[Sample],
        services: &[(&ServiceName, Vec<u32>)],
    ) -> Vec<Vec<(RobustScore, EnsembleScore)>> {
        type Slots<'a> = [Option<&'a mut SeriesDetectors>; 8];
        let pos: HashMap<&ServiceName, usize> = services
            .iter()
            .enumerate()
            .map(|(k, (s, _))| (*s, k))
            .collect();
        let mut slots: Vec<Slots<'_>> = (0..services.len()).map(|_| Default::default()).collect();
        for ((s, m), d) in self.detectors.iter_mut() {
            if let Some(&k) = pos.get(s) {
                slots[k][m.index()] = Some(d);
            }
        }
        let run = |idx: &[u32], dets: &mut Slots<'_>| -> Vec<(RobustScore, EnsembleScore)> {
            idx.iter()
                .filter_map(|&i| {
                    let s = &samples[i as usize];
                    let d = dets[s.metric.index()].as_mut()?;
                    Some((
                        d.robust.observe(s.ts.millis(), s.value),
                        d.ensemble.observe(s.ts.millis(), s.value),
                    ))
                })
                .collect()
        };
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
        if threads < 2 || samples.len() < PARALLEL_MIN_SAMPLES {
            return services
                .iter()
                .zip(slots.iter_mut())
                .map(|((_, idx), dets)| run(idx, dets))
                .collect();
        }
        // Contiguous chunks of services with about equal sample counts.
        let per = samples.len().div_ceil(threads);
        let mut chunks: Vec<Vec<(&[u32], &mut Slots<'_>)>> = vec![Vec::new()];
        let mut load = 0;
        for ((_, idx), dets) in services.iter().zip(slots.iter_mut()) {
            if load >= per {
                chunks.push(Vec::new());
                load = 0;
            }
            load += idx.len();
            if let Some(c) = chunks.last_mut() {
                c.push((idx.as_slice(), dets));
            }
        }
        std::thread::scope(|scope| {
            let handles: Vec<_> = chunks
                .into_iter()
                .map(|chunk| {
                    scope.spawn(move || {
                        chunk
                            .into_iter()
                            .map(|(idx, dets)| run(idx, dets))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        })
    }

    fn observe_group(
        &mut self,
        svc: &ServiceName,
        ts: Timestamp,
        group: &[&Sample],
        scores: &[(RobustScore, EnsembleScore)],
    ) {
        let cfg = self.cfg.clone();
        let mon = &cfg.services.monitoring;
        let mut row = [f64::NAN; 4];
        for s in group {
            if let Some(i) = Metric::FEATURES.iter().position(|m| *m == s.metric) {
                row[i] = s.value;
            }
        }
        let complete = row.iter().all(|v| v.is_finite());
        if !self.forests.contains_key(svc) {
            self.forests.insert(
                svc.clone(),
                Forest {
                    rows: VecDeque::new(),
                    model: None,
                    since_fit: 0,
                    fitted_at: None,
                },
            );
        }
        // The forest scores the row only when a sample is about to become an
        // anomaly (most rows never need it).
        let mut forest_verdict: Option<(Option<f64>, Option<bool>)> = None;
        let scrape_ms = self.cfg.services.monitoring.interval.millis();
        for s in group {
            self.capacity
                .observe(&self.cfg.capacity, scrape_ms, svc, s.metric, ts, s.value);
        }
        // The service's detectors, found with one range instead of a
        // lookup per sample.
        let (lo, hi) = (
            Metric::ALL
                .iter()
                .min()
                .copied()
                .unwrap_or(Metric::CpuUsage),
            Metric::ALL
                .iter()
                .max()
                .copied()
                .unwrap_or(Metric::Replicas),
        );
        let mut dets: [Option<&mut SeriesDetectors>; 8] = Default::default();
        for ((_, m), d) in self
            .detectors
            .range_mut((svc.clone(), lo)..=(svc.clone(), hi))
        {
            dets[m.index()] = Some(d);
        }
        for (s, &(score, ens)) in group.iter().zip(scores) {
            let Some(det) = dets[s.metric.index()].as_deref_mut() else {
                continue;
            };
            if !score.exceeds {
                det.peak = None;
                if std::mem::take(&mut det.active) {
                    self.active.remove(&format!("{svc}/{}", s.metric));
                }
                continue;
            }
            let fp = format!("{svc}/{}", s.metric);
            if det.peak.is_none_or(|p| ens.strength > p.strength) {
                det.peak = Some(ens);
            }
            let peak = det.peak.unwrap_or(ens);
            let confident = peak.strength >= EnsembleParams::default().alarm;
            if !(score.anomalous || confident) || self.active.contains_key(&fp) {
                continue;
            }
            let (if_score, if_outlier) =
                *forest_verdict.get_or_insert_with(|| match (&self.forests[svc].model, complete) {
                    (Some(m), true) => {
                        let sc = m.score_sample(&row);
                        (Some(-sc), Some(sc - m.offset() < 0.0))
                    }
                    _ => (None, None),
                });
            let strong = score.z.abs() >= 3.0 * mon.z_threshold;
            let agree = match mon.anomaly_detection_algorithm {
                DetectionAlgorithm::Robust => true,
                DetectionAlgorithm::IsolationForest => if_outlier.unwrap_or(true) || strong,
            };
            if !agree {
                continue;
            }
            let mut detectors = vec!["robust_mad".to_string()];
            if confident {
                detectors.push(format!("ensemble:{}", peak.component.as_str()));
            }
            if if_outlier == Some(true) {
                detectors.push("iforest".into());
            }
            let if_note = match (if_score, if_outlier) {
                (Some(sc), Some(true)) => format!("; isolation forest agrees (score {sc:.3})"),
                (Some(sc), _) => format!("; isolation forest score {sc:.3} below its threshold"),
                _ => String::new(),
            };
            let ens_note = if confident {
                format!(
                    "; ensemble score {:.2} ({} baseline {})",
                    peak.strength,
                    peak.component.as_str(),
                    fmt_value(s.metric, peak.baseline)
                )
            } else {
                format!("; ensemble score {:.2}", peak.strength)
            };
            let reason = format!(
                "{svc} {} is {} vs baseline {} (robust z {:+.1}){ens_note}{if_note}",
                s.metric,
                fmt_value(s.metric, s.value),
                fmt_value(s.metric, score.baseline),
                score.z
            );
            let anomaly = Anomaly {
                service: svc.clone(),
                metric: s.metric,
                onset: Timestamp(score.onset_ms.unwrap_or(ts.millis())),
                ts,
                value: s.value,
                baseline: score.baseline,
                z: score.z,
                score: peak
                    .strength
                    .max(1.0 - (-score.z.abs() / mon.z_threshold).exp()),
                iforest_score: if_score,
                detectors,
                reason,
            };
            det.active = true;
            self.active.insert(
                fp,
                Active {
                    anomaly,
                    incident: None,
                },
            );
        }
        if complete {
            // Fingerprints start with "<service>/": a range, not a scan.
            let prefix = format!("{svc}/");
            let sick = self
                .active
                .range(prefix.clone()..)
                .take_while(|(k, _)| k.starts_with(&prefix))
                .any(|(_, a)| &a.anomaly.service == svc);
            let forest = self
                .forests
                .get_mut(svc)
                .unwrap_or_else(|| unreachable!("inserted above"));
            forest.rows.push_back(row);
            if forest.rows.len() > FOREST_ROWS {
                forest.rows.pop_front();
            }
            forest.since_fit += 1;
            let due = (forest.model.is_none() && forest.rows.len() >= mon.min_history)
                || (forest.since_fit >= REFIT_EVERY
                    && forest
                        .fitted_at
                        .is_none_or(|t| ts.millis() - t.millis() >= REFIT_MIN_MS));
            if due && !sick {
                let rows: Vec<Vec<f64>> = forest.rows.iter().map(|r| r.to_vec()).collect();
                let params = IsolationForestParams {
                    contamination: mon.contamination,
                    seed: mon.seed,
                    ..Default::default()
                };
                match IsolationForest::fit(&rows, &params) {
                    Ok(m) => forest.model = Some(m),
                    Err(e) => tracing::warn!("isolation forest for {svc}: {e}"),
                }
                forest.since_fit = 0;
                forest.fitted_at = Some(ts);
            }
        }
    }

    /// Feeds alerts from another system: a firing alert is a signal for
    /// correlation (its service joins the catalog), held until the alert is
    /// resolved; a resolved one clears it.
    pub fn ingest_alerts(&mut self, alerts: &[AlertSignal], now: Timestamp) {
        for a in alerts {
            let fp = a.fingerprint();
            if !a.firing {
                self.active.remove(&fp);
                continue;
            }
            self.ensure_known(&a.service, "alertmanager", now);
            if self.active.contains_key(&fp) {
                continue;
            }
            let reason = if a.summary.is_empty() {
                format!("alert {} firing on {}", a.name, a.service)
            } else {
                format!("alert {} firing on {}: {}", a.name, a.service, a.summary)
            };
            self.active.insert(
                fp,
                Active {
                    anomaly: Anomaly {
                        service: a.service.clone(),
                        metric: a.metric,
                        onset: a.starts_at.min(now),
                        ts: now,
                        value: 1.0,
                        baseline: 0.0,
                        z: 0.0,
                        score: 1.0,
                        iforest_score: None,
                        detectors: vec![format!("alertmanager:{}", a.name)],
                        reason,
                    },
                    incident: None,
                },
            );
        }
    }

    /// Feeds a tracing backend's dependency edges (Jaeger): both services
    /// join the catalog, the edge joins the graph with its call count.
    pub fn ingest_dependencies(
        &mut self,
        edges: &[(ServiceName, ServiceName, u64)],
        now: Timestamp,
    ) {
        for (a, b, _) in edges {
            self.ensure_known(a, "jaeger", now);
            self.ensure_known(b, "jaeger", now);
        }
        let mut live = write_live(&self.live);
        for (a, b, calls) in edges {
            if live.services.contains_key(a) && live.services.contains_key(b) {
                live.graph.observe_dependency(a, b, *calls, now);
            }
        }
    }

    /// Feeds spans that arrived at `now`: a span whose parent (in this
    /// batch or an earlier one) belongs to another service is a call on
    /// the caller → callee edge. Returns how many calls were found.
    pub fn ingest_spans(&mut self, spans: &[Span], now: Timestamp) -> usize {
        let services: BTreeSet<&ServiceName> = spans.iter().map(|s| &s.service).collect();
        for svc in services {
            self.ensure_known(svc, "traces", now);
        }
        let calls = self.spans.push(spans, now);
        let mut live = write_live(&self.live);
        live.spans_pending = self.spans.pending() as u64;
        live.spans_expired = self.spans.expired;
        for c in &calls {
            if live.services.contains_key(&c.caller) && live.services.contains_key(&c.callee) {
                live.graph
                    .observe_call(&c.caller, &c.callee, c.latency_ms, c.error, c.ts);
            }
        }
        calls.len()
    }

    /// Feeds log lines (service, level, message); warnings, errors and
    /// alerts are kept (bounded) as evidence for the analyst.
    pub fn ingest_logs(&mut self, lines: &[(Timestamp, ServiceName, &str, String)]) {
        for (ts, svc, level, msg) in lines {
            if matches!(*level, "warn" | "error" | "alert") {
                let text: String = msg.chars().take(500).collect();
                self.logs
                    .push_back((*ts, svc.clone(), format!("{level}: {text}")));
            }
        }
        while self.logs.len() > MAX_LOGS {
            self.logs.pop_front();
        }
    }

    /// Feeds changes reported by the deployment system.
    pub fn ingest_changes(&mut self, changes: Vec<Change>) {
        for c in changes {
            self.changes.push_back(c);
        }
        while self.changes.len() > MAX_CHANGES {
            self.changes.pop_front();
        }
    }

    /// One iteration of the loop at `now`. Returns the journal records
    /// written.
    pub async fn tick(&mut self, now: Timestamp) -> Result<Vec<JournalEntry>, StoreError> {
        self.now = self.now.max(now);
        self.handle_approvals(now).await?;
        self.correlate(now);
        let mut ready = Vec::new();
        for change in self.correlator.tick(now) {
            match change {
                IncidentChange::Ready { id } => ready.push(id),
                IncidentChange::Quiet { id } => self.quiet(&id, now),
                IncidentChange::Opened { .. } | IncidentChange::Grouped { .. } => {}
            }
        }
        self.diagnose_all(&ready, now).await;
        self.verify(now).await;
        self.analyse_dependencies(now).await;
        if self.capacity.due(&self.cfg.capacity, now) {
            self.plan_capacity(now).await;
        }
        self.push_to_alertmanager(now).await;
        self.flush()
    }

    /// Alertmanager out: open incidents every tick (so they stay firing),
    /// and the ones resolved since the last tick once.
    async fn push_to_alertmanager(&mut self, now: Timestamp) {
        let Some(am) = self.alertmanager.clone() else {
            return;
        };
        if !am.config().push_incidents {
            return;
        }
        let list: Vec<Incident> = self
            .incidents
            .values()
            .filter(|i| !i.status.is_closed() || self.dirty.contains(&i.id))
            .cloned()
            .collect();
        // In the background: a slow or absent Alertmanager must not hold up
        // the loop (its timeouts and retries add up).
        let live = self.live.clone();
        tokio::spawn(async move {
            let ok = match am.push(&list, now).await {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!("alertmanager: {e}");
                    false
                }
            };
            write_live(&live).sources.insert("alertmanager".into(), ok);
        });
    }

    /// Whether an active Alertmanager silence matches the incident's alert
    /// with `target` as its service: Some(reason) closes the gate.
    async fn silence_gate(&self, id: &IncidentId, target: Option<&ServiceName>) -> Option<String> {
        let am = self.alertmanager.clone()?;
        if !am.config().check_silences {
            return None;
        }
        let inc = self.incidents.get(id)?;
        let mut labels = warden_sources::alertmanager::incident_labels(inc);
        if let Some(t) = target {
            labels.insert("service".into(), t.to_string());
        }
        match am.silenced(&labels).await {
            Ok(found) => found,
            Err(e) if am.config().fail_open => {
                tracing::warn!("alertmanager silences unreadable, failing open: {e}");
                None
            }
            Err(e) => Some(format!(
                "cannot read Alertmanager's silences ({e}); fail_open is false"
            )),
        }
    }

    /// Re-forecasts every service with enough history: plans into the live
    /// view, journaled when a service's warnings or proposals change, the
    /// proposals gated like any action.
    async fn plan_capacity(&mut self, now: Timestamp) {
        let c = self.cfg.capacity.clone();
        let params = PlanParams {
            horizon_ms: c.horizon.millis(),
            cpu_limit: c.cpu_limit,
            memory_limit: c.memory_limit,
            headroom: c.headroom,
            target_utilization: c.target_utilization,
            max_replicas: c.max_replicas,
        };
        let services: Vec<ServiceName> = read_live(&self.live).services.keys().cloned().collect();
        type Input = (
            ServiceName,
            Option<u32>,
            (Vec<i64>, Vec<f64>),
            (Vec<i64>, Vec<f64>),
        );
        let inputs: Vec<Input> = services
            .into_iter()
            .map(|svc| {
                let get = |m: Metric| {
                    self.capacity
                        .series
                        .get(&(svc.clone(), m))
                        .map(|b| b.series())
                        .unwrap_or_default()
                };
                let (cpu, mem) = (get(Metric::CpuUsage), get(Metric::MemoryUsage));
                (svc.clone(), self.current_replicas(&svc), cpu, mem)
            })
            .collect();
        // Forecasting is the heavy part: spread it over the cores.
        let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
        let chunk = inputs.len().div_ceil(cores).max(1);
        let plans: Vec<CapacityPlan> = std::thread::scope(|s| {
            let handles: Vec<_> = inputs
                .chunks(chunk)
                .map(|part| {
                    let params = &params;
                    s.spawn(move || {
                        part.iter()
                            .filter_map(|(svc, replicas, cpu, mem)| {
                                let mut plan = build_plan(
                                    svc,
                                    now,
                                    (&cpu.0, &cpu.1),
                                    (&mem.0, &mem.1),
                                    *replicas,
                                    params,
                                )?;
                                warden_analyst::capacity::advise(&mut plan, now);
                                Some(plan)
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                .collect()
        });
        let mut plans = plans;
        // The narrative of each plan that changed comes from the analyst
        // (the proposals stay warden's own, from the numbers).
        let changed: Vec<usize> = (0..plans.len())
            .filter(|i| {
                self.capacity.journaled.get(&plans[*i].service)
                    != Some(&capacity_signature(&plans[*i]))
            })
            .collect();
        let analyst = self.analyst_for(ModelUse::Capacity);
        let name = analyst.name();
        let requests = changed
            .iter()
            .map(|i| Request::CapacityPlan(plans[*i].clone()))
            .collect();
        for (i, answered) in changed.into_iter().zip(ask_all(&analyst, requests).await) {
            let Ok(a) = answered else { continue };
            let by = self.journal_answer(None, now, &name, "capacity_plan", &a);
            if let Answer::CapacityPlan(advice) = a.answer {
                let plan = &mut plans[i];
                plan.warning_signals = advice.warning_signals;
                plan.scale_timing = advice.scale_timing;
                plan.optimizations = advice.optimizations;
                plan.analyst = by;
            }
        }
        let planned = !plans.is_empty();
        for plan in plans {
            let svc = plan.service.clone();
            let sig = capacity_signature(&plan);
            if self.capacity.journaled.get(&svc) != Some(&sig) {
                self.journal(
                    now,
                    None,
                    JournalEvent::CapacityPlanned { plan: plan.clone() },
                );
                for a in plan.proposals.clone() {
                    self.gate_proposal(a, now).await;
                }
                self.capacity.journaled.insert(svc.clone(), sig);
            }
            self.capacity.plans.insert(svc, plan);
        }
        if planned {
            self.capacity.last_run = Some(now);
            write_live(&self.live).capacity = self.capacity.plans.clone();
        }
    }

    /// A capacity proposal through the gates (no incident). It runs only
    /// when every gate allows it in auto mode; in approve mode it is
    /// recorded for an operator to act on by hand (not queued).
    async fn gate_proposal(&mut self, action: Action, now: Timestamp) {
        let known = self.known_services();
        let replicas = action.target().and_then(|t| self.current_replicas(t));
        let verdict = self.gates.evaluate(
            &action,
            &GateContext {
                now,
                incident: None,
                history: &self.history,
                current_replicas: replicas,
                known_services: &known,
                approved: false,
            },
        );
        for (gate, decision) in &verdict.decisions {
            self.journal(
                now,
                None,
                JournalEvent::GateDecision {
                    action: action.clone(),
                    gate: gate.to_string(),
                    decision: decision.clone(),
                },
            );
        }
        match verdict.outcome {
            Outcome::Execute => match self.executor.clone().execute(&action, now).await {
                Ok(receipt) => {
                    self.history.push(ActionRecord {
                        ts: now,
                        incident: None,
                        action,
                    });
                    self.journal(now, None, JournalEvent::ActionExecuted { receipt });
                }
                Err(e) => self.journal(
                    now,
                    None,
                    JournalEvent::ActionFailed {
                        action,
                        error: e.to_string(),
                    },
                ),
            },
            Outcome::Record { mode } => self.journal(
                now,
                None,
                JournalEvent::ActionDryRun {
                    action,
                    mode: mode.as_str().into(),
                },
            ),
            Outcome::NeedsApproval => self.journal(
                now,
                None,
                JournalEvent::ActionDryRun {
                    action,
                    mode: "approve (capacity proposals are not queued: apply by hand)".into(),
                },
            ),
            Outcome::Denied { .. } => {}
        }
    }

    fn correlate(&mut self, now: Timestamp) {
        let graph = read_live(&self.live).graph.clone();
        // Earliest onset first, so that an incident's identity comes from the
        // signal that began it.
        let mut fps: Vec<(Timestamp, String)> = self
            .active
            .iter()
            .map(|(fp, a)| (a.anomaly.onset, fp.clone()))
            .collect();
        fps.sort();
        for (_, fp) in fps {
            let Some(act) = self.active.get(&fp) else {
                continue;
            };
            let signal = Signal {
                service: act.anomaly.service.clone(),
                fingerprint: fp.clone(),
                onset: act.anomaly.onset,
            };
            match &act.incident {
                Some(id) if self.incidents.contains_key(id) => {
                    self.correlator.ingest(signal, &graph, now);
                }
                Some(_) => {}
                None => {
                    for ch in self.correlator.ingest(signal, &graph, now) {
                        let (IncidentChange::Opened { id, .. }
                        | IncidentChange::Grouped { id, .. }) = ch
                        else {
                            continue;
                        };
                        let anomaly = self.active.get(&fp).map(|a| a.anomaly.clone());
                        let Some(anomaly) = anomaly else { continue };
                        if let Some(a) = self.active.get_mut(&fp) {
                            a.incident = Some(id.clone());
                        }
                        if !self.incidents.contains_key(&id) {
                            let inc = Incident {
                                id: id.clone(),
                                title: format!("{} anomaly on {}", anomaly.metric, anomaly.service),
                                status: IncidentStatus::Open,
                                opened_at: now,
                                updated_at: now,
                                resolved_at: None,
                                services: vec![anomaly.service.clone()],
                                signals: vec![fp.clone()],
                                ranking: vec![],
                            };
                            self.journal(
                                now,
                                Some(&id),
                                JournalEvent::IncidentOpened {
                                    title: inc.title.clone(),
                                    services: inc.services.clone(),
                                    signals: inc.signals.clone(),
                                },
                            );
                            self.incidents.insert(id.clone(), inc);
                        } else if let Some(inc) = self.incidents.get_mut(&id) {
                            if !inc.services.contains(&anomaly.service) {
                                inc.services.push(anomaly.service.clone());
                                inc.services.sort();
                            }
                            if !inc.signals.contains(&fp) {
                                inc.signals.push(fp.clone());
                                inc.signals.sort();
                            }
                            inc.updated_at = now;
                            self.journal(
                                now,
                                Some(&id),
                                JournalEvent::SignalGrouped { signal: fp.clone() },
                            );
                        }
                        self.dirty.insert(id.clone());
                        self.journal(now, Some(&id), JournalEvent::MetricAnomaly { anomaly });
                    }
                }
            }
        }
    }

    /// The incident's series for the ranker, from the detectors' windows.
    fn rank(&self, onset: Timestamp) -> Vec<Candidate> {
        let owned: Vec<(String, String, Vec<f64>, Vec<f64>)> = self
            .detectors
            .iter()
            .map(|((s, m), d)| {
                let (t, v): (Vec<f64>, Vec<f64>) = d
                    .robust
                    .values()
                    .map(|(t, v)| (t as f64 / 1000.0, v))
                    .unzip();
                (s.to_string(), m.to_string(), t, v)
            })
            .collect();
        let edges: Vec<(String, String)> = read_live(&self.live)
            .graph
            .edges()
            .map(|(a, b, _)| (a.to_string(), b.to_string()))
            .collect();
        let case = warden_rca::Case {
            series: owned
                .iter()
                .map(|(s, m, t, v)| warden_rca::Series {
                    service: s,
                    metric: m,
                    times: t,
                    values: v,
                })
                .collect(),
            onset_s: onset.secs_f64(),
            normal: vec![],
            edges,
            alert: None,
        };
        warden_rca::rank(&case, &warden_rca::RankParams::default())
    }

    fn service_state(&self, svc: &ServiceName) -> ServiceState {
        let metrics = Metric::ALL
            .iter()
            .filter_map(|m| {
                let d = self.detectors.get(&(svc.clone(), *m))?;
                let (_, value) = d.robust.values().last()?;
                let last = d.robust.last()?;
                Some(MetricState {
                    metric: *m,
                    value,
                    baseline: last.baseline,
                })
            })
            .collect();
        ServiceState {
            service: svc.clone(),
            metrics,
        }
    }

    fn known_services(&self) -> Vec<ServiceName> {
        read_live(&self.live).services.keys().cloned().collect()
    }

    /// The analyst for `kind` of analysis: the configured one, or the
    /// built-in analyst when `analyst.model_for` leaves the kind out.
    fn analyst_for(&self, kind: ModelUse) -> Arc<dyn Analyst> {
        if self.cfg.analyst.model_for.contains(&kind) {
            self.analyst.clone()
        } else {
            Arc::new(warden_analyst::Builtin)
        }
    }

    /// Diagnoses the incidents that became ready: the evidence of each is
    /// gathered, the analyst is asked about all of them at once (so that a
    /// model analyst can batch them into one request), then each answer is
    /// journaled and its plan gated, in order.
    async fn diagnose_all(&mut self, ids: &[IncidentId], now: Timestamp) {
        let prepared: Vec<(IncidentId, IncidentContext)> = ids
            .iter()
            .filter_map(|id| Some((id.clone(), self.prepare(id, now)?)))
            .collect();
        let analyst = self.analyst_for(ModelUse::Incidents);
        let requests = prepared
            .iter()
            .flat_map(|(_, c)| {
                [
                    Request::AnomalyAnalysis(c.clone()),
                    Request::RecoveryPlan(c.clone()),
                ]
            })
            .collect();
        let mut answers = ask_all(&analyst, requests).await.into_iter();
        let name = analyst.name();
        for (id, context) in prepared {
            if let (Some(a), Some(p)) = (answers.next(), answers.next()) {
                self.conclude(&id, context, &name, a, p, now).await;
            }
        }
    }

    /// Ranks the incident's root causes, journals the ranking and gathers
    /// the analyst's evidence.
    fn prepare(&mut self, id: &IncidentId, now: Timestamp) -> Option<IncidentContext> {
        let inc = self.incidents.get(id).cloned()?;
        let anomalies: Vec<Anomaly> = self
            .active
            .values()
            .filter(|a| a.incident.as_ref() == Some(id))
            .map(|a| a.anomaly.clone())
            .collect();
        let onset = anomalies
            .iter()
            .map(|a| a.onset)
            .min()
            .unwrap_or(inc.opened_at);
        let mut ranking = self.rank(onset);
        if ranking.iter().all(|c| c.score <= 0.0) {
            // No metric evidence (e.g. an incident of alerts from
            // Alertmanager about services warden has no series for): the
            // signals themselves are the candidates, strongest first.
            let mut seen = BTreeSet::new();
            let mut from_signals: Vec<Candidate> = anomalies
                .iter()
                .filter(|a| seen.insert(a.service.clone()))
                .map(|a| Candidate {
                    service: a.service.to_string(),
                    metric: a.metric.as_str().into(),
                    score: a.score,
                    evidence: vec![format!("signal only (no metric evidence): {}", a.reason)],
                })
                .collect();
            from_signals.sort_by(|a, b| b.score.total_cmp(&a.score));
            if !from_signals.is_empty() {
                ranking = from_signals;
            }
        }
        let top: Vec<Candidate> = ranking.iter().take(10).cloned().collect();
        self.journal(
            now,
            Some(id),
            JournalEvent::RootCauseRanked {
                candidates: top.iter().take(5).cloned().collect(),
            },
        );
        if let Some(c) = top.first().filter(|c| c.score > 0.0) {
            self.journal(
                now,
                Some(id),
                JournalEvent::ServiceFault {
                    service: c.service.clone(),
                    metric: c.metric.clone(),
                    score: c.score,
                    evidence: c.evidence.clone(),
                },
            );
        }
        let mut services: BTreeSet<ServiceName> = inc.services.iter().cloned().collect();
        let top_service = top
            .first()
            .and_then(|c| ServiceName::parse(&c.service).ok());
        services.extend(top_service.clone());
        let mut context = IncidentContext {
            incident: id.clone(),
            anomalies,
            ranking: top.clone(),
            changes: self
                .changes
                .iter()
                .filter(|c| services.contains(&c.service))
                .cloned()
                .collect(),
            services: services.iter().map(|s| self.service_state(s)).collect(),
            known_services: self.known_services(),
            onset,
            limits: warden_analyst::PlanLimits {
                max_replicas: self.cfg.services.recovery.max_replicas,
                max_scale_factor: self.cfg.services.recovery.max_scale_factor,
            },
            logs: {
                let mut recent: Vec<String> = self
                    .logs
                    .iter()
                    .rev()
                    .filter(|(ts, svc, _)| {
                        services.contains(svc) && ts.millis() >= onset.millis() - 600_000
                    })
                    .take(MAX_CONTEXT_LOGS)
                    .map(|(ts, svc, line)| format!("{} {svc} {line}", ts.rfc3339()))
                    .collect();
                recent.reverse();
                recent
            },
        };
        context
            .changes
            .retain(|c| c.ts.millis() >= onset.millis() - 3_600_000);
        if let Some(inc) = self.incidents.get_mut(id) {
            inc.ranking = top.clone();
            inc.updated_at = now;
            if let Some(c) = top.first().filter(|c| c.score > 0.0) {
                let others = inc
                    .services
                    .iter()
                    .filter(|s| s.as_str() != c.service)
                    .count();
                inc.title = if others > 0 {
                    format!("{} on {} (symptoms on {others} more)", c.metric, c.service)
                } else {
                    format!("{} on {}", c.metric, c.service)
                };
            }
            inc.status = IncidentStatus::Diagnosed;
        }
        self.dirty.insert(id.clone());
        Some(context)
    }

    /// Journals an incident's analysis and plan, and gates the plan.
    async fn conclude(
        &mut self,
        id: &IncidentId,
        context: IncidentContext,
        name: &str,
        analysis: Result<Answered, warden_analyst::AnalystError>,
        answered: Result<Answered, warden_analyst::AnalystError>,
        now: Timestamp,
    ) {
        let kind = "anomaly_analysis";
        match analysis {
            Ok(a) => {
                let by = self.journal_answer(Some(id), now, name, kind, &a);
                self.journal(
                    now,
                    Some(id),
                    JournalEvent::Analysis {
                        analyst: by,
                        kind: kind.into(),
                        body: a.answer.body(),
                    },
                )
            }
            Err(e) => self.journal(
                now,
                Some(id),
                JournalEvent::IncidentEscalated {
                    reason: format!("analysis failed: {e}"),
                },
            ),
        }
        let kind = "recovery_plan";
        let mut name = name.to_string();
        if let Ok(a) = &answered {
            name = self.journal_answer(Some(id), now, &name, kind, a);
        }
        let plan = match answered.map(|a| a.answer) {
            Ok(Answer::RecoveryPlan(p)) => p,
            Ok(other) => {
                let reason = format!(
                    "analyst answered {} to a recovery_plan request",
                    other.body()
                );
                self.escalate(id, now, reason);
                return;
            }
            Err(e) => {
                self.escalate(id, now, format!("no recovery plan: {e}"));
                return;
            }
        };
        self.journal(
            now,
            Some(id),
            JournalEvent::Analysis {
                analyst: name.clone(),
                kind: kind.into(),
                body: serde_json::to_value(&plan).unwrap_or_default(),
            },
        );
        self.journal(
            now,
            Some(id),
            JournalEvent::PlanProposed {
                analyst: name,
                steps: plan.steps.clone(),
            },
        );
        let known = context.known_services;
        let mut actions = Vec::new();
        for step in &plan.steps {
            match step.parse() {
                Ok(a) if a.target().is_some_and(|t| !known.contains(t)) => {
                    let reason = format!("target {:?} is not a known service", step.target);
                    self.journal(
                        now,
                        Some(id),
                        JournalEvent::PlanStepRejected {
                            step: step.clone(),
                            reason,
                        },
                    );
                }
                Ok(a) => actions.push(a),
                Err(e) => {
                    self.journal(
                        now,
                        Some(id),
                        JournalEvent::PlanStepRejected {
                            step: step.clone(),
                            reason: e.to_string(),
                        },
                    );
                }
            }
        }
        if actions.is_empty() {
            self.escalate(id, now, format!("no executable action: {}", plan.rationale));
        }
        for a in actions {
            self.gate_and_run(id, a, false, now).await;
        }
    }

    /// Journals an answer's model exchanges and any fallback, and
    /// refreshes the analyst's counters; returns who answered.
    fn journal_answer(
        &mut self,
        id: Option<&IncidentId>,
        now: Timestamp,
        name: &str,
        kind: &str,
        a: &Answered,
    ) -> String {
        for x in &a.exchanges {
            self.journal(
                now,
                id,
                JournalEvent::ModelExchange {
                    analyst: name.to_string(),
                    kind: x.kind.clone(),
                    prompt: x.prompt.clone(),
                    answer: x.answer.clone(),
                    tokens_in: x.tokens_in,
                    tokens_out: x.tokens_out,
                    cached: x.cached,
                    latency_ms: x.latency_ms,
                    batch: x.batch,
                    error: x.error.clone(),
                },
            );
        }
        write_live(&self.live).analyst_metrics = self.analyst.metrics();
        match &a.fallback {
            Some(reason) => {
                self.journal(
                    now,
                    id,
                    JournalEvent::AnalystFallback {
                        analyst: name.to_string(),
                        kind: kind.to_string(),
                        reason: reason.clone(),
                    },
                );
                "builtin".to_string()
            }
            None => name.to_string(),
        }
    }

    fn escalate(&mut self, id: &IncidentId, now: Timestamp, reason: String) {
        self.journal(now, Some(id), JournalEvent::IncidentEscalated { reason });
        if let Some(inc) = self.incidents.get_mut(id) {
            inc.status = IncidentStatus::Escalated;
            inc.updated_at = now;
        }
        self.dirty.insert(id.clone());
    }

    fn set_status(&mut self, id: &IncidentId, status: IncidentStatus, now: Timestamp) {
        if let Some(inc) = self.incidents.get_mut(id) {
            inc.status = status;
            inc.updated_at = now;
            if status == IncidentStatus::Resolved {
                inc.resolved_at = Some(now);
            }
        }
        self.dirty.insert(id.clone());
    }

    fn current_replicas(&self, svc: &ServiceName) -> Option<u32> {
        let d = self.detectors.get(&(svc.clone(), Metric::Replicas))?;
        let (_, v) = d.robust.values().last()?;
        Some(v.round().max(0.0) as u32)
    }

    async fn gate_and_run(
        &mut self,
        id: &IncidentId,
        action: Action,
        approved: bool,
        now: Timestamp,
    ) {
        if let Some(reason) = self.silence_gate(id, action.target()).await {
            self.journal(
                now,
                Some(id),
                JournalEvent::GateDecision {
                    action: action.clone(),
                    gate: "alertmanager_silence".into(),
                    decision: warden_model::Decision::Deny { reason },
                },
            );
            self.set_status(id, IncidentStatus::Diagnosed, now);
            return;
        }
        let known = self.known_services();
        let replicas = action.target().and_then(|t| self.current_replicas(t));
        let verdict = self.gates.evaluate(
            &action,
            &GateContext {
                now,
                incident: Some(id),
                history: &self.history,
                current_replicas: replicas,
                known_services: &known,
                approved,
            },
        );
        for (gate, decision) in &verdict.decisions {
            self.journal(
                now,
                Some(id),
                JournalEvent::GateDecision {
                    action: action.clone(),
                    gate: gate.to_string(),
                    decision: decision.clone(),
                },
            );
        }
        match verdict.outcome {
            Outcome::Execute => self.execute(id, action, now).await,
            Outcome::Record { mode } => {
                self.journal(
                    now,
                    Some(id),
                    JournalEvent::ActionDryRun {
                        action,
                        mode: mode.as_str().into(),
                    },
                );
                self.set_status(id, IncidentStatus::Diagnosed, now);
            }
            Outcome::NeedsApproval => {
                let approval = Approval {
                    incident: id.clone(),
                    action: action.clone(),
                    state: ApprovalState::Pending,
                    by: None,
                    requested_at: now,
                    decided_at: None,
                };
                match self.store.request_approval(&approval) {
                    Ok(()) => {
                        self.journal(now, Some(id), JournalEvent::ApprovalRequested { action });
                        self.set_status(id, IncidentStatus::AwaitingApproval, now);
                    }
                    Err(e) => self.escalate(
                        id,
                        now,
                        format!("could not record the approval request: {e}"),
                    ),
                }
            }
            Outcome::Denied { .. } => self.set_status(id, IncidentStatus::Diagnosed, now),
        }
    }

    async fn execute(&mut self, id: &IncidentId, action: Action, now: Timestamp) {
        let executor = self.executor.clone();
        match executor.execute(&action, now).await {
            Ok(receipt) => {
                self.history.push(ActionRecord {
                    ts: now,
                    incident: Some(id.clone()),
                    action: action.clone(),
                });
                self.journal(
                    now,
                    Some(id),
                    JournalEvent::ActionExecuted {
                        receipt: receipt.clone(),
                    },
                );
                let Some(target) = action.target().cloned() else {
                    self.set_status(id, IncidentStatus::Diagnosed, now);
                    return;
                };
                let root_metric = self
                    .incidents
                    .get(id)
                    .and_then(|i| i.root_cause())
                    .and_then(|c| Metric::parse(&c.metric))
                    .unwrap_or(Metric::ErrorRate);
                let mut watch: Vec<(ServiceName, Metric)> = vec![
                    (target.clone(), root_metric),
                    (target.clone(), Metric::RequestLatencyP95),
                    (target.clone(), Metric::ErrorRate),
                ];
                for a in self
                    .active
                    .values()
                    .filter(|a| a.incident.as_ref() == Some(id))
                {
                    watch.push((a.anomaly.service.clone(), a.anomaly.metric));
                }
                let mut seen = BTreeSet::new();
                watch.retain(|w| seen.insert(w.clone()));
                let watch: Vec<(ServiceName, Metric, f64)> = watch
                    .into_iter()
                    .map(|(s, m)| {
                        let z = self
                            .detectors
                            .get(&(s.clone(), m))
                            .and_then(|d| d.robust.last())
                            .map_or(0.0, |l| l.z);
                        (s, m, z)
                    })
                    .collect();
                let window = self.cfg.services.recovery.verify_window.millis();
                let v = Verification::start(
                    id.clone(),
                    receipt,
                    now,
                    window,
                    (target, root_metric),
                    watch,
                );
                self.journal(
                    now,
                    Some(id),
                    JournalEvent::VerificationStarted {
                        action,
                        deadline: v.deadline,
                    },
                );
                self.verifications.push(v);
                self.set_status(id, IncidentStatus::Verifying, now);
            }
            Err(e) => {
                self.journal(
                    now,
                    Some(id),
                    JournalEvent::ActionFailed {
                        action,
                        error: e.to_string(),
                    },
                );
                self.escalate(id, now, format!("the action failed: {e}"));
            }
        }
    }

    /// The seed's dependency analysis, per service, whenever what warden
    /// knows of the service's dependencies changes (edges declared or
    /// observed, the risks it is part of, its description); at most once a
    /// minute and [`MAX_DEPENDENCY_ANALYSES`] services a run. Services
    /// without a risk or a description are left out: there is nothing to
    /// say about them.
    async fn analyse_dependencies(&mut self, now: Timestamp) {
        if self
            .deps_last_run
            .is_some_and(|t| now.millis() - t.millis() < 60_000)
        {
            return;
        }
        self.deps_last_run = Some(now);
        // Per service, indexed once: what it calls (with what is known of
        // each call), who calls it, the structure of its edges, its risks.
        #[derive(Default)]
        struct Facts {
            calls: Vec<String>,
            called_by: Vec<String>,
            structure: Vec<String>,
            risks: Vec<warden_analyst::RiskFact>,
        }
        let (nodes, edges, mut facts, descriptions) = {
            let live = read_live(&self.live);
            let nodes: Vec<String> = live.graph.nodes().map(|n| n.to_string()).collect();
            let mut facts: BTreeMap<String, Facts> = BTreeMap::new();
            for v in live.graph.edge_views() {
                let how = match (v.declared, v.observed) {
                    (true, true) => "declared and observed",
                    (true, false) => "declared, never observed",
                    (false, _) => "observed, not declared",
                };
                let (caller, callee) = (v.caller.to_string(), v.callee.to_string());
                // The structure, not the rates: a service is analysed
                // again when its dependencies change, not at every sample.
                let shape = format!("{caller}>{callee}:{}{}", v.declared, v.observed);
                let from = facts.entry(caller.clone()).or_default();
                from.calls.push(format!(
                    "{caller} -> {callee}: {how}; {:.2} calls/s, {:.2}% errors, p95 {:.0} ms",
                    v.call_rate,
                    100.0 * v.error_rate,
                    v.latency_ms_p95
                ));
                from.structure.push(shape.clone());
                let to = facts.entry(callee).or_default();
                to.called_by.push(caller);
                if v.caller != v.callee {
                    to.structure.push(shape);
                }
            }
            let descriptions: BTreeMap<String, String> = live
                .services
                .iter()
                .map(|(k, v)| (k.to_string(), v.description.clone()))
                .collect();
            let edges = warden_rca::risk::EdgeInfo::of(&live.graph);
            (nodes, edges, facts, descriptions)
        };
        if nodes.is_empty() {
            return;
        }
        for r in warden_rca::risk::analyze(&nodes, &edges, &Default::default()) {
            let fact = warden_analyst::RiskFact {
                kind: r.kind.as_str().to_string(),
                severity: r.severity.to_string(),
                detail: r.detail.clone(),
                suggestion: r.suggestion.clone(),
            };
            let involved: BTreeSet<&String> = r.services.iter().collect();
            for s in involved {
                facts.entry(s.clone()).or_default().risks.push(fact.clone());
            }
        }
        let mut contexts = Vec::new();
        for node in &nodes {
            let Ok(service) = ServiceName::parse(node) else {
                continue;
            };
            let f = facts.remove(node).unwrap_or_default();
            let description = descriptions.get(node).cloned().unwrap_or_default();
            if f.risks.is_empty() && description.is_empty() {
                continue;
            }
            let parts: Vec<&str> = f
                .structure
                .iter()
                .map(String::as_str)
                .chain(
                    f.risks
                        .iter()
                        .flat_map(|r| [r.kind.as_str(), r.detail.as_str()]),
                )
                .chain([description.as_str()])
                .collect();
            let sig = warden_model::hash::fnv1a64_parts(&parts);
            if self.deps_seen.get(&service) == Some(&sig) {
                continue;
            }
            contexts.push((
                sig,
                warden_analyst::DependencyContext {
                    service,
                    description,
                    calls: f.calls,
                    called_by: f.called_by,
                    risks: f.risks,
                },
            ));
            if contexts.len() >= MAX_DEPENDENCY_ANALYSES {
                break;
            }
        }
        if contexts.is_empty() {
            return;
        }
        let analyst = self.analyst_for(ModelUse::Dependencies);
        let name = analyst.name();
        let requests = contexts
            .iter()
            .map(|(_, c)| Request::DependencyAnalysis(c.clone()))
            .collect();
        let answers = ask_all(&analyst, requests).await;
        for ((sig, c), answered) in contexts.into_iter().zip(answers) {
            let Ok(a) = answered else { continue };
            let by = self.journal_answer(None, now, &name, "dependency_analysis", &a);
            let body = a.answer.body();
            self.journal(
                now,
                None,
                JournalEvent::Analysis {
                    analyst: by.clone(),
                    kind: "dependency_analysis".into(),
                    body: body.clone(),
                },
            );
            write_live(&self.live).dependency_analyses.insert(
                c.service.clone(),
                serde_json::json!({"analyst": by, "at": now, "analysis": body}),
            );
            self.deps_seen.insert(c.service, sig);
        }
    }

    async fn verify(&mut self, now: Timestamp) {
        let mut still = Vec::new();
        for mut v in std::mem::take(&mut self.verifications) {
            let detectors = &self.detectors;
            let outcome = v.check(now, |s, m| {
                detectors
                    .get(&(s.clone(), m))
                    .and_then(|d| d.robust.last())
                    .map(|l| SignalHealth {
                        z: l.z,
                        exceeds: l.exceeds,
                    })
            });
            let id = v.incident.clone();
            match outcome {
                VerifyOutcome::Pending => still.push(v),
                VerifyOutcome::Recovered(detail) => {
                    self.journal(
                        now,
                        Some(&id),
                        JournalEvent::VerificationResult {
                            recovered: true,
                            detail,
                        },
                    );
                    self.journal(
                        now,
                        Some(&id),
                        JournalEvent::IncidentResolved {
                            reason: format!("{} verified", v.action()),
                        },
                    );
                    self.set_status(&id, IncidentStatus::Resolved, now);
                    self.correlator.close(&id);
                }
                VerifyOutcome::NotRecovered(detail) | VerifyOutcome::Worse(detail) => {
                    self.journal(
                        now,
                        Some(&id),
                        JournalEvent::VerificationResult {
                            recovered: false,
                            detail: detail.clone(),
                        },
                    );
                    if let Some(undo) = v.receipt.undo.clone() {
                        let executor = self.executor.clone();
                        match executor.execute(&undo, now).await {
                            Ok(r) => {
                                self.history.push(ActionRecord {
                                    ts: now,
                                    incident: Some(id.clone()),
                                    action: undo.clone(),
                                });
                                self.journal(
                                    now,
                                    Some(&id),
                                    JournalEvent::ActionUndone {
                                        action: v.action().clone(),
                                        undo: r.action,
                                        reason: detail.clone(),
                                    },
                                );
                            }
                            Err(e) => self.journal(
                                now,
                                Some(&id),
                                JournalEvent::ActionFailed {
                                    action: undo,
                                    error: e.to_string(),
                                },
                            ),
                        }
                    }
                    self.escalate(&id, now, format!("{} did not help: {detail}", v.action()));
                }
            }
        }
        self.verifications = still;
    }

    fn quiet(&mut self, id: &IncidentId, now: Timestamp) {
        let verifying = self.verifications.iter().any(|v| &v.incident == id);
        let Some(inc) = self.incidents.get(id) else {
            return;
        };
        if verifying || inc.status.is_closed() {
            return;
        }
        let reason = format!(
            "no active signal for {}",
            self.cfg.correlation.resolve_timeout
        );
        self.journal(now, Some(id), JournalEvent::IncidentResolved { reason });
        self.set_status(id, IncidentStatus::Resolved, now);
    }

    async fn handle_approvals(&mut self, now: Timestamp) -> Result<(), StoreError> {
        for state in [ApprovalState::Approved, ApprovalState::Rejected] {
            for a in self.store.approvals(state)? {
                self.store.consume_approval(&a.incident)?;
                let approved = state == ApprovalState::Approved;
                let by = a.by.clone().unwrap_or_default();
                self.journal(
                    now,
                    Some(&a.incident),
                    JournalEvent::ApprovalDecided { approved, by },
                );
                let waiting = self
                    .incidents
                    .get(&a.incident)
                    .is_some_and(|i| i.status == IncidentStatus::AwaitingApproval);
                if !waiting {
                    continue;
                }
                if approved {
                    self.gate_and_run(&a.incident, a.action, true, now).await;
                } else {
                    self.set_status(&a.incident, IncidentStatus::Diagnosed, now);
                }
            }
        }
        Ok(())
    }

    /// Writes pending journal records and changed incidents; refreshes the
    /// live picture. Returns the records written.
    fn flush(&mut self) -> Result<Vec<JournalEntry>, StoreError> {
        let mut entries = std::mem::take(&mut self.pending);
        self.store.append(&mut entries)?;
        for id in std::mem::take(&mut self.dirty) {
            if let Some(inc) = self.incidents.get(&id) {
                self.store.upsert_incident(inc)?;
                if inc.status.is_closed() {
                    self.incidents.remove(&id);
                }
            }
        }
        let mut live = write_live(&self.live);
        live.anomalies = self.active.values().map(|a| a.anomaly.clone()).collect();
        Ok(entries)
    }

    /// Rank of `service` (1-based) in an incident's ranking.
    pub fn rank_of(incident: &Incident, service: &str) -> Option<usize> {
        incident
            .ranking
            .iter()
            .position(|c| c.service == service)
            .map(|i| i + 1)
    }
}
