//! The streaming ensemble: robust detectors over one series, combined into
//! a calibrated score in [0, 1] with a reason.
//!
//! Every point is scored against state built from the points before it, then
//! learnt; memory is bounded by the parameters (about 100 KiB per series at
//! the defaults, most of it the two windows), and the work per point is
//! O(log window) comparisons plus a bounded `memmove` in the sorted window.
//!
//! Point detectors, each scaled by its own alarm level:
//! 1. **Rolling median / IQR**: `z = (x − median) / (IQR / 1.349)` over the
//!    last `window` points (with floors for flat series).
//! 2. **EWMA** mean and variance: a fast-adapting level.
//! 3. **Seasonal baselines**: hour-of-day and hour-of-week profiles (an
//!    EWMA per bucket). A profile speaks only while it predicts the series
//!    clearly better than the plain level (running squared error below
//!    `season_gain` times the level's), so seasonality is found, and
//!    dropped, automatically.
//! 4. **CUSUM** change point on the clipped robust z: small persistent
//!    shifts accumulate until they cross `cusum_h`.
//!
//! The strongest of them is calibrated per series the way Numenta's anomaly
//! likelihood is: the mean raw score of the last `short` points against the
//! Gaussian fitted to those means over the last `long` points, its tail
//! probability mapped to [0, 1) on a log scale ([`log_tail_score`]). A
//! series that is always noisy learns that its raw scores are ordinary; a
//! quiet one flags its first surprise. Two more signals join by maximum:
//! 5. **Pattern novelty**: the last `pattern_order` values in
//!    `pattern_bins` bins of the range seen so far; a shape never or rarely
//!    seen before is novel (calibrated the same way).
//! 6. **Range**: a value beyond every value seen, by `range_tolerance` of
//!    the range, scores 0.99.
//!
//! Finally, one alarm per episode: after a score at `alarm` the detector
//! stays quiet (scores 0) until the scores have been below `alarm` for
//! `rest` points — an operator wants to hear about an incident once, not on
//! every sample of it.
//!
//! The defaults were chosen on the whole NAB corpus (one set for all 58
//! series); docs/BENCHMARKS.md shows how the score moves around them.

use std::collections::VecDeque;

use serde::Serialize;

/// Ensemble parameters; the defaults are the ones `warden bench nab` and the
/// live loop use.
#[derive(Debug, Clone, PartialEq)]
pub struct EnsembleParams {
    /// Points in the rolling median / IQR window.
    pub window: usize,
    /// Points before any score other than 0.
    pub min_history: usize,
    /// EWMA smoothing factor for the level detector.
    pub ewma_alpha: f64,
    /// EWMA smoothing factor of each seasonal bucket.
    pub season_alpha: f64,
    /// A seasonal profile is used when its squared error is below this
    /// fraction of the level detector's.
    pub season_gain: f64,
    /// CUSUM slack (in z units) and alarm level.
    pub cusum_k: f64,
    pub cusum_h: f64,
    /// |z| that counts as a full alarm for the point detectors.
    pub z_alarm: f64,
    /// Likelihood calibration: short averaging and long history windows.
    pub short: usize,
    pub long: usize,
    /// Pattern novelty: bins of the range and pattern length.
    pub pattern_bins: u32,
    pub pattern_order: usize,
    /// A value beyond every value seen by this fraction of the range seen
    /// scores as an alarm.
    pub range_tolerance: f64,
    /// Points seen before the range check starts.
    pub range_history: u64,
    /// The alarm level of the score, and the points kept quiet after an
    /// alarm (one alarm per episode).
    pub alarm: f64,
    pub rest: usize,
    /// The point-detector strength (1 = its alarm level) an alarm needs to
    /// be flagged as an anomaly (see [`EnsembleScore::anomaly`]).
    pub flag_raw: f64,
    /// Points seen before anything is flagged.
    pub flag_history: u64,
}

impl Default for EnsembleParams {
    fn default() -> Self {
        Self {
            window: 2048,
            min_history: 32,
            ewma_alpha: 0.1,
            season_alpha: 0.2,
            season_gain: 0.5,
            cusum_k: 1.0,
            cusum_h: 12.0,
            z_alarm: 4.0,
            short: 8,
            long: 4000,
            pattern_bins: 8,
            pattern_order: 3,
            range_tolerance: 0.02,
            range_history: 288,
            alarm: 0.4,
            rest: 70,
            flag_raw: 1.0,
            flag_history: 120,
        }
    }
}

/// Which detector gave the score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Component {
    Median,
    Ewma,
    Daily,
    Weekly,
    ChangePoint,
    Pattern,
    Range,
}

impl Component {
    pub fn as_str(self) -> &'static str {
        match self {
            Component::Median => "median",
            Component::Ewma => "ewma",
            Component::Daily => "daily",
            Component::Weekly => "weekly",
            Component::ChangePoint => "change_point",
            Component::Pattern => "pattern",
            Component::Range => "range",
        }
    }
}

/// One point's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct EnsembleScore {
    /// Calibrated anomaly score in [0, 1], held at 0 during the quiet period
    /// after an alarm (what a stream consumer, and NAB, sees).
    pub score: f64,
    /// The calibrated score before that hold.
    pub strength: f64,
    /// Uncalibrated strength of the strongest component (1 = its alarm level).
    pub raw: f64,
    /// The strongest component.
    pub component: Component,
    /// What that component expected.
    pub baseline: f64,
    /// Its signed distance from the baseline in robust-scale units.
    pub z: f64,
    /// The flag an operator sees: the score is at the alarm level *and* a
    /// point detector moved by at least `flag_raw` of its alarm level (a
    /// 4σ-robust move or a CUSUM crossing at the defaults). The score alone
    /// is tuned for recall (NAB); the flag adds the effect size.
    pub anomaly: bool,
}

/// A bounded window kept both in arrival order and sorted. The sorted copy
/// is a list of small sorted buckets (at most `2 · BUCKET` values each), so
/// an insert or an eviction moves at most one bucket's values, and a
/// quantile walks the bucket lengths: O(√window) with small constants,
/// instead of moving half the window on every point.
#[derive(Debug, Clone, Default)]
pub struct SortedWindow {
    order: VecDeque<f64>,
    buckets: Vec<Vec<f64>>,
    cap: usize,
}

const BUCKET: usize = 64;

impl SortedWindow {
    pub fn new(cap: usize) -> Self {
        Self {
            order: VecDeque::with_capacity(cap + 1),
            buckets: Vec::new(),
            cap: cap.max(1),
        }
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// The first bucket whose largest value is at least `v` (the last
    /// bucket when `v` is above them all).
    fn bucket_for(&self, v: f64) -> usize {
        self.buckets
            .partition_point(|b| b.last().is_some_and(|l| *l < v))
            .min(self.buckets.len().saturating_sub(1))
    }

    /// Adds `v` (finite) and evicts the oldest value past the capacity.
    pub fn push(&mut self, v: f64) {
        if self.buckets.is_empty() {
            self.buckets.push(Vec::with_capacity(2 * BUCKET + 1));
        }
        let b = self.bucket_for(v);
        let bucket = &mut self.buckets[b];
        let at = bucket.partition_point(|x| *x < v);
        bucket.insert(at, v);
        if bucket.len() > 2 * BUCKET {
            let mut upper = Vec::with_capacity(2 * BUCKET + 1);
            upper.extend(bucket.drain(BUCKET..));
            self.buckets.insert(b + 1, upper);
        }
        self.order.push_back(v);
        if self.order.len() > self.cap
            && let Some(old) = self.order.pop_front()
        {
            let b = self.bucket_for(old);
            let bucket = &mut self.buckets[b];
            let at = bucket.partition_point(|x| *x < old);
            bucket.remove(at);
            if bucket.is_empty() && self.buckets.len() > 1 {
                self.buckets.remove(b);
            }
        }
    }

    /// The k-th smallest value (0-based); `k < len`.
    fn kth(&self, mut k: usize) -> f64 {
        for b in &self.buckets {
            if k < b.len() {
                return b[k];
            }
            k -= b.len();
        }
        f64::NAN
    }

    /// The q-quantile (linear interpolation, as numpy's default).
    pub fn quantile(&self, q: f64) -> f64 {
        let n = self.len();
        if n == 0 {
            return f64::NAN;
        }
        let pos = q.clamp(0.0, 1.0) * (n - 1) as f64;
        let lo = pos.floor() as usize;
        let hi = (lo + 1).min(n - 1);
        let f = pos - lo as f64;
        let a = self.kth(lo);
        if f == 0.0 {
            return a;
        }
        a * (1.0 - f) + self.kth(hi) * f
    }

    /// Several quantiles (ascending `qs`) in one walk over the buckets.
    pub fn quantiles<const N: usize>(&self, qs: [f64; N]) -> [f64; N] {
        let n = self.len();
        if n == 0 {
            return [f64::NAN; N];
        }
        // The ranks each quantile needs, ascending.
        let mut ranks = [(0usize, 0usize, 0.0f64); N];
        for (r, q) in ranks.iter_mut().zip(qs) {
            let pos = q.clamp(0.0, 1.0) * (n - 1) as f64;
            let lo = pos.floor() as usize;
            *r = (lo, (lo + 1).min(n - 1), pos - lo as f64);
        }
        // Ranks mostly ascend, so one bucket cursor serves them all (it
        // restarts when close quantiles of a tiny window step back).
        let (mut bi, mut offset) = (0usize, 0usize);
        let mut kth = |k: usize| {
            if k < offset {
                (bi, offset) = (0, 0);
            }
            while k >= offset + self.buckets[bi].len() {
                offset += self.buckets[bi].len();
                bi += 1;
            }
            self.buckets[bi][k - offset]
        };
        let mut vals = [(0.0f64, 0.0f64); N];
        for (v, (lo, hi, f)) in vals.iter_mut().zip(ranks) {
            v.0 = kth(lo);
            v.1 = if f == 0.0 { v.0 } else { kth(hi) };
        }
        let mut out = [0.0; N];
        for ((o, (a, b)), (_, _, f)) in out.iter_mut().zip(vals).zip(ranks) {
            *o = if f == 0.0 { a } else { a * (1.0 - f) + b * f };
        }
        out
    }

    /// Bytes held on the heap.
    pub fn heap_bytes(&self) -> usize {
        (self.order.capacity() + self.buckets.iter().map(Vec::capacity).sum::<usize>())
            * std::mem::size_of::<f64>()
            + self.buckets.capacity() * std::mem::size_of::<Vec<f64>>()
    }
}

/// Exponentially weighted mean and variance.
#[derive(Debug, Clone, Copy, Default)]
struct Ewma {
    mean: f64,
    var: f64,
    n: u64,
}

impl Ewma {
    fn update(&mut self, x: f64, alpha: f64) {
        if self.n == 0 {
            self.mean = x;
            self.var = 0.0;
        } else {
            let d = x - self.mean;
            self.mean += alpha * d;
            self.var = (1.0 - alpha) * (self.var + alpha * d * d);
        }
        self.n += 1;
    }
}

/// A seasonal profile: EWMA level per bucket, and the running squared error
/// of predicting with it.
#[derive(Debug, Clone)]
struct Profile {
    bucket_ms: i64,
    buckets: Vec<Ewma>,
    err: f64,
    n_err: u64,
}

impl Profile {
    fn new(bucket_ms: i64, n: usize) -> Self {
        Self {
            bucket_ms,
            buckets: vec![Ewma::default(); n],
            err: 0.0,
            n_err: 0,
        }
    }

    fn bucket(&self, ts_ms: i64) -> usize {
        (ts_ms.rem_euclid(self.bucket_ms * self.buckets.len() as i64) / self.bucket_ms) as usize
    }

    /// The bucket's expectation once it has seen a few values.
    fn expect(&self, ts_ms: i64) -> Option<f64> {
        let b = &self.buckets[self.bucket(ts_ms)];
        (b.n >= 3).then_some(b.mean)
    }
}

/// Numenta-style likelihood of the short-window mean raw score.
#[derive(Debug, Clone)]
pub struct Likelihood {
    short: VecDeque<f64>,
    short_sum: f64,
    short_cap: usize,
    /// Mean and variance of past short-window means: a running average over
    /// the first `long` points, exponential forgetting (weight `1/long`)
    /// after, so memory is O(short) whatever `long` is.
    mean: f64,
    var: f64,
    n: u64,
    long: u64,
}

impl Likelihood {
    pub fn new(short: usize, long: usize) -> Self {
        Self {
            short: VecDeque::with_capacity(short + 1),
            short_sum: 0.0,
            short_cap: short.max(1),
            mean: 0.0,
            var: 0.0,
            n: 0,
            long: long.max(2) as u64,
        }
    }

    /// Scores `raw` against the history, then adds it.
    pub fn observe(&mut self, raw: f64) -> f64 {
        self.short.push_back(raw);
        self.short_sum += raw;
        if self.short.len() > self.short_cap
            && let Some(o) = self.short.pop_front()
        {
            self.short_sum -= o;
        }
        let m = self.short_sum / self.short.len() as f64;
        let score = if self.n < 10 {
            0.0
        } else {
            let sd = self.var.sqrt().max(SD_FLOOR);
            log_tail_score((m - self.mean) / sd)
        };
        self.n += 1;
        let w = 1.0 / self.n.min(self.long) as f64;
        let d = m - self.mean;
        self.mean += w * d;
        self.var = (1.0 - w) * (self.var + w * d * d);
        score
    }
}

/// Floor of the spread of short-window mean raw scores: a series whose raw
/// score was always near 0 does not turn the first tiny blip into certainty.
const SD_FLOOR: f64 = 0.05;

/// P(Z > z) for a standard normal.
pub fn gaussian_tail(z: f64) -> f64 {
    0.5 * erfc(z / std::f64::consts::SQRT_2)
}

/// Complementary error function (Numerical Recipes' erfcc, relative error
/// < 1.2e-7).
fn erfc(x: f64) -> f64 {
    let r = ln_erfc_abs(x).exp();
    if x >= 0.0 { r } else { 2.0 - r }
}

/// ln(erfc(|x|)), finite for every finite x.
fn ln_erfc_abs(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    t.ln()
        + (-z * z - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87
                                        + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
}

/// Maps how far above its usual level a value is (`z`, in standard
/// deviations) to [0, 1) through its Gaussian tail probability on a log
/// scale: `L = −log10 P(Z > z)`, score `L / (L + 5)`. So 0.5 means "one in
/// 10^5" and the score never saturates, which keeps one corpus-wide
/// threshold meaningful.
pub fn log_tail_score(z: f64) -> f64 {
    if z <= 0.0 {
        return 0.0;
    }
    let l = -(ln_erfc_abs(z / std::f64::consts::SQRT_2) + 0.5f64.ln()) / std::f64::consts::LN_10;
    let l = l.max(0.0);
    l / (l + 5.0)
}

/// One component's reading of a point.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Reading {
    component: Component,
    baseline: f64,
    z: f64,
    /// Strength relative to the component's alarm level.
    raw: f64,
}

/// Coarse-pattern novelty: how often has the recent shape of the series
/// (the last `order` values, each in one of `bins` bins of the range seen so
/// far) occurred before? One counter per possible shape (`bins^order`, at
/// most 2^16), so memory is fixed and a lookup is an index.
#[derive(Debug, Clone)]
struct Patterns {
    bins: u32,
    /// `bins^order`: the number of shapes.
    shapes: u32,
    /// The current shape as a base-`bins` number, and how many values it
    /// holds so far (up to `order`).
    key: u32,
    filled: usize,
    order: usize,
    counts: Vec<u16>,
    lo: f64,
    hi: f64,
}

impl Patterns {
    fn new(bins: u32, order: usize) -> Self {
        let bins = bins.clamp(2, 256);
        let mut order = order.max(1);
        while u64::from(bins).pow(order as u32) > 1 << 16 {
            order -= 1;
        }
        let shapes = bins.pow(order as u32);
        Self {
            bins,
            shapes,
            key: 0,
            filled: 0,
            order,
            counts: Vec::new(),
            lo: f64::INFINITY,
            hi: f64::NEG_INFINITY,
        }
    }

    /// Novelty in (0, 1] of the shape ending at `x` (1 = never seen), then
    /// counts it.
    fn observe(&mut self, x: f64) -> f64 {
        self.lo = self.lo.min(x);
        self.hi = self.hi.max(x);
        let b = if self.hi > self.lo {
            // Non-negative, so truncation is floor.
            (((x - self.lo) / (self.hi - self.lo)) * f64::from(self.bins)) as u32
        } else {
            0
        }
        .min(self.bins - 1);
        self.key = (self.key * self.bins + b) % self.shapes;
        if self.filled < self.order {
            self.filled += 1;
            return 1.0;
        }
        if self.counts.is_empty() {
            self.counts = vec![0; self.shapes as usize];
        }
        let c = &mut self.counts[self.key as usize];
        let novelty = 1.0 / (1.0 + f64::from(*c));
        *c = c.saturating_add(1);
        novelty
    }
}

/// The ensemble over one series.
#[derive(Debug, Clone)]
pub struct Ensemble {
    p: EnsembleParams,
    window: SortedWindow,
    ewma: Ewma,
    daily: Profile,
    weekly: Profile,
    level_err: f64,
    cusum_hi: f64,
    cusum_lo: f64,
    patterns: Patterns,
    /// Likelihood of the strongest point detector, and of pattern novelty.
    likelihood: Likelihood,
    pattern_likelihood: Likelihood,
    /// Extremes ever seen (for the range check).
    min: f64,
    max: f64,
    /// Median and robust scale of the window at the current point.
    level: (f64, f64),
    /// Points left in the quiet period after an alarm, and after a flag.
    quiet: usize,
    flag_quiet: usize,
    seen: u64,
}

impl Ensemble {
    pub fn new(p: EnsembleParams) -> Self {
        Self {
            window: SortedWindow::new(p.window),
            likelihood: Likelihood::new(p.short, p.long),
            pattern_likelihood: Likelihood::new(p.short, p.long),
            patterns: Patterns::new(p.pattern_bins, p.pattern_order),
            p,
            ewma: Ewma::default(),
            daily: Profile::new(3_600_000, 24),
            weekly: Profile::new(3_600_000, 168),
            level_err: 0.0,
            cusum_hi: 0.0,
            cusum_lo: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            quiet: 0,
            flag_quiet: 0,
            level: (0.0, 1.0),
            seen: 0,
        }
    }

    /// Points seen so far.
    pub fn seen(&self) -> u64 {
        self.seen
    }

    /// Bytes this detector holds: the struct plus its heap buffers (the
    /// pattern table counted at its allocated capacity).
    pub fn heap_bytes(&self) -> usize {
        let f = std::mem::size_of::<f64>();
        std::mem::size_of::<Self>()
            + self.window.heap_bytes()
            + (self.daily.buckets.capacity() + self.weekly.buckets.capacity())
                * std::mem::size_of::<Ewma>()
            + (self.likelihood.short.capacity() + self.pattern_likelihood.short.capacity()) * f
            + self.patterns.counts.capacity() * std::mem::size_of::<u16>()
    }

    /// Scores `value` at `ts_ms` using only earlier points, then learns it.
    /// Non-finite values score 0 and are not learnt.
    pub fn observe(&mut self, ts_ms: i64, value: f64) -> EnsembleScore {
        let mut out = EnsembleScore {
            score: 0.0,
            strength: 0.0,
            raw: 0.0,
            component: Component::Median,
            baseline: value,
            z: 0.0,
            anomaly: false,
        };
        if !value.is_finite() {
            return out;
        }
        let novelty = self.patterns.observe(value);
        if self.window.len() < self.p.min_history {
            self.likelihood.observe(0.0);
            self.pattern_likelihood.observe(0.0);
        } else {
            let r = self.point_reading(ts_ms, value);
            let point = self.likelihood.observe(r.raw);
            let pattern = self.pattern_likelihood.observe(novelty);
            out = EnsembleScore {
                score: point,
                strength: point,
                raw: r.raw,
                component: r.component,
                baseline: r.baseline,
                z: r.z,
                anomaly: false,
            };
            if pattern > point {
                out.score = pattern;
                out.component = Component::Pattern;
            }
            let pad = (self.max - self.min) * self.p.range_tolerance;
            if self.seen >= self.p.range_history
                && self.max > self.min
                && (value > self.max + pad || value < self.min - pad)
            {
                let edge = if value > self.max { self.max } else { self.min };
                out.score = out.score.max(RANGE_SCORE);
                out.component = Component::Range;
                out.baseline = edge;
                out.z = (value - edge) / self.level.1;
            }
            // One alarm per episode: after a score at the alarm level, stay
            // quiet until the scores have been below it for `rest` points.
            let alarm = out.score >= self.p.alarm;
            let pre = out.score;
            if self.quiet > 0 {
                self.quiet -= 1;
                out.score = 0.0;
            }
            if alarm {
                self.quiet = self.p.rest;
            }
            // The flag keeps its own episodes, so that a weak alarm does not
            // silence a strong anomaly right after it.
            let flag = alarm && r.raw >= self.p.flag_raw && self.seen >= self.p.flag_history;
            out.anomaly = flag && self.flag_quiet == 0;
            out.strength = pre;
            if self.flag_quiet > 0 {
                self.flag_quiet -= 1;
            }
            if flag {
                self.flag_quiet = self.p.rest;
            }
        }
        self.learn(ts_ms, value);
        out
    }

    /// Median and robust scale of the window.
    fn level(&self) -> (f64, f64) {
        let [min, q1, med, q3, max] = self.window.quantiles([0.0, 0.25, 0.5, 0.75, 1.0]);
        // Floors: a flat series still has a scale (1% of its range, 0.1% of
        // its level), so its first move is large but finite.
        let scale = ((q3 - q1) / 1.349)
            .max(0.01 * (max - min))
            .max(1e-3 * med.abs())
            .max(1e-9);
        (med, scale)
    }

    /// The strongest of the point detectors (median, EWMA, seasonal, CUSUM).
    fn point_reading(&mut self, ts_ms: i64, x: f64) -> Reading {
        let p = &self.p;
        self.level = self.level();
        let (med, scale) = self.level;
        let mz = (x - med) / scale;
        let mut best = Reading {
            component: Component::Median,
            baseline: med,
            z: mz,
            raw: mz.abs() / p.z_alarm,
        };
        let mut consider = |r: Reading| {
            if r.raw > best.raw {
                best = r;
            }
        };
        let ez = (x - self.ewma.mean) / self.ewma.var.sqrt().max(scale);
        consider(Reading {
            component: Component::Ewma,
            baseline: self.ewma.mean,
            z: ez,
            raw: ez.abs() / p.z_alarm,
        });
        // A seasonal profile only speaks while it predicts the series
        // clearly better than the plain level.
        for (component, prof) in [
            (Component::Daily, &self.daily),
            (Component::Weekly, &self.weekly),
        ] {
            if prof.n_err > 50
                && prof.err < p.season_gain * self.level_err
                && let Some(m) = prof.expect(ts_ms)
            {
                let z = (x - m) / prof.err.sqrt().max(1e-3 * m.abs()).max(1e-9);
                consider(Reading {
                    component,
                    baseline: m,
                    z,
                    raw: z.abs() / p.z_alarm,
                });
            }
        }
        let zc = mz.clamp(-p.z_alarm, p.z_alarm);
        self.cusum_hi = (self.cusum_hi + zc - p.cusum_k).max(0.0);
        self.cusum_lo = (self.cusum_lo - zc - p.cusum_k).max(0.0);
        let c = self.cusum_hi.max(self.cusum_lo);
        consider(Reading {
            component: Component::ChangePoint,
            baseline: med,
            z: if self.cusum_hi >= self.cusum_lo {
                c
            } else {
                -c
            },
            raw: c / p.cusum_h,
        });
        if c >= p.cusum_h {
            self.cusum_hi = 0.0;
            self.cusum_lo = 0.0;
        }
        best
    }

    fn learn(&mut self, ts_ms: i64, x: f64) {
        let a = self.p.season_alpha;
        if self.ewma.n > 0 {
            let e = x - self.ewma.mean;
            self.level_err = 0.99 * self.level_err + 0.01 * e * e;
        }
        for prof in [&mut self.daily, &mut self.weekly] {
            let b = prof.bucket(ts_ms);
            if let Some(m) = prof.expect(ts_ms) {
                let e = x - m;
                prof.err = 0.99 * prof.err + 0.01 * e * e;
                prof.n_err += 1;
            }
            prof.buckets[b].update(x, a);
        }
        self.ewma.update(x, self.p.ewma_alpha);
        self.window.push(x);
        self.min = self.min.min(x);
        self.max = self.max.max(x);
        self.seen += 1;
    }
}

/// The score of a value outside every value seen before (plus tolerance).
const RANGE_SCORE: f64 = 0.99;

#[cfg(test)]
mod tests {
    use super::*;
    use warden_model::Rng;

    #[test]
    fn sorted_window_keeps_the_last_values_in_order() {
        let mut w = SortedWindow::new(3);
        for v in [5.0, 1.0, 3.0, 4.0] {
            w.push(v);
        }
        assert_eq!(w.len(), 3);
        assert_eq!(w.quantile(0.0), 1.0);
        assert_eq!(w.quantile(0.5), 3.0);
        assert_eq!(w.quantile(1.0), 4.0);
        w.push(0.0);
        assert_eq!(w.quantile(0.0), 0.0);
        assert_eq!(w.quantile(1.0), 4.0);
    }

    #[test]
    fn sorted_window_quantiles_match_a_plain_sort() {
        let mut r = Rng::new(9);
        let mut w = SortedWindow::new(500);
        let mut all = Vec::new();
        for i in 0..5000 {
            // Many ties (rounded values) and a drifting level.
            let v = ((i as f64) / 100.0 + 10.0 * r.normal()).round();
            w.push(v);
            all.push(v);
            if i % 97 == 0 {
                let mut last: Vec<f64> = all[all.len().saturating_sub(500)..].to_vec();
                last.sort_by(f64::total_cmp);
                let qs = [0.0, 0.1, 0.25, 0.5, 0.75, 0.99, 1.0];
                let together = w.quantiles(qs);
                for (q, t) in qs.into_iter().zip(together) {
                    let pos = q * (last.len() - 1) as f64;
                    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
                    let want = last[lo] + (last[hi] - last[lo]) * (pos - lo as f64);
                    assert!((w.quantile(q) - want).abs() < 1e-9, "i {i} q {q}");
                    assert!((t - want).abs() < 1e-9, "i {i} q {q} together");
                }
                assert_eq!(w.len(), last.len());
            }
        }
    }

    #[test]
    fn quantiles_of_tiny_windows() {
        let mut w = SortedWindow::new(10);
        w.push(3.0);
        assert_eq!(w.quantiles([0.0, 0.5, 1.0]), [3.0, 3.0, 3.0]);
        w.push(1.0);
        assert_eq!(
            w.quantiles([0.0, 0.25, 0.5, 0.75, 1.0]),
            [1.0, 1.5, 2.0, 2.5, 3.0]
        );
        assert!(SortedWindow::new(3).quantiles([0.5])[0].is_nan());
    }

    #[test]
    fn gaussian_tail_matches_known_values() {
        assert!((gaussian_tail(0.0) - 0.5).abs() < 1e-7);
        assert!((gaussian_tail(1.959_964) - 0.025).abs() < 1e-6);
        assert!((gaussian_tail(-1.0) - 0.841_344_7).abs() < 1e-6);
    }

    fn noise(seed: u64, n: usize) -> Vec<f64> {
        let mut r = Rng::new(seed);
        (0..n).map(|_| 100.0 + 5.0 * r.normal()).collect()
    }

    #[test]
    fn noise_stays_quiet_and_a_spike_is_an_alarm_with_its_reason() {
        let p = EnsembleParams::default();
        let mut e = Ensemble::new(p.clone());
        let xs = noise(3, 3000);
        let scored: Vec<EnsembleScore> = (0..xs.len())
            .map(|i| e.observe(i as i64 * 300_000, xs[i]))
            .collect();
        // The score is tuned for recall (NAB rewards a detection far more
        // than it charges a false alarm): Gaussian noise still reaches the
        // alarm level about once per 750 points. The flag, which also needs
        // an effect size, stays down.
        let alarms = scored.iter().filter(|s| s.score >= p.alarm).count();
        assert!(alarms <= 5, "noise alarmed {alarms} times");
        let flagged: Vec<&EnsembleScore> = scored.iter().filter(|s| s.anomaly).collect();
        assert!(flagged.is_empty(), "noise flagged: {flagged:?}");
        let top = xs.iter().copied().fold(f64::MIN, f64::max);
        let s = e.observe(3000 * 300_000, 200.0);
        assert!(s.score > 0.9 && s.anomaly, "spike scored {s:?}");
        assert_eq!(s.component, Component::Range);
        assert_eq!(s.baseline, top);
        // The next points of the same episode stay quiet.
        let next = e.observe(3001 * 300_000, 200.0);
        assert_eq!(next.score, 0.0);
        assert!(!next.anomaly);
    }

    #[test]
    fn a_small_persistent_shift_is_an_alarm_soon_after_it_starts() {
        let p = EnsembleParams::default();
        let mut e = Ensemble::new(p.clone());
        let mut xs = noise(4, 3000);
        // +1.6 standard deviations: no single point stands out.
        xs.extend(noise(5, 200).into_iter().map(|x| x + 8.0));
        let mut found = None;
        for (i, x) in xs.iter().enumerate() {
            let s = e.observe(i as i64 * 300_000, *x);
            if i >= 3000 && s.score >= p.alarm && found.is_none() {
                found = Some((i, s));
            }
        }
        let (i, s) = found.expect("shift detected");
        assert!(i < 3050, "detected late at {i}: {s:?}");
        assert!(s.z > 0.0, "{s:?}");
    }

    #[test]
    fn daily_seasonality_is_learnt_and_an_off_hours_peak_is_flagged() {
        let p = EnsembleParams::default();
        let mut e = Ensemble::new(p.clone());
        let mut r = Rng::new(6);
        let day = 86_400_000i64;
        let step = 600_000i64;
        let level = |t: i64| {
            let h = (t % day) as f64 / day as f64;
            100.0 + 60.0 * (std::f64::consts::TAU * h).sin()
        };
        let n = (21 * day / step) as usize;
        let mut alarms = 0;
        for i in 0..n {
            let t = i as i64 * step;
            let s = e.observe(t, level(t) + 2.0 * r.normal());
            if i > n / 2 && s.score >= p.alarm {
                alarms += 1;
            }
        }
        assert!(alarms <= 1, "the seasonal pattern alarmed {alarms} times");
        // At the daily trough, a value normal for the peak is anomalous,
        // though well inside the range seen.
        let t = n as i64 * step;
        let trough = t - t % day + 3 * day / 4;
        let s = e.observe(trough, 150.0);
        assert!(s.score >= p.alarm, "{s:?}");
        assert_ne!(s.component, Component::Range);
    }

    #[test]
    fn same_input_same_scores() {
        let xs = noise(7, 500);
        let run = || {
            let mut e = Ensemble::new(EnsembleParams::default());
            xs.iter()
                .enumerate()
                .map(|(i, x)| e.observe(i as i64 * 1000, *x).score.to_bits())
                .collect::<Vec<_>>()
        };
        assert_eq!(run(), run());
    }
}
