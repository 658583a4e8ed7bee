//! Writes synthetic RCA cases (`warden_sim::synthetic_case`) in the case
//! layout of `shared/data/rca/FORMAT.md`, so that `warden bench rca` scores
//! the ranker on topologies it was not developed on.

use std::path::Path;

use crate::CaseError;
use warden_sim::SynthCase;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CaseError + '_ {
    move |source| CaseError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn write(path: &Path, text: &str) -> Result<(), CaseError> {
    std::fs::write(path, text).map_err(io(path))
}

fn table(times: &[f64], columns: &[(String, String, Vec<f64>)]) -> String {
    let mut out = String::from("time");
    for (s, m, _) in columns {
        out.push(',');
        out.push_str(&format!("{s}_{m}"));
    }
    out.push('\n');
    for (k, t) in times.iter().enumerate() {
        out.push_str(&format!("{t:.0}"));
        for (_, _, v) in columns {
            out.push(',');
            if let Some(x) = v.get(k).filter(|x| x.is_finite()) {
                out.push_str(&format!("{x}"));
            }
        }
        out.push('\n');
    }
    out
}

/// Writes one case into `dir` (created).
pub fn write_case(dir: &Path, c: &SynthCase) -> Result<(), CaseError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    write(&dir.join("data.csv"), &table(&c.times, &c.columns))?;
    write(
        &dir.join("inject_time.txt"),
        &format!("{:.0}\n", c.inject_time),
    )?;
    if let Some((times, cols)) = &c.normal {
        write(&dir.join("normal.csv"), &table(times, cols))?;
    }
    if let Some(edges) = &c.edges {
        let mut g = String::from("caller,callee\n");
        for (a, b) in edges {
            g.push_str(&format!("{a},{b}\n"));
        }
        write(&dir.join("graph.csv"), &g)?;
    }
    if let Some((service, metric)) = &c.alert {
        let a = serde_json::json!({ "service": service, "metric": metric });
        write(&dir.join("alert.json"), &format!("{a}\n"))?;
    }
    let t = serde_json::json!({ "root_cause": c.root_cause, "fault": c.fault });
    write(&dir.join("truth.json"), &format!("{t}\n"))
}

/// Writes `count` cases with seeds `seed..seed + count` below `root`, as
/// `<fault>/case_<seed>`.
pub fn write_cases(root: &Path, count: usize, seed: u64) -> Result<(), CaseError> {
    for k in 0..count as u64 {
        let s = seed + k;
        let c = warden_sim::synthetic_case(s);
        write_case(&root.join(c.fault).join(format!("case_{s:04}")), &c)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A regression floor, not a target: on the first 60 synthetic cases
    /// the default ranker reached AC@1 0.700 and AC@3 0.900 when this test
    /// was written (docs/BENCHMARKS.md has the full sets). A change that
    /// loses a tenth of that fails here.
    #[test]
    fn the_ranker_holds_on_synthetic_topologies() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_cases(dir.path(), 60, 1).expect("write");
        let mut sink = Vec::new();
        let report = crate::run_rca_bench(
            dir.path(),
            &warden_rca::RankParams::default(),
            &mut sink,
            &mut |_, _| {},
        )
        .expect("bench");
        let all = &report.overall;
        assert_eq!(all.n, 60);
        assert!(all.ac[0] >= 0.63 && all.ac[2] >= 0.81, "{all:?}");
    }

    #[test]
    fn written_cases_load_and_rank() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_cases(dir.path(), 3, 7).expect("write");
        let cases = crate::find_cases(dir.path()).expect("find");
        assert_eq!(cases.len(), 3);
        for d in cases {
            let c = crate::load_case(&d, dir.path()).expect("load");
            let r = crate::rank_case(&c, &warden_rca::RankParams::default());
            assert!(r.len() >= 10, "{} ranked {} services", d.display(), r.len());
        }
    }
}
