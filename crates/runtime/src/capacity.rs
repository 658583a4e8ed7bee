//! The loop's capacity planning: cpu and memory histories kept per service
//! as bucket means (bounded by `capacity.history`), re-forecast every
//! `capacity.interval`, turned into plans by the analyst, journaled when a
//! service's warnings change, proposals gated like any action.

use std::collections::{BTreeMap, VecDeque};

use warden_config::CapacityConfig;
use warden_model::{CapacityPlan, Metric, ServiceName, Timestamp};

/// At most this many buckets per series.
pub const MAX_BUCKETS: i64 = 8640;

/// Bucketed means of one series.
#[derive(Debug, Clone, Default)]
pub struct Bucketed {
    /// (bucket start, mean)
    pub points: VecDeque<(i64, f64)>,
    open: Option<(i64, f64, u32)>,
}

impl Bucketed {
    fn push(&mut self, ts: i64, v: f64, bucket_ms: i64, keep: usize) {
        let b = ts - ts.rem_euclid(bucket_ms);
        match &mut self.open {
            Some((start, sum, n)) if *start == b => {
                *sum += v;
                *n += 1;
            }
            _ => {
                if let Some((start, sum, n)) = self.open.take() {
                    self.points.push_back((start, sum / f64::from(n)));
                    while self.points.len() > keep {
                        self.points.pop_front();
                    }
                }
                self.open = Some((b, v, 1));
            }
        }
    }

    /// Closed buckets as parallel vectors.
    pub fn series(&self) -> (Vec<i64>, Vec<f64>) {
        self.points.iter().copied().unzip()
    }
}

/// The capacity side of the engine's state.
#[derive(Debug, Default)]
pub struct CapacityState {
    pub series: BTreeMap<(ServiceName, Metric), Bucketed>,
    pub last_run: Option<Timestamp>,
    /// What was last journaled per service: the resources with a predicted
    /// exhaustion, and the proposals.
    pub journaled: BTreeMap<ServiceName, String>,
    pub plans: BTreeMap<ServiceName, CapacityPlan>,
}

/// The bucket width: the monitoring interval, or coarser so that the
/// history fits in [`MAX_BUCKETS`].
pub fn bucket_ms(c: &CapacityConfig, scrape_ms: i64) -> i64 {
    scrape_ms.max(c.history.millis() / MAX_BUCKETS).max(1)
}

impl CapacityState {
    /// Records a cpu or memory sample.
    pub fn observe(
        &mut self,
        c: &CapacityConfig,
        scrape_ms: i64,
        svc: &ServiceName,
        m: Metric,
        ts: Timestamp,
        v: f64,
    ) {
        if !c.enabled || !matches!(m, Metric::CpuUsage | Metric::MemoryUsage) || !v.is_finite() {
            return;
        }
        let b = bucket_ms(c, scrape_ms);
        let keep = (c.history.millis() / b).clamp(1, MAX_BUCKETS) as usize;
        self.series
            .entry((svc.clone(), m))
            .or_default()
            .push(ts.millis(), v, b, keep);
    }

    /// Whether a re-forecast is due.
    pub fn due(&self, c: &CapacityConfig, now: Timestamp) -> bool {
        c.enabled
            && match self.last_run {
                None => !self.series.is_empty(),
                Some(t) => now.millis() - t.millis() >= c.interval.millis(),
            }
    }
}

/// What makes a plan worth journaling again: which resources are predicted
/// to run out, and what is proposed.
pub fn signature(p: &CapacityPlan) -> String {
    let mut s: Vec<String> = p
        .resources
        .iter()
        .filter(|r| r.exhaustion_at.is_some())
        .map(|r| r.metric.as_str().to_string())
        .collect();
    s.extend(p.proposals.iter().map(|a| a.to_string()));
    s.join(",")
}
