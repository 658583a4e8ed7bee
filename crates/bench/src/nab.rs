//! The Numenta Anomaly Benchmark's scoring rules (NAB v1.1), written from
//! its published description (shared/data/nab/PROVENANCE.md and NAB's
//! `sweeper.py` semantics):
//!
//! - the first `min(floor(0.15 n), 750)` rows of a file are probationary:
//!   neither rewarded nor penalised;
//! - a window is rewarded once, for its best (earliest) detection, with
//!   `tpWeight · σ(p) / σ(-1)`, `p = -(right − i + 1) / width`; an undetected
//!   window costs `−fnWeight`;
//! - a detection outside every window costs `fpWeight · σ(q)`, `q` its
//!   distance past the preceding window's right edge over that window's
//!   width − 1 (σ = −1 beyond 3); before any window it costs `−fpWeight`;
//! - `σ(x) = 2 / (1 + e^{5x}) − 1`;
//! - one threshold per profile for the whole corpus, the one that maximises
//!   the total raw score (every distinct anomaly score is tried);
//! - normalised score `100 · (raw − null) / (perfect − null)`, `perfect` =
//!   `tpWeight ·` the number of windows, `null` = the raw score of a detector
//!   that never fires.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use warden_detect::{Ensemble, EnsembleParams};
use warden_model::Timestamp;

use crate::rca_case::{CaseError, bad, finite_number, read_text};

/// A profile's cost matrix.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
pub struct CostMatrix {
    #[serde(rename = "tpWeight")]
    pub tp: f64,
    #[serde(rename = "fpWeight")]
    pub fp: f64,
    #[serde(rename = "fnWeight")]
    pub fn_: f64,
}

/// Reads `config/profiles.json`: profile name → cost matrix.
pub fn read_profiles(path: &Path) -> Result<BTreeMap<String, CostMatrix>, CaseError> {
    #[derive(Deserialize)]
    struct P {
        #[serde(rename = "CostMatrix")]
        cost: CostMatrix,
    }
    let text = read_text(path)?;
    let p: BTreeMap<String, P> =
        serde_json::from_str(&text).map_err(|e| bad(path, e.to_string()))?;
    Ok(p.into_iter().map(|(k, v)| (k, v.cost)).collect())
}

/// Reads `labels/combined_windows.json`: `category/file.csv` → windows.
pub fn read_windows(
    path: &Path,
) -> Result<BTreeMap<String, Vec<(Timestamp, Timestamp)>>, CaseError> {
    let text = read_text(path)?;
    let raw: BTreeMap<String, Vec<(String, String)>> =
        serde_json::from_str(&text).map_err(|e| bad(path, e.to_string()))?;
    raw.into_iter()
        .map(|(k, ws)| {
            let ws = ws
                .into_iter()
                .map(|(a, b)| {
                    let p = |s: &str| {
                        Timestamp::parse_rfc3339(s).map_err(|e| bad(path, format!("{k}: {e}")))
                    };
                    Ok((p(&a)?, p(&b)?))
                })
                .collect::<Result<Vec<_>, CaseError>>()?;
            Ok((k, ws))
        })
        .collect()
}

/// NAB's scaled sigmoid.
pub fn scaled_sigmoid(x: f64) -> f64 {
    if x > 3.0 {
        -1.0
    } else {
        2.0 / (1.0 + (5.0 * x).exp()) - 1.0
    }
}

/// Probationary rows of a file with `n` rows.
pub fn probationary_length(n: usize) -> usize {
    ((0.15 * n as f64).floor() as usize).min(750)
}

/// One scorable row: its anomaly score, the raw score it would earn if
/// detected, and the window it lies in (a corpus-wide id).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub anomaly_score: f64,
    pub sweep: f64,
    pub window: Option<usize>,
}

/// Scorable points of one file (probationary rows dropped). Window ids start
/// at `first_window`; returns the points and the ids of windows that have at
/// least one scorable row.
pub fn file_points(
    timestamps: &[Timestamp],
    scores: &[f64],
    windows: &[(Timestamp, Timestamp)],
    cost: &CostMatrix,
    first_window: usize,
) -> (Vec<Point>, Vec<usize>) {
    let max_tp = scaled_sigmoid(-1.0);
    let probation = probationary_length(timestamps.len());
    let index_of = |t: &Timestamp| timestamps.iter().position(|x| x == t);
    let spans: Vec<Option<(usize, usize)>> = windows
        .iter()
        .map(|(a, b)| Some((index_of(a)?, index_of(b)?)))
        .collect();
    let mut out = Vec::new();
    let mut scorable_windows = Vec::new();
    let mut cur: Option<(usize, usize, usize)> = None; // (id, left, right)
    let mut prev: Option<(usize, usize)> = None; // (right, width)
    let mut next = 0usize;
    for (i, score) in scores.iter().enumerate() {
        if cur.is_none() {
            while next < spans.len() && spans[next].is_none() {
                next += 1;
            }
            if let Some(Some((l, r))) = spans.get(next)
                && *l == i
            {
                cur = Some((first_window + next, *l, *r));
                next += 1;
            }
        }
        let (sweep, window) = match cur {
            Some((id, l, r)) => {
                let width = (r - l + 1) as f64;
                let pos = -((r as f64) - (i as f64) + 1.0) / width;
                (scaled_sigmoid(pos) * cost.tp / max_tp, Some(id))
            }
            None => {
                let raw = match prev {
                    None => -1.0,
                    Some((pr, pw)) => {
                        scaled_sigmoid((i as f64 - pr as f64).abs() / (pw as f64 - 1.0))
                    }
                };
                (raw * cost.fp, None)
            }
        };
        if i >= probation {
            if let Some(w) = window
                && !scorable_windows.contains(&w)
            {
                scorable_windows.push(w);
            }
            out.push(Point {
                anomaly_score: *score,
                sweep,
                window,
            });
        }
        if let Some((_, l, r)) = cur
            && i == r
        {
            prev = Some((r, r - l + 1));
            cur = None;
        }
    }
    (out, scorable_windows)
}

/// The best corpus threshold and its raw score: every distinct anomaly score
/// is tried as "detect at or above".
pub fn best_threshold(points: &[Point], windows: &[usize], cost: &CostMatrix) -> (f64, f64) {
    let mut sorted: Vec<&Point> = points.iter().collect();
    sorted.sort_by(|a, b| b.anomaly_score.total_cmp(&a.anomaly_score));
    let mut window_part: BTreeMap<usize, f64> = windows.iter().map(|w| (*w, -cost.fn_)).collect();
    let mut window_sum: f64 = window_part.values().sum();
    let mut fp_part = 0.0;
    let mut best = (1.1, window_sum + fp_part);
    let mut i = 0;
    while i < sorted.len() {
        let t = sorted[i].anomaly_score;
        while i < sorted.len() && sorted[i].anomaly_score == t {
            let p = sorted[i];
            match p.window {
                None => fp_part += p.sweep,
                Some(w) => {
                    let cur = window_part.entry(w).or_insert(-cost.fn_);
                    if p.sweep > *cur {
                        window_sum += p.sweep - *cur;
                        *cur = p.sweep;
                    }
                }
            }
            i += 1;
        }
        let score = window_sum + fp_part;
        if score > best.1 {
            best = (t, score);
        }
    }
    best
}

/// One detector's output for one file.
#[derive(Debug, Clone, PartialEq)]
pub struct FileOutput {
    /// `category/file.csv`, as in the labels.
    pub name: String,
    pub timestamps: Vec<Timestamp>,
    pub scores: Vec<f64>,
}

/// Per-profile result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProfileScore {
    pub threshold: f64,
    pub raw: f64,
    pub null: f64,
    pub perfect: f64,
    pub normalized: f64,
}

/// Scores a whole corpus under one profile.
pub fn score_corpus(
    outputs: &[FileOutput],
    windows: &BTreeMap<String, Vec<(Timestamp, Timestamp)>>,
    cost: &CostMatrix,
) -> ProfileScore {
    let mut points = Vec::new();
    let mut ids = Vec::new();
    let mut n_windows = 0usize;
    for o in outputs {
        let ws = windows.get(&o.name).cloned().unwrap_or_default();
        let (p, w) = file_points(&o.timestamps, &o.scores, &ws, cost, n_windows);
        n_windows += ws.len();
        points.extend(p);
        ids.extend(w);
    }
    let (threshold, raw) = best_threshold(&points, &ids, cost);
    // The null detector never fires: every scorable window is missed.
    let null = -cost.fn_ * ids.len() as f64;
    let perfect = cost.tp * n_windows as f64;
    let normalized = if perfect > null {
        100.0 * (raw - null) / (perfect - null)
    } else {
        0.0
    };
    ProfileScore {
        threshold,
        raw,
        null,
        perfect,
        normalized,
    }
}

/// Reads one NAB result file (`timestamp,value,anomaly_score,…`).
pub fn read_result_file(path: &Path, name: &str) -> Result<FileOutput, CaseError> {
    let mut rdr = csv::Reader::from_path(path).map_err(|e| bad(path, e.to_string()))?;
    let headers = rdr.headers().map_err(|e| bad(path, e.to_string()))?.clone();
    let col = |n: &str| {
        headers
            .iter()
            .position(|h| h == n)
            .ok_or_else(|| bad(path, format!("no column {n:?}")))
    };
    let (ti, si) = (col("timestamp")?, col("anomaly_score")?);
    let mut out = FileOutput {
        name: name.to_string(),
        timestamps: Vec::new(),
        scores: Vec::new(),
    };
    for (row, rec) in rdr.records().enumerate() {
        let line = row + 2;
        let rec = rec.map_err(|e| bad(path, format!("line {line}: {e}")))?;
        let t = rec.get(ti).unwrap_or("");
        out.timestamps.push(
            Timestamp::parse_rfc3339(t)
                .map_err(|e| bad(path, format!("line {line} column {}: {e}", ti + 1)))?,
        );
        let s = rec.get(si).unwrap_or("");
        let v: f64 = finite_number(s).ok_or_else(|| {
            bad(
                path,
                format!(
                    "line {line} column {}: anomaly_score {s:?} is not a number",
                    si + 1
                ),
            )
        })?;
        out.scores.push(v);
    }
    Ok(out)
}

/// Scores a results directory in NAB's layout
/// (`<results>/<category>/<detector>_<file>.csv`) against the labels in
/// `<data>/labels` and the profiles in `<data>/config`.
pub fn score_results(
    data: &Path,
    results: &Path,
    detector: &str,
) -> Result<BTreeMap<String, ProfileScore>, CaseError> {
    let windows = read_windows(&data.join("labels/combined_windows.json"))?;
    let profiles = read_profiles(&data.join("config/profiles.json"))?;
    let mut outputs = Vec::new();
    for name in windows.keys() {
        let (category, file) = name
            .split_once('/')
            .ok_or_else(|| bad(data, format!("label key {name:?}")))?;
        let path = results.join(category).join(format!("{detector}_{file}"));
        if !path.is_file() {
            return Err(bad(&path, "missing result file"));
        }
        outputs.push(read_result_file(&path, name)?);
    }
    Ok(profiles
        .iter()
        .map(|(k, c)| (k.clone(), score_corpus(&outputs, &windows, c)))
        .collect())
}

/// One NAB data file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Series {
    /// Timestamps as written in the file.
    pub text: Vec<String>,
    pub timestamps: Vec<Timestamp>,
    pub values: Vec<f64>,
}

/// Reads one NAB data file (`timestamp,value`).
pub fn read_data_file(path: &Path) -> Result<Series, CaseError> {
    let mut rdr = csv::Reader::from_path(path).map_err(|e| bad(path, e.to_string()))?;
    let headers = rdr.headers().map_err(|e| bad(path, e.to_string()))?.clone();
    let col = |n: &str| {
        headers
            .iter()
            .position(|h| h == n)
            .ok_or_else(|| bad(path, format!("no column {n:?}")))
    };
    let (ti, vi) = (col("timestamp")?, col("value")?);
    let mut out = Series::default();
    for (row, rec) in rdr.records().enumerate() {
        let line = row + 2;
        let rec = rec.map_err(|e| bad(path, format!("line {line}: {e}")))?;
        let t = rec.get(ti).unwrap_or("");
        out.timestamps.push(
            Timestamp::parse_rfc3339(t)
                .map_err(|e| bad(path, format!("line {line} column {}: {e}", ti + 1)))?,
        );
        out.text.push(t.to_string());
        let v = rec.get(vi).unwrap_or("");
        out.values.push(finite_number(v).ok_or_else(|| {
            bad(
                path,
                format!("line {line} column {}: value {v:?} is not a number", vi + 1),
            )
        })?);
    }
    Ok(out)
}

/// Runs the default streaming ensemble over one series: each score uses only
/// the points before it.
pub fn detect_series(timestamps: &[Timestamp], values: &[f64]) -> Vec<f64> {
    let mut e = Ensemble::new(EnsembleParams::default());
    timestamps
        .iter()
        .zip(values)
        .map(|(t, v)| e.observe(t.millis(), *v).score)
        .collect()
}

/// What `warden bench nab` measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NabReport {
    pub files: usize,
    pub points: usize,
    pub profiles: BTreeMap<String, ProfileScore>,
}

/// Runs the detector over every series listed in the labels, writes
/// `out/<category>/warden_<file>.csv` (`timestamp,value,anomaly_score,label`;
/// the label column is written for NAB's tools and never read by the
/// detector), then scores the directory. `progress(done, total)` is called
/// after each file.
pub fn run_bench(
    data: &Path,
    out: &Path,
    mut progress: impl FnMut(usize, usize),
) -> Result<NabReport, CaseError> {
    let windows = read_windows(&data.join("labels/combined_windows.json"))?;
    let total = windows.len();
    let mut points = 0;
    for (done, (name, ws)) in windows.iter().enumerate() {
        let (category, file) = name
            .split_once('/')
            .ok_or_else(|| bad(data, format!("label key {name:?}")))?;
        let series = read_data_file(&data.join("data").join(name))?;
        let scores = detect_series(&series.timestamps, &series.values);
        points += scores.len();
        let dir = out.join(category);
        std::fs::create_dir_all(&dir).map_err(|e| bad(&dir, e.to_string()))?;
        let path = dir.join(format!("warden_{file}"));
        let mut w = csv::Writer::from_path(&path).map_err(|e| bad(&path, e.to_string()))?;
        let io = |e: csv::Error| bad(&path, e.to_string());
        w.write_record(["timestamp", "value", "anomaly_score", "label"])
            .map_err(io)?;
        for (i, s) in scores.iter().enumerate() {
            let t = &series.timestamps[i];
            let label = ws.iter().any(|(a, b)| a <= t && t <= b);
            w.write_record([
                series.text[i].clone(),
                series.values[i].to_string(),
                format!("{s:.6}"),
                (label as u8).to_string(),
            ])
            .map_err(io)?;
        }
        w.flush().map_err(|e| bad(&path, e.to_string()))?;
        progress(done + 1, total);
    }
    Ok(NabReport {
        files: total,
        points,
        profiles: score_results(data, out, "warden")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const STD: CostMatrix = CostMatrix {
        tp: 1.0,
        fp: 0.11,
        fn_: 1.0,
    };

    fn ts(n: usize) -> Vec<Timestamp> {
        (0..n)
            .map(|i| Timestamp::from_secs(i as i64 * 60))
            .collect()
    }

    #[test]
    fn scaled_sigmoid_matches_nab() {
        assert!((scaled_sigmoid(-1.0) - 0.986_614_298_151_430_3).abs() < 1e-12);
        assert!((scaled_sigmoid(-0.5) - 0.848_283_639_957_512_9).abs() < 1e-12);
        assert_eq!(scaled_sigmoid(0.0), 0.0);
        assert_eq!(scaled_sigmoid(3.5), -1.0);
        assert_eq!(probationary_length(1000), 150);
        assert_eq!(probationary_length(10_000), 750);
    }

    #[test]
    fn detection_at_the_left_edge_scores_one_and_none_scores_minus_one() {
        // 100 rows, probation 15, one window rows 40..=49.
        let t = ts(100);
        let w = [(t[40], t[49])];
        let mut s = vec![0.0; 100];
        s[40] = 1.0;
        let (p, ids) = file_points(&t, &s, &w, &STD, 0);
        assert_eq!(ids, vec![0]);
        let (thr, raw) = best_threshold(&p, &ids, &STD);
        assert_eq!(thr, 1.0);
        assert!((raw - 1.0).abs() < 1e-12, "{raw}");
        let zero = vec![0.0; 100];
        let (p, ids) = file_points(&t, &zero, &w, &STD, 0);
        // Detecting everything is worse than detecting nothing here.
        let (_, raw) = best_threshold(&p, &ids, &STD);
        assert!((raw - (-1.0)).abs() < 1e-12, "{raw}");
    }

    #[test]
    fn late_detections_earn_less_and_false_positives_cost_by_distance() {
        let t = ts(100);
        let w = [(t[40], t[49])];
        let score_with = |idx: &[usize]| {
            let mut s = vec![0.0; 100];
            for i in idx {
                s[*i] = 1.0;
            }
            let (p, ids) = file_points(&t, &s, &w, &STD, 0);
            // Score at threshold 1.0 exactly.
            let mut parts: BTreeMap<usize, f64> = ids.iter().map(|i| (*i, -1.0)).collect();
            let mut fp = 0.0;
            for x in p.iter().filter(|x| x.anomaly_score >= 1.0) {
                match x.window {
                    Some(w) => {
                        let e = parts.entry(w).or_insert(-1.0);
                        *e = e.max(x.sweep);
                    }
                    None => fp += x.sweep,
                }
            }
            parts.values().sum::<f64>() + fp
        };
        let early = score_with(&[40]);
        let late = score_with(&[48]);
        assert!(early > late && late > 0.0, "{early} {late}");
        // Right after the window an FP costs little; far after, the full 0.11.
        let near = score_with(&[40, 50]) - early;
        let far = score_with(&[40, 95]) - early;
        assert!(
            near > -0.11 && near < 0.0 && (far + 0.11).abs() < 1e-9,
            "{near} {far}"
        );
        // Before any window: the full cost.
        let before = score_with(&[40, 20]) - early;
        assert!((before + 0.11).abs() < 1e-12);
        // A detection in the probationary rows counts for nothing.
        assert!((score_with(&[40, 5]) - early).abs() < 1e-12);
    }
}
