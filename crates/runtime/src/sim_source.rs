//! The simulated mesh as a source: advances it and pushes what it emits
//! into the engine.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use warden_model::{Service, Timestamp};
use warden_sim::{Mesh, topology};

use crate::Engine;

/// Seconds between metric scrapes of the mesh.
pub const SCRAPE_S: i64 = 15;

/// A shared simulated mesh feeding an engine.
#[derive(Clone)]
pub struct SimSource {
    pub mesh: Arc<Mutex<Mesh>>,
    last_scrape_ms: Arc<AtomicI64>,
    /// When set, metrics are published here as Prometheus text (served at
    /// `GET /sim/metrics`) every second instead of fed to the engine.
    export: Option<warden_api::SharedLive>,
}

impl SimSource {
    /// A healthy mesh starting at `t0`.
    pub fn new(seed: u64, t0: Timestamp) -> Self {
        Self {
            mesh: Arc::new(Mutex::new(Mesh::new(seed, t0))),
            last_scrape_ms: Arc::new(AtomicI64::new(i64::MIN)),
            export: None,
        }
    }

    /// Publishes the mesh's metrics for scraping instead of feeding them.
    pub fn exporting_to(mut self, live: warden_api::SharedLive) -> Self {
        self.export = Some(live);
        self
    }

    /// Locks the mesh.
    pub fn lock(&self) -> std::sync::MutexGuard<'_, Mesh> {
        self.mesh.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The mesh's services as catalog entries (they auto-register).
    pub fn services(t0: Timestamp) -> Vec<Service> {
        topology()
            .into_iter()
            .map(|(name, description, endpoints, dependencies)| Service {
                name,
                description,
                endpoints,
                dependencies,
                source: "simulator".into(),
                registered_at: t0,
            })
            .collect()
    }

    /// Advances the mesh to `t` and feeds spans, changes and (on scrape
    /// boundaries) metric samples to `engine`.
    pub fn pump(&self, t: Timestamp, engine: &mut Engine) {
        let mut m = self.lock();
        m.advance_to(t);
        let spans = m.drain_spans();
        let changes = m.drain_changes();
        let logs: Vec<_> = m
            .drain_logs()
            .into_iter()
            .map(|l| (l.ts, l.service, l.level, l.message))
            .collect();
        if let Some(live) = &self.export {
            let text = exposition(&m.scrape());
            drop(m);
            warden_api::write_live(live).exposition = Some(text);
            engine.ingest_changes(changes);
            engine.ingest_logs(&logs);
            engine.ingest_spans(&spans, t);
            return;
        }
        // Scrape on the 15 s grid; a late tick scrapes once on arrival.
        let due = t.millis().div_euclid(SCRAPE_S * 1000) * SCRAPE_S * 1000;
        let samples = if due > self.last_scrape_ms.load(Ordering::Relaxed) {
            self.last_scrape_ms.store(due, Ordering::Relaxed);
            m.scrape()
        } else {
            Vec::new()
        };
        drop(m);
        engine.ingest_changes(changes);
        engine.ingest_logs(&logs);
        engine.ingest_spans(&spans, t);
        if !samples.is_empty() {
            engine.ingest_samples(&samples);
        }
    }
}

/// Samples in Prometheus' text exposition format (0.0.4): one gauge family
/// per metric, the service as a label, no timestamps (the scraper's clock).
fn exposition(samples: &[warden_model::Sample]) -> String {
    let mut sorted: Vec<&warden_model::Sample> = samples.iter().collect();
    sorted.sort_by(|a, b| (a.metric.as_str(), &a.service).cmp(&(b.metric.as_str(), &b.service)));
    let mut out = String::new();
    let mut last = "";
    for s in sorted {
        let name = s.metric.as_str();
        if name != last {
            out.push_str(&format!("# TYPE {name} gauge\n"));
            last = name;
        }
        out.push_str(&format!(
            "{name}{{service=\"{}\"}} {}\n",
            s.service, s.value
        ));
    }
    out
}
