//! The built-in analyst's capacity advice: the seed's `warning_signals`,
//! `scale_timing` and `optimizations`, and the actions it proposes, written
//! from the plan's numbers. Proposals are only proposals: the gates decide.

use warden_model::{Action, CapacityPlan, Metric, Timestamp};

fn pct(v: f64) -> String {
    format!("{:.0}%", 100.0 * v)
}

fn day(t: Timestamp) -> String {
    t.rfc3339()
}

fn span(days: f64) -> String {
    warden_model::time::format_duration_ms((days * 86_400_000.0) as i64)
}

/// Fills the plan's narrative fields and proposals.
pub fn advise(plan: &mut CapacityPlan, now: Timestamp) {
    let mut warnings = Vec::new();
    let mut optimizations = Vec::new();
    let mut proposals = Vec::new();
    let mut timing: Option<(Timestamp, String)> = None;
    for r in &plan.resources {
        let name = match r.metric {
            Metric::CpuUsage => "cpu",
            Metric::MemoryUsage => "memory",
            _ => r.metric.as_str(),
        };
        match (r.exhaustion_at, r.earliest_at) {
            (Some(at), early) => {
                warnings.push(format!(
                    "{name} reaches {} of its limit around {} (earliest {}; {} likely within {})",
                    pct(r.limit),
                    day(at),
                    early.map_or_else(|| day(at), day),
                    pct(r.probability),
                    span(plan.horizon_days)
                ));
                let act_by = early.unwrap_or(at);
                if timing.as_ref().is_none_or(|(t, _)| act_by < *t) {
                    timing = Some((act_by, name.to_string()));
                }
            }
            (None, Some(early)) => warnings.push(format!(
                "{name} may reach {} of its limit by {} (upper 95% bound; {} likely)",
                pct(r.limit),
                day(early),
                pct(r.probability)
            )),
            (None, None) => {}
        }
        if r.trend == "increasing" {
            warnings.push(format!(
                "{name} is increasing (the seed's rule; {:+.2} points a day)",
                100.0 * r.slope_per_day.unwrap_or(0.0)
            ));
        }
        if r.p95 > 0.0 && r.suggested_request < 0.5 * r.current.max(r.p50) {
            optimizations.push(format!(
                "{name}: observed p95 {} — a request of {} (p95 + headroom) would do",
                pct(r.p95),
                pct(r.suggested_request)
            ));
        } else {
            optimizations.push(format!(
                "{name}: size the request at {} and the limit at {} (p95 {} and p99 {} plus headroom)",
                pct(r.suggested_request),
                pct(r.suggested_limit),
                pct(r.p95),
                pct(r.p99)
            ));
        }
    }
    if let Some(rp) = &plan.replicas {
        if rp.max > rp.current {
            proposals.push(Action::ScaleUp {
                target: plan.service.clone(),
                replicas: rp.max,
            });
            optimizations.push(format!(
                "replicas: autoscale between {} and {} at {} cpu per replica (now {})",
                rp.min,
                rp.max,
                pct(rp.target_utilization),
                rp.current
            ));
        } else if rp.max < rp.current {
            optimizations.push(format!(
                "replicas: {} would keep the forecast peak under {} cpu per replica (now {})",
                rp.max,
                pct(rp.target_utilization),
                rp.current
            ));
        }
    }
    let memory_exhausts = plan
        .resources
        .iter()
        .any(|r| r.metric == Metric::MemoryUsage && r.exhaustion_at.is_some());
    if memory_exhausts {
        proposals.push(Action::Restart {
            target: plan.service.clone(),
        });
        optimizations.push(
            "memory grows without bound: restart before the limit and look for a leak".into(),
        );
    }
    plan.scale_timing = match timing {
        Some((t, name)) => {
            let hours = (t.millis() - now.millis()) as f64 / 3_600_000.0;
            format!(
                "act on {name} before {} ({:.1} h from now)",
                day(t),
                hours.max(0.0)
            )
        }
        None => format!("no scaling needed within {}", span(plan.horizon_days)),
    };
    plan.warning_signals = warnings;
    plan.optimizations = optimizations;
    plan.proposals = proposals;
    plan.analyst = "builtin".into();
}
