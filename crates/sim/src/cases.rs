//! Synthetic root-cause cases on random topologies, for checking that the
//! ranker holds beyond the one public dataset it was developed on.
//!
//! Each case is a random layered call graph of 10–40 services with neutral
//! names, one minute per sample, and one injected fault. The physics is the
//! mesh's: queueing latency from utilisation, synchronous callee latency
//! added to the caller's, failures propagating through synchronous calls.
//! Some services are noisy without any fault (latency spikes), like
//! serverless functions with cold starts. What a case offers varies as in
//! real datasets: sometimes no graph, a graph missing some edges, no alert,
//! or a separate normal period. A fault that does not reach the front
//! service's alert metric by at least 10 % is re-drawn (datasets hold
//! incidents that raised an alert).
//!
//! Pure and deterministic: a case is a function of its seed. The generator
//! was written before it was run against the ranker and was not changed to
//! suit it.

use warden_model::Rng;

use crate::mesh::respond;

/// The kinds of fault a synthetic case injects.
pub const SYNTH_FAULTS: [&str; 5] = ["cpu", "delay", "error", "memory", "overload"];

/// Named series: (service, metric, values); NaN marks a missing sample.
pub type Columns = Vec<(String, String, Vec<f64>)>;

/// One generated case, in the terms of the RCA case layout.
#[derive(Debug, Clone)]
pub struct SynthCase {
    /// Fault kind; the case's folder.
    pub fault: &'static str,
    /// Sample times, Unix seconds.
    pub times: Vec<f64>,
    pub columns: Columns,
    /// A separate normal period (times, columns), when the case has one.
    pub normal: Option<(Vec<f64>, Columns)>,
    /// Call edges (caller, callee), when the case has a graph.
    pub edges: Option<Vec<(String, String)>>,
    pub inject_time: f64,
    /// (service, metric) of the alert, when the case has one.
    pub alert: Option<(String, String)>,
    pub root_cause: String,
}

struct Svc {
    service_ms: f64,
    replicas: f64,
    cpu_per_rps: f64,
    base_mem: f64,
    base_error: f64,
    /// p99 over mean latency.
    tail: f64,
    /// Latency spikes without a fault (probability per sample).
    spiky: f64,
    reports_p99: bool,
}

/// (caller, callee, calls per caller request, synchronous).
type Edge = (usize, usize, f64, bool);

#[derive(Clone, Copy)]
struct Fault {
    kind: &'static str,
    target: usize,
    size: f64,
}

struct State {
    latency_ms: Vec<f64>,
    error: Vec<f64>,
    util: Vec<f64>,
    rps: Vec<f64>,
}

/// The services' state at one instant: `load` enters service 0, `fault`
/// (when active) applies `progress` minutes after its start.
fn solve(svcs: &[Svc], edges: &[Edge], load: f64, fault: Option<(Fault, f64)>) -> State {
    let n = svcs.len();
    let mut rps = vec![0.0; n];
    rps[0] = load;
    // Edges go from lower to higher index: one pass top-down spreads traffic.
    for i in 0..n {
        if let Some((f, _)) = fault
            && f.kind == "overload"
            && f.target == i
        {
            rps[i] += f.size * load.max(1.0) * 0.5;
        }
        for e in edges.iter().filter(|e| e.0 == i) {
            rps[e.1] += rps[i] * e.2;
        }
    }
    let mut latency_ms = vec![0.0; n];
    let mut error = vec![0.0; n];
    let mut util = vec![0.0; n];
    for i in (0..n).rev() {
        let s = &svcs[i];
        let mut hog = 0.0;
        let mut extra_ms = 0.0;
        let mut own_error = s.base_error;
        let mut slow = 1.0;
        if let Some((f, minutes)) = fault
            && f.target == i
        {
            match f.kind {
                "cpu" => hog = f.size,
                "delay" => extra_ms = f.size,
                "error" => own_error += f.size,
                // A leak grows; garbage collection slows the service with it.
                "memory" => slow = 1.0 + (f.size * minutes).min(0.35) * 3.0,
                _ => {}
            }
        }
        let u = rps[i] * s.cpu_per_rps / s.replicas + 0.05 + hog;
        let callees = edges
            .iter()
            .filter(|e| e.0 == i)
            .map(|e| (e.2, e.3, latency_ms[e.1], error[e.1]));
        let (_, lat, err) = respond(slow * s.service_ms, u, extra_ms, own_error, callees);
        latency_ms[i] = lat;
        error[i] = err;
        util[i] = u;
    }
    State {
        latency_ms,
        error,
        util,
        rps,
    }
}

fn name(i: usize) -> String {
    format!("svc-{i:02}")
}

/// Metric columns for `times`, with measurement noise; `fault` starts at
/// `start_s` when given.
fn record(
    rng: &mut Rng,
    svcs: &[Svc],
    edges: &[Edge],
    base_load: f64,
    times: &[f64],
    fault: Option<(Fault, f64)>,
) -> Columns {
    let n = svcs.len();
    let metrics = [
        "cpu",
        "mem",
        "latency-avg",
        "latency-p99",
        "errors-sum",
        "requests-sum",
    ];
    let mut cols: Vec<Vec<Vec<f64>>> =
        vec![vec![Vec::with_capacity(times.len()); metrics.len()]; n];
    for t in times {
        let diurnal = 1.0 + 0.2 * (std::f64::consts::TAU * t / 86_400.0).sin();
        let load = base_load * diurnal * (1.0 + 0.05 * rng.normal());
        let active = fault.and_then(|(f, start)| (*t >= start).then_some((f, (t - start) / 60.0)));
        let st = solve(svcs, edges, load, active);
        for i in 0..n {
            let s = &svcs[i];
            let spike = if rng.uniform() < s.spiky {
                rng.range(2.0, 6.0)
            } else {
                1.0
            };
            let leak = match active {
                Some((f, minutes)) if f.kind == "memory" && f.target == i => {
                    (f.size * minutes).min(0.35)
                }
                _ => 0.0,
            };
            let lat_s = st.latency_ms[i] / 1000.0 * spike;
            let values = [
                (st.util[i].min(1.0) * (1.0 + 0.03 * rng.normal())).max(0.0),
                s.base_mem + leak + 0.005 * rng.normal(),
                lat_s * (1.0 + 0.05 * rng.normal()),
                if s.reports_p99 {
                    lat_s * s.tail * (1.0 + 0.15 * rng.normal()).max(0.2)
                } else {
                    f64::NAN
                },
                (st.error[i] * st.rps[i] * 60.0 * (1.0 + 0.1 * rng.normal()))
                    .max(0.0)
                    .round(),
                (st.rps[i] * 60.0 * (1.0 + 0.02 * rng.normal())).round(),
            ];
            for (m, v) in values.iter().enumerate() {
                cols[i][m].push(*v);
            }
        }
    }
    let mut out = Vec::with_capacity(n * metrics.len());
    for (i, per) in cols.into_iter().enumerate() {
        for (m, v) in per.into_iter().enumerate() {
            out.push((name(i), metrics[m].to_string(), v));
        }
    }
    out
}

/// Mean of `metric` of service 0 at or after `from` over the mean before it.
fn front_ratio(cols: &[(String, String, Vec<f64>)], times: &[f64], metric: &str, from: f64) -> f64 {
    let Some((_, _, v)) = cols.iter().find(|c| c.0 == name(0) && c.1 == metric) else {
        return 1.0;
    };
    let mean = |keep: &dyn Fn(f64) -> bool| {
        let xs: Vec<f64> = times
            .iter()
            .zip(v)
            .filter(|(t, x)| keep(**t) && x.is_finite())
            .map(|(_, x)| *x)
            .collect();
        xs.iter().sum::<f64>() / xs.len().max(1) as f64
    };
    let before = mean(&|t| t < from);
    let after = mean(&|t| t >= from);
    if metric.starts_with("errors") {
        // Counts: compare with a floor of one error a minute.
        (after + 1.0) / (before + 1.0)
    } else {
        after / before.max(1e-9)
    }
}

/// The case of one seed.
pub fn synthetic_case(seed: u64) -> SynthCase {
    let mut rng = Rng::new(seed);
    let n = 10 + rng.below(31);
    // A layered DAG: each service is called by one of the few before it,
    // sometimes by a second, earlier one too.
    let mut edges: Vec<Edge> = Vec::new();
    for i in 1..n {
        let lo = i.saturating_sub(6);
        let a = lo + rng.below(i - lo);
        edges.push((a, i, rng.range(0.3, 1.5), rng.uniform() > 0.1));
        if i > 2 && rng.uniform() < 0.3 {
            let b = rng.below(i);
            if b != a {
                edges.push((b, i, rng.range(0.3, 1.5), rng.uniform() > 0.1));
            }
        }
    }
    edges.sort_by_key(|e| (e.0, e.1));
    let base_load = rng.range(50.0, 500.0);
    let mut svcs: Vec<Svc> = (0..n)
        .map(|_| Svc {
            service_ms: rng.range(2.0, 40.0),
            replicas: (1 + rng.below(4)) as f64,
            cpu_per_rps: 0.0,
            base_mem: rng.range(0.3, 0.7),
            base_error: rng.range(0.0005, 0.005),
            tail: rng.range(2.5, 4.0),
            spiky: if rng.uniform() < 0.15 { 0.08 } else { 0.0 },
            reports_p99: rng.uniform() > 0.2,
        })
        .collect();
    // Size CPU so that each service idles at 20–60 % utilisation.
    let st = solve(&svcs, &edges, base_load, None);
    for (i, s) in svcs.iter_mut().enumerate() {
        let target = rng.range(0.15, 0.55);
        s.cpu_per_rps = target * s.replicas / st.rps[i].max(0.1);
    }
    let step = 60.0;
    let t0 = 1_700_000_000.0 + (seed % 1000) as f64 * 86_400.0 / 7.0;
    let times: Vec<f64> = (0..80).map(|k| t0 + k as f64 * step).collect();
    let inject_time = t0 + 60.0 * step + rng.range(0.0, step).floor();
    // Draw faults until one shows at the front (the kind too: a leak in a
    // service far from the front may never reach it).
    let mut attempt = 0;
    let (fault, alert_metric, columns) = loop {
        attempt += 1;
        let kind = SYNTH_FAULTS[rng.below(SYNTH_FAULTS.len())];
        let alert_metric = if kind == "error" {
            "errors-sum"
        } else {
            "latency-avg"
        };
        let target = 1 + rng.below(n - 1);
        let size = match kind {
            "cpu" => rng.range(0.3, 0.6),
            "delay" => rng.range(50.0, 400.0),
            "error" => rng.range(0.05, 0.4),
            "memory" => rng.range(0.02, 0.06),
            _ => rng.range(1.0, 3.0),
        };
        let f = Fault { kind, target, size };
        let mut r = rng.fork(attempt);
        let cols = record(
            &mut r,
            &svcs,
            &edges,
            base_load,
            &times,
            Some((f, inject_time)),
        );
        if front_ratio(&cols, &times, alert_metric, inject_time) >= 1.1 || attempt >= 200 {
            break (f, alert_metric, cols);
        }
    };
    let has_graph = rng.uniform() < 0.75;
    let edges_out = has_graph.then(|| {
        // A third of the graphs (as from sampled traces) miss some edges.
        let drop = if rng.uniform() < 0.33 { 0.1 } else { 0.0 };
        edges
            .iter()
            .filter(|_| rng.uniform() >= drop)
            .map(|e| (name(e.0), name(e.1)))
            .collect()
    });
    let alert = (rng.uniform() < 0.67).then(|| (name(0), alert_metric.to_string()));
    let normal = (rng.uniform() < 0.5).then(|| {
        let nt: Vec<f64> = (0..120).map(|k| t0 - 86_400.0 + k as f64 * step).collect();
        let mut r = rng.fork(9_999);
        let cols = record(&mut r, &svcs, &edges, base_load, &nt, None);
        (nt, cols)
    });
    SynthCase {
        fault: fault.kind,
        times,
        columns,
        normal,
        edges: edges_out,
        inject_time,
        alert,
        root_cause: name(fault.target),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_case_is_a_function_of_its_seed() {
        let a = synthetic_case(3);
        let b = synthetic_case(3);
        assert_eq!(a.root_cause, b.root_cause);
        assert_eq!(a.times, b.times);
        assert_eq!(format!("{:?}", a.columns), format!("{:?}", b.columns));
        assert_ne!(
            format!("{:?}", synthetic_case(4).columns),
            format!("{:?}", a.columns)
        );
    }

    #[test]
    fn the_fault_shows_at_the_front_and_the_cause_is_a_service_of_the_case() {
        for seed in 0..20 {
            let c = synthetic_case(seed);
            let metric = if c.fault == "error" {
                "errors-sum"
            } else {
                "latency-avg"
            };
            assert!(
                front_ratio(&c.columns, &c.times, metric, c.inject_time) >= 1.1,
                "seed {seed}: {} at {} does not show",
                c.fault,
                c.root_cause
            );
            assert!(c.columns.iter().any(|col| col.0 == c.root_cause));
            assert_ne!(c.root_cause, name(0));
        }
    }
}
