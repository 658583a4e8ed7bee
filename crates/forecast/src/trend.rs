//! Trends: the seed's label (least-squares slope per sample against ±0.01)
//! kept for compatibility, and a robust slope (Theil–Sen) with Sen's
//! confidence interval.

use serde::Serialize;

/// The seed's trend label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TrendLabel {
    Increasing,
    Stable,
    Decreasing,
}

impl TrendLabel {
    pub fn as_str(self) -> &'static str {
        match self {
            TrendLabel::Increasing => "increasing",
            TrendLabel::Stable => "stable",
            TrendLabel::Decreasing => "decreasing",
        }
    }
}

/// Least-squares slope of `y` against its index (NaN for fewer than 2).
pub fn ls_slope(y: &[f64]) -> f64 {
    let n = y.len() as f64;
    if y.len() < 2 {
        return f64::NAN;
    }
    let mx = (n - 1.0) / 2.0;
    let my = y.iter().sum::<f64>() / n;
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for (i, v) in y.iter().enumerate() {
        let dx = i as f64 - mx;
        sxy += dx * (v - my);
        sxx += dx * dx;
    }
    sxy / sxx
}

/// The seed's rule: slope per sample above 0.01 is increasing, below −0.01
/// decreasing, else stable.
pub fn seed_label(y: &[f64]) -> TrendLabel {
    let s = ls_slope(y);
    if s > 0.01 {
        TrendLabel::Increasing
    } else if s < -0.01 {
        TrendLabel::Decreasing
    } else {
        TrendLabel::Stable
    }
}

/// A robust slope per step with its confidence interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RobustSlope {
    pub slope: f64,
    pub lower: f64,
    pub upper: f64,
    /// Confidence level of [lower, upper].
    pub level: f64,
}

/// Theil–Sen slope (median of pairwise slopes) with Sen's 95% interval.
/// Above `max_pairs` pairs, every k-th pair is used (deterministic).
pub fn theil_sen(y: &[f64]) -> Option<RobustSlope> {
    const MAX_PAIRS: usize = 20_000;
    let n = y.len();
    if n < 3 {
        return None;
    }
    let total = n * (n - 1) / 2;
    let stride = total.div_ceil(MAX_PAIRS).max(1);
    let mut slopes = Vec::with_capacity(total / stride + 1);
    let mut k = 0usize;
    for i in 0..n {
        for j in i + 1..n {
            if k.is_multiple_of(stride) {
                slopes.push((y[j] - y[i]) / (j - i) as f64);
            }
            k += 1;
        }
    }
    slopes.sort_by(f64::total_cmp);
    let m = slopes.len();
    let at = |r: f64| slopes[(r.round().max(0.0) as usize).min(m - 1)];
    let median = if m % 2 == 1 {
        slopes[m / 2]
    } else {
        0.5 * (slopes[m / 2 - 1] + slopes[m / 2])
    };
    // Sen (1968): the interval's ranks, from the variance of Kendall's S,
    // scaled to the pairs actually used.
    let nf = n as f64;
    let c = 1.96 * (nf * (nf - 1.0) * (2.0 * nf + 5.0) / 18.0).sqrt() / stride as f64;
    let (lo, hi) = ((m as f64 - c) / 2.0, (m as f64 + c) / 2.0);
    Some(RobustSlope {
        slope: median,
        lower: at(lo),
        upper: at(hi - 1.0),
        level: 0.95,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_labels_follow_the_slope_per_sample() {
        let up: Vec<f64> = (0..50).map(|i| 0.02 * i as f64).collect();
        let down: Vec<f64> = (0..50).map(|i| -0.02 * i as f64).collect();
        let flat: Vec<f64> = (0..50).map(|i| 5.0 + 0.005 * i as f64).collect();
        assert_eq!(seed_label(&up), TrendLabel::Increasing);
        assert_eq!(seed_label(&down), TrendLabel::Decreasing);
        assert_eq!(seed_label(&flat), TrendLabel::Stable);
    }

    #[test]
    fn theil_sen_ignores_outliers_and_brackets_the_slope() {
        let mut y: Vec<f64> = (0..200)
            .map(|i| 3.0 + 0.5 * i as f64 + if i % 2 == 0 { 0.3 } else { -0.3 })
            .collect();
        y[50] = 1e6; // a wild outlier
        let s = theil_sen(&y).expect("slope");
        assert!((s.slope - 0.5).abs() < 0.01, "{s:?}");
        assert!(s.lower <= 0.5 && 0.5 <= s.upper, "{s:?}");
        assert!(s.upper - s.lower < 0.05, "{s:?}");
        assert!(theil_sen(&[1.0, 2.0]).is_none());
    }
}
