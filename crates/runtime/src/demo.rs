//! `warden demo`: the simulated mesh, fault injection, the loop and the API
//! in one process, on a simulated clock.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};

use serde::Serialize;
use warden_analyst::Analyst;
use warden_api::{Live, write_live};
use warden_config::{AllowRule, Config, Mode};
use warden_model::{ActionKind, Incident, JournalEntry, JournalEvent, Timestamp};
use warden_sim::{MeshSnapshot, Scenario};
use warden_store::{JournalQuery, SqliteStore, Store, StoreError};

use crate::{Engine, EngineParts, SimExecutor, SimSource, api_state, start_api};

/// How to run the demo.
#[derive(Clone)]
pub struct DemoOptions {
    /// Inject this scenario; None rotates through all six.
    pub scenario: Option<Scenario>,
    /// Stop after this much simulated time; None runs until interrupted.
    pub duration_ms: Option<i64>,
    /// Simulated seconds per wall second; 0 runs as fast as possible.
    pub speed: f64,
    pub mode: Mode,
    pub seed: u64,
    /// Simulated time at which the demo proper starts.
    pub start: Timestamp,
    /// Simulated history before `start` that trains the baselines.
    pub warmup_ms: i64,
    /// When the fault is injected, after `start`.
    pub fault_after_ms: i64,
    /// Serve the API here (None: no API).
    pub listen: Option<SocketAddr>,
    pub data_dir: PathBuf,
    /// Base configuration; the demo sets the mode and allows every action
    /// on the simulated services.
    pub config: Config,
    pub admin_token: Option<String>,
    /// The analyst; the built-in one when None.
    pub analyst: Option<Arc<dyn Analyst>>,
}

impl DemoOptions {
    /// Defaults for a scenario run starting at `start`.
    pub fn new(data_dir: PathBuf, start: Timestamp) -> Self {
        Self {
            scenario: None,
            duration_ms: None,
            speed: 1.0,
            mode: Mode::DryRun,
            seed: 1,
            start,
            warmup_ms: 3_600_000,
            fault_after_ms: 60_000,
            listen: None,
            data_dir,
            config: Config::default(),
            admin_token: None,
            analyst: None,
        }
    }
}

/// One action of the summary.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SummaryAction {
    pub action: String,
    pub target: String,
    pub params: serde_json::Map<String, serde_json::Value>,
    /// `executed`, `dry_run`, `awaiting_approval` or `undone`.
    pub status: String,
}

/// The demo's result for one scenario (the JSON shape plus context).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DemoSummary {
    pub scenario: String,
    pub target: String,
    pub mode: String,
    pub incident: Option<String>,
    pub detected: bool,
    pub root_cause: Option<String>,
    pub root_cause_rank: Option<usize>,
    pub actions: Vec<SummaryAction>,
    pub recovered: bool,
    pub time_to_detect_s: Option<f64>,
    pub time_to_recover_s: Option<f64>,
    /// Ground truth right after the fault was injected, and at the end.
    #[serde(skip)]
    pub mesh_after_injection: Option<MeshSnapshot>,
    #[serde(skip)]
    pub mesh_at_end: Option<MeshSnapshot>,
    /// Whether the fault was still active in the mesh at the end.
    pub fault_active_at_end: bool,
}

/// Why the demo could not run.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("simulator: {0}")]
    Sim(String),
    #[error("config: {0}")]
    Config(String),
}

/// A line of the terminal timeline for `e`, relative to `start`; None for
/// records not worth a line. Consecutive gate decisions are joined by the
/// caller.
pub fn timeline_line(e: &JournalEntry, start: Timestamp) -> String {
    let rel = e.ts.secs_since(start);
    let inc = e
        .incident
        .as_ref()
        .map(|i| format!("{i} "))
        .unwrap_or_default();
    format!("[{rel:+6.0}s] {inc}{}", e.event.summary())
}

/// Prints records, folding runs of gate decisions for the same action into
/// one line.
pub fn print_entries(entries: &[JournalEntry], start: Timestamp, out: &mut dyn FnMut(&str)) {
    let mut i = 0;
    while i < entries.len() {
        if let JournalEvent::GateDecision { action, .. } = &entries[i].event {
            let mut parts = Vec::new();
            let mut j = i;
            while let Some(JournalEvent::GateDecision {
                action: a,
                gate,
                decision,
            }) = entries.get(j).map(|e| &e.event)
            {
                if a != action {
                    break;
                }
                parts.push(match decision {
                    warden_model::Decision::Allow => format!("{gate} ✓"),
                    warden_model::Decision::Deny { reason } => format!("{gate} ✗ ({reason})"),
                    warden_model::Decision::NeedsApproval { reason } => {
                        format!("{gate} ? ({reason})")
                    }
                });
                j += 1;
            }
            let e = &entries[i];
            let inc = e
                .incident
                .as_ref()
                .map(|x| format!("{x} "))
                .unwrap_or_default();
            out(&format!(
                "[{:+6.0}s] {inc}gates for {action}: {}",
                e.ts.secs_since(start),
                parts.join(", ")
            ));
            i = j;
            continue;
        }
        if matches!(
            entries[i].event,
            JournalEvent::MetricAnomaly { .. } | JournalEvent::SignalGrouped { .. }
        ) {
            // Fold a burst of anomalies for one incident into a few lines.
            let inc = entries[i].incident.clone();
            let mut anomalies = Vec::new();
            let mut j = i;
            while let Some(e) = entries.get(j).filter(|e| e.incident == inc) {
                match &e.event {
                    JournalEvent::MetricAnomaly { anomaly } => anomalies.push(anomaly),
                    JournalEvent::SignalGrouped { .. } => {}
                    _ => break,
                }
                j += 1;
            }
            anomalies.sort_by(|a, b| {
                b.z.abs()
                    .total_cmp(&a.z.abs())
                    .then(a.service.cmp(&b.service))
            });
            let prefix = format!(
                "[{:+6.0}s] {}",
                entries[i].ts.secs_since(start),
                inc.map(|x| format!("{x} ")).unwrap_or_default()
            );
            for a in anomalies.iter().take(3) {
                out(&format!("{prefix}anomaly: {}", a.reason));
            }
            if anomalies.len() > 3 {
                let services: std::collections::BTreeSet<_> =
                    anomalies[3..].iter().map(|a| a.service.as_str()).collect();
                out(&format!(
                    "{prefix}…and {} more anomalies on {}",
                    anomalies.len() - 3,
                    services.into_iter().collect::<Vec<_>>().join(", ")
                ));
            }
            i = j;
            continue;
        }
        out(&timeline_line(&entries[i], start));
        i += 1;
    }
}

/// Runs the demo; `out` receives the timeline lines.
pub async fn run_demo(
    opts: DemoOptions,
    out: &mut (dyn FnMut(&str) + Send),
) -> Result<Option<DemoSummary>, DemoError> {
    let mut config = opts.config.clone();
    config.services.recovery.mode = opts.mode;
    // The demo compresses time: capacity is re-forecast every 5 simulated
    // minutes on a day of history kept at the scrape interval, unless the
    // configuration says otherwise.
    let defaults = warden_config::CapacityConfig::default();
    if config.capacity.interval == defaults.interval {
        config.capacity.interval = warden_config::Duration::from_secs(300);
    }
    if config.capacity.history == defaults.history {
        config.capacity.history = warden_config::Duration::from_secs(86_400);
    }
    if config.services.recovery.allow.is_empty() {
        config.services.recovery.allow = vec![AllowRule {
            service: "*".into(),
            actions: vec![
                ActionKind::ScaleUp,
                ActionKind::ScaleDown,
                ActionKind::Restart,
                ActionKind::ConfigUpdate,
                ActionKind::Rollback,
            ],
        }];
    }
    let config = Arc::new(config);
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open_dir(&opts.data_dir)?);
    let live = Arc::new(RwLock::new(Live::default()));
    let t0 = opts.start.plus_ms(-opts.warmup_ms);
    let sim = SimSource::new(opts.seed, t0);
    let clock = Arc::new(AtomicI64::new(t0.millis()));
    let mut engine = Engine::new(EngineParts {
        config: config.clone(),
        store: store.clone(),
        live: live.clone(),
        analyst: match opts.analyst.clone() {
            Some(a) => a,
            None => warden_llm::from_config(&config.analyst)
                .map_err(|e| DemoError::Config(e.to_string()))?,
        },
        executor: Arc::new(SimExecutor::new(sim.mesh.clone())),
    })?;
    let server = match opts.listen {
        Some(addr) => {
            let state = api_state(
                config.clone(),
                store.clone(),
                live.clone(),
                opts.admin_token.as_deref(),
                clock.clone(),
            );
            let h = start_api(state.clone(), addr).await?;
            out(&format!(
                "API and dashboard on http://{}/ (mode {})",
                h.addr,
                opts.mode.as_str()
            ));
            let receivers = crate::start_otlp(state).await?;
            for (proto, r) in &receivers {
                out(&format!("{proto} receiver on {}", r.addr));
            }
            Some((h, receivers))
        }
        None => None,
    };
    for svc in SimSource::services(t0) {
        let written = engine.register(svc)?;
        print_entries(&written, opts.start, out);
    }
    out(&format!(
        "warming up baselines on {} of simulated history…",
        warden_model::time::format_duration_ms(opts.warmup_ms)
    ));
    let interval = config.services.monitoring.interval.millis().max(1000);
    let mut next_tick = t0.plus_ms(interval);
    let mut t = t0;
    // Warm-up: as fast as possible, records journaled but not printed.
    while t < opts.start {
        t = t.plus_secs(1);
        clock.store(t.millis(), Ordering::Relaxed);
        sim.pump(t, &mut engine);
        crate::drain_inbox(&live, &mut engine, t);
        if t >= next_tick {
            engine.tick(t).await?;
            next_tick = next_tick.plus_ms(interval);
        }
    }
    write_live(&live).ready = true;
    write_live(&live).sources.insert("simulator".into(), true);
    out("baselines ready; the mesh is live");

    let end = opts.duration_ms.map(|d| opts.start.plus_ms(d));
    let wall_start = tokio::time::Instant::now();
    let mut fault_at = opts.start.plus_ms(opts.fault_after_ms);
    let mut rotation = 0usize;
    let mut injected: Option<(Scenario, warden_model::ServiceName, Timestamp)> = None;
    let mut mesh_after_injection = None;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        if end.is_some_and(|e| t >= e) {
            break;
        }
        t = t.plus_secs(1);
        clock.store(t.millis(), Ordering::Relaxed);
        if t >= fault_at {
            let scenario = opts
                .scenario
                .unwrap_or_else(|| Scenario::ALL[(rotation + opts.seed as usize) % 6]);
            let free = sim.lock().fault().is_none();
            if free && (opts.scenario.is_none() || injected.is_none()) {
                let mut m = sim.lock();
                m.advance_to(t);
                let target = scenario
                    .pick_target(opts.seed.wrapping_add(rotation as u64), &m.service_names());
                m.inject(scenario, &target)
                    .map_err(|e| DemoError::Sim(e.to_string()))?;
                mesh_after_injection = Some(m.snapshot());
                drop(m);
                let detail = format!("the mesh clears it with {}", scenario.fix().as_str());
                let written = engine.note(
                    t,
                    JournalEvent::FaultInjected {
                        scenario: scenario.as_str().into(),
                        target: target.clone(),
                        detail,
                    },
                )?;
                print_entries(&written, opts.start, out);
                injected = Some((scenario, target, t));
                rotation += 1;
            }
            fault_at = t.plus_ms(15 * 60 * 1000);
        }
        sim.pump(t, &mut engine);
        crate::drain_inbox(&live, &mut engine, t);
        if t >= next_tick {
            let written = engine.tick(t).await?;
            print_entries(&written, opts.start, out);
            next_tick = next_tick.plus_ms(interval);
        }
        if opts.speed > 0.0 {
            let due = wall_start
                + std::time::Duration::from_secs_f64(t.secs_since(opts.start) / opts.speed);
            tokio::select! {
                _ = tokio::time::sleep_until(due) => {}
                _ = &mut ctrl_c => { out("interrupted"); break; }
            }
        }
    }
    if let Some((h, receivers)) = server {
        for (_, r) in receivers {
            r.stop().await;
        }
        h.stop().await;
    }
    let Some((scenario, target, fault_ts)) = injected.filter(|_| opts.scenario.is_some()) else {
        return Ok(None);
    };
    let m = sim.lock();
    let mut summary = summarize(store.as_ref(), scenario, &target, fault_ts, opts.mode)?;
    summary.fault_active_at_end = m.fault().is_some();
    summary.recovered &= !summary.fault_active_at_end;
    summary.mesh_after_injection = mesh_after_injection;
    summary.mesh_at_end = Some(m.snapshot());
    Ok(Some(summary))
}

fn summarize(
    store: &dyn Store,
    scenario: Scenario,
    target: &warden_model::ServiceName,
    fault_ts: Timestamp,
    mode: Mode,
) -> Result<DemoSummary, StoreError> {
    let mut incidents: Vec<Incident> = store
        .incidents(1000)?
        .into_iter()
        .filter(|i| i.opened_at >= fault_ts)
        .collect();
    incidents.sort_by_key(|i| (i.opened_at, i.id.clone()));
    let chosen = incidents
        .iter()
        .find(|i| {
            i.ranking.iter().any(|c| c.service == target.as_str()) || i.services.contains(target)
        })
        .or(incidents.first())
        .cloned();
    let mut s = DemoSummary {
        scenario: scenario.as_str().into(),
        target: target.to_string(),
        mode: mode.as_str().into(),
        incident: None,
        detected: false,
        root_cause: None,
        root_cause_rank: None,
        actions: vec![],
        recovered: false,
        time_to_detect_s: None,
        time_to_recover_s: None,
        mesh_after_injection: None,
        mesh_at_end: None,
        fault_active_at_end: false,
    };
    let Some(inc) = chosen else { return Ok(s) };
    s.incident = Some(inc.id.to_string());
    s.detected = true;
    s.root_cause = inc.root_cause().map(|c| c.service.clone());
    s.root_cause_rank = Engine::rank_of(&inc, target.as_str());
    let journal = store.journal(&JournalQuery {
        incident: Some(inc.id.clone()),
        limit: 10_000,
        ..Default::default()
    })?;
    for e in &journal {
        match &e.event {
            JournalEvent::MetricAnomaly { anomaly } => {
                let d = anomaly.ts.secs_since(fault_ts);
                s.time_to_detect_s = Some(s.time_to_detect_s.map_or(d, |x: f64| x.min(d)));
            }
            JournalEvent::ActionExecuted { receipt } => {
                s.actions.push(summary_action(&receipt.action, "executed"))
            }
            JournalEvent::ActionDryRun { action, .. } => {
                s.actions.push(summary_action(action, "dry_run"))
            }
            JournalEvent::ApprovalRequested { action } => {
                s.actions.push(summary_action(action, "awaiting_approval"))
            }
            JournalEvent::ActionUndone { undo, .. } => {
                s.actions.push(summary_action(undo, "undone"))
            }
            JournalEvent::VerificationResult {
                recovered: true, ..
            } if !s.recovered => {
                s.recovered = true;
                s.time_to_recover_s = Some(e.ts.secs_since(fault_ts));
            }
            _ => {}
        }
    }
    Ok(s)
}

fn summary_action(a: &warden_model::Action, status: &str) -> SummaryAction {
    let step = a.to_step();
    SummaryAction {
        action: step.action,
        target: step.target,
        params: step.params,
        status: status.into(),
    }
}
