//! End to end: every demo scenario on simulated time, unpaced.

use warden_config::Mode;
use warden_model::Timestamp;
use warden_runtime::{DemoOptions, DemoSummary, run_demo};
use warden_sim::Scenario;

fn start() -> Timestamp {
    Timestamp::parse_rfc3339("2026-01-05T09:00:00Z").expect("time")
}

async fn run(scenario: Scenario, mode: Mode, seed: u64) -> (DemoSummary, Vec<String>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut opts = DemoOptions::new(dir.path().to_path_buf(), start());
    opts.scenario = Some(scenario);
    opts.duration_ms = Some(600_000);
    opts.speed = 0.0;
    opts.mode = mode;
    opts.seed = seed;
    let mut lines = Vec::new();
    let summary = run_demo(opts, &mut |l: &str| lines.push(l.to_string())).await.expect("demo runs").expect("summary");
    (summary, lines)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_is_detected_ranked_first_fixed_and_verified_in_auto_mode() {
    for sc in Scenario::ALL {
        let (s, lines) = run(sc, Mode::Auto, 1).await;
        eprintln!("{}", serde_json::to_string(&s).unwrap_or_default());
        if !(s.detected && s.root_cause_rank == Some(1) && s.recovered) {
            for l in &lines {
                eprintln!("{l}");
            }
        }
        assert!(s.detected, "{sc}: not detected");
        assert_eq!(s.root_cause_rank, Some(1), "{sc}: {s:?}");
        assert!(s.actions.iter().any(|a| a.status == "executed"), "{sc}: no action executed");
        assert!(s.recovered, "{sc}: not recovered: {s:?}");
        assert!(!s.fault_active_at_end, "{sc}: the mesh still has the fault");
    }
}
