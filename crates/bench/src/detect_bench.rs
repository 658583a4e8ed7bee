//! `warden bench detect`: the detection engine's three performance figures,
//! measured in one run on this machine.
//!
//! 1. Isolation Forest fit + `score_samples` of `rows` × 4 (the seed's
//!    monitoring table shape), warden against scikit-learn on the same rows
//!    (when a Python with scikit-learn is given): the ratio of wall times.
//! 2. Streaming ensemble throughput on one core, points per second.
//! 3. One detection tick over `series` warmed-up series (one new point
//!    each, spread over the cores), and the memory each series holds.
//!
//! Wall-clock figures on a shared machine are noisy: each is the best of
//! `repeats` runs, and the Isolation Forest ratio compares two runs made
//! back to back.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde::Serialize;
use warden_detect::synthetic::service_metrics;
use warden_detect::{Ensemble, EnsembleParams, IsolationForest, IsolationForestParams};
use warden_model::Rng;

/// What to measure.
#[derive(Debug, Clone)]
pub struct DetectBench {
    pub rows: usize,
    pub series: usize,
    pub stream_points: usize,
    pub repeats: usize,
    /// A Python interpreter with scikit-learn, and scripts/sklearn_iforest.py.
    pub python: Option<(PathBuf, PathBuf)>,
}

/// scikit-learn's timing for one `n_jobs` setting.
#[derive(Debug, Clone, Serialize)]
pub struct SklearnTiming {
    pub n_jobs: i32,
    pub version: String,
    pub seconds: f64,
    /// sklearn seconds / warden seconds.
    pub ratio: f64,
}

/// The measured figures.
#[derive(Debug, Clone, Serialize)]
pub struct DetectReport {
    pub cores: usize,
    pub iforest_rows: usize,
    pub iforest_seconds: f64,
    pub sklearn: Vec<SklearnTiming>,
    pub ensemble_points_per_second: f64,
    pub tick_series: usize,
    pub tick_seconds: f64,
    pub bytes_per_series: usize,
}

fn best_of<T>(repeats: usize, mut f: impl FnMut() -> T) -> (f64, T) {
    let mut best = f64::INFINITY;
    let mut last = None;
    for _ in 0..repeats.max(1) {
        let t = Instant::now();
        let out = f();
        best = best.min(t.elapsed().as_secs_f64());
        last = Some(out);
    }
    (best, last.expect("at least one run"))
}

/// A synthetic metric stream: daily cycle, noise, occasional spikes.
fn stream(n: usize, seed: u64) -> Vec<(i64, f64)> {
    let mut r = Rng::new(seed);
    (0..n)
        .map(|i| {
            let t = i as i64 * 60_000;
            let day = (t % 86_400_000) as f64 / 86_400_000.0;
            let spike = if r.uniform() < 0.001 { 50.0 } else { 0.0 };
            (
                t,
                100.0 + 20.0 * (std::f64::consts::TAU * day).sin() + 3.0 * r.normal() + spike,
            )
        })
        .collect()
}

fn run_sklearn(
    py: &Path,
    script: &Path,
    rows: &[Vec<f64>],
    n_jobs: i32,
) -> Result<(String, f64), String> {
    let dir = std::env::temp_dir().join(format!("warden-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let input = dir.join("x.csv");
    let output = dir.join("s.txt");
    let csv: String = rows
        .iter()
        .map(|r| {
            r.iter()
                .map(|v| format!("{v:e}"))
                .collect::<Vec<_>>()
                .join(",")
                + "\n"
        })
        .collect();
    std::fs::write(&input, csv).map_err(|e| format!("{}: {e}", input.display()))?;
    let out = Command::new(py)
        .arg(script)
        .arg(&input)
        .arg(&output)
        .args(["--n-jobs", &n_jobs.to_string()])
        .output()
        .map_err(|e| format!("{}: {e}", py.display()))?;
    let _ = std::fs::remove_dir_all(&dir);
    if !out.status.success() {
        return Err(format!(
            "{} failed: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("{}: bad timing line: {e}", script.display()))?;
    let secs = v["fit_s"].as_f64().unwrap_or(f64::NAN) + v["score_s"].as_f64().unwrap_or(f64::NAN);
    Ok((v["sklearn"].as_str().unwrap_or("?").to_string(), secs))
}

/// Runs the three measurements; `progress` gets a short label per stage.
pub fn run(b: &DetectBench, mut progress: impl FnMut(&str)) -> Result<DetectReport, String> {
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());

    progress("isolation forest");
    let rows = service_metrics(b.rows, 1);
    let (if_secs, _) = best_of(b.repeats, || {
        let f = IsolationForest::fit(&rows, &IsolationForestParams::default())
            .expect("synthetic rows are valid");
        f.score_samples(&rows)
    });
    let mut sklearn = Vec::new();
    if let Some((py, script)) = &b.python {
        for n_jobs in [1, -1] {
            progress(&format!("scikit-learn n_jobs={n_jobs}"));
            let mut best = f64::INFINITY;
            let mut version = String::new();
            for _ in 0..b.repeats.max(1) {
                let (v, s) = run_sklearn(py, script, &rows, n_jobs)?;
                best = best.min(s);
                version = v;
            }
            sklearn.push(SklearnTiming {
                n_jobs,
                version,
                seconds: best,
                ratio: best / if_secs,
            });
        }
    }

    progress("ensemble stream");
    let points = stream(b.stream_points, 2);
    let (stream_secs, _) = best_of(b.repeats, || {
        let mut e = Ensemble::new(EnsembleParams::default());
        points
            .iter()
            .map(|(t, v)| e.observe(*t, *v).score)
            .fold(0.0, f64::max)
    });

    progress("warming series");
    // Every series gets a full window of history first (the steady state).
    let warm = EnsembleParams::default().window + 64;
    let history = stream(warm + 1, 3);
    let chunk = b.series.div_ceil(cores).max(1);
    let mut detectors: Vec<Ensemble> = Vec::with_capacity(b.series);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..cores)
            .map(|c| {
                let history = &history;
                let n = chunk.min(b.series.saturating_sub(c * chunk));
                s.spawn(move || {
                    (0..n)
                        .map(|_| {
                            let mut e = Ensemble::new(EnsembleParams::default());
                            for (t, v) in &history[..warm] {
                                e.observe(*t, *v);
                            }
                            e
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for h in handles {
            detectors.extend(h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)));
        }
    });
    let bytes = detectors.first().map_or(0, Ensemble::heap_bytes);

    progress("tick");
    let (t_next, v_next) = history[warm];
    let (tick_secs, _) = best_of(b.repeats, || {
        std::thread::scope(|s| {
            for part in detectors.chunks_mut(chunk) {
                s.spawn(move || {
                    for e in part {
                        e.observe(t_next, v_next);
                    }
                });
            }
        });
    });

    Ok(DetectReport {
        cores,
        iforest_rows: b.rows,
        iforest_seconds: if_secs,
        sklearn,
        ensemble_points_per_second: b.stream_points as f64 / stream_secs,
        tick_series: b.series,
        tick_seconds: tick_secs,
        bytes_per_series: bytes,
    })
}
