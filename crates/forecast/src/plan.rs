//! A service's capacity plan from its cpu and memory histories: the outlook
//! of each resource, rightsizing, a replica proposal, the seed's daily
//! predictions. The narrative fields are the analyst's to write.

use warden_model::{
    CapacityPlan, DailyPredictions, Metric, ReplicaPlan, ResourceOutlook, ServiceName, Timestamp,
};

use crate::capacity::{autoscale, rightsize};
use crate::series::{SeriesForecast, analyze};

const DAY_MS: i64 = 86_400_000;

/// What the plan is measured against.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanParams {
    pub horizon_ms: i64,
    pub cpu_limit: f64,
    pub memory_limit: f64,
    pub headroom: f64,
    pub target_utilization: f64,
    pub max_replicas: u32,
}

/// One resource's history: timestamps (ms) and values.
pub type History<'a> = (&'a [i64], &'a [f64]);

fn outlook(
    metric: Metric,
    h: History<'_>,
    limit: f64,
    p: &PlanParams,
) -> Option<(ResourceOutlook, SeriesForecast)> {
    // A forecast reaches at most as far ahead as its history reaches back.
    let span = match (h.0.first(), h.0.last()) {
        (Some(a), Some(b)) => b - a,
        _ => 0,
    };
    let a = analyze(h.0, h.1, p.horizon_ms.min(span.max(1)), Some(limit)).ok()?;
    let f = &a.forecast;
    let last = f.point.len() - 1;
    let e = a.exhaustion?;
    let at = |step: Option<usize>| step.map(|s| Timestamp(a.at(s - 1)));
    let r = rightsize(h.1, p.headroom);
    Some((
        ResourceOutlook {
            metric,
            current: *h.1.last()?,
            trend: a.trend.as_str().to_string(),
            slope_per_day: a.slope_per_day.map(|s| s.slope),
            slope_interval: a.slope_per_day.map(|s| (s.lower, s.upper)),
            end: f.point[last],
            end_interval: (f.lower95[last], f.upper95[last]),
            limit,
            exhaustion_at: at(e.point_step),
            earliest_at: at(e.upper95_step),
            probability: e.probability,
            p50: r.p50,
            p95: r.p95,
            p99: r.p99,
            suggested_request: r.request.min(1.0),
            suggested_limit: r.limit.min(1.0),
            method: serde_json::to_value(f.method)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default(),
        },
        a,
    ))
}

/// The forecast's value at the end of each day of the horizon.
fn daily(a: &SeriesForecast, days: usize) -> (Vec<Timestamp>, Vec<f64>) {
    (1..=days)
        .filter_map(|d| {
            let t = a.origin_ms + d as i64 * DAY_MS;
            let step = ((t - a.origin_ms) / a.step_ms) as usize;
            let v = a.forecast.point.get(step.checked_sub(1)?)?;
            Some((Timestamp(t), *v))
        })
        .unzip()
}

/// Builds the plan; None when neither resource has enough history. Each
/// resource is forecast at most as far ahead as its history reaches back
/// (so a young service gets a short horizon, not a 30-day extrapolation of
/// its first hour). The narrative fields are left empty for the analyst.
pub fn build_plan(
    service: &ServiceName,
    now: Timestamp,
    cpu: History<'_>,
    memory: History<'_>,
    replicas: Option<u32>,
    p: &PlanParams,
) -> Option<CapacityPlan> {
    let cpu_o = outlook(Metric::CpuUsage, cpu, p.cpu_limit, p);
    let mem_o = outlook(Metric::MemoryUsage, memory, p.memory_limit, p);
    if cpu_o.is_none() && mem_o.is_none() {
        return None;
    }
    let reach = [&cpu_o, &mem_o]
        .iter()
        .filter_map(|o| o.as_ref())
        .map(|(_, a)| a.forecast.point.len() as i64 * a.step_ms)
        .max()
        .unwrap_or(0);
    let days = (reach / DAY_MS).max(1) as usize;
    let mut predictions = DailyPredictions::default();
    if let Some((_, a)) = &cpu_o {
        let (dates, values) = daily(a, days);
        predictions.dates = dates;
        predictions.cpu_usage = values;
    }
    if let Some((_, a)) = &mem_o {
        let (dates, values) = daily(a, days);
        if predictions.dates.is_empty() {
            predictions.dates = dates;
        }
        predictions.memory_usage = values;
    }
    let replica_plan = match (&cpu_o, replicas) {
        (Some((_, a)), Some(n)) if n > 0 => {
            let s = autoscale(&a.forecast, n, p.target_utilization, p.max_replicas);
            Some(ReplicaPlan {
                current: s.current,
                min: s.min,
                max: s.max,
                target_utilization: s.target_utilization,
            })
        }
        _ => None,
    };
    Some(CapacityPlan {
        service: service.clone(),
        generated_at: now,
        horizon_days: (reach.min(p.horizon_ms) as f64 / DAY_MS as f64 * 100.0).round() / 100.0,
        resources: [cpu_o, mem_o]
            .into_iter()
            .flatten()
            .map(|(o, _)| o)
            .collect(),
        replicas: replica_plan,
        predictions,
        warning_signals: vec![],
        scale_timing: String::new(),
        optimizations: vec![],
        analyst: String::new(),
        proposals: vec![],
    })
}
