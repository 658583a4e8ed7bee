//! `warden serve`: the loop on the wall clock, from a config file.
//!
//! Sources in this release: services declared in config, the registration
//! API, and optionally the simulated mesh (`simulator.enabled`). Executors:
//! the simulated mesh when it is enabled; otherwise none, so executed
//! actions fail with a clear reason (the Kubernetes executor comes with its
//! own integration).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};

use warden_api::{Live, read_live, write_live};
use warden_config::Config;
use warden_model::{Action, Receipt, Service, Timestamp};
use warden_remediate::{BoxFuture, ExecError, Executor};
use warden_store::{SqliteStore, Store};

use crate::{
    DemoError, Engine, EngineParts, SimExecutor, SimSource, api_state, print_entries, start_api,
};

/// How to run `serve`.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub config: Config,
    pub admin_token: Option<String>,
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
}

/// Wall-clock time.
pub fn wall_now() -> Timestamp {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    Timestamp(ms)
}

/// The executor when no target system is configured: refuses, saying why.
pub(crate) struct NoExecutor;

impl Executor for NoExecutor {
    fn name(&self) -> &str {
        "none"
    }
    fn execute<'a>(
        &'a self,
        action: &'a Action,
        _: Timestamp,
    ) -> BoxFuture<'a, Result<Receipt, ExecError>> {
        Box::pin(async move {
            Err(ExecError(format!(
                "no executor is configured for {action}: enable the simulator or a cluster integration"
            )))
        })
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return std::future::pending().await,
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Runs until SIGINT or SIGTERM; `out` receives the timeline.
pub async fn run_serve(
    opts: ServeOptions,
    out: &mut (dyn FnMut(&str) + Send),
) -> Result<(), DemoError> {
    let config = Arc::new(opts.config.clone());
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open_dir(&opts.data_dir)?);
    let live = Arc::new(RwLock::new(Live::default()));
    let now = wall_now();
    let sim = config.simulator.enabled.then(|| {
        let source = SimSource::new(config.simulator.seed, now);
        if config.simulator.export_metrics {
            source.exporting_to(live.clone())
        } else {
            source
        }
    });
    // A fault to inject, and when (scenario names are checked up front).
    let mut fault = match (&sim, &config.simulator.fault) {
        (Some(_), Some(name)) => {
            let scenario = warden_sim::Scenario::parse(name)
                .map_err(|e| DemoError::Sim(format!("simulator.fault: {e}")))?;
            let after = config.simulator.fault_after.map_or(300_000, |d| d.millis());
            Some((scenario, now.plus_ms(after)))
        }
        _ => None,
    };
    let executor: Arc<dyn Executor> = match &sim {
        Some(s) => Arc::new(SimExecutor::new(s.mesh.clone())),
        None => Arc::new(NoExecutor),
    };
    let mut engine = Engine::new(EngineParts {
        config: config.clone(),
        store: store.clone(),
        live: live.clone(),
        analyst: warden_llm::from_config(&config.analyst)
            .map_err(|e| DemoError::Config(e.to_string()))?,
        executor,
    })?;
    let mut declared: Vec<Service> = config
        .static_services
        .iter()
        .map(|s| Service {
            name: s.name.clone(),
            description: s.description.clone(),
            endpoints: s.endpoints.clone(),
            dependencies: s.dependencies.clone(),
            source: "config".into(),
            registered_at: now,
        })
        .collect();
    if sim.is_some() {
        declared.extend(SimSource::services(now));
    }
    for svc in declared {
        let same = read_live(&live).services.get(&svc.name).is_some_and(|old| {
            old.description == svc.description
                && old.endpoints == svc.endpoints
                && old.dependencies == svc.dependencies
        });
        if !same {
            let written = engine.register(svc)?;
            print_entries(&written, now, out);
        }
    }
    let clock = Arc::new(AtomicI64::new(now.millis()));
    let state = api_state(
        config.clone(),
        store.clone(),
        live.clone(),
        opts.admin_token.as_deref(),
        clock.clone(),
    );
    let server = start_api(state.clone(), opts.listen).await?;
    let receivers = crate::start_otlp(state).await?;
    {
        let mut l = write_live(&live);
        l.sources.insert("registration".into(), true);
        l.sources.insert("config".into(), true);
        if sim.is_some() {
            l.sources.insert("simulator".into(), true);
        }
        l.ready = true;
    }
    out(&format!(
        "listening on http://{}/ (mode {})",
        server.addr,
        config.services.recovery.mode.as_str()
    ));
    for (proto, r) in &receivers {
        out(&format!("{proto} receiver on {}", r.addr));
    }
    // The Prometheus pull runs in its own task: its results join the same
    // inbox as remote write, and its health shows at /readyz.
    let puller = config.integrations.prometheus.enabled.then(|| {
        let pc = config.integrations.prometheus.clone();
        let max_pending = config.integrations.remote_write.max_pending;
        let live = live.clone();
        write_live(&live).sources.insert("prometheus".into(), false);
        tokio::spawn(async move {
            let pull = warden_sources::PromPull::new(pc.clone());
            let mut every = tokio::time::interval(std::time::Duration::from_millis(
                pc.interval.millis().max(1000) as u64,
            ));
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                every.tick().await;
                let report = pull.pull(wall_now()).await;
                for e in &report.errors {
                    tracing::warn!("prometheus: {e}");
                }
                let mut l = write_live(&live);
                l.sources
                    .insert("prometheus".into(), report.errors.is_empty());
                if report.dropped > 0 {
                    *l.dropped.entry("prometheus_unlabelled".into()).or_default() += report.dropped;
                }
                warden_api::ingest::enqueue(&mut l, "prometheus", report.samples, max_pending);
            }
        })
    });
    let jaeger = config.integrations.jaeger.enabled.then(|| {
        let jc = config.integrations.jaeger.clone();
        let live = live.clone();
        write_live(&live).sources.insert("jaeger".into(), false);
        tokio::spawn(async move {
            let pull = warden_sources::JaegerPull::new(jc.clone());
            let mut every = tokio::time::interval(std::time::Duration::from_millis(
                jc.interval.millis().max(1000) as u64,
            ));
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                every.tick().await;
                let result = pull.pull(wall_now()).await;
                let mut l = write_live(&live);
                match result {
                    Ok((edges, skipped)) => {
                        l.sources.insert("jaeger".into(), true);
                        if skipped > 0 {
                            *l.dropped.entry("jaeger_bad_link".into()).or_default() += skipped;
                        }
                        *l.ingested.entry("jaeger".into()).or_default() += edges.len() as u64;
                        l.edge_inbox.extend(edges);
                    }
                    Err(e) => {
                        tracing::warn!("jaeger: {e}");
                        l.sources.insert("jaeger".into(), false);
                    }
                }
            }
        })
    });
    let interval = config.services.monitoring.interval.millis().max(1000);
    let mut next_tick = now.plus_ms(interval);
    let mut second = tokio::time::interval(std::time::Duration::from_secs(1));
    second.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let stop = shutdown_signal();
    tokio::pin!(stop);
    // Source health as last printed: every change is a line of the log.
    let mut health: std::collections::BTreeMap<String, bool> = Default::default();
    loop {
        tokio::select! {
            _ = second.tick() => {}
            _ = &mut stop => break,
        }
        // Whole seconds, so that scrapes land on their boundaries.
        let t = Timestamp(wall_now().millis() / 1000 * 1000);
        clock.store(t.millis(), Ordering::Relaxed);
        if let Some(s) = &sim {
            if let Some((scenario, at)) = fault
                && t >= at
            {
                fault = None;
                let mut m = s.lock();
                m.advance_to(t);
                let target = scenario.pick_target(config.simulator.seed, &m.service_names());
                let injected = m.inject(scenario, &target);
                drop(m);
                match injected {
                    Ok(_) => {
                        let written = engine.note(
                            t,
                            warden_model::JournalEvent::FaultInjected {
                                scenario: scenario.as_str().into(),
                                target,
                                detail: "scheduled by simulator.fault".into(),
                            },
                        )?;
                        print_entries(&written, now, out);
                    }
                    Err(e) => out(&format!("simulator.fault: {e}")),
                }
            }
            s.pump(t, &mut engine);
        }
        crate::drain_inbox(&live, &mut engine, t);
        let now_health = read_live(&live).sources.clone();
        if now_health != health {
            for (source, ok) in &now_health {
                if health.get(source) != Some(ok) {
                    out(&format!(
                        "source {source}: {}",
                        if *ok {
                            "healthy"
                        } else {
                            "unhealthy (see /readyz and the log)"
                        }
                    ));
                }
            }
            health = now_health;
        }
        if t >= next_tick {
            let written = engine.tick(t).await?;
            print_entries(&written, now, out);
            next_tick = t.plus_ms(interval);
        }
    }
    out("shutting down");
    for p in [puller, jaeger].into_iter().flatten() {
        p.abort();
    }
    for (_, r) in receivers {
        r.stop().await;
    }
    server.stop().await;
    Ok(())
}
