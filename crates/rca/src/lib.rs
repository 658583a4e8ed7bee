//! Root-cause ranking. Pure: series, an onset time and (optionally) a call
//! graph in; ranked candidates with evidence out.
//!
//! The same engine serves the live loop and offline cases (`warden rca`), so
//! names are plain strings and metrics are classified by name
//! (`cpu`, `mem`, `latency`, `error`, `availability`, `replicas`, request
//! rates), never by a fixed list of services.
//!
//! Method:
//! 1. Per series, a robust change score: how far the data after the onset
//!    sits from the reference (median and MAD of the data before the onset,
//!    or of a separate normal period), counting only the harmful direction
//!    for the metric's class.
//! 2. Per service, the strongest score per class: resource (CPU, memory,
//!    replicas), service level (latency, errors, availability), traffic.
//! 3. On the graph (edges caller → callee): a service-level symptom that a
//!    callee with its own service-level anomaly can explain is discounted;
//!    a service whose callers show symptoms gains. Resource anomalies are
//!    never discounted: they originate where they are measured.
//! 4. A personalised PageRank on the anomaly-weighted graph (`walk`):
//!    a walker that starts from the alerting service (without an alert, from
//!    the anomalous services) and steps towards callees that explain the
//!    symptom collects where the symptoms converge. A changed service's
//!    score is its local score times its visit frequency relative to the
//!    most visited service; the walk reorders the changed services only
//!    among the places they held before it. Without edges this step changes
//!    nothing.
//!
//! Deterministic: ties break by service name.

pub mod risk;

use std::collections::{BTreeMap, BTreeSet};

use warden_model::Candidate;

/// One input series.
#[derive(Debug, Clone, Copy)]
pub struct Series<'a> {
    pub service: &'a str,
    pub metric: &'a str,
    /// Unix seconds, ascending.
    pub times: &'a [f64],
    /// Values; NaN marks a missing sample.
    pub values: &'a [f64],
}

/// Everything the ranker may use about one incident.
#[derive(Debug, Clone, Default)]
pub struct Case<'a> {
    pub series: Vec<Series<'a>>,
    /// When the fault began or was first noticed, Unix seconds.
    pub onset_s: f64,
    /// Optional normal-period data (same services and metrics); used as the
    /// reference instead of the data before the onset when present.
    pub normal: Vec<Series<'a>>,
    /// Call edges, caller → callee.
    pub edges: Vec<(String, String)>,
    /// The symptom that opened the incident: (service, metric).
    pub alert: Option<(String, String)>,
}

/// Tunables, one set for every dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct RankParams {
    /// Change scores below this (robust z) do not count as anomalous.
    pub min_z: f64,
    /// How much of a service-level symptom is discounted when a callee's
    /// own service-level anomaly explains it (0..1).
    pub explained_discount: f64,
    /// Bonus per share of callers with symptoms.
    pub caller_bonus: f64,
    /// Weight of traffic and unclassified metrics relative to the others.
    pub traffic_weight: f64,
    /// Smallest robust scale, as a fraction of |median|.
    pub rel_scale_floor: f64,
    /// A sibling that a leaf mirrors must itself change at least this much
    /// (robust z) on the mirrored metric to be taken as the leaf's server side.
    pub proxy_min_z: f64,
    /// Smallest robust scale of latency series, as a fraction of |median|
    /// (latency is heavy-tailed: only relative changes mean much).
    pub latency_rel_floor: f64,
    /// Score factor for services the alert's service cannot reach through
    /// call edges (they cannot explain the symptom).
    pub unreachable_factor: f64,
    /// Random walk: probability of following an edge rather than
    /// restarting (PageRank's damping factor; 0.85 as in PageRank). 0 turns
    /// the walk off.
    pub walk_damping: f64,
    /// Random walk: weight of a step back from a callee to its caller,
    /// relative to the caller's anomaly (lets the walk leave a branch that
    /// explains nothing; 0.1 as in MicroCause and PyRCA's `rho`).
    pub walk_back: f64,
}

impl Default for RankParams {
    fn default() -> Self {
        Self {
            min_z: 5.0,
            explained_discount: 0.8,
            caller_bonus: 0.3,
            traffic_weight: 0.5,
            rel_scale_floor: 0.01,
            proxy_min_z: 2.0,
            latency_rel_floor: 0.1,
            unreachable_factor: 0.1,
            walk_damping: 0.85,
            walk_back: 0.1,
        }
    }
}

impl RankParams {
    /// Every parameter: its name, where it lives, and whether it is a
    /// fraction (at most 1).
    fn fields(&mut self) -> [(&'static str, &mut f64, bool); 10] {
        [
            ("min_z", &mut self.min_z, false),
            ("explained_discount", &mut self.explained_discount, true),
            ("caller_bonus", &mut self.caller_bonus, false),
            ("traffic_weight", &mut self.traffic_weight, false),
            ("rel_scale_floor", &mut self.rel_scale_floor, false),
            ("proxy_min_z", &mut self.proxy_min_z, false),
            ("latency_rel_floor", &mut self.latency_rel_floor, false),
            ("unreachable_factor", &mut self.unreachable_factor, true),
            ("walk_damping", &mut self.walk_damping, true),
            ("walk_back", &mut self.walk_back, false),
        ]
    }

    /// Sets one parameter from `name=value` (for ablations from the command
    /// line). The error names the bad part.
    pub fn set(&mut self, assignment: &str) -> Result<(), String> {
        let (name, value) = assignment
            .split_once('=')
            .ok_or_else(|| format!("{assignment:?} is not NAME=VALUE"))?;
        let v: f64 = value
            .trim()
            .parse()
            .map_err(|_| format!("{name}: {value:?} is not a number"))?;
        if !v.is_finite() || v < 0.0 {
            return Err(format!("{name}: {value} must be a finite number ≥ 0"));
        }
        let mut fields = self.fields();
        let known: Vec<&str> = fields.iter().map(|f| f.0).collect();
        let Some((_, slot, fraction)) = fields.iter_mut().find(|f| f.0 == name.trim()) else {
            return Err(format!(
                "unknown parameter {:?} (known: {})",
                name.trim(),
                known.join(", ")
            ));
        };
        if *fraction && v > 1.0 {
            return Err(format!("{name}: {value} must be at most 1"));
        }
        **slot = v;
        Ok(())
    }
}

/// The class of a metric, from its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum MetricClass {
    /// CPU, memory: harmful when high.
    ResourceUp,
    /// Replicas: harmful when low.
    ResourceDown,
    /// Latency, errors: harmful when high.
    SloUp,
    /// Availability, success: harmful when low.
    SloDown,
    /// Request rates: both directions matter, weakly.
    Traffic,
    /// Anything else.
    Other,
}

impl MetricClass {
    /// Classifies a metric by its name (case-insensitive), through its
    /// family.
    pub fn of(metric: &str) -> Self {
        match family(metric) {
            "latency" | "error" => MetricClass::SloUp,
            "availability" => MetricClass::SloDown,
            "cpu" | "memory" => MetricClass::ResourceUp,
            "replicas" => MetricClass::ResourceDown,
            "traffic" => MetricClass::Traffic,
            _ => MetricClass::Other,
        }
    }

    fn is_slo(self) -> bool {
        matches!(self, MetricClass::SloUp | MetricClass::SloDown)
    }

    fn is_resource(self) -> bool {
        matches!(self, MetricClass::ResourceUp | MetricClass::ResourceDown)
    }
}

/// The family of a metric name (finer than its class): `latency`,
/// `error`, `availability`, `cpu`, `memory`, `replicas`, `traffic` or
/// `other`. With an alert, the alert's family is the symptom to explain.
pub fn family(metric: &str) -> &'static str {
    let m = metric.to_ascii_lowercase();
    let has = |k: &str| m.contains(k);
    if has("latency") || has("duration") {
        "latency"
    } else if has("error") || has("fail") || has("5xx") {
        "error"
    } else if has("availability") || has("success") {
        "availability"
    } else if has("cpu") {
        "cpu"
    } else if has("mem") {
        "memory"
    } else if has("replica") || has("ready") {
        "replicas"
    } else if has("request")
        || has("rps")
        || has("qps")
        || has("throughput")
        || has("rate")
        || has("count")
        || has("sum")
    {
        "traffic"
    } else {
        "other"
    }
}

/// The change of one series around the onset.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesChange {
    pub service: String,
    pub metric: String,
    pub class: MetricClass,
    pub reference: f64,
    pub after: f64,
    /// Harmful-direction robust z (0 when the change is harmless).
    pub z: f64,
    /// Harmful-direction change in the metric's own units (0 when harmless).
    pub delta: f64,
    /// When the change began (Unix seconds): the first sample, from one
    /// window length before the onset, that is at least half the change away
    /// from the reference, as is the next sample and at least half of the
    /// samples from it on. None for harmless changes and for traffic (no harmful
    /// direction).
    pub began: Option<f64>,
}

fn finite(times: &[f64], values: &[f64], keep: impl Fn(f64) -> bool) -> Vec<f64> {
    times
        .iter()
        .zip(values)
        .filter(|(t, v)| keep(**t) && v.is_finite())
        .map(|(_, v)| *v)
        .collect()
}

fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Scores one series: how far the data after the onset moved, in the
/// harmful direction, from the reference level (the normal period when
/// given, else the data before the onset), and also from the best sample
/// before the onset — a level that was already there before the onset is
/// not a change the fault made. In units of the reference's robust scale
/// (1.4826 · MAD, floored). None when either side has no data.
pub fn series_change(
    s: &Series<'_>,
    normal: Option<&Series<'_>>,
    onset_s: f64,
    p: &RankParams,
) -> Option<SeriesChange> {
    let normal_ref = normal
        .map(|n| finite(n.times, n.values, |_| true))
        .filter(|r| r.len() >= 5);
    let mut before = finite(s.times, s.values, |t| t < onset_s);
    let mut after = finite(s.times, s.values, |t| t >= onset_s);
    if after.is_empty() || (before.is_empty() && normal_ref.is_none()) {
        return None;
    }
    let class = MetricClass::of(s.metric);
    // Work in the harmful direction: flip series that hurt when low.
    let sign = match class {
        MetricClass::ResourceDown | MetricClass::SloDown => -1.0,
        _ => 1.0,
    };
    let mut reference: Vec<f64> = normal_ref.clone().unwrap_or_else(|| before.clone());
    let center = median(&mut reference);
    let mad = if reference.len() >= 5 {
        let mut dev: Vec<f64> = reference.iter().map(|v| (v - center).abs()).collect();
        1.4826 * median(&mut dev)
    } else {
        0.0
    };
    let rel = if family(s.metric) == "latency" {
        p.latency_rel_floor
    } else {
        p.rel_scale_floor
    };
    // Too few points for a MAD: the spread the reference shows is the best
    // estimate of its noise.
    let spread = if normal_ref.is_none() && (2..5).contains(&before.len()) {
        // `before` is in time order. Its last sample, nearest the onset, may
        // already belong to the fault when it is the most harmful one: then
        // it says nothing about noise.
        let mut pts: Vec<f64> = before.clone();
        let last = pts.last().copied().unwrap_or(f64::NAN);
        if pts.iter().all(|v| sign * v <= sign * last) {
            pts.pop();
        }
        if pts.len() >= 2 {
            let (lo, hi) = pts
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| {
                    (l.min(*v), h.max(*v))
                });
            0.5 * (hi - lo)
        } else {
            0.0
        }
    } else {
        0.0
    };
    let scale = mad.max(spread).max(rel * center.abs()).max(1e-9);
    let after_med = median(&mut after);
    let extreme = |v: &[f64]| v.iter().map(|x| sign * x).fold(f64::NEG_INFINITY, f64::max);
    // Typical level after the onset blended with its extreme, BARO-style.
    let agg = 0.5 * sign * after_med + 0.5 * extreme(&after);
    let mut d = agg - sign * center;
    if !before.is_empty() {
        let best_before = before
            .iter_mut()
            .map(|x| sign * *x)
            .fold(f64::INFINITY, f64::min);
        d = d.min(agg - best_before);
    }
    let delta = match class {
        MetricClass::Traffic | MetricClass::Other => {
            // Both directions matter for traffic.
            let down_agg =
                0.5 * (-after_med) + 0.5 * extreme(&after.iter().map(|x| -x).collect::<Vec<_>>());
            d.max(down_agg + center).max(0.0)
        }
        _ => d.max(0.0),
    };
    let z = delta / scale;
    let began = if delta > 0.0 && !matches!(class, MetricClass::Traffic | MetricClass::Other) {
        let end = s.times.last().copied().unwrap_or(onset_s);
        let from = onset_s - (end - onset_s).max(0.0);
        let pts: Vec<(f64, bool)> = s
            .times
            .iter()
            .zip(s.values)
            .filter(|(t, v)| **t >= from && v.is_finite())
            .map(|(t, v)| (*t, sign * (v - center) >= 0.5 * delta))
            .collect();
        (0..pts.len())
            .find(|&k| {
                let rest = &pts[k..];
                pts[k].1
                    && pts.get(k + 1).is_none_or(|x| x.1)
                    && 2 * rest.iter().filter(|x| x.1).count() >= rest.len()
            })
            .map(|k| pts[k].0)
    } else {
        None
    };
    Some(SeriesChange {
        service: s.service.to_string(),
        metric: s.metric.to_string(),
        class,
        reference: center,
        after: after_med,
        z,
        delta,
        began,
    })
}

#[derive(Debug, Default, Clone)]
struct ServiceEvidence {
    resource: f64,
    slo: f64,
    traffic: f64,
    best: Option<SeriesChange>,
    best_strength: f64,
    /// Strongest change below the threshold (ranks services that are not
    /// anomalous among themselves).
    weak: f64,
    changes: Vec<SeriesChange>,
}

/// Whether `from` reaches `to` through one or more call edges.
pub(crate) fn reaches(callees: &BTreeMap<&str, BTreeSet<&str>>, from: &str, to: &str) -> bool {
    let mut seen = BTreeSet::new();
    let mut stack: Vec<&str> = callees.get(from).into_iter().flatten().copied().collect();
    while let Some(x) = stack.pop() {
        if x == to {
            return true;
        }
        if seen.insert(x) {
            stack.extend(callees.get(x).into_iter().flatten().copied());
        }
    }
    false
}

/// How closely two services' series of `metric` move together around the
/// onset: Pearson correlation over the shared timestamps from one window
/// length before the onset to the end (None with fewer than 3).
fn comovement(
    series: &BTreeMap<(&str, &str), &Series<'_>>,
    a: &str,
    b: &str,
    metric: &str,
    onset_s: f64,
) -> Option<f64> {
    let (x, y) = (series.get(&(a, metric))?, series.get(&(b, metric))?);
    let end = x.times.last().copied().unwrap_or(onset_s);
    let from = onset_s - (end - onset_s).max(0.0) - 1e-9;
    let mut pairs = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < x.times.len() && j < y.times.len() {
        let (ti, tj) = (x.times[i], y.times[j]);
        if (ti - tj).abs() < 1e-6 {
            if ti >= from && x.values[i].is_finite() && y.values[j].is_finite() {
                pairs.push((x.values[i], y.values[j]));
            }
            i += 1;
            j += 1;
        } else if ti < tj {
            i += 1;
        } else {
            j += 1;
        }
    }
    if pairs.len() < 3 {
        return None;
    }
    let n = pairs.len() as f64;
    let (mx, my) = (
        pairs.iter().map(|p| p.0).sum::<f64>() / n,
        pairs.iter().map(|p| p.1).sum::<f64>() / n,
    );
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (u, v) in &pairs {
        sxy += (u - mx) * (v - my);
        sxx += (u - mx).powi(2);
        syy += (v - my).powi(2);
    }
    Some(if sxx > 0.0 && syy > 0.0 {
        sxy / (sxx * syy).sqrt()
    } else {
        0.0
    })
}

/// Whether two services' series of `metric` move together around the
/// onset (correlation ≥ 0.9, see [`comovement`]).
fn lockstep(
    series: &BTreeMap<(&str, &str), &Series<'_>>,
    a: &str,
    b: &str,
    metric: &str,
    onset_s: f64,
) -> bool {
    comovement(series, a, b, metric, onset_s).is_some_and(|r| r >= 0.9)
}

/// How much of a caller's service-level change a callee can explain: a
/// synchronous call adds the callee's latency (and its failures) to the
/// caller's, so the caller's increase is explained at most by the callee's
/// increase in the same units. Compared on the caller's most anomalous
/// service-level metric; None when the callee does not report it.
fn explained_share(caller: &ServiceEvidence, callee: &ServiceEvidence) -> Option<f64> {
    let a = caller
        .changes
        .iter()
        .filter(|c| c.class.is_slo() && c.delta > 0.0)
        .max_by(|x, y| x.z.total_cmp(&y.z))?;
    let b = callee.changes.iter().find(|c| c.metric == a.metric)?;
    Some((b.delta / a.delta).min(1.0))
}

fn strength(z: f64) -> f64 {
    (1.0 + z).ln()
}

/// Ranks every service of the case (from the series and the graph), best
/// candidate first. Each service appears once.
pub fn rank(case: &Case<'_>, p: &RankParams) -> Vec<Candidate> {
    let normal: BTreeMap<(&str, &str), &Series<'_>> = case
        .normal
        .iter()
        .map(|s| ((s.service, s.metric), s))
        .collect();
    let mut ev: BTreeMap<String, ServiceEvidence> = BTreeMap::new();
    for (a, b) in &case.edges {
        ev.entry(a.clone()).or_default();
        ev.entry(b.clone()).or_default();
    }
    let alert_family = case.alert.as_ref().map(|(_, m)| family(m));
    for s in &case.series {
        // Every service of the case is ranked, whatever its metrics.
        let e = ev.entry(s.service.to_string()).or_default();
        // With an alert, its family is the symptom to trace; resource
        // anomalies (own by nature) still count.
        if let Some(f) = alert_family {
            let fam = family(s.metric);
            if fam != f && !matches!(fam, "cpu" | "memory" | "replicas") {
                continue;
            }
        }
        let Some(ch) = series_change(
            s,
            normal.get(&(s.service, s.metric)).copied(),
            case.onset_s,
            p,
        ) else {
            continue;
        };
        if ch.z < p.min_z {
            let w = if ch.class.is_resource() || ch.class.is_slo() {
                1.0
            } else {
                p.traffic_weight
            };
            e.weak = e.weak.max(w * strength(ch.z));
            e.changes.push(ch);
            continue;
        }
        let st = strength(ch.z);
        let weighted = match ch.class {
            c if c.is_resource() => {
                e.resource = e.resource.max(st);
                st
            }
            c if c.is_slo() => {
                e.slo = e.slo.max(st);
                st
            }
            _ => {
                e.traffic = e.traffic.max(p.traffic_weight * st);
                p.traffic_weight * st
            }
        };
        if weighted > e.best_strength {
            e.best_strength = weighted;
            e.best = Some(ch.clone());
        }
        e.changes.push(ch);
    }
    let mut callees: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let mut callers: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (a, b) in &case.edges {
        if a != b {
            callees.entry(a).or_default().insert(b);
            callers.entry(b).or_default().insert(a);
        }
    }
    let anomalous = |s: &str| ev.get(s).is_some_and(|e| e.best.is_some());
    // The alert's own change on its metric, in the metric's units.
    let alert_delta = case.alert.as_ref().and_then(|(svc, m)| {
        ev.get(svc.as_str())
            .and_then(|e| e.changes.iter().find(|c| &c.metric == m))
            .map(|c| c.delta)
            .filter(|d| *d > 0.0)
    });
    let alert_metric = case.alert.as_ref().map(|(_, m)| m.as_str());
    let alert_share = |e: &ServiceEvidence| -> Option<f64> {
        let (ad, am) = (alert_delta?, alert_metric?);
        let c = e.changes.iter().find(|c| c.metric == am)?;
        Some((c.delta / ad).min(1.0))
    };
    let series_of: BTreeMap<(&str, &str), &Series<'_>> = case
        .series
        .iter()
        .map(|s| ((s.service, s.metric), s))
        .collect();
    // Services the alert's service reaches through call edges, passing only
    // through services that changed (a symptom travels up through callers
    // that show it) or that have no data to say otherwise.
    let changed = |x: &str| {
        ev.get(x).is_none_or(|e| {
            e.changes.is_empty() || e.best.is_some() || e.weak >= strength(p.proxy_min_z)
        })
    };
    let reach: Option<BTreeSet<&str>> =
        case.alert
            .as_ref()
            .filter(|_| !case.edges.is_empty())
            .map(|(svc, _)| {
                let mut seen = BTreeSet::new();
                let mut stack = vec![svc.as_str()];
                while let Some(x) = stack.pop() {
                    if seen.insert(x) && (x == svc.as_str() || changed(x)) {
                        stack.extend(callees.get(x).into_iter().flatten().copied());
                    }
                }
                seen
            });
    // A leaf (no observed calls) may be a proxy or the client-side view of a
    // sibling whose edge the graph lacks: a sibling under the same caller
    // that moves in lockstep with it (same metric, correlation ≥ 0.9 around
    // the onset), shows at least a small change itself, and does not reach
    // the leaf through calls (then it would be the leaf's victim). The leaf's
    // symptom is then the sibling's, seen from outside.
    let mut proxy_of: BTreeMap<&str, (&str, f64)> = BTreeMap::new();
    for (name, e) in &ev {
        let is_leaf = callees.get(name.as_str()).is_none_or(|c| c.is_empty());
        if !is_leaf || e.best.is_none() {
            continue;
        }
        for parent in callers.get(name.as_str()).into_iter().flatten() {
            for sib in callees.get(parent).into_iter().flatten() {
                if *sib == name.as_str()
                    || callees.get(sib).is_none_or(|c| c.is_empty())
                    || reaches(&callees, sib, name)
                {
                    continue;
                }
                let Some(se) = ev.get(*sib) else { continue };
                for a in e
                    .changes
                    .iter()
                    .filter(|c| c.class.is_slo() && c.z >= p.min_z && c.delta > 0.0)
                {
                    let Some(b) = se
                        .changes
                        .iter()
                        .find(|c| c.metric == a.metric && c.z >= p.proxy_min_z)
                    else {
                        continue;
                    };
                    if lockstep(&series_of, name, sib, &a.metric, case.onset_s) {
                        let share = (b.delta / a.delta).min(1.0);
                        let entry = proxy_of.entry(name.as_str()).or_insert((sib, 0.0));
                        if share > entry.1 {
                            *entry = (sib, share);
                        }
                    }
                }
            }
        }
    }
    // What each sibling adopts from the proxies that mirror it.
    let mut adopted: BTreeMap<&str, (f64, &str)> = BTreeMap::new();
    for (leaf, (sib, _)) in &proxy_of {
        let slo = ev.get(*leaf).map_or(0.0, |e| e.slo);
        let entry = adopted.entry(*sib).or_insert((0.0, leaf));
        if slo > entry.0 {
            *entry = (slo, leaf);
        }
    }
    // How much of each caller's service-level symptom each callee can
    // explain (0..1), and each proxy leaf's by the sibling it mirrors.
    let mut explains: BTreeMap<(&str, &str), f64> = BTreeMap::new();
    for (leaf, (sib, share)) in &proxy_of {
        explains.insert((*leaf, *sib), *share);
    }
    for (name, cs) in &callees {
        let Some(e) = ev.get(*name) else { continue };
        for c in cs {
            let Some(ce) = ev.get(*c) else { continue };
            if ce.slo <= 0.0 || e.slo <= 0.0 {
                continue;
            }
            let mut share = explained_share(e, ce).unwrap_or((ce.slo / e.slo).min(1.0));
            // Fan-out and queueing amplify a callee's change in its caller; a
            // callee that moves in lockstep with the caller on a shared
            // anomalous metric, with a change of at least a tenth of the
            // caller's, explains it whatever the ratio.
            if share < 1.0 {
                let co_moves = e
                    .changes
                    .iter()
                    .filter(|a| a.class.is_slo() && a.z >= p.min_z && a.delta > 0.0)
                    .any(|a| {
                        ce.changes.iter().any(|b| {
                            b.metric == a.metric && b.z >= p.min_z && b.delta >= 0.1 * a.delta
                        }) && lockstep(&series_of, name, c, &a.metric, case.onset_s)
                    });
                if co_moves {
                    share = 1.0;
                }
            }
            let entry = explains.entry((*name, *c)).or_insert(0.0);
            *entry = entry.max(share);
        }
    }
    // Each service's own evidence for the walk: its local score before the
    // dependency discount and the caller bonus (the walk replaces both with
    // the graph's whole structure).
    let mut own: Vec<f64> = Vec::with_capacity(ev.len());
    // The part of it a dependency could explain (all but resource anomalies).
    let mut explainable: Vec<f64> = Vec::with_capacity(ev.len());
    let mut out: Vec<(f64, Candidate)> = ev
        .iter()
        .map(|(name, e)| {
            let mut evidence = Vec::new();
            // The dependency (or mirrored sibling) that explains most of this
            // service's symptom, and how much.
            let (explainer, explained) = explains
                .range((name.as_str(), "")..)
                .take_while(|((a, _), _)| *a == name.as_str())
                .fold((None, 0.0_f64), |best, ((_, b), s)| {
                    if *s > best.1 { (Some(*b), *s) } else { best }
                });
            let own_slo = match adopted.get(name.as_str()) {
                Some((a, leaf)) if *a > e.slo => {
                    evidence.push(format!("{leaf} looks like its client-side view (moves in lockstep) and carries the symptom"));
                    *a
                }
                _ => e.slo,
            };
            let slo = own_slo * (1.0 - p.explained_discount * explained);
            let base = e.resource + slo + e.traffic;
            let callers_of = callers.get(name.as_str());
            let n_callers = callers_of.map_or(0, |c| c.len());
            let sick_callers: Vec<&str> = callers_of
                .into_iter()
                .flatten()
                .filter(|c| ev.get(**c).is_some_and(|x| x.slo > 0.0))
                .copied()
                .collect();
            let frac = if n_callers == 0 {
                0.0
            } else {
                sick_callers.len() as f64 / n_callers as f64
            };
            let mut score = base * (1.0 + p.caller_bonus * frac);
            // With an alert: how much of the alert's own change could this
            // service account for (same metric, absolute units)? A change too
            // small to produce the symptom weighs less.
            if let Some(share) = alert_share(e) {
                score *= 0.5 + 0.5 * share;
                if share < 0.5 {
                    evidence.push(format!(
                        "accounts for at most {:.0}% of the alert's change",
                        share * 100.0
                    ));
                }
            }
            // A cause's change has the shape of the symptom it causes: the
            // candidate's series of the alert's metric, against the alert's.
            if let Some((svc, m)) = &case.alert
                && svc.as_str() != name.as_str()
                && let Some(r) = comovement(&series_of, svc, name, m, case.onset_s)
            {
                score *= 0.5 + 0.5 * r.max(0.0);
                if r < 0.8 && e.best.is_some() {
                    evidence.push(format!(
                        "its {m} moves unlike the alert's (correlation {r:.2})"
                    ));
                }
            }
            let mut reach_factor = 1.0;
            if let Some(r) = &reach
                && !r.contains(name.as_str())
            {
                score *= p.unreachable_factor;
                reach_factor = p.unreachable_factor;
                if e.best.is_some() {
                    evidence.push("not reachable from the alerting service through calls".into());
                }
            }
            let metric = e
                .best
                .as_ref()
                .map(|b| b.metric.clone())
                .unwrap_or_default();
            if let Some(b) = &e.best {
                let began = b
                    .began
                    .map(|t| format!(", from {:+.0}s", t - case.onset_s))
                    .unwrap_or_default();
                evidence.push(format!(
                    "{} {} vs baseline {} (robust z {:.1}{began})",
                    b.metric,
                    short(b.after),
                    short(b.reference),
                    b.z
                ));
            }
            let mut others: Vec<&SeriesChange> = e
                .changes
                .iter()
                .filter(|c| c.z >= p.min_z && Some(&c.metric) != e.best.as_ref().map(|b| &b.metric))
                .collect();
            others.sort_by(|a, b| b.z.total_cmp(&a.z).then(a.metric.cmp(&b.metric)));
            for c in others.iter().take(2) {
                evidence.push(format!(
                    "{} {} vs {} (z {:.1})",
                    c.metric,
                    short(c.after),
                    short(c.reference),
                    c.z
                ));
            }
            if e.resource > 0.0 {
                evidence.push("own resource anomaly (not propagated from a dependency)".into());
            }
            if let Some(x) = explainer {
                evidence.push(format!(
                    "symptoms {:.0}% explainable by dependency {x}",
                    explained * 100.0
                ));
            } else if e.best.is_some() && callees.get(name.as_str()).is_some_and(|c| !c.is_empty())
            {
                evidence.push("its dependencies show no service-level anomaly".into());
            }
            if !sick_callers.is_empty() {
                evidence.push(format!(
                    "callers with symptoms: {}",
                    sick_callers.join(", ")
                ));
            }
            // Services below the threshold rank among the others by their
            // strongest sub-threshold change, but report no score.
            let is_anomalous = anomalous(name) || adopted.contains_key(name.as_str());
            let key = if is_anomalous {
                score
            } else {
                e.weak * reach_factor
            };
            let local = base * (1.0 + p.caller_bonus * frac);
            if is_anomalous && local > 0.0 {
                let all = e.resource + own_slo + e.traffic;
                own.push(all * score / local);
                explainable.push((own_slo + e.traffic) / all);
            } else {
                // The walk steps only onto services that changed.
                own.push(0.0);
                explainable.push(1.0);
            }
            let score = if is_anomalous { score } else { 0.0 };
            (
                key,
                Candidate {
                    service: name.clone(),
                    metric,
                    score,
                    evidence,
                },
            )
        })
        .collect();
    // The order before the walk: the walk reorders the services that
    // changed among the places they hold in it, and never moves one past a
    // service that did not change (whose order the walk knows nothing of).
    let walking = !case.edges.is_empty() && p.walk_damping > 0.0;
    let before = walking.then(|| {
        let mut b = out.clone();
        demote_proxies(&mut b, &proxy_of);
        by_key(&b)
    });
    if walking {
        // `out` holds the services in `ev`'s order.
        let names: Vec<&str> = ev.keys().map(String::as_str).collect();
        let index: BTreeMap<&str, usize> = names.iter().enumerate().map(|(i, n)| (*n, i)).collect();
        // Call edges weighted by how much of the caller's symptom the callee
        // explains (1 where that is unknown), plus each proxy leaf's edge to
        // the sibling it mirrors.
        let mut down: Vec<(usize, usize, f64)> = Vec::new();
        for (a, cs) in &callees {
            for b in cs {
                let x = explains.get(&(*a, *b)).copied().unwrap_or(1.0);
                down.extend(index.get(a).zip(index.get(b)).map(|(i, j)| (*i, *j, x)));
            }
        }
        for (leaf, (sib, share)) in &proxy_of {
            down.extend(
                index
                    .get(leaf)
                    .zip(index.get(sib))
                    .map(|(i, j)| (*i, *j, *share)),
            );
        }
        // With an alert the walk starts from its service, the symptom.
        let start = case
            .alert
            .as_ref()
            .and_then(|(s, _)| index.get(s.as_str()).copied());
        let visits = walk(&own, &explainable, &down, start, p);
        let (top, most) = visits
            .iter()
            .zip(&names)
            .fold((0.0, ""), |m, (v, n)| if *v > m.0 { (*v, *n) } else { m });
        if top > 0.0 {
            // Only services that changed are reweighed.
            for ((key, c), v) in out
                .iter_mut()
                .zip(&visits)
                .filter(|((_, c), _)| c.score > 0.0)
            {
                // A service the walk never reaches keeps its order below
                // those it does.
                let f = (v / top).max(1e-6);
                *key *= f;
                c.score *= f;
                if f < 0.5 {
                    c.evidence.push(format!(
                        "the walk from the symptoms reaches it {:.0}% as often as {most}",
                        f * 100.0
                    ));
                }
            }
        }
    }
    demote_proxies(&mut out, &proxy_of);
    let after = by_key(&out);
    let order = match before {
        None => after,
        Some(before) => {
            let mut walked = after.iter().filter(|i| out[**i].1.score > 0.0);
            before
                .iter()
                .map(|i| {
                    if out[*i].1.score > 0.0 {
                        walked.next().copied().unwrap_or(*i)
                    } else {
                        *i
                    }
                })
                .collect()
        }
    };
    let mut slots: Vec<Option<Candidate>> = out.into_iter().map(|(_, c)| Some(c)).collect();
    order.iter().filter_map(|i| slots[*i].take()).collect()
}

/// A proxy is the service it mirrors, seen from outside: it never ranks
/// above it.
fn demote_proxies(out: &mut [(f64, Candidate)], proxy_of: &BTreeMap<&str, (&str, f64)>) {
    let keys: BTreeMap<String, f64> = out.iter().map(|(k, c)| (c.service.clone(), *k)).collect();
    for (key, c) in out.iter_mut() {
        if let Some((sib, _)) = proxy_of.get(c.service.as_str())
            && let Some(k) = keys.get(*sib)
            && *key >= *k
        {
            *key = 0.9 * k;
            c.score = c.score.min(*key);
            c.evidence.push(format!(
                "ranked below {sib}, whose client-side view it appears to be"
            ));
        }
    }
}

/// Indices of `out`, best key first; ties by service name.
fn by_key(out: &[(f64, Candidate)]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..out.len()).collect();
    idx.sort_by(|a, b| {
        out[*b]
            .0
            .total_cmp(&out[*a].0)
            .then(out[*a].1.service.cmp(&out[*b].1.service))
    });
    idx
}

/// Personalised PageRank on the anomaly-weighted call graph, in the manner
/// of MonitorRank, MicroRCA and CloudRanger. `anomaly[i]` is service i's own
/// evidence, of which the share `explainable[i]` is service-level (a
/// resource anomaly is the service's own: no dependency explains it);
/// `down` holds (caller, callee, x): the callee can explain the share x of
/// the caller's symptom.
///
/// From a service the walker steps to a callee in proportion to the
/// callee's anomaly × x × the service's explainable share (symptoms travel
/// up to callers, so causes lie down), back to a caller in proportion to
/// `walk_back` × the caller's anomaly, or stays in proportion to how much
/// more anomalous the service is than what its callees explain. With
/// probability 1 − `walk_damping`, or when it has nowhere to go, it
/// restarts: at `start` (the alerting service) when that can go anywhere,
/// else at a service chosen in proportion to its anomaly.
///
/// Returns the stationary visit frequencies (power iteration to 1e-12, at
/// most 200 rounds); all zero when nothing is anomalous. Deterministic.
fn walk(
    anomaly: &[f64],
    explainable: &[f64],
    down: &[(usize, usize, f64)],
    start: Option<usize>,
    p: &RankParams,
) -> Vec<f64> {
    let n = anomaly.len();
    let total: f64 = anomaly.iter().map(|a| a.max(0.0)).sum();
    if total <= 0.0 {
        return vec![0.0; n];
    }
    let a: Vec<f64> = anomaly.iter().map(|x| x.max(0.0) / total).collect();
    let mut rows: Vec<Vec<(usize, f64)>> = vec![Vec::new(); n];
    let mut explained = vec![0.0_f64; n];
    for &(u, v, x) in down.iter().filter(|(u, v, _)| u != v && *u < n && *v < n) {
        let w = a[v] * x * explainable.get(u).copied().unwrap_or(1.0);
        rows[u].push((v, w));
        rows[v].push((u, p.walk_back * a[u]));
        explained[u] = explained[u].max(w);
    }
    // Transition rows, normalised; empty when the walker can only restart.
    for (i, row) in rows.iter_mut().enumerate() {
        row.push((i, (a[i] - explained[i]).max(0.0)));
        row.retain(|x| x.1 > 0.0);
        let sum: f64 = row.iter().map(|x| x.1).sum();
        row.iter_mut().for_each(|x| x.1 /= sum);
    }
    // Restart at the start service, when it can go anywhere; else in
    // proportion to the anomaly.
    let restart: Vec<f64> = match start.filter(|i| rows.get(*i).is_some_and(|r| !r.is_empty())) {
        Some(i) => (0..n).map(|k| if k == i { 1.0 } else { 0.0 }).collect(),
        None => a.clone(),
    };
    let mut pi = restart.clone();
    for _ in 0..200 {
        let stuck: f64 = (0..n).filter(|i| rows[*i].is_empty()).map(|i| pi[i]).sum();
        let mut next: Vec<f64> = restart
            .iter()
            .map(|r| (1.0 - p.walk_damping + p.walk_damping * stuck) * r)
            .collect();
        for (i, row) in rows.iter().enumerate() {
            for (j, w) in row {
                next[*j] += p.walk_damping * pi[i] * w;
            }
        }
        let change: f64 = next.iter().zip(&pi).map(|(x, y)| (x - y).abs()).sum();
        pi = next;
        if change < 1e-12 {
            break;
        }
    }
    pi
}

fn short(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.4}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use warden_model::Rng;

    struct Data {
        times: Vec<f64>,
        cols: Vec<(String, String, Vec<f64>)>,
    }

    /// 40 points; from t=30 on, `faults` apply as (service, metric, delta).
    fn data(seed: u64, services: &[&str], faults: &[(&str, &str, f64)]) -> Data {
        let mut r = Rng::new(seed);
        let times: Vec<f64> = (0..40).map(|i| i as f64 * 15.0).collect();
        let mut cols = Vec::new();
        for s in services {
            for (m, base, sd) in [
                ("cpu", 0.3, 0.01),
                ("latency", 20.0, 1.0),
                ("error", 0.01, 0.002),
            ] {
                let v = times
                    .iter()
                    .map(|t| {
                        let mut x = base + sd * r.normal();
                        if *t >= 450.0 {
                            for (fs, fm, d) in faults {
                                if fs == s && *fm == m {
                                    x += d;
                                }
                            }
                        }
                        x
                    })
                    .collect();
                cols.push((s.to_string(), m.to_string(), v));
            }
        }
        Data { times, cols }
    }

    fn case<'a>(d: &'a Data, edges: &[(&str, &str)]) -> Case<'a> {
        Case {
            series: d
                .cols
                .iter()
                .map(|(s, m, v)| Series {
                    service: s,
                    metric: m,
                    times: &d.times,
                    values: v,
                })
                .collect(),
            onset_s: 450.0,
            normal: vec![],
            alert: None,
            edges: edges
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
        }
    }

    #[test]
    fn parameters_are_set_by_name_and_bad_ones_are_named() {
        let mut p = RankParams::default();
        p.set("walk_damping=0").expect("valid");
        assert_eq!(p.walk_damping, 0.0);
        for (bad, says) in [
            ("walk_damping", "not NAME=VALUE"),
            ("walk_damping=x", "\"x\" is not a number"),
            ("walk_damping=1.5", "at most 1"),
            ("min_z=-1", "≥ 0"),
            ("nope=1", "unknown parameter \"nope\""),
        ] {
            let e = p.set(bad).expect_err(bad);
            assert!(e.contains(says), "{bad}: {e}");
        }
        assert_eq!(p.walk_damping, 0.0, "a rejected value changes nothing");
    }

    #[test]
    fn a_change_knows_when_it_began() {
        let times: Vec<f64> = (0..10).map(|i| f64::from(i) * 60.0).collect();
        // Noticed at 300 s; it showed from 240 s on (one blip at 60 s does
        // not count: the level did not stay).
        let v = [1.0, 3.0, 1.0, 1.0, 3.0, 3.1, 2.9, 3.0, 3.0, 3.1];
        let s = Series {
            service: "a",
            metric: "latency",
            times: &times,
            values: &v,
        };
        let c = series_change(&s, None, 300.0, &RankParams::default()).expect("change");
        assert_eq!(c.began, Some(240.0), "{c:?}");
        // Latency that fell did no harm: no start time.
        let down = [3.0, 3.0, 3.0, 3.0, 3.0, 1.0, 1.0, 1.0, 1.0, 1.0];
        let s = Series { values: &down, ..s };
        let c = series_change(&s, None, 300.0, &RankParams::default()).expect("change");
        assert_eq!(c.began, None, "{c:?}");
    }

    #[test]
    fn metric_classes_from_names() {
        assert_eq!(MetricClass::of("request_latency_p95"), MetricClass::SloUp);
        assert_eq!(MetricClass::of("error_rate"), MetricClass::SloUp);
        assert_eq!(
            MetricClass::of("PetSite_availability-avg"),
            MetricClass::SloDown
        );
        assert_eq!(MetricClass::of("cpu_usage"), MetricClass::ResourceUp);
        assert_eq!(MetricClass::of("mem"), MetricClass::ResourceUp);
        assert_eq!(MetricClass::of("replicas"), MetricClass::ResourceDown);
        assert_eq!(MetricClass::of("requests-sum"), MetricClass::Traffic);
    }

    #[test]
    fn a_leaf_outage_outranks_the_callers_that_show_its_symptoms() {
        let svcs = ["gw", "user", "db"];
        // db degrades; user and gw see the same latency and errors.
        let faults = [
            ("db", "latency", 80.0),
            ("db", "error", 0.1),
            ("user", "latency", 85.0),
            ("user", "error", 0.09),
            ("gw", "latency", 90.0),
            ("gw", "error", 0.08),
        ];
        let d = data(1, &svcs, &faults);
        let r = rank(
            &case(&d, &[("gw", "user"), ("user", "db")]),
            &RankParams::default(),
        );
        assert_eq!(r[0].service, "db", "{r:#?}");
        assert!(
            r[0].evidence
                .iter()
                .any(|e| e.contains("callers with symptoms: user"))
        );
    }

    #[test]
    fn a_resource_anomaly_marks_the_origin_even_mid_chain() {
        let svcs = ["gw", "user", "auth", "db"];
        let faults = [
            ("user", "cpu", 0.6),
            ("user", "latency", 300.0),
            ("gw", "latency", 310.0),
        ];
        let d = data(2, &svcs, &faults);
        let r = rank(
            &case(&d, &[("gw", "user"), ("user", "auth"), ("user", "db")]),
            &RankParams::default(),
        );
        assert_eq!(r[0].service, "user", "{r:#?}");
        assert_eq!(r[0].metric, "latency");
    }

    #[test]
    fn without_a_graph_the_strongest_change_wins() {
        let d = data(
            3,
            &["a", "b", "c"],
            &[("b", "error", 0.3), ("c", "latency", 5.0)],
        );
        let r = rank(&case(&d, &[]), &RankParams::default());
        assert_eq!(r[0].service, "b");
        assert_eq!(r.len(), 3);
        assert_eq!(r[2].score, 0.0, "a is healthy");
    }

    #[test]
    fn harmless_directions_do_not_count() {
        // Latency dropping is not a symptom.
        let d = data(
            4,
            &["a", "b"],
            &[("a", "latency", -15.0), ("b", "error", 0.05)],
        );
        let r = rank(&case(&d, &[]), &RankParams::default());
        assert_eq!(r[0].service, "b");
        assert_eq!(
            r.iter().find(|c| c.service == "a").map(|c| c.score),
            Some(0.0)
        );
    }

    /// A small hand-built case: `cols` are (service, metric, values) over
    /// times 0, 60, …; the onset is at `onset`.
    fn owned(cols: &[(&str, &str, Vec<f64>)]) -> Data {
        let n = cols.first().map_or(0, |c| c.2.len());
        Data {
            times: (0..n).map(|i| i as f64 * 60.0).collect(),
            cols: cols
                .iter()
                .map(|(s, m, v)| (s.to_string(), m.to_string(), v.clone()))
                .collect(),
        }
    }

    fn case_at<'a>(
        d: &'a Data,
        edges: &[(&str, &str)],
        onset: f64,
        alert: Option<(&str, &str)>,
    ) -> Case<'a> {
        let mut c = case(d, edges);
        c.onset_s = onset;
        c.alert = alert.map(|(s, m)| (s.to_string(), m.to_string()));
        c
    }

    #[test]
    fn a_level_already_there_before_the_onset_is_not_a_change() {
        // b was already at 0% availability before the onset; a drops at it.
        let d = owned(&[
            ("a", "availability", vec![100.0, 100.0, 100.0, 80.0, 82.0]),
            ("b", "availability", vec![0.0, 0.0, 0.0, 0.0, 0.0]),
        ]);
        let n = owned(&[
            ("a", "availability", vec![100.0; 10]),
            ("b", "availability", vec![100.0; 10]),
        ]);
        let mut c = case_at(&d, &[], 150.0, None);
        c.normal = n
            .cols
            .iter()
            .map(|(s, m, v)| Series {
                service: s,
                metric: m,
                times: &n.times,
                values: v,
            })
            .collect();
        let r = rank(&c, &RankParams::default());
        assert_eq!(r[0].service, "a");
        assert_eq!(
            r.iter().find(|x| x.service == "b").map(|x| x.score),
            Some(0.0)
        );
    }

    #[test]
    fn the_alert_family_is_the_symptom_and_unreachable_services_cannot_explain_it() {
        let d = owned(&[
            ("front", "latency", vec![1.0, 1.0, 1.0, 3.0, 3.1]),
            ("back", "latency", vec![1.0, 1.0, 1.0, 3.0, 3.0]),
            ("back", "availability", vec![100.0; 5]),
            // Errors elsewhere: a different family than the alert's.
            (
                "noisy",
                "availability",
                vec![100.0, 100.0, 100.0, 10.0, 10.0],
            ),
            // A latency jump on a service the alerting service never calls.
            ("island", "latency", vec![1.0, 1.0, 1.0, 9.0, 9.0]),
        ]);
        let c = case_at(
            &d,
            &[("front", "back"), ("front", "noisy")],
            150.0,
            Some(("front", "latency")),
        );
        let r = rank(&c, &RankParams::default());
        assert_eq!(r[0].service, "back", "{r:#?}");
        let pos = |s: &str| r.iter().position(|x| x.service == s).unwrap_or(99);
        assert!(pos("island") > pos("back"));
        assert_eq!(
            r.iter().find(|x| x.service == "noisy").map(|x| x.score),
            Some(0.0)
        );
    }

    #[test]
    fn a_small_callee_change_cannot_explain_a_large_caller_change() {
        // db's latency rises 30 ms (a big z on a quiet series); app's rises
        // 500 ms: db cannot explain app.
        let d = owned(&[
            ("gw", "latency", vec![0.60, 0.61, 0.60, 1.10, 1.12]),
            ("app", "latency", vec![0.50, 0.51, 0.50, 1.00, 1.01]),
            ("db", "latency", vec![0.010, 0.010, 0.010, 0.040, 0.041]),
        ]);
        let c = case_at(
            &d,
            &[("gw", "app"), ("app", "db")],
            150.0,
            Some(("gw", "latency")),
        );
        let r = rank(&c, &RankParams::default());
        assert_eq!(r[0].service, "app", "{r:#?}");
    }

    #[test]
    fn a_leaf_proxy_in_lockstep_with_a_sibling_is_explained_unless_the_sibling_calls_it() {
        // web calls both "lb" (a leaf: the client-side view of search) and
        // "search"; search is slow because of its own code.
        let d = owned(&[
            ("web", "latency", vec![1.0, 1.0, 1.0, 5.0, 4.0]),
            ("lb", "latency", vec![0.5, 0.5, 0.5, 4.6, 3.6]),
            ("search", "latency", vec![0.4, 0.4, 0.4, 4.4, 3.4]),
            ("index", "latency", vec![0.1, 0.1, 0.1, 0.1, 0.1]),
        ]);
        let edges = [("web", "lb"), ("web", "search"), ("search", "index")];
        let r = rank(
            &case_at(&d, &edges, 150.0, Some(("web", "latency"))),
            &RankParams::default(),
        );
        assert_eq!(r[0].service, "search", "{r:#?}");
        // Now search calls the leaf: the leaf is a dependency, and its
        // lockstep sibling is its victim, not its server side.
        let edges = [("web", "lb"), ("web", "search"), ("search", "lb")];
        let r = rank(
            &case_at(&d, &edges, 150.0, Some(("web", "latency"))),
            &RankParams::default(),
        );
        assert_eq!(r[0].service, "lb", "{r:#?}");
    }

    #[test]
    fn a_proxy_carries_the_symptom_of_the_quieter_service_behind_it() {
        // The load balancer's client-side view loses 7 points of availability;
        // the service behind it loses 3 (below the threshold on its own), in
        // lockstep: the service is the cause.
        let d = owned(&[
            ("web", "availability", vec![100.0, 100.0, 100.0, 96.0, 97.0]),
            ("lb", "availability", vec![100.0, 100.0, 100.0, 93.0, 94.0]),
            (
                "search",
                "availability",
                vec![100.0, 100.0, 100.0, 97.0, 97.5],
            ),
            ("index", "availability", vec![100.0; 5]),
        ]);
        let edges = [("web", "lb"), ("web", "search"), ("search", "index")];
        let r = rank(
            &case_at(&d, &edges, 150.0, Some(("web", "availability"))),
            &RankParams::default(),
        );
        assert_eq!(r[0].service, "search", "{r:#?}");
        assert!(
            r[0].evidence.iter().any(|e| e.contains("client-side view")),
            "{:?}",
            r[0].evidence
        );
    }

    #[test]
    fn a_callee_that_moves_with_its_caller_explains_an_amplified_symptom() {
        // list calls search several times per request: its latency rises
        // three times as much as search's, in lockstep. search is the cause.
        let d = owned(&[
            ("web", "latency", vec![0.10, 0.10, 0.10, 2.2, 1.6]),
            ("list", "latency", vec![0.001, 0.001, 0.001, 2.05, 1.40]),
            ("search", "latency", vec![0.01, 0.01, 0.01, 0.75, 0.52]),
        ]);
        let edges = [("web", "list"), ("list", "search")];
        let r = rank(
            &case_at(&d, &edges, 150.0, Some(("web", "latency"))),
            &RankParams::default(),
        );
        assert_eq!(r[0].service, "search", "{r:#?}");
    }

    #[test]
    fn a_tiny_reference_gives_its_spread_as_noise_unless_the_fault_already_shows_in_it() {
        // Two samples before the onset, no normal period. "noisy" already
        // swings by 30 points: a 6-point dip after the onset is noise.
        // "slow" rose in the last sample before the onset (the fault began
        // early) and stayed up: that is a change, not noise.
        let d = owned(&[
            ("noisy", "availability", vec![47.0, 77.0, 61.0, 56.0]),
            ("slow", "latency", vec![0.006, 0.31, 0.75, 0.78]),
        ]);
        let r = rank(&case_at(&d, &[], 100.0, None), &RankParams::default());
        assert_eq!(r[0].service, "slow", "{r:#?}");
        assert!(r[0].score > 0.0);
        assert_eq!(
            r.iter().find(|x| x.service == "noisy").map(|x| x.score),
            Some(0.0),
            "{r:#?}"
        );
    }

    #[test]
    fn a_symptom_reaches_the_alert_only_through_callers_that_changed() {
        // web calls an orchestrator that calls a worker; the worker's latency
        // jumps but the orchestrator between it and web does not change, so
        // the worker cannot explain web's symptom; the api web also calls can.
        let d = owned(&[
            ("web", "latency", vec![0.10, 0.10, 0.10, 0.30, 0.31]),
            ("orchestrator", "latency", vec![1.0, 1.0, 1.0, 1.0, 1.0]),
            ("worker", "latency", vec![0.5, 0.5, 0.5, 9.0, 9.5]),
            ("api", "latency", vec![0.05, 0.05, 0.05, 0.25, 0.26]),
        ]);
        let edges = [
            ("web", "orchestrator"),
            ("orchestrator", "worker"),
            ("web", "api"),
        ];
        let r = rank(
            &case_at(&d, &edges, 150.0, Some(("web", "latency"))),
            &RankParams::default(),
        );
        assert_eq!(r[0].service, "api", "{r:#?}");
        assert!(
            r.iter()
                .find(|x| x.service == "worker")
                .is_some_and(|x| x.evidence.iter().any(|e| e.contains("not reachable")))
        );
    }

    #[test]
    fn the_cause_moves_like_the_symptom() {
        // The front end's latency jumps and decays. "pool" does the same;
        // "cdn" jumps a little higher but flickers: it changed, but not
        // the way the symptom did.
        let d = owned(&[
            (
                "front",
                "latency",
                vec![1.0, 1.0, 1.0, 1.0, 3.0, 2.6, 2.2, 1.8, 1.5],
            ),
            (
                "pool",
                "latency",
                vec![0.1, 0.1, 0.1, 0.1, 2.0, 1.6, 1.2, 0.8, 0.5],
            ),
            (
                "cdn",
                "latency",
                vec![0.1, 0.1, 0.1, 0.1, 2.4, 0.1, 2.4, 0.1, 2.4],
            ),
        ]);
        let c = case_at(
            &d,
            &[("front", "pool"), ("front", "cdn")],
            240.0,
            Some(("front", "latency")),
        );
        let r = rank(&c, &RankParams::default());
        assert_eq!(r[0].service, "pool", "{r:#?}");
        assert!(
            r.iter()
                .find(|x| x.service == "cdn")
                .is_some_and(|x| x.evidence.iter().any(|e| e.contains("unlike the alert")))
        );
    }

    #[test]
    fn every_service_is_ranked_even_without_a_metric_of_the_alert_family() {
        // "cache" reports only availability; the alert is about latency.
        let d = owned(&[
            ("web", "latency", vec![1.0, 1.0, 1.0, 3.0, 3.0]),
            ("cache", "availability", vec![100.0; 5]),
        ]);
        let r = rank(
            &case_at(&d, &[], 150.0, Some(("web", "latency"))),
            &RankParams::default(),
        );
        let names: Vec<&str> = r.iter().map(|c| c.service.as_str()).collect();
        assert_eq!(names, vec!["web", "cache"]);
    }

    #[test]
    fn ranking_is_deterministic() {
        let d = data(5, &["a", "b"], &[]);
        let c = case(&d, &[("a", "b")]);
        assert_eq!(
            rank(&c, &RankParams::default()),
            rank(&c, &RankParams::default())
        );
    }

    /// Three services call the database, and all three slowed down with it;
    /// a leaf the web tier calls directly slowed down more, but on its own
    /// and unlike the others. The local scores put the leaf first; the walk
    /// sees the symptoms converge on the database.
    #[test]
    fn the_walk_follows_symptoms_to_where_they_converge() {
        let step = |base: f64, hi: f64, last: f64| vec![base, base, base, hi, last];
        let d = owned(&[
            ("web", "latency", step(1.0, 3.0, 2.9)),
            ("lb", "latency", step(0.2, 2.6, 0.3)),
            ("a", "latency", step(0.4, 2.3, 2.2)),
            ("b", "latency", step(0.4, 2.2, 2.1)),
            ("c", "latency", step(0.4, 2.4, 2.3)),
            ("db", "latency", step(0.3, 0.9, 0.85)),
        ]);
        let edges = [
            ("web", "lb"),
            ("web", "a"),
            ("web", "b"),
            ("web", "c"),
            ("a", "db"),
            ("b", "db"),
            ("c", "db"),
        ];
        let c = case_at(&d, &edges, 150.0, Some(("web", "latency")));
        let r = rank(&c, &RankParams::default());
        assert_eq!(r[0].service, "db", "{r:#?}");
        // Without the walk (it always restarts), the leaf wins.
        let no_walk = RankParams {
            walk_damping: 0.0,
            ..RankParams::default()
        };
        let r = rank(&c, &no_walk);
        assert_eq!(r[0].service, "lb", "{r:#?}");
        // Without an alert the walk restarts at the anomalous services.
        let mut c = c;
        c.alert = None;
        let r = rank(&c, &RankParams::default());
        assert_eq!(r[0].service, "db", "{r:#?}");
    }

    #[test]
    fn the_walk_never_moves_a_changed_service_below_an_unchanged_one() {
        // x changed but the walk from the alert never reaches it; y barely
        // moved. x ranked above y before the walk and stays there.
        let d = owned(&[
            ("web", "latency", vec![1.0, 1.0, 1.0, 3.0, 3.0]),
            ("a", "latency", vec![0.5, 0.5, 0.5, 2.5, 2.5]),
            ("x", "latency", vec![0.2, 0.2, 0.2, 0.8, 0.8]),
            ("y", "latency", vec![0.3, 0.31, 0.3, 0.32, 0.33]),
        ]);
        let c = case_at(
            &d,
            &[("web", "a"), ("x", "y")],
            150.0,
            Some(("web", "latency")),
        );
        let r = rank(&c, &RankParams::default());
        let pos = |s: &str| r.iter().position(|c| c.service == s).expect(s);
        assert!(
            r[pos("x")].score > 0.0 && r[pos("y")].score == 0.0,
            "{r:#?}"
        );
        assert!(pos("x") < pos("y"), "{r:#?}");
    }
}
