//! Scoring a table of metrics (the seed's monitoring table: a row per
//! timestamp, a numeric column per feature) with one of the three methods,
//! each row getting a score in [0, 1], a flag and a reason.

use serde::Serialize;

use crate::{
    Direction, Ensemble, EnsembleParams, FitError, IsolationForest, IsolationForestParams,
    RobustDetector, RobustParams,
};

/// Which detector scores the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Isolation Forest fitted on the whole table (the seed's batch use),
    /// rows flagged at the contamination quantile.
    Iforest,
    /// Rolling median / MAD per column, streaming.
    Robust,
    /// The streaming ensemble per column (the default).
    Ensemble,
}

impl Method {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "iforest" | "isolation_forest" => Some(Self::Iforest),
            "robust" => Some(Self::Robust),
            "ensemble" => Some(Self::Ensemble),
            _ => None,
        }
    }
}

/// One row's verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RowScore {
    /// Anomaly score in [0, 1]; higher is more anomalous.
    pub score: f64,
    pub anomaly: bool,
    /// The column that explains the score best.
    pub feature: usize,
    pub value: f64,
    /// What was expected of that column.
    pub baseline: f64,
    /// Its distance from the baseline in robust-scale units.
    pub z: f64,
    /// The detector (for the ensemble, the component) that spoke.
    pub detector: &'static str,
}

/// Scores `rows` (each `n` finite values; `ts_ms` one timestamp per row,
/// ascending). Streaming methods score each row from the rows before it.
pub fn score_table(
    ts_ms: &[i64],
    rows: &[Vec<f64>],
    method: Method,
    contamination: f64,
) -> Result<Vec<RowScore>, FitError> {
    let n = rows.first().map_or(0, Vec::len);
    match method {
        Method::Iforest => {
            let params = IsolationForestParams {
                contamination,
                ..Default::default()
            };
            let forest = IsolationForest::fit(rows, &params)?;
            let scores = forest.score_samples(rows);
            // The reason: the column farthest from its median in MAD units.
            let stats: Vec<(f64, f64)> = (0..n)
                .map(|c| {
                    let mut v: Vec<f64> = rows.iter().map(|r| r[c]).collect();
                    let med = crate::robust::median(&mut v);
                    for x in &mut v {
                        *x = (*x - med).abs();
                    }
                    let mad = 1.4826 * crate::robust::median(&mut v);
                    (med, mad.max(1e-3 * med.abs()).max(1e-12))
                })
                .collect();
            Ok(rows
                .iter()
                .zip(scores)
                .map(|(r, s)| {
                    let (feature, z) = (0..n)
                        .map(|c| (c, (r[c] - stats[c].0) / stats[c].1))
                        .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
                        .unwrap_or((0, 0.0));
                    RowScore {
                        score: -s,
                        anomaly: s < forest.offset(),
                        feature,
                        value: r.get(feature).copied().unwrap_or(f64::NAN),
                        baseline: stats.get(feature).map_or(f64::NAN, |s| s.0),
                        z,
                        detector: "iforest",
                    }
                })
                .collect())
        }
        Method::Robust => {
            let params = RobustParams {
                confirm: 1,
                direction: Direction::Both,
                ..Default::default()
            };
            let mut ds: Vec<RobustDetector> = (0..n)
                .map(|_| RobustDetector::new(params.clone()))
                .collect();
            Ok(rows
                .iter()
                .zip(ts_ms)
                .map(|(r, t)| {
                    let mut best: Option<RowScore> = None;
                    for (c, d) in ds.iter_mut().enumerate() {
                        let s = d.observe(*t, r[c]);
                        let score = s.z.abs() / (s.z.abs() + params.z_threshold);
                        if best.as_ref().is_none_or(|b| score > b.score) {
                            best = Some(RowScore {
                                score,
                                anomaly: s.anomalous,
                                feature: c,
                                value: r[c],
                                baseline: s.baseline,
                                z: s.z,
                                detector: "robust",
                            });
                        }
                    }
                    let any = ds.iter().any(|d| d.last().is_some_and(|s| s.anomalous));
                    let mut b = best.unwrap_or_else(|| quiet_row(r));
                    b.anomaly = any;
                    b
                })
                .collect())
        }
        Method::Ensemble => {
            let p = EnsembleParams::default();
            let mut es: Vec<Ensemble> = (0..n).map(|_| Ensemble::new(p.clone())).collect();
            Ok(rows
                .iter()
                .zip(ts_ms)
                .map(|(r, t)| {
                    let mut best: Option<RowScore> = None;
                    for (c, e) in es.iter_mut().enumerate() {
                        let s = e.observe(*t, r[c]);
                        // A flagged column explains the row before any
                        // merely high-scoring one (its score may be held
                        // at 0 by an earlier alarm's quiet period).
                        let score = if s.anomaly { s.strength } else { s.score };
                        let key = (s.anomaly, score);
                        if best.as_ref().is_none_or(|b| key > (b.anomaly, b.score)) {
                            best = Some(RowScore {
                                score,
                                anomaly: s.anomaly,
                                feature: c,
                                value: r[c],
                                baseline: s.baseline,
                                z: s.z,
                                detector: s.component.as_str(),
                            });
                        }
                    }
                    best.unwrap_or_else(|| quiet_row(r))
                })
                .collect())
        }
    }
}

fn quiet_row(r: &[f64]) -> RowScore {
    RowScore {
        score: 0.0,
        anomaly: false,
        feature: 0,
        value: r.first().copied().unwrap_or(f64::NAN),
        baseline: f64::NAN,
        z: 0.0,
        detector: "none",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synthetic::service_metrics;

    fn table() -> (Vec<i64>, Vec<Vec<f64>>) {
        let mut rows = service_metrics(600, 5);
        // A clean table, then one obvious incident: latency × 20.
        for r in rows.iter_mut() {
            r[0] = r[0].min(0.6);
            r[1] = r[1].min(0.7);
            r[2] = r[2].min(400.0);
            r[3] = r[3].min(0.02);
        }
        rows[500][2] = 5000.0;
        let ts = (0..rows.len() as i64).map(|i| i * 60_000).collect();
        (ts, rows)
    }

    #[test]
    fn every_method_flags_the_incident_and_names_its_column() {
        let (ts, rows) = table();
        for m in [Method::Iforest, Method::Robust, Method::Ensemble] {
            let out = score_table(&ts, &rows, m, 0.1).expect("scores");
            assert_eq!(out.len(), rows.len());
            let r = &out[500];
            assert!(r.anomaly, "{m:?}: {r:?}");
            assert_eq!(r.feature, 2, "{m:?}: {r:?}");
            assert!(r.z > 5.0, "{m:?}: {r:?}");
            assert!((0.0..=1.0).contains(&r.score), "{m:?}: {r:?}");
            let top = out
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.score.total_cmp(&b.1.score))
                .map(|(i, _)| i);
            assert_eq!(top, Some(500), "{m:?}");
        }
    }

    #[test]
    fn methods_parse_by_name() {
        assert_eq!(Method::parse("iforest"), Some(Method::Iforest));
        assert_eq!(Method::parse("ensemble"), Some(Method::Ensemble));
        assert_eq!(Method::parse("lstm"), None);
    }
}
