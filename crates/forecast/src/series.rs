//! A timestamped series in, a capacity forecast out: regularise the samples
//! onto a grid (coarse enough to keep the fit small), find the daily and
//! weekly periods on that grid, forecast the horizon, label the trend and
//! find when a limit is crossed.

use serde::Serialize;

use crate::capacity::{Exhaustion, exhaustion};
use crate::model::{Forecast, ForecastError, forecast};
use crate::trend::{RobustSlope, TrendLabel, seed_label, theil_sen};

const DAY_MS: i64 = 86_400_000;

/// At most this many grid points are fitted; finer histories are averaged
/// into coarser steps that keep a day whole (30 days of 5-minute samples
/// become 960 steps of 45 minutes).
pub const MAX_FIT_POINTS: usize = 1000;

/// What went wrong with a series; names the value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SeriesError {
    #[error(transparent)]
    Forecast(#[from] ForecastError),
    #[error("timestamps and values differ in length ({0} and {1})")]
    Lengths(usize, usize),
    #[error("timestamp {at} at index {index} is not after the previous one")]
    Order { index: usize, at: i64 },
    #[error("horizon {0} ms: must be positive and at most 365 days")]
    Horizon(i64),
    #[error("{missing} of {total} grid steps have no sample: too sparse to forecast")]
    Sparse { missing: usize, total: usize },
}

/// The analysis of one series.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeriesForecast {
    /// Grid step of the forecast, milliseconds.
    pub step_ms: i64,
    /// Time of the last grid point; forecast step `i` (0-based) is at
    /// `origin_ms + (i + 1) · step_ms`.
    pub origin_ms: i64,
    /// The seed's label (slope per grid step against ±0.01).
    pub trend: TrendLabel,
    /// Theil–Sen slope per day, with its 95% interval.
    pub slope_per_day: Option<RobustSlope>,
    pub forecast: Forecast,
    pub exhaustion: Option<Exhaustion>,
}

impl SeriesForecast {
    /// Timestamp of forecast step `i` (0-based).
    pub fn at(&self, i: usize) -> i64 {
        self.origin_ms + (i as i64 + 1) * self.step_ms
    }
}

/// The sampling step: the median gap between consecutive samples.
fn median_gap(ts: &[i64]) -> i64 {
    let mut gaps: Vec<i64> = ts.windows(2).map(|w| w[1] - w[0]).collect();
    gaps.sort_unstable();
    gaps.get(gaps.len() / 2).copied().unwrap_or(60_000).max(1)
}

/// Means of the samples on a grid of `step` from the first timestamp;
/// empty steps are linearly interpolated.
fn regularise(ts: &[i64], ys: &[f64], step: i64) -> Result<Vec<f64>, SeriesError> {
    let t0 = ts[0];
    let n = ((ts[ts.len() - 1] - t0) / step) as usize + 1;
    let mut sum = vec![0.0; n];
    let mut cnt = vec![0u32; n];
    for (t, y) in ts.iter().zip(ys) {
        let k = (((t - t0) / step) as usize).min(n - 1);
        sum[k] += y;
        cnt[k] += 1;
    }
    let missing = cnt.iter().filter(|c| **c == 0).count();
    if missing * 2 > n {
        return Err(SeriesError::Sparse { missing, total: n });
    }
    let known: Vec<(usize, f64)> = (0..n)
        .filter(|k| cnt[*k] > 0)
        .map(|k| (k, sum[k] / f64::from(cnt[k])))
        .collect();
    let mut out = vec![0.0; n];
    for w in known.windows(2) {
        let ((a, va), (b, vb)) = (w[0], w[1]);
        for (k, o) in out.iter_mut().enumerate().take(b + 1).skip(a) {
            *o = va + (vb - va) * (k - a) as f64 / (b - a) as f64;
        }
    }
    if let (Some(first), Some(last)) = (known.first(), known.last()) {
        out[..first.0].fill(first.1);
        out[last.0..].fill(last.1);
    }
    Ok(out)
}

/// Analyses `values` at `ts_ms` (ascending) for `horizon_ms` ahead, and the
/// crossing of `limit` when given.
pub fn analyze(
    ts_ms: &[i64],
    values: &[f64],
    horizon_ms: i64,
    limit: Option<f64>,
) -> Result<SeriesForecast, SeriesError> {
    if ts_ms.len() != values.len() {
        return Err(SeriesError::Lengths(ts_ms.len(), values.len()));
    }
    if !(1..=365 * DAY_MS).contains(&horizon_ms) {
        return Err(SeriesError::Horizon(horizon_ms));
    }
    if let Some(i) = (1..ts_ms.len()).find(|i| ts_ms[*i] <= ts_ms[i - 1]) {
        return Err(SeriesError::Order {
            index: i,
            at: ts_ms[i],
        });
    }
    if let Some((index, value)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(ForecastError::NotFinite {
            index,
            value: *value,
        }
        .into());
    }
    if values.len() < crate::model::MIN_POINTS {
        return Err(ForecastError::TooShort {
            n: values.len(),
            min: crate::model::MIN_POINTS,
        }
        .into());
    }
    let base = median_gap(ts_ms);
    let span = ts_ms[ts_ms.len() - 1] - ts_ms[0];
    let needed = ((span / base) as usize + 1).div_ceil(MAX_FIT_POINTS).max(1) as i64;
    // The smallest factor at least `needed` that keeps a day a whole number
    // of steps (so the daily and weekly periods survive the averaging).
    let factor = if DAY_MS % base == 0 {
        let per_day = DAY_MS / base;
        (needed..=per_day)
            .find(|f| per_day % f == 0)
            .unwrap_or(needed)
    } else {
        needed
    };
    let step = base * factor;
    let y = regularise(ts_ms, values, step)?;
    let origin_ms = ts_ms[0] + (y.len() as i64 - 1) * step;
    let periods: Vec<usize> = [DAY_MS, 7 * DAY_MS]
        .iter()
        .filter(|p| *p % step == 0 && *p / step >= 2)
        .map(|p| (p / step) as usize)
        .collect();
    let horizon = (horizon_ms + step - 1) / step;
    let f = forecast(&y, &periods, horizon as usize)?;
    let per_day = DAY_MS as f64 / step as f64;
    let slope_per_day = theil_sen(&y).map(|s| RobustSlope {
        slope: s.slope * per_day,
        lower: s.lower * per_day,
        upper: s.upper * per_day,
        level: s.level,
    });
    Ok(SeriesForecast {
        step_ms: step,
        origin_ms,
        trend: seed_label(&y),
        slope_per_day,
        exhaustion: limit.map(|l| exhaustion(&f, l)),
        forecast: f,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thirty_days_of_five_minute_samples_become_a_coarser_forecast() {
        let step = 300_000i64;
        let n = 30 * 288;
        let ts: Vec<i64> = (0..n as i64)
            .map(|i| 1_700_000_000_000 + i * step)
            .collect();
        // A memory leak: 40% → 76% over 30 days, with a daily ripple.
        let ys: Vec<f64> = (0..n)
            .map(|i| {
                let day = (i % 288) as f64 / 288.0;
                0.40 + 0.36 * i as f64 / n as f64 + 0.02 * (std::f64::consts::TAU * day).sin()
            })
            .collect();
        let a = analyze(&ts, &ys, 30 * DAY_MS, Some(0.9)).expect("analysis");
        assert_eq!(a.step_ms, 9 * step, "8640 points → steps of 45 minutes");
        assert_eq!(
            a.trend,
            TrendLabel::Stable,
            "0.36 over 960 steps is below 0.01 per step"
        );
        assert!(
            a.forecast.periods.contains(&32),
            "the daily ripple, in 45-minute steps"
        );
        let s = a.slope_per_day.expect("slope");
        assert!((s.slope - 0.012).abs() < 0.001, "{s:?}");
        let e = a.exhaustion.expect("limit given");
        // 0.76 now, +0.012/day: 0.9 in about 11.7 days.
        let days = |step: usize| (step as i64 * a.step_ms) as f64 / DAY_MS as f64;
        let point = days(e.point_step.expect("crosses"));
        let early = days(e.upper95_step.expect("crosses"));
        assert!(
            (point - 11.7).abs() < 2.0,
            "point crossing after {point} days"
        );
        assert!(early <= point, "{early} vs {point}");
        assert!(e.probability > 0.9, "{e:?}");
    }

    #[test]
    fn gaps_are_filled_and_bad_input_is_named() {
        let ts: Vec<i64> = (0..100)
            .filter(|i| i % 10 != 3)
            .map(|i| i * 60_000)
            .collect();
        let ys: Vec<f64> = ts.iter().map(|t| *t as f64 / 60_000.0).collect();
        let a = analyze(&ts, &ys, 600_000, None).expect("analysis");
        assert_eq!(a.step_ms, 60_000);
        assert!(
            (a.forecast.point[0] - 100.0).abs() < 2.0,
            "{:?}",
            a.forecast.point
        );
        assert!(matches!(
            analyze(&[0, 60_000, 60_000], &[1.0; 3], 60_000, None),
            Err(SeriesError::Order { index: 2, .. })
        ));
        assert!(matches!(
            analyze(&ts, &ys, 0, None),
            Err(SeriesError::Horizon(0))
        ));
        let sparse: Vec<i64> = (0..10).chain(100..110).map(|i| i * 60_000).collect();
        assert!(matches!(
            analyze(&sparse, &[1.0; 20], 60_000, None),
            Err(SeriesError::Sparse { .. })
        ));
    }
}
