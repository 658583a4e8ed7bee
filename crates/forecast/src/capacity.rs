//! From a forecast to a capacity plan: when a resource crosses its limit
//! (time to exhaustion, with a probability), how to size requests and limits
//! from observed percentiles, and how many replicas keep the forecast peak
//! under the target utilisation.

use serde::Serialize;

use crate::model::Forecast;

/// When a forecast crosses `limit`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Exhaustion {
    pub limit: f64,
    /// Steps ahead (1-based) at which the point forecast first reaches the
    /// limit, if it does within the horizon.
    pub point_step: Option<usize>,
    /// ... and at which the upper 95% bound first does (the earliest
    /// plausible date).
    pub upper95_step: Option<usize>,
    /// The probability that the resource reaches the limit within the
    /// horizon: the largest per-step probability, each step's value taken as
    /// normal with the spread its 95% interval implies (a lower bound for
    /// "ever").
    pub probability: f64,
}

/// Φ(z), the standard normal distribution function.
fn phi(z: f64) -> f64 {
    // Abramowitz–Stegun 7.1.26 on erf, |error| < 1.5e-7.
    let x = z / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * x.abs());
    let y = 1.0
        - (((((1.061_405_429 * t - 1.453_152_027) * t) + 1.421_413_741) * t - 0.284_496_736) * t
            + 0.254_829_592)
            * t
            * (-x * x).exp();
    let erf = if x >= 0.0 { y } else { -y };
    0.5 * (1.0 + erf)
}

/// Time to exhaustion of `limit` under forecast `f`.
pub fn exhaustion(f: &Forecast, limit: f64) -> Exhaustion {
    let first = |v: &[f64]| v.iter().position(|x| *x >= limit).map(|i| i + 1);
    let probability = f
        .point
        .iter()
        .zip(&f.upper95)
        .map(|(p, u)| {
            let sd = ((u - p) / 1.96).max(1e-12);
            1.0 - phi((limit - p) / sd)
        })
        .fold(0.0, f64::max);
    Exhaustion {
        limit,
        point_step: first(&f.point),
        upper95_step: first(&f.upper95),
        probability,
    }
}

/// Quantile (linear interpolation) of `v`; NaN when empty.
pub fn quantile(v: &[f64], q: f64) -> f64 {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if s.is_empty() {
        return f64::NAN;
    }
    s.sort_by(f64::total_cmp);
    let pos = q.clamp(0.0, 1.0) * (s.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    s[lo] + (s[hi] - s[lo]) * (pos - lo as f64)
}

/// Requests and limits sized from observed usage: request = p95 × (1 +
/// headroom), limit = p99 × (1 + headroom).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Rightsizing {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub request: f64,
    pub limit: f64,
}

pub fn rightsize(usage: &[f64], headroom: f64) -> Rightsizing {
    let (p50, p95, p99) = (
        quantile(usage, 0.5),
        quantile(usage, 0.95),
        quantile(usage, 0.99),
    );
    Rightsizing {
        p50,
        p95,
        p99,
        request: p95 * (1.0 + headroom),
        limit: p99 * (1.0 + headroom),
    }
}

/// An autoscaler proposal: replicas that keep utilisation per replica under
/// `target` at the forecast's trough (min) and at its upper-80% peak (max).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Autoscaling {
    pub current: u32,
    pub min: u32,
    pub max: u32,
    pub target_utilization: f64,
}

/// `utilisation` is the service's mean per-replica utilisation (0..1 of
/// its limit) with `replicas` running; load is assumed to spread evenly.
pub fn autoscale(f: &Forecast, replicas: u32, target: f64, ceiling: u32) -> Autoscaling {
    let load = |u: f64| u.max(0.0) * f64::from(replicas.max(1));
    let need = |u: f64| {
        (load(u) / target.max(1e-6))
            .ceil()
            .clamp(1.0, f64::from(ceiling)) as u32
    };
    let peak = f.upper80.iter().copied().fold(0.0, f64::max);
    let trough = f.point.iter().copied().fold(f64::INFINITY, f64::min);
    let max = need(peak);
    Autoscaling {
        current: replicas,
        min: need(if trough.is_finite() { trough } else { 0.0 }).min(max),
        max,
        target_utilization: target,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Method;

    fn line(start: f64, step: f64, spread: f64, h: usize) -> Forecast {
        let point: Vec<f64> = (1..=h).map(|i| start + step * i as f64).collect();
        Forecast {
            method: Method::Ets,
            periods: vec![],
            lower80: point.iter().map(|p| p - 0.64 * spread).collect(),
            upper80: point.iter().map(|p| p + 0.64 * spread).collect(),
            lower95: point.iter().map(|p| p - spread).collect(),
            upper95: point.iter().map(|p| p + spread).collect(),
            point,
        }
    }

    #[test]
    fn exhaustion_dates_and_probability() {
        // 0.5 → 1.0 over 100 steps, limit 0.9: the point crosses at step 80,
        // the upper bound (±0.1) 20 steps earlier.
        let f = line(0.5, 0.005, 0.1, 100);
        let e = exhaustion(&f, 0.9);
        assert_eq!(e.point_step, Some(80));
        assert_eq!(e.upper95_step, Some(60));
        assert!((e.probability - 0.975).abs() < 1e-3, "{e:?}");
        let flat = line(0.3, 0.0, 0.05, 100);
        let e = exhaustion(&flat, 0.9);
        assert_eq!((e.point_step, e.upper95_step), (None, None));
        assert!(e.probability < 1e-6, "{e:?}");
    }

    #[test]
    fn phi_is_the_normal_cdf() {
        assert!((phi(0.0) - 0.5).abs() < 1e-7);
        assert!((phi(1.959_964) - 0.975).abs() < 1e-6);
        assert!((phi(-1.0) - 0.158_655_25).abs() < 1e-6);
    }

    #[test]
    fn rightsizing_and_autoscaling_follow_usage() {
        let usage: Vec<f64> = (0..=100).map(|i| i as f64 / 100.0).collect();
        let r = rightsize(&usage, 0.2);
        assert!((r.p95 - 0.95).abs() < 1e-9 && (r.request - 1.14).abs() < 1e-9);
        // Utilisation 0.3..0.6 per replica on 4 replicas, target 0.6.
        let f = line(0.3, 0.003, 0.0, 100);
        let a = autoscale(&f, 4, 0.6, 50);
        assert_eq!(a.max, 4); // 0.6 × 4 / 0.6
        assert_eq!(a.min, 3); // 0.303 × 4 / 0.6 → 2.02 → 3
        let a = autoscale(&f, 4, 0.3, 5);
        assert_eq!(a.max, 5, "capped at the ceiling");
    }
}
