//! The built-in deterministic analyst: explains from the ranking and plans
//! from a small set of runbook rules.
//!
//! Plan rules, in order, for the top-ranked service:
//! 1. a deploy or config change (not by warden) in the lookback before the
//!    onset: revert it (rollback to the previous revision, or set the key
//!    back);
//! 2. CPU saturation: scale up by the HPA formula
//!    `ceil(replicas × current / target)` with the baseline as target;
//! 3. memory growth, lost replicas, latency or errors with no change:
//!    restart.

use warden_model::{Candidate, ChangeKind, Metric, PlanStep};

use crate::{
    Analyst, AnalystError, AnomalyAnalysis, AnomalyItem, Answer, BoxFuture, IncidentContext,
    RecoveryPlan, Request, RootCauseItem,
};

/// Changes this long before the onset still count as a cause.
const CHANGE_LOOKBACK_MS: i64 = 15 * 60 * 1000;

/// The deterministic analyst.
#[derive(Debug, Clone, Default)]
pub struct Builtin;

impl Analyst for Builtin {
    fn name(&self) -> String {
        "builtin".into()
    }

    fn analyze<'a>(&'a self, request: &'a Request) -> BoxFuture<'a, Result<Answer, AnalystError>> {
        Box::pin(async move { answer(request) })
    }
}

/// The built-in analyst's answer to `request` (only a recovery plan can
/// fail: no evidence to plan from).
pub fn answer(request: &Request) -> Result<Answer, AnalystError> {
    match request {
        Request::AnomalyAnalysis(c) => Ok(Answer::AnomalyAnalysis(analyse(c))),
        Request::RecoveryPlan(c) => plan(c).map(Answer::RecoveryPlan),
        Request::CapacityPlan(p) => Ok(Answer::CapacityPlan(capacity_advice(p))),
        Request::DependencyAnalysis(d) => Ok(Answer::DependencyAnalysis(dependencies(d))),
    }
}

/// The capacity narrative written from the plan's numbers.
pub fn capacity_advice(p: &warden_model::CapacityPlan) -> crate::CapacityAdvice {
    let mut q = p.clone();
    crate::capacity::advise(&mut q, p.generated_at);
    crate::CapacityAdvice {
        warning_signals: q.warning_signals,
        scale_timing: q.scale_timing,
        optimizations: q.optimizations,
    }
}

/// The dependency analysis of one service from warden's risk findings.
pub fn dependencies(d: &crate::DependencyContext) -> crate::DependencyAnalysis {
    let mut suggestions: Vec<String> = Vec::new();
    for r in &d.risks {
        if !suggestions.contains(&r.suggestion) {
            suggestions.push(r.suggestion.clone());
        }
    }
    crate::DependencyAnalysis {
        dependencies: d.calls.clone(),
        risks: d
            .risks
            .iter()
            .map(|r| format!("{} ({}): {}", r.kind, r.severity, r.detail))
            .collect(),
        suggestions,
    }
}

fn confidence(ranking: &[Candidate], i: usize) -> f64 {
    let total: f64 = ranking.iter().map(|c| c.score.max(0.0)).sum();
    if total <= 0.0 {
        0.0
    } else {
        (ranking[i].score.max(0.0) / total * 100.0).round() / 100.0
    }
}

/// The anomaly analysis in the seed's shape.
pub fn analyse(c: &IncidentContext) -> AnomalyAnalysis {
    let critical = c.anomalies.iter().any(|a| {
        (a.metric == Metric::ErrorRate && a.value >= 0.05)
            || (a.metric.is_slo() && a.z >= 20.0)
            || a.metric == Metric::Replicas
    });
    let status = if c.anomalies.is_empty() {
        "ok"
    } else if critical {
        "critical"
    } else {
        "warning"
    };
    let anomalies = c
        .anomalies
        .iter()
        .map(|a| AnomalyItem {
            service: a.service.to_string(),
            metric: a.metric.to_string(),
            description: a.reason.clone(),
        })
        .collect();
    let root_causes = c
        .ranking
        .iter()
        .enumerate()
        .filter(|(_, r)| r.score > 0.0)
        .take(3)
        .map(|(i, r)| RootCauseItem {
            service: r.service.clone(),
            metric: r.metric.clone(),
            confidence: confidence(&c.ranking, i),
            evidence: r.evidence.clone(),
        })
        .collect();
    let mut recommendations = Vec::new();
    if let Ok(p) = plan(c) {
        recommendations.push(p.rationale);
    }
    if let Some(top) = c.ranking.first() {
        for ch in c
            .changes
            .iter()
            .filter(|ch| ch.service.as_str() == top.service && !ch.by_warden())
        {
            recommendations.push(format!("Review the recent change: {}", ch.describe()));
        }
        recommendations.push(format!(
            "Watch {}'s latency and error rate for 10 minutes after any action.",
            top.service
        ));
    }
    AnomalyAnalysis {
        status: status.into(),
        anomalies,
        root_causes,
        recommendations,
    }
}

/// The recovery plan for the top-ranked candidate.
pub fn plan(c: &IncidentContext) -> Result<RecoveryPlan, AnalystError> {
    let top = c.ranking.iter().find(|r| r.score > 0.0).ok_or_else(|| {
        AnalystError::NoEvidence(format!("incident {} has no ranked candidate", c.incident))
    })?;
    let target = c
        .known_services
        .iter()
        .find(|s| s.as_str() == top.service)
        .cloned()
        .ok_or_else(|| {
            AnalystError::NoEvidence(format!(
                "candidate {:?} is not a known service",
                top.service
            ))
        })?;
    let since = c.onset.plus_ms(-CHANGE_LOOKBACK_MS);
    let change = c
        .changes
        .iter()
        .filter(|ch| ch.service == target && !ch.by_warden() && ch.ts >= since)
        .filter(|ch| {
            matches!(
                ch.kind,
                ChangeKind::Deploy { .. } | ChangeKind::Config { .. }
            )
        })
        .max_by_key(|ch| ch.ts);
    let step = |action: &str, params: serde_json::Value| PlanStep {
        action: action.into(),
        target: target.to_string(),
        params: params.as_object().cloned().unwrap_or_default(),
    };
    if let Some(ch) = change {
        return Ok(match &ch.kind {
            ChangeKind::Deploy { from_revision, .. } => RecoveryPlan {
                steps: vec![step(
                    "rollback",
                    serde_json::json!({"revision": from_revision}),
                )],
                rationale: format!(
                    "Roll back {target} to revision {from_revision}: the anomaly began after {}.",
                    ch.describe()
                ),
            },
            ChangeKind::Config { key, old, .. } => RecoveryPlan {
                steps: vec![step(
                    "config_update",
                    serde_json::json!({"key": key, "value": old}),
                )],
                rationale: format!(
                    "Revert {target}'s {key} to {old:?}: the anomaly began after {}.",
                    ch.describe()
                ),
            },
            _ => unreachable!("filtered to deploy and config"),
        });
    }
    let state = c.services.iter().find(|s| s.service == target);
    let metric = Metric::parse(&top.metric);
    let cpu = state.and_then(|s| s.get(Metric::CpuUsage));
    let replicas = state
        .and_then(|s| s.get(Metric::Replicas))
        .map(|m| m.baseline.max(m.value));
    // Saturating: high in absolute terms and well above its usual level.
    let cpu_hot = cpu.is_some_and(|m| m.value >= 0.6 && m.value - m.baseline >= 0.2);
    if (metric == Some(Metric::CpuUsage) || (cpu_hot && metric.is_some_and(|m| m.is_slo())))
        && let (Some(cpu), Some(replicas)) = (cpu, replicas)
    {
        let current = replicas.round().max(1.0);
        let target_util = cpu.baseline.clamp(0.2, 0.7);
        let wanted = (current * cpu.value / target_util)
            .ceil()
            .max(current + 1.0);
        let cap = (current * c.limits.max_scale_factor)
            .floor()
            .min(f64::from(c.limits.max_replicas));
        let desired = wanted.min(cap);
        if desired <= current {
            return Ok(RecoveryPlan {
                steps: vec![],
                rationale: format!(
                    "{target} is CPU-saturated at {:.0}% but already at {current} replicas, the most the limits allow (max_replicas {}, max_scale_factor {}); a human must add capacity or find the CPU consumer.",
                    cpu.value * 100.0,
                    c.limits.max_replicas,
                    c.limits.max_scale_factor
                ),
            });
        }
        let capped = if desired < wanted {
            format!(" (the formula asks for {wanted}; capped by the configured limits)")
        } else {
            String::new()
        };
        return Ok(RecoveryPlan {
            steps: vec![step(
                "scale_up",
                serde_json::json!({"replicas": desired as u64}),
            )],
            rationale: format!(
                "Scale {target} from {current} to {desired} replicas: CPU is at {:.0}% against a baseline of {:.0}% (HPA formula ceil(replicas × current / target)){capped}.",
                cpu.value * 100.0,
                cpu.baseline * 100.0
            ),
        });
    }
    let why = match metric {
        Some(Metric::MemoryUsage) => {
            "memory keeps growing (a leak); a restart reclaims it while the leak is fixed"
        }
        Some(Metric::Replicas) => "replicas are failing; a restart clears stuck processes",
        _ => {
            "its latency or errors rose with no recent change to revert; a rolling restart clears stuck connections and state"
        }
    };
    Ok(RecoveryPlan {
        steps: vec![step("restart", serde_json::json!({}))],
        rationale: format!("Restart {target}: {why}."),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MetricState, ServiceState};
    use warden_model::{Action, Change, IncidentId, ServiceName, Timestamp};

    fn n(s: &str) -> ServiceName {
        ServiceName::parse(s).expect("name")
    }

    fn ctx(metric: &str, changes: Vec<Change>) -> IncidentContext {
        IncidentContext {
            incident: IncidentId("INC-00000001".into()),
            anomalies: vec![],
            ranking: vec![Candidate {
                service: "pay".into(),
                metric: metric.into(),
                score: 3.0,
                evidence: vec![],
            }],
            changes,
            services: vec![ServiceState {
                service: n("pay"),
                metrics: vec![
                    MetricState {
                        metric: Metric::CpuUsage,
                        value: 0.98,
                        baseline: 0.33,
                    },
                    MetricState {
                        metric: Metric::Replicas,
                        value: 2.0,
                        baseline: 2.0,
                    },
                ],
            }],
            known_services: vec![n("pay"), n("db")],
            onset: Timestamp::from_secs(10_000),
            limits: crate::PlanLimits::default(),
            logs: vec![],
        }
    }

    fn action(c: &IncidentContext) -> Action {
        let p = plan(c).expect("plan");
        assert_eq!(p.steps.len(), 1);
        p.steps[0].parse().expect("parses")
    }

    #[test]
    fn a_recent_deploy_is_rolled_back() {
        let ch = Change {
            ts: Timestamp::from_secs(9_900),
            service: n("pay"),
            actor: "deploy-pipeline".into(),
            kind: ChangeKind::Deploy {
                from_revision: 41,
                to_revision: 42,
            },
        };
        assert_eq!(
            action(&ctx("error_rate", vec![ch])),
            Action::Rollback {
                target: n("pay"),
                revision: Some(41)
            }
        );
    }

    #[test]
    fn a_config_change_is_reverted_but_warden_changes_and_old_ones_are_not_causes() {
        let cfg = Change {
            ts: Timestamp::from_secs(9_990),
            service: n("pay"),
            actor: "deploy-pipeline".into(),
            kind: ChangeKind::Config {
                key: "a.b".into(),
                old: "false".into(),
                new: "true".into(),
            },
        };
        assert_eq!(
            action(&ctx("request_latency_p95", vec![cfg.clone()])),
            Action::ConfigUpdate {
                target: n("pay"),
                key: "a.b".into(),
                value: "false".into()
            }
        );
        let mine = Change {
            actor: "warden".into(),
            ..cfg.clone()
        };
        let old = Change {
            ts: Timestamp::from_secs(1_000),
            ..cfg
        };
        assert!(matches!(
            action(&ctx("memory_usage", vec![mine, old])),
            Action::Restart { .. }
        ));
    }

    #[test]
    fn cpu_saturation_scales_by_the_hpa_formula() {
        // ceil(2 × 0.98 / 0.33) = 6
        assert_eq!(
            action(&ctx("cpu_usage", vec![])),
            Action::ScaleUp {
                target: n("pay"),
                replicas: 6
            }
        );
    }

    #[test]
    fn scaling_stays_inside_the_configured_limits() {
        let mut c = ctx("cpu_usage", vec![]);
        c.limits.max_scale_factor = 2.0;
        assert_eq!(
            action(&c),
            Action::ScaleUp {
                target: n("pay"),
                replicas: 4
            }
        );
        c.limits.max_replicas = 2;
        let p = plan(&c).expect("plan");
        assert!(
            p.steps.is_empty() && p.rationale.contains("max_replicas 2"),
            "{p:?}"
        );
    }

    #[test]
    fn unknown_candidates_get_no_plan() {
        let mut c = ctx("cpu_usage", vec![]);
        c.ranking[0].service = "ghost".into();
        assert!(plan(&c).is_err());
        c.ranking.clear();
        assert!(plan(&c).is_err());
    }

    #[test]
    fn analysis_has_the_seed_shape() {
        let v = serde_json::to_value(analyse(&ctx("cpu_usage", vec![]))).expect("json");
        for k in ["status", "anomalies", "root_causes", "recommendations"] {
            assert!(v.get(k).is_some(), "{k}");
        }
        assert_eq!(v["root_causes"][0]["service"], "pay");
    }
}
