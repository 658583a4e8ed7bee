//! Point forecasts with 80% and 95% prediction intervals for one regular
//! series: MSTL (one seasonal component per detected period, LOESS) with an
//! automatic ETS model (undamped) for the trend, as in augurs; AutoETS alone when no
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

/// Whether `y` has a season of `period` once trend and level shifts are
/// taken out: the autocorrelation test on the first differences (a trending
/// or shifted series is autocorrelated at every lag, seasonal or not).
pub fn has_season(y: &[f64], period: usize) -> bool {
    let d: Vec<f64> = y.windows(2).map(|w| w[1] - w[0]).collect();
    is_seasonal(&d, period)
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
/// AutoETS over error and trend forms, trend undamped: a capacity planner
/// extrapolates growth (a leak does not slow down by itself).
fn ets() -> AutoETS {
    AutoETS::non_seasonal()
        .damped(false)
        .unwrap_or_else(|_| AutoETS::non_seasonal())
}

fn fit_one(y: &[f64], periods: &[usize], horizon: usize) -> Option<Forecast> {
    if !periods.is_empty() {
        let model = MSTLModel::new(periods.to_vec(), ets().into_trend_model());
        if let Some(f) = model
            .fit(y)
            .ok()
            .and_then(|m| with_levels(&m, horizon, Method::MstlEts, periods.to_vec()))
        {
            return Some(f);
        }
    }
    ets()
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
/// 1. The periods that pass the autocorrelation test (on the differenced
///    series, [`has_season`]) are modelled by MSTL,
///    the deseasonalised rest by AutoETS (AutoETS alone when none pass).
/// 2. A positive series is modelled on the log scale too (multiplicative
///    seasonality and growth); the point forecast is the mean of the two
///    scales' (back-transformed) and the intervals are the envelope of both
///    — the uncertainty about the model form is part of the uncertainty.
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
        .filter(|p| has_season(y, *p))
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
                l.point[i] = 0.5 * (l.point[i] + a.point[i]);
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
            let mix = |a: f64, b: f64| (1.0 - w) * a + w * b;
            f.point[i] = mix(f.point[i], sn.point[i]);
            // The blend's intervals: the models' envelope, widened by the
            // same blend of the seasonal naive's empirical intervals.
            f.lower80[i] = f.lower80[i].min(mix(f.lower80[i], sn.lower80[i]));
            f.upper80[i] = f.upper80[i].max(mix(f.upper80[i], sn.upper80[i]));
            f.lower95[i] = f.lower95[i].min(mix(f.lower95[i], sn.lower95[i]));
            f.upper95[i] = f.upper95[i].max(mix(f.upper95[i], sn.upper95[i]));
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic noise in [-1, 1].
    fn wiggle(i: usize) -> f64 {
        ((i * 7919 + 13) % 101) as f64 / 50.0 - 1.0
    }

    fn inside(f: &Forecast, i: usize, y: f64) -> bool {
        f.lower95[i] <= y && y <= f.upper95[i]
    }

    #[test]
    fn a_flat_series_forecasts_its_level() {
        let y: Vec<f64> = (0..300).map(|i| 50.0 + 0.5 * wiggle(i)).collect();
        let f = forecast(&y, &[24, 168], 48).expect("forecast");
        assert!(
            f.point.iter().all(|p| (p - 50.0).abs() < 1.0),
            "{:?}",
            f.point
        );
        assert!((0..48).all(|i| inside(&f, i, 50.0)));
        assert!(f.upper95[47] - f.lower95[47] < 5.0);
    }

    #[test]
    fn a_linear_trend_is_extrapolated() {
        let y: Vec<f64> = (0..300)
            .map(|i| 10.0 + 0.2 * i as f64 + 0.3 * wiggle(i))
            .collect();
        let f = forecast(&y, &[24, 168], 100).expect("forecast");
        let truth = |h: usize| 10.0 + 0.2 * (300 + h) as f64;
        assert!(
            (f.point[99] - truth(99)).abs() < 3.0,
            "{} vs {}",
            f.point[99],
            truth(99)
        );
        assert!(inside(&f, 99, truth(99)));
        assert!(
            f.periods.is_empty(),
            "no seasonality in a line: {:?}",
            f.periods
        );
    }

    #[test]
    fn a_daily_cycle_is_found_and_repeated() {
        let day = |i: usize| 100.0 + 30.0 * (std::f64::consts::TAU * (i % 24) as f64 / 24.0).sin();
        let y: Vec<f64> = (0..24 * 21).map(|i| day(i) + wiggle(i)).collect();
        let f = forecast(&y, &[24, 168], 48).expect("forecast");
        assert!(f.periods.contains(&24), "{:?}", f.periods);
        assert_eq!(f.method, Method::MstlEts);
        for h in 0..48 {
            let t = day(y.len() + h);
            assert!(
                (f.point[h] - t).abs() < 4.0,
                "step {h}: {} vs {t}",
                f.point[h]
            );
            assert!(inside(&f, h, t), "step {h}");
        }
    }

    #[test]
    fn after_a_level_shift_the_forecast_follows_the_new_level() {
        let y: Vec<f64> = (0..400)
            .map(|i| if i < 300 { 20.0 } else { 60.0 } + wiggle(i))
            .collect();
        let f = forecast(&y, &[24, 168], 24).expect("forecast");
        assert!(
            f.point.iter().all(|p| (p - 60.0).abs() < 5.0),
            "{:?}",
            f.point
        );
    }

    #[test]
    fn too_short_and_bad_series_are_refused_with_the_reason() {
        let e = forecast(&[1.0, 2.0, 3.0], &[24], 10).expect_err("too short");
        assert_eq!(
            e,
            ForecastError::TooShort {
                n: 3,
                min: MIN_POINTS
            }
        );
        assert!(e.to_string().contains("3 points"));
        let mut y = vec![1.0; 20];
        y[7] = f64::NAN;
        assert!(matches!(
            forecast(&y, &[24], 5),
            Err(ForecastError::NotFinite { index: 7, .. })
        ));
        assert_eq!(
            forecast(&[1.0; 20], &[24], 0),
            Err(ForecastError::Horizon(0))
        );
        // Short but enough: no period can be tested, ETS alone.
        let f = forecast(
            &[5.0, 5.1, 4.9, 5.0, 5.2, 5.1, 4.8, 5.0, 5.1, 5.0],
            &[24],
            5,
        )
        .expect("forecast");
        assert!(f.periods.is_empty());
        assert!(f.point.iter().all(|p| (p - 5.0).abs() < 0.5));
    }

    #[test]
    fn seasonality_test_matches_its_definition() {
        let seasonal: Vec<f64> = (0..240).map(|i| ((i % 24) as f64).sin()).collect();
        assert!(is_seasonal(&seasonal, 24));
        let line: Vec<f64> = (0..240).map(wiggle).collect();
        assert!(!is_seasonal(&line, 24));
        assert!(!is_seasonal(&seasonal[..60], 24), "fewer than three cycles");
    }
}
