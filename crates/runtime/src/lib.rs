//! The runtime: wires sources, the governance loop, the store and the API.
//!
//! [`Engine`] is the loop. It is driven from outside — samples, spans,
//! changes and registrations are pushed in, and `tick(now)` runs one
//! iteration — so the same engine runs on the wall clock (`warden serve`)
//! and on simulated time (`warden demo`, the end-to-end tests), and the
//! same input gives the same journal.
//!
//! One iteration: active anomalies are correlated into incidents; incidents
//! whose group wait is over are diagnosed (root-cause ranking, the
//! analyst's analysis and plan); each planned action passes the gates and
//! is executed, recorded (dry-run) or held for approval; executed actions
//! are verified and undone when the service does not recover. Every step is
//! a journal record.

mod capacity;
mod demo;
mod engine;
mod ingest_bench;
mod serve;
mod server;
mod sim_exec;
mod sim_source;

pub use demo::{DemoError, DemoOptions, DemoSummary, SummaryAction, print_entries, run_demo};
pub use engine::{Engine, EngineParts};
pub use ingest_bench::{IngestBench, IngestReport, run_ingest_bench};
pub use serve::{ServeOptions, run_serve, wall_now};
pub use server::{ServerHandle, admin_token, api_state, start_api, start_otlp};
pub use sim_exec::SimExecutor;
pub use sim_source::SimSource;

use warden_model::Timestamp;

/// Hands what arrived over HTTP (tracing-backend edges, OTLP spans,
/// remote-write samples oldest first, Alertmanager alerts) to the loop;
/// returns how many samples it handed over.
pub(crate) fn drain_inbox(
    live: &warden_api::SharedLive,
    engine: &mut Engine,
    now: Timestamp,
) -> usize {
    let (samples, alerts, edges, spans) = {
        let mut l = warden_api::write_live(live);
        (
            std::mem::take(&mut l.inbox),
            std::mem::take(&mut l.alert_inbox),
            std::mem::take(&mut l.edge_inbox),
            std::mem::take(&mut l.span_inbox),
        )
    };
    if !edges.is_empty() {
        engine.ingest_dependencies(&edges, now);
    }
    if !spans.is_empty() {
        engine.ingest_spans(&spans, now);
    }
    if !samples.is_empty() {
        engine.ingest_samples(&samples);
    }
    if !alerts.is_empty() {
        engine.ingest_alerts(&alerts, now);
    }
    samples.len()
}
