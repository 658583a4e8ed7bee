//! Parity with scikit-learn's IsolationForest, run from the Python venv that
//! `.ci/run` creates (`target/py`, packages pinned in
//! scripts/requirements-test.txt). The path of its interpreter comes from
//! `WARDEN_PYTHON`; when that is unset the test says so and passes, unless
//! `WARDEN_REQUIRE_PYTHON=1` (as in `.ci/run`), where a missing interpreter
//! is a failure.
//!
//! On three seeded data sets — the seed's four-feature monitoring table,
//! 2-D blobs with uniform noise and eight skewed correlated features — both
//! implementations fit with the same defaults and score the training rows.
//! A single 100-tree forest is random: two scikit-learn forests with
//! different `random_state` rank these rows alike only to a Spearman of
//! 0.92–0.97. So each side averages the `score_samples` of 5 seeded forests
//! (the expectation over the forest's randomness, which is what an
//! implementation determines); those must rank the rows alike (Spearman ≥
//! 0.95), the thresholds must agree, and warden must flag most of
//! scikit-learn's outliers at contamination 0.1.

use std::path::PathBuf;
use std::process::Command;

use warden_detect::synthetic::{blobs, service_metrics, skewed, spearman};
use warden_detect::{IsolationForest, IsolationForestParams};

const SEEDS: u64 = 5;

fn python() -> Option<PathBuf> {
    match std::env::var_os("WARDEN_PYTHON") {
        Some(p) => Some(PathBuf::from(p)),
        None => {
            assert!(
                std::env::var("WARDEN_REQUIRE_PYTHON").as_deref() != Ok("1"),
                "WARDEN_REQUIRE_PYTHON=1 but WARDEN_PYTHON is not set"
            );
            eprintln!("WARDEN_PYTHON is not set: skipping the scikit-learn parity test");
            None
        }
    }
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/sklearn_iforest.py")
}

fn sklearn_scores(py: &PathBuf, rows: &[Vec<f64>]) -> (Vec<f64>, f64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("x.csv");
    let output = dir.path().join("s.txt");
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
    std::fs::write(&input, csv).expect("write input");
    let out = Command::new(py)
        .arg(script())
        .arg(&input)
        .arg(&output)
        .args(["--seeds", &SEEDS.to_string()])
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "sklearn_iforest.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).expect("timing line is JSON");
    let scores = std::fs::read_to_string(&output)
        .expect("read scores")
        .lines()
        .map(|l| l.trim().parse::<f64>().expect("a float per line"))
        .collect();
    (scores, info["offset"].as_f64().expect("offset"))
}

#[test]
fn warden_ranks_points_like_scikit_learn() {
    let Some(py) = python() else { return };
    let sets: [(&str, Vec<Vec<f64>>); 3] = [
        ("service_metrics", service_metrics(3000, 11)),
        ("blobs", blobs(2000, 12)),
        ("skewed", skewed(3000, 13)),
    ];
    for (name, rows) in sets {
        let mut ours = vec![0.0; rows.len()];
        let mut our_offset = 0.0;
        for seed in 0..SEEDS {
            let params = IsolationForestParams {
                seed,
                ..Default::default()
            };
            let forest = IsolationForest::fit(&rows, &params).expect("fit");
            for (o, s) in ours.iter_mut().zip(forest.score_samples(&rows)) {
                *o += s / SEEDS as f64;
            }
            our_offset += forest.offset() / SEEDS as f64;
        }
        let (theirs, offset) = sklearn_scores(&py, &rows);
        assert_eq!(theirs.len(), rows.len(), "{name}: one score per row");
        let rho = spearman(&ours, &theirs);
        eprintln!(
            "{name}: spearman {rho:.4}, offset warden {:.4} sklearn {offset:.4}",
            our_offset
        );
        assert!(rho >= 0.95, "{name}: Spearman {rho:.4} < 0.95");
        // Same scale: both are -2^(-E[h]/c(256)), so the thresholds agree
        // to within the forests' randomness.
        assert!(
            (our_offset - offset).abs() < 0.015,
            "{name}: offset {} vs sklearn {offset}",
            our_offset
        );
        let ours_out: Vec<bool> = ours.iter().map(|s| *s < our_offset).collect();
        let theirs_out: Vec<bool> = theirs.iter().map(|s| *s < offset).collect();
        let both = ours_out
            .iter()
            .zip(&theirs_out)
            .filter(|(a, b)| **a && **b)
            .count();
        let flagged = theirs_out.iter().filter(|b| **b).count();
        assert!(
            both as f64 >= 0.8 * flagged as f64,
            "{name}: only {both} of sklearn's {flagged} outliers flagged by warden"
        );
    }
}
