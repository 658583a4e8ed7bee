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
    #[error("row {row} feature {feature} is {value}: expected a finite number")]
    NotFinite {
        row: usize,
        feature: usize,
        value: f64,
    },
    #[error("contamination {0} is outside (0, 0.5]")]
    Contamination(f64),
}

/// One tree in flat arrays. A node is a leaf when `feature == LEAF`.
#[derive(Debug, Clone)]
struct Tree {
    feature: Vec<u32>,
    threshold: Vec<f64>,
    left: Vec<u32>,
    right: Vec<u32>,
    /// Training samples that reached the node (used at leaves).
    size: Vec<u32>,
}

const LEAF: u32 = u32::MAX;

/// A fitted Isolation Forest.
#[derive(Debug, Clone)]
pub struct IsolationForest {
    trees: Vec<Tree>,
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
            if let Some((f, v)) = row.iter().enumerate().find(|(_, v)| !v.is_finite()) {
                return Err(FitError::NotFinite {
                    row: r,
                    feature: f,
                    value: *v,
                });
            }
        }
        let psi = params.max_samples.min(n).max(1);
        let max_depth = (psi as f64).log2().ceil().max(0.0) as usize;
        let root = Rng::new(params.seed);
        let mut trees = Vec::with_capacity(params.n_estimators);
        for t in 0..params.n_estimators {
            let mut rng = root.fork(t as u64);
            let sample = sample_without_replacement(&mut rng, n, psi);
            trees.push(build_tree(rows, sample, d, max_depth, &mut rng));
        }
        let mut forest = Self {
            trees,
            n_features: d,
            psi,
            offset: 0.0,
        };
        let mut scores: Vec<f64> = rows.iter().map(|r| forest.score_sample(r)).collect();
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
        let depth_sum: f64 = self.trees.iter().map(|t| path_length(t, x)).sum();
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

/// `k` distinct indices from `0..n` (partial Fisher-Yates), in draw order.
fn sample_without_replacement(rng: &mut Rng, n: usize, k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..n).collect();
    for i in 0..k.min(n) {
        let j = i + rng.below(n - i);
        idx.swap(i, j);
    }
    idx.truncate(k);
    idx
}

fn build_tree(
    rows: &[Vec<f64>],
    mut sample: Vec<usize>,
    d: usize,
    max_depth: usize,
    rng: &mut Rng,
) -> Tree {
    let mut t = Tree {
        feature: vec![],
        threshold: vec![],
        left: vec![],
        right: vec![],
        size: vec![],
    };
    // Explicit stack of (node id, start, end, depth) over `sample`.
    let new_node = |t: &mut Tree, size: usize| {
        t.feature.push(LEAF);
        t.threshold.push(0.0);
        t.left.push(0);
        t.right.push(0);
        t.size.push(size as u32);
        (t.feature.len() - 1) as u32
    };
    let root = new_node(&mut t, sample.len());
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
                let v = rows[i][f];
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
            if rows[sample[i]][f] <= thr {
                sample.swap(i, mid);
                mid += 1;
            }
        }
        let l = new_node(&mut t, mid - lo);
        let r = new_node(&mut t, hi - mid);
        let n = node as usize;
        t.feature[n] = f as u32;
        t.threshold[n] = thr;
        t.left[n] = l;
        t.right[n] = r;
        stack.push((l, lo, mid, depth + 1));
        stack.push((r, mid, hi, depth + 1));
    }
    t
}

fn path_length(t: &Tree, x: &[f64]) -> f64 {
    let mut node = 0usize;
    let mut depth = 0.0;
    loop {
        let f = t.feature[node];
        if f == LEAF {
            return depth + average_path_length(t.size[node] as usize);
        }
        node = if x[f as usize] <= t.threshold[node] {
            t.left[node]
        } else {
            t.right[node]
        } as usize;
        depth += 1.0;
    }
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
