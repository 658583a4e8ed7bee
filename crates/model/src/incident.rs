//! Anomalies, incidents and root-cause candidates.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{Metric, ServiceName, Timestamp, hash::fnv1a64_parts};

/// A detector's finding on one metric of one service, with its reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Anomaly {
    pub service: ServiceName,
    pub metric: Metric,
    /// When the series first left its baseline in this stretch.
    pub onset: Timestamp,
    /// The sample that confirmed the anomaly.
    pub ts: Timestamp,
    pub value: f64,
    /// The robust baseline (rolling median) the value is compared with.
    pub baseline: f64,
    /// Robust z-score: (value - baseline) / robust scale.
    pub z: f64,
    /// Combined score in [0, 1].
    pub score: f64,
    /// The service's Isolation Forest score for the same time (sklearn's
    /// `score_samples` sign flipped: higher is more anomalous), when known.
    pub iforest_score: Option<f64>,
    /// Which detectors agreed, e.g. `["robust_mad", "iforest"]`.
    pub detectors: Vec<String>,
    /// One sentence: which feature, its baseline, how far it is.
    pub reason: String,
}

impl Anomaly {
    /// The deduplication key: the same service and metric is the same signal.
    pub fn fingerprint(&self) -> String {
        format!("{}/{}", self.service, self.metric)
    }
}

/// An alert from another system (Alertmanager's webhook), as a signal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertSignal {
    pub service: ServiceName,
    /// The metric family the alert speaks of (from a `metric` label, else
    /// its name).
    pub metric: Metric,
    /// `alertname`.
    pub name: String,
    /// Firing, or resolved.
    pub firing: bool,
    pub starts_at: Timestamp,
    /// The `summary` (or `description`) annotation; untrusted text.
    pub summary: String,
}

impl AlertSignal {
    /// The signal's deduplication key (distinct from the detectors' keys, so
    /// a detector clearing its series does not clear the alert).
    pub fn fingerprint(&self) -> String {
        format!("{}/{}/alert/{}", self.service, self.metric, self.name)
    }
}

/// Stable incident identity, derived from the first signal and its time
/// bucket, never from model wording.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct IncidentId(pub String);

impl IncidentId {
    /// The id of an incident whose first signal has `fingerprint` and began
    /// in time bucket `bucket` (onset divided by the grouping window).
    pub fn derive(fingerprint: &str, bucket: i64) -> Self {
        let h = fnv1a64_parts(&[fingerprint, &bucket.to_string()]);
        Self(format!("INC-{:08x}", h >> 32))
    }

    /// Parses an id given by a user (`INC-` and 8 lowercase hex digits).
    pub fn parse(s: &str) -> Option<Self> {
        let hex = s.strip_prefix("INC-")?;
        (hex.len() == 8
            && hex
                .bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)))
        .then(|| Self(s.to_string()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IncidentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where an incident is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum IncidentStatus {
    /// Signals are being grouped (group_wait not yet over).
    Open,
    /// Ranked and planned; nothing executed (observe / dry-run, or denied).
    Diagnosed,
    /// Waiting for an operator to approve the plan.
    AwaitingApproval,
    /// An action was executed; its effect is being verified.
    Verifying,
    /// Signals recovered.
    Resolved,
    /// Automatic remediation failed or was not possible; a human is needed.
    Escalated,
}

impl IncidentStatus {
    /// Whether the incident is finished.
    pub fn is_closed(self) -> bool {
        matches!(self, IncidentStatus::Resolved)
    }

    /// snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            IncidentStatus::Open => "open",
            IncidentStatus::Diagnosed => "diagnosed",
            IncidentStatus::AwaitingApproval => "awaiting_approval",
            IncidentStatus::Verifying => "verifying",
            IncidentStatus::Resolved => "resolved",
            IncidentStatus::Escalated => "escalated",
        }
    }
}

/// A root-cause candidate: a service (and its most telling metric) with a
/// score and the evidence behind it. Names are plain text so that offline
/// cases (RCA datasets) with any naming fit too.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Candidate {
    pub service: String,
    pub metric: String,
    pub score: f64,
    pub evidence: Vec<String>,
}

/// An incident: correlated signals across services, with its diagnosis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    pub id: IncidentId,
    pub title: String,
    pub status: IncidentStatus,
    pub opened_at: Timestamp,
    pub updated_at: Timestamp,
    pub resolved_at: Option<Timestamp>,
    /// Services with signals in this incident, sorted.
    pub services: Vec<ServiceName>,
    /// Signal fingerprints (`service/metric`), sorted.
    pub signals: Vec<String>,
    /// Ranked root-cause candidates, best first.
    pub ranking: Vec<Candidate>,
}

impl Incident {
    /// The top-ranked candidate.
    pub fn root_cause(&self) -> Option<&Candidate> {
        self.ranking.first()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incident_ids_are_stable_and_parse_back() {
        let a = IncidentId::derive("db/error_rate", 12);
        assert_eq!(a, IncidentId::derive("db/error_rate", 12));
        assert_ne!(a, IncidentId::derive("db/error_rate", 13));
        assert_eq!(IncidentId::parse(a.as_str()), Some(a.clone()));
        assert_eq!(IncidentId::parse("INC-xyz"), None);
        assert_eq!(IncidentId::parse("1; drop table"), None);
    }
}
