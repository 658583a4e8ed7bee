//! Anomaly detectors. Pure: plain numbers in, scores with reasons out; no
//! clock, no IO.
//!
//! - [`IsolationForest`]: scikit-learn's algorithm (Liu et al. 2008) with its
//!   defaults: 100 trees, `max_samples = min(256, n)`, depth limit
//!   `ceil(log2(max_samples))`, average path length `c(n)`,
//!   `score_samples = -2^(-E[h(x)]/c(ψ))`, and `contamination` setting the
//!   threshold as a quantile of the training scores. Seeded.
//! - [`RobustDetector`]: a streaming rolling median / MAD z-score with a
//!   minimum effect size and confirmation over consecutive samples.

pub mod iforest;
pub mod robust;

pub use iforest::{FitError, IsolationForest, IsolationForestParams};
pub use robust::{Direction, RobustDetector, RobustParams, RobustScore};
pub mod ensemble;
pub use ensemble::{Component, Ensemble, EnsembleParams, EnsembleScore, SortedWindow};
pub mod synthetic;
pub mod table;
