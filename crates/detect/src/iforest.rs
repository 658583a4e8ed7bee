//! Isolation Forest, faithful to scikit-learn's `IsolationForest`.

use warden_model::Rng;

/// Parameters, with scikit-learn's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct IsolationForestParams {
    /// Number of trees (sklearn `n_estimators`).
    pub n_estimators: usize,
    /// Sub-sample size per tree; `min(max_samples, n)` is used.
    pub max_samples: usize,
    /// Share of outliers expected in the training data; the threshold is the
    /// `contamination` quantile of the training scores. Range (0, 0.5].
    pub contamination: f64,
    /// Seed of every random choice.
    pub seed: u64,
}

impl Default for IsolationForestParams {
    fn default() -> Self {
        Self {
            n_estimators: 100,
            max_samples: 256,
            contamination: 0.1,
            seed: 42,
        }
    }
}

/// Why a forest could not be fitted; names the value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FitError {
    #[error("no training rows")]
    Empty,
    #[error("row {row} has {got} features, expected {expected}")]
    Ragged {
        row: usize,
        got: usize,
        expected: usize,
    },
    #[error("row {row} feature {feature} is {value}: expected a finite number within ±3.4e38")]
    NotFinite {
        row: usize,
        feature: usize,
        value: f64,
    },
    #[error("contamination {0} is outside (0, 0.5]")]
    Contamination(f64),
}

/// One node in 16 bytes. An inner node sends `x[feature] <= value` to
/// `left` and the rest to `left + 1` (children are allocated in pairs). A
/// leaf (`feature == LEAF`) holds its depth plus `c(size)` of the training
/// samples that reached it in `value`, so scoring is one walk and one add.
#[derive(Debug, Clone, Copy)]
struct Node {
    value: f64,
    feature: u32,
    left: u32,
}

/// One tree, nodes in one flat array (at most 2ψ − 1 of them: 8 KiB at ψ =
/// 256, so a tree stays in L1 while a block of rows walks it).
#[derive(Debug, Clone)]
struct Tree {
    nodes: Vec<Node>,
}

const LEAF: u32 = u32::MAX;

/// A fitted Isolation Forest.
#[derive(Debug, Clone)]
pub struct IsolationForest {
    trees: Vec<Complete>,
    n_features: usize,
    /// The sub-sample size ψ actually used.
    psi: usize,
    /// sklearn's `offset_`: the contamination quantile of the training
    /// `score_samples`. Points scoring below it are outliers.
    offset: f64,
}

/// Average path length of an unsuccessful BST search among `n` points,
/// `c(n) = 2 H(n-1) - 2 (n-1) / n`, with scikit-learn's conventions:
/// `c(1) = 0`, `c(2) = 1`, `H(i) ≈ ln(i) + γ`.
pub fn average_path_length(n: usize) -> f64 {
    match n {
        0 | 1 => 0.0,
        2 => 1.0,
        _ => {
            let n = n as f64;
            2.0 * ((n - 1.0).ln() + 0.577_215_664_901_532_9) - 2.0 * (n - 1.0) / n
        }
    }
}

impl IsolationForest {
    /// Fits on `rows` (each the same number of finite features).
    pub fn fit(rows: &[Vec<f64>], params: &IsolationForestParams) -> Result<Self, FitError> {
        if !(params.contamination > 0.0 && params.contamination <= 0.5) {
            return Err(FitError::Contamination(params.contamination));
        }
        let n = rows.len();
        let d = rows.first().map(Vec::len).ok_or(FitError::Empty)?;
        for (r, row) in rows.iter().enumerate() {
            if row.len() != d {
                return Err(FitError::Ragged {
                    row: r,
                    got: row.len(),
                    expected: d,
                });
            }
            // Like scikit-learn, which fits on float32: a value that does not
            // fit in an f32 is refused.
            if let Some((f, v)) = row
                .iter()
                .enumerate()
                .find(|(_, v)| !v.is_finite() || v.abs() > f64::from(f32::MAX))
            {
                return Err(FitError::NotFinite {
                    row: r,
                    feature: f,
                    value: *v,
                });
            }
        }
        let psi = params.max_samples.min(n).max(1);
        let max_depth = (psi as f64).log2().ceil().max(0.0) as usize;
        let flat = to_f32(rows);
        let root = Rng::new(params.seed);
        // Each tree has its own stream forked from the seed, so the forest
        // is the same however the trees are spread over threads.
        let trees = par_map(params.n_estimators, 8, |t| {
            let mut rng = root.fork(t as u64);
            let sample = sample_without_replacement(&mut rng, n, psi);
            Complete::from_tree(
                &build_tree(&flat, sample, d, max_depth, &mut rng),
                max_depth,
            )
        });
        let mut forest = Self {
            trees,
            n_features: d,
            psi,
            offset: 0.0,
        };
        let mut scores = forest.score_flat(&flat);
        forest.offset = percentile(&mut scores, 100.0 * params.contamination);
        Ok(forest)
    }

    /// Number of features the forest was fitted on.
    pub fn n_features(&self) -> usize {
        self.n_features
    }

    /// sklearn's `offset_`.
    pub fn offset(&self) -> f64 {
        self.offset
    }

    /// sklearn's `score_samples`: `-2^(-E[h(x)]/c(ψ))`, in [-1, 0); lower
    /// is more anomalous. `x` must have `n_features` values.
    pub fn score_sample(&self, x: &[f64]) -> f64 {
        let mut small = [0f32; 16];
        let heap: Vec<f32>;
        let x: &[f32] = if x.len() <= small.len() {
            for (d, v) in small.iter_mut().zip(x) {
                *d = *v as f32;
            }
            &small[..x.len()]
        } else {
            heap = x.iter().map(|v| *v as f32).collect();
            &heap
        };
        self.normalise(self.trees.iter().map(|t| path_length(t, x)).sum())
    }

    /// [`score_sample`](Self::score_sample) of every row, spread over the
    /// available cores when there are enough rows to pay for it.
    pub fn score_samples(&self, rows: &[Vec<f64>]) -> Vec<f64> {
        self.score_flat(&to_f32(rows))
    }

    /// Scores rows given as one row-major f32 matrix of `n_features` columns.
    fn score_flat(&self, flat: &[f32]) -> Vec<f64> {
        const BLOCK: usize = 256;
        let d = self.n_features.max(1);
        let n = flat.len() / d;
        let blocks = par_map(n.div_ceil(BLOCK), 8, |b| {
            let block = &flat[b * BLOCK * d..((b + 1) * BLOCK).min(n) * d];
            // Tree-major: each tree is walked by every row of the block
            // while it is hot in cache.
            let mut sums = vec![0.0; block.len() / d];
            for t in &self.trees {
                let mut xs = block.chunks_exact(LANES * d);
                let mut ss = sums.chunks_exact_mut(LANES);
                for (x, s) in (&mut xs).zip(&mut ss) {
                    for (s, v) in s.iter_mut().zip(path_lengths(t, x, d)) {
                        *s += v;
                    }
                }
                for (s, x) in ss
                    .into_remainder()
                    .iter_mut()
                    .zip(xs.remainder().chunks_exact(d))
                {
                    *s += path_length(t, x);
                }
            }
            sums.into_iter()
                .map(|s| self.normalise(s))
                .collect::<Vec<f64>>()
        });
        blocks.into_iter().flatten().collect()
    }

    fn normalise(&self, depth_sum: f64) -> f64 {
        let mean = depth_sum / self.trees.len().max(1) as f64;
        let c = average_path_length(self.psi);
        if c == 0.0 {
            return -1.0;
        }
        -(2f64.powf(-mean / c))
    }

    /// sklearn's `decision_function`: `score_samples - offset_`; negative
    /// means outlier.
    pub fn decision_function(&self, x: &[f64]) -> f64 {
        self.score_sample(x) - self.offset
    }

    /// sklearn's `predict`: whether `x` is an outlier.
    pub fn is_outlier(&self, x: &[f64]) -> bool {
        self.decision_function(x) < 0.0
    }
}

/// `f(0..n)` in order, on up to `available_parallelism` scoped threads when
/// `n` is at least `min_per_thread` per extra thread.
pub(crate) fn par_map<T: Send>(
    n: usize,
    min_per_thread: usize,
    f: impl Fn(usize) -> T + Sync,
) -> Vec<T> {
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    let threads = cores.min(n / min_per_thread.max(1)).max(1);
    if threads == 1 {
        return (0..n).map(f).collect();
    }
    let chunk = n.div_ceil(threads);
    let f = &f;
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    (t * chunk..((t + 1) * chunk).min(n))
                        .map(f)
                        .collect::<Vec<T>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    })
}

/// `k` distinct indices from `0..n` (partial Fisher-Yates over a sparse
/// swap map, so the cost is O(k) whatever `n`), in draw order.
fn sample_without_replacement(rng: &mut Rng, n: usize, k: usize) -> Vec<usize> {
    let mut swapped: std::collections::HashMap<usize, usize> = Default::default();
    let k = k.min(n);
    let mut out = Vec::with_capacity(k);
    for i in 0..k {
        let j = i + rng.below(n - i);
        let vj = *swapped.get(&j).unwrap_or(&j);
        let vi = *swapped.get(&i).unwrap_or(&i);
        swapped.insert(j, vi);
        out.push(vj);
    }
    out
}

fn build_tree(
    flat: &[f32],
    mut sample: Vec<usize>,
    d: usize,
    max_depth: usize,
    rng: &mut Rng,
) -> Tree {
    let mut t = Tree { nodes: vec![] };
    // Explicit stack of (node id, start, end, depth) over `sample`.
    let new_node = |t: &mut Tree, size: usize, depth: usize| {
        t.nodes.push(Node {
            value: depth as f64 + average_path_length(size),
            feature: LEAF,
            left: 0,
        });
        (t.nodes.len() - 1) as u32
    };
    let root = new_node(&mut t, sample.len(), 0);
    let mut stack = vec![(root, 0usize, sample.len(), 0usize)];
    let mut features: Vec<usize> = (0..d).collect();
    while let Some((node, lo, hi, depth)) = stack.pop() {
        if depth >= max_depth || hi - lo <= 1 {
            continue;
        }
        // Like sklearn's splitter: draw features without replacement until
        // one is not constant in this node; if all are, the node is a leaf.
        let mut chosen = None;
        let mut remaining = d;
        while remaining > 0 {
            let k = rng.below(remaining);
            let f = features[k];
            features.swap(k, remaining - 1);
            remaining -= 1;
            let (mut mn, mut mx) = (f64::INFINITY, f64::NEG_INFINITY);
            for &i in &sample[lo..hi] {
                let v = f64::from(flat[i * d + f]);
                mn = mn.min(v);
                mx = mx.max(v);
            }
            if mx > mn {
                chosen = Some((f, mn, mx));
                break;
            }
        }
        let Some((f, mn, mx)) = chosen else { continue };
        let mut thr = mn + (mx - mn) * rng.uniform();
        if thr >= mx {
            thr = mn;
        }
        // Partition: values <= thr go left.
        let mut mid = lo;
        for i in lo..hi {
            if f64::from(flat[sample[i] * d + f]) <= thr {
                sample.swap(i, mid);
                mid += 1;
            }
        }
        let l = new_node(&mut t, mid - lo, depth + 1);
        let r = new_node(&mut t, hi - mid, depth + 1);
        let n = node as usize;
        debug_assert_eq!(r, l + 1);
        t.nodes[n] = Node {
            value: thr,
            feature: f as u32,
            left: l,
        };
        stack.push((l, lo, mid, depth + 1));
        stack.push((r, mid, hi, depth + 1));
    }
    t
}

/// A tree laid out as a complete binary tree of depth `depth` (the fit's
/// depth limit): node `i` has children `2i + 1` and `2i + 2`. A leaf that
/// the fit stopped early is padded with "always left" nodes (threshold +∞)
/// and its value copied to every leaf slot below it, so every walk is
/// exactly `depth` branch-free steps — the same leaf, the same path length,
/// as the original tree.
#[derive(Debug, Clone)]
struct Complete {
    depth: usize,
    /// Inner nodes: (threshold, feature). The threshold is the fit's f64
    /// threshold rounded down to an f32, which for f32 inputs decides
    /// `x > threshold` exactly as the f64 would.
    inner: Vec<(f32, u32)>,
    leaf: Vec<f64>,
}

impl Complete {
    fn from_tree(t: &Tree, depth: usize) -> Self {
        let inner = (1usize << depth) - 1;
        let mut c = Complete {
            depth,
            inner: vec![(f32::INFINITY, 0); inner],
            leaf: vec![0.0; 1 << depth],
        };
        // (node in `t`, slot in the complete layout, its depth)
        let mut stack = vec![(0usize, 0usize, 0usize)];
        while let Some((node, slot, d)) = stack.pop() {
            let n = t.nodes[node];
            if n.feature == LEAF {
                // Fill the leaf slots of the subtree under `slot`.
                let mut first = slot;
                for _ in d..depth {
                    first = 2 * first + 1;
                }
                let start = first - inner;
                let width = 1usize << (depth - d);
                c.leaf[start..start + width].fill(n.value);
            } else {
                let mut t32 = n.value as f32;
                if f64::from(t32) > n.value {
                    t32 = t32.next_down();
                }
                c.inner[slot] = (t32, n.feature);
                stack.push((n.left as usize, 2 * slot + 1, d + 1));
                stack.push((n.left as usize + 1, 2 * slot + 2, d + 1));
            }
        }
        c
    }
}

/// Rows as one row-major f32 matrix, as scikit-learn converts its input
/// (values beyond the f32 range become ±∞).
fn to_f32(rows: &[Vec<f64>]) -> Vec<f32> {
    rows.iter()
        .flat_map(|r| r.iter().map(|v| *v as f32))
        .collect()
}

/// Rows walked in lockstep, so that their independent loads overlap.
const LANES: usize = 16;

/// [`path_length`] of `LANES` rows at once (`xs`: `LANES` rows of `d`
/// values, row-major).
fn path_lengths(t: &Complete, xs: &[f32], d: usize) -> [f64; LANES] {
    let mut idx = [0usize; LANES];
    for _ in 0..t.depth {
        for (lane, i) in idx.iter_mut().enumerate() {
            let (thr, f) = t.inner[*i];
            *i = 2 * *i + 1 + usize::from(xs[lane * d + f as usize] > thr);
        }
    }
    let inner = t.inner.len();
    idx.map(|i| t.leaf[i - inner])
}

/// Depth of `x`'s leaf plus that leaf's `c(size)`.
fn path_length(t: &Complete, x: &[f32]) -> f64 {
    let mut i = 0usize;
    for _ in 0..t.depth {
        let (thr, f) = t.inner[i];
        i = 2 * i + 1 + usize::from(x[f as usize] > thr);
    }
    t.leaf[i - t.inner.len()]
}

/// numpy's default (linear) percentile of `v` at `q` in [0, 100].
pub fn percentile(v: &mut [f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let pos = (q / 100.0) * (v.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(seed: u64, n: usize) -> Vec<Vec<f64>> {
        let mut r = Rng::new(seed);
        (0..n)
            .map(|_| {
                vec![
                    0.4 + 0.02 * r.normal(),
                    0.6 + 0.01 * r.normal(),
                    100.0 + 5.0 * r.normal(),
                    0.01 + 0.002 * r.normal(),
                ]
            })
            .collect()
    }

    #[test]
    fn average_path_length_matches_sklearn() {
        // Values from sklearn.ensemble._iforest._average_path_length.
        assert_eq!(average_path_length(1), 0.0);
        assert_eq!(average_path_length(2), 1.0);
        assert!((average_path_length(256) - 10.244_770_920_119_917).abs() < 1e-9);
        assert!((average_path_length(10) - 3.748_880_484_475_505).abs() < 1e-9);
    }

    #[test]
    fn outliers_score_lower_than_inliers() {
        let rows = blob(1, 1000);
        let f = IsolationForest::fit(&rows, &IsolationForestParams::default()).expect("fit");
        let inlier = f.score_sample(&[0.4, 0.6, 100.0, 0.01]);
        let outlier = f.score_sample(&[0.95, 0.6, 300.0, 0.15]);
        assert!(outlier < inlier, "{outlier} < {inlier}");
        assert!(f.is_outlier(&[0.95, 0.6, 300.0, 0.15]));
        assert!(!f.is_outlier(&[0.4, 0.6, 100.0, 0.01]));
        assert!((-1.0..0.0).contains(&inlier));
    }

    #[test]
    fn contamination_sets_the_share_of_training_outliers() {
        let rows = blob(2, 2000);
        for c in [0.05, 0.1, 0.2] {
            let f = IsolationForest::fit(
                &rows,
                &IsolationForestParams {
                    contamination: c,
                    ..Default::default()
                },
            )
            .expect("fit");
            let share = rows.iter().filter(|r| f.is_outlier(r)).count() as f64 / rows.len() as f64;
            assert!((share - c).abs() < 0.01, "contamination {c}: share {share}");
        }
    }

    #[test]
    fn same_seed_same_scores_other_seed_differs() {
        let rows = blob(3, 500);
        let p = IsolationForestParams::default();
        let a = IsolationForest::fit(&rows, &p).expect("fit");
        let b = IsolationForest::fit(&rows, &p).expect("fit");
        let c = IsolationForest::fit(&rows, &IsolationForestParams { seed: 7, ..p }).expect("fit");
        let x = [0.5, 0.6, 120.0, 0.02];
        assert_eq!(a.score_sample(&x), b.score_sample(&x));
        assert_ne!(a.score_sample(&x), c.score_sample(&x));
    }

    #[test]
    fn bad_training_data_is_refused_naming_the_value() {
        let p = IsolationForestParams::default();
        assert_eq!(IsolationForest::fit(&[], &p).err(), Some(FitError::Empty));
        let e = IsolationForest::fit(&[vec![1.0, 2.0], vec![1.0]], &p).expect_err("ragged");
        assert!(e.to_string().contains("row 1"));
        let e = IsolationForest::fit(&[vec![1.0, f64::NAN]], &p).expect_err("nan");
        assert!(e.to_string().contains("NaN"));
        let e = IsolationForest::fit(
            &[vec![1.0]],
            &IsolationForestParams {
                contamination: 0.7,
                ..p
            },
        )
        .err();
        assert_eq!(e, Some(FitError::Contamination(0.7)));
    }

    #[test]
    fn constant_data_scores_every_point_alike() {
        let rows = vec![vec![1.0, 1.0]; 50];
        let f = IsolationForest::fit(&rows, &IsolationForestParams::default()).expect("fit");
        assert_eq!(f.score_sample(&[1.0, 1.0]), f.score_sample(&[5.0, 5.0]));
    }
}
