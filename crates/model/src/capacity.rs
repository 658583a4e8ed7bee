//! A service's capacity plan: the forecast outlook of each resource, the
//! sizing and autoscaling it implies, the seed's plan fields, and the
//! actions proposed (which go through the same gates as any action).

use serde::{Deserialize, Serialize};

use crate::{Action, Metric, ServiceName, Timestamp};

/// The outlook of one resource (cpu_usage or memory_usage, as a fraction of
/// the service's allocation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceOutlook {
    pub metric: Metric,
    /// The latest observed value.
    pub current: f64,
    /// The seed's label: increasing, stable or decreasing.
    pub trend: String,
    /// Theil–Sen slope per day and its 95% interval.
    pub slope_per_day: Option<f64>,
    pub slope_interval: Option<(f64, f64)>,
    /// Forecast at the end of the horizon, with its 95% interval.
    pub end: f64,
    pub end_interval: (f64, f64),
    /// The level at which the resource is exhausted.
    pub limit: f64,
    /// When the forecast reaches the limit, and the earliest plausible time
    /// (its upper 95% bound); None when not within the horizon.
    pub exhaustion_at: Option<Timestamp>,
    pub earliest_at: Option<Timestamp>,
    /// Probability of reaching the limit within the horizon.
    pub probability: f64,
    /// Observed percentiles and the request / limit they suggest (with
    /// headroom).
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub suggested_request: f64,
    pub suggested_limit: f64,
    /// The forecaster used (`mstl_ets`, `ets`, `seasonal_naive`).
    pub method: String,
}

/// A replica / autoscaler proposal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplicaPlan {
    pub current: u32,
    pub min: u32,
    pub max: u32,
    pub target_utilization: f64,
}

/// The seed's `predictions`: one value per day of the horizon.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DailyPredictions {
    pub dates: Vec<Timestamp>,
    pub cpu_usage: Vec<f64>,
    pub memory_usage: Vec<f64>,
}

/// A capacity plan for one service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapacityPlan {
    pub service: ServiceName,
    pub generated_at: Timestamp,
    pub horizon_days: f64,
    pub resources: Vec<ResourceOutlook>,
    pub replicas: Option<ReplicaPlan>,
    pub predictions: DailyPredictions,
    /// The seed's plan fields, written by the analyst.
    pub warning_signals: Vec<String>,
    pub scale_timing: String,
    pub optimizations: Vec<String>,
    pub analyst: String,
    /// Actions proposed (gated like any other; dry-run by default).
    pub proposals: Vec<Action>,
}

impl CapacityPlan {
    /// The soonest predicted exhaustion among the resources.
    pub fn soonest(&self) -> Option<&ResourceOutlook> {
        self.resources
            .iter()
            .filter(|r| r.exhaustion_at.is_some() || r.earliest_at.is_some())
            .min_by_key(|r| r.earliest_at.or(r.exhaustion_at))
    }
}
