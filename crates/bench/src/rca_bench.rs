//! Scoring rankings: AC@k and Avg@5 overall, per top-level folder and per
//! fault type (FORMAT.md's definitions).

use std::collections::BTreeMap;

use serde::Serialize;

/// AC@1..5 and Avg@5 over `n` cases.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Score {
    pub n: usize,
    pub ac: [f64; 5],
    pub avg5: f64,
}

/// Scores per group.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RcaReport {
    pub overall: Score,
    pub by_folder: BTreeMap<String, Score>,
    pub by_fault: BTreeMap<String, Score>,
    /// Cases ranked but not scored (no truth.json).
    pub unscored: usize,
}

fn score(ranks: &[Option<usize>]) -> Score {
    let n = ranks.len();
    let mut ac = [0.0; 5];
    for (k, a) in ac.iter_mut().enumerate() {
        let hits = ranks
            .iter()
            .filter(|r| r.is_some_and(|r| r <= k + 1))
            .count();
        *a = if n == 0 { 0.0 } else { hits as f64 / n as f64 };
    }
    Score {
        n,
        ac,
        avg5: ac.iter().sum::<f64>() / 5.0,
    }
}

/// Scores `(case path, folder, fault, rank of the true cause)` rows.
pub fn score_rankings(
    rows: &[(String, String, String, Option<usize>)],
    unscored: usize,
) -> RcaReport {
    let all: Vec<Option<usize>> = rows.iter().map(|r| r.3).collect();
    let mut folders: BTreeMap<String, Vec<Option<usize>>> = BTreeMap::new();
    let mut faults: BTreeMap<String, Vec<Option<usize>>> = BTreeMap::new();
    for (_, folder, fault, rank) in rows {
        folders.entry(folder.clone()).or_default().push(*rank);
        faults.entry(fault.clone()).or_default().push(*rank);
    }
    RcaReport {
        overall: score(&all),
        by_folder: folders.into_iter().map(|(k, v)| (k, score(&v))).collect(),
        by_fault: faults.into_iter().map(|(k, v)| (k, score(&v))).collect(),
        unscored,
    }
}

/// Ranks every case below `root`, writes one JSON line per case to `out`
/// (`{"case", "ranking"}`), and scores the cases that have a truth.
/// `progress(done, total)` is called after each case.
pub fn run(
    root: &std::path::Path,
    params: &warden_rca::RankParams,
    out: &mut dyn std::io::Write,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<RcaReport, crate::CaseError> {
    let cases = crate::find_cases(root)?;
    let mut rows = Vec::new();
    let mut unscored = 0;
    for (i, dir) in cases.iter().enumerate() {
        let case = crate::load_case(dir, root)?;
        let ranking: Vec<String> = crate::rank_case(&case, params)
            .into_iter()
            .map(|c| c.service)
            .collect();
        let rel = dir
            .strip_prefix(root)
            .unwrap_or(dir)
            .to_string_lossy()
            .replace('\\', "/");
        let line = serde_json::json!({ "case": rel, "ranking": ranking });
        writeln!(out, "{line}").map_err(|e| crate::CaseError::Io {
            path: "output".into(),
            source: e,
        })?;
        match &case.truth {
            Some(t) => {
                let folder = rel.split('/').next().unwrap_or("").to_string();
                let rank = ranking
                    .iter()
                    .position(|s| s == &t.root_cause)
                    .map(|p| p + 1);
                rows.push((rel.clone(), folder, t.fault.clone(), rank));
            }
            None => unscored += 1,
        }
        progress(i + 1, cases.len());
    }
    Ok(score_rankings(&rows, unscored))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ac_at_k_follows_the_definition() {
        let rows = vec![
            ("a".into(), "x".into(), "delay".into(), Some(1)),
            ("b".into(), "x".into(), "error".into(), Some(3)),
            ("c".into(), "y".into(), "error".into(), None),
            ("d".into(), "y".into(), "delay".into(), Some(6)),
        ];
        let r = score_rankings(&rows, 1);
        assert_eq!(r.overall.n, 4);
        assert_eq!(r.overall.ac, [0.25, 0.25, 0.5, 0.5, 0.5]);
        assert!((r.overall.avg5 - 0.4).abs() < 1e-12);
        assert_eq!(r.by_folder["x"].ac[0], 0.5);
        assert_eq!(r.by_fault["error"].ac[2], 0.5);
        assert_eq!(r.unscored, 1);
    }
}
