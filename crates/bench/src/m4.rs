//! `warden bench m4`: the default forecaster on the 414 M4 hourly series,
//! scored as the M4 organisers score (shared/data/m4-hourly/PROVENANCE.md):
//! sMAPE, MASE with m = 24, OWA against Naive2, and the empirical coverage
//! of the 95% interval.

use std::path::Path;

use serde::Serialize;
use warden_forecast::forecast;

use crate::rca_case::{CaseError, bad, finite_number};

/// M4 hourly: horizon and seasonal period.
pub const HORIZON: usize = 48;
pub const PERIOD: usize = 24;

/// One series: its id, training values and the 48 test values.
#[derive(Debug, Clone, PartialEq)]
pub struct M4Series {
    pub id: String,
    pub train: Vec<f64>,
    pub test: Vec<f64>,
}

fn read_rows(path: &Path) -> Result<Vec<(String, Vec<f64>)>, CaseError> {
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(path)
        .map_err(|e| bad(path, e.to_string()))?;
    let mut out = Vec::new();
    for (k, rec) in rdr.records().enumerate() {
        let line = k + 2;
        let rec = rec.map_err(|e| bad(path, format!("line {line}: {e}")))?;
        let id = rec.get(0).unwrap_or("").to_string();
        if id.is_empty() {
            return Err(bad(path, format!("line {line} column 1: empty series id")));
        }
        let mut values = Vec::new();
        for (c, cell) in rec.iter().enumerate().skip(1) {
            if cell.trim().is_empty() {
                continue; // shorter series are padded with empty fields
            }
            values.push(finite_number(cell).ok_or_else(|| {
                bad(
                    path,
                    format!("line {line} column {}: {cell:?} is not a number", c + 1),
                )
            })?);
        }
        out.push((id, values));
    }
    Ok(out)
}

/// Reads `Hourly-train.csv` and `Hourly-test.csv` from `dir`.
pub fn read_m4(dir: &Path) -> Result<Vec<M4Series>, CaseError> {
    let train = read_rows(&dir.join("Hourly-train.csv"))?;
    let test = read_rows(&dir.join("Hourly-test.csv"))?;
    if train.len() != test.len() {
        return Err(bad(
            dir,
            format!("{} training rows but {} test rows", train.len(), test.len()),
        ));
    }
    train
        .into_iter()
        .zip(test)
        .map(|((id, tr), (id2, te))| {
            if id != id2 {
                return Err(bad(dir, format!("series {id} in train, {id2} in test")));
            }
            if te.len() != HORIZON || tr.len() < 2 * PERIOD {
                return Err(bad(
                    dir,
                    format!(
                        "series {id}: {} train and {} test values",
                        tr.len(),
                        te.len()
                    ),
                ));
            }
            Ok(M4Series {
                id,
                train: tr,
                test: te,
            })
        })
        .collect()
}

/// The organisers' Naive2: seasonally adjust by classical multiplicative
/// decomposition when the lag-24 autocorrelation test says seasonal, repeat
/// the last adjusted value, reseasonalise.
pub fn naive2(y: &[f64], m: usize, h: usize) -> Vec<f64> {
    let n = y.len();
    let last = y[n - 1];
    if !warden_forecast::is_seasonal(y, m) {
        return vec![last; h];
    }
    // Centred moving average of order m (2×m for even m), as R's decompose.
    let half = m / 2;
    let mut trend = vec![f64::NAN; n];
    for (i, t) in trend.iter_mut().enumerate().take(n - half).skip(half) {
        *t = if m.is_multiple_of(2) {
            let inner: f64 = y[i - half + 1..i + half].iter().sum();
            (inner + 0.5 * (y[i - half] + y[i + half])) / m as f64
        } else {
            y[i - half..=i + half].iter().sum::<f64>() / m as f64
        };
    }
    let mut sums = vec![0.0; m];
    let mut counts = vec![0usize; m];
    for i in 0..n {
        if trend[i].is_finite() && trend[i] != 0.0 {
            sums[i % m] += y[i] / trend[i];
            counts[i % m] += 1;
        }
    }
    let mut index: Vec<f64> = sums
        .iter()
        .zip(&counts)
        .map(|(s, c)| if *c > 0 { s / *c as f64 } else { 1.0 })
        .collect();
    let mean = index.iter().sum::<f64>() / m as f64;
    for v in &mut index {
        *v /= mean;
    }
    let adjusted_last = last / index[(n - 1) % m];
    (0..h).map(|k| adjusted_last * index[(n + k) % m]).collect()
}

/// sMAPE (percent) of one series.
pub fn smape(actual: &[f64], fc: &[f64]) -> f64 {
    let s: f64 = actual
        .iter()
        .zip(fc)
        .map(|(y, f)| {
            let d = y.abs() + f.abs();
            if d == 0.0 {
                0.0
            } else {
                200.0 * (y - f).abs() / d
            }
        })
        .sum();
    s / actual.len() as f64
}

/// MASE of one series (scale: in-sample seasonal-naive error at `m`).
pub fn mase(train: &[f64], actual: &[f64], fc: &[f64], m: usize) -> f64 {
    let n = train.len();
    let scale: f64 = (m..n).map(|i| (train[i] - train[i - m]).abs()).sum::<f64>() / (n - m) as f64;
    let err: f64 = actual
        .iter()
        .zip(fc)
        .map(|(y, f)| (y - f).abs())
        .sum::<f64>()
        / actual.len() as f64;
    err / scale
}

/// One series' forecast and scores.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesResult {
    pub id: String,
    pub forecast: Vec<f64>,
    pub smape: f64,
    pub mase: f64,
    pub naive2_smape: f64,
    pub naive2_mase: f64,
    /// Test points inside the 95% interval.
    pub covered95: usize,
    pub covered80: usize,
    pub method: warden_forecast::Method,
}

/// The corpus scores.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct M4Report {
    pub series: usize,
    pub smape: f64,
    pub mase: f64,
    pub naive2_smape: f64,
    pub naive2_mase: f64,
    pub owa: f64,
    pub coverage95: f64,
    pub coverage80: f64,
    /// Series per method used.
    pub methods: std::collections::BTreeMap<String, usize>,
}

/// Forecasts one series with the default forecaster (daily and weekly
/// candidate periods) and scores it.
pub fn run_series(s: &M4Series) -> SeriesResult {
    let f = forecast(&s.train, &[PERIOD, 7 * PERIOD], HORIZON)
        .unwrap_or_else(|_| warden_forecast::seasonal_naive(&s.train, PERIOD, HORIZON));
    let n2 = naive2(&s.train, PERIOD, HORIZON);
    let inside = |lo: &[f64], hi: &[f64]| {
        s.test
            .iter()
            .enumerate()
            .filter(|(i, y)| lo[*i] <= **y && **y <= hi[*i])
            .count()
    };
    SeriesResult {
        id: s.id.clone(),
        smape: smape(&s.test, &f.point),
        mase: mase(&s.train, &s.test, &f.point, PERIOD),
        naive2_smape: smape(&s.test, &n2),
        naive2_mase: mase(&s.train, &s.test, &n2, PERIOD),
        covered95: inside(&f.lower95, &f.upper95),
        covered80: inside(&f.lower80, &f.upper80),
        method: f.method,
        forecast: f.point,
    }
}

/// Aggregates per-series results.
pub fn report(results: &[SeriesResult]) -> M4Report {
    let n = results.len().max(1) as f64;
    let mean = |f: &dyn Fn(&SeriesResult) -> f64| results.iter().map(f).sum::<f64>() / n;
    let (sm, ma) = (mean(&|r| r.smape), mean(&|r| r.mase));
    let (nsm, nma) = (mean(&|r| r.naive2_smape), mean(&|r| r.naive2_mase));
    let points = (results.len() * HORIZON).max(1) as f64;
    let mut methods = std::collections::BTreeMap::new();
    for r in results {
        *methods.entry(format!("{:?}", r.method)).or_insert(0usize) += 1;
    }
    M4Report {
        series: results.len(),
        smape: sm,
        mase: ma,
        naive2_smape: nsm,
        naive2_mase: nma,
        owa: 0.5 * (sm / nsm + ma / nma),
        coverage95: results.iter().map(|r| r.covered95).sum::<usize>() as f64 / points,
        coverage80: results.iter().map(|r| r.covered80).sum::<usize>() as f64 / points,
        methods,
    }
}

/// Runs every series on up to `threads` threads; `progress(done, total)`.
pub fn run(
    series: &[M4Series],
    threads: usize,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Vec<SeriesResult> {
    let done = std::sync::atomic::AtomicUsize::new(0);
    let total = series.len();
    let chunk = total.div_ceil(threads.max(1)).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = series
            .chunks(chunk)
            .map(|part| {
                let done = &done;
                s.spawn(move || {
                    part.iter()
                        .map(|x| {
                            let r = run_series(x);
                            let d = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                            progress(d, total);
                            r
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    })
}
