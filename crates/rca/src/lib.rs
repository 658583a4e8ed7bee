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
//!
//! Deterministic: ties break by service name.

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
}

impl Default for RankParams {
    fn default() -> Self {
        Self {
            min_z: 4.0,
            explained_discount: 0.8,
            caller_bonus: 0.3,
            traffic_weight: 0.5,
            rel_scale_floor: 0.01,
        }
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
    /// Classifies a metric by its name (case-insensitive).
    pub fn of(metric: &str) -> Self {
        let m = metric.to_ascii_lowercase();
        let has = |k: &str| m.contains(k);
        if has("latency") || has("duration") || has("error") || has("fail") || has("5xx") {
            MetricClass::SloUp
        } else if has("availability") || has("success") {
            MetricClass::SloDown
        } else if has("cpu") || has("mem") {
            MetricClass::ResourceUp
        } else if has("replica") || has("ready") {
            MetricClass::ResourceDown
        } else if has("request")
            || has("rps")
            || has("qps")
            || has("throughput")
            || has("rate")
            || has("count")
            || has("sum")
        {
            MetricClass::Traffic
        } else {
            MetricClass::Other
        }
    }

    fn is_slo(self) -> bool {
        matches!(self, MetricClass::SloUp | MetricClass::SloDown)
    }

    fn is_resource(self) -> bool {
        matches!(self, MetricClass::ResourceUp | MetricClass::ResourceDown)
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

/// Scores one series: reference median/MAD versus the data after the onset.
/// Returns None when either side has too little data.
pub fn series_change(
    s: &Series<'_>,
    normal: Option<&Series<'_>>,
    onset_s: f64,
    p: &RankParams,
) -> Option<SeriesChange> {
    let mut reference = match normal {
        Some(n) => finite(n.times, n.values, |_| true),
        None => Vec::new(),
    };
    if reference.len() < 3 {
        reference = finite(s.times, s.values, |t| t < onset_s);
    }
    let mut after = finite(s.times, s.values, |t| t >= onset_s);
    if reference.len() < 3 || after.is_empty() {
        return None;
    }
    let med = median(&mut reference);
    let mut dev: Vec<f64> = reference.iter().map(|v| (v - med).abs()).collect();
    let mad = median(&mut dev);
    let scale = (1.4826 * mad).max(p.rel_scale_floor * med.abs()).max(1e-9);
    let after_med = median(&mut after);
    let after_max = after.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let after_min = after.iter().copied().fold(f64::INFINITY, f64::min);
    let class = MetricClass::of(s.metric);
    // Blend the typical level after the onset with its extreme, BARO-style.
    let up = (0.5 * (after_med - med) + 0.5 * (after_max - med)) / scale;
    let down = (0.5 * (med - after_med) + 0.5 * (med - after_min)) / scale;
    let z = match class {
        MetricClass::ResourceUp | MetricClass::SloUp => up.max(0.0),
        MetricClass::ResourceDown | MetricClass::SloDown => down.max(0.0),
        MetricClass::Traffic | MetricClass::Other => up.max(down).max(0.0),
    };
    Some(SeriesChange {
        service: s.service.to_string(),
        metric: s.metric.to_string(),
        class,
        reference: med,
        after: after_med,
        z,
    })
}

#[derive(Debug, Default, Clone)]
struct ServiceEvidence {
    resource: f64,
    slo: f64,
    traffic: f64,
    best: Option<SeriesChange>,
    best_strength: f64,
    changes: Vec<SeriesChange>,
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
    for s in &case.series {
        let e = ev.entry(s.service.to_string()).or_default();
        let Some(ch) = series_change(
            s,
            normal.get(&(s.service, s.metric)).copied(),
            case.onset_s,
            p,
        ) else {
            continue;
        };
        if ch.z < p.min_z {
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
    let mut out: Vec<Candidate> = ev
        .iter()
        .map(|(name, e)| {
            let mut evidence = Vec::new();
            // How much of this service's symptom its callees explain.
            let mut explained: f64 = 0.0;
            let mut explainer = None;
            for c in callees.get(name.as_str()).into_iter().flatten() {
                let cs = ev.get(*c).map_or(0.0, |x| x.slo);
                if cs > 0.0 && e.slo > 0.0 {
                    let share = (cs / e.slo).min(1.0);
                    if share > explained {
                        explained = share;
                        explainer = Some(*c);
                    }
                }
            }
            let slo = e.slo * (1.0 - p.explained_discount * explained);
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
            let score = base * (1.0 + p.caller_bonus * frac);
            let metric = e
                .best
                .as_ref()
                .map(|b| b.metric.clone())
                .unwrap_or_default();
            if let Some(b) = &e.best {
                evidence.push(format!(
                    "{} {} vs baseline {} (robust z {:.1})",
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
            Candidate {
                service: name.clone(),
                metric,
                score: if anomalous(name) { score } else { 0.0 },
                evidence,
            }
        })
        .collect();
    out.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.service.cmp(&b.service)));
    out
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
            edges: edges
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
        }
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

    #[test]
    fn ranking_is_deterministic() {
        let d = data(5, &["a", "b"], &[]);
        let c = case(&d, &[("a", "b")]);
        assert_eq!(
            rank(&c, &RankParams::default()),
            rank(&c, &RankParams::default())
        );
    }
}
