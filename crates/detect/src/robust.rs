//! A streaming robust detector: how far is each new value from the rolling
//! median of the recent past, in units of the median absolute deviation?

use std::collections::VecDeque;

/// Which departures count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Only increases (latency, errors, CPU, memory).
    Up,
    /// Only decreases (ready replicas).
    Down,
    /// Both (request rate).
    Both,
}

/// Parameters of one series' detector.
#[derive(Debug, Clone, PartialEq)]
pub struct RobustParams {
    /// Baseline window, milliseconds of history.
    pub window_ms: i64,
    /// Cap on points kept, whatever the window.
    pub max_points: usize,
    /// Points needed before judging.
    pub min_history: usize,
    /// |z| at or above which a point is out of line.
    pub z_threshold: f64,
    /// Consecutive out-of-line points that make an anomaly.
    pub confirm: usize,
    /// The change must also be at least this large in absolute terms...
    pub min_abs_delta: f64,
    /// ...and relative to the baseline (fraction of |median|).
    pub min_rel_delta: f64,
    pub direction: Direction,
}

impl Default for RobustParams {
    fn default() -> Self {
        Self {
            window_ms: 3_600_000,
            max_points: 4096,
            min_history: 30,
            z_threshold: 6.0,
            confirm: 2,
            min_abs_delta: 0.0,
            min_rel_delta: 0.0,
            direction: Direction::Both,
        }
    }
}

/// The detector's view of one point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RobustScore {
    /// Rolling median before this point.
    pub baseline: f64,
    /// Robust scale (1.4826 · MAD, floored).
    pub scale: f64,
    /// (value − baseline) / scale; 0 while warming up.
    pub z: f64,
    /// This point is out of line (threshold, effect size and direction).
    pub exceeds: bool,
    /// Out of line for `confirm` consecutive points.
    pub anomalous: bool,
    /// Time of the first point of the current out-of-line streak.
    pub onset_ms: Option<i64>,
}

/// Rolling median/MAD z-score detector for one series.
#[derive(Debug, Clone)]
pub struct RobustDetector {
    params: RobustParams,
    buf: VecDeque<(i64, f64)>,
    streak: usize,
    onset_ms: Option<i64>,
    last: Option<RobustScore>,
    /// The baseline as last computed, and points added or evicted since.
    cached: Option<(f64, f64)>,
    changed: usize,
}

/// The baseline is recomputed once 1/`RECOMPUTE_DIVISOR` of the window has changed
/// (at least every point while the window holds up to that many points):
/// median and MAD move by a rounding-level amount when a few percent of
/// their window is new, and recomputing them costs O(window), which at high
/// sample rates (thousands of points per window) dominated ingest.
const RECOMPUTE_DIVISOR: usize = 64;

impl RobustDetector {
    /// A detector with no history.
    pub fn new(params: RobustParams) -> Self {
        Self {
            params,
            buf: VecDeque::new(),
            streak: 0,
            onset_ms: None,
            last: None,
            cached: None,
            changed: 0,
        }
    }

    /// Points in the baseline window.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether no point was seen.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The score of the most recent point.
    pub fn last(&self) -> Option<RobustScore> {
        self.last
    }

    /// The baseline window's values, oldest first.
    pub fn values(&self) -> impl Iterator<Item = (i64, f64)> + '_ {
        self.buf.iter().copied()
    }

    /// Median and robust scale of the window (None while warming up).
    pub fn baseline(&self) -> Option<(f64, f64)> {
        if self.buf.len() < self.params.min_history {
            return None;
        }
        let mut scratch: Vec<f64> = self.buf.iter().map(|p| p.1).collect();
        let med = median(&mut scratch);
        for v in &mut scratch {
            *v = (*v - med).abs();
        }
        let mad = median(&mut scratch);
        // A floor of 0.5% of the level keeps flat series (replicas, a
        // constant config) from giving absurd z-scores.
        let floor = (1e-9_f64).max(0.005 * med.abs());
        Some((med, (1.4826 * mad).max(floor)))
    }

    /// Scores `value` at `ts_ms` against the window, then adds it. Non-finite
    /// values are ignored (scored as not anomalous, not added).
    pub fn observe(&mut self, ts_ms: i64, value: f64) -> RobustScore {
        if !value.is_finite() {
            return self.last.unwrap_or(RobustScore {
                baseline: f64::NAN,
                scale: f64::NAN,
                z: 0.0,
                exceeds: false,
                anomalous: false,
                onset_ms: None,
            });
        }
        if self.buf.len() < self.params.min_history {
            self.cached = None;
        } else if self.cached.is_none()
            || self.changed >= (self.buf.len() / RECOMPUTE_DIVISOR).max(1)
        {
            self.cached = self.baseline();
            self.changed = 0;
        }
        let score = match self.cached {
            None => RobustScore {
                baseline: value,
                scale: 0.0,
                z: 0.0,
                exceeds: false,
                anomalous: false,
                onset_ms: None,
            },
            Some((med, scale)) => {
                let p = &self.params;
                let z = (value - med) / scale;
                let delta = value - med;
                let directional = match p.direction {
                    Direction::Up => delta > 0.0,
                    Direction::Down => delta < 0.0,
                    Direction::Both => true,
                };
                let big_enough =
                    delta.abs() >= p.min_abs_delta && delta.abs() >= p.min_rel_delta * med.abs();
                let exceeds = directional && big_enough && z.abs() >= p.z_threshold;
                if exceeds {
                    self.streak += 1;
                    self.onset_ms.get_or_insert(ts_ms);
                } else {
                    self.streak = 0;
                    self.onset_ms = None;
                }
                RobustScore {
                    baseline: med,
                    scale,
                    z,
                    exceeds,
                    anomalous: self.streak >= p.confirm,
                    onset_ms: self.onset_ms,
                }
            }
        };
        // Make room first, so the buffer never grows past max_points (a
        // VecDeque doubles its capacity when pushed while full).
        if self.buf.len() >= self.params.max_points {
            self.buf.pop_front();
            self.changed += 1;
        }
        self.buf.push_back((ts_ms, value));
        self.changed += 1;
        while self.buf.len() > self.params.max_points
            || self
                .buf
                .front()
                .is_some_and(|(t, _)| *t < ts_ms - self.params.window_ms)
        {
            self.buf.pop_front();
            self.changed += 1;
        }
        self.last = Some(score);
        score
    }
}

/// Median of `v` (reorders it). NaN for an empty slice.
pub fn median(v: &mut [f64]) -> f64 {
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    let mid = n / 2;
    let (_, m, _) = v.select_nth_unstable_by(mid, f64::total_cmp);
    let hi = *m;
    if n % 2 == 1 {
        hi
    } else {
        let lo = v[..mid].iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (lo + hi) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use warden_model::Rng;

    fn params() -> RobustParams {
        RobustParams {
            min_history: 20,
            z_threshold: 6.0,
            confirm: 2,
            direction: Direction::Up,
            ..Default::default()
        }
    }

    #[test]
    fn median_handles_odd_and_even() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&mut []).is_nan());
    }

    #[test]
    fn noise_is_quiet_and_a_level_shift_is_confirmed_with_its_onset() {
        let mut d = RobustDetector::new(params());
        let mut r = Rng::new(1);
        let mut t = 0;
        for _ in 0..200 {
            t += 15_000;
            let s = d.observe(t, 100.0 + 3.0 * r.normal());
            assert!(!s.anomalous, "false alarm at {t}: z {}", s.z);
        }
        let first = d.observe(t + 15_000, 180.0);
        assert!(
            first.exceeds && !first.anomalous,
            "one point is not yet an anomaly"
        );
        let second = d.observe(t + 30_000, 185.0);
        assert!(second.anomalous);
        assert_eq!(second.onset_ms, Some(t + 15_000));
        assert!((second.baseline - 100.0).abs() < 1.5);
        assert!(second.z > 6.0);
    }

    #[test]
    fn direction_and_effect_size_filter_departures() {
        let mut d = RobustDetector::new(RobustParams {
            min_rel_delta: 0.5,
            ..params()
        });
        for i in 0..50 {
            d.observe(i * 1000, 10.0 + (i % 3) as f64 * 0.01);
        }
        // Far in z terms but only +20%: below the effect size.
        assert!(!d.observe(51_000, 12.0).exceeds);
        // A drop is ignored by an Up detector.
        assert!(!d.observe(52_000, 1.0).exceeds);
        assert!(d.observe(53_000, 20.0).exceeds);
    }

    #[test]
    fn window_evicts_old_points_and_non_finite_values_are_ignored() {
        let mut d = RobustDetector::new(RobustParams {
            window_ms: 10_000,
            ..params()
        });
        for i in 0..100 {
            d.observe(i * 1000, 1.0);
        }
        assert!(d.len() <= 11);
        let before = d.len();
        d.observe(200_000, f64::NAN);
        assert_eq!(d.len(), before);
    }
}
