//! Seeded synthetic data sets for parity tests and benchmarks (the same seed
//! gives the same rows on every machine), and Spearman's rank correlation.

use warden_model::Rng;

/// The seed's monitoring table: cpu_usage, memory_usage, request_latency
/// (ms), error_rate per row, with a diurnal load and 5% incidents (a CPU
/// hog, a leak, a slow dependency or an error burst, one or two features at
/// a time).
pub fn service_metrics(n: usize, seed: u64) -> Vec<Vec<f64>> {
    let mut r = Rng::new(seed);
    (0..n)
        .map(|i| {
            let load = 1.0 + 0.3 * (i as f64 / 288.0 * std::f64::consts::TAU).sin();
            let mut cpu = (0.35 * load + 0.03 * r.normal()).clamp(0.0, 1.0);
            let mut mem = (0.55 + 0.02 * r.normal()).clamp(0.0, 1.0);
            let mut lat = 120.0 * load * (0.15 * r.normal()).exp();
            let mut err = (0.005 + 0.002 * r.normal()).max(0.0);
            if r.uniform() < 0.05 {
                match r.below(4) {
                    0 => cpu = r.range(0.8, 1.0),
                    1 => mem = r.range(0.8, 0.99),
                    2 => lat *= r.range(3.0, 10.0),
                    _ => {
                        err = r.range(0.05, 0.4);
                        lat *= r.range(1.0, 2.0);
                    }
                }
            }
            vec![cpu, mem, lat, err]
        })
        .collect()
}

/// Three 2-D Gaussian clusters of different spread, plus 10% uniform noise
/// over the whole box.
pub fn blobs(n: usize, seed: u64) -> Vec<Vec<f64>> {
    let mut r = Rng::new(seed);
    let centres = [(-5.0, -5.0, 0.5), (0.0, 4.0, 1.0), (6.0, -1.0, 2.0)];
    (0..n)
        .map(|_| {
            if r.uniform() < 0.1 {
                vec![r.range(-12.0, 12.0), r.range(-12.0, 12.0)]
            } else {
                let (x, y, s) = centres[r.below(3)];
                vec![x + s * r.normal(), y + s * r.normal()]
            }
        })
        .collect()
}

/// Eight skewed, correlated features (log-normal and exponential mixtures
/// driven by two latent factors), 3% of rows with one feature scaled up.
pub fn skewed(n: usize, seed: u64) -> Vec<Vec<f64>> {
    let mut r = Rng::new(seed);
    (0..n)
        .map(|_| {
            let (a, b) = (r.normal(), r.normal());
            let mut row: Vec<f64> = (0..8)
                .map(|k| {
                    let w = k as f64 / 7.0;
                    let latent = w * a + (1.0 - w) * b;
                    if k % 2 == 0 {
                        (0.5 * latent + 0.3 * r.normal()).exp()
                    } else {
                        -(1.0 - r.uniform()).ln() * (1.0 + 0.2 * latent.abs())
                    }
                })
                .collect();
            if r.uniform() < 0.03 {
                let k = r.below(8);
                row[k] *= r.range(5.0, 20.0);
            }
            row
        })
        .collect()
}

/// Ranks (1-based, ties get their average rank).
fn ranks(v: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|a, b| v[*a].total_cmp(&v[*b]));
    let mut out = vec![0.0; v.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && v[idx[j + 1]] == v[idx[i]] {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        for k in &idx[i..=j] {
            out[*k] = rank;
        }
        i = j + 1;
    }
    out
}

/// Spearman's rank correlation of two equally long samples (NaN when
/// either is constant or they differ in length).
pub fn spearman(a: &[f64], b: &[f64]) -> f64 {
    if a.len() != b.len() || a.is_empty() {
        return f64::NAN;
    }
    let (ra, rb) = (ranks(a), ranks(b));
    let n = a.len() as f64;
    let ma = ra.iter().sum::<f64>() / n;
    let mb = rb.iter().sum::<f64>() / n;
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in ra.iter().zip(&rb) {
        sab += (x - ma) * (y - mb);
        saa += (x - ma) * (x - ma);
        sbb += (y - mb) * (y - mb);
    }
    sab / (saa * sbb).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spearman_of_monotone_and_reversed_samples() {
        let a = [1.0, 2.0, 3.0, 4.0];
        assert!((spearman(&a, &[10.0, 20.0, 30.0, 1000.0]) - 1.0).abs() < 1e-12);
        assert!((spearman(&a, &[4.0, 3.0, 2.0, 1.0]) + 1.0).abs() < 1e-12);
        // Ties get average ranks: [1, 2.5, 2.5, 4] against [1, 2, 3, 4].
        let s = spearman(&[1.0, 2.0, 2.0, 3.0], &a);
        assert!((s - 0.948_683_3).abs() < 1e-6, "{s}");
        assert!(spearman(&a, &[1.0, 1.0, 1.0, 1.0]).is_nan());
    }

    #[test]
    fn generators_are_seeded() {
        assert_eq!(service_metrics(50, 1), service_metrics(50, 1));
        assert_ne!(service_metrics(50, 1), service_metrics(50, 2));
        assert_eq!(blobs(10, 3)[0].len(), 2);
        assert_eq!(skewed(10, 3)[0].len(), 8);
    }
}
