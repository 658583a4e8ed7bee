//! Persistent state: the service catalog, incidents, the audit journal and
//! approvals.
//!
//! [`Store`] is the interface; [`SqliteStore`] is the embedded default (one
//! file under the data directory, WAL, `synchronous=FULL`, so a record is on
//! disk before its write returns and survives a crash or SIGKILL). Every
//! implementation must pass [`conformance::run`].
//!
//! The schema does not assume a single writer per table: journal sequence
//! numbers come from the database, and incident updates are whole-row
//! upserts keyed by the stable incident id.

pub mod conformance;
mod sqlite;

use serde::{Deserialize, Serialize};
use warden_model::{Action, Incident, IncidentId, JournalEntry, Service, ServiceName, Timestamp};

pub use sqlite::SqliteStore;

/// A storage failure, with what was being done.
#[derive(Debug, thiserror::Error)]
#[error("store: {context}: {message}")]
pub struct StoreError {
    pub context: String,
    pub message: String,
}

impl StoreError {
    pub(crate) fn new(context: impl Into<String>, e: impl std::fmt::Display) -> Self {
        Self {
            context: context.into(),
            message: e.to_string(),
        }
    }
}

/// Result of a store call.
pub type Result<T> = std::result::Result<T, StoreError>;

/// Which journal records to read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JournalQuery {
    /// Only this incident's records.
    pub incident: Option<IncidentId>,
    /// Only records after this sequence number.
    pub after_seq: Option<u64>,
    /// Only records of these types (`metric_anomaly`, …); empty: all.
    pub kinds: Vec<String>,
    /// At most this many, newest last. 0 means the default (1000).
    pub limit: usize,
}

/// The state of an approval request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalState {
    Pending,
    Approved,
    Rejected,
}

impl ApprovalState {
    fn as_str(self) -> &'static str {
        match self {
            ApprovalState::Pending => "pending",
            ApprovalState::Approved => "approved",
            ApprovalState::Rejected => "rejected",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(ApprovalState::Pending),
            "approved" => Some(ApprovalState::Approved),
            "rejected" => Some(ApprovalState::Rejected),
            _ => None,
        }
    }
}

/// An action waiting for (or given) an operator's decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Approval {
    pub incident: IncidentId,
    pub action: Action,
    pub state: ApprovalState,
    /// Who decided (token name), once decided.
    pub by: Option<String>,
    pub requested_at: Timestamp,
    pub decided_at: Option<Timestamp>,
}

/// Why a decision could not be recorded.
#[derive(Debug, thiserror::Error)]
pub enum DecideError {
    #[error("incident {0} has no pending approval")]
    NotPending(IncidentId),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Persistent state shared by the loop, the API and the CLI.
pub trait Store: Send + Sync {
    /// Adds or replaces a catalog entry.
    fn upsert_service(&self, s: &Service) -> Result<()>;
    /// All catalog entries, by name.
    fn services(&self) -> Result<Vec<Service>>;
    /// One catalog entry.
    fn service(&self, name: &ServiceName) -> Result<Option<Service>>;

    /// Adds or replaces an incident.
    fn upsert_incident(&self, i: &Incident) -> Result<()>;
    /// Incidents, newest first, at most `limit`.
    fn incidents(&self, limit: usize) -> Result<Vec<Incident>>;
    /// One incident.
    fn incident(&self, id: &IncidentId) -> Result<Option<Incident>>;

    /// Appends records atomically and sets their `seq`.
    fn append(&self, entries: &mut [JournalEntry]) -> Result<()>;
    /// Reads records in sequence order.
    fn journal(&self, q: &JournalQuery) -> Result<Vec<JournalEntry>>;

    /// Records a pending approval (replacing an older one for the incident).
    fn request_approval(&self, a: &Approval) -> Result<()>;
    /// Approves or rejects the pending approval of `incident`.
    fn decide_approval(
        &self,
        incident: &IncidentId,
        approve: bool,
        by: &str,
        now: Timestamp,
    ) -> std::result::Result<Approval, DecideError>;
    /// Approvals in a state.
    fn approvals(&self, state: ApprovalState) -> Result<Vec<Approval>>;
    /// Marks a decided approval as acted upon (it is no longer returned).
    fn consume_approval(&self, incident: &IncidentId) -> Result<()>;
}
