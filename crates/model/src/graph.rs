//! The service dependency graph: who calls whom, with call statistics when
//! the edge was observed in traces, and a flag when it was declared (by the
//! registration API or config).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::{ServiceName, Timestamp};

/// Statistics of one caller → callee edge.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EdgeStats {
    /// Calls observed in spans.
    pub calls: u64,
    /// Of those, calls that failed.
    pub errors: u64,
    /// Sum of observed call latencies, milliseconds.
    pub latency_ms_sum: f64,
    /// First and last time the edge was observed.
    pub first_seen: Option<Timestamp>,
    pub last_seen: Option<Timestamp>,
    /// Declared by the registration API or config.
    pub declared: bool,
    /// Calls counted by a tracing backend's dependency view (Jaeger's
    /// `/api/dependencies`) over its lookback window, when that is a source.
    #[serde(default)]
    pub backend_calls: u64,
    /// Observed latencies in [`LATENCY_BUCKETS`] log-spaced buckets (empty
    /// until the first call), for percentiles.
    #[serde(default)]
    pub latency_hist: Vec<u32>,
}

/// Number of latency buckets per edge: bucket `i` holds latencies up to
/// `0.1 ms · √2^(i+1)`; the last one everything above (about 28 minutes).
pub const LATENCY_BUCKETS: usize = 48;

fn latency_bucket(ms: f64) -> usize {
    // NaN and anything up to 0.1 ms go to the first bucket.
    if ms.is_nan() || ms <= 0.1 {
        return 0;
    }
    // log_√2(ms / 0.1) = 2·log2(ms / 0.1)
    let i = (2.0 * (ms / 0.1).log2()).floor() as usize;
    i.min(LATENCY_BUCKETS - 1)
}

impl EdgeStats {
    /// Whether the edge was ever seen in traces (ours or a backend's).
    pub fn observed(&self) -> bool {
        self.calls > 0 || self.backend_calls > 0
    }

    /// Fraction of observed calls that failed.
    pub fn error_rate(&self) -> f64 {
        if self.calls == 0 {
            0.0
        } else {
            self.errors as f64 / self.calls as f64
        }
    }

    /// Mean observed latency in milliseconds.
    pub fn latency_ms_avg(&self) -> f64 {
        if self.calls == 0 {
            0.0
        } else {
            self.latency_ms_sum / self.calls as f64
        }
    }

    /// The `q` quantile (0..=1) of observed latency in milliseconds, from
    /// the histogram: the geometric middle of the bucket it falls in (within
    /// ±19%). 0 without observations.
    pub fn latency_ms_quantile(&self, q: f64) -> f64 {
        let total: u64 = self.latency_hist.iter().map(|&c| u64::from(c)).sum();
        if total == 0 {
            return 0.0;
        }
        let rank = (q.clamp(0.0, 1.0) * total as f64).ceil().max(1.0) as u64;
        let mut seen = 0u64;
        for (i, &c) in self.latency_hist.iter().enumerate() {
            seen += u64::from(c);
            if seen >= rank {
                // Bucket i spans 0.1·√2^i .. 0.1·√2^(i+1); bucket 0 from 0.
                return 0.1 * std::f64::consts::SQRT_2.powf(i as f64 + 0.5);
            }
        }
        0.0
    }

    /// Observed calls per second between first and last sighting.
    pub fn call_rate(&self) -> f64 {
        match (self.first_seen, self.last_seen) {
            (Some(a), Some(b)) if b > a => self.calls as f64 / b.secs_since(a),
            _ => 0.0,
        }
    }
}

/// A directed graph of services; edges point from caller to callee, so a
/// fault in the callee shows up as symptoms in the caller.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Graph {
    nodes: BTreeSet<ServiceName>,
    edges: BTreeMap<(ServiceName, ServiceName), EdgeStats>,
}

/// One edge as served by the API.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EdgeView<'a> {
    pub caller: &'a ServiceName,
    pub callee: &'a ServiceName,
    pub calls: u64,
    pub call_rate: f64,
    pub error_rate: f64,
    pub latency_ms_avg: f64,
    /// Latency percentiles from the edge's histogram (0 when unobserved).
    pub latency_ms_p50: f64,
    pub latency_ms_p95: f64,
    pub latency_ms_p99: f64,
    pub observed: bool,
    pub declared: bool,
    /// Calls a tracing backend counted over its lookback (Jaeger).
    pub backend_calls: u64,
}

impl Graph {
    /// Adds a service with no edges (no-op if present).
    pub fn add_node(&mut self, s: &ServiceName) {
        if !self.nodes.contains(s) {
            self.nodes.insert(s.clone());
        }
    }

    /// Records one observed call.
    pub fn observe_call(
        &mut self,
        caller: &ServiceName,
        callee: &ServiceName,
        latency_ms: f64,
        error: bool,
        ts: Timestamp,
    ) {
        self.add_node(caller);
        self.add_node(callee);
        let e = self
            .edges
            .entry((caller.clone(), callee.clone()))
            .or_default();
        e.calls += 1;
        e.errors += u64::from(error);
        e.latency_ms_sum += latency_ms;
        if e.latency_hist.is_empty() {
            e.latency_hist = vec![0; LATENCY_BUCKETS];
        }
        let b = &mut e.latency_hist[latency_bucket(latency_ms)];
        *b = b.saturating_add(1);
        e.first_seen = Some(e.first_seen.map_or(ts, |f| f.min(ts)));
        e.last_seen = Some(e.last_seen.map_or(ts, |l| l.max(ts)));
    }

    /// Records a dependency seen by a tracing backend: `calls` over its
    /// lookback window (replacing the previous count, which covered an
    /// overlapping window).
    pub fn observe_dependency(
        &mut self,
        caller: &ServiceName,
        callee: &ServiceName,
        calls: u64,
        ts: Timestamp,
    ) {
        self.add_node(caller);
        self.add_node(callee);
        let e = self
            .edges
            .entry((caller.clone(), callee.clone()))
            .or_default();
        e.backend_calls = calls;
        e.first_seen = Some(e.first_seen.map_or(ts, |f| f.min(ts)));
        e.last_seen = Some(e.last_seen.map_or(ts, |l| l.max(ts)));
    }

    /// Records a declared dependency.
    pub fn declare(&mut self, caller: &ServiceName, callee: &ServiceName) {
        self.add_node(caller);
        self.add_node(callee);
        self.edges
            .entry((caller.clone(), callee.clone()))
            .or_default()
            .declared = true;
    }

    /// All services, sorted.
    pub fn nodes(&self) -> impl Iterator<Item = &ServiceName> {
        self.nodes.iter()
    }

    /// Whether the service is in the graph.
    pub fn contains(&self, s: &ServiceName) -> bool {
        self.nodes.contains(s)
    }

    /// All edges with their statistics, sorted by (caller, callee).
    pub fn edges(&self) -> impl Iterator<Item = (&ServiceName, &ServiceName, &EdgeStats)> {
        self.edges.iter().map(|((a, b), e)| (a, b, e))
    }

    /// Statistics of one edge.
    pub fn edge(&self, caller: &ServiceName, callee: &ServiceName) -> Option<&EdgeStats> {
        self.edges.get(&(caller.clone(), callee.clone()))
    }

    /// Services that `s` calls.
    pub fn callees<'a>(&'a self, s: &'a ServiceName) -> impl Iterator<Item = &'a ServiceName> + 'a {
        self.edges
            .range((s.clone(), min_name())..)
            .take_while(move |((a, _), _)| a == s)
            .map(|((_, b), _)| b)
    }

    /// Services that call `s`.
    pub fn callers<'a>(&'a self, s: &'a ServiceName) -> impl Iterator<Item = &'a ServiceName> + 'a {
        self.edges
            .keys()
            .filter(move |(_, b)| b == s)
            .map(|(a, _)| a)
    }

    /// Services connected to `s` by an edge in either direction.
    pub fn neighbours(&self, s: &ServiceName) -> BTreeSet<ServiceName> {
        self.callers(s).chain(self.callees(s)).cloned().collect()
    }

    /// Whether `a` and `b` are connected by a path that ignores direction.
    pub fn connected(&self, a: &ServiceName, b: &ServiceName) -> bool {
        if a == b {
            return true;
        }
        let mut seen = BTreeSet::from([a.clone()]);
        let mut stack = vec![a.clone()];
        while let Some(x) = stack.pop() {
            for n in self.neighbours(&x) {
                if &n == b {
                    return true;
                }
                if seen.insert(n.clone()) {
                    stack.push(n);
                }
            }
        }
        false
    }

    /// Services reachable from `s` following caller → callee edges
    /// (not including `s` itself unless it is on a cycle).
    pub fn downstream(&self, s: &ServiceName) -> BTreeSet<ServiceName> {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<ServiceName> = self.callees(s).cloned().collect();
        while let Some(x) = stack.pop() {
            if seen.insert(x.clone()) {
                stack.extend(self.callees(&x).cloned());
            }
        }
        seen
    }

    /// The edges in API form.
    pub fn edge_views(&self) -> Vec<EdgeView<'_>> {
        self.edges()
            .map(|(a, b, e)| EdgeView {
                caller: a,
                callee: b,
                calls: e.calls,
                call_rate: e.call_rate(),
                error_rate: e.error_rate(),
                latency_ms_avg: e.latency_ms_avg(),
                latency_ms_p50: e.latency_ms_quantile(0.5),
                latency_ms_p95: e.latency_ms_quantile(0.95),
                latency_ms_p99: e.latency_ms_quantile(0.99),
                observed: e.observed(),
                declared: e.declared,
                backend_calls: e.backend_calls,
            })
            .collect()
    }
}

/// The smallest possible name, for range scans over `(caller, _)` keys.
fn min_name() -> ServiceName {
    ServiceName(String::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> ServiceName {
        ServiceName::parse(s).expect("valid")
    }

    #[test]
    fn latency_percentiles_come_from_the_histogram() {
        let mut g = Graph::default();
        let t = Timestamp::from_secs(100);
        // 1..=100 ms: p50 ≈ 50, p95 ≈ 95, p99 ≈ 99 within a bucket (±19%).
        for ms in 1..=100 {
            g.observe_call(&n("a"), &n("b"), ms as f64, false, t);
        }
        let e = g.edge(&n("a"), &n("b")).expect("edge");
        for (q, want) in [(0.5, 50.0), (0.95, 95.0), (0.99, 99.0)] {
            let got = e.latency_ms_quantile(q);
            assert!((got / want - 1.0).abs() < 0.2, "q{q}: {got} vs {want}");
        }
        assert_eq!(EdgeStats::default().latency_ms_quantile(0.5), 0.0);
        // Extremes land in the end buckets instead of overflowing.
        assert_eq!(latency_bucket(0.0), 0);
        assert_eq!(latency_bucket(f64::NAN), 0);
        assert_eq!(latency_bucket(1e12), LATENCY_BUCKETS - 1);
    }

    #[test]
    fn observed_calls_accumulate_statistics() {
        let mut g = Graph::default();
        let t = Timestamp::from_secs(100);
        g.observe_call(&n("a"), &n("b"), 10.0, false, t);
        g.observe_call(&n("a"), &n("b"), 30.0, true, t.plus_secs(10));
        let e = g.edge(&n("a"), &n("b")).expect("edge");
        assert_eq!(e.calls, 2);
        assert!((e.error_rate() - 0.5).abs() < 1e-12);
        assert!((e.latency_ms_avg() - 20.0).abs() < 1e-12);
        assert!((e.call_rate() - 0.2).abs() < 1e-12);
        assert!(!e.declared);
    }

    #[test]
    fn traversal_follows_direction() {
        let mut g = Graph::default();
        g.declare(&n("gw"), &n("user"));
        g.declare(&n("user"), &n("db"));
        g.declare(&n("user"), &n("auth"));
        g.add_node(&n("lonely"));
        assert_eq!(
            g.callees(&n("user")).cloned().collect::<Vec<_>>(),
            vec![n("auth"), n("db")]
        );
        assert_eq!(
            g.callers(&n("db")).cloned().collect::<Vec<_>>(),
            vec![n("user")]
        );
        assert_eq!(g.downstream(&n("gw")).len(), 3);
        assert!(g.connected(&n("db"), &n("auth")));
        assert!(!g.connected(&n("db"), &n("lonely")));
    }
}
