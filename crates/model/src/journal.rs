//! The audit journal: one typed record for every step of the loop. The
//! seed's events (`service_registered`, `metric_anomaly`, `service_fault`)
//! are variants here, next to every decision the loop makes.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{
    Action, Anomaly, Candidate, Decision, IncidentId, PlanStep, Receipt, ServiceName, Timestamp,
};

/// One journal record as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournalEntry {
    /// Position in the journal, assigned by the store (0 before storing).
    pub seq: u64,
    pub ts: Timestamp,
    pub incident: Option<IncidentId>,
    #[serde(flatten)]
    pub event: JournalEvent,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum JournalEvent {
    /// A service joined the catalog (seed event).
    ServiceRegistered {
        service: ServiceName,
        source: String,
        dependencies: Vec<ServiceName>,
    },
    /// The simulator injected a fault (demo only; ground truth never read by
    /// the detectors or the ranker).
    FaultInjected {
        scenario: String,
        target: ServiceName,
        detail: String,
    },
    /// A metric left its baseline (seed event).
    MetricAnomaly { anomaly: Anomaly },
    /// Signals were grouped into a new incident.
    IncidentOpened {
        title: String,
        services: Vec<ServiceName>,
        signals: Vec<String>,
    },
    /// A further signal joined an open incident.
    SignalGrouped { signal: String },
    /// Root-cause candidates, best first.
    RootCauseRanked { candidates: Vec<Candidate> },
    /// The service identified as the fault's origin (seed event).
    ServiceFault {
        service: String,
        metric: String,
        score: f64,
        evidence: Vec<String>,
    },
    /// An analyst's answer (`kind`: anomaly_analysis, recovery_plan, …).
    Analysis {
        analyst: String,
        kind: String,
        body: Value,
    },
    /// A recovery plan's steps as proposed.
    PlanProposed {
        analyst: String,
        steps: Vec<PlanStep>,
    },
    /// A plan step that did not parse into an action, or named an unknown
    /// service; dropped.
    PlanStepRejected { step: PlanStep, reason: String },
    /// One gate's verdict on one action.
    GateDecision {
        action: Action,
        gate: String,
        decision: Decision,
    },
    /// The action would have run, but the mode is dry-run or observe.
    ActionDryRun { action: Action, mode: String },
    /// The plan waits for an operator.
    ApprovalRequested { action: Action },
    /// An operator approved or rejected the pending plan.
    ApprovalDecided { approved: bool, by: String },
    /// An executor applied the action.
    ActionExecuted { receipt: Receipt },
    /// An executor failed to apply the action.
    ActionFailed { action: Action, error: String },
    /// Verification of an executed action started.
    VerificationStarted { action: Action, deadline: Timestamp },
    /// The result of verification.
    VerificationResult { recovered: bool, detail: String },
    /// An action was reverted after verification failed.
    ActionUndone {
        action: Action,
        undo: Action,
        reason: String,
    },
    /// The incident is over.
    IncidentResolved { reason: String },
    /// A human is needed.
    IncidentEscalated { reason: String },
    /// A service's capacity plan (journaled when its warnings change).
    CapacityPlanned { plan: crate::CapacityPlan },
    /// One request to a language model and its answer. The prompt is as
    /// sent, after redaction; the key is never part of it.
    ModelExchange {
        analyst: String,
        kind: String,
        prompt: String,
        answer: String,
        tokens_in: u64,
        tokens_out: u64,
        /// Answered from the cache (no request was made).
        cached: bool,
        latency_ms: u64,
        /// Analyses the request answered (more than 1 when batched; 0 when
        /// no request was made).
        #[serde(default)]
        batch: usize,
        /// Why the exchange failed or its answer was refused, if it was.
        error: Option<String>,
    },
    /// The built-in analyst answered instead of the configured model.
    AnalystFallback {
        analyst: String,
        kind: String,
        reason: String,
    },
}

impl JournalEvent {
    /// The snake_case type name stored beside the record.
    pub fn kind(&self) -> &'static str {
        match self {
            JournalEvent::ServiceRegistered { .. } => "service_registered",
            JournalEvent::FaultInjected { .. } => "fault_injected",
            JournalEvent::MetricAnomaly { .. } => "metric_anomaly",
            JournalEvent::IncidentOpened { .. } => "incident_opened",
            JournalEvent::SignalGrouped { .. } => "signal_grouped",
            JournalEvent::RootCauseRanked { .. } => "root_cause_ranked",
            JournalEvent::ServiceFault { .. } => "service_fault",
            JournalEvent::Analysis { .. } => "analysis",
            JournalEvent::PlanProposed { .. } => "plan_proposed",
            JournalEvent::PlanStepRejected { .. } => "plan_step_rejected",
            JournalEvent::GateDecision { .. } => "gate_decision",
            JournalEvent::ActionDryRun { .. } => "action_dry_run",
            JournalEvent::ApprovalRequested { .. } => "approval_requested",
            JournalEvent::ApprovalDecided { .. } => "approval_decided",
            JournalEvent::ActionExecuted { .. } => "action_executed",
            JournalEvent::ActionFailed { .. } => "action_failed",
            JournalEvent::VerificationStarted { .. } => "verification_started",
            JournalEvent::VerificationResult { .. } => "verification_result",
            JournalEvent::ActionUndone { .. } => "action_undone",
            JournalEvent::IncidentResolved { .. } => "incident_resolved",
            JournalEvent::IncidentEscalated { .. } => "incident_escalated",
            JournalEvent::CapacityPlanned { .. } => "capacity_planned",
            JournalEvent::ModelExchange { .. } => "model_exchange",
            JournalEvent::AnalystFallback { .. } => "analyst_fallback",
        }
    }

    /// One line for the terminal timeline and `incident show`.
    pub fn summary(&self) -> String {
        match self {
            JournalEvent::ServiceRegistered {
                service,
                source,
                dependencies,
            } => {
                let deps: Vec<&str> = dependencies.iter().map(|d| d.as_str()).collect();
                format!(
                    "service {service} registered ({source}; depends on [{}])",
                    deps.join(", ")
                )
            }
            JournalEvent::FaultInjected {
                scenario,
                target,
                detail,
            } => {
                format!("fault injected: {scenario} on {target} ({detail})")
            }
            JournalEvent::MetricAnomaly { anomaly } => format!("anomaly: {}", anomaly.reason),
            JournalEvent::IncidentOpened { title, .. } => format!("incident opened: {title}"),
            JournalEvent::SignalGrouped { signal } => {
                format!("signal {signal} grouped into incident")
            }
            JournalEvent::RootCauseRanked { candidates } => {
                let top: Vec<String> = candidates
                    .iter()
                    .filter(|c| c.score > 0.0)
                    .take(3)
                    .enumerate()
                    .map(|(i, c)| {
                        format!("#{} {} ({}, {:.2})", i + 1, c.service, c.metric, c.score)
                    })
                    .collect();
                if top.is_empty() {
                    "root causes ranked: no service shows a significant change".to_string()
                } else {
                    format!("root causes ranked: {}", top.join(", "))
                }
            }
            JournalEvent::ServiceFault {
                service,
                metric,
                evidence,
                ..
            } => format!(
                "service fault: {service} ({metric}){}",
                evidence
                    .first()
                    .map(|e| format!(" — {e}"))
                    .unwrap_or_default()
            ),
            JournalEvent::Analysis {
                analyst,
                kind,
                body,
            } => {
                let status = body.get("status").and_then(|s| s.as_str()).unwrap_or("");
                format!(
                    "{kind} by {analyst} analyst{}",
                    if status.is_empty() {
                        String::new()
                    } else {
                        format!(": {status}")
                    }
                )
            }
            JournalEvent::PlanProposed { analyst, steps } => {
                let s: Vec<String> = steps
                    .iter()
                    .map(|p| {
                        p.parse()
                            .map(|a| a.to_string())
                            .unwrap_or_else(|_| p.action.clone())
                    })
                    .collect();
                format!("plan by {analyst}: {}", s.join("; "))
            }
            JournalEvent::PlanStepRejected { step, reason } => {
                format!("plan step {:?} rejected: {reason}", step.action)
            }
            JournalEvent::GateDecision {
                action,
                gate,
                decision,
            } => match decision {
                Decision::Allow => format!("gate {gate}: allow {action}"),
                Decision::Deny { reason } => format!("gate {gate}: DENY {action}: {reason}"),
                Decision::NeedsApproval { reason } => {
                    format!("gate {gate}: needs approval for {action}: {reason}")
                }
            },
            JournalEvent::ActionDryRun { action, mode } => {
                format!("{mode}: would {action} (not executed)")
            }
            JournalEvent::ApprovalRequested { action } => format!("awaiting approval: {action}"),
            JournalEvent::ApprovalDecided { approved, by } => {
                format!(
                    "{} by {by}",
                    if *approved { "approved" } else { "rejected" }
                )
            }
            JournalEvent::ActionExecuted { receipt } => {
                format!("executed {}: {}", receipt.action, receipt.change)
            }
            JournalEvent::ActionFailed { action, error } => {
                format!("action {action} failed: {error}")
            }
            JournalEvent::VerificationStarted { action, deadline } => {
                format!("verifying {action} until {deadline}")
            }
            JournalEvent::VerificationResult { recovered, detail } => {
                format!(
                    "verification: {} ({detail})",
                    if *recovered {
                        "recovered"
                    } else {
                        "NOT recovered"
                    }
                )
            }
            JournalEvent::ActionUndone {
                action,
                undo,
                reason,
            } => {
                format!("undid {action} with {undo}: {reason}")
            }
            JournalEvent::IncidentResolved { reason } => format!("incident resolved: {reason}"),
            JournalEvent::IncidentEscalated { reason } => format!("incident escalated: {reason}"),
            JournalEvent::ModelExchange {
                analyst,
                kind,
                tokens_in,
                tokens_out,
                cached,
                latency_ms,
                batch,
                error,
                ..
            } => {
                let how = if *cached {
                    "from the cache".to_string()
                } else if *batch > 1 {
                    format!(
                        "{tokens_in} tokens in, {tokens_out} out, {latency_ms} ms for a batch of {batch}"
                    )
                } else {
                    format!("{tokens_in} tokens in, {tokens_out} out, {latency_ms} ms")
                };
                match error {
                    Some(e) => format!("{analyst} {kind}: {how}; refused: {e}"),
                    None => format!("{analyst} {kind}: {how}"),
                }
            }
            JournalEvent::AnalystFallback {
                analyst,
                kind,
                reason,
            } => format!("{kind} by the built-in analyst instead of {analyst}: {reason}"),
            JournalEvent::CapacityPlanned { plan } => {
                let warn = if plan.warning_signals.is_empty() {
                    "no warning".to_string()
                } else {
                    plan.warning_signals.join("; ")
                };
                format!(
                    "capacity plan for {} (next {}): {warn}; {}",
                    plan.service,
                    crate::time::format_duration_ms((plan.horizon_days * 86_400_000.0) as i64),
                    plan.scale_timing
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_serialize_with_a_type_tag_and_round_trip() {
        let e = JournalEntry {
            seq: 7,
            ts: Timestamp::from_secs(60),
            incident: Some(IncidentId("INC-0000abcd".into())),
            event: JournalEvent::IncidentResolved {
                reason: "signals recovered".into(),
            },
        };
        let v = serde_json::to_value(&e).expect("serializes");
        assert_eq!(v["type"], "incident_resolved");
        assert_eq!(v["ts"], "1970-01-01T00:01:00Z");
        let back: JournalEntry = serde_json::from_value(v).expect("parses");
        assert_eq!(back, e);
        assert_eq!(e.event.kind(), "incident_resolved");
    }
}
