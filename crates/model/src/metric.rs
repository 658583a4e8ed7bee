//! Metrics warden understands about a service, and samples of them.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{ServiceName, Timestamp};

/// A per-service signal. Units are fixed per metric (see each variant).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// CPU used, as a fraction of the CPU limit (mean over replicas).
    CpuUsage,
    /// Memory used, as a fraction of the memory limit (mean over replicas).
    MemoryUsage,
    /// Median request latency, milliseconds.
    RequestLatencyP50,
    /// 95th-percentile request latency, milliseconds.
    RequestLatencyP95,
    /// 99th-percentile request latency, milliseconds.
    RequestLatencyP99,
    /// Fraction of requests that failed, 0..1.
    ErrorRate,
    /// Requests per second served.
    RequestRate,
    /// Ready replicas.
    Replicas,
}

impl Metric {
    /// Every metric, in a fixed order.
    pub const ALL: [Metric; 8] = [
        Metric::CpuUsage,
        Metric::MemoryUsage,
        Metric::RequestLatencyP50,
        Metric::RequestLatencyP95,
        Metric::RequestLatencyP99,
        Metric::ErrorRate,
        Metric::RequestRate,
        Metric::Replicas,
    ];

    /// The metric's position in [`Metric::ALL`] (for per-metric arrays).
    pub fn index(self) -> usize {
        match self {
            Metric::CpuUsage => 0,
            Metric::MemoryUsage => 1,
            Metric::RequestLatencyP50 => 2,
            Metric::RequestLatencyP95 => 3,
            Metric::RequestLatencyP99 => 4,
            Metric::ErrorRate => 5,
            Metric::RequestRate => 6,
            Metric::Replicas => 7,
        }
    }

    /// The seed's four detection features: cpu_usage, memory_usage,
    /// request_latency (p95 here) and error_rate.
    pub const FEATURES: [Metric; 4] = [
        Metric::CpuUsage,
        Metric::MemoryUsage,
        Metric::RequestLatencyP95,
        Metric::ErrorRate,
    ];

    /// The snake_case name used in JSON, CSV headers and the journal.
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::CpuUsage => "cpu_usage",
            Metric::MemoryUsage => "memory_usage",
            Metric::RequestLatencyP50 => "request_latency_p50",
            Metric::RequestLatencyP95 => "request_latency_p95",
            Metric::RequestLatencyP99 => "request_latency_p99",
            Metric::ErrorRate => "error_rate",
            Metric::RequestRate => "request_rate",
            Metric::Replicas => "replicas",
        }
    }

    /// Parses the snake_case name.
    pub fn parse(s: &str) -> Option<Metric> {
        Metric::ALL.into_iter().find(|m| m.as_str() == s)
    }

    /// Whether the metric is a service-level objective signal (what a user
    /// feels): latency and errors. Verification watches these.
    pub fn is_slo(self) -> bool {
        matches!(
            self,
            Metric::RequestLatencyP50
                | Metric::RequestLatencyP95
                | Metric::RequestLatencyP99
                | Metric::ErrorRate
        )
    }

    /// Whether only an increase is a problem (true for all but request rate
    /// and replicas, where a drop is the symptom).
    pub fn bad_when_high(self) -> bool {
        !matches!(self, Metric::RequestRate | Metric::Replicas)
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One observation of one metric of one service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub service: ServiceName,
    pub metric: Metric,
    pub ts: Timestamp,
    pub value: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_is_the_position_in_all() {
        for (i, m) in Metric::ALL.iter().enumerate() {
            assert_eq!(m.index(), i);
        }
    }

    #[test]
    fn metric_names_round_trip() {
        for m in Metric::ALL {
            assert_eq!(Metric::parse(m.as_str()), Some(m));
            assert_eq!(
                serde_json::to_string(&m).ok(),
                Some(format!("\"{}\"", m.as_str()))
            );
        }
        assert_eq!(Metric::parse("cpu"), None);
    }
}
