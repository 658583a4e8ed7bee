//! Core types shared by every warden crate: service names, metrics, samples,
//! the dependency graph, anomalies, incidents, root-cause candidates, the
//! closed `Action` enum, gate decisions and journal events.
//!
//! This crate owns the vocabulary and the parsing of untrusted values into it
//! ("parse, don't validate"). It must not do IO, read a clock or hold state
//! beyond plain values.

pub mod action;
pub mod capacity;
pub mod change;
pub mod graph;
pub mod hash;
pub mod incident;
pub mod journal;
pub mod metric;
pub mod name;
pub mod rng;
pub mod service;
pub mod span;
pub mod time;

pub use action::{Action, ActionKind, Decision, PlanStep, Receipt};
pub use capacity::{CapacityPlan, DailyPredictions, ReplicaPlan, ResourceOutlook};
pub use change::{Change, ChangeKind};
pub use graph::{EdgeStats, Graph};
pub use incident::{AlertSignal, Anomaly, Candidate, Incident, IncidentId, IncidentStatus};
pub use journal::{JournalEntry, JournalEvent};
pub use metric::{Metric, Sample};
pub use name::{NameError, ServiceName};
pub use rng::Rng;
pub use service::{Registration, RegistrationError, Service};
pub use span::{Call, Span, SpanJoiner};
pub use time::Timestamp;
