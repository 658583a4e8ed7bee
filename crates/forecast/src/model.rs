//! Point forecasts with 80% and 95% prediction intervals for one regular
//! series: MSTL (one seasonal component per detected period, LOESS) with an
//! automatic ETS model for the trend, as in augurs; AutoETS alone when no
//! period is seasonal or the history is shorter than two cycles; seasonal
//! naive with empirical intervals when the models cannot be fitted.

use augurs::ets::AutoETS;
use augurs::mstl::MSTLModel;
use augurs::{Fit, Predict};
use serde::Serialize;

/// Fewer points than this cannot be forecast.
pub const MIN_POINTS: usize = 8;

/// Why a series could not be forecast; names the value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ForecastError {
    #[error("{n} points: at least {min} are needed to forecast")]
    TooShort { n: usize, min: usize },
    #[error("point {index} is {value}: expected a finite number")]
    NotFinite { index: usize, value: f64 },
    #[error("horizon {0}: must be at least 1")]
    Horizon(usize),
}

/// How the forecast was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// MSTL decomposition, AutoETS on the deseasonalised series.
    MstlEts,
    /// AutoETS (no seasonal period found, or too short for one).
    Ets,
    /// The last cycle repeated, intervals from its in-sample errors.
    SeasonalNaive,
}

/// A forecast of `horizon` steps.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Forecast {
    pub method: Method,
    /// Seasonal periods used, in steps.
    pub periods: Vec<usize>,
    pub point: Vec<f64>,
    pub lower80: Vec<f64>,
    pub upper80: Vec<f64>,
    pub lower95: Vec<f64>,
    pub upper95: Vec<f64>,
}

/// Autocorrelation of `y` at `lag` (the usual biased estimator).
fn acf(y: &[f64], mean: f64, var_sum: f64, lag: usize) -> f64 {
    if lag >= y.len() || var_sum <= 0.0 {
        return 0.0;
    }
    let s: f64 = y[lag..]
        .iter()
        .zip(y)
        .map(|(a, b)| (a - mean) * (b - mean))
        .sum();
    s / var_sum
}

/// Whether `y` is seasonal at `period`: the M4 organisers' 90% test on the
/// autocorrelation at the period, `|r_m| > 1.645 √((1 + 2 Σ_{k<m} r_k²)/n)`,
/// with at least three cycles of data.
pub fn is_seasonal(y: &[f64], period: usize) -> bool {
    let n = y.len();
    if period < 2 || n < 3 * period {
        return false;
    }
    let mean = y.iter().sum::<f64>() / n as f64;
    let var_sum: f64 = y.iter().map(|v| (v - mean).powi(2)).sum();
    let r: Vec<f64> = (1..=period).map(|k| acf(y, mean, var_sum, k)).collect();
    let sum_sq: f64 = r[..period - 1].iter().map(|v| v * v).sum();
    let limit = 1.645 * ((1.0 + 2.0 * sum_sq) / n as f64).sqrt();
    r[period - 1].abs() > limit
}

fn check(y: &[f64], horizon: usize) -> Result<(), ForecastError> {
    if horizon == 0 {
        return Err(ForecastError::Horizon(horizon));
    }
    if y.len() < MIN_POINTS {
        return Err(ForecastError::TooShort {
            n: y.len(),
            min: MIN_POINTS,
        });
    }
    if let Some((index, value)) = y.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(ForecastError::NotFinite {
            index,
            value: *value,
        });
    }
    Ok(())
}

fn with_levels<P: Predict>(
    model: &P,
    horizon: usize,
    method: Method,
    periods: Vec<usize>,
) -> Option<Forecast> {
    let f80 = model.predict(horizon, Some(0.8)).ok()?;
    let f95 = model.predict(horizon, Some(0.95)).ok()?;
    let (i80, i95) = (f80.intervals?, f95.intervals?);
    let ok = |v: &[f64]| v.len() == horizon && v.iter().all(|x| x.is_finite());
    if !(ok(&f95.point) && ok(&i80.lower) && ok(&i80.upper) && ok(&i95.lower) && ok(&i95.upper)) {
        return None;
    }
    Some(Forecast {
        method,
        periods,
        point: f95.point,
        lower80: i80.lower,
        upper80: i80.upper,
        lower95: i95.lower,
        upper95: i95.upper,
    })
}

/// The last cycle of `period` repeated; intervals from the quantiles of the
/// in-sample seasonal-naive errors, widened with √(cycles ahead).
pub fn seasonal_naive(y: &[f64], period: usize, horizon: usize) -> Forecast {
    let p = period.clamp(1, y.len().max(1));
    let n = y.len();
    let mut errors: Vec<f64> = (p..n).map(|i| y[i] - y[i - p]).collect();
    errors.sort_by(f64::total_cmp);
    let q = |f: f64| -> f64 {
        if errors.is_empty() {
            return 0.0;
        }
        let pos = f * (errors.len() - 1) as f64;
        errors[pos.round() as usize]
    };
    let (l80, u80, l95, u95) = (q(0.1), q(0.9), q(0.025), q(0.975));
    let mut out = Forecast {
        method: Method::SeasonalNaive,
        periods: if p > 1 { vec![p] } else { vec![] },
        point: Vec::with_capacity(horizon),
        lower80: Vec::with_capacity(horizon),
        upper80: Vec::with_capacity(horizon),
        lower95: Vec::with_capacity(horizon),
        upper95: Vec::with_capacity(horizon),
    };
    for h in 0..horizon {
        let v = y[n - p + h % p];
        let widen = ((h / p + 1) as f64).sqrt();
        out.point.push(v);
        out.lower80.push(v + l80 * widen);
        out.upper80.push(v + u80 * widen);
        out.lower95.push(v + l95 * widen);
        out.upper95.push(v + u95 * widen);
    }
    out
}

/// One model specification (MSTL + AutoETS when `periods` is not empty,
/// else AutoETS) fitted to `y`.
fn fit_one(y: &[f64], periods: &[usize], horizon: usize) -> Option<Forecast> {
    if !periods.is_empty() {
        let model = MSTLModel::new(periods.to_vec(), AutoETS::non_seasonal().into_trend_model());
        if let Some(f) = model
            .fit(y)
            .ok()
            .and_then(|m| with_levels(&m, horizon, Method::MstlEts, periods.to_vec()))
        {
            return Some(f);
        }
    }
    AutoETS::non_seasonal()
        .fit(y)
        .ok()
        .and_then(|m| with_levels(&m, horizon, Method::Ets, vec![]))
}

fn map(f: &mut Forecast, g: impl Fn(f64) -> f64) {
    for v in f
        .point
        .iter_mut()
        .chain(f.lower80.iter_mut())
        .chain(f.upper80.iter_mut())
        .chain(f.lower95.iter_mut())
        .chain(f.upper95.iter_mut())
    {
        *v = g(*v);
    }
}

/// Weight of the seasonal-naive forecast at step `h` (0-based) of the
/// combination: half at first, fading with time constant `tau` steps.
pub fn naive_weight(h: usize, tau: usize) -> f64 {
    0.5 * (-(h as f64) / tau.max(1) as f64).exp()
}

/// Forecasts `horizon` steps of `y` (regular, finite). `candidate_periods`
/// are the seasonal periods to test, in steps (e.g. a day and a week).
///
/// 1. The periods that pass the autocorrelation test are modelled by MSTL,
///    the deseasonalised rest by AutoETS (AutoETS alone when none pass).
/// 2. A positive series is modelled on the log scale too (multiplicative
///    seasonality and growth); its back-transformed forecast is the point
///    forecast, and the intervals are the envelope of both scales' — the
///    uncertainty about the model form is part of the uncertainty.
/// 3. Near the origin the point forecast is combined with the seasonal
///    naive one at the shortest seasonal period (the last cycle's exact
///    shape), with weight [`naive_weight`]: ½ at the first step, fading
///    with a time constant of the longest candidate period, so a long-range
///    forecast (and its trend) is the model's.
pub fn forecast(
    y: &[f64],
    candidate_periods: &[usize],
    horizon: usize,
) -> Result<Forecast, ForecastError> {
    check(y, horizon)?;
    let periods: Vec<usize> = candidate_periods
        .iter()
        .copied()
        .filter(|p| is_seasonal(y, *p))
        .collect();
    let additive = fit_one(y, &periods, horizon);
    let logged = if y.iter().all(|v| *v > 0.0) {
        let ly: Vec<f64> = y.iter().map(|v| v.ln()).collect();
        fit_one(&ly, &periods, horizon).map(|mut f| {
            map(&mut f, f64::exp);
            f
        })
    } else {
        None
    };
    let mut f = match (logged, additive) {
        (Some(mut l), Some(a)) if l.point.iter().all(|v| v.is_finite()) => {
            for i in 0..horizon {
                l.lower80[i] = l.lower80[i].min(a.lower80[i]);
                l.upper80[i] = l.upper80[i].max(a.upper80[i]);
                l.lower95[i] = l.lower95[i].min(a.lower95[i]);
                l.upper95[i] = l.upper95[i].max(a.upper95[i]);
            }
            l
        }
        (_, Some(a)) => a,
        (Some(l), None) => l,
        (None, None) => {
            let p = periods.first().copied().unwrap_or(1);
            return Ok(seasonal_naive(y, p, horizon));
        }
    };
    if let Some(&p) = periods.iter().min() {
        let tau = candidate_periods.iter().copied().max().unwrap_or(p);
        let sn = seasonal_naive(y, p, horizon);
        for i in 0..horizon {
            let w = naive_weight(i, tau);
            f.point[i] = (1.0 - w) * f.point[i] + w * sn.point[i];
        }
    }
    // The intervals contain the point forecast.
    for i in 0..horizon {
        let v = f.point[i];
        f.lower80[i] = f.lower80[i].min(v);
        f.upper80[i] = f.upper80[i].max(v);
        f.lower95[i] = f.lower95[i].min(f.lower80[i]);
        f.upper95[i] = f.upper95[i].max(f.upper80[i]);
    }
    Ok(f)
}
